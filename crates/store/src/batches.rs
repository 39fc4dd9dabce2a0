//! The Batch API's durable state: uploaded and produced files (`batch_files`, with their
//! bytes), batches (`batches`) and each batch's lines (`batch_lines`: the request, its
//! status, attempts, lease and result).
//!
//! How replicas share a batch's lines:
//! 1. A line is `pending` until a replica claims it ([`BatchStore::claim_lines`]): one
//!    statement sets it `running` under the replica's name until a lease expires, and counts
//!    an attempt. A `running` line whose lease expired (its replica died) is claimable again,
//!    so every line runs at least once; one in flight at a crash may run twice.
//! 2. The claimant records its end ([`BatchStore::finish_line`]: `done` or `failed`, with the
//!    output line, and the batch's counts moved in the same transaction) only while it still
//!    holds the line: a replica whose lease was taken over records nothing.
//! 3. A retryable failure puts the line back `pending` with a time before which it is not
//!    claimed ([`BatchStore::retry_line`]), its backoff.
//! 4. Cancelling turns the pending lines `cancelled`, and so does closing a cancelling
//!    batch's lines put back since or abandoned; expiry turns pending and abandoned lines
//!    `expired`. When no line is pending or running the batch is finalised, once: the
//!    transaction that stores its files checks, under the batch's lock, that its status is
//!    still the one finalisation started from.
//!
//! The gateway reads the clock and writes the JSON; this module keeps rows. Batch times are
//! Unix seconds (what OpenAI's objects carry), leases and ordering Unix milliseconds.

use crate::sql::{limit, Exec, Lock, SqlRow, SqlStore};
use crate::StoreError;

/// Line statuses.
pub const LINE_PENDING: &str = "pending";
pub const LINE_RUNNING: &str = "running";
pub const LINE_DONE: &str = "done";
pub const LINE_FAILED: &str = "failed";
pub const LINE_CANCELLED: &str = "cancelled";
pub const LINE_EXPIRED: &str = "expired";

/// A file's row (its bytes apart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    pub id: String,
    pub tenant: String,
    pub filename: String,
    pub purpose: String,
    pub bytes: u64,
    /// Unix ms: ordering, and `created_at` in seconds.
    pub created_ms: i64,
    /// Unix seconds; `None`: kept until deleted.
    pub expires_at: Option<i64>,
}

/// A batch's row. Status names are OpenAI's (`validating`, `in_progress`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoredBatch {
    pub id: String,
    pub tenant: String,
    /// The key that created it, whose limits its lines count against.
    pub key_id: String,
    /// The SHA-256 (hex) of that key's secret, as the config holds it: lines run as that key
    /// while the config still has it.
    pub key_hash: String,
    pub endpoint: String,
    pub input_file_id: String,
    pub completion_window: String,
    pub status: String,
    /// `errors` as JSON, when the input file was invalid.
    pub errors: Option<String>,
    /// `metadata` as JSON.
    pub metadata: Option<String>,
    pub output_file_id: Option<String>,
    pub error_file_id: Option<String>,
    pub created_ms: i64,
    pub in_progress_at: Option<i64>,
    pub expires_at: i64,
    pub finalizing_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub failed_at: Option<i64>,
    pub expired_at: Option<i64>,
    pub cancelling_at: Option<i64>,
    pub cancelled_at: Option<i64>,
    pub total: u64,
    pub completed: u64,
    pub failed: u64,
}

/// A line of a new batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLine {
    pub line: u64,
    pub custom_id: String,
    pub body: String,
}

/// A line a replica claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedLine {
    pub batch_id: String,
    pub line: u64,
    pub custom_id: String,
    pub body: String,
    /// Attempts so far, this one included.
    pub attempts: u32,
}

/// A line as finalisation reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineResult {
    pub line: u64,
    pub custom_id: String,
    pub status: String,
    /// The output or error file's line, for `done` and `failed` lines.
    pub result: Option<String>,
}

/// A file a finalised batch produced, with its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducedFile {
    pub file: StoredFile,
    pub content: Vec<u8>,
}

