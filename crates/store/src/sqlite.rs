use std::path::Path;
use std::sync::Mutex;

use rusqlite::types::ToSqlOutput;
use rusqlite::{params, Connection, OptionalExtension, ToSql, Transaction, TransactionBehavior};

use crate::record::{content_json, RecordStore};
use crate::sql::{Dialect, Exec, Lock, Param, SqlReads, SqlRow, SqlStore};
use crate::verdicts::GuardFlags;
use crate::{RequestRecord, StoreError};

/// Schema migrations, applied in order; `PRAGMA user_version` holds how many ran. Only ever
/// append: stored data must stay readable.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE requests (
    request_id        TEXT NOT NULL,
    started_at_ms     INTEGER NOT NULL,
    endpoint          TEXT NOT NULL,
    tenant            TEXT,
    key_id            TEXT,
    requested_model   TEXT,
    model             TEXT,
    deployment        TEXT,
    attempts          INTEGER NOT NULL,
    fallback_from     TEXT,
    stream            INTEGER NOT NULL,
    status            INTEGER NOT NULL,
    error_kind        TEXT,
    latency_ms        REAL NOT NULL,
    ttft_ms           REAL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    usage_counted     INTEGER NOT NULL,
    cost_nanos        INTEGER NOT NULL,
    route             TEXT,
    cache             TEXT,
    guards            TEXT,
    config_version    TEXT
);
CREATE INDEX requests_started ON requests (started_at_ms);
CREATE INDEX requests_key_started ON requests (key_id, started_at_ms);
"#,
    r#"
CREATE TABLE feedback (
    request_id    TEXT NOT NULL,
    key_id        TEXT NOT NULL,
    tenant        TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    score         REAL,
    outcome       TEXT,
    comment       TEXT
);
CREATE INDEX feedback_request ON feedback (request_id);
CREATE INDEX requests_request_id ON requests (request_id);
"#,
    r#"
ALTER TABLE requests ADD COLUMN baseline_cost_nanos INTEGER NOT NULL DEFAULT 0;
ALTER TABLE requests ADD COLUMN cache_similarity REAL;
"#,
    r#"
CREATE TABLE router_calibration (
    route         TEXT NOT NULL,
    at_ms         INTEGER NOT NULL,
    base_cheap    REAL NOT NULL,
    base_balanced REAL NOT NULL,
    cheap         REAL NOT NULL,
    balanced      REAL NOT NULL,
    report        TEXT NOT NULL
);
CREATE INDEX router_calibration_route ON router_calibration (route, at_ms);
"#,
    // The control plane (`control.rs`): config versions, the audit chain, prompts, flags,
    // rollouts, and the counter replicas poll to notice any of them change.
    r#"
