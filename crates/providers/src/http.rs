//! HTTP mechanics shared by the HTTP adapters: building headers, posting JSON, classifying
//! failures, and framing SSE. Nothing here knows a provider's wire format.
use std::error::Error as _;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::sse::{self, Event};
use crate::{parse_retry_after, ProviderError};

/// The most of an error body that is read: enough for any real error message, and a
/// misbehaving upstream cannot make us buffer a huge page.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Parses an endpoint URL once, at construction: parsing it on every request costs more than
/// the rest of building the request.
pub(crate) fn endpoint(base: &str, path: &str) -> Result<reqwest::Url, String> {
    let full = format!("{base}{path}");
    reqwest::Url::parse(&full).map_err(|e| format!("`{full}` is not a valid URL: {e}"))
}

/// Checks a configured base URL and drops a trailing slash so paths can be appended.
pub(crate) fn base_url(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim_end_matches('/');
    let url = reqwest::Url::parse(trimmed)
        .map_err(|e| format!("base_url `{trimmed}` is not a valid URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("base_url `{trimmed}` must be http or https"));
    }
    Ok(trimmed.to_owned())
}

/// The configured extra headers. Values may be credentials, so errors name only the header.
pub(crate) fn header_map(headers: &[(String, String)]) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("`{name}` is not a valid header name"))?;
        let mut value = HeaderValue::from_str(value)
            .map_err(|_| format!("header `{name}` has a value that is not valid in HTTP"))?;
        value.set_sensitive(true);
        map.insert(name, value);
    }
    Ok(map)
}

/// A header value holding a credential, marked sensitive; the error never repeats it.
pub(crate) fn secret_value(value: &str) -> Result<HeaderValue, String> {
    let mut value = HeaderValue::from_str(value)
        .map_err(|_| "the API key contains characters not allowed in an HTTP header".to_owned())?;
    value.set_sensitive(true);
    Ok(value)
}

/// Posts `body` as JSON and returns the response if its status is 2xx; any other status
/// becomes [`ProviderError::Status`] with the upstream's message and `retry-after`.
pub(crate) async fn post_json<T: Serialize + ?Sized>(
    http: &reqwest::Client,
    url: &reqwest::Url,
    headers: &HeaderMap,
    trace: &HeaderMap,
    body: &T,
) -> Result<reqwest::Response, ProviderError> {
    send(
        http.post(url.clone())
            .headers(headers.clone())
            .headers(trace.clone())
            .json(body),
    )
    .await
}

/// Sends a request and returns the response if its status is 2xx; any other status becomes
/// [`ProviderError::Status`] with the upstream's message and `retry-after`.
pub(crate) async fn send(
    request: reqwest::RequestBuilder,
) -> Result<reqwest::Response, ProviderError> {
    let response = request.send().await.map_err(|e| transport_error(&e))?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    if status.is_redirection() {
        return Err(ProviderError::Status {
            status: status.as_u16(),
            message: "a redirect, which the gateway does not follow: set the provider's \
                      base_url to the address that answers"
                .to_owned(),
            retry_after: None,
        });
    }
    let retry_after = parse_retry_after(
        response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok()),
    );
    let body = read_capped(response).await;
    Err(ProviderError::from_response(
        status.as_u16(),
        &body,
        retry_after,
    ))
}

/// Reads a whole 2xx body as JSON.
pub(crate) async fn read_json<T: DeserializeOwned>(
    response: reqwest::Response,
) -> Result<T, ProviderError> {
    let body = response.bytes().await.map_err(|e| transport_error(&e))?;
    serde_json::from_slice(&body).map_err(|e| decode_error("the response", e, &body))
}

/// Up to [`MAX_ERROR_BODY`] bytes of an error response; a body that breaks off is kept as
/// far as it came, since the status already says what failed.
pub(crate) async fn read_capped(response: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    let mut chunks = response.bytes_stream();
    while let Some(Ok(chunk)) = chunks.next().await {
        let room = MAX_ERROR_BODY - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_ERROR_BODY {
            break;
        }
    }
    body
}

/// Classifies a failure to get a response: reqwest timeouts are [`ProviderError::Timeout`];
/// everything else (refused, reset, closed before the head) is a connection failure.
pub(crate) fn transport_error(e: &reqwest::Error) -> ProviderError {
    if e.is_timeout() {
        ProviderError::Timeout
    } else {
        ProviderError::Connect(chain(e))
    }
}

/// Classifies a failure while a stream's body is flowing.
pub(crate) fn stream_transport_error(e: &reqwest::Error) -> ProviderError {
    if e.is_timeout() {
        ProviderError::Timeout
    } else {
        ProviderError::Stream(chain(e))
    }
}

/// An error and its causes on one line: reqwest's own message alone ("error sending
/// request") hides the part that matters ("connection refused").
fn chain(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

pub(crate) fn decode_error(what: &str, e: serde_json::Error, body: &[u8]) -> ProviderError {
    ProviderError::Decode(format!(
        "{what} is not what was expected ({e}): {}",
        snippet(body)
    ))
}

/// The start of an upstream payload, for error messages.
pub(crate) fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut s: String = text.chars().take(200).collect();
    if text.chars().nth(200).is_some() {
        s.push('…');
    }
    s
}

/// The message of an `{"error": ...}` object, OpenAI- or Anthropic-shaped, or the object.
pub(crate) fn error_message(error: &serde_json::Value) -> String {
    error
        .get("message")
        .and_then(|m| m.as_str())
        .map(str::to_owned)
        .or_else(|| error.as_str().map(str::to_owned))
        .unwrap_or_else(|| snippet(error.to_string().as_bytes()))
}

/// SSE events of a response body, with framing and transport failures classified.
pub(crate) fn sse_events<S>(
    bytes: S,
) -> impl Stream<Item = Result<Event, ProviderError>> + Send + 'static
where
    S: Stream<Item = Result<Bytes, reqwest::Error>> + Send + 'static,
{
    sse::events(Box::pin(
        bytes.map(|read| read.map_err(|e| stream_transport_error(&e))),
    ))
}
