//! A key's counters shared by the fleet in Redis ([`RedisCounters`]), the
//! `data_plane::counters::Counters` a replica of a fleet uses.
//!
//! 1. `reserve` runs one script (`names::RESERVE`) that checks and takes rpm, tpm and the
//!    day's and month's budgets in one step on Redis's clock, with the semantics of
//!    `switchyard_resilience::KeyLimits` (all or none; the same refusals, `retry_after` and
//!    `x-ratelimit-*` state). N replicas admit the configured rate, not N times it, and the
//!    fleet's spend passes a budget by at most one request's worst case. A budget's
//!    reservations are held in this replica's name: when it dies with requests in flight,
//!    the others give them back once its heartbeat expires (the script's numbered comment).
//! 2. A budget Redis holds nothing of (first use, Redis restarted empty, the key idle for two
//!    days) is seeded first with what the store says the key spent this day and month
//!    (`RecordStore::spend_since`, as `InProcessCounters` at a pipeline's build), by a script
//!    that writes only where nothing is (`names::SEED`), so two replicas seeding at once count
//!    the spend once. Then the reservation runs again.
//! 3. `settle` never waits: it queues the settlement for the link's settler task (bounded,
//!    `RedisSettings::settle_queue`; full, the settlement is dropped and counted, which leaves
//!    the reservation taken: a drop errs towards refusing). The settler sends them in batches
//!    and holds a batch through an outage until Redis answers again.
//! 4. While Redis is unreachable (`connection.rs`), each key counts in this replica a share
//!    of every limit (limit ÷ the replicas last counted, at least 1 a minute for rates), its
//!    budgets starting from the spend Redis last stated (divided the same way), else from the
//!    store; or refuses (`WhenDown::Refuse`). Each outage gets fresh counters, numbered by the
//!    outage ([`Ticket`]). A request admitted during an outage settles in those counters
//!    while the outage lasts, and its cost also goes to Redis as spend (nothing reserved
//!    there to free), so the fleet's budgets learn of it when Redis is back.
//! 5. A request dropped while its reservation is under way (a client hanging up during
//!    admission) hands the rest of it to a task, which settles what it took as unused: no
//!    reservation is left with nobody to settle it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use switchyard_control::KeySpec;
use switchyard_store::Store;
use tokio::sync::{mpsc, oneshot};

use super::connection::{AbortOnDrop, Shared, WhenDown};
use crate::data_plane::counters::{
    Admitted, Counters, InProcessCounters, Limit, Periods, RateLimits, Refusal, Reservation,
    Ticket, Window,
};
use crate::metrics::{self as m, LabelValue};

/// Reservations counted in Redis; an outage's own counters are numbered by the outage (≥ 1).
const IN_REDIS: Ticket = Ticket(0);

/// How many times a reservation runs, seeding between runs, before giving up (an expiry or a
/// wipe between the seed and the run is already rare).
const SEED_ATTEMPTS: usize = 3;

/// Settlements sent in one round trip.
const BATCH: usize = 256;

/// What every key's shared counters use: the link, the settler (point 3) and the store
/// budgets are seeded from. One per link; [`SharedCounters::counters`] makes a key's.
#[derive(Clone)]
pub struct SharedCounters {
    shared: Arc<Shared>,
    settler: Settler,
    store: Arc<dyn Store>,
}

impl SharedCounters {
    /// Starts the settler of `shared` (inside the runtime); budgets are seeded from `store`.
    pub fn new(shared: &Arc<Shared>, store: Arc<dyn Store>) -> Self {
        SharedCounters {
            shared: shared.clone(),
            settler: Settler::start(shared),
            store,
        }
    }

    /// The counters of the key `spec`.
    pub fn counters(&self, spec: &KeySpec) -> RedisCounters {
        RedisCounters(Arc::new(Key {
            name: self.shared.names.limits(&spec.id).into(),
            fleet: self.clone(),
            spec: spec.clone(),
            seen: Mutex::new(Seen::default()),
            fallback: Mutex::new(None),
        }))
    }

