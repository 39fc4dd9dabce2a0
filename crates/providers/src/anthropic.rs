//! Anthropic's Messages API as a provider: HTTP, and the stream of Messages events read as
//! chat chunks. The request and answer translation, pure and shared with the gateway's own
//! `/v1/messages` endpoint, is `switchyard_api::anthropic::outbound` (what does not carry
//! over is listed there); a request it cannot express is [`ProviderError::Unsupported`].

use crate::sse::Event;
use async_trait::async_trait;
use futures::Stream;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use switchyard_api::anthropic::{
    finish_reason_of, outbound, AnthropicUsage, BlockDelta, MessageDeltaBody, MessagesResponse,
    ResponseBlock, StreamEvent,
};
use switchyard_api::{ChatCompletionChunk, ChatCompletionRequest};
use switchyard_control::{AnthropicSpec, Secret};

use crate::http;
use crate::translate::{self, OneChoice, Translate};
use crate::{unix_now, CallOptions, ChatProvider, ChatReply, ChunkStream, ProviderError};

pub struct AnthropicProvider {
    messages_url: reqwest::Url,
    /// `anthropic-version`, the configured headers and `x-api-key` (marked sensitive).
    headers: HeaderMap,
    default_max_tokens: u32,
    http: reqwest::Client,
}

impl AnthropicProvider {
    pub fn new(
        spec: &AnthropicSpec,
        key: Option<Secret>,
        http: reqwest::Client,
    ) -> Result<Self, String> {
        let base = http::base_url(&spec.base_url)?;
        let mut headers = http::header_map(&spec.headers)?;
        let version = HeaderValue::from_str(&spec.version)
            .map_err(|_| format!("version `{}` is not a valid header value", spec.version))?;
        headers.insert(HeaderName::from_static("anthropic-version"), version);
        if let Some(key) = key {
            headers.insert(
                HeaderName::from_static("x-api-key"),
                http::secret_value(key.expose())?,
            );
        }
        Ok(AnthropicProvider {
            messages_url: http::endpoint(&base, "/v1/messages")?,
            headers,
            default_max_tokens: spec.default_max_tokens,
            http,
        })
    }
}

