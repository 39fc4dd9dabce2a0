//! The second check on a semantic candidate: does the cached question ask the same thing as
//! the query? Nearest-neighbour similarity alone cannot reach the served-hit precision goal
//! (`eval/cache.md`): hard negatives such as "How do I learn Java?" / "How do I learn
//! JavaScript?" sit as close as true paraphrases. The verifier looks at the pair itself.
//!
//! How a candidate is decided (`Verifier::verify`):
//! 1. Hard veto, before any score: one side negated and the other not, an opposite word on
//!    each side (enable/disable, ...), a number changed (both sides name numbers and the
//!    sets differ), or a negated pole on one side only (`impossible`, `uninstall`, `disable`
//!    where the other side says neither word of the pair). These flips invert the answer, and a learned score must never outvote
//!    them; they are the guard's rules 1-3 (`guard`).
//! 2. Otherwise a logistic regression over a few dozen dense features of the pair
//!    (`FEATURE_NAMES`): the static-model cosine, the MiniLM cosine when the caller computed
//!    it, word and character overlap, length ratio, differing content words, and the guard's
//!    softer signals (a name swapped or added, a number on one side only) as features rather
//!    than vetoes, because paraphrases often add or drop such a detail.
//! 3. The candidate is served when the probability reaches the threshold that was chosen on
//!    the tune split and stored in the artifact with the weights (one per variant: with and
//!    without the MiniLM cosine).
//!
//! Pure: no clocks, no embedding. The caller passes the cosines it has. `Verifier::load` reads
//! a file, the one exception to the crate's no-I/O rule, for a config-supplied artifact; the
//! gateway can use `Verifier::embedded` instead.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use switchyard_cache::guard::{self, Features, GuardReason};
use switchyard_textclass::stopwords::{is_function_word, QUESTION_WORDS};

/// The artifact built into the binary: `eval/artifacts/cache-verifier.v1.json`.
pub const EMBEDDED_ARTIFACT: &str =
    include_str!("../../../../eval/artifacts/cache-verifier.v1.json");

/// The artifact's `format`; loading anything else fails.
pub const FORMAT: &str = "switchyard-cache-verifier";
/// The artifact layout this code reads.
pub const FORMAT_VERSION: u64 = 1;

/// The features, in the order of `pair_features`' output and of the artifact's weights. A
/// change here needs a retrained artifact; loading checks the names so a stale one fails.
pub const FEATURE_NAMES: &[&str] = &[
    "static_cosine",
    "static_cosine_sq",
    "minilm_cosine",
    "minilm_cosine_sq",
    "content_jaccard",
    "word_jaccard",
    "content_containment",
    "char3_jaccard",
    "bigram_jaccard",
    "length_ratio",
    "ln_words_min",
    "only_one_side_min",
    "only_one_side_max",
    "question_word_differs",
    "first_word_same",
    "same_words",
    "negation_differs",
    "polarity_differs",
    "numbers_changed",
    "numbers_one_side",
    "entities_swapped",
    "entities_added",
    "static_x_content_jaccard",
    "minilm_x_content_jaccard",
    "static_above_0_9",
    "minilm_above_0_9",
    "minilm_above_0_95",
    "all_content_shared",
    "polarity_one_side",
];

/// How many features.
pub const N_FEATURES: usize = 29;

const I_MINILM: usize = 2;
const I_MINILM_SQ: usize = 3;
const I_MINILM_X: usize = 23;
const I_MINILM_90: usize = 25;
const I_MINILM_95: usize = 26;
/// The features that need the MiniLM cosine.
const MINILM_FEATURES: [usize; 5] = [I_MINILM, I_MINILM_SQ, I_MINILM_X, I_MINILM_90, I_MINILM_95];

/// Words that carry no topic beyond the shared function words
/// (`switchyard_textclass::stopwords`): the filler of a request ("please", "the best way",
/// "I want to know"). "Content words" are the rest. Question words are kept apart
/// (`QUESTION_WORDS`) because "how" against "why" changes the intent.
const NO_TOPIC: &[&str] = &[
    "doing",
    "mine",
    "yours",
    "get",
    "got",
    "someone",
    "something",
    "anyone",
    "anything",
    "really",
    "much",
    "many",
    "please",
    "way",
    "ways",
    "best",
    "good",
    "make",
    "use",
    "using",
    "know",
    "want",
    "like",
    "need",
    "thing",
    "things",
];

