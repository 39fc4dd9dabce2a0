//! The pair check: a second, stronger look at the one semantic candidate the static-model
//! search found, before it is served (`eval/cache.md`, "Shared scope").
//!
//! The static model's pooled vector, like any pooled sentence vector, averages the one word
//! that makes two questions different ("learn Python" / "learn Java") into the twenty they
//! share, and it has no notion of order ("is A faster than B" / "is B faster than A"). This
//! check compares the two questions token by token instead, with MiniLM's contextual token
//! vectors (before mean pooling), BERTScore-style:
//!
//! 1. every token of one side is matched to its most similar token of the other side (cosine
//!    of the contextual vectors), each way; a token's weight is its IDF over the questions the
//!    artifact was trained on, so "the", "how" and "?" count for little and names for a lot;
//! 2. from the matches: weighted precision, recall and F1, the worst-matched content token of
//!    each side, the weight of content tokens left without a good match, and how much the
//!    order of mutually matched content tokens crosses (swapped subjects, reversed
//!    conversions show as crossings);
//! 3. the guard's signals (`guard::signals`: negation, opposites, numbers, entities) join as
//!    features, and the hard ones (a negation, an opposite or a number changed) refuse outright;
//! 4. a logistic regression over these features, trained on the dev pairs
//!    (`examples/eval/align_mode.rs`), gives the probability that the two questions ask the
//!    same thing; the candidate is served when it reaches the artifact's threshold.
//!
//! Pure: the caller computes the token vectors (the gateway with `switchyard-embed`'s
//! `MiniLm::tokens`) and passes them in; the model comes from a JSON artifact
//! (`eval/artifacts/cache-pair-check.v1.json`, built into the binary by `switchyard-control`
//! as `builtin:cache-pair-check.v1`).

use std::collections::HashMap;
use std::path::Path;

use serde_json::{json, Value};

use crate::guard::{self, Features};

/// The artifact's `format`.
pub const FORMAT: &str = "switchyard-cache-pair-check";
/// The artifact's `version`: bump when a feature changes meaning.
pub const FORMAT_VERSION: u64 = 1;

/// The features, in the order of the model's weights.
pub const FEATURE_NAMES: &[&str] = &[
    "static_cos",
    "minilm_cos",
    "align_f1",
    "align_min_pr",
    "worst_content_match",
    "worst_content_match_other",
    "unmatched_content_weight",
    "unmatched_content_weight_other",
    "exact_content_share",
    "order_crossing",
    "order_crossing_any",
    "length_ratio",
    "guard_numbers_one_side",
    "guard_entities_swapped",
    "guard_entities_added",
    "guard_polarity_one_side",
];
pub const N_FEATURES: usize = 16;

/// A token's vector counts as matched at or above this cosine (contextual MiniLM vectors of
/// the same word in similar sentences sit at 0.8-0.95; different content words below 0.6).
pub const MATCHED: f32 = 0.7;
/// Tokens with at least this IDF are content tokens (the function words and punctuation of
/// questions sit below it).
pub const CONTENT_IDF: f32 = 4.0;

/// One side of a pair: its question and MiniLM's contextual token vectors of it.
#[derive(Debug, Clone, Copy)]
pub struct Side<'a> {
    /// The question's text (`Prepared::question`), for the guard's signals.
    pub text: &'a str,
    /// WordPiece ids, without `[CLS]` and `[SEP]`.
    pub ids: &'a [u32],
    /// One unit-length vector per id.
    pub tokens: &'a [Vec<f32>],
    /// The unit-length sentence vector.
    pub pooled: &'a [f32],
}

/// Why the pair check refused a candidate.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// A hard guard signal: negation, opposite words, or a changed number.
    Guard(&'static str),
    /// The model's probability is below the threshold.
    Probability { probability: f32, threshold: f32 },
}

impl Refusal {
    /// A fixed label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::Guard(kind) => kind,
            Refusal::Probability { .. } => "pair_check",
        }
    }
}

/// Why an artifact could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PairCheckError {
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("the pair-check artifact is not valid: {0}")]
    Invalid(String),
}

