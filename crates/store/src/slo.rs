//! Where the SLO runtime keeps its state between runs.

use crate::error::StoreError;
use crate::sql::SqlReads;

/// The SLO runtime's state, one JSON document replaced each time. Every method blocks.
pub trait SloStore {
    /// Saves the SLO runtime's state (one JSON document, replaced each time).
    fn save_slo_state(&self, body: &str, at_ms: i64) -> Result<(), StoreError>;

    /// The SLO runtime's saved state, if any.
    fn slo_state(&self) -> Result<Option<String>, StoreError>;
}

impl<S: SqlReads> SloStore for S {
    fn save_slo_state(&self, body: &str, at_ms: i64) -> Result<(), StoreError> {
        self.exec(|e| {
            e.execute(
                "INSERT INTO slo_state (id, body, saved_at_ms) VALUES (1, ?1, ?2) \
                 ON CONFLICT (id) DO UPDATE SET body = excluded.body, \
                 saved_at_ms = excluded.saved_at_ms",
                &[body.into(), at_ms.into()],
            )
        })?;
        Ok(())
    }

    fn slo_state(&self) -> Result<Option<String>, StoreError> {
        self.exec(|e| {
            e.one("SELECT body FROM slo_state WHERE id = 1", &[], |r| {
                r.string(0)
            })
        })
    }
}
