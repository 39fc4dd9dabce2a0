//! Durable state: request records (telemetry) and what is read back from them (spend so far,
//! recent requests, business KPIs in [`kpi`], exported by [`csv`]), and the control plane's
//! state (config versions, the audit chain, prompts, flags, rollouts: [`control`]).
//!
//! The embedded backend is SQLite in WAL mode. Records reach it through [`telemetry`]: a
//! bounded queue drained by one writer thread in batches, so the request path never waits
//! for the disk. Readers use their own connection. What requests said and were answered is
//! kept apart from their records ([`content`]), when the config asks for it. This crate knows
//! nothing of HTTP.
//!
//! What the replicas of one deployment share is behind traits, one per area, so another
//! database can keep it: [`RecordStore`], [`ContentStore`], [`FeedbackStore`], [`KpiStore`],
//! [`CalibrationStore`], [`SloStore`] and the control state's [`ControlStore`] (with
//! [`ControlReader`], and [`ControlWriter`] inside a transaction). [`Store`] is all of them;
//! [`SqliteStore`] implements every one.

pub mod content;
pub mod control;
pub mod csv;
pub mod kpi;
mod record;
pub mod routing;
mod sqlite;
pub mod telemetry;
pub mod verdicts;

pub use content::ContentStore;
pub use control::{
    AppliedRow, ConfigVersion, ConfigVersionSummary, ControlRead, ControlReader, ControlStore,
    ControlTx, ControlWork, ControlWriter, PromptRow, PromptSummary, StoredRollout, Transact,
};
pub use kpi::{
    Bucket, FeedbackStats, GroupBy, GuardTrigger, KpiFilter, KpiGroup, KpiPoint, KpiStore,
    KpiSummary, ModelShare, RequestFilter, StatusClass,
};
pub use record::{
    ContentAnswer, ContentMessage, ContentToolCall, Feedback, FeedbackStore, RecordStore,
    RequestContent, RequestRecord, Served, ServedOutcome,
};
pub use routing::CalibrationStore;
pub use sqlite::SqliteStore;

/// Everything a replica keeps in the store, as one trait object (`Arc<dyn Store>`): every
/// area's trait.
///
/// The methods are synchronous, and block on I/O: callers run them off the async threads
/// (`spawn_blocking`, or a thread of their own such as the telemetry writer's). So the
/// embedded SQLite implementation, one connection behind a mutex, pays no future or
/// allocation per call; and a PostgreSQL implementation can use the synchronous `postgres`
/// client (or block on an async pool inside). A transaction that spans
/// areas (a change and its audit entry) is one method call ([`Transact::transact`]), never a
/// sequence of calls that another replica could interleave.
pub trait Store:
    RecordStore
    + ContentStore
    + FeedbackStore
    + KpiStore
    + CalibrationStore
    + SloStore
    + ControlStore
    + Send
    + Sync
{
}

impl Store for SqliteStore {}

/// The SLO runtime's state, one JSON document replaced each time. Every method blocks.
pub trait SloStore {
    /// Saves the SLO runtime's state (one JSON document, replaced each time).
    fn save_slo_state(&self, body: &str, at_ms: i64) -> Result<(), StoreError>;

    /// The SLO runtime's saved state, if any.
    fn slo_state(&self) -> Result<Option<String>, StoreError>;
}

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
