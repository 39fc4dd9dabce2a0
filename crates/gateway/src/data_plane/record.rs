//! The request record and the guard that guarantees it is written exactly once: when the
//! request ends, when it fails, or when the client hangs up and the request's future or
//! stream is dropped mid-way. Usage accounting (limits, spend) settles in the same place.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use opentelemetry_sdk::trace::SdkTracer;

use switchyard_control::Price;
use switchyard_store::telemetry::TelemetrySender;
use switchyard_store::RequestRecord;

use switchyard_admission::Class;

use crate::data_plane::admission::Ask;
use crate::data_plane::guards::Outcome;
use crate::data_plane::keys::{Admission, KeyState, RateLimits};
use crate::data_plane::trace::{Attempt, AttemptInfo, RequestTrace};
use crate::metrics::{self as m, LabelValue, Labels};
use crate::otel::{GenAiMetrics, GenAiSample};

pub struct RecordGuard {
    record: RequestRecord,
    started: Instant,
    telemetry: TelemetrySender,
    admission: Option<Admission>,
    /// The key's rate limits as admission left them, for `x-ratelimit-*`.
    rate_limits: RateLimits,
    price: Price,
    /// The price savings are counted against (the route's most expensive candidate).
    baseline_price: Option<Price>,
    /// The answer came from the cache: it costs nothing and uses no provider tokens.
    from_cache: bool,
    /// Cost of calls made for the request besides the answer (an LLM judge's), in nano-USD.
    extra_cost: u64,
    /// Upstream calls cancelled by a preemption, and the prompt tokens charged for them.
    cancelled_calls: u32,
    cancelled_prompt_tokens: u32,
    /// A Batch API line: its cost is at the batch price.
    batch_price: Option<switchyard_control::BatchSpec>,
    /// `x-switchyard-route`, when a router decided.
    route_header: Option<String>,
    /// `x-switchyard-guard`, when any guard ran.
    guard_header: Option<String>,
    /// (guard, outcome, seconds) of every verdict, for metrics at the end.
    guard_metrics: Vec<(&'static str, Outcome, f64)>,
    access_log: bool,
    done: bool,
    /// The rollout arm the request took, and where its outcome goes.
    arm: Option<(
        crate::data_plane::arms::Taken,
        crate::data_plane::arms::SharedStats,
    )>,
    /// The SLOs a chat request counts towards.
    slos: Option<Arc<dyn OutcomeSink>>,
    /// The configured route alias the request named (the `route` label, the SLOs' scope).
    route: Option<String>,
    /// The request's span (`edge::server::request_span`): the record may be finished where it is
    /// not entered (a stream dropped by a client that hung up), and logs there still name it.
    span: tracing::Span,
    /// The prompt and answer to store with the record (`[telemetry] content = "masked"`).
    content: Option<crate::data_plane::content::Captured>,
    /// The `endpoint` label.
    endpoint: &'static str,
    /// The names of the config the request runs on: what its metric labels may say.
    labels: Arc<Labels>,
    /// The request's priority class (the header's, else its key's, within the key's maximum).
    priority: Class,
    /// What it holds of a deployment's capacity while it runs: its prompt and output estimate.
    capacity_tokens: u64,
    /// Its trace, when traces are exported (`trace.rs`); `None` costs nothing.
    trace: Option<Box<RequestTrace>>,
    /// The GenAI metrics over OTLP, when exported.
    gen_ai: Option<Arc<GenAiMetrics>>,
}

/// Where a finished request's outcome goes besides its record: the control plane's SLOs
/// (`control_plane::slos::SloRuntime`). The data plane knows only this seam.
pub trait OutcomeSink: Send + Sync {
    /// Counts a finished request that named the route alias `route`; returns its quality
    /// verdict (`None`: it was no answer).
    fn observe(
        &self,
        record: &RequestRecord,
        route: Option<&str>,
        guard_outcomes: &[Outcome],
    ) -> Option<bool>;
}

/// The longest request id taken from a client (and referred to by feedback).
pub const MAX_REQUEST_ID: usize = 128;

/// Status recorded when the client went away before the answer was complete (nginx's code).
pub const CLIENT_CLOSED: u16 = 499;

impl RecordGuard {
    pub fn new(
        telemetry: TelemetrySender,
        request_id: String,
        endpoint: &'static str,
        access_log: bool,
        labels: Arc<Labels>,
    ) -> Self {
        RecordGuard {
            record: RequestRecord {
                request_id,
                started_at_ms: chrono::Utc::now().timestamp_millis(),
                endpoint: endpoint.to_owned(),
                ..RequestRecord::default()
            },
            started: now(),
            telemetry,
            admission: None,
            rate_limits: RateLimits::default(),
            price: Price::default(),
            baseline_price: None,
            from_cache: false,
            extra_cost: 0,
            cancelled_calls: 0,
            cancelled_prompt_tokens: 0,
            batch_price: None,
            route_header: None,
            guard_header: None,
            guard_metrics: Vec::new(),
            access_log,
            done: false,
            arm: None,
            slos: None,
            route: None,
            span: tracing::Span::current(),
            content: None,
            endpoint,
            labels,
            priority: Class::default(),
            capacity_tokens: 0,
            trace: None,
            gen_ai: None,
        }
    }

