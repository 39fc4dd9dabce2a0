//! The shared store: every table in one PostgreSQL database, so that several gateway replicas
//! share records, feedback, KPIs, calibration, SLO state, the control state and dashboard
//! sessions.
//!
//! Each area's SQL is the SQLite store's (one text for both, [`crate::sql`]); what is
//! PostgreSQL's own is here: the connection pool (`pool`: why not r2d2 is there), running the
//! shared SQL on a connection or transaction (`exec`), the schema and its versioned
//! migrations, applied at connect under an advisory lock so replicas starting at once never
//! race (`migrate`), batches of records in one statement (`records`), the locks that order
//! what replicas must not interleave ([`PostgresStore`]'s transactions), and hiding the
//! password of the connection URL in every error, log line and `Debug` output (`url`).
//!
//! The client is the synchronous `postgres` crate: the store's traits are synchronous and
//! called off the async threads (`spawn_blocking` or the telemetry writer's thread), where a
//! blocking call is what the caller wants. Calling them on an async thread panics (the
//! client blocks on a runtime of its own). Connections are plain TCP: a URL that requires
//! TLS (`sslmode=require`) is refused.

mod exec;
mod migrate;
mod pool;
mod records;
mod url;

use std::fmt;
use std::time::Duration;

use sha2::{Digest, Sha256};

use self::exec::PgExec;
use self::pool::{Conn, Pool};
use crate::record::RequestRecord;
use crate::sql::{Exec, Lock, SqlReads, SqlStore};
use crate::StoreError;

/// Connections a store keeps open at most: the telemetry writer, the control loop and a few
/// admin reads at once.
pub const DEFAULT_POOL_SIZE: usize = 8;
/// How long connecting may take, unless the URL says (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Advisory lock keys ("SWYD" and a number), apart from [`migrate::MIGRATION_LOCK`]'s.
const CONTROL_LOCK: i64 = 0x5357_5944_0000_0002;
const SESSIONS_LOCK: i64 = 0x5357_5944_0000_0003;
/// The first key of a request's feedback lock; the second is a hash of the request id. The
/// two-key locks are apart from the one-key ones.
const FEEDBACK_LOCK_CLASS: i32 = 0x5357_5944;
/// The first key of a batch's lock (the second, a hash of the batch id).
const BATCH_LOCK_CLASS: i32 = 0x5357_5945;

/// Every table in one PostgreSQL database, behind a small pool of connections. Cheap to
/// share (`Arc`); each call takes a connection for its length.
pub struct PostgresStore {
    pool: Pool,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("url", &self.pool.shown())
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to `url` (`postgres://USER:PASSWORD@HOST:PORT/DB`, or PostgreSQL's
    /// `key=value` form) with a pool of [`DEFAULT_POOL_SIZE`], and applies the migrations
    /// this build has and the database has not. Errors never show the password.
    pub fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        PostgresStore::connect_with(url, DEFAULT_POOL_SIZE)
    }

    /// [`PostgresStore::connect`] with a pool of `pool_size` connections (at least 1).
    pub fn connect_with(url: &str, pool_size: usize) -> Result<PostgresStore, StoreError> {
        let shown = url::redact(url);
        let mut config: postgres::Config =
            url.parse()
                .map_err(|e: postgres::Error| StoreError::PostgresConnect {
                    url: shown.clone(),
                    reason: format!("not a PostgreSQL connection URL: {e}"),
                })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("switchyard");
        }
        let store = PostgresStore {
            pool: Pool::new(config, shown, pool_size),
        };
        let mut pooled = store.pool.get()?;
        match migrate::migrate(&mut pooled.conn()?.client) {
            Ok(applied) => {
                tracing::info!(url = %store.pool.shown(), applied, "PostgreSQL store ready");
            }
            Err(e) => {
                // Dropping the connection lets the migration lock go, whatever happened.
                pooled.discard();
                return Err(e);
            }
        }
        drop(pooled);
        Ok(store)
    }
}

