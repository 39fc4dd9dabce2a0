//! A batch of request records in one statement: each column as an array, `UNNEST`ed into
//! rows, so a batch of hundreds costs one round trip rather than one per record (the
//! telemetry writer's batches are up to `batch_size`, 512 by default). Their content goes the
//! same way, in the same transaction.

use postgres::Transaction;

use super::pool::Statements;
use crate::record::{content_json, RequestRecord};
use crate::verdicts::GuardFlags;
use crate::StoreError;

const INSERT_RECORDS: &str = "INSERT INTO requests (request_id, started_at_ms, endpoint, \
    tenant, key_id, requested_model, model, deployment, attempts, fallback_from, stream, \
    status, error_kind, latency_ms, ttft_ms, prompt_tokens, completion_tokens, usage_counted, \
    cost_nanos, route, cache, guards, config_version, baseline_cost_nanos, cache_similarity, \
    prompt, rollout, guard_refused, guard_triggered, guard_spoiled, guard_verdicts, priority, \
    queue_ms, preemptions) \
    SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], \
    $6::text[], $7::text[], $8::text[], $9::bigint[], $10::text[], $11::boolean[], \
    $12::bigint[], $13::text[], $14::float8[], $15::float8[], $16::bigint[], $17::bigint[], \
    $18::boolean[], $19::bigint[], $20::text[], $21::text[], $22::text[], $23::text[], \
    $24::bigint[], $25::float8[], $26::text[], $27::text[], $28::boolean[], $29::boolean[], \
    $30::boolean[], $31::jsonb[], $32::text[], $33::bigint[], $34::bigint[])";

const INSERT_CONTENT: &str = "INSERT INTO request_content (request_id, started_at_ms, body) \
    SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[])";

/// The records' columns, one array each.
#[derive(Default)]
struct Columns<'a> {
    request_id: Vec<&'a str>,
    started_at_ms: Vec<i64>,
    endpoint: Vec<&'a str>,
    tenant: Vec<Option<&'a str>>,
    key_id: Vec<Option<&'a str>>,
    requested_model: Vec<Option<&'a str>>,
    model: Vec<Option<&'a str>>,
    deployment: Vec<Option<&'a str>>,
    attempts: Vec<i64>,
    fallback_from: Vec<Option<&'a str>>,
    stream: Vec<bool>,
    status: Vec<i64>,
    error_kind: Vec<Option<&'a str>>,
    latency_ms: Vec<f64>,
    ttft_ms: Vec<Option<f64>>,
    prompt_tokens: Vec<i64>,
    completion_tokens: Vec<i64>,
    usage_counted: Vec<bool>,
    cost_nanos: Vec<i64>,
    route: Vec<Option<&'a str>>,
    cache: Vec<Option<&'a str>>,
    guards: Vec<Option<&'a str>>,
    config_version: Vec<Option<&'a str>>,
    baseline_cost_nanos: Vec<i64>,
    cache_similarity: Vec<Option<f64>>,
    prompt: Vec<Option<&'a str>>,
    rollout: Vec<Option<&'a str>>,
    guard_refused: Vec<bool>,
    guard_triggered: Vec<bool>,
    guard_spoiled: Vec<bool>,
    guard_verdicts: Vec<Option<serde_json::Value>>,
    priority: Vec<Option<&'a str>>,
    queue_ms: Vec<i64>,
    preemptions: Vec<i64>,
}

impl<'a> Columns<'a> {
    fn push(&mut self, r: &'a RequestRecord) {
        let (flags, verdicts) =
            GuardFlags::with_verdicts(r.deployment.as_deref(), r.guards.as_deref());
        self.request_id.push(&r.request_id);
        self.started_at_ms.push(r.started_at_ms);
        self.endpoint.push(&r.endpoint);
        self.tenant.push(r.tenant.as_deref());
        self.key_id.push(r.key_id.as_deref());
        self.requested_model.push(r.requested_model.as_deref());
        self.model.push(r.model.as_deref());
        self.deployment.push(r.deployment.as_deref());
        self.attempts.push(i64::from(r.attempts));
        self.fallback_from.push(r.fallback_from.as_deref());
        self.stream.push(r.stream);
        self.status.push(i64::from(r.status));
        self.error_kind.push(r.error_kind.as_deref());
        self.latency_ms.push(r.latency_ms);
        self.ttft_ms.push(r.ttft_ms);
        self.prompt_tokens.push(i64::from(r.prompt_tokens));
        self.completion_tokens.push(i64::from(r.completion_tokens));
        self.usage_counted.push(r.usage_counted);
        self.cost_nanos
            .push(i64::try_from(r.cost_nanos).unwrap_or(i64::MAX));
        self.route.push(r.route.as_deref());
        self.cache.push(r.cache.as_deref());
        self.guards.push(r.guards.as_deref());
        self.config_version.push(r.config_version.as_deref());
        self.baseline_cost_nanos
            .push(i64::try_from(r.baseline_cost_nanos).unwrap_or(i64::MAX));
        self.cache_similarity.push(r.cache_similarity);
        self.prompt.push(r.prompt.as_deref());
        self.rollout.push(r.rollout.as_deref());
        self.guard_refused.push(flags.refused);
        self.guard_triggered.push(flags.triggered);
        self.guard_spoiled.push(flags.spoiled);
        self.guard_verdicts.push(verdicts);
        self.priority.push(r.priority.as_deref());
        self.queue_ms
            .push(i64::try_from(r.queue_ms).unwrap_or(i64::MAX));
        self.preemptions.push(i64::from(r.preemptions));
    }
}

/// Inside `tx`: the records, with their guard flags and verdicts, and their content.
pub(crate) fn insert(
    tx: &mut Transaction<'_>,
    statements: &mut Statements,
    records: &[RequestRecord],
) -> Result<(), StoreError> {
    if records.is_empty() {
        return Ok(());
    }
    let insert_records = statements.prepare(tx, INSERT_RECORDS, || INSERT_RECORDS.to_owned())?;
    let mut c = Columns::default();
    for r in records {
        c.push(r);
    }
    tx.execute(
        &insert_records,
        &[
            &c.request_id,
            &c.started_at_ms,
            &c.endpoint,
            &c.tenant,
            &c.key_id,
            &c.requested_model,
            &c.model,
            &c.deployment,
            &c.attempts,
            &c.fallback_from,
            &c.stream,
            &c.status,
            &c.error_kind,
            &c.latency_ms,
            &c.ttft_ms,
            &c.prompt_tokens,
            &c.completion_tokens,
            &c.usage_counted,
            &c.cost_nanos,
            &c.route,
            &c.cache,
            &c.guards,
            &c.config_version,
            &c.baseline_cost_nanos,
            &c.cache_similarity,
            &c.prompt,
            &c.rollout,
            &c.guard_refused,
            &c.guard_triggered,
            &c.guard_spoiled,
            &c.guard_verdicts,
            &c.priority,
            &c.queue_ms,
            &c.preemptions,
        ],
    )?;
    let mut ids = Vec::new();
    let mut started = Vec::new();
    let mut bodies = Vec::new();
    for r in records {
        let Some(content) = &r.content else {
            continue;
        };
        ids.push(r.request_id.as_str());
        started.push(r.started_at_ms);
        bodies.push(content_json(r, content)?);
    }
    if !ids.is_empty() {
        let insert_content =
            statements.prepare(tx, INSERT_CONTENT, || INSERT_CONTENT.to_owned())?;
        tx.execute(&insert_content, &[&ids, &started, &bodies])?;
    }
    Ok(())
}
