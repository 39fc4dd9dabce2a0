//! The evidence for one answer sentence against a prepared context, as a fixed feature
//! vector (`FEATURE_NAMES`), plus the numbers and names the context never mentions.
//!
//! How a context is prepared ([`Context::new`]):
//! 1. It is cut into sentences ([`crate::split::sentences`], code blocks included: an answer
//!    may quote them).
//! 2. Every content-word stem gets the list of sentences it occurs in; adjacent content
//!    stems are kept as bigrams; numbers are kept in canonical form; each sentence notes
//!    whether it is negated.
//! 3. When the caller gives an embedding function, each sentence is embedded once.
//!
//! How an answer sentence is measured ([`Context::features`]): the share of its content
//! words found anywhere in the context (recall), the best share found in a single context
//! sentence, the share of its content bigrams found, its numbers and names missing from the
//! context, a negation present on one side only (against the best-matching context
//! sentence), its length, and the largest cosine between its embedding and a context
//! sentence's.

use std::collections::{HashMap, HashSet};

use crate::split;
use crate::terms::{self, Terms};

/// The features, in the order of [`Context::features`]' output and of an artifact's weights.
/// A change here needs a retrained artifact; loading checks the names, so a stale one fails.
pub const FEATURE_NAMES: &[&str] = &[
    "content_recall",
    "best_sentence_recall",
    "bigram_recall",
    "ln1p_unsupported_content",
    "number_unsupported_any",
    "number_unsupported_share",
    "entity_unsupported_any",
    "entity_unsupported_share",
    "negation_mismatch",
    "ln1p_content",
    "embed_max_cosine",
    "embed_cosine_x_recall",
];

/// How many features.
pub const N_FEATURES: usize = 12;

/// The features that need an embedding; zero when there is none.
pub const EMBEDDING_FEATURES: [usize; 2] = [10, 11];

/// The caller's embedding function: text to a vector (any length, the same for every call).
pub type EmbedFn<'a> = &'a dyn Fn(&str) -> Vec<f32>;

/// A context made ready for checking any number of answer sentences against it.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// Content stem → the context sentences that hold it (ascending, no repeats).
    postings: HashMap<String, Vec<u32>>,
    /// Adjacent content stems, hashed.
    bigrams: HashSet<u64>,
    numbers: HashSet<String>,
    negated: Vec<bool>,
    embeddings: Vec<Vec<f32>>,
}

/// One answer sentence measured against a context.
#[derive(Debug, Clone, PartialEq)]
pub struct SentenceFeatures {
    pub values: [f32; N_FEATURES],
    /// Numbers and names of the sentence that the context never mentions, as normalised.
    pub unsupported_terms: Vec<String>,
    /// Content words: with none there is nothing to check (support 1).
    pub content_words: usize,
}

impl Context {
    /// Prepare `text`; `embed` (when given) is called once per context sentence.
    pub fn new(text: &str, embed: Option<EmbedFn<'_>>) -> Self {
        let mut cx = Self::default();
        for (n, seg) in split::sentences(text).iter().enumerate() {
            let sentence = &text[seg.range.clone()];
            let t = terms::terms(sentence);
            let id = u32::try_from(n).unwrap_or(u32::MAX);
            for w in &t.content {
                let list = cx.postings.entry(w.clone()).or_default();
                if list.last() != Some(&id) {
                    list.push(id);
                }
            }
            for pair in t.content.windows(2) {
                cx.bigrams.insert(bigram(&pair[0], &pair[1]));
            }
            cx.numbers.extend(t.numbers);
            cx.negated.push(t.negated);
            if let Some(f) = embed {
                cx.embeddings.push(f(sentence));
            }
        }
        cx
    }

    /// Number of context sentences.
    pub fn sentences(&self) -> usize {
        self.negated.len()
    }

    /// Whether the context was embedded.
    pub fn has_embeddings(&self) -> bool {
        !self.embeddings.is_empty()
    }

