//! Grounding: is an answer supported by the context it was given? The scoring behind the
//! output guard "hallucination against given context" (issue 4).
//!
//! Owns sentence splitting of answers and contexts (`split`), the normalised words, numbers
//! and names compared between them (`terms`), the per-sentence evidence (`support`: content
//! word recall, numbers and names missing from the context, negation flips, and the best
//! embedding cosine against a context sentence), and a small logistic model over that
//! evidence read from a versioned JSON artifact (`eval/artifacts/grounding.v1.json`,
//! trained on HaluEval QA only; see `eval/hallucination.md`).
//!
//! Pure: no clocks, no network, no model of its own. Embeddings come from a function the
//! caller passes (the gateway passes the static model's); the only I/O is
//! [`Grounding::load`] reading the artifact path the caller gives. It must not know HTTP,
//! OpenAI types or config files, find the context inside a request (the gateway does), or
//! decide what a guard does with a verdict (flag, retry, block).
//!
//! ```
//! use switchyard_grounding::Grounding;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let g = Grounding::embedded()?;
//! let context = "The Golden Gate Bridge opened in 1937. It spans 1,280 metres.";
//! let verdict = g.check_lexical(context, "When did it open?", "The bridge opened in 1952.");
//! assert!(!verdict.supported);
//! assert_eq!(verdict.sentences[0].unsupported_terms, ["1952"]);
//! # Ok(())
//! # }
//! ```

pub mod split;
pub mod support;
pub mod terms;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use serde::{Deserialize, Serialize};
use switchyard_textclass::{sigmoid, ArtifactError, TrainingData};

pub use split::{segments, sentences, Kind, Segment};
pub use support::{
    cosine, Context, EmbedFn, SentenceFeatures, EMBEDDING_FEATURES, FEATURE_NAMES, LENGTH_FEATURE,
    N_FEATURES,
};

/// The artifact built into the binary: `eval/artifacts/grounding.v1.json`.
pub const EMBEDDED_ARTIFACT: &str = include_str!("../../../eval/artifacts/grounding.v1.json");
/// The artifact's `format`.
pub const FORMAT: &str = "switchyard-grounding";
/// The artifact layout this code reads.
pub const FORMAT_VERSION: u32 = 1;

/// The head used without embeddings.
pub const LEXICAL: &str = "lexical";
/// The head for the static 256-dimensional model (`switchyard_embed::StaticEmbedder`).
pub const STATIC: &str = "static";
/// The head for MiniLM (384 dimensions), when the artifact has one.
pub const MINILM: &str = "minilm";

/// One logistic head: `P(unsupported) = sigmoid(w · features + bias)` per sentence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Head {
    pub weights: Vec<f32>,
    pub bias: f32,
    /// An answer is supported when its score (the least-supported sentence's support)
    /// reaches this. Chosen on the tune split.
    pub threshold: f32,
}

/// The artifact: heads by name, over [`FEATURE_NAMES`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroundingArtifact {
    pub format: String,
    pub format_version: u32,
    pub training: TrainingData,
    pub feature_names: Vec<String>,
    pub heads: BTreeMap<String, Head>,
    /// How the heads and thresholds were chosen.
    pub notes: String,
}

#[derive(Debug, thiserror::Error)]
pub enum GroundingError {
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    #[error("grounding artifact: {0}")]
    Invalid(String),
}

/// How well one answer sentence is supported.
#[derive(Debug, Clone, PartialEq)]
pub struct SentenceSupport {
    /// Byte range of the sentence in the answer.
    pub range: Range<usize>,
    /// Probability-like support in `[0, 1]`; 1 for a sentence with nothing to check (no
    /// content words, or a code block).
    pub support: f32,
    /// Numbers and names (normalised: lower case, stemmed) that the context never mentions.
    pub unsupported_terms: Vec<String>,
}

/// The answer-level verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct GroundingVerdict {
    /// The least-supported sentence's support (1 when nothing was checked).
    pub score: f32,
    /// `score >= threshold`.
    pub supported: bool,
    pub threshold: f32,
    /// Which head scored it ([`LEXICAL`], [`STATIC`], [`MINILM`]).
    pub head: &'static str,
    pub sentences: Vec<SentenceSupport>,
}

