//! The cloud providers' entries as written: `kind = "bedrock"`, `"azure"`, `"gemini"` and
//! `"vertex"`.

use serde::Deserialize;
use std::collections::BTreeMap;

use super::common::{default_connect_timeout_ms, default_max_tokens, RawBreaker};

/// `kind = "bedrock"`: AWS Bedrock's Converse API, signed with SigV4.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBedrock {
    /// This provider's circuit breakers (one per deployment); fields given override `[resilience.breaker]`.
    #[serde(default)]
    pub breaker: RawBreaker,
    /// The AWS region; by default `AWS_REGION`, else `AWS_DEFAULT_REGION`.
    #[serde(default)]
    pub region: Option<String>,
    /// By default `https://bedrock-runtime.{region}.amazonaws.com` (a VPC endpoint, a proxy
    /// or a test server otherwise).
    #[serde(default)]
    pub base_url: Option<String>,
    /// The shared credentials file's profile when `AWS_PROFILE` is not set.
    #[serde(default)]
    pub profile: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
}

/// Azure OpenAI: deployment URLs under `endpoint`, `api-version`, and either an API key or
/// an Entra ID application (client credentials).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAzure {
    #[serde(default)]
    pub breaker: RawBreaker,
    /// The resource's endpoint, e.g. `https://my-resource.openai.azure.com`.
    pub endpoint: String,
    pub api_version: String,
    /// The `api-key` header's value; or give `tenant_id`, `client_id` and
    /// `client_secret_env` for an Entra ID token.
    #[serde(default)]
    pub api_key_env: Option<String>,
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// By default Microsoft's token endpoint for `tenant_id`.
    #[serde(default)]
    pub token_url: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
}

/// Google's Gemini API.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGemini {
    #[serde(default)]
    pub breaker: RawBreaker,
    #[serde(default = "default_gemini_url")]
    pub base_url: String,
    #[serde(default = "default_gemini_key_env")]
    pub api_key_env: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
}

/// Google Vertex AI: Gemini and Anthropic models of one project and location, with OAuth
/// from a service account key file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVertex {
    #[serde(default)]
    pub breaker: RawBreaker,
    pub project: String,
    pub location: String,
    /// By default `https://{location}-aiplatform.googleapis.com`.
    #[serde(default)]
    pub base_url: Option<String>,
    /// The service account key file; by default the file `GOOGLE_APPLICATION_CREDENTIALS`
    /// names.
    #[serde(default)]
    pub credentials_file: Option<String>,
    #[serde(default = "default_vertex_anthropic_version")]
    pub anthropic_version: String,
    #[serde(default = "default_max_tokens")]
    pub default_max_tokens: u32,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
}

fn default_gemini_url() -> String {
    "https://generativelanguage.googleapis.com".to_owned()
}
fn default_gemini_key_env() -> Option<String> {
    Some("GEMINI_API_KEY".to_owned())
}
fn default_vertex_anthropic_version() -> String {
    "vertex-2023-10-16".to_owned()
}
