//! The cloud provider kinds (`azure`, `gemini`, `vertex`): read with their defaults, and each
//! mistake named with its line and field.

#![expect(clippy::panic, reason = "test code")]

use switchyard_control::{parse, AzureAuth, ConfigError, ProviderSpec};

const CLOUD: &str = r#"
[providers.azure-key]
kind = "azure"
endpoint = "https://res.openai.azure.com/"
api_version = "2024-10-21"
api_key_env = "AZURE_OPENAI_API_KEY"

[providers.azure-entra]
kind = "azure"
endpoint = "https://res.openai.azure.com"
api_version = "2024-10-21"
tenant_id = "contoso"
client_id = "app-1"
client_secret_env = "AZURE_CLIENT_SECRET"

[providers.gemini]
kind = "gemini"

[providers.vertex]
kind = "vertex"
project = "my-project"
location = "europe-west4"
credentials_file = "/etc/switchyard/vertex-sa.json"

[models.m]
deployments = [{ provider = "gemini", upstream_model = "gemini-2.5-flash" }]
"#;

fn errors(text: &str) -> Vec<String> {
    match parse(text, "bad.toml") {
        Err(ConfigError::Invalid(d)) => d.iter().map(ToString::to_string).collect(),
        other => panic!("expected diagnostics, got {other:?}"),
    }
}

#[test]
fn cloud_kinds_read_with_their_defaults() {
    let cfg = parse(CLOUD, "cloud.toml").expect("valid");
    let ProviderSpec::Azure(key) = &cfg.providers["azure-key"] else {
        panic!("azure")
    };
    assert_eq!(key.endpoint, "https://res.openai.azure.com");
    assert_eq!(
        key.auth,
        AzureAuth::ApiKey {
            api_key_env: "AZURE_OPENAI_API_KEY".into()
        }
    );
    let ProviderSpec::Azure(entra) = &cfg.providers["azure-entra"] else {
        panic!("azure")
    };
    let AzureAuth::Entra(c) = &entra.auth else {
        panic!("entra")
    };
    assert_eq!(
        c.token_url,
        "https://login.microsoftonline.com/contoso/oauth2/v2.0/token"
    );
    assert_eq!(c.scope, "https://cognitiveservices.azure.com/.default");
    let ProviderSpec::Gemini(g) = &cfg.providers["gemini"] else {
        panic!("gemini")
    };
    assert_eq!(g.base_url, "https://generativelanguage.googleapis.com");
    assert_eq!(g.api_key_env.as_deref(), Some("GEMINI_API_KEY"));
    let ProviderSpec::Vertex(v) = &cfg.providers["vertex"] else {
        panic!("vertex")
    };
    assert_eq!(v.base_url, "https://europe-west4-aiplatform.googleapis.com");
    assert_eq!(v.anthropic_version, "vertex-2023-10-16");
    assert_eq!(v.default_max_tokens, 4096);
    assert_eq!(cfg.providers["vertex"].kind(), "vertex");
}

#[test]
fn cloud_mistakes_name_line_and_field() {
    let cases = [
        // Both an API key and an Entra application.
        (
            CLOUD.replace(
                "api_version = \"2024-10-21\"\napi_key_env",
                "api_version = \"2024-10-21\"\nclient_id = \"x\"\napi_key_env",
            ),
            "`providers.azure-key`: give exactly one of `api_key_env`",
        ),
        // An Entra application without a tenant or token URL.
        (
            CLOUD.replace("tenant_id = \"contoso\"\n", ""),
            "`providers.azure-entra.tenant_id`: give the Entra ID tenant",
        ),
        (
            CLOUD.replace(
                "api_version = \"2024-10-21\"\napi_key_env",
                "api_version = \" \"\napi_key_env",
            ),
            "`providers.azure-key.api_version`: must name an Azure OpenAI API version",
        ),
        (
            CLOUD.replace("location = \"europe-west4\"", "location = \"europe/west4\""),
            "`providers.vertex.location`: `europe/west4` must be letters, digits",
        ),
        (
            CLOUD.replace(
                "kind = \"gemini\"",
                "kind = \"gemini\"\nbase_url = \"ftp://x\"",
            ),
            "`providers.gemini.base_url`: `ftp://x` is not an http:// or https:// URL",
        ),
        (
            CLOUD.replace("kind = \"gemini\"", "kind = \"gemini\"\nkey_env = \"X\""),
            "`providers.gemini.key_env`: unknown field `key_env`",
        ),
    ];
    for (text, expected) in cases {
        let errs = errors(&text);
        assert!(
            errs.iter()
                .any(|e| e.contains(expected) && e.starts_with("bad.toml:")),
            "{expected}: {errs:#?}"
        );
    }
}