/// What [`BatchStore::cancel_batch`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancel {
    /// The batch is cancelling now (or was already).
    Cancelling(StoredBatch),
    /// It had ended: nothing to cancel.
    Ended(StoredBatch),
    NotFound,
}

/// Files, batches and their lines. Every method blocks (see [`crate::Store`] for why).
pub trait BatchStore {
    /// Keeps a file and its bytes.
    fn put_file(&self, file: &StoredFile, content: &[u8]) -> Result<(), StoreError>;

    /// The tenant's file `id`.
    fn file(&self, tenant: &str, id: &str) -> Result<Option<StoredFile>, StoreError>;

    /// The bytes of the tenant's file `id`.
    fn file_content(&self, tenant: &str, id: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// The tenant's files, newest first, of `purpose` when given, after the file `after`
    /// (a cursor: the last id of the previous page), at most `limit`.
    fn files(
        &self,
        tenant: &str,
        purpose: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredFile>, StoreError>;

    /// Deletes the tenant's file `id`; returns whether there was one.
    fn delete_file(&self, tenant: &str, id: &str) -> Result<bool, StoreError>;

    /// Keeps a new batch with its lines (`pending`), in one transaction.
    fn create_batch(&self, batch: &StoredBatch, lines: &[NewLine]) -> Result<(), StoreError>;

    /// The tenant's batch `id`.
    fn batch(&self, tenant: &str, id: &str) -> Result<Option<StoredBatch>, StoreError>;

    /// The tenant's batches, newest first, after the batch `after`, at most `limit`.
    fn batches(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredBatch>, StoreError>;

    /// The batches still to be worked on (validating, in progress, finalizing, cancelling),
    /// of every tenant, oldest first, at most `limit`.
    fn open_batches(&self, limit: usize) -> Result<Vec<StoredBatch>, StoreError>;

    /// Moves a `validating` batch to `in_progress` at `now_s`; returns whether it moved.
    fn start_batch(&self, id: &str, now_s: i64) -> Result<bool, StoreError>;

    /// Claims up to `n` lines of an `in_progress` batch for `owner` until `now_ms + lease_ms`
    /// (1. above): pending lines due at `now_ms`, and running lines whose lease expired.
    fn claim_lines(
        &self,
        batch_id: &str,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
        n: usize,
    ) -> Result<Vec<ClaimedLine>, StoreError>;

    /// Records a claimed line's end (2. above): `failed` or done, with its output line.
    /// Returns whether `owner` still held it (and so recorded it).
    fn finish_line(
        &self,
        batch_id: &str,
        line: u64,
        owner: &str,
        failed: bool,
        result: &str,
    ) -> Result<bool, StoreError>;

    /// Puts a claimed line back, not to be claimed before `not_before_ms` (3. above).
    fn retry_line(
        &self,
        batch_id: &str,
        line: u64,
        owner: &str,
        not_before_ms: i64,
    ) -> Result<bool, StoreError>;

    /// Extends to `until_ms` the lease of every line `owner` still holds (a line waiting for
    /// capacity, or slow to answer, stays its holder's while the holder lives); returns how
    /// many.
    fn renew_lines(&self, owner: &str, until_ms: i64) -> Result<u64, StoreError>;

    /// Puts every line `owner` holds back to `pending` (a clean shutdown: another replica,
    /// or this one restarted, takes them at once); returns how many.
    fn release_lines(&self, owner: &str) -> Result<u64, StoreError>;

    /// Cancels the tenant's batch at `now_s` (4. above).
    fn cancel_batch(&self, tenant: &str, id: &str, now_s: i64) -> Result<Cancel, StoreError>;

    /// Closes the pending lines of a batch that is ending, and its running lines whose lease
    /// expired at `now_ms` (4. above): an `in_progress` batch's (the caller found its window
    /// past) are `expired` and counted failed, a `cancelling` batch's (a line given back or
    /// put back for a retry after the cancel) `cancelled`. Returns how many.
    fn close_lines(&self, batch_id: &str, now_ms: i64) -> Result<u64, StoreError>;

    /// How many of the batch's lines are pending or running.
    fn open_lines(&self, batch_id: &str) -> Result<u64, StoreError>;

    /// Moves an `in_progress` batch with no open line to `finalizing` at `now_s`; returns
    /// whether it moved.
    fn begin_finalizing(&self, batch_id: &str, now_s: i64) -> Result<bool, StoreError>;

    /// Every line of the batch, by number, with its result.
    fn line_results(&self, batch_id: &str) -> Result<Vec<LineResult>, StoreError>;

    /// Ends a batch whose status is still `from` (`finalizing` or `cancelling`) with
    /// `status` at `now_s` (its `<status>_at`), storing its output and error files, in one
    /// transaction under the batch's lock; returns whether this call ended it.
    fn finish_batch(
        &self,
        batch_id: &str,
        from: &str,
        status: &str,
        now_s: i64,
        output: Option<&ProducedFile>,
        errors: Option<&ProducedFile>,
    ) -> Result<bool, StoreError>;

    /// Deletes files that expired at `now_s`, and ended batches (with their lines) created
    /// before `batches_before_ms`; returns how many rows of files and batches went.
    fn purge_batches(&self, now_s: i64, batches_before_ms: i64) -> Result<u64, StoreError>;
}

const FILE_COLUMNS: &str = "id, tenant, filename, purpose, bytes, created_ms, expires_at";

fn file_row(r: &dyn SqlRow) -> Result<StoredFile, StoreError> {
    Ok(StoredFile {
        id: r.string(0)?,
        tenant: r.string(1)?,
        filename: r.string(2)?,
        purpose: r.string(3)?,
        bytes: r.u64(4)?,
        created_ms: r.i64(5)?,
        expires_at: r.opt_i64(6)?,
    })
}

const BATCH_COLUMNS: &str = "id, tenant, key_id, key_hash, endpoint, input_file_id, \
    completion_window, status, errors, metadata, output_file_id, error_file_id, created_ms, \
    in_progress_at, expires_at, finalizing_at, completed_at, failed_at, expired_at, \
    cancelling_at, cancelled_at, total, completed, failed";

fn batch_row(r: &dyn SqlRow) -> Result<StoredBatch, StoreError> {
    Ok(StoredBatch {
        id: r.string(0)?,
        tenant: r.string(1)?,
        key_id: r.string(2)?,
        key_hash: r.string(3)?,
        endpoint: r.string(4)?,
        input_file_id: r.string(5)?,
        completion_window: r.string(6)?,
        status: r.string(7)?,
        errors: r.opt_string(8)?,
        metadata: r.opt_string(9)?,
        output_file_id: r.opt_string(10)?,
        error_file_id: r.opt_string(11)?,
        created_ms: r.i64(12)?,
        in_progress_at: r.opt_i64(13)?,
        expires_at: r.i64(14)?,
        finalizing_at: r.opt_i64(15)?,
        completed_at: r.opt_i64(16)?,
        failed_at: r.opt_i64(17)?,
        expired_at: r.opt_i64(18)?,
        cancelling_at: r.opt_i64(19)?,
        cancelled_at: r.opt_i64(20)?,
        total: r.u64(21)?,
        completed: r.u64(22)?,
        failed: r.u64(23)?,
    })
}

fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn insert_file(e: &dyn Exec, f: &StoredFile, content: &[u8]) -> Result<(), StoreError> {
    e.execute(
        "INSERT INTO batch_files (id, tenant, filename, purpose, bytes, created_ms, expires_at, \
         content) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        &[
            (&f.id).into(),
            (&f.tenant).into(),
            (&f.filename).into(),
            (&f.purpose).into(),
            int(f.bytes).into(),
            f.created_ms.into(),
            f.expires_at.into(),
            content.into(),
        ],
    )?;
    Ok(())
}

fn select_batch(e: &dyn Exec, tenant: &str, id: &str) -> Result<Option<StoredBatch>, StoreError> {
    e.one(
        &format!("SELECT {BATCH_COLUMNS} FROM batches WHERE tenant = ?1 AND id = ?2"),
        &[tenant.into(), id.into()],
        batch_row,
    )
}

/// The `created_ms` of the tenant's row `id` in `table`: a page's cursor.
/// Where a page listed after the row `after` starts: that row's (created_ms, id), the top
/// without one; `None` when `after` names no row of the tenant (an empty page).
fn page_start<'a>(
    e: &dyn Exec,
    table: &str,
    tenant: &str,
    after: Option<&'a str>,
) -> Result<Option<(i64, &'a str)>, StoreError> {
    match after {
        Some(id) => Ok(cursor(e, table, tenant, id)?.map(|at| (at, id))),
        None => Ok(Some((i64::MAX, ""))),
    }
}

fn cursor(e: &dyn Exec, table: &str, tenant: &str, id: &str) -> Result<Option<i64>, StoreError> {
    e.one(
        &format!("SELECT created_ms FROM {table} WHERE tenant = ?1 AND id = ?2"),
        &[tenant.into(), id.into()],
        |r| r.i64(0),
    )
}

impl<S: SqlStore> BatchStore for S {
    fn put_file(&self, file: &StoredFile, content: &[u8]) -> Result<(), StoreError> {
        self.exec(|e| insert_file(e, file, content))
    }

