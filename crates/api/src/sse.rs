//! Server-sent events framing as OpenAI uses it: `data: <json>\n\n`, ended by `data: [DONE]`.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_one_data_line() {
        let b = data_event(&serde_json::json!({"a": "x\ny"})).unwrap();
        assert_eq!(&b[..], b"data: {\"a\":\"x\\ny\"}\n\n");
    }
}
