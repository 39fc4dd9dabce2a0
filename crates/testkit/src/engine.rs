//! Fake self-hosted engines: an OpenAI-compatible server over real HTTP on `127.0.0.1:0`,
//! backed by the continuous-batching model of `switchyard-engine`, that serves its own load
//! on `GET /metrics` in the format of vLLM, llama.cpp, TGI or SGLang. The metrics text is
//! written out by hand here, as those servers write it, so a reader that shares a mistake
//! with the writer cannot pass.
//!
//! A test holds an engine busy ([`FakeEngine::hold`]), takes its metrics down
//! ([`FakeEngine::set_metrics_up`]) and reads what it received ([`FakeEngine::requests`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures::stream;
use serde_json::{json, Value};
use switchyard_engine::{Ask, Engine, Load, Params, Slot};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Which engine's metrics the fake serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineFlavor {
    /// vLLM v1: `vllm:kv_cache_usage_perc`, an `engine` label; honours the body's `priority`.
    Vllm,
    /// vLLM before v0.10: `vllm:gpu_cache_usage_perc`; honours the body's `priority`.
    VllmLegacy,
    LlamaCpp,
    Tgi,
    Sglang,
}

/// The model name a fake engine serves and labels its metrics with.
pub const ENGINE_MODEL: &str = "served-model";

/// Output tokens when the request sets no `max_tokens`.
const DEFAULT_OUTPUT_TOKENS: u32 = 8;

struct Shared {
    flavor: EngineFlavor,
    engine: Arc<Engine>,
    metrics_up: AtomicBool,
    metrics_reads: AtomicU64,
    requests: Mutex<Vec<Value>>,
}

/// A running fake engine; stops when dropped.
pub struct FakeEngine {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

/// Sequences a test put in the engine to keep it busy; they leave when this is dropped.
pub struct Hold {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Hold {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl FakeEngine {
    /// A small engine for tests: `slots` sequences, 2 ms prefill, 5 ms a token (plus 1 ms
    /// per other running sequence), a KV cache of 100,000 tokens.
    pub fn params(slots: u32) -> Params {
        Params {
            slots,
            kv_tokens: 100_000,
            prefill_base: Duration::from_millis(2),
            prefill_per_token: Duration::ZERO,
            decode_base: Duration::from_millis(5),
            decode_per_sequence: Duration::from_millis(1),
        }
    }

    pub async fn start(flavor: EngineFlavor, params: Params) -> std::io::Result<FakeEngine> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            flavor,
            engine: Engine::new(params),
            metrics_up: AtomicBool::new(true),
            metrics_reads: AtomicU64::new(0),
            requests: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/metrics", get(metrics))
            .with_state(shared.clone());
        #[expect(
            clippy::disallowed_methods,
            reason = "test server: aborted when the handle drops, and ends with the test runtime"
        )]
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FakeEngine { addr, shared, task })
    }

    /// `http://127.0.0.1:PORT/v1`; the metrics are at the origin's `/metrics`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn metrics_url(&self) -> String {
        format!("http://{}/metrics", self.addr)
    }

    /// What the engine holds now.
    pub fn load(&self) -> Load {
        self.shared.engine.load()
    }

    /// Every chat request body received, in order.
    pub fn requests(&self) -> Vec<Value> {
        lock(&self.shared.requests).clone()
    }

    /// `false`: `/metrics` answers 503 (an engine restarting, a scrape path blocked).
    pub fn set_metrics_up(&self, up: bool) {
        self.shared.metrics_up.store(up, Ordering::SeqCst);
    }

    /// How many times `/metrics` was read.
    pub fn metrics_reads(&self) -> u64 {
        self.shared.metrics_reads.load(Ordering::SeqCst)
    }

    /// Puts `n` one-token sequences in the engine (running while slots last, then waiting)
    /// that stay until the returned [`Hold`] is dropped.
    pub async fn hold(&self, n: u32) -> Hold {
        let before = self.load();
        let tasks = (0..n)
            .map(|_| {
                let engine = self.shared.engine.clone();
                #[expect(
                    clippy::disallowed_methods,
                    reason = "aborted when the Hold drops, and ends with the test runtime"
                )]
                tokio::spawn(async move {
                    let ask = Ask {
                        prompt_tokens: 1,
                        output_tokens: 1,
                        priority: None,
                    };
                    if let Ok(slot) = engine.admit(ask).await {
                        std::future::pending::<()>().await;
                        drop(slot);
                    }
                })
            })
            .collect();
        // The tasks arrive at the engine as soon as they first run.
        let target = before.running + before.waiting + n;
        while self.load().running + self.load().waiting < target {
            tokio::task::yield_now().await;
        }
        Hold { tasks }
    }
}

