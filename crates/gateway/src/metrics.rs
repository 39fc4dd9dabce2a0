//! Prometheus metrics: names in one place, one process-wide recorder, and the only way to
//! emit them ([`counter`], [`gauge`], [`histogram`]), whose label values are [`LabelValue`]s:
//! a name the config declares, a word fixed in the code, or `unknown`. Every label value of a
//! series lives as long as the process, so nothing a caller sends (a made-up model name, a
//! route policy's number, words of a prompt) may become one. `clippy.toml` disallows the
//! `metrics` macros everywhere else.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::{LazyLock, OnceLock, RwLock};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use switchyard_control::{Config, Policy};

pub const REQUESTS: &str = "switchyard_requests_total";
pub const REQUEST_DURATION: &str = "switchyard_request_duration_seconds";
pub const TTFT: &str = "switchyard_time_to_first_token_seconds";
pub const TOKENS: &str = "switchyard_tokens_total";
pub const COST: &str = "switchyard_cost_nanousd_total";
pub const UPSTREAM_ERRORS: &str = "switchyard_upstream_errors_total";
pub const RETRIES: &str = "switchyard_retries_total";
pub const FALLBACKS: &str = "switchyard_fallbacks_total";
pub const BREAKER_STATE: &str = "switchyard_breaker_state";
pub const INFLIGHT: &str = "switchyard_upstream_inflight";
pub const QUEUE_DEPTH: &str = "switchyard_telemetry_queue_depth";
pub const RECORDS_DROPPED: &str = "switchyard_telemetry_dropped_total";
pub const RECORDS_WRITTEN: &str = "switchyard_telemetry_written_total";
pub const CONTENT_SHED: &str = "switchyard_telemetry_content_shed_total";
pub const CACHE_LOOKUPS: &str = "switchyard_cache_lookups_total";
pub const CACHE_SAVED: &str = "switchyard_cache_saved_nanousd_total";
pub const CACHE_STORES: &str = "switchyard_cache_stores_total";
pub const CACHE_GUARDED: &str = "switchyard_cache_guard_refusals_total";
pub const CACHE_ENTRIES: &str = "switchyard_cache_entries";
pub const CACHE_BYTES: &str = "switchyard_cache_bytes";
pub const ROUTE_DECISIONS: &str = "switchyard_route_decisions_total";
pub const ROUTING_SAVED: &str = "switchyard_routing_saved_nanousd_total";
pub const GUARD_VERDICTS: &str = "switchyard_guard_verdicts_total";
pub const GUARD_DURATION: &str = "switchyard_guard_duration_seconds";
pub const HARMFUL_REQUESTS: &str = "switchyard_harmful_requests_total";
pub const ROLLOUT_TRANSITIONS: &str = "switchyard_rollout_transitions_total";
pub const CONFIG_APPLIED: &str = "switchyard_config_applied_total";
pub const QUALITY_ANSWERS: &str = "switchyard_quality_answers_total";
pub const QUALITY_BAD: &str = "switchyard_quality_bad_total";
pub const REDIS_UP: &str = "switchyard_redis_up";
pub const REDIS_OUTAGES: &str = "switchyard_redis_outages_total";
pub const REDIS_FALLBACK: &str = "switchyard_redis_fallback_total";
pub const REPLICAS: &str = "switchyard_replicas";
pub const SETTLEMENTS_DROPPED: &str = "switchyard_redis_settlements_dropped_total";
pub const CACHE_SHARED: &str = "switchyard_cache_shared_total";
pub const ENGINE_REQUESTS: &str = "switchyard_engine_requests";
pub const ENGINE_KV_USAGE: &str = "switchyard_engine_kv_usage";
pub const ENGINE_UP: &str = "switchyard_engine_metrics_up";
pub const ADMISSION_DEPTH: &str = "switchyard_queue_depth";
pub const QUEUE_WAIT: &str = "switchyard_queue_wait_seconds";
pub const SATURATION: &str = "switchyard_saturation";
pub const ADMISSION_SHED: &str = "switchyard_shed_total";
pub const PREEMPTIONS: &str = "switchyard_preemptions_total";
pub const DESIRED_REPLICAS: &str = "switchyard_desired_replicas";
pub const BATCH_BACKLOG: &str = "switchyard_batch_backlog_lines";
pub const BATCH_RUNNING: &str = "switchyard_batch_running_lines";
pub const SPANS_DROPPED: &str = "switchyard_otlp_spans_dropped_total";
pub const SPAN_EXPORTS: &str = "switchyard_otlp_exports_total";

