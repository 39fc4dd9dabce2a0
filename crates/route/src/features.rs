//! Prompt features for the router: the hashed word and character n-grams of
//! `switchyard-textclass` (the one featurizer the project has), a few cheap numeric signals
//! that matter for routing, and an optional dense vector supplied by the caller.
//!
//! The layout of one feature vector is fixed by [`FeatureConfig`]:
//! `[0, buckets)` hashed text features, then [`NUMERIC_FEATURES`] numeric features, then
//! `dense_dim` dense values. A trained artifact stores its `FeatureConfig`, so the same
//! prompt always lands in the same slots at training and at serving time.

use serde::{Deserialize, Serialize};
use switchyard_textclass::{NgramConfig, NgramFeaturizer};

/// Names of the numeric features, in slot order (after the hashed buckets).
pub const NUMERIC_FEATURES: [&str; 8] = [
    "log_chars",
    "log_words",
    "digit_share",
    "code_markers",
    "math_symbols",
    "question_word",
    "log_lines",
    "multiple_choice",
];

/// How a prompt becomes a vector. Stored in the artifact; changing any field changes the
/// meaning of every weight, so a model is only ever used with the config it was trained with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureConfig {
    /// Number of hash buckets is `2^buckets_log2`.
    pub buckets_log2: u32,
    /// Smallest and largest character n-gram length (inclusive); `0, 0` turns them off.
    pub char_ngram_min: usize,
    pub char_ngram_max: usize,
    /// Prompts are cut to this many bytes (at a char boundary) before featurising, which
    /// bounds the decision time for very long prompts.
    pub max_bytes: usize,
    /// Length of the optional dense embedding (0 = none). The extension point for
    /// in-process sentence embeddings: the caller computes the vector and passes it in.
    pub dense_dim: usize,
}

impl Default for FeatureConfig {
    fn default() -> Self {
        Self {
            buckets_log2: 18,
            char_ngram_min: 3,
            char_ngram_max: 5,
            max_bytes: 4096,
            dense_dim: 0,
        }
    }
}

impl FeatureConfig {
    /// Number of hash buckets.
    pub fn buckets(&self) -> usize {
        1usize << self.buckets_log2
    }

    /// Total length of the weight vector a linear model over these features needs.
    pub fn dim(&self) -> usize {
        self.buckets() + NUMERIC_FEATURES.len() + self.dense_dim
    }

    /// The hashed-text part of the layout.
    pub fn ngrams(&self) -> NgramConfig {
        NgramConfig {
            buckets_log2: self.buckets_log2,
            char_ngram_min: self.char_ngram_min,
            char_ngram_max: self.char_ngram_max,
            max_bytes: self.max_bytes,
        }
    }
}

pub use switchyard_textclass::Features;

/// Turns prompts into [`Features`]: the hashed n-grams of `switchyard-textclass` in
/// `[0, buckets)`, then the router's numeric signals, then the caller's dense vector.
#[derive(Debug, Clone)]
pub struct Featurizer {
    config: FeatureConfig,
    ngrams: NgramFeaturizer,
}

impl Featurizer {
    pub fn new(config: FeatureConfig) -> Self {
        let ngrams = NgramFeaturizer::new(config.ngrams());
        Self { config, ngrams }
    }

    pub fn config(&self) -> &FeatureConfig {
        &self.config
    }

    /// Featurise a prompt. `dense` is used only when the config has `dense_dim > 0`; a
    /// missing or wrongly sized vector counts as zeros, so a router trained with embeddings
    /// still decides (on text alone) when the embedder is unavailable.
    pub fn featurize(&self, prompt: &str, dense: Option<&[f32]>) -> Features {
        let dense = dense.filter(|d| d.len() == self.config.dense_dim);
        self.ngrams.featurize_with(prompt, |lower, words| {
            // Numeric signals read the whole prompt (length, digits) as well as the
            // truncated lower-cased text the n-grams saw.
            let mut extra = numeric(prompt, lower, words).to_vec();
            extra.extend_from_slice(dense.unwrap_or(&[]));
            extra
        })
    }
}

