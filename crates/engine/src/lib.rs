//! A self-hosted inference server (vLLM, llama.cpp, TGI, SGLang) as a model: continuous
//! batching over a number of sequence slots, prefill time growing with the prompt, per-token
//! decode time growing with the running batch, and a KV-cache token budget that defers
//! requests when it is full. The simulator provider and the fake engines of the tests run on
//! it, so the gateway's engine-aware routing is tested against the behaviour it reacts to.
//!
//! [`Scheduler`] is pure (who runs, who waits; no time, no locks). [`Engine`] drives it in
//! `tokio::time`, so tests pause the clock and every duration is exact.
//!
//! The other direction too: [`read`] turns a real engine's Prometheus metrics
//! ([`exposition`]) into its load, for the gateway's engine-aware routing. It must not do I/O.

pub mod exposition;
mod reading;
mod scheduler;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

pub use reading::{read, EngineKind, MissingGauge, Reading};
pub use scheduler::{Load, Scheduler, SeqId};

/// How an engine spends its time and memory.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// Sequences decoded together at most (vLLM's `max_num_seqs`, llama.cpp's `--parallel`).
    pub slots: u32,
    /// KV-cache budget in tokens: a sequence holds its prompt and its output while it runs.
    pub kv_tokens: u64,
    /// Fixed cost of a prefill.
    pub prefill_base: Duration,
    /// Prefill cost per prompt token.
    pub prefill_per_token: Duration,
    /// One decode step (one token for every running sequence) with a batch of one.
    pub decode_base: Duration,
    /// What each further sequence in the batch adds to a decode step.
    pub decode_per_sequence: Duration,
}

impl Params {
    /// Time from a sequence's start to its first token.
    pub fn prefill(&self, prompt_tokens: u32) -> Duration {
        self.prefill_base
            .saturating_add(self.prefill_per_token.saturating_mul(prompt_tokens))
    }

    /// Time per output token while `batch` sequences run.
    pub fn step(&self, batch: u32) -> Duration {
        self.decode_base.saturating_add(
            self.decode_per_sequence
                .saturating_mul(batch.saturating_sub(1)),
        )
    }
}

/// One request as the engine sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ask {
    pub prompt_tokens: u32,
    /// Output tokens the sequence will produce (the KV cache holds them too).
    pub output_tokens: u32,
    /// Lower runs first, as vLLM's priority scheduling; `None` is 0. Ties are served in order
    /// of arrival, so requests without a priority are served first come, first served.
    pub priority: Option<i64>,
}

impl Ask {
    fn kv_tokens(&self) -> u64 {
        u64::from(self.prompt_tokens) + u64::from(self.output_tokens)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// vLLM answers 400 to a prompt longer than its context; here, larger than the KV cache.
    #[error("the request needs {needed} KV-cache tokens, more than the engine's {budget}")]
    TooLarge { needed: u64, budget: u64 },
    #[error("the engine's state is poisoned")]
    Poisoned,
}

/// A continuous-batching engine in `tokio::time`.
pub struct Engine {
    params: Params,
    inner: Mutex<Inner>,
}

struct Inner {
    scheduler: Scheduler,
    /// Who to tell when a waiting sequence starts.
    starts: std::collections::HashMap<SeqId, oneshot::Sender<()>>,
}

impl Engine {
    pub fn new(params: Params) -> Arc<Self> {
        Arc::new(Engine {
            params,
            inner: Mutex::new(Inner {
                scheduler: Scheduler::new(params.slots, params.kv_tokens),
                starts: std::collections::HashMap::new(),
            }),
        })
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    pub fn load(&self) -> Load {
        self.inner
            .lock()
            .map(|i| i.scheduler.load())
            .unwrap_or_default()
    }

    /// Waits for a slot and room in the KV cache, in priority then arrival order, and starts
    /// the sequence. Dropping the future while it waits takes the request out of the queue.
    pub async fn admit(self: &Arc<Self>, ask: Ask) -> Result<Slot, EngineError> {
        let needed = ask.kv_tokens();
        if needed > self.params.kv_tokens {
            return Err(EngineError::TooLarge {
                needed,
                budget: self.params.kv_tokens,
            });
        }
        let (id, started) = {
            let mut inner = self.inner.lock().map_err(|_| EngineError::Poisoned)?;
            let (id, started) = inner.scheduler.arrive(needed, ask.priority);
            let rx = if started {
                None
            } else {
                let (tx, rx) = oneshot::channel();
                inner.starts.insert(id, tx);
                Some(rx)
            };
            (id, rx)
        };
        // From here the sequence is the slot's to end, whether it waits or runs.
        let slot = Slot {
            engine: self.clone(),
            id,
            ask,
        };
        if let Some(rx) = started {
            // A closed channel means the engine dropped the waiter, which it never does.
            rx.await.map_err(|_| EngineError::Poisoned)?;
        }
        Ok(slot)
    }

    fn remove(&self, id: SeqId) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        inner.starts.remove(&id);
        for started in inner.scheduler.remove(id) {
            if let Some(tx) = inner.starts.remove(&started) {
                // The waiter is gone only if it was dropped, and then its drop removes it.
                let _ = tx.send(());
            }
        }
    }
}

/// A sequence admitted to the engine (or, before `admit` returns, waiting for it). Dropping it
/// frees its slot and KV cache, which starts the next waiting sequences.
pub struct Slot {
    engine: Arc<Engine>,
    id: SeqId,
    ask: Ask,
}

impl Slot {
    /// Prefill: the first token is ready when this returns.
    pub async fn prefill(&self) {
        sleep(self.engine.params.prefill(self.ask.prompt_tokens)).await;
    }

    /// Decodes `tokens` more tokens at the pace of the batch running now.
    pub async fn decode(&self, tokens: u32) {
        let batch = self.engine.load().running.max(1);
        sleep(self.engine.params.step(batch).saturating_mul(tokens)).await;
    }

    /// How long one token takes with the batch running now.
    pub fn step(&self) -> Duration {
        self.engine.params.step(self.engine.load().running.max(1))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.engine.remove(self.id);
    }
}

/// A zero wait costs no timer: a zero-latency engine stays free.
async fn sleep(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}