    fn file(&self, tenant: &str, id: &str) -> Result<Option<StoredFile>, StoreError> {
        self.exec(|e| {
            e.one(
                &format!("SELECT {FILE_COLUMNS} FROM batch_files WHERE tenant = ?1 AND id = ?2"),
                &[tenant.into(), id.into()],
                file_row,
            )
        })
    }

    fn file_content(&self, tenant: &str, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.exec(|e| {
            e.one(
                "SELECT content FROM batch_files WHERE tenant = ?1 AND id = ?2",
                &[tenant.into(), id.into()],
                |r| Ok(r.opt_bytes(0)?.unwrap_or_default().to_vec()),
            )
        })
    }

    fn files(
        &self,
        tenant: &str,
        purpose: Option<&str>,
        after: Option<&str>,
        n: usize,
    ) -> Result<Vec<StoredFile>, StoreError> {
        self.exec(|e| {
            let Some((at, id)) = page_start(e, "batch_files", tenant, after)? else {
                return Ok(Vec::new());
            };
            e.all(
                &format!(
                    "SELECT {FILE_COLUMNS} FROM batch_files WHERE tenant = ?1 \
                     AND (CAST(?2 AS TEXT) IS NULL OR purpose = ?2) \
                     AND (created_ms < ?3 OR (created_ms = ?3 AND id < ?4) OR ?4 = '') \
                     ORDER BY created_ms DESC, id DESC LIMIT ?5"
                ),
                &[
                    tenant.into(),
                    purpose.into(),
                    at.into(),
                    id.into(),
                    limit(n),
                ],
                file_row,
            )
        })
    }

