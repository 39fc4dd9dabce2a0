//! The store a replica shares, as one trait object: every part's trait together.

use crate::batches::BatchStore;
use crate::content::ContentStore;
use crate::control::ControlStore;
use crate::fleet::FleetStore;
use crate::kpi::KpiStore;
use crate::postgres::PostgresStore;
use crate::record::{FeedbackStore, RecordStore};
use crate::responses::ResponseStore;
use crate::routing::CalibrationStore;
use crate::sessions::SessionRecords;
use crate::slo::SloStore;
use crate::sqlite::SqliteStore;

/// Everything a replica keeps in the store, as one trait object (`Arc<dyn Store>`): every
/// area's trait.
///
/// The methods are synchronous, and block on I/O: callers run them off the async threads
/// (`spawn_blocking`, or a thread of their own such as the telemetry writer's). So the
/// embedded SQLite implementation, one connection behind a mutex, pays no future or
/// allocation per call; and the PostgreSQL one uses the synchronous `postgres` client over a
/// small pool of connections. A transaction that spans
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
    + SessionRecords
    + FleetStore
    + BatchStore
    + ResponseStore
    + Send
    + Sync
{
}

impl Store for SqliteStore {}

impl Store for PostgresStore {}
