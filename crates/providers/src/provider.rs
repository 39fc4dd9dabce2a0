//! The trait every provider implements, and the shapes of its answers.

use std::pin::Pin;

use async_trait::async_trait;
use futures::Stream;
use switchyard_api::{
    ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse, EmbeddingsRequest,
    EmbeddingsResponse,
};

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
    /// `openai`, `anthropic` or `sim`.
    fn kind(&self) -> &'static str;

    /// One attempt. `request.stream` decides the shape of the reply. The future is cancel-safe:
    /// dropping it (or the stream it returned) abandons the upstream call.
    async fn chat(&self, request: ChatCompletionRequest) -> Result<ChatReply, ProviderError>;

    async fn embed(&self, request: EmbeddingsRequest) -> Result<EmbeddingsResponse, ProviderError>;
}

/// Seconds since the Unix epoch, for `created` fields.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
