//! Serves any [`ChatProvider`] as an OpenAI-compatible upstream: `POST /v1/chat/completions`
//! (JSON or SSE), `POST /v1/embeddings`, `GET /v1/models`; for a simulator whose models run
//! on engines, `GET /metrics` as vLLM serves it ([`with_engine_metrics`]).
//!
//! This is what `switchyard sim` runs, and the baseline upstream of the gateway benchmark, so
//! it stays lean: no middleware, no per-request logging, no allocation beyond parsing and
//! serialising. It is not the gateway: no keys, limits, retries or records. The provider's own
//! failures are answered in OpenAI's error shape with the provider's status.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use futures::StreamExt;
use serde::Serialize;
use switchyard_api::{
    sse, ChatCompletionRequest, EmbeddingsRequest, ErrorBody, ErrorObject, Model, ModelList,
};
use switchyard_providers::sim::SimProvider;
use switchyard_providers::{ChatProvider, ChatReply, ChunkStream, ProviderError};

/// Requests up to this size are read: a whole long-context conversation fits.
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

struct Upstream {
    provider: Arc<dyn ChatProvider>,
    models: Vec<String>,
    /// `GET /v1/models`, serialised once.
    model_list: Bytes,
}

impl Upstream {
    /// Whether `model` is served; a linear scan, since an upstream serves a handful of models.
    fn check_model(&self, model: &str) -> Result<(), Reject> {
        if self.models.iter().any(|m| m == model) {
            Ok(())
        } else {
            Err(Reject {
                status: StatusCode::NOT_FOUND,
                message: format!("The model `{model}` does not exist"),
                code: Some("model_not_found"),
            })
        }
    }
}

/// A request refused before the provider saw it.
struct Reject {
    status: StatusCode,
    message: String,
    code: Option<&'static str>,
}

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        error_response(self.status, self.message, self.code, None)
    }
}

/// The routes serving `provider`. Requests name one of `models` (for a sim provider,
/// `SimProvider::model_names()`); any other model is a 404.
pub fn router(provider: Arc<dyn ChatProvider>, models: Vec<String>) -> Router {
    let created = switchyard_providers::unix_now();
    let list = ModelList::new(
        models
            .iter()
            .map(|id| Model {
                id: id.clone(),
                object: "model".to_owned(),
                created,
                owned_by: provider.kind().to_owned(),
            })
            .collect(),
    );
    // A list of plain strings always serialises; the fallback is never taken.
    let model_list = Bytes::from(serde_json::to_vec(&list).unwrap_or_default());
    let state = Arc::new(Upstream {
        provider,
        models,
        model_list,
    });
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(list_models))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Adds `GET /metrics` with `sim`'s engines' load in vLLM's format, when it has engines: a
/// gateway whose `openai` provider names `engine = "vllm"` then routes to it by its load.
pub fn with_engine_metrics(app: Router, sim: Arc<SimProvider>) -> Router {
    if sim.vllm_metrics().is_none() {
        return app;
    }
    let metrics = move || {
        let text = sim.vllm_metrics().unwrap_or_default();
        async move {
            (
                [(
                    header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                text,
            )
        }
    };
    app.route("/metrics", get(metrics))
}

async fn chat(
    State(up): State<Arc<Upstream>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Reject> {
    let req: ChatCompletionRequest = parse(body)?;
    up.check_model(&req.model)?;
    let include_usage = req.wants_stream_usage();
    Ok(match up.provider.chat(req).await {
        Ok(ChatReply::Complete(r)) => json_response(&r),
        Ok(ChatReply::Stream(chunks)) => sse_response(chunks, include_usage),
        Err(e) => provider_error(&e),
    })
}

async fn embeddings(
    State(up): State<Arc<Upstream>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Reject> {
    let req: EmbeddingsRequest = parse(body)?;
    up.check_model(&req.model)?;
    Ok(match up.provider.embed(req).await {
        Ok(r) => json_response(&r),
        Err(e) => provider_error(&e),
    })
}

async fn list_models(State(up): State<Arc<Upstream>>) -> Response {
    json_bytes(StatusCode::OK, up.model_list.clone())
}

async fn not_found() -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "no such route: this server serves /v1/chat/completions, /v1/embeddings and /v1/models"
            .to_owned(),
        None,
        None,
    )
}

/// The body as JSON, or the 400 (413 when too large) OpenAI's API gives.
fn parse<T: serde::de::DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, Reject> {
    let bytes = body.map_err(|rejection| Reject {
        status: rejection.status(),
        message: rejection.body_text(),
        code: None,
    })?;
    serde_json::from_slice(&bytes).map_err(|e| Reject {
        status: StatusCode::BAD_REQUEST,
        message: format!("the request body is not valid JSON for this endpoint: {e}"),
        code: None,
    })
}

/// The stream as SSE: one `data:` event per chunk, then `data: [DONE]`. The usage-only chunk
/// (and any usage field) is dropped unless the client asked for `include_usage`. A provider
/// error mid-stream becomes an `error` event and ends the stream without `[DONE]`, so a client
/// cannot take a broken answer for a whole one.
fn sse_response(chunks: ChunkStream, include_usage: bool) -> Response {
    let events = futures::stream::unfold(Some(chunks), move |state| async move {
        let mut chunks = state?;
        loop {
            match chunks.next().await {
                Some(Ok(mut chunk)) => {
                    if !include_usage {
                        if chunk.choices.is_empty() {
                            continue;
                        }
                        chunk.usage = None;
                    }
                    return Some(match sse::data_event(&chunk) {
                        Ok(event) => (Ok::<_, Infallible>(event), Some(chunks)),
                        Err(e) => (
                            Ok(error_event(
                                StatusCode::INTERNAL_SERVER_ERROR,
                                e.to_string(),
                            )),
                            None,
                        ),
                    });
                }
                Some(Err(e)) => {
                    let (status, message) = (status_of(&e), e.to_string());
                    return Some((Ok(error_event(status, message)), None));
                }
                None => return Some((Ok(Bytes::from_static(sse::DONE)), None)),
            }
        }
    });
    let mut response = Response::new(Body::from_stream(events));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn error_event(status: StatusCode, message: String) -> Bytes {
    let body = error_body(status, message, None);
    sse::data_event(&body).unwrap_or_else(|_| Bytes::from_static(b"data: {\"error\":{}}\n\n"))
}

fn json_response<T: Serialize>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => json_bytes(StatusCode::OK, Bytes::from(bytes)),
        Err(e) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("could not serialise the response: {e}"),
            None,
            None,
        ),
    }
}