    /// Waits until every settlement made before the call has reached Redis (or, while Redis
    /// is unreachable, until it is back and they have).
    pub async fn flush(&self) {
        self.settler.flush().await;
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

/// One key's limits, shared through Redis.
pub struct RedisCounters(Arc<Key>);

/// A key's counters; shared with the task a reservation runs in.
struct Key {
    fleet: SharedCounters,
    /// The key's limits hash.
    name: Arc<str>,
    spec: KeySpec,
    /// The day's and the month's spend + reservations as Redis last stated them.
    seen: Mutex<Seen>,
    /// The counters of the outage in progress, numbered by it.
    fallback: Mutex<Option<(u64, Arc<InProcessCounters>)>>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    day: Option<(u32, u64)>,
    month: Option<(u32, u64)>,
}

/// What a reservation in Redis came to.
enum Reply {
    Done(Result<Admitted, Refusal>),
    /// Budgets to seed first (point 2).
    Seed(Seeding),
}

/// Which budgets to seed (1 the day's, 2 the month's, 3 both), of which day and month, and
/// when they started (ms), all by Redis's clock.
#[derive(Debug, Clone, Copy)]
struct Seeding {
    which: i64,
    day: u32,
    day_start_ms: i64,
    month: u32,
    month_start_ms: i64,
}

/// Why a reservation could not be made in Redis.
enum Failed {
    /// Redis did not answer: it is down (point 4).
    Redis(redis::RedisError),
    /// The store could not say what the key spent, so its budgets cannot be seeded.
    Store(String),
    /// Redis kept asking for a seed (the key expired or was wiped each time).
    Unseeded,
}

/// The reserve script's reply (`names::RESERVE`), field by field.
struct Raw {
    outcome: i64,
    which: i64,
    retry_us: i64,
    rpm: (i64, i64),
    tpm: (i64, i64),
    day: (i64, i64),
    month: (i64, i64),
    starts: (i64, i64),
}

impl Raw {
    fn parse(v: &[i64]) -> Option<Raw> {
        let &[outcome, which, retry_us, rl, rr, tl, tr, day, dc, month, mc, ds, ms] = v else {
            return None;
        };
        Some(Raw {
            outcome,
            which,
            retry_us,
            rpm: (rl, rr),
            tpm: (tl, tr),
            day: (day, dc),
            month: (month, mc),
            starts: (ds, ms),
        })
    }
}

impl Key {
    /// Whether the key has any limit: a key without one costs Redis nothing (its spend is in
    /// the store, where a budget added later is seeded from).
    fn limited(&self) -> bool {
        let s = &self.spec;
        s.rpm.is_some()
            || s.tpm.is_some()
            || s.budget_daily_nanos.is_some()
            || s.budget_monthly_nanos.is_some()
    }

    /// Points 1 and 2: the script, seeding first when it asks.
    async fn reserve_in_redis(&self, r: Reservation) -> Result<Result<Admitted, Refusal>, Failed> {
        let mut conn = self.fleet.shared.conn();
        for _ in 0..SEED_ATTEMPTS {
            match self
                .run_reserve(&mut conn, r)
                .await
                .map_err(Failed::Redis)?
            {
                Reply::Done(answer) => return Ok(answer),
                Reply::Seed(seeding) => self.seed(&mut conn, seeding).await?,
            }
        }
        Err(Failed::Unseeded)
    }

    async fn run_reserve(
        &self,
        conn: &mut ConnectionManager,
        r: Reservation,
    ) -> Result<Reply, redis::RedisError> {
        let spec = &self.spec;
        let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
        let values: Vec<i64> = self
            .fleet
            .shared
            .scripts
            .reserve
            .key(&*self.name)
            .key(self.fleet.shared.names.replicas())
            .arg(opt(spec.rpm.map(u64::from)))
            .arg(opt(spec.tpm.map(u64::from)))
            .arg(opt(spec.budget_daily_nanos))
            .arg(opt(spec.budget_monthly_nanos))
            .arg(r.tokens)
            .arg(clamp_i64(r.cost_nanos))
            .arg(self.fleet.shared.replica())
            .invoke_async(conn)
            .await?;
        let raw = Raw::parse(&values).ok_or_else(|| malformed("reserve"))?;
        self.note(raw.day, raw.month);
        let limits = RateLimits {
            requests: spec.rpm.map(|l| window(l, raw.rpm)),
            tokens: spec.tpm.map(|l| window(l, raw.tpm)),
        };
        let limit = match (raw.outcome, raw.which) {
            (0, _) => {
                let ticket = IN_REDIS;
                return Ok(Reply::Done(Ok(Admitted { limits, ticket })));
            }
            (2, which) => {
                return Ok(Reply::Seed(Seeding {
                    which,
                    day: period(raw.day.0),
                    day_start_ms: raw.starts.0,
                    month: period(raw.month.0),
                    month_start_ms: raw.starts.1,
                }))
            }
            (1, 1) => Limit::RequestsPerMinute,
            (1, 2) => Limit::TokensPerMinute,
            (1, 3) => Limit::DailyBudget,
            (1, 4) => Limit::MonthlyBudget,
            _ => return Err(malformed("reserve")),
        };
        Ok(Reply::Done(Err(Refusal::Limited {
            limit,
            retry_after: micros(raw.retry_us),
            limits,
        })))
    }

    /// Remembers what Redis said the budgets hold (period, spent + reserved), for an
    /// outage's counters.
    fn note(&self, (day, day_committed): (i64, i64), (month, month_committed): (i64, i64)) {
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        if let Ok(c) = u64::try_from(day_committed) {
            seen.day = Some((period(day), c));
        }
        if let Ok(c) = u64::try_from(month_committed) {
            seen.month = Some((period(month), c));
        }
    }

    /// Point 2: what the store says the key spent, written where Redis holds nothing.
    async fn seed(&self, conn: &mut ConnectionManager, s: Seeding) -> Result<(), Failed> {
        let (store, id) = (self.fleet.store.clone(), self.spec.id.clone());
        let spent = crate::tasks::spawn_blocking(move || {
            let since = |wanted: bool, start: i64| match wanted {
                true => store.spend_since(&id, start).map(Some),
                false => Ok(None),
            };
            Ok::<_, switchyard_store::StoreError>((
                since(s.which & 1 != 0, s.day_start_ms)?,
                since(s.which & 2 != 0, s.month_start_ms)?,
            ))
        })
        .await;
        let (spent_day, spent_month) = match spent {
            Ok(Ok(spent)) => spent,
            Ok(Err(e)) => return Err(Failed::Store(e.to_string())),
            Err(e) => return Err(Failed::Store(e.to_string())),
        };
        let opt = |v: Option<u64>| v.map(|v| clamp_i64(v).to_string()).unwrap_or_default();
        let _: i64 = self
            .fleet
            .shared
            .scripts
            .seed
            .key(&*self.name)
            .arg(s.day)
            .arg(opt(spent_day))
            .arg(s.month)
            .arg(opt(spent_month))
            .invoke_async(conn)
            .await
            .map_err(Failed::Redis)?;
        Ok(())
    }

    /// Point 4: this replica's share of the limits during `outage`, or a refusal.
    async fn reserve_alone(&self, outage: u64, r: Reservation) -> Result<Admitted, Refusal> {
        let mode = match self.fleet.shared.settings.when_down {
            WhenDown::PerReplica => "per_replica",
            WhenDown::Refuse => "refused",
        };
        m::counter(m::REDIS_FALLBACK, &[("mode", LabelValue::fixed(mode))]).increment(1);
        if self.fleet.shared.settings.when_down == WhenDown::Refuse {
            return Err(Refusal::SharedUnavailable {
                retry_after: self.fleet.shared.settings.heartbeat,
            });
        }
        let counters = self.fallback_of(outage).await?;
        let admitted = counters.reserve(r).await?;
        Ok(Admitted {
            ticket: Ticket(outage),
            ..admitted
        })
    }

    /// The counters of `outage`, made at its first request.
    async fn fallback_of(&self, outage: u64) -> Result<Arc<InProcessCounters>, Refusal> {
        if let Some(c) = self.current_fallback(outage)? {
            return Ok(c);
        }
        let replicas = self.fleet.shared.replicas();
        let periods = Periods::now();
        let seen = self.seen.lock().map(|s| *s).unwrap_or_default();
        let known = |stated: Option<(u32, u64)>, period: u32| match stated {
            Some((p, committed)) if p == period => Some(committed),
            Some(_) => Some(0),
            None => None,
        };
        let (mut day, mut month) = (
            known(seen.day, periods.day),
            known(seen.month, periods.month),
        );
        if day.is_none() || month.is_none() {
            let (store, id) = (self.fleet.store.clone(), self.spec.id.clone());
            let (d, mo) = (periods.day_start_ms, periods.month_start_ms);
            let read = crate::tasks::spawn_blocking(move || {
                (
                    store.spend_since(&id, d).ok(),
                    store.spend_since(&id, mo).ok(),
                )
            })
            .await
            .unwrap_or_default();
            day = day.or(read.0);
            month = month.or(read.1);
        }
        let share = share_of(&self.spec, replicas);
        // Asked with the day's start for the daily budget and the month's for the monthly;
        // on the 1st both are the same instant, and so are both spends.
        let spent = |_: &str, since: i64| {
            let whole = if since == periods.day_start_ms {
                day
            } else {
                month
            };
            whole.unwrap_or(0) / u64::from(replicas)
        };
        let made = Arc::new(InProcessCounters::new(&share, &periods, &spent));
        let mut slot = self.fallback.lock().map_err(|_| Refusal::Unavailable)?;
        match &*slot {
            Some((o, c)) if *o == outage => Ok(c.clone()),
            _ => {
                *slot = Some((outage, made.clone()));
                Ok(made)
            }
        }
    }

    fn current_fallback(&self, outage: u64) -> Result<Option<Arc<InProcessCounters>>, Refusal> {
        let slot = self.fallback.lock().map_err(|_| Refusal::Unavailable)?;
        Ok(slot
            .as_ref()
            .filter(|(o, _)| *o == outage)
            .map(|(_, c)| c.clone()))
    }
}

#[async_trait]
impl Counters for RedisCounters {
    /// The step runs here, held by an [`InFlight`]: a request dropped while Redis answers
    /// (a client hanging up) hands the rest of the step to a task that settles what the
    /// script took, which would otherwise stay reserved with nobody to settle it.
    async fn reserve(&self, reservation: Reservation) -> Result<Admitted, Refusal> {
        if !self.0.limited() {
            return Ok(Admitted::default());
        }
        let key = self.0.clone();
        let mut in_flight = InFlight {
            step: Some(Box::pin(async move { key.reserve(reservation).await })),
            key: self.0.clone(),
            reservation,
        };
        let answer = match in_flight.step.as_mut() {
            Some(step) => step.await,
            None => Err(Refusal::Unavailable),
        };
        in_flight.step = None;
        answer
    }

    fn settle(&self, ticket: Ticket, reserved: Reservation, used: Reservation) {
        self.0.settle(ticket, reserved, used);
    }
}

impl Key {
    async fn reserve(&self, reservation: Reservation) -> Result<Admitted, Refusal> {
        let shared = &self.fleet.shared;
        let link = shared.link();
        if !link.up {
            return self.reserve_alone(link.outage, reservation).await;
        }
        let unavailable = Refusal::SharedUnavailable {
            retry_after: shared.settings.heartbeat,
        };
        match self.reserve_in_redis(reservation).await {
            Ok(answer) => answer,
            Err(Failed::Redis(e)) => {
                let outage = shared.mark_down("counters", &e);
                self.reserve_alone(outage, reservation).await
            }
            // Seeding with nothing would forget what the key spent: refuse until the store
            // answers.
            Err(Failed::Store(error)) => {
                tracing::warn!(key = %self.spec.id, %error, "cannot seed the key's budgets from the store");
                Err(unavailable)
            }
            Err(Failed::Unseeded) => Err(unavailable),
        }
    }

    fn settle(&self, ticket: Ticket, reserved: Reservation, used: Reservation) {
        if !self.limited() {
            return;
        }
        let freed = if ticket == IN_REDIS {
            reserved
        } else {
            // Counted in an outage's counters: settle there if it still runs, and send the
            // spend to Redis with nothing reserved there to free.
            let current = self.fallback.lock().ok().and_then(|slot| {
                slot.as_ref()
                    .filter(|(o, _)| Ticket(*o) == ticket)
                    .map(|(_, c)| c.clone())
            });
            if let Some(c) = current {
                c.settle(Ticket::default(), reserved, used);
            }
            Reservation {
                tokens: 0,
                cost_nanos: 0,
            }
        };
        self.fleet.settler.send(Settlement {
            name: self.name.clone(),
            tpm: self.spec.tpm,
            reserved: freed,
            used,
        });
    }
}

/// A reservation being made for a request (point 5).
struct InFlight {
    step: Option<futures::future::BoxFuture<'static, Result<Admitted, Refusal>>>,
    key: Arc<Key>,
    reservation: Reservation,
}

impl Drop for InFlight {
    /// Dropped unfinished: the script may have run, or may yet. The rest of the step runs in
    /// a task, and what it took is settled as a request that used nothing.
    fn drop(&mut self) {
        let Some(step) = self.step.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(key = %self.key.spec.id, "a reservation dropped outside the runtime stays taken");
            return;
        };
        let (key, reserved) = (self.key.clone(), self.reservation);
        let nothing = Reservation {
            tokens: 0,
            cost_nanos: 0,
        };
        runtime.spawn(async move {
            if let Ok(admitted) = step.await {
                key.settle(admitted.ticket, reserved, nothing);
            }
        });
    }
}

/// The key's limits divided among `replicas`: rates at least 1 a minute, budgets as they
/// divide.
fn share_of(spec: &KeySpec, replicas: u32) -> KeySpec {
    let n = replicas.max(1);
    KeySpec {
        rpm: spec.rpm.map(|l| (l / n).max(1)),
        tpm: spec.tpm.map(|l| (l / n).max(1)),
        budget_daily_nanos: spec.budget_daily_nanos.map(|l| l / u64::from(n)),
        budget_monthly_nanos: spec.budget_monthly_nanos.map(|l| l / u64::from(n)),
        ..spec.clone()
    }
}

/// One settlement for the settler.
#[derive(Debug)]
struct Settlement {
    name: Arc<str>,
    tpm: Option<u32>,
    reserved: Reservation,
    used: Reservation,
}

enum Queued {
    Settle(Settlement),
    /// Answered once everything queued before it was sent.
    Flush(oneshot::Sender<()>),
}

/// The queue of settlements to send to Redis, and the task that sends them (point 3). One per
/// link; every key's counters share it.
#[derive(Clone)]
pub struct Settler {
    queue: mpsc::Sender<Queued>,
    _task: Arc<AbortOnDrop>,
}

impl Settler {
    /// Starts the settler of `shared` (inside the runtime).
    pub fn start(shared: &Arc<Shared>) -> Self {
        let (queue, rx) = mpsc::channel(shared.settings.settle_queue.max(1));
        #[expect(
            clippy::disallowed_methods,
            reason = "aborted when the last counters drop; what it has not sent is lost as after a crash (reservations stay taken until their period ends)"
        )]
        let task = tokio::spawn(settle_loop(Arc::downgrade(shared), rx));
        Settler {
            queue,
            _task: Arc::new(AbortOnDrop(task)),
        }
    }

    fn send(&self, s: Settlement) {
        if self.queue.try_send(Queued::Settle(s)).is_err() {
            m::counter(m::SETTLEMENTS_DROPPED, &[]).increment(1);
        }
    }

    /// Waits until every settlement queued before the call has reached Redis.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.queue.send(Queued::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

