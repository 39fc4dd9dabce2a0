//! The rollout state machine: a candidate version takes traffic from a baseline in steps, is
//! judged after each, and is promoted or rolled back. Every change is a [`Transition`] with a
//! reason, kept in the rollout's timeline for the audit log.

use serde::{Deserialize, Serialize};

use crate::analysis::{AnalysisSpec, ArmStats, Look, Verdict};
use crate::split::{bucket, in_candidate, percent, BASIS_POINTS};

/// What kind of thing is rolled out. The crate never looks inside: the id names a config
/// version, a model or a prompt version in the gateway's store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    Config,
    Model,
    Prompt,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetRef {
    pub kind: TargetKind,
    pub id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutKind {
    /// The candidate takes a growing share of users, judged against the baseline at each step.
    Canary,
    /// All traffic switches to the candidate at once; the baseline is kept warm so a rollback
    /// is one call, until the bake period passes.
    BlueGreen,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RolloutSpec {
    /// Candidate shares in basis points, rising, the last 10 000 (canary only; blue-green
    /// has one step at 10 000).
    pub steps: Vec<u16>,
    /// A step lasts at least this long before its final look.
    pub min_step_duration_ms: u64,
    /// And sees at least this many candidate requests.
    pub min_step_requests: u64,
    pub analysis: AnalysisSpec,
    pub kind: RolloutKind,
}

impl Default for RolloutSpec {
    fn default() -> Self {
        RolloutSpec {
            steps: vec![500, 2_500, 5_000, 10_000],
            min_step_duration_ms: 10 * 60 * 1000,
            min_step_requests: 200,
            analysis: AnalysisSpec::default(),
            kind: RolloutKind::Canary,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct SpecError {
    pub field: String,
    pub problem: String,
}

impl RolloutSpec {
    /// Every problem with the spec (not just the first).
    pub fn validate(&self) -> Result<(), Vec<SpecError>> {
        let mut errors: Vec<SpecError> = self
            .analysis
            .problems()
            .into_iter()
            .map(|problem| SpecError {
                field: "analysis".into(),
                problem,
            })
            .collect();
        let mut bad_steps = |problem: String| {
            errors.push(SpecError {
                field: "steps".into(),
                problem,
            })
        };
        if self.kind == RolloutKind::Canary {
            if self.steps.len() < 2 {
                bad_steps(
                    "a canary needs at least one step below 100% and a last one at 100%".into(),
                );
            }
            if self.steps.last() != Some(&BASIS_POINTS) {
                bad_steps(format!("the last step must be {BASIS_POINTS} (100%)"));
            }
            if self.steps.first() == Some(&0) {
                bad_steps("a step of 0 sends the candidate nothing".into());
            }
            if self.steps.iter().any(|&s| s > BASIS_POINTS) {
                bad_steps(format!("steps are basis points, at most {BASIS_POINTS}"));
            }
            if self.steps.windows(2).any(|w| w[0] >= w[1]) {
                bad_steps("steps must rise strictly".into());
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The number of steps the rollout is judged at: all but the last (100%) for a canary,
    /// one bake at 100% for blue-green.
    fn judged_steps(&self) -> usize {
        match self.kind {
            RolloutKind::Canary => self.steps.len().saturating_sub(1),
            RolloutKind::BlueGreen => 1,
        }
    }

    fn share(&self, step: usize) -> u16 {
        match self.kind {
            RolloutKind::Canary => self.steps.get(step).copied().unwrap_or(BASIS_POINTS),
            RolloutKind::BlueGreen => BASIS_POINTS,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum State {
    Pending,
    /// Judging step `step` (0-based) in a window opened at `since_ms`.
    Running {
        step: usize,
        since_ms: u64,
    },
    /// Holding step `step`'s share, not judging.
    Paused {
        step: usize,
    },
    Promoted,
    RolledBack {
        reason: String,
    },
    Aborted {
        reason: String,
    },
}

impl State {
    pub fn is_finished(&self) -> bool {
        matches!(
            self,
            State::Promoted | State::RolledBack { .. } | State::Aborted { .. }
        )
    }

    pub fn name(&self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Running { .. } => "running",
            State::Paused { .. } => "paused",
            State::Promoted => "promoted",
            State::RolledBack { .. } => "rolled back",
            State::Aborted { .. } => "aborted",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arm {
    Baseline,
    Candidate,
}

/// Where traffic goes in a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Traffic {
    /// The candidate's share of users; the baseline has the rest.
    pub candidate_basis_points: u16,
    /// The version kept deployed and ready while serving nothing (blue-green).
    pub warm: Option<Arm>,
}

impl Traffic {
    /// Whether `arm` serves any users.
    pub fn is_live(&self, arm: Arm) -> bool {
        match arm {
            Arm::Candidate => self.candidate_basis_points > 0,
            Arm::Baseline => self.candidate_basis_points < BASIS_POINTS,
        }
    }
}

/// One change of state, with what a person needs to understand it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    pub at_ms: u64,
    pub from: State,
    pub to: State,
    /// Traffic after the change.
    pub traffic: Traffic,
    /// The verdict that caused it, when an analysis did.
    pub verdict: Option<Verdict>,
    pub reason: String,
}

impl Transition {
    /// A transition into `Running` opens a new stats window: the caller starts both arms'
    /// [`ArmStats`] afresh, so a step is judged only on its own traffic.
    pub fn starts_window(&self) -> bool {
        matches!(self.to, State::Running { .. })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RolloutError {
    #[error("the rollout has already finished ({0})")]
    Finished(&'static str),
    #[error("the rollout has already started")]
    AlreadyStarted,
    #[error("the rollout is {0}, not running")]
    NotRunning(&'static str),
    #[error("the rollout is {0}, not paused")]
    NotPaused(&'static str),
}

/// A rollout of `candidate` over `baseline`. Serialisable, so the gateway stores it and
/// carries on after a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    id: String,
    baseline: TargetRef,
    candidate: TargetRef,
    spec: RolloutSpec,
    state: State,
    timeline: Vec<Transition>,
}

impl Rollout {
    /// A pending rollout; `id` also seeds the users' buckets, so two rollouts split users
    /// independently.
    pub fn new(
        id: impl Into<String>,
        baseline: TargetRef,
        candidate: TargetRef,
        spec: RolloutSpec,
    ) -> Result<Rollout, Vec<SpecError>> {
        spec.validate()?;
        Ok(Rollout {
            id: id.into(),
            baseline,
            candidate,
            spec,
            state: State::Pending,
            timeline: Vec::new(),
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }
    pub fn baseline(&self) -> &TargetRef {
        &self.baseline
    }
    pub fn candidate(&self) -> &TargetRef {
        &self.candidate
    }
    pub fn spec(&self) -> &RolloutSpec {
        &self.spec
    }
    pub fn state(&self) -> &State {
        &self.state
    }
    /// Every transition so far, oldest first.
    pub fn timeline(&self) -> &[Transition] {
        &self.timeline
    }

    pub fn traffic(&self) -> Traffic {
        traffic_in(&self.spec, &self.state)
    }

    /// Which version serves this user now. Sticky: a user's bucket never changes, and the
    /// candidate's share only grows until a rollback.
    pub fn assign(&self, user_key: &str) -> Arm {
        let share = self.traffic().candidate_basis_points;
        if in_candidate(bucket(&self.id, user_key), share) {
            Arm::Candidate
        } else {
            Arm::Baseline
        }
    }

    /// Pending → running at the first step.
    pub fn start(&mut self, now_ms: u64) -> Result<Transition, RolloutError> {
        self.finished_check()?;
        if self.state != State::Pending {
            return Err(RolloutError::AlreadyStarted);
        }
        let reason = match self.spec.kind {
            RolloutKind::Canary => format!(
                "started: {} of users to the candidate ({})",
                percent(self.spec.share(0)),
                self.step_name(0)
            ),
            RolloutKind::BlueGreen => {
                "switched: the candidate serves everyone, the baseline is kept warm".to_string()
            }
        };
        let to = State::Running {
            step: 0,
            since_ms: now_ms,
        };
        Ok(self.go(now_ms, to, None, reason))
    }

    /// One look at the running step, with both arms' stats for its window.
    ///
    /// 1. Only a running rollout is judged; in any other state a tick does nothing.
    /// 2. The step's window opened at `since_ms` (the start, the last advance or the last
    ///    resume); `candidate` and `baseline` cover that window only. In blue-green the
    ///    baseline serves nothing during the bake, so the caller passes its last window
    ///    before the switch as the reference.
    /// 3. While the window is young (less than `min_step_duration_ms`, or fewer than
    ///    `min_step_requests` candidate requests), the look is early: only a breach at
    ///    `early_confidence` counts, and it rolls back at once. A clearly bad candidate is
    ///    stopped after a bounded number of its requests ([`crate::requests_to_detect`]),
    ///    whatever the step's duration.
    /// 4. Once the window is old enough, the final look: a breach rolls back; not enough data
    ///    waits (no transition: the step stays open until both arms have `min_samples`); a
    ///    pass ends the step.
    /// 5. A canary step that passes advances to the next share and opens a new window
    ///    ([`Transition::starts_window`]). When the next share is the last (100%), the
    ///    rollout is promoted instead: at 100% no baseline traffic is left to compare with.
    ///    Blue-green has one step, the bake at 100%; passing it promotes.
    /// 6. Pause holds the share and stops the looks; resume opens a new window at the same
    ///    step, so paused time and its traffic never count. Promote, abort and rollback act
    ///    at once and end the rollout; a finished rollout ignores ticks.
    ///
    /// Returns the transitions made: none, or one.
    pub fn tick(
        &mut self,
        now_ms: u64,
        candidate: &ArmStats,
        baseline: &ArmStats,
    ) -> Vec<Transition> {
        let State::Running { step, since_ms } = self.state else {
            return Vec::new();
        };
        let elapsed_ms = now_ms.saturating_sub(since_ms);
        let mature = elapsed_ms >= self.spec.min_step_duration_ms
            && candidate.requests >= self.spec.min_step_requests;
        let look = if mature { Look::Final } else { Look::Early };
        let verdict = self.spec.analysis.judge(look, candidate, baseline);
        let seen = format!(
            "after {} s with {} candidate and {} baseline requests",
            elapsed_ms / 1000,
            candidate.requests,
            baseline.requests
        );
        match (&verdict, look) {
            (Verdict::Breach { criterion, detail }, _) => {
                let when = match look {
                    Look::Early => "early, ",
                    Look::Final => "",
                };
                let reason = format!(
                    "{} breached at {} ({when}{seen}): {detail}; rolled back to the baseline",
                    criterion.as_str(),
                    self.step_name(step)
                );
                let to = State::RolledBack {
                    reason: reason.clone(),
                };
                vec![self.go(now_ms, to, Some(verdict), reason)]
            }
            (Verdict::Pass, Look::Final) => {
                let next = step + 1;
                let (to, then) = if next >= self.spec.judged_steps() {
                    (
                        State::Promoted,
                        "promoted: the candidate serves everyone".to_string(),
                    )
                } else {
                    let to = State::Running {
                        step: next,
                        since_ms: now_ms,
                    };
                    (
                        to,
                        format!("advanced to {}", percent(self.spec.share(next))),
                    )
                };
                let reason = format!("{} passed {seen}; {then}", self.step_name(step));
                vec![self.go(now_ms, to, Some(verdict), reason)]
            }
            // An early look without a breach, or not enough data: keep going.
            (Verdict::Pass, Look::Early) | (Verdict::NotEnoughData { .. }, _) => Vec::new(),
        }
    }

    /// Promotes at once to 100%, skipping the remaining steps and their analysis.
    pub fn promote(&mut self, now_ms: u64) -> Result<Transition, RolloutError> {
        self.finished_check()?;
        let reason = format!(
            "promoted by hand from {}: the candidate serves everyone",
            self.where_now()
        );
        Ok(self.go(now_ms, State::Promoted, None, reason))
    }

    /// Holds the current share and stops judging.
    pub fn pause(&mut self, now_ms: u64) -> Result<Transition, RolloutError> {
        self.finished_check()?;
        let State::Running { step, .. } = self.state else {
            return Err(RolloutError::NotRunning(self.state.name()));
        };
        let reason = format!(
            "paused at {}: the share holds and no step advances",
            self.step_name(step)
        );
        Ok(self.go(now_ms, State::Paused { step }, None, reason))
    }

    /// Judges the paused step again, in a new window from `now_ms`.
    pub fn resume(&mut self, now_ms: u64) -> Result<Transition, RolloutError> {
        self.finished_check()?;
        let State::Paused { step } = self.state else {
            return Err(RolloutError::NotPaused(self.state.name()));
        };
        let reason = format!(
            "resumed at {}; the step's window starts again",
            self.step_name(step)
        );
        let to = State::Running {
            step,
            since_ms: now_ms,
        };
        Ok(self.go(now_ms, to, None, reason))
    }

    /// Stops the rollout and sends everyone back to the baseline: one call, in either kind
    /// (in blue-green the baseline is warm, so it serves at once).
    pub fn rollback(&mut self, now_ms: u64, reason: &str) -> Result<Transition, RolloutError> {
        let reason = format!("rolled back by hand from {}: {reason}", self.where_now());
        self.end(now_ms, reason, |reason| State::RolledBack { reason })
    }

    /// Gives the rollout up (the candidate is not judged bad; the rollout is not wanted), and
    /// sends everyone back to the baseline.
    pub fn abort(&mut self, now_ms: u64, reason: &str) -> Result<Transition, RolloutError> {
        let reason = format!("aborted from {}: {reason}", self.where_now());
        self.end(now_ms, reason, |reason| State::Aborted { reason })
    }

    /// Ends the rollout by hand in the state `to` makes of the reason.
    fn end(
        &mut self,
        now_ms: u64,
        reason: String,
        to: impl FnOnce(String) -> State,
    ) -> Result<Transition, RolloutError> {
        self.finished_check()?;
        let to = to(reason.clone());
        Ok(self.go(now_ms, to, None, reason))
    }

    fn finished_check(&self) -> Result<(), RolloutError> {
        if self.state.is_finished() {
            Err(RolloutError::Finished(self.state.name()))
        } else {
            Ok(())
        }
    }

    fn step_name(&self, step: usize) -> String {
        match self.spec.kind {
            RolloutKind::Canary => format!(
                "step {} of {} ({})",
                step + 1,
                self.spec.judged_steps(),
                percent(self.spec.share(step))
            ),
            RolloutKind::BlueGreen => "the blue-green bake (100%)".to_string(),
        }
    }

    fn where_now(&self) -> String {
        match self.state {
            State::Running { step, .. } => self.step_name(step),
            State::Paused { step } => format!("{} (paused)", self.step_name(step)),
            _ => self.state.name().to_string(),
        }
    }

    fn go(
        &mut self,
        at_ms: u64,
        to: State,
        verdict: Option<Verdict>,
        reason: String,
    ) -> Transition {
        let from = std::mem::replace(&mut self.state, to.clone());
        let t = Transition {
            at_ms,
            from,
            traffic: traffic_in(&self.spec, &to),
            to,
            verdict,
            reason,
        };
        self.timeline.push(t.clone());
        t
    }
}

fn traffic_in(spec: &RolloutSpec, state: &State) -> Traffic {
    let blue_green = spec.kind == RolloutKind::BlueGreen;
    let (candidate_basis_points, warm) = match state {
        State::Pending => (0, blue_green.then_some(Arm::Candidate)),
        State::Running { step, .. } | State::Paused { step } => {
            (spec.share(*step), blue_green.then_some(Arm::Baseline))
        }
        State::Promoted => (BASIS_POINTS, None),
        State::RolledBack { .. } | State::Aborted { .. } => (0, None),
    };
    Traffic {
        candidate_basis_points,
        warm,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::tests::arm;
    use crate::analysis::{requests_to_detect, Criterion, Outcome};
    use proptest::prelude::*;

    const MIN: u64 = 60_000;

    fn target(id: &str) -> TargetRef {
        TargetRef {
            kind: TargetKind::Config,
            id: id.into(),
        }
    }

    fn rollout(kind: RolloutKind) -> Rollout {
        let spec = RolloutSpec {
            kind,
            ..RolloutSpec::default()
        };
        Rollout::new("r1", target("v1"), target("v2"), spec).unwrap()
    }

    fn healthy() -> (ArmStats, ArmStats) {
        (arm(300, 3, 100, 100), arm(3000, 30, 100, 100))
    }

    #[test]
    fn a_healthy_candidate_is_promoted_through_every_step() {
        let mut r = rollout(RolloutKind::Canary);
        assert_eq!(r.traffic().candidate_basis_points, 0);
        let t = r.start(0).unwrap();
        assert!(t.starts_window());
        assert_eq!(r.traffic().candidate_basis_points, 500);
        let (c, b) = healthy();
        let mut now = 0;
        for share in [2_500, 5_000] {
            // Too young: an early look finds nothing, nothing happens.
            assert!(r.tick(now + MIN, &c, &b).is_empty());
            now += 10 * MIN;
            let t = r.tick(now, &c, &b);
            assert_eq!(t.len(), 1);
            assert!(t[0].starts_window());
            assert_eq!(t[0].verdict, Some(Verdict::Pass));
            assert_eq!(r.traffic().candidate_basis_points, share);
        }
        now += 10 * MIN;
        let t = r.tick(now, &c, &b);
        assert_eq!(r.state(), &State::Promoted);
        assert!(!t[0].starts_window());
        assert!(
            t[0].reason.starts_with("step 3 of 3 (50%) passed"),
            "{}",
            t[0].reason
        );
        assert_eq!(r.traffic().candidate_basis_points, BASIS_POINTS);
        let reasons: Vec<&str> = r.timeline().iter().map(|t| t.reason.as_str()).collect();
        assert_eq!(reasons.len(), 4, "{reasons:?}");
        assert!(reasons[1].contains("advanced to 25%"), "{}", reasons[1]);
        // Finished: ticks do nothing, events are refused.
        assert!(r.tick(now + MIN, &c, &b).is_empty());
        assert_eq!(r.pause(now), Err(RolloutError::Finished("promoted")));
    }

    /// Runs a canary at 5% with a candidate failing every fifth request, ticking after every
    /// candidate request (19 clean baseline requests beside each); returns the number of
    /// candidate requests at the rollback.
    fn roll_back_twenty_percent(analysis: AnalysisSpec) -> u64 {
        let spec = RolloutSpec {
            analysis,
            ..RolloutSpec::default()
        };
        let mut r = Rollout::new("r1", target("v1"), target("v2"), spec).unwrap();
        r.start(0).unwrap();
        let (mut c, mut b) = (ArmStats::default(), ArmStats::default());
        let ok = Outcome {
            latency_ms: Some(100),
            ..Outcome::default()
        };
        for i in 0..r.spec().min_step_requests {
            c.record(&Outcome {
                error: i % 5 == 0,
                ..ok
            });
            for _ in 0..19 {
                b.record(&ok);
            }
            // A second apart: well inside the step's 10 minutes and 200 requests.
            let t = r.tick(i * 1000, &c, &b);
            if let Some(t) = t.first() {
                assert!(t.reason.contains("(early, "), "{}", t.reason);
                assert!(matches!(
                    t.verdict,
                    Some(Verdict::Breach {
                        criterion: Criterion::ErrorRate,
                        ..
                    })
                ));
                assert!(matches!(r.state(), State::RolledBack { .. }));
                assert_eq!(r.traffic().candidate_basis_points, 0);
                assert_eq!(r.assign("anyone"), Arm::Baseline);
                return c.requests;
            }
        }
        panic!("not rolled back within the step");
    }

    #[test]
    fn a_twenty_percent_error_candidate_is_rolled_back_early_within_the_stated_bound() {
        // With the defaults: at the first look allowed, min_samples = 50 candidate requests.
        let spec = AnalysisSpec::default();
        assert_eq!(roll_back_twenty_percent(spec.clone()), spec.min_samples);

        // With looks from 10 requests the statistics set the bound. At 5% the baseline has 19
        // requests per candidate request, so at any look it has at least 19 × 10, all clean;
        // against that, requests_to_detect states the bound: 25 candidate requests.
        let spec = AnalysisSpec {
            min_samples: 10,
            ..AnalysisSpec::default()
        };
        let bound = requests_to_detect(&spec, Look::Early, 0.0, 19 * spec.min_samples, 0.2);
        assert_eq!(bound, Some(25));
        let n = roll_back_twenty_percent(spec.clone());
        assert!((spec.min_samples..=25).contains(&n), "{n}");
    }

    #[test]
    fn a_doubled_p95_is_rolled_back_at_the_steps_end() {
        let mut r = rollout(RolloutKind::Canary);
        r.start(0).unwrap();
        let slow = arm(300, 0, 200, 200);
        let base = arm(3000, 0, 100, 100);
        let t = r.tick(10 * MIN, &slow, &base);
        assert_eq!(t.len(), 1);
        match r.state() {
            State::RolledBack { reason } => {
                assert!(
                    reason.starts_with("p95 latency breached at step 1 of 3 (5%)"),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn not_enough_data_waits() {
        let mut r = rollout(RolloutKind::Canary);
        r.start(0).unwrap();
        // Long enough, but too few candidate requests for the step: an early look only.
        assert!(r
            .tick(60 * MIN, &arm(150, 0, 100, 10), &arm(3000, 0, 100, 10))
            .is_empty());
        // Enough candidate requests, but the baseline lacks samples: still waiting.
        assert!(r
            .tick(60 * MIN, &arm(300, 0, 100, 10), &arm(20, 0, 100, 10))
            .is_empty());
        assert_eq!(
            r.state(),
            &State::Running {
                step: 0,
                since_ms: 0
            }
        );
        assert_eq!(r.timeline().len(), 1);
    }

    #[test]
    fn pause_stops_advancing_and_resume_opens_a_new_window() {
        let mut r = rollout(RolloutKind::Canary);
        r.start(0).unwrap();
        let (c, b) = healthy();
        r.pause(MIN).unwrap();
        assert_eq!(r.state(), &State::Paused { step: 0 });
        assert_eq!(r.traffic().candidate_basis_points, 500);
        assert!(r.tick(100 * MIN, &c, &b).is_empty());
        assert_eq!(r.pause(MIN), Err(RolloutError::NotRunning("paused")));
        let t = r.resume(100 * MIN).unwrap();
        assert!(t.starts_window());
        // The new window is young: the step does not pass on paused time.
        assert!(r.tick(101 * MIN, &c, &b).is_empty());
        r.tick(110 * MIN, &c, &b);
        assert_eq!(r.traffic().candidate_basis_points, 2_500);
        assert_eq!(r.resume(0), Err(RolloutError::NotPaused("running")));
    }

    #[test]
    fn abort_sends_everyone_back_and_ends_the_rollout() {
        let mut r = rollout(RolloutKind::Canary);
        r.start(0).unwrap();
        let t = r.abort(MIN, "wrong candidate").unwrap();
        assert_eq!(t.traffic.candidate_basis_points, 0);
        assert!(t.reason.contains("wrong candidate"));
        assert!(matches!(r.state(), State::Aborted { .. }));
        let (c, b) = healthy();
        assert!(r.tick(100 * MIN, &c, &b).is_empty());
        assert_eq!(r.start(0), Err(RolloutError::Finished("aborted")));
        // A pending rollout can be aborted too.
        let mut p = rollout(RolloutKind::Canary);
        p.abort(0, "not needed").unwrap();
        assert!(p.state().is_finished());
    }

    #[test]
    fn manual_promote_is_instant() {
        let mut r = rollout(RolloutKind::Canary);
        r.start(0).unwrap();
        let t = r.promote(MIN).unwrap();
        assert_eq!(t.traffic.candidate_basis_points, BASIS_POINTS);
        assert!(t.reason.contains("step 1 of 3 (5%)"), "{}", t.reason);
        assert_eq!(r.assign("anyone"), Arm::Candidate);
    }

    #[test]
    fn manual_endings_work_from_pending_running_and_paused() {
        type End = fn(&mut Rollout) -> Result<Transition, RolloutError>;
        let endings: [(End, &str, u16); 3] = [
            (|r| r.promote(MIN), "promoted", BASIS_POINTS),
            (|r| r.rollback(MIN, "why"), "rolled back", 0),
            (|r| r.abort(MIN, "why"), "aborted", 0),
        ];
        for (end, name, share) in endings {
            for setup in 0..3 {
                let mut r = rollout(RolloutKind::Canary);
                if setup >= 1 {
                    r.start(0).unwrap();
                }
                if setup == 2 {
                    r.pause(1).unwrap();
                }
                let from = r.state().clone();
                let t = end(&mut r).unwrap();
                assert_eq!(t.from, from);
                assert_eq!(r.state().name(), name, "from {from:?}");
                assert_eq!(t.traffic.candidate_basis_points, share);
                assert_eq!(end(&mut r), Err(RolloutError::Finished(name)));
            }
        }
    }

    #[test]
    fn start_twice_is_refused() {
        let mut r = rollout(RolloutKind::Canary);
        r.start(0).unwrap();
        assert_eq!(r.start(1), Err(RolloutError::AlreadyStarted));
    }

    #[test]
    fn blue_green_switches_keeps_the_baseline_warm_and_rolls_back_in_one_call() {
        let mut r = rollout(RolloutKind::BlueGreen);
        assert_eq!(
            r.traffic(),
            Traffic {
                candidate_basis_points: 0,
                warm: Some(Arm::Candidate)
            }
        );
        r.start(0).unwrap();
        let live = r.traffic();
        assert_eq!(live.candidate_basis_points, BASIS_POINTS);
        assert_eq!(live.warm, Some(Arm::Baseline));
        assert!(live.is_live(Arm::Candidate) && !live.is_live(Arm::Baseline));
        let t = r.rollback(MIN, "support tickets").unwrap();
        assert_eq!(t.traffic.candidate_basis_points, 0);
        assert!(t.traffic.is_live(Arm::Baseline));
        assert!(matches!(r.state(), State::RolledBack { .. }));
    }

    #[test]
    fn blue_green_bake_promotes_or_rolls_back_by_itself() {
        let mut good = rollout(RolloutKind::BlueGreen);
        good.start(0).unwrap();
        let (c, reference) = healthy();
        let t = good.tick(10 * MIN, &c, &reference);
        assert_eq!(good.state(), &State::Promoted, "{t:?}");
        assert!(t[0].reason.starts_with("the blue-green bake (100%) passed"));

        let mut bad = rollout(RolloutKind::BlueGreen);
        bad.start(0).unwrap();
        bad.tick(MIN, &arm(100, 40, 100, 10), &reference);
        assert!(matches!(bad.state(), State::RolledBack { .. }));
    }

    #[test]
    fn users_stay_with_the_candidate_as_its_share_grows() {
        let mut r = rollout(RolloutKind::Canary);
        r.start(0).unwrap();
        let users: Vec<String> = (0..2000).map(|u| format!("user-{u}")).collect();
        let first: Vec<&String> = users
            .iter()
            .filter(|u| r.assign(u) == Arm::Candidate)
            .collect();
        assert!(first.len() > 50 && first.len() < 150, "{}", first.len());
        let (c, b) = healthy();
        r.tick(10 * MIN, &c, &b);
        assert!(first.iter().all(|u| r.assign(u) == Arm::Candidate));
    }

    #[test]
    fn bad_specs_list_every_problem() {
        let spec = RolloutSpec {
            steps: vec![0, 5_000, 2_500],
            analysis: AnalysisSpec {
                confidence: 2.0,
                ..AnalysisSpec::default()
            },
            ..RolloutSpec::default()
        };
        let errors = Rollout::new("r", target("a"), target("b"), spec).unwrap_err();
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 5, "{text:?}");
        assert!(text.iter().any(|e| e.starts_with("analysis: confidence")));
        // Blue-green ignores the steps.
        let spec = RolloutSpec {
            steps: vec![],
            kind: RolloutKind::BlueGreen,
            ..RolloutSpec::default()
        };
        assert!(spec.validate().is_ok());
    }

    #[derive(Debug, Clone)]
    enum Event {
        Start,
        Tick { healthy: bool, minutes: u64 },
        Promote,
        Pause,
        Resume,
        Abort,
        Rollback,
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            Just(Event::Start),
            (any::<bool>(), 0u64..20)
                .prop_map(|(healthy, minutes)| Event::Tick { healthy, minutes }),
            Just(Event::Promote),
            Just(Event::Pause),
            Just(Event::Resume),
            Just(Event::Abort),
            Just(Event::Rollback),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Whatever happens: the share only grows until the end, which is 0% or 100%; a
        /// finished rollout stays finished; every change is in the timeline with a reason.
        #[test]
        fn any_sequence_of_events_keeps_the_invariants(
            kind in prop_oneof![Just(RolloutKind::Canary), Just(RolloutKind::BlueGreen)],
            events in proptest::collection::vec(event(), 0..30),
        ) {
            let mut r = rollout(kind);
            let (good, base) = healthy();
            let bad = arm(300, 150, 100, 100);
            let mut now = 0;
            let mut changes = 0;
            let mut share = 0;
            for e in events {
                let was_finished = r.state().is_finished();
                let made = match e {
                    Event::Start => r.start(now).map(|_| 1),
                    Event::Tick { healthy, minutes } => {
                        now += minutes * MIN;
                        Ok(r.tick(now, if healthy { &good } else { &bad }, &base).len())
                    }
                    Event::Promote => r.promote(now).map(|_| 1),
                    Event::Pause => r.pause(now).map(|_| 1),
                    Event::Resume => r.resume(now).map(|_| 1),
                    Event::Abort => r.abort(now, "test").map(|_| 1),
                    Event::Rollback => r.rollback(now, "test").map(|_| 1),
                };
                let made = made.unwrap_or(0);
                if was_finished {
                    prop_assert_eq!(made, 0);
                }
                changes += made;
                let now_share = r.traffic().candidate_basis_points;
                if r.state().is_finished() {
                    prop_assert!(now_share == 0 || now_share == BASIS_POINTS);
                } else {
                    prop_assert!(now_share >= share);
                    share = now_share;
                }
            }
            prop_assert_eq!(r.timeline().len(), changes);
            for pair in r.timeline().windows(2) {
                prop_assert_eq!(&pair[0].to, &pair[1].from);
            }
            prop_assert!(r.timeline().iter().all(|t| !t.reason.is_empty()));
        }
    }

    #[test]
    fn a_rollout_survives_a_json_round_trip() {
        let mut r = rollout(RolloutKind::Canary);
        r.start(5).unwrap();
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains(r#""state":"running""#), "{json}");
        let back: Rollout = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
    }
}
