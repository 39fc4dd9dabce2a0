//! A binary text classifier: an [`NgramFeaturizer`], a [`LinearModel`] over its buckets, and
//! a decision threshold. Scores are probabilities of the positive class; what "positive"
//! means belongs to the caller (injection, toxicity, ...).

use std::sync::Arc;

use crate::features::{Features, NgramConfig, NgramFeaturizer};
use crate::linear::LinearModel;

/// Dense values a classifier appends after its hashed buckets (a sentence embedding of the
/// text), computed from the lower-cased, truncated text the n-grams come from. The crate owns
/// no model: the caller who loads one (the gateway, an evaluation) passes it in.
pub type DenseFeatures = Arc<dyn Fn(&str) -> Vec<f32> + Send + Sync>;

#[derive(Clone)]
pub struct BinaryClassifier {
    featurizer: NgramFeaturizer,
    model: LinearModel,
    threshold: f32,
    dense: Option<DenseFeatures>,
}

impl std::fmt::Debug for BinaryClassifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BinaryClassifier")
            .field("featurizer", &self.featurizer)
            .field("non_zero_weights", &self.model.non_zero())
            .field("threshold", &self.threshold)
            .field("dense", &self.dense.is_some())
            .finish()
    }
}

impl BinaryClassifier {
    /// `model` should have `config.buckets()` weights; shorter vectors score missing
    /// weights as zero rather than failing.
    pub fn new(config: NgramConfig, model: LinearModel, threshold: f32) -> Self {
        Self {
            featurizer: NgramFeaturizer::new(config),
            model,
            threshold,
            dense: None,
        }
    }

    /// The same classifier with dense features after the buckets (weights at
    /// `buckets + i` read value `i` of `dense`).
    pub fn with_dense(mut self, dense: DenseFeatures) -> Self {
        self.dense = Some(dense);
        self
    }

    /// Whether dense features are appended.
    pub fn has_dense(&self) -> bool {
        self.dense.is_some()
    }

    pub fn featurizer(&self) -> &NgramFeaturizer {
        &self.featurizer
    }

    pub fn model(&self) -> &LinearModel {
        &self.model
    }

    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    /// The same classifier with another threshold (tuning for a deployment's tolerance).
    pub fn with_threshold(mut self, threshold: f32) -> Self {
        self.threshold = threshold;
        self
    }

    pub fn features(&self, text: &str) -> Features {
        match &self.dense {
            Some(dense) => self.featurizer.featurize_with(text, |t, _| dense(t)),
            None => self.featurizer.featurize(text),
        }
    }

    /// Probability that `text` is positive.
    pub fn score(&self, text: &str) -> f32 {
        self.model.predict(&self.features(text))
    }

    pub fn is_positive(&self, score: f32) -> bool {
        score >= self.threshold
    }
}

/// Noisy-OR of independent probabilities: `1 - Π(1 - p)`. How the detectors combine a rule
/// tier with a classifier: any one confident signal is enough, and weak ones add up.
pub fn noisy_or(scores: impl IntoIterator<Item = f32>) -> f32 {
    1.0 - scores
        .into_iter()
        .map(|p| 1.0 - p.clamp(0.0, 1.0))
        .product::<f32>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noisy_or_combines() {
        assert_eq!(noisy_or([]), 0.0);
        assert!((noisy_or([0.5, 0.5]) - 0.75).abs() < 1e-6);
        assert_eq!(noisy_or([1.0, 0.2]), 1.0);
    }

    #[test]
    fn threshold_decides() {
        let cfg = NgramConfig {
            buckets_log2: 8,
            ..NgramConfig::default()
        };
        let clf = BinaryClassifier::new(
            cfg,
            LinearModel {
                weights: vec![],
                bias: 0.0,
            },
            0.5,
        );
        let s = clf.score("anything");
        assert!((s - 0.5).abs() < 1e-6);
        assert!(clf.is_positive(s));
        assert!(!clf.clone().with_threshold(0.6).is_positive(s));
    }

    #[test]
    fn dense_values_land_after_the_buckets() {
        let cfg = NgramConfig {
            buckets_log2: 8,
            ..NgramConfig::default()
        };
        let mut weights = vec![0.0; 256 + 2];
        weights[257] = 3.0;
        let clf = BinaryClassifier::new(cfg, LinearModel { weights, bias: 0.0 }, 0.5);
        assert!(
            (clf.score("abc") - 0.5).abs() < 1e-6,
            "no dense: weight unused"
        );
        let clf = clf.with_dense(Arc::new(|t: &str| {
            assert_eq!(t, "abc", "the lower-cased text");
            vec![0.0, 1.0]
        }));
        assert!(clf.has_dense());
        assert!((clf.score("ABC") - crate::linear::sigmoid(3.0)).abs() < 1e-6);
    }
}