fn json_bytes(status: StatusCode, bytes: Bytes) -> Response {
    let mut response = (status, bytes).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The status a provider failure is answered with: its own for an HTTP status, 504 for a
/// timeout, 502 for a broken upstream, 400 for what the provider cannot do.
fn status_of(e: &ProviderError) -> StatusCode {
    match e {
        ProviderError::Status { status, .. } => {
            StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY)
        }
        ProviderError::Timeout => StatusCode::GATEWAY_TIMEOUT,
        ProviderError::Connect(_) | ProviderError::Decode(_) | ProviderError::Stream(_) => {
            StatusCode::BAD_GATEWAY
        }
        ProviderError::Unsupported { .. } => StatusCode::BAD_REQUEST,
    }
}

fn provider_error(e: &ProviderError) -> Response {
    let (message, retry_after) = match e {
        ProviderError::Status {
            message,
            retry_after,
            ..
        } => (message.clone(), *retry_after),
        other => (other.to_string(), None),
    };
    error_response(status_of(e), message, None, retry_after)
}

/// OpenAI's `type` for a status.
fn error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        s if s >= 500 => "server_error",
        _ => "invalid_request_error",
    }
}

fn error_body(status: StatusCode, message: String, code: Option<&str>) -> ErrorBody {
    ErrorBody {
        error: ErrorObject {
            message,
            kind: error_type(status).to_owned(),
            param: None,
            code: code.map(str::to_owned),
        },
    }
}

