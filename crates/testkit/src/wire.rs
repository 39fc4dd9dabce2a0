//! The fake upstream's bytes: OpenAI (and Azure's) and Anthropic bodies and event streams,
//! written as the real APIs write them (field order and all), from a [`Reply`]; Bedrock's are
//! in `wire_bedrock.rs`, Gemini's (and Vertex's) in `wire_gemini.rs`.

use serde_json::{json, Value};

use crate::behavior::{FakeUsage, Reply};
use crate::frames::{halves, Frame, Frames};

/// Which API the fake upstream imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// `POST /v1/chat/completions` and `POST /v1/embeddings`; base URL ends in `/v1`.
    OpenAi,
    /// `POST /v1/messages`; base URL is the bare origin.
    Anthropic,
    /// AWS Bedrock's `POST /model/{modelId}/converse` and `/converse-stream`, every request's
    /// SigV4 signature checked; base URL is the bare origin.
    Bedrock,
    /// Azure OpenAI: OpenAI's bodies at
    /// `POST /openai/deployments/{deployment}/chat/completions?api-version=…` (and
    /// `…/embeddings`), with the `api-key` header or a bearer token from `/token`; base URL
    /// (the endpoint) is the bare origin.
    Azure,
    /// Google's Gemini API: `POST /v1beta/models/{model}:generateContent` and
    /// `:streamGenerateContent?alt=sse`, key in `x-goog-api-key`; base URL is the bare origin.
    Gemini,
    /// Vertex AI: Gemini models at `POST /v1/projects/{p}/locations/{l}/publishers/google/
    /// models/{model}:generateContent` (`:streamGenerateContent?alt=sse`), Anthropic models at
    /// `…/publishers/anthropic/models/{model}:rawPredict` (`:streamRawPredict`), with a bearer
    /// token from `/token`; base URL is the bare origin.
    Vertex,
}

impl Flavor {
    /// The provider `kind` of a gateway config that speaks this flavor.
    pub fn kind(self) -> &'static str {
        match self {
            Flavor::OpenAi => "openai",
            Flavor::Anthropic => "anthropic",
            Flavor::Bedrock => "bedrock",
            Flavor::Azure => "azure",
            Flavor::Gemini => "gemini",
            Flavor::Vertex => "vertex",
        }
    }
}

/// `created` in every OpenAI answer: fixed, so recorded answers compare equal.
const CREATED: i64 = 1_700_000_000;

fn tool_id(flavor: Flavor, reply: &Reply) -> String {
    let given = reply.tool_call.as_ref().and_then(|t| t.id.clone());
    given.unwrap_or_else(|| match flavor {
        Flavor::Anthropic => "toolu_fake_1".into(),
        Flavor::Bedrock => crate::wire_bedrock::TOOL_ID.into(),
        Flavor::OpenAi | Flavor::Azure | Flavor::Gemini | Flavor::Vertex => "call_fake_1".into(),
    })
}

/// What a request asked of its answer's shape, which the OpenAI fake honours as the real API
/// does: the usage chunk of a stream, `n` choices (each the same reply, counted in usage)
/// and `logprobs` (one made-up entry per piece of text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ask {
    pub include_usage: bool,
    pub n: u32,
    pub logprobs: bool,
}

impl Ask {
    pub(crate) fn of(request: &Value) -> Ask {
        Ask {
            include_usage: request.pointer("/stream_options/include_usage")
                == Some(&Value::Bool(true)),
            n: request
                .get("n")
                .and_then(Value::as_u64)
                .map_or(1, |n| n.clamp(1, 128) as u32),
            logprobs: request.get("logprobs") == Some(&Value::Bool(true)),
        }
    }

    #[cfg(test)]
    fn usage(include_usage: bool) -> Ask {
        Ask {
            include_usage,
            n: 1,
            logprobs: false,
        }
    }

    /// The `logprobs` of a choice made of `pieces`, or null when not asked for.
    fn logprobs_of<'a>(&self, pieces: impl IntoIterator<Item = &'a String>) -> Value {
        if !self.logprobs {
            return Value::Null;
        }
        let content: Vec<Value> = pieces
            .into_iter()
            .map(|p| json!({"token": p, "logprob": -0.25, "bytes": p.as_bytes(), "top_logprobs": []}))
            .collect();
        json!({"content": content, "refusal": null})
    }

    /// Usage for all `n` choices: the prompt once, each choice's completion.
    fn usage_of(&self, u: FakeUsage) -> Value {
        openai_usage(FakeUsage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens * self.n,
        })
    }
}

