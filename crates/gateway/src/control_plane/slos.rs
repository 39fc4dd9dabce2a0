//! SLOs at run time: every finished chat request is counted against the `[[slos]]` that
//! match it (`switchyard_slo::Ledger`), the burn-rate alerts are evaluated on a timer
//! (`switchyard_slo::AlertEngine`), and the whole state is saved to the store, so a restart
//! loses no history. The SLO maths is `switchyard-slo`'s; this module only feeds and keeps it.
//!
//! 1. `RecordGuard` calls [`SloRuntime::observe`] when a chat request ends: its status, whether
//!    a provider failed it, its latency and time to first token, whether every output guard
//!    passed; the route alias the request named and the model that answered pick the SLOs;
//!    the config version is kept per SLO for a day.
//! 2. `Server::run` calls [`SloRuntime::evaluate`] every 30 s and logs each alert state change
//!    (a page as an error, a ticket as a warning), then saves the state (`slo_state`).
//! 3. A config version with other SLOs keeps the history of every SLO whose scope, objective and
//!    window are unchanged (`Ledger::set_specs`).
//! 4. Negative feedback arrives after the request was counted ([`dislike`], from
//!    `POST /v1/feedback`): the request's quality event turns from good to bad in the minute
//!    (or hour) it was counted in, in the SLOs that counted it (`Ledger::regrade`); its other
//!    objectives do not move. Once per request: the store says whether this is the first
//!    negative score from the request's tenant (`FeedbackStore::add_feedback`), so feedback sent
//!    again, or changed from positive to negative, counts once. A negative verdict stays: a
//!    later positive one does not turn the request good again, as the KPIs' successful
//!    interaction (`kpi::SUCCESS_SQL`) stays failed; the budget an SLO spent is not refunded by
//!    whoever clicks last. An `escalated` outcome is not negative feedback: a conversation
//!    handed to a human is not a bad answer by itself (the KPIs count escalations apart).
//!    The request is found among those counted lately (its record may not be written yet),
//!    else as its record in the store; one that has not ended yet (a stream) takes the verdict
//!    when it does. An event older than an SLO's window is gone and stays gone. Each replica
//!    counts the requests it served: feedback on another's request finds it only in the store,
//!    and turns an event this replica never counted only if it matches one it did.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use switchyard_slo::{AlertEngine, AlertEvent, Ledger, Objective, Sli, SloSpec, SloStatus};
use switchyard_store::{RequestRecord, Store, StoreError};

use crate::data_plane::guards::Outcome;
use crate::data_plane::record::OutcomeSink;

/// A flag the SLOs' page actions set (`slo_actions.rs`), what it replaced, and the SLOs that
/// want it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Held {
    pub set: switchyard_rollout::Flag,
    pub previous: Option<switchyard_rollout::Flag>,
    pub slos: BTreeSet<String>,
}

/// What is saved: the ledger and the alert engine, as their own serde.
#[derive(Serialize, Deserialize)]
struct Saved {
    ledger: Ledger,
    engine: AlertEngine,
    /// The flags the SLOs' page actions hold (`slo_actions.rs`), by key.
    #[serde(default)]
    held: BTreeMap<String, Held>,
}

/// Saved state, and what late feedback needs of requests in memory (point 4; not saved: the
/// store has every written record).
struct State {
    saved: Saved,
    /// Requests counted good for quality lately, by request id. Records reach the store every
    /// `telemetry.flush_interval` (200 ms by default); this many cover that gap at up to about
    /// 40,000 requests a second.
    recent: Bounded<Counted>,
    /// Negative verdicts (the tenants that gave them) on requests not counted yet.
    pending: Bounded<Vec<String>>,
}

const RECENT: usize = 8_192;
const PENDING: usize = 1_024;

pub struct SloRuntime {
    state: Mutex<State>,
    /// In a fleet (`fleet.rs`): this replica's ledger counts its own requests from its start,
    /// and is published; the judge adds everyone's up. The saved state then holds the
    /// judge's alert engine only.
    fleet: bool,
}

/// A counted request, as late feedback finds it again.
#[derive(Debug, Clone, PartialEq)]
pub struct Counted {
    pub tenant: Option<String>,
    pub at_secs: i64,
    pub route: Option<String>,
    pub model: String,
    pub version: String,
    pub sli: Sli,
}

