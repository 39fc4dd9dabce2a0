//! Trained models on disk: versioned JSON files, and the pieces every artifact format shares.
//!
//! Owns the shared error type ([`ArtifactError`]), the versioned read ([`load_json`], which
//! checks `format` and `format_version` before the full schema), the write ([`save_json`]),
//! the training-data note every artifact carries ([`TrainingData`]), the two weight codecs
//! (dense base64 `f32`, as the router's files use, and [`SparseWeights`]), and the binary
//! classifier's own format ([`BinaryArtifact`]). The only I/O in the crate is reading or
//! writing the path a caller gives; nothing is fetched or cached.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::binary::{BinaryClassifier, DenseFeatures};
use crate::features::NgramConfig;
use crate::linear::{LinearModel, TrainConfig};

/// Which data trained an artifact, for its readers and its licence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingData {
    pub description: String,
    pub rows: usize,
    pub licence: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("reading {format} artifact {path}")]
    Read {
        format: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {format} artifact {path}")]
    Write {
        format: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{format} artifact {path} is not valid JSON for version {expected}")]
    Json {
        format: &'static str,
        expected: u32,
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("artifact {path}: format {found:?} version {version}, this build reads {format:?} version {expected}")]
    Version {
        format: &'static str,
        expected: u32,
        path: PathBuf,
        found: String,
        version: u32,
    },
    #[error("{format} artifact {path}: {problem}")]
    Invalid {
        format: &'static str,
        path: PathBuf,
        problem: String,
    },
}

/// Read a JSON artifact of the given format and version. The header is checked before the
/// full schema, so a file from a newer build says "wrong version" rather than "unknown field".
pub fn load_json<T: DeserializeOwned>(
    path: &Path,
    format: &'static str,
    version: u32,
) -> Result<T, ArtifactError> {
    let text = std::fs::read_to_string(path).map_err(|source| ArtifactError::Read {
        format,
        path: path.to_owned(),
        source,
    })?;
    #[derive(Deserialize)]
    struct Header {
        format: String,
        format_version: u32,
    }
    let json_err = |source| ArtifactError::Json {
        format,
        expected: version,
        path: path.to_owned(),
        source,
    };
    let header: Header = serde_json::from_str(&text).map_err(json_err)?;
    if header.format != format || header.format_version != version {
        return Err(ArtifactError::Version {
            format,
            expected: version,
            path: path.to_owned(),
            found: header.format,
            version: header.format_version,
        });
    }
    serde_json::from_str(&text).map_err(json_err)
}

/// Write an artifact as one line of JSON.
pub fn save_json<T: Serialize>(
    value: &T,
    path: &Path,
    format: &'static str,
    version: u32,
) -> Result<(), ArtifactError> {
    let text = serde_json::to_string(value).map_err(|source| ArtifactError::Json {
        format,
        expected: version,
        path: path.to_owned(),
        source,
    })?;
    std::fs::write(path, text).map_err(|source| ArtifactError::Write {
        format,
        path: path.to_owned(),
        source,
    })
}

/// Base64 (standard alphabet, padded) of every weight as a little-endian `f32`, weights
/// below `prune` in magnitude written as 0. Exact to the bit; suits small dense layouts.
pub fn encode_dense(weights: &[f32], prune: f32) -> String {
    let mut bytes = Vec::with_capacity(weights.len() * 4);
    for &w in weights {
        let w = if w.abs() < prune { 0.0f32 } else { w };
        bytes.extend_from_slice(&w.to_le_bytes());
    }
    STANDARD.encode(bytes)
}

/// The inverse of [`encode_dense`]; `None` if the text is not base64 of whole `f32`s.
pub fn decode_dense(text: &str) -> Option<Vec<f32>> {
    let bytes = STANDARD.decode(text).ok()?;
    if bytes.len() % 4 != 0 {
        return None;
    }
    Some(
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

/// The non-zero weights of a `dim`-long vector: ascending indices (base64 of little-endian
/// `u32`) and their values (base64 of little-endian `f32`). With 2^18 buckets and most of
/// them unused or pruned, this is a few percent of the dense encoding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SparseWeights {
    pub dim: usize,
    pub indices: String,
    pub values: String,
}

impl SparseWeights {
    /// Keep the weights with `|w| >= prune` (and non-zero).
    pub fn encode(weights: &[f32], prune: f32) -> Self {
        let mut idx = Vec::new();
        let mut val = Vec::new();
        for (i, &w) in weights.iter().enumerate() {
            if w != 0.0 && w.abs() >= prune {
                idx.extend_from_slice(&(i as u32).to_le_bytes());
                val.extend_from_slice(&w.to_le_bytes());
            }
        }
        Self {
            dim: weights.len(),
            indices: STANDARD.encode(idx),
            values: STANDARD.encode(val),
        }
    }

    /// The dense vector, or what is wrong with the encoding.
    pub fn decode(&self) -> Result<Vec<f32>, String> {
        let idx = STANDARD
            .decode(&self.indices)
            .map_err(|e| format!("indices are not base64: {e}"))?;
        let val = decode_dense(&self.values).ok_or("values are not base64 f32s")?;
        if idx.len() % 4 != 0 || idx.len() / 4 != val.len() {
            return Err(format!(
                "{} index bytes for {} values",
                idx.len(),
                val.len()
            ));
        }
        let mut out = vec![0.0f32; self.dim];
        let mut prev: Option<u32> = None;
        for (c, &v) in idx.chunks_exact(4).zip(&val) {
            let i = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            if prev.is_some_and(|p| p >= i) {
                return Err("indices are not strictly ascending".to_owned());
            }
            prev = Some(i);
            if !v.is_finite() {
                return Err(format!("weight {i} is not finite"));
            }
            let slot = out
                .get_mut(i as usize)
                .ok_or_else(|| format!("index {i} outside dim {}", self.dim))?;
            *slot = v;
        }
        Ok(out)
    }
}

/// The `format` of a [`BinaryArtifact`].
pub const BINARY_FORMAT: &str = "switchyard-textclass-binary";
/// The binary artifact layout this build reads and writes.
pub const BINARY_FORMAT_VERSION: u32 = 1;

/// The `params` entry holding the threshold of a layered detector's combined score
/// (injection, toxicity, bias: rules or lexicon, noisy-OR with this classifier).
pub const COMBINED_THRESHOLD: &str = "combined_threshold";

/// A trained binary text classifier on disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BinaryArtifact {
    pub format: String,
    pub format_version: u32,
    /// What a positive means, e.g. `prompt_injection`.
    pub label: String,
    pub trained_on: TrainingData,
    pub features: NgramConfig,
    pub train: TrainConfig,
    /// Scores at or above this are positive.
    pub threshold: f32,
    /// Named tuning values a detector built on this classifier keeps with its weights (for
    /// example the threshold of a combined score), so one file is one reproducible detector.
    #[serde(default)]
    pub params: BTreeMap<String, f32>,
    /// Dense features after the hashed buckets, when the classifier was trained with them;
    /// whoever loads the artifact must supply them (see [`BinaryClassifier::with_dense`]).
    /// Absent in files without them, so those read as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dense: Option<DenseSpec>,
    pub bias: f32,
    pub weights: SparseWeights,
}

/// Which dense features an artifact's weights after the buckets expect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenseSpec {
    /// The static embedding model, by its folder name under `models/` (e.g. `minilm-static-256`).
    pub embedder: String,
    /// How many values it gives (the embedding's width).
    pub dim: usize,
}

