//! Business KPIs and recent requests over the admin API, as JSON or CSV: the store's queries
//! (`switchyard_store::kpi`, where every figure is defined) over a time range and grouping.
//!
//! Every endpoint takes `from_ms` and `to_ms` (default: the last `hours`, 24 unless given),
//! the filters `tenant`, `key_id`, `model`, `route`, and `format=csv` for a spreadsheet.

use std::sync::Arc;

use axum::extract::State;

use crate::edge::access::{AdminPath, AdminQuery};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use switchyard_store::{Bucket, GroupBy, KpiFilter, RequestFilter, Store};

use crate::edge::state::AppState;
use crate::error::GatewayError;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/admin/v1/kpis/{report}", get(kpi))
        .route("/admin/v1/requests", get(requests))
        .route("/admin/v1/requests/{id}", get(request_detail))
        .route("/admin/v1/slos", get(slos))
}

/// The query string every KPI endpoint reads.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Range {
    from_ms: Option<i64>,
    to_ms: Option<i64>,
    /// When `from_ms` is not given: this many hours back from `to_ms`.
    #[serde(default = "day")]
    hours: u32,
    tenant: Option<String>,
    key_id: Option<String>,
    model: Option<String>,
    route: Option<String>,
    /// `json` (default) or `csv`.
    format: Option<String>,
    /// `groups`: tenant, key, model, route, day or hour.
    by: Option<GroupBy>,
    /// `trend` and `guards`: minute, 5min, 15min, hour or day.
    bucket: Option<Bucket>,
}

fn day() -> u32 {
    24
}

impl Range {
    fn span(&self) -> (i64, i64) {
        let to = self
            .to_ms
            .unwrap_or_else(|| chrono::Utc::now().timestamp_millis() + 1);
        let from = self
            .from_ms
            .unwrap_or_else(|| to - i64::from(self.hours) * 3_600_000);
        (from, to)
    }

    fn filter(&self) -> KpiFilter {
        KpiFilter {
            tenant: self.tenant.clone(),
            key_id: self.key_id.clone(),
            model: self.model.clone(),
            route: self.route.clone(),
        }
    }

    fn csv(&self) -> Result<bool, GatewayError> {
        match self.format.as_deref() {
            None | Some("json") => Ok(false),
            Some("csv") => Ok(true),
            Some(other) => Err(GatewayError::invalid(
                Some("format"),
                format!("`{other}` is not one of json, csv"),
            )),
        }
    }
}

/// Rows as JSON (`{"rows": [...]}` with the range) or CSV.
fn rows<T: Serialize>(range: &Range, rows: Vec<T>) -> Result<Response, GatewayError> {
    if range.csv()? {
        let text = switchyard_store::csv::to_csv(&rows)
            .map_err(|e| GatewayError::invalid(Some("format"), e.to_string()))?;
        return Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], text).into_response());
    }
    let (from_ms, to_ms) = range.span();
    Ok(Json(serde_json::json!({"from_ms": from_ms, "to_ms": to_ms, "rows": rows})).into_response())
}

type StoreResult<T> = Result<T, switchyard_store::StoreError>;

/// One report: the admin authenticated, `report` run on the store off the async threads
/// over the range and its filter, the rows framed as JSON or CSV.
async fn report<T: Serialize + Send + 'static>(
    app: &AppState,
    headers: &HeaderMap,
    range: &Range,
    report: impl FnOnce(&dyn Store, i64, i64, &KpiFilter) -> StoreResult<Vec<T>> + Send + 'static,
) -> Result<Response, GatewayError> {
    let ((from, to), filter) = (range.span(), range.filter());
    let found =
        crate::edge::access::admin_read(app, headers, move |st| report(st, from, to, &filter))
            .await?;
    rows(range, found)
}