const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// The process-wide recorder. Installed on first use; later calls (several gateways in one
/// test process) share it.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder was installed first; metrics then go there.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            handle
        })
        .clone()
}

/// The OTLP export's own health (`otel.rs`).
fn describe_traces() {
    use metrics::describe_counter;
    describe_counter!(
        SPANS_DROPPED,
        "Trace spans dropped because the OTLP export queue was full."
    );
    describe_counter!(
        SPAN_EXPORTS,
        "OTLP trace exports (batches of spans), by outcome (ok, error)."
    );
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_shared();
    describe_engines();
    describe_admission();
    describe_traces();
    describe_counter!(
        ROLLOUT_TRANSITIONS,
        "Rollout state changes, by rollout and the state entered (rolled_back is the one to alert on)."
    );
    describe_counter!(
        CONFIG_APPLIED,
        "Config versions applied, by action (config.apply, config.rollback)."
    );
    describe_counter!(
        REQUESTS,
        "Requests answered, by endpoint, model, route alias named (empty for a model) and HTTP status."
    );
    describe_histogram!(
        REQUEST_DURATION,
        Unit::Seconds,
        "Time from request to the last byte of the answer, by model and route."
    );
    describe_histogram!(
        TTFT,
        Unit::Seconds,
        "Time from request to the first streamed token, by model and route."
    );
    describe_counter!(
        QUALITY_ANSWERS,
        "Chat requests answered (the quality SLI's events), by model and route."
    );
    describe_counter!(
        QUALITY_BAD,
        "Answers that failed an output guard or got negative feedback (counted when the feedback comes), by model and route."
    );
    describe_counter!(
        TOKENS,
        "Tokens by model and direction (prompt, completion)."
    );
    describe_counter!(COST, "Spend in nano-dollars by model and tenant.");
    describe_counter!(
        UPSTREAM_ERRORS,
        "Failed upstream attempts by deployment and kind."
    );
    describe_counter!(RETRIES, "Attempts beyond the first, by model.");
    describe_counter!(FALLBACKS, "Requests answered by a fallback model.");
    describe_gauge!(
        BREAKER_STATE,
        "Circuit breaker per deployment: 0 closed, 1 half-open, 2 open."
    );
    describe_gauge!(INFLIGHT, "Upstream calls in flight per deployment.");
    describe_gauge!(QUEUE_DEPTH, "Request records waiting to be written.");
    describe_counter!(
        RECORDS_DROPPED,
        "Request records dropped because the queue was full."
    );
    describe_counter!(RECORDS_WRITTEN, "Request records written to the store.");
    describe_counter!(
        CONTENT_SHED,
        "Request records written without their prompt and answer: the writer was behind."
    );
    describe_counter!(
        CACHE_LOOKUPS,
        "Cache outcomes by route: hit-exact, hit-semantic, miss, bypass."
    );
    describe_counter!(
        CACHE_SAVED,
        "What cache hits would have cost upstream, in nano-dollars, by route."
    );
    describe_counter!(
        CACHE_STORES,
        "Answers offered to the cache: stored or refused."
    );
    describe_counter!(
        CACHE_GUARDED,
        "Semantic candidates the false-hit guard or the pair check refused, by reason."
    );
    describe_gauge!(CACHE_ENTRIES, "Entries in the response cache.");
    describe_gauge!(CACHE_BYTES, "Bytes held by the response cache.");
    describe_counter!(
        ROUTE_DECISIONS,
        "Router decisions by route, policy, chosen model and how (rule or classifier)."
    );
    describe_counter!(
        GUARD_VERDICTS,
        "Guard verdicts by guard and outcome (pass, masked, flagged, blocked, failed, fixed, stopped, replaced, error)."
    );
    describe_counter!(HARMFUL_REQUESTS, "Harmful requests by area and outcome.");
    describe_histogram!(
        GUARD_DURATION,
        Unit::Seconds,
        "Time each guard took on a request."
    );
    describe_counter!(
        ROUTING_SAVED,
        "Cost of routed answers on the route's most expensive candidate minus their cost, in nano-dollars."
    );
}

