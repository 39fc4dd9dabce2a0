//! The rollout controller: it judges what each arm's requests did (`data_plane::arms` takes
//! the arms and counts the outcomes) (the state machine and the analysis are
//! `switchyard_rollout`'s).
//!
//! 1. A rollout names its baseline and candidate: two models of the running config (`model`:
//!    requests that resolve to the baseline model go to the candidate), a prompt label and a
//!    version (`prompt`: requests that name the prompt by that label render the candidate
//!    version), or the running config version and a stored one (`config`: the candidate's
//!    users' chat requests run on a second pipeline built from the candidate,
//!    [`ConfigCandidate`]; promotion applies it, a rollback drops it). Rollouts in force are part of [`crate::data_plane::live::Live`], so a change reaches every
//!    request at once.
//! 2. The arm is sticky per user (`switchyard_rollout::bucket` of the rollout id and the
//!    user key), and the record names it (`rollout`: `id:baseline|candidate`).
//! 3. When a request that took an arm finishes, its outcome (a server error, an output guard
//!    that failed, its latency and time to first token) is added to that arm's window
//!    ([`RolloutStats`]), and the controller is woken (it looks at most every 10 ms);
//!    feedback on the request later adds its score to the same arm.
//! 4. The controller ([`step`]) ticks every rollout in force with both windows, on every
//!    wake-up and every second (time alone can end a step). Each transition is stored with the
//!    rollout and audited in one transaction; a new step opens new windows. Promoting a prompt
//!    rollout moves its label to the candidate version; a promoted model rollout keeps sending
//!    the baseline's requests to the candidate until the config names the candidate itself
//!    and the rollout is archived. A rollback sends everyone back at once and is logged as a
//!    warning.
//! 5. Windows are this process's memory, and a restart opens new windows. In a fleet (on
//!    PostgreSQL) each replica publishes its windows every second and one replica, the judge,
//!    ticks every rollout on all of them added up ([`step_fleet`], `fleet.rs`): a canary is
//!    judged on the whole fleet's traffic and rolled back once.

use std::sync::Arc;

use switchyard_rollout::{ArmStats, AuditEvent, Rollout, RolloutKind, TargetKind, Transition};
use switchyard_store::{Store, StoreError, Transact};

use crate::data_plane::arms::{outcome_of, RolloutStats, Windows};
use crate::data_plane::running::ConfigCandidate;

/// One controller pass: ticks every rollout in force; see the module documentation.
/// Returns the rollouts that moved, as they are now.
pub fn step(
    store: &dyn Store,
    stats: &RolloutStats,
    now_ms: i64,
) -> Result<Vec<Rollout>, StoreError> {
    step_with(store, stats, now_ms, |rollout| {
        let windows = stats.windows(rollout.id());
        let reference = match rollout.spec().kind {
            RolloutKind::BlueGreen => stats.reference(rollout.id()).unwrap_or_default(),
            RolloutKind::Canary => windows.baseline.clone(),
        };
        Ok((windows, reference))
    })
}

/// One step of the controller as the fleet's judge (`fleet.rs`): each rollout judged on every
/// replica's windows of its running step, added up. A blue-green rollout's reference window
/// is read from the store when this replica has none (another replica started it).
pub fn step_fleet(
    store: &dyn Store,
    stats: &RolloutStats,
    prompts: &crate::data_plane::prompts::PromptSet,
    now_ms: i64,
) -> Result<Vec<Rollout>, StoreError> {
    let made = step_with(store, stats, now_ms, |rollout| {
        let windows = fleet_windows(store, rollout)?;
        let reference = match rollout.spec().kind {
            RolloutKind::BlueGreen => match stats.reference(rollout.id()) {
                Some(r) => r,
                None => {
                    let version = prompt_version_of(prompts, rollout);
                    let r = reference_window(store, rollout, version.as_deref())?;
                    stats.set_reference(rollout.id(), r.clone());
                    r
                }
            },
            RolloutKind::Canary => windows.baseline.clone(),
        };
        Ok((windows, reference))
    })?;
    // A finished rollout's windows are of no more use to anyone.
    for rollout in made.iter().filter(|r| r.state().is_finished()) {
        store.forget_replica_states(Some(&super::fleet::rollout_area(rollout.id())), i64::MAX)?;
    }
    Ok(made)
}