impl BinaryArtifact {
    /// Describe a trained model, dropping weights with `|w| < prune`.
    pub fn new(
        label: &str,
        trained_on: TrainingData,
        features: NgramConfig,
        train: TrainConfig,
        model: &LinearModel,
        threshold: f32,
        prune: f32,
    ) -> Self {
        Self {
            format: BINARY_FORMAT.to_owned(),
            format_version: BINARY_FORMAT_VERSION,
            label: label.to_owned(),
            trained_on,
            features,
            train,
            threshold,
            params: BTreeMap::new(),
            dense: None,
            bias: model.bias,
            weights: SparseWeights::encode(&model.weights, prune),
        }
    }

    pub fn load(path: &Path) -> Result<Self, ArtifactError> {
        let a: Self = load_json(path, BINARY_FORMAT, BINARY_FORMAT_VERSION)?;
        a.classifier().map_err(|problem| ArtifactError::Invalid {
            format: BINARY_FORMAT,
            path: path.to_owned(),
            problem,
        })?;
        Ok(a)
    }

    pub fn save(&self, path: &Path) -> Result<(), ArtifactError> {
        save_json(self, path, BINARY_FORMAT, BINARY_FORMAT_VERSION)
    }

    /// Parse from JSON text already in memory (an artifact embedded in a binary).
    pub fn from_json(text: &str) -> Result<Self, String> {
        let a: Self = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if a.format != BINARY_FORMAT || a.format_version != BINARY_FORMAT_VERSION {
            return Err(format!(
                "format {:?} version {}, this build reads {BINARY_FORMAT:?} version {BINARY_FORMAT_VERSION}",
                a.format, a.format_version
            ));
        }
        a.classifier()?;
        Ok(a)
    }

