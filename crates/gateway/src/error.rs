//! The one error type that becomes an HTTP response, and the one place that turns it into
//! OpenAI's error shape, or Anthropic's for the Messages endpoint ([`Shape`]).

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use switchyard_api::{ErrorBody, ErrorObject};
use switchyard_providers::ProviderError;

/// Who failed: the caller, an upstream provider, or the gateway itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Downstream,
    Upstream,
    Internal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    PayloadTooLarge,
    RateLimited,
    BudgetExceeded,
    UpstreamFailed,
    UpstreamUnavailable,
    UpstreamTimeout,
    /// The gateway cannot serve this now (its store is not writable); worth a retry.
    Unavailable,
    Internal,
}

impl ErrorKind {
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::InvalidRequest => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::RateLimited | ErrorKind::BudgetExceeded => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::UpstreamFailed => StatusCode::BAD_GATEWAY,
            ErrorKind::UpstreamUnavailable | ErrorKind::Unavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ErrorKind::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// OpenAI's `type` field.
    fn openai_type(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest
            | ErrorKind::Unauthorized
            | ErrorKind::Forbidden
            | ErrorKind::NotFound
            | ErrorKind::MethodNotAllowed
            | ErrorKind::PayloadTooLarge => "invalid_request_error",
            ErrorKind::RateLimited => "rate_limit_error",
            ErrorKind::BudgetExceeded => "insufficient_quota",
            ErrorKind::UpstreamFailed
            | ErrorKind::UpstreamUnavailable
            | ErrorKind::UpstreamTimeout
            | ErrorKind::Unavailable
            | ErrorKind::Internal => "server_error",
        }
    }

    /// Anthropic's `error.type`.
    fn anthropic_type(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest | ErrorKind::MethodNotAllowed => "invalid_request_error",
            ErrorKind::Unauthorized => "authentication_error",
            ErrorKind::Forbidden => "permission_error",
            ErrorKind::NotFound => "not_found_error",
            ErrorKind::PayloadTooLarge => "request_too_large",
            ErrorKind::RateLimited | ErrorKind::BudgetExceeded => "rate_limit_error",
            ErrorKind::UpstreamUnavailable | ErrorKind::Unavailable => "overloaded_error",
            ErrorKind::UpstreamFailed | ErrorKind::UpstreamTimeout | ErrorKind::Internal => {
                "api_error"
            }
        }
    }

    fn side(self) -> Side {
        match self {
            ErrorKind::UpstreamFailed
            | ErrorKind::UpstreamUnavailable
            | ErrorKind::UpstreamTimeout => Side::Upstream,
            ErrorKind::Internal | ErrorKind::Unavailable => Side::Internal,
            _ => Side::Downstream,
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct GatewayError {
    pub kind: ErrorKind,
    pub side: Side,
    /// Whether the client may usefully send the same request again.
    pub retryable: bool,
    pub message: String,
    pub param: Option<String>,
    pub code: Option<&'static str>,
    pub retry_after: Option<Duration>,
}

impl GatewayError {
    pub fn new(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        GatewayError {
            kind,
            side: kind.side(),
            retryable: matches!(
                kind,
                ErrorKind::RateLimited
                    | ErrorKind::UpstreamFailed
                    | ErrorKind::UpstreamUnavailable
                    | ErrorKind::UpstreamTimeout
                    | ErrorKind::Unavailable
            ),
            message: message.into(),
            param: None,
            code: Some(code),
            retry_after: None,
        }
    }

    pub fn invalid(param: Option<&str>, message: impl Into<String>) -> Self {
        let mut e = Self::new(ErrorKind::InvalidRequest, "invalid_request", message);
        e.param = param.map(str::to_owned);
        e
    }

    /// The store could not take or give what the request needs (disk full, locked): a 503 the
    /// client may retry.
    pub fn store_unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, "store_unavailable", message)
    }

    /// Names the request field the error is about (OpenAI's `param`).
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }

    /// A short stable label for records and metrics.
    pub fn label(&self) -> &'static str {
        self.code.unwrap_or("error")
    }

    /// The client-facing error for a provider failure that ended dispatch. Upstream secrets
    /// and raw bodies of auth failures are never passed on.
    pub fn from_provider(e: &ProviderError, deployment: &str) -> Self {
        match e {
            ProviderError::Timeout => Self::new(
                ErrorKind::UpstreamTimeout,
                "upstream_timeout",
                format!("the model provider did not answer in time (deployment {deployment})"),
            ),
            ProviderError::Status { status: 429, retry_after, .. } => {
                let mut err = Self::new(
                    ErrorKind::UpstreamUnavailable,
                    "upstream_rate_limited",
                    format!("the model provider is rate limiting the gateway (deployment {deployment}); retry later"),
                );
                err.retry_after = Some(retry_after.unwrap_or(Duration::from_secs(1)));
                err
            }
            ProviderError::Status { status: 400 | 422, message, .. } => {
                Self::invalid(None, format!("the model provider rejected the request: {message}"))
            }
            ProviderError::Status { status: 413, message, .. } => Self::new(
                ErrorKind::PayloadTooLarge,
                "request_too_large",
                format!("the model provider rejected the request as too large: {message}"),
            ),
            ProviderError::Status { status: 401 | 403, .. } => Self::new(
                ErrorKind::UpstreamFailed,
                "upstream_auth",
                format!("the model provider refused the gateway's credentials (deployment {deployment}); check its api_key_env"),
            ),
            ProviderError::Status { status, message, .. } => Self::new(
                ErrorKind::UpstreamFailed,
                "upstream_error",
                format!("the model provider failed with status {status} (deployment {deployment}): {message}"),
            ),
            ProviderError::Unsupported { message, param } => {
                Self::invalid(param.as_deref(), message.clone())
            }
            ProviderError::Connect(_) | ProviderError::Decode(_) | ProviderError::Stream(_) => Self::new(
                ErrorKind::UpstreamFailed,
                "upstream_error",
                format!("the model provider failed (deployment {deployment}): {e}"),
            ),
        }
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorObject {
                message: self.message.clone(),
                kind: self.kind.openai_type().to_owned(),
                param: self.param.clone(),
                code: self.code.map(str::to_owned),
            },
        }
    }
}

