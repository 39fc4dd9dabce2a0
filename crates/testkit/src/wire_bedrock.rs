//! The fake Bedrock's side of the wire: Converse bodies and ConverseStream's binary event
//! stream frames written from a [`Reply`] (framing, headers and CRC32s by hand, nothing of
//! AWS's decoder), the routes, the error types, and the SigV4 check every request passes
//! first ([`crate::sigv4`]).

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{json, Value};

use crate::behavior::Reply;
use crate::frames::{halves, Frame, Frames};
use crate::sigv4::{self, AwsKey, Received, Rejection};

/// The id of a tool call the script gave none.
pub(crate) const TOOL_ID: &str = "tooluse_fake_1";

fn tool_id(reply: &Reply) -> String {
    let given = reply.tool_call.as_ref().and_then(|t| t.id.clone());
    given.unwrap_or_else(|| TOOL_ID.to_owned())
}

/// The region the fake Bedrock is in: requests must be signed for it (and service `bedrock`).
pub const FAKE_AWS_REGION: &str = "us-west-2";
/// The credentials the fake accepts unless a test adds others
/// ([`FakeUpstream::allow_aws_key`](crate::FakeUpstream::allow_aws_key)).
pub const FAKE_AWS_ACCESS_KEY_ID: &str = "AKIDFAKEBEDROCK";
pub const FAKE_AWS_SECRET_ACCESS_KEY: &str = "fake/bedrock+Secret0";

pub(crate) fn default_keys() -> Vec<AwsKey> {
    vec![AwsKey {
        access_key_id: FAKE_AWS_ACCESS_KEY_ID.to_owned(),
        secret_access_key: FAKE_AWS_SECRET_ACCESS_KEY.to_owned(),
        session_token: None,
    }]
}

/// What a Bedrock path asks for: the model (its id unescaped) and whether to stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Call {
    pub model: String,
    pub stream: bool,
}

/// `/model/{modelId}/converse` or `/converse-stream`, the id one escaped path segment (a `:`
/// or the `/` of an inference profile ARN escaped, as AWS's SDKs send it).
pub(crate) fn route(path: &str) -> Option<Call> {
    let (model, op) = path.strip_prefix("/model/")?.rsplit_once('/')?;
    let stream = match op {
        "converse" => false,
        "converse-stream" => true,
        _ => return None,
    };
    if model.is_empty() || model.contains('/') {
        return None;
    }
    let model = String::from_utf8(unescape(model)).ok()?;
    Some(Call { model, stream })
}

fn unescape(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = text.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        let hex = tail.get(..2).and_then(|h| std::str::from_utf8(h).ok());
        match (b, hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(v)) => {
                out.push(v);
                rest = &tail[2..];
            }
            _ => {
                out.push(b);
                rest = tail;
            }
        }
    }
    out
}

/// The signature check, as AWS does it, with the clock.
pub(crate) fn check_signature(req: &Received<'_>, keys: &[AwsKey]) -> Result<(), Rejection> {
    sigv4::verify(
        req,
        keys,
        FAKE_AWS_REGION,
        "bedrock",
        Some(chrono::Utc::now()),
    )
    .map(|_| ())
}

/// `x-amzn-ErrorType` for an error status, as Bedrock names them.
pub(crate) fn error_type(status: u16) -> &'static str {
    match status {
        400 | 422 => "ValidationException",
        401 => "UnrecognizedClientException",
        403 => "AccessDeniedException",
        404 => "ResourceNotFoundException",
        408 => "ModelTimeoutException",
        429 => "ThrottlingException",
        503 => "ServiceUnavailableException",
        _ => "InternalServerException",
    }
}

fn usage(reply: &Reply) -> Option<Value> {
    reply.usage.map(|u| {
        json!({"inputTokens": u.prompt_tokens, "outputTokens": u.completion_tokens,
               "totalTokens": u.prompt_tokens + u.completion_tokens})
    })
}

/// A whole Converse answer.
pub(crate) fn converse_body(reply: &Reply) -> Value {
    let text = reply.joined();
    let mut content = Vec::new();
    if !text.is_empty() {
        content.push(json!({"text": text}));
    }
    let mut stop = "end_turn";
    if let Some(call) = &reply.tool_call {
        stop = "tool_use";
        content.push(json!({"toolUse": {"toolUseId": tool_id(reply),
            "name": call.name, "input": call.arguments}}));
    }
    let mut body = json!({
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop,
        "metrics": {"latencyMs": 12},
    });
    if let Some(u) = usage(reply) {
        body["usage"] = u;
    }
    body
}

