//! The built-in simulated model provider.

use async_trait::async_trait;
use switchyard_api::{ChatCompletionRequest, EmbeddingsRequest, EmbeddingsResponse};
use switchyard_control::SimSpec;

use crate::{ChatProvider, ChatReply, ProviderError};

/// Not yet implemented: being written.
pub struct SimProvider;

impl SimProvider {
    pub fn new(_name: &str, _spec: &SimSpec) -> Self {
        SimProvider
    }
}

#[async_trait]
impl ChatProvider for SimProvider {
    fn kind(&self) -> &'static str {
        "sim"
    }

    async fn chat(&self, _request: ChatCompletionRequest) -> Result<ChatReply, ProviderError> {
        Err(ProviderError::Unsupported("not yet implemented".into()))
    }

    async fn embed(
        &self,
        _request: EmbeddingsRequest,
    ) -> Result<EmbeddingsResponse, ProviderError> {
        Err(ProviderError::Unsupported("not yet implemented".into()))
    }
}
