//! The admission stage of a deployment with a `capacity`: its `switchyard_admission::Queue`
//! behind a lock, each waiting request woken by its own channel. The queue decides (class
//! first, deficit round robin between tenants, shedding, expiry, the holder to preempt); this
//! file only holds it and carries out what it decides.
//!
//! 1. A request asks its deployment's [`Gate`] for a [`Slot`]: admitted at once, queued, or
//!    shed (503 `overloaded` with the queue's `retry-after`). Deployments without capacity
//!    have no gate and nothing here runs for them.
//! 2. A queued request waits on its channel. Whoever releases capacity (a slot dropped, a
//!    holder preempted, a waiter withdrawn) tells the tickets the queue admits in its place,
//!    under the lock; a ticket the queue sheds to make room for a higher class is told so.
//! 3. A waiter also sleeps until its class's `max_wait` is past: then it runs the queue's
//!    expiry itself, so waiters expire even when nothing is ever released.
//! 4. The slot is held until the answer is delivered (for a stream, until it ends) and given
//!    back when it is dropped, on every path: answered, failed, retried elsewhere, or the
//!    client gone while waiting or mid-stream.
//! 5. When critical or interactive work waits and the queue names a batch holder, the holder
//!    is put back in the queue and its run's cancellation token fired; its dispatch sees the
//!    cancellation, waits for its turn again and calls again with a new token. A slot whose
//!    answer has begun is pinned: never preempted.
//! 6. In a fleet on Redis each replica admits `ceil(capacity ÷ live replicas)` (the replicas
//!    its heartbeats count), so the fleet together sends the deployment about its capacity,
//!    not that times the replicas; the share follows the count at each request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use switchyard_admission::{
    Capacity, Class, Offer, PerClass, Queue, QueueConfig, Ticket, TicketId,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::error::{ErrorKind, GatewayError};
use crate::metrics::{self as m, LabelValue, Labels};

/// What a request asks of a deployment's capacity.
#[derive(Debug, Clone)]
pub struct Ask {
    pub class: Class,
    /// Whom it is fair to within its class (the key's tenant).
    pub tenant: String,
    /// Its estimate of prompt and output tokens, held while it runs.
    pub tokens: u64,
}

/// What the queue decided for a waiting ticket.
#[derive(Debug)]
enum Verdict {
    Admitted,
    Shed { retry_after: Duration },
}

struct Entry {
    class: Class,
    tell: mpsc::Sender<Verdict>,
    /// Fired when the ticket is preempted; a new one is made for its next run.
    run: CancellationToken,
}

struct State {
    queue: Queue,
    entries: HashMap<TicketId, Entry>,
}

/// Counts the fleet's live replicas.
pub type Replicas = Arc<dyn Fn() -> u32 + Send + Sync>;

/// Step 6: the capacity configured, and the replica count its share was last set for.
struct Fleet {
    whole: Capacity,
    replicas: Replicas,
    applied: AtomicU32,
}

/// One deployment's admission (the module's steps).
pub struct Gate {
    label: String,
    /// The settings it was made with (its queue's capacity may be a fleet share of them).
    settings: QueueConfig,
    fleet: Option<Fleet>,
    state: Mutex<State>,
    next_id: AtomicU64,
    /// Its metric series, registered once (their labels are the config's names).
    series: OnceLock<Series>,
}

/// A gate's series of `switchyard_queue_depth`, `_queue_wait_seconds`, `_shed_total`,
/// `_preemptions_total` (per class) and `_saturation`.
struct Series {
    depth: PerClass<metrics::Gauge>,
    wait: PerClass<metrics::Histogram>,
    shed: PerClass<metrics::Counter>,
    preempted: PerClass<metrics::Counter>,
    saturation: metrics::Gauge,
}

impl Series {
    fn new(deployment: &str, labels: &Labels) -> Self {
        let of = |class: Class| {
            [
                ("deployment", labels.deployment(deployment)),
                ("class", LabelValue::fixed(class.as_str())),
            ]
        };
        Series {
            depth: PerClass::from_fn(|class| m::gauge(m::ADMISSION_DEPTH, &of(class))),
            wait: PerClass::from_fn(|class| m::histogram(m::QUEUE_WAIT, &of(class))),
            shed: PerClass::from_fn(|class| m::counter(m::ADMISSION_SHED, &of(class))),
            preempted: PerClass::from_fn(|class| m::counter(m::PREEMPTIONS, &of(class))),
            saturation: m::gauge(
                m::SATURATION,
                &[("deployment", labels.deployment(deployment))],
            ),
        }
    }
}