    /// Starts the request's trace on `tracer`, under the caller's `traceparent` if valid.
    pub fn start_trace(
        &mut self,
        tracer: &SdkTracer,
        headers: &axum::http::HeaderMap,
        gen_ai: Option<Arc<GenAiMetrics>>,
    ) {
        self.gen_ai = gen_ai;
        self.trace = Some(Box::new(RequestTrace::start(
            tracer,
            headers,
            self.endpoint,
        )));
    }

    /// When a stage starts, if the request is traced (`None`: not traced, nothing to time).
    pub fn stage_clock(&self) -> Option<SystemTime> {
        self.trace.as_ref().map(|_| SystemTime::now())
    }

    /// A finished stage's span, from `since` ([`Self::stage_clock`]) to now; `attributes` is
    /// called only when the request is traced.
    pub fn trace_stage(
        &self,
        name: &'static str,
        since: Option<SystemTime>,
        attributes: impl FnOnce() -> Vec<opentelemetry::KeyValue>,
    ) {
        if let (Some(trace), Some(since)) = (&self.trace, since) {
            trace.stage(name, since, attributes());
        }
    }

    /// The request's parameters, into its span.
    pub fn trace_request(&mut self, request: &switchyard_api::ChatCompletionRequest) {
        if let Some(t) = &mut self.trace {
            t.request(request);
        }
    }

    /// A whole answer's id and finish reasons, into its span.
    pub fn trace_answer(&mut self, response: &switchyard_api::ChatCompletionResponse) {
        if let Some(t) = &mut self.trace {
            t.answer(response);
        }
    }

    /// A streamed chunk's id and finish reasons, into its span.
    pub fn trace_chunk(&mut self, chunk: &switchyard_api::ChatCompletionChunk) {
        if let Some(t) = &mut self.trace {
            t.chunk(chunk);
        }
    }

    /// The kind of provider that answered.
    pub fn trace_provider(&mut self, kind: &'static str) {
        if let Some(t) = &mut self.trace {
            t.provider(kind);
        }
    }

    /// An upstream attempt's span, started now, when the request is traced.
    pub fn trace_attempt<'a>(&self, info: impl FnOnce() -> AttemptInfo<'a>) -> Option<Attempt> {
        self.trace.as_ref().map(|t| t.attempt(&info()))
    }

    /// The request's priority class, from now on in its record and `x-switchyard-priority`.
    pub fn set_priority(&mut self, class: Class) {
        self.priority = class;
        self.record.priority = Some(class.as_str().to_owned());
    }

    /// The priority class (`interactive` until [`Self::set_priority`]); for a provider that
    /// takes one (vLLM's `priority`), read it where dispatch builds the call.
    pub fn priority(&self) -> Class {
        self.priority
    }

    /// The tokens the request holds of a capacity while it runs (prompt and output bound).
    pub fn set_capacity_tokens(&mut self, tokens: u64) {
        self.capacity_tokens = tokens;
    }

    /// What the request asks of a deployment with a `capacity`.
    pub fn ask(&self) -> Ask {
        Ask {
            class: self.priority,
            tenant: self.record.tenant.clone().unwrap_or_default(),
            tokens: self.capacity_tokens,
        }
    }

