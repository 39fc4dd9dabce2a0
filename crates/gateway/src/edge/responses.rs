//! The Responses API over HTTP (`POST /v1/responses`, `GET` and `DELETE
//! /v1/responses/{id}`, `GET /v1/responses/{id}/input_items`): framing only;
//! `data_plane::responses` reads, translates and keeps responses, and the request runs the
//! chat pipeline (`Running::chat_read`).

use std::sync::Arc;

use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use switchyard_api::responses::{from_chat, CreateResponse, ItemsQuery, ResponseStream};

use crate::data_plane::pipeline::{parse_json, ChatOutcome};
use crate::data_plane::responses::{self as responses, Prepared};
use crate::data_plane::stream::stream_items;
use crate::edge::access::{body_error, AdminQuery};
use crate::edge::answer::{answer_json, begin, escalate, event_stream, fail, served_headers};
use crate::edge::batches::json;
use crate::edge::state::AppState;
use crate::error::GatewayError;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/responses", post(create))
        .route(
            "/v1/responses/{id}",
            axum::routing::get(read).delete(delete),
        )
        .route(
            "/v1/responses/{id}/input_items",
            axum::routing::get(input_items),
        )
}

/// `POST /v1/responses`. Whatever goes wrong before the pipeline (the body, the stored
/// conversation) is handed to it as the request's error, so it is answered and counted as a
/// chat request's would be, after the key is checked.
async fn create(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (pipeline, mut record) = begin(&app, &headers, "responses");
    let body = match body {
        Ok(b) => b,
        Err(rejection) => return fail(record, body_error(rejection)),
    };
    let spec = pipeline.config.responses;
    let prepared = match pipeline.authenticate(&headers) {
        Ok(key) => match parse_json::<CreateResponse>(&body) {
            Ok(request) => {
                responses::prepare(&app.control.store, spec, &key.tenant, &request).await
            }
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    let (chat, answer) = match prepared {
        Ok(Prepared {
            chat,
            pending,
            keep,
        }) => (Ok(chat), Some((pending, keep))),
        Err(e) => (Err(e), None),
    };
    let running = &app.control.running;
    let outcome = running
        .chat_read(pipeline, &mut record, None, &headers, chat)
        .await;
    escalate(&app, &headers, &record).await;
    let (outcome, (pending, keep)) = match (outcome, answer) {
        (Ok(outcome), Some(answer)) => (outcome, answer),
        (Err(e), _) => return fail(record, e),
        // The pipeline answers an unreadable request with its error, never with an answer.
        (Ok(_), None) => return fail(record, GatewayError::invalid(None, "invalid request")),
    };
    match outcome {
        ChatOutcome::Complete(chat) => {
            let mut response = from_chat(pending, &chat);
            if let Some(keep) = keep {
                keep.keep(&mut response).await;
            }
            answer_json(record, response)
        }
        ChatOutcome::Stream(answer) => {
            let served = served_headers(&record);
            let model = record.record_ref().model.clone().unwrap_or_default();
            let items = stream_items(*answer, record, model);
            let events = responses::response_events(items, ResponseStream::new(pending), keep);
            event_stream(events, served)
        }
    }
}

/// The tenant of the key a request presents, and the response id its path names.
fn owned(
    app: &AppState,
    headers: &HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<(String, String), GatewayError> {
    let key = app.control.running.pipeline.load().authenticate(headers)?;
    let Path(id) = id.map_err(|e| {
        GatewayError::invalid(Some("response_id"), format!("invalid response id: {e}"))
    })?;
    Ok((key.tenant.clone(), id))
}

/// `GET /v1/responses/{id}`: a response the tenant stored.
async fn read(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    match owned(&app, &headers, id) {
        Ok((tenant, id)) => json(responses::get(&app.control.store, &tenant, &id).await),
        Err(e) => e.into_response(),
    }
}

/// `GET /v1/responses/{id}/input_items`: a page of the conversation it was made from.
async fn input_items(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    AdminQuery(query): AdminQuery<ItemsQuery>,
) -> Response {
    match owned(&app, &headers, id) {
        Ok((tenant, id)) => {
            json(responses::input_items(&app.control.store, &tenant, &id, &query).await)
        }
        Err(e) => e.into_response(),
    }
}

/// `DELETE /v1/responses/{id}`.
async fn delete(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    match owned(&app, &headers, id) {
        Ok((tenant, id)) => json(responses::delete(&app.control.store, &tenant, &id).await),
        Err(e) => e.into_response(),
    }
}
