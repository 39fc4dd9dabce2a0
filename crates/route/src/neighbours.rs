//! The neighbour estimate: how often a candidate model answered as well as the strongest one
//! on the labelled prompts most like this one (RouteLLM's similarity-weighted ranking), with
//! two corrections that the data showed matter:
//!
//! - **Subject difficulty.** The rate of the neighbours' own categories (an MMLU subject's
//!   rate over all its labelled prompts) smooths the estimate where neighbours are few or mixed.
//! - **Length, by kind of prompt.** Shorter prompts are easier everywhere in the data, and much
//!   more so for some kinds (math word problems: each extra clause is another step). The kind
//!   is read from the neighbours (the share of them from each labelled source), so no source is
//!   needed at run time.
//!
//! `score = z(logit kNN rate) + category_weight z(logit category rate)
//!          + (length_weight + sum over sources of share x source_length_weight) z(shortness)`,
//! then a logistic calibration (a slope, and an intercept per kind of prompt) turns the score
//! into the probability the policy's bar compares.
//!
//! The base is stored as unit vectors quantised to `i8` (a row of the static embedding model's
//! width); a decision is one integer dot product per row and a partial sort. Pure: the caller
//! embeds the prompt with the static model the artifact names and passes the vector in.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// The settings of the estimate, chosen out of fold when the artifact is trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeighbourSettings {
    /// Neighbours that vote.
    pub k: usize,
    /// Softmax temperature over cosine similarities: lower trusts the closest rows more.
    pub temperature: f32,
    /// Neighbours whose categories' rates are averaged.
    pub category_k: usize,
    pub category_weight: f32,
    /// Weight of shortness for every prompt.
    pub length_weight: f32,
    /// Extra weight of shortness per labelled source, scaled by that source's share of the
    /// neighbours (same order as [`StoredNeighbours::sources`]).
    pub source_length_weights: Vec<f32>,
    /// Closest-neighbour similarities `[low, high]`: at or below `low` the neighbours are not
    /// like the prompt at all and their two terms count for nothing, from `high` fully, in
    /// between in proportion. A greeting is like no labelled benchmark prompt; its estimate
    /// then rests on what holds for every prompt (length, the kind's intercept). The trainer
    /// sets the training rows' own 1st and 10th percentiles of closest similarity; `[0, 0]`
    /// trusts the neighbours always.
    #[serde(default)]
    pub familiarity: [f32; 2],
}

impl NeighbourSettings {
    /// How far the neighbours are trusted, in `[0, 1]`, given the closest one's similarity.
    pub fn trust(&self, closest: f32) -> f32 {
        let [low, high] = self.familiarity;
        if high <= low {
            return 1.0;
        }
        ((closest - low) / (high - low)).clamp(0.0, 1.0)
    }
}

/// Mean and standard deviation of one score part over the training rows' out-of-fold values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Standardise {
    pub mean: f32,
    pub sd: f32,
}

impl Standardise {
    pub fn of(values: impl Iterator<Item = f32> + Clone) -> Self {
        let n = values.clone().count().max(1) as f32;
        let mean = values.clone().sum::<f32>() / n;
        let var = values.map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
        Self {
            mean,
            sd: var.sqrt().max(1e-6),
        }
    }

    fn z(&self, v: f32) -> f32 {
        (v - self.mean) / self.sd
    }
}

/// One candidate model's labels and calibration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeighbourHead {
    /// The model whose answers were labelled (a route candidate's `head`).
    pub model: String,
    /// Base64 of one little-endian `f32` per base row: 1 when this model answered as well as
    /// the strongest one, 0 when not (soft values allowed).
    pub labels: String,
    /// The rate per category (same order as [`StoredNeighbours::categories`]), smoothed
    /// towards `base_rate`.
    pub category_rates: Vec<f32>,
    pub base_rate: f32,
    pub knn: Standardise,
    pub category: Standardise,
    /// `[a, b_1, ..., b_S]`: `P = sigmoid(a x score + sum over sources of share x b)`, an
    /// intercept per source weighted by the neighbours' share from it, so that one bar means
    /// the same chance for a math word problem as for a multiple-choice question.
    pub calibration: Vec<f32>,
}

