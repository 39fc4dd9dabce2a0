//! OpenAI-compatible upstreams (vLLM, llama.cpp server, Ollama, TGI, OpenAI, hosted APIs).
//!
//! The request goes upstream as the client sent it (unknown fields included), except that a
//! streamed request always asks for usage so the gateway can account. The [`http`] submodule
//! holds the HTTP mechanics every HTTP adapter shares: sending, failure classification and SSE
//! framing.

use std::collections::BTreeMap;
use std::pin::Pin;

use crate::sse::Event;
use async_trait::async_trait;
use futures::{Stream, StreamExt};
use reqwest::header::{HeaderMap, AUTHORIZATION};
use switchyard_admission::Class;
use switchyard_api::{
    ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse, EmbeddingsRequest,
    EmbeddingsResponse, StreamOptions,
};
use switchyard_control::{EngineKind, OpenAiSpec, Secret};

use crate::{
    engine_priority, http, CallOptions, ChatProvider, ChatReply, ChunkStream, ProviderError,
};

pub struct OpenAiProvider {
    chat_url: reqwest::Url,
    embeddings_url: reqwest::Url,
    /// The configured headers and the bearer key, the key marked sensitive so that no `Debug`
    /// of a request ever shows it.
    headers: HeaderMap,
    http: reqwest::Client,
    /// What becomes of the body's `priority`: `None`, sent as the client wrote it; for vLLM,
    /// `Some(true)` set from the class (it schedules by priority), `Some(false)` removed (it
    /// refuses any but 0 without priority scheduling).
    priority_from_class: Option<bool>,
}

impl OpenAiProvider {
    pub fn new(
        spec: &OpenAiSpec,
        key: Option<Secret>,
        http: reqwest::Client,
    ) -> Result<Self, String> {
        let base = http::base_url(&spec.base_url)?;
        let mut headers = http::header_map(&spec.headers)?;
        if let Some(key) = key {
            let value = http::secret_value(&format!("Bearer {}", key.expose()))?;
            headers.insert(AUTHORIZATION, value);
        }
        Ok(OpenAiProvider {
            chat_url: http::endpoint(&base, "/chat/completions")?,
            embeddings_url: http::endpoint(&base, "/embeddings")?,
            headers,
            http,
            priority_from_class: spec
                .engine
                .as_ref()
                .filter(|e| e.kind == EngineKind::Vllm)
                .map(|e| e.priority_scheduling),
        })
    }
}

#[async_trait]
impl ChatProvider for OpenAiProvider {
    fn kind(&self) -> &'static str {
        "openai"
    }

    /// `n`, `logprobs` and `top_logprobs` are OpenAI's own fields: passed through as sent.
    fn native_choices(&self) -> bool {
        true
    }

    fn logprobs(&self) -> bool {
        true
    }

    fn server(&self) -> Option<(String, u16)> {
        crate::provider::server_of(&self.chat_url)
    }

    async fn chat_with(
        &self,
        request: ChatCompletionRequest,
        options: CallOptions,
    ) -> Result<ChatReply, ProviderError> {
        let mut body = upstream_request(request);
        if let Some(from_class) = self.priority_from_class {
            with_priority(&mut body, options.class.filter(|_| from_class));
        }
        send_chat(
            &self.http,
            &self.chat_url,
            &self.headers,
            &options.trace,
            &body,
        )
        .await
    }

    async fn embed_with(
        &self,
        request: EmbeddingsRequest,
        options: CallOptions,
    ) -> Result<EmbeddingsResponse, ProviderError> {
        send_embeddings(
            &self.http,
            &self.embeddings_url,
            &self.headers,
            &options.trace,
            &request,
        )
        .await
    }
}

/// One chat call to an OpenAI-shaped endpoint, `body` made by [`upstream_request`]: the answer
/// whole, or its stream read as chunks. Every adapter of an API that speaks OpenAI's shapes
/// (Azure OpenAI's too) calls through here. `trace` is the call's trace headers
/// ([`CallOptions::trace`]).
pub(crate) async fn send_chat(
    http: &reqwest::Client,
    url: &reqwest::Url,
    headers: &HeaderMap,
    trace: &HeaderMap,
    body: &ChatCompletionRequest,
) -> Result<ChatReply, ProviderError> {
    let response = http::post_json(http, url, headers, trace, body).await?;
    if body.is_stream() {
        Ok(ChatReply::Stream(chunk_stream(http::sse_events(
            response.bytes_stream(),
        ))))
    } else {
        let reply: ChatCompletionResponse = http::read_json(response).await?;
        Ok(ChatReply::Complete(reply))
    }
}

