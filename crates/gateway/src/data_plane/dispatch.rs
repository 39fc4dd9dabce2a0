//! Sending one request to a model: pick a deployment, attempt, retry, fall back.
//!
//! 1. The chain is the requested model followed by its configured fallbacks.
//! 2. For each model in the chain, up to `max_attempts` attempts. Each attempt picks a
//!    deployment by weighted power of two choices among those whose circuit breaker admits a
//!    call (preferring ones that have not yet failed this request; among self-hosted
//!    engines with fresh metrics, the least loaded: `engines.rs`), and is bounded by `attempt_timeout` and by what is left of the overall `deadline`.
//!    For streams an attempt succeeds only once the first chunk has arrived, so a stream that
//!    breaks before its first byte is retried like any other failure.
//! 3. A retryable failure (connect, timeout, 408/409/429/5xx) backs off with full jitter
//!    (at least as long as the upstream's `retry-after`) and tries again, if the shared retry
//!    budget allows; a non-retryable one (e.g. a 400 from the upstream) ends dispatch at once.
//! 4. When a model's attempts are spent, or all its deployments' breakers are open, the next
//!    model in the chain is tried.
//! 5. Nothing is retried once the first byte has gone to the client: dispatch ends when the
//!    first chunk is in hand.
//! 6. A chat attempt at a deployment with a `capacity` first takes a slot of it
//!    (`admission::Gate`): it may wait in the deployment's queue (that time does not count
//!    against the deadline: each class's `max_wait` bounds it) or be shed (503 `overloaded`,
//!    not retried). The slot is held while the call runs, and for a stream until it ends.
//! 7. While the call runs, a batch-class slot may be preempted: the call is cancelled and
//!    the request waits for its turn again, then calls again (no attempt is spent). Once
//!    the answer is in hand (a stream's first chunk) the slot is pinned: never preempted.
//! 8. A model with `on_saturation = "fallback"` whose deployments are all at capacity sends
//!    the request to the first model of its chain with free capacity, if any, instead of
//!    waiting.
//! 9. An attempt for `n > 1` choices at a provider that returns one per call is `n` calls
//!    at once, merged (`choices.rs`); one failing fails the attempt. `logprobs` asked of a
//!    provider that cannot return them is refused there, not retried.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use http::HeaderMap;
use rand::Rng;
use switchyard_api::{ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse};
use switchyard_control::{ModelSpec, OnSaturation};
use switchyard_providers::{ChatProvider, ChatReply, ChunkStream, ProviderError};
use switchyard_resilience::{pick_p2c, BreakerState, CircuitBreaker};
use tower::retry::budget::{Budget, TpsBudget};

use crate::data_plane::admission::{Ask, Gate, Slot};
use crate::data_plane::choices;
use crate::data_plane::engines::{p2c_loads, Candidate, EngineWatch};
use crate::data_plane::record::RecordGuard;
use crate::data_plane::trace::{Attempt, AttemptInfo};
use crate::error::{ErrorKind, GatewayError};
use crate::metrics as m;

pub struct Deployment {
    /// `provider/upstream_model`.
    pub label: String,
    pub upstream_model: String,
    pub provider: Arc<dyn ChatProvider>,
    outstanding: AtomicU32,
    breaker: Mutex<CircuitBreaker>,
    /// The self-hosted engine behind it, whose load the pick reads (`engines.rs`).
    engine: Option<Arc<EngineWatch>>,
    /// Its admission queue, when it declares a `capacity`.
    gate: Option<Arc<Gate>>,
}

impl Deployment {
    pub fn new(
        label: String,
        upstream_model: String,
        provider: Arc<dyn ChatProvider>,
        breaker: CircuitBreaker,
    ) -> Self {
        Deployment {
            label,
            upstream_model,
            provider,
            outstanding: AtomicU32::new(0),
            breaker: Mutex::new(breaker),
            engine: None,
            gate: None,
        }
    }

    pub fn with_engine(mut self, engine: Option<Arc<EngineWatch>>) -> Self {
        self.engine = engine;
        self
    }

    pub fn engine(&self) -> Option<&EngineWatch> {
        self.engine.as_deref()
    }

    /// A deployment of finite capacity: chat requests beyond it wait in `gate`'s queue.
    pub fn with_gate(mut self, gate: Arc<Gate>) -> Self {
        self.gate = Some(gate);
        self
    }

    pub fn gate(&self) -> Option<&Arc<Gate>> {
        self.gate.as_ref()
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.breaker
            .lock()
            .map(|b| b.state(now()))
            .unwrap_or(BreakerState::Open)
    }

