//! The built-in simulated model provider: a first-class stand-in for paid APIs in demos,
//! benchmarks and tests of routing, guardrails and rollbacks.
//!
//! Each configured sim model answers like a real upstream. What it says is a pure function of
//! (seed, model, messages, request seed) ([`plan`]), so identical prompts get identical
//! answers; how fast it says it, and whether it fails, is drawn per call from a per-model
//! sequence seeded by (seed, model), so a 10% error rate fails about one call in ten and a
//! retry of the same request may succeed. Waits use `tokio::time`, so tests pause the clock.
//!
//! A model with an `engine` runs on a continuous-batching engine ([`switchyard_engine`]):
//! its calls share the engine's slots and KV cache, wait in its queue (by the call's class,
//! else the body's `priority`, as vLLM), and take its prefill and decode times instead of the
//! drawn ones. [`SimProvider::engine_load`] tells what the engine holds.
//!
//! It must not do I/O, and a zero-latency model must cost no timer: it is the baseline
//! upstream of the gateway benchmark.

mod embed;
mod logprobs;
mod plan;
mod reply;
mod schema;
#[cfg(test)]
mod tests;
mod text;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use switchyard_api::{
    ChatCompletionRequest, Embedding, EmbeddingVector, EmbeddingsRequest, EmbeddingsResponse,
    EmbeddingsUsage,
};
use switchyard_control::{SimModelSpec, SimSpec};
use switchyard_engine::{Ask, Engine, Load};
use tokio::time::Instant;

use crate::{engine_priority, tokens, CallOptions, ChatProvider, ChatReply, ProviderError};
use reply::{Meta, Pace, Timing};
use text::StableHasher;

/// How long a simulated timeout hangs: far beyond any attempt timeout, so the gateway's own
/// timeout is what fires.
const HANG: Duration = Duration::from_secs(3600);

/// One of an engine's numbers, as a metric value.
type Gauge = fn(&Load) -> f64;

pub struct SimProvider {
    name: String,
    models: HashMap<String, SimModel>,
}

struct SimModel {
    spec: SimModelSpec,
    /// From (seed, model): the base of this model's text seeds, embeddings and call draws.
    seed: u64,
    /// Calls so far. Call `n` draws from an RNG seeded by (seed, n): the same sequence as one
    /// shared RNG advanced per call, without a lock on the hot path.
    calls: AtomicU64,
    engine: Option<Arc<Engine>>,
}

/// What one call drew, in a fixed order so the sequence never depends on the configuration.
struct Draw {
    fault: Option<Fault>,
    ttft: Duration,
    /// Seconds per output token.
    interval: f64,
    /// Unique per call: the completion id.
    id: u64,
}

enum Fault {
    Error(u16),
    RateLimited,
    Hang,
}

impl SimModel {
    fn draw(&self) -> Draw {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        let mut rng = StdRng::seed_from_u64(text::mix(self.seed ^ text::mix(n)));
        let fault_u: f64 = rng.random();
        let spike_u: f64 = rng.random();
        let z_ttft: f64 = rng.sample(StandardNormal);
        let z_tps: f64 = rng.sample(StandardNormal);
        let id: u64 = rng.random();

        let s = &self.spec;
        let fault = if fault_u < s.error_rate {
            Some(Fault::Error(s.error_status))
        } else if fault_u < s.error_rate + s.rate_limit_rate {
            Some(Fault::RateLimited)
        } else if fault_u < s.error_rate + s.rate_limit_rate + s.timeout_rate {
            Some(Fault::Hang)
        } else {
            None
        };
        let mut ttft = reply::secs(s.ttft_ms.value(z_ttft) / 1000.0);
        if spike_u < s.spike_rate {
            ttft += s.spike;
        }
        let tps = s.tokens_per_second.value(z_tps);
        let interval = if tps.is_finite() && tps > 0.0 {
            1.0 / tps
        } else {
            0.0
        };
        Draw {
            fault,
            ttft,
            interval,
            id,
        }
    }
}