    /// Time spent waiting for a deployment's capacity.
    pub fn add_queue_wait(&mut self, waited: std::time::Duration) {
        let ms = u64::try_from(waited.as_millis()).unwrap_or(u64::MAX);
        self.record.queue_ms = self.record.queue_ms.saturating_add(ms);
    }

    /// Its upstream call was cancelled for urgent work; it waits for its turn again.
    pub fn add_preemption(&mut self) {
        self.record.preemptions += 1;
    }

    /// A preemption cancelled an upstream call already sent (not one still waiting to start).
    pub fn add_cancelled_call(&mut self) {
        self.cancelled_calls += 1;
    }

    pub fn cancelled_calls(&self) -> u32 {
        self.cancelled_calls
    }

    /// What the cancelled calls are charged: each its prompt's tokens (`prompt_tokens`, as the
    /// gateway counts them), the prefill the upstream did. What an upstream generated before
    /// the cancel is not known: it reports usage only with an answer.
    pub fn charge_cancelled_calls(&mut self, prompt_tokens: u32) {
        self.cancelled_prompt_tokens = self.cancelled_calls.saturating_mul(prompt_tokens);
    }

    pub fn labels(&self) -> &Arc<Labels> {
        &self.labels
    }

    pub fn record_ref(&self) -> &RequestRecord {
        &self.record
    }

    pub fn request_id(&self) -> &str {
        &self.record.request_id
    }

    /// The config version the request runs on (its short form), and that config's names
    /// for the metric labels.
    pub fn runs_on(&mut self, version: &str, labels: Arc<Labels>) {
        self.record.config_version = Some(version.to_owned());
        self.labels = labels;
    }

    /// The stored prompt (`name@version`) rendered into the request.
    pub fn set_prompt(&mut self, prompt: String) {
        self.record.prompt = Some(prompt);
    }

    /// What the client asked for: the model (or route alias) it named, and whether streamed.
    pub fn set_request(&mut self, model: &str, stream: bool) {
        self.record.requested_model = Some(model.to_owned());
        self.record.stream = stream;
    }

    /// The cache missed (or was bypassed): `label` is the record's cache outcome.
    pub fn set_cache_miss(&mut self, label: &str, best_similarity: Option<f32>) {
        self.record.cache = Some(label.to_owned());
        self.record.cache_similarity = best_similarity.map(f64::from);
    }

    /// The answer came from the cache: it costs nothing and uses no provider tokens.
    pub fn set_cache_hit(&mut self, kind: switchyard_cache::HitKind) {
        self.from_cache = true;
        match kind {
            switchyard_cache::HitKind::Exact => self.record.cache = Some("hit-exact".to_owned()),
            switchyard_cache::HitKind::Semantic { similarity } => {
                self.record.cache = Some("hit-semantic".to_owned());
                self.record.cache_similarity = Some(f64::from(similarity));
            }
        }
    }

    /// The router's decision: `x-switchyard-route`, and the decision as JSON for the record.
    pub fn set_route_decision(&mut self, header: String, decision: Option<String>) {
        self.route_header = Some(header);
        self.record.route = decision;
    }

    /// One attempt at a deployment of `model` begins.
    pub fn attempt(&mut self, model: &str, deployment: &str) {
        self.record.attempts += 1;
        self.record.model = Some(model.to_owned());
        self.record.deployment = Some(deployment.to_owned());
    }

    /// Who answered: the model, the deployment (`cache` and `guard` for the gateway's own
    /// answers), and the model a fallback stood in for.
    pub fn set_served(&mut self, model: &str, deployment: &str, fallback_from: Option<&str>) {
        self.record.model = Some(model.to_owned());
        self.record.deployment = Some(deployment.to_owned());
        self.record.fallback_from = fallback_from.map(str::to_owned);
    }

    /// A guard's refusal written as the answer: no provider was paid.
    pub fn set_served_by_guard(&mut self) {
        self.record.deployment = Some("guard".to_owned());
    }

    /// The answer's tokens; `counted` when the gateway counted them (the upstream gave none).
    pub fn set_usage(&mut self, prompt: u32, completion: u32, counted: bool) {
        self.record.prompt_tokens = prompt;
        self.record.completion_tokens = completion;
        self.record.usage_counted |= counted;
    }