/// The trained check: IDF table, standardisation, weights and threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct PairCheck {
    /// IDF per WordPiece id; ids not listed get `default_idf` (rare in training: high).
    pub idf: HashMap<u32, f32>,
    pub default_idf: f32,
    pub mean: Vec<f32>,
    pub scale: Vec<f32>,
    pub weights: Vec<f32>,
    pub bias: f32,
    /// Serve at or above this probability.
    pub threshold: f32,
    /// The static-model similarity a candidate needs before this check runs at all.
    pub candidate_threshold: f32,
}

impl PairCheck {
    /// A check with `idf` and no model yet (every weight zero): what training starts from.
    pub fn untrained(idf: HashMap<u32, f32>, default_idf: f32) -> PairCheck {
        PairCheck {
            idf,
            default_idf,
            mean: vec![0.0; N_FEATURES],
            scale: vec![1.0; N_FEATURES],
            weights: vec![0.0; N_FEATURES],
            bias: 0.0,
            threshold: 0.5,
            candidate_threshold: 0.0,
        }
    }

    pub fn load(path: impl AsRef<Path>) -> Result<PairCheck, PairCheckError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| PairCheckError::Io {
            path: path.display().to_string(),
            source,
        })?;
        PairCheck::from_json(&text)
    }

    pub fn from_json(text: &str) -> Result<PairCheck, PairCheckError> {
        let bad = |m: &str| PairCheckError::Invalid(m.to_owned());
        let v: Value = serde_json::from_str(text).map_err(|e| bad(&e.to_string()))?;
        if v.get("format").and_then(Value::as_str) != Some(FORMAT) {
            return Err(bad("format is not switchyard-cache-pair-check"));
        }
        if v.get("version").and_then(Value::as_u64) != Some(FORMAT_VERSION) {
            return Err(bad("unsupported version"));
        }
        let names: Vec<&str> = v
            .get("features")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if names != FEATURE_NAMES {
            return Err(bad("features differ from this build's"));
        }
        let list = |k: &str| -> Result<Vec<f32>, PairCheckError> {
            let out: Vec<f32> = v
                .get(k)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_f64)
                        .map(|x| x as f32)
                        .collect()
                })
                .unwrap_or_default();
            if out.len() == N_FEATURES && out.iter().all(|x| x.is_finite()) {
                Ok(out)
            } else {
                Err(PairCheckError::Invalid(format!(
                    "{k} must hold {N_FEATURES} numbers"
                )))
            }
        };
        let num = |k: &str| -> Result<f32, PairCheckError> {
            v.get(k)
                .and_then(Value::as_f64)
                .map(|x| x as f32)
                .filter(|x| x.is_finite())
                .ok_or_else(|| PairCheckError::Invalid(format!("{k} missing")))
        };
        let scale = list("scale")?;
        if scale.iter().any(|s| *s <= 0.0) {
            return Err(bad("scale must be > 0"));
        }
        let mut idf = HashMap::new();
        if let Some(o) = v.get("idf").and_then(Value::as_object) {
            for (k, x) in o {
                let id: u32 = k.parse().map_err(|_| bad("idf keys must be token ids"))?;
                let x = x
                    .as_f64()
                    .ok_or_else(|| bad("idf values must be numbers"))?;
                idf.insert(id, x as f32);
            }
        }
        let threshold = num("threshold")?;
        if !(0.0..=1.0).contains(&threshold) {
            return Err(bad("threshold must be within 0..=1"));
        }
        Ok(PairCheck {
            idf,
            default_idf: num("default_idf")?,
            mean: list("mean")?,
            scale,
            weights: list("weights")?,
            bias: num("bias")?,
            threshold,
            candidate_threshold: num("candidate_threshold")?,
        })
    }

    /// The artifact; `meta` says what trained it.
    pub fn to_json(&self, meta: Value) -> Value {
        let mut idf: Vec<(&u32, &f32)> = self.idf.iter().collect();
        idf.sort_by_key(|(k, _)| **k);
        let idf: serde_json::Map<String, Value> = idf
            .into_iter()
            .map(|(k, x)| (k.to_string(), json!(round(*x))))
            .collect();
        let r = |v: &[f32]| v.iter().map(|x| round(*x)).collect::<Vec<f64>>();
        json!({
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "meta": meta,
            "features": FEATURE_NAMES,
            "threshold": round(self.threshold),
            "candidate_threshold": round(self.candidate_threshold),
            "mean": r(&self.mean),
            "scale": r(&self.scale),
            "weights": r(&self.weights),
            "bias": round(self.bias),
            "default_idf": round(self.default_idf),
            "idf": idf,
        })
    }

    fn idf_of(&self, id: u32) -> f32 {
        self.idf.get(&id).copied().unwrap_or(self.default_idf)
    }

    /// The features of a pair: `query` against `cached`, whose static-model similarity is
    /// `static_cos`.
    pub fn features(&self, query: Side, cached: Side, static_cos: f32) -> [f32; N_FEATURES] {
        let wq: Vec<f32> = query.ids.iter().map(|i| self.idf_of(*i)).collect();
        let wc: Vec<f32> = cached.ids.iter().map(|i| self.idf_of(*i)).collect();
        let sim: Vec<Vec<f32>> = query
            .tokens
            .iter()
            .map(|a| {
                cached
                    .tokens
                    .iter()
                    .map(|b| crate::index::dot(a, b))
                    .collect()
            })
            .collect();
        let q_best: Vec<(usize, f32)> = sim.iter().map(|row| best(row.iter().copied())).collect();
        let c_best: Vec<(usize, f32)> = (0..cached.tokens.len())
            .map(|j| best(sim.iter().map(|row| row[j])))
            .collect();
        let q = side_scores(&wq, &q_best, query.ids, cached.ids);
        let c = side_scores(&wc, &c_best, cached.ids, query.ids);
        let f1 = if q.weighted + c.weighted > 0.0 {
            2.0 * q.weighted * c.weighted / (q.weighted + c.weighted)
        } else {
            0.0
        };
        // Order: mutually best-matched content tokens, in the query's order; the share of
        // their pairs whose order the cached question reverses.
        let mut aligned: Vec<usize> = Vec::new();
        for (i, (j, s)) in q_best.iter().enumerate() {
            if *s >= MATCHED && wq[i] >= CONTENT_IDF && c_best.get(*j).is_some_and(|b| b.0 == i) {
                aligned.push(*j);
            }
        }
        let (mut crossed, mut pairs) = (0usize, 0usize);
        for a in 0..aligned.len() {
            for b in a + 1..aligned.len() {
                pairs += 1;
                crossed += usize::from(aligned[a] > aligned[b]);
            }
        }
        let crossing = if pairs == 0 {
            0.0
        } else {
            crossed as f32 / pairs as f32
        };
        let s = guard::signals(&Features::of(query.text), &Features::of(cached.text));
        let (lq, lc) = (
            query.ids.len().max(1) as f32,
            cached.ids.len().max(1) as f32,
        );
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        [
            static_cos,
            crate::index::dot(query.pooled, cached.pooled),
            f1,
            q.weighted.min(c.weighted),
            q.worst.min(c.worst),
            q.worst.max(c.worst),
            q.unmatched.max(c.unmatched),
            q.unmatched.min(c.unmatched),
            q.exact.min(c.exact),
            crossing,
            flag(crossed > 0),
            lq.min(lc) / lq.max(lc),
            flag(s.numbers_one_side),
            flag(s.entities_swapped),
            flag(s.entities_added),
            flag(s.polarity_one_side),
        ]
    }

    /// The model's probability for features `x`.
    pub fn probability(&self, x: &[f32; N_FEATURES]) -> f32 {
        let mut z = self.bias;
        for (((x, w), m), s) in x.iter().zip(&self.weights).zip(&self.mean).zip(&self.scale) {
            z += w * (x - m) / s;
        }
        1.0 / (1.0 + (-z).exp())
    }

    /// Whether `cached` may be served for `query`: the hard guard signals, then the model.
    /// Returns the probability when served.
    pub fn check(&self, query: Side, cached: Side, static_cos: f32) -> Result<f32, Refusal> {
        self.check_at(query, cached, static_cos, self.threshold)
    }

    /// [`PairCheck::check`] with another probability threshold (a scope tightened by
    /// feedback).
    pub fn check_at(
        &self,
        query: Side,
        cached: Side,
        static_cos: f32,
        threshold: f32,
    ) -> Result<f32, Refusal> {
        if let Some(kind) = hard_refusal(query.text, cached.text) {
            return Err(Refusal::Guard(kind));
        }
        let p = self.probability(&self.features(query, cached, static_cos));
        if p >= threshold {
            Ok(p)
        } else {
            Err(Refusal::Probability {
                probability: p,
                threshold,
            })
        }
    }
}

