//! The Batch API's worker: runs the lines of every open batch through the online pipeline,
//! at batch priority, shared by the replicas of one store.
//!
//! 1. Every tick (and whenever a line of its own ends) the worker reads the open batches. A
//!    `validating` batch (its file already checked at creation) starts: `in_progress`.
//! 2. Of an `in_progress` batch it claims as many lines as it has free slots
//!    (`[batch] concurrency`) with a lease of `[batch] lease_secs` in this replica's name
//!    (`switchyard_store::batches`, 1.), renewed every third of a lease while it lives (a line
//!    may wait for capacity at batch priority for hours). Another replica claims other lines;
//!    a line whose replica died is claimed again once its lease expired. So a line runs at least once: one
//!    in flight at a crash may run twice.
//! 3. A line runs in this process through `Running::chat_as` (or `Pipeline::embed_as`),
//!    the entry points of the HTTP handlers, as the key that created the batch, with
//!    `x-switchyard-priority: batch`: keys, budgets, guards, routing, cache and the record as
//!    any request, its cost at the batch price (`RecordGuard::set_batch_price`).
//! 4. A retryable failure (429, 5xx, overloaded) goes back to the queue after a backoff
//!    doubling from `[batch] retry_backoff_ms`, up to `[batch] max_attempts`; then, or at
//!    once for any other failure, the line is failed with the error the client would have
//!    had. Its end is recorded only if this replica still holds it.
//! 5. Past `expires_at` (the completion window) the lines not started, and those whose
//!    lease ran out, are expired. When no line is pending or running the batch is finalised:
//!    `finalizing`, then its output file (the answered lines, by line) and error file (failed
//!    and expired lines) are stored and it ends `completed` or `expired`; a cancelled batch
//!    ends `cancelled` with the lines done before the cancel.
//! 6. A clean shutdown gives this replica's lines back (`release_lines`): a restart, or
//!    another replica, takes them at once.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use bytes::Bytes;
use switchyard_api::batch::{BatchStatus, OutputError, OutputLine, OutputResponse};
use switchyard_control::BatchSpec;
use switchyard_store::batches::{
    ClaimedLine, LineResult, ProducedFile, StoredBatch, StoredFile, LINE_DONE, LINE_EXPIRED,
    LINE_FAILED,
};
use switchyard_store::{Store, StoreError};
use tokio::task::JoinSet;

use super::{new_id, now_ms, retention_secs, OUTPUT_PURPOSE};
use crate::control_plane::state::ControlPlane;
use crate::data_plane::pipeline::ChatOutcome;
use crate::error::GatewayError;

/// How often the worker looks for work when none of its lines ended.
const TICK: Duration = Duration::from_millis(250);
/// Open batches looked at per tick (the oldest first).
const OPEN_BATCHES: usize = 100;
/// How often expired files and old batches are purged.
const PURGE_EVERY: Duration = Duration::from_secs(600);

/// This replica's name as a claimant of lines: the fleet's name for it, else one of its own.
pub fn owner_name(control: &ControlPlane) -> String {
    control
        .fleet
        .as_ref()
        .map_or_else(|| new_id("replica-"), |f| f.replica.clone())
}

/// Starts the worker (1. to 5. above). Aborted at shutdown, which drops the lines in flight
/// (their records say 499) and gives them back ([`release`]).
pub fn start(control: &Arc<ControlPlane>, owner: String) -> tokio::task::JoinHandle<()> {
    let control = control.clone();
    #[expect(
        clippy::disallowed_methods,
        reason = "aborted at shutdown, which gives this replica's lines back"
    )]
    tokio::spawn(async move {
        let mut running: JoinSet<()> = JoinSet::new();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut purged = tokio::time::Instant::now();
        let mut renewed = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                Some(_) = running.join_next() => {}
            }
            let spec = control.running.pipeline.load().config.batch;
            if purged.elapsed() >= PURGE_EVERY {
                purged = tokio::time::Instant::now();
                purge(&control, spec).await;
            }
            if renewed.elapsed() >= spec.lease / 3 {
                renewed = tokio::time::Instant::now();
                renew(&control, &owner, spec).await;
            }
            if let Err(e) = step(&control, &owner, spec, &mut running).await {
                tracing::warn!(error = %e, "the batch worker's step failed; will retry");
            }
        }
    })
}

/// Gives the lines this replica holds back (6. above). Blocks on the store.
pub fn release(store: &dyn Store, owner: &str) {
    match store.release_lines(owner) {
        Ok(0) => {}
        Ok(n) => tracing::info!(lines = n, "gave this replica's batch lines back"),
        Err(e) => {
            tracing::warn!(error = %e, "cannot give this replica's batch lines back; they are taken again when their lease expires")
        }
    }
}

