//! Azure OpenAI: OpenAI's shapes at deployment URLs. Only the address and the credentials
//! differ from an OpenAI-compatible upstream, so the request, the answer and the stream go
//! through `openai`'s code: the model's upstream name is the deployment
//! (`{endpoint}/openai/deployments/{deployment}/chat/completions?api-version=…`), and the
//! caller is named by the `api-key` header or an Entra ID bearer token ([`crate::oauth`]).

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderName, AUTHORIZATION};
use switchyard_api::{ChatCompletionRequest, EmbeddingsRequest, EmbeddingsResponse};
use switchyard_control::{AzureSpec, Secret};

use crate::oauth::{ClientCredentials, TokenCache};
use crate::openai::{send_chat, send_embeddings, upstream_request};
use crate::{http, CallOptions, ChatProvider, ChatReply, ProviderError};

/// How the caller is named.
pub enum AzureCredential {
    /// The `api-key` header.
    ApiKey(Secret),
    /// An Entra ID application's client secret, for a bearer token.
    ClientSecret(Secret),
}

pub struct AzureProvider {
    /// `{endpoint}/openai/deployments`.
    deployments: reqwest::Url,
    api_version: String,
    /// The configured headers, and `api-key` (sensitive) when that is the credential.
    headers: HeaderMap,
    tokens: Option<Arc<TokenCache>>,
    http: reqwest::Client,
}

impl AzureProvider {
    pub fn new(
        spec: &AzureSpec,
        credential: AzureCredential,
        http: reqwest::Client,
    ) -> Result<Self, String> {
        let base = http::base_url(&spec.endpoint)?;
        let mut headers = http::header_map(&spec.headers)?;
        let tokens = match (credential, &spec.auth) {
            (AzureCredential::ApiKey(key), _) => {
                headers.insert(
                    HeaderName::from_static("api-key"),
                    http::secret_value(key.expose())?,
                );
                None
            }
            (AzureCredential::ClientSecret(secret), switchyard_control::AzureAuth::Entra(c)) => {
                let grant = ClientCredentials::new(&c.token_url, &c.client_id, secret, &c.scope)?;
                Some(TokenCache::new(grant, http.clone()))
            }
            (AzureCredential::ClientSecret(_), _) => {
                return Err("a client secret without an Entra ID application".to_owned())
            }
        };
        Ok(AzureProvider {
            deployments: http::endpoint(&base, "/openai/deployments")?,
            api_version: spec.api_version.clone(),
            headers,
            tokens,
            http,
        })
    }

    /// `{endpoint}/openai/deployments/{deployment}/{operation}?api-version=…`; the deployment
    /// is one path segment, escaped, whatever it holds.
    fn url(&self, deployment: &str, operation: &[&str]) -> Result<reqwest::Url, ProviderError> {
        let mut url = self.deployments.clone();
        url.path_segments_mut()
            .map_err(|()| ProviderError::Connect("the endpoint cannot take a path".into()))?
            .push(deployment)
            .extend(operation);
        url.query_pairs_mut()
            .append_pair("api-version", &self.api_version);
        Ok(url)
    }

    /// The headers of one call: with a fresh bearer token when that is the credential.
    async fn headers(&self) -> Result<HeaderMap, ProviderError> {
        let mut headers = self.headers.clone();
        if let Some(tokens) = &self.tokens {
            headers.insert(AUTHORIZATION, tokens.bearer().await?);
        }
        Ok(headers)
    }
}

#[async_trait]
impl ChatProvider for AzureProvider {
    fn kind(&self) -> &'static str {
        "azure"
    }

    /// Azure OpenAI takes OpenAI's own `n`, `logprobs` and `top_logprobs`.
    fn native_choices(&self) -> bool {
        true
    }

    fn logprobs(&self) -> bool {
        true
    }

    fn server(&self) -> Option<(String, u16)> {
        crate::provider::server_of(&self.deployments)
    }

    async fn chat_with(
        &self,
        request: ChatCompletionRequest,
        options: CallOptions,
    ) -> Result<ChatReply, ProviderError> {
        let url = self.url(&request.model, &["chat", "completions"])?;
        let headers = self.headers().await?;
        let body = upstream_request(request);
        send_chat(&self.http, &url, &headers, &options.trace, &body).await
    }

    async fn embed_with(
        &self,
        request: EmbeddingsRequest,
        options: CallOptions,
    ) -> Result<EmbeddingsResponse, ProviderError> {
        let url = self.url(&request.model, &["embeddings"])?;
        let headers = self.headers().await?;
        send_embeddings(&self.http, &url, &headers, &options.trace, &request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_control::AzureAuth;

    #[test]
    fn deployment_urls_and_a_hidden_key() {
        let spec = AzureSpec {
            endpoint: "https://res.openai.azure.com/".into(),
            api_version: "2024-10-21".into(),
            auth: AzureAuth::ApiKey {
                api_key_env: "K".into(),
            },
            headers: vec![],
            connect_timeout: std::time::Duration::from_secs(1),
        };
        let p = AzureProvider::new(
            &spec,
            AzureCredential::ApiKey(Secret::new("az-secret")),
            reqwest::Client::new(),
        )
        .unwrap();
        assert_eq!(
            p.url("gpt-4o", &["chat", "completions"]).unwrap().as_str(),
            "https://res.openai.azure.com/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
        );
        // A deployment name cannot leave its path segment.
        assert_eq!(
            p.url("../x?y", &["embeddings"]).unwrap().as_str(),
            "https://res.openai.azure.com/openai/deployments/..%2Fx%3Fy/embeddings?api-version=2024-10-21"
        );
        assert!(!format!("{:?}", p.headers).contains("az-secret"));
    }
}