/// The guard's signals that refuse whatever the model says: one side negated, opposite words
/// on the two sides, a number changed, or a negated pole on one side only; and roles swapped
/// around a relation word ([`roles_swapped`]).
pub fn hard_refusal(query: &str, cached: &str) -> Option<&'static str> {
    if roles_swapped(query, cached) {
        return Some("roles");
    }
    let s = guard::signals(&Features::of(query), &Features::of(cached));
    if s.negation {
        Some("negation")
    } else if s.polarity || s.negated_one_side {
        Some("polarity")
    } else if s.numbers_changed {
        Some("numbers")
    } else {
        None
    }
}

/// Words that give what stands before them and what stands after them different roles:
/// "A is faster *than* B", "convert X *to* Y", "move *from* X", "prefer X *over* Y".
const RELATIONS: &[&str] = &[
    "than", "to", "into", "from", "over", "onto", "toward", "towards",
];

/// Words that name no thing, so moving them across a relation changes no role.
const FUNCTION_WORDS: &[&str] = &[
    "a", "an", "the", "i", "you", "we", "they", "he", "she", "it", "me", "my", "your", "our",
    "their", "is", "are", "was", "were", "be", "been", "do", "does", "did", "can", "could",
    "should", "would", "will", "shall", "may", "might", "must", "have", "has", "had", "what",
    "which", "who", "whom", "how", "why", "when", "where", "of", "in", "on", "at", "by", "for",
    "with", "and", "or", "but", "if", "so", "as", "this", "that", "these", "those", "there",
    "some", "any", "more", "most", "less", "much", "many", "very", "get", "way", "best", "good",
    "better", "ways", "not", "no",
];

