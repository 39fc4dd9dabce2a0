//! AWS Bedrock's Converse API as a provider: `POST {base_url}/model/{modelId}/converse`, and
//! `/converse-stream` answered as binary event stream frames (`stream.rs`), every request
//! signed with SigV4 (`sign.rs`, service `bedrock`) with credentials found and refreshed as
//! AWS's SDKs do (`credentials.rs`). The translation, pure, is
//! `switchyard_api::bedrock::outbound` (what does not carry over is listed there).
//!
//! Credentials never reach a log, an error or a record: they are `Secret`s until the
//! signer takes them, the headers that carry them are marked sensitive, and credential
//! errors name the source and the step that failed, not a value.

mod credentials;
mod sign;
pub(crate) mod stream;

use std::time::SystemTime;

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use switchyard_api::bedrock::{outbound, ConverseResponse};
use switchyard_api::ChatCompletionRequest;
use switchyard_control::BedrockSpec;

use crate::{http, translate};
use crate::{unix_now, CallOptions, ChatProvider, ChatReply, ProviderError};
use credentials::CredentialCache;

/// The signing name of Bedrock's runtime API.
const SERVICE: &str = "bedrock";

pub struct BedrockProvider {
    /// `https://bedrock-runtime.{region}.amazonaws.com` unless configured; no trailing `/`.
    base: String,
    region: String,
    /// The configured headers, signed with the rest.
    headers: Vec<(String, String)>,
    credentials: CredentialCache,
    http: reqwest::Client,
}

impl BedrockProvider {
    /// `env` reads the environment: the region (`AWS_REGION`, `AWS_DEFAULT_REGION`) when the
    /// config gives none, and the credentials chain's variables.
    pub fn new(
        spec: &BedrockSpec,
        env: &dyn Fn(&str) -> Option<String>,
        http: reqwest::Client,
    ) -> Result<Self, String> {
        let region = spec
            .region
            .clone()
            .or_else(|| env("AWS_REGION").filter(|r| !r.is_empty()))
            .or_else(|| env("AWS_DEFAULT_REGION").filter(|r| !r.is_empty()))
            .ok_or("no AWS region: set `region`, or AWS_REGION in the environment")?;
        if region.is_empty()
            || !region
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(format!("`{region}` is not an AWS region"));
        }
        let base = match &spec.base_url {
            Some(url) => http::base_url(url)?,
            None => format!("https://bedrock-runtime.{region}.amazonaws.com"),
        };
        // Checked now so that a bad header fails the config, not every request.
        http::header_map(&spec.headers)?;
        let source = credentials::resolve(env, spec.profile.as_deref())?;
        tracing::debug!(source = source.name(), "bedrock credentials");
        Ok(BedrockProvider {
            base,
            region,
            headers: spec.headers.clone(),
            credentials: CredentialCache::new(source, http.clone()),
            http,
        })
    }

    /// The endpoint of a model: its id is one path segment, so the `:` of a versioned id and
    /// the `/` of an inference profile ARN are escaped, as AWS's SDKs do.
    fn url(&self, model: &str, streaming: bool) -> Result<reqwest::Url, ProviderError> {
        let op = if streaming {
            "converse-stream"
        } else {
            "converse"
        };
        let url = format!("{}/model/{}/{op}", self.base, escape_segment(model));
        reqwest::Url::parse(&url)
            .map_err(|_| ProviderError::unsupported(Some("model"), "not a valid Bedrock model id"))
    }

    /// The signed headers of a request to `url` with `body`.
    async fn signed_headers(
        &self,
        url: &reqwest::Url,
        body: &[u8],
        streaming: bool,
    ) -> Result<HeaderMap, ProviderError> {
        let creds = self
            .credentials
            .get()
            .await
            .map_err(|e| ProviderError::Connect(e.to_string()))?;
        let mut headers: Vec<(&str, &str)> = vec![("content-type", "application/json")];
        headers.push((
            "accept",
            if streaming {
                "application/vnd.amazon.eventstream"
            } else {
                "application/json"
            },
        ));
        headers.extend(self.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        let added = sign::signature_headers(
            &creds,
            &self.region,
            SERVICE,
            SystemTime::now(),
            ("POST", url.as_str(), &headers, body),
        )
        .map_err(ProviderError::Connect)?;
        let mut map = HeaderMap::new();
        for (name, value) in headers
            .iter()
            .map(|(n, v)| (*n, *v))
            .chain(added.iter().map(|(n, v)| (n.as_str(), v.as_str())))
        {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| ProviderError::Connect(format!("`{name}` is not a header name")))?;
            let mut value = HeaderValue::from_str(value)
                .map_err(|_| ProviderError::Connect(format!("header `{name}` cannot be sent")))?;
            value.set_sensitive(true);
            map.append(name, value);
        }
        Ok(map)
    }
}

/// A path segment with every byte but the unreserved ones (`A-Z a-z 0-9 - _ . ~`) escaped.
fn escape_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[async_trait]
impl ChatProvider for BedrockProvider {
    fn kind(&self) -> &'static str {
        "bedrock"
    }

    fn server(&self) -> Option<(String, u16)> {
        crate::provider::server_of(&reqwest::Url::parse(&self.base).ok()?)
    }

    async fn chat_with(
        &self,
        request: ChatCompletionRequest,
        options: CallOptions,
    ) -> Result<ChatReply, ProviderError> {
        let streaming = request.is_stream();
        let model = request.model.clone();
        let converse = outbound::to_converse(request)?;
        let body = serde_json::to_vec(&converse.body).map_err(|e| {
            ProviderError::unsupported(None, format!("the request cannot be written: {e}"))
        })?;
        let url = self.url(&model, streaming)?;
        let headers = self.signed_headers(&url, &body, streaming).await?;
        // The trace's headers go unsigned, as AWS's signer leaves its own `x-amzn-trace-id`:
        // a proxy on the way may rewrite them, and that must not break the signature.
        let request = self.http.post(url).headers(headers).headers(options.trace);
        let response = http::send(request.body(body)).await?;
        let created = unix_now();
        // Converse answers have no id: AWS's request id stands in.
        let id = response
            .headers()
            .get("x-amzn-requestid")
            .and_then(|v| v.to_str().ok())
            .map_or_else(|| format!("bedrock-{created}"), |r| format!("bedrock-{r}"));
        if streaming {
            let translator = stream::Translator::new(id, model, created, converse.structured);
            let frames = stream::frames(response.bytes_stream());
            Ok(ChatReply::Stream(translate::chunk_stream(
                frames, translator,
            )))
        } else {
            let reply: ConverseResponse = http::read_json(response).await?;
            Ok(ChatReply::Complete(outbound::to_chat_response(
                reply,
                id,
                model,
                created,
                converse.structured,
            )))
        }
    }
}
