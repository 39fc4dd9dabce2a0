//! A small bounded pool of synchronous PostgreSQL connections, each with its own prepared
//! statements.
//!
//! 1. A caller takes an idle connection (the most recently used first), else opens a new one
//!    while fewer than `size` are open, else waits for one to come back (up to
//!    [`CHECKOUT_WAIT`], then [`StoreError::PoolBusy`]).
//! 2. A connection idle for more than [`CHECK_IDLE_AFTER`] is checked with an empty query
//!    before it is handed out, and dropped when the check fails: after PostgreSQL restarted,
//!    the first call gets a fresh connection instead of an error from a dead one.
//! 3. A connection comes back when its caller is done, unless the driver saw it closed (the
//!    server went away mid-call): then it is dropped and its place freed, and the call's
//!    error reaches the caller. Nothing is retried: a write whose answer was lost may have
//!    committed.
//! 4. While PostgreSQL is down, every call fails at once with the connection error (no
//!    waiting for a timeout: the telemetry writer keeps its records and retries with backoff,
//!    `/readyz` says not ready), and the first call after it is back opens a connection.
//!
//! Why not r2d2: it checks every connection it hands out (an extra round trip on every call)
//! or none (the first calls after a restart fail), and while the database is down it retries
//! until its connection timeout before failing, so each call would wait that long. This pool
//! checks only connections that sat idle, fails at once, and has no threads of its own.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use postgres::{Client, Config, GenericClient, NoTls, Statement};

use super::url::scrub;
use crate::StoreError;

/// How long a caller waits for a connection when all are busy.
const CHECKOUT_WAIT: Duration = Duration::from_secs(10);
/// A connection idle longer than this is checked before use.
const CHECK_IDLE_AFTER: Duration = Duration::from_secs(1);
/// How long that check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// Prepared statements kept per connection; beyond it they are all let go (the SQL texts are
/// few: only the KPI filters combine into more).
const MAX_STATEMENTS: usize = 256;

/// Statements prepared on one connection, by their shared SQL text.
#[derive(Default)]
pub(crate) struct Statements {
    by_sql: HashMap<String, Statement>,
}

impl Statements {
    /// The statement kept under `key`, else `native()` (PostgreSQL's SQL for it) prepared on
    /// `client` and kept.
    pub(crate) fn prepare(
        &mut self,
        client: &mut impl GenericClient,
        key: &str,
        native: impl FnOnce() -> String,
    ) -> Result<Statement, postgres::Error> {
        if let Some(statement) = self.by_sql.get(key) {
            return Ok(statement.clone());
        }
        let statement = client.prepare(&native())?;
        if self.by_sql.len() >= MAX_STATEMENTS {
            self.by_sql.clear();
        }
        self.by_sql.insert(key.to_owned(), statement.clone());
        Ok(statement)
    }
}

/// One connection and its prepared statements.
pub(crate) struct Conn {
    pub(crate) client: Client,
    pub(crate) statements: Statements,
    idle_since: Instant,
}

struct State {
    idle: Vec<Conn>,
    /// Connections open, idle or handed out.
    open: usize,
}

pub(crate) struct Pool {
    config: Config,
    /// The connection string with its password hidden, for errors.
    shown: String,
    size: usize,
    state: Mutex<State>,
    freed: Condvar,
}

