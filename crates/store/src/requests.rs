//! Request records and feedback over the shared SQL ([`crate::sql`]): every store that runs
//! it gets [`RecordStore`] (writing batches its own way) and [`FeedbackStore`] from here.

use crate::record::{Feedback, FeedbackStore, RecordStore, RequestRecord, Served, ServedOutcome};
use crate::sql::{limit, Lock, SqlRow, SqlStore};
use crate::StoreError;

/// Every column of a [`RequestRecord`], in [`record_from`]'s order, of `requests r`.
pub(crate) const RECORD_COLUMNS: &str = "r.request_id, r.started_at_ms, r.endpoint, r.tenant, r.key_id, r.requested_model, r.model, r.deployment, r.attempts, r.fallback_from, r.stream, r.status, r.error_kind, r.latency_ms, r.ttft_ms, r.prompt_tokens, r.completion_tokens, r.usage_counted, r.cost_nanos, r.route, r.cache, r.guards, r.config_version, r.baseline_cost_nanos, r.cache_similarity, r.prompt, r.rollout, r.priority, r.queue_ms, r.preemptions";

/// A record from a row selected with [`RECORD_COLUMNS`].
pub(crate) fn record_from(row: &dyn SqlRow) -> Result<RequestRecord, StoreError> {
    Ok(RequestRecord {
        request_id: row.string(0)?,
        started_at_ms: row.i64(1)?,
        endpoint: row.string(2)?,
        tenant: row.opt_string(3)?,
        key_id: row.opt_string(4)?,
        requested_model: row.opt_string(5)?,
        model: row.opt_string(6)?,
        deployment: row.opt_string(7)?,
        attempts: row.u32(8)?,
        fallback_from: row.opt_string(9)?,
        stream: row.bool(10)?,
        status: status(row, 11)?,
        error_kind: row.opt_string(12)?,
        latency_ms: row.f64(13)?,
        ttft_ms: row.opt_f64(14)?,
        prompt_tokens: row.u32(15)?,
        completion_tokens: row.u32(16)?,
        usage_counted: row.bool(17)?,
        cost_nanos: row.u64(18)?,
        route: row.opt_string(19)?,
        cache: row.opt_string(20)?,
        guards: row.opt_string(21)?,
        config_version: row.opt_string(22)?,
        baseline_cost_nanos: row.u64(23)?,
        cache_similarity: row.opt_f64(24)?,
        prompt: row.opt_string(25)?,
        rollout: row.opt_string(26)?,
        priority: row.opt_string(27)?,
        // Rows written before the columns were added read as never queued.
        queue_ms: row
            .opt_i64(28)?
            .map_or(0, |n| u64::try_from(n).unwrap_or(0)),
        preemptions: row
            .opt_i64(29)?
            .map_or(0, |n| u32::try_from(n).unwrap_or(0)),
        content: None,
    })
}

/// An HTTP status as stored; out of range (written behind the store's back) it reads as 0.
fn status(row: &dyn SqlRow, i: usize) -> Result<u16, StoreError> {
    Ok(u16::try_from(row.i64(i)?).unwrap_or(0))
}

impl<S: SqlStore> RecordStore for S {
    fn write_batch(&self, records: &[RequestRecord]) -> Result<(), StoreError> {
        self.write_records(records)
    }

    fn spend_since(&self, key_id: &str, since_ms: i64) -> Result<u64, StoreError> {
        let spent = self.exec(|e| {
            e.one(
                "SELECT CAST(COALESCE(SUM(cost_nanos), 0) AS BIGINT) FROM requests \
                 WHERE key_id = ?1 AND started_at_ms >= ?2",
                &[key_id.into(), since_ms.into()],
                |row| row.u64(0),
            )
        })?;
        Ok(spent.unwrap_or(0))
    }

    fn recent(&self, limit_to: usize) -> Result<Vec<RequestRecord>, StoreError> {
        self.exec(|e| {
            e.all(
                &format!(
                    "SELECT {RECORD_COLUMNS} FROM requests r \
                     ORDER BY r.started_at_ms DESC, r.rowid DESC LIMIT ?1"
                ),
                &[limit(limit_to)],
                record_from,
            )
        })
    }

