//! Model providers behind one trait: OpenAI-compatible servers, Anthropic's Messages API, and
//! the built-in simulator.
//!
//! A provider takes an OpenAI-shaped request whose `model` is already the upstream model name
//! and answers in OpenAI shapes, whole or as a stream of chunks. Adapters translate wire
//! formats and classify failures ([`ProviderError::retryable`]); they never retry, balance,
//! time out a whole request or account: that is the gateway's job, done once for all of them.

pub mod anthropic;
mod error;
mod http;
pub use error::parse_retry_after;
pub mod openai;
pub mod sim;
pub mod tokens;

use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use futures::Stream;
use switchyard_api::{
    ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse, EmbeddingsRequest,
    EmbeddingsResponse,
};
use switchyard_control::{ProviderSpec, Secret};

pub use error::ProviderError;

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

/// Resolves a provider's secret: the value of the environment variable its config names.
pub type SecretSource<'a> = &'a dyn Fn(&str) -> Option<String>;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("provider `{provider}`: environment variable {var} (named by api_key_env) is not set")]
    MissingSecret { provider: String, var: String },
    #[error("provider `{provider}`: {message}")]
    Invalid { provider: String, message: String },
}

/// Builds the provider a config entry describes. One shared HTTP client pool is used by all
/// HTTP providers.
pub fn build(
    name: &str,
    spec: &ProviderSpec,
    http: &reqwest::Client,
    secrets: SecretSource<'_>,
) -> Result<Arc<dyn ChatProvider>, BuildError> {
    let secret = |var: &Option<String>| -> Result<Option<Secret>, BuildError> {
        match var {
            None => Ok(None),
            Some(var) => secrets(var).map(|v| Some(Secret::new(v))).ok_or_else(|| {
                BuildError::MissingSecret {
                    provider: name.to_owned(),
                    var: var.clone(),
                }
            }),
        }
    };
    Ok(match spec {
        ProviderSpec::OpenAi(o) => Arc::new(
            openai::OpenAiProvider::new(o, secret(&o.api_key_env)?, http.clone()).map_err(
                |message| BuildError::Invalid {
                    provider: name.to_owned(),
                    message,
                },
            )?,
        ),
        ProviderSpec::Anthropic(a) => Arc::new(
            anthropic::AnthropicProvider::new(a, secret(&a.api_key_env)?, http.clone()).map_err(
                |message| BuildError::Invalid {
                    provider: name.to_owned(),
                    message,
                },
            )?,
        ),
        ProviderSpec::Sim(s) => Arc::new(sim::SimProvider::new(name, s)),
    })
}

/// The HTTP client all HTTP providers (and the gateway's other outbound calls: webhooks)
/// share: pooled, TCP_NODELAY, no overall timeout (the gateway times attempts itself), and
/// redirects not followed: a 3xx is the answer, so an upstream can never send the request,
/// with its API key and prompt, to an address the config does not name.
pub fn http_client(
    connect_timeout: std::time::Duration,
) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .tcp_nodelay(true)
        .connect_timeout(connect_timeout)
        .pool_idle_timeout(std::time::Duration::from_secs(90))
        .pool_max_idle_per_host(1024)
        .build()
}

/// Seconds since the Unix epoch, for `created` fields.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Entry points for fuzz targets and property tests: untrusted upstream bytes in, chunks out,
/// through the same parsing the adapters use. Each piece is delivered as one network read, so
/// callers can split a body anywhere.
#[doc(hidden)]
pub mod fuzzing {
    use bytes::Bytes;
    use eventsource_stream::Eventsource;
    use futures::StreamExt;

    use crate::{ChunkStream, ProviderError};

    fn events(
        pieces: Vec<Vec<u8>>,
    ) -> impl futures::Stream<Item = Result<eventsource_stream::Event, ProviderError>> + Send + 'static
    {
        futures::stream::iter(
            pieces
                .into_iter()
                .map(|p| Ok::<Bytes, std::convert::Infallible>(Bytes::from(p))),
        )
        .eventsource()
        .map(|e| e.map_err(|e| ProviderError::Decode(e.to_string())))
    }

    /// An OpenAI-compatible SSE body as the OpenAI adapter reads it.
    pub fn openai_stream(pieces: Vec<Vec<u8>>) -> ChunkStream {
        crate::openai::chunk_stream(events(pieces))
    }

    /// An Anthropic Messages SSE body as the Anthropic adapter translates it.
    pub fn anthropic_stream(pieces: Vec<Vec<u8>>) -> ChunkStream {
        crate::anthropic::chunk_stream(events(pieces), 0)
    }
}
