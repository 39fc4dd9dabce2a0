//! The admin API under `/admin/v1/`: config versions (apply, diff, history, rollback), feature
//! flags, prompt versions and labels, rollouts, and the audit log. Every change and its audit entry
//! commit in one transaction. Only the admin key is accepted here, and the admin key nowhere else;
//! reads (`GET`) also accept a dashboard session (`crate::dashboard`).
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
        .route("/admin/v1/prompts", get(prompt_list).post(prompt_push))
        .route("/admin/v1/prompts/{name}", get(prompt_show))
        .route(
            "/admin/v1/prompts/{name}/versions/{version}",
            get(prompt_version),
        )
        .route("/admin/v1/prompts/{name}/labels/{label}", put(prompt_label))
        .route("/admin/v1/rollouts", get(rollout_list).post(rollout_start))
        .route("/admin/v1/rollouts/{id}", get(rollout_show))
        .route("/admin/v1/rollouts/{id}/{action}", post(rollout_act))
}

/// `Query` whose rejection is an OpenAI-shaped 400 naming the query string's problem, not
/// axum's plain-text one: every admin endpoint answers in one shape.
pub(crate) struct AdminQuery<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequestParts<S>
    for AdminQuery<T>
{
    type Rejection = GatewayError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, GatewayError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(t)| AdminQuery(t))
            .map_err(|e| {
                GatewayError::invalid(
                    query_param(&e).as_deref(),
                    format!("invalid query string: {}", e.body_text()),
                )
            })
    }
}

/// The query parameter a rejected query string failed on: axum's `Query` reads it with
/// `serde_path_to_error`, whose error is somewhere in the rejection's sources.
fn query_param(rejection: &axum::extract::rejection::QueryRejection) -> Option<String> {
    type PathError = serde_path_to_error::Error<serde::de::value::Error>;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(rejection);
    while let Some(e) = source {
        if let Some(e) = e.downcast_ref::<PathError>() {
            return crate::pipeline::param_of(e.path(), e.inner());
        }
        source = e.source();
    }
    None
}

/// The path parameter a rejected path failed on (`version` of `/prompts/NAME/versions/VERSION`);
/// `names` are the route's parameters in order, for an error that gives only a position.
fn path_param(
    rejection: &axum::extract::rejection::PathRejection,
    names: &[String],
) -> Option<String> {
    use axum::extract::path::ErrorKind as K;
    let axum::extract::rejection::PathRejection::FailedToDeserializePathParams(e) = rejection
    else {
        return None;
    };
    match e.kind() {
        K::ParseErrorAtKey { key, .. }
        | K::InvalidUtf8InPathParam { key }
        | K::DeserializeError { key, .. } => Some(key.clone()),
        K::ParseErrorAtIndex { index, .. } => names.get(*index).cloned(),
        _ => None,
    }
}

/// `Path` with the same kind of rejection (a version that is not a number, say).
pub(crate) struct AdminPath<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> axum::extract::FromRequestParts<S>
    for AdminPath<T>
{
    type Rejection = GatewayError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, GatewayError> {
        let names: Vec<String> = axum::extract::RawPathParams::from_request_parts(parts, state)
            .await
            .map(|raw| raw.iter().map(|(name, _)| name.to_owned()).collect())
            .unwrap_or_default();
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(t)| AdminPath(t))
            .map_err(|e| {
                GatewayError::invalid(
                    path_param(&e, &names).as_deref(),
                    format!("invalid path: {}", e.body_text()),
                )
            })
    }
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
    crate::server::spawn_blocking(work)
        .await
        .map_err(|_| internal("the storage task failed"))?
        .map_err(store_error)
}

/// Authenticates an admin read (the key, or a dashboard session), then reads the store off
/// the async threads.
pub(crate) async fn admin_read<T: Send + 'static>(
    app: &AppState,
    headers: &HeaderMap,
    read: impl FnOnce(&switchyard_store::SqliteStore) -> Result<T, switchyard_store::StoreError>
        + Send
        + 'static,
) -> Result<T, GatewayError> {
    crate::dashboard::authenticate_read(app, headers)?;
    let store = app.store.clone();
    blocking(move || read(&store)).await
}