impl PostgresStore {
    /// Runs `f` on a pooled connection. A connection whose call failed otherwise than by the
    /// database's answer (the connection broke, a timeout, a value it could not read) is
    /// closed rather than used again.
    fn on_conn<T>(
        &self,
        f: impl FnOnce(&mut Conn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut pooled = self.pool.get()?;
        let result = f(pooled.conn()?);
        if let Err(StoreError::Postgres(e)) = &result {
            if e.as_db_error().is_none() {
                pooled.discard();
            }
        }
        result
    }
}

impl SqlReads for PostgresStore {
    fn exec<T>(&self, f: impl FnOnce(&dyn Exec) -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.on_conn(|conn| f(&PgExec::new(&mut conn.client, &mut conn.statements)))
    }
}

impl SqlStore for PostgresStore {
    /// A transaction that takes `lock` as an advisory lock (held until it ends) first, so
    /// what it reads before writing is not changed by another replica meanwhile: the audit
    /// chain's last entry, the next prompt version, the first negative feedback, the
    /// sessions' count.
    fn transaction<T>(
        &self,
        lock: Lock<'_>,
        f: impl FnOnce(&dyn Exec) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.on_conn(|conn| {
            let mut tx = conn.client.transaction()?;
            match lock {
                Lock::Control => {
                    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CONTROL_LOCK])?
                }
                Lock::Sessions => {
                    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SESSIONS_LOCK])?
                }
                Lock::Feedback(request_id) => tx.execute(
                    "SELECT pg_advisory_xact_lock($1, $2)",
                    &[&FEEDBACK_LOCK_CLASS, &key_hash(request_id)],
                )?,
                Lock::Batch(batch_id) => tx.execute(
                    "SELECT pg_advisory_xact_lock($1, $2)",
                    &[&BATCH_LOCK_CLASS, &key_hash(batch_id)],
                )?,
            };
            let made = f(&PgExec::new(&mut tx, &mut conn.statements))?;
            tx.commit()?;
            Ok(made)
        })
    }

    fn write_records(&self, records: &[RequestRecord]) -> Result<(), StoreError> {
        self.on_conn(|conn| {
            let mut tx = conn.client.transaction()?;
            records::insert(&mut tx, &mut conn.statements, records)?;
            tx.commit()?;
            Ok(())
        })
    }

    /// Reachable, and not a standby in recovery nor read-only.
    fn writable(&self) -> Result<(), StoreError> {
        let read_only = self.on_conn(|conn| {
            let row = conn.client.query_one(
                "SELECT pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on'",
                &[],
            )?;
            Ok(row.try_get::<_, bool>(0)?)
        })?;
        if read_only {
            return Err(StoreError::NotWritable(format!(
                "{} is read-only (a standby, or transactions are read-only)",
                self.pool.shown()
            )));
        }
        Ok(())
    }
}

/// A 32-bit hash of a key, for a two-key advisory lock.
fn key_hash(key: &str) -> i32 {
    let digest = Sha256::digest(key.as_bytes());
    i32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_never_shows_in_a_connect_error() {
        // Nothing listens on port 1, and a URL that does not parse: both fail at once.
        for url in [
            "postgres://ana:hunter2-secret@127.0.0.1:1/switchyard?connect_timeout=2",
            "postgres://ana:hunter2-secret@127.0.0.1:notaport/switchyard",
            "host=127.0.0.1 port=1 user=ana password=hunter2-secret connect_timeout=2",
        ] {
            let err = PostgresStore::connect(url).unwrap_err();
            for shown in [err.to_string(), format!("{err:?}")] {
                assert!(!shown.contains("hunter2"), "{shown}");
                assert!(shown.contains("*****"), "{shown}");
            }
        }
    }

    #[test]
    fn the_feedback_lock_key_is_stable() {
        assert_eq!(key_hash("r1"), key_hash("r1"));
        assert_ne!(key_hash("r1"), key_hash("r2"));
    }
}