CREATE TABLE config_versions (
    id            TEXT PRIMARY KEY NOT NULL,
    parent        TEXT,
    author        TEXT NOT NULL,
    message       TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    source        TEXT NOT NULL
);
CREATE INDEX config_versions_created ON config_versions (created_at_ms);
CREATE TABLE config_applied (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    version_id TEXT NOT NULL REFERENCES config_versions (id),
    at_ms      INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    reason     TEXT NOT NULL
);
CREATE TABLE audit (
    seq       INTEGER PRIMARY KEY,
    at_ms     INTEGER NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    target    TEXT NOT NULL,
    reason    TEXT NOT NULL,
    diff      TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE TABLE prompt_versions (
    name          TEXT NOT NULL,
    version       INTEGER NOT NULL,
    body          TEXT NOT NULL,
    author        TEXT NOT NULL,
    message       TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE prompt_labels (
    name          TEXT NOT NULL,
    label         TEXT NOT NULL,
    version       INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (name, label),
    FOREIGN KEY (name, version) REFERENCES prompt_versions (name, version)
);
CREATE TABLE flags (
    key           TEXT PRIMARY KEY NOT NULL,
    body          TEXT NOT NULL,
    updated_at_ms INTEGER NOT NULL
);
CREATE TABLE rollouts (
    id            TEXT PRIMARY KEY NOT NULL,
    body          TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    active        INTEGER NOT NULL
);
CREATE TABLE control_generation (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL
);
INSERT INTO control_generation (id, generation) VALUES (1, 0);
-- What is kept forever refuses changes; the audit chain still catches whoever drops these.
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER config_versions_no_update BEFORE UPDATE ON config_versions
BEGIN SELECT RAISE(ABORT, 'config versions are immutable'); END;
CREATE TRIGGER config_versions_no_delete BEFORE DELETE ON config_versions
BEGIN SELECT RAISE(ABORT, 'config versions are immutable'); END;
CREATE TRIGGER prompt_versions_no_update BEFORE UPDATE ON prompt_versions
BEGIN SELECT RAISE(ABORT, 'prompt versions are immutable'); END;
CREATE TRIGGER prompt_versions_no_delete BEFORE DELETE ON prompt_versions
BEGIN SELECT RAISE(ABORT, 'prompt versions are immutable'); END;
"#,
    r#"
ALTER TABLE requests ADD COLUMN prompt TEXT;
ALTER TABLE requests ADD COLUMN rollout TEXT;
"#,
    // KPI reports (`kpi.rs`) over a time range for one tenant or one model.
    r#"
CREATE INDEX requests_tenant_started ON requests (tenant, started_at_ms);
CREATE INDEX requests_model_started ON requests (model, started_at_ms);
"#,
    r#"
CREATE TABLE slo_state (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    body        TEXT NOT NULL,
    saved_at_ms INTEGER NOT NULL
);
"#,
    // What the guard verdicts mean ([`crate::verdicts::GuardFlags`]), kept as 0/1 so KPIs over a
    // month do not parse every row's JSON. The backfill parses every stored row once, as
    // slowly as a 30-day KPI query did (~20 s a million rows, holding the write lock, so the
    // first start after the upgrade waits): paid once. Rows a build older than this writes
    // later keep NULL, and the KPI SQL falls back to the JSON for them.
    concat!(
        "ALTER TABLE requests ADD COLUMN guard_refused INTEGER;
ALTER TABLE requests ADD COLUMN guard_triggered INTEGER;
ALTER TABLE requests ADD COLUMN guard_spoiled INTEGER;
UPDATE requests AS r SET guard_refused = ",
        crate::verdicts::legacy_refused_sql!(),
        ", guard_triggered = ",
        crate::verdicts::legacy_triggered_sql!(),
        ", guard_spoiled = ",
        crate::verdicts::legacy_spoiled_sql!(),
        ";"
    ),
    // What requests said and were answered (`content.rs`), when the config stores it: apart
    // from the records, so KPI scans do not read it, and purged after its retention.
    r#"
CREATE TABLE request_content (
    request_id    TEXT NOT NULL,
    started_at_ms INTEGER NOT NULL,
    body          TEXT NOT NULL
);
CREATE INDEX request_content_request ON request_content (request_id);
CREATE INDEX request_content_started ON request_content (started_at_ms);
"#,
    // Dashboard sessions (`sessions.rs`), so that replicas on one file share them.
    r#"
CREATE TABLE dashboard_sessions (
    token         BLOB PRIMARY KEY NOT NULL,
    admin         BLOB NOT NULL,
    expires_at_ms INTEGER NOT NULL
);
CREATE INDEX dashboard_sessions_expires ON dashboard_sessions (expires_at_ms);
"#,
    // What each replica publishes for the fleet's judgement, and leases (`fleet.rs`).
    r#"
CREATE TABLE replica_states (
    area        TEXT NOT NULL,
    replica     TEXT NOT NULL,
    body        TEXT NOT NULL,
    saved_at_ms INTEGER NOT NULL,
    PRIMARY KEY (area, replica)
);
CREATE INDEX replica_states_saved ON replica_states (saved_at_ms);
CREATE TABLE leases (
    name          TEXT PRIMARY KEY NOT NULL,
    holder        TEXT NOT NULL,
    expires_at_ms INTEGER NOT NULL
);
"#,
    // Priority classes and admission queues: the class a request ran at, how long it waited
    // for a deployment's capacity, how often it was preempted.
    r#"
ALTER TABLE requests ADD COLUMN priority TEXT;
ALTER TABLE requests ADD COLUMN queue_ms INTEGER;
ALTER TABLE requests ADD COLUMN preemptions INTEGER;
"#,
    // The Batch API (`batches.rs`): files, batches and their lines.
    r#"
CREATE TABLE batch_files (
    id         TEXT PRIMARY KEY NOT NULL,
    tenant     TEXT NOT NULL,
    filename   TEXT NOT NULL,
    purpose    TEXT NOT NULL,
    bytes      INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_at INTEGER,
    content    BLOB NOT NULL
);
CREATE INDEX batch_files_tenant ON batch_files (tenant, created_ms);
CREATE INDEX batch_files_expires ON batch_files (expires_at);
CREATE TABLE batches (
    id                TEXT PRIMARY KEY NOT NULL,
    tenant            TEXT NOT NULL,
    key_id            TEXT NOT NULL,
    key_hash          TEXT NOT NULL,
    endpoint          TEXT NOT NULL,
    input_file_id     TEXT NOT NULL,
    completion_window TEXT NOT NULL,
    status            TEXT NOT NULL,
    errors            TEXT,
    metadata          TEXT,
    output_file_id    TEXT,
    error_file_id     TEXT,
    created_ms        INTEGER NOT NULL,
    in_progress_at    INTEGER,
    expires_at        INTEGER NOT NULL,
    finalizing_at     INTEGER,
    completed_at      INTEGER,
    failed_at         INTEGER,
    expired_at        INTEGER,
    cancelling_at     INTEGER,
    cancelled_at      INTEGER,
    total             INTEGER NOT NULL,
    completed         INTEGER NOT NULL,
    failed            INTEGER NOT NULL
);
CREATE INDEX batches_tenant ON batches (tenant, created_ms);
CREATE INDEX batches_status ON batches (status, created_ms);
CREATE TABLE batch_lines (
    batch_id       TEXT NOT NULL,
    line           INTEGER NOT NULL,
    custom_id      TEXT NOT NULL,
    body           TEXT NOT NULL,
    status         TEXT NOT NULL,
    attempts       INTEGER NOT NULL,
    not_before_ms  INTEGER NOT NULL,
    lease_owner    TEXT,
    lease_until_ms INTEGER,
    result         TEXT,
    PRIMARY KEY (batch_id, line)
);
CREATE INDEX batch_lines_status ON batch_lines (batch_id, status);
CREATE INDEX batch_lines_owner ON batch_lines (lease_owner);
"#,
    // The Responses API's stored responses (`responses.rs`).
    r#"
CREATE TABLE responses (
    id         TEXT PRIMARY KEY NOT NULL,
    tenant     TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    body       TEXT NOT NULL,
    context    TEXT NOT NULL
);
CREATE INDEX responses_created ON responses (created_ms);
"#,
];

/// The embedded store: one SQLite file in WAL mode. Each `SqliteStore` is one connection; the
/// telemetry writer opens its own.
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (creating if needed) `switchyard.db` in `data_dir` and applies migrations.
    pub fn open_in(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        Self::open(&data_dir.join("switchyard.db"))
    }

    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        set_wal(&conn)?;
        // NORMAL in WAL mode loses at most the last transactions on power loss, never corrupts.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        migrate(&conn)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
        })
    }

    #[cfg(test)]
    pub(crate) fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, rusqlite::Error>,
    ) -> Result<T, StoreError> {
        self.with_conn(|conn| Ok(f(conn)?))
    }

    /// Runs `f` on the connection, under its lock.
    fn with_conn<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        f(&mut conn)
    }

    /// The most recent records, newest first ([`RecordStore::recent`]). Inherent too, because
    /// the `switchyard` crate's tests call it on a concrete store.
    pub fn recent(&self, limit: usize) -> Result<Vec<RequestRecord>, StoreError> {
        RecordStore::recent(self, limit)
    }
}

