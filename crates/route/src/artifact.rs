//! The trained router on disk: one versioned JSON file with the feature config, the
//! policy bars, a description of the training data, and each head's non-zero weights.
//!
//! The only I/O in the crate: [`Artifact::load`] and [`Artifact::save`] read and write the
//! path the caller gives, through `switchyard-textclass`'s versioned JSON reader and writer.
//! Each head's weights are one base64 string of little-endian `f32`s (the whole
//! `FeatureConfig::dim()` vector, exact to the bit: `switchyard_textclass::encode_dense`),
//! about a quarter of the size of the same numbers written as JSON text; weights below a
//! pruning threshold are stored as 0. This layout is format version 1 and stays readable.

use std::path::Path;

use serde::{Deserialize, Serialize};
use switchyard_textclass::{decode_dense as decode, encode_dense as encode, load_json, save_json};
pub use switchyard_textclass::{ArtifactError, TrainingData};

use crate::estimator::Estimator;
use crate::features::FeatureConfig;
use crate::model::{Classifier, Head, LinearModel, TrainConfig};
use crate::neighbours::{Neighbours, StoredNeighbours};
use crate::policy::Bars;

/// The `format` field every artifact carries.
pub const FORMAT: &str = "switchyard-router";
/// The artifact layout this build reads and writes. Bump it when a field changes meaning.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredHead {
    pub model: String,
    pub bias: f32,
    /// Base64 (standard alphabet, padded) of `dim` little-endian `f32` weights.
    pub weights: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    pub format: String,
    pub format_version: u32,
    pub trained_on: TrainingData,
    pub features: FeatureConfig,
    pub train: TrainConfig,
    pub bars: Bars,
    /// Linear heads over text features (empty when `neighbours` scores instead).
    pub heads: Vec<StoredHead>,
    /// The neighbour estimate over static embeddings; when present it scores every head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub neighbours: Option<StoredNeighbours>,
}

impl Artifact {
    /// Build an artifact from trained heads, dropping weights with `|w| < prune`.
    pub fn from_heads(
        trained_on: TrainingData,
        features: FeatureConfig,
        train: TrainConfig,
        bars: Bars,
        heads: &[Head],
        prune: f32,
    ) -> Self {
        let heads = heads
            .iter()
            .map(|h| StoredHead {
                model: h.model.clone(),
                bias: h.linear.bias,
                weights: encode(&h.linear.weights, prune),
            })
            .collect();
        Self {
            format: FORMAT.to_owned(),
            format_version: FORMAT_VERSION,
            trained_on,
            features,
            train,
            bars,
            heads,
            neighbours: None,
        }
    }

    /// An artifact scored by the neighbour estimate.
    pub fn from_neighbours(trained_on: TrainingData, bars: Bars, neighbours: &Neighbours) -> Self {
        Self {
            format: FORMAT.to_owned(),
            format_version: FORMAT_VERSION,
            trained_on,
            features: FeatureConfig::default(),
            train: TrainConfig::default(),
            bars,
            heads: Vec::new(),
            neighbours: Some(neighbours.stored()),
        }
    }

    /// What scores this artifact's heads. `Err` only for a neighbour part that was not
    /// validated by [`Artifact::load`] (an artifact built in memory or parsed directly).
    pub fn estimator(&self) -> Result<Estimator, String> {
        match &self.neighbours {
            Some(n) => Neighbours::new(n.clone())
                .map(|n| Estimator::Neighbours(std::sync::Arc::new(n)))
                .map_err(|e| e.to_string()),
            None => Ok(Estimator::Linear(self.classifier())),
        }
    }

    pub fn load(path: &Path) -> Result<Self, ArtifactError> {
        let artifact: Artifact = load_json(path, FORMAT, FORMAT_VERSION)?;
        artifact
            .validate()
            .map_err(|problem| ArtifactError::Invalid {
                format: FORMAT,
                path: path.to_owned(),
                problem,
            })?;
        Ok(artifact)
    }

