//! Anthropic's Messages API as a provider: HTTP, and the stream of Messages events read as
//! chat chunks. The request and answer translation, pure and shared with the gateway's own
//! `/v1/messages` endpoint, is `switchyard_api::anthropic::outbound` (what does not carry
//! over is listed there); a request it cannot express is [`ProviderError::Unsupported`].

use std::collections::BTreeMap;
use std::pin::Pin;

use async_trait::async_trait;
use eventsource_stream::Event;
use futures::{Stream, StreamExt};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use switchyard_api::anthropic::{
    finish_reason_of, outbound, AnthropicUsage, BlockDelta, MessageDeltaBody, MessagesResponse,
    ResponseBlock, StreamEvent,
};
use switchyard_api::{
    finish_reason, ChatCompletionChunk, ChatCompletionRequest, ChunkChoice, Delta,
    EmbeddingsRequest, EmbeddingsResponse, Extra, FunctionCallDelta, Role, ToolCallDelta,
};
use switchyard_control::{AnthropicSpec, Secret};

use crate::http;
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

    async fn embed(
        &self,
        _request: EmbeddingsRequest,
    ) -> Result<EmbeddingsResponse, ProviderError> {
        Err(ProviderError::unsupported(
            Some("model"),
            "anthropic has no embeddings API",
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Anthropic stream events → OpenAI chunks.

/// Translates one Anthropic event stream into OpenAI chunks:
/// 1. `message_start` gives the id, model and input tokens, and the first chunk (role).
/// 2. Text blocks become content deltas; each `tool_use` block gets the next OpenAI tool call
///    index, announced with its id and name, then fed by its `input_json_delta`s.
/// 3. `message_delta` gives the stop reason (the finish chunk) and the output tokens.
/// 4. `message_stop` ends the stream with a usage-only chunk (`choices: []`), as OpenAI does
///    when `include_usage` is set. EOF after step 3 is accepted as if `message_stop` came.
#[derive(Debug)]
struct Translator {
    id: String,
    model: String,
    created: i64,
    usage: AnthropicUsage,
    /// Anthropic block index → OpenAI tool call index.
    tool_index: BTreeMap<u32, u32>,
    started: bool,
    finish_sent: bool,
    done: bool,
}

impl Translator {
    fn new(created: i64) -> Self {
        Translator {
            id: String::new(),
            model: String::new(),
            created,
            usage: AnthropicUsage::default(),
            tool_index: BTreeMap::new(),
            started: false,
            finish_sent: false,
            done: false,
        }
    }

    fn chunk(&self, delta: Delta, finish: Option<&str>) -> ChatCompletionChunk {
        ChatCompletionChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".into(),
            created: self.created,
            model: self.model.clone(),
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                finish_reason: finish.map(str::to_owned),
                logprobs: None,
                stop_reason: None,
            }],
            usage: None,
            system_fingerprint: None,
            extra: Extra::new(),
        }
    }

    fn text(&self, text: String) -> ChatCompletionChunk {
        self.chunk(
            Delta {
                content: Some(text),
                ..Delta::default()
            },
            None,
        )
    }

    fn tool_delta(&self, delta: ToolCallDelta) -> ChatCompletionChunk {
        self.chunk(
            Delta {
                tool_calls: Some(vec![delta]),
                ..Delta::default()
            },
            None,
        )
    }

    /// The finish chunk; a stop sequence that ended the answer goes in its `stop_reason`.
    fn finish(&mut self, delta: Option<&MessageDeltaBody>) -> ChatCompletionChunk {
        self.finish_sent = true;
        let stop_reason = delta.and_then(|d| d.stop_reason.as_deref());
        let reason = stop_reason.map_or(finish_reason::STOP, finish_reason_of);
        let mut chunk = self.chunk(Delta::default(), Some(reason));
        if stop_reason == Some("stop_sequence") {
            if let (Some(choice), Some(stop)) = (
                chunk.choices.first_mut(),
                delta.and_then(|d| d.stop_sequence.clone()),
            ) {
                choice.stop_reason = Some(Value::String(stop));
            }
        }
        chunk
    }

    /// The closing chunks: a finish chunk if none was sent, then usage if any was reported.
    fn close(&mut self, out: &mut Vec<ChatCompletionChunk>) {
        self.done = true;
        if !self.finish_sent {
            out.push(self.finish(None));
        }
        if let Some(usage) = self.usage.to_openai() {
            let mut chunk = self.chunk(Delta::default(), None);
            chunk.choices.clear();
            chunk.usage = Some(usage);
            out.push(chunk);
        }
    }

    fn on_event(&mut self, event: StreamEvent) -> Result<Vec<ChatCompletionChunk>, ProviderError> {
        let mut out = Vec::new();
        match event {
            StreamEvent::MessageStart { message } => {
                self.started = true;
                self.id = message.id;
                self.model = message.model;
                if let Some(usage) = &message.usage {
                    self.usage.update(usage);
                }
                out.push(self.chunk(
                    Delta {
                        role: Some(Role::Assistant),
                        content: Some(String::new()),
                        ..Delta::default()
                    },
                    None,
                ));
            }
            StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => match content_block {
                ResponseBlock::Text { text } if !text.is_empty() => out.push(self.text(text)),
                ResponseBlock::ToolUse { id, name, .. } => {
                    let openai_index = self.tool_index.len() as u32;
                    self.tool_index.insert(index, openai_index);
                    out.push(self.tool_delta(ToolCallDelta {
                        index: openai_index,
                        id: Some(id),
                        kind: Some("function".into()),
                        function: Some(FunctionCallDelta {
                            name: Some(name),
                            arguments: Some(String::new()),
                        }),
                    }));
                }
                _ => {}
            },
            StreamEvent::ContentBlockDelta { index, delta } => match delta {
                BlockDelta::TextDelta { text } if !text.is_empty() => out.push(self.text(text)),
                BlockDelta::InputJsonDelta { partial_json } if !partial_json.is_empty() => {
                    let openai_index = self.tool_index.get(&index).copied().ok_or_else(|| {
                        ProviderError::Decode(format!(
                            "input_json_delta for block {index}, which is not a tool_use block"
                        ))
                    })?;
                    out.push(self.tool_delta(ToolCallDelta {
                        index: openai_index,
                        id: None,
                        kind: None,
                        function: Some(FunctionCallDelta {
                            name: None,
                            arguments: Some(partial_json),
                        }),
                    }));
                }
                _ => {}
            },
            StreamEvent::MessageDelta { delta, usage } => {
                if let Some(usage) = &usage {
                    self.usage.update(usage);
                }
                if !self.finish_sent && delta.stop_reason.is_some() {
                    out.push(self.finish(Some(&delta)));
                }
            }
            StreamEvent::MessageStop {} => self.close(&mut out),
            StreamEvent::Error { error } => {
                return Err(ProviderError::Stream(http::error_message(&error)));
            }
            StreamEvent::ContentBlockStop { .. } | StreamEvent::Ping {} | StreamEvent::Unknown => {}
        }
        Ok(out)
    }

    /// The body ended without `message_stop`.
    fn on_eof(&mut self) -> Result<Vec<ChatCompletionChunk>, ProviderError> {
        if self.done {
            return Ok(Vec::new());
        }
        if self.finish_sent {
            let mut out = Vec::new();
            self.close(&mut out);
            return Ok(out);
        }
        Err(ProviderError::Stream(if self.started {
            "the upstream ended the stream before the message was complete".into()
        } else {
            "the upstream ended the stream before any event".into()
        }))
    }

    fn on_sse(&mut self, event: &Event) -> Result<Vec<ChatCompletionChunk>, ProviderError> {
        if event.data.trim().is_empty() {
            return Ok(Vec::new());
        }
        let parsed: StreamEvent = serde_json::from_str(&event.data)
            .map_err(|e| http::decode_error("a stream event", e, event.data.as_bytes()))?;
        self.on_event(parsed)
    }
}