/// `GET /admin/v1/kpis/REPORT`:
/// - `summary`: cost per request and per successful interaction, savings from routing and the
///   cache, automation and escalation, feedback, latency;
/// - `groups?by=tenant|key|model|route|priority|day|hour|15min|5min|minute`: spend and
///   savings by group (by priority: each class's requests, latency, queue wait, shed and
///   preemptions);
/// - `trend?bucket=minute|5min|15min|hour|day`: a time series for charts;
/// - `guards?bucket=minute|5min|15min|hour|day`: guard triggers by guard and outcome;
/// - `models`: the model mix.
async fn kpi(
    State(app): State<Arc<AppState>>,
    AdminPath(name): AdminPath<String>,
    headers: HeaderMap,
    AdminQuery(range): AdminQuery<Range>,
) -> Result<Response, GatewayError> {
    let bucket = range.bucket.unwrap_or(Bucket::Hour);
    match name.as_str() {
        "summary" if !range.csv()? => {
            let ((from, to), filter) = (range.span(), range.filter());
            let s = crate::edge::access::admin_read(&app, &headers, move |st| {
                st.kpi_summary(from, to, &filter)
            })
            .await?;
            Ok(Json(s).into_response())
        }
        "summary" => {
            report(&app, &headers, &range, |st, from, to, f| {
                st.kpi_summary(from, to, f).map(|s| vec![s])
            })
            .await
        }
        "groups" => {
            let by = range.by.ok_or_else(|| {
                GatewayError::invalid(
                    Some("by"),
                    "give `by`: tenant, key, model, route, day, hour, 15min, 5min or minute",
                )
            })?;
            report(&app, &headers, &range, move |st, from, to, f| {
                st.kpi_groups(from, to, by, f)
            })
            .await
        }
        "trend" => {
            report(&app, &headers, &range, move |st, from, to, f| {
                st.kpi_trend(from, to, bucket, f)
            })
            .await
        }
        "guards" => {
            report(&app, &headers, &range, move |st, from, to, f| {
                st.guard_triggers(from, to, bucket, f)
            })
            .await
        }
        "models" => {
            report(&app, &headers, &range, |st, from, to, f| {
                st.model_mix(from, to, f)
            })
            .await
        }
        other => Err(GatewayError::new(
            crate::error::ErrorKind::NotFound,
            "no_such_report",
            format!("no KPI report `{other}`: summary, groups, trend, guards or models"),
        )),
    }
}

#[derive(Serialize)]
struct SlosView {
    at_secs: i64,
    slos: Vec<switchyard_slo::SloStatus>,
    /// The most recent alert state changes, newest first.
    alerts: Vec<switchyard_slo::AlertEvent>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SlosQuery {
    /// Adds each SLO's burn rates and budget over this many hours, for charts.
    history_hours: Option<u32>,
}

/// A quarter: the longest SLO window anyone declares in practice.
const MAX_HISTORY_HOURS: u32 = 24 * 92;

/// `GET /admin/v1/slos`: every SLO's good share, error budget left, burn rates per alert rule
/// and alert states, with the recent alert history (`?history_hours=H`: and each SLO's
/// points over the last H hours).
async fn slos(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    AdminQuery(query): AdminQuery<SlosQuery>,
) -> Result<Json<SlosView>, GatewayError> {
    crate::edge::access::authenticate_read(&app, &headers).await?;
    let now = chrono::Utc::now().timestamp();
    let history = match query.history_hours {
        Some(h) if h == 0 || h > MAX_HISTORY_HOURS => {
            return Err(GatewayError::invalid(
                Some("history_hours"),
                format!("give between 1 and {MAX_HISTORY_HOURS} hours"),
            ))
        }
        h => h.map(|h| i64::from(h) * 3_600),
    };
    let (slos, alerts) = if app.control.slos.in_fleet() {
        // Every replica's counts, as the judge sees them.
        let control = app.control.clone();
        crate::edge::access::blocking(move || {
            control.slos.fleet_status(&*control.store, now, history)
        })
        .await?
    } else {
        app.control.slos.status(now, history)
    };
    Ok(Json(SlosView {
        at_secs: now,
        slos,
        alerts,
    }))
}

/// `GET /admin/v1/requests`: recent requests, newest first, with the store's filters
/// (`limit`, `before_ms`, `status_class`, `tenant`, `key_id`, `model`, `route`, `cache`,
/// `guard_outcome`).
async fn requests(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    AdminQuery(filter): AdminQuery<RequestFilter>,
) -> Result<Response, GatewayError> {
    let r = crate::edge::access::admin_read(&app, &headers, move |st| st.recent_requests(&filter))
        .await?;
    Ok(Json(serde_json::json!({"requests": r})).into_response())
}

/// `GET /admin/v1/requests/ID`: one request's record, its stored content (the masked prompt
/// and answer; `null` when none is stored: `[telemetry] content = "none"`, past its retention,
/// or not a chat request) and the feedback on it. 404 until the record is written.
async fn request_detail(
    State(app): State<Arc<AppState>>,
    AdminPath(id): AdminPath<String>,
    headers: HeaderMap,
) -> Result<Response, GatewayError> {
    let lookup = id.clone();
    let (record, content, feedback) = crate::edge::access::admin_read(&app, &headers, move |st| {
        Ok((
            st.request(&lookup)?,
            st.request_content(&lookup)?,
            st.feedback_for(&lookup)?,
        ))
    })
    .await?;
    let Some(record) = record else {
        return Err(GatewayError::new(
            crate::error::ErrorKind::NotFound,
            "no_such_request",
            format!("no request `{id}` is recorded (yet)"),
        ));
    };
    Ok(Json(serde_json::json!({
        "request": record,
        "content": content,
        "feedback": feedback,
    }))
    .into_response())
}