/// Why the verifier decided as it did.
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    /// A hard veto (negation, opposite words, a changed number): never served.
    Veto(GuardReason),
    /// Served; the feature that pushed the score up the most.
    Accepted { strongest: &'static str },
    /// Not served; the feature that pulled the score down the most.
    Rejected { weakest: &'static str },
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Veto(r) => write!(f, "veto: {r}"),
            Reason::Accepted { strongest } => write!(f, "accepted, mostly on {strongest}"),
            Reason::Rejected { weakest } => write!(f, "rejected, mostly on {weakest}"),
        }
    }
}

/// The verifier's answer for one pair.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Probability that the pair asks the same thing (0 on a veto).
    pub probability: f32,
    /// The threshold it was compared with.
    pub threshold: f32,
    pub reason: Reason,
}

impl Verdict {
    /// Whether the cached answer may be served.
    #[must_use]
    pub fn accept(&self) -> bool {
        matches!(self.reason, Reason::Accepted { .. })
    }
}

/// Why an artifact could not be read.
#[derive(Debug, thiserror::Error)]
pub enum VerifierError {
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("artifact: {0}")]
    Invalid(String),
}

/// A logistic regression over standardised features: `p = σ(b + Σ w_i (x_i − mean_i) / scale_i)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Logistic {
    pub mean: Vec<f32>,
    pub scale: Vec<f32>,
    pub weights: Vec<f32>,
    pub bias: f32,
}

impl Logistic {
    /// The score before the sigmoid, and each feature's share of it.
    fn terms(&self, x: &[f32]) -> (f32, Vec<f32>) {
        let terms: Vec<f32> = x
            .iter()
            .zip(&self.mean)
            .zip(&self.scale)
            .zip(&self.weights)
            .map(|(((x, m), s), w)| w * (x - m) / s)
            .collect();
        (self.bias + terms.iter().sum::<f32>(), terms)
    }

    #[must_use]
    pub fn probability(&self, x: &[f32]) -> f32 {
        sigmoid(self.terms(x).0)
    }

    /// Fits by full-batch gradient descent on the mean log loss plus `l2 · |w|²`, from zero
    /// weights: deterministic, and with two dozen standardised features it converges in a few
    /// thousand steps (a second-order method would be faster and is not needed).
    /// Each weight is projected onto its `Sign` after every step (projected gradient descent).
    #[must_use]
    pub fn fit(x: &[[f32; N_FEATURES]], y: &[bool], signs: &[Sign], opts: &FitOptions) -> Self {
        let n = x.len().max(1) as f64;
        let mut mean = vec![0f64; N_FEATURES];
        let mut var = vec![0f64; N_FEATURES];
        for row in x {
            for (m, v) in mean.iter_mut().zip(row) {
                *m += f64::from(*v) / n;
            }
        }
        for row in x {
            for ((s, v), m) in var.iter_mut().zip(row).zip(&mean) {
                *s += (f64::from(*v) - m).powi(2) / n;
            }
        }
        // A constant feature gets scale 1 so it contributes nothing and divides by nothing.
        let scale: Vec<f64> = var
            .iter()
            .map(|v| if *v > 1e-12 { v.sqrt() } else { 1.0 })
            .collect();
        let z: Vec<Vec<f64>> = x
            .iter()
            .map(|row| {
                (0..N_FEATURES)
                    .map(|i| {
                        if signs[i] != Sign::Zero {
                            (f64::from(row[i]) - mean[i]) / scale[i]
                        } else {
                            0.0
                        }
                    })
                    .collect()
            })
            .collect();
        let mut w = vec![0f64; N_FEATURES];
        let mut b = 0f64;
        for _ in 0..opts.steps {
            let mut gw = vec![0f64; N_FEATURES];
            let mut gb = 0f64;
            for (row, &label) in z.iter().zip(y) {
                let s = b + row.iter().zip(&w).map(|(a, c)| a * c).sum::<f64>();
                let err = 1.0 / (1.0 + (-s).exp()) - f64::from(u8::from(label));
                gb += err / n;
                for (g, a) in gw.iter_mut().zip(row) {
                    *g += err * a / n;
                }
            }
            for i in 0..N_FEATURES {
                let step = w[i] - opts.learning_rate * (gw[i] + 2.0 * opts.l2 * w[i]);
                w[i] = match signs[i] {
                    Sign::Zero => 0.0,
                    Sign::NonNegative => step.max(0.0),
                    Sign::NonPositive => step.min(0.0),
                    Sign::Free => step,
                };
            }
            b -= opts.learning_rate * gb;
        }
        Logistic {
            mean: mean.iter().map(|v| *v as f32).collect(),
            scale: scale.iter().map(|v| *v as f32).collect(),
            weights: w.iter().map(|v| *v as f32).collect(),
            bias: b as f32,
        }
    }