/// The static model the base was embedded with, and a fingerprint to check the configured one
/// against: the vectors of a few fixed texts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbedderFingerprint {
    pub name: String,
    pub dim: usize,
    pub probes: Vec<String>,
    /// Base64 `f32` vectors of `probes`, unit length, concatenated.
    pub probe_vectors: String,
}

/// The texts whose vectors fingerprint an embedding model.
pub const PROBES: [&str; 3] = [
    "What is the capital of France?",
    "Solve for x: 3x + 7 = 22, showing each step.",
    "Write a short poem about the sea.",
];

/// The neighbour estimator as stored in a router artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredNeighbours {
    pub embedder: EmbedderFingerprint,
    /// Labelled sources, with a description a user understands ("math word problems").
    pub sources: Vec<SourceInfo>,
    pub categories: Vec<String>,
    pub settings: NeighbourSettings,
    pub shortness: Standardise,
    /// Base64 of `rows x dim` `i8`: unit vectors times 127.
    pub vectors: String,
    /// Base64 of one byte per row: its index in `sources`.
    pub row_sources: String,
    /// Base64 of one little-endian `u16` per row: its index in `categories`.
    pub row_categories: String,
    pub heads: Vec<NeighbourHead>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceInfo {
    pub name: String,
    /// What its prompts are, for explanations: "MMLU multiple-choice questions".
    pub description: String,
}

/// Why a stored estimator cannot be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum NeighbourError {
    #[error("neighbours: {0} is not valid base64 of the expected length")]
    Encoding(&'static str),
    #[error("neighbours: {0}")]
    Invalid(String),
}

/// The estimator, decoded for fast decisions.
#[derive(Debug, Clone)]
pub struct Neighbours {
    stored: StoredNeighbours,
    dim: usize,
    /// The stored `i8` components widened to `i16` once at load: a multiply-add of `i16`
    /// pairs into `i32` is one vector instruction on every x86-64 (SSE2's `pmaddwd`), where
    /// `i8` needs widening first on the baseline target. Twice the memory (about 3 MB for
    /// the shipped base) for several times faster decisions.
    vectors: Vec<i16>,
    row_sources: Vec<u8>,
    row_categories: Vec<u16>,
    labels: Vec<Vec<f32>>,
}

/// What moved one head's estimate, in the units of the score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    pub model: String,
    pub probability: f32,
    /// Similarity-weighted share of the neighbours this model answered as well as the strongest.
    pub neighbour_rate: f32,
    pub neighbour_term: f32,
    /// Mean rate of the nearest neighbours' categories.
    pub category_rate: f32,
    pub category_term: f32,
    /// Characters in the prompt, and what its length added (positive: shorter than usual).
    pub prompt_chars: usize,
    pub length_term: f32,
    /// How similar the closest labelled prompt is (cosine), and how far that lets the
    /// neighbours count ([`NeighbourSettings::trust`]).
    pub closest_similarity: f32,
    pub trust: f32,
    /// Share of the neighbours from each source, largest first, as (description, share).
    pub kinds: Vec<(String, f32)>,
}

/// `sum a_i b_i` in 16 independent lanes, a shape the compiler turns into vector
/// multiply-adds; the tail (a width not divisible by 16) is summed plainly.
fn dot(a: &[i16], b: &[i16]) -> i32 {
    let mut lanes = [0i32; 16];
    let (a16, b16) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: i32 = a16
        .remainder()
        .iter()
        .zip(b16.remainder())
        .map(|(x, y)| i32::from(*x) * i32::from(*y))
        .sum();
    for (ca, cb) in a16.zip(b16) {
        for ((lane, x), y) in lanes.iter_mut().zip(ca).zip(cb) {
            *lane += i32::from(*x) * i32::from(*y);
        }
    }
    lanes.iter().sum::<i32>() + tail
}

