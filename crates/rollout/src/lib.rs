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