/// Whether the two questions name the same things on opposite sides of a relation word:
/// something only before it in one question is only after it in the other, and something
/// only after it is only before it ("is A faster than B" / "is B faster than A", "convert X
/// to Y" / "convert Y to X"). A relation word said several times is compared occurrence by
/// occurrence when both sides say it as often. Symmetric; never true of a text and itself.
pub fn roles_swapped(query: &str, cached: &str) -> bool {
    use std::collections::BTreeSet;
    let (q, c) = (relation_words(query), relation_words(cached));
    let content =
        |w: &&String| !FUNCTION_WORDS.contains(&w.as_str()) && !RELATIONS.contains(&w.as_str());
    let side = |ws: &[String]| {
        ws.iter()
            .filter(content)
            .cloned()
            .collect::<BTreeSet<String>>()
    };
    let at = |ws: &[String], r: &str| -> Vec<usize> {
        ws.iter()
            .enumerate()
            .filter(|(_, w)| *w == r)
            .map(|(i, _)| i)
            .collect()
    };
    RELATIONS.iter().any(|r| {
        let (pq, pc) = (at(&q, r), at(&c, r));
        pq.len() == pc.len()
            && pq.iter().zip(&pc).any(|(&iq, &ic)| {
                let (lq, rq) = (side(&q[..iq]), side(&q[iq + 1..]));
                let (lc, rc) = (side(&c[..ic]), side(&c[ic + 1..]));
                let only = |a: &BTreeSet<String>, b: &BTreeSet<String>| -> BTreeSet<String> {
                    a.difference(b).cloned().collect()
                };
                let crossed =
                    |a: &BTreeSet<String>, b: &BTreeSet<String>| a.intersection(b).next().is_some();
                crossed(&only(&lq, &rq), &only(&rc, &lc))
                    && crossed(&only(&rq, &lq), &only(&lc, &rc))
            })
    })
}