    fn to_json(&self) -> Value {
        serde_json::json!({
            "mean": self.mean,
            "scale": self.scale,
            "weights": self.weights,
            "bias": self.bias,
        })
    }

    fn from_json(v: &Value, what: &str) -> Result<Logistic, VerifierError> {
        let list = |k: &str| -> Result<Vec<f32>, VerifierError> {
            let a = v
                .get(k)
                .and_then(Value::as_array)
                .ok_or_else(|| VerifierError::Invalid(format!("{what}.{k} missing")))?;
            let out: Vec<f32> = a
                .iter()
                .filter_map(Value::as_f64)
                .map(|x| x as f32)
                .collect();
            if out.len() != N_FEATURES || a.len() != N_FEATURES {
                return Err(VerifierError::Invalid(format!(
                    "{what}.{k} has {} numbers, want {N_FEATURES}",
                    a.len()
                )));
            }
            Ok(out)
        };
        let scale = list("scale")?;
        if scale.iter().any(|s| !s.is_finite() || *s <= 0.0) {
            return Err(VerifierError::Invalid(format!("{what}.scale must be > 0")));
        }
        Ok(Logistic {
            mean: list("mean")?,
            scale,
            weights: list("weights")?,
            bias: v
                .get("bias")
                .and_then(Value::as_f64)
                .ok_or_else(|| VerifierError::Invalid(format!("{what}.bias missing")))?
                as f32,
        })
    }
}

/// Gradient-descent settings for `Logistic::fit`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitOptions {
    pub steps: usize,
    pub learning_rate: f64,
    pub l2: f64,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            steps: 3000,
            learning_rate: 0.5,
            l2: 1e-3,
        }
    }
}

/// A threshold as the decimal it was chosen as (0.65, not 0.6499999761581421): f32 → f64
/// widening keeps the binary error, which is noise to a reader of the artifact. Parsing the
/// decimal back gives the same f32.
fn decimal(x: f32) -> f64 {
    (f64::from(x) * 1e6).round() / 1e6
}

fn sigmoid(s: f32) -> f32 {
    1.0 / (1.0 + (-s).exp())
}

/// One variant of the verifier: its model and the probability it must reach.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    pub model: Logistic,
    /// Chosen on the tune split; see the artifact's `operating_points`.
    pub threshold: f32,
}

/// The pair verifier: two variants, with and without the MiniLM cosine.
#[derive(Debug, Clone, PartialEq)]
pub struct Verifier {
    /// Used when the caller has only the static-model cosine.
    pub static_only: Variant,
    /// Used when the caller also embedded the pair with MiniLM.
    pub with_minilm: Variant,
    /// The static-model cosine below which candidates were never shown to the verifier in
    /// training; the lookup's threshold should be at least this.
    pub candidate_threshold: f32,
}

