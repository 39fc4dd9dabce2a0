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
//!
//! The SQL is one text for SQLite and PostgreSQL ([`crate::sql`]); the few fragments that
//! differ (JSON, time formatting, `MAX` of two values, the legacy guard fallback) are asked of
//! the dialect. Sums, counts and the latencies are read from the database; percentiles, rates,
//! per-request means and the filled trend are computed here, once for both.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::requests::{record_from, RECORD_COLUMNS};
use crate::sql::{Dialect, Exec, Param, SqlReads, SqlRow};
pub use crate::verdicts::GuardFlags;
use crate::verdicts::{legacy_refused_sql, legacy_spoiled_sql, legacy_triggered_sql};
use crate::{RequestRecord, StoreError};

/// Feedback from the request's tenant that keeps it from being a success, over `requests r`.
macro_rules! spoiled_by_feedback_sql {
    () => {
        "NOT EXISTS (SELECT 1 FROM feedback f WHERE f.request_id = r.request_id \
        AND f.tenant = r.tenant AND (f.score < 0.5 OR f.outcome = 'escalated'))"
    };
}

/// A successful interaction, over `requests r`: answered (2xx); no guard failed, stopped,
/// replaced, blocked or refused it; and no feedback from its tenant scored it below 0.5
/// (thumbs down is 0) or marked it `escalated`. A `flagged`, `masked` or `fixed` verdict,
/// or a guard's own `error`, does not spoil it (when an erroring guard refuses, the request
/// is a 4xx).
/// Which verdicts spoil it is [`GuardFlags::spoiled`], read from the `guard_spoiled` column.
/// (SQLite's; [`success_sql`] gives each database's.)
pub const SUCCESS_SQL: &str = concat!(
    "(r.status BETWEEN 200 AND 299 AND NOT COALESCE(r.guard_spoiled, ",
    legacy_spoiled_sql!(),
    ") AND ",
    spoiled_by_feedback_sql!(),
    ")"
);

/// [`SUCCESS_SQL`] on PostgreSQL, whose rows all have their guard flags.
const PG_SUCCESS_SQL: &str = concat!(
    "(r.status BETWEEN 200 AND 299 AND NOT r.guard_spoiled AND ",
    spoiled_by_feedback_sql!(),
    ")"
);

fn success_sql(d: Dialect) -> &'static str {
    match d {
        Dialect::Sqlite => SUCCESS_SQL,
        Dialect::Postgres => PG_SUCCESS_SQL,
    }
}

/// What one request saved, in nano-dollars: its baseline (the answer's cost on the route's
/// most expensive model; equal to the cost for a request no route chose, and for a failed one)
/// minus what it cost, never below 0. A cache hit's saving is the cache's (its cost is 0 but
/// for side calls such as a judge), any other's the router's. As the gateway's
/// `*_saved_nanos_total` metrics count it. (SQLite's; PostgreSQL's `MAX` of two is `GREATEST`.)
pub const SAVED_SQL: &str = "MAX(r.baseline_cost_nanos - r.cost_nanos, 0)";

fn saved_sql(d: Dialect) -> &'static str {
    match d {
        Dialect::Sqlite => SAVED_SQL,
        Dialect::Postgres => "GREATEST(r.baseline_cost_nanos - r.cost_nanos, 0)",
    }
}

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

/// [`ROUTE_SQL`] on PostgreSQL: `split_part` gives the whole text when it has no `:`.
const PG_ROUTE_SQL: &str = "(CASE WHEN r.route IS NOT NULL \
    OR (COALESCE(r.cache, '') IN ('hit-exact', 'hit-semantic') \
        AND r.requested_model IS DISTINCT FROM r.model) \
    THEN split_part(r.requested_model, ':', 1) END)";

fn route_sql(d: Dialect) -> &'static str {
    match d {
        Dialect::Sqlite => ROUTE_SQL,
        Dialect::Postgres => PG_ROUTE_SQL,
    }
}

