use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::kind::EntityKind;
use crate::PiiError;

/// What the scanner looks for. Built once (from the gateway's config) and turned into a
/// [`crate::Scanner`]; the default turns every kind on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScannerConfig {
    /// The kinds to detect; a kind not listed is never reported.
    pub kinds: BTreeSet<EntityKind>,
    /// Findings below this confidence are dropped (0..=1).
    pub min_confidence: f32,
    /// Per-kind overrides of `min_confidence`.
    pub min_confidence_by_kind: BTreeMap<EntityKind, f32>,
    /// How far (bytes) before a candidate to look for context words ("call", "SSN", "born").
    pub context_window: usize,
    pub secrets: SecretOptions,
    /// Score name, address and place candidates with the built-in context model
    /// (`eval/artifacts/pii-context.v1.json`, measured in `eval/pii.md`); off, the rules'
    /// own confidences decide.
    pub context_model: bool,
}

impl Default for ScannerConfig {
    fn default() -> Self {
        ScannerConfig {
            kinds: EntityKind::ALL.into_iter().collect(),
            min_confidence: 0.5,
            min_confidence_by_kind: BTreeMap::new(),
            context_window: 32,
            secrets: SecretOptions::default(),
            context_model: true,
        }
    }
}

impl ScannerConfig {
    /// Only the given kinds, other settings at their defaults.
    pub fn only(kinds: impl IntoIterator<Item = EntityKind>) -> ScannerConfig {
        ScannerConfig {
            kinds: kinds.into_iter().collect(),
            ..ScannerConfig::default()
        }
    }

    pub fn threshold(&self, kind: EntityKind) -> f32 {
        self.min_confidence_by_kind
            .get(&kind)
            .copied()
            .unwrap_or(self.min_confidence)
    }

    /// Every problem at once, so a config file can be fixed in one pass.
    pub fn validate(&self) -> Result<(), PiiError> {
        let mut problems = Vec::new();
        let thresholds = std::iter::once(("min_confidence".to_string(), self.min_confidence))
            .chain(
                self.min_confidence_by_kind
                    .iter()
                    .map(|(kind, value)| (format!("min_confidence_by_kind.{kind}"), *value)),
            );
        for (field, value) in thresholds {
            if !(0.0..=1.0).contains(&value) {
                problems.push(format!("{field} must be within 0..=1, got {value}"));
            }
        }
        if self.context_window > 1024 {
            problems.push(format!(
                "context_window must be at most 1024 bytes, got {}",
                self.context_window
            ));
        }
        if self.secrets.min_length < 8 {
            problems.push(format!(
                "secrets.min_length must be at least 8, got {}",
                self.secrets.min_length
            ));
        }
        if !(0.0..=8.0).contains(&self.secrets.min_entropy_bits) {
            problems.push(format!(
                "secrets.min_entropy_bits must be within 0..=8, got {}",
                self.secrets.min_entropy_bits
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(PiiError::InvalidConfig(problems))
        }
    }
}

/// Options of the high-entropy token rule (provider key formats are always on with
/// [`EntityKind::Secret`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecretOptions {
    /// Report unknown tokens that look random.
    pub entropy: bool,
    /// Tokens shorter than this are never taken for secrets.
    pub min_length: usize,
    /// Shannon entropy floor in bits per character (random base62 of length 24 is ~4.3).
    pub min_entropy_bits: f64,
    /// Also report hex-only strings and UUIDs (off: commit ids and digests are common).
    pub hex: bool,
}

impl Default for SecretOptions {
    fn default() -> Self {
        SecretOptions {
            entropy: true,
            min_length: 20,
            min_entropy_bits: 3.8,
            hex: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_reports_every_problem() {
        let mut config = ScannerConfig {
            min_confidence: 1.5,
            ..ScannerConfig::default()
        };
        config
            .min_confidence_by_kind
            .insert(EntityKind::Person, -0.1);
        config.secrets.min_length = 2;
        match config.validate() {
            Err(PiiError::InvalidConfig(problems)) => assert_eq!(problems.len(), 3, "{problems:?}"),
            other => unreachable!("expected invalid config, got {other:?}"),
        }
        assert!(ScannerConfig::default().validate().is_ok());
    }
}