fn openai_usage(u: FakeUsage) -> Value {
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
    })
}

fn anthropic_usage(u: FakeUsage) -> Value {
    json!({"input_tokens": u.prompt_tokens, "output_tokens": u.completion_tokens})
}

/// A whole (non-streamed) chat answer.
pub(crate) fn chat_body(flavor: Flavor, reply: &Reply, model: &str, id: u64, ask: &Ask) -> Value {
    let text = reply.joined();
    match flavor {
        Flavor::Gemini | Flavor::Vertex => crate::wire_gemini::chat_body(reply, model, id),
        Flavor::OpenAi | Flavor::Azure => {
            let mut message = json!({"role": "assistant", "content": text, "refusal": null});
            let mut finish = "stop";
            if let Some(call) = &reply.tool_call {
                finish = "tool_calls";
                if text.is_empty() {
                    message["content"] = Value::Null;
                }
                message["tool_calls"] = json!([{
                    "id": tool_id(flavor, reply),
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments.to_string()},
                }]);
            }
            let mut body = json!({
                "id": format!("chatcmpl-fake-{id}"),
                "object": "chat.completion",
                "created": CREATED,
                "model": model,
                "choices": (0..ask.n).map(|i| json!({"index": i, "message": message,
                    "logprobs": ask.logprobs_of(&reply.pieces), "finish_reason": finish}))
                    .collect::<Vec<_>>(),
                "system_fingerprint": "fp_fake",
            });
            if let Some(u) = reply.usage {
                body["usage"] = ask.usage_of(u);
            }
            body
        }
        Flavor::Anthropic => {
            let mut content = Vec::new();
            if !text.is_empty() {
                content.push(json!({"type": "text", "text": text}));
            }
            let mut stop = "end_turn";
            if let Some(call) = &reply.tool_call {
                stop = "tool_use";
                content.push(json!({
                    "type": "tool_use", "id": tool_id(flavor, reply),
                    "name": call.name, "input": call.arguments,
                }));
            }
            let mut body = json!({
                "id": format!("msg_fake_{id}"),
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": content,
                "stop_reason": stop,
                "stop_sequence": null,
            });
            if let Some(u) = reply.usage {
                body["usage"] = anthropic_usage(u);
            }
            body
        }
        Flavor::Bedrock => crate::wire_bedrock::converse_body(reply),
    }
}

fn data(value: &Value) -> String {
    format!("data: {value}\n\n")
}

fn event(name: &str, value: &Value) -> String {
    format!("event: {name}\ndata: {value}\n\n")
}

/// A streamed chat answer. OpenAI sends the usage chunk only when the request asked for it
/// (`stream_options.include_usage`), as the real API does.
pub(crate) fn chat_stream(
    flavor: Flavor,
    reply: &Reply,
    model: &str,
    id: u64,
    ask: &Ask,
) -> Vec<Frame> {
    let f = Frames::new();
    match flavor {
        Flavor::OpenAi | Flavor::Azure => openai_stream(f, reply, model, id, ask),
        Flavor::Anthropic => anthropic_stream(f, reply, model, id),
        Flavor::Bedrock => crate::wire_bedrock::converse_stream(f, reply),
        Flavor::Gemini | Flavor::Vertex => crate::wire_gemini::chat_stream(reply, model, id),
    }
}

/// The `content-type` of a streamed answer.
pub(crate) fn stream_content_type(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::OpenAi | Flavor::Anthropic | Flavor::Azure | Flavor::Gemini | Flavor::Vertex => {
            "text/event-stream"
        }
        Flavor::Bedrock => "application/vnd.amazon.eventstream",
    }
}