/// Shortness of a prompt, the length feature: `-ln(chars)`.
pub fn shortness(prompt_chars: usize) -> f32 {
    -(prompt_chars.max(1) as f32).ln()
}

/// Quantises a unit vector to `i8` (components times 127).
pub fn quantise(v: &[f32]) -> Vec<i8> {
    v.iter()
        .map(|x| (x * 127.0).round().clamp(-127.0, 127.0) as i8)
        .collect()
}

/// `v / |v|` (zero stays zero).
pub fn unit(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter().map(|x| x / n).collect()
    } else {
        v.to_vec()
    }
}

fn logit(p: f32) -> f32 {
    let p = p.clamp(1e-4, 1.0 - 1e-4);
    (p / (1.0 - p)).ln()
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn decode_bytes(text: &str, what: &'static str) -> Result<Vec<u8>, NeighbourError> {
    STANDARD
        .decode(text)
        .map_err(|_| NeighbourError::Encoding(what))
}

pub fn encode_i8(v: &[i8]) -> String {
    STANDARD.encode(v.iter().map(|x| x.to_le_bytes()[0]).collect::<Vec<u8>>())
}

/// Base64 of little-endian `f32`s (labels, probe vectors).
pub fn encode_f32(v: &[f32]) -> String {
    switchyard_textclass::encode_dense(v, 0.0)
}

pub fn encode_u16(v: &[u16]) -> String {
    STANDARD.encode(v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>())
}

pub fn encode_u8(v: &[u8]) -> String {
    STANDARD.encode(v)
}

/// The per-row parts of an estimate that do not depend on the head: the `k` nearest rows,
/// most similar first, with their similarities.
pub struct Nearest {
    pub rows: Vec<(usize, f32)>,
}

impl Neighbours {
    pub fn new(stored: StoredNeighbours) -> Result<Self, NeighbourError> {
        let dim = stored.embedder.dim;
        let vectors: Vec<i16> = decode_bytes(&stored.vectors, "vectors")?
            .into_iter()
            .map(|b| i16::from(i8::from_le_bytes([b])))
            .collect();
        if dim == 0 || !vectors.len().is_multiple_of(dim) {
            return Err(NeighbourError::Encoding("vectors"));
        }
        let rows = vectors.len() / dim;
        let row_sources = decode_bytes(&stored.row_sources, "row_sources")?;
        let row_categories: Vec<u16> = decode_bytes(&stored.row_categories, "row_categories")?
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        if row_sources.len() != rows || row_categories.len() != rows {
            return Err(NeighbourError::Encoding("row_sources or row_categories"));
        }
        if row_sources
            .iter()
            .any(|&s| usize::from(s) >= stored.sources.len())
            || row_categories
                .iter()
                .any(|&c| usize::from(c) >= stored.categories.len())
        {
            return Err(NeighbourError::Invalid(
                "a row names a source or category that is not listed".into(),
            ));
        }
        let s = &stored.settings;
        if s.k == 0 || s.k > rows || s.category_k == 0 || s.category_k > s.k {
            return Err(NeighbourError::Invalid(format!(
                "k = {} and category_k = {} need 0 < category_k <= k <= rows ({rows})",
                s.k, s.category_k
            )));
        }
        if s.source_length_weights.len() != stored.sources.len() || s.temperature <= 0.0 {
            return Err(NeighbourError::Invalid(
                "one length weight per source and a positive temperature are needed".into(),
            ));
        }
        let mut labels = Vec::with_capacity(stored.heads.len());
        for h in &stored.heads {
            let l = switchyard_textclass::decode_dense(&h.labels)
                .filter(|l| l.len() == rows)
                .ok_or(NeighbourError::Encoding("a head's labels"))?;
            if h.calibration.len() != stored.sources.len() + 1
                || h.calibration.iter().any(|v| !v.is_finite())
            {
                return Err(NeighbourError::Invalid(format!(
                    "head {:?}: the calibration needs a slope and one finite intercept per source",
                    h.model
                )));
            }
            if h.category_rates.len() != stored.categories.len() {
                return Err(NeighbourError::Invalid(format!(
                    "head {:?}: one category rate per category is needed",
                    h.model
                )));
            }
            labels.push(l);
        }
        // Scoring reads only the decoded rows: the base64 text would be a second copy of the
        // base (megabytes) for as long as the router runs. `stored` encodes it again.
        let stored = StoredNeighbours {
            vectors: String::new(),
            row_sources: String::new(),
            row_categories: String::new(),
            ..stored
        };
        Ok(Self {
            dim,
            vectors,
            row_sources,
            row_categories,
            labels,
            stored,
        })
    }

    /// The estimator as stored in an artifact (its rows encoded again: the same text it was
    /// read from).
    pub fn stored(&self) -> StoredNeighbours {
        let vectors: Vec<i8> = self
            .vectors
            .iter()
            // Widened from `i8` in `new`: always in range.
            .map(|&v| i8::try_from(v).unwrap_or_default())
            .collect();
        StoredNeighbours {
            vectors: encode_i8(&vectors),
            row_sources: encode_u8(&self.row_sources),
            row_categories: encode_u16(&self.row_categories),
            ..self.stored.clone()
        }
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn rows(&self) -> usize {
        self.row_sources.len()
    }

    pub fn head_names(&self) -> impl Iterator<Item = &str> {
        self.stored.heads.iter().map(|h| h.model.as_str())
    }

    /// Checks that `embed` (the configured static model) gives the vectors the base was built
    /// with; `Err` says how far off it is.
    pub fn check_embedder(&self, embed: impl Fn(&str) -> Vec<f32>) -> Result<(), String> {
        let fp = &self.stored.embedder;
        let stored = switchyard_textclass::decode_dense(&fp.probe_vectors).unwrap_or_default();
        for (i, probe) in fp.probes.iter().enumerate() {
            let got = unit(&embed(probe));
            let want = stored.get(i * fp.dim..(i + 1) * fp.dim).unwrap_or(&[]);
            if got.len() != fp.dim || want.len() != fp.dim {
                return Err(format!(
                    "the router was built with `{}` ({} dimensions); the configured model gives {}",
                    fp.name,
                    fp.dim,
                    got.len()
                ));
            }
            let cos: f32 = got.iter().zip(want).map(|(a, b)| a * b).sum();
            if cos < 0.99 {
                return Err(format!(
                    "the configured static model is not the `{}` the router was built with (probe {i}: cosine {cos:.3})",
                    fp.name
                ));
            }
        }
        Ok(())
    }

    /// The `k` nearest base rows to the unit vector `query`, skipping rows `skip` rejects
    /// (training uses it to leave a fold out).
    pub fn nearest(&self, query: &[f32], skip: impl Fn(usize) -> bool) -> Nearest {
        let q: Vec<i16> = quantise(query).into_iter().map(i16::from).collect();
        let scale = 1.0 / (127.0 * 127.0);
        let mut sims: Vec<(usize, f32)> = self
            .vectors
            .chunks_exact(self.dim)
            .enumerate()
            .filter(|(i, _)| !skip(*i))
            .map(|(i, row)| (i, dot(row, &q) as f32 * scale))
            .collect();
        let k = self.stored.settings.k.min(sims.len());
        if k < sims.len() {
            sims.select_nth_unstable_by(k, |a, b| b.1.total_cmp(&a.1));
            sims.truncate(k);
        }
        sims.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        Nearest { rows: sims }
    }

    /// Every head's estimate for a prompt whose unit vector is `query`.
    pub fn estimate(&self, query: &[f32], prompt_chars: usize) -> Vec<Evidence> {
        let nearest = self.nearest(query, |_| false);
        (0..self.stored.heads.len())
            .map(|h| self.evidence(h, &nearest, prompt_chars, None))
            .collect()
    }

    /// Head `h`'s raw parts from `nearest`: (kNN rate, category rate, source shares).
    /// `category_rates` overrides the head's (training passes rates without the query's fold).
    pub fn parts(
        &self,
        h: usize,
        nearest: &Nearest,
        category_rates: Option<&[f32]>,
    ) -> (f32, f32, Vec<f32>) {
        let head = &self.stored.heads[h];
        let s = &self.stored.settings;
        let top = nearest.rows.first().map_or(0.0, |r| r.1);
        // One pseudo-neighbour at the base rate keeps an empty or far neighbourhood neutral.
        let (mut num, mut den) = (head.base_rate, 1.0);
        for &(i, sim) in &nearest.rows {
            let w = ((sim - top) / s.temperature).exp();
            num += w * self.labels[h][i];
            den += w;
        }
        let rates = category_rates.unwrap_or(&head.category_rates);
        let near_cat = nearest.rows.iter().take(s.category_k);
        let category = near_cat
            .clone()
            .map(|&(i, _)| rates[usize::from(self.row_categories[i])])
            .sum::<f32>()
            / near_cat.count().max(1) as f32;
        let mut shares = vec![0.0; self.stored.sources.len()];
        for &(i, _) in &nearest.rows {
            shares[usize::from(self.row_sources[i])] += 1.0;
        }
        let n = nearest.rows.len().max(1) as f32;
        shares.iter_mut().for_each(|v| *v /= n);
        (num / den, category, shares)
    }

    /// The uncalibrated score from raw parts and the closest neighbour's similarity, and its
    /// three terms.
    pub fn score(
        &self,
        h: usize,
        (knn, category, shares): (f32, f32, &[f32]),
        prompt_chars: usize,
        closest: f32,
    ) -> (f32, [f32; 3]) {
        let head = &self.stored.heads[h];
        let s = &self.stored.settings;
        let trust = s.trust(closest);
        let knn_term = trust * head.knn.z(logit(knn));
        let cat_term = trust * s.category_weight * head.category.z(logit(category));
        let length_weight = s.length_weight
            + shares
                .iter()
                .zip(&s.source_length_weights)
                .map(|(share, w)| share * w)
                .sum::<f32>();
        let len_term = length_weight * self.stored.shortness.z(shortness(prompt_chars));
        (
            knn_term + cat_term + len_term,
            [knn_term, cat_term, len_term],
        )
    }

    /// Head `h`'s probability for a score, its intercepts weighted by the neighbours'
    /// `shares` (no neighbours: their mean).
    pub fn calibrated(&self, h: usize, score: f32, shares: &[f32]) -> f32 {
        let (a, intercepts) = self.stored.heads[h]
            .calibration
            .split_first()
            .unwrap_or((&1.0, &[]));
        let total: f32 = shares.iter().sum();
        let b = if total > 0.0 {
            intercepts
                .iter()
                .zip(shares)
                .map(|(b, s)| b * s)
                .sum::<f32>()
                / total
        } else {
            intercepts.iter().sum::<f32>() / intercepts.len().max(1) as f32
        };
        sigmoid(a * score + b)
    }

    fn evidence(
        &self,
        h: usize,
        nearest: &Nearest,
        prompt_chars: usize,
        category_rates: Option<&[f32]>,
    ) -> Evidence {
        let (knn, category, shares) = self.parts(h, nearest, category_rates);
        let closest = nearest.rows.first().map_or(0.0, |r| r.1);
        let (score, [knn_term, category_term, length_term]) =
            self.score(h, (knn, category, &shares), prompt_chars, closest);
        let mut kinds: Vec<(String, f32)> = self
            .stored
            .sources
            .iter()
            .zip(&shares)
            .filter(|(_, s)| **s > 0.0)
            .map(|(src, s)| (src.description.clone(), *s))
            .collect();
        kinds.sort_by(|x, y| y.1.total_cmp(&x.1));
        Evidence {
            model: self.stored.heads[h].model.clone(),
            probability: self.calibrated(h, score, &shares),
            neighbour_rate: knn,
            neighbour_term: knn_term,
            category_rate: category,
            category_term,
            prompt_chars,
            length_term,
            closest_similarity: closest,
            trust: self.stored.settings.trust(closest),
            kinds,
        }
    }
}

#[cfg(test)]
mod tests;
