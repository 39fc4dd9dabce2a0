//! Business KPIs (issue 6) as read-only SQL over the stored requests and feedback: cost per
//! request and per successful interaction, spend by tenant, key, model, route, day or hour,
//! savings against each route's most expensive model (split into cache and routing), cache
//! hit rate, automation and escalation rates, satisfaction and task completion, latency
//! percentiles, guard triggers, the model mix and the filtered request list.
//!
//! It owns the one definition of a successful interaction ([`SUCCESS_SQL`]), of a saving
//! ([`SAVED_SQL`]) and of the route a request counts under ([`ROUTE_SQL`]). Every query
//! covers started times in `[from_ms, to_ms)` and feedback joins its request on the request id
//! and the tenant (one tenant cannot score another's requests), whenever it was given. Time
//! buckets are UTC. It must not write, read clocks (the caller passes the range) or know
//! HTTP: the gateway's admin API exposes these results, as JSON or through [`crate::csv`].

use rusqlite::types::Value;
use serde::{Deserialize, Serialize};

use crate::sqlite::{record_from_row, RECORD_COLUMNS};
use crate::{RequestRecord, SqliteStore, StoreError};

/// A successful interaction, over `requests r`: answered (2xx); no guard failed, stopped,
/// replaced, blocked or refused it; and no feedback from its tenant scored it below 0.5
/// (thumbs down is 0) or marked it `escalated`. A `flagged`, `masked` or `fixed` verdict,
/// or a guard's own `error`, does not spoil it (when an erroring guard refuses, the request
/// is a 4xx).
pub const SUCCESS_SQL: &str = "(r.status BETWEEN 200 AND 299 \
    AND NOT EXISTS (SELECT 1 FROM json_each(CASE WHEN json_valid(r.guards) THEN r.guards END) g \
        WHERE json_extract(g.value, '$.outcome') IN ('failed', 'stopped', 'replaced', 'blocked', 'refused')) \
    AND NOT EXISTS (SELECT 1 FROM feedback f WHERE f.request_id = r.request_id AND f.tenant = r.tenant \
        AND (f.score < 0.5 OR f.outcome = 'escalated')))";

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

/// A guard refused the request: a `blocked` or `refused` verdict (a 400, or the topic
/// filter's polite answer, recorded with the deployment `guard`).
const REFUSED_SQL: &str = "(r.deployment = 'guard' OR EXISTS (SELECT 1 FROM json_each(CASE WHEN json_valid(r.guards) THEN r.guards END) g \
    WHERE json_extract(g.value, '$.outcome') IN ('blocked', 'refused')))";

/// A guard triggered on the request: any verdict other than `pass`.
const TRIGGERED_SQL: &str =
    "EXISTS (SELECT 1 FROM json_each(CASE WHEN json_valid(r.guards) THEN r.guards END) g \
    WHERE json_extract(g.value, '$.outcome') IS NOT 'pass')";

/// Feedback from the request's tenant marked it escalated to a human.
const ESCALATED_SQL: &str = "EXISTS (SELECT 1 FROM feedback f WHERE f.request_id = r.request_id \
    AND f.tenant = r.tenant AND f.outcome = 'escalated')";

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

/// A time bucket, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bucket {
    Hour,
    Day,
}

impl Bucket {
    fn ms(self) -> i64 {
        match self {
            Bucket::Hour => HOUR_MS,
            Bucket::Day => DAY_MS,
        }
    }

