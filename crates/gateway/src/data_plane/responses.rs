//! The Responses API (`/v1/responses`) over the chat pipeline. A request is read and
//! translated at the edge of the pipeline (`switchyard_api::responses`), so it passes every
//! stage a chat request passes (keys, limits, budgets, guards, routing, cache, rollouts,
//! records, SLOs) and reaches any provider; the chat answer, whole or streamed, is
//! translated back.
//!
//! 1. [`prepare`]: the conversation of `previous_response_id` is read from the store, for
//!    the caller's tenant only (another tenant's id is "not found"), and the request's input
//!    put after it; a conversation to be stored that is already over `[responses]
//!    max_stored_kb` is refused before anything is spent.
//! 2. The chat request runs (`Running::chat_read`).
//! 3. The answer is translated ([`switchyard_api::responses::from_chat`], or
//!    [`response_events`] for a stream) and, with `store` (OpenAI's default), kept with its
//!    conversation ([`Keep`]), before the client reads the final object (or the stream's
//!    last event), so an id it is given can be continued at once. A response that does not
//!    fit the bound, or that the store refused, is answered with `store: false`.
//!
//! Stored responses hold what the client sent and was answered, unmasked: continuing a
//! conversation needs its values. Masking applies again to every turn before a provider or
//! the cache sees it.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use switchyard_api::responses::{
    self as api, CreateResponse, Item, ResponseDeleted, ResponseObject, ResponseStream,
};
use switchyard_api::ChatCompletionRequest;
use switchyard_control::ResponsesSpec;
use switchyard_store::{Store, StoredResponse};

use crate::data_plane::stream::StreamItem;
use crate::error::{ErrorKind, GatewayError};
use crate::tasks::spawn_blocking;

/// A Responses request made ready for the chat pipeline.
pub struct Prepared {
    pub chat: ChatCompletionRequest,
    /// The response before its output.
    pub pending: ResponseObject,
    /// Where the response is kept, when it is to be.
    pub keep: Option<Keep>,
}

/// A response to keep: its tenant and conversation, and the bound.
pub struct Keep {
    store: Arc<dyn Store>,
    tenant: String,
    /// The conversation up to this turn, as JSON.
    context: String,
    max_bytes: usize,
}

/// A new response id, with OpenAI's prefix; time-ordered (UUID v7), so the stored
/// responses' key takes each insert at its end.
pub fn new_id() -> String {
    format!("resp_{}", uuid::Uuid::now_v7().simple())
}

/// 1. above: the stored conversation read for `tenant`, the request translated.
pub async fn prepare(
    store: &Arc<dyn Store>,
    spec: ResponsesSpec,
    tenant: &str,
    request: &CreateResponse,
) -> Result<Prepared, GatewayError> {
    let earlier = match &request.previous_response_id {
        Some(id) => {
            let previous = read(store, tenant, id)
                .await
                .map_err(|e| e.with_param("previous_response_id"))?;
            conversation_of(&previous)?
        }
        None => Vec::new(),
    };
    let turn = api::to_chat(request, earlier).map_err(invalid)?;
    let created = chrono::Utc::now().timestamp();
    let pending = ResponseObject::pending(new_id(), created, request);
    let keep = if request.stores() {
        let context = serde_json::to_string(&turn.context).map_err(internal)?;
        if context.len() > spec.max_stored_bytes {
            let param = match request.previous_response_id {
                Some(_) => "previous_response_id",
                None => "input",
            };
            return Err(GatewayError::invalid(
                Some(param),
                format!(
                    "the conversation is {} bytes, over the {} a stored response may hold; \
                     start a new conversation, or send it with `store: false`",
                    context.len(),
                    spec.max_stored_bytes
                ),
            ));
        }
        Some(Keep {
            store: store.clone(),
            tenant: tenant.to_owned(),
            context,
            max_bytes: spec.max_stored_bytes,
        })
    } else {
        None
    };
    Ok(Prepared {
        chat: turn.chat,
        pending,
        keep,
    })
}

/// The conversation a stored response continues: its context, then its output.
fn conversation_of(previous: &StoredResponse) -> Result<Vec<Item>, GatewayError> {
    let mut items: Vec<Item> = serde_json::from_str(&previous.context).map_err(internal)?;
    let body: ResponseObject = serde_json::from_str(&previous.body).map_err(internal)?;
    items.extend(body.output_items());
    Ok(items)
}

impl Keep {
    /// Stores `response` (3. above); when it cannot be, says so in its `store` field.
    pub async fn keep(self, response: &mut ResponseObject) {
        let Ok(body) = serde_json::to_string(response) else {
            response.store = false;
            return;
        };
        if body.len() + self.context.len() > self.max_bytes {
            tracing::warn!(
                bytes = body.len() + self.context.len(),
                "a response is over `[responses] max_stored_kb` and is not stored"
            );
            response.store = false;
            return;
        }
        let row = StoredResponse {
            id: response.id.clone(),
            tenant: self.tenant,
            created_ms: response.created_at.saturating_mul(1000),
            body,
            context: self.context,
        };
        let store = self.store;
        let stored = spawn_blocking(move || store.put_response(&row)).await;
        if !matches!(stored, Ok(Ok(()))) {
            tracing::warn!("storing a response failed; it is answered with `store: false`");
            response.store = false;
        }
    }
}