    /// Measure one answer sentence. `embedding` is the sentence's vector from the same
    /// function that embedded the context; `None` leaves the embedding features at zero.
    pub fn features(&self, sentence: &str, embedding: Option<&[f32]>) -> SentenceFeatures {
        let t: Terms = terms::terms(sentence);
        let mut v = [0.0f32; N_FEATURES];
        let n_content = t.content.len();
        let mut per_sentence: HashMap<u32, u32> = HashMap::new();
        let mut found = 0usize;
        let mut seen: HashSet<&str> = HashSet::new();
        let mut distinct = 0usize;
        for w in &t.content {
            if !seen.insert(w.as_str()) {
                continue;
            }
            distinct += 1;
            if let Some(list) = self.postings.get(w) {
                found += 1;
                for &s in list {
                    *per_sentence.entry(s).or_default() += 1;
                }
            }
        }
        let (best_sentence, best_count) = per_sentence
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map_or((None, 0), |(&s, &c)| (Some(s), c));
        let share = |a: usize, b: usize| if b == 0 { 1.0 } else { a as f32 / b as f32 };
        v[0] = share(found, distinct);
        v[1] = share(best_count as usize, distinct);
        let pairs: Vec<_> = t.content.windows(2).collect();
        let bigram_found = pairs
            .iter()
            .filter(|p| self.bigrams.contains(&bigram(&p[0], &p[1])))
            .count();
        v[2] = share(bigram_found, pairs.len());
        v[3] = ((distinct - found) as f32).ln_1p();
        let mut unsupported_terms = Vec::new();
        let missing_numbers: Vec<&String> = t
            .numbers
            .iter()
            .filter(|n| !self.numbers.contains(*n))
            .collect();
        if !missing_numbers.is_empty() {
            v[4] = 1.0;
        }
        v[5] = 1.0 - share(t.numbers.len() - missing_numbers.len(), t.numbers.len());
        let missing_entities: Vec<&String> = t
            .entities
            .iter()
            .filter(|e| !self.postings.contains_key(*e))
            .collect();
        if !missing_entities.is_empty() {
            v[6] = 1.0;
        }
        v[7] = 1.0 - share(t.entities.len() - missing_entities.len(), t.entities.len());
        let context_negated = best_sentence
            .and_then(|s| self.negated.get(s as usize).copied())
            .unwrap_or(false);
        v[8] = if best_sentence.is_some() && t.negated != context_negated {
            1.0
        } else {
            0.0
        };
        v[9] = (n_content as f32).ln_1p();
        if let Some(e) = embedding {
            let best = self
                .embeddings
                .iter()
                .map(|c| cosine(e, c))
                .fold(0.0f32, f32::max);
            v[10] = best;
            v[11] = best * v[0];
        }
        for n in missing_numbers {
            if !unsupported_terms.contains(n) {
                unsupported_terms.push(n.clone());
            }
        }
        for e in missing_entities {
            if !unsupported_terms.contains(e) {
                unsupported_terms.push(e.clone());
            }
        }
        SentenceFeatures {
            values: v,
            unsupported_terms,
            content_words: n_content + t.numbers.len(),
        }
    }
}

fn bigram(a: &str, b: &str) -> u64 {
    switchyard_textclass::fnv1a(b'g', &[a.as_bytes(), b.as_bytes()])
}

pub use switchyard_textclass::cosine;

#[cfg(test)]
mod tests {
    use super::*;

    const CONTEXT: &str = "Poseidon (film) . Poseidon grossed $ 181,674,817 at the worldwide \
        box office on a budget of $ 160 million . It was directed by Wolfgang Petersen.";

    #[test]
    fn copied_sentence_is_fully_supported() {
        let cx = Context::new(CONTEXT, None);
        assert_eq!(cx.sentences(), 3);
        let f = cx.features("Poseidon grossed $181,674,817 worldwide.", None);
        assert_eq!(f.values[0], 1.0);
        assert_eq!(f.values[4], 0.0);
        assert!(f.unsupported_terms.is_empty());
    }

    #[test]
    fn unsupported_number_and_name_are_reported() {
        let cx = Context::new(CONTEXT, None);
        let f = cx.features(
            "Poseidon grossed $250 million, said Steven Spielberg.",
            None,
        );
        assert_eq!(f.values[4], 1.0);
        assert_eq!(f.values[6], 1.0);
        assert!(f.unsupported_terms.contains(&"250".to_owned()));
        assert!(f.unsupported_terms.contains(&"spielberg".to_owned()));
    }

    #[test]
    fn negation_mismatch() {
        let cx = Context::new("The bridge was opened in 1932.", None);
        assert_eq!(
            cx.features("The bridge was not opened in 1932.", None)
                .values[8],
            1.0
        );
        assert_eq!(
            cx.features("The bridge was opened in 1932.", None).values[8],
            0.0
        );
    }

    #[test]
    fn embedding_features_use_the_best_sentence() {
        let embed = |s: &str| {
            if s.contains("Petersen") {
                vec![1.0, 0.0]
            } else {
                vec![0.0, 1.0]
            }
        };
        let cx = Context::new(CONTEXT, Some(&embed));
        let f = cx.features("Directed by Petersen.", Some(&[1.0, 0.0]));
        assert!((f.values[10] - 1.0).abs() < 1e-6);
    }
}
