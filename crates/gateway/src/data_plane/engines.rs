//! Self-hosted engines' load, read from their own metrics, for the deployment pick.
//!
//! Each `openai` provider that names its `engine` gets an [`EngineWatch`] and a poller,
//! started with the pipeline and aborted when it is dropped (a config swap), off the request
//! path: every `metrics_poll_ms` it reads the engine's `/metrics` with a timeout, parses it
//! (`switchyard_engine::read`) and keeps the reading, or forgets it when the read fails.
//!
//! The pick ([`p2c_loads`], called by `dispatch::ModelRuntime::pick`):
//! 1. Only when every candidate replica has an engine with a fresh reading (younger than
//!    three polls, and at least [`MIN_FRESH`]); otherwise the pick is today's weighted power
//!    of two choices on the gateway's own calls in flight. A stale or failed read never
//!    steers traffic.
//! 2. A reading is brought up to now with the calls sent to the engine since it was taken:
//!    they wait if the engine had a queue, else they run. So the replica that looked least
//!    loaded does not get every request until the next poll.
//! 3. The candidates kept are those with the fewest waiting requests per unit of weight;
//!    among them, those whose KV cache is not nearly full ([`KV_FULL`]), when any are.
//! 4. Among those, weighted power of two choices on the engine's running requests.
//!
//! Breakers still come first: only deployments whose breaker admits a call are candidates.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use switchyard_control::{Config, EngineKind, ProviderSpec};
use switchyard_engine::Reading;
use switchyard_resilience::Load;

use crate::data_plane::shared::AbortOnDrop;
use crate::metrics::{self as m, LabelValue, Labels};

/// A reading is fresh for three polls, and never less than this (a poll may take up to its
/// timeout).
pub const MIN_FRESH: Duration = Duration::from_secs(2);

/// A read gives up after the poll interval, but never sooner than this: a busy engine answers
/// its metrics late, and a slow read is still a read.
const MIN_READ_TIMEOUT: Duration = Duration::from_secs(1);

/// The most of a metrics body read; vLLM's is tens of kilobytes.
const MAX_BODY: usize = 4 << 20;

/// KV-cache use from which an engine is about to queue (vLLM preempts near full).
pub const KV_FULL: f64 = 0.95;

/// One engine's latest load, as the pick sees it.
pub struct EngineWatch {
    kind: EngineKind,
    poll: Duration,
    latest: Mutex<Option<(Reading, Instant)>>,
    /// Calls sent to this engine since the latest reading (step 2 of the module comment).
    sent_since: AtomicU32,
    /// The deployments on this engine, as metric labels.
    labels: Vec<LabelValue>,
}

/// A reading brought up to now (step 2).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Estimate {
    waiting: u32,
    running: u32,
    kv_full: bool,
}

impl EngineWatch {
    fn new(kind: EngineKind, poll: Duration, labels: Vec<LabelValue>) -> Self {
        EngineWatch {
            kind,
            poll,
            latest: Mutex::new(None),
            sent_since: AtomicU32::new(0),
            labels,
        }
    }

    /// A call was sent to this engine.
    pub fn sent(&self) {
        self.sent_since.fetch_add(1, Ordering::Relaxed);
    }

    fn fresh_for(&self) -> Duration {
        (self.poll * 3).max(MIN_FRESH)
    }

    fn store(&self, reading: Option<Reading>, at: Instant) {
        if let Ok(mut latest) = self.latest.lock() {
            *latest = reading.map(|r| (r, at));
            self.sent_since.store(0, Ordering::Relaxed);
        }
        for deployment in &self.labels {
            let up = |state: &'static str| {
                m::gauge(
                    m::ENGINE_REQUESTS,
                    &[
                        ("deployment", deployment.clone()),
                        ("state", LabelValue::fixed(state)),
                    ],
                )
            };
            match reading {
                Some(r) => {
                    up("waiting").set(f64::from(r.waiting));
                    up("running").set(f64::from(r.running));
                    if let Some(kv) = r.kv_usage {
                        m::gauge(m::ENGINE_KV_USAGE, &[("deployment", deployment.clone())]).set(kv);
                    }
                }
                None => {
                    up("waiting").set(f64::NAN);
                    up("running").set(f64::NAN);
                }
            }
            m::gauge(m::ENGINE_UP, &[("deployment", deployment.clone())])
                .set(if reading.is_some() { 1.0 } else { 0.0 });
        }
    }

    /// Step 1 and 2: the load now, if the reading is fresh.
    fn estimate(&self, at: Instant) -> Option<Estimate> {
        let (r, when) = (*self.latest.lock().ok()?)?;
        if at.saturating_duration_since(when) > self.fresh_for() {
            return None;
        }
        let sent = self.sent_since.load(Ordering::Relaxed);
        let (waiting, running) = if r.waiting > 0 {
            (r.waiting.saturating_add(sent), r.running)
        } else {
            (0, r.running.saturating_add(sent))
        };
        Some(Estimate {
            waiting,
            running,
            kv_full: r.kv_usage.is_some_and(|kv| kv >= KV_FULL),
        })
    }
}

