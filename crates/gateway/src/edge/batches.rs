//! The Batch API over HTTP (`/v1/files`, `/v1/batches`): the key authenticated as on every
//! `/v1` route (the [`Owner`] extractor), the multipart upload read as a stream and refused
//! past `[batch] max_file_mb` without holding more than that, query strings and paths read
//! with OpenAI-shaped rejections; what each endpoint does is `control_plane::batches`'.
//! A file is held whole in memory while it is uploaded, parsed into a batch or read back, so
//! at most [`FILE_TRANSFERS`] of those run at once: the others wait their turn holding
//! nothing but their connection, and many callers cannot make the gateway hold many files.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Deserialize;

use crate::control_plane::batches::{self as api, Owner};
use crate::data_plane::keys::Keyring;
use crate::edge::access::{AdminPath, AdminQuery};
use crate::edge::state::AppState;
use crate::error::{ErrorKind, GatewayError};

/// File uploads, batch creations and file downloads in progress at once.
pub const FILE_TRANSFERS: usize = 4;

/// Waits for a turn to hold a whole file in memory.
async fn transfer_turn(app: &AppState) -> Result<tokio::sync::OwnedSemaphorePermit, GatewayError> {
    app.file_transfers
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| {
            GatewayError::new(
                ErrorKind::Unavailable,
                "shutting_down",
                "the gateway is shutting down",
            )
        })
}

/// Room for the multipart framing and the other fields around the file.
const FORM_OVERHEAD: u64 = 64 * 1024;
/// How much of a refused upload is read and thrown away, so that the client, still
/// sending, reads the 413 rather than a reset connection; beyond it the connection is cut.
const DRAIN: u64 = 32 << 20;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/files", post(upload).get(list_files))
        .route("/v1/files/{id}", get(file).delete(delete_file))
        .route("/v1/files/{id}/content", get(file_content))
        .route("/v1/batches", post(create).get(list_batches))
        .route("/v1/batches/{id}", get(batch))
        .route("/v1/batches/{id}/cancel", post(cancel))
}

/// The key a request presents, as the owner of what it makes: a 401 as on every `/v1` route.
impl axum::extract::FromRequestParts<Arc<AppState>> for Owner {
    type Rejection = GatewayError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &Arc<AppState>,
    ) -> Result<Self, GatewayError> {
        let key = app
            .control
            .running
            .pipeline
            .load()
            .authenticate(&parts.headers)?;
        let key_hash = Keyring::presented_hash(&parts.headers).ok_or_else(|| {
            GatewayError::new(ErrorKind::Unauthorized, "missing_api_key", "no API key")
        })?;
        Ok(Owner {
            tenant: key.tenant.clone(),
            key_id: key.id.clone(),
            key_hash,
        })
    }
}

/// A JSON answer, or the error's.
pub(crate) fn json<T: serde::Serialize>(result: Result<T, GatewayError>) -> Response {
    match result {
        Ok(value) => Json(value).into_response(),
        Err(e) => e.into_response(),
    }
}

/// A list's query string: `limit`, `after`, and for files `purpose` and `order`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<usize>,
    after: Option<String>,
    purpose: Option<String>,
    /// Only `desc` (newest first) is served.
    order: Option<String>,
}

impl ListQuery {
    /// `limit` (1 to `max`, else a 400), `default` when not given.
    fn limit(&self, max: usize, default: usize) -> Result<usize, GatewayError> {
        if self.order.as_deref().is_some_and(|o| o != "desc") {
            return Err(GatewayError::invalid(
                Some("order"),
                "only `order=desc` (newest first) is supported",
            ));
        }
        match self.limit {
            None => Ok(default),
            Some(n) if (1..=max).contains(&n) => Ok(n),
            Some(_) => Err(GatewayError::invalid(
                Some("limit"),
                format!("limit must be between 1 and {max}"),
            )),
        }
    }
}

fn too_large(max: u64) -> GatewayError {
    GatewayError::new(
        ErrorKind::PayloadTooLarge,
        "file_too_large",
        format!(
            "the file is larger than this gateway accepts ({} MiB, [batch] max_file_mb)",
            max >> 20
        ),
    )
}

