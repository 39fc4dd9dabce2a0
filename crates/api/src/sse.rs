//! Server-sent events framing: OpenAI's (`data: <json>\n\n`, ended by `data: [DONE]`) and
//! Anthropic's (each event named: `event: <type>\ndata: <json>\n\n`).

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;

pub const DONE: &[u8] = b"data: [DONE]\n\n";

/// One `data:` event holding `value` as JSON. JSON never contains a raw newline, so one
/// `data:` line is always enough.
pub fn data_event<T: Serialize>(value: &T) -> Result<Bytes, serde_json::Error> {
    let mut buf = BytesMut::with_capacity(256).writer();
    std::io::Write::write_all(&mut buf, b"data: ").map_err(serde_json::Error::io)?;
    serde_json::to_writer(&mut buf, value)?;
    std::io::Write::write_all(&mut buf, b"\n\n").map_err(serde_json::Error::io)?;
    Ok(buf.into_inner().freeze())
}

/// One event named `name` holding `value` as JSON, as Anthropic frames its streams (its SDKs
/// skip events without a name).
pub fn named_event<T: Serialize>(name: &str, value: &T) -> Result<Bytes, serde_json::Error> {
    let data = data_event(value)?;
    let mut buf = BytesMut::with_capacity(data.len() + name.len() + 8);
    buf.put_slice(b"event: ");
    buf.put_slice(name.as_bytes());
    buf.put_u8(b'\n');
    buf.put_slice(&data);
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_one_data_line() {
        let b = data_event(&serde_json::json!({"a": "x\ny"})).unwrap();
        assert_eq!(&b[..], b"data: {\"a\":\"x\\ny\"}\n\n");
        let b = named_event("ping", &serde_json::json!({"type": "ping"})).unwrap();
        assert_eq!(&b[..], b"event: ping\ndata: {\"type\":\"ping\"}\n\n");
    }
}
