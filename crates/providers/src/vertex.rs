//! Vertex AI: Gemini models and Anthropic models of one project and location, called with a
//! service account's OAuth token ([`crate::oauth`]).
//!
//! A model whose name starts with `claude` is Anthropic's, at
//! `…/publishers/anthropic/models/{model}:rawPredict` (`:streamRawPredict`), with the Messages
//! request of `switchyard_api::anthropic::outbound` less its `model` and with Vertex's
//! `anthropic_version`, and its answer and stream read as the `anthropic` provider reads them.
//! Any other model is Google's, at `…/publishers/google/models/{model}:generateContent`,
//! spoken as the `gemini` provider speaks it.

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::header::{HeaderMap, AUTHORIZATION};
use serde_json::Value;
use switchyard_api::anthropic::{outbound as anthropic_outbound, MessagesResponse};
use switchyard_api::ChatCompletionRequest;
use switchyard_control::VertexSpec;

use crate::gemini::{generate, model_url};
use crate::oauth::{ServiceAccount, TokenCache};
use crate::{anthropic, http, unix_now, CallOptions, ChatProvider, ChatReply, ProviderError};

pub struct VertexProvider {
    /// `{base}/v1/projects/{project}/locations/{location}/publishers/google/models`.
    google: reqwest::Url,
    /// The same for `publishers/anthropic`.
    anthropic: reqwest::Url,
    /// The configured headers; the bearer token is added per call.
    headers: HeaderMap,
    tokens: Arc<TokenCache>,
    anthropic_version: String,
    default_max_tokens: u32,
    http: reqwest::Client,
}

impl VertexProvider {
    /// `key_file` is the service account key file's text.
    pub fn new(spec: &VertexSpec, key_file: &str, http: reqwest::Client) -> Result<Self, String> {
        let base = http::base_url(&spec.base_url)?;
        let publishers = format!(
            "/v1/projects/{}/locations/{}/publishers",
            spec.project, spec.location
        );
        let account = ServiceAccount::from_key_file(key_file)?;
        Ok(VertexProvider {
            google: http::endpoint(&base, &format!("{publishers}/google/models"))?,
            anthropic: http::endpoint(&base, &format!("{publishers}/anthropic/models"))?,
            headers: http::header_map(&spec.headers)?,
            tokens: TokenCache::new(account, http.clone()),
            anthropic_version: spec.anthropic_version.clone(),
            default_max_tokens: spec.default_max_tokens,
            http,
        })
    }

    async fn headers(&self) -> Result<HeaderMap, ProviderError> {
        let mut headers = self.headers.clone();
        headers.insert(AUTHORIZATION, self.tokens.bearer().await?);
        Ok(headers)
    }

    /// An Anthropic model: a Messages request without `model`, with `anthropic_version`.
    async fn anthropic_call(
        &self,
        request: ChatCompletionRequest,
        headers: &HeaderMap,
        trace: &HeaderMap,
    ) -> Result<ChatReply, ProviderError> {
        let streaming = request.is_stream();
        let model = request.model.clone();
        let messages = anthropic_outbound::to_messages(request, self.default_max_tokens)?;
        let mut body = serde_json::to_value(messages)
            .map_err(|e| ProviderError::Decode(format!("the request could not be written: {e}")))?;
        if let Value::Object(fields) = &mut body {
            fields.remove("model");
            fields.insert(
                "anthropic_version".into(),
                Value::String(self.anthropic_version.clone()),
            );
        }
        let method = if streaming {
            "streamRawPredict"
        } else {
            "rawPredict"
        };
        let url = model_url(&self.anthropic, &model, method)?;
        let response = http::post_json(&self.http, &url, headers, trace, &body).await?;
        if streaming {
            let events = http::sse_events(response.bytes_stream());
            Ok(ChatReply::Stream(anthropic::chunk_stream(
                events,
                unix_now(),
            )))
        } else {
            let reply: MessagesResponse = http::read_json(response).await?;
            Ok(ChatReply::Complete(anthropic_outbound::to_chat_response(
                reply,
                unix_now(),
            )))
        }
    }
}

/// Whether Vertex serves `model` as one of Anthropic's.
fn is_anthropic(model: &str) -> bool {
    model.starts_with("claude")
}

#[async_trait]
impl ChatProvider for VertexProvider {
    fn kind(&self) -> &'static str {
        "vertex"
    }

    /// Both publishers' models are on the one host.
    fn server(&self) -> Option<(String, u16)> {
        crate::provider::server_of(&self.google)
    }

    async fn chat_with(
        &self,
        request: ChatCompletionRequest,
        options: CallOptions,
    ) -> Result<ChatReply, ProviderError> {
        // Refused before any token is fetched: Anthropic's models give one choice.
        if is_anthropic(&request.model) && request.n.is_some_and(|n| n > 1) {
            return Err(ProviderError::unsupported(
                Some("n"),
                "anthropic models return one choice per request (n > 1)",
            ));
        }
        let headers = self.headers().await?;
        if is_anthropic(&request.model) {
            self.anthropic_call(request, &headers, &options.trace).await
        } else {
            generate(&self.http, &self.google, &headers, &options.trace, request).await
        }
    }
}