    pub fn save(&self, path: &Path) -> Result<(), ArtifactError> {
        save_json(self, path, FORMAT, FORMAT_VERSION)
    }

    fn validate(&self) -> Result<(), String> {
        self.features.ngrams().validate()?;
        if let Some(n) = &self.neighbours {
            Neighbours::new(n.clone()).map_err(|e| e.to_string())?;
        }
        let dim = self.features.dim();
        for h in &self.heads {
            let w = decode(&h.weights)
                .ok_or_else(|| format!("head {:?}: weights are not base64 f32s", h.model))?;
            if w.len() != dim {
                return Err(format!(
                    "head {:?}: {} weights, the feature config needs {dim}",
                    h.model,
                    w.len()
                ));
            }
            if !h.bias.is_finite() || w.iter().any(|v| !v.is_finite()) {
                return Err(format!("head {:?}: non-finite weight", h.model));
            }
        }
        Ok(())
    }

    /// The classifier this artifact describes (dense weight vectors, for fast dot products).
    pub fn classifier(&self) -> Classifier {
        let dim = self.features.dim();
        let heads = self
            .heads
            .iter()
            .map(|h| {
                // `load` has validated the encoding and length; an artifact built in memory
                // with a bad vector scores with zeros rather than failing the request.
                let mut weights = decode(&h.weights).unwrap_or_default();
                weights.resize(dim, 0.0);
                Head {
                    model: h.model.clone(),
                    linear: LinearModel {
                        weights,
                        bias: h.bias,
                    },
                }
            })
            .collect();
        Classifier::new(self.features.clone(), heads)
    }
}

/// Non-zero counts per head, for reports.
impl StoredHead {
    pub fn non_zero(&self) -> usize {
        decode(&self.weights).map_or(0, |w| w.iter().filter(|v| **v != 0.0).count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Artifact {
        let features = FeatureConfig {
            buckets_log2: 8,
            ..FeatureConfig::default()
        };
        let dim = features.dim();
        let mut weights = vec![0.0; dim];
        weights[3] = 0.25;
        weights[dim - 1] = -1.5;
        weights[7] = 1e-6;
        let head = Head {
            model: "weak".to_owned(),
            linear: LinearModel { weights, bias: 0.1 },
        };
        Artifact::from_heads(
            TrainingData {
                description: "toy".to_owned(),
                rows: 2,
                licence: "Apache-2.0".to_owned(),
            },
            features,
            TrainConfig::default(),
            Bars::default(),
            &[head],
            1e-4,
        )
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("router.json");
        let a = sample();
        assert_eq!(a.heads[0].non_zero(), 2, "tiny weight pruned");
        a.save(&path).unwrap();
        let b = Artifact::load(&path).unwrap();
        assert_eq!(a, b);
        let clf = b.classifier();
        let h = clf.head("weak").unwrap();
        assert_eq!(h.linear.weights[3], 0.25);
        assert_eq!(h.linear.weights[7], 0.0);
    }

    #[test]
    fn rejects_other_versions_and_bad_indices() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("router.json");
        let mut a = sample();
        a.format_version = 99;
        a.save(&path).unwrap();
        assert!(matches!(
            Artifact::load(&path),
            Err(ArtifactError::Version { version: 99, .. })
        ));

        let mut a = sample();
        a.heads[0].weights = encode(&[1.0; 3], 0.0);
        a.save(&path).unwrap();
        assert!(matches!(
            Artifact::load(&path),
            Err(ArtifactError::Invalid { .. })
        ));

        std::fs::write(&path, "{").unwrap();
        assert!(matches!(
            Artifact::load(&path),
            Err(ArtifactError::Json { .. })
        ));
        assert!(matches!(
            Artifact::load(&dir.path().join("missing.json")),
            Err(ArtifactError::Read { .. })
        ));
    }
}
