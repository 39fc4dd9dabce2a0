//! The evidence for one answer sentence against a prepared context, as a fixed feature
//! vector (`FEATURE_NAMES`), plus the numbers and names the context never mentions.
//!
//! How a context is prepared ([`Context::new`], then [`Context::with_question`]):
//! 1. It is cut into sentences ([`crate::split::sentences`], code blocks included: an answer
//!    may quote them).
//! 2. Every content-word stem gets the list of sentences it occurs in; adjacent content
//!    stems are kept as bigrams; numbers are kept in canonical form; each sentence notes
//!    whether it is negated.
//! 3. When the caller gives an embedding function, each sentence is embedded once.
//! 4. The question's content stems, numbers and bigrams are kept apart: an answer that
//!    restates the question ("Matt Groening named Milhouse after ...") is not inventing
//!    those words, so they count as support, but they are not evidence either: the recall
//!    of what the answer adds beyond the question is measured on its own.
//!
//! How an answer sentence is measured ([`Context::features`]): the share of its content
//! words found in the context or the question (recall), the share of the words it adds
//! beyond the question that the context holds, the best share of those found in a single
//! context sentence, the share of its content bigrams found, its numbers and names missing
//! from both, a negation present on one side only (against the best-matching context
//! sentence), its length, and the largest cosine between its embedding and a context
//! sentence's.

use std::collections::{HashMap, HashSet};

use crate::split;
use crate::terms::{self, Terms};

/// The features, in the order of [`Context::features`]' output and of an artifact's weights.
/// A change here needs a retrained artifact; loading checks the names, so a stale one fails.
pub const FEATURE_NAMES: &[&str] = &[
    "content_recall",
    "new_content_recall",
    "best_sentence_recall",
    "bigram_recall",
    "ln1p_unsupported_content",
    "unsupported_share",
    "ln1p_unsupported_rarity",
    "unsupported_rarity_max",
    "number_unsupported_any",
    "number_unsupported_share",
    "entity_unsupported_any",
    "entity_unsupported_share",
    "negation_mismatch",
    "anchors_together",
    "ln1p_content",
    "embed_max_cosine",
    "embed_cosine_x_recall",
];

/// How many features.
pub const N_FEATURES: usize = 17;

/// The feature that measures length; kept at weight 0 by training (see `eval/hallucination.md`).
pub const LENGTH_FEATURE: usize = 14;

/// The features that need an embedding; zero when there is none.
pub const EMBEDDING_FEATURES: [usize; 2] = [15, 16];

/// The least weight of a word in the recalls, so the most common words still count a little.
const MIN_WEIGHT: f32 = 0.1;

/// The weight of supported words assumed in every recall before counting (additive
/// smoothing), so a recall over one or two words is not all-or-nothing.
const PRIOR_WEIGHT: f32 = 0.5;

/// The caller's embedding function: text to a vector (any length, the same for every call).
pub type EmbedFn<'a> = &'a dyn Fn(&str) -> Vec<f32>;

/// A context made ready for checking any number of answer sentences against it.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// Content stem → the context sentences that hold it (ascending, no repeats).
    postings: HashMap<String, Vec<u32>>,
    /// Adjacent content stems, hashed (the question's included).
    bigrams: HashSet<u64>,
    numbers: HashSet<String>,
    /// Number → the context sentences that hold it.
    number_postings: HashMap<String, Vec<u32>>,
    negated: Vec<bool>,
    embeddings: Vec<Vec<f32>>,
    /// The question's content stems and numbers ([`Context::with_question`]).
    question: HashSet<String>,
    question_numbers: HashSet<String>,
}

