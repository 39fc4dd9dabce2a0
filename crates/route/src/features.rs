//! Prompt features for the router: hashed word unigrams and bigrams, hashed character
//! n-grams, a few cheap numeric signals, and an optional dense vector supplied by the caller.
//!
//! The layout of one feature vector is fixed by [`FeatureConfig`]:
//! `[0, buckets)` hashed text features, then [`NUMERIC_FEATURES`] numeric features, then
//! `dense_dim` dense values. A trained artifact stores its `FeatureConfig`, so the same
//! prompt always lands in the same slots at training and at serving time.

use serde::{Deserialize, Serialize};

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
}

/// A featurised prompt: sorted, de-duplicated `(index, value)` pairs over the whole layout.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Features {
    pub indices: Vec<u32>,
    pub values: Vec<f32>,
}

impl Features {
    /// Dot product with a dense weight vector; indices beyond `weights` count as zero.
    pub fn dot(&self, weights: &[f32]) -> f32 {
        self.indices
            .iter()
            .zip(&self.values)
            .map(|(&i, &v)| weights.get(i as usize).copied().unwrap_or(0.0) * v)
            .sum()
    }
}

/// 64-bit FNV-1a. Written out (not taken from a crate) because the bucket of every n-gram is
/// baked into trained weights: the function must never change, and FNV-1a is fixed by its
/// published constants.
fn fnv1a(kind: u8, parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    eat(kind);
    for (n, part) in parts.iter().enumerate() {
        if n > 0 {
            // A separator so that ("ab", "c") and ("a", "bc") differ.
            eat(0x1f);
        }
        part.iter().copied().for_each(&mut eat);
    }
    h
}

/// Turns prompts into [`Features`].
#[derive(Debug, Clone)]
pub struct Featurizer {
    config: FeatureConfig,
}

impl Featurizer {
    pub fn new(config: FeatureConfig) -> Self {
        Self { config }
    }

    pub fn config(&self) -> &FeatureConfig {
        &self.config
    }

    /// Featurise a prompt. `dense` is used only when the config has `dense_dim > 0`; a
    /// missing or wrongly sized vector counts as zeros, so a router trained with embeddings
    /// still decides (on text alone) when the embedder is unavailable.
    pub fn featurize(&self, prompt: &str, dense: Option<&[f32]>) -> Features {
        let text = truncate(prompt, self.config.max_bytes).to_lowercase();
        let mask = (self.config.buckets() - 1) as u64;
        // Signed hashing: the top bit picks +1 or -1, so collisions cancel on average
        // instead of piling up.
        let slot = |h: u64| -> (u32, f32) {
            let sign = if h >> 63 == 1 { -1.0 } else { 1.0 };
            ((h & mask) as u32, sign)
        };

        let words: Vec<&str> = text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        let mut word_feats: Vec<(u32, f32)> = Vec::with_capacity(words.len() * 2);
        for w in &words {
            word_feats.push(slot(fnv1a(1, &[w.as_bytes()])));
        }
        for pair in words.windows(2) {
            word_feats.push(slot(fnv1a(2, &[pair[0].as_bytes(), pair[1].as_bytes()])));
        }

        let mut char_feats: Vec<(u32, f32)> = Vec::new();
        if self.config.char_ngram_min > 0 {
            // Whitespace runs collapse to one space so layout does not change the n-grams.
            let squeezed: Vec<char> = text
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .chars()
                .collect();
            let mut buf = [0u8; 4];
            for n in self.config.char_ngram_min..=self.config.char_ngram_max {
                if squeezed.len() < n {
                    break;
                }
                for win in squeezed.windows(n) {
                    let mut h: u64 = fnv1a(3, &[&[n as u8]]);
                    for c in win {
                        for &b in c.encode_utf8(&mut buf).as_bytes() {
                            h ^= u64::from(b);
                            h = h.wrapping_mul(0x0000_0100_0000_01b3);
                        }
                    }
                    char_feats.push(slot(h));
                }
            }
        }

        let mut pairs = Vec::with_capacity(word_feats.len() + char_feats.len() + 16);
        // Each group is scaled to unit length on its own, so long prompts with thousands of
        // character n-grams do not drown out the word features.
        push_normalised(&mut pairs, word_feats);
        push_normalised(&mut pairs, char_feats);

        let base = self.config.buckets() as u32;
        for (i, v) in numeric(prompt, &text, &words).into_iter().enumerate() {
            if v != 0.0 {
                pairs.push((base + i as u32, v));
            }
        }
        if let Some(d) = dense.filter(|d| d.len() == self.config.dense_dim) {
            let dbase = base + NUMERIC_FEATURES.len() as u32;
            for (i, &v) in d.iter().enumerate() {
                if v != 0.0 {
                    pairs.push((dbase + i as u32, v));
                }
            }
        }

        pairs.sort_unstable_by_key(|p| p.0);
        let mut out = Features {
            indices: Vec::with_capacity(pairs.len()),
            values: Vec::with_capacity(pairs.len()),
        };
        for (i, v) in pairs {
            if out.indices.last() == Some(&i) {
                if let Some(last) = out.values.last_mut() {
                    *last += v;
                }
            } else {
                out.indices.push(i);
                out.values.push(v);
            }
        }
        out
    }
}

fn push_normalised(out: &mut Vec<(u32, f32)>, mut group: Vec<(u32, f32)>) {
    if group.is_empty() {
        return;
    }
    group.sort_unstable_by_key(|p| p.0);
    let mut merged: Vec<(u32, f32)> = Vec::with_capacity(group.len());
    for (i, v) in group {
        match merged.last_mut() {
            Some(last) if last.0 == i => last.1 += v,
            _ => merged.push((i, v)),
        }
    }
    let norm = merged.iter().map(|p| p.1 * p.1).sum::<f32>().sqrt();
    if norm > 0.0 {
        out.extend(merged.into_iter().map(|(i, v)| (i, v / norm)));
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
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
    fn hash_is_pinned() {
        // Trained artifacts depend on these exact values; a change here breaks every model.
        assert_eq!(fnv1a(1, &[b"hello"]), 0xe657_88c8_60f9_c52c);
        assert_ne!(fnv1a(2, &[b"ab", b"c"]), fnv1a(2, &[b"a", b"bc"]));
        assert_ne!(fnv1a(1, &[b"x"]), fnv1a(2, &[b"x"]));
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

    #[test]
    fn truncates_at_char_boundary() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