/// Lower-cased words, split at anything but letters, digits and `'`; a possessive `'s` and
/// a plural `s` of a longer word dropped, so "Asians" and "Asian's" compare as "asian".
fn relation_words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .map(|w| {
            let w = w.to_lowercase();
            let w = w.strip_suffix("'s").unwrap_or(&w).trim_matches('\'');
            match w.strip_suffix('s') {
                Some(stem) if stem.chars().count() >= 3 && !stem.ends_with('s') => stem.to_owned(),
                _ => w.to_owned(),
            }
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// The best (index, similarity) of a row; (0, 0) for an empty one (no match at all).
fn best(row: impl Iterator<Item = f32>) -> (usize, f32) {
    let mut out: Option<(usize, f32)> = None;
    for (i, s) in row.enumerate() {
        if out.is_none_or(|b| s > b.1) {
            out = Some((i, s));
        }
    }
    out.unwrap_or((0, 0.0))
}

/// One side's summary of its matches.
struct SideScores {
    /// IDF-weighted mean of the best similarities (BERTScore's recall for this side).
    weighted: f32,
    /// The lowest best similarity of a content token (1 when there is none).
    worst: f32,
    /// The share of content weight whose best similarity is below [`MATCHED`].
    unmatched: f32,
    /// The share of content weight whose very token id the other side has.
    exact: f32,
}

fn side_scores(w: &[f32], best: &[(usize, f32)], ids: &[u32], other: &[u32]) -> SideScores {
    let total: f32 = w.iter().sum();
    let weighted = if total > 0.0 {
        w.iter().zip(best).map(|(w, b)| w * b.1).sum::<f32>() / total
    } else {
        0.0
    };
    let mut worst = 1f32;
    let (mut content, mut unmatched, mut exact) = (0f32, 0f32, 0f32);
    for ((w, b), id) in w.iter().zip(best).zip(ids) {
        if *w < CONTENT_IDF {
            continue;
        }
        worst = worst.min(b.1);
        content += w;
        if b.1 < MATCHED {
            unmatched += w;
        }
        if other.contains(id) {
            exact += w;
        }
    }
    let share = |x: f32| if content > 0.0 { x / content } else { 0.0 };
    SideScores {
        weighted,
        worst,
        unmatched: share(unmatched),
        exact: if content > 0.0 { exact / content } else { 1.0 },
    }
}

fn round(x: f32) -> f64 {
    (f64::from(x) * 1e4).round() / 1e4
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(i: usize) -> Vec<f32> {
        let mut v = vec![0.0; 8];
        v[i % 8] = 1.0;
        v
    }

    fn check() -> PairCheck {
        PairCheck {
            candidate_threshold: 0.6,
            ..PairCheck::untrained(HashMap::from([(1, 1.0), (2, 1.0)]), 8.0)
        }
    }

    fn feature(x: &[f32; N_FEATURES], name: &str) -> f32 {
        x[FEATURE_NAMES.iter().position(|n| *n == name).unwrap()]
    }

    #[test]
    fn names_match_the_count() {
        assert_eq!(FEATURE_NAMES.len(), N_FEATURES);
    }

    #[test]
    fn an_identical_pair_aligns_fully() {
        let ids = [1, 10, 11, 2];
        let toks: Vec<Vec<f32>> = (0..4).map(unit).collect();
        let side = Side {
            text: "is python faster",
            ids: &ids,
            tokens: &toks,
            pooled: &toks[0],
        };
        let x = check().features(side, side, 1.0);
        assert_eq!(feature(&x, "align_f1"), 1.0);
        assert_eq!(feature(&x, "worst_content_match"), 1.0);
        assert_eq!(feature(&x, "unmatched_content_weight"), 0.0);
        assert_eq!(feature(&x, "order_crossing"), 0.0);
        assert_eq!(feature(&x, "exact_content_share"), 1.0);
    }

    #[test]
    fn swapped_content_tokens_cross_and_a_new_one_is_unmatched() {
        // "A faster than B" against "B faster than A": same tokens, content order reversed.
        let (a, f, t, b) = (unit(0), unit(1), unit(2), unit(3));
        let q_tokens = vec![a.clone(), f.clone(), t.clone(), b.clone()];
        let c_tokens = vec![b, f, t, a];
        let q = Side {
            text: "A faster than B",
            ids: &[20, 21, 1, 22],
            tokens: &q_tokens,
            pooled: &q_tokens[0],
        };
        let c = Side {
            text: "B faster than A",
            ids: &[22, 21, 1, 20],
            tokens: &c_tokens,
            pooled: &q_tokens[0],
        };
        let x = check().features(q, c, 1.0);
        assert!(feature(&x, "order_crossing") > 0.5, "{x:?}");
        assert_eq!(feature(&x, "order_crossing_any"), 1.0);
        // A different entity: its token matches nothing on the other side.
        let d_tokens = vec![unit(0), unit(1), unit(2), unit(5)];
        let d = Side {
            text: "A faster than D",
            ids: &[20, 21, 1, 23],
            tokens: &d_tokens,
            pooled: &q_tokens[0],
        };
        let x = check().features(q, d, 1.0);
        assert_eq!(feature(&x, "worst_content_match"), 0.0);
        assert!(feature(&x, "unmatched_content_weight") > 0.2, "{x:?}");
    }

    #[test]
    fn hard_signals_refuse_before_the_model() {
        let toks = vec![unit(0)];
        let q = Side {
            text: "how do I enable it",
            ids: &[5],
            tokens: &toks,
            pooled: &toks[0],
        };
        let c = Side {
            text: "how do I not enable it",
            ..q
        };
        assert_eq!(check().check(q, c, 1.0), Err(Refusal::Guard("negation")));
        assert!(check().check(q, q, 1.0).is_ok());
    }

    #[test]
    fn swapped_roles_are_seen_and_paraphrases_are_not() {
        for (q, c) in [
            ("Is Python faster than Java?", "Is Java faster than Python?"),
            (
                "What is the reagent used to convert ethanol to ethanoic acid?",
                "What is the reagent used to convert ethanoic acid to ethanol?",
            ),
            (
                "Why are Asians more polite than westerners?",
                "Why are westerners much politer than Asians?",
            ),
            (
                "How do I move from Canada to the US?",
                "How do I move from the US to Canada?",
            ),
        ] {
            assert!(roles_swapped(q, c), "{q} / {c}");
        }
        for (q, c) in [
            (
                "Is Python faster than Java?",
                "Is Python quicker than Java?",
            ),
            (
                "How do I convert dollars to euros?",
                "How can I convert dollars into euros?",
            ),
            (
                "How do I get from Paris to Rome?",
                "What is the best way to get from Paris to Rome?",
            ),
            (
                "Which is better, Python or Java?",
                "Which is better, Java or Python?",
            ),
            (
                "How do I go to Paris from London?",
                "How do I travel from London to Paris?",
            ),
        ] {
            assert!(!roles_swapped(q, c), "{q} / {c}");
        }
    }

    proptest::proptest! {
        #[test]
        fn roles_swapped_is_symmetric_and_never_true_of_a_text_and_itself(
            a in "[a-zA-Z' ?]{0,40}( than | to | from )[a-zA-Z' ?]{0,40}",
            b in "[a-zA-Z' ?]{0,40}( than | to | from )[a-zA-Z' ?]{0,40}",
        ) {
            proptest::prop_assert!(!roles_swapped(&a, &a));
            proptest::prop_assert_eq!(roles_swapped(&a, &b), roles_swapped(&b, &a));
        }
    }

    #[test]
    fn round_trips_through_json() {
        let c = check();
        let text = c.to_json(json!({})).to_string();
        assert_eq!(PairCheck::from_json(&text).unwrap(), c);
        assert!(PairCheck::from_json("{}").is_err());
    }

    #[test]
    fn empty_sides_do_not_panic() {
        let q = Side {
            text: "",
            ids: &[],
            tokens: &[],
            pooled: &[],
        };
        let x = check().features(q, q, 0.0);
        assert!(x.iter().all(|v| v.is_finite()));
    }
}