#[cfg_attr(
    not(test),
    expect(
        dead_code,
        reason = "the artifact reader: the evaluation only writes the artifact; the tests read the shipped one back"
    )
)]
impl Verifier {
    /// Reads an artifact file (`eval/artifacts/cache-verifier.v1.json`).
    pub fn load(path: impl AsRef<Path>) -> Result<Verifier, VerifierError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| VerifierError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Verifier::from_json(&text)
    }

    /// The artifact compiled into the crate.
    pub fn embedded() -> Result<Verifier, VerifierError> {
        Verifier::from_json(EMBEDDED_ARTIFACT)
    }

    /// Parses an artifact; checks its format, version and feature names.
    pub fn from_json(text: &str) -> Result<Verifier, VerifierError> {
        let v: Value = serde_json::from_str(text)?;
        if v.get("format").and_then(Value::as_str) != Some(FORMAT) {
            return Err(VerifierError::Invalid(format!("format is not {FORMAT}")));
        }
        let version = v.get("format_version").and_then(Value::as_u64);
        if version != Some(FORMAT_VERSION) {
            return Err(VerifierError::Invalid(format!(
                "format_version {version:?}, this code reads {FORMAT_VERSION}"
            )));
        }
        let names: Vec<&str> = v
            .get("features")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if names != FEATURE_NAMES {
            return Err(VerifierError::Invalid(
                "feature names differ from this code's FEATURE_NAMES: retrain".to_owned(),
            ));
        }
        let variant = |k: &str| -> Result<Variant, VerifierError> {
            let m = v
                .get("variants")
                .and_then(|x| x.get(k))
                .ok_or_else(|| VerifierError::Invalid(format!("variants.{k} missing")))?;
            let threshold = m
                .get("threshold")
                .and_then(Value::as_f64)
                .ok_or_else(|| VerifierError::Invalid(format!("variants.{k}.threshold")))?
                as f32;
            Ok(Variant {
                model: Logistic::from_json(m, k)?,
                threshold,
            })
        };
        Ok(Verifier {
            static_only: variant("static_only")?,
            with_minilm: variant("with_minilm")?,
            candidate_threshold: v
                .get("candidate_threshold")
                .and_then(Value::as_f64)
                .ok_or_else(|| VerifierError::Invalid("candidate_threshold missing".to_owned()))?
                as f32,
        })
    }

    /// The artifact for these variants; `meta` (training data, metrics) is merged in as is.
    #[must_use]
    pub fn to_json(&self, meta: Value) -> Value {
        let variant = |v: &Variant| {
            let mut m = v.model.to_json();
            m["threshold"] = serde_json::json!(decimal(v.threshold));
            m
        };
        let mut out = serde_json::json!({
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "features": FEATURE_NAMES,
            "candidate_threshold": decimal(self.candidate_threshold),
            "variants": {
                "static_only": variant(&self.static_only),
                "with_minilm": variant(&self.with_minilm),
            },
        });
        if let (Some(o), Value::Object(m)) = (out.as_object_mut(), meta) {
            o.extend(m);
        }
        out
    }

    /// The probability that `query` and `cached` ask the same thing, without the veto.
    #[must_use]
    pub fn probability(
        &self,
        query: &str,
        cached: &str,
        static_cosine: f32,
        minilm_cosine: Option<f32>,
    ) -> f32 {
        let x = pair_features(query, cached, static_cosine, minilm_cosine);
        self.variant(minilm_cosine.is_some()).model.probability(&x)
    }

    /// The full decision: veto, then probability against the variant's threshold.
    #[must_use]
    pub fn verify(
        &self,
        query: &str,
        cached: &str,
        static_cosine: f32,
        minilm_cosine: Option<f32>,
    ) -> Verdict {
        let v = self.variant(minilm_cosine.is_some());
        let (q, c) = (Features::of(query), Features::of(cached));
        let s = guard::signals(&q, &c);
        if let Some(reason) = veto(&q, &c, s) {
            return Verdict {
                probability: 0.0,
                threshold: v.threshold,
                reason: Reason::Veto(reason),
            };
        }
        let x = features_of(query, cached, s, static_cosine, minilm_cosine);
        let (score, terms) = v.model.terms(&x);
        let probability = sigmoid(score);
        let pick = |better: fn(f32, f32) -> bool| {
            let mut best = 0;
            for (i, t) in terms.iter().enumerate() {
                if better(*t, terms[best]) {
                    best = i;
                }
            }
            FEATURE_NAMES[best]
        };
        let reason = if probability >= v.threshold {
            Reason::Accepted {
                strongest: pick(|a, b| a > b),
            }
        } else {
            Reason::Rejected {
                weakest: pick(|a, b| a < b),
            }
        };
        Verdict {
            probability,
            threshold: v.threshold,
            reason,
        }
    }

    /// The variant for callers with (`true`) or without the MiniLM cosine.
    #[must_use]
    pub fn variant(&self, with_minilm: bool) -> &Variant {
        if with_minilm {
            &self.with_minilm
        } else {
            &self.static_only
        }
    }
}

/// The hard veto: the guard's negation and polarity rules, and a number changed on both sides.
/// A number present on one side only is left to the score (`numbers_one_side`).
#[must_use]
pub fn veto_texts(query: &str, cached: &str) -> Option<GuardReason> {
    let (q, c) = (Features::of(query), Features::of(cached));
    veto(&q, &c, guard::signals(&q, &c))
}

fn veto(q: &Features, c: &Features, s: guard::Signals) -> Option<GuardReason> {
    if s.negation {
        return Some(GuardReason::Negation);
    }
    if s.polarity {
        // `check` names the opposite words; it fires on the same pairs as `signals`.
        if let Err(r @ GuardReason::Polarity { .. }) = guard::check(q, c) {
            return Some(r);
        }
    }
    if s.numbers_changed {
        return Some(GuardReason::Numbers);
    }
    if s.negated_one_side {
        // The guard's own reason type has no one-sided variant; `Negation` is what it is.
        return Some(GuardReason::Negation);
    }
    None
}

