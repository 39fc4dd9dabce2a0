//! Guard verdicts and the output checks, pure: no I/O, no async, no clock but what a check
//! measures of itself.
//!
//! - [`verdict`]: [`GuardVerdict`] and its [`Outcome`], the one vocabulary the guards, the
//!   request record, the KPIs, the rollouts and the SLOs share.
//! - [`output`]: the checks a whole answer passes ([`OutputChecks::review`]: toxicity,
//!   grounding, bias, compliance rules) and the text helpers they use.
//! - [`window`]: the same checks over a streamed answer, sentence by sentence
//!   ([`OutputWindow`]), so nothing that fails is ever sent.
//!
//! It owns no model loading (the gateway builds the detectors from their artifacts) and no
//! HTTP: a refusal becomes a client error in the gateway.

pub mod output;
pub mod verdict;
pub mod window;

pub use output::{BiasCheck, GroundingCheck, OutputCheck, OutputChecks, ToxicityCheck};
pub use verdict::{GuardVerdict, Outcome};
pub use window::OutputWindow;
