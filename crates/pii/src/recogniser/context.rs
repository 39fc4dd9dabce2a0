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
use super::Recogniser;
use crate::kind::{EntityKind, Span};
use crate::PiiError;

/// Size of the hashed feature space, as a power of two.
pub const FEATURE_BITS: u32 = 16;
const FEATURE_MASK: u32 = (1 << FEATURE_BITS) - 1;
/// Structured PII this close (bytes) to a candidate counts as "near".
const NEAR_BYTES: usize = 80;

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
    structured: Vec<(usize, usize)>,
    first_person: bool,
    second_person: bool,
    /// Share of words that are capitalised, in tenths.
    capitalised_tenths: u8,
    newline: bool,
    /// log2 of the token count.
    size: u8,
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
fn hash(parts: &[&[u8]]) -> u32 {
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

/// A feature for this kind and the same feature for every kind (the kinds share evidence:
/// a phone number nearby is personal context for a name and an address alike).
fn both(out: &mut Vec<u32>, kind: &[u8], name: &[u8], value: &[u8]) {
    out.push(hash(&[kind, name, value]));
    out.push(hash(&[b"*", name, value]));
}

fn kind_code(kind: EntityKind) -> &'static [u8] {
    match kind {
        EntityKind::Person => b"P",
        EntityKind::StreetAddress => b"A",
        EntityKind::Location => b"L",
        _ => b"O",
    }
}