impl Counted {
    /// `r` as [`SloRuntime::observe`] counts it, `route` being the alias it named.
    pub fn of(r: &RequestRecord, route: Option<&str>, guard_outcomes: &[Outcome]) -> Self {
        Counted {
            tenant: r.tenant.clone(),
            at_secs: r.started_at_ms.div_euclid(1000),
            route: route.map(str::to_owned),
            model: r.model.clone().unwrap_or_default(),
            version: r.config_version.clone().unwrap_or_default(),
            sli: Sli {
                status: r.status,
                provider_error: r
                    .error_kind
                    .as_deref()
                    .is_some_and(|k| k.starts_with("upstream") || k.contains("provider")),
                latency_ms: r.latency_ms,
                ttft_ms: if r.stream { r.ttft_ms } else { None },
                guard_passed: !crate::data_plane::guards::answer_failed(guard_outcomes),
                feedback_negative: false,
            },
        }
    }

    /// Good, bad, or not a quality event (not an answer).
    pub fn quality(&self) -> Option<bool> {
        self.sli.judge(&Objective::Quality)
    }
}

/// A map that forgets its oldest entries beyond a capacity.
struct Bounded<V> {
    map: HashMap<String, V>,
    order: VecDeque<String>,
    capacity: usize,
}

impl<V> Bounded<V> {
    fn new(capacity: usize) -> Self {
        Bounded {
            map: HashMap::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    fn insert(&mut self, key: &str, value: V) {
        if self.map.insert(key.to_owned(), value).is_none() {
            self.order.push_back(key.to_owned());
        }
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }

    fn remove(&mut self, key: &str) -> Option<V> {
        self.map.remove(key)
    }

    /// `None` when `key` is not here; `Some(None)` when it is but `mine` refuses it (it stays);
    /// `Some(Some(v))` when it was taken.
    fn take_if(&mut self, key: &str, mine: impl FnOnce(&V) -> bool) -> Option<Option<V>> {
        let v = self.map.get(key)?;
        Some(if mine(v) { self.map.remove(key) } else { None })
    }
}

/// How many recent alert events `/admin/v1/slos` shows.
const RECENT_ALERTS: usize = 50;

/// Points per SLO in a chart's history: five-minute steps over a day.
const HISTORY_POINTS: usize = 288;

impl SloRuntime {
    /// The runtime for `specs`, continuing the saved state when there is one. In a `fleet`,
    /// only the alert engine continues: the history is the replicas' published ledgers.
    pub fn load(store: &dyn Store, specs: &[SloSpec], fleet: bool) -> Result<Self, StoreError> {
        let mut saved = saved_state(store, specs)?;
        if fleet {
            saved.ledger = Ledger::new(specs);
        }
        saved.ledger.set_specs(specs);
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        saved.engine.retain_slos(&names);
        Ok(SloRuntime {
            state: Mutex::new(State {
                saved,
                recent: Bounded::new(RECENT),
                pending: Bounded::new(PENDING),
            }),
            fleet,
        })
    }

    /// Whether this runtime is one replica's share of a fleet's.
    pub fn in_fleet(&self) -> bool {
        self.fleet
    }

    /// In a fleet: publishes this replica's ledger (`fleet.rs`, 1.). Blocks.
    pub fn publish(&self, store: &dyn Store, replica: &str, now_ms: i64) -> Result<(), StoreError> {
        let body = match self.state.lock() {
            Ok(s) => to_json(&s.saved.ledger, "an SLO ledger")?,
            Err(_) => return Ok(()),
        };
        store.save_replica_state(super::fleet::SLO_AREA, replica, &body, now_ms)
    }

    /// As the fleet's judge: evaluates every SLO's alerts at `now` (unix seconds) on every
    /// replica's ledger added up, and saves the alert engine; returns the state changes.
    /// `took_over`: the engine another judge kept is read first. Blocks.
    pub fn evaluate_fleet(
        &self,
        store: &dyn Store,
        now: i64,
        took_over: bool,
    ) -> Result<Vec<AlertEvent>, StoreError> {
        let Ok(mut guard) = self.state.lock() else {
            return Ok(Vec::new());
        };
        let specs: Vec<SloSpec> = guard.saved.ledger.specs().cloned().collect();
        if took_over {
            let kept = saved_state(store, &specs)?;
            guard.saved.engine = kept.engine;
            guard.saved.held = kept.held;
        }
        let merged = fleet_ledger(store, &specs, now)?;
        let s = &mut guard.saved;
        let mut events = Vec::new();
        for (spec, series) in merged.iter() {
            events.extend(s.engine.evaluate(now, spec, series));
        }
        store.save_slo_state(&judged(s, &specs)?, now.saturating_mul(1000))?;
        // What no SLO window reaches any more is of no use.
        let longest = specs.iter().map(|s| s.window_secs).max().unwrap_or(0);
        store.forget_replica_states(
            Some(super::fleet::SLO_AREA),
            now.saturating_sub(longest).saturating_mul(1000),
        )?;
        Ok(events)
    }

    /// The fleet's SLO status: every replica's ledger added up, with the judge's alerts.
    /// Blocks.
    pub fn fleet_status(
        &self,
        store: &dyn Store,
        now: i64,
        history_secs: Option<i64>,
    ) -> Result<(Vec<SloStatus>, Vec<AlertEvent>), StoreError> {
        let specs: Vec<SloSpec> = match self.state.lock() {
            Ok(s) => s.saved.ledger.specs().cloned().collect(),
            Err(_) => return Ok((Vec::new(), Vec::new())),
        };
        let kept = saved_state(store, &specs)?;
        let saved = Saved {
            ledger: fleet_ledger(store, &specs, now)?,
            engine: kept.engine,
            held: kept.held,
        };
        Ok(status_of(&saved, now, history_secs))
    }

    /// A new config version's SLOs.
    pub fn set_specs(&self, specs: &[SloSpec]) {
        if let Ok(mut s) = self.state.lock() {
            s.saved.ledger.set_specs(specs);
            let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
            s.saved.engine.retain_slos(&names);
        }
    }

    /// The first negative feedback from `tenant` on a request counted lately (point 4), at
    /// `now` (unix seconds): `Some` with the request when it was there (and whether its
    /// quality turned bad), `None` when the store must be asked.
    pub(super) fn dislike_recent(
        &self,
        request_id: &str,
        tenant: &str,
        now: i64,
    ) -> Option<Turned> {
        let mut s = self.state.lock().ok()?;
        let c = s
            .recent
            .take_if(request_id, |c| c.tenant.as_deref() == Some(tenant))?;
        Some(c.and_then(|c| turn(&mut s, c, tenant, now)))
    }

    /// The same for a request found in the store (`Some`), or not there yet (`None`): then it
    /// may have been counted since it was looked for, else it takes the verdict when it ends.
    pub(super) fn dislike_stored(
        &self,
        request_id: &str,
        tenant: &str,
        stored: Option<Counted>,
        now: i64,
    ) -> Turned {
        let Ok(mut s) = self.state.lock() else {
            return None;
        };
        // Counted while the store was asked: the same request, so one turn.
        let recent = s
            .recent
            .take_if(request_id, |c| c.tenant.as_deref() == Some(tenant));
        match (recent, stored) {
            (Some(mine), _) => mine.and_then(|c| turn(&mut s, c, tenant, now)),
            (None, Some(c)) => turn(&mut s, c, tenant, now),
            (None, None) => {
                let mut tenants = s.pending.remove(request_id).unwrap_or_default();
                tenants.push(tenant.to_owned());
                s.pending.insert(request_id, tenants);
                None
            }
        }
    }

    /// Evaluates every SLO's alerts at `now` (unix seconds); returns the state changes.
    pub fn evaluate(&self, now: i64) -> Vec<AlertEvent> {
        let Ok(mut guard) = self.state.lock() else {
            return Vec::new();
        };
        let s = &mut guard.saved;
        s.ledger.advance(now);
        let mut events = Vec::new();
        for (spec, series) in s.ledger.iter() {
            events.extend(s.engine.evaluate(now, spec, series));
        }
        events
    }

    /// The SLOs one of whose page rules fires now.
    pub fn paging(&self) -> BTreeSet<String> {
        let Ok(guard) = self.state.lock() else {
            return BTreeSet::new();
        };
        let engine = &guard.saved.engine;
        let pages: Vec<&str> = engine
            .rules()
            .iter()
            .filter(|r| r.severity == switchyard_slo::Severity::Page)
            .map(|r| r.name.as_str())
            .collect();
        guard
            .saved
            .ledger
            .specs()
            .filter(|spec| {
                pages.iter().any(|rule| {
                    engine
                        .status(&spec.name, rule)
                        .is_some_and(|st| st.state == switchyard_slo::AlertState::Firing)
                })
            })
            .map(|spec| spec.name.clone())
            .collect()
    }

    /// The flags the SLOs' page actions hold.
    pub fn held_flags(&self) -> BTreeMap<String, Held> {
        self.state
            .lock()
            .map(|s| s.saved.held.clone())
            .unwrap_or_default()
    }

    /// Replaces the flags the SLOs' page actions hold; [`Self::save_all`] keeps them.
    pub fn set_held_flags(&self, held: BTreeMap<String, Held>) {
        if let Ok(mut s) = self.state.lock() {
            s.saved.held = held;
        }
    }

    /// Saves what the evaluating replica keeps: the whole state, or in a fleet the judge's
    /// alert engine and held flags. Blocks.
    pub fn save_all(&self, store: &dyn Store) -> Result<(), StoreError> {
        if !self.fleet {
            return self.save(store);
        }
        let body = match self.state.lock() {
            Ok(s) => {
                let specs: Vec<SloSpec> = s.saved.ledger.specs().cloned().collect();
                judged(&s.saved, &specs)?
            }
            Err(_) => return Ok(()),
        };
        store.save_slo_state(&body, chrono::Utc::now().timestamp_millis())
    }

    /// Every SLO's status at `now`, and the most recent alert events (newest first); with
    /// `history_secs`, each SLO's points over that span before `now` for charts.
    pub fn status(&self, now: i64, history_secs: Option<i64>) -> (Vec<SloStatus>, Vec<AlertEvent>) {
        let Ok(guard) = self.state.lock() else {
            return (Vec::new(), Vec::new());
        };
        status_of(&guard.saved, now, history_secs)
    }

    /// Saves the whole state (point 2). In a fleet the judge saves the alert engine
    /// ([`Self::evaluate_fleet`]) and each replica publishes its ledger ([`Self::publish`]).
    pub fn save(&self, store: &dyn Store) -> Result<(), StoreError> {
        if self.fleet {
            return Ok(());
        }
        let body = match self.state.lock() {
            Ok(s) => to_json(&s.saved, "the SLO state")?,
            Err(_) => return Ok(()),
        };
        store.save_slo_state(&body, chrono::Utc::now().timestamp_millis())
    }
}

/// What a fleet's judge saves: its alert engine and held flags, with an empty ledger (the
/// history is the replicas' published ledgers).
fn judged(s: &Saved, specs: &[SloSpec]) -> Result<String, StoreError> {
    let saved = Saved {
        ledger: Ledger::new(specs),
        engine: s.engine.clone(),
        held: s.held.clone(),
    };
    to_json(&saved, "the SLO state")
}

/// Every SLO's status in `s` at `now`, and the most recent alert events (newest first).
fn status_of(s: &Saved, now: i64, history_secs: Option<i64>) -> (Vec<SloStatus>, Vec<AlertEvent>) {
    let statuses = s
        .ledger
        .iter()
        .map(|(spec, series)| {
            let mut status = switchyard_slo::status(now, spec, series, &s.engine);
            // Percentiles of the last hour, for the latency and TTFT objectives.
            if let Some(sketch) = s.ledger.values(&spec.name).map(|v| v.window(now, 3600)) {
                if !sketch.is_empty() {
                    status = status.with_percentiles(&sketch);
                }
            }
            status.history = history_secs
                .map(|span| switchyard_slo::history(spec, series, now, span, HISTORY_POINTS));
            status
        })
        .collect();
    let alerts = s
        .engine
        .history()
        .rev()
        .take(RECENT_ALERTS)
        .cloned()
        .collect();
    (statuses, alerts)
}

/// The saved state, or a new one for `specs`.
fn saved_state(store: &dyn Store, specs: &[SloSpec]) -> Result<Saved, StoreError> {
    let saved = store
        .slo_state()?
        .and_then(|body| match serde_json::from_str::<Saved>(&body) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "the saved SLO state cannot be read; starting afresh");
                None
            }
        });
    Ok(saved.unwrap_or_else(|| Saved {
        ledger: Ledger::new(specs),
        engine: AlertEngine::new(switchyard_slo::default_rules())
            .unwrap_or_else(|_| unreachable!("the default rules are valid")),
        held: BTreeMap::new(),
    }))
}