impl Gate {
    pub fn new(label: String, config: QueueConfig, replicas: Option<Replicas>) -> Self {
        let fleet = replicas.map(|replicas| Fleet {
            whole: config.capacity,
            replicas,
            applied: AtomicU32::new(1),
        });
        Gate {
            label,
            settings: config.clone(),
            fleet,
            state: Mutex::new(State {
                queue: Queue::new(config),
                entries: HashMap::new(),
            }),
            next_id: AtomicU64::new(1),
            series: OnceLock::new(),
        }
    }

    fn series(&self, labels: &Labels) -> &Series {
        self.series.get_or_init(|| Series::new(&self.label, labels))
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic under the lock leaves the queue as consistent as each call left it.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a request of `class` costing `tokens` would be admitted now (for
    /// `on_saturation = "fallback"`).
    pub fn admits_now(&self, class: Class, tokens: u64) -> bool {
        self.lock().queue.admit_now(class, tokens)
    }

    /// Step 1 and 2: a slot, once the queue admits the request.
    pub async fn acquire(
        self: &Arc<Self>,
        ask: &Ask,
        labels: &Arc<Labels>,
    ) -> Result<Slot, GatewayError> {
        let id = TicketId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let (tell, heard) = mpsc::channel(2);
        let ticket = Ticket::new(id, ask.class, ask.tenant.clone(), ask.tokens, now());
        let offer = {
            let mut state = self.lock();
            self.follow_fleet(&mut state);
            let offer = state.queue.offer(ticket);
            if matches!(offer, Ok(Offer::Admitted | Offer::Queued { .. })) {
                let run = CancellationToken::new();
                let entry = Entry {
                    class: ask.class,
                    tell,
                    run,
                };
                state.entries.insert(id, entry);
            }
            match &offer {
                Ok(Offer::Queued { evicted }) => {
                    if let Some(evicted) = evicted {
                        self.shed(&mut state, evicted, labels);
                    }
                    self.preempt(&mut state, labels);
                }
                Ok(Offer::Shed(ticket)) => self.count_shed(ticket.class, labels),
                _ => {}
            }
            let retry_after = state.queue.retry_after(ask.class);
            self.publish(&state, labels);
            offer.map(|offer| (offer, retry_after))
        };
        let queued = match offer {
            Ok((Offer::Admitted, _)) => false,
            Ok((Offer::Queued { .. }, _)) => true,
            Ok((Offer::Shed(_), retry_after)) => return Err(overloaded(&self.label, retry_after)),
            Err(e) => {
                return Err(GatewayError::new(
                    ErrorKind::Internal,
                    "internal_error",
                    format!("admission: {e}"),
                ))
            }
        };
        let mut slot = Slot {
            gate: self.clone(),
            id,
            class: ask.class,
            heard,
            labels: labels.clone(),
        };
        if queued {
            slot.wait().await?;
        } else {
            self.observe_wait(ask.class, Duration::ZERO, labels);
        }
        Ok(slot)
    }

    /// Step 6: this replica's share of the capacity, for the replicas alive now.
    fn follow_fleet(&self, state: &mut State) {
        let Some(fleet) = &self.fleet else {
            return;
        };
        let alive = (fleet.replicas)().max(1);
        if fleet.applied.swap(alive, Ordering::Relaxed) != alive {
            let admitted = state.queue.set_capacity(fleet.whole.share(alive));
            self.admitted(state, &admitted);
        }
    }

    /// Tells the tickets the queue admitted.
    fn admitted(&self, state: &mut State, tickets: &[Ticket]) {
        for ticket in tickets {
            if let Some(entry) = state.entries.get(&ticket.id) {
                // Full or closed: its slot is being dropped, and its drop releases it.
                let _ = entry.tell.try_send(Verdict::Admitted);
            }
        }
    }

    fn shed(&self, state: &mut State, ticket: &Ticket, labels: &Labels) {
        let retry_after = state.queue.retry_after(ticket.class);
        if let Some(entry) = state.entries.remove(&ticket.id) {
            let _ = entry.tell.try_send(Verdict::Shed { retry_after });
        }
        self.count_shed(ticket.class, labels);
    }

    fn count_shed(&self, class: Class, labels: &Labels) {
        self.series(labels).shed[class].increment(1);
    }

    /// Step 5: preempts the batch holders the queue names while urgent work waits.
    fn preempt(&self, state: &mut State, labels: &Labels) {
        while let Some(id) = state.queue.preemption_candidate().map(|t| t.id) {
            let admitted = match state.queue.requeue(id) {
                Ok(admitted) => admitted,
                Err(_) => return,
            };
            if let Some(entry) = state.entries.get_mut(&id) {
                entry.run.cancel();
                entry.run = CancellationToken::new();
                let class = entry.class;
                self.series(labels).preempted[class].increment(1);
            }
            self.admitted(state, &admitted);
        }
    }

    /// Step 3: sheds every ticket past its class's wait.
    fn expire(&self, labels: &Labels) {
        let mut state = self.lock();
        for ticket in state.queue.expire(now()) {
            self.shed(&mut state, &ticket, labels);
        }
        self.publish(&state, labels);
    }

    /// Step 4: the ticket's request is done (or gone).
    fn leave(&self, id: TicketId, labels: &Labels) {
        let mut state = self.lock();
        state.entries.remove(&id);
        let admitted = if state.queue.holds(id) {
            state.queue.release(id, now()).unwrap_or_default()
        } else {
            state.queue.withdraw(id).1
        };
        self.admitted(&mut state, &admitted);
        self.preempt(&mut state, labels);
        self.publish(&state, labels);
    }

    fn observe_wait(&self, class: Class, waited: Duration, labels: &Labels) {
        self.series(labels).wait[class].record(waited.as_secs_f64());
    }

    /// The queue's depth per class and saturation, as the gauges say them.
    fn publish(&self, state: &State, labels: &Labels) {
        let series = self.series(labels);
        for class in Class::ASCENDING {
            series.depth[class].set(state.queue.depth(class) as f64);
        }
        series.saturation.set(load(&state.queue).saturation);
    }

    /// What the deployment holds and queues, over its capacity.
    pub fn load(&self) -> Load {
        load(&self.lock().queue)
    }
}

/// The gates of this process's pipelines, by deployment. A pipeline built while another
/// runs (a config applied, a config rollout's candidate beside its baseline) takes the gate of
/// a deployment still in use with the same settings, so its capacity is counted once however
/// many pipelines send to it; a deployment whose settings changed gets a new gate.
#[derive(Default)]
pub struct Gates {
    by_label: Mutex<HashMap<String, std::sync::Weak<Gate>>>,
    /// The fleet's live replicas when no Redis link counts them (PostgreSQL alone).
    replicas: Option<Replicas>,
}

impl Gates {
    /// Gates of a fleet whose live replicas `replicas` counts, for deployments whose
    /// pipeline has no Redis link to count them.
    pub fn counting(replicas: Replicas) -> Self {
        Gates {
            by_label: Mutex::default(),
            replicas: Some(replicas),
        }
    }

    /// The fleet's own count of its live replicas, if it has one besides Redis's.
    pub fn replicas(&self) -> Option<Replicas> {
        self.replicas.clone()
    }

    pub fn gate(&self, label: &str, config: QueueConfig, replicas: Option<Replicas>) -> Arc<Gate> {
        let mut gates = self
            .by_label
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        gates.retain(|_, gate| gate.strong_count() > 0);
        if let Some(gate) = gates.get(label).and_then(std::sync::Weak::upgrade) {
            if gate.settings == config && gate.fleet.is_some() == replicas.is_some() {
                return gate;
            }
        }
        let gate = Arc::new(Gate::new(label.to_owned(), config, replicas));
        gates.insert(label.to_owned(), Arc::downgrade(&gate));
        gate
    }
}

/// A deployment's use of its capacity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Load {
    /// In flight over capacity (the larger of the concurrency and the tokens ratio).
    pub saturation: f64,
    /// In flight and queued over capacity: the HPA's current utilisation.
    pub utilization: f64,
}

fn load(queue: &Queue) -> Load {
    let capacity = queue.config().capacity;
    let in_flight = queue.in_flight() as f64;
    let queued: usize = Class::ASCENDING.iter().map(|c| queue.depth(*c)).sum();
    let queued = queued as f64;
    let by_count = capacity.max_concurrent.map(|max| {
        (
            in_flight / f64::from(max),
            (in_flight + queued) / f64::from(max),
        )
    });
    // Queued tickets' tokens are not kept apart: each counts as the holders' average.
    let by_tokens = capacity.max_tokens_in_flight.map(|max| {
        let held = queue.tokens_in_flight() as f64;
        let per_holder = if in_flight > 0.0 {
            held / in_flight
        } else {
            0.0
        };
        (held / max as f64, (held + per_holder * queued) / max as f64)
    });
    let (saturation, utilization) = match (by_count, by_tokens) {
        (Some(a), Some(b)) => (a.0.max(b.0), a.1.max(b.1)),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => (0.0, 0.0),
    };
    Load {
        saturation,
        utilization,
    }
}

/// Kubernetes' HPA rule over a model's deployments with capacity: `ceil(replicas ×
/// utilisation ÷ target)`, the utilisation being their average.
pub fn desired_replicas(utilizations: &[f64], target: f64) -> u64 {
    if utilizations.is_empty() || target <= 0.0 {
        return 0;
    }
    let replicas = utilizations.len() as f64;
    let average = utilizations.iter().sum::<f64>() / replicas;
    let desired = (replicas * average / target).ceil();
    // Clamped where a float can land after rounding noise: at most what a u64 holds.
    if desired.is_finite() && desired > 0.0 {
        desired.min(u64::MAX as f64) as u64
    } else {
        0
    }
}

/// A request's hold on a deployment's capacity (steps 4 and 5), given back when dropped.
pub struct Slot {
    gate: Arc<Gate>,
    id: TicketId,
    class: Class,
    heard: mpsc::Receiver<Verdict>,
    labels: Arc<Labels>,
}

impl Slot {
    /// The token of the run the slot now holds; `None` when it was preempted and waits again.
    pub fn run(&self) -> Option<CancellationToken> {
        let state = self.gate.lock();
        if !state.queue.holds(self.id) {
            return None;
        }
        state.entries.get(&self.id).map(|e| e.run.clone())
    }