    /// The bucket's start in ms, over `requests r`.
    fn start_sql(self) -> String {
        format!("((r.started_at_ms / {ms}) * {ms})", ms = self.ms())
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
        }
    }

    fn bucket(self) -> Option<Bucket> {
        match self {
            GroupBy::Day => Some(Bucket::Day),
            GroupBy::Hour => Some(Bucket::Hour),
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
    /// Exact nearest-rank percentiles of every covered request's latency.
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// One group of [`SqliteStore::kpi_groups`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KpiGroup {
    /// The tenant, key, model or route (null: none, e.g. a request refused before a model
    /// was chosen), or for days and hours the UTC bucket as `2026-11-27` or
    /// `2026-11-27T13:00Z`.
    pub key: Option<String>,
    /// For days and hours: the bucket's start, in ms.
    pub bucket_ms: Option<i64>,
    pub requests: u64,
    pub successful: u64,
    pub errors: u64,
    pub cost_nanos: u64,
    pub baseline_cost_nanos: u64,
    pub saved_by_cache_nanos: u64,
    pub saved_by_routing_nanos: u64,
    pub mean_latency_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
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
    /// The model that answered.
    pub model: Option<String>,
    pub key_id: Option<String>,
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

    fn range(from_ms: i64, to_ms: i64, filter: &KpiFilter) -> Self {
        let mut w = Where::new();
        w.and("r.started_at_ms >= ?", from_ms);
        w.and("r.started_at_ms < ?", to_ms);
        w.and_eq("r.tenant", &filter.tenant);
        w.and_eq("r.key_id", &filter.key_id);
        w.and_eq("r.model", &filter.model);
        w.and_eq(ROUTE_SQL, &filter.route);
        w
    }
}

/// What every KPI query sums, per group.
#[derive(Debug, Default)]
struct Agg {
    key: Option<String>,
    bucket_ms: Option<i64>,
    requests: u64,
    answered: u64,
    successful: u64,
    errors: u64,
    client_errors: u64,
    refused: u64,
    triggered: u64,
    escalated: u64,
    cost: u64,
    baseline: u64,
    saved_cache: u64,
    saved_routing: u64,
    hits: u64,
    lookups: u64,
    tokens_in: u64,
    tokens_out: u64,
    mean_latency: Option<f64>,
    p50: Option<f64>,
    p95: Option<f64>,
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

impl SqliteStore {
    /// Sums per group (`key_sql`, and `bucket_sql` for time buckets), ordered by key.
    ///
    /// Percentiles are exact nearest-rank ones: with the group's `n` latencies sorted, the
    /// p-th is the one at rank ⌈p·n/100⌉ (integer maths in SQL, ranks by a window).
    fn aggregate(
        &self,
        from_ms: i64,
        to_ms: i64,
        filter: &KpiFilter,
        key_sql: &str,
        bucket_sql: Option<&str>,
    ) -> Result<Vec<Agg>, StoreError> {
        let w = Where::range(from_ms, to_ms, filter);
        let bucket_sql = bucket_sql.unwrap_or("NULL");
        let sql = format!(
            "WITH b AS (SELECT {key_sql} AS k, {bucket_sql} AS bucket, r.status AS status, \
                r.latency_ms AS latency_ms, r.prompt_tokens AS tin, r.completion_tokens AS tout, \
                r.cost_nanos AS cost, r.baseline_cost_nanos AS baseline, {HIT_SQL} AS hit, \
                (COALESCE(r.cache, '') IN ('hit-exact', 'hit-semantic', 'miss')) AS lookup, \
                {SAVED_SQL} AS saved, {SUCCESS_SQL} AS ok, {REFUSED_SQL} AS refused, \
                {TRIGGERED_SQL} AS triggered, {ESCALATED_SQL} AS escalated \
                FROM requests r WHERE {where_sql}), \
             w AS (SELECT b.*, ROW_NUMBER() OVER (PARTITION BY k ORDER BY latency_ms) AS rn, \
                COUNT(*) OVER (PARTITION BY k) AS n FROM b) \
             SELECT k, MIN(bucket), COUNT(*), SUM(status BETWEEN 200 AND 299), SUM(ok), \
                SUM(status >= 500), SUM(status BETWEEN 400 AND 499), SUM(refused), SUM(triggered), \
                SUM(escalated AND status BETWEEN 200 AND 299), SUM(cost), SUM(baseline), \
                SUM(CASE WHEN hit THEN saved ELSE 0 END), SUM(CASE WHEN hit THEN 0 ELSE saved END), \
                SUM(hit), SUM(lookup), SUM(tin), SUM(tout), AVG(latency_ms), \
                MAX(CASE WHEN rn = (n * 50 + 99) / 100 THEN latency_ms END), \
                MAX(CASE WHEN rn = (n * 95 + 99) / 100 THEN latency_ms END) \
             FROM w GROUP BY k ORDER BY k",
            where_sql = w.sql
        );
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(w.params.iter()), |row| {
                let c = |i: usize| row.get::<_, i64>(i).map(count);
                Ok(Agg {
                    key: row.get(0)?,
                    bucket_ms: row.get(1)?,
                    requests: c(2)?,
                    answered: c(3)?,
                    successful: c(4)?,
                    errors: c(5)?,
                    client_errors: c(6)?,
                    refused: c(7)?,
                    triggered: c(8)?,
                    escalated: c(9)?,
                    cost: c(10)?,
                    baseline: c(11)?,
                    saved_cache: c(12)?,
                    saved_routing: c(13)?,
                    hits: c(14)?,
                    lookups: c(15)?,
                    tokens_in: c(16)?,
                    tokens_out: c(17)?,
                    mean_latency: row.get(18)?,
                    p50: row.get(19)?,
                    p95: row.get(20)?,
                })
            })?;
            rows.collect()
        })
    }

    /// The KPIs of the requests started in `[from_ms, to_ms)` that match `filter`.
    pub fn kpi_summary(
        &self,
        from_ms: i64,
        to_ms: i64,
        filter: &KpiFilter,
    ) -> Result<KpiSummary, StoreError> {
        let a = self
            .aggregate(from_ms, to_ms, filter, "0", None)?
            .into_iter()
            .next()
            .unwrap_or_default();
        let escalation_rate = ratio(a.escalated, a.answered);
        Ok(KpiSummary {
            from_ms,
            to_ms,
            requests: a.requests,
            answered: a.answered,
            successful: a.successful,
            errors: a.errors,
            client_errors: a.client_errors,
            guard_refusals: a.refused,
            cost_nanos: a.cost,
            cost_per_request_nanos: per(a.cost, a.requests),
            cost_per_success_nanos: per(a.cost, a.successful),
            baseline_cost_nanos: a.baseline,
            saved_total_nanos: a.saved_cache + a.saved_routing,
            saved_by_cache_nanos: a.saved_cache,
            saved_by_routing_nanos: a.saved_routing,
            cache_hits: a.hits,
            cache_lookups: a.lookups,
            cache_hit_rate: ratio(a.hits, a.lookups),
            escalated: a.escalated,
            escalation_rate,
            automation_rate: escalation_rate.map(|e| 1.0 - e),
            feedback: self.feedback_stats(from_ms, to_ms, filter)?,
            latency_p50_ms: a.p50,
            latency_p95_ms: a.p95,
            prompt_tokens: a.tokens_in,
            completion_tokens: a.tokens_out,
        })
    }

    /// Feedback on the covered requests, from their own tenant, whenever it was given.
    fn feedback_stats(
        &self,
        from_ms: i64,
        to_ms: i64,
        filter: &KpiFilter,
    ) -> Result<FeedbackStats, StoreError> {
        let w = Where::range(from_ms, to_ms, filter);
        let sql = format!(
            "SELECT COUNT(*), AVG(f.score), COALESCE(SUM(f.score >= 0.5), 0), \
                COALESCE(SUM(f.score < 0.5), 0), COALESCE(SUM(f.outcome IS NOT NULL), 0), \
                COALESCE(SUM(f.outcome = 'resolved'), 0), COALESCE(SUM(f.outcome = 'escalated'), 0) \
             FROM feedback f JOIN requests r ON f.request_id = r.request_id AND f.tenant = r.tenant \
             WHERE {}",
            w.sql
        );
        self.with(|conn| {
            conn.prepare_cached(&sql)?.query_row(
                rusqlite::params_from_iter(w.params.iter()),
                |row| {
                    let c = |i: usize| row.get::<_, i64>(i).map(count);
                    let (with_outcome, resolved) = (c(4)?, c(5)?);
                    Ok(FeedbackStats {
                        count: c(0)?,
                        mean_score: row.get(1)?,
                        positive: c(2)?,
                        negative: c(3)?,
                        with_outcome,
                        resolved,
                        escalated: c(6)?,
                        task_completion_rate: ratio(resolved, with_outcome),
                    })
                },
            )
        })
    }

    /// The KPIs per tenant, key, model, route (see [`ROUTE_SQL`]), UTC day or UTC hour,
    /// ordered by the group's key (null first).
    pub fn kpi_groups(
        &self,
        from_ms: i64,
        to_ms: i64,
        by: GroupBy,
        filter: &KpiFilter,
    ) -> Result<Vec<KpiGroup>, StoreError> {
        let bucket = by.bucket().map(Bucket::start_sql);
        let groups = self.aggregate(from_ms, to_ms, filter, &by.key_sql(), bucket.as_deref())?;
        Ok(groups
            .into_iter()
            .map(|a| KpiGroup {
                key: a.key,
                bucket_ms: a.bucket_ms,
                requests: a.requests,
                successful: a.successful,
                errors: a.errors,
                cost_nanos: a.cost,
                baseline_cost_nanos: a.baseline,
                saved_by_cache_nanos: a.saved_cache,
                saved_by_routing_nanos: a.saved_routing,
                mean_latency_ms: a.mean_latency,
                latency_p95_ms: a.p95,
            })
            .collect())
    }

    /// A time series for charts: one point per UTC bucket from the one holding `from_ms` up
    /// to `to_ms`, empty buckets as zeros (sparse when that would be more than 10 000 points).
    pub fn kpi_trend(
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
            .map(|a| KpiPoint {
                bucket_ms: a.bucket_ms.unwrap_or(0),
                requests: a.requests,
                errors: a.errors,
                cost_nanos: a.cost,
                saved_nanos: a.saved_cache + a.saved_routing,
                latency_p95_ms: a.p95,
                cache_hits: a.hits,
                guard_triggers: a.triggered,
            })
            .collect();
        Ok(fill_buckets(found, from_ms, to_ms, bucket))
    }

    /// Guard verdicts other than `pass`, per UTC bucket, guard and outcome.
    pub fn guard_triggers(
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
             WHERE {where_sql} AND outcome IS NOT 'pass' \
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

    /// Requests and cost per answering model, most requests first.
    pub fn model_mix(
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

    /// The dashboard's request list: the newest requests matching `filter`, newest first.
    pub fn recent_requests(
        &self,
        filter: &RequestFilter,
    ) -> Result<Vec<RequestRecord>, StoreError> {
        let mut w = Where::new();
        if let Some(before) = filter.before_ms {
            w.and("r.started_at_ms < ?", before);
        }
        if let Some(class) = filter.status_class {
            let (lo, hi) = class.range();
            w.and("r.status >= ?", lo);
            w.and("r.status <= ?", hi);
        }
        w.and_eq("r.tenant", &filter.tenant);
        w.and_eq("r.model", &filter.model);
        w.and_eq("r.key_id", &filter.key_id);
        match filter.cache.as_deref() {
            Some("hit") => w.sql.push_str(&format!(" AND {HIT_SQL}")),
            _ => w.and_eq("r.cache", &filter.cache),
        }
        if let Some(outcome) = &filter.guard_outcome {
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
    let first = from_ms.div_euclid(ms) * ms;
    if to_ms <= from_ms || (to_ms - first) / ms > MAX_FILLED_BUCKETS {
        return found;
    }
    let mut found = found.into_iter().peekable();
    let mut points = Vec::new();
    let mut at = first;
    while at < to_ms {
        match found.next_if(|p| p.bucket_ms == at) {
            Some(p) => points.push(p),
            None => points.push(KpiPoint {
                bucket_ms: at,
                ..KpiPoint::default()
            }),
        }
        at += ms;
    }
    points
}