    fn delete_file(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        let n = self.exec(|e| {
            e.execute(
                "DELETE FROM batch_files WHERE tenant = ?1 AND id = ?2",
                &[tenant.into(), id.into()],
            )
        })?;
        Ok(n > 0)
    }

    fn create_batch(&self, b: &StoredBatch, lines: &[NewLine]) -> Result<(), StoreError> {
        self.transaction(Lock::Batch(&b.id), |e| {
            e.execute(
                &format!(
                    "INSERT INTO batches ({BATCH_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, \
                     ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, \
                     ?23, ?24)"
                ),
                &[
                    (&b.id).into(),
                    (&b.tenant).into(),
                    (&b.key_id).into(),
                    (&b.key_hash).into(),
                    (&b.endpoint).into(),
                    (&b.input_file_id).into(),
                    (&b.completion_window).into(),
                    (&b.status).into(),
                    (&b.errors).into(),
                    (&b.metadata).into(),
                    (&b.output_file_id).into(),
                    (&b.error_file_id).into(),
                    b.created_ms.into(),
                    b.in_progress_at.into(),
                    b.expires_at.into(),
                    b.finalizing_at.into(),
                    b.completed_at.into(),
                    b.failed_at.into(),
                    b.expired_at.into(),
                    b.cancelling_at.into(),
                    b.cancelled_at.into(),
                    int(b.total).into(),
                    int(b.completed).into(),
                    int(b.failed).into(),
                ],
            )?;
            for l in lines {
                e.execute(
                    "INSERT INTO batch_lines (batch_id, line, custom_id, body, status, attempts, \
                     not_before_ms) VALUES (?1, ?2, ?3, ?4, 'pending', 0, 0)",
                    &[
                        (&b.id).into(),
                        int(l.line).into(),
                        (&l.custom_id).into(),
                        (&l.body).into(),
                    ],
                )?;
            }
            Ok(())
        })
    }