    /// The answer is in hand: from now on the slot is not preempted. False when it no
    /// longer holds capacity (it was preempted just before).
    pub fn pin(&self) -> bool {
        self.gate.lock().queue.pin(self.id).is_ok()
    }

    /// After a preemption: waits for the queue to admit the request again.
    pub async fn wait_again(&mut self) -> Result<(), GatewayError> {
        self.wait().await
    }

    /// Steps 2 and 3: waits for the queue's verdict, running its expiry when the class's
    /// wait is past.
    async fn wait(&mut self) -> Result<(), GatewayError> {
        let started = tokio::time::Instant::now();
        let max_wait = self.gate.lock().queue.config().classes[self.class].max_wait;
        // Just past the limit, so the queue (which sheds what waited longer) sheds it.
        let mut expiry = started + max_wait + Duration::from_millis(1);
        let verdict = loop {
            tokio::select! {
                heard = self.heard.recv() => break heard,
                () = tokio::time::sleep_until(expiry) => {
                    self.gate.expire(&self.labels);
                    expiry = tokio::time::Instant::now() + max_wait;
                }
            }
        };
        match verdict {
            Some(Verdict::Admitted) => {
                self.gate
                    .observe_wait(self.class, started.elapsed(), &self.labels);
                Ok(())
            }
            Some(Verdict::Shed { retry_after }) => Err(overloaded(&self.gate.label, retry_after)),
            None => Err(GatewayError::new(
                ErrorKind::Internal,
                "internal_error",
                "admission: the queue forgot a waiting request",
            )),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.gate.leave(self.id, &self.labels);
    }
}

/// The request header naming a priority class; answers carry the class in force under the
/// same name.
pub const PRIORITY: &str = "x-switchyard-priority";

/// The request's class: the header's, else the key's default, never above the key's maximum.
/// A header naming no class is a 400 naming the header.
pub fn class_of(
    headers: &axum::http::HeaderMap,
    key: &switchyard_control::KeyPriority,
) -> Result<Class, GatewayError> {
    let Some(value) = headers.get(PRIORITY) else {
        return Ok(key.effective(None));
    };
    let asked = value
        .to_str()
        .map_err(|_| format!("`{PRIORITY}` is not readable text"))
        .and_then(|text| text.parse::<Class>().map_err(|e| e.to_string()))
        .map_err(|message| {
            GatewayError::invalid(Some(PRIORITY), format!("{PRIORITY}: {message}"))
        })?;
    Ok(key.effective(Some(asked)))
}

/// A request shed: the deployment's capacity and queue are full, or it waited too long.
pub fn overloaded(deployment: &str, retry_after: Duration) -> GatewayError {
    GatewayError::new(
        ErrorKind::Unavailable,
        "overloaded",
        format!(
            "deployment `{deployment}` is at capacity and its queue cannot take this request; retry after the time in `retry-after`"
        ),
    )
    .with_retry_after(retry_after)
}

/// How long a request shed by `admission.shed` is told to wait: the SLO loop's interval, the
/// soonest an SLO's page can end and lift it.
pub const SHED_BY_FLAG_RETRY: Duration = Duration::from_secs(30);

/// A request shed before any deployment because the flag `admission.shed` (an SLO's page
/// action, or an operator) sheds its class.
pub fn shed_by_flag(class: Class, shed: Class) -> GatewayError {
    GatewayError::new(
        ErrorKind::Unavailable,
        "overloaded",
        format!(
            "requests of class `{class}` are shed for now (`{shed}` and lower classes, by the flag `{}`); retry after the time in `retry-after`",
            crate::data_plane::flags::SHED
        ),
    )
    .with_retry_after(SHED_BY_FLAG_RETRY)
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_admission::Capacity;

    #[test]
    fn the_class_is_the_headers_within_the_keys_maximum() {
        use axum::http::{HeaderMap, HeaderValue};
        let key = switchyard_control::KeyPriority {
            default: Class::Standard,
            max: Class::Interactive,
        };
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(PRIORITY, HeaderValue::from_str(value).unwrap());
            class_of(&headers, &key)
        };
        assert_eq!(class_of(&HeaderMap::new(), &key).unwrap(), Class::Standard);
        assert_eq!(with("batch").unwrap(), Class::Batch);
        assert_eq!(with("Critical").unwrap(), Class::Interactive);
        let refused = with("urgent").unwrap_err();
        assert_eq!(refused.status(), axum::http::StatusCode::BAD_REQUEST);
        assert_eq!(refused.param.as_deref(), Some(PRIORITY));
        assert!(refused.message.contains("urgent"), "{}", refused.message);
    }

