//! Business KPIs (issue 6) as read-only SQL over the stored requests and feedback: cost per
//! request and per successful interaction, spend by tenant, key, model, route or time bucket,
//! savings against each route's most expensive model (split into cache and routing), cache
//! hit rate, automation and escalation rates, satisfaction and task completion, latency
//! percentiles, guard triggers, the model mix and the filtered request list.
//!
//! It owns the one definition of a successful interaction ([`SUCCESS_SQL`]; the guard
//! verdicts that spoil one are [`GuardFlags`], stored as columns when a request is written),
//! of a saving ([`SAVED_SQL`]) and of the route a request counts under ([`ROUTE_SQL`]). Every query
//! covers started times in `[from_ms, to_ms)` and feedback joins its request on the request id
//! and the tenant (one tenant cannot score another's requests), whenever it was given. Time
//! buckets are UTC. It must not write, read clocks (the caller passes the range) or know
//! HTTP: the gateway's admin API exposes these results, as JSON or through [`crate::csv`].

use std::collections::HashMap;

use rusqlite::types::Value;
use serde::{Deserialize, Serialize};

use crate::sqlite::{record_from_row, RECORD_COLUMNS};
pub use crate::verdicts::GuardFlags;
use crate::verdicts::{legacy_refused_sql, legacy_spoiled_sql, legacy_triggered_sql};
use crate::{RequestRecord, SqliteStore, StoreError};

/// A successful interaction, over `requests r`: answered (2xx); no guard failed, stopped,
/// replaced, blocked or refused it; and no feedback from its tenant scored it below 0.5
/// (thumbs down is 0) or marked it `escalated`. A `flagged`, `masked` or `fixed` verdict,
/// or a guard's own `error`, does not spoil it (when an erroring guard refuses, the request
/// is a 4xx).
/// Which verdicts spoil it is [`GuardFlags::spoiled`], read from the `guard_spoiled` column.
pub const SUCCESS_SQL: &str = concat!(
    "(r.status BETWEEN 200 AND 299 AND NOT COALESCE(r.guard_spoiled, ",
    legacy_spoiled_sql!(),
    ") AND NOT EXISTS (SELECT 1 FROM feedback f WHERE f.request_id = r.request_id \
        AND f.tenant = r.tenant AND (f.score < 0.5 OR f.outcome = 'escalated')))"
);

/// What one request saved, in nano-dollars: its baseline (the answer's cost on the route's
/// most expensive model; equal to the cost for a request no route chose, and for a failed one)
/// minus what it cost, never below 0. A cache hit's saving is the cache's (its cost is 0 but
/// for side calls such as a judge), any other's the router's. As the gateway's
/// `*_saved_nanos_total` metrics count it.
pub const SAVED_SQL: &str = "MAX(r.baseline_cost_nanos - r.cost_nanos, 0)";

/// A cache hit, over `requests r`.
const HIT_SQL: &str = "(COALESCE(r.cache, '') IN ('hit-exact', 'hit-semantic'))";

/// The route alias a request counts under, over `requests r`, or NULL.
///
/// The record does not name the route: `requested_model` is what the client called, the alias
/// itself or the alias with a policy suffix (`auto:cheap`), and `route` is the router's
/// decision (JSON: policy, bar, chosen model, rule, scores; no route name), set only once the
/// router decided. So a request counts under a route when the router decided it (`route` is
/// set), or when it was a cache hit answered by another model than the one called (a hit on a
/// route is answered before the router runs). The alias is `requested_model` without its
/// `:policy` suffix. Requests on a route refused before the router ran (auth, limits, input
/// guards) count under none; so would a cached fallback answer on a plain model, counted under
/// the model called.
pub const ROUTE_SQL: &str = "(CASE WHEN r.route IS NOT NULL \
    OR (COALESCE(r.cache, '') IN ('hit-exact', 'hit-semantic') AND r.requested_model IS NOT r.model) \
    THEN CASE WHEN instr(r.requested_model, ':') > 0 \
        THEN substr(r.requested_model, 1, instr(r.requested_model, ':') - 1) \
        ELSE r.requested_model END END)";

/// A guard refused the request: [`GuardFlags::refused`].
const REFUSED_SQL: &str = concat!("COALESCE(r.guard_refused, ", legacy_refused_sql!(), ")");

/// A guard triggered on the request: [`GuardFlags::triggered`].
const TRIGGERED_SQL: &str = concat!("COALESCE(r.guard_triggered, ", legacy_triggered_sql!(), ")");

/// Feedback from the request's tenant marked it escalated to a human.
const ESCALATED_SQL: &str = "EXISTS (SELECT 1 FROM feedback f WHERE f.request_id = r.request_id \
    AND f.tenant = r.tenant AND f.outcome = 'escalated')";

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;
/// A trend fills empty buckets with zeros up to this many buckets, and is sparse beyond.
const MAX_FILLED_BUCKETS: i64 = 10_000;

/// Which requests a KPI covers, besides the time range. Every field set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KpiFilter {
    pub tenant: Option<String>,
    pub key_id: Option<String>,
    /// The model that answered.
    pub model: Option<String>,
    /// The route alias, as [`ROUTE_SQL`] finds it.
    pub route: Option<String>,
}

/// A time bucket, in UTC. Minutes (and 5 or 15 of them) are for ranges up to a day: an hour
/// in hour buckets is one point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bucket {
    Minute,
    #[serde(rename = "5min")]
    FiveMinutes,
    #[serde(rename = "15min")]
    FifteenMinutes,
    Hour,
    Day,
}

impl Bucket {
    fn ms(self) -> i64 {
        match self {
            Bucket::Minute => MINUTE_MS,
            Bucket::FiveMinutes => 5 * MINUTE_MS,
            Bucket::FifteenMinutes => 15 * MINUTE_MS,
            Bucket::Hour => HOUR_MS,
            Bucket::Day => DAY_MS,
        }
    }

    /// The bucket's start in ms, over `requests r` (floored, as `i64::div_euclid` does).
    fn start_sql(self) -> String {
        format!(
            "(r.started_at_ms - ((r.started_at_ms % {ms}) + {ms}) % {ms})",
            ms = self.ms()
        )
    }
}

/// How [`SqliteStore::kpi_groups`] groups requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    Tenant,
    Key,
    Model,
    Route,
    Day,
    Hour,
    #[serde(rename = "15min")]
    FifteenMinutes,
    #[serde(rename = "5min")]
    FiveMinutes,
    Minute,
}

impl GroupBy {
    /// The group's key over `requests r`: a name, or the bucket's UTC start as ISO 8601.
    fn key_sql(self) -> String {
        match self {
            GroupBy::Tenant => "r.tenant".to_owned(),
            GroupBy::Key => "r.key_id".to_owned(),
            GroupBy::Model => "r.model".to_owned(),
            GroupBy::Route => ROUTE_SQL.to_owned(),
            GroupBy::Day => "strftime('%Y-%m-%d', r.started_at_ms / 1000, 'unixepoch')".to_owned(),
            GroupBy::Hour => {
                "strftime('%Y-%m-%dT%H:00Z', r.started_at_ms / 1000, 'unixepoch')".to_owned()
            }
            GroupBy::FifteenMinutes | GroupBy::FiveMinutes | GroupBy::Minute => {
                let start = self.bucket().map(Bucket::start_sql).unwrap_or_default();
                format!("strftime('%Y-%m-%dT%H:%MZ', {start} / 1000, 'unixepoch')")
            }
        }
    }

    fn bucket(self) -> Option<Bucket> {
        match self {
            GroupBy::Day => Some(Bucket::Day),
            GroupBy::Hour => Some(Bucket::Hour),
            GroupBy::FifteenMinutes => Some(Bucket::FifteenMinutes),
            GroupBy::FiveMinutes => Some(Bucket::FiveMinutes),
            GroupBy::Minute => Some(Bucket::Minute),
            _ => None,
        }
    }
}

/// Feedback on the covered requests (each `POST /v1/feedback` counts once).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FeedbackStats {
    pub count: u64,
    /// User satisfaction: the mean score (0 to 1; thumbs are 0 and 1) of the scored ones.
    pub mean_score: Option<f64>,
    /// Scored 0.5 or more.
    pub positive: u64,
    /// Scored below 0.5.
    pub negative: u64,
    /// With any outcome.
    pub with_outcome: u64,
    pub resolved: u64,
    pub escalated: u64,
    /// Task completion: `resolved / with_outcome`.
    pub task_completion_rate: Option<f64>,
}