const QUESTION_WORDS: [&str; 10] = [
    "what",
    "why",
    "how",
    "which",
    "who",
    "when",
    "where",
    "explain",
    "prove",
    "calculate",
];
const CODE_MARKERS: [&str; 9] = [
    "```", "def ", "fn ", "function", "class ", "return", "import ", "#include", "=>",
];

/// The numeric features, each scaled to roughly `[0, 1]` so one learning rate suits all.
fn numeric(raw: &str, lower: &str, words: &[&str]) -> [f32; 8] {
    let chars = raw.chars().count().max(1) as f32;
    let digits = raw.chars().filter(char::is_ascii_digit).count() as f32;
    let math = raw
        .chars()
        .filter(|c| {
            matches!(
                c,
                '+' | '*' | '/' | '=' | '^' | '<' | '>' | '√' | 'π' | '∑' | '∫' | '%'
            )
        })
        .count() as f32;
    let code = CODE_MARKERS
        .iter()
        .map(|m| lower.matches(m).count())
        .sum::<usize>()
        + lower.matches(';').count() / 2
        + lower.matches('{').count();
    let question = words.iter().any(|w| QUESTION_WORDS.contains(w)) || raw.contains('?');
    let lines = raw.lines().count() as f32;
    let choice = raw.contains("\nA.") && raw.contains("\nB.");
    [
        (1.0 + chars).ln() / 8.0,
        (1.0 + words.len() as f32).ln() / 6.0,
        digits / chars,
        (code as f32 / 5.0).min(1.0),
        (10.0 * math / chars).min(1.0),
        f32::from(u8::from(question)),
        (1.0 + lines).ln() / 4.0,
        f32::from(u8::from(choice)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Featurizer {
        Featurizer::new(FeatureConfig {
            buckets_log2: 12,
            ..FeatureConfig::default()
        })
    }

    #[test]
    fn deterministic_sorted_and_in_range() {
        let f = small();
        let a = f.featurize("How do I reverse a list in Python?", None);
        let b = f.featurize("How do I reverse a list in Python?", None);
        assert_eq!(a, b);
        assert!(a.indices.windows(2).all(|w| w[0] < w[1]));
        assert!(a.indices.iter().all(|&i| (i as usize) < f.config().dim()));
    }

    #[test]
    fn word_group_is_unit_length() {
        let f = Featurizer::new(FeatureConfig {
            buckets_log2: 16,
            char_ngram_min: 0,
            char_ngram_max: 0,
            ..FeatureConfig::default()
        });
        let x = f.featurize("alpha beta gamma", None);
        let buckets = f.config().buckets() as u32;
        let norm: f32 = x
            .indices
            .iter()
            .zip(&x.values)
            .filter(|(i, _)| **i < buckets)
            .map(|(_, v)| v * v)
            .sum();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
    }

    #[test]
    fn numeric_signals() {
        let f = small();
        let base = f.config().buckets() as u32;
        let get = |x: &Features, k: usize| {
            x.indices
                .iter()
                .position(|&i| i == base + k as u32)
                .map_or(0.0, |p| x.values[p])
        };
        let code = f.featurize("```rust\nfn main() { return; }\n```", None);
        assert!(get(&code, 3) > 0.5);
        let mcq = f.featurize("Pick one\nA. x\nB. y\nAnswer:", None);
        assert_eq!(get(&mcq, 7), 1.0);
        let math = f.featurize("2+2*3=8", None);
        assert!(get(&math, 2) > 0.5 && get(&math, 4) > 0.5);
        let q = f.featurize("Why is the sky blue", None);
        assert_eq!(get(&q, 5), 1.0);
    }

    #[test]
    fn dense_extension_point() {
        let f = Featurizer::new(FeatureConfig {
            buckets_log2: 10,
            dense_dim: 3,
            ..FeatureConfig::default()
        });
        let x = f.featurize("hi", Some(&[0.5, 0.0, -1.0]));
        let dbase = (f.config().buckets() + NUMERIC_FEATURES.len()) as u32;
        assert!(x.indices.contains(&dbase) && x.indices.contains(&(dbase + 2)));
        // A wrongly sized vector is ignored rather than misplaced.
        let y = f.featurize("hi", Some(&[1.0]));
        assert!(y.indices.iter().all(|&i| i < dbase));
    }
}