/// Self-hosted engines' load as the gateway last read it (`data_plane::engines`).
fn describe_engines() {
    use metrics::describe_gauge;
    describe_gauge!(
        ENGINE_REQUESTS,
        "Requests the engine behind a deployment reported, by state (waiting, running); NaN while its metrics cannot be read."
    );
    describe_gauge!(
        ENGINE_KV_USAGE,
        "KV-cache use (0 to 1) the engine behind a deployment reported."
    );
    describe_gauge!(
        ENGINE_UP,
        "1 while the engine behind a deployment answers its metrics (the pick uses its load), 0 when not (the pick falls back to calls in flight)."
    );
}

/// The admission queues' metrics: what an autoscaler reads (docs/scaling.md).
fn describe_admission() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_gauge!(
        BATCH_BACKLOG,
        "Lines of the open Batch API batches (the oldest 100) not ended yet, the fleet's: every replica reads the same store."
    );
    describe_gauge!(
        BATCH_RUNNING,
        "Batch API lines this replica runs now (at most [batch] concurrency)."
    );
    describe_gauge!(
        ADMISSION_DEPTH,
        "Requests waiting for a deployment's capacity, by deployment and priority class."
    );
    describe_histogram!(
        QUEUE_WAIT,
        Unit::Seconds,
        "Time requests waited for a deployment's capacity before running, by deployment and class."
    );
    describe_gauge!(
        SATURATION,
        "Requests (or tokens) in flight over a deployment's capacity."
    );
    describe_counter!(
        ADMISSION_SHED,
        "Requests refused with 503 overloaded (queue full or waited too long), by deployment and class."
    );
    describe_counter!(
        PREEMPTIONS,
        "Batch requests whose upstream call was cancelled for urgent work and queued again, by deployment and class."
    );
    describe_gauge!(
        DESIRED_REPLICAS,
        "Deployments a model needs for its target utilisation, as Kubernetes' HPA computes it: ceil(replicas × utilisation ÷ target)."
    );
}

/// The state a fleet shares through Redis (`data_plane::shared`).
fn describe_shared() {
    use metrics::{describe_counter, describe_gauge};
    describe_gauge!(
        REDIS_UP,
        "1 while the shared Redis answers, 0 during an outage (limits per replica or refused, cache local)."
    );
    describe_counter!(
        REDIS_OUTAGES,
        "Times the shared Redis became unreachable, by the part that noticed (counters, cache, heartbeat)."
    );
    describe_counter!(
        REDIS_FALLBACK,
        "Admissions decided without Redis during an outage, by mode (per_replica, refused)."
    );
    describe_gauge!(
        REPLICAS,
        "Replicas alive at the last heartbeat; limits are divided by it during a Redis outage."
    );
    describe_counter!(
        SETTLEMENTS_DROPPED,
        "Settlements dropped because their queue to Redis was full (their reservations stay taken)."
    );
    describe_counter!(
        CACHE_SHARED,
        "The cache's shared tier: exact lookups (hit, miss, bypassed while Redis is down), entries written or dropped, entries received from other replicas."
    );
}

/// One answer of `model` (on `route`, the alias named) turned out bad for the quality SLI:
/// when it ends with a failed output guard, or later when negative feedback comes.
pub fn quality_bad(labels: &Labels, model: &str, route: Option<&str>) {
    counter(
        QUALITY_BAD,
        &[
            ("model", labels.target(model)),
            ("route", labels.route(route.unwrap_or_default())),
        ],
    )
    .increment(1);
}

/// A metric label's value, of a set the process cannot be made to grow: made by [`Labels`]
/// from the config's names, or fixed in the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelValue(Cow<'static, str>);