impl SimProvider {
    pub fn new(name: &str, spec: &SimSpec) -> Self {
        tokens::preload();
        let models = spec
            .models
            .iter()
            .map(|(model, m)| {
                let seed = StableHasher::new(spec.seed).str(model).finish();
                let sim = SimModel {
                    spec: m.clone(),
                    seed,
                    calls: AtomicU64::new(0),
                    engine: m.engine.map(Engine::new),
                };
                (model.clone(), sim)
            })
            .collect();
        SimProvider {
            name: name.to_owned(),
            models,
        }
    }

    /// The model names this provider serves, sorted: what `GET /v1/models` lists.
    pub fn model_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.models.keys().cloned().collect();
        names.sort();
        names
    }

    /// The configured name of this provider.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What `model`'s engine holds now; `None` for a model without an engine.
    pub fn engine_load(&self, model: &str) -> Option<Load> {
        self.models.get(model)?.engine.as_ref().map(|e| e.load())
    }

    /// Its engines' load as vLLM's `/metrics` shows it (one series per model with an engine,
    /// labelled `model_name`), so a gateway can route to `switchyard sim` as to a vLLM
    /// server; `None` when no model has an engine.
    pub fn vllm_metrics(&self) -> Option<String> {
        use std::fmt::Write;
        let mut engines: Vec<(&String, Load)> = self
            .models
            .iter()
            .filter_map(|(name, m)| Some((name, m.engine.as_ref()?.load())))
            .collect();
        if engines.is_empty() {
            return None;
        }
        engines.sort_by(|a, b| a.0.cmp(b.0));
        let mut text = String::new();
        let gauges: [(&str, &str, Gauge); 3] = [
            (
                "vllm:num_requests_running",
                "Number of requests in model execution batches.",
                |l| f64::from(l.running),
            ),
            (
                "vllm:num_requests_waiting",
                "Number of requests waiting to be processed.",
                |l| f64::from(l.waiting),
            ),
            (
                "vllm:kv_cache_usage_perc",
                "KV-cache usage. 1 means 100 percent usage.",
                Load::kv_usage,
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} gauge");
            for (model, load) in &engines {
                // Model names are config keys: no quote or backslash to escape.
                let _ = writeln!(text, "{name}{{model_name=\"{model}\"}} {:?}", value(load));
            }
        }
        Some(text)
    }

    fn model(&self, model: &str) -> Result<&SimModel, ProviderError> {
        self.models.get(model).ok_or_else(|| ProviderError::Status {
            status: 404,
            message: format!("model `{model}` does not exist"),
            retry_after: None,
        })
    }
}