/// One event stream frame: the prelude (total and header lengths, their CRC32), the headers
/// (name, type 7 = string, length, value), the payload, the CRC32 of all before it.
pub fn frame(headers: &[(&str, &str)], payload: &[u8]) -> Bytes {
    let mut head = BytesMut::new();
    for (name, value) in headers {
        head.put_u8(name.len() as u8);
        head.put_slice(name.as_bytes());
        head.put_u8(7);
        head.put_u16(value.len() as u16);
        head.put_slice(value.as_bytes());
    }
    let total = 12 + head.len() + payload.len() + 4;
    let mut out = BytesMut::with_capacity(total);
    out.put_u32(total as u32);
    out.put_u32(head.len() as u32);
    out.put_u32(crc32fast::hash(&out[..8]));
    out.put_slice(&head);
    out.put_slice(payload);
    out.put_u32(crc32fast::hash(&out));
    out.freeze()
}

/// An `event` frame; payloads carry a `p` field of padding, as Bedrock's do.
fn event(event_type: &str, mut payload: Value) -> Bytes {
    payload["p"] = json!("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ");
    frame(
        &[
            (":event-type", event_type),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        payload.to_string().as_bytes(),
    )
}

/// An `exception` frame, as Bedrock ends a stream that fails after it began.
pub fn exception_frame(exception_type: &str, message: &str) -> Bytes {
    frame(
        &[
            (":exception-type", exception_type),
            (":content-type", "application/json"),
            (":message-type", "exception"),
        ],
        json!({"message": message}).to_string().as_bytes(),
    )
}

/// A ConverseStream answer: messageStart; the text as deltas of block 0; the tool call as a
/// block started with its id and name, its input in two halves; messageStop with the stop
/// reason; then `metadata` with the usage, the terminator a `NoTerminator` ending leaves out.
/// `Malformed` puts a frame whose CRC is wrong after the first content.
pub(crate) fn converse_stream(mut f: Frames, reply: &Reply) -> Vec<Frame> {
    f.push(event("messageStart", json!({"role": "assistant"})));
    let mut index = 0;
    if !reply.pieces.is_empty() {
        for piece in &reply.pieces {
            f.content(event(
                "contentBlockDelta",
                json!({"contentBlockIndex": index, "delta": {"text": piece}}),
            ));
        }
        f.push(event(
            "contentBlockStop",
            json!({"contentBlockIndex": index}),
        ));
        index += 1;
    }
    let mut stop = "end_turn";
    if let Some(call) = &reply.tool_call {
        stop = "tool_use";
        f.content(event(
            "contentBlockStart",
            json!({"contentBlockIndex": index, "start": {"toolUse": {
                "toolUseId": tool_id(reply), "name": call.name}}}),
        ));
        let (a, b) = halves(&call.arguments.to_string());
        for part in [a, b] {
            f.push(event(
                "contentBlockDelta",
                json!({"contentBlockIndex": index, "delta": {"toolUse": {"input": part}}}),
            ));
        }
        f.push(event(
            "contentBlockStop",
            json!({"contentBlockIndex": index}),
        ));
    }
    f.push(event("messageStop", json!({"stopReason": stop})));
    let mut metadata = json!({"metrics": {"latencyMs": 12}});
    if let Some(u) = usage(reply) {
        metadata["usage"] = u;
    }
    let mut corrupt = BytesMut::from(
        &event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0,
        "delta": {"text": "corrupt"}}),
        )[..],
    );
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    f.finish(reply.ending, event("metadata", metadata), corrupt.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let call = |model: &str, stream| {
            Some(Call {
                model: model.to_owned(),
                stream,
            })
        };
        assert_eq!(
            route("/model/anthropic.claude-v1%3A0/converse"),
            call("anthropic.claude-v1:0", false)
        );
        assert_eq!(
            route("/model/arn%3Aaws%3Abedrock%3Aus-west-2%3A1%3Ainference-profile%2Fus.x/converse-stream"),
            call("arn:aws:bedrock:us-west-2:1:inference-profile/us.x", true)
        );
        // An unescaped `/` in the id makes it two segments: not a model.
        assert_eq!(route("/model/a/b/converse"), None);
        assert_eq!(route("/model/m/invoke"), None);
    }

    /// The frame layout of AWS's event stream specification.
    #[test]
    fn frames_are_laid_out_as_aws_specifies() {
        let f = frame(&[(":message-type", "event")], b"{}");
        let total = u32::from_be_bytes([f[0], f[1], f[2], f[3]]) as usize;
        assert_eq!(total, f.len());
        let headers = u32::from_be_bytes([f[4], f[5], f[6], f[7]]) as usize;
        assert_eq!(headers, 1 + 13 + 1 + 2 + 5);
        assert_eq!(&f[8..12], crc32fast::hash(&f[..8]).to_be_bytes());
        assert_eq!(
            &f[f.len() - 4..],
            crc32fast::hash(&f[..f.len() - 4]).to_be_bytes()
        );
        assert_eq!(&f[12 + headers..f.len() - 4], b"{}");
    }
}
