//! The classifier: one logistic-regression head per candidate model, each predicting the
//! probability that this model answers the prompt well enough, over [`Features`].
//!
//! Training is plain per-example stochastic gradient descent with AdaGrad step sizes and L2
//! shrinkage on the touched weights, in a deterministic order (seeded shuffle), so the same
//! data and config always give the same weights. Targets may be soft (any value in `[0, 1]`):
//! cross-entropy with a soft target fits a calibrated expectation, which suits graded
//! judgements such as MT-Bench scores or AlpacaEval win probabilities.

use serde::{Deserialize, Serialize};

use crate::features::{FeatureConfig, Features, Featurizer};

/// One candidate's head: `P(good enough) = sigmoid(w · x + bias)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    pub model: String,
    pub weights: Vec<f32>,
    pub bias: f32,
}

impl Head {
    pub fn logit(&self, x: &Features) -> f32 {
        x.dot(&self.weights) + self.bias
    }

    pub fn predict(&self, x: &Features) -> f32 {
        sigmoid(self.logit(x))
    }
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
            .map(|h| (h.model.clone(), h.predict(&x)))
            .collect()
    }
}

/// Hyper-parameters of [`train_head`]. Fixed in advance for the reported evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub epochs: usize,
    /// AdaGrad base step size.
    pub learning_rate: f32,
    /// L2 penalty, applied to the weights an example touches.
    pub l2: f32,
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 8,
            learning_rate: 0.1,
            l2: 1e-4,
            seed: 0x5157_1c4a,
        }
    }
}

pub fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
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
    let mut w = vec![0.0f32; dim];
    let mut g2 = vec![0.0f32; dim];
    let n = examples.len().min(targets.len());
    // Start the bias at the log-odds of the mean target, so early steps learn the prompt
    // signal instead of the base rate.
    let mean = if n == 0 {
        0.5
    } else {
        targets[..n].iter().sum::<f32>() / n as f32
    };
    let mut bias = logit(mean.clamp(1e-3, 1.0 - 1e-3));
    let mut bias_g2 = 0.0f32;
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = SplitMix64(cfg.seed);
    const EPS: f32 = 1e-8;
    for _ in 0..cfg.epochs {
        // Fisher-Yates with a fixed-algorithm generator: reproducible on every platform.
        for i in (1..order.len()).rev() {
            let j = (rng.next() % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
        for &k in &order {
            let x = &examples[k];
            let p = sigmoid(x.dot(&w) + bias);
            let err = p - targets[k].clamp(0.0, 1.0);
            for (&i, &v) in x.indices.iter().zip(&x.values) {
                let i = i as usize;
                if i >= dim {
                    continue;
                }
                let grad = err * v + cfg.l2 * w[i];
                g2[i] += grad * grad;
                w[i] -= cfg.learning_rate * grad / (g2[i].sqrt() + EPS);
            }
            bias_g2 += err * err;
            bias -= cfg.learning_rate * err / (bias_g2.sqrt() + EPS);
        }
    }
    Head {
        model: model.to_owned(),
        weights: w,
        bias,
    }
}

fn logit(p: f32) -> f32 {
    (p / (1.0 - p)).ln()
}

/// SplitMix64 (Steele, Lea and Flood, 2014): a tiny generator whose output is fixed by its
/// definition, used only to shuffle training order.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
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
            assert!(head.predict(&f.featurize(e, None)) > 0.8, "{e}");
        }
        for h in hard {
            assert!(head.predict(&f.featurize(h, None)) < 0.2, "{h}");
        }
        // Unseen prompts follow the words they share with the training data.
        assert!(
            head.predict(&f.featurize("prove this rigorous theorem", None))
                < head.predict(&f.featurize("say hello please", None))
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
        assert!((head.predict(&Features::default()) - 0.5).abs() < 1e-6);
    }
}
