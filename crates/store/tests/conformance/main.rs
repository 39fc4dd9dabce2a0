//! The store conformance suite: the same test functions against `SqliteStore` and
//! `PostgresStore` (each PostgreSQL test on a throwaway server of its own, skipped with a
//! message where none can be started, failing instead under `SWITCHYARD_REQUIRE_SERVERS=1`).
//! Each area's file lists its tests in [`conformance!`], which makes `sqlite::NAME` and
//! `postgres::NAME` of each. `postgres_only.rs` has what only the shared database has to show
//! (replicas migrating at once, a server restart, the password hidden).

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test code: the areas' functions are tests, run by `conformance!`"
)]

use std::path::PathBuf;

use switchyard_rollout::{AuditEntry, AuditEvent, Flag, Rollout};
use switchyard_store::{ConfigVersion, PostgresStore, SqliteStore, Store, StoreError, Transact};
use switchyard_testkit::servers::PostgresServer;

mod batches;
mod control;
mod fleet;
mod kpi;
mod postgres_only;
mod records;
mod responses;
mod sessions;

/// `sqlite::NAME` and `postgres::NAME` tests running the area's function `NAME(&Backend)`.
macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $test() {
                    super::$test(&$crate::Backend::sqlite());
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $test() {
                    if let Some(backend) = $crate::Backend::postgres(stringify!($test)) {
                        super::$test(&backend);
                    }
                }
            )*
        }
    };
}
pub(crate) use conformance;

/// Where a test's store lives, and a way in behind the store's back.
enum Place {
    Sqlite(tempfile::TempDir),
    Postgres(PostgresServer),
}

/// A store under test, on a database of its own.
pub struct Backend {
    // Dropped before the place it lives in.
    store: Box<dyn Store>,
    place: Place,
}

impl Backend {
    pub fn sqlite() -> Backend {
        let dir = tempfile::tempdir().unwrap();
        let store = Box::new(SqliteStore::open_in(dir.path()).unwrap());
        Backend {
            store,
            place: Place::Sqlite(dir),
        }
    }

    /// A store on a PostgreSQL server of its own, or `None` (said on stderr) when no server
    /// can be started here.
    pub fn postgres(test: &str) -> Option<Backend> {
        let server = match PostgresServer::start() {
            Ok(server) => server,
            Err(e) => {
                e.skip(test);
                return None;
            }
        };
        let store = Box::new(PostgresStore::connect(&server.url()).unwrap());
        Some(Backend {
            store,
            place: Place::Postgres(server),
        })
    }

    pub fn store(&self) -> &dyn Store {
        &*self.store
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.place, Place::Postgres(_))
    }

    /// Another store on the same database (another process, or another replica).
    pub fn another(&self) -> Box<dyn Store> {
        match &self.place {
            Place::Sqlite(dir) => Box::new(SqliteStore::open_in(dir.path()).unwrap()),
            Place::Postgres(server) => Box::new(PostgresStore::connect(&server.url()).unwrap()),
        }
    }

    /// Runs `sql` behind the store's back, as someone with the database would.
    pub fn raw(&self, sql: &str) -> Result<(), String> {
        match &self.place {
            Place::Sqlite(dir) => rusqlite::Connection::open(sqlite_file(dir))
                .and_then(|db| db.execute_batch(sql))
                .map_err(|e| e.to_string()),
            Place::Postgres(server) => postgres::Client::connect(&server.url(), postgres::NoTls)
                .and_then(|mut db| db.batch_execute(sql))
                .map_err(|e| match e.as_db_error() {
                    Some(db) => db.message().to_owned(),
                    None => e.to_string(),
                }),
        }
    }

    /// Drops the triggers that refuse edits of the audit log, as someone with the database
    /// could.
    pub fn allow_audit_edits(&self) {
        let sql = if self.is_postgres() {
            "DROP TRIGGER audit_no_update ON audit;"
        } else {
            "DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;"
        };
        self.raw(sql).unwrap();
    }
}

fn sqlite_file(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("switchyard.db")
}

/// Single control changes, each in a transaction of its own, on any store (as
/// `SqliteStore`'s own methods of these names).
pub trait Changes {
    fn put_config_version(&self, v: &ConfigVersion) -> Result<bool, StoreError>;
    fn mark_applied(&self, id: &str, at: i64, actor: &str, why: &str) -> Result<u64, StoreError>;
    fn append_audit(&self, event: AuditEvent) -> Result<AuditEntry, StoreError>;
    fn push_prompt(
        &self,
        name: &str,
        body: &str,
        by: &str,
        msg: &str,
        at: i64,
    ) -> Result<u32, StoreError>;
    fn set_prompt_label(
        &self,
        name: &str,
        label: &str,
        v: u32,
        at: i64,
    ) -> Result<Option<u32>, StoreError>;
    fn put_flag(&self, flag: &Flag, at: i64) -> Result<Option<Flag>, StoreError>;
    fn delete_flag(&self, key: &str) -> Result<Option<Flag>, StoreError>;
    fn put_rollout(&self, rollout: &Rollout, active: bool, at: i64) -> Result<(), StoreError>;
}

impl<S: Store + ?Sized> Changes for S {
    fn put_config_version(&self, v: &ConfigVersion) -> Result<bool, StoreError> {
        self.transact(|c| c.put_config_version(v))
    }

    fn mark_applied(&self, id: &str, at: i64, actor: &str, why: &str) -> Result<u64, StoreError> {
        self.transact(|c| c.mark_applied(id, at, actor, why))
    }

    fn append_audit(&self, event: AuditEvent) -> Result<AuditEntry, StoreError> {
        self.transact(|c| c.append_audit(event))
    }

    fn push_prompt(
        &self,
        name: &str,
        body: &str,
        by: &str,
        msg: &str,
        at: i64,
    ) -> Result<u32, StoreError> {
        self.transact(|c| c.push_prompt(name, body, by, msg, at))
    }

    fn set_prompt_label(
        &self,
        name: &str,
        label: &str,
        v: u32,
        at: i64,
    ) -> Result<Option<u32>, StoreError> {
        self.transact(|c| c.set_prompt_label(name, label, v, at))
    }

    fn put_flag(&self, flag: &Flag, at: i64) -> Result<Option<Flag>, StoreError> {
        self.transact(|c| c.put_flag(flag, at))
    }

    fn delete_flag(&self, key: &str) -> Result<Option<Flag>, StoreError> {
        self.transact(|c| c.delete_flag(key))
    }

    fn put_rollout(&self, rollout: &Rollout, active: bool, at: i64) -> Result<(), StoreError> {
        self.transact(|c| c.put_rollout(rollout, active, at))
    }
}