/// One embeddings call to an OpenAI-shaped endpoint.
pub(crate) async fn send_embeddings(
    http: &reqwest::Client,
    url: &reqwest::Url,
    headers: &HeaderMap,
    trace: &HeaderMap,
    request: &EmbeddingsRequest,
) -> Result<EmbeddingsResponse, ProviderError> {
    let response = http::post_json(http, url, headers, trace, request).await?;
    http::read_json(response).await
}

/// The body sent upstream. A streamed request always asks for usage, whatever the client
/// said, because the gateway accounts every call; other `stream_options` fields are kept.
pub(crate) fn upstream_request(mut request: ChatCompletionRequest) -> ChatCompletionRequest {
    if request.is_stream() {
        request
            .stream_options
            .get_or_insert_with(StreamOptions::default)
            .include_usage = Some(true);
    }
    request
}

/// vLLM schedules by the body's `priority` (lower first). The gateway's class decides it, so
/// a caller cannot jump the engine's queue by writing its own: a client's value is replaced,
/// or removed when the call has no class.
fn with_priority(body: &mut ChatCompletionRequest, class: Option<Class>) {
    body.extra.remove("priority");
    if let Some(class) = class {
        body.extra
            .insert("priority".to_owned(), engine_priority(class).into());
    }
}

/// What one SSE event of an OpenAI stream means.
#[derive(Debug)]
enum Step {
    Chunk(Box<ChatCompletionChunk>),
    Done,
    Skip,
    Fail(ProviderError),
}

fn classify_event(event: &Event) -> Step {
    let data = event.data.trim();
    if data.is_empty() {
        return Step::Skip;
    }
    if data == "[DONE]" {
        return Step::Done;
    }
    // The common case, parsed once into the chunk: a stream is mostly these, and going
    // through a `Value` first cost 4% of a streamed request's instructions (issue 18).
    if event.event != "error" {
        if let Ok(chunk) = serde_json::from_str::<ChatCompletionChunk>(data) {
            if chunk
                .extra
                .get("error")
                .is_none_or(serde_json::Value::is_null)
            {
                return Step::Chunk(Box::new(chunk));
            }
        }
    }
    let value: serde_json::Value = match serde_json::from_str(data) {
        Ok(v) => v,
        Err(e) => return Step::Fail(http::decode_error("a stream chunk", e, data.as_bytes())),
    };
    // Servers report failures after the 200 head as an event holding an error object (vLLM,
    // OpenAI), sometimes with `event: error`.
    if let Some(error) = value.get("error").filter(|e| !e.is_null()) {
        return Step::Fail(ProviderError::Stream(http::error_message(error)));
    }
    if event.event == "error" {
        return Step::Fail(ProviderError::Stream(http::snippet(data.as_bytes())));
    }
    match serde_json::from_value::<ChatCompletionChunk>(value) {
        Ok(chunk) => Step::Chunk(Box::new(chunk)),
        Err(e) => Step::Fail(http::decode_error("a stream chunk", e, data.as_bytes())),
    }
}