/// Runs the translator over the SSE events of a response. An error item ends the stream; the
/// stream owns the response, so dropping it closes the upstream connection.
pub(crate) fn chunk_stream<S>(events: S, created: i64) -> ChunkStream
where
    S: Stream<Item = Result<Event, ProviderError>> + Send + 'static,
{
    struct State<S> {
        events: Pin<Box<S>>,
        translator: Translator,
        pending: std::collections::VecDeque<ChatCompletionChunk>,
        failed: bool,
    }

    let state = State {
        events: Box::pin(events),
        translator: Translator::new(created),
        pending: Default::default(),
        failed: false,
    };
    Box::pin(futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(chunk) = st.pending.pop_front() {
                return Some((Ok(chunk), st));
            }
            if st.failed || st.translator.done {
                return None;
            }
            let result = match st.events.next().await {
                None => st.translator.on_eof(),
                Some(Ok(event)) => st.translator.on_sse(&event),
                Some(Err(e)) => Err(e),
            };
            match result {
                Ok(chunks) => st.pending.extend(chunks),
                Err(e) => {
                    st.failed = true;
                    return Some((Err(e), st));
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Feeds events (then EOF if `eof`) to a translator; each output is a chunk as JSON or
    /// `{"err": kind}`, after which nothing more is fed.
    fn check_stream(events: Value, eof: bool, expected: Value) {
        let mut t = Translator::new(7);
        let mut out = Vec::new();
        let mut failed = false;
        for e in events.as_array().unwrap() {
            let event = Event {
                data: e.to_string(),
                ..Event::default()
            };
            match t.on_sse(&event) {
                Ok(chunks) => out.extend(chunks.iter().map(|c| serde_json::to_value(c).unwrap())),
                Err(e) => {
                    out.push(json!({"err": e.kind()}));
                    failed = true;
                    break;
                }
            }
        }
        if eof && !failed {
            match t.on_eof() {
                Ok(chunks) => out.extend(chunks.iter().map(|c| serde_json::to_value(c).unwrap())),
                Err(e) => out.push(json!({"err": e.kind()})),
            }
        }
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