/// `GET /v1/responses/{id}`: the tenant's stored response.
pub async fn get(
    store: &Arc<dyn Store>,
    tenant: &str,
    id: &str,
) -> Result<ResponseObject, GatewayError> {
    let stored = read(store, tenant, id).await?;
    serde_json::from_str(&stored.body).map_err(internal)
}

/// `GET /v1/responses/{id}/input_items`: a page of the conversation the tenant's stored
/// response was made from.
pub async fn input_items(
    store: &Arc<dyn Store>,
    tenant: &str,
    id: &str,
    query: &api::ItemsQuery,
) -> Result<api::ItemList, GatewayError> {
    let stored = read(store, tenant, id).await?;
    let context: Vec<Item> = serde_json::from_str(&stored.context).map_err(internal)?;
    api::items::page(id, &context, query).map_err(invalid)
}

/// `DELETE /v1/responses/{id}`: the tenant's stored response deleted.
pub async fn delete(
    store: &Arc<dyn Store>,
    tenant: &str,
    id: &str,
) -> Result<ResponseDeleted, GatewayError> {
    let (store, t, i) = (store.clone(), tenant.to_owned(), id.to_owned());
    let deleted = spawn_blocking(move || store.delete_response(&t, &i))
        .await
        .map_err(|_| unavailable())?
        .map_err(|e| {
            tracing::error!(error = %e, "deleting a stored response failed");
            unavailable()
        })?;
    if !deleted {
        return Err(not_found(id));
    }
    Ok(ResponseDeleted {
        id: id.to_owned(),
        object: "response.deleted".to_owned(),
        deleted: true,
    })
}

async fn read(
    store: &Arc<dyn Store>,
    tenant: &str,
    id: &str,
) -> Result<StoredResponse, GatewayError> {
    let (store, t, i) = (store.clone(), tenant.to_owned(), id.to_owned());
    spawn_blocking(move || store.response(&t, &i))
        .await
        .map_err(|_| unavailable())?
        .map_err(|e| {
            tracing::error!(error = %e, "reading a stored response failed");
            unavailable()
        })?
        .ok_or_else(|| not_found(id))
}

/// A request the translation refused, as the 400 naming its field.
fn invalid(e: api::Invalid) -> GatewayError {
    GatewayError::invalid(Some(e.param.as_str()), e.message)
}

fn not_found(id: &str) -> GatewayError {
    let shown: String = id.chars().take(100).collect();
    GatewayError::new(
        ErrorKind::NotFound,
        "response_not_found",
        format!("no response with id `{shown}` is stored for this key's tenant"),
    )
}

fn unavailable() -> GatewayError {
    GatewayError::store_unavailable("stored responses cannot be read now; retry")
}

fn internal(e: serde_json::Error) -> GatewayError {
    GatewayError::new(
        ErrorKind::Internal,
        "stored_response_unreadable",
        format!("a stored response could not be read: {e}"),
    )
}

/// A chat stream's items as the Responses API's events (`switchyard_api::responses::events`
/// has their order), the response kept before its last event when `keep` says so.
pub fn response_events(
    items: impl Stream<Item = StreamItem> + Send + 'static,
    writer: ResponseStream,
    keep: Option<Keep>,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
    struct State<S> {
        items: std::pin::Pin<Box<S>>,
        writer: ResponseStream,
        keep: Option<Keep>,
        started: bool,
        ended: bool,
    }
    let state = State {
        items: Box::pin(items),
        writer,
        keep,
        started: false,
        ended: false,
    };
    futures::stream::unfold(state, |mut s| async move {
        if !s.started {
            s.started = true;
            let events = s.writer.start();
            return Some((frames(&events), s));
        }
        loop {
            if s.ended {
                return None;
            }
            let mut events = match s.items.next().await {
                Some(StreamItem::Chunk(chunk)) => s.writer.push(&chunk),
                Some(StreamItem::Failed(body)) => {
                    s.ended = true;
                    let code = body.error.code.as_deref().unwrap_or("server_error");
                    s.writer.fail(code, &body.error.message)
                }
                Some(StreamItem::Done) | None => {
                    s.ended = true;
                    s.writer.finish()
                }
            };
            if s.ended {
                if let Some(keep) = s.keep.take() {
                    let mut response = s.writer.response().clone();
                    keep.keep(&mut response).await;
                    if !response.store {
                        if let Some(last) = events.last_mut() {
                            last.data["response"]["store"] = false.into();
                        }
                    }
                }
            }
            if !events.is_empty() {
                return Some((frames(&events), s));
            }
        }
    })
}

fn frames(events: &[api::Event]) -> Result<Bytes, Infallible> {
    let mut out = bytes::BytesMut::new();
    for e in events {
        if let Ok(b) = switchyard_api::sse::named_event(e.kind, &e.data) {
            out.extend_from_slice(&b);
        }
    }
    Ok(out.freeze())
}