impl LabelValue {
    /// What a name the config does not declare is counted under.
    pub const UNKNOWN: LabelValue = LabelValue(Cow::Borrowed("unknown"));
    /// No value: the request named no model, the model no route.
    pub const NONE: LabelValue = LabelValue(Cow::Borrowed(""));

    /// A word written in the code (an outcome, a direction, an error kind).
    pub const fn fixed(word: &'static str) -> Self {
        LabelValue(Cow::Borrowed(word))
    }

    /// An HTTP status: a number of 100-599, else `unknown`.
    pub fn status(status: u16) -> Self {
        if (100..600).contains(&status) {
            LabelValue(Cow::Owned(status.to_string()))
        } else {
            Self::UNKNOWN
        }
    }

    /// A route policy: its name, or `bar` for any number (`auto:0.37`), so a caller cannot
    /// mint a value per number.
    pub fn policy(policy: Policy) -> Self {
        Self::fixed(match policy {
            Policy::Cheap => "cheap",
            Policy::Balanced => "balanced",
            Policy::Best => "best",
            Policy::Bar(_) => "bar",
        })
    }

    /// A rollout's id: only the admin key creates rollouts, each one stored and audited, so
    /// these are as many as the operator made.
    pub fn rollout(rollout: &switchyard_rollout::Rollout) -> Self {
        LabelValue(Cow::Owned(rollout.id().to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The names one config declares, the only ones that pass into label values: models, route
/// aliases, deployments (`provider/upstream_model`) and tenants. Built with the pipeline.
#[derive(Debug, Default)]
pub struct Labels {
    models: HashSet<String>,
    routes: HashSet<String>,
    deployments: HashSet<String>,
    tenants: HashSet<String>,
}

impl Labels {
    pub fn new(config: &Config) -> Self {
        Labels {
            models: config.models.keys().cloned().collect(),
            routes: config.routes.keys().cloned().collect(),
            deployments: config
                .models
                .values()
                .flat_map(|m| m.deployments.iter().map(|d| d.label()))
                .collect(),
            tenants: config.keys.iter().map(|k| k.tenant.clone()).collect(),
        }
    }

    /// A configured model's name.
    pub fn model(&self, name: &str) -> LabelValue {
        Self::known(&self.models, name)
    }

    /// A configured route alias.
    pub fn route(&self, name: &str) -> LabelValue {
        Self::known(&self.routes, name)
    }

    pub fn deployment(&self, label: &str) -> LabelValue {
        Self::known(&self.deployments, label)
    }

    pub fn tenant(&self, tenant: &str) -> LabelValue {
        Self::known(&self.tenants, tenant)
    }

    /// What a request's `model` names: a configured model, a configured route alias, or an
    /// alias with a policy suffix (`auto:cheap`; any number is `auto:bar`).
    pub fn target(&self, name: &str) -> LabelValue {
        if self.routes.contains(name) {
            return Self::known(&self.routes, name);
        }
        match Policy::split_model(name) {
            Ok((alias, Some(policy))) if self.routes.contains(alias) => LabelValue(Cow::Owned(
                format!("{alias}:{}", LabelValue::policy(policy).as_str()),
            )),
            _ => Self::known(&self.models, name),
        }
    }

    fn known(names: &HashSet<String>, name: &str) -> LabelValue {
        if name.is_empty() {
            LabelValue::NONE
        } else if names.contains(name) {
            LabelValue(Cow::Owned(name.to_owned()))
        } else {
            LabelValue::UNKNOWN
        }
    }
}

fn key(labels: &[(&'static str, LabelValue)]) -> Vec<metrics::Label> {
    labels
        .iter()
        .map(|(name, value)| metrics::Label::new(*name, value.0.clone()))
        .collect()
}

/// Handles already registered, by name and labels: looking one up through the `metrics`
/// macros builds its key (a vector of labels, owned copies of the values) and hashes that into
/// the recorder's registry each time, about 1,700 instructions, five or more times a request
/// (4% of a plain request, issue 18). Label values are bounded ([`LabelValue`]), so these maps
/// grow no further than `/metrics` does.
struct Handles {
    counters: Cache<metrics::Counter>,
    gauges: Cache<metrics::Gauge>,
    histograms: Cache<metrics::Histogram>,
}

/// foldhash, not SipHash: the ids are the code's and the config's names, nothing a caller
/// chooses, and hashing them was a third of a cached lookup.
type Cache<H> = RwLock<HashMap<Vec<u8>, H, foldhash::fast::RandomState>>;

static HANDLES: LazyLock<Handles> = LazyLock::new(|| {
    // The recorder first: a handle made before it exists would count nowhere, for good.
    handle();
    Handles {
        counters: RwLock::default(),
        gauges: RwLock::default(),
        histograms: RwLock::default(),
    }
});

/// The handle of `name` with `labels` from `cache`, registered by `register` the first time.
fn cached<H: Clone>(
    cache: &Cache<H>,
    name: &'static str,
    labels: &[(&'static str, LabelValue)],
    register: impl FnOnce() -> H,
) -> H {
    // The name, each label and each value, each followed by 0xFF: a byte no UTF-8 text
    // holds, so two label sets never make the same id, whatever a config's names contain.
    let mut id = Vec::with_capacity(96);
    id.extend_from_slice(name.as_bytes());
    id.push(0xFF);
    for (label, value) in labels {
        id.extend_from_slice(label.as_bytes());
        id.push(0xFF);
        id.extend_from_slice(value.as_str().as_bytes());
        id.push(0xFF);
    }
    if let Some(handle) = cache.read().ok().and_then(|map| map.get(&id).cloned()) {
        return handle;
    }
    let handle = register();
    if let Ok(mut map) = cache.write() {
        map.entry(id).or_insert_with(|| handle.clone());
    }
    handle
}

/// The counter `name` with these labels.
#[expect(
    clippy::disallowed_macros,
    reason = "the one place label values are checked"
)]
pub fn counter(name: &'static str, labels: &[(&'static str, LabelValue)]) -> metrics::Counter {
    cached(&HANDLES.counters, name, labels, || {
        metrics::counter!(name, key(labels))
    })
}

#[expect(
    clippy::disallowed_macros,
    reason = "the one place label values are checked"
)]
pub fn gauge(name: &'static str, labels: &[(&'static str, LabelValue)]) -> metrics::Gauge {
    cached(&HANDLES.gauges, name, labels, || {
        metrics::gauge!(name, key(labels))
    })
}