    fn served_outcomes(
        &self,
        served: Served<'_>,
        from_ms: i64,
        to_ms: i64,
        limit_to: usize,
    ) -> Result<Vec<ServedOutcome>, StoreError> {
        let (column, value) = match served {
            Served::Model(v) => ("model", v),
            Served::Prompt(v) => ("prompt", v),
            Served::ConfigVersion(v) => ("config_version", v),
        };
        // `column` is one of three literals above, never input.
        let sql = format!(
            "SELECT status, latency_ms, ttft_ms, stream, guards FROM requests \
             WHERE endpoint IN ('chat', 'messages') AND {column} = ?1 AND started_at_ms >= ?2 \
             AND started_at_ms < ?3 AND COALESCE(deployment, '') NOT IN ('cache', 'guard') \
             ORDER BY started_at_ms DESC LIMIT ?4"
        );
        self.exec(|e| {
            e.all(
                &sql,
                &[value.into(), from_ms.into(), to_ms.into(), limit(limit_to)],
                |row| {
                    Ok(ServedOutcome {
                        status: status(row, 0)?,
                        latency_ms: row.f64(1)?,
                        ttft_ms: row.opt_f64(2)?,
                        stream: row.bool(3)?,
                        guards: row.opt_string(4)?,
                    })
                },
            )
        })
    }

    fn request(&self, request_id: &str) -> Result<Option<RequestRecord>, StoreError> {
        self.exec(|e| {
            e.one(
                &format!("SELECT {RECORD_COLUMNS} FROM requests r WHERE r.request_id = ?1 LIMIT 1"),
                &[request_id.into()],
                record_from,
            )
        })
    }

    fn count(&self) -> Result<u64, StoreError> {
        let n = self.exec(|e| e.one("SELECT COUNT(*) FROM requests", &[], |row| row.u64(0)))?;
        Ok(n.unwrap_or(0))
    }

    fn check_writable(&self) -> Result<(), StoreError> {
        self.writable()
    }
}

impl<S: SqlStore> FeedbackStore for S {
    /// The check and the insert hold the request's feedback lock ([`Lock::Feedback`]).
    fn add_feedback(&self, f: &Feedback) -> Result<bool, StoreError> {
        self.transaction(Lock::Feedback(&f.request_id), |e| {
            let first_negative = f.is_negative()
                && e.one(
                    "SELECT EXISTS (SELECT 1 FROM feedback WHERE request_id = ?1 AND tenant = ?2 \
                     AND score < ?3)",
                    &[
                        (&f.request_id).into(),
                        (&f.tenant).into(),
                        Feedback::NEGATIVE_BELOW.into(),
                    ],
                    |row| row.bool(0),
                )? == Some(false);
            e.execute(
                "INSERT INTO feedback (request_id, key_id, tenant, created_at_ms, score, outcome, \
                 comment) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                &[
                    (&f.request_id).into(),
                    (&f.key_id).into(),
                    (&f.tenant).into(),
                    f.created_at_ms.into(),
                    f.score.into(),
                    (&f.outcome).into(),
                    (&f.comment).into(),
                ],
            )?;
            Ok(first_negative)
        })
    }

    fn feedback_for(&self, request_id: &str) -> Result<Vec<Feedback>, StoreError> {
        self.exec(|e| {
            e.all(
                "SELECT request_id, key_id, tenant, created_at_ms, score, outcome, comment \
                 FROM feedback WHERE request_id = ?1 ORDER BY rowid",
                &[request_id.into()],
                |row| {
                    Ok(Feedback {
                        request_id: row.string(0)?,
                        key_id: row.string(1)?,
                        tenant: row.string(2)?,
                        created_at_ms: row.i64(3)?,
                        score: row.opt_f64(4)?,
                        outcome: row.opt_string(5)?,
                        comment: row.opt_string(6)?,
                    })
                },
            )
        })
    }
}