    pub fn outstanding(&self) -> u32 {
        self.outstanding.load(Ordering::Relaxed)
    }

    /// How long until its open breaker lets a probe through; `None` when it is not open.
    fn open_remaining(&self, at: Instant) -> Option<Duration> {
        self.breaker.lock().ok()?.open_remaining(at)
    }

    fn available(&self, at: Instant) -> bool {
        self.breaker
            .lock()
            .map(|b| b.is_available(at))
            .unwrap_or(false)
    }

    fn try_acquire(self: &Arc<Self>, at: Instant) -> Option<InFlight> {
        let admitted = self
            .breaker
            .lock()
            .map(|mut b| b.try_acquire(at))
            .unwrap_or(false);
        admitted.then(|| {
            self.outstanding.fetch_add(1, Ordering::Relaxed);
            if let Some(engine) = &self.engine {
                engine.sent();
            }
            InFlight {
                deployment: self.clone(),
                outcome_known: false,
            }
        })
    }
}

/// One call in flight at a deployment. Reports its outcome to the breaker; dropped without an
/// outcome (the client hung up), it frees a half-open probe slot instead.
struct InFlight {
    deployment: Arc<Deployment>,
    outcome_known: bool,
}

impl InFlight {
    fn succeeded(mut self) {
        self.outcome_known = true;
        if let Ok(mut b) = self.deployment.breaker.lock() {
            b.on_success(now());
        }
    }

    fn failed(mut self, counts: bool) {
        self.outcome_known = true;
        if let Ok(mut b) = self.deployment.breaker.lock() {
            if counts {
                b.on_failure(now());
            } else {
                // The request's fault, not the deployment's: for the breaker it answered.
                b.on_success(now());
            }
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.deployment.outstanding.fetch_sub(1, Ordering::Relaxed);
        if !self.outcome_known {
            if let Ok(mut b) = self.deployment.breaker.lock() {
                b.on_cancel();
            }
        }
    }
}

/// A deployment as one model uses it. The same upstream (provider and upstream model) used by
/// several models is one `Deployment`, so they share its breaker and load: the health of an
/// upstream does not depend on which alias reached it.
pub struct Weighted {
    pub deployment: Arc<Deployment>,
    pub weight: u32,
}

pub struct ModelRuntime {
    pub spec: ModelSpec,
    pub deployments: Vec<Weighted>,
}

impl ModelRuntime {
    /// How long until the first of its open deployments lets a probe through: when a client
    /// refused for open circuits may usefully come back.
    fn reopens_in(&self, at: Instant) -> Option<Duration> {
        self.deployments
            .iter()
            .filter_map(|d| d.deployment.open_remaining(at))
            .min()
    }

    /// Whether every deployment of the model able to take a call is at capacity for `ask`
    /// (step 8); a deployment without capacity never is.
    fn saturated(&self, ask: &Ask, at: Instant) -> bool {
        let mut open = self
            .deployments
            .iter()
            .filter(|d| d.weight > 0 && d.deployment.available(at))
            .peekable();
        open.peek().is_some()
            && open.all(|d| {
                d.deployment
                    .gate()
                    .is_some_and(|gate| !gate.admits_now(ask.class, ask.tokens))
            })
    }

    /// A deployment whose breaker admits a call, chosen by weighted power of two choices.
    /// Deployments that already failed this request are avoided while others are available.
    fn pick(&self, at: Instant, failed: &[Arc<Deployment>]) -> Option<(Arc<Deployment>, InFlight)> {
        let available = self
            .deployments
            .iter()
            .filter(|d| d.deployment.available(at));
        let mut eligible: Vec<&Weighted> = available
            .clone()
            .filter(|d| !failed.iter().any(|f| Arc::ptr_eq(f, &d.deployment)))
            .collect();
        if eligible.is_empty() {
            eligible = available.collect();
        }
        let mut rng = rand::rng();
        while !eligible.is_empty() {
            // The least loaded engines when they are known, else the calls in flight.
            let candidates: Vec<Candidate<'_>> = eligible
                .iter()
                .map(|d| Candidate {
                    weight: d.weight,
                    outstanding: d.deployment.outstanding(),
                    engine: d.deployment.engine(),
                })
                .collect();
            let loads = p2c_loads(&candidates, at);
            let i = pick_p2c(&loads, rng.random(), rng.random())?;
            if let Some(flight) = eligible[i].deployment.try_acquire(at) {
                return Some((eligible[i].deployment.clone(), flight));
            }
            // Lost a race for a half-open probe slot: try the others.
            eligible.swap_remove(i);
        }
        None
    }
}

/// Which deployment answered, after how many attempts.
pub struct Served {
    pub model: Arc<ModelRuntime>,
    pub deployment: Arc<Deployment>,
    pub fallback_from: Option<String>,
    /// The capacity the answer holds: a stream's, until it ends (`None` for a deployment
    /// without capacity, and for a whole answer, which gave it back when it arrived).
    pub slot: Option<Slot>,
}

pub enum Started {
    Complete(ChatCompletionResponse),
    /// The first chunk has arrived; the rest follows.
    Stream {
        first: ChatCompletionChunk,
        rest: ChunkStream,
    },
}

pub struct Dispatcher {
    retry_budget: TpsBudget,
}

impl Dispatcher {
    pub fn new(percent: f32, min_per_sec: u32) -> Self {
        Dispatcher {
            retry_budget: TpsBudget::new(Duration::from_secs(10), min_per_sec, percent / 100.0),
        }
    }