/// A replica the pick may choose.
pub struct Candidate<'a> {
    pub weight: u32,
    /// The gateway's own calls in flight to it.
    pub outstanding: u32,
    pub engine: Option<&'a EngineWatch>,
}

/// The loads the weighted power of two choices compares (module comment): the gateway's
/// calls in flight, or, when every candidate's engine has a fresh reading, the engines'
/// running requests with weight 0 (never picked) for all but the least loaded.
pub fn p2c_loads(candidates: &[Candidate<'_>], at: Instant) -> Vec<Load> {
    let estimates: Option<Vec<Estimate>> =
        candidates.iter().map(|c| c.engine?.estimate(at)).collect();
    let best = estimates.as_ref().and_then(|es| {
        candidates
            .iter()
            .zip(es)
            .filter(|(c, _)| c.weight > 0)
            .map(|(c, e)| (c.weight, *e))
            .min_by(|(wa, a), (wb, b)| {
                // waiting_a / weight_a against waiting_b / weight_b, without division.
                let ra = u64::from(a.waiting) * u64::from(*wb);
                let rb = u64::from(b.waiting) * u64::from(*wa);
                ra.cmp(&rb).then(a.kv_full.cmp(&b.kv_full))
            })
    });
    match (estimates, best) {
        (Some(es), Some((best_weight, best))) => candidates
            .iter()
            .zip(es)
            .map(|(c, e)| {
                let as_good = u64::from(e.waiting) * u64::from(best_weight)
                    == u64::from(best.waiting) * u64::from(c.weight)
                    && e.kv_full == best.kv_full;
                Load {
                    weight: if as_good { c.weight } else { 0 },
                    outstanding: e.running,
                }
            })
            .collect(),
        _ => candidates
            .iter()
            .map(|c| Load {
                weight: c.weight,
                outstanding: c.outstanding,
            })
            .collect(),
    }
}

/// The engines of one pipeline: a watch per provider that names its engine, and their
/// pollers, aborted when the pipeline is dropped.
#[derive(Default)]
pub struct Engines {
    watches: HashMap<String, Arc<EngineWatch>>,
    _pollers: Vec<AbortOnDrop>,
}

impl Engines {
    /// Starts a poller per engine. Outside a tokio runtime (a config check) nothing polls,
    /// and the pick stays today's.
    pub fn start(config: &Config, labels: &Labels) -> Result<Self, reqwest::Error> {
        let mut engines = Engines::default();
        let runtime = tokio::runtime::Handle::try_current().ok();
        for (name, spec) in &config.providers {
            let ProviderSpec::OpenAi(o) = spec else {
                continue;
            };
            let Some(engine) = &o.engine else { continue };
            let deployments = config
                .models
                .values()
                .flat_map(|m| &m.deployments)
                .filter(|d| d.provider == *name)
                .map(|d| labels.deployment(&d.label()))
                .collect();
            let watch = Arc::new(EngineWatch::new(engine.kind, engine.poll, deployments));
            engines.watches.insert(name.clone(), watch.clone());
            let (Some(runtime), Ok(url)) = (&runtime, reqwest::Url::parse(&engine.metrics_url))
            else {
                continue;
            };
            let client = switchyard_providers::http_client(o.connect_timeout)?;
            let _entered = runtime.enter();
            #[expect(
                clippy::disallowed_methods,
                reason = "aborted with the pipeline; it only reads an engine's metrics"
            )]
            let task = tokio::spawn(poll_loop(watch, client, url));
            engines._pollers.push(AbortOnDrop(task));
        }
        Ok(engines)
    }

    /// The watch of provider `name`'s engine, if it names one.
    pub fn watch(&self, provider: &str) -> Option<Arc<EngineWatch>> {
        self.watches.get(provider).cloned()
    }
}

#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error("{0}")]
    Http(#[from] reqwest::Error),
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("the body is over {MAX_BODY} bytes")]
    TooLarge,
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Gauge(#[from] switchyard_engine::MissingGauge),
}