/// One answer sentence measured against a context.
#[derive(Debug, Clone, PartialEq)]
pub struct SentenceFeatures {
    pub values: [f32; N_FEATURES],
    /// Numbers and names of the sentence that neither the context nor the question mentions,
    /// as normalised.
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
            for n in &t.numbers {
                let list = cx.number_postings.entry(n.clone()).or_default();
                if list.last() != Some(&id) {
                    list.push(id);
                }
            }
            cx.numbers.extend(t.numbers);
            cx.negated.push(t.negated);
            if let Some(f) = embed {
                cx.embeddings.push(f(sentence));
            }
        }
        cx
    }

    /// The question the answer replies to (the last user message): its words, numbers and
    /// names count as support but not as evidence. An empty question changes nothing.
    #[must_use]
    pub fn with_question(mut self, question: &str) -> Self {
        let t = terms::terms(question);
        for pair in t.content.windows(2) {
            self.bigrams.insert(bigram(&pair[0], &pair[1]));
        }
        self.question.extend(t.content);
        self.question_numbers.extend(t.numbers);
        self
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
        let WordSupport {
            distinct,
            unsupported,
            total,
            supported,
            new,
            new_found,
            rarity_sum,
            rarity_max,
            per_sentence,
        } = self.word_support(&t);
        let (best_sentence, best_weight) = per_sentence
            .iter()
            .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(a.0)))
            .map_or((None, 0.0), |(&s, &c)| (Some(s), c));
        let share = |a: usize, b: usize| if b == 0 { 1.0 } else { a as f32 / b as f32 };
        // Smoothed towards support: one common word the context lacks is weak evidence, a
        // sentence of rare ones is strong.
        let weighed = |a: f32, b: f32| (a + PRIOR_WEIGHT) / (b + PRIOR_WEIGHT);
        v[0] = weighed(supported, total);
        v[1] = weighed(new_found, new);
        v[2] = weighed(best_weight, new);
        let pairs: Vec<_> = t.content.windows(2).collect();
        let bigram_found = pairs
            .iter()
            .filter(|p| self.bigrams.contains(&bigram(&p[0], &p[1])))
            .count();
        v[3] = share(bigram_found, pairs.len());
        v[4] = (unsupported as f32).ln_1p();
        v[5] = share(unsupported, distinct);
        v[6] = rarity_sum.ln_1p();
        v[7] = rarity_max;
        let mut unsupported_terms = Vec::new();
        let missing_numbers: Vec<&String> = t
            .numbers
            .iter()
            .filter(|n| !self.numbers.contains(*n) && !self.question_numbers.contains(*n))
            .collect();
        if !missing_numbers.is_empty() {
            v[8] = 1.0;
        }
        v[9] = 1.0 - share(t.numbers.len() - missing_numbers.len(), t.numbers.len());
        let missing_entities: Vec<&String> = t
            .entities
            .iter()
            .filter(|e| !self.postings.contains_key(*e) && !self.question.contains(*e))
            .collect();
        if !missing_entities.is_empty() {
            v[10] = 1.0;
        }
        v[11] = 1.0 - share(t.entities.len() - missing_entities.len(), t.entities.len());
        let context_negated = best_sentence
            .and_then(|s| self.negated.get(s as usize).copied())
            .unwrap_or(false);
        v[12] = if best_sentence.is_some() && t.negated != context_negated {
            1.0
        } else {
            0.0
        };
        v[13] = self.anchors_together(&t);
        v[LENGTH_FEATURE] = (n_content as f32).ln_1p();
        if let Some(e) = embedding {
            let best = self
                .embeddings
                .iter()
                .map(|c| cosine(e, c))
                .fold(0.0f32, f32::max);
            v[15] = best;
            v[16] = best * v[1];
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

/// The support of an answer sentence's distinct content words.
#[derive(Default)]
struct WordSupport {
    distinct: usize,
    unsupported: usize,
    /// Their rarity weight; the weight held by the context or the question.
    total: f32,
    supported: f32,
    /// The weight of the words the answer adds beyond the question; of these, the context's.
    new: f32,
    new_found: f32,
    /// How rare the unsupported words are: their sum and the largest.
    rarity_sum: f32,
    rarity_max: f32,
    /// The weight of the new words each context sentence holds.
    per_sentence: HashMap<u32, f32>,
}

impl Context {
    /// How the answer sentence's distinct content words are supported. Recalls weigh each
    /// distinct word by its rarity (`terms::rarity`, floored): a rare word the context lacks
    /// says more than a common one.
    fn word_support(&self, t: &Terms) -> WordSupport {
        let mut out = WordSupport::default();
        let mut seen: HashSet<&str> = HashSet::new();
        for (w, lower) in t.content.iter().zip(&t.surface) {
            if !seen.insert(w.as_str()) {
                continue;
            }
            out.distinct += 1;
            let r = terms::rarity(lower).min(terms::rarity(w));
            let weight = r.max(MIN_WEIGHT);
            out.total += weight;
            let in_question = self.question.contains(w);
            let posting = self.postings.get(w);
            if posting.is_some() || in_question {
                out.supported += weight;
            } else {
                out.unsupported += 1;
                out.rarity_sum += r;
                out.rarity_max = out.rarity_max.max(r);
            }
            if in_question {
                continue;
            }
            out.new += weight;
            if let Some(list) = posting {
                out.new_found += weight;
                for &s in list {
                    *out.per_sentence.entry(s).or_default() += weight;
                }
            }
        }
        out
    }

    /// The largest share of the sentence's names and numbers that one context sentence holds
    /// (1 with fewer than two): facts from different sentences recombined ("X won the prize
    /// in 1943" where 1943 belongs to another event) hold their anchors apart.
    fn anchors_together(&self, t: &Terms) -> f32 {
        let anchors: Vec<&Vec<u32>> = t
            .entities
            .iter()
            .filter_map(|e| self.postings.get(e))
            .chain(t.numbers.iter().filter_map(|n| self.number_postings.get(n)))
            .collect();
        if anchors.len() < 2 {
            return 1.0;
        }
        let mut count: HashMap<u32, usize> = HashMap::new();
        for list in &anchors {
            for &s in *list {
                *count.entry(s).or_default() += 1;
            }
        }
        let best = count.values().copied().max().unwrap_or(0);
        best as f32 / anchors.len() as f32
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
        assert_eq!(f.values[8], 0.0);
        assert!(f.unsupported_terms.is_empty());
    }

    #[test]
    fn unsupported_number_and_name_are_reported() {
        let cx = Context::new(CONTEXT, None);
        let f = cx.features(
            "Poseidon grossed $250 million, said Steven Spielberg.",
            None,
        );
        assert_eq!(f.values[8], 1.0);
        assert_eq!(f.values[10], 1.0);
        assert!(f.unsupported_terms.contains(&"250".to_owned()));
        assert!(f.unsupported_terms.contains(&"spielberg".to_owned()));
    }

    #[test]
    fn negation_mismatch() {
        let cx = Context::new("The bridge was opened in 1932.", None);
        assert_eq!(
            cx.features("The bridge was not opened in 1932.", None)
                .values[12],
            1.0
        );
        assert_eq!(
            cx.features("The bridge was opened in 1932.", None).values[12],
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
        assert!((f.values[15] - 1.0).abs() < 1e-6);
    }
}