impl Drop for FakeEngine {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn error(status: StatusCode, message: &str) -> Response {
    let body = json!({"error": {"message": message, "type": "BadRequestError", "param": null, "code": status.as_u16()}});
    (status, axum::Json(body)).into_response()
}

/// About four characters a token, as the engines' tokenizers roughly count English.
fn prompt_tokens(body: &Value) -> u32 {
    let chars: usize = body["messages"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .filter_map(|m| m["content"].as_str())
                .map(str::len)
                .sum()
        })
        .unwrap_or(0);
    u32::try_from(chars / 4 + 1).unwrap_or(u32::MAX)
}

async fn chat(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "the body is not JSON");
    };
    lock(&shared.requests).push(body.clone());
    let honours_priority = matches!(shared.flavor, EngineFlavor::Vllm | EngineFlavor::VllmLegacy);
    let output_tokens = body["max_tokens"]
        .as_u64()
        .or_else(|| body["max_completion_tokens"].as_u64())
        .map_or(DEFAULT_OUTPUT_TOKENS, |n| {
            u32::try_from(n).unwrap_or(u32::MAX)
        });
    let ask = Ask {
        prompt_tokens: prompt_tokens(&body),
        output_tokens: output_tokens.max(1),
        priority: body["priority"].as_i64().filter(|_| honours_priority),
    };
    let model = body["model"].as_str().unwrap_or(ENGINE_MODEL).to_owned();
    let slot = match shared.engine.admit(ask).await {
        Ok(slot) => slot,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    slot.prefill().await;
    if body["stream"].as_bool().unwrap_or(false) {
        return stream_reply(slot, ask, model);
    }
    slot.decode(ask.output_tokens - 1).await;
    drop(slot);
    let text = vec!["tok"; ask.output_tokens as usize].join(" ");
    axum::Json(json!({
        "id": "chatcmpl-engine", "object": "chat.completion", "created": 1_700_000_000,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "logprobs": null, "finish_reason": "length"}],
        "usage": usage(ask),
    }))
    .into_response()
}

fn usage(ask: Ask) -> Value {
    json!({"prompt_tokens": ask.prompt_tokens, "completion_tokens": ask.output_tokens,
           "total_tokens": ask.prompt_tokens + ask.output_tokens})
}

/// The first token is ready (prefill done); the rest are decoded one at a time at the
/// batch's pace, and the slot is freed after the last, before the usage chunk.
fn stream_reply(slot: Slot, ask: Ask, model: String) -> Response {
    let chunk = move |choices: Value, usage: Value| {
        let value = json!({
            "id": "chatcmpl-engine", "object": "chat.completion.chunk", "created": 1_700_000_000,
            "model": model, "choices": choices, "usage": usage,
        });
        format!("data: {value}\n\n")
    };
    let total = ask.output_tokens;
    let body = stream::unfold((Some(slot), 0u32), move |(slot, sent)| {
        let chunk = chunk.clone();
        async move {
            let slot = slot?;
            if sent == total {
                drop(slot);
                let end = chunk(json!([]), usage(ask)) + "data: [DONE]\n\n";
                return Some((
                    Ok::<_, std::convert::Infallible>(Bytes::from(end)),
                    (None, sent),
                ));
            }
            if sent > 0 {
                slot.decode(1).await;
            }
            let delta = if sent == 0 {
                json!({"role": "assistant", "content": "tok"})
            } else {
                json!({"content": " tok"})
            };
            let finish = if sent + 1 == total {
                json!("length")
            } else {
                Value::Null
            };
            let choices =
                json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]);
            Some((
                Ok(Bytes::from(chunk(choices, Value::Null))),
                (Some(slot), sent + 1),
            ))
        }
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    shared.metrics_reads.fetch_add(1, Ordering::SeqCst);
    if !shared.metrics_up.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "metrics are down").into_response();
    }
    let text = metrics_text(shared.flavor, shared.engine.load());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// The load in `flavor`'s own names and labels, among counters a real server also serves.