impl SqlReads for SqliteStore {
    fn exec<T>(&self, f: impl FnOnce(&dyn Exec) -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.with_conn(|conn| f(&*conn))
    }
}

impl SqlStore for SqliteStore {
    /// An immediate transaction: it takes SQLite's one write lock (every [`Lock`] at once),
    /// waiting for it up to the busy timeout.
    fn transaction<T>(
        &self,
        _lock: Lock<'_>,
        f: impl FnOnce(&dyn Exec) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.with_conn(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let made = f(&*tx)?;
            tx.commit()?;
            Ok(made)
        })
    }

    fn write_records(&self, records: &[RequestRecord]) -> Result<(), StoreError> {
        self.with_conn(|conn| {
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO requests (request_id, started_at_ms, endpoint, tenant, key_id, requested_model, model, deployment, attempts, fallback_from, stream, status, error_kind, latency_ms, ttft_ms, prompt_tokens, completion_tokens, usage_counted, cost_nanos, route, cache, guards, config_version, baseline_cost_nanos, cache_similarity, prompt, rollout, guard_refused, guard_triggered, guard_spoiled, priority, queue_ms, preemptions) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33)",
                )?;
                for r in records {
                    let flags = GuardFlags::of(r.deployment.as_deref(), r.guards.as_deref());
                    stmt.execute(params![
                        r.request_id,
                        r.started_at_ms,
                        r.endpoint,
                        r.tenant,
                        r.key_id,
                        r.requested_model,
                        r.model,
                        r.deployment,
                        r.attempts,
                        r.fallback_from,
                        r.stream,
                        r.status,
                        r.error_kind,
                        r.latency_ms,
                        r.ttft_ms,
                        r.prompt_tokens,
                        r.completion_tokens,
                        r.usage_counted,
                        i64::try_from(r.cost_nanos).unwrap_or(i64::MAX),
                        r.route,
                        r.cache,
                        r.guards,
                        r.config_version,
                        i64::try_from(r.baseline_cost_nanos).unwrap_or(i64::MAX),
                        r.cache_similarity,
                        r.prompt,
                        r.rollout,
                        flags.refused,
                        flags.triggered,
                        flags.spoiled,
                        r.priority,
                        i64::try_from(r.queue_ms).unwrap_or(i64::MAX),
                        r.preemptions,
                    ])?;
                }
            }
            insert_content(&tx, records)?;
            tx.commit()?;
            Ok(())
        })
    }

    fn writable(&self) -> Result<(), StoreError> {
        self.with_conn(|conn| Ok(conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;")?))
    }
}

impl Exec for Connection {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn each(
        &self,
        sql: &str,
        params: &[Param<'_>],
        row: &mut dyn FnMut(&dyn SqlRow) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut stmt = self.prepare_cached(sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
        while let Some(r) = rows.next()? {
            row(r)?;
        }
        Ok(())
    }

    fn execute(&self, sql: &str, params: &[Param<'_>]) -> Result<u64, StoreError> {
        let changed = self
            .prepare_cached(sql)?
            .execute(rusqlite::params_from_iter(params))?;
        Ok(changed as u64)
    }
}

impl ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        match self {
            Param::Int(v) => v.to_sql(),
            Param::Float(v) => v.to_sql(),
            Param::Text(v) => v.to_sql(),
            Param::Bool(v) => v.to_sql(),
            Param::Bytes(v) => v.to_sql(),
        }
    }
}

impl SqlRow for rusqlite::Row<'_> {
    fn opt_i64(&self, i: usize) -> Result<Option<i64>, StoreError> {
        Ok(self.get(i)?)
    }

    fn opt_f64(&self, i: usize) -> Result<Option<f64>, StoreError> {
        Ok(self.get(i)?)
    }

    fn opt_str(&self, i: usize) -> Result<Option<&str>, StoreError> {
        Ok(self
            .get_ref(i)?
            .as_str_or_null()
            .map_err(rusqlite::Error::from)?)
    }

    fn opt_bool(&self, i: usize) -> Result<Option<bool>, StoreError> {
        Ok(self.get(i)?)
    }

    fn opt_bytes(&self, i: usize) -> Result<Option<&[u8]>, StoreError> {
        Ok(self
            .get_ref(i)?
            .as_blob_or_null()
            .map_err(rusqlite::Error::from)?)
    }
}

/// Switches to WAL mode. On a new file that another process is opening too, the switch can
/// fail at once with SQLITE_BUSY (SQLite does not wait there); waiting for the lock as a write
/// transaction does (`BEGIN IMMEDIATE`, which honours the busy timeout) and trying again gets
/// through without sleeping.
fn set_wal(conn: &Connection) -> Result<(), rusqlite::Error> {
    let mut tries = 0;
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy && tries < 20 =>
            {
                tries += 1;
                conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;")?;
            }
            done => return done,
        }
    }
}