/// The KPIs of a time range: [`SqliteStore::kpi_summary`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KpiSummary {
    pub from_ms: i64,
    pub to_ms: i64,
    pub requests: u64,
    /// Answered: status 2xx.
    pub answered: u64,
    /// [`SUCCESS_SQL`].
    pub successful: u64,
    /// 5xx.
    pub errors: u64,
    /// 4xx, 499 (the client hung up) included.
    pub client_errors: u64,
    /// A guard blocked or refused it.
    pub guard_refusals: u64,
    /// A guard gave a verdict other than `pass` (refusals included).
    pub guard_triggers: u64,
    pub cost_nanos: u64,
    /// Rounded to the nearest nano-dollar; null without requests.
    pub cost_per_request_nanos: Option<u64>,
    /// All the cost (failures included) over the successful interactions.
    pub cost_per_success_nanos: Option<u64>,
    /// What the traffic would have cost on each route's most expensive model.
    pub baseline_cost_nanos: u64,
    /// `saved_by_cache_nanos + saved_by_routing_nanos` ([`SAVED_SQL`]).
    pub saved_total_nanos: u64,
    pub saved_by_cache_nanos: u64,
    pub saved_by_routing_nanos: u64,
    pub cache_hits: u64,
    /// Of `cache_hits`, those the semantic tier answered (a paraphrase of a cached question).
    pub cache_semantic_hits: u64,
    /// Exact or semantic lookups that could hit (`hit-*` or `miss`; not `bypass`).
    pub cache_lookups: u64,
    /// `cache_hits / cache_lookups`.
    pub cache_hit_rate: Option<f64>,
    /// Answered requests marked escalated by their tenant's feedback.
    pub escalated: u64,
    /// `escalated / answered`.
    pub escalation_rate: Option<f64>,
    /// `1 − escalated / answered`: answers no human had to take over.
    pub automation_rate: Option<f64>,
    pub feedback: FeedbackStats,
    pub latency_mean_ms: Option<f64>,
    /// Exact nearest-rank percentiles of every covered request's latency.
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// One group of [`SqliteStore::kpi_groups`]: its key and its KPIs (flattened in JSON and CSV).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KpiGroup {
    /// The tenant, key, model or route (null: none, e.g. a request refused before a model
    /// was chosen), or for time buckets the UTC bucket as `2026-11-27` (day),
    /// `2026-11-27T13:00Z` (hour) or `2026-11-27T13:45Z` (minutes).
    pub key: Option<String>,
    /// For time buckets: the bucket's start, in ms.
    pub bucket_ms: Option<i64>,
    #[serde(flatten)]
    pub kpi: KpiSummary,
}

/// One point of [`SqliteStore::kpi_trend`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KpiPoint {
    /// The bucket's start, in ms (UTC).
    pub bucket_ms: i64,
    pub requests: u64,
    pub errors: u64,
    pub cost_nanos: u64,
    pub saved_nanos: u64,
    pub latency_p95_ms: Option<f64>,
    pub cache_hits: u64,
    /// Requests on which a guard gave a verdict other than `pass`.
    pub guard_triggers: u64,
}

/// Verdicts of one guard with one outcome in one bucket: [`SqliteStore::guard_triggers`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardTrigger {
    pub bucket_ms: i64,
    pub guard: String,
    pub outcome: String,
    pub count: u64,
}

/// One model's part of the traffic: [`SqliteStore::model_mix`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelShare {
    /// The model that answered; null when none did.
    pub model: Option<String>,
    pub requests: u64,
    /// Of the covered requests, 0 to 1.
    pub share: f64,
    pub cost_nanos: u64,
}

/// A class of HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StatusClass {
    #[serde(rename = "2xx")]
    Success,
    #[serde(rename = "4xx")]
    ClientError,
    #[serde(rename = "5xx")]
    ServerError,
}

impl StatusClass {
    fn range(self) -> (i64, i64) {
        match self {
            StatusClass::Success => (200, 299),
            StatusClass::ClientError => (400, 499),
            StatusClass::ServerError => (500, 599),
        }
    }
}

/// Which requests [`SqliteStore::recent_requests`] lists. Every field set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RequestFilter {
    /// At most this many (default 50, at most 1000).
    pub limit: Option<usize>,
    /// Started before this time (ms): the next page is `before_ms` = the last one's start.
    pub before_ms: Option<i64>,
    pub status_class: Option<StatusClass>,
    pub tenant: Option<String>,
    pub key_id: Option<String>,
    /// The model that answered.
    pub model: Option<String>,
    /// The route alias, as [`ROUTE_SQL`] finds it.
    pub route: Option<String>,
    /// The cache outcome (`hit-exact`, `hit-semantic`, `miss`, `bypass`), or `hit` for both hits.
    pub cache: Option<String>,
    /// Some guard gave this outcome (`flagged`, `blocked`, ...).
    pub guard_outcome: Option<String>,
}

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1000;

/// A `WHERE` clause over `requests r` with its parameters, built from what is set, so SQLite
/// can use the `(tenant | key_id | model, started_at_ms)` indexes.
struct Where {
    sql: String,
    params: Vec<Value>,
}

impl Where {
    fn new() -> Self {
        Where {
            sql: "1".to_owned(),
            params: Vec::new(),
        }
    }

    /// Adds `clause`, in which `?` is the next parameter.
    fn and(&mut self, clause: &str, value: impl Into<Value>) {
        let n = self.params.len() + 1;
        self.sql.push_str(" AND ");
        self.sql.push_str(&clause.replace('?', &format!("?{n}")));
        self.params.push(value.into());
    }

    fn and_eq(&mut self, expr: &str, value: &Option<String>) {
        if let Some(v) = value {
            self.and(&format!("{expr} = ?"), v.clone());
        }
    }

    fn scope(&mut self, filter: &KpiFilter) {
        self.and_eq("r.tenant", &filter.tenant);
        self.and_eq("r.key_id", &filter.key_id);
        self.and_eq("r.model", &filter.model);
        self.and_eq(ROUTE_SQL, &filter.route);
    }

    fn range(from_ms: i64, to_ms: i64, filter: &KpiFilter) -> Self {
        let mut w = Where::new();
        w.and("r.started_at_ms >= ?", from_ms);
        w.and("r.started_at_ms < ?", to_ms);
        w.scope(filter);
        w
    }
}

/// Latencies by group key, and of the requests whose key is null.
#[derive(Default)]
struct Latencies {
    keyed: HashMap<String, Vec<f64>>,
    unkeyed: Vec<f64>,
}

/// The exact nearest-rank `pct`-th percentile: with the `n` values sorted, the one at rank
/// ⌈pct·n/100⌉ (1-based). Reorders `values`.
fn nearest_rank(values: &mut [f64], pct: usize) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    // 1 ≤ rank ≤ n, as pct ≤ 100.
    let rank = (values.len() * pct).div_ceil(100).max(1);
    let (_, v, _) = values.select_nth_unstable_by(rank - 1, f64::total_cmp);
    Some(*v)
}

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

/// `num / den` rounded to the nearest integer.
fn per(num: u64, den: u64) -> Option<u64> {
    (den > 0).then(|| {
        let (num, den) = (u128::from(num), u128::from(den));
        u64::try_from((2 * num + den) / (2 * den)).unwrap_or(u64::MAX)
    })
}

/// The business reports over the stored requests and feedback. Every method blocks (see
/// [`crate::Store`] for why the seams are sync) and covers started times in `[from_ms, to_ms)`.
pub trait KpiStore {
    /// The KPIs of the requests started in `[from_ms, to_ms)` that match `filter`.
    fn kpi_summary(
        &self,
        from_ms: i64,
        to_ms: i64,
        filter: &KpiFilter,
    ) -> Result<KpiSummary, StoreError>;

    /// The KPIs per tenant, key, model, route (see [`ROUTE_SQL`]) or UTC time bucket,
    /// ordered by the group's key (null first).
    fn kpi_groups(
        &self,
        from_ms: i64,
        to_ms: i64,
        by: GroupBy,
        filter: &KpiFilter,
    ) -> Result<Vec<KpiGroup>, StoreError>;

