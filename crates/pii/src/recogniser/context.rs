//! The context model: a logistic regression that decides whether a name, address or place
//! candidate is someone's personal data, from what surrounds it rather than from the word
//! itself. A public figure in a news sentence and a customer's name in "my name is ..." are
//! both capitalised words from a name list; what tells them apart is the words around them,
//! structured PII nearby (an e-mail, a phone number), first-person words, the layout (a line
//! of its own in a letter block), and how much of the text is capitalised.
//!
//! Features are hashed (FNV-1a, [`FEATURE_BITS`] bits) so the model is a flat weight vector and
//! scoring allocates nothing beyond the candidate's feature list. The candidate's own words are
//! deliberately not features (only their word-list flags and shapes): a model that memorised
//! the training data's names would not work on unseen text.

use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

use super::tokens::{Shape, Token};
use crate::kind::{EntityKind, Span};
use crate::PiiError;

/// Size of the hashed feature space, as a power of two.
pub const FEATURE_BITS: u32 = 16;
pub(super) const FEATURE_MASK: u32 = (1 << FEATURE_BITS) - 1;

/// A trained context model as stored in `eval/artifacts/pii-context.v1.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextModel {
    /// What trained it (data and split), for the docs and the audit trail.
    pub trained_on: String,
    /// Must equal [`FEATURE_BITS`].
    pub feature_bits: u32,
    /// One weight per hashed feature (`1 << feature_bits` of them).
    pub weights: Vec<f32>,
    /// The operating point per kind: a raw probability at the threshold is reported as
    /// confidence 0.5, so the scanner's default `min_confidence` is the measured threshold.
    pub thresholds: Vec<(EntityKind, f32)>,
}

impl ContextModel {
    pub fn from_json(text: &str) -> Result<ContextModel, PiiError> {
        let model: ContextModel = serde_json::from_str(text)
            .map_err(|err| PiiError::Model(format!("does not parse: {err}")))?;
        if model.feature_bits != FEATURE_BITS || model.weights.len() != 1 << FEATURE_BITS {
            return Err(PiiError::Model(format!(
                "expected {} weights ({FEATURE_BITS} bits), got {} ({} bits)",
                1u32 << FEATURE_BITS,
                model.weights.len(),
                model.feature_bits
            )));
        }
        if let Some((kind, t)) = model
            .thresholds
            .iter()
            .find(|(_, t)| !(*t > 0.0 && *t < 1.0))
        {
            return Err(PiiError::Model(format!(
                "threshold of {kind} must be within (0, 1), got {t}"
            )));
        }
        Ok(model)
    }

    /// The raw probability that a candidate with these features is a true finding.
    pub fn probability(&self, features: &[u32]) -> f32 {
        sigmoid(self.logit(features))
    }

    fn logit(&self, features: &[u32]) -> f32 {
        features
            .iter()
            .map(|f| {
                self.weights
                    .get((*f & FEATURE_MASK) as usize)
                    .copied()
                    .unwrap_or(0.0)
            })
            .sum()
    }

    /// The confidence the scanner reports: the raw probability moved so that the kind's
    /// threshold lands on 0.5 (a shift of the logit).
    pub fn confidence(&self, kind: EntityKind, features: &[u32]) -> f32 {
        let threshold = self
            .thresholds
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(0.5, |(_, t)| *t);
        sigmoid(self.logit(features) - logit(threshold))
    }
}

/// The model shipped in the binary, parsed once per process.
pub(crate) fn builtin() -> Result<Arc<ContextModel>, PiiError> {
    const JSON: &str = include_str!("../../../../eval/artifacts/pii-context.v1.json");
    static BUILTIN: OnceLock<Result<Arc<ContextModel>, String>> = OnceLock::new();
    BUILTIN
        .get_or_init(|| {
            ContextModel::from_json(JSON)
                .map(Arc::new)
                .map_err(|err| format!("built-in pii-context.v1: {err}"))
        })
        .clone()
        .map_err(PiiError::Model)
}

pub fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

fn logit(p: f32) -> f32 {
    (p / (1.0 - p)).ln()
}

/// What the whole text says, computed once per scan.
pub(super) struct TextContext {
    /// Structured findings (e-mail, phone, card...) already made in this text.
    pub(super) structured: Vec<(usize, usize)>,
    pub(super) first_person: bool,
    pub(super) second_person: bool,
    /// Share of words that are capitalised, in tenths.
    pub(super) capitalised_tenths: u8,
    pub(super) newline: bool,
    /// log2 of the token count.
    pub(super) size: u8,
}

impl TextContext {
    pub(super) fn new(tokens: &[Token<'_>], structured: &[Span]) -> TextContext {
        let mut words = 0usize;
        let mut capitalised = 0usize;
        let mut first_person = false;
        let mut second_person = false;
        let mut newline = false;
        for token in tokens {
            match token.shape {
                Shape::Word => {
                    words += 1;
                    if token.capitalised() {
                        capitalised += 1;
                    }
                    match token.lower.as_ref() {
                        "i" | "my" | "me" | "mine" | "we" | "our" | "us" => first_person = true,
                        "you" | "your" | "yours" => second_person = true,
                        _ => {}
                    }
                }
                Shape::Newline => newline = true,
                Shape::Number | Shape::Punct => {}
            }
        }
        TextContext {
            structured: structured.iter().map(|s| (s.start, s.end)).collect(),
            first_person,
            second_person,
            capitalised_tenths: (capitalised * 10)
                .checked_div(words)
                .map_or(0, |t| t.min(10) as u8),
            newline,
            size: (usize::BITS - tokens.len().leading_zeros()) as u8,
        }
    }
}

/// FNV-1a over the parts, with a separator so ("ab", "c") and ("a", "bc") differ.
pub(super) fn hash(parts: &[&[u8]]) -> u32 {
    parts.iter().fold(FNV_OFFSET, |h, part| fnv(h, part)) & FEATURE_MASK
}

const FNV_OFFSET: u32 = 0x811c_9dc5;
const FNV_PRIME: u32 = 0x0100_0193;

fn fnv(mut h: u32, part: &[u8]) -> u32 {
    for byte in part {
        h = (h ^ u32::from(*byte)).wrapping_mul(FNV_PRIME);
    }
    (h ^ 0x1f).wrapping_mul(FNV_PRIME)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashing_separates_parts() {
        assert_ne!(hash(&[b"ab", b"c"]), hash(&[b"a", b"bc"]));
        assert!(hash(&[b"x"]) <= FEATURE_MASK);
    }

    #[test]
    fn thresholds_map_to_one_half() {
        let mut weights = vec![0.0; 1 << FEATURE_BITS];
        weights[3] = 1.0;
        let model = ContextModel {
            trained_on: "test".into(),
            feature_bits: FEATURE_BITS,
            weights,
            thresholds: vec![(EntityKind::Person, sigmoid(1.0))],
        };
        let at_threshold = model.confidence(EntityKind::Person, &[3]);
        assert!((at_threshold - 0.5).abs() < 1e-5, "{at_threshold}");
        assert!((model.probability(&[3]) - sigmoid(1.0)).abs() < 1e-6);
        // A kind without a threshold keeps the raw probability.
        assert!((model.confidence(EntityKind::Location, &[3]) - sigmoid(1.0)).abs() < 1e-6);
    }

    #[test]
    fn a_malformed_model_is_an_error() {
        assert!(ContextModel::from_json("{}").is_err());
        let short = serde_json::json!({
            "trained_on": "x", "feature_bits": FEATURE_BITS, "weights": [0.0], "thresholds": []
        });
        assert!(ContextModel::from_json(&short.to_string()).is_err());
    }
}
