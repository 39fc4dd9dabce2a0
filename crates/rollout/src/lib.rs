//! The logic of the control plane's changes: canary and blue-green rollouts of a candidate
//! version against a baseline, the statistics that decide whether a candidate is worse, sticky
//! feature flags, and the hash-chained audit log with its config diffs.
//!
//! Owns sticky traffic assignment (`split`), the candidate-versus-baseline analysis with its
//! statistical tests (`analysis`), the rollout state machine with its timeline (`machine`),
//! feature flag evaluation (`flags`) and the audit chain (`audit`). Pure: time comes in as
//! milliseconds since the epoch (`now_ms`), so a test drives it with a paused clock; no clocks,
//! no randomness, no I/O, no locks. It must not know what it rolls out (targets are opaque
//! [`TargetRef`]s, not configs, models or prompts), must not know HTTP or the store, and must
//! not count requests itself: the gateway accumulates [`ArmStats`] per step window and passes
//! them in.
//!
//! ```
//! use switchyard_rollout::{Arm, ArmStats, Outcome, Rollout, RolloutSpec, TargetKind, TargetRef};
//!
//! let config = |id: &str| TargetRef { kind: TargetKind::Config, id: id.into() };
//! let spec = RolloutSpec::default(); // 5% → 25% → 50% → 100%, 10 minutes and 200 requests a step
//! let mut rollout = Rollout::new("cfg-12", config("v11"), config("v12"), spec)
//!     .map_err(|errors| format!("{errors:?}"))?;
//! rollout.start(0)?;
//!
//! // The gateway sends each user where the rollout says and counts what happened.
//! let (mut candidate, mut baseline) = (ArmStats::default(), ArmStats::default());
//! for user in 0..6_000 {
//!     let outcome = Outcome { latency_ms: Some(120), ..Outcome::default() };
//!     match rollout.assign(&format!("user-{user}")) {
//!         Arm::Candidate => candidate.record(&outcome),
//!         Arm::Baseline => baseline.record(&outcome),
//!     }
//! }
//!
//! // Ten minutes later the step is judged: healthy, so the candidate goes to 25%.
//! let moves = rollout.tick(10 * 60 * 1000, &candidate, &baseline);
//! assert!(moves[0].starts_window()); // count afresh from here
//! assert_eq!(rollout.traffic().candidate_basis_points, 2_500);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod analysis;
pub mod audit;
pub mod flags;
pub mod machine;
pub mod split;
mod stats;

pub use analysis::{requests_to_detect, AnalysisSpec, ArmStats, Criterion, Look, Outcome, Verdict};
pub use audit::{
    diff_lines, verify, verify_after, verify_with_head, AuditEntry, AuditEvent, ChainError,
    ChainFault, Head, GENESIS_HASH,
};
pub use flags::{evaluate, Flag, FlagKind, FlagValue, WeightedVariant};
pub use machine::{
    Arm, Rollout, RolloutError, RolloutKind, RolloutSpec, SpecError, State, TargetKind, TargetRef,
    Traffic, Transition,
};
pub use split::{bucket, in_candidate, BASIS_POINTS};