    /// A time series for charts: one point per UTC bucket from the one holding `from_ms` up
    /// to `to_ms`, empty buckets as zeros (sparse when that would be more than 10 000 points).
    fn kpi_trend(
        &self,
        from_ms: i64,
        to_ms: i64,
        bucket: Bucket,
        filter: &KpiFilter,
    ) -> Result<Vec<KpiPoint>, StoreError>;

    /// Guard verdicts other than `pass`, per UTC bucket, guard and outcome.
    fn guard_triggers(
        &self,
        from_ms: i64,
        to_ms: i64,
        bucket: Bucket,
        filter: &KpiFilter,
    ) -> Result<Vec<GuardTrigger>, StoreError>;

    /// Requests and cost per answering model, most requests first.
    fn model_mix(
        &self,
        from_ms: i64,
        to_ms: i64,
        filter: &KpiFilter,
    ) -> Result<Vec<ModelShare>, StoreError>;

    /// The dashboard's request list: the newest requests matching `filter`, newest first.
    fn recent_requests(&self, filter: &RequestFilter) -> Result<Vec<RequestRecord>, StoreError>;
}

impl SqliteStore {
    /// Sums per group (`key_sql`, and `bucket_sql` for time buckets), ordered by key, with
    /// their latency percentiles ([`Self::latency_percentiles`]).
    fn aggregate(
        &self,
        from_ms: i64,
        to_ms: i64,
        filter: &KpiFilter,
        key_sql: &str,
        bucket_sql: Option<&str>,
    ) -> Result<Vec<KpiGroup>, StoreError> {
        let w = Where::range(from_ms, to_ms, filter);
        let bucket_sql = bucket_sql.unwrap_or("NULL");
        let sql = format!(
            "WITH b AS (SELECT {key_sql} AS k, {bucket_sql} AS bucket, r.status AS status, \
                r.latency_ms AS latency_ms, r.prompt_tokens AS tin, r.completion_tokens AS tout, \
                r.cost_nanos AS cost, r.baseline_cost_nanos AS baseline, {HIT_SQL} AS hit, \
                (COALESCE(r.cache, '') = 'hit-semantic') AS semantic, \
                (COALESCE(r.cache, '') IN ('hit-exact', 'hit-semantic', 'miss')) AS lookup, \
                {SAVED_SQL} AS saved, {SUCCESS_SQL} AS ok, {REFUSED_SQL} AS refused, \
                {TRIGGERED_SQL} AS triggered, {ESCALATED_SQL} AS escalated \
                FROM requests r WHERE {where_sql}) \
             SELECT CAST(k AS TEXT), MIN(bucket), COUNT(*), SUM(status BETWEEN 200 AND 299), SUM(ok), \
                SUM(status >= 500), SUM(status BETWEEN 400 AND 499), SUM(refused), SUM(triggered), \
                SUM(escalated AND status BETWEEN 200 AND 299), SUM(cost), SUM(baseline), \
                SUM(CASE WHEN hit THEN saved ELSE 0 END), SUM(CASE WHEN hit THEN 0 ELSE saved END), \
                SUM(hit), SUM(lookup), SUM(tin), SUM(tout), AVG(latency_ms), SUM(semantic) \
             FROM b GROUP BY k ORDER BY k",
            where_sql = w.sql
        );
        let mut groups: Vec<KpiGroup> = self.with(|conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(w.params.iter()), |row| {
                let c = |i: usize| row.get::<_, i64>(i).map(count);
                let (requests, answered, successful) = (c(2)?, c(3)?, c(4)?);
                let (cost_nanos, escalated) = (c(10)?, c(9)?);
                let (saved_by_cache_nanos, saved_by_routing_nanos) = (c(12)?, c(13)?);
                let (cache_hits, cache_lookups) = (c(14)?, c(15)?);
                let escalation_rate = ratio(escalated, answered);
                Ok(KpiGroup {
                    key: row.get(0)?,
                    bucket_ms: row.get(1)?,
                    kpi: KpiSummary {
                        from_ms,
                        to_ms,
                        requests,
                        answered,
                        successful,
                        errors: c(5)?,
                        client_errors: c(6)?,
                        guard_refusals: c(7)?,
                        guard_triggers: c(8)?,
                        cost_nanos,
                        cost_per_request_nanos: per(cost_nanos, requests),
                        cost_per_success_nanos: per(cost_nanos, successful),
                        baseline_cost_nanos: c(11)?,
                        saved_total_nanos: saved_by_cache_nanos + saved_by_routing_nanos,
                        saved_by_cache_nanos,
                        saved_by_routing_nanos,
                        cache_hits,
                        cache_semantic_hits: c(19)?,
                        cache_lookups,
                        cache_hit_rate: ratio(cache_hits, cache_lookups),
                        escalated,
                        escalation_rate,
                        automation_rate: escalation_rate.map(|e| 1.0 - e),
                        feedback: FeedbackStats::default(),
                        latency_mean_ms: row.get(18)?,
                        latency_p50_ms: None,
                        latency_p95_ms: None,
                        prompt_tokens: c(16)?,
                        completion_tokens: c(17)?,
                    },
                })
            })?;
            rows.collect()
        })?;
        let mut latencies = self.latencies(&w, key_sql)?;
        for g in &mut groups {
            let mut values = match &g.key {
                Some(k) => latencies.keyed.remove(k.as_str()),
                None => Some(std::mem::take(&mut latencies.unkeyed)),
            }
            .unwrap_or_default();
            g.kpi.latency_p50_ms = nearest_rank(&mut values, 50);
            g.kpi.latency_p95_ms = nearest_rank(&mut values, 95);
        }
        Ok(groups)
    }

    /// Every covered request's latency, by group (`key_sql`). Percentiles are computed from
    /// these in Rust: exact, and selecting is O(n) where SQL would sort.
    fn latencies(&self, w: &Where, key_sql: &str) -> Result<Latencies, StoreError> {
        let sql = format!(
            "SELECT CAST({key_sql} AS TEXT), r.latency_ms FROM requests r WHERE {}",
            w.sql
        );
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(rusqlite::params_from_iter(w.params.iter()))?;
            let mut out = Latencies::default();
            while let Some(row) = rows.next()? {
                let ms: f64 = row.get(1)?;
                // Borrowed, so a key is copied once per group, not once per request.
                match row.get_ref(0)?.as_str_or_null()? {
                    None => out.unkeyed.push(ms),
                    Some(k) => match out.keyed.get_mut(k) {
                        Some(v) => v.push(ms),
                        None => {
                            out.keyed.insert(k.to_owned(), vec![ms]);
                        }
                    },
                }
            }
            Ok(out)
        })
    }

    /// `groups` with the feedback on their requests (grouped by the same `key_sql`), from the
    /// requests' own tenant, whenever it was given.
    fn with_feedback(
        &self,
        mut groups: Vec<KpiGroup>,
        from_ms: i64,
        to_ms: i64,
        filter: &KpiFilter,
        key_sql: &str,
    ) -> Result<Vec<KpiGroup>, StoreError> {
        let w = Where::range(from_ms, to_ms, filter);
        let sql = format!(
            "SELECT CAST({key_sql} AS TEXT) AS k, COUNT(*), AVG(f.score), SUM(f.score >= 0.5), \
                SUM(f.score < 0.5), SUM(f.outcome IS NOT NULL), SUM(f.outcome = 'resolved'), \
                SUM(f.outcome = 'escalated') \
             FROM feedback f JOIN requests r ON f.request_id = r.request_id AND f.tenant = r.tenant \
             WHERE {where_sql} GROUP BY k",
            where_sql = w.sql
        );
        let mut by_key: HashMap<Option<String>, FeedbackStats> = self.with(|conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(w.params.iter()), |row| {
                // Sums over no non-null value are null.
                let c = |i: usize| row.get::<_, Option<i64>>(i).map(|v| count(v.unwrap_or(0)));
                let (with_outcome, resolved) = (c(5)?, c(6)?);
                let stats = FeedbackStats {
                    count: c(1)?,
                    mean_score: row.get(2)?,
                    positive: c(3)?,
                    negative: c(4)?,
                    with_outcome,
                    resolved,
                    escalated: c(7)?,
                    task_completion_rate: ratio(resolved, with_outcome),
                };
                Ok((row.get(0)?, stats))
            })?;
            rows.collect()
        })?;
        for g in &mut groups {
            if let Some(stats) = by_key.remove(&g.key) {
                g.kpi.feedback = stats;
            }
        }
        Ok(groups)
    }
}