fn not_found(code: &'static str, message: String) -> GatewayError {
    GatewayError::new(ErrorKind::NotFound, code, message)
}

fn internal(message: &str) -> GatewayError {
    GatewayError::new(ErrorKind::Internal, "internal_error", message.to_owned())
}

fn store_error(e: switchyard_store::StoreError) -> GatewayError {
    use switchyard_store::StoreError as E;
    match &e {
        E::NoSuchPromptVersion { .. } | E::NoSuchConfigVersion(_) => {
            return GatewayError::new(ErrorKind::NotFound, "not_found", e.to_string());
        }
        E::AmbiguousPrefix { .. } => return GatewayError::invalid(None, e.to_string()),
        _ => {}
    }
    tracing::error!(error = %e, "admin storage failed");
    GatewayError::store_unavailable(format!("storage failed: {e}"))
}

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
    crate::dashboard::authenticate_read(&app, &headers)?;
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
    /// Store the version without applying it (the candidate of a config rollout).
    #[serde(default)]
    stage: bool,
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
    let change = Change {
        actor: &who,
        message: &body.message,
        action: "config.apply",
        reason: &body.reason,
    };
    if body.stage {
        let (version, _) = versions::stage(&app, &body.source, &change)
            .await
            .map_err(|e| apply_error(e, "source"))?;
        return Ok(Json(versions::Applied {
            version,
            parent: Some(app.pipeline.load().version.clone()),
            changed: false,
            staged: true,
            diff: String::new(),
            audit_seq: None,
        }));
    }
    let applied = versions::apply(&app, &body.source, &change)
        .await
        .map_err(|e| apply_error(e, "source"))?;
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
    AdminQuery(paging): AdminQuery<Paging>,
) -> Reply<HistoryView> {
    let running = app.pipeline.load_full();
    crate::dashboard::authenticate_read(&app, &headers)?;
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
        versions::rollback(&app, body.to.as_deref(), &who, &body.reason)
            .await
            .map_err(|e| apply_error(e, "to"))?,
    ))
}

#[derive(Serialize)]
struct AuditView {
    entries: Vec<switchyard_rollout::AuditEntry>,
}

/// `GET /admin/v1/audit?after=SEQ&limit=N`: entries in order.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    #[serde(default = "default_limit")]
    limit: usize,
    #[serde(default)]
    after: u64,
    /// The newest `limit` entries, newest first, instead of `limit` after `after`.
    #[serde(default)]
    latest: bool,
}