#[expect(
    clippy::disallowed_macros,
    reason = "the one place label values are checked"
)]
pub fn histogram(name: &'static str, labels: &[(&'static str, LabelValue)]) -> metrics::Histogram {
    cached(&HANDLES.histograms, name, labels, || {
        metrics::histogram!(name, key(labels))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line_of(rendered: &str, series: &str) -> Option<String> {
        rendered
            .lines()
            .find(|l| l.starts_with(series))
            .map(str::to_owned)
    }

    #[test]
    fn a_kept_handle_counts_in_its_own_series() {
        const NAME: &str = "switchyard_test_kept_handles_total";
        // Values a join without an unambiguous separator would confuse.
        let sets = [
            [
                ("a", LabelValue::fixed("x")),
                ("b", LabelValue::fixed("y=z")),
            ],
            [
                ("a", LabelValue::fixed("x=b")),
                ("b", LabelValue::fixed("z")),
            ],
        ];
        for _ in 0..3 {
            counter(NAME, &sets[0]).increment(1);
        }
        counter(NAME, &sets[1]).increment(5);
        let rendered = handle().render();
        assert_eq!(
            line_of(&rendered, &format!("{NAME}{{a=\"x\",b=\"y=z\"}}")).as_deref(),
            Some(format!("{NAME}{{a=\"x\",b=\"y=z\"}} 3").as_str())
        );
        assert_eq!(
            line_of(&rendered, &format!("{NAME}{{a=\"x=b\",b=\"z\"}}")).as_deref(),
            Some(format!("{NAME}{{a=\"x=b\",b=\"z\"}} 5").as_str())
        );
    }
}