impl KpiStore for SqliteStore {
    fn kpi_summary(
        &self,
        from_ms: i64,
        to_ms: i64,
        filter: &KpiFilter,
    ) -> Result<KpiSummary, StoreError> {
        let groups = self.aggregate(from_ms, to_ms, filter, "0", None)?;
        let groups = self.with_feedback(groups, from_ms, to_ms, filter, "0")?;
        Ok(groups.into_iter().next().map_or_else(
            || KpiSummary {
                from_ms,
                to_ms,
                ..KpiSummary::default()
            },
            |g| g.kpi,
        ))
    }

    fn kpi_groups(
        &self,
        from_ms: i64,
        to_ms: i64,
        by: GroupBy,
        filter: &KpiFilter,
    ) -> Result<Vec<KpiGroup>, StoreError> {
        let bucket = by.bucket().map(Bucket::start_sql);
        let key_sql = by.key_sql();
        let groups = self.aggregate(from_ms, to_ms, filter, &key_sql, bucket.as_deref())?;
        self.with_feedback(groups, from_ms, to_ms, filter, &key_sql)
    }

    fn kpi_trend(
        &self,
        from_ms: i64,
        to_ms: i64,
        bucket: Bucket,
        filter: &KpiFilter,
    ) -> Result<Vec<KpiPoint>, StoreError> {
        let start = bucket.start_sql();
        let found: Vec<KpiPoint> = self
            .aggregate(from_ms, to_ms, filter, &start, Some(&start))?
            .into_iter()
            .map(|KpiGroup { bucket_ms, kpi, .. }| KpiPoint {
                bucket_ms: bucket_ms.unwrap_or(0),
                requests: kpi.requests,
                errors: kpi.errors,
                cost_nanos: kpi.cost_nanos,
                saved_nanos: kpi.saved_total_nanos,
                latency_p95_ms: kpi.latency_p95_ms,
                cache_hits: kpi.cache_hits,
                guard_triggers: kpi.guard_triggers,
            })
            .collect();
        Ok(fill_buckets(found, from_ms, to_ms, bucket))
    }

    fn guard_triggers(
        &self,
        from_ms: i64,
        to_ms: i64,
        bucket: Bucket,
        filter: &KpiFilter,
    ) -> Result<Vec<GuardTrigger>, StoreError> {
        let w = Where::range(from_ms, to_ms, filter);
        let sql = format!(
            "SELECT {start} AS bucket, json_extract(g.value, '$.guard') AS guard, \
                json_extract(g.value, '$.outcome') AS outcome, COUNT(*) \
             FROM requests r, json_each(CASE WHEN json_valid(r.guards) THEN r.guards END) g \
             WHERE {where_sql} AND r.guard_triggered IS NOT 0 AND outcome IS NOT 'pass' \
             GROUP BY bucket, guard, outcome ORDER BY bucket, guard, outcome",
            start = bucket.start_sql(),
            where_sql = w.sql
        );
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(w.params.iter()), |row| {
                Ok(GuardTrigger {
                    bucket_ms: row.get(0)?,
                    guard: row.get::<_, Option<String>>(1)?.unwrap_or_default(),
                    outcome: row.get::<_, Option<String>>(2)?.unwrap_or_default(),
                    count: count(row.get(3)?),
                })
            })?;
            rows.collect()
        })
    }

    fn model_mix(
        &self,
        from_ms: i64,
        to_ms: i64,
        filter: &KpiFilter,
    ) -> Result<Vec<ModelShare>, StoreError> {
        let w = Where::range(from_ms, to_ms, filter);
        let sql = format!(
            "SELECT r.model, COUNT(*) AS n, SUM(r.cost_nanos) FROM requests r WHERE {} \
             GROUP BY r.model ORDER BY n DESC, r.model",
            w.sql
        );
        let mut mix = self.with(|conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(w.params.iter()), |row| {
                Ok(ModelShare {
                    model: row.get(0)?,
                    requests: count(row.get(1)?),
                    share: 0.0,
                    cost_nanos: count(row.get(2)?),
                })
            })?;
            rows.collect::<Result<Vec<_>, _>>()
        })?;
        let total: u64 = mix.iter().map(|m| m.requests).sum();
        for m in &mut mix {
            m.share = ratio(m.requests, total).unwrap_or(0.0);
        }
        Ok(mix)
    }

    fn recent_requests(&self, filter: &RequestFilter) -> Result<Vec<RequestRecord>, StoreError> {
        let mut w = Where::new();
        if let Some(before) = filter.before_ms {
            w.and("r.started_at_ms < ?", before);
        }
        if let Some(class) = filter.status_class {
            let (lo, hi) = class.range();
            w.and("r.status >= ?", lo);
            w.and("r.status <= ?", hi);
        }
        w.scope(&KpiFilter {
            tenant: filter.tenant.clone(),
            key_id: filter.key_id.clone(),
            model: filter.model.clone(),
            route: filter.route.clone(),
        });
        match filter.cache.as_deref() {
            Some("hit") => w.sql.push_str(&format!(" AND {HIT_SQL}")),
            _ => w.and_eq("r.cache", &filter.cache),
        }
        if let Some(outcome) = &filter.guard_outcome {
            // A row whose verdicts all passed has no other outcome: skip its JSON.
            if outcome != "pass" {
                w.sql.push_str(" AND r.guard_triggered IS NOT 0");
            }
            w.and(
                "EXISTS (SELECT 1 FROM json_each(CASE WHEN json_valid(r.guards) THEN r.guards END) g \
                 WHERE json_extract(g.value, '$.outcome') = ?)",
                outcome.clone(),
            );
        }
        let limit = filter.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM requests r WHERE {} \
             ORDER BY r.started_at_ms DESC, r.rowid DESC LIMIT {limit}",
            w.sql
        );
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows =
                stmt.query_map(rusqlite::params_from_iter(w.params.iter()), record_from_row)?;
            rows.collect()
        })
    }
}

