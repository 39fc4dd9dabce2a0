//! Building a provider from its config entry, with the HTTP client all HTTP providers share.

use std::sync::Arc;

use switchyard_control::{AzureAuth, ProviderSpec, Secret};

use crate::azure::{self, AzureCredential};
use crate::provider::ChatProvider;
use crate::{anthropic, bedrock, gemini, openai, sim, vertex};

/// Where Google's tools look for a service account key file when none is configured.
const CREDENTIALS_VAR: &str = "GOOGLE_APPLICATION_CREDENTIALS";

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
        var.as_deref()
            .map(|var| required(name, secrets, var))
            .transpose()
    };
    Ok(match spec {
        ProviderSpec::OpenAi(o) => Arc::new(
            openai::OpenAiProvider::new(o, secret(&o.api_key_env)?, http.clone())
                .map_err(|message| invalid(name, message))?,
        ),
        ProviderSpec::Anthropic(a) => Arc::new(
            anthropic::AnthropicProvider::new(a, secret(&a.api_key_env)?, http.clone())
                .map_err(|message| invalid(name, message))?,
        ),
        ProviderSpec::Bedrock(b) => Arc::new(
            bedrock::BedrockProvider::new(b, secrets, http.clone())
                .map_err(|message| invalid(name, message))?,
        ),
        ProviderSpec::Sim(s) => Arc::new(sim::SimProvider::new(name, s)),
        ProviderSpec::Azure(a) => {
            let credential = match &a.auth {
                AzureAuth::ApiKey { api_key_env } => {
                    AzureCredential::ApiKey(required(name, secrets, api_key_env)?)
                }
                AzureAuth::Entra(c) => {
                    AzureCredential::ClientSecret(required(name, secrets, &c.client_secret_env)?)
                }
            };
            Arc::new(
                azure::AzureProvider::new(a, credential, http.clone())
                    .map_err(|message| invalid(name, message))?,
            )
        }
        ProviderSpec::Gemini(g) => Arc::new(
            gemini::GeminiProvider::new(g, secret(&g.api_key_env)?, http.clone())
                .map_err(|message| invalid(name, message))?,
        ),
        ProviderSpec::Vertex(v) => {
            let path = match &v.credentials_file {
                Some(path) => path.clone(),
                None => required(name, secrets, CREDENTIALS_VAR)?
                    .expose()
                    .to_owned(),
            };
            // The key file is read once, here: a rotated key takes a config reload.
            let key_file = std::fs::read_to_string(&path).map_err(|e| {
                invalid(
                    name,
                    format!("cannot read the credentials file `{path}`: {e}"),
                )
            })?;
            Arc::new(
                vertex::VertexProvider::new(v, &key_file, http.clone()).map_err(|message| {
                    invalid(name, format!("credentials file `{path}`: {message}"))
                })?,
            )
        }
    })
}

fn invalid(provider: &str, message: String) -> BuildError {
    BuildError::Invalid {
        provider: provider.to_owned(),
        message,
    }
}

/// The secret in the environment variable `var`, which must be set.
fn required(provider: &str, secrets: SecretSource<'_>, var: &str) -> Result<Secret, BuildError> {
    secrets(var)
        .map(Secret::new)
        .ok_or_else(|| BuildError::MissingSecret {
            provider: provider.to_owned(),
            var: var.to_owned(),
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