/// Runs `f` on the store off the async threads.
async fn blocking<T: Send + 'static>(
    control: &Arc<ControlPlane>,
    f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let store = control.store.clone();
    crate::tasks::spawn_blocking(move || f(&*store))
        .await
        .unwrap_or(Err(StoreError::Interrupted))
}

/// The backlog an autoscaler of batch work reads: the lines of the open batches not ended
/// yet, and the lines this replica runs.
fn publish_backlog(open: &[StoredBatch], running: usize) {
    use crate::metrics as m;
    let backlog: u64 = open
        .iter()
        .filter(|b| {
            matches!(
                BatchStatus::parse(&b.status),
                Some(BatchStatus::Validating | BatchStatus::InProgress)
            )
        })
        .map(|b| b.total.saturating_sub(b.completed + b.failed))
        .sum();
    m::gauge(m::BATCH_BACKLOG, &[]).set(backlog as f64);
    m::gauge(m::BATCH_RUNNING, &[]).set(running as f64);
}

/// Extends the lease of every line this replica holds (2. above): a line waiting in a
/// deployment's queue at batch priority can wait far longer than one lease.
async fn renew(control: &Arc<ControlPlane>, owner: &str, spec: BatchSpec) {
    let until = now_ms().saturating_add(i64::try_from(spec.lease.as_millis()).unwrap_or(i64::MAX));
    let owner = owner.to_owned();
    if let Err(e) = blocking(control, move |s| s.renew_lines(&owner, until)).await {
        tracing::warn!(error = %e, "renewing this replica's batch leases failed; will retry");
    }
}

async fn purge(control: &Arc<ControlPlane>, spec: BatchSpec) {
    let now = now_ms();
    let before = now.saturating_sub(i64::try_from(spec.retention.as_millis()).unwrap_or(0));
    match blocking(control, move |s| s.purge_batches(now / 1000, before)).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(rows = n, "purged expired batch files and old batches"),
        Err(e) => tracing::warn!(error = %e, "purging batch files failed; will retry"),
    }
}