impl GroundingVerdict {
    /// The sentences below the threshold, weakest first.
    pub fn unsupported(&self) -> Vec<&SentenceSupport> {
        let mut v: Vec<&SentenceSupport> = self
            .sentences
            .iter()
            .filter(|s| s.support < self.threshold)
            .collect();
        v.sort_by(|a, b| a.support.total_cmp(&b.support));
        v
    }
}

/// The scorer: the artifact's heads and the threshold in use.
#[derive(Debug, Clone)]
pub struct Grounding {
    lexical: Head,
    embedding_head: Option<(&'static str, Head)>,
    /// Every embedding head of the artifact, for [`Grounding::with_embedding_head`].
    others: BTreeMap<&'static str, Head>,
    threshold: Option<f32>,
}

impl Grounding {
    /// Load an artifact from a path the caller gives.
    pub fn load(path: &Path) -> Result<Self, GroundingError> {
        let a: GroundingArtifact = switchyard_textclass::load_json(path, FORMAT, FORMAT_VERSION)?;
        Self::from_artifact(&a)
    }

    /// The artifact built into the binary.
    pub fn embedded() -> Result<Self, GroundingError> {
        Self::from_json(EMBEDDED_ARTIFACT)
    }

    pub fn from_json(text: &str) -> Result<Self, GroundingError> {
        let a: GroundingArtifact =
            serde_json::from_str(text).map_err(|e| GroundingError::Invalid(e.to_string()))?;
        if a.format != FORMAT || a.format_version != FORMAT_VERSION {
            return Err(GroundingError::Invalid(format!(
                "format {:?} version {}, this build reads {FORMAT:?} version {FORMAT_VERSION}",
                a.format, a.format_version
            )));
        }
        Self::from_artifact(&a)
    }

    /// Check the features and heads; the embedding head defaults to [`STATIC`] when present.
    pub fn from_artifact(a: &GroundingArtifact) -> Result<Self, GroundingError> {
        if a.feature_names != FEATURE_NAMES {
            return Err(GroundingError::Invalid(format!(
                "features {:?} differ from this build's {:?}",
                a.feature_names, FEATURE_NAMES
            )));
        }
        for (name, h) in &a.heads {
            if h.weights.len() != N_FEATURES || !h.threshold.is_finite() || !h.bias.is_finite() {
                return Err(GroundingError::Invalid(format!(
                    "head {name:?}: {} weights (want {N_FEATURES}) or a non-finite value",
                    h.weights.len()
                )));
            }
        }
        let lexical = a
            .heads
            .get(LEXICAL)
            .cloned()
            .ok_or_else(|| GroundingError::Invalid("no \"lexical\" head".to_owned()))?;
        let others: BTreeMap<&'static str, Head> = [STATIC, MINILM]
            .into_iter()
            .filter_map(|n| a.heads.get(n).map(|h| (n, h.clone())))
            .collect();
        let embedding_head = others.get(STATIC).map(|h| (STATIC, h.clone()));
        Ok(Self {
            lexical,
            embedding_head,
            others,
            threshold: None,
        })
    }

    /// The embedding heads the artifact has ([`STATIC`], [`MINILM`]).
    pub fn embedding_heads(&self) -> Vec<&'static str> {
        self.others.keys().copied().collect()
    }

    /// Use another embedding head of the artifact ([`STATIC`] or [`MINILM`]); the function
    /// passed to [`Grounding::check`] must then be that model's.
    pub fn with_embedding_head(self, name: &str) -> Result<Self, GroundingError> {
        let (name, head) = self
            .others
            .iter()
            .find(|(n, _)| **n == name)
            .map(|(n, h)| (*n, h.clone()))
            .ok_or_else(|| GroundingError::Invalid(format!("no {name:?} head")))?;
        Ok(Self {
            embedding_head: Some((name, head)),
            ..self
        })
    }

    /// Override the artifact's threshold (for every head).
    pub fn with_threshold(self, threshold: f32) -> Self {
        Self {
            threshold: Some(threshold),
            ..self
        }
    }

    /// The threshold of the head [`Grounding::check`] uses.
    pub fn threshold(&self) -> f32 {
        self.threshold.unwrap_or_else(|| {
            self.embedding_head
                .as_ref()
                .map_or(self.lexical.threshold, |(_, h)| h.threshold)
        })
    }