/// Turns SSE events into chunks.
/// 1. `[DONE]` ends the stream.
/// 2. An error event, or a chunk that does not parse, is yielded as an error and ends the
///    stream, since nothing after it can be trusted.
/// 3. The end of the body (cleanly, or halfway through an event, which SSE discards) is a
///    normal end only when the answer is complete: every choice that appeared has had its
///    `finish_reason` (many servers send that, then usage, then close without `[DONE]`).
///    Otherwise the answer was cut short, and the end is an error: before any chunk, so the
///    gateway retries it, or after some, so the client gets an error event instead of a
///    truncated answer that looks whole.
///
/// The stream owns the HTTP response, so dropping it closes the upstream connection.
pub(crate) fn chunk_stream<S>(events: S) -> ChunkStream
where
    S: Stream<Item = Result<Event, ProviderError>> + Send + 'static,
{
    struct State<S> {
        events: Pin<Box<S>>,
        seen_chunk: bool,
        /// Each choice index seen so far, and whether it has finished. Bounded by the
        /// stream's own length.
        choices: BTreeMap<u32, bool>,
        finished: bool,
    }

    let state = State {
        events: Box::pin(events),
        seen_chunk: false,
        choices: BTreeMap::new(),
        finished: false,
    };
    Box::pin(futures::stream::unfold(state, |mut st| async move {
        if st.finished {
            return None;
        }
        loop {
            let event = match st.events.next().await {
                None => {
                    let complete = !st.choices.is_empty() && st.choices.values().all(|done| *done);
                    if complete {
                        return None;
                    }
                    st.finished = true;
                    let e = ProviderError::Stream(if st.seen_chunk {
                        "the upstream ended the stream before the answer was complete (no finish_reason and no [DONE])".into()
                    } else {
                        "the upstream ended the stream before any chunk".into()
                    });
                    return Some((Err(e), st));
                }
                Some(Err(e)) => {
                    st.finished = true;
                    return Some((Err(e), st));
                }
                Some(Ok(event)) => event,
            };
            match classify_event(&event) {
                Step::Skip => continue,
                Step::Done => return None,
                Step::Chunk(chunk) => {
                    st.seen_chunk = true;
                    for c in &chunk.choices {
                        *st.choices.entry(c.index).or_default() |= c.finish_reason.is_some();
                    }
                    return Some((Ok(*chunk), st));
                }
                Step::Fail(e) => {
                    st.finished = true;
                    return Some((Err(e), st));
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use serde_json::{json, Value};

    fn events_from(bytes: &'static str) -> ChunkStream {
        let body = futures::stream::iter(vec![Ok::<_, reqwest::Error>(Bytes::from_static(
            bytes.as_bytes(),
        ))]);
        chunk_stream(http::sse_events(body))
    }

    /// Runs an SSE body through the chunk stream: each item as its chunk JSON or `{"err": kind}`.
    async fn check_stream(sse: &'static str, expected: Value) {
        let items: Vec<Value> = events_from(sse)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .map(|r| match r {
                Ok(c) => serde_json::to_value(c).unwrap(),
                Err(e) => json!({"err": e.kind()}),
            })
            .collect();
        assert_eq!(Value::Array(items), expected, "for {sse:?}");
    }

    const C1: &str = r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null}]}"#;

    fn c1() -> Value {
        serde_json::from_str(C1).unwrap()
    }

    const F1: &str = r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#;
    const U1: &str = r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#;

    fn f1() -> Value {
        serde_json::from_str(F1).unwrap()
    }

    fn u1() -> Value {
        serde_json::from_str(U1).unwrap()
    }

    #[tokio::test]
    async fn stream_parsing() {
        let cases: Vec<(&'static str, Value)> = vec![
            (
                leak(format!("data: {C1}\n\ndata: [DONE]\n\ndata: {C1}\n\n")),
                json!([c1()]),
            ),
            // EOF without [DONE] once every choice has finished is a normal end, usage
            // chunk or not.
            (
                leak(format!("data: {C1}\n\ndata: {F1}\n\ndata: {U1}\n\n")),
                json!([c1(), f1(), u1()]),
            ),
            // EOF before a finish reason is a truncated answer, whether at an event's end or
            // halfway through one (SSE drops the partial event).
            (
                leak(format!("data: {C1}\n\n")),
                json!([c1(), {"err": "stream"}]),
            ),
            (
                leak(format!("data: {C1}\n\ndata: {{\"id\":\"c\",\"cho")),
                json!([c1(), {"err": "stream"}]),
            ),
            (
                leak(format!("data: {C1}\n\ndata: {U1}\n\n")),
                json!([c1(), u1(), {"err": "stream"}]),
            ),
            ("data: {\"id\":\"c\",\"cho", json!([{"err": "stream"}])),
            // Comments and empty data are skipped; CRLF framing works.
            (
                leak(format!(
                    ": keep-alive\r\n\r\ndata: {C1}\r\n\r\ndata: [DONE]\r\n\r\n"
                )),
                json!([c1()]),
            ),
            ("", json!([{"err": "stream"}])),
            ("data: [DONE]\n\n", json!([])),
            (
                leak(format!("data: {C1}\n\ndata: {{not json\n\ndata: {C1}\n\n")),
                json!([c1(), {"err": "decode"}]),
            ),
            (
                "data: {\"error\":{\"message\":\"overloaded\"}}\n\n",
                json!([{"err": "stream"}]),
            ),
            ("data: {\"id\":1}\n\n", json!([{"err": "decode"}])),
        ];
        for (sse, expected) in cases {
            check_stream(sse, expected).await;
        }
    }

    fn leak(s: String) -> &'static str {
        Box::leak(s.into_boxed_str())
    }

    #[tokio::test]
    async fn error_event_keeps_the_upstream_message() {
        let items = events_from("data: {\"error\":{\"message\":\"overloaded\"}}\n\n")
            .collect::<Vec<_>>()
            .await;
        assert_eq!(
            items[0].as_ref().unwrap_err().to_string(),
            "the upstream's stream broke off: overloaded"
        );
    }

    fn check_request(input: Value, expected: Value) {
        let req: ChatCompletionRequest = serde_json::from_value(input).unwrap();
        assert_eq!(
            serde_json::to_value(upstream_request(req)).unwrap(),
            expected
        );
    }

    #[test]
    fn vllm_priority_comes_from_the_class_never_from_the_caller() {
        let cases = [
            (
                json!({"model": "m", "messages": []}),
                Some(Class::Batch),
                json!(3),
            ),
            (
                json!({"model": "m", "messages": []}),
                Some(Class::Critical),
                json!(0),
            ),
            (
                json!({"model": "m", "messages": [], "priority": -100}),
                Some(Class::Interactive),
                json!(1),
            ),
            (
                json!({"model": "m", "messages": [], "priority": -100}),
                None,
                Value::Null,
            ),
            (json!({"model": "m", "messages": []}), None, Value::Null),
        ];
        for (input, class, expected) in cases {
            let mut req: ChatCompletionRequest = serde_json::from_value(input).unwrap();
            with_priority(&mut req, class);
            let body = serde_json::to_value(req).unwrap();
            assert_eq!(body["priority"], expected, "{class:?}");
        }
    }

    #[test]
    fn upstream_request_forces_stream_usage_and_keeps_the_rest() {
        let cases = [
            (
                json!({"model": "m", "messages": [], "stream": true, "logit_bias": {"1": 2}}),
                json!({"model": "m", "messages": [], "stream": true, "logit_bias": {"1": 2},
                       "stream_options": {"include_usage": true}}),
            ),
            (
                json!({"model": "m", "messages": [], "stream": true,
                       "stream_options": {"include_usage": false, "continuous_usage_stats": true}}),
                json!({"model": "m", "messages": [], "stream": true,
                       "stream_options": {"include_usage": true, "continuous_usage_stats": true}}),
            ),
            (
                json!({"model": "m", "messages": [], "x": [1]}),
                json!({"model": "m", "messages": [], "x": [1]}),
            ),
        ];
        for (input, expected) in cases {
            check_request(input, expected);
        }
    }

    #[test]
    fn construction_checks_config_and_hides_the_key() {
        let spec = |base: &str, headers: Vec<(String, String)>| OpenAiSpec {
            base_url: base.into(),
            api_key_env: None,
            headers,
            connect_timeout: std::time::Duration::from_secs(1),
            engine: None,
        };
        let http = reqwest::Client::new();
        let p = OpenAiProvider::new(&spec("http://h/v1/", vec![]), None, http.clone()).unwrap();
        assert_eq!(p.chat_url.as_str(), "http://h/v1/chat/completions");
        assert!(OpenAiProvider::new(&spec("not a url", vec![]), None, http.clone()).is_err());
        let bad = vec![("x-k".to_owned(), "sec\nret".to_owned())];
        let err = OpenAiProvider::new(&spec("http://h", bad), None, http.clone())
            .err()
            .unwrap();
        assert!(!err.contains("sec"), "{err}");
        let err = OpenAiProvider::new(
            &spec("http://h", vec![]),
            Some(Secret::new("k\u{7f}ey")),
            http,
        )
        .err()
        .unwrap();
        assert!(!err.contains("k\u{7f}ey"), "{err}");
    }
}