/// Which API's error body an answer takes: the client's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `{"error": {"message", "type", "param", "code"}}`.
    OpenAi,
    /// `{"type": "error", "error": {"type", "message"}}`; the status codes stay the gateway's
    /// (an overloaded upstream is a 503, not Anthropic's own 529).
    Anthropic,
}

impl GatewayError {
    /// The body in Anthropic's shape. It has no `param`: the field is named in the message
    /// when the message does not already name it.
    pub fn anthropic_body(&self) -> switchyard_api::anthropic::ErrorBody {
        let message = match &self.param {
            Some(p) if !self.message.contains(p.as_str()) => format!("{p}: {}", self.message),
            _ => self.message.clone(),
        };
        switchyard_api::anthropic::ErrorBody::new(self.kind.anthropic_type(), message)
    }

    /// The response in the client's shape. Every 429 and 503 carries `retry-after` (the
    /// error's own time, else [`DEFAULT_RETRY_AFTER`]), so no error can forget it.
    pub fn into_response_as(self, shape: Shape) -> Response {
        let status = self.status();
        let mut response = match shape {
            Shape::OpenAi => (status, axum::Json(self.body())).into_response(),
            Shape::Anthropic => (status, axum::Json(self.anthropic_body())).into_response(),
        };
        let must_say_when = matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        );
        let after = self
            .retry_after
            .or(must_say_when.then_some(DEFAULT_RETRY_AFTER));
        if let Some(after) = after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, retry_after_value(after));
        }
        response
    }
}

/// When a 429 or 503 knows no better time: the SDKs retry at once on an answer without
/// `retry-after`, which only adds load to whatever is failing.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

impl IntoResponse for GatewayError {
    /// In OpenAI's shape: [`GatewayError::into_response_as`].
    fn into_response(self) -> Response {
        self.into_response_as(Shape::OpenAi)
    }
}

/// `retry-after` in whole seconds, rounded up and at least 1 (0 would invite a retry at once).
pub fn retry_after_value(after: Duration) -> HeaderValue {
    let secs = after.as_secs_f64().ceil().max(1.0) as u64;
    HeaderValue::from(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(e: GatewayError, status: u16, expected: serde_json::Value) {
        assert_eq!(e.status().as_u16(), status);
        assert_eq!(serde_json::to_value(e.body()).unwrap(), expected);
    }

    #[test]
    fn openai_shapes() {
        check(
            GatewayError::invalid(Some("messages"), "messages must not be empty"),
            400,
            serde_json::json!({"error": {"message": "messages must not be empty", "type": "invalid_request_error", "param": "messages", "code": "invalid_request"}}),
        );
        check(
            GatewayError::from_provider(&ProviderError::Timeout, "sim/a"),
            504,
            serde_json::json!({"error": {"message": "the model provider did not answer in time (deployment sim/a)", "type": "server_error", "param": null, "code": "upstream_timeout"}}),
        );
        let auth = GatewayError::from_provider(
            &ProviderError::Status {
                status: 401,
                message: "bad key sk-live-123".into(),
                retry_after: None,
            },
            "openai/gpt",
        );
        assert_eq!(auth.status().as_u16(), 502);
        assert!(
            !auth.message.contains("sk-live"),
            "upstream auth bodies are not passed on"
        );
    }

    #[test]
    fn anthropic_shapes() {
        let e = GatewayError::invalid(Some("max_tokens"), "field required");
        assert_eq!(
            serde_json::to_value(e.anthropic_body()).unwrap(),
            serde_json::json!({"type": "error", "error": {"type": "invalid_request_error",
                "message": "max_tokens: field required"}})
        );
        let e = GatewayError::new(ErrorKind::Unauthorized, "invalid_api_key", "bad key");
        assert_eq!(e.anthropic_body().error.kind, "authentication_error");
        let r = GatewayError::new(ErrorKind::UpstreamUnavailable, "upstream_rate_limited", "x")
            .into_response_as(Shape::Anthropic);
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["retry-after"], "1");
    }

    #[test]
    fn rate_limit_carries_retry_after() {
        let e = GatewayError::new(ErrorKind::RateLimited, "rate_limit_exceeded", "slow down")
            .with_retry_after(Duration::from_millis(1500));
        let r = e.into_response();
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["retry-after"], "2");
    }
}
