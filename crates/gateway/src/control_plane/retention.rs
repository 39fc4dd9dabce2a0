//! Retention: stored prompts and answers (`[telemetry] content`) are deleted once they are
//! older than `content_retention`, and the Responses API's stored responses once they are
//! older than `[responses] retention_days`.

use std::sync::Arc;

use switchyard_store::StoreError;

use super::state::ControlPlane;

/// How often stored content past its retention is deleted.
pub const PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// Deletes stored content older than the running config's retention; returns how many
/// requests lost theirs. Blocks on the store: call it off the async threads.
pub fn purge_once(state: &ControlPlane, now_ms: i64) -> Result<u64, StoreError> {
    let retention = state
        .running
        .pipeline
        .load()
        .config
        .telemetry
        .content_retention;
    let keep_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    state.store.purge_content(now_ms.saturating_sub(keep_ms))
}

/// Deletes stored responses older than the running config's retention; returns how many.
/// Blocks on the store: call it off the async threads.
pub fn purge_responses_once(state: &ControlPlane, now_ms: i64) -> Result<u64, StoreError> {
    let retention = state.running.pipeline.load().config.responses.retention;
    let keep_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    state.store.purge_responses(now_ms.saturating_sub(keep_ms))
}

/// Runs [`purge_once`] and [`purge_responses_once`] at start and every [`PURGE_EVERY`].
pub fn purge_loop(state: Arc<ControlPlane>) -> tokio::task::JoinHandle<()> {
    #[expect(
        clippy::disallowed_methods,
        reason = "aborted at shutdown; each chunk is one transaction"
    )]
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PURGE_EVERY);
        loop {
            tick.tick().await;
            let s = state.clone();
            let purged = tokio::task::spawn_blocking(move || {
                let now = chrono::Utc::now().timestamp_millis();
                match purge_responses_once(&s, now) {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(responses = n, "deleted stored responses past their retention"),
                    Err(e) => tracing::warn!(error = %e, "deleting old stored responses failed; will retry"),
                }
                purge_once(&s, now)
            })
            .await;
            match purged {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => {
                    tracing::info!(requests = n, "deleted request content past its retention")
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "deleting old request content failed; will retry")
                }
                Err(_) => tracing::warn!("the request content purge's task failed; will retry"),
            }
        }
    })
}
