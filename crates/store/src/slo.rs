//! Where the SLO runtime keeps its state between runs.

use crate::error::StoreError;

/// The SLO runtime's state, one JSON document replaced each time. Every method blocks.
pub trait SloStore {
    /// Saves the SLO runtime's state (one JSON document, replaced each time).
    fn save_slo_state(&self, body: &str, at_ms: i64) -> Result<(), StoreError>;

    /// The SLO runtime's saved state, if any.
    fn slo_state(&self) -> Result<Option<String>, StoreError>;
}