async fn poll_loop(watch: Arc<EngineWatch>, client: reqwest::Client, url: reqwest::Url) {
    let mut tick = tokio::time::interval(watch.poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let limit = watch.poll.max(MIN_READ_TIMEOUT);
    let mut failing = false;
    loop {
        tick.tick().await;
        let read = match tokio::time::timeout(limit, read(&client, &url, watch.kind)).await {
            Ok(read) => read,
            Err(_) => Err(ReadError::Timeout(limit)),
        };
        let at = tokio::time::Instant::now().into_std();
        match read {
            Ok(reading) => {
                if failing {
                    tracing::info!(url = %url, "engine metrics are read again");
                }
                failing = false;
                watch.store(Some(reading), at);
            }
            Err(e) => {
                // Once per outage, not once per poll.
                if !failing {
                    tracing::warn!(url = %url, error = %e, "cannot read the engine's metrics; its replicas are picked without them");
                }
                failing = true;
                watch.store(None, at);
            }
        }
    }
}

async fn read(
    client: &reqwest::Client,
    url: &reqwest::Url,
    kind: EngineKind,
) -> Result<Reading, ReadError> {
    let mut response = client.get(url.clone()).send().await?;
    if !response.status().is_success() {
        return Err(ReadError::Status(response.status().as_u16()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(switchyard_engine::read(
        kind,
        &String::from_utf8_lossy(&body),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(waiting: u32, running: u32, kv: Option<f64>) -> Option<Reading> {
        Some(Reading {
            waiting,
            running,
            kv_usage: kv,
        })
    }

    fn watch(r: Option<Reading>, at: Instant) -> EngineWatch {
        let w = EngineWatch::new(EngineKind::Vllm, Duration::from_millis(250), Vec::new());
        w.store(r, at);
        w
    }

    #[test]
    fn estimates_count_what_was_sent_since_the_reading() {
        let at = Instant::now();
        let queued = watch(reading(2, 4, Some(0.5)), at);
        queued.sent();
        let e = queued.estimate(at).unwrap();
        assert_eq!((e.waiting, e.running, e.kv_full), (3, 4, false));

        let idle = watch(reading(0, 1, Some(0.96)), at);
        idle.sent();
        idle.sent();
        let e = idle.estimate(at).unwrap();
        assert_eq!((e.waiting, e.running, e.kv_full), (0, 3, true));

        idle.store(reading(0, 0, None), at);
        assert_eq!(
            idle.estimate(at).unwrap().running,
            0,
            "a reading resets the count"
        );
    }

    fn candidate(weight: u32, outstanding: u32, engine: Option<&EngineWatch>) -> Candidate<'_> {
        Candidate {
            weight,
            outstanding,
            engine,
        }
    }

    fn pairs(loads: &[Load]) -> Vec<(u32, u32)> {
        loads.iter().map(|l| (l.weight, l.outstanding)).collect()
    }

    #[test]
    fn the_least_waiting_replicas_are_kept_then_compared_on_running() {
        let at = Instant::now();
        let busy = watch(reading(5, 8, Some(0.5)), at);
        let free = watch(reading(0, 8, Some(0.5)), at);
        let also_free = watch(reading(0, 2, Some(0.99)), at);
        let heavy = watch(reading(4, 1, None), at);
        let loads = p2c_loads(
            &[
                candidate(1, 0, Some(&busy)),
                candidate(1, 9, Some(&free)),
                candidate(1, 0, Some(&also_free)),
            ],
            at,
        );
        // Nobody waits on the last two; the last one's KV cache is nearly full.
        assert_eq!(pairs(&loads), [(0, 8), (1, 8), (0, 2)]);
        // Twice the weight takes twice the queue: 4 waiting over weight 2 beats 5 over 1.
        let loads = p2c_loads(
            &[candidate(1, 0, Some(&busy)), candidate(2, 0, Some(&heavy))],
            at,
        );
        assert_eq!(pairs(&loads), [(0, 8), (2, 1)]);
    }

    #[test]
    fn without_a_fresh_reading_for_every_replica_the_pick_is_todays() {
        let at = Instant::now();
        let known = watch(reading(5, 8, None), at);
        let failed = watch(None, at);
        for others in [None, Some(&failed)] {
            let loads = p2c_loads(
                &[candidate(1, 3, Some(&known)), candidate(2, 4, others)],
                at,
            );
            assert_eq!(pairs(&loads), [(1, 3), (2, 4)]);
        }
        let stale = p2c_loads(
            &[candidate(1, 3, Some(&known))],
            at + Duration::from_secs(60),
        );
        assert_eq!(pairs(&stale), [(1, 3)]);
    }

    #[test]
    fn stale_or_failed_readings_are_not_used() {
        let at = Instant::now();
        let w = watch(reading(1, 1, None), at);
        assert!(w.estimate(at + MIN_FRESH).is_some());
        assert!(w
            .estimate(at + MIN_FRESH + Duration::from_millis(1))
            .is_none());
        w.store(None, at);
        assert!(w.estimate(at).is_none());
    }
}
