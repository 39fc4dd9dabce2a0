//! Logistic regression over [`Features`]: the model ([`LinearModel`]) and its trainer
//! ([`train_logistic`]).
//!
//! Training is plain per-example stochastic gradient descent with AdaGrad step sizes and L2
//! shrinkage on the touched weights, in a deterministic order (seeded SplitMix64 shuffle), so
//! the same data and config always give the same weights, bit for bit. Targets may be soft
//! (any value in `[0, 1]`): cross-entropy with a soft target fits a calibrated expectation.
//! No I/O, no clocks, no global randomness.

use serde::{Deserialize, Serialize};

use crate::features::Features;

/// `P(positive) = sigmoid(w · x + bias)`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LinearModel {
    pub weights: Vec<f32>,
    pub bias: f32,
}

impl LinearModel {
    pub fn logit(&self, x: &Features) -> f32 {
        x.dot(&self.weights) + self.bias
    }

    pub fn predict(&self, x: &Features) -> f32 {
        sigmoid(self.logit(x))
    }

    /// Weights that are not zero.
    pub fn non_zero(&self) -> usize {
        self.weights.iter().filter(|w| **w != 0.0).count()
    }
}

/// Hyper-parameters of [`train_logistic`].
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

/// Cosine similarity of two vectors; 0 when either is all zeros or their lengths differ
/// (vectors of two models are not comparable). The one cosine of the workspace: embeddings'
/// users (grounding, the embedding evaluations) take it from here.
#[must_use]
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    let (mut dot, mut na, mut nb) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}

/// Log-odds of a probability (the inverse of [`sigmoid`]); `p` must be inside `(0, 1)`.
pub fn logit(p: f32) -> f32 {
    (p / (1.0 - p)).ln()
}

/// Train a logistic model on featurised examples and targets in `[0, 1]`.
/// `dim` is the feature layout's length; indices at or beyond it are ignored.
pub fn train_logistic(
    examples: &[Features],
    targets: &[f32],
    dim: usize,
    cfg: &TrainConfig,
) -> LinearModel {
    let mut w = vec![0.0f32; dim];
    let mut g2 = vec![0.0f32; dim];
    let n = examples.len().min(targets.len());
    // Start the bias at the log-odds of the mean target, so early steps learn the text
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
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
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
    LinearModel { weights: w, bias }
}

/// SplitMix64 (Steele, Lea and Flood, 2014): a tiny generator whose output is fixed by its
/// definition, used only to shuffle training order.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
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

    #[test]
    fn cosine_is_scale_free_and_zero_for_what_cannot_be_compared() {
        assert!((cosine(&[1.0, 2.0], &[2.0, 4.0]) - 1.0).abs() < 1e-6);
        assert!((cosine(&[1.0, 0.0], &[-1.0, 0.0]) + 1.0).abs() < 1e-6);
        assert_eq!(cosine(&[1.0, 0.0], &[0.0, 1.0]), 0.0);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 1.0]), 0.0);
        assert_eq!(cosine(&[1.0, 1.0], &[1.0, 1.0, 1.0]), 0.0);
    }
    use crate::features::{NgramConfig, NgramFeaturizer};

    fn featurizer() -> NgramFeaturizer {
        NgramFeaturizer::new(NgramConfig {
            buckets_log2: 12,
            ..NgramConfig::default()
        })
    }

    #[test]
    fn learns_a_separable_toy_problem() {
        let f = featurizer();
        let pos = [
            "say hello",
            "greet me warmly",
            "say hi to my friend",
            "a short hello",
        ];
        let neg = [
            "prove the riemann hypothesis rigorously",
            "derive the navier stokes existence proof",
            "prove that p differs from np",
            "a rigorous proof of fermat",
        ];
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for _ in 0..5 {
            for e in pos {
                xs.push(f.featurize(e));
                ys.push(1.0);
            }
            for h in neg {
                xs.push(f.featurize(h));
                ys.push(0.0);
            }
        }
        let m = train_logistic(&xs, &ys, f.config().buckets(), &TrainConfig::default());
        for e in pos {
            assert!(m.predict(&f.featurize(e)) > 0.8, "{e}");
        }
        for h in neg {
            assert!(m.predict(&f.featurize(h)) < 0.2, "{h}");
        }
        assert!(
            m.predict(&f.featurize("prove this rigorous theorem"))
                < m.predict(&f.featurize("say hello please"))
        );
    }

    #[test]
    fn training_is_deterministic() {
        let f = featurizer();
        let xs: Vec<_> = ["a b", "c d", "e f"]
            .iter()
            .map(|t| f.featurize(t))
            .collect();
        let ys = [1.0, 0.0, 0.5];
        let dim = f.config().buckets();
        let a = train_logistic(&xs, &ys, dim, &TrainConfig::default());
        let b = train_logistic(&xs, &ys, dim, &TrainConfig::default());
        assert_eq!(a, b);
    }

    #[test]
    fn empty_data_gives_a_neutral_model() {
        let m = train_logistic(&[], &[], 8, &TrainConfig::default());
        assert!((m.predict(&Features::default()) - 0.5).abs() < 1e-6);
        assert_eq!(m.non_zero(), 0);
    }

    #[test]
    fn sigmoid_and_logit_invert() {
        for p in [0.01f32, 0.3, 0.5, 0.9] {
            assert!((sigmoid(logit(p)) - p).abs() < 1e-5);
        }
    }
}
