//! What a request said and what it was answered, stored apart from its record when the
//! config asks for it (`[telemetry] content = "masked"`): the `request_content` table, one row
//! per request, joined to `requests` on the request id.
//!
//! The gateway decides what goes in (masked, each text cut to a size) and hands it over as a
//! [`ContentJob`] that the telemetry writer's thread runs, so masking costs the request path
//! nothing. The writer stores it with its record (`sqlite`); this module reads it, and purges
//! it after its retention period; the request records (and every KPI over them) stay. The
//! types are the record's (`record`). It does not mask: what it is given is stored as it is.

use crate::record::RequestContent;
use crate::sql::{delete_in_chunks, SqlReads};
use crate::StoreError;

/// Makes a request's content, on the telemetry writer's thread (masking is the heavy part).
pub type ContentJob = Box<dyn FnOnce() -> RequestContent + Send>;

/// Rows one purge transaction deletes at most, so the writer is never locked out for long.
const PURGE_CHUNK: i64 = 5_000;

/// What requests said and were answered, kept apart from their records. Written with the
/// records ([`crate::RecordStore::write_batch`]); every method blocks.
pub trait ContentStore {
    /// The stored content of a request, if any was stored and not purged yet.
    fn request_content(&self, request_id: &str) -> Result<Option<RequestContent>, StoreError>;

    /// Deletes the content of requests started before `before_ms`, a chunk per transaction;
    /// returns how many requests lost theirs. Their records stay.
    fn purge_content(&self, before_ms: i64) -> Result<u64, StoreError>;
}

impl<S: SqlReads> ContentStore for S {
    fn request_content(&self, request_id: &str) -> Result<Option<RequestContent>, StoreError> {
        let body = self.exec(|e| {
            e.one(
                "SELECT body FROM request_content WHERE request_id = ?1 LIMIT 1",
                &[request_id.into()],
                |row| row.string(0),
            )
        })?;
        body.map(|b| {
            serde_json::from_str(&b).map_err(|source| StoreError::Json {
                what: format!("the stored content of request {request_id}"),
                source,
            })
        })
        .transpose()
    }

    fn purge_content(&self, before_ms: i64) -> Result<u64, StoreError> {
        delete_in_chunks(
            self,
            "DELETE FROM request_content WHERE rowid IN (SELECT rowid FROM request_content \
             WHERE started_at_ms < ?1 LIMIT ?2)",
            before_ms,
            PURGE_CHUNK,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{ContentMessage, RequestRecord};
    use crate::{RecordStore, SqliteStore};

    #[test]
    fn a_store_from_before_content_upgrades_and_keeps_its_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("switchyard.db");
        {
            // As the build before the content table left it, with a record in it.
            let old = crate::sqlite::open_old_schema(&path, 9);
            old.execute_batch(
                "INSERT INTO requests (request_id, started_at_ms, endpoint, attempts, stream, \
                 status, latency_ms, prompt_tokens, completion_tokens, usage_counted, cost_nanos) \
                 VALUES ('old', 5, 'chat', 1, 0, 200, 1.0, 3, 4, 0, 7)",
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.request("old").unwrap().unwrap().cost_nanos, 7);
        assert_eq!(store.request_content("old").unwrap(), None);
        let said = RequestContent {
            messages: vec![ContentMessage {
                role: "user".into(),
                text: "x".into(),
                ..ContentMessage::default()
            }],
            ..RequestContent::default()
        };
        let new = RequestRecord {
            request_id: "new".into(),
            content: Some(Box::new(said.clone())),
            ..RequestRecord::default()
        };
        store.write_batch(&[new]).unwrap();
        assert_eq!(store.request_content("new").unwrap(), Some(said));
    }
}
