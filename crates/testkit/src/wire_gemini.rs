//! The fake upstream's bytes for Google's Gemini API (and Gemini models on Vertex AI):
//! `generateContent` answers, `streamGenerateContent?alt=sse` events and Google's error
//! body, written as the real API writes them from a [`Reply`].

use serde_json::{json, Value};

use crate::behavior::{FakeUsage, Reply};
use crate::frames::{Frame, Frames};

fn usage(u: FakeUsage) -> Value {
    json!({
        "promptTokenCount": u.prompt_tokens,
        "candidatesTokenCount": u.completion_tokens,
        "totalTokenCount": u.prompt_tokens + u.completion_tokens,
    })
}

/// One answer object: `parts` of candidate 0, its finish reason if any, usage if any.
fn answer(
    parts: Vec<Value>,
    finish: Option<&str>,
    usage: Option<Value>,
    model: &str,
    id: u64,
) -> Value {
    let mut candidate = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
    if let Some(finish) = finish {
        candidate["finishReason"] = json!(finish);
    }
    let mut body = json!({"candidates": [candidate]});
    if let Some(usage) = usage {
        body["usageMetadata"] = usage;
    }
    body["modelVersion"] = json!(model);
    body["responseId"] = json!(format!("resp-fake-{id}"));
    body
}

/// Gemini's function call part: the whole call at once (Gemini never splits arguments).
fn call_part(reply: &Reply) -> Option<Value> {
    reply
        .tool_call
        .as_ref()
        .map(|c| json!({"functionCall": {"name": c.name, "args": c.arguments}}))
}

/// A whole `generateContent` answer. A function call ends with `STOP`, as Gemini reports it.
pub(crate) fn chat_body(reply: &Reply, model: &str, id: u64) -> Value {
    let mut parts = Vec::new();
    let text = reply.joined();
    if !text.is_empty() {
        parts.push(json!({"text": text}));
    }
    parts.extend(call_part(reply));
    answer(parts, Some("STOP"), reply.usage.map(usage), model, id)
}

/// A `streamGenerateContent?alt=sse` answer: one event per text piece (each with the prompt's
/// token count, as Gemini sends it), the function call in one event, then the finish reason
/// with the full usage. The stream has no terminator: it ends with the body.
pub(crate) fn chat_stream(reply: &Reply, model: &str, id: u64) -> Vec<Frame> {
    let mut f = Frames::new();
    let data = |v: Value| format!("data: {v}\r\n\r\n");
    let prompt_only = reply
        .usage
        .map(|u| json!({"promptTokenCount": u.prompt_tokens, "totalTokenCount": u.prompt_tokens}));
    for piece in &reply.pieces {
        f.content(data(answer(
            vec![json!({"text": piece})],
            None,
            prompt_only.clone(),
            model,
            id,
        )));
    }
    if let Some(part) = call_part(reply) {
        f.content(data(answer(
            vec![part],
            None,
            prompt_only.clone(),
            model,
            id,
        )));
    }
    f.push(data(answer(
        vec![json!({"text": ""})],
        Some("STOP"),
        reply.usage.map(usage),
        model,
        id,
    )));
    f.finish(reply.ending, "", "data: {\"candidates\": [oops\r\n\r\n")
}

/// Google's error body, with the `status` word the real API gives `code`, and a wait as
/// `RetryInfo` (Google sends no `retry-after` header).
pub(crate) fn error_body(code: u16, message: &str, retry_after: Option<&str>) -> Value {
    let status = match code {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        500 => "INTERNAL",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "UNKNOWN",
    };
    let mut error = json!({"code": code, "message": message, "status": status});
    if let Some(wait) = retry_after {
        error["details"] = json!([{
            "@type": "type.googleapis.com/google.rpc.RetryInfo",
            "retryDelay": format!("{wait}s"),
        }]);
    }
    json!({ "error": error })
}