impl Pool {
    pub(crate) fn new(config: Config, shown: String, size: usize) -> Pool {
        Pool {
            config,
            shown,
            size: size.max(1),
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
            }),
            freed: Condvar::new(),
        }
    }

    /// The connection string with its password hidden.
    pub(crate) fn shown(&self) -> &str {
        &self.shown
    }

    /// A connection for one call (1. and 2. above).
    pub(crate) fn get(&self) -> Result<Pooled<'_>, StoreError> {
        let deadline = Instant::now() + CHECKOUT_WAIT;
        let mut state = self.state.lock().map_err(|_| StoreError::Poisoned)?;
        loop {
            if let Some(mut conn) = state.idle.pop() {
                drop(state);
                let stale = conn.idle_since.elapsed() > CHECK_IDLE_AFTER
                    && conn.client.is_valid(CHECK_TIMEOUT).is_err();
                if !stale {
                    return Ok(Pooled {
                        pool: self,
                        conn: Some(conn),
                    });
                }
                drop(conn);
                self.forget()?;
                state = self.state.lock().map_err(|_| StoreError::Poisoned)?;
                continue;
            }
            if state.open < self.size {
                state.open += 1;
                drop(state);
                return match self.connect() {
                    Ok(conn) => Ok(Pooled {
                        pool: self,
                        conn: Some(conn),
                    }),
                    Err(e) => {
                        self.forget()?;
                        Err(e)
                    }
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(StoreError::PoolBusy {
                    size: self.size,
                    waited_ms: u64::try_from(CHECKOUT_WAIT.as_millis()).unwrap_or(u64::MAX),
                });
            }
            state = self
                .freed
                .wait_timeout(state, deadline - now)
                .map_err(|_| StoreError::Poisoned)?
                .0;
        }
    }

    fn connect(&self) -> Result<Conn, StoreError> {
        let client = self
            .config
            .connect(NoTls)
            .map_err(|e| self.connect_error(&e))?;
        Ok(Conn {
            client,
            statements: Statements::default(),
            idle_since: Instant::now(),
        })
    }

    /// A connection error, with the password hidden in the URL and in the driver's words.
    pub(crate) fn connect_error(&self, e: &postgres::Error) -> StoreError {
        let password = self
            .config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned());
        StoreError::PostgresConnect {
            url: self.shown.clone(),
            reason: scrub(&e.to_string(), password.as_deref()),
        }
    }

    /// A connection was dropped: its place is free.
    fn forget(&self) -> Result<(), StoreError> {
        let mut state = self.state.lock().map_err(|_| StoreError::Poisoned)?;
        state.open = state.open.saturating_sub(1);
        drop(state);
        self.freed.notify_one();
        Ok(())
    }

    /// A connection back from a call (3. above).
    fn put_back(&self, mut conn: Conn) {
        if conn.client.is_closed() {
            drop(conn);
            // A poisoned lock fails every later call anyway.
            let _ = self.forget();
            return;
        }
        conn.idle_since = Instant::now();
        if let Ok(mut state) = self.state.lock() {
            state.idle.push(conn);
        }
        self.freed.notify_one();
    }
}

/// The idle connections are closed on a thread of their own: each client closes by blocking
/// on its own runtime, which panics on an async thread, and the last holder of a store may be
/// one (a server's state dropped at shutdown).
impl Drop for Pool {
    fn drop(&mut self) {
        let idle = match self.state.get_mut() {
            Ok(state) => std::mem::take(&mut state.idle),
            Err(poisoned) => std::mem::take(&mut poisoned.into_inner().idle),
        };
        if idle.is_empty() {
            return;
        }
        // Were no thread to start, they would close here, as any value dropped.
        if let Ok(closing) = std::thread::Builder::new()
            .name("postgres-close".into())
            .spawn(move || drop(idle))
        {
            let _ = closing.join();
        }
    }
}

/// A connection handed out; it goes back to the pool when dropped.
pub(crate) struct Pooled<'a> {
    pool: &'a Pool,
    conn: Option<Conn>,
}

impl Pooled<'_> {
    /// The connection (always there until drop).
    pub(crate) fn conn(&mut self) -> Result<&mut Conn, StoreError> {
        self.conn.as_mut().ok_or(StoreError::Poisoned)
    }

    /// Closes the connection instead of putting it back.
    pub(crate) fn discard(mut self) {
        if self.conn.take().is_some() {
            // A poisoned lock fails every later call anyway.
            let _ = self.pool.forget();
        }
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.put_back(conn);
        }
    }
}
