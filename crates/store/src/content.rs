//! What a request said and what it was answered, stored apart from its record when the
//! config asks for it (`[telemetry] content = "masked"`): the `request_content` table, one row
//! per request, joined to `requests` on the request id.
//!
//! The gateway decides what goes in (masked, each text cut to a size) and hands it over as a
//! [`ContentJob`] that the telemetry writer's thread runs, so masking costs the request path
//! nothing. The writer stores it with its record (`sqlite`); this module reads it, and purges
//! it after its retention period; the request records (and every KPI over them) stay. The
//! types are the record's (`record`). It does not mask: what it is given is stored as it is.

use rusqlite::{params, OptionalExtension};

use crate::record::RequestContent;
use crate::{SqliteStore, StoreError};

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

impl ContentStore for SqliteStore {
    fn request_content(&self, request_id: &str) -> Result<Option<RequestContent>, StoreError> {
        let body: Option<String> = self.with(|conn| {
            conn.prepare_cached("SELECT body FROM request_content WHERE request_id = ?1 LIMIT 1")?
                .query_row(params![request_id], |row| row.get(0))
                .optional()
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
        let mut purged = 0;
        loop {
            let n = self.with(|conn| {
                conn.prepare_cached(
                    "DELETE FROM request_content WHERE rowid IN (SELECT rowid FROM request_content \
                     WHERE started_at_ms < ?1 LIMIT ?2)",
                )?
                .execute(params![before_ms, PURGE_CHUNK])
            })?;
            purged += n as u64;
            if (n as i64) < PURGE_CHUNK {
                return Ok(purged);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{ContentAnswer, ContentMessage, ContentToolCall, RequestRecord};
    use crate::RecordStore;

    fn with_content(id: &str, at: i64, content: Option<RequestContent>) -> RequestRecord {
        RequestRecord {
            request_id: id.into(),
            started_at_ms: at,
            endpoint: "chat".into(),
            status: 200,
            content: content.map(Box::new),
            ..RequestRecord::default()
        }
    }

    fn conversation(text: &str) -> RequestContent {
        RequestContent {
            messages: vec![
                ContentMessage {
                    role: "system".into(),
                    text: "Be brief.".into(),
                    ..ContentMessage::default()
                },
                ContentMessage {
                    role: "user".into(),
                    text: text.into(),
                    ..ContentMessage::default()
                },
            ],
            omitted_messages: 0,
            answer: Some(ContentAnswer {
                text: "Done.".into(),
                tool_calls: vec![ContentToolCall {
                    name: "send".into(),
                    arguments: r#"{"to":"<EMAIL_1>"}"#.into(),
                }],
                finish_reason: Some("tool_calls".into()),
            }),
        }
    }

    #[test]
    fn content_is_written_with_its_record_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_in(dir.path()).unwrap();
        store
            .write_batch(&[
                with_content("a", 1, Some(conversation("mail <EMAIL_1>"))),
                with_content("b", 2, None),
            ])
            .unwrap();
        assert_eq!(
            store.request_content("a").unwrap(),
            Some(conversation("mail <EMAIL_1>"))
        );
        assert_eq!(store.request_content("b").unwrap(), None);
        // The record itself reads as before, without its content.
        assert_eq!(
            store.request("a").unwrap().unwrap(),
            with_content("a", 1, None)
        );
    }

    #[test]
    fn the_purge_deletes_old_content_and_keeps_the_records() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_in(dir.path()).unwrap();
        let records: Vec<RequestRecord> = (0..12_000)
            .map(|i| with_content(&format!("r{i}"), i, Some(conversation("hi"))))
            .collect();
        store.write_batch(&records).unwrap();
        // More than one chunk goes.
        assert_eq!(store.purge_content(11_000).unwrap(), 11_000);
        assert_eq!(store.request_content("r10999").unwrap(), None);
        assert!(store.request_content("r11000").unwrap().is_some());
        assert_eq!(store.purge_content(11_000).unwrap(), 0);
        assert_eq!(store.count().unwrap(), 12_000);
    }

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
        store
            .write_batch(&[with_content("new", 6, Some(conversation("x")))])
            .unwrap();
        assert_eq!(
            store.request_content("new").unwrap(),
            Some(conversation("x"))
        );
    }
}