    pub async fn chat(
        &self,
        record: &mut RecordGuard,
        chain: &[Arc<ModelRuntime>],
        request: &ChatCompletionRequest,
    ) -> Result<(Started, Served), GatewayError> {
        // Only a chain with a deployment of finite capacity asks for any.
        let limited = chain
            .iter()
            .any(|m| m.deployments.iter().any(|d| d.deployment.gate().is_some()));
        let ask = limited.then(|| record.ask());
        // The class reaches engines that schedule by it (vLLM's `priority`).
        let class = Some(record.priority());
        let result = self
            .run_with(
                record,
                chain,
                ask.as_ref(),
                |deployment: &Deployment, trace| {
                    let mut attempt = request.clone();
                    attempt.model.clone_from(&deployment.upstream_model);
                    let provider = deployment.provider.clone();
                    let options = switchyard_providers::CallOptions { class, trace };
                    async move {
                        match choices::call(provider.as_ref(), attempt, options).await? {
                            ChatReply::Complete(r) => Ok(Started::Complete(r)),
                            ChatReply::Stream(mut rest) => match rest.next().await {
                                Some(Ok(first)) => Ok(Started::Stream { first, rest }),
                                Some(Err(e)) => Err(e),
                                None => Err(ProviderError::Stream(
                                    "the stream ended before its first chunk".into(),
                                )),
                            },
                        }
                    }
                },
            )
            .await;
        // Preempted calls cost their prompts, whether the request was answered or not.
        if record.cancelled_calls() > 0 {
            record.charge_cancelled_calls(switchyard_providers::tokens::count_messages(
                &request.messages,
            ));
        }
        let (started, mut served) = result?;
        if matches!(started, Started::Complete(_)) {
            // The upstream is done with a whole answer: its capacity is free again.
            served.slot = None;
        }
        Ok((started, served))
    }

    /// Runs `call` against the chain with retries, breakers and fallbacks (see the module
    /// comment). Attempts are counted in the record as they happen. `call` is given the
    /// headers naming the attempt's trace (empty when the request is not traced).
    pub async fn run<T, F, Fut>(
        &self,
        record: &mut RecordGuard,
        chain: &[Arc<ModelRuntime>],
        call: F,
    ) -> Result<(T, Served), GatewayError>
    where
        F: Fn(&Deployment, HeaderMap) -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        self.run_with(record, chain, None, call).await
    }