fn error_response(
    status: StatusCode,
    message: String,
    code: Option<&str>,
    retry_after: Option<Duration>,
) -> Response {
    let body = error_body(status, message, code);
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let mut response = json_bytes(status, Bytes::from(bytes));
    if let Some(after) = retry_after {
        // Whole seconds, rounded up: `retry-after: 0` would invite an immediate retry.
        let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::{json, Value};
    use switchyard_api::ChatCompletionChunk;
    use switchyard_control::{Distribution, SimModelSpec, SimSpec};
    use switchyard_providers::sim::SimProvider;

    use super::*;

    fn model() -> SimModelSpec {
        SimModelSpec {
            ttft_ms: Distribution::fixed(0.0),
            tokens_per_second: Distribution::fixed(1e9),
            output_tokens: Distribution::fixed(30.0),
            error_rate: 0.0,
            error_status: 500,
            rate_limit_rate: 0.0,
            timeout_rate: 0.0,
            spike_rate: 0.0,
            spike: Duration::ZERO,
            echo: false,
            rules: Vec::new(),
            embedding_dims: 32,
            engine: None,
        }
    }

    /// Starts the server on an ephemeral port; it stops with the test's runtime.
    async fn start() -> String {
        let mut limited = model();
        limited.rate_limit_rate = 1.0;
        let mut models = BTreeMap::new();
        models.insert("fast".to_owned(), model());
        models.insert("limited".to_owned(), limited);
        serve(models).await
    }

    /// Serves a simulator of `models` as `switchyard sim` does.
    async fn serve(models: BTreeMap<String, SimModelSpec>) -> String {
        let sim = Arc::new(SimProvider::new("sim", &SimSpec { seed: 7, models }));
        let names = sim.model_names();
        let app = with_engine_metrics(router(sim.clone(), names), sim);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        #[expect(
            clippy::disallowed_methods,
            reason = "the server dies with the test runtime"
        )]
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/v1")
    }

    fn chunks_of(body: &str) -> (Vec<ChatCompletionChunk>, bool) {
        let mut chunks = Vec::new();
        let mut done = false;
        for event in body.split_terminator("\n\n") {
            let data = event.strip_prefix("data: ").unwrap();
            assert!(!done, "nothing may follow [DONE]");
            if data == "[DONE]" {
                done = true;
            } else {
                chunks.push(serde_json::from_str(data).unwrap());
            }
        }
        (chunks, done)
    }

    #[tokio::test]
    async fn serves_plain_and_streamed_completions_over_http() {
        let base = start().await;
        let http = reqwest::Client::new();
        let ask = |extra: Value| {
            let mut body =
                json!({"model": "fast", "messages": [{"role": "user", "content": "hi"}]});
            body.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            http.post(format!("{base}/chat/completions"))
                .json(&body)
                .send()
        };

        let plain = ask(json!({})).await.unwrap();
        assert_eq!(plain.status(), 200);
        assert_eq!(plain.headers()["content-type"], "application/json");
        let plain: Value = plain.json().await.unwrap();
        let text = plain["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            text.starts_with("This is a simulated reply from model fast."),
            "{text}"
        );
        assert_eq!(plain["usage"]["completion_tokens"], 30);

        let streamed = ask(json!({"stream": true})).await.unwrap();
        assert_eq!(streamed.status(), 200);
        assert_eq!(streamed.headers()["content-type"], "text/event-stream");
        let (chunks, done) = chunks_of(&streamed.text().await.unwrap());
        assert!(done);
        assert!(chunks
            .iter()
            .all(|c| !c.choices.is_empty() && c.usage.is_none()));
        let streamed_text: String = chunks
            .iter()
            .filter_map(|c| c.choices[0].delta.content.clone())
            .collect();
        assert_eq!(streamed_text, text);

        let with_usage = ask(json!({"stream": true, "stream_options": {"include_usage": true}}));
        let (chunks, done) = chunks_of(&with_usage.await.unwrap().text().await.unwrap());
        assert!(done);
        let last = chunks.last().unwrap();
        assert!(last.choices.is_empty());
        assert_eq!(last.usage.as_ref().unwrap().completion_tokens, 30);
    }

    #[tokio::test]
    async fn a_simulator_with_engines_serves_their_load_as_vllm_does() {
        let mut local = model();
        local.engine = Some(switchyard_engine::Params {
            slots: 1,
            kv_tokens: 1000,
            prefill_base: Duration::ZERO,
            prefill_per_token: Duration::ZERO,
            decode_base: Duration::from_secs(1),
            decode_per_sequence: Duration::ZERO,
        });
        let mut models = BTreeMap::new();
        models.insert("local".to_owned(), local);
        let base = serve(models).await;
        let origin = base.trim_end_matches("/v1");
        let http = reqwest::Client::new();
        let read = || async {
            let text = http.get(format!("{origin}/metrics")).send().await.unwrap();
            let text = text.text().await.unwrap();
            switchyard_engine::read(switchyard_engine::EngineKind::Vllm, &text).unwrap()
        };
        assert_eq!((read().await.waiting, read().await.running), (0, 0));
        // A stream holds its slot while it decodes (a second a token); another waits.
        let body = json!({"model": "local", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
        let mut first = http
            .post(format!("{base}/chat/completions"))
            .json(&body)
            .send()
            .await
            .unwrap();
        first.chunk().await.unwrap();
        let reading = read().await;
        assert_eq!((reading.waiting, reading.running), (0, 1));
        assert!(reading.kv_usage.is_some_and(|kv| kv > 0.0));
        drop(first);

        // Without engines there is no such page.
        let plain = start().await;
        let origin = plain.trim_end_matches("/v1");
        let r = http.get(format!("{origin}/metrics")).send().await.unwrap();
        assert_eq!(r.status(), 404);
    }

    #[tokio::test]
    async fn errors_models_and_embeddings_in_openai_shape() {
        let base = start().await;
        let http = reqwest::Client::new();
        let post = |path: &str, body: Value| http.post(format!("{base}{path}")).json(&body).send();

        let r = post(
            "/chat/completions",
            json!({"model": "nope", "messages": []}),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 404);
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["code"], "model_not_found");
        assert_eq!(e["error"]["type"], "invalid_request_error");

        let r = http
            .post(format!("{base}/chat/completions"))
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["type"], "invalid_request_error");

        let r = post(
            "/chat/completions",
            json!({"model": "limited", "messages": [{"role": "user", "content": "x"}]}),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["retry-after"], "1");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["type"], "rate_limit_error");

        let models: Value = http
            .get(format!("{base}/models"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(models["object"], "list");
        assert_eq!(models["data"][0]["id"], "fast");
        assert_eq!(models["data"][1]["id"], "limited");

        let r = post(
            "/embeddings",
            json!({"model": "fast", "input": ["a b", "c"]}),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 200);
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["data"][1]["embedding"].as_array().unwrap().len(), 32);
    }
}