fn migrate(conn: &Connection) -> Result<(), rusqlite::Error> {
    migrate_to(conn, MIGRATIONS)
}

/// Applies the `migrations` not yet applied, each in its own write transaction that reads
/// `user_version` again once it holds the lock, so two processes opening one new file at once
/// do not both run a migration. An up-to-date file is not locked (it may be read-only).
fn migrate_to(conn: &Connection, migrations: &[&str]) -> Result<(), rusqlite::Error> {
    let done: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if usize::try_from(done).is_ok_and(|done| done >= migrations.len()) {
        return Ok(());
    }
    loop {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        match migrate_one(conn, migrations) {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(e) => {
                // Best effort: the error that matters is the first one.
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e);
            }
        }
    }
}

/// Inside an open transaction: applies the next migration and commits (true), or commits
/// and says there was none (false).
fn migrate_one(conn: &Connection, migrations: &[&str]) -> Result<bool, rusqlite::Error> {
    let done: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    let next = usize::try_from(done).unwrap_or(usize::MAX);
    match migrations.get(next) {
        Some(sql) => {
            conn.execute_batch(&format!(
                "{sql}; PRAGMA user_version = {}; COMMIT;",
                next + 1
            ))?;
            Ok(true)
        }
        None => {
            conn.execute_batch("COMMIT")?;
            Ok(false)
        }
    }
}