/// The feature vector of a pair, in `FEATURE_NAMES` order. Symmetric in `query` and `cached`
/// except through the cosines the caller passes (which are symmetric too). The MiniLM
/// features are 0 when `minilm_cosine` is `None`; the static-only variant gives them no weight.
#[must_use]
pub fn pair_features(
    query: &str,
    cached: &str,
    static_cosine: f32,
    minilm_cosine: Option<f32>,
) -> [f32; N_FEATURES] {
    let (q, c) = (Features::of(query), Features::of(cached));
    features_of(
        query,
        cached,
        guard::signals(&q, &c),
        static_cosine,
        minilm_cosine,
    )
}

fn features_of(
    query: &str,
    cached: &str,
    s: guard::Signals,
    static_cosine: f32,
    minilm_cosine: Option<f32>,
) -> [f32; N_FEATURES] {
    let (qw, cw) = (words(query), words(cached));
    let content = |w: &[String]| -> BTreeSet<String> {
        w.iter()
            .filter(|x| {
                !is_function_word(x)
                    && !NO_TOPIC.contains(&x.as_str())
                    && !QUESTION_WORDS.contains(&x.as_str())
            })
            .map(|x| stem(x))
            .collect()
    };
    let (qc, cc) = (content(&qw), content(&cw));
    let all = |w: &[String]| -> BTreeSet<String> { w.iter().map(|x| stem(x)).collect() };
    let (qa, ca) = (all(&qw), all(&cw));
    let bigrams = |w: &[String]| -> BTreeSet<String> {
        w.windows(2).map(|p| format!("{} {}", p[0], p[1])).collect()
    };
    let qwh: BTreeSet<&str> = qw
        .iter()
        .filter_map(|x| QUESTION_WORDS.iter().find(|q| **q == x.as_str()).copied())
        .collect();
    let cwh: BTreeSet<&str> = cw
        .iter()
        .filter_map(|x| QUESTION_WORDS.iter().find(|q| **q == x.as_str()).copied())
        .collect();
    let only_q = qc.difference(&cc).count() as f32;
    let only_c = cc.difference(&qc).count() as f32;
    let (nq, nc) = (qw.len() as f32, cw.len() as f32);
    let content_jaccard = jaccard(&qc, &cc);
    let m = minilm_cosine.unwrap_or(0.0);
    let flag = |b: bool| f32::from(u8::from(b));
    let mut x = [0f32; N_FEATURES];
    x[0] = static_cosine;
    x[1] = static_cosine * static_cosine;
    x[I_MINILM] = m;
    x[I_MINILM_SQ] = m * m;
    x[4] = content_jaccard;
    x[5] = jaccard(&qa, &ca);
    x[6] = containment(&qc, &cc);
    x[7] = jaccard(&char_grams(query), &char_grams(cached));
    x[8] = jaccard(&bigrams(&qw), &bigrams(&cw));
    x[9] = if nq.max(nc) > 0.0 {
        nq.min(nc) / nq.max(nc)
    } else {
        1.0
    };
    x[10] = (1.0 + nq.min(nc)).ln();
    x[11] = (1.0 + only_q.min(only_c)).ln();
    x[12] = (1.0 + only_q.max(only_c)).ln();
    x[13] = flag(qwh != cwh);
    x[14] = flag(!qw.is_empty() && qw.first() == cw.first());
    x[15] = flag(qa == ca);
    x[16] = flag(s.negation);
    x[17] = flag(s.polarity);
    x[18] = flag(s.numbers_changed);
    x[19] = flag(s.numbers_one_side);
    x[20] = flag(s.entities_swapped);
    x[21] = flag(s.entities_added);
    x[22] = static_cosine * content_jaccard;
    x[I_MINILM_X] = m * content_jaccard;
    // Hinges: the log-odds of "same intent" rise much faster near the top of the cosine
    // range than a linear term allows, and the operating point lives up there.
    x[24] = (static_cosine - 0.9).max(0.0);
    x[I_MINILM_90] = (m - 0.9).max(0.0);
    x[I_MINILM_95] = (m - 0.95).max(0.0);
    x[27] = flag(qc == cc);
    x[28] = flag(s.polarity_one_side);
    x
}

