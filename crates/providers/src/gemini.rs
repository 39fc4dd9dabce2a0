//! Google's Gemini API as a provider: HTTP (`generateContent`,
//! `streamGenerateContent?alt=sse`, the key in `x-goog-api-key`), and the stream of answer
//! objects read as chat chunks. The translation, pure, is `switchyard_api::gemini::outbound`
//! (what does not carry over is listed there). Vertex AI serves the same API for Gemini
//! models: `vertex` calls [`generate`] with its own URL and token.

use std::collections::BTreeMap;

use crate::sse::Event;
use async_trait::async_trait;
use futures::Stream;
use reqwest::header::{HeaderMap, HeaderName};
use serde_json::Value;
use switchyard_api::gemini::{
    finish_reason_of, outbound, tool_call_id, GenerateContentResponse, UsageMetadata,
};
use switchyard_api::{
    ChatCompletionChunk, ChatCompletionRequest, ChunkChoice, Delta, FunctionCallDelta, Role,
    ToolCallDelta,
};
use switchyard_control::{GeminiSpec, Secret};

use crate::http;
use crate::translate::{self, Translate};
use crate::{unix_now, CallOptions, ChatProvider, ChatReply, ChunkStream, ProviderError};

pub struct GeminiProvider {
    /// `{base_url}/v1beta/models`.
    models: reqwest::Url,
    /// The configured headers and `x-goog-api-key` (sensitive).
    headers: HeaderMap,
    http: reqwest::Client,
}

impl GeminiProvider {
    pub fn new(
        spec: &GeminiSpec,
        key: Option<Secret>,
        http: reqwest::Client,
    ) -> Result<Self, String> {
        let base = http::base_url(&spec.base_url)?;
        let mut headers = http::header_map(&spec.headers)?;
        if let Some(key) = key {
            headers.insert(
                HeaderName::from_static("x-goog-api-key"),
                http::secret_value(key.expose())?,
            );
        }
        Ok(GeminiProvider {
            models: http::endpoint(&base, "/v1beta/models")?,
            headers,
            http,
        })
    }
}

#[async_trait]
impl ChatProvider for GeminiProvider {
    fn kind(&self) -> &'static str {
        "gemini"
    }

    /// `n` is Gemini's `candidateCount`.
    fn native_choices(&self) -> bool {
        true
    }

    fn server(&self) -> Option<(String, u16)> {
        crate::provider::server_of(&self.models)
    }

    async fn chat_with(
        &self,
        request: ChatCompletionRequest,
        options: CallOptions,
    ) -> Result<ChatReply, ProviderError> {
        generate(
            &self.http,
            &self.models,
            &self.headers,
            &options.trace,
            request,
        )
        .await
    }
}

/// `{models}/{model}:{method}`, the model one escaped path segment.
pub(crate) fn model_url(
    models: &reqwest::Url,
    model: &str,
    method: &str,
) -> Result<reqwest::Url, ProviderError> {
    let mut url = models.clone();
    url.path_segments_mut()
        .map_err(|()| ProviderError::Connect("the base URL cannot take a path".into()))?
        .push(&format!("{model}:{method}"));
    Ok(url)
}

/// One Gemini call: `request` translated, sent to `{models}/{model}:generateContent` (or
/// `:streamGenerateContent?alt=sse` when streamed), the answer read back as chat. `trace` is
/// the call's trace headers ([`CallOptions::trace`]).
pub(crate) async fn generate(
    http: &reqwest::Client,
    models: &reqwest::Url,
    headers: &HeaderMap,
    trace: &HeaderMap,
    request: ChatCompletionRequest,
) -> Result<ChatReply, ProviderError> {
    let streaming = request.is_stream();
    let model = request.model.clone();
    let body = outbound::to_gemini(request)?;
    if streaming {
        let mut url = model_url(models, &model, "streamGenerateContent")?;
        url.query_pairs_mut().append_pair("alt", "sse");
        let response = http::post_json(http, &url, headers, trace, &body).await?;
        let events = http::sse_events(response.bytes_stream());
        Ok(ChatReply::Stream(chunk_stream(events, model, unix_now())))
    } else {
        let url = model_url(models, &model, "generateContent")?;
        let response = http::post_json(http, &url, headers, trace, &body).await?;
        let reply: GenerateContentResponse = http::read_json(response).await?;
        Ok(ChatReply::Complete(outbound::to_chat_response(
            reply,
            &model,
            unix_now(),
        )))
    }
}

