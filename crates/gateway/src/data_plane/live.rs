//! The control plane's data in force on this replica: feature flags, prompt versions and
//! rollouts, read from the store together and swapped whole when its control generation
//! moves, so a request sees one consistent state.

use switchyard_store::{Store, StoreError};

use crate::data_plane::arms::{RolloutSet, SharedStats};
use crate::data_plane::flags::FlagSet;
use crate::data_plane::prompts::PromptSet;

pub struct Live {
    pub flags: FlagSet,
    pub prompts: PromptSet,
    pub rollouts: RolloutSet,
    /// Where requests that took a rollout's arm report their outcome (kept across reloads).
    pub stats: SharedStats,
}

impl Live {
    pub fn load(store: &dyn Store, stats: SharedStats) -> Result<Self, StoreError> {
        Ok(Live {
            flags: FlagSet::new(store.flags()?),
            prompts: PromptSet::load(store)?,
            rollouts: RolloutSet::new(store.rollouts(true)?),
            stats,
        })
    }
}
