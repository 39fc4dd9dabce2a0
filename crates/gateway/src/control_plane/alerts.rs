//! What SLOs make happen: late negative feedback turning a counted answer bad
//! ([`dislike`]), and alert events acted on ([`act`]: logged, sent to the webhook, rollouts
//! paused or aborted on a page).

use std::sync::Arc;

use switchyard_slo::AlertEvent;

use super::rollouts;
use super::slos::Counted;
use super::state::ControlPlane;

/// The first negative feedback from `tenant` on `request_id` (point 4; the store said it is
/// the first): turns the request's quality bad in the SLOs and counts it in the quality
/// metrics.
pub async fn dislike(state: &ControlPlane, request_id: &str, tenant: &str) {
    let now = chrono::Utc::now().timestamp();
    let turned = match state.slos.dislike_recent(request_id, tenant, now) {
        Some(turned) => turned,
        None => {
            let store = state.store.clone();
            let id = request_id.to_owned();
            let found = crate::tasks::spawn_blocking(move || store.request(&id)).await;
            let record = match found {
                Ok(Ok(record)) => record,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "reading the request for its feedback failed");
                    return;
                }
                Err(_) => return,
            };
            let pipeline = state.running.pipeline.load();
            let stored = record.map(|r| {
                let route = r
                    .requested_model
                    .as_deref()
                    .and_then(|m| pipeline.route_alias(m));
                let outcomes = crate::data_plane::guards::stored_outcomes(r.guards.as_deref());
                Counted::of(&r, route, &outcomes)
            });
            state.slos.dislike_stored(request_id, tenant, stored, now)
        }
    };
    if let Some(c) = turned {
        let labels = state.running.pipeline.load().labels().clone();
        crate::metrics::quality_bad(&labels, &c.model, c.route.as_deref());
    }
}

/// What the gateway does with alert state changes (point 2): each is POSTed to
/// `[alerts].webhook` (one attempt, bounded by its timeout; a failure is logged), and a page
/// that starts firing pauses or aborts every rollout in force (`[alerts].on_page`), audited as
/// the actor `slo`.
pub async fn act(state: &Arc<ControlPlane>, events: &[AlertEvent], client: &reqwest::Client) {
    use switchyard_control::OnPage;
    let alerts = state.running.pipeline.load().config.alerts.clone();
    for e in events {
        match e.severity {
            switchyard_slo::Severity::Page => {
                tracing::error!(slo = %e.slo, rule = %e.rule, from = ?e.from, to = ?e.to, long_burn = e.long_burn, "SLO alert")
            }
            switchyard_slo::Severity::Ticket => {
                tracing::warn!(slo = %e.slo, rule = %e.rule, from = ?e.from, to = ?e.to, long_burn = e.long_burn, "SLO alert")
            }
        }
        if let Some(url) = &alerts.webhook {
            let sent = client
                .post(url)
                .timeout(alerts.timeout)
                .json(e)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status);
            if let Err(err) = sent {
                tracing::warn!(error = %err, slo = %e.slo, "the alert webhook failed");
            }
        }
        let fires = e.to == switchyard_slo::AlertState::Firing
            && e.severity == switchyard_slo::Severity::Page;
        if fires && alerts.on_page != OnPage::Nothing {
            let reason = format!(
                "SLO `{}` paged: {} burning {:.1}x over {} s",
                e.slo, e.rule, e.long_burn, e.long_secs
            );
            gate_rollouts(state, alerts.on_page, &reason).await;
        }
    }
}

/// Pauses or aborts every rollout that is running (or paused, for an abort).
async fn gate_rollouts(
    state: &Arc<ControlPlane>,
    on_page: switchyard_control::OnPage,
    reason: &str,
) {
    use switchyard_rollout::State;
    let _one = state.rolling.lock().await;
    let (control, reason) = (state.clone(), reason.to_owned());
    // The store's part off the async threads: read the rollouts, save each one gated.
    let gated = crate::tasks::spawn_blocking(move || {
        let active = control.store.rollouts(true)?;
        let now = chrono::Utc::now().timestamp_millis();
        let at = u64::try_from(now).unwrap_or(0);
        let mut gated = Vec::new();
        for stored in active {
            let mut r = stored.rollout;
            let t = match (on_page, r.state()) {
                (switchyard_control::OnPage::Pause, State::Running { .. }) => r.pause(at),
                (
                    switchyard_control::OnPage::Abort,
                    State::Running { .. } | State::Paused { .. },
                ) => r.abort(at, &reason),
                _ => continue,
            };
            let Ok(mut t) = t else { continue };
            if on_page == switchyard_control::OnPage::Pause {
                t.reason = format!("{} ({reason})", t.reason);
            }
            match rollouts::save(&*control.store, &r, &[t], "slo", now) {
                Ok(()) => gated.push(r),
                Err(e) => tracing::warn!(error = %e, rollout = r.id(), "gating the rollout failed"),
            }
        }
        control.changed()?;
        Ok::<_, switchyard_store::StoreError>(gated)
    })
    .await;
    match gated {
        Ok(Ok(gated)) => {
            for r in gated {
                rollouts::settle_config(state, &r).await;
            }
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "gating the rollouts failed"),
        Err(_) => tracing::warn!("gating the rollouts stopped (its task panicked)"),
    }
}