    /// A named tuning value from `params`, when it is there and finite.
    pub fn param(&self, name: &str) -> Option<f32> {
        self.params.get(name).copied().filter(|v| v.is_finite())
    }

    /// What a layered detector loads: the classifier, and the threshold of the combined
    /// score (`params.combined_threshold` when it is there and finite, else the
    /// classifier's own threshold).
    pub fn detector_parts(&self) -> Result<(BinaryClassifier, f32), String> {
        self.detector_parts_with(None)
    }

    /// [`BinaryArtifact::detector_parts`] with the dense features the artifact was trained
    /// with (its `dense` field). An artifact that names dense features refuses to load
    /// without them: scoring without them would silently move every score.
    pub fn detector_parts_with(
        &self,
        dense: Option<DenseFeatures>,
    ) -> Result<(BinaryClassifier, f32), String> {
        let mut classifier = self.classifier()?;
        match (&self.dense, dense) {
            (None, _) => {}
            (Some(_), Some(d)) => classifier = classifier.with_dense(d),
            (Some(spec), None) => {
                return Err(format!(
                    "trained with dense features from the static embedding model {:?}: \
                     load it with that model",
                    spec.embedder
                ))
            }
        }
        let threshold = self.param(COMBINED_THRESHOLD).unwrap_or(self.threshold);
        Ok((classifier, threshold))
    }