    fn batch(&self, tenant: &str, id: &str) -> Result<Option<StoredBatch>, StoreError> {
        self.exec(|e| select_batch(e, tenant, id))
    }

    fn batches(
        &self,
        tenant: &str,
        after: Option<&str>,
        n: usize,
    ) -> Result<Vec<StoredBatch>, StoreError> {
        self.exec(|e| {
            let Some((at, id)) = page_start(e, "batches", tenant, after)? else {
                return Ok(Vec::new());
            };
            e.all(
                &format!(
                    "SELECT {BATCH_COLUMNS} FROM batches WHERE tenant = ?1 \
                     AND (created_ms < ?2 OR (created_ms = ?2 AND id < ?3) OR ?3 = '') \
                     ORDER BY created_ms DESC, id DESC LIMIT ?4"
                ),
                &[tenant.into(), at.into(), id.into(), limit(n)],
                batch_row,
            )
        })
    }

    fn open_batches(&self, n: usize) -> Result<Vec<StoredBatch>, StoreError> {
        self.exec(|e| {
            e.all(
                &format!(
                    "SELECT {BATCH_COLUMNS} FROM batches WHERE status IN \
                     ('validating', 'in_progress', 'finalizing', 'cancelling') \
                     ORDER BY created_ms, id LIMIT ?1"
                ),
                &[limit(n)],
                batch_row,
            )
        })
    }

    fn start_batch(&self, id: &str, now_s: i64) -> Result<bool, StoreError> {
        let n = self.exec(|e| {
            e.execute(
                "UPDATE batches SET status = 'in_progress', in_progress_at = ?2 \
                 WHERE id = ?1 AND status = 'validating'",
                &[id.into(), now_s.into()],
            )
        })?;
        Ok(n > 0)
    }

    fn claim_lines(
        &self,
        batch_id: &str,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
        n: usize,
    ) -> Result<Vec<ClaimedLine>, StoreError> {
        let until = now_ms.saturating_add(lease_ms);
        // One statement under the batch's lock: replicas claiming at once get disjoint lines.
        self.transaction(Lock::Batch(batch_id), |e| {
            e.all(
                "UPDATE batch_lines SET status = 'running', lease_owner = ?2, \
                 lease_until_ms = ?3, attempts = attempts + 1 \
                 WHERE batch_id = ?1 AND line IN (SELECT line FROM batch_lines \
                   WHERE batch_id = ?1 AND ((status = 'pending' AND not_before_ms <= ?4) \
                   OR (status = 'running' AND lease_until_ms <= ?4)) ORDER BY line LIMIT ?5) \
                 AND EXISTS (SELECT 1 FROM batches WHERE id = ?1 AND status = 'in_progress') \
                 RETURNING line, custom_id, body, attempts",
                &[
                    batch_id.into(),
                    owner.into(),
                    until.into(),
                    now_ms.into(),
                    limit(n),
                ],
                |r| {
                    Ok(ClaimedLine {
                        batch_id: batch_id.to_owned(),
                        line: r.u64(0)?,
                        custom_id: r.string(1)?,
                        body: r.string(2)?,
                        attempts: r.u32(3)?,
                    })
                },
            )
        })
        .map(|mut lines| {
            lines.sort_by_key(|l| l.line);
            lines
        })
    }