    /// [`Self::run`], taking a slot of each deployment with a capacity for `ask` (steps 6
    /// to 8; `None`: capacity is not asked for).
    async fn run_with<T, F, Fut>(
        &self,
        record: &mut RecordGuard,
        chain: &[Arc<ModelRuntime>],
        ask: Option<&Ask>,
        call: F,
    ) -> Result<(T, Served), GatewayError>
    where
        F: Fn(&Deployment, HeaderMap) -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let Some(primary) = chain.first() else {
            return Err(GatewayError::new(
                ErrorKind::Internal,
                "internal_error",
                "empty model chain",
            ));
        };
        let mut deadline = tokio::time::Instant::now() + primary.spec.resilience.deadline;
        let labels = record.labels().clone();
        self.retry_budget.deposit();
        let mut last: Option<GatewayError> = None;
        let mut failed: Vec<Arc<Deployment>> = Vec::new();
        let start = ask.map_or(0, |ask| first_with_capacity(chain, ask));
        let mut tries = 0u32;
        'chain: for model in &chain[start..] {
            let policy = &model.spec.resilience;
            let mut retry_after = None;
            for attempt in 0..policy.max_attempts {
                if attempt > 0 {
                    match self
                        .back_off(model, attempt, retry_after, deadline, &labels)
                        .await
                    {
                        Backoff::Waited => {}
                        Backoff::NextModel => break,
                        Backoff::PastDeadline => break 'chain,
                    }
                }
                let at = now();
                let Some((deployment, flight)) = model.pick(at, &failed) else {
                    last = Some(circuit_open(model, at));
                    continue 'chain;
                };
                // The record names the last model and deployment tried, so failed requests
                // count against the model that failed them.
                record.attempt(&model.spec.name, &deployment.label);
                tries += 1;
                let span = record.trace_attempt(|| attempt_info(model, &deployment, tries));
                let trace = span.as_ref().map(Attempt::headers).unwrap_or_default();
                let slot = match (ask, deployment.gate()) {
                    (Some(ask), Some(gate)) => {
                        let from = tokio::time::Instant::now();
                        let acquired = gate.acquire(ask, &labels).await;
                        record.add_queue_wait(from.elapsed());
                        deadline += from.elapsed();
                        Some(acquired?)
                    }
                    _ => None,
                };
                let (outcome, slot) =
                    call_admitted(record, slot, policy.attempt_timeout, &mut deadline, || {
                        call(&deployment, trace.clone())
                    })
                    .await?;
                if let Some(span) = span {
                    match &outcome {
                        Ok(_) => span.end(Some(200), None),
                        Err(e) => span.end(e.status(), Some(e.kind())),
                    }
                }
                match outcome {
                    Ok(value) => {
                        flight.succeeded();
                        let mut served = served(model, primary, deployment, &labels);
                        served.slot = slot;
                        return Ok((value, served));
                    }
                    Err(e) => {
                        flight.failed(e.counts_against_deployment());
                        let mapped = attempt_failed(&e, &deployment, &labels);
                        failed.push(deployment.clone());
                        if !e.retryable() {
                            return Err(mapped);
                        }
                        retry_after = match &e {
                            ProviderError::Status { retry_after, .. } => *retry_after,
                            _ => None,
                        };
                        last = Some(mapped);
                    }
                }
            }
        }
        Err(last.unwrap_or_else(|| deadline_exceeded(primary)))
    }

    /// Waits before retry `attempt` of `model`: full jitter, at least the upstream's
    /// `retry-after`, if the retry budget allows and the deadline leaves time.
    async fn back_off(
        &self,
        model: &ModelRuntime,
        attempt: u32,
        retry_after: Option<Duration>,
        deadline: tokio::time::Instant,
        labels: &m::Labels,
    ) -> Backoff {
        if !self.retry_budget.withdraw() {
            tracing::debug!(model = %model.spec.name, "retry budget exhausted");
            return Backoff::NextModel;
        }
        let policy = &model.spec.resilience;
        let jitter = policy.backoff.delay(attempt - 1, rand::rng().random());
        let delay = retry_after.map_or(jitter, |ra: Duration| ra.max(jitter));
        if tokio::time::Instant::now() + delay >= deadline {
            return Backoff::PastDeadline;
        }
        m::counter(m::RETRIES, &[("model", labels.model(&model.spec.name))]).increment(1);
        tokio::time::sleep(delay).await;
        Backoff::Waited
    }
}

/// One attempt's call, bounded by the attempt timeout and the deadline, and run again each
/// time its slot is preempted (step 7). Gives back the call's result and the slot it holds;
/// an error only when the request was shed while waiting for its turn again.
async fn call_admitted<T, Fut>(
    record: &mut RecordGuard,
    mut slot: Option<Slot>,
    attempt_timeout: Duration,
    deadline: &mut tokio::time::Instant,
    call: impl Fn() -> Fut,
) -> Result<(Result<T, ProviderError>, Option<Slot>), GatewayError>
where
    Fut: Future<Output = Result<T, ProviderError>>,
{
    loop {
        let run = match &slot {
            Some(held) => match held.run() {
                Some(token) => Some(token),
                // Preempted before the call began: wait for the turn again.
                None => {
                    wait_again(record, slot.as_mut(), deadline).await?;
                    continue;
                }
            },
            None => None,
        };
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let limit = attempt_timeout.min(remaining);
        let preemptible = async {
            match run {
                Some(token) => tokio::select! {
                    biased;
                    () = token.cancelled() => None,
                    result = call() => Some(result),
                },
                None => Some(call().await),
            }
        };
        match tokio::time::timeout(limit, preemptible).await {
            // The answer is in hand: pinned, unless it was preempted in the meantime (then it
            // is dropped, which cancels a stream, and runs again: nothing reached the client).
            Ok(Some(Ok(value))) if slot.as_ref().is_none_or(Slot::pin) => {
                return Ok((Ok(value), slot))
            }
            Ok(Some(Ok(_))) => {
                record.add_cancelled_call();
                wait_again(record, slot.as_mut(), deadline).await?;
            }
            Ok(Some(Err(e))) => return Ok((Err(e), slot)),
            Ok(None) => {
                // The call was dropped, which cancels it upstream; it is charged its prompt.
                tracing::info!("a batch request was preempted; it waits for its turn again");
                record.add_cancelled_call();
                wait_again(record, slot.as_mut(), deadline).await?;
            }
            Err(_) => return Ok((Err(ProviderError::Timeout), slot)),
        }
    }
}