async fn audit_list(
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

#[derive(Serialize)]
struct FlagsView {
    flags: Vec<switchyard_rollout::Flag>,
}

/// `GET /admin/v1/flags`.
async fn flag_list(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Reply<FlagsView> {
    let flags = admin_read(&app, &headers, move |store| store.flags()).await?;
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

fn flag_json(flag: Option<&switchyard_rollout::Flag>) -> String {
    flag.and_then(|f| serde_json::to_string_pretty(f).ok())
        .unwrap_or_default()
}

/// Sets (`Some`) or deletes (`None`) a flag with its audit entry in one transaction, then
/// makes this replica read the flags again at once; returns the flag it replaced.
async fn change_flag(
    app: &Arc<AppState>,
    headers: &HeaderMap,
    key: &str,
    flag: Option<switchyard_rollout::Flag>,
    reason: &str,
) -> Result<FlagChange, GatewayError> {
    let action = if flag.is_some() {
        "flag.set"
    } else {
        "flag.delete"
    };
    let mut event = audit_event(
        headers,
        action,
        format!("flag:{key}"),
        reason,
        String::new(),
    );
    let store = app.store.clone();
    let (k, f, at) = (key.to_owned(), flag.clone(), now_ms());
    let (previous, audit_seq) = blocking(move || {
        store.transact(|c| {
            let previous = match &f {
                Some(f) => c.put_flag(f, at)?,
                None => c.delete_flag(&k)?,
            };
            if f.is_none() && previous.is_none() {
                return Ok((None, 0));
            }
            event.diff = switchyard_rollout::diff_lines(
                &flag_json(previous.as_ref()),
                &flag_json(f.as_ref()),
            );
            Ok((previous, c.append_audit(event)?.seq))
        })
    })
    .await?;
    if flag.is_none() && previous.is_none() {
        return Err(GatewayError::new(
            ErrorKind::NotFound,
            "no_such_flag",
            format!("no flag `{key}` is set"),
        ));
    }
    let state = app.clone();
    blocking(move || state.refresh_control()).await?;
    Ok(FlagChange {
        flag,
        previous,
        audit_seq,
    })
}

/// `PUT /admin/v1/flags/KEY`: sets a flag; the next request on every replica sees it.
async fn flag_set(
    State(app): State<Arc<AppState>>,
    AdminPath(key): AdminPath<String>,
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
    Ok(Json(
        change_flag(&app, &headers, &key, Some(flag), &body.reason).await?,
    ))
}

/// `DELETE /admin/v1/flags/KEY`: the stages behave as if it was never set.
async fn flag_delete(
    State(app): State<Arc<AppState>>,
    AdminPath(key): AdminPath<String>,
    headers: HeaderMap,
) -> Reply<FlagChange> {
    app.pipeline.load().authenticate_admin(&headers)?;
    Ok(Json(change_flag(&app, &headers, &key, None, "").await?))
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn audit_event(
    headers: &HeaderMap,
    action: &str,
    target: String,
    reason: &str,
    diff: String,
) -> switchyard_rollout::AuditEvent {
    switchyard_rollout::AuditEvent {
        at_ms: u64::try_from(now_ms()).unwrap_or(0),
        actor: actor(headers),
        action: action.to_owned(),
        target,
        reason: reason.to_owned(),
        diff,
    }
}

#[derive(Serialize)]
struct PromptsView {
    prompts: Vec<switchyard_store::PromptSummary>,
}

/// `GET /admin/v1/prompts`: every prompt, its latest version and its labels.
async fn prompt_list(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Reply<PromptsView> {
    let prompts = admin_read(&app, &headers, move |store| store.prompt_names()).await?;
    Ok(Json(PromptsView { prompts }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PushBody {
    /// A prompt file's text (TOML; docs/configuration.md, "Prompt files").
    source: String,
    #[serde(default)]
    message: String,
    /// Point this label at the pushed version too (e.g. `staging`).
    #[serde(default)]
    label: Option<String>,
}

#[derive(Serialize)]
struct Pushed {
    name: String,
    version: u32,
    /// False when the text is the latest version already.
    created: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<String>,
}

fn checked_label(name: &str, label: &str) -> Result<(), GatewayError> {
    match switchyard_control::prompt::PromptRef::parse(&format!("{name}@{label}")) {
        Ok(r) if matches!(r.selector, switchyard_control::prompt::Selector::Label(_)) => Ok(()),
        _ => Err(GatewayError::invalid(
            Some("label"),
            format!("`{label}` is not a label: lower-case letters, digits, `-` and `_`"),
        )),
    }
}

/// The pretty JSON of a stored body, for diffs.
fn pretty(body: Option<&str>) -> String {
    body.and_then(|b| serde_json::from_str::<serde_json::Value>(b).ok())
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_default()
}

/// `POST /admin/v1/prompts`: a new version of a prompt (none when the text is unchanged).
async fn prompt_push(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Reply<Pushed> {
    let body: PushBody = admit(&app, &headers, body)?;
    let template = switchyard_control::prompt::PromptTemplate::parse(&body.source, "prompt")
        .map_err(|e| {
            GatewayError::new(ErrorKind::InvalidRequest, "invalid_prompt", e.to_string())
                .with_param("source")
        })?;
    if let Some(label) = &body.label {
        checked_label(&template.name, label)?;
    }
    // A template that breaks the render limits with sample values would fail every request
    // that names it: refused now. The render is bounded by those limits, and off the async
    // threads like every render.
    let limits = app.pipeline.load().config.prompts;
    let template = Arc::new(template);
    let checked = template.clone();
    let within = tokio::task::spawn_blocking(move || checked.check_limits(&limits))
        .await
        .map_err(|_| internal("the prompt check failed"))?;
    if let Err(e) = within {
        return Err(GatewayError::new(
            ErrorKind::InvalidRequest,
            "invalid_prompt",
            format!("prompt `{}` with sample values: {e}", template.name),
        ));
    }
    let json = template
        .to_json()
        .map_err(|e| internal(&format!("cannot encode the prompt: {e}")))?;
    let name = template.name.clone();
    let (who, at) = (actor(&headers), now_ms());
    let events = (
        audit_event(
            &headers,
            "prompt.push",
            format!("prompt:{name}"),
            &body.message,
            String::new(),
        ),
        body.label.as_ref().map(|l| {
            audit_event(
                &headers,
                "prompt.label",
                format!("prompt:{name}@{l}"),
                &body.message,
                String::new(),
            )
        }),
    );
    let store = app.store.clone();
    let (n, label) = (name.clone(), body.label.clone());
    let (version, created) = blocking(move || {
        store.transact(|c| {
            let latest = c.read().latest_prompt(&n)?;
            let version = c.push_prompt(&n, &json, &who, &body.message, at)?;
            let created = latest.as_ref().is_none_or(|l| l.version != version);
            let (mut push, relabel) = events;
            if created {
                push.diff = switchyard_rollout::diff_lines(
                    &pretty(latest.as_ref().map(|l| l.body.as_str())),
                    &pretty(Some(&json)),
                );
                push.target = format!("prompt:{n}@{version}");
                c.append_audit(push)?;
            }
            if let (Some(label), Some(mut event)) = (&label, relabel) {
                let before = c.set_prompt_label(&n, label, version, at)?;
                if before != Some(version) {
                    event.diff = label_diff(label, before, version);
                    c.append_audit(event)?;
                }
            }
            Ok((version, created))
        })
    })
    .await?;
    let state = app.clone();
    blocking(move || state.refresh_control()).await?;
    Ok(Json(Pushed {
        name,
        version,
        created,
        label: body.label,
    }))
}

fn label_diff(label: &str, before: Option<u32>, after: u32) -> String {
    match before {
        Some(b) => format!("-{label}: {b}\n+{label}: {after}\n"),
        None => format!("+{label}: {after}\n"),
    }
}

#[derive(Serialize)]
struct PromptView {
    name: String,
    labels: std::collections::BTreeMap<String, u32>,
    versions: Vec<PromptVersionView>,
}

#[derive(Serialize)]
struct PromptVersionView {
    version: u32,
    author: String,
    message: String,
    created_at_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    template: Option<serde_json::Value>,
}

fn no_prompt(name: &str) -> GatewayError {
    not_found("prompt_not_found", format!("no prompt `{name}` is stored"))
}

/// `GET /admin/v1/prompts/NAME`: its versions (newest first) and labels.
async fn prompt_show(
    State(app): State<Arc<AppState>>,
    AdminPath(name): AdminPath<String>,
    headers: HeaderMap,
) -> Reply<PromptView> {
    crate::dashboard::authenticate_read(&app, &headers)?;
    let store = app.store.clone();
    let n = name.clone();
    let (rows, summary) = blocking(move || {
        let summary = store.prompt_names()?.into_iter().find(|p| p.name == n);
        Ok((store.prompt_versions(&n)?, summary))
    })
    .await?;
    let summary = summary.ok_or_else(|| no_prompt(&name))?;
    Ok(Json(PromptView {
        name,
        labels: summary.labels,
        versions: rows
            .into_iter()
            .map(|r| PromptVersionView {
                version: r.version,
                author: r.author,
                message: r.message,
                created_at_ms: r.created_at_ms,
                template: None,
            })
            .collect(),
    }))
}

/// `GET /admin/v1/prompts/NAME/versions/N`: one version with its template.
async fn prompt_version(
    State(app): State<Arc<AppState>>,
    AdminPath((name, version)): AdminPath<(String, u32)>,
    headers: HeaderMap,
) -> Reply<PromptVersionView> {
    let n = name.clone();
    let row = admin_read(&app, &headers, move |store| store.prompt(&n, version))
        .await?
        .ok_or_else(|| {
            not_found(
                "prompt_not_found",
                format!("prompt `{name}` has no version {version}"),
            )
        })?;
    Ok(Json(PromptVersionView {
        version: row.version,
        author: row.author,
        message: row.message,
        created_at_ms: row.created_at_ms,
        template: serde_json::from_str(&row.body).ok(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LabelBody {
    version: u32,
    #[serde(default)]
    reason: String,
}

#[derive(Serialize)]
struct Labelled {
    name: String,
    label: String,
    version: u32,
    previous: Option<u32>,
}

/// `PUT /admin/v1/prompts/NAME/labels/LABEL`: moves a label; requests naming it get that
/// version from the next one on.
async fn prompt_label(
    State(app): State<Arc<AppState>>,
    AdminPath((name, label)): AdminPath<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Reply<Labelled> {
    let body: LabelBody = admit(&app, &headers, body)?;
    checked_label(&name, &label)?;
    let mut event = audit_event(
        &headers,
        "prompt.label",
        format!("prompt:{name}@{label}"),
        &body.reason,
        String::new(),
    );
    let store = app.store.clone();
    let (n, l, version, at) = (name.clone(), label.clone(), body.version, now_ms());
    let previous = blocking(move || {
        store.transact(|c| {
            let before = c.set_prompt_label(&n, &l, version, at)?;
            if before != Some(version) {
                event.diff = label_diff(&l, before, version);
                c.append_audit(event)?;
            }
            Ok(before)
        })
    })
    .await?;
    let state = app.clone();
    blocking(move || state.refresh_control()).await?;
    Ok(Json(Labelled {
        name,
        label,
        version: body.version,
        previous,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    /// Default: `r-` and 8 random hex digits.
    #[serde(default)]
    id: Option<String>,
    /// `model` or `prompt`.
    kind: String,
    /// A model name, or a prompt label `NAME@LABEL`.
    baseline: String,
    /// A model name, or a prompt version `NAME@VERSION` (or just the version number).
    candidate: String,
    #[serde(default)]
    spec: switchyard_rollout::RolloutSpec,
    #[serde(default)]
    reason: String,
}

#[derive(Serialize)]
struct RolloutView {
    rollout: switchyard_rollout::Rollout,
    active: bool,
    traffic: switchyard_rollout::Traffic,
    /// The current step's windows, as this replica counted them.
    windows: serde_json::Value,
}

fn view(app: &AppState, stored: switchyard_store::StoredRollout) -> RolloutView {
    let windows = app.live.load().stats.windows(stored.rollout.id());
    RolloutView {
        traffic: stored.rollout.traffic(),
        windows: crate::rollouts::window_summary(&windows),
        rollout: stored.rollout,
        active: stored.active,
    }
}

/// The rollout's targets, checked against the running config and the stored prompts.
fn targets(
    app: &AppState,
    body: &StartBody,
) -> Result<(switchyard_rollout::TargetRef, switchyard_rollout::TargetRef), GatewayError> {
    use switchyard_control::prompt::{PromptRef, Selector};
    use switchyard_rollout::{TargetKind, TargetRef};
    let bad = |m: String| GatewayError::invalid(Some("candidate"), m);
    match body.kind.as_str() {
        "model" => {
            let pipeline = app.pipeline.load();
            for (field, name) in [("baseline", &body.baseline), ("candidate", &body.candidate)] {
                if !pipeline.config.models.contains_key(name.as_str()) {
                    return Err(GatewayError::invalid(
                        Some(field),
                        format!("no model `{name}` in the running config"),
                    ));
                }
            }
            if body.baseline == body.candidate {
                return Err(bad("the candidate is the baseline".into()));
            }
            let t = |id: &str| TargetRef {
                kind: TargetKind::Model,
                id: id.to_owned(),
            };
            Ok((t(&body.baseline), t(&body.candidate)))
        }
        "prompt" => {
            let baseline = PromptRef::parse(&body.baseline)
                .map_err(|e| GatewayError::invalid(Some("baseline"), e.to_string()))?;
            if !matches!(baseline.selector, Selector::Label(_)) {
                return Err(GatewayError::invalid(
                    Some("baseline"),
                    "the baseline is a label, e.g. `support-answer@production`",
                ));
            }
            let candidate = if body.candidate.bytes().all(|b| b.is_ascii_digit()) {
                format!("{}@{}", baseline.name, body.candidate)
            } else {
                body.candidate.clone()
            };
            let candidate = PromptRef::parse(&candidate).map_err(|e| bad(e.to_string()))?;
            if candidate.name != baseline.name
                || !matches!(candidate.selector, Selector::Version(_))
            {
                return Err(bad(format!(
                    "the candidate is a version of `{}`, e.g. `{}@3`",
                    baseline.name, baseline.name
                )));
            }
            let live = app.live.load();
            live.prompts.resolve(&baseline)?;
            live.prompts.resolve(&candidate)?;
            let t = |r: &PromptRef| TargetRef {
                kind: TargetKind::Prompt,
                id: r.to_string(),
            };
            Ok((t(&baseline), t(&candidate)))
        }
        "config" => {
            let running = app.pipeline.load().version.clone();
            if body.baseline != "running" && !running.starts_with(&body.baseline.to_lowercase()) {
                return Err(GatewayError::invalid(
                    Some("baseline"),
                    format!(
                        "a config rollout's baseline is the running version ({}), or `running`",
                        versions::short(&running)
                    ),
                ));
            }
            let candidate = app
                .store
                .config_version(&body.candidate)
                .map_err(|e| store_error(e).with_param("candidate"))?
                .ok_or_else(|| {
                    bad(format!(
                        "no stored config version `{}` (stage one: `switchyard config apply --stage`)",
                        body.candidate
                    ))
                })?;
            if candidate.id == running {
                return Err(bad("the candidate is the running version".into()));
            }
            let t = |id: String| TargetRef {
                kind: TargetKind::Config,
                id,
            };
            Ok((t(running), t(candidate.id)))
        }
        other => Err(GatewayError::invalid(
            Some("kind"),
            format!("`{other}` is not one of \"model\", \"prompt\", \"config\""),
        )),
    }
}

/// `POST /admin/v1/rollouts`: creates a rollout and starts it at its first step.
async fn rollout_start(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Reply<RolloutView> {
    let body: StartBody = admit(&app, &headers, body)?;
    let (baseline, candidate) = targets(&app, &body)?;
    let id = body
        .id
        .clone()
        .unwrap_or_else(|| format!("r-{}", hex::encode(rand::random::<[u8; 4]>())));
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(GatewayError::invalid(
            Some("id"),
            "a rollout id is letters, digits, `-`, `_` and `.`",
        ));
    }
    let mut rollout =
        switchyard_rollout::Rollout::new(id.clone(), baseline.clone(), candidate, body.spec)
            .map_err(|errors| {
                let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
                GatewayError::invalid(Some("spec"), all.join("; "))
            })?;
    let _one = app.rolling.lock().await;
    let store = app.store.clone();
    let existing = blocking(move || store.rollouts(true)).await?;
    if let Some(other) = existing.iter().find(|s| {
        s.rollout.id() == id
            || (s.rollout.baseline() == &baseline && !s.rollout.state().is_finished())
    }) {
        return Err(GatewayError::new(
            ErrorKind::InvalidRequest,
            "rollout_conflict",
            format!(
                "rollout `{}` is already in force over `{}`",
                other.rollout.id(),
                other.rollout.baseline().id
            ),
        )
        .with_param("baseline"));
    }
    // A config rollout's candidate pipeline is built before any request can take its arm.
    let candidate = match rollout.candidate().kind {
        switchyard_rollout::TargetKind::Config => {
            Some(Arc::new(crate::rollouts::ConfigCandidate {
                rollout: id.clone(),
                baseline: rollout.baseline().id.clone(),
                pipeline: Arc::new(versions::build_version(&app, &rollout.candidate().id)?),
            }))
        }
        _ => None,
    };
    if let Some(c) = candidate {
        app.candidate.store(Some(c));
    }
    let now = now_ms();
    let mut start = rollout
        .start(u64::try_from(now).unwrap_or(0))
        .map_err(|e| GatewayError::invalid(None, e.to_string()))?;
    if !body.reason.is_empty() {
        start.reason = format!("{} ({})", start.reason, body.reason);
    }
    if rollout.spec().kind == switchyard_rollout::RolloutKind::BlueGreen {
        let version = crate::rollouts::prompt_version_of(&app.live.load().prompts, &rollout);
        let (store, r) = (app.store.clone(), rollout.clone());
        let reference =
            blocking(move || crate::rollouts::reference_window(&store, &r, version.as_deref()))
                .await?;
        app.live.load().stats.set_reference(rollout.id(), reference);
    }
    let (store, who, saved) = (app.store.clone(), actor(&headers), rollout.clone());
    blocking(move || crate::rollouts::save(&store, &saved, &[start], &who, now)).await?;
    let state = app.clone();
    blocking(move || state.refresh_control()).await?;
    let store = app.store.clone();
    let stored = blocking(move || store.rollout(&id))
        .await?
        .ok_or_else(|| internal("the rollout was not stored"))?;
    Ok(Json(view(&app, stored)))
}

#[derive(Serialize)]
struct RolloutsView {
    rollouts: Vec<RolloutView>,
}

/// `GET /admin/v1/rollouts`: every rollout, oldest first.
async fn rollout_list(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Reply<RolloutsView> {
    let all = admin_read(&app, &headers, move |store| store.rollouts(false)).await?;
    Ok(Json(RolloutsView {
        rollouts: all.into_iter().map(|s| view(&app, s)).collect(),
    }))
}

fn no_rollout(id: &str) -> GatewayError {
    not_found("rollout_not_found", format!("no rollout `{id}`"))
}

/// `GET /admin/v1/rollouts/ID`: its state, traffic, timeline and current windows.
async fn rollout_show(
    State(app): State<Arc<AppState>>,
    AdminPath(id): AdminPath<String>,
    headers: HeaderMap,
) -> Reply<RolloutView> {
    let i = id.clone();
    let stored = admin_read(&app, &headers, move |store| store.rollout(&i))
        .await?
        .ok_or_else(|| no_rollout(&id))?;
    Ok(Json(view(&app, stored)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ActBody {
    #[serde(default)]
    reason: String,
}

/// `POST /admin/v1/rollouts/ID/ACTION`: `promote`, `pause`, `resume`, `rollback` or `abort`,
/// at once.
async fn rollout_act(
    State(app): State<Arc<AppState>>,
    AdminPath((id, action)): AdminPath<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Reply<RolloutView> {
    let body: ActBody = match &body {
        Ok(b) if b.is_empty() => {
            app.pipeline.load().authenticate_admin(&headers)?;
            ActBody::default()
        }
        _ => admit(&app, &headers, body)?,
    };
    let _one = app.rolling.lock().await;
    let store = app.store.clone();
    let i = id.clone();
    let stored = blocking(move || store.rollout(&i))
        .await?
        .ok_or_else(|| no_rollout(&id))?;
    let mut rollout = stored.rollout;
    let now = now_ms();
    let at = u64::try_from(now).unwrap_or(0);
    let reason = if body.reason.is_empty() {
        format!("by {}", actor(&headers))
    } else {
        body.reason.clone()
    };
    let transition = match action.as_str() {
        "promote" => rollout.promote(at),
        "pause" => rollout.pause(at),
        "resume" => rollout.resume(at),
        "rollback" => rollout.rollback(at, &reason),
        "abort" => rollout.abort(at, &reason),
        other => {
            return Err(GatewayError::new(
                ErrorKind::NotFound,
                "no_such_action",
                format!("`{other}` is not one of promote, pause, resume, rollback, abort"),
            ))
        }
    }
    .map_err(|e| GatewayError::new(ErrorKind::InvalidRequest, "rollout_state", e.to_string()))?;
    let stats = app.live.load().stats.clone();
    if transition.starts_window() {
        stats.reset_window(&id);
    }
    let (store, who, saved) = (app.store.clone(), actor(&headers), rollout.clone());
    blocking(move || crate::rollouts::save(&store, &saved, &[transition], &who, now)).await?;
    let state = app.clone();
    blocking(move || state.refresh_control()).await?;
    crate::rollouts::settle_config(&app, &rollout).await;
    let store = app.store.clone();
    let stored = blocking(move || store.rollout(&id))
        .await?
        .ok_or_else(|| internal("the rollout was not stored"))?;
    Ok(Json(view(&app, stored)))
}