/// Every replica's published ledger within the longest SLO window of `now`, added up.
fn fleet_ledger(store: &dyn Store, specs: &[SloSpec], now: i64) -> Result<Ledger, StoreError> {
    let longest = specs.iter().map(|s| s.window_secs).max().unwrap_or(0);
    let since_ms = now.saturating_sub(longest).saturating_mul(1000);
    let mut merged = Ledger::new(specs);
    for state in store.replica_states(super::fleet::SLO_AREA, since_ms)? {
        match serde_json::from_str::<Ledger>(&state.body) {
            Ok(ledger) => merged.merge(&ledger),
            Err(e) => tracing::warn!(
                replica = %state.replica,
                error = %e,
                "a replica's SLO ledger cannot be read; judging without it"
            ),
        }
    }
    merged.advance(now);
    Ok(merged)
}

fn to_json<T: Serialize>(value: &T, what: &str) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Json {
        what: what.to_owned(),
        source: e,
    })
}

/// A request whose quality turned bad, for the metrics; `None` when it did not (another
/// tenant's request, not an answer, or already bad).
type Turned = Option<Counted>;

impl OutcomeSink for SloRuntime {
    /// Counts a finished chat request (point 1) that named the route alias `route`; returns
    /// its quality verdict (`None`: not an answer), negative feedback given while it ran
    /// included (point 4).
    fn observe(
        &self,
        r: &RequestRecord,
        route: Option<&str>,
        guard_outcomes: &[Outcome],
    ) -> Option<bool> {
        let mut c = Counted::of(r, route, guard_outcomes);
        let Ok(mut s) = self.state.lock() else {
            return c.quality();
        };
        if let Some(tenants) = s.pending.remove(&r.request_id) {
            c.sli.feedback_negative = tenants.iter().any(|t| c.tenant.as_ref() == Some(t));
        }
        if s.saved.ledger.specs().next().is_some() {
            s.saved
                .ledger
                .observe(c.at_secs, c.route.as_deref(), &c.model, &c.version, &c.sli);
        }
        let quality = c.quality();
        // Only a good answer can turn bad later.
        if quality == Some(true) {
            s.recent.insert(&r.request_id, c);
        }
        quality
    }
}