// ---------------------------------------------------------------------------------------------
// Gemini stream events → OpenAI chunks.

/// One candidate's progress.
#[derive(Debug, Default)]
struct CandidateState {
    /// Function calls seen: the next call's OpenAI index.
    calls: u32,
    finished: bool,
}

/// Translates a Gemini stream into OpenAI chunks. Each event is a whole answer object
/// holding what is new:
/// 1. A candidate seen for the first time opens with a role chunk for its choice.
/// 2. Its text parts become content deltas (thinking parts are skipped); each function call
///    part, which Gemini sends whole, becomes one tool call delta with the next index and a
///    stable id.
/// 3. Its `finishReason` gives the choice's finish chunk (`tool_calls` when it called).
/// 4. `usageMetadata` is kept as it grows; Gemini has no terminator, so the end of the body
///    ends the stream: complete when every candidate seen has finished (then the usage
///    chunk, if any usage came), else an error: the answer was cut short.
#[derive(Debug)]
struct Translator {
    id: String,
    model: String,
    created: i64,
    usage: Option<UsageMetadata>,
    candidates: BTreeMap<u32, CandidateState>,
    /// The body has ended: nothing more is read.
    ended: bool,
}

impl Translator {
    fn new(model: String, created: i64) -> Self {
        Translator {
            id: String::new(),
            model,
            created,
            usage: None,
            candidates: BTreeMap::new(),
            ended: false,
        }
    }

    fn chunk(&self, index: u32, delta: Delta, finish: Option<&str>) -> ChatCompletionChunk {
        let mut chunk = translate::usage_chunk(&self.id, &self.model, self.created, None);
        chunk.choices.push(ChunkChoice {
            index,
            delta,
            finish_reason: finish.map(str::to_owned),
            logprobs: None,
            stop_reason: None,
        });
        chunk
    }

    fn on_answer(&mut self, answer: GenerateContentResponse) -> Vec<ChatCompletionChunk> {
        let mut out = Vec::new();
        if self.id.is_empty() {
            self.id = answer.response_id.clone().unwrap_or_default();
        }
        if let Some(version) = &answer.model_version {
            self.model.clone_from(version);
        }
        if let Some(usage) = answer.usage_metadata {
            self.usage = Some(usage);
        }
        let blocked = answer
            .prompt_feedback
            .as_ref()
            .is_some_and(|f| f.block_reason.is_some());
        if answer.candidates.is_empty() && blocked {
            self.open(0, &mut out);
            self.finish(0, "SAFETY", &mut out);
        }
        for (position, candidate) in answer.candidates.into_iter().enumerate() {
            let index = candidate.index.unwrap_or(position as u32);
            self.open(index, &mut out);
            for part in candidate.content.map(|c| c.parts).unwrap_or_default() {
                if part.thought == Some(true) {
                    continue;
                }
                if let Some(text) = part.text.filter(|t| !t.is_empty()) {
                    let delta = Delta {
                        content: Some(text),
                        ..Delta::default()
                    };
                    out.push(self.chunk(index, delta, None));
                }
                if let Some(call) = part.function_call {
                    let state = self.candidates.entry(index).or_default();
                    let call_index = state.calls;
                    state.calls += 1;
                    let delta = Delta {
                        tool_calls: Some(vec![ToolCallDelta {
                            index: call_index,
                            id: Some(tool_call_id(&call, index, call_index as usize)),
                            kind: Some("function".into()),
                            function: Some(FunctionCallDelta {
                                name: Some(call.name),
                                arguments: Some(call.args.to_string()),
                            }),
                        }]),
                        ..Delta::default()
                    };
                    out.push(self.chunk(index, delta, None));
                }
            }
            if let Some(reason) = candidate.finish_reason {
                self.finish(index, &reason, &mut out);
            }
        }
        out
    }