/// The sign a feature's weight may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sign {
    /// Not used (the MiniLM features in the static-only variant).
    Zero,
    /// More of it may only make "same intent" more likely: a similarity.
    NonNegative,
    /// More of it may only make "same intent" less likely: a difference.
    NonPositive,
    /// Either sign: the fit supports it, no feature of `FEATURE_NAMES` uses it today.
    #[cfg_attr(
        not(test),
        expect(
            dead_code,
            reason = "no current feature is unconstrained; the fit keeps the case"
        )
    )]
    Free,
}

/// The signs the weights are held to, in `FEATURE_NAMES` order. Unconstrained, the model
/// learns the data set rather than the task: qqp's negatives were picked to share most of their
/// words, so word overlap gets a negative weight and a pair of identical questions scores
/// below the serving threshold (it did, before these signs). Holding every similarity to
/// `NonNegative` and every difference to `NonPositive` makes the score monotone, so the more
/// alike two texts are, the likelier they are served, whatever the training set's quirks.
const SIGNS: [Sign; N_FEATURES] = {
    use Sign::{NonNegative as Pos, NonPositive as Neg, Zero};
    [
        Pos, Pos, Pos, Pos, // static, static², minilm, minilm²
        Pos, Pos, Pos, Pos, Pos, // jaccards, containment, char3, bigram
        // ln(words) is not used: gptcache_mock, the one source with long texts, holds only
        // duplicates, so a weight on length learns the source, not the task.
        Pos, Zero, // length ratio, ln(words)
        Neg, Neg, Neg, // only-one-side min/max, question word differs
        Pos, Pos, // first word same, same words
        Neg, Neg, Neg, Neg, Neg, Neg, // negation, polarity, numbers ×2, entities ×2
        Pos, Pos, Pos, Pos, Pos, Pos, // products, hinges, all content shared
        Neg, // polarity one side
    ]
};

/// The sign constraints of a variant: `SIGNS`, with the MiniLM features unused when
/// `with_minilm` is false.
#[must_use]
pub fn signs(with_minilm: bool) -> [Sign; N_FEATURES] {
    let mut s = SIGNS;
    if !with_minilm {
        for i in MINILM_FEATURES {
            s[i] = Sign::Zero;
        }
    }
    s
}

/// Lower-cased alphanumeric words, apostrophes dropped (`don't` → `dont`).
fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .replace(['\'', '\u{2019}'], "")
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A crude plural fold (`phones` → `phone`), enough that number agreement is not a difference.
fn stem(w: &str) -> String {
    match w.strip_suffix('s') {
        Some(s) if s.len() >= 3 && !s.ends_with('s') => s.to_owned(),
        _ => w.to_owned(),
    }
}

/// Character trigrams of the word sequence, as FNV-1a hashes (no string per trigram: cached
/// answers can be paragraphs). A collision only makes two texts look a little closer.
fn char_grams(text: &str) -> BTreeSet<u64> {
    let t: Vec<char> = format!(" {} ", words(text).join(" ")).chars().collect();
    t.windows(3)
        .map(|w| {
            w.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, c| {
                (h ^ u64::from(*c)).wrapping_mul(0x0100_0000_01b3)
            })
        })
        .collect()
}

fn jaccard<T: Ord>(a: &BTreeSet<T>, b: &BTreeSet<T>) -> f32 {
    let union = a.union(b).count();
    if union == 0 {
        return 1.0;
    }
    a.intersection(b).count() as f32 / union as f32
}