fn openai_stream(mut f: Frames, reply: &Reply, model: &str, id: u64, ask: &Ask) -> Vec<Frame> {
    let flavor = Flavor::OpenAi;
    let choice_chunk = |index: u32, delta: Value, finish: Value, logprobs: Value| {
        data(&json!({
            "id": format!("chatcmpl-fake-{id}"), "object": "chat.completion.chunk",
            "created": CREATED, "model": model, "system_fingerprint": "fp_fake",
            "choices": [{"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}],
        }))
    };
    let chunk = |delta: Value, finish: Value| choice_chunk(0, delta, finish, Value::Null);
    for i in 0..ask.n {
        f.push(choice_chunk(
            i,
            json!({"role": "assistant", "content": "", "refusal": null}),
            Value::Null,
            Value::Null,
        ));
    }
    for piece in &reply.pieces {
        for i in 0..ask.n {
            let logprobs = ask.logprobs_of([piece]);
            f.content(choice_chunk(
                i,
                json!({"content": piece}),
                Value::Null,
                logprobs,
            ));
        }
    }
    let mut finish = "stop";
    if let Some(call) = &reply.tool_call {
        finish = "tool_calls";
        f.content(chunk(
            json!({"tool_calls": [{"index": 0, "id": tool_id(flavor, reply), "type": "function",
                "function": {"name": call.name, "arguments": ""}}]}),
            Value::Null,
        ));
        let (a, b) = halves(&call.arguments.to_string());
        for part in [a, b] {
            f.push(chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": part}}]}),
                Value::Null,
            ));
        }
    }
    for i in 0..ask.n {
        f.push(choice_chunk(i, json!({}), json!(finish), Value::Null));
    }
    if let (true, Some(u)) = (ask.include_usage, reply.usage) {
        f.push(data(&json!({
            "id": format!("chatcmpl-fake-{id}"), "object": "chat.completion.chunk",
            "created": CREATED, "model": model, "system_fingerprint": "fp_fake",
            "choices": [], "usage": ask.usage_of(u),
        })));
    }
    f.finish(
        reply.ending,
        "data: [DONE]\n\n",
        "data: {\"id\": \"chatcmpl-fake\", \"choices\": [oops\n\n",
    )
}

fn anthropic_stream(mut f: Frames, reply: &Reply, model: &str, id: u64) -> Vec<Frame> {
    let flavor = Flavor::Anthropic;
    let mut message = json!({
        "id": format!("msg_fake_{id}"), "type": "message", "role": "assistant",
        "model": model, "content": [], "stop_reason": null, "stop_sequence": null,
    });
    if let Some(u) = reply.usage {
        message["usage"] = json!({"input_tokens": u.prompt_tokens, "output_tokens": 1});
    }
    f.push(event(
        "message_start",
        &json!({"type": "message_start", "message": message}),
    ));
    let mut index = 0;
    if !reply.pieces.is_empty() {
        f.push(event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index,
                "content_block": {"type": "text", "text": ""}}),
        ));
        f.push(event("ping", &json!({"type": "ping"})));
        for piece in &reply.pieces {
            f.content(event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index,
                    "delta": {"type": "text_delta", "text": piece}}),
            ));
        }
        f.push(event(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        ));
        index += 1;
    }
    let mut stop = "end_turn";
    if let Some(call) = &reply.tool_call {
        stop = "tool_use";
        f.content(event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index,
                "content_block": {"type": "tool_use", "id": tool_id(flavor, reply),
                    "name": call.name, "input": {}}}),
        ));
        let (a, b) = halves(&call.arguments.to_string());
        for part in [String::new(), a, b] {
            f.push(event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": part}}),
            ));
        }
        f.push(event(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        ));
    }
    let mut delta =
        json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}});
    if let Some(u) = reply.usage {
        delta["usage"] = json!({"output_tokens": u.completion_tokens});
    }
    f.push(event("message_delta", &delta));
    f.finish(
        reply.ending,
        event("message_stop", &json!({"type": "message_stop"})),
        "event: content_block_delta\ndata: {\"type\": \"content_block_delta\", oops\n\n",
    )
}

/// An error body in the flavor's shape, with the error type the real API uses for `status`.
pub(crate) fn error_body(flavor: Flavor, status: u16, message: &str) -> Value {
    match flavor {
        Flavor::Gemini | Flavor::Vertex => crate::wire_gemini::error_body(status, message, None),
        Flavor::OpenAi | Flavor::Azure => {
            let kind = match status {
                400 | 404 | 422 => "invalid_request_error",
                401 | 403 => "authentication_error",
                429 => "rate_limit_error",
                _ => "server_error",
            };
            json!({"error": {"message": message, "type": kind, "param": null, "code": null}})
        }
        Flavor::Anthropic => {
            let kind = match status {
                400 | 422 => "invalid_request_error",
                401 => "authentication_error",
                403 => "permission_error",
                404 => "not_found_error",
                413 => "request_too_large",
                429 => "rate_limit_error",
                529 => "overloaded_error",
                _ => "api_error",
            };
            json!({"type": "error", "error": {"type": kind, "message": message}})
        }
        // The error's type goes in the `x-amzn-ErrorType` header (`wire_bedrock::error_type`).
        Flavor::Bedrock => json!({"message": message}),
    }
}