/// One look at every open batch (1., 2. and 5. above).
async fn step(
    control: &Arc<ControlPlane>,
    owner: &str,
    spec: BatchSpec,
    running: &mut JoinSet<()>,
) -> Result<(), StoreError> {
    let open = blocking(control, |s| s.open_batches(OPEN_BATCHES)).await?;
    publish_backlog(&open, running.len());
    for batch in open {
        let now = now_ms();
        let id = batch.id.clone();
        match BatchStatus::parse(&batch.status) {
            Some(BatchStatus::Validating) => {
                blocking(control, move |s| s.start_batch(&id, now / 1000)).await?;
            }
            Some(BatchStatus::InProgress) => {
                if now / 1000 >= batch.expires_at {
                    let id = id.clone();
                    blocking(control, move |s| s.close_lines(&id, now)).await?;
                }
                let free = spec.concurrency.saturating_sub(running.len());
                let (claim_id, owner_name) = (id.clone(), owner.to_owned());
                let lease = i64::try_from(spec.lease.as_millis()).unwrap_or(i64::MAX);
                let claimed = if free > 0 {
                    blocking(control, move |s| {
                        s.claim_lines(&claim_id, &owner_name, now, lease, free)
                    })
                    .await?
                } else {
                    Vec::new()
                };
                // Nothing left to claim: finalised once no line is open (here or elsewhere).
                if claimed.is_empty() {
                    let moved =
                        blocking(control, move |s| s.begin_finalizing(&id, now / 1000)).await?;
                    if moved {
                        finalize(control, &batch, BatchStatus::Finalizing).await?;
                    }
                }
                let batch = Arc::new(batch);
                for line in claimed {
                    let (control, batch, owner) =
                        (control.clone(), batch.clone(), owner.to_owned());
                    running
                        .spawn(async move { run_line(&control, &batch, line, &owner, spec).await });
                }
            }
            Some(BatchStatus::Finalizing) => {
                finalize(control, &batch, BatchStatus::Finalizing).await?;
            }
            Some(BatchStatus::Cancelling) => {
                // Lines put back since the cancel (a retry, a shutdown) or abandoned.
                let open_lines = blocking(control, move |s| {
                    s.close_lines(&id, now)?;
                    s.open_lines(&id)
                })
                .await?;
                if open_lines == 0 {
                    finalize(control, &batch, BatchStatus::Cancelling).await?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Stores a batch's output and error files and ends it (5. above), if its status is still
/// `from`; another replica finalising at once finds it ended.
async fn finalize(
    control: &Arc<ControlPlane>,
    batch: &StoredBatch,
    from: BatchStatus,
) -> Result<(), StoreError> {
    let id = batch.id.clone();
    let lines = blocking(control, move |s| s.line_results(&id)).await?;
    let now = now_ms();
    let expires_at = Some(now / 1000 + retention_secs(control));
    let file = |content: Vec<u8>, name: &str| {
        (!content.is_empty()).then(|| ProducedFile {
            file: StoredFile {
                id: new_id("file-"),
                tenant: batch.tenant.clone(),
                filename: format!("{}_{name}.jsonl", batch.id),
                purpose: OUTPUT_PURPOSE.to_owned(),
                bytes: content.len() as u64,
                created_ms: now,
                expires_at,
            },
            content,
        })
    };
    let (output, errors, expired) = compose(&lines);
    let output = file(output, "output");
    let errors = file(errors, "error");
    let status = match from {
        BatchStatus::Cancelling => BatchStatus::Cancelled,
        _ if expired => BatchStatus::Expired,
        _ => BatchStatus::Completed,
    };
    let id = batch.id.clone();
    let ended = blocking(control, move |s| {
        s.finish_batch(
            &id,
            from.as_str(),
            status.as_str(),
            now / 1000,
            output.as_ref(),
            errors.as_ref(),
        )
    })
    .await?;
    if ended {
        tracing::info!(batch = %batch.id, status = status.as_str(), "batch ended");
    }
    Ok(())
}

/// The output file (answered lines) and the error file (failed and expired lines), by line,
/// and whether any line expired.
fn compose(lines: &[LineResult]) -> (Vec<u8>, Vec<u8>, bool) {
    let (mut output, mut errors, mut expired) = (Vec::new(), Vec::new(), false);
    for line in lines {
        let (to, text) = match (line.status.as_str(), &line.result) {
            (LINE_DONE, Some(result)) => (&mut output, result.clone()),
            (LINE_FAILED, Some(result)) => (&mut errors, result.clone()),
            (LINE_EXPIRED, _) => {
                expired = true;
                let out = OutputLine {
                    id: new_id("batch_req_"),
                    custom_id: line.custom_id.clone(),
                    response: None,
                    error: Some(OutputError {
                        code: "batch_expired".to_owned(),
                        message: "This request could not be executed before the completion window expired.".to_owned(),
                    }),
                };
                (&mut errors, serde_json::to_string(&out).unwrap_or_default())
            }
            _ => continue,
        };
        to.extend_from_slice(text.as_bytes());
        to.push(b'\n');
    }
    (output, errors, expired)
}

/// Runs one claimed line and records its end (3. and 4. above).
async fn run_line(
    control: &Arc<ControlPlane>,
    batch: &StoredBatch,
    line: ClaimedLine,
    owner: &str,
    spec: BatchSpec,
) {
    // Time-ordered, as the edge's request ids (`fresh_id`): records index it.
    let request_id = uuid::Uuid::now_v7().to_string();
    let outcome = answer(control, batch, &line, &request_id, spec).await;
    let (failed, status, body) = match outcome {
        Ok(body) => (false, 200, body),
        Err(e) if e.retryable && line.attempts < spec.max_attempts => {
            let doublings = line.attempts.saturating_sub(1).min(16);
            let wait = spec.retry_backoff.saturating_mul(1 << doublings);
            let wait = e.retry_after.map_or(wait, |after| after.max(wait));
            let not_before =
                now_ms().saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX));
            let (id, n, owner) = (batch.id.clone(), line.line, owner.to_owned());
            if let Err(e) =
                blocking(control, move |s| s.retry_line(&id, n, &owner, not_before)).await
            {
                tracing::warn!(error = %e, "cannot put a batch line back; it is taken again when its lease expires");
            }
            return;
        }
        Err(e) => (
            true,
            e.status().as_u16(),
            serde_json::to_value(e.body()).unwrap_or_default(),
        ),
    };
    let out = OutputLine {
        id: new_id("batch_req_"),
        custom_id: line.custom_id.clone(),
        response: Some(OutputResponse {
            status_code: status,
            request_id,
            body,
        }),
        error: None,
    };
    let text = serde_json::to_string(&out).unwrap_or_default();
    let (id, n, owner) = (batch.id.clone(), line.line, owner.to_owned());
    match blocking(control, move |s| {
        s.finish_line(&id, n, &owner, failed, &text)
    })
    .await
    {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(batch = %batch.id, line = line.line, "a batch line's lease was taken over; its end is not recorded here")
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot record a batch line's end; it runs again when its lease expires")
        }
    }
}

/// A line's answer through the pipeline, as the HTTP handlers get it; the record is finished
/// here as theirs are.
async fn answer(
    control: &Arc<ControlPlane>,
    batch: &StoredBatch,
    line: &ClaimedLine,
    request_id: &str,
    spec: BatchSpec,
) -> Result<serde_json::Value, GatewayError> {
    let key_hash = key_hash(&batch.key_hash);
    let mut headers = HeaderMap::new();
    headers.insert(
        HeaderName::from_static(crate::data_plane::admission::PRIORITY),
        HeaderValue::from_static(switchyard_admission::Class::Batch.as_str()),
    );
    let body = Bytes::from(line.body.clone());
    let running = &control.running;
    let chat = batch.endpoint == "/v1/chat/completions";
    let endpoint = if chat { "chat" } else { "embeddings" };
    let (pipeline, mut record) = running.begin(
        control.telemetry.clone(),
        request_id.to_owned(),
        endpoint,
        &headers,
    );
    record.set_batch_price(spec);
    let answered = match key_hash {
        None => Err(GatewayError::new(
            crate::error::ErrorKind::Unauthorized,
            "invalid_api_key",
            "the batch's key is not valid",
        )),
        Some(_) if chat && asks_for_stream(&line.body) => Err(GatewayError::invalid(
            Some("stream"),
            "a batch request cannot stream; remove `stream`",
        )),
        Some(hash) if chat => {
            match running
                .chat_as(pipeline, &mut record, Some(&hash), &headers, &body)
                .await
            {
                Ok(ChatOutcome::Complete(response)) => Ok(serde_json::to_value(response)),
                Ok(ChatOutcome::Stream(_)) => Err(GatewayError::invalid(
                    Some("stream"),
                    "a batch request cannot stream; remove `stream`",
                )),
                Err(e) => Err(e),
            }
        }
        Some(hash) => pipeline
            .embed_as(&mut record, Some(&hash), &headers, &body)
            .await
            .map(serde_json::to_value),
    };
    match answered {
        Ok(Ok(value)) => {
            record.finish(200, None);
            Ok(value)
        }
        Ok(Err(e)) => {
            let e = GatewayError::new(
                crate::error::ErrorKind::Internal,
                "internal_error",
                format!("cannot write the answer: {e}"),
            );
            record.finish(e.status().as_u16(), Some(e.label()));
            Err(e)
        }
        Err(e) => {
            record.finish(e.status().as_u16(), Some(e.label()));
            Err(e)
        }
    }
}

fn asks_for_stream(body: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("stream").and_then(serde_json::Value::as_bool))
        .unwrap_or(false)
}

fn key_hash(hex_text: &str) -> Option<[u8; 32]> {
    let bytes = hex::decode(hex_text).ok()?;
    <[u8; 32]>::try_from(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(line: u64, status: &str, result: Option<&str>) -> LineResult {
        LineResult {
            line,
            custom_id: format!("c{line}"),
            status: status.to_owned(),
            result: result.map(str::to_owned),
        }
    }

    #[test]
    fn files_take_their_lines_in_order() {
        let (output, errors, expired) = compose(&[
            result(1, LINE_DONE, Some("a")),
            result(2, LINE_FAILED, Some("b")),
            result(3, "cancelled", None),
            result(4, LINE_DONE, Some("c")),
        ]);
        assert_eq!(output, b"a\nc\n");
        assert_eq!(errors, b"b\n");
        assert!(!expired);
    }

    #[test]
    fn expired_lines_say_so_in_the_error_file() {
        let (output, errors, expired) = compose(&[result(1, LINE_EXPIRED, None)]);
        assert!(output.is_empty() && expired);
        let line: OutputLine = serde_json::from_slice(errors.trim_ascii_end()).unwrap();
        assert_eq!(line.custom_id, "c1");
        assert!(line.id.starts_with("batch_req_"));
        assert_eq!(line.response, None);
        assert_eq!(line.error.unwrap().code, "batch_expired");
    }

    #[test]
    fn stream_requests_are_spotted() {
        assert!(asks_for_stream(r#"{"stream":true}"#));
        assert!(!asks_for_stream(r#"{"stream":false}"#));
        assert!(!asks_for_stream("{}"));
    }
}