    /// The role chunk of a candidate not seen before.
    fn open(&mut self, index: u32, out: &mut Vec<ChatCompletionChunk>) {
        if self.candidates.contains_key(&index) {
            return;
        }
        self.candidates.insert(index, CandidateState::default());
        let delta = Delta {
            role: Some(Role::Assistant),
            content: Some(String::new()),
            ..Delta::default()
        };
        out.push(self.chunk(index, delta, None));
    }

    fn finish(&mut self, index: u32, reason: &str, out: &mut Vec<ChatCompletionChunk>) {
        let state = self.candidates.entry(index).or_default();
        if state.finished {
            return;
        }
        state.finished = true;
        let finish = finish_reason_of(reason, state.calls > 0);
        out.push(self.chunk(index, Delta::default(), Some(finish)));
    }

    /// The end of the body, which is the end of the stream (Gemini has no terminator).
    fn end(&mut self) -> Result<Vec<ChatCompletionChunk>, ProviderError> {
        self.ended = true;
        let complete = !self.candidates.is_empty() && self.candidates.values().all(|c| c.finished);
        if !complete {
            return Err(ProviderError::Stream(if self.candidates.is_empty() {
                "the upstream ended the stream before any answer".into()
            } else {
                "the upstream ended the stream before the answer was complete (no finishReason)"
                    .into()
            }));
        }
        let mut out = Vec::new();
        if let Some(usage) = self.usage.as_ref().and_then(UsageMetadata::to_openai) {
            out.push(translate::usage_chunk(
                &self.id,
                &self.model,
                self.created,
                Some(usage),
            ));
        }
        Ok(out)
    }

    fn on_sse(&mut self, event: &Event) -> Result<Vec<ChatCompletionChunk>, ProviderError> {
        let data = event.data.trim();
        if data.is_empty() {
            return Ok(Vec::new());
        }
        let value: Value = serde_json::from_str(data)
            .map_err(|e| http::decode_error("a stream event", e, data.as_bytes()))?;
        if let Some(error) = value.get("error").filter(|e| !e.is_null()) {
            return Err(ProviderError::Stream(http::error_message(error)));
        }
        let answer: GenerateContentResponse = serde_json::from_value(value)
            .map_err(|e| http::decode_error("a stream event", e, data.as_bytes()))?;
        Ok(self.on_answer(answer))
    }
}

impl Translate for Translator {
    type Event = Event;

    fn on_event(&mut self, event: Event) -> Result<Vec<ChatCompletionChunk>, ProviderError> {
        self.on_sse(&event)
    }

    fn on_eof(&mut self) -> Result<Vec<ChatCompletionChunk>, ProviderError> {
        self.end()
    }

    fn done(&self) -> bool {
        self.ended
    }
}

