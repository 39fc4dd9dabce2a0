//! SLOs at run time: every finished chat request is counted against the `[[slos]]` that
//! match it (`switchyard_slo::Ledger`), the burn-rate alerts are evaluated on a timer
//! (`switchyard_slo::AlertEngine`), and the whole state is saved to the store, so a restart
//! loses no history. The SLO maths is `switchyard-slo`'s; this module only feeds and keeps it.
//!
//! 1. `RecordGuard` calls [`SloRuntime::observe`] when a chat request ends: its status, whether
//!    a provider failed it, its latency and time to first token, whether every output guard
//!    passed; the route alias and the model that answered pick the SLOs; the config version is
//!    kept per SLO for a day.
//! 2. `Server::run` calls [`SloRuntime::evaluate`] every 30 s and logs each alert state change
//!    (a page as an error, a ticket as a warning), then saves the state (`slo_state`).
//! 3. A config version with other SLOs keeps the history of every SLO whose scope, objective and
//!    window are unchanged (`Ledger::set_specs`).

use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use switchyard_slo::{AlertEngine, AlertEvent, Ledger, SloSpec, SloStatus};
use switchyard_store::{RequestRecord, SqliteStore, StoreError};

/// What is saved: the ledger and the alert engine, as their own serde.
#[derive(Serialize, Deserialize)]
struct Saved {
    ledger: Ledger,
    engine: AlertEngine,
}

pub struct SloRuntime {
    state: Mutex<Saved>,
}

/// How many recent alert events `/admin/v1/slos` shows.
const RECENT_ALERTS: usize = 50;

/// Points per SLO in a chart's history: five-minute steps over a day.
const HISTORY_POINTS: usize = 288;

impl SloRuntime {
    /// The runtime for `specs`, continuing the saved state when there is one.
    pub fn load(store: &SqliteStore, specs: &[SloSpec]) -> Result<Self, StoreError> {
        let saved = store
            .slo_state()?
            .and_then(|body| match serde_json::from_str::<Saved>(&body) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(error = %e, "the saved SLO state cannot be read; starting afresh");
                    None
                }
            });
        let mut saved = match saved {
            Some(s) => s,
            None => Saved {
                ledger: Ledger::new(specs),
                engine: AlertEngine::new(switchyard_slo::default_rules())
                    .unwrap_or_else(|_| unreachable!("the default rules are valid")),
            },
        };
        saved.ledger.set_specs(specs);
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        saved.engine.retain_slos(&names);
        Ok(SloRuntime {
            state: Mutex::new(saved),
        })
    }

    /// A new config version's SLOs.
    pub fn set_specs(&self, specs: &[SloSpec]) {
        if let Ok(mut s) = self.state.lock() {
            s.ledger.set_specs(specs);
            let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
            s.engine.retain_slos(&names);
        }
    }

    /// Counts a finished chat request (point 1).
    pub fn observe(&self, r: &RequestRecord, guard_outcomes: &[&str]) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        if s.ledger.specs().next().is_none() {
            return;
        }
        let route = r
            .route
            .as_ref()
            .and(r.requested_model.as_deref())
            .map(|m| m.split_once(':').map_or(m, |(alias, _)| alias));
        let sli = switchyard_slo::Sli {
            status: r.status,
            provider_error: r
                .error_kind
                .as_deref()
                .is_some_and(|k| k.starts_with("upstream") || k.contains("provider")),
            latency_ms: r.latency_ms,
            ttft_ms: if r.stream { r.ttft_ms } else { None },
            guard_passed: !crate::guards::answer_failed(guard_outcomes),
            feedback_negative: false,
        };
        let at = r.started_at_ms.div_euclid(1000);
        let model = r.model.as_deref().unwrap_or("");
        let version = r.config_version.as_deref().unwrap_or("");
        s.ledger.observe(at, route, model, version, &sli);
    }

    /// Evaluates every SLO's alerts at `now` (unix seconds); returns the state changes.
    pub fn evaluate(&self, now: i64) -> Vec<AlertEvent> {
        let Ok(mut guard) = self.state.lock() else {
            return Vec::new();
        };
        let s = &mut *guard;
        s.ledger.advance(now);
        let mut events = Vec::new();
        for (spec, series) in s.ledger.iter() {
            events.extend(s.engine.evaluate(now, spec, series));
        }
        events
    }

    /// Every SLO's status at `now`, and the most recent alert events (newest first); with
    /// `history_secs`, each SLO's points over that span before `now` for charts.
    pub fn status(&self, now: i64, history_secs: Option<i64>) -> (Vec<SloStatus>, Vec<AlertEvent>) {
        let Ok(s) = self.state.lock() else {
            return (Vec::new(), Vec::new());
        };
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

    /// Saves the whole state (point 2).
    pub fn save(&self, store: &SqliteStore) -> Result<(), StoreError> {
        let body = match self.state.lock() {
            Ok(s) => serde_json::to_string(&*s).map_err(|e| StoreError::Json {
                what: "the SLO state".to_owned(),
                source: e,
            })?,
            Err(_) => return Ok(()),
        };
        store.save_slo_state(&body, chrono::Utc::now().timestamp_millis())
    }
}

