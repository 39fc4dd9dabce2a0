//! Config versions: the one in force, apply, diff, history, rollback.

use std::sync::Arc;

use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::control_plane::versions::{self, ApplyError, Change};
use crate::edge::access::*;
use crate::edge::state::AppState;
use crate::error::{ErrorKind, GatewayError};

/// An apply or rollback failure, naming the body field it is about (`field`): the config
/// text that does not validate, or the version that is not there.
fn apply_error(e: ApplyError, field: &str) -> GatewayError {
    let about_field = matches!(
        &e,
        ApplyError::Invalid(_)
            | ApplyError::NeedsRestart { .. }
            | ApplyError::Build(_)
            | ApplyError::NoSuchVersion(_)
            | ApplyError::Store(switchyard_store::StoreError::AmbiguousPrefix { .. })
    );
    let e = GatewayError::from(e);
    if about_field {
        e.with_param(field)
    } else {
        e
    }
}

impl From<ApplyError> for GatewayError {
    fn from(e: ApplyError) -> Self {
        match e {
            ApplyError::Invalid(_) | ApplyError::NeedsRestart { .. } | ApplyError::Build(_) => {
                GatewayError::new(ErrorKind::InvalidRequest, "invalid_config", e.to_string())
            }
            ApplyError::NoSuchVersion(_) => {
                GatewayError::new(ErrorKind::NotFound, "no_such_version", e.to_string())
            }
            ApplyError::RolloutTarget { .. } => {
                GatewayError::new(ErrorKind::InvalidRequest, "rollout_in_force", e.to_string())
            }
            ApplyError::NothingToRollBack => GatewayError::new(
                ErrorKind::InvalidRequest,
                "nothing_to_roll_back",
                e.to_string(),
            ),
            ApplyError::Store(s) => store_error(s),
            ApplyError::Interrupted => {
                GatewayError::new(ErrorKind::Internal, "internal_error", e.to_string())
            }
        }
    }
}

#[derive(Serialize)]
pub(super) struct VersionView {
    id: String,
    parent: Option<String>,
    author: String,
    message: String,
    created_at_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<String>,
}

impl From<switchyard_store::ConfigVersion> for VersionView {
    fn from(v: switchyard_store::ConfigVersion) -> Self {
        VersionView {
            id: v.id,
            parent: v.parent,
            author: v.author,
            message: v.message,
            created_at_ms: v.created_at_ms,
            source: Some(v.source),
        }
    }
}

/// `GET /admin/v1/config`: the running version with its text.
pub(super) async fn current_config(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Reply<VersionView> {
    let running = app.control.running.pipeline.load_full();
    crate::edge::access::authenticate_read(&app, &headers).await?;
    let store = app.control.store.clone();
    let id = running.version.clone();
    let version = blocking(move || store.config_version(&id)).await?;
    version
        .map(|v| Json(VersionView::from(v)))
        .ok_or_else(|| internal("the running version is not in the store"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ApplyBody {
    /// The whole config text (TOML).
    source: String,
    /// Store the version without applying it (the candidate of a config rollout).
    #[serde(default)]
    stage: bool,
    #[serde(default)]
    message: String,
    #[serde(default)]
    reason: String,
}

/// `POST /admin/v1/config`: validates, builds and applies a config text.
pub(super) async fn apply_config(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Reply<versions::Applied> {
    let body: ApplyBody = admit(&app, &headers, body)?;
    let who = actor(&headers);
    let change = Change {
        actor: who.clone(),
        message: body.message.clone(),
        action: "config.apply",
        reason: body.reason.clone(),
    };
    if body.stage {
        let (version, _) = versions::stage(&app.control, &body.source, &change)
            .await
            .map_err(|e| apply_error(e, "source"))?;
        return Ok(Json(versions::Applied {
            version,
            parent: Some(app.control.running.pipeline.load().version.clone()),
            changed: false,
            staged: true,
            diff: String::new(),
            audit_seq: None,
        }));
    }
    let applied = versions::apply(&app.control, &body.source, &change)
        .await
        .map_err(|e| apply_error(e, "source"))?;
    Ok(Json(applied))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DiffBody {
    source: String,
}

#[derive(Serialize)]
pub(super) struct DiffView {
    running: String,
    version: String,
    diff: String,
    /// Every problem the text has, as `file:line: field: message` lines; empty when valid.
    problems: Vec<String>,
}

/// `POST /admin/v1/config/diff`: what applying a text would change, and whether it is valid.
pub(super) async fn diff_config(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Reply<DiffView> {
    let body: DiffBody = admit(&app, &headers, body)?;
    let running = app.control.running.pipeline.load_full().version.clone();
    let store = app.control.store.clone();
    let id = running.clone();
    let old = blocking(move || store.config_version(&id)).await?;
    let version = versions::version_id(&body.source);
    let problems = match app.control.launch.config_of(
        &body.source,
        &format!(
            "config version {}",
            crate::data_plane::running::short_version(&version)
        ),
    ) {
        Ok(_) => Vec::new(),
        Err(switchyard_control::ConfigError::Invalid(d)) => {
            d.iter().map(ToString::to_string).collect()
        }
        Err(e) => vec![e.to_string()],
    };
    Ok(Json(DiffView {
        running,
        version,
        diff: switchyard_rollout::diff_lines(
            old.as_ref().map_or("", |v| v.source.as_str()),
            &body.source,
        ),
        problems,
    }))
}

#[derive(Deserialize)]
pub(super) struct Paging {
    #[serde(default = "default_limit")]
    limit: usize,
}

#[derive(Serialize)]
pub(super) struct HistoryView {
    running: String,
    versions: Vec<switchyard_store::ConfigVersionSummary>,
    applied: Vec<switchyard_store::AppliedRow>,
}

/// `GET /admin/v1/config/history?limit=N`: stored versions and every apply, newest first.
pub(super) async fn config_history(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    AdminQuery(paging): AdminQuery<Paging>,
) -> Reply<HistoryView> {
    let running = app.control.running.pipeline.load_full();
    crate::edge::access::authenticate_read(&app, &headers).await?;
    let store = app.control.store.clone();
    let limit = paging.limit.clamp(1, 1000);
    let (versions, applied) =
        blocking(move || Ok((store.config_versions(limit)?, store.applied_history(limit)?)))
            .await?;
    Ok(Json(HistoryView {
        running: running.version.clone(),
        versions,
        applied,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RollbackBody {
    /// A version id or a unique prefix; default: the version applied before the running one.
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    reason: String,
}

/// `POST /admin/v1/config/rollback`.
pub(super) async fn rollback_config(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Reply<versions::Applied> {
    let body: RollbackBody = admit(&app, &headers, body)?;
    let who = actor(&headers);
    Ok(Json(
        versions::rollback(&app.control, body.to.as_deref(), &who, &body.reason)
            .await
            .map_err(|e| apply_error(e, "to"))?,
    ))
}