/// The controller's step over the windows `judged` gives each rollout (its windows, and the
/// baseline the candidate is held to).
fn step_with(
    store: &dyn Store,
    stats: &RolloutStats,
    now_ms: i64,
    judged: impl Fn(&Rollout) -> Result<(Windows, ArmStats), StoreError>,
) -> Result<Vec<Rollout>, StoreError> {
    let mut made = Vec::new();
    for stored in store.rollouts(true)? {
        let mut rollout = stored.rollout;
        let (windows, baseline) = judged(&rollout)?;
        let now = u64::try_from(now_ms).unwrap_or(0);
        let transitions = rollout.tick(now, &windows.candidate, &baseline);
        if transitions.is_empty() {
            continue;
        }
        save(store, &rollout, &transitions, "system", now_ms)?;
        if transitions.iter().any(Transition::starts_window) {
            stats.reset_window(rollout.id());
        }
        made.push(rollout);
    }
    Ok(made)
}

/// In a fleet: aligns this replica's windows with the steps the store says are running, and
/// publishes them for the judge (`fleet.rs`, 1.).
pub fn publish_windows(
    store: &dyn Store,
    replica: &str,
    stats: &RolloutStats,
    now_ms: i64,
) -> Result<(), StoreError> {
    let active = store.rollouts(true)?;
    let ids: Vec<&str> = active.iter().map(|s| s.rollout.id()).collect();
    stats.retain(&ids);
    for stored in &active {
        let rollout = &stored.rollout;
        let switchyard_rollout::State::Running { since_ms, .. } = rollout.state() else {
            continue;
        };
        stats.align(rollout.id(), *since_ms);
        let body =
            serde_json::to_string(&stats.windows(rollout.id())).map_err(|e| StoreError::Json {
                what: "a rollout's windows".to_owned(),
                source: e,
            })?;
        store.save_replica_state(
            &super::fleet::rollout_area(rollout.id()),
            replica,
            &body,
            now_ms,
        )?;
    }
    Ok(())
}

/// Every replica's published windows of `rollout`'s running step, added up; empty when it is
/// not running.
fn fleet_windows(store: &dyn Store, rollout: &Rollout) -> Result<Windows, StoreError> {
    let switchyard_rollout::State::Running { since_ms, .. } = rollout.state() else {
        return Ok(Windows::default());
    };
    let mut total = Windows {
        since_ms: Some(*since_ms),
        ..Windows::default()
    };
    for state in store.replica_states(&super::fleet::rollout_area(rollout.id()), 0)? {
        match serde_json::from_str::<Windows>(&state.body) {
            Ok(w) if w.since_ms == Some(*since_ms) => total.merge(&w),
            Ok(_) => {}
            Err(e) => tracing::warn!(
                replica = %state.replica,
                error = %e,
                "a replica's rollout windows cannot be read; judging without them"
            ),
        }
    }
    Ok(total)
}

/// A state's name for audit actions and metric labels: `running`, `rolled_back`, ...
fn state_key(state: &switchyard_rollout::State) -> &'static str {
    match state.name() {
        "rolled back" => "rolled_back",
        name => name,
    }
}

/// Whether a rollout stays in force: running or paused, or a promoted model rollout (it
/// keeps rewriting the baseline to the candidate until archived).
pub fn stays_active(rollout: &Rollout) -> bool {
    use switchyard_rollout::State;
    match rollout.state() {
        State::Promoted => rollout.candidate().kind == TargetKind::Model,
        s => !s.is_finished(),
    }
}