fn containment<T: Ord>(a: &BTreeSet<T>, b: &BTreeSet<T>) -> f32 {
    let small = a.len().min(b.len());
    if small == 0 {
        return f32::from(u8::from(a.len() == b.len()));
    }
    a.intersection(b).count() as f32 / small as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feature(x: &[f32; N_FEATURES], name: &str) -> f32 {
        x[FEATURE_NAMES.iter().position(|n| *n == name).unwrap()]
    }

    /// Moved from `tests/cache.rs` (`a_hit_carries_the_cached_question_for_the_verifier`),
    /// which checks that a hit carries the stored question "how do I reset my password".
    #[test]
    fn refuses_a_negation_of_the_cached_question() {
        let v = Verifier::embedded().unwrap();
        let d = v.verify(
            "how do I not reset my password",
            "how do I reset my password",
            0.95,
            None,
        );
        assert!(!d.accept());
    }

    #[test]
    fn names_match_the_count() {
        assert_eq!(FEATURE_NAMES.len(), N_FEATURES);
        assert_eq!(FEATURE_NAMES[I_MINILM], "minilm_cosine");
        assert_eq!(FEATURE_NAMES[I_MINILM_SQ], "minilm_cosine_sq");
        assert_eq!(FEATURE_NAMES[I_MINILM_X], "minilm_x_content_jaccard");
        assert_eq!(FEATURE_NAMES[I_MINILM_90], "minilm_above_0_9");
        assert_eq!(FEATURE_NAMES[I_MINILM_95], "minilm_above_0_95");
    }

    #[test]
    fn features_of_an_identical_pair() {
        let t = "How do I reset my router password?";
        let x = pair_features(t, t, 1.0, Some(1.0));
        for name in [
            "content_jaccard",
            "word_jaccard",
            "content_containment",
            "char3_jaccard",
            "bigram_jaccard",
            "length_ratio",
            "first_word_same",
            "same_words",
        ] {
            assert_eq!(feature(&x, name), 1.0, "{name}");
        }
        for name in [
            "only_one_side_max",
            "question_word_differs",
            "negation_differs",
            "polarity_differs",
            "numbers_changed",
            "entities_swapped",
        ] {
            assert_eq!(feature(&x, name), 0.0, "{name}");
        }
    }

    #[test]
    fn features_see_differences() {
        let x = pair_features(
            "How do I learn Java quickly?",
            "Why should I learn Python quickly?",
            0.8,
            None,
        );
        assert_eq!(feature(&x, "question_word_differs"), 1.0);
        assert_eq!(feature(&x, "entities_swapped"), 1.0);
        assert_eq!(feature(&x, "minilm_cosine"), 0.0);
        assert!(feature(&x, "content_jaccard") <= 0.5);
        // Plurals fold: not a content difference.
        let y = pair_features("best phones 2024", "best phone 2024", 0.9, None);
        assert_eq!(feature(&y, "content_jaccard"), 1.0);
        let n = pair_features(
            "cheap flights to 3 cities",
            "flights to 4 cities",
            0.9,
            None,
        );
        assert_eq!(feature(&n, "numbers_changed"), 1.0);
        let o = pair_features("flights to Paris", "flights to Paris in 2025", 0.9, None);
        assert_eq!(feature(&o, "numbers_one_side"), 1.0);
        assert_eq!(feature(&o, "numbers_changed"), 0.0);
    }

    #[test]
    fn features_are_symmetric() {
        let (a, b) = (
            "What is the capital of France?",
            "Which city is France's capital?",
        );
        assert_eq!(
            pair_features(a, b, 0.9, Some(0.8)),
            pair_features(b, a, 0.9, Some(0.8))
        );
    }

    #[test]
    fn the_embedded_artifact_loads_and_matches_the_file() {
        let v = Verifier::embedded().unwrap();
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../eval/artifacts/cache-verifier.v1.json"
        );
        assert_eq!(Verifier::load(path).unwrap(), v);
        assert!(v.candidate_threshold > 0.0 && v.candidate_threshold < 1.0);
        for variant in [&v.static_only, &v.with_minilm] {
            assert!(variant.threshold > 0.0 && variant.threshold < 1.0);
        }
        // The static-only variant must not lean on a feature it never gets.
        for i in MINILM_FEATURES {
            assert_eq!(v.static_only.model.weights[i], 0.0);
        }
        // Both variants keep the signs they were trained under.
        for (variant, minilm) in [(&v.static_only, false), (&v.with_minilm, true)] {
            for (w, s) in variant.model.weights.iter().zip(signs(minilm)) {
                match s {
                    Sign::Zero => assert_eq!(*w, 0.0),
                    Sign::NonNegative => assert!(*w >= 0.0),
                    Sign::NonPositive => assert!(*w <= 0.0),
                    Sign::Free => {}
                }
            }
        }
    }

    #[test]
    fn loading_rejects_a_stale_or_foreign_artifact() {
        let v = Verifier::embedded().unwrap();
        let mut j = v.to_json(serde_json::json!({}));
        assert_eq!(Verifier::from_json(&j.to_string()).unwrap(), v);
        j["features"][0] = "renamed".into();
        assert!(Verifier::from_json(&j.to_string()).is_err());
        let mut k = v.to_json(serde_json::json!({}));
        k["format_version"] = 2.into();
        assert!(Verifier::from_json(&k.to_string()).is_err());
        assert!(Verifier::from_json("{}").is_err());
        assert!(Verifier::load("/nonexistent/verifier.json").is_err());
    }

    #[test]
    fn a_negation_pair_is_vetoed_whatever_the_score() {
        let v = Verifier::embedded().unwrap();
        let (q, c) = ("Can I use a VPN at work?", "Can I not use a VPN at work?");
        for m in [None, Some(0.99)] {
            let d = v.verify(q, c, 0.99, m);
            assert!(!d.accept());
            assert_eq!(d.reason, Reason::Veto(GuardReason::Negation));
        }
        let d = v.verify(
            "How to enable dark mode",
            "How to disable dark mode",
            0.98,
            None,
        );
        assert!(matches!(
            d.reason,
            Reason::Veto(GuardReason::Polarity { .. })
        ));
        let d = v.verify("top 5 laptops", "top 6 laptops", 0.99, Some(0.99));
        assert_eq!(d.reason, Reason::Veto(GuardReason::Numbers));
        let d = v.verify(
            "It is impossible to merge two datasets",
            "Yes, you can merge two datasets",
            0.95,
            None,
        );
        assert_eq!(d.reason, Reason::Veto(GuardReason::Negation));
    }

    #[test]
    fn a_changed_number_in_a_list_is_vetoed() {
        let cached = "There are three methods: \n 1. local files. \n 2. a builder. \n 3. a script.";
        let query = "2. from local files. \n2. with a builder. \n3. with a script.";
        assert_eq!(veto_texts(query, cached), Some(GuardReason::Numbers));
    }

    #[test]
    fn the_veto_reads_ranges_nouns_and_adverbs() {
        // A range holds both numbers; changing one end is a changed number.
        assert_eq!(
            veto_texts("the meeting on June 25", "the meeting on June 24-25"),
            Some(GuardReason::Numbers)
        );
        assert_eq!(
            veto_texts("the meeting on June 24 and 25", "the meeting on June 24-25"),
            None
        );
        // "removal" is a form of remove, "easily" of easy.
        assert!(matches!(
            veto_texts("tools to add backgrounds", "tools for background removal"),
            Some(GuardReason::Polarity { .. })
        ));
        assert!(matches!(
            veto_texts(
                "it is hard to share datasets",
                "you can easily share datasets"
            ),
            Some(GuardReason::Polarity { .. })
        ));
    }

    #[test]
    fn an_identical_pair_is_accepted() {
        let v = Verifier::embedded().unwrap();
        let t = "How do I reset my router password?";
        for m in [None, Some(1.0)] {
            let d = v.verify(t, t, 1.0, m);
            assert!(d.accept(), "{d:?}");
            assert!(d.probability >= d.threshold);
        }
    }

    #[test]
    fn a_different_question_is_rejected() {
        let v = Verifier::embedded().unwrap();
        let d = v.verify(
            "How do I learn Java?",
            "What is the best way to cook rice?",
            0.3,
            Some(0.1),
        );
        assert!(matches!(d.reason, Reason::Rejected { .. }), "{d:?}");
    }

    #[test]
    fn fitting_separates_a_separable_toy_set() {
        let mut x: Vec<[f32; N_FEATURES]> = Vec::new();
        let mut y = Vec::new();
        for i in 0..40 {
            let mut r = [0f32; N_FEATURES];
            r[0] = i as f32 / 40.0;
            x.push(r);
            y.push(i >= 20);
        }
        let m = Logistic::fit(&x, &y, &[Sign::Free; N_FEATURES], &FitOptions::default());
        assert!(m.probability(&x[39]) > 0.9 && m.probability(&x[0]) < 0.1);
        // Deterministic: the same data gives the same weights.
        assert_eq!(
            m,
            Logistic::fit(&x, &y, &[Sign::Free; N_FEATURES], &FitOptions::default())
        );
        // An unused feature keeps weight 0, whatever the data says about it.
        for row in &mut x {
            row[I_MINILM] = row[0];
        }
        let masked = Logistic::fit(&x, &y, &signs(false), &FitOptions::default());
        assert_eq!(masked.weights[I_MINILM], 0.0);
        // A sign constraint holds against the data: feature 0 predicts the label positively,
        // so held non-positive its weight ends at 0.
        let mut neg = [Sign::Free; N_FEATURES];
        neg[0] = Sign::NonPositive;
        assert_eq!(
            Logistic::fit(&x, &y, &neg, &FitOptions::default()).weights[0],
            0.0
        );
    }
}