/// `found` (sorted by bucket) with a zero point for every missing bucket from the one holding
/// `from_ms` up to `to_ms`, unless that is more than [`MAX_FILLED_BUCKETS`] points.
fn fill_buckets(found: Vec<KpiPoint>, from_ms: i64, to_ms: i64, bucket: Bucket) -> Vec<KpiPoint> {
    let ms = bucket.ms();
    let first = from_ms.checked_sub(from_ms.rem_euclid(ms)).filter(|first| {
        to_ms
            .checked_sub(*first)
            .is_some_and(|span| to_ms > from_ms && span / ms <= MAX_FILLED_BUCKETS)
    });
    let Some(first) = first else {
        return found;
    };
    let mut found = found.into_iter().peekable();
    let mut points = Vec::new();
    let mut at = Some(first);
    while let Some(start) = at.filter(|start| *start < to_ms) {
        match found.next_if(|p| p.bucket_ms == start) {
            Some(p) => points.push(p),
            None => points.push(KpiPoint {
                bucket_ms: start,
                ..KpiPoint::default()
            }),
        }
        at = start.checked_add(ms);
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Feedback, FeedbackStore, RecordStore};

    /// Midnight UTC, 2024-10-04.
    const D: i64 = 20_000 * DAY_MS;

    struct Row {
        id: &'static str,
        at: i64,
        tenant: &'static str,
        key: &'static str,
        requested: &'static str,
        model: Option<&'static str>,
        routed: bool,
        cache: Option<&'static str>,
        status: u16,
        guards: Option<&'static str>,
        cost: u64,
        baseline: u64,
        latency: f64,
    }

    const BASE: Row = Row {
        id: "",
        at: D,
        tenant: "t1",
        key: "k1",
        requested: "small",
        model: Some("small"),
        routed: false,
        cache: None,
        status: 200,
        guards: None,
        cost: 0,
        baseline: 0,
        latency: 0.0,
    };

    fn record(r: Row) -> RequestRecord {
        RequestRecord {
            request_id: r.id.into(),
            started_at_ms: r.at,
            endpoint: "chat".into(),
            tenant: Some(r.tenant.into()),
            key_id: Some(r.key.into()),
            requested_model: Some(r.requested.into()),
            model: r.model.map(Into::into),
            deployment: match (r.cache, r.guards) {
                (Some(c), _) if c.starts_with("hit") => Some("cache".into()),
                (_, Some(g)) if g.contains("\"refused\"") => Some("guard".into()),
                _ => r.model.map(|m| format!("sim/{m}")),
            },
            status: r.status,
            latency_ms: r.latency,
            prompt_tokens: 10,
            completion_tokens: 5,
            cost_nanos: r.cost,
            baseline_cost_nanos: r.baseline,
            route: r.routed.then(|| {
                r#"{"policy":"balanced","bar":0.7,"model":"small","rule":null,"scores":[]}"#.into()
            }),
            cache: r.cache.map(Into::into),
            guards: r.guards.map(Into::into),
            ..RequestRecord::default()
        }
    }

    fn feedback(id: &str, tenant: &str, score: Option<f64>, outcome: Option<&str>) -> Feedback {
        Feedback {
            request_id: id.into(),
            key_id: "k".into(),
            tenant: tenant.into(),
            created_at_ms: D + 20 * DAY_MS,
            score,
            outcome: outcome.map(Into::into),
            comment: None,
        }
    }

    /// Nine requests in `[D - 1 day, D + 1 day)`, two of them the evening before midnight,
    /// and one later.
    fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_in(dir.path()).unwrap();
        let rows = [
            // Routed to the cheap model: saves 900 by routing.
            Row {
                id: "ok1",
                at: D - 2_000,
                requested: "auto",
                routed: true,
                cache: Some("miss"),
                guards: Some(r#"[{"guard":"pii","outcome":"pass","detail":"","ms":0.1}]"#),
                cost: 100,
                baseline: 1_000,
                latency: 10.0,
                ..BASE
            },
            // A cache hit on the route (answered before the router): saves 500 by the cache.
            Row {
                id: "hit1",
                at: D - 1_000,
                requested: "auto:cheap",
                model: Some("big"),
                cache: Some("hit-exact"),
                baseline: 500,
                latency: 1.0,
                ..BASE
            },
            // Answered, but with the safe answer in place of the model's: no success.
            Row {
                id: "replaced",
                at: D + 1_000,
                key: "k2",
                requested: "big",
                model: Some("big"),
                cache: Some("miss"),
                guards: Some(
                    r#"[{"guard":"pii","outcome":"masked","detail":"EMAIL:1","ms":0.1},{"guard":"toxicity","outcome":"replaced","score":0.9,"detail":"","ms":2}]"#,
                ),
                cost: 300,
                baseline: 300,
                latency: 20.0,
                ..BASE
            },
            // Thumbs down: no success.
            Row {
                id: "thumbsdown",
                at: D + 2_000,
                cache: Some("bypass"),
                cost: 50,
                baseline: 50,
                latency: 30.0,
                ..BASE
            },
            // Escalated to a human (though scored well): no success.
            Row {
                id: "escalated",
                at: D + 3_000,
                tenant: "t2",
                key: "k3",
                cost: 70,
                baseline: 70,
                latency: 40.0,
                ..BASE
            },
            // A provider error; its guards are not JSON, which reads as no verdict.
            Row {
                id: "err",
                at: D + 4_000,
                tenant: "t2",
                key: "k3",
                requested: "big",
                model: Some("big"),
                status: 502,
                guards: Some("not json"),
                latency: 50.0,
                ..BASE
            },
            // Blocked by the injection screen.
            Row {
                id: "blocked",
                at: D + 5_000,
                tenant: "t2",
                key: "k3",
                model: None,
                status: 400,
                guards: Some(
                    r#"[{"guard":"injection","outcome":"blocked","score":0.99,"detail":"","ms":1}]"#,
                ),
                latency: 2.0,
                ..BASE
            },
            // The topic filter's polite refusal, a 200.
            Row {
                id: "polite",
                at: D + 6_000,
                model: None,
                guards: Some(
                    r#"[{"guard":"topics","outcome":"refused","detail":"denied","ms":1}]"#,
                ),
                latency: 5.0,
                ..BASE
            },
            // Flagged only, resolved and scored well: a success.
            Row {
                id: "ok2",
                at: D + 7_000,
                key: "k2",
                cache: Some("miss"),
                guards: Some(
                    r#"[{"guard":"toxicity","outcome":"flagged","score":0.6,"detail":"","ms":2}]"#,
                ),
                cost: 80,
                baseline: 80,
                latency: 15.0,
                ..BASE
            },
            // Outside the range.
            Row {
                id: "later",
                at: D + 10 * DAY_MS,
                cost: 1_000_000,
                baseline: 1_000_000,
                latency: 1_000.0,
                ..BASE
            },
        ];
        store.write_batch(&rows.map(record)).unwrap();
        for f in [
            feedback("thumbsdown", "t1", Some(0.0), None),
            feedback("escalated", "t2", Some(1.0), Some("escalated")),
            feedback("ok2", "t1", Some(0.9), Some("resolved")),
            // Another tenant cannot score t1's request.
            feedback("ok2", "t2", Some(0.0), Some("escalated")),
        ] {
            store.add_feedback(&f).unwrap();
        }
        (dir, store)
    }

    const FROM: i64 = D - DAY_MS;
    const TO: i64 = D + DAY_MS;

    fn all() -> KpiFilter {
        KpiFilter::default()
    }

    #[test]
    fn semantic_hits_are_counted_apart_among_the_hits() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_in(dir.path()).unwrap();
        let rows = [
            Row {
                id: "exact",
                cache: Some("hit-exact"),
                ..BASE
            },
            Row {
                id: "semantic",
                cache: Some("hit-semantic"),
                ..BASE
            },
            Row {
                id: "miss",
                cache: Some("miss"),
                ..BASE
            },
        ];
        store.write_batch(&rows.map(record)).unwrap();
        let s = store.kpi_summary(FROM, TO, &all()).unwrap();
        assert_eq!(
            (s.cache_hits, s.cache_semantic_hits, s.cache_lookups),
            (2, 1, 3)
        );
    }

    #[test]
    fn the_summary_counts_successes_costs_savings_and_rates_exactly() {
        let (_dir, store) = store();
        let s = store.kpi_summary(FROM, TO, &all()).unwrap();
        let feedback = FeedbackStats {
            count: 3,
            mean_score: s.feedback.mean_score,
            positive: 2,
            negative: 1,
            with_outcome: 2,
            resolved: 1,
            escalated: 1,
            task_completion_rate: Some(0.5),
        };
        assert!((s.feedback.mean_score.unwrap() - 1.9 / 3.0).abs() < 1e-12);
        assert_eq!(
            s,
            KpiSummary {
                from_ms: FROM,
                to_ms: TO,
                requests: 9,
                answered: 7,
                // ok1, hit1, ok2; not replaced, thumbsdown, escalated, polite.
                successful: 3,
                errors: 1,
                client_errors: 1,
                guard_refusals: 2,
                guard_triggers: 4,
                cost_nanos: 600,
                // 600 / 9 = 66.7, rounded.
                cost_per_request_nanos: Some(67),
                cost_per_success_nanos: Some(200),
                baseline_cost_nanos: 2_000,
                saved_total_nanos: 1_400,
                saved_by_cache_nanos: 500,
                saved_by_routing_nanos: 900,
                cache_hits: 1,
                cache_semantic_hits: 0,
                cache_lookups: 4,
                cache_hit_rate: Some(0.25),
                escalated: 1,
                escalation_rate: Some(1.0 / 7.0),
                automation_rate: Some(1.0 - 1.0 / 7.0),
                feedback,
                latency_mean_ms: Some(173.0 / 9.0),
                // Sorted: 1 2 5 10 15 20 30 40 50; ranks 5 and 9.
                latency_p50_ms: Some(15.0),
                latency_p95_ms: Some(50.0),
                prompt_tokens: 90,
                completion_tokens: 45,
            }
        );
    }

    #[test]
    fn filters_narrow_the_summary_and_an_empty_range_has_no_ratios() {
        let (_dir, store) = store();
        let on_route = KpiFilter {
            route: Some("auto".into()),
            ..all()
        };
        let s = store.kpi_summary(FROM, TO, &on_route).unwrap();
        assert_eq!(
            (
                s.requests,
                s.successful,
                s.saved_by_cache_nanos,
                s.saved_by_routing_nanos
            ),
            (2, 2, 500, 900)
        );
        let t2 = KpiFilter {
            tenant: Some("t2".into()),
            ..all()
        };
        let s = store.kpi_summary(FROM, TO, &t2).unwrap();
        assert_eq!(
            (
                s.requests,
                s.answered,
                s.escalated,
                s.automation_rate,
                s.feedback.count
            ),
            (3, 1, 1, Some(0.0), 1)
        );
        assert_eq!(s.cost_per_success_nanos, None, "no success in t2");
        let k2_big = KpiFilter {
            key_id: Some("k2".into()),
            model: Some("big".into()),
            ..all()
        };
        assert_eq!(store.kpi_summary(FROM, TO, &k2_big).unwrap().requests, 1);

        let empty = store.kpi_summary(0, 1, &all()).unwrap();
        assert_eq!(
            empty,
            KpiSummary {
                from_ms: 0,
                to_ms: 1,
                ..KpiSummary::default()
            }
        );
    }

    #[test]
    fn groups_by_day_split_at_utc_midnight() {
        let (_dir, store) = store();
        let days = store.kpi_groups(FROM, TO, GroupBy::Day, &all()).unwrap();
        assert_eq!(days.len(), 2);
        let before = &days[0];
        assert_eq!(
            (before.key.as_deref(), before.bucket_ms),
            (Some("2024-10-03"), Some(D - DAY_MS))
        );
        let k = &before.kpi;
        assert_eq!(
            (
                k.requests,
                k.successful,
                k.errors,
                k.cost_nanos,
                k.baseline_cost_nanos,
                k.saved_by_cache_nanos,
                k.saved_by_routing_nanos,
                k.cost_per_success_nanos,
                k.latency_mean_ms,
                k.latency_p95_ms,
                k.feedback.count,
            ),
            (
                2,
                2,
                0,
                100,
                1_500,
                500,
                900,
                Some(50),
                Some(5.5),
                Some(10.0),
                0
            )
        );
        let after = &days[1];
        assert_eq!(
            (after.key.as_deref(), after.bucket_ms, after.kpi.requests),
            (Some("2024-10-04"), Some(D), 7)
        );
        // Every piece of feedback is on a request of the second day.
        assert_eq!(
            (after.kpi.feedback.count, after.kpi.feedback.resolved),
            (3, 1)
        );

        let hours = store.kpi_groups(FROM, TO, GroupBy::Hour, &all()).unwrap();
        assert_eq!(
            hours
                .iter()
                .map(|g| (g.key.as_deref().unwrap_or(""), g.kpi.requests))
                .collect::<Vec<_>>(),
            [("2024-10-03T23:00Z", 2), ("2024-10-04T00:00Z", 7)]
        );
    }

    #[test]
    fn groups_by_tenant_key_model_and_route() {
        let (_dir, store) = store();
        let keys = |by| {
            store
                .kpi_groups(FROM, TO, by, &all())
                .unwrap()
                .into_iter()
                .map(|g| (g.key, g.kpi.requests, g.kpi.cost_nanos))
                .collect::<Vec<_>>()
        };
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(keys(GroupBy::Tenant), [(s("t1"), 6, 530), (s("t2"), 3, 70)]);
        assert_eq!(
            keys(GroupBy::Key),
            [(s("k1"), 4, 150), (s("k2"), 2, 380), (s("k3"), 3, 70)]
        );
        assert_eq!(
            keys(GroupBy::Model),
            [(None, 2, 0), (s("big"), 3, 300), (s("small"), 4, 300)]
        );
        // The routed miss and the hit on `auto:cheap` count under `auto`; the rest under none.
        assert_eq!(keys(GroupBy::Route), [(None, 7, 500), (s("auto"), 2, 100)]);
        let tenants = store.kpi_groups(FROM, TO, GroupBy::Tenant, &all()).unwrap();
        let feedback = |i: usize| {
            let k = &tenants[i].kpi;
            (k.feedback.count, k.escalated, k.automation_rate)
        };
        // t1: thumbs down and resolved (t2's word on ok2 does not count); t2: escalated.
        assert_eq!(feedback(0), (2, 0, Some(1.0)));
        assert_eq!(feedback(1), (1, 1, Some(0.0)));
    }

    #[test]
    fn the_trend_has_a_point_per_bucket_with_empty_ones_as_zeros() {
        let (_dir, store) = store();
        let points = store
            .kpi_trend(D - 2 * HOUR_MS, D + HOUR_MS, Bucket::Hour, &all())
            .unwrap();
        assert_eq!(
            points,
            [
                KpiPoint {
                    bucket_ms: D - 2 * HOUR_MS,
                    ..KpiPoint::default()
                },
                KpiPoint {
                    bucket_ms: D - HOUR_MS,
                    requests: 2,
                    errors: 0,
                    cost_nanos: 100,
                    saved_nanos: 1_400,
                    latency_p95_ms: Some(10.0),
                    cache_hits: 1,
                    guard_triggers: 0,
                },
                KpiPoint {
                    bucket_ms: D,
                    requests: 7,
                    errors: 1,
                    cost_nanos: 500,
                    saved_nanos: 0,
                    // Sorted: 2 5 15 20 30 40 50; rank 7.
                    latency_p95_ms: Some(50.0),
                    cache_hits: 0,
                    // replaced (and masked), blocked, polite, flagged.
                    guard_triggers: 4,
                },
            ]
        );
        // The whole of time: too many buckets to fill, so only the ones with requests.
        let sparse = store
            .kpi_trend(i64::MIN, i64::MAX, Bucket::Hour, &all())
            .unwrap();
        assert_eq!(
            sparse.iter().map(|p| p.bucket_ms).collect::<Vec<_>>(),
            [D - HOUR_MS, D, D + 10 * DAY_MS]
        );
        let days = store.kpi_trend(FROM, TO, Bucket::Day, &all()).unwrap();
        assert_eq!(days.iter().map(|p| p.requests).collect::<Vec<_>>(), [2, 7]);
    }

    #[test]
    fn minute_buckets_split_an_hour_into_points() {
        let (_dir, store) = store();
        let requests = |bucket: Bucket, from: i64, to: i64| {
            store
                .kpi_trend(from, to, bucket, &all())
                .unwrap()
                .iter()
                .map(|p| (p.bucket_ms, p.requests))
                .collect::<Vec<_>>()
        };
        const M: i64 = MINUTE_MS;
        // The two requests of the evening before are in its last minute, the rest in the
        // first minute of the day; every other minute is a zero.
        assert_eq!(
            requests(Bucket::Minute, D - 3 * M, D + 2 * M),
            [
                (D - 3 * M, 0),
                (D - 2 * M, 0),
                (D - M, 2),
                (D, 7),
                (D + M, 0)
            ]
        );
        // An hour is 60 points, not one.
        assert_eq!(requests(Bucket::Minute, D - HOUR_MS, D).len(), 60);
        assert_eq!(
            requests(Bucket::FiveMinutes, D - 10 * M, D + 10 * M),
            [(D - 10 * M, 0), (D - 5 * M, 2), (D, 7), (D + 5 * M, 0)]
        );
        assert_eq!(requests(Bucket::FifteenMinutes, FROM, TO).len(), 2 * 96);
        let groups = store
            .kpi_groups(FROM, TO, GroupBy::Minute, &all())
            .unwrap()
            .into_iter()
            .map(|g| (g.key.unwrap_or_default(), g.bucket_ms, g.kpi.requests))
            .collect::<Vec<_>>();
        assert_eq!(
            groups,
            [
                ("2024-10-03T23:59Z".to_owned(), Some(D - M), 2),
                ("2024-10-04T00:00Z".to_owned(), Some(D), 7)
            ]
        );
        let quarter = store
            .kpi_groups(FROM, TO, GroupBy::FifteenMinutes, &all())
            .unwrap();
        assert_eq!(
            quarter[0].key.as_deref(),
            Some("2024-10-03T23:45Z"),
            "{quarter:?}"
        );
        let guards = store
            .guard_triggers(FROM, TO, Bucket::Minute, &all())
            .unwrap();
        assert!(guards.iter().all(|g| g.bucket_ms == D), "{guards:?}");
        // As the admin API's query string names them.
        for (name, bucket) in [
            ("minute", Bucket::Minute),
            ("5min", Bucket::FiveMinutes),
            ("15min", Bucket::FifteenMinutes),
            ("hour", Bucket::Hour),
        ] {
            assert_eq!(
                serde_json::from_value::<Bucket>(serde_json::json!(name)).unwrap(),
                bucket
            );
        }
        assert_eq!(
            serde_json::from_value::<GroupBy>(serde_json::json!("5min")).unwrap(),
            GroupBy::FiveMinutes
        );
    }

    #[test]
    fn guard_triggers_count_every_verdict_but_pass() {
        let (_dir, store) = store();
        let got = store.guard_triggers(FROM, TO, Bucket::Day, &all()).unwrap();
        let t = |guard: &str, outcome: &str| GuardTrigger {
            bucket_ms: D,
            guard: guard.into(),
            outcome: outcome.into(),
            count: 1,
        };
        assert_eq!(
            got,
            [
                t("injection", "blocked"),
                t("pii", "masked"),
                t("topics", "refused"),
                t("toxicity", "flagged"),
                t("toxicity", "replaced"),
            ]
        );
        let t1 = KpiFilter {
            tenant: Some("t1".into()),
            ..all()
        };
        assert_eq!(
            store
                .guard_triggers(FROM, TO, Bucket::Day, &t1)
                .unwrap()
                .len(),
            4
        );
    }

    #[test]
    fn the_model_mix_shares_requests_and_cost() {
        let (_dir, store) = store();
        let mix = store.model_mix(FROM, TO, &all()).unwrap();
        let m = |model: Option<&str>, requests: u64, cost_nanos: u64| ModelShare {
            model: model.map(Into::into),
            requests,
            share: requests as f64 / 9.0,
            cost_nanos,
        };
        assert_eq!(
            mix,
            [
                m(Some("small"), 4, 300),
                m(Some("big"), 3, 300),
                m(None, 2, 0)
            ]
        );
    }

    #[test]
    fn the_request_list_filters_and_pages() {
        let (_dir, store) = store();
        let ids = |f: RequestFilter| {
            store
                .recent_requests(&f)
                .unwrap()
                .into_iter()
                .map(|r| r.request_id)
                .collect::<Vec<_>>()
        };
        let f = RequestFilter::default;
        assert_eq!(
            ids(RequestFilter {
                limit: Some(2),
                ..f()
            }),
            ["later", "ok2"]
        );
        assert_eq!(
            ids(RequestFilter {
                before_ms: Some(D),
                ..f()
            }),
            ["hit1", "ok1"]
        );
        assert_eq!(
            ids(RequestFilter {
                status_class: Some(StatusClass::ServerError),
                ..f()
            }),
            ["err"]
        );
        assert_eq!(
            ids(RequestFilter {
                cache: Some("hit".into()),
                ..f()
            }),
            ["hit1"]
        );
        assert_eq!(
            ids(RequestFilter {
                cache: Some("miss".into()),
                key_id: Some("k2".into()),
                ..f()
            }),
            ["ok2", "replaced"]
        );
        assert_eq!(
            ids(RequestFilter {
                guard_outcome: Some("blocked".into()),
                ..f()
            }),
            ["blocked"]
        );
        assert_eq!(
            ids(RequestFilter {
                status_class: Some(StatusClass::Success),
                tenant: Some("t1".into()),
                model: Some("small".into()),
                before_ms: Some(D + 10 * DAY_MS),
                ..f()
            }),
            ["ok2", "thumbsdown", "ok1"]
        );
        assert_eq!(
            ids(RequestFilter {
                route: Some("auto".into()),
                ..f()
            }),
            ["hit1", "ok1"]
        );
        let first = store.recent_requests(&f()).unwrap();
        assert_eq!(first.len(), 10);
        assert_eq!(
            first[0],
            record(Row {
                id: "later",
                at: D + 10 * DAY_MS,
                cost: 1_000_000,
                baseline: 1_000_000,
                latency: 1_000.0,
                ..BASE
            })
        );
    }

    #[test]
    fn filters_read_from_json_and_refuse_unknown_fields() {
        let f: RequestFilter = serde_json::from_value(serde_json::json!({
            "limit": 5, "status_class": "4xx", "tenant": "t1", "route": "auto", "cache": "hit"
        }))
        .unwrap();
        assert_eq!(
            f,
            RequestFilter {
                limit: Some(5),
                status_class: Some(StatusClass::ClientError),
                tenant: Some("t1".into()),
                route: Some("auto".into()),
                cache: Some("hit".into()),
                ..RequestFilter::default()
            }
        );
        assert!(
            serde_json::from_value::<RequestFilter>(serde_json::json!({"tenat": "t1"})).is_err()
        );
        let by: GroupBy = serde_json::from_value(serde_json::json!("route")).unwrap();
        assert_eq!(by, GroupBy::Route);
    }

    #[test]
    fn a_request_refused_before_anything_was_known_still_counts() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_in(dir.path()).unwrap();
        let bare = RequestRecord {
            request_id: "bare".into(),
            started_at_ms: D,
            endpoint: "chat".into(),
            status: 401,
            latency_ms: 0.5,
            ..RequestRecord::default()
        };
        store.write_batch(&[bare]).unwrap();
        let s = store.kpi_summary(FROM, TO, &all()).unwrap();
        assert_eq!(
            (
                s.requests,
                s.client_errors,
                s.guard_refusals,
                s.cache_lookups
            ),
            (1, 1, 0, 0)
        );
        assert_eq!((s.cache_hit_rate, s.automation_rate), (None, None));
        let groups = store.kpi_groups(FROM, TO, GroupBy::Route, &all()).unwrap();
        assert_eq!(
            (groups[0].key.as_deref(), groups[0].kpi.requests),
            (None, 1)
        );
    }

    #[test]
    fn nearest_rank_picks_the_value_at_rank_ceil_p_n() {
        assert_eq!(nearest_rank(&mut [], 50), None);
        assert_eq!(nearest_rank(&mut [3.0], 95), Some(3.0));
        assert_eq!(nearest_rank(&mut [9.0, 1.0], 50), Some(1.0));
        assert_eq!(nearest_rank(&mut [9.0, 1.0], 51), Some(9.0));
        // 20 values: p95 is the 19th, p50 the 10th.
        let mut v: Vec<f64> = (1..=20).rev().map(f64::from).collect();
        assert_eq!(nearest_rank(&mut v, 95), Some(19.0));
        assert_eq!(nearest_rank(&mut v, 50), Some(10.0));
        assert_eq!(nearest_rank(&mut v, 100), Some(20.0));
    }

    #[test]
    fn percentiles_are_exact_nearest_rank() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_in(dir.path()).unwrap();
        // 1..=100 ms in a shuffled order, and one request alone in the next hour.
        let mut rows: Vec<RequestRecord> = (0..100)
            .map(|i| {
                record(Row {
                    id: "p",
                    at: D + i,
                    latency: ((i * 37) % 100 + 1) as f64,
                    ..BASE
                })
            })
            .collect();
        rows.push(record(Row {
            id: "alone",
            at: D + HOUR_MS,
            latency: 7.5,
            ..BASE
        }));
        store.write_batch(&rows).unwrap();
        let s = store.kpi_summary(D, D + HOUR_MS, &all()).unwrap();
        assert_eq!(
            (s.latency_p50_ms, s.latency_p95_ms),
            (Some(50.0), Some(95.0))
        );
        let alone = store.kpi_summary(D + HOUR_MS, TO, &all()).unwrap();
        assert_eq!(
            (alone.latency_p50_ms, alone.latency_p95_ms),
            (Some(7.5), Some(7.5))
        );
    }

    #[test]
    fn every_report_exports_as_csv() {
        let (_dir, store) = store();
        let summary = crate::csv::to_csv(&[store.kpi_summary(FROM, TO, &all()).unwrap()]).unwrap();
        let header = summary.lines().next().unwrap();
        assert!(
            header.starts_with("from_ms,to_ms,requests,answered,successful,"),
            "{header}"
        );
        assert!(
            header.contains(",feedback.count,feedback.mean_score,"),
            "{header}"
        );
        let groups = store.kpi_groups(FROM, TO, GroupBy::Day, &all()).unwrap();
        let csv = crate::csv::to_csv(&groups).unwrap();
        let mut lines = csv.lines();
        assert!(lines
            .next()
            .unwrap()
            .starts_with("key,bucket_ms,from_ms,to_ms,requests,answered,successful,"));
        assert!(lines
            .next()
            .unwrap()
            .starts_with("2024-10-03,1727913600000,1727913600000,1728086400000,2,2,2,"));
        crate::csv::to_csv(&store.kpi_trend(FROM, TO, Bucket::Day, &all()).unwrap()).unwrap();
        crate::csv::to_csv(&store.guard_triggers(FROM, TO, Bucket::Day, &all()).unwrap()).unwrap();
        crate::csv::to_csv(&store.model_mix(FROM, TO, &all()).unwrap()).unwrap();
        let list = store.recent_requests(&RequestFilter::default()).unwrap();
        assert_eq!(crate::csv::to_csv(&list).unwrap().lines().count(), 11);
    }

    /// The guard expressions as the SQL computed them before the flag columns (commit fffb30a).
    const OLD_REFUSED_SQL: &str = "(COALESCE(r.deployment, '') = 'guard' OR EXISTS (SELECT 1 FROM json_each(CASE WHEN json_valid(r.guards) THEN r.guards END) g \
        WHERE json_extract(g.value, '$.outcome') IN ('blocked', 'refused')))";
    const OLD_TRIGGERED_SQL: &str =
        "EXISTS (SELECT 1 FROM json_each(CASE WHEN json_valid(r.guards) THEN r.guards END) g \
        WHERE json_extract(g.value, '$.outcome') IS NOT 'pass')";
    const OLD_SPOILED_SQL: &str = "EXISTS (SELECT 1 FROM json_each(CASE WHEN json_valid(r.guards) THEN r.guards END) g \
        WHERE json_extract(g.value, '$.outcome') IN ('failed', 'stopped', 'replaced', 'blocked', 'refused'))";

    /// A row's id and its flags (refused, triggered, spoiled): as stored, as the old SQL
    /// computes them, and as the fallback SQL does.
    type FlagView = (String, [Option<bool>; 3], [bool; 3], [bool; 3]);

    fn flag_views(store: &SqliteStore) -> Vec<FlagView> {
        let sql = format!(
            "SELECT r.request_id, r.guard_refused, r.guard_triggered, r.guard_spoiled, \
                {OLD_REFUSED_SQL}, {OLD_TRIGGERED_SQL}, {OLD_SPOILED_SQL}, \
                {}, {}, {} FROM requests r ORDER BY r.rowid",
            legacy_refused_sql!(),
            legacy_triggered_sql!(),
            legacy_spoiled_sql!()
        );
        store
            .with(|conn| {
                let mut stmt = conn.prepare(&sql)?;
                let rows = stmt.query_map([], |row| {
                    Ok((
                        row.get(0)?,
                        [row.get(1)?, row.get(2)?, row.get(3)?],
                        [row.get(4)?, row.get(5)?, row.get(6)?],
                        [row.get(7)?, row.get(8)?, row.get(9)?],
                    ))
                })?;
                rows.collect()
            })
            .unwrap()
    }

    #[test]
    fn the_flags_written_are_what_the_old_sql_computed() {
        let v = |guard: &str, outcome: &str| {
            format!(r#"{{"guard":"{guard}","outcome":"{outcome}","detail":"","ms":0.1}}"#)
        };
        let one = |guard: &str, outcome: &str| Some(format!("[{}]", v(guard, outcome)));
        // (deployment, guards): every outcome the gateway writes, and what it never should.
        let fixtures: Vec<(Option<&str>, Option<String>)> = vec![
            (Some("sim/small"), one("pii", "pass")),
            (Some("sim/small"), one("pii", "masked")),
            (Some("sim/small"), one("pii", "flagged")),
            (None, one("injection", "blocked")),
            (Some("guard"), one("topics", "refused")),
            (Some("sim/small"), one("schema", "retried")),
            (Some("sim/small"), one("schema", "fixed")),
            (Some("sim/small"), one("schema", "failed")),
            (Some("sim/small"), one("toxicity", "replaced")),
            (Some("sim/small"), one("toxicity", "stopped")),
            (Some("sim/small"), one("webhook", "error")),
            (
                Some("sim/small"),
                Some(format!("[{},{}]", v("pii", "pass"), v("toxicity", "pass"))),
            ),
            (
                Some("sim/small"),
                Some(format!(
                    "[{},{}]",
                    v("pii", "masked"),
                    v("toxicity", "replaced")
                )),
            ),
            (
                None,
                Some(format!(
                    "[{},{}]",
                    v("pii", "pass"),
                    v("injection", "blocked")
                )),
            ),
            (Some("sim/small"), Some("not json".into())),
            (Some("sim/small"), Some(r#"[{"outcome":"blocked""#.into())),
            (Some("sim/small"), None),
            (Some("sim/small"), Some("null".into())),
            (Some("sim/small"), Some("[]".into())),
            (Some("sim/small"), Some("{}".into())),
            (Some("guard"), None),
            (Some("guard"), one("topics", "pass")),
            (Some("sim/small"), Some(r#"[{"guard":"x"}]"#.into())),
            (Some("sim/small"), Some(r#"[{"outcome":null}]"#.into())),
            (Some("sim/small"), Some(r#"[{"outcome":1}]"#.into())),
            (Some("sim/small"), Some("[5]".into())),
            (Some("sim/small"), Some("[[]]".into())),
            (
                Some("sim/small"),
                Some(r#"{"a":{"outcome":"blocked"}}"#.into()),
            ),
        ];
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_in(dir.path()).unwrap();
        let records: Vec<RequestRecord> = fixtures
            .iter()
            .enumerate()
            .map(|(i, (deployment, guards))| RequestRecord {
                request_id: i.to_string(),
                deployment: deployment.map(Into::into),
                guards: guards.clone(),
                ..RequestRecord::default()
            })
            .collect();
        store.write_batch(&records).unwrap();
        let views = flag_views(&store);
        assert_eq!(views.len(), fixtures.len());
        for ((id, columns, old, legacy), fixture) in views.into_iter().zip(&fixtures) {
            assert_eq!(columns, old.map(Some), "row {id}: {fixture:?}");
            assert_eq!(legacy, old, "row {id}: {fixture:?}");
        }
        // The old SQL fails on a string element (it reads it as JSON); these read it as none.
        let odd = GuardFlags::of(None, Some(r#"["x",{"outcome":"pass"}]"#));
        assert_eq!(
            odd,
            GuardFlags {
                refused: false,
                triggered: true,
                spoiled: false
            }
        );
    }

    /// Every report [`store`]'s fixture feeds the dashboard.
    fn reports(store: &SqliteStore) -> String {
        let only = |outcome: &str| RequestFilter {
            guard_outcome: Some(outcome.into()),
            ..RequestFilter::default()
        };
        format!(
            "{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
            store.kpi_summary(FROM, TO, &all()).unwrap(),
            store.kpi_groups(FROM, TO, GroupBy::Route, &all()).unwrap(),
            store.kpi_trend(FROM, TO, Bucket::Hour, &all()).unwrap(),
            store.guard_triggers(FROM, TO, Bucket::Day, &all()).unwrap(),
            store.recent_requests(&only("blocked")).unwrap(),
            store.recent_requests(&only("pass")).unwrap(),
        )
    }

    #[test]
    fn rows_from_before_the_flag_columns_or_from_an_older_replica_count_the_same() {
        let (dir, store) = store();
        let expected = reports(&store);
        let path = dir.path().join("old.db");
        let columns = RECORD_COLUMNS.replace("r.", "");
        {
            // As the build before the flag columns left it, with the same rows.
            let old = crate::sqlite::open_old_schema(&path, 8);
            old.execute_batch(&format!(
                "ATTACH '{}' AS new; \
                 INSERT INTO requests ({columns}) SELECT {columns} FROM new.requests; \
                 INSERT INTO feedback SELECT * FROM new.feedback; DETACH new;",
                dir.path().join("switchyard.db").display()
            ))
            .unwrap();
        }
        let upgraded = SqliteStore::open(&path).unwrap();
        let views = flag_views(&upgraded);
        assert_eq!(views.len(), 10);
        for (id, columns, old, _) in views {
            assert_eq!(columns, old.map(Some), "backfilled row {id}");
        }
        assert_eq!(reports(&upgraded), expected);
        // A replica still on the old build writes no flags: the JSON stands in.
        upgraded
            .with(|conn| {
                conn.execute(
                    "UPDATE requests SET guard_refused = NULL, guard_triggered = NULL, \
                     guard_spoiled = NULL WHERE rowid % 2 = 0",
                    [],
                )
            })
            .unwrap();
        assert_eq!(reports(&upgraded), expected);
    }
}