/// Stores a rollout after `transitions`, with their audit entries and a promoted prompt's
/// label move, in one transaction.
pub fn save(
    store: &dyn Store,
    rollout: &Rollout,
    transitions: &[Transition],
    actor: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    store.transact(|c| {
        c.put_rollout(rollout, stays_active(rollout), now_ms)?;
        for t in transitions {
            if matches!(t.to, switchyard_rollout::State::Promoted)
                && rollout.candidate().kind == TargetKind::Prompt
            {
                if let (Some((name, label)), Some((_, version))) = (
                    rollout.baseline().id.split_once('@'),
                    rollout.candidate().id.split_once('@'),
                ) {
                    if let Ok(v) = version.parse::<u32>() {
                        c.set_prompt_label(name, label, v, now_ms)?;
                    }
                }
            }
            c.append_audit(AuditEvent {
                at_ms: t.at_ms,
                actor: actor.to_owned(),
                action: format!("rollout.{}", state_key(&t.to)),
                target: format!("rollout:{}", rollout.id()),
                reason: t.reason.clone(),
                diff: String::new(),
            })?;
        }
        Ok(())
    })?;
    // Told once the transaction committed.
    for t in transitions {
        use crate::metrics::{self as m, LabelValue};
        m::counter(
            m::ROLLOUT_TRANSITIONS,
            &[
                ("rollout", LabelValue::rollout(rollout)),
                ("state", LabelValue::fixed(state_key(&t.to))),
            ],
        )
        .increment(1);
        if matches!(t.to, switchyard_rollout::State::RolledBack { .. }) {
            tracing::warn!(rollout = rollout.id(), reason = %t.reason, "rollout rolled back");
        } else {
            tracing::info!(rollout = rollout.id(), reason = %t.reason, "rollout step");
        }
    }
    Ok(())
}

/// How many requests each arm had, for status views.
pub fn window_summary(w: &Windows) -> serde_json::Value {
    let arm = |s: &ArmStats| {
        serde_json::json!({
            "requests": s.requests,
            "errors": s.errors,
            "guard_violations": s.guard_violations,
            "feedback": s.feedback_count,
        })
    };
    serde_json::json!({"baseline": arm(&w.baseline), "candidate": arm(&w.candidate)})
}

/// How far back a blue-green rollout's reference window reaches before the switch (at least;
/// longer when the rollout's steps are).
const REFERENCE_MS: i64 = 60 * 60 * 1000;
/// At most this many requests in a reference window.
const REFERENCE_REQUESTS: usize = 5_000;

/// Reads a blue-green rollout's reference window from the store: the requests its baseline
/// served in the hour (or step duration) before the switch, as the analysis sees them.
/// `prompt_version` is the version the baseline label named then (`name@N`).
pub fn reference_window(
    store: &dyn Store,
    rollout: &Rollout,
    prompt_version: Option<&str>,
) -> Result<ArmStats, StoreError> {
    let started = rollout
        .timeline()
        .first()
        .map_or_else(|| chrono::Utc::now().timestamp_millis(), |t| t.at_ms as i64);
    let reach = REFERENCE_MS.max(rollout.spec().min_step_duration_ms as i64);
    let id = &rollout.baseline().id;
    let short = crate::data_plane::running::short_version(id);
    let served = match rollout.baseline().kind {
        TargetKind::Model => switchyard_store::Served::Model(id),
        TargetKind::Prompt => switchyard_store::Served::Prompt(prompt_version.unwrap_or(id)),
        TargetKind::Config => switchyard_store::Served::ConfigVersion(short),
    };
    let mut stats = ArmStats::default();
    for o in store.served_outcomes(served, started - reach, started, REFERENCE_REQUESTS)? {
        let outcomes = crate::data_plane::guards::stored_outcomes(o.guards.as_deref());
        let ttft = if o.stream { o.ttft_ms } else { None };
        stats.record(&outcome_of(o.status, &outcomes, o.latency_ms, ttft));
    }
    Ok(stats)
}

