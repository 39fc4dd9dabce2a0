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
