//! Durable state: request records (telemetry) and what is read back from them (spend so far,
//! recent requests, business KPIs in [`kpi`], exported by [`csv`]), and the control plane's
//! state (config versions, the audit chain, prompts, flags, rollouts: [`control`]).
//!
//! The embedded backend is SQLite in WAL mode. Records reach it through [`telemetry`]: a
//! bounded queue drained by one writer thread in batches, so the request path never waits
//! for the disk. Readers use their own connection. What requests said and were answered is
//! kept apart from their records ([`content`]), when the config asks for it. This crate knows
//! nothing of HTTP.

pub mod content;
pub mod control;
pub mod csv;
pub mod kpi;
mod record;
pub mod routing;
mod sqlite;
pub mod telemetry;
pub mod verdicts;

pub use control::{
    AppliedRow, ConfigVersion, ConfigVersionSummary, ControlRead, ControlTx, PromptRow,
    PromptSummary, StoredRollout,
};
pub use kpi::{
    Bucket, FeedbackStats, GroupBy, GuardTrigger, KpiFilter, KpiGroup, KpiPoint, KpiSummary,
    ModelShare, RequestFilter, StatusClass,
};
pub use record::{
    ContentAnswer, ContentMessage, ContentToolCall, Feedback, RequestContent, RequestRecord,
};
pub use sqlite::{Served, ServedOutcome, SqliteStore};

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
    #[error("{what} is not valid JSON for it: {source}")]
    Json {
        what: String,
        source: serde_json::Error,
    },
}
