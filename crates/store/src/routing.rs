//! What the router's recalibration and `switchyard router report` read and write: routed
//! requests with their feedback, and the history of recalibrated bars.

use rusqlite::params;

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

/// `requested_model` is the alias itself or the alias with a policy suffix.
const ALIAS_MATCH: &str = "(r.requested_model = ?1 OR r.requested_model LIKE ?1 || ':%')";

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
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT r.requested_model, r.model, r.route, r.cache, r.status, r.cost_nanos, r.baseline_cost_nanos, \
                 (SELECT AVG(f.score) FROM feedback f WHERE f.request_id = r.request_id AND f.tenant = r.tenant) \
                 FROM requests r WHERE r.endpoint = 'chat' AND r.started_at_ms >= ?2 AND {ALIAS_MATCH}"
            ))?;
            let rows = stmt.query_map(params![route, since_ms], |row| {
                Ok(RouteRow {
                    requested_model: row.get(0)?,
                    model: row.get(1)?,
                    decision: row.get(2)?,
                    cache: row.get(3)?,
                    status: row.get(4)?,
                    cost_nanos: u64::try_from(row.get::<_, i64>(5)?).unwrap_or(0),
                    baseline_cost_nanos: u64::try_from(row.get::<_, i64>(6)?).unwrap_or(0),
                    feedback: row.get(7)?,
                })
            })?;
            rows.collect()
        })
    }

    /// The latest recalibrations of `route`, newest first.
    pub fn calibrations(
        &self,
        route: &str,
        limit: usize,
    ) -> Result<Vec<CalibrationRow>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT route, at_ms, base_cheap, base_balanced, cheap, balanced, report FROM router_calibration \
                 WHERE route = ?1 ORDER BY at_ms DESC, rowid DESC LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![route, limit as i64], |row| {
                Ok(CalibrationRow {
                    route: row.get(0)?,
                    at_ms: row.get(1)?,
                    base: (row.get(2)?, row.get(3)?),
                    bars: (row.get(4)?, row.get(5)?),
                    report: row.get(6)?,
                })
            })?;
            rows.collect()
        })
    }
}

impl CalibrationStore for SqliteStore {
    fn routed_feedback(
        &self,
        route: &str,
        since_ms: i64,
    ) -> Result<Vec<RoutedFeedback>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT r.route, AVG(f.score) FROM requests r \
                 JOIN feedback f ON f.request_id = r.request_id AND f.tenant = r.tenant \
                 WHERE r.route IS NOT NULL AND f.score IS NOT NULL AND r.started_at_ms >= ?2 AND {ALIAS_MATCH} \
                 GROUP BY r.request_id, r.route"
            ))?;
            let rows = stmt.query_map(params![route, since_ms], |row| {
                Ok(RoutedFeedback {
                    decision: row.get(0)?,
                    score: row.get(1)?,
                })
            })?;
            rows.collect()
        })
    }

    fn route_rows(&self, route: &str, since_ms: i64) -> Result<Vec<RouteRow>, StoreError> {
        SqliteStore::route_rows(self, route, since_ms)
    }

    fn add_calibration(&self, c: &CalibrationRow) -> Result<(), StoreError> {
        self.with(|conn| {
            conn.prepare_cached(
                "INSERT INTO router_calibration (route, at_ms, base_cheap, base_balanced, cheap, balanced, report) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                c.route,
                c.at_ms,
                c.base.0,
                c.base.1,
                c.bars.0,
                c.bars.1,
                c.report
            ])
            .map(|_| ())
        })
    }

    fn calibrations(&self, route: &str, limit: usize) -> Result<Vec<CalibrationRow>, StoreError> {
        SqliteStore::calibrations(self, route, limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Feedback, FeedbackStore, RecordStore, RequestRecord};

    #[test]
    fn feedback_joins_routed_requests_of_the_same_tenant() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_in(dir.path()).unwrap();
        let rec = |id: &str, model: &str, tenant: &str| RequestRecord {
            request_id: id.into(),
            started_at_ms: 1_000,
            endpoint: "chat".into(),
            tenant: Some(tenant.into()),
            requested_model: Some(model.into()),
            route: Some(format!("{{\"id\": \"{id}\"}}")),
            status: 200,
            ..RequestRecord::default()
        };
        store
            .write_batch(&[
                rec("a", "auto", "t1"),
                rec("b", "auto:cheap", "t1"),
                rec("c", "autopilot", "t1"),
                rec("d", "auto", "t2"),
            ])
            .unwrap();
        let fb = |id: &str, tenant: &str, score: f64| Feedback {
            request_id: id.into(),
            key_id: "k".into(),
            tenant: tenant.into(),
            created_at_ms: 2_000,
            score: Some(score),
            ..Feedback::default()
        };
        for f in [
            fb("a", "t1", 1.0),
            fb("a", "t1", 0.5),
            fb("b", "t1", 0.0),
            fb("c", "t1", 1.0),
            fb("d", "t1", 1.0), // another tenant's request: ignored
        ] {
            store.add_feedback(&f).unwrap();
        }
        let mut got: Vec<(String, f64)> = store
            .routed_feedback("auto", 0)
            .unwrap()
            .into_iter()
            .map(|r| (r.decision, r.score))
            .collect();
        got.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(
            got,
            vec![
                ("{\"id\": \"a\"}".to_owned(), 0.75),
                ("{\"id\": \"b\"}".to_owned(), 0.0)
            ]
        );
        assert_eq!(store.route_rows("auto", 0).unwrap().len(), 3);
        assert!(store.routed_feedback("auto", 5_000).unwrap().is_empty());

        let row = CalibrationRow {
            route: "auto".into(),
            at_ms: 3,
            base: (0.7, 0.8),
            bars: (0.7, 0.81),
            report: "{}".into(),
        };
        store.add_calibration(&row).unwrap();
        assert_eq!(store.latest_calibration("auto").unwrap(), Some(row));
        assert_eq!(store.latest_calibration("other").unwrap(), None);
    }
}
