//! Building a provider from its config entry, with the HTTP client all HTTP providers share.

use std::sync::Arc;

use switchyard_control::{ProviderSpec, Secret};

use crate::provider::ChatProvider;
use crate::{anthropic, bedrock, openai, sim};

/// Resolves a provider's secret: the value of the environment variable its config names (and,
/// for `bedrock`, the AWS variables of its region and credentials chain).
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
        ProviderSpec::Bedrock(b) => Arc::new(
            bedrock::BedrockProvider::new(b, secrets, http.clone()).map_err(|message| {
                BuildError::Invalid {
                    provider: name.to_owned(),
                    message,
                }
            })?,
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