/// A guard refused the request: [`GuardFlags::refused`]. PostgreSQL's rows all have the flag.
fn refused_sql(d: Dialect) -> &'static str {
    match d {
        Dialect::Sqlite => concat!("COALESCE(r.guard_refused, ", legacy_refused_sql!(), ")"),
        Dialect::Postgres => "r.guard_refused",
    }
}

/// A guard triggered on the request: [`GuardFlags::triggered`].
fn triggered_sql(d: Dialect) -> &'static str {
    match d {
        Dialect::Sqlite => concat!("COALESCE(r.guard_triggered, ", legacy_triggered_sql!(), ")"),
        Dialect::Postgres => "r.guard_triggered",
    }
}

/// The request may have a verdict other than `pass` (its flag is not known to be false): a
/// row whose verdicts all passed is skipped without reading its JSON.
fn maybe_triggered_sql(d: Dialect) -> &'static str {
    match d {
        Dialect::Sqlite => "r.guard_triggered IS NOT 0",
        Dialect::Postgres => "r.guard_triggered",
    }
}

/// A row source `g` of the request's verdicts, one `g.value` each: SQLite reads the JSON
/// text; PostgreSQL reads the array the writer stored beside it (`guard_verdicts`, the same
/// elements as [`GuardFlags::of`] reads).
fn verdicts_sql(d: Dialect) -> &'static str {
    match d {
        Dialect::Sqlite => "json_each(CASE WHEN json_valid(r.guards) THEN r.guards END) g",
        Dialect::Postgres => "jsonb_array_elements(r.guard_verdicts) g",
    }
}

/// A verdict's `field` (`guard`, `outcome`), as text, from [`verdicts_sql`]'s `g` (a number
/// where the gateway writes text reads as its digits, on both databases).
fn verdict_sql(d: Dialect, field: &str) -> String {
    match d {
        Dialect::Sqlite => format!("CAST(json_extract(g.value, '$.{field}') AS TEXT)"),
        // Ordered bytewise, as SQLite orders text.
        Dialect::Postgres => format!("((g.value ->> '{field}') COLLATE \"C\")"),
    }
}

/// `a` is not `b`, NULL being a value.
fn is_not(d: Dialect) -> &'static str {
    match d {
        Dialect::Sqlite => "IS NOT",
        Dialect::Postgres => "IS DISTINCT FROM",
    }
}

/// A UTC time of `seconds` since the epoch as text: a day, an hour or a minute.
fn utc_text_sql(d: Dialect, seconds: &str, unit: Bucket) -> String {
    let (sqlite, postgres) = match unit {
        Bucket::Day => ("%Y-%m-%d", "YYYY-MM-DD"),
        Bucket::Hour => ("%Y-%m-%dT%H:00Z", "YYYY-MM-DD\"T\"HH24\":00Z\""),
        _ => ("%Y-%m-%dT%H:%MZ", "YYYY-MM-DD\"T\"HH24:MI\"Z\""),
    };
    match d {
        Dialect::Sqlite => format!("strftime('{sqlite}', {seconds}, 'unixepoch')"),
        Dialect::Postgres => {
            format!("to_char(to_timestamp({seconds}) AT TIME ZONE 'UTC', '{postgres}')")
        }
    }
}

/// How many rows of the group `condition` holds for.
fn count_if(condition: &str) -> String {
    format!("COUNT(*) FILTER (WHERE {condition})")
}

/// An integer sum as a 64-bit integer (PostgreSQL sums `BIGINT`s as `NUMERIC`).
fn sum(expr: &str) -> String {
    format!("CAST(SUM({expr}) AS BIGINT)")
}

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