/// What the gateway does with alert state changes (point 2): each is POSTed to
/// `[alerts].webhook` (one attempt, bounded by its timeout; a failure is logged), and a page
/// that starts firing pauses or aborts every rollout in force (`[alerts].on_page`), audited as
/// the actor `slo`.
pub async fn act(state: &crate::server::AppState, events: &[AlertEvent], client: &reqwest::Client) {
    use switchyard_control::OnPage;
    let alerts = state.pipeline.load().config.alerts.clone();
    for e in events {
        match e.severity {
            switchyard_slo::Severity::Page => {
                tracing::error!(slo = %e.slo, rule = %e.rule, from = ?e.from, to = ?e.to, long_burn = e.long_burn, "SLO alert")
            }
            switchyard_slo::Severity::Ticket => {
                tracing::warn!(slo = %e.slo, rule = %e.rule, from = ?e.from, to = ?e.to, long_burn = e.long_burn, "SLO alert")
            }
        }
        if let Some(url) = &alerts.webhook {
            let sent = client
                .post(url)
                .timeout(alerts.timeout)
                .json(e)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status);
            if let Err(err) = sent {
                tracing::warn!(error = %err, slo = %e.slo, "the alert webhook failed");
            }
        }
        let fires = e.to == switchyard_slo::AlertState::Firing
            && e.severity == switchyard_slo::Severity::Page;
        if fires && alerts.on_page != OnPage::Nothing {
            let reason = format!(
                "SLO `{}` paged: {} burning {:.1}x over {} s",
                e.slo, e.rule, e.long_burn, e.long_secs
            );
            gate_rollouts(state, alerts.on_page, &reason).await;
        }
    }
}

/// Pauses or aborts every rollout that is running (or paused, for an abort).
async fn gate_rollouts(
    state: &crate::server::AppState,
    on_page: switchyard_control::OnPage,
    reason: &str,
) {
    use switchyard_rollout::State;
    let _one = state.rolling.lock().await;
    let Ok(active) = state.store.rollouts(true) else {
        return;
    };
    let now = chrono::Utc::now().timestamp_millis();
    let at = u64::try_from(now).unwrap_or(0);
    for stored in active {
        let mut r = stored.rollout;
        let t = match (on_page, r.state()) {
            (switchyard_control::OnPage::Pause, State::Running { .. }) => r.pause(at),
            (switchyard_control::OnPage::Abort, State::Running { .. } | State::Paused { .. }) => {
                r.abort(at, reason)
            }
            _ => continue,
        };
        let Ok(mut t) = t else { continue };
        if on_page == switchyard_control::OnPage::Pause {
            t.reason = format!("{} ({reason})", t.reason);
        }
        match crate::rollouts::save(&state.store, &r, &[t], "slo", now) {
            Ok(()) => crate::rollouts::settle_config(state, &r).await,
            Err(e) => tracing::warn!(error = %e, rollout = r.id(), "gating the rollout failed"),
        }
    }
    if let Err(e) = state.refresh_control() {
        tracing::warn!(error = %e, "reading the rollouts again failed");
    }
}
