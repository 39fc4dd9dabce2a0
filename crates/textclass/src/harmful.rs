//! The harmful-request classifier: is a user's request one a model should not answer, and
//! which risk area is it in.
//!
//! 1. A request becomes one sparse vector: hashed word and character n-grams (when the
//!    artifact has them), then a sentence embedding of the request in the next slots. The
//!    embedding is the caller's to make (this crate loads no model); the artifact says which
//!    one it was trained on ([`Embedding`]), and a vector of another length is refused.
//! 2. One logistic head scores "harmful" (trained on Do-Not-Answer and XSTest's unsafe
//!    prompts against XSTest's safe-but-scary prompts and ordinary benign requests); the
//!    request is harmful when the score reaches the threshold.
//! 3. One logistic head per risk area ([`CATEGORIES`], Do-Not-Answer's five) names the
//!    category: the head with the highest score. It is named for every request, harmful or
//!    not, so a caller can act on some categories only.
//!
//! Category names are this module's constants, never text from a file, so a verdict can go
//! into metrics labels. Pure: no clocks, no I/O beyond reading an artifact from a path the
//! caller gives. It must not decide what happens to a harmful request.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::artifact::{load_json, save_json, ArtifactError, SparseWeights, TrainingData};
use crate::features::{Features, NgramConfig, NgramFeaturizer};
use crate::linear::{LinearModel, TrainConfig};

/// The `format` of a [`HarmfulArtifact`].
pub const HARMFUL_FORMAT: &str = "switchyard-textclass-harmful";
/// The layout this build reads and writes.
pub const HARMFUL_FORMAT_VERSION: u32 = 1;

/// The risk areas a verdict names: Do-Not-Answer's (Wang et al., 2023) five, shortened.
/// In order: information hazards (private or sensitive information), malicious uses
/// (assisting illegal or harmful acts), discrimination, exclusion, toxicity, hateful or
/// offensive content, misinformation harms, and human-chatbot interaction harms (mental
/// health crises, treating the chatbot as a human or a professional).
pub const CATEGORIES: [&str; 5] = [
    "information_hazard",
    "malicious_uses",
    "discrimination_toxicity",
    "misinformation",
    "human_chatbot",
];

/// The category named `name`, as its `'static` constant; `None` for an unknown name.
pub fn category(name: &str) -> Option<&'static str> {
    CATEGORIES.into_iter().find(|c| *c == name)
}

/// Which sentence embedding fills the dense slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Embedding {
    /// No dense slots: n-grams alone.
    None,
    /// The static 256-dimensional model (`models/minilm-static-256`).
    Static,
    /// MiniLM-L6-v2's mean-pooled, normalised 384-dimensional sentence vector.
    Minilm,
}

impl Embedding {
    pub fn as_str(self) -> &'static str {
        match self {
            Embedding::None => "none",
            Embedding::Static => "static",
            Embedding::Minilm => "minilm",
        }
    }
}

/// One logistic head over the artifact's layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Head {
    pub name: String,
    pub bias: f32,
    pub weights: SparseWeights,
}

impl Head {
    pub fn new(name: &str, model: &LinearModel, prune: f32) -> Self {
        Head {
            name: name.to_owned(),
            bias: model.bias,
            weights: SparseWeights::encode(&model.weights, prune),
        }
    }
}

/// A trained harmful-request classifier on disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HarmfulArtifact {
    pub format: String,
    pub format_version: u32,
    pub trained_on: TrainingData,
    /// Hashed n-grams, or `None` for the embedding alone.
    pub ngrams: Option<NgramConfig>,
    pub embedding: Embedding,
    /// Length of the embedding (0 with [`Embedding::None`]).
    pub dense_dim: usize,
    pub train: TrainConfig,
    /// Harmful scores at or above this are harmful.
    pub threshold: f32,
    /// P(harmful).
    pub harmful: Head,
    /// One per [`CATEGORIES`] entry, in any order.
    pub categories: Vec<Head>,
}

#[derive(Debug, thiserror::Error)]
pub enum HarmfulError {
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    #[error("harmful-request artifact: {0}")]
    Invalid(String),
}

impl HarmfulArtifact {
    pub fn load(path: &Path) -> Result<Self, HarmfulError> {
        let a: Self = load_json(path, HARMFUL_FORMAT, HARMFUL_FORMAT_VERSION)?;
        a.classifier()?;
        Ok(a)
    }

    pub fn save(&self, path: &Path) -> Result<(), ArtifactError> {
        save_json(self, path, HARMFUL_FORMAT, HARMFUL_FORMAT_VERSION)
    }

    /// Parse from JSON text already in memory (an artifact built into a binary).
    pub fn from_json(text: &str) -> Result<Self, HarmfulError> {
        let a: Self =
            serde_json::from_str(text).map_err(|e| HarmfulError::Invalid(e.to_string()))?;
        if a.format != HARMFUL_FORMAT || a.format_version != HARMFUL_FORMAT_VERSION {
            return Err(HarmfulError::Invalid(format!(
                "format {:?} version {}, this build reads {HARMFUL_FORMAT:?} version {HARMFUL_FORMAT_VERSION}",
                a.format, a.format_version
            )));
        }
        a.classifier()?;
        Ok(a)
    }