/// Inside the batch's transaction: the content of the records that carry some.
fn insert_content(tx: &Transaction<'_>, records: &[RequestRecord]) -> Result<(), StoreError> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO request_content (request_id, started_at_ms, body) VALUES (?1, ?2, ?3)",
    )?;
    for r in records {
        let Some(content) = &r.content else {
            continue;
        };
        stmt.execute(params![
            r.request_id,
            r.started_at_ms,
            content_json(r, content)?
        ])?;
    }
    Ok(())
}

/// A database as an older build left it: only the first `n` migrations applied.
#[cfg(test)]
pub(crate) fn open_old_schema(path: &Path, n: usize) -> Connection {
    let conn = Connection::open(path).unwrap();
    migrate_to(&conn, &MIGRATIONS[..n]).unwrap();
    conn
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_opening_a_new_file_at_once_migrate_it_once() {
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("switchyard.db");
            std::thread::scope(|s| {
                let opens: Vec<_> = (0..4)
                    .map(|_| s.spawn(|| SqliteStore::open(&path)))
                    .collect();
                for open in opens {
                    open.join().unwrap().unwrap();
                }
            });
            let conn = Connection::open(&path).unwrap();
            let version: usize = conn
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .unwrap();
            assert_eq!(version, MIGRATIONS.len());
        }
    }

    #[test]
    fn reopening_keeps_data_and_does_not_remigrate() {
        let dir = tempfile::tempdir().unwrap();
        SqliteStore::open_in(dir.path())
            .unwrap()
            .write_batch(&[RequestRecord::default()])
            .unwrap();
        let store = SqliteStore::open_in(dir.path()).unwrap();
        assert_eq!(store.count().unwrap(), 1);
    }
}
