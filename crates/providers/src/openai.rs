//! OpenAI-compatible upstreams (vLLM, llama.cpp server, Ollama, TGI, OpenAI, hosted APIs).

use async_trait::async_trait;
use switchyard_api::{ChatCompletionRequest, EmbeddingsRequest, EmbeddingsResponse};
use switchyard_control::{OpenAiSpec, Secret};

use crate::{ChatProvider, ChatReply, ProviderError};

/// Not yet implemented: being written.
pub struct OpenAiProvider;

impl OpenAiProvider {
    pub fn new(
        _spec: &OpenAiSpec,
        _key: Option<Secret>,
        _http: reqwest::Client,
    ) -> Result<Self, String> {
        Ok(OpenAiProvider)
    }
}

#[async_trait]
impl ChatProvider for OpenAiProvider {
    fn kind(&self) -> &'static str {
        "openai"
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
