//! PII and secret detection and masking for the gateway's guard stage.
//!
//! Owns: the detectors (e-mail, phone, payment card with Luhn, IBAN with mod-97, US SSN with
//! the never-issued ranges, IPv4/IPv6, dates of birth by context, provider API keys, JWTs,
//! private keys and high-entropy tokens, and a rule-based recogniser for person names, street
//! addresses and locations), the deterministic choice between overlapping findings, and the
//! masking actions (`redact`, `pseudonymize`, `hash`, `block`) with consistent placeholders
//! per session and their restoration in answers, streaming included.
//!
//! Must not: do I/O, read clocks or environment, or know about HTTP, config files or the
//! request pipeline. A [`Scanner`] is built once from a [`ScannerConfig`] (regexes and word
//! lists compiled then) and shared; a [`MaskSession`] lives for one request.
//!
//! Names, addresses and places: rules and word lists propose candidates, and a small trained
//! context model (logistic regression over hashed context features, `recogniser/context.rs`)
//! decides which are someone's personal data; `eval/pii.md` measures how far that goes.
//!
//! ```
//! use std::sync::Arc;
//! use switchyard_pii::{Action, EntityKind, MaskPolicy, Masker, Scanner, ScannerConfig};
//!
//! // Once per configuration:
//! let scanner = Arc::new(Scanner::new(ScannerConfig::default())?);
//! let policy = MaskPolicy::uniform(Action::Pseudonymize).with(EntityKind::CreditCard, Action::Block);
//! let masker = Masker::new(scanner, policy);
//!
//! // Once per request: every message through the same session.
//! let mut session = masker.session(b"tenant salt");
//! let masked = session.mask("My name is Ana Lee, write to ana@example.com");
//! assert_eq!(masked.text, "My name is <PERSON_1>, write to <EMAIL_1>");
//! assert!(!masked.blocked);
//!
//! // The answer, as it streams back:
//! let mut unmasker = session.stream_unmasker();
//! let mut answer = unmasker.push("Sent to <EMA");
//! answer += &unmasker.push("IL_1>, <PERSON_1>.");
//! answer += &unmasker.finish();
//! assert_eq!(answer, "Sent to ana@example.com, Ana Lee.");
//! # Ok::<(), switchyard_pii::PiiError>(())
//! ```

mod config;
mod kind;
mod mask;
mod recogniser;
mod scanner;
mod secrets;
mod structured;
mod text;

pub use config::{ScannerConfig, SecretOptions};
pub use kind::{EntityKind, Span};
pub use mask::{
    Action, Finding, MaskPolicy, MaskSession, Masked, Masker, Restorations, StreamUnmasker,
};
pub use recogniser::context::{sigmoid, ContextModel, FEATURE_BITS};
pub use scanner::{resolve_overlaps, resolve_overlaps_by_confidence, Candidate, Scanner};
pub use secrets::shannon_entropy;
pub use structured::{iban_checksum_valid, luhn_valid, ssn_valid};

/// Why a scanner could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PiiError {
    #[error("invalid PII scanner config: {}", .0.join("; "))]
    InvalidConfig(Vec<String>),
    #[error("a built-in pattern failed to compile: {0}")]
    Pattern(String),
    #[error("PII context model: {0}")]
    Model(String),
}