/// Runs the translator over the SSE events of a response ([`translate::chunk_stream`]).
pub(crate) fn chunk_stream<S>(events: S, model: String, created: i64) -> ChunkStream
where
    S: Stream<Item = Result<Event, ProviderError>> + Send + 'static,
{
    translate::chunk_stream(events, Translator::new(model, created))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Feeds events then EOF to a translator ([`translate::feed_sse`]).
    fn check_stream(events: Value, expected: Value) {
        let out = translate::feed_sse(Translator::new("asked".into(), 7), &events, true);
        assert_eq!(Value::Array(out), expected, "for {events}");
    }

    fn chunk(index: u32, delta: Value, finish: Value) -> Value {
        json!({"id": "r1", "object": "chat.completion.chunk", "created": 7, "model": "gemini-2.5",
               "choices": [{"index": index, "delta": delta, "finish_reason": finish}]})
    }

    fn answer(candidates: Value, usage: Value) -> Value {
        let mut v =
            json!({"candidates": candidates, "modelVersion": "gemini-2.5", "responseId": "r1"});
        if !usage.is_null() {
            v["usageMetadata"] = usage;
        }
        v
    }

    fn text(index: u32, t: &str, finish: Value) -> Value {
        let mut c = json!({"content": {"role": "model", "parts": [{"text": t}]}, "index": index});
        if !finish.is_null() {
            c["finishReason"] = finish;
        }
        c
    }

    #[test]
    fn stream_events() {
        let role = |i| chunk(i, json!({"role": "assistant", "content": ""}), Value::Null);
        let delta = |i, t: &str| chunk(i, json!({"content": t}), Value::Null);
        let call_id = tool_call_id(
            &serde_json::from_value(json!({"name": "f", "args": {"a": 1}})).unwrap(),
            0,
            0,
        );
        let cases = [
            // Text, then the finish with usage (cached and thinking tokens).
            (
                json!([
                    answer(
                        json!([text(0, "Hel", Value::Null)]),
                        json!({"promptTokenCount": 9})
                    ),
                    answer(
                        json!([text(0, "lo", json!("STOP"))]),
                        json!({"promptTokenCount": 9, "candidatesTokenCount": 2,
                                  "cachedContentTokenCount": 4, "thoughtsTokenCount": 3})
                    )
                ]),
                json!([role(0), delta(0, "Hel"), delta(0, "lo"), chunk(0, json!({}), json!("stop")),
                    {"id": "r1", "object": "chat.completion.chunk", "created": 7, "model": "gemini-2.5",
                     "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14,
                     "prompt_tokens_details": {"cached_tokens": 4},
                     "completion_tokens_details": {"reasoning_tokens": 3}}}]),
            ),
            // A function call, whole in one event; STOP after a call is `tool_calls`.
            (
                json!([
                    answer(
                        json!([{"content": {"parts": [{"functionCall": {"name": "f", "args": {"a": 1}}}]}}]),
                        Value::Null
                    ),
                    answer(json!([text(0, "", json!("STOP"))]), Value::Null)
                ]),
                json!([
                    role(0),
                    chunk(
                        0,
                        json!({"tool_calls": [{"index": 0, "id": call_id, "type": "function",
                        "function": {"name": "f", "arguments": "{\"a\":1}"}}]}),
                        Value::Null
                    ),
                    chunk(0, json!({}), json!("tool_calls"))
                ]),
            ),
            // Two candidates, each finishing its own way.
            (
                json!([
                    answer(
                        json!([text(0, "a", Value::Null), text(1, "b", json!("MAX_TOKENS"))]),
                        Value::Null
                    ),
                    answer(json!([text(0, "", json!("SAFETY"))]), Value::Null)
                ]),
                json!([
                    role(0),
                    delta(0, "a"),
                    role(1),
                    delta(1, "b"),
                    chunk(1, json!({}), json!("length")),
                    chunk(0, json!({}), json!("content_filter"))
                ]),
            ),
            // A refused prompt.
            (
                json!([{"promptFeedback": {"blockReason": "SAFETY"}, "modelVersion": "gemini-2.5", "responseId": "r1"}]),
                json!([role(0), chunk(0, json!({}), json!("content_filter"))]),
            ),
            // Cut short: a candidate without a finish; nothing at all.
            (
                json!([answer(json!([text(0, "a", Value::Null)]), Value::Null)]),
                json!([role(0), delta(0, "a"), {"err": "stream"}]),
            ),
            (json!([]), json!([{"err": "stream"}])),
            // An error event mid-stream; a malformed event.
            (
                json!([answer(json!([text(0, "a", Value::Null)]), Value::Null),
                       {"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}]),
                json!([role(0), delta(0, "a"), {"err": "stream"}]),
            ),
            (json!(["not an object"]), json!([{"err": "decode"}])),
        ];
        for (events, expected) in cases {
            check_stream(events, expected);
        }
    }

    #[test]
    fn urls_and_a_hidden_key() {
        let spec = GeminiSpec {
            base_url: "https://g.example/".into(),
            api_key_env: None,
            headers: vec![],
            connect_timeout: std::time::Duration::from_secs(1),
        };
        let p = GeminiProvider::new(&spec, Some(Secret::new("g-secret")), reqwest::Client::new())
            .unwrap();
        assert_eq!(
            model_url(&p.models, "gemini-2.5-flash", "generateContent")
                .unwrap()
                .as_str(),
            "https://g.example/v1beta/models/gemini-2.5-flash:generateContent"
        );
        assert_eq!(
            model_url(&p.models, "a/../b", "generateContent")
                .unwrap()
                .as_str(),
            "https://g.example/v1beta/models/a%2F..%2Fb:generateContent"
        );
        assert!(!format!("{:?}", p.headers).contains("g-secret"));
    }
}
