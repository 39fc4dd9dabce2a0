//! The admin API under `/admin/v1/`: config versions (apply, diff, history, rollback), feature
//! flags, and the audit log. Only the admin key is accepted here, and the admin key nowhere else.
//!
//! Every handler authenticates first, then does its work through [`crate::versions`] or the
//! store on a blocking thread; errors are OpenAI-shaped like the rest of the gateway, so one
//! client handles both. Who acted is the `x-switchyard-actor` header (a person or a CI job),
//! else `admin`.

use std::sync::Arc;

use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::{ErrorKind, GatewayError};
use crate::server::AppState;
use crate::versions::{self, ApplyError, Change};

pub const ACTOR: &str = "x-switchyard-actor";

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/admin/v1/config", get(current_config).post(apply_config))
        .route("/admin/v1/config/diff", post(diff_config))
        .route("/admin/v1/config/history", get(config_history))
        .route("/admin/v1/config/rollback", post(rollback_config))
        .route("/admin/v1/audit", get(audit_list))
        .route("/admin/v1/audit/verify", get(audit_verify))
        .route("/admin/v1/flags", get(flag_list))
        .route("/admin/v1/flags/{key}", put(flag_set).delete(flag_delete))
}

/// Authenticates the admin, then reads the body as JSON.
fn admit<T: serde::de::DeserializeOwned>(
    app: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, GatewayError> {
    app.pipeline.load().authenticate_admin(headers)?;
    let body =
        body.map_err(|e| GatewayError::invalid(None, format!("cannot read the body: {e}")))?;
    crate::pipeline::parse_json(&body)
}

fn actor(headers: &HeaderMap) -> String {
    headers
        .get(ACTOR)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| a.chars().take(128).collect())
        .unwrap_or_else(|| "admin".to_owned())
}

/// Runs store work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, switchyard_store::StoreError> + Send + 'static,
) -> Result<T, GatewayError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| internal("the storage task failed"))?
        .map_err(store_error)
}

fn internal(message: &str) -> GatewayError {
    GatewayError::new(ErrorKind::Internal, "internal_error", message.to_owned())
}

fn store_error(e: switchyard_store::StoreError) -> GatewayError {
    tracing::error!(error = %e, "admin storage failed");
    GatewayError::new(
        ErrorKind::Internal,
        "store_unavailable",
        format!("storage failed: {e}"),
    )
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
            ApplyError::NothingToRollBack => GatewayError::new(
                ErrorKind::InvalidRequest,
                "nothing_to_roll_back",
                e.to_string(),
            ),
            ApplyError::Store(s) => store_error(s),
        }
    }
}

/// What every handler returns: JSON, or an OpenAI-shaped error.
type Reply<T> = Result<Json<T>, GatewayError>;