    /// A regenerated answer's tokens, added to the earlier attempts'.
    pub fn add_usage(&mut self, prompt: u32, completion: u32, counted: bool) {
        self.record.prompt_tokens += prompt;
        self.record.completion_tokens += completion;
        self.record.usage_counted |= counted;
    }

    pub fn set_key(&mut self, key: &Arc<KeyState>) {
        self.record.key_id = Some(key.id.clone());
        self.record.tenant = Some(key.tenant.clone());
    }

    pub fn set_admission(&mut self, admission: Admission) {
        self.rate_limits = admission.limits;
        self.admission = Some(admission);
    }

    /// The key's rate limits when admission refused the request.
    pub fn set_rate_limits(&mut self, limits: RateLimits) {
        self.rate_limits = limits;
    }

    /// OpenAI's `x-ratelimit-*` headers for the key's `rpm` and `tpm`, as they stood right
    /// after this request was admitted (or refused); none for a key without them.
    pub fn rate_limit_headers(&self) -> Vec<(axum::http::HeaderName, axum::http::HeaderValue)> {
        self.rate_limits.headers()
    }

    /// The price of the model that answered, for the cost of this request.
    pub fn set_price(&mut self, price: Price) {
        self.price = price;
    }

    pub fn set_baseline_price(&mut self, price: Price) {
        self.baseline_price = Some(price);
    }

    /// Adds the cost of a side call (a judge) to the request's.
    /// A Batch API line: its cost (and the baseline savings are counted against) at the
    /// batch price of `[batch] price_discount`.
    pub fn set_batch_price(&mut self, batch: switchyard_control::BatchSpec) {
        self.batch_price = Some(batch);
    }

    pub fn add_cost(&mut self, nanos: u64) {
        self.extra_cost = self.extra_cost.saturating_add(nanos);
    }

    pub fn route_header(&self) -> Option<&str> {
        self.route_header.as_deref()
    }

    /// Every guard verdict so far, into the record (JSON) and the header.
    pub fn set_guards(&mut self, verdicts: &[crate::data_plane::guards::GuardVerdict]) {
        if verdicts.is_empty() {
            return;
        }
        self.record.guards = serde_json::to_string(verdicts).ok();
        self.guard_header = Some(crate::data_plane::guards::header_value(verdicts));
        self.guard_metrics = verdicts
            .iter()
            .map(|v| (v.guard, v.outcome, v.ms / 1e3))
            .collect();
    }

    /// Stores the request's content with its record (see `content.rs`).
    pub fn capture_content(&mut self, captured: crate::data_plane::content::Captured) {
        self.content = Some(captured);
    }

    /// The size limit of stored texts, when the request's content is stored.
    pub fn content_max_bytes(&self) -> Option<usize> {
        self.content
            .as_ref()
            .map(crate::data_plane::content::Captured::max_bytes)
    }

    /// The model's answer, for the stored content (nothing when none is stored).
    pub fn capture_answer(&mut self, response: &switchyard_api::ChatCompletionResponse) {
        if let Some(c) = &mut self.content {
            c.set_answer(crate::data_plane::content::Answer::of(
                response,
                c.max_bytes(),
            ));
        }
    }

    /// A streamed answer, for the stored content.
    pub fn capture_streamed(&mut self, answer: crate::data_plane::content::StreamCapture) {
        if let Some(c) = &mut self.content {
            c.set_answer(answer.finish());
        }
    }

    /// The request named the configured route alias `route`.
    pub fn set_route(&mut self, route: String) {
        self.route = Some(route);
    }

    /// Counts the request towards the SLOs when it ends.
    pub fn count_for(&mut self, slos: Arc<dyn OutcomeSink>) {
        self.slos = Some(slos);
    }

    /// The request took a rollout's arm: named in the record, its outcome counted at the end.
    pub fn take_arm(
        &mut self,
        taken: crate::data_plane::arms::Taken,
        stats: crate::data_plane::arms::SharedStats,
    ) {
        self.record.rollout = Some(taken.label());
        self.arm = Some((taken, stats));
    }

    pub fn guard_header(&self) -> Option<&str> {
        self.guard_header.as_deref()
    }

    pub fn elapsed_ms(&self) -> f64 {
        now().saturating_duration_since(self.started).as_secs_f64() * 1000.0
    }

    pub fn mark_first_token(&mut self) {
        if self.record.ttft_ms.is_none() {
            self.record.ttft_ms = Some(self.elapsed_ms());
        }
    }

