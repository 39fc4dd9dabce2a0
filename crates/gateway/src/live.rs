//! The control plane's data in force on this replica: feature flags and prompt versions, read
//! from the store together and swapped whole when its control generation moves, so a request
//! sees one consistent state.

use switchyard_store::{SqliteStore, StoreError};

use crate::flags::FlagSet;
use crate::prompts::PromptSet;

#[derive(Debug, Default)]
pub struct Live {
    pub flags: FlagSet,
    pub prompts: PromptSet,
}

impl Live {
    pub fn load(store: &SqliteStore) -> Result<Self, StoreError> {
        Ok(Live {
            flags: FlagSet::new(store.flags()?),
            prompts: PromptSet::load(store)?,
        })
    }
}
