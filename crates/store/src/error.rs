//! How storage fails.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the data folder {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("SQLite error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// An error of a statement on PostgreSQL (the server's own message; it never holds the
    /// connection URL).
    #[error("PostgreSQL error: {0}")]
    Postgres(#[from] postgres::Error),
    /// PostgreSQL could not be reached or refused the connection. `url` has its password
    /// replaced, and so has `reason`.
    #[error("cannot connect to PostgreSQL at {url}: {reason}")]
    PostgresConnect { url: String, reason: String },
    /// The database is reachable but does not take writes.
    #[error("the store does not take writes: {0}")]
    NotWritable(String),
    /// Every pooled connection stayed busy for the whole wait.
    #[error("no PostgreSQL connection came free within {waited_ms} ms ({size} in use)")]
    PoolBusy { size: usize, waited_ms: u64 },
    /// A statement ran while another's rows were being read on the same connection (a bug).
    #[error("a statement ran inside another's row loop on one connection")]
    Reentrant,
    /// The blocking task running store work panicked or was cancelled.
    #[error("the storage task did not finish")]
    Interrupted,
    /// A column the store always fills was NULL (written behind the store's back).
    #[error("column {0} of a stored row is NULL")]
    Null(usize),
    #[error("the store lock was poisoned by a panic")]
    Poisoned,
    #[error("config version prefix `{prefix}` is ambiguous: it starts {}", .matches.join(", "))]
    AmbiguousPrefix {
        prefix: String,
        /// Some of the ids it starts (at most 10).
        matches: Vec<String>,
    },
    #[error("no config version `{0}` is stored")]
    NoSuchConfigVersion(String),
    #[error("config version id `{id}` is not the SHA-256 of its text ({hash})")]
    NotContentAddressed { id: String, hash: String },
    #[error("prompt `{name}` has no version {version}")]
    NoSuchPromptVersion { name: String, version: u32 },
    /// A [`ControlStore::transact_dyn`] that returned `Ok` without running its work: a broken
    /// implementation.
    #[error("the store committed a transaction without running its work")]
    WorkNotRun,
    #[error("{what} is not valid JSON for it: {source}")]
    Json {
        what: String,
        source: serde_json::Error,
    },
}