/// A context token as a feature value: words lower case, numbers by digit count, line breaks
/// and the text's edges by name.
fn norm<'a>(tokens: &'a [Token<'_>], index: Option<usize>) -> std::borrow::Cow<'a, [u8]> {
    use std::borrow::Cow;
    let Some(token) = index.and_then(|i| tokens.get(i)) else {
        return Cow::Borrowed(b"<edge>");
    };
    match token.shape {
        Shape::Word => Cow::Borrowed(token.lower.as_bytes()),
        Shape::Punct => Cow::Borrowed(token.text.as_bytes()),
        Shape::Newline => Cow::Borrowed(b"<nl>"),
        Shape::Number => {
            const DIGITS: [&[u8]; 7] = [
                b"<d0>", b"<d1>", b"<d2>", b"<d3>", b"<d4>", b"<d5>", b"<d6>",
            ];
            let digits = token.text.bytes().filter(u8::is_ascii_digit).count().min(6);
            Cow::Borrowed(DIGITS[digits])
        }
    }
}

fn shape_code(token: &Token<'_>) -> &'static [u8] {
    match token.shape {
        Shape::Number => b"9",
        Shape::Newline => b"n",
        Shape::Punct => b".",
        Shape::Word => {
            if token.text.chars().all(|c| !c.is_lowercase()) {
                if token.text.chars().count() == 1 {
                    b"I"
                } else {
                    b"X"
                }
            } else if token.capitalised() {
                b"C"
            } else {
                b"x"
            }
        }
    }
}

impl Recogniser {
    /// The hashed features of the candidate `span` (tokens `first..=last`).
    pub(super) fn features(
        &self,
        tokens: &[Token<'_>],
        first: usize,
        last: usize,
        span: &Span,
        context: &TextContext,
        out: &mut Vec<u32>,
    ) {
        let k = kind_code(span.kind);
        both(out, k, b"bias", b"");
        both(out, k, b"rule", span.rule.as_bytes());
        let bucket = [b'0' + (span.confidence * 10.0).clamp(0.0, 9.0) as u8];
        both(out, k, b"conf", &bucket);
        let span_tokens = &tokens[first..=last];
        let words = span_tokens
            .iter()
            .filter(|t| t.shape == Shape::Word)
            .count();
        both(out, k, b"words", &[b'0' + words.min(6) as u8]);
        let numbers = span_tokens
            .iter()
            .filter(|t| t.shape == Shape::Number)
            .count();
        both(out, k, b"numbers", &[b'0' + numbers.min(4) as u8]);
        let mut shape = Vec::with_capacity(6);
        for token in span_tokens.iter().take(6) {
            shape.extend_from_slice(shape_code(token));
        }
        both(out, k, b"shape", &shape);
        for (position, token) in span_tokens.iter().enumerate() {
            let place: &[u8] = if position == 0 {
                b"first"
            } else if position + 1 == span_tokens.len() {
                b"last"
            } else {
                b"inner"
            };
            for bit in 0..16u8 {
                if token.flags & (1 << bit) != 0 {
                    both(out, k, b"flag", &[bit]);
                    both(out, k, place, &[bit]);
                }
            }
            if token.shape == Shape::Word && self.place_at(tokens, first + position).is_some() {
                both(out, k, b"place", place);
            }
        }
        if let Some(token) = span_tokens.iter().rev().find(|t| t.shape == Shape::Word) {
            let lower = token.lower.as_ref();
            if let Some((at, _)) = lower.char_indices().rev().nth(2) {
                if lower.chars().count() > 4 {
                    both(out, k, b"suffix", &lower.as_bytes()[at..]);
                }
            }
        }
        if Self::sentence_start(tokens, first) {
            both(out, k, b"sentence_start", b"");
        }
        let line_before = first == 0 || tokens[first - 1].shape == Shape::Newline;
        let line_after = tokens
            .get(last + 1)
            .is_none_or(|t| t.shape == Shape::Newline);
        both(
            out,
            k,
            b"line",
            match (line_before, line_after) {
                (true, true) => b"alone",
                (true, false) => b"starts",
                (false, true) => b"ends",
                (false, false) => b"inside",
            },
        );
        // The words around it: one and two either side exactly, three more as a bag.
        let before = |d: usize| first.checked_sub(d);
        let after = |d: usize| Some(last + d);
        let l1 = norm(tokens, before(1));
        let l2 = norm(tokens, before(2));
        let r1 = norm(tokens, after(1));
        let r2 = norm(tokens, after(2));
        both(out, k, b"l1", &l1);
        both(out, k, b"l2", &l2);
        out.push(hash(&[k, b"l21", &l2, &l1]));
        both(out, k, b"r1", &r1);
        // Conjunctions the linear model cannot make itself.
        out.push(hash(&[k, b"l1r1", &l1, &r1]));
        out.push(hash(&[k, b"l1shape", &l1, &shape]));
        out.push(hash(&[k, b"r1shape", &r1, &shape]));
        let first_flags = span_tokens[0].flags.to_le_bytes();
        out.push(hash(&[k, b"l1flags", &l1, &first_flags]));
        out.push(hash(&[k, b"rule_l1", span.rule.as_bytes(), &l1]));
        out.push(hash(&[
            k,
            b"rule_line",
            span.rule.as_bytes(),
            &[u8::from(line_before), u8::from(line_after)],
        ]));
        both(out, k, b"r2", &r2);
        out.push(hash(&[k, b"r12", &r1, &r2]));
        for d in 3..=6 {
            if before(d).is_some() {
                out.push(hash(&[k, b"lbag", &norm(tokens, before(d))]));
            }
        }
        for d in 3..=5 {
            if last + d < tokens.len() {
                out.push(hash(&[k, b"rbag", &norm(tokens, after(d))]));
            }
        }
        // The text as a whole.
        if !context.structured.is_empty() {
            both(out, k, b"structured", b"any");
            let near = context.structured.iter().any(|(s, e)| {
                span.start.saturating_sub(NEAR_BYTES) < *e && *s < span.end + NEAR_BYTES
            });
            if near {
                both(out, k, b"structured", b"near");
            }
        }
        if context.first_person {
            both(out, k, b"first_person", b"");
        }
        if context.second_person {
            both(out, k, b"second_person", b"");
        }
        both(out, k, b"capitalised", &[b'0' + context.capitalised_tenths]);
        if context.newline {
            both(out, k, b"newline", b"");
        }
        both(out, k, b"size", &[b'0' + context.size.min(12)]);
    }
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
