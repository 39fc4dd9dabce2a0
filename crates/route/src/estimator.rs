//! What scores a candidate: a linear classifier over the prompt's text features, or the
//! neighbour estimate over the prompt's static embedding. A router artifact holds one or the
//! other; the policy only sees probabilities per head.

use std::sync::Arc;

use crate::model::Classifier;
use crate::neighbours::{unit, Evidence, Neighbours};

#[derive(Debug, Clone)]
pub enum Estimator {
    Linear(Classifier),
    Neighbours(Arc<Neighbours>),
}

/// Every head's probability of answering well enough, and, from the neighbour estimate, what
/// moved each one.
#[derive(Debug, Clone, Default)]
pub struct Estimates {
    pub probabilities: Vec<f32>,
    pub evidence: Vec<Evidence>,
}

impl Estimator {
    pub fn head_position(&self, model: &str) -> Option<usize> {
        match self {
            Self::Linear(c) => c.heads().iter().position(|h| h.model == model),
            Self::Neighbours(n) => n.head_names().position(|h| h == model),
        }
    }

    /// The neighbour estimate, when this estimator needs a static embedding of the prompt.
    pub fn neighbours(&self) -> Option<&Neighbours> {
        match self {
            Self::Linear(_) => None,
            Self::Neighbours(n) => Some(n),
        }
    }

    /// Scores `prompt`. `dense` is the prompt's static embedding; the neighbour estimate
    /// without one (the caller had no model) sees every base row as equally far, which gives
    /// about the base rate: a neutral answer, not a failure.
    pub fn estimate(&self, prompt: &str, dense: Option<&[f32]>) -> Estimates {
        match self {
            Self::Linear(c) => {
                let x = c.featurizer().featurize(prompt, dense);
                Estimates {
                    probabilities: c.heads().iter().map(|h| h.linear.predict(&x)).collect(),
                    evidence: Vec::new(),
                }
            }
            Self::Neighbours(n) => {
                let query = dense
                    .filter(|d| d.len() == n.dim())
                    .map_or_else(|| vec![0.0; n.dim()], unit);
                let evidence = n.estimate(&query, prompt.chars().count());
                Estimates {
                    probabilities: evidence.iter().map(|e| e.probability).collect(),
                    evidence,
                }
            }
        }
    }
}