/// At start-up: reads the reference windows of the blue-green rollouts in force again.
pub fn restore_references(
    store: &dyn Store,
    stats: &RolloutStats,
    prompts: &crate::data_plane::prompts::PromptSet,
) -> Result<(), StoreError> {
    for stored in store.rollouts(true)? {
        let r = stored.rollout;
        if r.spec().kind == RolloutKind::BlueGreen {
            let version = prompt_version_of(prompts, &r);
            stats.set_reference(r.id(), reference_window(store, &r, version.as_deref())?);
        }
    }
    Ok(())
}

/// The `name@N` a prompt rollout's baseline label names now.
pub fn prompt_version_of(
    prompts: &crate::data_plane::prompts::PromptSet,
    rollout: &Rollout,
) -> Option<String> {
    if rollout.baseline().kind != TargetKind::Prompt {
        return None;
    }
    let r = switchyard_control::prompt::PromptRef::parse(&rollout.baseline().id).ok()?;
    let (version, _) = prompts.resolve(&r).ok()?;
    Some(format!("{}@{version}", r.name))
}

/// At start-up: rebuilds the candidate pipeline of a config rollout in force, or aborts the
/// rollout when its baseline is no longer the running version or its candidate cannot be
/// built.
pub fn restore_config(state: &crate::control_plane::ControlPlane) -> Result<(), StoreError> {
    let running = state.running.pipeline.load_full().version.clone();
    for stored in state.store.rollouts(true)? {
        let mut rollout = stored.rollout;
        if rollout.candidate().kind != TargetKind::Config {
            continue;
        }
        let problem = if rollout.baseline().id != running {
            Some("the gateway restarted on another config version".to_owned())
        } else {
            match crate::control_plane::versions::build_version(state, &rollout.candidate().id) {
                Ok(p) => {
                    state
                        .running
                        .candidate
                        .store(Some(Arc::new(ConfigCandidate {
                            rollout: rollout.id().to_owned(),
                            baseline: running.clone(),
                            pipeline: Arc::new(p),
                        })));
                    None
                }
                Err(e) => Some(format!("the candidate cannot be built: {e}")),
            }
        };
        if let Some(why) = problem {
            let now = chrono::Utc::now().timestamp_millis();
            if let Ok(t) = rollout.abort(u64::try_from(now).unwrap_or(0), &why) {
                save(&*state.store, &rollout, &[t], "system", now)?;
            }
        }
    }
    Ok(())
}

/// What a config rollout's state asks of the running gateway, after a transition: apply the
/// candidate (promoted), drop its pipeline (rolled back or aborted), or nothing.
pub async fn settle_config(state: &Arc<crate::control_plane::ControlPlane>, rollout: &Rollout) {
    use crate::control_plane::versions::{apply, ApplyError, Change};
    use switchyard_rollout::State;
    if rollout.candidate().kind != TargetKind::Config {
        return;
    }
    match rollout.state() {
        State::Promoted => {
            let (store, id) = (state.store.clone(), rollout.candidate().id.clone());
            let source = crate::tasks::spawn_blocking(move || store.config_version(&id))
                .await
                .ok()
                .and_then(Result::ok)
                .flatten()
                .map(|v| v.source);
            let change = Change {
                actor: "rollout".to_owned(),
                message: String::new(),
                action: "config.apply",
                reason: format!("promoted by rollout {}", rollout.id()),
            };
            let applied = match source {
                Some(text) => apply(state, &text, &change).await.map(|_| ()),
                None => Err(ApplyError::NoSuchVersion(rollout.candidate().id.clone())),
            };
            if let Err(e) = applied {
                tracing::error!(rollout = rollout.id(), error = %e, "applying the promoted config version failed; the baseline keeps running");
            }
            state.running.candidate.store(None);
        }
        State::RolledBack { .. } | State::Aborted { .. } => state.running.candidate.store(None),
        _ => {}
    }
}
