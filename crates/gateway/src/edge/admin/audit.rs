//! The audit log and the verification of its hash chain.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::edge::access::*;
use crate::edge::state::AppState;
use crate::error::GatewayError;

#[derive(Serialize)]
pub(super) struct AuditView {
    entries: Vec<switchyard_rollout::AuditEntry>,
}

/// `GET /admin/v1/audit?after=SEQ&limit=N`: entries in order.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditQuery {
    #[serde(default = "default_limit")]
    limit: usize,
    #[serde(default)]
    after: u64,
    /// The newest `limit` entries, newest first, instead of `limit` after `after`.
    #[serde(default)]
    latest: bool,
}

pub(super) async fn audit_list(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    AdminQuery(query): AdminQuery<AuditQuery>,
) -> Reply<AuditView> {
    if query.latest && query.after != 0 {
        return Err(GatewayError::invalid(
            Some("after"),
            "give `after` (entries in order from a seq) or `latest` (the newest), not both",
        ));
    }
    let limit = query.limit.clamp(1, 10_000);
    let entries = admin_read(&app, &headers, move |store| {
        if query.latest {
            store.audit_latest(limit)
        } else {
            store.audit_entries(query.after, limit)
        }
    })
    .await?;
    Ok(Json(AuditView { entries }))
}

#[derive(Serialize)]
pub(super) struct VerifyView {
    ok: bool,
    checked: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
}

/// `GET /admin/v1/audit/verify`: walks the whole chain.
pub(super) async fn audit_verify(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Reply<VerifyView> {
    let result = admin_read(&app, &headers, move |store| store.verify_audit()).await?;
    Ok(Json(match result {
        Ok(checked) => VerifyView {
            ok: true,
            checked,
            error: None,
            seq: None,
        },
        Err(e) => VerifyView {
            ok: false,
            checked: 0,
            seq: Some(e.seq),
            error: Some(e.to_string()),
        },
    }))
}