    /// Ends the request with an HTTP status; writes the record and settles accounting.
    pub fn finish(mut self, status: u16, error_kind: Option<&str>) {
        self.complete(status, error_kind);
    }

    fn complete(&mut self, status: u16, error_kind: Option<&str>) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let span = self.span.clone();
        let _entered = span.enter();
        let latency_ms = self.elapsed_ms();
        let r = &mut self.record;
        r.status = status;
        r.error_kind = error_kind.map(str::to_owned);
        r.latency_ms = latency_ms;
        if self.cancelled_prompt_tokens > 0 {
            r.prompt_tokens = r.prompt_tokens.saturating_add(self.cancelled_prompt_tokens);
            r.usage_counted = true;
        }
        let (prompt, completion) = (u64::from(r.prompt_tokens), u64::from(r.completion_tokens));
        let fresh_cost = self.price.cost_nanos(prompt, completion);
        let paid = |nanos: u64| self.batch_price.map_or(nanos, |b| b.discounted(nanos));
        r.cost_nanos = paid(if self.from_cache { 0 } else { fresh_cost } + self.extra_cost);
        // Only answers count towards savings: a failed request saved nothing.
        r.baseline_cost_nanos = if (200..300).contains(&status) {
            paid(
                self.baseline_price
                    .map_or(fresh_cost, |p| p.cost_nanos(prompt, completion)),
            )
        } else {
            r.cost_nanos
        };
        if let Some(admission) = self.admission.take() {
            let used = if self.from_cache {
                0
            } else {
                r.prompt_tokens + r.completion_tokens
            };
            admission.settle(used, r.cost_nanos);
        }
        let outcomes: Vec<Outcome> = self.guard_metrics.iter().map(|(_, o, _)| *o).collect();
        let route = self.route.as_deref();
        let quality = self
            .slos
            .take()
            .and_then(|slos| slos.observe(r, route, &outcomes));
        emit_metrics(&self.labels, self.endpoint, r, route, quality);
        if let Some((taken, stats)) = self.arm.take() {
            let ttft = if r.stream { r.ttft_ms } else { None };
            let outcome = crate::data_plane::arms::outcome_of(status, &outcomes, latency_ms, ttft);
            stats.record(&taken.rollout, taken.arm, &r.request_id, &outcome);
        }
        for (guard, outcome, seconds) in self.guard_metrics.drain(..) {
            let guard = LabelValue::fixed(guard);
            m::counter(
                m::GUARD_VERDICTS,
                &[
                    ("guard", guard.clone()),
                    ("outcome", LabelValue::fixed(outcome.as_str())),
                ],
            )
            .increment(1);
            m::histogram(m::GUARD_DURATION, &[("guard", guard)]).record(seconds);
        }
        if self.access_log {
            access_log(r);
        }
        if let Some(trace) = self.trace.take() {
            if let Some(gen_ai) = &self.gen_ai {
                record_gen_ai(gen_ai, &self.labels, &self.record, &trace);
            }
            trace.end(&self.record, self.route_header.as_deref());
        }
        let record = std::mem::take(&mut self.record);
        match self.content.take() {
            // Masked for storage on the writer's thread, not here.
            Some(c) => self
                .telemetry
                .record_with_content(record, Box::new(move || c.finish())),
            None => self.telemetry.record(record),
        };
    }
}

