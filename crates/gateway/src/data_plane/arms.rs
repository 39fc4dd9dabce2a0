//! Rollout arms on the request path: which arm of a rollout in force a request takes
//! ([`RolloutSet::take`], sticky per user), and what each arm's requests did
//! ([`RolloutStats`], the windows the control plane's controller judges). The controller
//! itself is `control_plane::rollouts`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use switchyard_rollout::{Arm, ArmStats, Outcome, Rollout, TargetKind};
use switchyard_store::StoredRollout;

/// How many recent requests keep their arm for feedback.
const FEEDBACK_MEMORY: usize = 100_000;

#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Windows {
    pub baseline: ArmStats,
    pub candidate: ArmStats,
    /// When the step these windows count was opened (`State::Running { since_ms }`), in a
    /// fleet: replicas' windows of the same step add up, others do not. `None` until a
    /// replica aligns its windows with the stored rollout ([`RolloutStats::align`]).
    #[serde(default)]
    pub since_ms: Option<u64>,
}

impl Windows {
    /// Adds another replica's windows of the same step.
    pub fn merge(&mut self, other: &Windows) {
        self.baseline.merge(&other.baseline);
        self.candidate.merge(&other.candidate);
    }
}

/// The arm (rollout id, arm) of recent requests by request id, and their order for eviction.
type RecentArms = (HashMap<String, (String, Arm)>, VecDeque<String>);

/// Each rollout's stats windows and the arm of recent requests, shared by the request path
/// and the controller.
#[derive(Default)]
pub struct RolloutStats {
    windows: Mutex<HashMap<String, Windows>>,
    /// A blue-green rollout's baseline from before the switch, judged against instead of its
    /// (empty) live baseline window.
    references: Mutex<HashMap<String, ArmStats>>,
    arms: Mutex<RecentArms>,
    pub wake: tokio::sync::Notify,
}

impl RolloutStats {
    /// A finished request of `rollout` on `arm`.
    pub fn record(&self, rollout: &str, arm: Arm, request_id: &str, outcome: &Outcome) {
        if let Ok(mut w) = self.windows.lock() {
            let windows = w.entry(rollout.to_owned()).or_default();
            match arm {
                Arm::Baseline => windows.baseline.record(outcome),
                Arm::Candidate => windows.candidate.record(outcome),
            }
        }
        if let Ok(mut guard) = self.arms.lock() {
            let (by_id, order) = &mut *guard;
            if by_id
                .insert(request_id.to_owned(), (rollout.to_owned(), arm))
                .is_none()
            {
                order.push_back(request_id.to_owned());
                if order.len() > FEEDBACK_MEMORY {
                    if let Some(old) = order.pop_front() {
                        by_id.remove(&old);
                    }
                }
            }
        }
        self.wake.notify_one();
    }

    /// Feedback on a request: its score counts for the arm that answered it.
    pub fn feedback(&self, request_id: &str, score: f64) {
        let arm = self
            .arms
            .lock()
            .ok()
            .and_then(|g| g.0.get(request_id).cloned());
        if let (Some((rollout, arm)), Ok(mut w)) = (arm, self.windows.lock()) {
            let windows = w.entry(rollout).or_default();
            match arm {
                Arm::Baseline => windows.baseline.record_feedback(score),
                Arm::Candidate => windows.candidate.record_feedback(score),
            }
            self.wake.notify_one();
        }
    }

    /// A copy of a rollout's windows.
    pub fn windows(&self, rollout: &str) -> Windows {
        self.windows
            .lock()
            .ok()
            .and_then(|w| w.get(rollout).cloned())
            .unwrap_or_default()
    }

    /// Sets a blue-green rollout's reference window.
    pub fn set_reference(&self, rollout: &str, reference: ArmStats) {
        if let Ok(mut r) = self.references.lock() {
            r.insert(rollout.to_owned(), reference);
        }
    }

    pub fn reference(&self, rollout: &str) -> Option<ArmStats> {
        self.references.lock().ok()?.get(rollout).cloned()
    }