/// How [`KpiStore::kpi_groups`] groups requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    Tenant,
    Key,
    Model,
    Route,
    /// The priority class (`critical`, `interactive`, `standard`, `batch`; null for requests
    /// without one: embeddings, and those refused before it was known).
    Priority,
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
    fn key_sql(self, d: Dialect) -> String {
        match self {
            GroupBy::Tenant => "r.tenant".to_owned(),
            GroupBy::Key => "r.key_id".to_owned(),
            GroupBy::Model => "r.model".to_owned(),
            GroupBy::Route => route_sql(d).to_owned(),
            GroupBy::Priority => "r.priority".to_owned(),
            GroupBy::Day => utc_text_sql(d, "r.started_at_ms / 1000", Bucket::Day),
            GroupBy::Hour => utc_text_sql(d, "r.started_at_ms / 1000", Bucket::Hour),
            GroupBy::FifteenMinutes | GroupBy::FiveMinutes | GroupBy::Minute => {
                let start = self.bucket().map(Bucket::start_sql).unwrap_or_default();
                utc_text_sql(d, &format!("{start} / 1000"), Bucket::Minute)
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

/// The KPIs of a time range: [`KpiStore::kpi_summary`].
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
    /// Refused with 503 `overloaded`: a deployment's queue had no room, or the request waited
    /// past its class's limit.
    pub shed: u64,
    /// Upstream calls cancelled to give their capacity to urgent work (and run again).
    pub preemptions: u64,
    /// The mean time requests with a priority class waited for a deployment's capacity
    /// (those that did not wait count as 0); null without such requests.
    pub queue_wait_mean_ms: Option<f64>,
}

/// One group of [`KpiStore::kpi_groups`]: its key and its KPIs (flattened in JSON and CSV).
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

/// One point of [`KpiStore::kpi_trend`].
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

/// Verdicts of one guard with one outcome in one bucket: [`KpiStore::guard_triggers`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardTrigger {
    pub bucket_ms: i64,
    pub guard: String,
    pub outcome: String,
    pub count: u64,
}

/// One model's part of the traffic: [`KpiStore::model_mix`].
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

/// Which requests [`KpiStore::recent_requests`] lists. Every field set must match.
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

/// A `WHERE` clause over `requests r` with its parameters, built from what is set, so the
/// database can use the `(tenant | key_id | model, started_at_ms)` indexes.
struct Where<'a> {
    d: Dialect,
    sql: String,
    params: Vec<Param<'a>>,
}

impl<'a> Where<'a> {
    fn new(d: Dialect) -> Self {
        Where {
            d,
            sql: "TRUE".to_owned(),
            params: Vec::new(),
        }
    }

    /// The placeholder of a new parameter, `value`.
    fn param(&mut self, value: Param<'a>) -> String {
        self.params.push(value);
        format!("?{}", self.params.len())
    }

    /// Adds `clause`, in which `?` is the next parameter.
    fn and(&mut self, clause: &str, value: Param<'a>) {
        let placeholder = self.param(value);
        self.sql.push_str(" AND ");
        self.sql.push_str(&clause.replace('?', &placeholder));
    }

    fn and_eq(&mut self, expr: &str, value: &'a Option<String>) {
        if let Some(v) = value {
            self.and(&format!("{expr} = ?"), v.into());
        }
    }

    fn scope(
        &mut self,
        tenant: &'a Option<String>,
        key_id: &'a Option<String>,
        model: &'a Option<String>,
        route: &'a Option<String>,
    ) {
        self.and_eq("r.tenant", tenant);
        self.and_eq("r.key_id", key_id);
        self.and_eq("r.model", model);
        self.and_eq(route_sql(self.d), route);
    }