impl Drop for RecordGuard {
    fn drop(&mut self) {
        self.complete(CLIENT_CLOSED, Some("client_closed"));
    }
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// The GenAI metrics of a finished request, its model names bounded like `/metrics`' labels.
fn record_gen_ai(gen_ai: &GenAiMetrics, labels: &Labels, r: &RequestRecord, trace: &RequestTrace) {
    let requested = labels.target(r.requested_model.as_deref().unwrap_or_default());
    let response = r.model.as_deref().map(|m| labels.model(m));
    gen_ai.record(&GenAiSample {
        operation: trace.operation(),
        provider: trace.provider_name(),
        requested: requested.as_str(),
        response: response.as_ref().map(LabelValue::as_str),
        input_tokens: r.prompt_tokens,
        output_tokens: r.completion_tokens,
        seconds: r.latency_ms / 1e3,
        first_token_seconds: r.ttft_ms.filter(|_| r.stream).map(|ms| ms / 1e3),
        error: r.error_kind.as_deref().filter(|_| r.status >= 400),
    });
}

/// One structured line per request under the `switchyard::access` target, when
/// `telemetry.access_log` is on. Off by default: every request is already a stored record, and
/// formatting a line costs more than the rest of the gateway's own work (bench/RESULTS.md).
fn access_log(r: &RequestRecord) {
    tracing::info!(
        target: "switchyard::access",
        request_id = %r.request_id,
        endpoint = %r.endpoint,
        key = r.key_id.as_deref().unwrap_or(""),
        model = r.model.as_deref().or(r.requested_model.as_deref()).unwrap_or(""),
        deployment = r.deployment.as_deref().unwrap_or(""),
        status = r.status,
        error = r.error_kind.as_deref().unwrap_or(""),
        attempts = r.attempts,
        latency_ms = r.latency_ms,
        ttft_ms = r.ttft_ms,
        prompt_tokens = r.prompt_tokens,
        completion_tokens = r.completion_tokens,
        cost_nanos = r.cost_nanos,
        "request"
    );
}

/// `route` is the configured route alias the request named (the label is empty for a model);
/// `quality` is the request's quality verdict (`None` when it was no answer), as the SLOs
/// judged it. Names pass through `labels`: a model the config does not know (a client's
/// typo or a made-up name) is `unknown`.
fn emit_metrics(
    labels: &Labels,
    endpoint: &'static str,
    r: &RequestRecord,
    route: Option<&str>,
    quality: Option<bool>,
) {
    let model = labels.target(
        r.model
            .as_deref()
            .or(r.requested_model.as_deref())
            .unwrap_or_default(),
    );
    let route_label = labels.route(route.unwrap_or_default());
    let model_route = [("model", model.clone()), ("route", route_label.clone())];
    m::counter(
        m::REQUESTS,
        &[
            ("endpoint", LabelValue::fixed(endpoint)),
            ("model", model.clone()),
            ("route", route_label),
            ("status", LabelValue::status(r.status)),
        ],
    )
    .increment(1);
    m::histogram(m::REQUEST_DURATION, &model_route).record(r.latency_ms / 1000.0);
    if let Some(ttft) = r.ttft_ms {
        m::histogram(m::TTFT, &model_route).record(ttft / 1000.0);
    }
    if let Some(good) = quality {
        m::counter(m::QUALITY_ANSWERS, &model_route).increment(1);
        if !good {
            m::quality_bad(labels, model.as_str(), route);
        }
    }
    if r.prompt_tokens > 0 || r.completion_tokens > 0 {
        for (kind, tokens) in [
            ("prompt", r.prompt_tokens),
            ("completion", r.completion_tokens),
        ] {
            m::counter(
                m::TOKENS,
                &[("model", model.clone()), ("kind", LabelValue::fixed(kind))],
            )
            .increment(u64::from(tokens));
        }
    }
    if r.cost_nanos > 0 {
        let tenant = labels.tenant(r.tenant.as_deref().unwrap_or_default());
        m::counter(m::COST, &[("model", model), ("tenant", tenant)]).increment(r.cost_nanos);
    }
    // The alias or model the request named (`auto:cheap`, `small`).
    let requested = labels.target(r.requested_model.as_deref().unwrap_or_default());
    let saved = r.baseline_cost_nanos.saturating_sub(r.cost_nanos);
    if saved > 0 {
        let name = if r.cache.as_deref().is_some_and(|c| c.starts_with("hit")) {
            m::CACHE_SAVED
        } else {
            m::ROUTING_SAVED
        };
        m::counter(name, &[("route", requested.clone())]).increment(saved);
    }
    if let Some(cache) = r.cache.as_deref() {
        m::counter(
            m::CACHE_LOOKUPS,
            &[("route", requested), ("outcome", cache_outcome(cache))],
        )
        .increment(1);
    }
}

/// The record's cache outcome as a fixed word.
fn cache_outcome(cache: &str) -> LabelValue {
    LabelValue::fixed(match cache {
        "hit-exact" => "hit-exact",
        "hit-semantic" => "hit-semantic",
        "miss" => "miss",
        "bypass" => "bypass",
        _ => "unknown",
    })
}