fn metrics_text(flavor: EngineFlavor, load: Load) -> String {
    let (waiting, running, kv) = (load.waiting, load.running, load.kv_usage());
    let m = ENGINE_MODEL;
    match flavor {
        EngineFlavor::Vllm => format!(
            "# HELP vllm:num_requests_running Number of requests in model execution batches.\n\
             # TYPE vllm:num_requests_running gauge\n\
             vllm:num_requests_running{{engine=\"0\",model_name=\"{m}\"}} {running}.0\n\
             # HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n\
             # TYPE vllm:num_requests_waiting gauge\n\
             vllm:num_requests_waiting{{engine=\"0\",model_name=\"{m}\"}} {waiting}.0\n\
             # HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.\n\
             # TYPE vllm:kv_cache_usage_perc gauge\n\
             vllm:kv_cache_usage_perc{{engine=\"0\",model_name=\"{m}\"}} {kv}\n\
             # HELP vllm:prompt_tokens_total Number of prefill tokens processed.\n\
             # TYPE vllm:prompt_tokens_total counter\n\
             vllm:prompt_tokens_total{{engine=\"0\",model_name=\"{m}\"}} 1234.0\n"
        ),
        EngineFlavor::VllmLegacy => format!(
            "# HELP vllm:num_requests_running Number of requests currently running on GPU.\n\
             # TYPE vllm:num_requests_running gauge\n\
             vllm:num_requests_running{{model_name=\"{m}\"}} {running}.0\n\
             # HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n\
             # TYPE vllm:num_requests_waiting gauge\n\
             vllm:num_requests_waiting{{model_name=\"{m}\"}} {waiting}.0\n\
             # HELP vllm:gpu_cache_usage_perc GPU KV-cache usage. 1 means 100 percent usage.\n\
             # TYPE vllm:gpu_cache_usage_perc gauge\n\
             vllm:gpu_cache_usage_perc{{model_name=\"{m}\"}} {kv}\n"
        ),
        EngineFlavor::LlamaCpp => format!(
            "# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.\n\
             # TYPE llamacpp:prompt_tokens_total counter\n\
             llamacpp:prompt_tokens_total 1234\n\
             # HELP llamacpp:requests_processing Number of requests processing.\n\
             # TYPE llamacpp:requests_processing gauge\n\
             llamacpp:requests_processing {running}\n\
             # HELP llamacpp:requests_deferred Number of requests deferred.\n\
             # TYPE llamacpp:requests_deferred gauge\n\
             llamacpp:requests_deferred {waiting}\n"
        ),
        EngineFlavor::Tgi => format!(
            "# TYPE tgi_queue_size gauge\ntgi_queue_size {waiting}\n\
             # TYPE tgi_batch_current_size gauge\ntgi_batch_current_size {running}\n\
             # TYPE tgi_request_count counter\ntgi_request_count 42\n"
        ),
        EngineFlavor::Sglang => format!(
            "# HELP sglang:num_running_reqs The number of running requests.\n\
             # TYPE sglang:num_running_reqs gauge\n\
             sglang:num_running_reqs{{model_name=\"{m}\"}} {running}.0\n\
             # HELP sglang:num_queue_reqs The number of requests in the waiting queue.\n\
             # TYPE sglang:num_queue_reqs gauge\n\
             sglang:num_queue_reqs{{model_name=\"{m}\"}} {waiting}.0\n\
             # HELP sglang:token_usage The token usage.\n\
             # TYPE sglang:token_usage gauge\n\
             sglang:token_usage{{model_name=\"{m}\"}} {kv}\n"
        ),
    }
}