#[async_trait]
impl ChatProvider for AnthropicProvider {
    fn kind(&self) -> &'static str {
        "anthropic"
    }

    fn server(&self) -> Option<(String, u16)> {
        crate::provider::server_of(&self.messages_url)
    }

    async fn chat_with(
        &self,
        request: ChatCompletionRequest,
        options: CallOptions,
    ) -> Result<ChatReply, ProviderError> {
        let streaming = request.is_stream();
        let body = outbound::to_messages(request, self.default_max_tokens)?;
        let response = http::post_json(
            &self.http,
            &self.messages_url,
            &self.headers,
            &options.trace,
            &body,
        )
        .await?;
        if streaming {
            let events = http::sse_events(response.bytes_stream());
            Ok(ChatReply::Stream(chunk_stream(events, unix_now())))
        } else {
            let reply: MessagesResponse = http::read_json(response).await?;
            Ok(ChatReply::Complete(outbound::to_chat_response(
                reply,
                unix_now(),
            )))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Anthropic stream events → OpenAI chunks.

/// Translates one Anthropic event stream into OpenAI chunks (the bookkeeping is
/// [`OneChoice`]'s):
/// 1. `message_start` gives the id, model and input tokens, and the first chunk (role).
/// 2. Text blocks become content deltas; each `tool_use` block gets the next OpenAI tool call
///    index, announced with its id and name, then fed by its `input_json_delta`s.
/// 3. `message_delta` gives the stop reason (the finish chunk) and the output tokens.
/// 4. `message_stop` ends the stream with a usage-only chunk (`choices: []`), as OpenAI does
///    when `include_usage` is set. EOF after step 3 is accepted as if `message_stop` came.
#[derive(Debug)]
struct Translator {
    choice: OneChoice,
    usage: AnthropicUsage,
}

impl Translator {
    fn new(created: i64) -> Self {
        Translator {
            choice: OneChoice::new(String::new(), String::new(), created),
            usage: AnthropicUsage::default(),
        }
    }

    /// The finish chunk; a stop sequence that ended the answer goes in its `stop_reason`.
    fn finish(&mut self, delta: &MessageDeltaBody) -> Option<ChatCompletionChunk> {
        let stop_reason = delta.stop_reason.as_deref()?;
        let mut chunk = self.choice.finish(finish_reason_of(stop_reason))?;
        if stop_reason == "stop_sequence" {
            if let (Some(choice), Some(stop)) =
                (chunk.choices.first_mut(), delta.stop_sequence.clone())
            {
                choice.stop_reason = Some(Value::String(stop));
            }
        }
        Some(chunk)
    }

    fn on_message(
        &mut self,
        event: StreamEvent,
    ) -> Result<Vec<ChatCompletionChunk>, ProviderError> {
        let mut out = Vec::new();
        match event {
            StreamEvent::MessageStart { message } => {
                self.choice.id = message.id;
                self.choice.model = message.model;
                if let Some(usage) = &message.usage {
                    self.usage.update(usage);
                }
                out.push(self.choice.role());
            }
            StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => match content_block {
                ResponseBlock::Text { text } => out.extend(self.choice.text(text)),
                ResponseBlock::ToolUse { id, name, .. } => {
                    out.push(self.choice.tool_start(index, id, name));
                }
                ResponseBlock::Other => {}
            },
            StreamEvent::ContentBlockDelta { index, delta } => match delta {
                BlockDelta::TextDelta { text } => out.extend(self.choice.text(text)),
                BlockDelta::InputJsonDelta { partial_json } => {
                    out.extend(self.choice.tool_arguments(index, partial_json)?);
                }
                _ => {}
            },
            StreamEvent::MessageDelta { delta, usage } => {
                if let Some(usage) = &usage {
                    self.usage.update(usage);
                }
                out.extend(self.finish(&delta));
            }
            StreamEvent::MessageStop {} => out.extend(self.choice.close(self.usage.to_openai())),
            StreamEvent::Error { error } => {
                return Err(ProviderError::Stream(http::error_message(&error)));
            }
            StreamEvent::ContentBlockStop { .. } | StreamEvent::Ping {} | StreamEvent::Unknown => {}
        }
        Ok(out)
    }

    fn on_sse(&mut self, event: &Event) -> Result<Vec<ChatCompletionChunk>, ProviderError> {
        if event.data.trim().is_empty() {
            return Ok(Vec::new());
        }
        let parsed: StreamEvent = serde_json::from_str(&event.data)
            .map_err(|e| http::decode_error("a stream event", e, event.data.as_bytes()))?;
        self.on_message(parsed)
    }
}

impl Translate for Translator {
    type Event = Event;

    fn on_event(&mut self, event: Event) -> Result<Vec<ChatCompletionChunk>, ProviderError> {
        self.on_sse(&event)
    }

    /// The body ended without `message_stop`.
    fn on_eof(&mut self) -> Result<Vec<ChatCompletionChunk>, ProviderError> {
        self.choice.eof(self.usage.to_openai())
    }

    fn done(&self) -> bool {
        self.choice.done()
    }
}

/// The chunks of a response's SSE events.
pub(crate) fn chunk_stream<S>(events: S, created: i64) -> ChunkStream
where
    S: Stream<Item = Result<Event, ProviderError>> + Send + 'static,
{
    translate::chunk_stream(events, Translator::new(created))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use serde_json::json;

    /// Feeds events (then EOF if `eof`) to a translator ([`translate::feed_sse`]).
    fn check_stream(events: Value, eof: bool, expected: Value) {
        let out = translate::feed_sse(Translator::new(7), &events, eof);
        assert_eq!(Value::Array(out), expected, "for {events}");
    }

    fn chunk(delta: Value, finish: Value) -> Value {
        json!({"id": "msg_1", "object": "chat.completion.chunk", "created": 7, "model": "claude",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    }

    fn usage_chunk(prompt: u32, completion: u32) -> Value {
        json!({"id": "msg_1", "object": "chat.completion.chunk", "created": 7, "model": "claude",
               "choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
               "total_tokens": prompt + completion}})
    }

    fn start(usage: Value) -> Value {
        json!({"type": "message_start", "message": {"id": "msg_1", "type": "message",
               "role": "assistant", "model": "claude", "content": [], "stop_reason": null,
               "usage": usage}})
    }

    #[test]
    fn stream_events() {
        let role = || chunk(json!({"role": "assistant", "content": ""}), Value::Null);
        let text = |t: &str| chunk(json!({"content": t}), Value::Null);
        let cases = [
            // Text, with ping and block stop ignored.
            (
                json!([start(json!({"input_tokens": 25, "output_tokens": 1})),
                    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                    {"type": "ping"},
                    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}},
                    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo"}},
                    {"type": "content_block_stop", "index": 0},
                    {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                     "usage": {"output_tokens": 15}},
                    {"type": "message_stop"}]),
                true,
                json!([
                    role(),
                    text("Hel"),
                    text("lo"),
                    chunk(json!({}), json!("stop")),
                    usage_chunk(25, 15)
                ]),
            ),
            // Text then two tool calls; OpenAI indices count tool calls only.
            (
                json!([start(json!({"input_tokens": 5, "output_tokens": 1, "cache_read_input_tokens": 5})),
                    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": "Hi"}},
                    {"type": "content_block_stop", "index": 0},
                    {"type": "content_block_start", "index": 1, "content_block":
                        {"type": "tool_use", "id": "toolu_a", "name": "f", "input": {}}},
                    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}},
                    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"a\":"}},
                    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "1}"}},
                    {"type": "content_block_stop", "index": 1},
                    {"type": "content_block_start", "index": 2, "content_block":
                        {"type": "tool_use", "id": "toolu_b", "name": "g", "input": {}}},
                    {"type": "content_block_stop", "index": 2},
                    {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}},
                    {"type": "message_stop"}]),
                true,
                json!([role(), text("Hi"),
                    chunk(json!({"tool_calls": [{"index": 0, "id": "toolu_a", "type": "function",
                        "function": {"name": "f", "arguments": ""}}]}), Value::Null),
                    chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":"}}]}), Value::Null),
                    chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}), Value::Null),
                    chunk(json!({"tool_calls": [{"index": 1, "id": "toolu_b", "type": "function",
                        "function": {"name": "g", "arguments": ""}}]}), Value::Null),
                    chunk(json!({}), json!("tool_calls")),
                    {"id": "msg_1", "object": "chat.completion.chunk", "created": 7, "model": "claude",
                     "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 9,
                     "total_tokens": 19, "prompt_tokens_details": {"cached_tokens": 5}}}]),
            ),
            // max_tokens; EOF right after message_delta is accepted; unknown events ignored.
            (
                json!([start(json!({"input_tokens": 2, "output_tokens": 1})),
                    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "a"}},
                    {"type": "some_future_event", "x": 1},
                    {"type": "message_delta", "delta": {"stop_reason": "max_tokens"}, "usage": {"output_tokens": 4}}]),
                true,
                json!([
                    role(),
                    text("a"),
                    chunk(json!({}), json!("length")),
                    usage_chunk(2, 4)
                ]),
            ),
            // A stop sequence: named in the finish chunk's `stop_reason`.
            (
                json!([start(Value::Null),
                    {"type": "message_delta", "delta": {"stop_reason": "stop_sequence", "stop_sequence": "END"}},
                    {"type": "message_stop"}]),
                false,
                json!([role(), {"id": "msg_1", "object": "chat.completion.chunk", "created": 7,
                    "model": "claude", "choices": [{"index": 0, "delta": {},
                    "finish_reason": "stop", "stop_reason": "END"}]}]),
            ),
            // No usage anywhere: no usage chunk.
            (
                json!([start(Value::Null),
                    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "a"}},
                    {"type": "message_delta", "delta": {"stop_reason": "refusal"}},
                    {"type": "message_stop"}]),
                false,
                json!([role(), text("a"), chunk(json!({}), json!("content_filter"))]),
            ),
            // An error event mid-stream.
            (
                json!([start(json!({"input_tokens": 2})),
                    {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}]),
                false,
                json!([role(), {"err": "stream"}]),
            ),
            // EOF before the message was complete, and before anything.
            (
                json!([start(json!({"input_tokens": 2})),
                    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "a"}}]),
                true,
                json!([role(), text("a"), {"err": "stream"}]),
            ),
            (json!([]), true, json!([{"err": "stream"}])),
            // Malformed events.
            (json!(["not an object"]), false, json!([{"err": "decode"}])),
            (
                json!([start(json!({})),
                    {"type": "content_block_delta", "index": 3, "delta": {"type": "input_json_delta", "partial_json": "{"}}]),
                false,
                json!([role(), {"err": "decode"}]),
            ),
        ];
        for (events, eof, expected) in cases {
            check_stream(events, eof, expected);
        }
    }

    /// The two stream directions agree: chunks written as Messages events by the gateway's
    /// `/v1/messages` (`inbound::EventWriter`) and read back by this provider amount to the
    /// same answer: text, tool calls, finish reason, stop sequence and usage.
    #[test]
    fn streams_survive_the_round_trip() {
        use switchyard_api::anthropic::inbound::EventWriter;
        use switchyard_api::ChunkAssembler;
        let chunk = |delta: Value, finish: Value, stop: Value| -> ChatCompletionChunk {
            serde_json::from_value(json!({"id": "msg_1", "created": 7, "model": "claude",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "stop_reason": stop}]}))
            .unwrap()
        };
        let streams = [
            vec![
                chunk(
                    json!({"role": "assistant", "content": ""}),
                    Value::Null,
                    Value::Null,
                ),
                chunk(json!({"content": "Hel"}), Value::Null, Value::Null),
                chunk(json!({"content": "lo"}), Value::Null, Value::Null),
                chunk(json!({}), json!("stop"), json!("END")),
            ],
            vec![
                chunk(
                    json!({"role": "assistant", "content": "Let me look."}),
                    Value::Null,
                    Value::Null,
                ),
                chunk(
                    json!({"tool_calls": [{"index": 0, "id": "t1", "type": "function",
                    "function": {"name": "f", "arguments": "{\"a\":"}}]}),
                    Value::Null,
                    Value::Null,
                ),
                chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
                    Value::Null,
                    Value::Null,
                ),
                chunk(
                    json!({"tool_calls": [{"index": 1, "id": "t2", "type": "function",
                    "function": {"name": "g", "arguments": "{}"}}]}),
                    Value::Null,
                    Value::Null,
                ),
                chunk(json!({}), json!("tool_calls"), Value::Null),
            ],
        ];
        for chunks in streams {
            let usage = switchyard_api::Usage::new(12, 5);
            let mut expected = ChunkAssembler::new();
            let mut writer = EventWriter::new();
            let mut events = Vec::new();
            for c in &chunks {
                expected.push(c);
                events.extend(writer.chunk(c));
            }
            writer.usage(usage.clone());
            events.extend(writer.finish());
            let mut translator = Translator::new(7);
            let mut got = ChunkAssembler::new();
            for event in &events {
                let sse = Event {
                    event: event.name().to_owned(),
                    data: serde_json::to_string(event).unwrap(),
                    ..Event::default()
                };
                for c in translator.on_sse(&sse).unwrap() {
                    got.push(&c);
                }
            }
            assert!(translator.on_eof().unwrap().is_empty());
            let mut expected = expected.finish();
            expected.usage = Some(usage);
            assert_eq!(got.finish(), expected, "for {events:?}");
        }
    }

    #[tokio::test]
    async fn stream_over_sse_bytes() {
        let sse = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n\
                   event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"ok\"}}\n\n\
                   event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":2}}\n\n\
                   event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
        let body = futures::stream::iter(vec![Ok::<_, reqwest::Error>(bytes::Bytes::from_static(
            sse.as_bytes(),
        ))]);
        let chunks: Vec<_> = chunk_stream(http::sse_events(body), 7)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .map(|r| serde_json::to_value(r.unwrap()).unwrap())
            .collect();
        assert_eq!(
            Value::Array(chunks),
            json!([
                chunk(json!({"role": "assistant", "content": ""}), Value::Null),
                chunk(json!({"content": "ok"}), Value::Null),
                chunk(json!({}), json!("stop")),
                usage_chunk(3, 2),
            ])
        );
    }

    #[test]
    fn construction_hides_the_key() {
        let spec = AnthropicSpec {
            base_url: "http://h/".into(),
            api_key_env: None,
            version: "2023-06-01".into(),
            headers: vec![],
            connect_timeout: std::time::Duration::from_secs(1),
            default_max_tokens: 1024,
        };
        let p = AnthropicProvider::new(&spec, Some(Secret::new("sk-1")), reqwest::Client::new())
            .unwrap();
        assert_eq!(p.messages_url.as_str(), "http://h/v1/messages");
        assert!(!format!("{:?}", p.headers).contains("sk-1"));
        let err = AnthropicProvider::new(&spec, Some(Secret::new("sk\n1")), reqwest::Client::new())
            .err()
            .unwrap();
        assert!(!err.contains("sk"), "{err}");
    }
}