/// Turns `c`'s quality event bad in every SLO that counted it, when `tenant` may judge it.
fn turn(s: &mut State, c: Counted, tenant: &str, now: i64) -> Turned {
    if c.tenant.as_deref() != Some(tenant) || c.quality() != Some(true) {
        return None;
    }
    let disliked = Sli {
        feedback_negative: true,
        ..c.sli
    };
    let ledger = &mut s.saved.ledger;
    ledger.advance(now);
    ledger.regrade(
        c.at_secs,
        c.route.as_deref(),
        &c.model,
        &c.version,
        &c.sli,
        &disliked,
    );
    Some(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_store::SqliteStore;

    fn runtime(dir: &tempfile::TempDir) -> SloRuntime {
        let store = SqliteStore::open_in(dir.path()).unwrap();
        let specs = [
            SloSpec::new("quality", Objective::Quality, 0.9),
            SloSpec::new("availability", Objective::Availability, 0.9),
        ];
        SloRuntime::load(&store, &specs, false).unwrap()
    }

    fn answered(id: &str, at_secs: i64) -> RequestRecord {
        RequestRecord {
            request_id: id.into(),
            tenant: Some("t".into()),
            started_at_ms: at_secs * 1000,
            status: 200,
            model: Some("m".into()),
            ..RequestRecord::default()
        }
    }

    /// (good, total) of an SLO over the last hour at `now`.
    fn counts(slos: &SloRuntime, slo: &str, now: i64) -> (u64, u64) {
        let (statuses, _) = slos.status(now, None);
        let s = statuses.iter().find(|s| s.name == slo).unwrap();
        (s.budget.good, s.budget.total)
    }

    #[test]
    fn a_recent_answer_turns_bad_for_its_own_tenant_only() {
        let dir = tempfile::tempdir().unwrap();
        let slos = runtime(&dir);
        assert_eq!(slos.observe(&answered("a", 100), None, &[]), Some(true));
        assert_eq!(slos.dislike_recent("a", "other", 110), Some(None));
        let turned = slos.dislike_recent("a", "t", 120).unwrap().unwrap();
        assert_eq!((turned.model.as_str(), turned.at_secs), ("m", 100));
        assert_eq!(counts(&slos, "quality", 130), (0, 1));
        assert_eq!(counts(&slos, "availability", 130), (1, 1));
        // Gone from memory once turned: a second call would ask the store.
        assert_eq!(slos.dislike_recent("a", "t", 140), None);
    }

    #[test]
    fn a_stored_answer_turns_and_a_failed_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let slos = runtime(&dir);
        let failed = RequestRecord {
            status: 502,
            ..answered("f", 100)
        };
        let guarded = answered("g", 100);
        assert_eq!(slos.observe(&failed, None, &[]), None);
        assert_eq!(
            slos.observe(&guarded, None, &[Outcome::Failed]),
            Some(false)
        );
        let stored = |r: &RequestRecord, outcomes: &[Outcome]| Some(Counted::of(r, None, outcomes));
        assert_eq!(
            slos.dislike_stored("f", "t", stored(&failed, &[]), 110),
            None
        );
        assert_eq!(
            slos.dislike_stored("g", "t", stored(&guarded, &[Outcome::Failed]), 110),
            None
        );
        assert_eq!(counts(&slos, "quality", 120), (0, 1));
        // An answer the store knows (counted before a restart, say) turns.
        slos.observe(&answered("s", 100), None, &[]);
        let mut state = slos.state.lock().unwrap();
        state.recent.remove("s");
        drop(state);
        let turned = slos.dislike_stored("s", "t", stored(&answered("s", 100), &[]), 110);
        assert!(turned.is_some());
        assert_eq!(counts(&slos, "quality", 120), (0, 2));
    }

    #[test]
    fn feedback_before_the_end_applies_when_the_request_ends() {
        let dir = tempfile::tempdir().unwrap();
        let slos = runtime(&dir);
        assert_eq!(slos.dislike_recent("late", "t", 100), None);
        assert_eq!(slos.dislike_stored("late", "t", None, 100), None);
        assert_eq!(slos.dislike_stored("late", "x", None, 100), None);
        assert_eq!(slos.observe(&answered("late", 100), None, &[]), Some(false));
        assert_eq!(counts(&slos, "quality", 110), (0, 1));
        // Only the request's own tenant's verdict waits for it.
        slos.dislike_stored("other", "x", None, 100);
        assert_eq!(slos.observe(&answered("other", 100), None, &[]), Some(true));
    }

    #[test]
    fn the_flags_page_actions_hold_survive_a_restart_and_a_new_judge() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_in(dir.path()).unwrap();
        let specs = [SloSpec::new("availability", Objective::Availability, 0.9)];
        let flag = switchyard_rollout::Flag {
            key: "admission.shed".into(),
            kind: switchyard_rollout::FlagKind::Boolean { on: true },
            enabled: true,
        };
        let held = BTreeMap::from([(
            flag.key.clone(),
            Held {
                set: flag,
                previous: None,
                slos: BTreeSet::from(["availability".to_owned()]),
            },
        )]);
        // Alone: saved with the rest of the state, read back at the next start.
        let alone = SloRuntime::load(&store, &specs, false).unwrap();
        alone.set_held_flags(held.clone());
        alone.save_all(&store).unwrap();
        let restarted = SloRuntime::load(&store, &specs, false).unwrap();
        assert_eq!(restarted.held_flags(), held);
        // In a fleet: the judge saves them beside its alert engine, and a replica that takes
        // the judge's place reads them before it acts.
        let judge = SloRuntime::load(&store, &specs, true).unwrap();
        judge.set_held_flags(BTreeMap::new());
        judge.save_all(&store).unwrap();
        let next = SloRuntime::load(&store, &specs, true).unwrap();
        next.set_held_flags(held.clone());
        next.save_all(&store).unwrap();
        let taking_over = SloRuntime::load(&store, &specs, true).unwrap();
        taking_over.set_held_flags(BTreeMap::new());
        taking_over.evaluate_fleet(&store, 1_000, true).unwrap();
        assert_eq!(taking_over.held_flags(), held);
        assert!(taking_over.paging().is_empty());
    }

    #[test]
    fn bounded_forgets_the_oldest() {
        let mut b = Bounded::new(2);
        for k in ["a", "b", "c"] {
            b.insert(k, k.len());
        }
        assert_eq!(b.map.len(), 2);
        assert_eq!(b.remove("a"), None);
        assert_eq!(b.take_if("b", |_| false), Some(None));
        assert_eq!(b.take_if("b", |_| true), Some(Some(1)));
    }
}
