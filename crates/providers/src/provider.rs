//! The trait every provider implements, and the shapes of its answers.

use std::pin::Pin;

use async_trait::async_trait;
use futures::Stream;
use switchyard_api::{
    ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse, EmbeddingsRequest,
    EmbeddingsResponse,
};

use switchyard_admission::Class;

use crate::error::ProviderError;

/// Chunks of a streamed completion. The last chunk carries `usage` when the upstream reports
/// it: adapters always ask upstreams for it.
pub type ChunkStream =
    Pin<Box<dyn Stream<Item = Result<ChatCompletionChunk, ProviderError>> + Send>>;

pub enum ChatReply {
    Complete(ChatCompletionResponse),
    Stream(ChunkStream),
}

impl std::fmt::Debug for ChatReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChatReply::Complete(r) => f.debug_tuple("Complete").field(r).finish(),
            ChatReply::Stream(_) => f.write_str("Stream(..)"),
        }
    }
}

#[async_trait]
pub trait ChatProvider: Send + Sync + 'static {
    /// The config's `kind`: `openai`, `anthropic`, `bedrock`, `azure`, `gemini`, `vertex` or
    /// `sim`.
    fn kind(&self) -> &'static str;

    /// Whether one call returns `n > 1` choices. The gateway fans a request out into `n`
    /// calls of one choice each to a provider that cannot.
    fn native_choices(&self) -> bool {
        false
    }

    /// Whether the provider returns `logprobs` (and `top_logprobs`). The gateway refuses a
    /// request asking for them of one that cannot, rather than answer without them.
    fn logprobs(&self) -> bool {
        false
    }

    /// One attempt. `request.stream` decides the shape of the reply. The future is cancel-safe:
    /// dropping it (or the stream it returned) abandons the upstream call.
    async fn chat(&self, request: ChatCompletionRequest) -> Result<ChatReply, ProviderError> {
        self.chat_with(request, CallOptions::default()).await
    }

    /// One attempt, with what the gateway knows about the call beyond its body (adapters
    /// that have no use for it ignore it).
    async fn chat_with(
        &self,
        request: ChatCompletionRequest,
        options: CallOptions,
    ) -> Result<ChatReply, ProviderError>;

    /// Embeddings: [`ChatProvider::embed_with`] with no call options, as `chat` is
    /// `chat_with`.
    async fn embed(&self, request: EmbeddingsRequest) -> Result<EmbeddingsResponse, ProviderError> {
        self.embed_with(request, CallOptions::default()).await
    }

    /// One embeddings call, with what the gateway knows beyond its body (the trace's
    /// headers; adapters that have no use for it ignore it). For the kinds whose API serves
    /// embeddings; the others refuse (400 naming `model`), which is this default.
    async fn embed_with(
        &self,
        _request: EmbeddingsRequest,
        _options: CallOptions,
    ) -> Result<EmbeddingsResponse, ProviderError> {
        Err(ProviderError::unsupported(
            Some("model"),
            format!("the {} provider does not serve embeddings", self.kind()),
        ))
    }

    /// The host and port its calls go to (`server.address` in a trace); `None` for a
    /// provider in this process.
    fn server(&self) -> Option<(String, u16)> {
        None
    }
}

/// What the gateway knows about one call that its body does not say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallOptions {
    /// The request's priority class. An engine that schedules by priority (vLLM, the
    /// simulator's engine) is told it as its own number ([`engine_priority`]); `None` sends
    /// none.
    pub class: Option<Class>,
    /// Headers naming the call's trace (`traceparent`, `tracestate`), sent with it by the
    /// adapters that call over HTTP; empty when the request is not traced.
    pub trace: reqwest::header::HeaderMap,
}

/// A URL's host and port (the scheme's default when it names none).
pub(crate) fn server_of(url: &reqwest::Url) -> Option<(String, u16)> {
    Some((url.host_str()?.to_owned(), url.port_or_known_default()?))
}

/// A class as vLLM's `priority` (lower runs first; a request without one is 0): critical 0,
/// interactive 1, standard 2, batch 3, so unclassified traffic from other clients of the same
/// server ranks with critical, never behind the gateway's batch work.
pub fn engine_priority(class: Class) -> i64 {
    match class {
        Class::Critical => 0,
        Class::Interactive => 1,
        Class::Standard => 2,
        Class::Batch => 3,
    }
}

/// Seconds since the Unix epoch, for `created` fields.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
