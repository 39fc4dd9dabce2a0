//! The classifier: one logistic-regression head per candidate model, each predicting the
//! probability that this model answers the prompt well enough, over [`Features`].
//!
//! The regression, its model type and its trainer are `switchyard-textclass`'s
//! ([`LinearModel`], [`train_logistic`]: AdaGrad SGD with L2, seeded shuffle, deterministic);
//! this module only names a head after its candidate model. Targets may be soft (any value in `[0, 1]`), which suits graded
//! judgements such as MT-Bench scores or AlpacaEval win probabilities.

use switchyard_textclass::train_logistic;
pub use switchyard_textclass::{sigmoid, LinearModel, TrainConfig};

use crate::features::{FeatureConfig, Features, Featurizer};

/// One candidate's head: the candidate's model name and its logistic model,
/// `P(good enough) = linear.predict(x)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    pub model: String,
    pub linear: LinearModel,
}

/// A featurizer and the heads trained over its features.
#[derive(Debug, Clone)]
pub struct Classifier {
    featurizer: Featurizer,
    heads: Vec<Head>,
}

impl Classifier {
    /// Heads must have `config.dim()` weights each; the artifact loader checks this.
    pub fn new(config: FeatureConfig, heads: Vec<Head>) -> Self {
        Self {
            featurizer: Featurizer::new(config),
            heads,
        }
    }

    pub fn featurizer(&self) -> &Featurizer {
        &self.featurizer
    }

    pub fn heads(&self) -> &[Head] {
        &self.heads
    }

    pub fn head(&self, model: &str) -> Option<&Head> {
        self.heads.iter().find(|h| h.model == model)
    }

    /// Probability of "good enough" for every head, in head order.
    pub fn predict_all(&self, prompt: &str, dense: Option<&[f32]>) -> Vec<(String, f32)> {
        let x = self.featurizer.featurize(prompt, dense);
        self.heads
            .iter()
            .map(|h| (h.model.clone(), h.linear.predict(&x)))
            .collect()
    }
}

/// Train one head on featurised examples and targets in `[0, 1]`.
/// `dim` is the feature layout's length ([`FeatureConfig::dim`]); indices beyond it are ignored.
pub fn train_head(
    model: &str,
    examples: &[Features],
    targets: &[f32],
    dim: usize,
    cfg: &TrainConfig,
) -> Head {
    Head {
        model: model.to_owned(),
        linear: train_logistic(examples, targets, dim, cfg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> FeatureConfig {
        FeatureConfig {
            buckets_log2: 12,
            ..FeatureConfig::default()
        }
    }

    #[test]
    fn learns_a_separable_toy_problem() {
        let f = Featurizer::new(cfg());
        let easy = [
            "say hello",
            "greet me warmly",
            "say hi to my friend",
            "a short hello",
        ];
        let hard = [
            "prove the riemann hypothesis rigorously",
            "derive the navier stokes existence proof",
            "prove that p differs from np",
            "a rigorous proof of fermat",
        ];
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for _ in 0..5 {
            for e in easy {
                xs.push(f.featurize(e, None));
                ys.push(1.0);
            }
            for h in hard {
                xs.push(f.featurize(h, None));
                ys.push(0.0);
            }
        }
        let head = train_head("small", &xs, &ys, f.config().dim(), &TrainConfig::default());
        for e in easy {
            assert!(head.linear.predict(&f.featurize(e, None)) > 0.8, "{e}");
        }
        for h in hard {
            assert!(head.linear.predict(&f.featurize(h, None)) < 0.2, "{h}");
        }
        // Unseen prompts follow the words they share with the training data.
        assert!(
            head.linear
                .predict(&f.featurize("prove this rigorous theorem", None))
                < head.linear.predict(&f.featurize("say hello please", None))
        );
    }

    #[test]
    fn training_is_deterministic() {
        let f = Featurizer::new(cfg());
        let xs: Vec<_> = ["a b", "c d", "e f"]
            .iter()
            .map(|t| f.featurize(t, None))
            .collect();
        let ys = [1.0, 0.0, 0.5];
        let a = train_head("m", &xs, &ys, f.config().dim(), &TrainConfig::default());
        let b = train_head("m", &xs, &ys, f.config().dim(), &TrainConfig::default());
        assert_eq!(a, b);
    }

    #[test]
    fn empty_data_gives_a_neutral_head() {
        let head = train_head("m", &[], &[], 8, &TrainConfig::default());
        assert!((head.linear.predict(&Features::default()) - 0.5).abs() < 1e-6);
    }
}
