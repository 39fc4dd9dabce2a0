//! Anthropic's Messages API, translated to and from OpenAI shapes.

use async_trait::async_trait;
use switchyard_api::{ChatCompletionRequest, EmbeddingsRequest, EmbeddingsResponse};
use switchyard_control::{AnthropicSpec, Secret};

use crate::{ChatProvider, ChatReply, ProviderError};

/// Not yet implemented: being written.
pub struct AnthropicProvider;

impl AnthropicProvider {
    pub fn new(
        _spec: &AnthropicSpec,
        _key: Option<Secret>,
        _http: reqwest::Client,
    ) -> Result<Self, String> {
        Ok(AnthropicProvider)
    }
}

#[async_trait]
impl ChatProvider for AnthropicProvider {
    fn kind(&self) -> &'static str {
        "anthropic"
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