/// Counts a preemption and waits in the queue again; the wait does not count against the
/// deadline.
async fn wait_again(
    record: &mut RecordGuard,
    slot: Option<&mut Slot>,
    deadline: &mut tokio::time::Instant,
) -> Result<(), GatewayError> {
    let Some(slot) = slot else {
        return Ok(());
    };
    record.add_preemption();
    let from = tokio::time::Instant::now();
    let waited = slot.wait_again().await;
    record.add_queue_wait(from.elapsed());
    *deadline += from.elapsed();
    waited
}

/// Step 8: where in the chain a request starts. The primary, unless it falls back on
/// saturation, every deployment of it is at capacity and a later model has room.
fn first_with_capacity(chain: &[Arc<ModelRuntime>], ask: &Ask) -> usize {
    let Some(primary) = chain.first() else {
        return 0;
    };
    let at = now();
    if primary.spec.on_saturation != OnSaturation::Fallback || !primary.saturated(ask, at) {
        return 0;
    }
    chain
        .iter()
        .position(|model| !model.saturated(ask, at))
        .unwrap_or(0)
}

/// What waiting before a retry came to.
enum Backoff {
    Waited,
    /// The retry budget is spent: on to the next model in the chain.
    NextModel,
    /// The wait would end past the request's deadline: no more attempts at all.
    PastDeadline,
}

/// Every deployment of `model` is failing (its breakers are open).
fn circuit_open(model: &ModelRuntime, at: Instant) -> GatewayError {
    let mut refused = GatewayError::new(
        ErrorKind::UpstreamUnavailable,
        "upstream_unavailable",
        format!(
            "every deployment of model `{}` is failing (circuit open); retry later",
            model.spec.name
        ),
    );
    // Half-open with its probe in flight: no time is known, the default holds.
    refused.retry_after = model.reopens_in(at);
    refused
}

/// What an attempt's span says of it.
fn attempt_info<'a>(
    model: &'a ModelRuntime,
    deployment: &'a Deployment,
    number: u32,
) -> AttemptInfo<'a> {
    AttemptInfo {
        model: &model.spec.name,
        upstream_model: &deployment.upstream_model,
        deployment: &deployment.label,
        provider: deployment.provider.kind(),
        server: deployment.provider.server(),
        number,
    }
}

/// Who answered, a fallback counted when it was not the primary.
fn served(
    model: &Arc<ModelRuntime>,
    primary: &Arc<ModelRuntime>,
    deployment: Arc<Deployment>,
    labels: &m::Labels,
) -> Served {
    let fallback_from = (!Arc::ptr_eq(model, primary)).then(|| primary.spec.name.clone());
    if fallback_from.is_some() {
        m::counter(
            m::FALLBACKS,
            &[
                ("from", labels.model(&primary.spec.name)),
                ("to", labels.model(&model.spec.name)),
            ],
        )
        .increment(1);
    }
    Served {
        model: model.clone(),
        deployment,
        fallback_from,
        slot: None,
    }
}

/// A failed attempt, counted and logged, as the client would be told.
fn attempt_failed(e: &ProviderError, deployment: &Deployment, labels: &m::Labels) -> GatewayError {
    m::counter(
        m::UPSTREAM_ERRORS,
        &[
            ("deployment", labels.deployment(&deployment.label)),
            ("kind", m::LabelValue::fixed(e.kind())),
        ],
    )
    .increment(1);
    tracing::warn!(deployment = %deployment.label, error = %e, "upstream attempt failed");
    GatewayError::from_provider(e, &deployment.label)
}

fn deadline_exceeded(primary: &ModelRuntime) -> GatewayError {
    GatewayError::new(
        ErrorKind::UpstreamTimeout,
        "deadline_exceeded",
        format!(
            "no model answered within the request deadline of {:.1}s",
            primary.spec.resilience.deadline.as_secs_f64()
        ),
    )
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}