/// An OpenAI embeddings answer: a small deterministic vector per input text.
pub(crate) fn embeddings_body(request: &Value) -> Value {
    let inputs: Vec<String> = match request.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items.iter().map(Value::to_string).collect(),
        _ => Vec::new(),
    };
    let model = request.get("model").and_then(Value::as_str).unwrap_or("");
    let tokens: usize = inputs.iter().map(|t| t.split_whitespace().count()).sum();
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let mut v = [0f32; 8];
            for (j, b) in text.bytes().enumerate() {
                v[j % 8] += f32::from(b) / 255.0;
            }
            json!({"object": "embedding", "index": i, "embedding": v})
        })
        .collect();
    json!({"object": "list", "data": data, "model": model,
           "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::behavior::Ending;

    fn text(frames: &[Frame]) -> String {
        frames
            .iter()
            .map(|f| match f {
                Frame::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
                Frame::Abort => "<abort>".into(),
            })
            .collect()
    }

    #[test]
    fn openai_stream_ends_with_usage_then_done_only_when_asked() {
        let reply = Reply::text("a b");
        let with = text(&chat_stream(
            Flavor::OpenAi,
            &reply,
            "m",
            1,
            &Ask::usage(true),
        ));
        assert!(
            with.ends_with("\"total_tokens\":14}}\n\ndata: [DONE]\n\n"),
            "{with}"
        );
        let without = text(&chat_stream(
            Flavor::OpenAi,
            &reply,
            "m",
            1,
            &Ask::usage(false),
        ));
        assert!(!without.contains("usage"));
    }

    #[test]
    fn breaks_come_after_the_first_content() {
        let reply = Reply::text("a b").ending(Ending::Abort);
        let frames = chat_stream(Flavor::OpenAi, &reply, "m", 1, &Ask::usage(true));
        assert_eq!(frames.len(), 3);
        assert!(text(&frames).contains("\"content\":\"a \""));
        assert!(matches!(frames[2], Frame::Abort));
        let reply = Reply::text("a b").ending(Ending::Malformed);
        let s = text(&chat_stream(
            Flavor::Anthropic,
            &reply,
            "m",
            1,
            &Ask::usage(true),
        ));
        let bad = s.find("oops").unwrap();
        assert!(s.find("\"a \"").unwrap() < bad && bad < s.find("\"b\"").unwrap());
        assert!(s.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
    }

    #[test]
    fn truncations_end_the_body_without_a_finish() {
        let reply = Reply::text("a b c").ending(Ending::Truncated);
        let s = text(&chat_stream(
            Flavor::OpenAi,
            &reply,
            "m",
            1,
            &Ask::usage(true),
        ));
        assert!(s.contains("\"a \"") && !s.contains("\"b \""), "{s}");
        assert!(
            !s.contains("finish_reason\":\"stop") && !s.contains("[DONE]"),
            "{s}"
        );
        let reply = Reply::text("a b c").ending(Ending::CutMidEvent);
        let s = text(&chat_stream(
            Flavor::OpenAi,
            &reply,
            "m",
            1,
            &Ask::usage(true),
        ));
        assert!(
            s.ends_with(|c: char| c != '\n') && s.matches("data: ").count() == 3,
            "{s}"
        );
        let reply = Reply::text("a b c").ending(Ending::CutAtStart);
        let s = text(&chat_stream(
            Flavor::Anthropic,
            &reply,
            "m",
            1,
            &Ask::usage(true),
        ));
        assert!(
            s.starts_with("event: message_start") && !s.contains("\n\n"),
            "{s}"
        );
    }

    #[test]
    fn tool_arguments_split_on_char_boundaries() {
        let (a, b) = halves("{\"é\":\"ü\"}");
        assert_eq!(format!("{a}{b}"), "{\"é\":\"ü\"}");
    }
}
