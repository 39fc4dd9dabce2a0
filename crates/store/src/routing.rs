//! What the router's recalibration and `switchyard router report` read and write: routed
//! requests with their feedback, and the history of recalibrated bars.

use crate::sql::{limit, Dialect, SqlReads};
use crate::{SqliteStore, StoreError};

/// A routed request that got a feedback score (the mean, when it got several).
#[derive(Debug, Clone, PartialEq)]
pub struct RoutedFeedback {
    /// The decision as the record holds it (JSON).
    pub decision: String,
    pub score: f64,
}

/// One request on a route alias, for reports.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteRow {
    pub requested_model: String,
    pub model: Option<String>,
    pub decision: Option<String>,
    pub cache: Option<String>,
    pub status: u16,
    pub cost_nanos: u64,
    pub baseline_cost_nanos: u64,
    pub feedback: Option<f64>,
}

/// One recalibration of a route's bars.
#[derive(Debug, Clone, PartialEq)]
pub struct CalibrationRow {
    pub route: String,
    pub at_ms: i64,
    /// The trained bars it was anchored at `(cheap, balanced)`.
    pub base: (f32, f32),
    pub bars: (f32, f32),
    /// The explanation (JSON).
    pub report: String,
}

/// `requested_model` is the alias itself or the alias with a policy suffix. SQLite's `LIKE`
/// ignores the case of ASCII letters; PostgreSQL's `ILIKE` is the same match.
fn alias_match(d: Dialect) -> &'static str {
    match d {
        Dialect::Sqlite => "(r.requested_model = ?1 OR r.requested_model LIKE ?1 || ':%')",
        Dialect::Postgres => "(r.requested_model = ?1 OR r.requested_model ILIKE ?1 || ':%')",
    }
}

/// What route recalibration reads and keeps. Every method blocks (see [`crate::Store`] for
/// why the seams are sync).
pub trait CalibrationStore {
    /// Routed requests on `route` since a time that got a feedback score from their own tenant.
    fn routed_feedback(
        &self,
        route: &str,
        since_ms: i64,
    ) -> Result<Vec<RoutedFeedback>, StoreError>;

    /// Every chat request on `route` since a time, with its mean feedback score if any.
    fn route_rows(&self, route: &str, since_ms: i64) -> Result<Vec<RouteRow>, StoreError>;

    fn add_calibration(&self, c: &CalibrationRow) -> Result<(), StoreError>;

    /// The latest recalibrations of `route`, newest first.
    fn calibrations(&self, route: &str, limit: usize) -> Result<Vec<CalibrationRow>, StoreError>;

    /// The newest recalibration of `route`, if any.
    fn latest_calibration(&self, route: &str) -> Result<Option<CalibrationRow>, StoreError> {
        Ok(self.calibrations(route, 1)?.into_iter().next())
    }
}

/// [`CalibrationStore::route_rows`] and [`CalibrationStore::calibrations`] are inherent too,
/// because the `switchyard` crate's router report calls them on a concrete store.
impl SqliteStore {
    /// Every chat request on `route` since a time, with its mean feedback score if any.
    pub fn route_rows(&self, route: &str, since_ms: i64) -> Result<Vec<RouteRow>, StoreError> {
        CalibrationStore::route_rows(self, route, since_ms)
    }

    /// The latest recalibrations of `route`, newest first.
    pub fn calibrations(
        &self,
        route: &str,
        limit: usize,
    ) -> Result<Vec<CalibrationRow>, StoreError> {
        CalibrationStore::calibrations(self, route, limit)
    }
}

impl<S: SqlReads> CalibrationStore for S {
    fn routed_feedback(
        &self,
        route: &str,
        since_ms: i64,
    ) -> Result<Vec<RoutedFeedback>, StoreError> {
        self.exec(|e| {
            e.all(
                &format!(
                    "SELECT r.route, AVG(f.score) FROM requests r \
                     JOIN feedback f ON f.request_id = r.request_id AND f.tenant = r.tenant \
                     WHERE r.route IS NOT NULL AND f.score IS NOT NULL AND r.started_at_ms >= ?2 \
                     AND {} GROUP BY r.request_id, r.route",
                    alias_match(e.dialect())
                ),
                &[route.into(), since_ms.into()],
                |row| {
                    Ok(RoutedFeedback {
                        decision: row.string(0)?,
                        score: row.f64(1)?,
                    })
                },
            )
        })
    }

    fn route_rows(&self, route: &str, since_ms: i64) -> Result<Vec<RouteRow>, StoreError> {
        self.exec(|e| {
            e.all(
                &format!(
                    "SELECT r.requested_model, r.model, r.route, r.cache, r.status, r.cost_nanos, \
                     r.baseline_cost_nanos, (SELECT AVG(f.score) FROM feedback f \
                     WHERE f.request_id = r.request_id AND f.tenant = r.tenant) \
                     FROM requests r WHERE r.endpoint IN ('chat', 'messages') AND r.started_at_ms >= ?2 AND {}",
                    alias_match(e.dialect())
                ),
                &[route.into(), since_ms.into()],
                |row| {
                    Ok(RouteRow {
                        requested_model: row.string(0)?,
                        model: row.opt_string(1)?,
                        decision: row.opt_string(2)?,
                        cache: row.opt_string(3)?,
                        status: u16::try_from(row.i64(4)?).unwrap_or(0),
                        cost_nanos: row.u64(5)?,
                        baseline_cost_nanos: row.u64(6)?,
                        feedback: row.opt_f64(7)?,
                    })
                },
            )
        })
    }

    fn add_calibration(&self, c: &CalibrationRow) -> Result<(), StoreError> {
        self.exec(|e| {
            e.execute(
                "INSERT INTO router_calibration (route, at_ms, base_cheap, base_balanced, cheap, \
                 balanced, report) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                &[
                    (&c.route).into(),
                    c.at_ms.into(),
                    f64::from(c.base.0).into(),
                    f64::from(c.base.1).into(),
                    f64::from(c.bars.0).into(),
                    f64::from(c.bars.1).into(),
                    (&c.report).into(),
                ],
            )
        })?;
        Ok(())
    }

    fn calibrations(
        &self,
        route: &str,
        limit_to: usize,
    ) -> Result<Vec<CalibrationRow>, StoreError> {
        self.exec(|e| {
            e.all(
                "SELECT route, at_ms, base_cheap, base_balanced, cheap, balanced, report \
                 FROM router_calibration WHERE route = ?1 ORDER BY at_ms DESC, rowid DESC LIMIT ?2",
                &[route.into(), limit(limit_to)],
                |row| {
                    // Bars are `f32`; stored as the database's doubles, they read back exactly.
                    let bar = |i: usize| row.f64(i).map(|v| v as f32);
                    Ok(CalibrationRow {
                        route: row.string(0)?,
                        at_ms: row.i64(1)?,
                        base: (bar(2)?, bar(3)?),
                        bars: (bar(4)?, bar(5)?),
                        report: row.string(6)?,
                    })
                },
            )
        })
    }
}