    /// The threshold of the lexical head.
    pub fn lexical_threshold(&self) -> f32 {
        self.threshold.unwrap_or(self.lexical.threshold)
    }

    /// Score `answer` to `question` against `context`, with embeddings from `embed` (called
    /// once per context sentence and once per answer sentence). The question's words count as
    /// support (pass `""` when there is none). Without an embedding head in the artifact this
    /// is [`Grounding::check_lexical`].
    pub fn check(
        &self,
        context: &str,
        question: &str,
        answer: &str,
        embed: &dyn Fn(&str) -> Vec<f32>,
    ) -> GroundingVerdict {
        if self.embedding_head.is_none() {
            return self.check_lexical(context, question, answer);
        }
        let cx = Context::new(context, Some(embed)).with_question(question);
        self.check_prepared(&cx, answer, Some(embed))
    }

    /// Score without embeddings (the lexical head).
    pub fn check_lexical(&self, context: &str, question: &str, answer: &str) -> GroundingVerdict {
        let cx = Context::new(context, None).with_question(question);
        self.check_prepared(&cx, answer, None)
    }

    /// Score against a context prepared once ([`Context::new`]), e.g. for several answers or
    /// a stream checked as it grows. Pass the same `embed` the context was prepared with, or
    /// `None` for both.
    pub fn check_prepared(
        &self,
        cx: &Context,
        answer: &str,
        embed: Option<EmbedFn<'_>>,
    ) -> GroundingVerdict {
        let (head_name, head, threshold) = self.head(cx, embed.is_some());
        let mut sentences = Vec::new();
        for seg in split::sentences(answer) {
            let text = &answer[seg.range.clone()];
            let s = match seg.kind {
                Kind::Code => SentenceSupport {
                    range: seg.range,
                    support: 1.0,
                    unsupported_terms: Vec::new(),
                },
                Kind::Text => {
                    let e = match (embed, head_name) {
                        (Some(f), n) if n != LEXICAL => Some(f(text)),
                        _ => None,
                    };
                    let f = cx.features(text, e.as_deref());
                    SentenceSupport {
                        range: seg.range,
                        support: support_of(head, &f),
                        unsupported_terms: f.unsupported_terms,
                    }
                }
            };
            sentences.push(s);
        }
        let score = sentences.iter().map(|s| s.support).fold(1.0f32, f32::min);
        GroundingVerdict {
            score,
            supported: score >= threshold,
            threshold,
            head: head_name,
            sentences,
        }
    }

    /// The support of one sentence's features under the head [`Grounding::check_prepared`]
    /// would use (for training and evaluation code that has the features already).
    pub fn support(&self, f: &SentenceFeatures, embedded: bool) -> f32 {
        let head = match (&self.embedding_head, embedded) {
            (Some((_, h)), true) => h,
            _ => &self.lexical,
        };
        support_of(head, f)
    }

    fn head(&self, cx: &Context, embedded: bool) -> (&'static str, &Head, f32) {
        match &self.embedding_head {
            Some((name, h)) if embedded && cx.has_embeddings() => {
                (name, h, self.threshold.unwrap_or(h.threshold))
            }
            _ => (
                LEXICAL,
                &self.lexical,
                self.threshold.unwrap_or(self.lexical.threshold),
            ),
        }
    }
}

