//! Durable state: request records (telemetry) and what is read back from them (spend so far,
//! recent requests).
//!
//! The embedded backend is SQLite in WAL mode. Records reach it through [`telemetry`]: a
//! bounded queue drained by one writer thread in batches, so the request path never waits
//! for the disk. Readers use their own connection. This crate knows nothing of HTTP.

mod record;
pub mod routing;
mod sqlite;
pub mod telemetry;

pub use record::{Feedback, RequestRecord};
pub use sqlite::SqliteStore;

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
}