    #[test]
    fn pipelines_share_a_deployments_gate_while_its_settings_hold() {
        let gates = Gates::default();
        let settings = |max| {
            QueueConfig::new(Capacity {
                max_concurrent: Some(max),
                max_tokens_in_flight: None,
            })
        };
        let first = gates.gate("p/m", settings(2), None);
        let again = gates.gate("p/m", settings(2), None);
        assert!(Arc::ptr_eq(&first, &again));
        let other = gates.gate("q/m", settings(2), None);
        assert!(!Arc::ptr_eq(&first, &other));
        let changed = gates.gate("p/m", settings(3), None);
        assert!(!Arc::ptr_eq(&first, &changed));
        // Once no pipeline or request holds a gate, the next one is new.
        let weak = Arc::downgrade(&changed);
        drop((first, again, changed));
        assert!(weak.upgrade().is_none());
        let fresh = gates.gate("p/m", settings(2), None);
        assert_eq!(fresh.load().saturation, 0.0);
    }

    #[test]
    fn desired_replicas_follows_the_hpa_rule() {
        // Two replicas at 120% against a target of 80%: ceil(2 × 1.2 ÷ 0.8) = 3.
        assert_eq!(desired_replicas(&[1.0, 1.4], 0.8), 3);
        assert_eq!(desired_replicas(&[0.4, 0.4], 0.8), 1);
        assert_eq!(desired_replicas(&[0.0, 0.0], 0.8), 0);
        assert_eq!(desired_replicas(&[], 0.8), 0);
        assert_eq!(desired_replicas(&[0.8], 0.8), 1);
    }

    fn ticket(id: u64, tokens: u64) -> Ticket {
        Ticket::new(TicketId(id), Class::Batch, "t", tokens, Instant::now())
    }

    #[test]
    fn load_counts_holders_and_queued_over_capacity() {
        let mut queue = Queue::new(QueueConfig::new(Capacity {
            max_concurrent: Some(2),
            max_tokens_in_flight: None,
        }));
        for id in 1..=3 {
            let _ = queue.offer(ticket(id, 10));
        }
        assert_eq!(
            load(&queue),
            Load {
                saturation: 1.0,
                utilization: 1.5
            }
        );
        let mut by_tokens = Queue::new(QueueConfig::new(Capacity {
            max_concurrent: None,
            max_tokens_in_flight: Some(100),
        }));
        let _ = by_tokens.offer(ticket(1, 50));
        let _ = by_tokens.offer(ticket(2, 50));
        let _ = by_tokens.offer(ticket(3, 50));
        assert_eq!(
            load(&by_tokens),
            Load {
                saturation: 1.0,
                utilization: 1.5
            }
        );
    }
}