    /// The classifier this artifact describes, or what is wrong with it.
    pub fn classifier(&self) -> Result<HarmfulClassifier, HarmfulError> {
        let invalid = |m: String| HarmfulError::Invalid(m);
        if let Some(n) = &self.ngrams {
            n.validate().map_err(invalid)?;
        }
        let dense_ok = match self.embedding {
            Embedding::None => self.dense_dim == 0,
            Embedding::Static | Embedding::Minilm => (1..=4096).contains(&self.dense_dim),
        };
        if !dense_ok {
            return Err(invalid(format!(
                "embedding {} with {} dense slots",
                self.embedding.as_str(),
                self.dense_dim
            )));
        }
        if !self.threshold.is_finite() {
            return Err(invalid("threshold is not finite".to_owned()));
        }
        let layout = Layout {
            featurizer: self.ngrams.clone().map(NgramFeaturizer::new),
            embedding: self.embedding,
            dense_dim: self.dense_dim,
        };
        let head = |h: &Head| -> Result<LinearModel, HarmfulError> {
            let weights = h.weights.decode().map_err(invalid)?;
            if weights.len() != layout.dim() || !h.bias.is_finite() {
                return Err(invalid(format!(
                    "head {}: {} weights, the layout has {}",
                    h.name,
                    weights.len(),
                    layout.dim()
                )));
            }
            Ok(LinearModel {
                weights,
                bias: h.bias,
            })
        };
        let harmful = head(&self.harmful)?;
        let mut categories = Vec::with_capacity(CATEGORIES.len());
        for name in CATEGORIES {
            let h = self
                .categories
                .iter()
                .find(|h| h.name == name)
                .ok_or_else(|| invalid(format!("no head for category {name}")))?;
            categories.push((name, head(h)?));
        }
        if self.categories.len() != CATEGORIES.len() {
            return Err(invalid(format!(
                "{} category heads, expected {}",
                self.categories.len(),
                CATEGORIES.len()
            )));
        }
        Ok(HarmfulClassifier {
            layout,
            harmful,
            categories,
            threshold: self.threshold,
        })
    }
}

/// How a request becomes [`Features`]: n-grams in `[0, buckets)`, the embedding after them.
#[derive(Debug, Clone)]
pub struct Layout {
    pub featurizer: Option<NgramFeaturizer>,
    pub embedding: Embedding,
    pub dense_dim: usize,
}

impl Layout {
    /// Length of a weight vector.
    pub fn dim(&self) -> usize {
        self.buckets() + self.dense_dim
    }

    fn buckets(&self) -> usize {
        self.featurizer.as_ref().map_or(0, |f| f.config().buckets())
    }

    /// `None` when `dense` is not the embedding's length.
    pub fn features(&self, text: &str, dense: &[f32]) -> Option<Features> {
        if dense.len() != self.dense_dim {
            return None;
        }
        Some(match &self.featurizer {
            Some(f) => f.featurize_with(text, |_, _| unit(dense)),
            None => {
                let (indices, values) = unit(dense)
                    .into_iter()
                    .enumerate()
                    .filter(|(_, v)| *v != 0.0)
                    .map(|(i, v)| (i as u32, v))
                    .unzip();
                Features { indices, values }
            }
        })
    }
}

/// `v` scaled to unit length (zeros stay zeros): both embeddings enter the layout on the
/// scale of one n-gram group, whether or not their model normalises.
fn unit(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 && norm.is_finite() {
        v.iter().map(|x| x / norm).collect()
    } else {
        vec![0.0; v.len()]
    }
}

/// The classifier's answer for one request.
#[derive(Debug, Clone, PartialEq)]
pub struct HarmfulVerdict {
    /// P(harmful).
    pub score: f32,
    pub harmful: bool,
    pub threshold: f32,
    /// The most likely risk area (one of [`CATEGORIES`]) and its head's score.
    pub category: &'static str,
    pub category_score: f32,
}

#[derive(Debug, Clone)]
pub struct HarmfulClassifier {
    layout: Layout,
    harmful: LinearModel,
    categories: Vec<(&'static str, LinearModel)>,
    threshold: f32,
}

impl HarmfulClassifier {
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Which embedding the caller must pass to [`HarmfulClassifier::classify`].
    pub fn embedding(&self) -> Embedding {
        self.layout.embedding
    }

    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    pub fn with_threshold(mut self, threshold: f32) -> Self {
        self.threshold = threshold;
        self
    }