#[async_trait]
impl ChatProvider for SimProvider {
    fn kind(&self) -> &'static str {
        "sim"
    }

    /// Made up (`logprobs.rs`), so clients that read them can be tried.
    fn logprobs(&self) -> bool {
        true
    }

    async fn chat_with(
        &self,
        request: ChatCompletionRequest,
        options: CallOptions,
    ) -> Result<ChatReply, ProviderError> {
        let start = Instant::now();
        let model = self.model(&request.model)?;
        plan::validate(&request)?;
        let draw = model.draw();
        let pace = Pace {
            start,
            ttft: draw.ttft,
            interval: draw.interval,
        };
        // Every answer, failures included, takes its time to first token: an upstream takes
        // its time to fail too, and retry demos depend on it.
        let failed = |e: ProviderError| async move {
            reply::wait_until(pace.at_ttft()).await;
            Err::<ChatReply, _>(e)
        };
        match draw.fault {
            None => {}
            Some(Fault::Error(status)) => {
                return failed(ProviderError::Status {
                    status,
                    message: "simulated upstream error (error_rate)".to_owned(),
                    retry_after: None,
                })
                .await;
            }
            Some(Fault::RateLimited) => {
                return failed(ProviderError::Status {
                    status: 429,
                    message: "simulated rate limit (rate_limit_rate)".to_owned(),
                    retry_after: Some(Duration::from_secs(1)),
                })
                .await;
            }
            Some(Fault::Hang) => {
                tokio::time::sleep(HANG).await;
                return Err(ProviderError::Timeout);
            }
        }
        let seed = plan::text_seed(model.seed, &request);
        let plan = match plan::plan(&request.model, &model.spec, seed, &request) {
            Ok(p) => p,
            Err(e) => return failed(e).await,
        };
        let top_logprobs = request.extra.get("top_logprobs").and_then(|t| t.as_u64());
        let logprobs = request
            .wants_logprobs()
            .then(|| top_logprobs.map_or(0, |t| t.min(20) as u32));
        let meta = Meta {
            id: format!("chatcmpl-sim-{:016x}", draw.id),
            created: crate::unix_now(),
            model: request.model,
            logprobs,
        };
        let timing = match &model.engine {
            Some(engine) => Timing::Engine {
                engine: engine.clone(),
                ask: Ask {
                    prompt_tokens: plan.prompt_tokens,
                    output_tokens: plan.completion_tokens(),
                    priority: options
                        .class
                        .map(engine_priority)
                        .or_else(|| request.extra.get("priority").and_then(|p| p.as_i64())),
                },
            },
            None => Timing::Drawn(pace),
        };
        if request.stream.unwrap_or(false) {
            return Ok(ChatReply::Stream(reply::stream(plan, meta, timing)));
        }
        match timing {
            Timing::Drawn(pace) => reply::wait_until(pace.all_ready(plan.pieces().len())).await,
            Timing::Engine { engine, ask } => {
                reply::run_engine(&engine, ask, plan.pieces().len()).await?;
            }
        }
        Ok(ChatReply::Complete(reply::complete(plan, meta)))
    }

    async fn embed_with(
        &self,
        request: EmbeddingsRequest,
        _options: CallOptions,
    ) -> Result<EmbeddingsResponse, ProviderError> {
        let model = self.model(&request.model)?;
        let dims = model.spec.embedding_dims;
        let bad = |message: String| ProviderError::Status {
            status: 400,
            message,
            retry_after: None,
        };
        let keep = match request.dimensions {
            None => dims,
            Some(d) if (1..=dims).contains(&(d as usize)) => d as usize,
            Some(d) => {
                return Err(bad(format!(
                    "dimensions must be between 1 and {dims} for model `{}` (got {d})",
                    request.model
                )))
            }
        };
        let base64 = match request.encoding_format.as_deref() {
            None | Some("float") => false,
            Some("base64") => true,
            Some(other) => {
                return Err(bad(format!(
                    "encoding_format must be \"float\" or \"base64\" (got {other:?})"
                )))
            }
        };
        let texts = request.input.texts();
        // A simulated model's usage is exact, as a real one's: wait for the tokenizer.
        tokens::warm_up();
        let mut prompt_tokens: u32 = 0;
        let mut data = Vec::with_capacity(texts.len());
        for (index, text) in texts.iter().enumerate() {
            prompt_tokens = prompt_tokens.saturating_add(tokens::count_text(text));
            let mut v = embed::embed(text, dims, model.seed);
            if keep < dims {
                v = embed::shorten(v, keep);
            }
            let embedding = if base64 {
                EmbeddingVector::Base64(embed::to_base64(&v))
            } else {
                EmbeddingVector::Float(v)
            };
            data.push(Embedding {
                object: "embedding".to_owned(),
                index: u32::try_from(index).unwrap_or(u32::MAX),
                embedding,
            });
        }
        Ok(EmbeddingsResponse {
            object: "list".to_owned(),
            data,
            model: request.model,
            usage: EmbeddingsUsage {
                prompt_tokens,
                total_tokens: prompt_tokens,
            },
        })
    }
}