/// The upload's `file` (name and bytes) and `purpose`, read as a stream: past `max` bytes
/// of file it keeps nothing more, reads on (at most [`DRAIN`] more, thrown away) and refuses.
async fn read_form(
    headers: &HeaderMap,
    body: Body,
    max: u64,
) -> Result<(String, Vec<u8>, String), GatewayError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max.saturating_add(FORM_OVERHEAD)) {
        drain(body).await;
        return Err(too_large(max));
    }
    let boundary = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| multer::parse_boundary(v).ok())
        .ok_or_else(|| GatewayError::invalid(None, "send the file as multipart/form-data"))?;
    let limits = multer::Constraints::new().size_limit(
        multer::SizeLimit::new().whole_stream(max.saturating_add(FORM_OVERHEAD + DRAIN)),
    );
    let mut form = multer::Multipart::with_constraints(body.into_data_stream(), boundary, limits);
    let (mut file, mut purpose, mut over) = (None, None, false);
    let form_error = |e: multer::Error| match e {
        multer::Error::FieldSizeExceeded { .. } | multer::Error::StreamSizeExceeded { .. } => {
            too_large(max)
        }
        other => GatewayError::invalid(None, format!("cannot read the form: {other}")),
    };
    while let Some(mut field) = form.next_field().await.map_err(form_error)? {
        match field.name() {
            Some("file") if !over => {
                let name = field.file_name().unwrap_or("upload.jsonl").to_owned();
                let mut bytes = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(form_error)? {
                    if over || bytes.len() as u64 + chunk.len() as u64 > max {
                        over = true;
                        bytes = Vec::new();
                        continue;
                    }
                    bytes.extend_from_slice(&chunk);
                }
                file = Some((name, bytes));
            }
            Some("purpose") => {
                let text = field.text().await.map_err(form_error)?;
                purpose = Some(text.chars().take(64).collect::<String>());
            }
            // Other fields (`expires_after[...]`) are read and let go.
            _ => while field.chunk().await.map_err(form_error)?.is_some() {},
        }
    }
    if over {
        return Err(too_large(max));
    }
    let (name, bytes) =
        file.ok_or_else(|| GatewayError::invalid(Some("file"), "the form has no `file`"))?;
    let purpose = purpose
        .ok_or_else(|| GatewayError::invalid(Some("purpose"), "the form has no `purpose`"))?;
    Ok((name.chars().take(255).collect(), bytes, purpose))
}

/// Reads a refused body and throws it away, [`DRAIN`] bytes at most.
async fn drain(body: Body) {
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    let mut read = 0u64;
    while let Some(Ok(chunk)) = stream.next().await {
        read += chunk.len() as u64;
        if read > DRAIN {
            break;
        }
    }
}

async fn upload(
    State(app): State<Arc<AppState>>,
    owner: Owner,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let max = app
        .control
        .running
        .pipeline
        .load()
        .config
        .batch
        .max_file_bytes;
    let _turn = match transfer_turn(&app).await {
        Ok(turn) => turn,
        Err(e) => return e.into_response(),
    };
    let result = match read_form(&headers, body, max).await {
        Ok((name, bytes, purpose)) => {
            api::upload(&app.control, &owner, name, &purpose, bytes).await
        }
        Err(e) => Err(e),
    };
    json(result)
}

async fn list_files(
    State(app): State<Arc<AppState>>,
    owner: Owner,
    AdminQuery(q): AdminQuery<ListQuery>,
) -> Response {
    let result = match q.limit(10_000, 10_000) {
        Ok(limit) => api::files(&app.control, &owner.tenant, q.purpose, q.after, limit).await,
        Err(e) => Err(e),
    };
    json(result)
}

async fn file(
    State(app): State<Arc<AppState>>,
    owner: Owner,
    AdminPath(id): AdminPath<String>,
) -> Response {
    json(api::file(&app.control, &owner.tenant, &id).await)
}

async fn file_content(
    State(app): State<Arc<AppState>>,
    owner: Owner,
    AdminPath(id): AdminPath<String>,
) -> Response {
    let turn = match transfer_turn(&app).await {
        Ok(turn) => turn,
        Err(e) => return e.into_response(),
    };
    match api::file_content(&app.control, &owner.tenant, &id).await {
        Ok(bytes) => {
            use futures::StreamExt;
            // The turn ends when the body has been sent (or the client went away).
            let sent = futures::stream::once(std::future::ready(
                Ok::<_, std::convert::Infallible>(Bytes::from(bytes)),
            ))
            .map(move |chunk| {
                let _held = &turn;
                chunk
            });
            (
                [(header::CONTENT_TYPE, "application/octet-stream")],
                Body::from_stream(sent),
            )
                .into_response()
        }
        Err(e) => e.into_response(),
    }
}

async fn delete_file(
    State(app): State<Arc<AppState>>,
    owner: Owner,
    AdminPath(id): AdminPath<String>,
) -> Response {
    json(api::delete_file(&app.control, &owner.tenant, &id).await)
}

async fn create(
    State(app): State<Arc<AppState>>,
    owner: Owner,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let request = body
        .map_err(crate::edge::access::body_error)
        .and_then(|body| crate::data_plane::pipeline::parse_json(&body));
    let result = match request {
        Ok(request) => match transfer_turn(&app).await {
            Ok(_turn) => api::create(&app.control, &owner, request).await,
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    json(result)
}

async fn list_batches(
    State(app): State<Arc<AppState>>,
    owner: Owner,
    AdminQuery(q): AdminQuery<ListQuery>,
) -> Response {
    let result = match q.limit(100, 20) {
        Ok(limit) => api::batches(&app.control, &owner.tenant, q.after, limit).await,
        Err(e) => Err(e),
    };
    json(result)
}

async fn batch(
    State(app): State<Arc<AppState>>,
    owner: Owner,
    AdminPath(id): AdminPath<String>,
) -> Response {
    json(api::batch(&app.control, &owner.tenant, &id).await)
}

async fn cancel(
    State(app): State<Arc<AppState>>,
    owner: Owner,
    AdminPath(id): AdminPath<String>,
) -> Response {
    json(api::cancel(&app.control, &owner.tenant, &id).await)
}
