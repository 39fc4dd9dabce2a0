//! Anthropic's Messages API: `POST /v1/messages` and `POST /v1/messages/count_tokens`, so
//! Anthropic's SDKs and Claude Code can use the gateway unchanged. A Messages request is read
//! and translated to a chat request at the door (`switchyard_api::anthropic::inbound`), then
//! runs every stage a chat completion runs (`Running::chat_read`: keys, limits, budgets,
//! guards, routing, cache, rollouts, records, SLOs) on whichever provider serves the model;
//! the answer, or the stream's items, are written back as Messages, and errors in Anthropic's
//! shape. The key comes as `x-api-key` (Anthropic's SDKs) or `Authorization: Bearer`.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use switchyard_api::anthropic::{inbound, ErrorBody, MessagesRequest, StreamEvent, TokenCount};
use switchyard_api::{sse, ChatCompletionRequest};

use crate::data_plane::pipeline::{parse_json, ChatOutcome};
use crate::data_plane::record::RecordGuard;
use crate::data_plane::stream::{stream_items, StreamAnswer, StreamItem};
use crate::edge::access::body_error;
use crate::edge::answer::{answer_json, begin, escalate, event_stream, fail_as, served_headers};
use crate::edge::state::AppState;
use crate::error::{GatewayError, Shape};
use crate::tasks::spawn_blocking;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/messages", post(messages))
        .route("/v1/messages/count_tokens", post(count_tokens))
}

async fn messages(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (pipeline, mut record) = begin(&app, &headers, "messages");
    let body = match body {
        Ok(b) => b,
        Err(rejection) => return fail_as(record, body_error(rejection), Shape::Anthropic),
    };
    let request = read_request(&body, true);
    let running = &app.control.running;
    let outcome = running
        .chat_read(pipeline, &mut record, None, &headers, request)
        .await;
    escalate(&app, &headers, &record).await;
    match outcome {
        Ok(ChatOutcome::Complete(response)) => {
            answer_json(record, inbound::to_messages_response(response))
        }
        Ok(ChatOutcome::Stream(answer)) => {
            let served = served_headers(&record);
            let model = record.record_ref().model.clone().unwrap_or_default();
            event_stream(event_body(*answer, record, model), served)
        }
        Err(e) => fail_as(record, e, Shape::Anthropic),
    }
}

/// A Messages request body as the chat request the pipeline runs. `max_tokens` is required
/// by `/v1/messages` (as Anthropic requires it), not by `count_tokens`.
fn read_request(
    body: &[u8],
    needs_max_tokens: bool,
) -> Result<ChatCompletionRequest, GatewayError> {
    let request: MessagesRequest = parse_json(body)?;
    if needs_max_tokens && request.max_tokens.is_none() {
        return Err(GatewayError::invalid(
            Some("max_tokens"),
            "`max_tokens` is required",
        ));
    }
    inbound::to_chat_request(request)
        .map_err(|e| GatewayError::invalid(e.param.as_deref(), e.message))
}

/// The chat stream's items as Messages events (`inbound::EventWriter`; the usage chunk, which
/// the translated request always asks for, is kept for `message_delta`). A failure mid-stream
/// is Anthropic's `error` event, after which nothing follows.
fn event_body(
    answer: StreamAnswer,
    record: RecordGuard,
    model: String,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
    let mut writer = inbound::EventWriter::new();
    stream_items(answer, record, model)
        .map(move |item| {
            let mut out = BytesMut::new();
            let events = match item {
                StreamItem::Chunk(chunk) => writer.chunk(&chunk),
                StreamItem::Failed(failed) => {
                    let body = ErrorBody::new("api_error", failed.error.message);
                    if let Ok(b) = sse::named_event("error", &body) {
                        out.extend_from_slice(&b);
                    }
                    Vec::new()
                }
                StreamItem::Done => writer.finish(),
            };
            for event in &events {
                write_event(&mut out, event);
            }
            out.freeze()
        })
        // A chunk that makes no event (the usage chunk) sends nothing.
        .filter(|bytes| std::future::ready(!bytes.is_empty()))
        .map(Ok)
}

fn write_event(out: &mut BytesMut, event: &StreamEvent) {
    if let Ok(b) = sse::named_event(event.name(), event) {
        out.extend_from_slice(&b);
    }
}

/// `POST /v1/messages/count_tokens`: the prompt's tokens as the gateway counts them when an
/// upstream reports none (o200k BPE: close to, not the same as, Claude's own count), for a
/// model or route the key may use. No model is called and no request is recorded.
async fn count_tokens(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let request = (|| {
        let pipeline = app.control.running.pipeline.load();
        // Authentication answers before parsing does, as on every model endpoint.
        pipeline.authenticate(&headers)?;
        let request = read_request(&body.map_err(body_error)?, false)?;
        pipeline.model(&headers, &request.model)?;
        Ok::<_, GatewayError>(request)
    })();
    let request = match request {
        Ok(r) => r,
        Err(e) => return e.into_response_as(Shape::Anthropic),
    };
    // A long conversation takes milliseconds to count: off the async threads.
    let counted = spawn_blocking(move || {
        use switchyard_providers::tokens::{count_messages, count_text, warm_up};
        // Counting is this endpoint's whole answer: wait for the tokenizer (loaded on first
        // need, not at start) rather than answer the estimate.
        warm_up();
        let tools = request.tools.as_ref().map_or(0, |t| {
            count_text(&serde_json::to_string(t).unwrap_or_default())
        });
        count_messages(&request.messages).saturating_add(tools)
    })
    .await;
    match counted {
        Ok(input_tokens) => Json(TokenCount { input_tokens }).into_response(),
        Err(_) => GatewayError::new(
            crate::error::ErrorKind::Internal,
            "internal_error",
            "the tokens could not be counted",
        )
        .into_response_as(Shape::Anthropic),
    }
}