    fn finish_line(
        &self,
        batch_id: &str,
        line: u64,
        owner: &str,
        failed: bool,
        result: &str,
    ) -> Result<bool, StoreError> {
        let status = if failed { LINE_FAILED } else { LINE_DONE };
        self.transaction(Lock::Batch(batch_id), |e| {
            let n = e.execute(
                "UPDATE batch_lines SET status = ?4, result = ?5, lease_owner = NULL, \
                 lease_until_ms = NULL WHERE batch_id = ?1 AND line = ?2 \
                 AND lease_owner = ?3 AND status = 'running'",
                &[
                    batch_id.into(),
                    int(line).into(),
                    owner.into(),
                    status.into(),
                    result.into(),
                ],
            )?;
            if n == 0 {
                return Ok(false);
            }
            let count = if failed {
                "UPDATE batches SET failed = failed + 1 WHERE id = ?1"
            } else {
                "UPDATE batches SET completed = completed + 1 WHERE id = ?1"
            };
            e.execute(count, &[batch_id.into()])?;
            Ok(true)
        })
    }

    fn retry_line(
        &self,
        batch_id: &str,
        line: u64,
        owner: &str,
        not_before_ms: i64,
    ) -> Result<bool, StoreError> {
        let n = self.exec(|e| {
            e.execute(
                "UPDATE batch_lines SET status = 'pending', not_before_ms = ?4, \
                 lease_owner = NULL, lease_until_ms = NULL WHERE batch_id = ?1 AND line = ?2 \
                 AND lease_owner = ?3 AND status = 'running'",
                &[
                    batch_id.into(),
                    int(line).into(),
                    owner.into(),
                    not_before_ms.into(),
                ],
            )
        })?;
        Ok(n > 0)
    }

    fn renew_lines(&self, owner: &str, until_ms: i64) -> Result<u64, StoreError> {
        // One statement: a claim that found the lease expired first has made the line
        // another's, and this leaves it alone.
        self.exec(|e| {
            e.execute(
                "UPDATE batch_lines SET lease_until_ms = ?2 \
                 WHERE lease_owner = ?1 AND status = 'running'",
                &[owner.into(), until_ms.into()],
            )
        })
    }

    fn release_lines(&self, owner: &str) -> Result<u64, StoreError> {
        self.exec(|e| {
            e.execute(
                "UPDATE batch_lines SET status = 'pending', lease_owner = NULL, \
                 lease_until_ms = NULL WHERE lease_owner = ?1 AND status = 'running'",
                &[owner.into()],
            )
        })
    }

    fn cancel_batch(&self, tenant: &str, id: &str, now_s: i64) -> Result<Cancel, StoreError> {
        self.transaction(Lock::Batch(id), |e| {
            let Some(batch) = select_batch(e, tenant, id)? else {
                return Ok(Cancel::NotFound);
            };
            match batch.status.as_str() {
                "validating" | "in_progress" => {}
                "cancelling" => return Ok(Cancel::Cancelling(batch)),
                _ => return Ok(Cancel::Ended(batch)),
            }
            e.execute(
                "UPDATE batches SET status = 'cancelling', cancelling_at = ?2 WHERE id = ?1",
                &[id.into(), now_s.into()],
            )?;
            e.execute(
                "UPDATE batch_lines SET status = 'cancelled' \
                 WHERE batch_id = ?1 AND status = 'pending'",
                &[id.into()],
            )?;
            let batch = select_batch(e, tenant, id)?.ok_or(StoreError::Null(0))?;
            Ok(Cancel::Cancelling(batch))
        })
    }

    fn close_lines(&self, batch_id: &str, now_ms: i64) -> Result<u64, StoreError> {
        self.transaction(Lock::Batch(batch_id), |e| {
            let status = e.one(
                "SELECT status FROM batches WHERE id = ?1",
                &[batch_id.into()],
                |r| r.string(0),
            )?;
            let (to, counted) = match status.as_deref() {
                Some("in_progress") => (LINE_EXPIRED, true),
                Some("cancelling") => (LINE_CANCELLED, false),
                _ => return Ok(0),
            };
            let n = e.execute(
                "UPDATE batch_lines SET status = ?3, lease_owner = NULL, lease_until_ms = NULL \
                 WHERE batch_id = ?1 AND (status = 'pending' \
                 OR (status = 'running' AND lease_until_ms <= ?2))",
                &[batch_id.into(), now_ms.into(), to.into()],
            )?;
            if counted {
                e.execute(
                    "UPDATE batches SET failed = failed + ?2 WHERE id = ?1",
                    &[batch_id.into(), int(n).into()],
                )?;
            }
            Ok(n)
        })
    }