/// `1 - P(unsupported)`; 1 when the sentence has nothing to check.
fn support_of(head: &Head, f: &SentenceFeatures) -> f32 {
    if f.content_words == 0 {
        return 1.0;
    }
    let z: f32 = head
        .weights
        .iter()
        .zip(f.values.iter())
        .map(|(w, x)| w * x)
        .sum::<f32>()
        + head.bias;
    1.0 - sigmoid(z)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTEXT: &str = "The Golden Gate Bridge is a suspension bridge spanning the Golden \
        Gate strait. It opened in 1937 and was designed by Joseph Strauss. Its main span is \
        1,280 metres long, and it was the longest suspension bridge in the world until 1964.";

    fn g() -> Grounding {
        match Grounding::embedded() {
            Ok(g) => g,
            Err(e) => unreachable!("embedded artifact: {e}"),
        }
    }

    #[test]
    fn embedded_artifact_loads_with_both_heads() {
        let g = g();
        assert!(g.embedding_head.is_some());
        assert!(g.threshold() > 0.0 && g.threshold() < 1.0);
    }

    #[test]
    fn unsupported_number_is_detected() {
        let v = g().check_lexical(CONTEXT, "", "The bridge opened in 1952.");
        assert!(!v.supported, "{v:?}");
        assert_eq!(v.sentences[0].unsupported_terms, ["1952"]);
    }

    #[test]
    fn right_answers_written_as_sentences_pass() {
        let g = g();
        let question = "Who designed the Golden Gate Bridge?";
        for answer in [
            "Joseph Strauss",
            "The answer is Joseph Strauss.",
            "Based on the context, it was Joseph Strauss.",
            "Joseph Strauss is the answer to that.",
            "The Golden Gate Bridge was designed by Joseph Strauss.",
            "I think it was Joseph Strauss.",
        ] {
            let v = g.check_lexical(CONTEXT, question, answer);
            assert!(v.supported, "{answer:?}: {v:?}");
        }
    }

    #[test]
    fn a_fabricated_name_or_number_is_flagged() {
        let g = g();
        let question = "Who designed the Golden Gate Bridge?";
        for answer in [
            "The answer is Frank Lloyd Wright.",
            "The Golden Gate Bridge was designed by Joseph Strauss in 1911.",
            "Based on the context, it was designed by Gustave Eiffel.",
        ] {
            let v = g.check_lexical(CONTEXT, question, answer);
            assert!(!v.supported, "{answer:?}: {v:?}");
        }
        let v = g.check_lexical(CONTEXT, question, "The answer is Frank Lloyd Wright.");
        assert!(v.sentences[0]
            .unsupported_terms
            .contains(&"wright".to_owned()));
    }

    #[test]
    fn question_words_do_not_count_against_an_answer() {
        let g = g();
        // "Marin" and "1933" are only in the question.
        let question = "Which Marin County bridge, begun in 1933, did Joseph Strauss design?";
        let answer = "The Marin County bridge Joseph Strauss designed, begun in 1933, is the \
                      Golden Gate Bridge.";
        let with = g.check_lexical(CONTEXT, question, answer);
        let without = g.check_lexical(CONTEXT, "", answer);
        assert!(with.supported, "{with:?}");
        assert!(with.score > without.score);
        assert!(with.sentences[0].unsupported_terms.is_empty());
        assert!(without.sentences[0]
            .unsupported_terms
            .contains(&"1933".to_owned()));
    }

    #[test]
    fn paraphrase_is_supported() {
        // At the artifact's threshold (the gateway's default).
        let v = g().check_lexical(
            CONTEXT,
            "",
            "Designed by Joseph Strauss, the Golden Gate Bridge opened in 1937. Its main span \
             is 1,280 metres.",
        );
        assert!(v.supported, "{v:?}");
        assert_eq!(v.sentences.len(), 2);
    }

    #[test]
    fn invented_name_lowers_support() {
        let g = g();
        let good = g.check_lexical(CONTEXT, "", "It was designed by Joseph Strauss.");
        let bad = g.check_lexical(CONTEXT, "", "It was designed by Frank Lloyd Wright.");
        assert!(bad.score < good.score);
        assert!(!bad.supported);
    }

    #[test]
    fn weakest_sentence_decides() {
        let v = g().check_lexical(
            CONTEXT,
            "",
            "The bridge opened in 1937. It cost 900 million dollars and was painted by Monet.",
        );
        assert!(v.sentences[0].support > v.sentences[1].support);
        assert_eq!(v.score, v.sentences[1].support);
        assert_eq!(v.unsupported().is_empty(), v.supported);
    }

    #[test]
    fn embedding_head_is_used_with_a_function() {
        let embed = |s: &str| vec![s.len() as f32, 1.0];
        let v = g().check(CONTEXT, "", "It opened in 1937.", &embed);
        assert_eq!(v.head, STATIC);
        let empty = g().check(CONTEXT, "", "", &embed);
        assert_eq!(empty.score, 1.0);
        assert!(empty.supported);
    }

    #[test]
    fn stale_artifact_is_refused() {
        let mut a: GroundingArtifact = match serde_json::from_str(EMBEDDED_ARTIFACT) {
            Ok(a) => a,
            Err(e) => unreachable!("{e}"),
        };
        a.feature_names.pop();
        assert!(Grounding::from_artifact(&a).is_err());
    }
}
