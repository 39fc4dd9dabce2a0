//! Who may use the admin API and how its requests are read: the admin key or a dashboard
//! session, the throttle on wrong keys, extractors whose rejections are OpenAI-shaped, and
//! store work off the async threads with its errors mapped once.

use std::sync::Arc;

use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::Json;
use bytes::Bytes;

use crate::data_plane::keys::Keyring;
use crate::edge::sessions::{client_address, session_token, LOGIN_PATH};
use crate::edge::state::AppState;
use crate::error::{ErrorKind, GatewayError};
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::Instant;

pub const ACTOR: &str = "x-switchyard-actor";

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
pub(crate) fn query_param(rejection: &axum::extract::rejection::QueryRejection) -> Option<String> {
    type PathError = serde_path_to_error::Error<serde::de::value::Error>;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(rejection);
    while let Some(e) = source {
        if let Some(e) = e.downcast_ref::<PathError>() {
            return crate::data_plane::pipeline::param_of(e.path(), e.inner());
        }
        source = e.source();
    }
    None
}

/// The path parameter a rejected path failed on (`version` of `/prompts/NAME/versions/VERSION`);
/// `names` are the route's parameters in order, for an error that gives only a position.
pub(crate) fn path_param(
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
pub(crate) fn admit<T: serde::de::DeserializeOwned>(
    app: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, GatewayError> {
    app.control
        .running
        .pipeline
        .load()
        .authenticate_admin(headers)?;
    let body =
        body.map_err(|e| GatewayError::invalid(None, format!("cannot read the body: {e}")))?;
    crate::data_plane::pipeline::parse_json(&body)
}

pub(crate) fn actor(headers: &HeaderMap) -> String {
    headers
        .get(ACTOR)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| a.chars().take(128).collect())
        .unwrap_or_else(|| "admin".to_owned())
}

/// Runs store work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, switchyard_store::StoreError> + Send + 'static,
) -> Result<T, GatewayError> {
    crate::tasks::spawn_blocking(work)
        .await
        .map_err(|_| internal("the storage task failed"))?
        .map_err(store_error)
}

/// Authenticates an admin read (the key, or a dashboard session), then reads the store off
/// the async threads.
pub(crate) async fn admin_read<T: Send + 'static>(
    app: &AppState,
    headers: &HeaderMap,
    read: impl FnOnce(&dyn switchyard_store::Store) -> Result<T, switchyard_store::StoreError>
        + Send
        + 'static,
) -> Result<T, GatewayError> {
    crate::edge::access::authenticate_read(app, headers).await?;
    let store = app.control.store.clone();
    blocking(move || read(&*store)).await
}

pub(crate) fn not_found(code: &'static str, message: String) -> GatewayError {
    GatewayError::new(ErrorKind::NotFound, code, message)
}

pub(crate) fn internal(message: &str) -> GatewayError {
    GatewayError::new(ErrorKind::Internal, "internal_error", message.to_owned())
}

pub(crate) fn store_error(e: switchyard_store::StoreError) -> GatewayError {
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

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub(crate) fn audit_event(
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

/// Authenticates a read of the admin API: the admin key in a header, or else a dashboard
/// session. A request that presents a key is judged by the key alone.
pub async fn authenticate_read(app: &AppState, headers: &HeaderMap) -> Result<(), GatewayError> {
    let pipeline = app.control.running.pipeline.load_full();
    if !Keyring::presents_key(headers) {
        if let Some(token) = session_token(headers) {
            let admin = pipeline.keyring().admin_hash();
            let session = app
                .dashboard
                .check(token, admin)
                .await
                .map_err(store_error)?;
            if session.is_some() {
                return Ok(());
            }
        }
    }
    pipeline.authenticate_admin(headers)
}

/// Middleware on every route that checks the admin key: the sign-in, and admin API requests
/// that present a key (a dashboard cookie is not a guess). Refuses an address with too many
/// wrong keys (429), and counts a 401 as a wrong key.
pub async fn throttle_key_checks(
    State(app): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let checks_key = Keyring::presents_key(request.headers()) || request.uri().path() == LOGIN_PATH;
    if !checks_key {
        return next.run(request).await;
    }
    let client = client_address(&request);
    if let Err(wait) = app.sign_in.admit(client, Instant::now()) {
        return GatewayError::new(
            ErrorKind::RateLimited,
            "too_many_failed_sign_ins",
            "too many wrong admin keys from this address; wait before trying again",
        )
        .with_retry_after(wait)
        .into_response();
    }
    let response = next.run(request).await;
    // One log line when an address becomes throttled, not one per refused guess.
    if response.status() == StatusCode::UNAUTHORIZED && app.sign_in.failed(client, Instant::now()) {
        tracing::warn!(%client, "too many wrong admin keys from this address: its key checks are refused for a while");
    }
    response
}

/// What every handler returns: JSON, or an OpenAI-shaped error.
pub(crate) type Reply<T> = Result<Json<T>, GatewayError>;

/// How many entries a listing returns unless asked.
pub(crate) fn default_limit() -> usize {
    50
}

/// A body that could not be read: 413 past `server.max_body_bytes`, else a 400.
pub(crate) fn body_error(rejection: BytesRejection) -> GatewayError {
    if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        GatewayError::new(
            ErrorKind::PayloadTooLarge,
            "request_too_large",
            "the request body is larger than this gateway accepts (server.max_body_bytes)",
        )
    } else {
        GatewayError::invalid(None, format!("cannot read the request body: {rejection}"))
    }
}