#[derive(Serialize)]
struct VersionView {
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
async fn current_config(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Reply<VersionView> {
    let running = app.pipeline.load_full();
    running.authenticate_admin(&headers)?;
    let store = app.store.clone();
    let id = running.version.clone();
    let version = blocking(move || store.config_version(&id)).await?;
    version
        .map(|v| Json(VersionView::from(v)))
        .ok_or_else(|| internal("the running version is not in the store"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApplyBody {
    /// The whole config text (TOML).
    source: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    reason: String,
}

/// `POST /admin/v1/config`: validates, builds and applies a config text.
async fn apply_config(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Reply<versions::Applied> {
    let body: ApplyBody = admit(&app, &headers, body)?;
    let who = actor(&headers);
    let applied = versions::apply(
        &app,
        &body.source,
        &Change {
            actor: &who,
            message: &body.message,
            action: "config.apply",
            reason: &body.reason,
        },
    )
    .await?;
    Ok(Json(applied))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DiffBody {
    source: String,
}

#[derive(Serialize)]
struct DiffView {
    running: String,
    version: String,
    diff: String,
    /// Every problem the text has, as `file:line: field: message` lines; empty when valid.
    problems: Vec<String>,
}

/// `POST /admin/v1/config/diff`: what applying a text would change, and whether it is valid.
async fn diff_config(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Reply<DiffView> {
    let body: DiffBody = admit(&app, &headers, body)?;
    let running = app.pipeline.load_full().version.clone();
    let store = app.store.clone();
    let id = running.clone();
    let old = blocking(move || store.config_version(&id)).await?;
    let version = versions::version_id(&body.source);
    let problems = match app.launch.config_of(
        &body.source,
        &format!("config version {}", versions::short(&version)),
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
struct Paging {
    #[serde(default = "default_limit")]
    limit: usize,
    #[serde(default)]
    after: u64,
}

fn default_limit() -> usize {
    50
}

#[derive(Serialize)]
struct HistoryView {
    running: String,
    versions: Vec<switchyard_store::ConfigVersionSummary>,
    applied: Vec<switchyard_store::AppliedRow>,
}

/// `GET /admin/v1/config/history?limit=N`: stored versions and every apply, newest first.
async fn config_history(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(paging): Query<Paging>,
) -> Reply<HistoryView> {
    let running = app.pipeline.load_full();
    running.authenticate_admin(&headers)?;
    let store = app.store.clone();
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
struct RollbackBody {
    /// A version id or a unique prefix; default: the version applied before the running one.
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    reason: String,
}

/// `POST /admin/v1/config/rollback`.
async fn rollback_config(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Reply<versions::Applied> {
    let body: RollbackBody = admit(&app, &headers, body)?;
    let who = actor(&headers);
    Ok(Json(
        versions::rollback(&app, body.to.as_deref(), &who, &body.reason).await?,
    ))
}

#[derive(Serialize)]
struct AuditView {
    entries: Vec<switchyard_rollout::AuditEntry>,
}

/// `GET /admin/v1/audit?after=SEQ&limit=N`: entries in order.
async fn audit_list(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(paging): Query<Paging>,
) -> Reply<AuditView> {
    app.pipeline.load().authenticate_admin(&headers)?;
    let store = app.store.clone();
    let limit = paging.limit.clamp(1, 10_000);
    let entries = blocking(move || store.audit_entries(paging.after, limit)).await?;
    Ok(Json(AuditView { entries }))
}

#[derive(Serialize)]
struct VerifyView {
    ok: bool,
    checked: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
}

/// `GET /admin/v1/audit/verify`: walks the whole chain.
async fn audit_verify(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Reply<VerifyView> {
    app.pipeline.load().authenticate_admin(&headers)?;
    let store = app.store.clone();
    let result = blocking(move || store.verify_audit()).await?;
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

#[derive(Serialize)]
struct FlagsView {
    flags: Vec<switchyard_rollout::Flag>,
}

/// `GET /admin/v1/flags`.
async fn flag_list(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Reply<FlagsView> {
    app.pipeline.load().authenticate_admin(&headers)?;
    let store = app.store.clone();
    let flags = blocking(move || store.flags()).await?;
    Ok(Json(FlagsView { flags }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FlagBody {
    kind: switchyard_rollout::FlagKind,
    #[serde(default = "enabled")]
    enabled: bool,
    #[serde(default)]
    reason: String,
}

fn enabled() -> bool {
    true
}

#[derive(Serialize)]
struct FlagChange {
    flag: Option<switchyard_rollout::Flag>,
    previous: Option<switchyard_rollout::Flag>,
    audit_seq: u64,
}

/// Appends a change's audit entry, then makes this replica read the flags again at once.
async fn audited(
    app: &Arc<AppState>,
    event: switchyard_rollout::AuditEvent,
) -> Result<u64, GatewayError> {
    let store = app.store.clone();
    let entry = blocking(move || store.append_audit(event)).await?;
    let state = app.clone();
    blocking(move || state.refresh_control()).await?;
    Ok(entry.seq)
}

fn flag_json(flag: Option<&switchyard_rollout::Flag>) -> String {
    flag.and_then(|f| serde_json::to_string_pretty(f).ok())
        .unwrap_or_default()
}

fn flag_event(
    headers: &HeaderMap,
    action: &str,
    key: &str,
    reason: &str,
    before: Option<&switchyard_rollout::Flag>,
    after: Option<&switchyard_rollout::Flag>,
) -> switchyard_rollout::AuditEvent {
    switchyard_rollout::AuditEvent {
        at_ms: u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0),
        actor: actor(headers),
        action: action.to_owned(),
        target: format!("flag:{key}"),
        reason: reason.to_owned(),
        diff: switchyard_rollout::diff_lines(&flag_json(before), &flag_json(after)),
    }
}

/// `PUT /admin/v1/flags/KEY`: sets a flag; the next request on every replica sees it.
async fn flag_set(
    State(app): State<Arc<AppState>>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Reply<FlagChange> {
    let body: FlagBody = admit(&app, &headers, body)?;
    let flag = switchyard_rollout::Flag {
        key: key.clone(),
        kind: body.kind,
        enabled: body.enabled,
    };
    let pipeline = app.pipeline.load_full();
    let routes: Vec<&str> = pipeline.config.routes.keys().map(String::as_str).collect();
    let policies: Vec<&str> = pipeline
        .config
        .guard_policies
        .keys()
        .map(String::as_str)
        .collect();
    let problems = crate::flags::problems(&flag, &routes, &policies);
    if !problems.is_empty() {
        return Err(GatewayError::invalid(
            Some("kind"),
            format!("flag `{key}`: {}", problems.join("; ")),
        ));
    }
    let store = app.store.clone();
    let stored = flag.clone();
    let now = chrono::Utc::now().timestamp_millis();
    let previous = blocking(move || store.put_flag(&stored, now)).await?;
    let event = flag_event(
        &headers,
        "flag.set",
        &key,
        &body.reason,
        previous.as_ref(),
        Some(&flag),
    );
    let audit_seq = audited(&app, event).await?;
    Ok(Json(FlagChange {
        flag: Some(flag),
        previous,
        audit_seq,
    }))
}

/// `DELETE /admin/v1/flags/KEY`: the stages behave as if it was never set.
async fn flag_delete(
    State(app): State<Arc<AppState>>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Reply<FlagChange> {
    app.pipeline.load().authenticate_admin(&headers)?;
    let store = app.store.clone();
    let k = key.clone();
    let previous = blocking(move || store.delete_flag(&k)).await?;
    let Some(previous) = previous else {
        return Err(GatewayError::new(
            ErrorKind::NotFound,
            "no_such_flag",
            format!("no flag `{key}` is set"),
        ));
    };
    let event = flag_event(&headers, "flag.delete", &key, "", Some(&previous), None);
    let audit_seq = audited(&app, event).await?;
    Ok(Json(FlagChange {
        flag: None,
        previous: Some(previous),
        audit_seq,
    }))
}
