//! `[providers]` of the cloud kinds: `azure`, `gemini`, `vertex`.

use std::time::Duration;

use super::checker::Checker;
use super::values::{env_name, http_url};
use crate::cloud::{
    entra_token_url, vertex_base_url, AzureAuth, AzureSpec, ClientCredentials, GeminiSpec,
    VertexSpec, AZURE_COGNITIVE_SCOPE,
};
use crate::raw::{RawAzure, RawGemini, RawVertex};

pub(super) fn azure(c: &mut Checker, path: &str, a: &RawAzure) -> Option<AzureSpec> {
    let endpoint = http_url(c, &format!("{path}.endpoint"), &a.endpoint);
    c.ensure(
        !a.api_version.trim().is_empty(),
        format!("{path}.api_version"),
        "must name an Azure OpenAI API version, e.g. \"2024-10-21\"",
    );
    env_name(c, &format!("{path}.api_key_env"), &a.api_key_env);
    env_name(
        c,
        &format!("{path}.client_secret_env"),
        &a.client_secret_env,
    );
    let entra = a.tenant_id.is_some() || a.client_id.is_some() || a.client_secret_env.is_some();
    let auth = match (&a.api_key_env, entra) {
        (Some(var), false) => AzureAuth::ApiKey {
            api_key_env: var.clone(),
        },
        (None, true) => {
            let (Some(client_id), Some(client_secret_env)) = (&a.client_id, &a.client_secret_env)
            else {
                c.err(
                    path,
                    "an Entra ID token needs `client_id` and `client_secret_env` (and `tenant_id` \
                     or `token_url`)",
                );
                return None;
            };
            let token_url = match (&a.token_url, &a.tenant_id) {
                (Some(url), _) => http_url(c, &format!("{path}.token_url"), url),
                (None, Some(tenant)) => entra_token_url(tenant),
                (None, None) => {
                    c.err(
                        format!("{path}.tenant_id"),
                        "give the Entra ID tenant (or the token endpoint as `token_url`)",
                    );
                    return None;
                }
            };
            AzureAuth::Entra(ClientCredentials {
                token_url,
                client_id: client_id.clone(),
                client_secret_env: client_secret_env.clone(),
                scope: a
                    .scope
                    .clone()
                    .unwrap_or_else(|| AZURE_COGNITIVE_SCOPE.to_owned()),
            })
        }
        _ => {
            c.err(
                path,
                "give exactly one of `api_key_env` (an API key) or `client_id` and \
                 `client_secret_env` (an Entra ID token)",
            );
            return None;
        }
    };
    if a.api_key_env.is_some() {
        for (field, given) in [
            ("token_url", a.token_url.is_some()),
            ("scope", a.scope.is_some()),
        ] {
            c.ensure(
                !given,
                format!("{path}.{field}"),
                "only read with an Entra ID token (`client_id`, `client_secret_env`)",
            );
        }
    }
    Some(AzureSpec {
        endpoint,
        api_version: a.api_version.trim().to_owned(),
        auth,
        headers: a.headers.clone().into_iter().collect(),
        connect_timeout: Duration::from_millis(a.connect_timeout_ms),
    })
}

pub(super) fn gemini(c: &mut Checker, path: &str, g: &RawGemini) -> GeminiSpec {
    env_name(c, &format!("{path}.api_key_env"), &g.api_key_env);
    GeminiSpec {
        base_url: http_url(c, &format!("{path}.base_url"), &g.base_url),
        api_key_env: g.api_key_env.clone(),
        headers: g.headers.clone().into_iter().collect(),
        connect_timeout: Duration::from_millis(g.connect_timeout_ms),
    }
}

/// Project and location go into URL paths: letters, digits, `-` and `_` only, so a value
/// cannot reach another path.
fn path_word(c: &mut Checker, path: &str, value: &str) {
    c.ensure(
        !value.is_empty()
            && value
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_'),
        path,
        format!("`{value}` must be letters, digits, `-` and `_`"),
    );
}

pub(super) fn vertex(c: &mut Checker, path: &str, v: &RawVertex) -> VertexSpec {
    path_word(c, &format!("{path}.project"), &v.project);
    path_word(c, &format!("{path}.location"), &v.location);
    c.ensure(
        v.default_max_tokens > 0,
        format!("{path}.default_max_tokens"),
        "must be greater than 0",
    );
    if let Some(file) = &v.credentials_file {
        c.ensure(
            !file.trim().is_empty(),
            format!("{path}.credentials_file"),
            "must be the path of a service account key file",
        );
    }
    let base_url = match &v.base_url {
        Some(url) => http_url(c, &format!("{path}.base_url"), url),
        None => vertex_base_url(&v.location),
    };
    VertexSpec {
        base_url,
        project: v.project.clone(),
        location: v.location.clone(),
        credentials_file: v.credentials_file.clone(),
        anthropic_version: v.anthropic_version.clone(),
        default_max_tokens: v.default_max_tokens,
        headers: v.headers.clone().into_iter().collect(),
        connect_timeout: Duration::from_millis(v.connect_timeout_ms),
    }
}
