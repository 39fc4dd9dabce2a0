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
//! [`CalibrationStore`], [`SloStore`], the control state's [`ControlStore`] (with
//! [`ControlReader`], and [`ControlWriter`] inside a transaction) and the dashboard's
//! [`SessionRecords`], the Batch API's files, batches and lines ([`BatchStore`]), and the Responses API's
//! stored responses ([`ResponseStore`]).
//! [`Store`] is all of them. [`SqliteStore`] (embedded, the default) and
//! [`PostgresStore`] (shared by several replicas) implement every one, with one SQL text for
//! both (the private `sql` module says how).

pub mod batches;
pub mod content;
pub mod control;
pub mod csv;
mod error;
mod fleet;
pub mod kpi;
mod postgres;
mod record;
mod requests;
pub mod responses;
pub mod routing;
pub mod sessions;
mod slo;
pub mod spool;
mod sql;
mod sqlite;
mod store;
pub mod telemetry;
pub mod verdicts;

pub use batches::BatchStore;
pub use content::ContentStore;
pub use control::{
    AppliedRow, ConfigVersion, ConfigVersionSummary, ControlRead, ControlReader, ControlStore,
    ControlTx, ControlWork, ControlWriter, PromptRow, PromptSummary, StoredRollout, Transact,
};
pub use fleet::{FleetStore, ReplicaState};
pub use kpi::{
    Bucket, FeedbackStats, GroupBy, GuardTrigger, KpiFilter, KpiGroup, KpiPoint, KpiStore,
    KpiSummary, ModelShare, RequestFilter, StatusClass,
};
pub use postgres::PostgresStore;
pub use record::{
    ContentAnswer, ContentMessage, ContentToolCall, Feedback, FeedbackStore, RecordStore,
    RequestContent, RequestRecord, Served, ServedOutcome,
};
pub use responses::{ResponseStore, StoredResponse};
pub use routing::CalibrationStore;
pub use sessions::{SessionRecords, StoredSession};
pub use sqlite::SqliteStore;

pub use error::StoreError;
pub use slo::SloStore;
pub use store::Store;
