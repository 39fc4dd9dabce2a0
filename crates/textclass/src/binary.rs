//! A binary text classifier: an [`NgramFeaturizer`], a [`LinearModel`] over its buckets, and
//! a decision threshold. Scores are probabilities of the positive class; what "positive"
//! means belongs to the caller (injection, toxicity, ...).

use crate::features::{Features, NgramConfig, NgramFeaturizer};
use crate::linear::LinearModel;

#[derive(Debug, Clone)]
pub struct BinaryClassifier {
    featurizer: NgramFeaturizer,
    model: LinearModel,
    threshold: f32,
}

impl BinaryClassifier {
    /// `model` should have `config.buckets()` weights; shorter vectors score missing
    /// weights as zero rather than failing.
    pub fn new(config: NgramConfig, model: LinearModel, threshold: f32) -> Self {
        Self {
            featurizer: NgramFeaturizer::new(config),
            model,
            threshold,
        }
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
        self.featurizer.featurize(text)
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
}