    /// Classifies `text` with its embedding `dense` (empty with [`Embedding::None`]);
    /// `None` when `dense` has the wrong length.
    pub fn classify(&self, text: &str, dense: &[f32]) -> Option<HarmfulVerdict> {
        let x = self.layout.features(text, dense)?;
        let score = self.harmful.predict(&x);
        let (category, category_score) = self
            .categories
            .iter()
            .map(|(name, m)| (*name, m.predict(&x)))
            .fold(
                ("", f32::NEG_INFINITY),
                |best, c| {
                    if c.1 > best.1 {
                        c
                    } else {
                        best
                    }
                },
            );
        Some(HarmfulVerdict {
            score,
            harmful: score >= self.threshold,
            threshold: self.threshold,
            category,
            category_score,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy(embedding: Embedding, dense_dim: usize) -> HarmfulArtifact {
        let ngrams = NgramConfig {
            buckets_log2: 8,
            ..NgramConfig::default()
        };
        let dim = ngrams.buckets() + dense_dim;
        // The harmful head reads the first dense slot; category heads prefer the last one.
        let mut w = vec![0.0; dim];
        if let Some(x) = w.get_mut(256) {
            *x = 8.0;
        }
        let harmful = LinearModel {
            weights: w,
            bias: -4.0,
        };
        let categories = CATEGORIES
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let mut w = vec![0.0; dim];
                if let Some(x) = w.get_mut(256 + 1) {
                    *x = if i == CATEGORIES.len() - 1 { 5.0 } else { 0.0 };
                }
                Head::new(
                    name,
                    &LinearModel {
                        weights: w,
                        bias: 0.0,
                    },
                    0.0,
                )
            })
            .collect();
        HarmfulArtifact {
            format: HARMFUL_FORMAT.to_owned(),
            format_version: HARMFUL_FORMAT_VERSION,
            trained_on: TrainingData {
                description: "toy".to_owned(),
                rows: 0,
                licence: "Apache-2.0".to_owned(),
            },
            ngrams: Some(ngrams),
            embedding,
            dense_dim,
            train: TrainConfig::default(),
            threshold: 0.5,
            harmful: Head::new("harmful", &harmful, 0.0),
            categories,
        }
    }

    #[test]
    fn classifies_with_the_embedding_and_names_the_best_category() {
        let clf = toy(Embedding::Static, 2).classifier().unwrap();
        let v = clf.classify("anything", &[3.0, 3.0]).unwrap();
        assert!(v.harmful && v.score > 0.8, "{v:?}");
        assert_eq!(v.category, "human_chatbot");
        let v = clf.classify("anything", &[0.0, 0.0]).unwrap();
        assert!(!v.harmful && v.score < 0.1, "{v:?}");
        assert!(clf.classify("anything", &[1.0]).is_none(), "wrong length");
        let strict = clf.clone().with_threshold(0.9999);
        assert!(!strict.classify("x", &[1.0, 1.0]).unwrap().harmful);
        assert!(
            !clf.classify("x", &[f32::NAN, 1.0]).unwrap().harmful,
            "NaN: zeros"
        );
    }

    #[test]
    fn round_trips_and_rejects_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("harmful.json");
        let a = toy(Embedding::Minilm, 2);
        a.save(&path).unwrap();
        assert_eq!(HarmfulArtifact::load(&path).unwrap(), a);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(HarmfulArtifact::from_json(&text).unwrap(), a);

        let mut b = a.clone();
        b.categories.pop();
        assert!(b.classifier().is_err(), "a category without a head");
        let mut b = a.clone();
        b.categories[0].name = "weather".to_owned();
        assert!(b.classifier().is_err(), "an unknown category");
        let mut b = a.clone();
        b.dense_dim = 3;
        assert!(b.classifier().is_err(), "weights shorter than the layout");
        let mut b = a.clone();
        b.embedding = Embedding::None;
        assert!(b.classifier().is_err(), "dense slots without an embedding");
        let mut b = a.clone();
        b.format_version = 9;
        b.save(&path).unwrap();
        assert!(matches!(
            HarmfulArtifact::load(&path),
            Err(HarmfulError::Artifact(ArtifactError::Version { .. }))
        ));
        assert!(HarmfulArtifact::from_json(&serde_json::to_string(&b).unwrap()).is_err());
    }

    #[test]
    fn ngrams_alone_or_embedding_alone() {
        let mut a = toy(Embedding::None, 0);
        a.harmful = Head::new(
            "harmful",
            &LinearModel {
                weights: vec![0.0; 256],
                bias: 1.0,
            },
            0.0,
        );
        for h in &mut a.categories {
            h.weights = SparseWeights::encode(&[0.0; 256], 0.0);
        }
        let v = a.classifier().unwrap().classify("hello", &[]).unwrap();
        assert!(v.harmful && CATEGORIES.contains(&v.category));

        let layout = Layout {
            featurizer: None,
            embedding: Embedding::Minilm,
            dense_dim: 3,
        };
        let x = layout.features("ignored", &[3.0, 0.0, -4.0]).unwrap();
        assert_eq!(x.indices, [0, 2]);
        assert_eq!(x.values, [0.6, -0.8], "scaled to unit length");
        assert_eq!(category("misinformation"), Some("misinformation"));
        assert_eq!(category("weather"), None);
    }
}
