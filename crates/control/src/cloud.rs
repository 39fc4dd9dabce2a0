//! The cloud providers' validated entries: Azure OpenAI, Google's Gemini API, Vertex AI.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct AzureSpec {
    /// The resource's endpoint without a trailing slash.
    pub endpoint: String,
    pub api_version: String,
    pub auth: AzureAuth,
    pub headers: Vec<(String, String)>,
    pub connect_timeout: Duration,
}

/// How Azure OpenAI is told who calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AzureAuth {
    /// The `api-key` header, from this environment variable.
    ApiKey { api_key_env: String },
    /// An Entra ID bearer token, from client credentials.
    Entra(ClientCredentials),
}

/// An OAuth 2.0 client credentials grant (Entra ID's for an application).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    pub token_url: String,
    pub client_id: String,
    pub client_secret_env: String,
    pub scope: String,
}

/// Entra ID's token endpoint of a tenant.
pub fn entra_token_url(tenant_id: &str) -> String {
    format!("https://login.microsoftonline.com/{tenant_id}/oauth2/v2.0/token")
}

/// The scope of an Azure OpenAI token.
pub const AZURE_COGNITIVE_SCOPE: &str = "https://cognitiveservices.azure.com/.default";

#[derive(Debug, Clone)]
pub struct GeminiSpec {
    pub base_url: String,
    pub api_key_env: Option<String>,
    pub headers: Vec<(String, String)>,
    pub connect_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct VertexSpec {
    /// Without a trailing slash; by default the location's regional endpoint.
    pub base_url: String,
    pub project: String,
    pub location: String,
    /// The service account key file; `None`: the file `GOOGLE_APPLICATION_CREDENTIALS` names.
    pub credentials_file: Option<String>,
    /// `anthropic_version` in the bodies sent to Anthropic models.
    pub anthropic_version: String,
    pub default_max_tokens: u32,
    pub headers: Vec<(String, String)>,
    pub connect_timeout: Duration,
}

/// Vertex AI's endpoint for a location: regional, or the global one.
pub fn vertex_base_url(location: &str) -> String {
    if location == "global" {
        "https://aiplatform.googleapis.com".to_owned()
    } else {
        format!("https://{location}-aiplatform.googleapis.com")
    }
}