    /// The classifier this artifact describes, or what is wrong with it.
    pub fn classifier(&self) -> Result<BinaryClassifier, String> {
        self.features.validate()?;
        let weights = self.weights.decode()?;
        let dense = self.dense.as_ref().map_or(0, |d| d.dim);
        if dense > 4096 {
            return Err(format!("dense width {dense} above 4096"));
        }
        if weights.len() != self.features.buckets() + dense {
            return Err(format!(
                "{} weights, the feature config needs {}",
                weights.len(),
                self.features.buckets() + dense
            ));
        }
        if !self.bias.is_finite() || !self.threshold.is_finite() {
            return Err("bias or threshold is not finite".to_owned());
        }
        Ok(BinaryClassifier::new(
            self.features.clone(),
            LinearModel {
                weights,
                bias: self.bias,
            },
            self.threshold,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BinaryArtifact {
        let features = NgramConfig {
            buckets_log2: 8,
            ..NgramConfig::default()
        };
        let mut weights = vec![0.0; features.buckets()];
        weights[3] = 0.25;
        weights[255] = -1.5;
        weights[7] = 1e-6;
        BinaryArtifact::new(
            "toy",
            TrainingData {
                description: "toy".to_owned(),
                rows: 2,
                licence: "Apache-2.0".to_owned(),
            },
            features,
            TrainConfig::default(),
            &LinearModel { weights, bias: 0.1 },
            0.5,
            1e-4,
        )
    }

    #[test]
    fn dense_round_trip_prunes() {
        let w = [0.5, 1e-6, -2.0];
        assert_eq!(
            decode_dense(&encode_dense(&w, 1e-4)).unwrap(),
            [0.5, 0.0, -2.0]
        );
        assert!(decode_dense("AAA=").is_none());
    }

    #[test]
    fn binary_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clf.json");
        let mut a = sample();
        a.params.insert("combined_threshold".to_owned(), 0.7);
        a.save(&path).unwrap();
        let b = BinaryArtifact::load(&path).unwrap();
        assert_eq!(a, b);
        let clf = b.classifier().unwrap();
        assert_eq!(clf.model().weights[3], 0.25);
        assert_eq!(clf.model().weights[7], 0.0, "tiny weight pruned");
        assert_eq!(clf.model().non_zero(), 2);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(BinaryArtifact::from_json(&text).unwrap(), a);
    }

    #[test]
    fn detector_parts_take_a_finite_combined_threshold_else_the_classifiers() {
        let mut a = sample();
        assert_eq!(
            a.detector_parts().unwrap().1,
            0.5,
            "no param: the classifier's"
        );
        a.params.insert(COMBINED_THRESHOLD.to_owned(), 0.7);
        let (clf, threshold) = a.detector_parts().unwrap();
        assert_eq!(threshold, 0.7);
        assert_eq!(clf.threshold(), 0.5);
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            a.params.insert(COMBINED_THRESHOLD.to_owned(), bad);
            assert_eq!(a.detector_parts().unwrap().1, 0.5, "{bad}");
        }
        a.weights = SparseWeights::encode(&[1.0; 3], 0.0);
        assert!(a.detector_parts().is_err(), "an invalid classifier");
    }

    #[test]
    fn dense_features_widen_the_layout_and_must_be_supplied() {
        let mut a = sample();
        let mut weights = a.weights.decode().unwrap();
        weights.extend([0.0, 2.0]);
        a.weights = SparseWeights::encode(&weights, 0.0);
        assert!(a.classifier().is_err(), "no dense spec: wrong length");
        a.dense = Some(DenseSpec {
            embedder: "minilm-static-256".to_owned(),
            dim: 2,
        });
        assert!(a.classifier().is_ok());
        let err = a.detector_parts().unwrap_err();
        assert!(err.contains("minilm-static-256"), "{err}");
        let dense: DenseFeatures = std::sync::Arc::new(|_: &str| vec![0.0, 1.0]);
        let (clf, _) = a.detector_parts_with(Some(dense)).unwrap();
        assert!(clf.has_dense());
        // Written only when present, so files without dense features stay as they were.
        let text = serde_json::to_string(&sample()).unwrap();
        assert!(!text.contains("dense"));
        let text = serde_json::to_string(&a).unwrap();
        assert_eq!(BinaryArtifact::from_json(&text).unwrap(), a);
    }

    #[test]
    fn rejects_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clf.json");
        let mut a = sample();
        a.format_version = 99;
        a.save(&path).unwrap();
        assert!(matches!(
            BinaryArtifact::load(&path),
            Err(ArtifactError::Version { version: 99, .. })
        ));

        let mut a = sample();
        a.weights = SparseWeights {
            dim: 256,
            indices: STANDARD.encode([9u8, 0, 0, 0, 3, 0, 0, 0]),
            values: encode_dense(&[1.0, 2.0], 0.0),
        };
        a.save(&path).unwrap();
        assert!(matches!(
            BinaryArtifact::load(&path),
            Err(ArtifactError::Invalid { .. })
        ));

        let mut a = sample();
        a.weights = SparseWeights::encode(&[1.0; 3], 0.0);
        assert!(a.classifier().is_err(), "wrong length");

        std::fs::write(&path, "{").unwrap();
        assert!(matches!(
            BinaryArtifact::load(&path),
            Err(ArtifactError::Json { .. })
        ));
        assert!(matches!(
            BinaryArtifact::load(&dir.path().join("missing.json")),
            Err(ArtifactError::Read { .. })
        ));
    }
}