    fn range(d: Dialect, from_ms: i64, to_ms: i64, filter: &'a KpiFilter) -> Self {
        let mut w = Where::new(d);
        w.and("r.started_at_ms >= ?", from_ms.into());
        w.and("r.started_at_ms < ?", to_ms.into());
        w.scope(&filter.tenant, &filter.key_id, &filter.model, &filter.route);
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

/// Sums per group (`key_sql`, and `bucket_sql` for time buckets), ordered by key, with their
/// latency percentiles ([`latencies`]).
fn aggregate(
    e: &dyn Exec,
    from_ms: i64,
    to_ms: i64,
    filter: &KpiFilter,
    key_sql: &str,
    bucket_sql: Option<&str>,
) -> Result<Vec<KpiGroup>, StoreError> {
    let d = e.dialect();
    let w = Where::range(d, from_ms, to_ms, filter);
    let bucket_sql = bucket_sql.unwrap_or("CAST(NULL AS BIGINT)");
    // The key's text is not named `k`: `ORDER BY k` is the key itself (a bucket orders as a
    // number), on both databases.
    let sql = format!(
        "WITH b AS (SELECT {key_sql} AS k, {bucket_sql} AS bucket, r.status AS status, \
            r.latency_ms AS latency_ms, r.prompt_tokens AS tin, r.completion_tokens AS tout, \
            r.cost_nanos AS cost, r.baseline_cost_nanos AS baseline, {HIT_SQL} AS hit, \
            (COALESCE(r.cache, '') = 'hit-semantic') AS semantic, \
            (COALESCE(r.cache, '') IN ('hit-exact', 'hit-semantic', 'miss')) AS lookup, \
            {saved} AS saved, {success} AS ok, {refused} AS refused, \
            {triggered} AS triggered, {ESCALATED_SQL} AS escalated, \
            (r.status = 503 AND COALESCE(r.error_kind, '') = 'overloaded') AS shed, \
            COALESCE(r.preemptions, 0) AS preemptions, \
            CASE WHEN r.priority IS NULL THEN NULL ELSE COALESCE(r.queue_ms, 0) END AS queue_ms \
            FROM requests r WHERE {where_sql}) \
         SELECT CAST(k AS TEXT) AS key_text, MIN(bucket), COUNT(*), {answered}, {ok}, {errors}, \
            {client_errors}, {refusals}, {triggers}, {escalations}, {cost}, {baseline}, \
            {saved_by_cache}, {saved_by_routing}, {hits}, {lookups}, {tin}, {tout}, \
            AVG(latency_ms), {semantic}, {shed}, {preemptions}, \
            AVG(CAST(queue_ms AS DOUBLE PRECISION)) \
         FROM b GROUP BY k ORDER BY k NULLS FIRST",
        saved = saved_sql(d),
        success = success_sql(d),
        refused = refused_sql(d),
        triggered = triggered_sql(d),
        where_sql = w.sql,
        answered = count_if("status BETWEEN 200 AND 299"),
        ok = count_if("ok"),
        errors = count_if("status >= 500"),
        client_errors = count_if("status BETWEEN 400 AND 499"),
        refusals = count_if("refused"),
        triggers = count_if("triggered"),
        escalations = count_if("escalated AND status BETWEEN 200 AND 299"),
        cost = sum("cost"),
        baseline = sum("baseline"),
        saved_by_cache = sum("CASE WHEN hit THEN saved ELSE 0 END"),
        saved_by_routing = sum("CASE WHEN hit THEN 0 ELSE saved END"),
        hits = count_if("hit"),
        lookups = count_if("lookup"),
        tin = sum("tin"),
        tout = sum("tout"),
        semantic = count_if("semantic"),
        shed = count_if("shed"),
        preemptions = sum("preemptions"),
    );
    let mut groups = e.all(&sql, &w.params, |row| group_from(row, from_ms, to_ms))?;
    let mut latencies = latencies(e, &w, key_sql)?;
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

/// A group of [`aggregate`]'s query, without its percentiles and feedback.
fn group_from(row: &dyn SqlRow, from_ms: i64, to_ms: i64) -> Result<KpiGroup, StoreError> {
    let c = |i: usize| row.u64(i);
    let (requests, answered, successful) = (c(2)?, c(3)?, c(4)?);
    let (cost_nanos, escalated) = (c(10)?, c(9)?);
    let (saved_by_cache_nanos, saved_by_routing_nanos) = (c(12)?, c(13)?);
    let (cache_hits, cache_lookups) = (c(14)?, c(15)?);
    let escalation_rate = ratio(escalated, answered);
    Ok(KpiGroup {
        key: row.opt_string(0)?,
        bucket_ms: row.opt_i64(1)?,
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
            latency_mean_ms: row.opt_f64(18)?,
            latency_p50_ms: None,
            latency_p95_ms: None,
            prompt_tokens: c(16)?,
            completion_tokens: c(17)?,
            shed: c(20)?,
            preemptions: c(21)?,
            queue_wait_mean_ms: row.opt_f64(22)?,
        },
    })
}

/// Every covered request's latency, by group (`key_sql`). Percentiles are computed from these
/// in Rust: exact, and selecting is O(n) where SQL would sort.
fn latencies(e: &dyn Exec, w: &Where<'_>, key_sql: &str) -> Result<Latencies, StoreError> {
    let sql = format!(
        "SELECT CAST({key_sql} AS TEXT), r.latency_ms FROM requests r WHERE {}",
        w.sql
    );
    let mut out = Latencies::default();
    e.each(&sql, &w.params, &mut |row| {
        let ms = row.f64(1)?;
        // Borrowed, so a key is copied once per group, not once per request.
        match row.opt_str(0)? {
            None => out.unkeyed.push(ms),
            Some(k) => match out.keyed.get_mut(k) {
                Some(v) => v.push(ms),
                None => {
                    out.keyed.insert(k.to_owned(), vec![ms]);
                }
            },
        }
        Ok(())
    })?;
    Ok(out)
}

/// `groups` with the feedback on their requests (grouped by the same `key_sql`), from the
/// requests' own tenant, whenever it was given.
fn with_feedback(
    e: &dyn Exec,
    mut groups: Vec<KpiGroup>,
    from_ms: i64,
    to_ms: i64,
    filter: &KpiFilter,
    key_sql: &str,
) -> Result<Vec<KpiGroup>, StoreError> {
    let w = Where::range(e.dialect(), from_ms, to_ms, filter);
    let sql = format!(
        "SELECT CAST({key_sql} AS TEXT) AS k, COUNT(*), AVG(f.score), {positive}, {negative}, \
            {with_outcome}, {resolved}, {escalated} \
         FROM feedback f JOIN requests r ON f.request_id = r.request_id AND f.tenant = r.tenant \
         WHERE {where_sql} GROUP BY k",
        positive = count_if("f.score >= 0.5"),
        negative = count_if("f.score < 0.5"),
        with_outcome = count_if("f.outcome IS NOT NULL"),
        resolved = count_if("f.outcome = 'resolved'"),
        escalated = count_if("f.outcome = 'escalated'"),
        where_sql = w.sql
    );
    let stats = e.all(&sql, &w.params, |row| {
        let c = |i: usize| row.u64(i);
        let (with_outcome, resolved) = (c(5)?, c(6)?);
        let stats = FeedbackStats {
            count: c(1)?,
            mean_score: row.opt_f64(2)?,
            positive: c(3)?,
            negative: c(4)?,
            with_outcome,
            resolved,
            escalated: c(7)?,
            task_completion_rate: ratio(resolved, with_outcome),
        };
        Ok((row.opt_string(0)?, stats))
    })?;
    let mut by_key: HashMap<Option<String>, FeedbackStats> = stats.into_iter().collect();
    for g in &mut groups {
        if let Some(stats) = by_key.remove(&g.key) {
            g.kpi.feedback = stats;
        }
    }
    Ok(groups)
}

/// The KPIs of every store that runs the shared SQL, each report on one connection.
impl<S: SqlReads> KpiStore for S {
    fn kpi_summary(
        &self,
        from_ms: i64,
        to_ms: i64,
        filter: &KpiFilter,
    ) -> Result<KpiSummary, StoreError> {
        let groups = self.exec(|e| {
            let groups = aggregate(e, from_ms, to_ms, filter, "0", None)?;
            with_feedback(e, groups, from_ms, to_ms, filter, "0")
        })?;
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
        self.exec(|e| {
            let key_sql = by.key_sql(e.dialect());
            let groups = aggregate(e, from_ms, to_ms, filter, &key_sql, bucket.as_deref())?;
            with_feedback(e, groups, from_ms, to_ms, filter, &key_sql)
        })
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
            .exec(|e| aggregate(e, from_ms, to_ms, filter, &start, Some(&start)))?
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
        self.exec(|e| {
            let d = e.dialect();
            let w = Where::range(d, from_ms, to_ms, filter);
            let outcome = verdict_sql(d, "outcome");
            let sql = format!(
                "SELECT {start} AS bucket, {guard} AS guard, {outcome} AS outcome, COUNT(*) \
                 FROM requests r, {verdicts} \
                 WHERE {where_sql} AND {maybe} AND {outcome} {is_not} 'pass' \
                 GROUP BY bucket, guard, outcome \
                 ORDER BY bucket, guard NULLS FIRST, outcome NULLS FIRST",
                start = bucket.start_sql(),
                guard = verdict_sql(d, "guard"),
                verdicts = verdicts_sql(d),
                where_sql = w.sql,
                maybe = maybe_triggered_sql(d),
                is_not = is_not(d),
            );
            e.all(&sql, &w.params, |row| {
                Ok(GuardTrigger {
                    bucket_ms: row.i64(0)?,
                    guard: row.opt_string(1)?.unwrap_or_default(),
                    outcome: row.opt_string(2)?.unwrap_or_default(),
                    count: row.u64(3)?,
                })
            })
        })
    }

    fn model_mix(
        &self,
        from_ms: i64,
        to_ms: i64,
        filter: &KpiFilter,
    ) -> Result<Vec<ModelShare>, StoreError> {
        let mut mix = self.exec(|e| {
            let w = Where::range(e.dialect(), from_ms, to_ms, filter);
            let sql = format!(
                "SELECT r.model, COUNT(*) AS n, {cost} FROM requests r WHERE {where_sql} \
                 GROUP BY r.model ORDER BY n DESC, r.model NULLS FIRST",
                cost = sum("r.cost_nanos"),
                where_sql = w.sql
            );
            e.all(&sql, &w.params, |row| {
                Ok(ModelShare {
                    model: row.opt_string(0)?,
                    requests: row.u64(1)?,
                    share: 0.0,
                    cost_nanos: row.u64(2)?,
                })
            })
        })?;
        let total: u64 = mix.iter().map(|m| m.requests).sum();
        for m in &mut mix {
            m.share = ratio(m.requests, total).unwrap_or(0.0);
        }
        Ok(mix)
    }

    fn recent_requests(&self, filter: &RequestFilter) -> Result<Vec<RequestRecord>, StoreError> {
        self.exec(|e| {
            let d = e.dialect();
            let mut w = Where::new(d);
            if let Some(before) = filter.before_ms {
                w.and("r.started_at_ms < ?", before.into());
            }
            if let Some(class) = filter.status_class {
                let (lo, hi) = class.range();
                w.and("r.status >= ?", lo.into());
                w.and("r.status <= ?", hi.into());
            }
            w.scope(&filter.tenant, &filter.key_id, &filter.model, &filter.route);
            match filter.cache.as_deref() {
                Some("hit") => w.sql.push_str(&format!(" AND {HIT_SQL}")),
                _ => w.and_eq("r.cache", &filter.cache),
            }
            if let Some(outcome) = &filter.guard_outcome {
                // A row whose verdicts all passed has no other outcome: skip its JSON.
                if outcome != "pass" {
                    w.sql.push_str(&format!(" AND {}", maybe_triggered_sql(d)));
                }
                w.and(
                    &format!(
                        "EXISTS (SELECT 1 FROM {} WHERE {} = ?)",
                        verdicts_sql(d),
                        verdict_sql(d, "outcome")
                    ),
                    outcome.as_str().into(),
                );
            }
            let limit = filter.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
            let limit = w.param(crate::sql::limit(limit));
            let sql = format!(
                "SELECT {RECORD_COLUMNS} FROM requests r WHERE {} \
                 ORDER BY r.started_at_ms DESC, r.rowid DESC LIMIT {limit}",
                w.sql
            );
            e.all(&sql, &w.params, record_from)
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
    use crate::{FeedbackStore, RecordStore, SqliteStore};

    const DAY_MS: i64 = 86_400_000;

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

    /// `(deployment, guards)`: every outcome the gateway writes, and what it never should.
    fn guard_fixtures() -> Vec<(Option<&'static str>, Option<String>)> {
        let v = |guard: &str, outcome: &str| {
            format!(r#"{{"guard":"{guard}","outcome":"{outcome}","detail":"","ms":0.1}}"#)
        };
        let one = |guard: &str, outcome: &str| Some(format!("[{}]", v(guard, outcome)));
        vec![
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
        ]
    }

    /// A record per fixture, ten minutes apart from midnight UTC on day 0, on a route every
    /// other one, refused ones (no deployment, or the guard's) as 400s.
    fn fixture_records() -> Vec<RequestRecord> {
        guard_fixtures()
            .into_iter()
            .enumerate()
            .map(|(i, (deployment, guards))| RequestRecord {
                request_id: i.to_string(),
                started_at_ms: i as i64 * 600_000,
                endpoint: "chat".into(),
                tenant: Some("t".into()),
                requested_model: Some("auto".into()),
                model: deployment.map(|_| "small".into()),
                route: (i % 2 == 0).then(|| "{}".into()),
                deployment: deployment.map(Into::into),
                status: if deployment.is_some() { 200 } else { 400 },
                latency_ms: i as f64,
                guards,
                ..RequestRecord::default()
            })
            .collect()
    }

    #[test]
    fn the_flags_written_are_what_the_old_sql_computed() {
        let fixtures = guard_fixtures();
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_in(dir.path()).unwrap();
        store.write_batch(&fixture_records()).unwrap();
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

    /// Every report the dashboard reads of [`fixture_records`].
    fn reports(store: &SqliteStore) -> String {
        let only = |outcome: &str| RequestFilter {
            guard_outcome: Some(outcome.into()),
            ..RequestFilter::default()
        };
        let all = KpiFilter::default();
        format!(
            "{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
            store.kpi_summary(0, DAY_MS, &all).unwrap(),
            store.kpi_groups(0, DAY_MS, GroupBy::Route, &all).unwrap(),
            store.kpi_trend(0, DAY_MS, Bucket::Hour, &all).unwrap(),
            store.guard_triggers(0, DAY_MS, Bucket::Hour, &all).unwrap(),
            store.recent_requests(&only("blocked")).unwrap(),
            store.recent_requests(&only("pass")).unwrap(),
        )
    }

    #[test]
    fn rows_from_before_the_flag_columns_or_from_an_older_replica_count_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_in(dir.path()).unwrap();
        store.write_batch(&fixture_records()).unwrap();
        for id in ["0", "1"] {
            let f = crate::Feedback {
                request_id: id.into(),
                tenant: "t".into(),
                score: Some(0.0),
                ..crate::Feedback::default()
            };
            store.add_feedback(&f).unwrap();
        }
        let expected = reports(&store);
        let path = dir.path().join("old.db");
        // The columns that build had: none of the admission columns added after it.
        let columns = RECORD_COLUMNS
            .replace("r.", "")
            .replace(", priority, queue_ms, preemptions", "");
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
        assert_eq!(views.len(), guard_fixtures().len());
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