    /// Starts `rollout`'s windows afresh when they count another step than the one opened
    /// at `since_ms` (in a fleet, the judging replica moved the rollout on): a replica's
    /// windows always count the step the store says is running.
    pub fn align(&self, rollout: &str, since_ms: u64) {
        if let Ok(mut w) = self.windows.lock() {
            let windows = w.entry(rollout.to_owned()).or_default();
            if windows.since_ms != Some(since_ms) {
                *windows = Windows {
                    since_ms: Some(since_ms),
                    ..Windows::default()
                };
            }
        }
    }

    /// Forgets the windows of rollouts no longer in force.
    pub fn retain(&self, in_force: &[&str]) {
        if let Ok(mut w) = self.windows.lock() {
            w.retain(|id, _| in_force.contains(&id.as_str()));
        }
    }

    /// Opens a new window (a step started, or a paused step resumed).
    pub fn reset_window(&self, rollout: &str) {
        if let Ok(mut w) = self.windows.lock() {
            w.insert(rollout.to_owned(), Windows::default());
        }
    }
}

/// The rollouts in force, for request-time decisions.
#[derive(Debug, Default)]
pub struct RolloutSet {
    rollouts: Vec<Rollout>,
}

/// The arm a request took, for its record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    pub rollout: String,
    pub arm: Arm,
    /// The candidate's target id when the request takes the candidate.
    pub candidate: Option<String>,
}

impl Taken {
    pub fn label(&self) -> String {
        let arm = match self.arm {
            Arm::Baseline => "baseline",
            Arm::Candidate => "candidate",
        };
        format!("{}:{arm}", self.rollout)
    }
}

impl RolloutSet {
    pub fn is_empty(&self) -> bool {
        self.rollouts.is_empty()
    }

    pub fn new(stored: Vec<StoredRollout>) -> Self {
        RolloutSet {
            rollouts: stored
                .into_iter()
                .filter(|s| s.active)
                .map(|s| s.rollout)
                .collect(),
        }
    }

    /// The candidate of the rollout in force over `baseline` (of `kind`): where some of
    /// `baseline`'s requests go.
    pub fn candidate_of(&self, kind: TargetKind, baseline: &str) -> Option<&str> {
        self.rollouts
            .iter()
            .find(|r| r.baseline().kind == kind && r.baseline().id == baseline)
            .map(|r| r.candidate().id.as_str())
    }

    /// The first model a model rollout in force names (as baseline or candidate) that
    /// `has_model` says a config lacks, with the rollout's id: a config version without it
    /// cannot be applied while the rollout is in force.
    pub fn missing_model(&self, has_model: impl Fn(&str) -> bool) -> Option<(&str, &str)> {
        self.rollouts
            .iter()
            .filter(|r| r.candidate().kind == TargetKind::Model)
            .flat_map(|r| [r.baseline(), r.candidate()].map(move |t| (r.id(), t.id.as_str())))
            .find(|(_, model)| !has_model(model))
    }

    /// The rollout in force over `baseline` (of `kind`), and the arm `user` takes.
    pub fn take(&self, kind: TargetKind, baseline: &str, user: &str) -> Option<Taken> {
        let r = self
            .rollouts
            .iter()
            .find(|r| r.baseline().kind == kind && r.baseline().id == baseline)?;
        let arm = r.assign(user);
        Some(Taken {
            rollout: r.id().to_owned(),
            arm,
            candidate: (arm == Arm::Candidate).then(|| r.candidate().id.clone()),
        })
    }
}

/// The outcome the analysis sees of a finished request.
pub fn outcome_of(
    status: u16,
    guard_outcomes: &[super::guards::Outcome],
    latency_ms: f64,
    ttft_ms: Option<f64>,
) -> Outcome {
    let ms = |v: f64| u32::try_from(v.round() as i64).ok();
    Outcome {
        error: status >= 500,
        guard_violation: super::guards::answer_failed(guard_outcomes),
        latency_ms: ms(latency_ms),
        ttft_ms: ttft_ms.and_then(ms),
    }
}

/// Shared so the request path can record into it.
pub type SharedStats = Arc<RolloutStats>;