    fn open_lines(&self, batch_id: &str) -> Result<u64, StoreError> {
        let n = self.exec(|e| {
            e.one(
                "SELECT COUNT(*) FROM batch_lines WHERE batch_id = ?1 \
                 AND status IN ('pending', 'running')",
                &[batch_id.into()],
                |r| r.u64(0),
            )
        })?;
        Ok(n.unwrap_or(0))
    }

    fn begin_finalizing(&self, batch_id: &str, now_s: i64) -> Result<bool, StoreError> {
        let n = self.transaction(Lock::Batch(batch_id), |e| {
            e.execute(
                "UPDATE batches SET status = 'finalizing', finalizing_at = ?2 \
                 WHERE id = ?1 AND status = 'in_progress' AND NOT EXISTS (SELECT 1 FROM \
                 batch_lines WHERE batch_id = ?1 AND status IN ('pending', 'running'))",
                &[batch_id.into(), now_s.into()],
            )
        })?;
        Ok(n > 0)
    }

    fn line_results(&self, batch_id: &str) -> Result<Vec<LineResult>, StoreError> {
        self.exec(|e| {
            e.all(
                "SELECT line, custom_id, status, result FROM batch_lines \
                 WHERE batch_id = ?1 ORDER BY line",
                &[batch_id.into()],
                |r| {
                    Ok(LineResult {
                        line: r.u64(0)?,
                        custom_id: r.string(1)?,
                        status: r.string(2)?,
                        result: r.opt_string(3)?,
                    })
                },
            )
        })
    }

    fn finish_batch(
        &self,
        batch_id: &str,
        from: &str,
        status: &str,
        now_s: i64,
        output: Option<&ProducedFile>,
        errors: Option<&ProducedFile>,
    ) -> Result<bool, StoreError> {
        let at_column = match status {
            "completed" => "completed_at",
            "expired" => "expired_at",
            "cancelled" => "cancelled_at",
            _ => "failed_at",
        };
        self.transaction(Lock::Batch(batch_id), |e| {
            let current = e.one(
                "SELECT status FROM batches WHERE id = ?1",
                &[batch_id.into()],
                |r| r.string(0),
            )?;
            if current.as_deref() != Some(from) {
                return Ok(false);
            }
            for f in [output, errors].into_iter().flatten() {
                insert_file(e, &f.file, &f.content)?;
            }
            let output_id = output.map(|f| f.file.id.as_str());
            let error_id = errors.map(|f| f.file.id.as_str());
            e.execute(
                &format!(
                    "UPDATE batches SET status = ?2, {at_column} = ?3, output_file_id = ?4, \
                     error_file_id = ?5 WHERE id = ?1"
                ),
                &[
                    batch_id.into(),
                    status.into(),
                    now_s.into(),
                    output_id.into(),
                    error_id.into(),
                ],
            )?;
            // The lines' work is in the files now.
            e.execute(
                "UPDATE batch_lines SET body = '', result = NULL WHERE batch_id = ?1",
                &[batch_id.into()],
            )?;
            Ok(true)
        })
    }

    fn purge_batches(&self, now_s: i64, batches_before_ms: i64) -> Result<u64, StoreError> {
        self.exec(|e| {
            let files = e.execute(
                "DELETE FROM batch_files WHERE expires_at IS NOT NULL AND expires_at <= ?1",
                &[now_s.into()],
            )?;
            let ended = "status IN ('completed', 'failed', 'expired', 'cancelled') \
                 AND created_ms < ?1";
            e.execute(
                &format!(
                    "DELETE FROM batch_lines WHERE batch_id IN \
                     (SELECT id FROM batches WHERE {ended})"
                ),
                &[batches_before_ms.into()],
            )?;
            let batches = e.execute(
                &format!("DELETE FROM batches WHERE {ended}"),
                &[batches_before_ms.into()],
            )?;
            Ok(files + batches)
        })
    }
}
