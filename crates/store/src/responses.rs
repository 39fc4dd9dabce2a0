//! The Responses API's stored responses (`store: true`, OpenAI's default): the `responses`
//! table, one row per response, owned by the tenant of the key that made it.
//!
//! A row keeps the response object as the client got it (`body`) and the conversation that
//! led to it (`context`: the input items of every earlier turn and this one's), both JSON
//! the gateway writes and reads; this module does not look inside them. A continuation
//! (`previous_response_id`) reads the row back by id and tenant: another tenant's id reads
//! as none. Rows are deleted by their owner or after their retention, by age (times passed
//! in). The gateway bounds a row's size before it is written.

use crate::sql::{delete_in_chunks, SqlReads, SqlRow};
use crate::StoreError;

/// One stored response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub id: String,
    pub tenant: String,
    pub created_ms: i64,
    /// The response object, as JSON.
    pub body: String,
    /// The conversation's input items up to and including this turn's, as a JSON array.
    pub context: String,
}

/// Where stored responses are kept. Every method blocks (see [`crate::Store`]).
pub trait ResponseStore {
    /// Keeps a response (its id is fresh: the gateway makes it).
    fn put_response(&self, response: &StoredResponse) -> Result<(), StoreError>;

    /// The response `id` of `tenant`, if it is kept.
    fn response(&self, tenant: &str, id: &str) -> Result<Option<StoredResponse>, StoreError>;

    /// Deletes the response `id` of `tenant`; returns whether there was one.
    fn delete_response(&self, tenant: &str, id: &str) -> Result<bool, StoreError>;

    /// Deletes the responses made before `before_ms`, a chunk per statement; returns how many.
    fn purge_responses(&self, before_ms: i64) -> Result<u64, StoreError>;
}

/// Rows one purge statement deletes at most, so the writer is never locked out for long.
const PURGE_CHUNK: i64 = 1_000;

fn read(row: &dyn SqlRow) -> Result<StoredResponse, StoreError> {
    Ok(StoredResponse {
        id: row.string(0)?,
        tenant: row.string(1)?,
        created_ms: row.i64(2)?,
        body: row.string(3)?,
        context: row.string(4)?,
    })
}

impl<S: SqlReads> ResponseStore for S {
    fn put_response(&self, r: &StoredResponse) -> Result<(), StoreError> {
        self.exec(|e| {
            e.execute(
                "INSERT INTO responses (id, tenant, created_ms, body, context) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                &[
                    (&r.id).into(),
                    (&r.tenant).into(),
                    r.created_ms.into(),
                    (&r.body).into(),
                    (&r.context).into(),
                ],
            )?;
            Ok(())
        })
    }

    fn response(&self, tenant: &str, id: &str) -> Result<Option<StoredResponse>, StoreError> {
        self.exec(|e| {
            e.one(
                "SELECT id, tenant, created_ms, body, context FROM responses \
                 WHERE id = ?1 AND tenant = ?2",
                &[id.into(), tenant.into()],
                read,
            )
        })
    }

    fn delete_response(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        let n = self.exec(|e| {
            e.execute(
                "DELETE FROM responses WHERE id = ?1 AND tenant = ?2",
                &[id.into(), tenant.into()],
            )
        })?;
        Ok(n > 0)
    }

    fn purge_responses(&self, before_ms: i64) -> Result<u64, StoreError> {
        delete_in_chunks(
            self,
            "DELETE FROM responses WHERE id IN (SELECT id FROM responses \
             WHERE created_ms < ?1 LIMIT ?2)",
            before_ms,
            PURGE_CHUNK,
        )
    }
}