async fn settle_loop(shared: std::sync::Weak<Shared>, mut rx: mpsc::Receiver<Queued>) {
    let mut queued = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut queued, BATCH).await > 0 {
        let Some(link) = shared.upgrade() else {
            return;
        };
        let mut batch = Vec::with_capacity(queued.len());
        let mut flushes = Vec::new();
        for q in queued.drain(..) {
            match q {
                Queued::Settle(s) => batch.push(s),
                Queued::Flush(done) => flushes.push(done),
            }
        }
        // Held through an outage: sent when Redis answers again.
        while let Err(e) = send_batch(&link, &batch).await {
            link.mark_down("counters", &e);
            link.until_up().await;
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// The batch's settlements, sent at once on the multiplexed connection.
async fn send_batch(shared: &Shared, batch: &[Settlement]) -> Result<(), redis::RedisError> {
    let calls = batch.iter().map(|s| {
        let mut conn = shared.conn();
        let mut call = shared.scripts.settle.key(&*s.name);
        call.arg(s.tpm.map(|t| t.to_string()).unwrap_or_default())
            .arg(s.reserved.tokens)
            .arg(s.used.tokens)
            .arg(clamp_i64(s.reserved.cost_nanos))
            .arg(clamp_i64(s.used.cost_nanos))
            .arg(shared.replica());
        async move { call.invoke_async::<i64>(&mut conn).await }
    });
    for done in futures::future::join_all(calls).await {
        done?;
    }
    Ok(())
}

fn window(limit: u32, (remaining, reset_us): (i64, i64)) -> Window {
    Window {
        limit,
        remaining: u32::try_from(remaining.max(0)).unwrap_or(u32::MAX),
        reset: micros(reset_us),
    }
}

fn micros(us: i64) -> Duration {
    Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

fn period(p: i64) -> u32 {
    u32::try_from(p).unwrap_or(0)
}

/// Redis counts in signed 64 bits; no budget comes near the difference.
fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn malformed(script: &'static str) -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::Parse,
        "unexpected reply from a script",
        script.to_owned(),
    ))
}
