//! Framing what the pipeline answers as HTTP, the same for every model endpoint (chat
//! completions, the Responses API, Anthropic's Messages API, embeddings): a request's start
//! ([`begin`]: its pipeline and record), a whole answer, a stream of server-sent events, an
//! error in the client's API shape ([`fail_as`]), and the headers that say who served it.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;

use crate::data_plane::pipeline::Pipeline;
use crate::data_plane::record::{RecordGuard, MAX_REQUEST_ID};
use crate::edge::state::AppState;
use crate::error::{GatewayError, Shape};
use crate::tasks::spawn_blocking;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-switchyard-request-id");
const MODEL: HeaderName = HeaderName::from_static("x-switchyard-model");
const ATTEMPTS: HeaderName = HeaderName::from_static("x-switchyard-attempts");
const FALLBACK_FROM: HeaderName = HeaderName::from_static("x-switchyard-fallback-from");
const ROUTE: HeaderName = HeaderName::from_static("x-switchyard-route");
const CACHE: HeaderName = HeaderName::from_static("x-switchyard-cache");
const GUARD: HeaderName = HeaderName::from_static("x-switchyard-guard");
const QUEUE_MS: HeaderName = HeaderName::from_static("x-switchyard-queue-ms");
const PRIORITY: HeaderName = HeaderName::from_static(crate::data_plane::admission::PRIORITY);

pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(|s| {
            // Copied whole: `request_identity` has already kept it to MAX_REQUEST_ID ASCII
            // characters; a char-by-char copy was 0.7% of a request.
            let end = s
                .char_indices()
                .nth(MAX_REQUEST_ID)
                .map_or(s.len(), |(i, _)| i);
            s.get(..end).unwrap_or(s).to_owned()
        })
        .unwrap_or_default()
}

/// A failed request in OpenAI's shape: [`fail_as`].
pub(crate) fn fail(record: RecordGuard, e: GatewayError) -> Response {
    fail_as(record, e, Shape::OpenAi)
}

/// A failed request in the client's error shape, with the record finished as that failure.
pub(crate) fn fail_as(record: RecordGuard, e: GatewayError, shape: Shape) -> Response {
    // A refusal says which guard refused, as an answer would.
    let guard = record
        .guard_header()
        .and_then(|g| HeaderValue::from_str(g).ok());
    let mut headers = record.rate_limit_headers();
    headers.extend(admission_headers(&record));
    record.finish(e.status().as_u16(), Some(e.label()));
    let mut response = e.into_response_as(shape);
    if let Some(g) = guard {
        response.headers_mut().insert(GUARD, g);
    }
    with_headers(response, headers)
}

/// How long the request waited for capacity (0 when it did not), and the class it ran at
/// when it has one: on every answer, refusals too.
fn admission_headers(guard: &RecordGuard) -> Vec<(HeaderName, HeaderValue)> {
    let record = guard.record_ref();
    let mut out = vec![(QUEUE_MS, HeaderValue::from(record.queue_ms))];
    if let Some(class) = record
        .priority
        .as_deref()
        .and_then(|p| HeaderValue::from_str(p).ok())
    {
        out.push((PRIORITY, class));
    }
    out
}

/// Headers that say who answered and how, taken from the record before it is finished. On
/// every answer, so no header is built for an empty value and none goes through `format!`
/// where a number converts directly (issue 18).
pub(crate) fn served_headers(guard: &RecordGuard) -> Vec<(HeaderName, HeaderValue)> {
    let record = guard.record_ref();
    let mut out = Vec::with_capacity(16);
    let mut add = |name: HeaderName, value: &str| {
        if !value.is_empty() {
            if let Ok(v) = HeaderValue::from_str(value) {
                out.push((name, v));
            }
        }
    };
    let mut model = String::with_capacity(64);
    model.push_str(record.model.as_deref().unwrap_or_default());
    model.push_str("; deployment=");
    model.push_str(record.deployment.as_deref().unwrap_or_default());
    add(MODEL, &model);
    add(
        FALLBACK_FROM,
        record.fallback_from.as_deref().unwrap_or_default(),
    );
    add(ROUTE, guard.route_header().unwrap_or_default());
    add(CACHE, record.cache.as_deref().unwrap_or_default());
    add(GUARD, guard.guard_header().unwrap_or_default());
    out.push((ATTEMPTS, HeaderValue::from(record.attempts)));
    out.extend(guard.rate_limit_headers());
    out.extend(admission_headers(guard));
    out
}

pub(crate) fn with_headers(
    mut response: Response,
    headers: Vec<(HeaderName, HeaderValue)>,
) -> Response {
    response.headers_mut().extend(headers);
    response
}

/// What every model endpoint starts with: the pipeline this request keeps to its end, and
/// its record.
pub(crate) fn begin(
    app: &AppState,
    headers: &HeaderMap,
    endpoint: &'static str,
) -> (Arc<Pipeline>, RecordGuard) {
    let control = &app.control;
    control.running.begin(
        control.telemetry.clone(),
        request_id(headers),
        endpoint,
        headers,
    )
}

/// A whole JSON answer: headers from the record, then the record finished as a success.
pub(crate) fn answer_json<T: serde::Serialize>(record: RecordGuard, value: T) -> Response {
    let headers = served_headers(&record);
    record.finish(200, None);
    // Serialized into a `Vec`, not through axum's `Json` (a `BytesMut` writer, dearer for
    // serde_json's many small writes, as in `sse::framed`); the body takes the vector as is.
    let response = match serde_json::to_vec(&value) {
        Ok(body) => {
            let mut response = Response::new(Body::from(body));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        // Axum's answer to a value that cannot be JSON: a 500 naming the serializer's error.
        Err(_) => Json(value).into_response(),
    };
    with_headers(response, headers)
}

/// An escalation the client asked for in a header, stored with the request's record.
pub(crate) async fn escalate(app: &AppState, headers: &HeaderMap, record: &RecordGuard) {
    if let Some(escalation) =
        crate::control_plane::feedback::escalation_from_header(headers, record.record_ref())
    {
        let store = app.control.store.clone();
        // Rare, and the client asked for it: stored before the answer, like feedback.
        let stored = spawn_blocking(move || store.add_feedback(&escalation)).await;
        if !matches!(stored, Ok(Ok(_))) {
            tracing::warn!("storing the escalation from the header failed");
        }
    }
}

/// A streamed answer: server-sent events, with the headers saying who served it.
pub(crate) fn event_stream(
    body: impl futures::Stream<Item = Result<Bytes, std::convert::Infallible>> + Send + 'static,
    served: Vec<(HeaderName, HeaderValue)>,
) -> Response {
    let response = (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(body),
    )
        .into_response();
    with_headers(response, served)
}
