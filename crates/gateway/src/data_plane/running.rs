//! What runs now on this replica: the pipeline of the config version in force, a config
//! rollout's candidate pipeline, and the flags, prompts and rollouts in force. The control
//! plane publishes it (each part swapped whole); a request loads each part once.

use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};

use super::live::Live;
use super::pipeline::Pipeline;

pub struct Running {
    pub pipeline: ArcSwap<Pipeline>,
    /// The candidate pipeline of the config rollout in force, if any.
    pub candidate: ArcSwapOption<ConfigCandidate>,
    /// Flags, prompts and rollouts in force, swapped whole when the store's control
    /// generation moves.
    pub live: ArcSwap<Live>,
}

impl Running {
    pub fn new(pipeline: Pipeline, live: Live) -> Self {
        Running {
            pipeline: ArcSwap::from_pointee(pipeline),
            candidate: ArcSwapOption::empty(),
            live: ArcSwap::from_pointee(live),
        }
    }
}

/// The candidate pipeline of the config rollout in force.
pub struct ConfigCandidate {
    pub rollout: String,
    /// The running version it is judged against; a request on another version ignores it.
    pub baseline: String,
    pub pipeline: Arc<Pipeline>,
}
