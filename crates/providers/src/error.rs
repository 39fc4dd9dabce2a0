use std::time::Duration;

/// One failed attempt at a provider, classified so the gateway can decide to retry, fall back
/// or answer, without looking inside.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    #[error("could not connect to the upstream: {0}")]
    Connect(String),
    #[error("the upstream did not answer in time")]
    Timeout,
    #[error("the upstream answered {status}: {message}")]
    Status {
        status: u16,
        message: String,
        /// From the upstream's `retry-after` header, if any.
        retry_after: Option<Duration>,
    },
    #[error("the upstream's response could not be read: {0}")]
    Decode(String),
    #[error("the upstream's stream broke off: {0}")]
    Stream(String),
    /// A request the provider cannot express; `param` names the request field when known
    /// (`messages[2].content[0]`).
    #[error("{message}")]
    Unsupported {
        message: String,
        param: Option<String>,
    },
}

/// A request the Messages API cannot express (`switchyard_api::anthropic::outbound`).
impl From<switchyard_api::anthropic::TranslateError> for ProviderError {
    fn from(e: switchyard_api::anthropic::TranslateError) -> Self {
        ProviderError::Unsupported {
            message: e.message,
            param: e.param,
        }
    }
}

impl ProviderError {
    pub fn unsupported(param: Option<&str>, message: impl Into<String>) -> Self {
        ProviderError::Unsupported {
            message: message.into(),
            param: param.map(str::to_owned),
        }
    }

    /// Puts the field an `Unsupported` error is about inside `prefix`: `content[0]` within
    /// `messages[2]` is `messages[2].content[0]`.
    pub fn within(self, prefix: &str) -> Self {
        match self {
            ProviderError::Unsupported { message, param } => {
                let param = match param {
                    None => prefix.to_owned(),
                    Some(p) if p.starts_with('[') => format!("{prefix}{p}"),
                    Some(p) => format!("{prefix}.{p}"),
                };
                ProviderError::Unsupported {
                    message,
                    param: Some(param),
                }
            }
            other => other,
        }
    }

    /// Whether another attempt (here or at another deployment) may succeed: connection
    /// failures, timeouts, 408, 409, 429, 5xx and 3xx (a redirect, never followed, says the
    /// deployment is misconfigured; another may answer), and streams that broke before any
    /// output.
    pub fn retryable(&self) -> bool {
        match self {
            ProviderError::Connect(_) | ProviderError::Timeout | ProviderError::Stream(_) => true,
            ProviderError::Status { status, .. } => {
                matches!(status, 408 | 409 | 429) || *status >= 500 || (300..400).contains(status)
            }
            ProviderError::Decode(_) | ProviderError::Unsupported { .. } => false,
        }
    }

    /// Whether the failure says the deployment is unhealthy (counts against its breaker).
    /// A 4xx other than 408/429 is the request's fault, not the deployment's.
    pub fn counts_against_deployment(&self) -> bool {
        self.retryable() || matches!(self, ProviderError::Decode(_))
    }

    /// A short stable label for metrics and records.
    /// The upstream's HTTP status, when it answered with an error status.
    pub fn status(&self) -> Option<u16> {
        match self {
            ProviderError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            ProviderError::Connect(_) => "connect",
            ProviderError::Timeout => "timeout",
            ProviderError::Status { status: 429, .. } => "rate_limited",
            ProviderError::Status { status, .. } if *status >= 500 => "upstream_5xx",
            ProviderError::Status { status, .. } if *status < 400 => "upstream_redirect",
            ProviderError::Status { .. } => "upstream_4xx",
            ProviderError::Decode(_) => "decode",
            ProviderError::Stream(_) => "stream",
            ProviderError::Unsupported { .. } => "unsupported",
        }
    }

    /// Builds a `Status` error from an upstream error response, taking the message from an
    /// OpenAI-, Anthropic- or Google-shaped error body (`error.message`) or an AWS-shaped one
    /// (`message`, `Message`) when there is one, and the wait from Google's `RetryInfo` when no
    /// `retry-after` header gave one.
    pub fn from_response(status: u16, body: &[u8], retry_after: Option<Duration>) -> Self {
        let parsed = serde_json::from_slice::<serde_json::Value>(body).ok();
        let retry_after = retry_after.or_else(|| parsed.as_ref().and_then(google_retry_delay));
        let message = parsed
            .and_then(|v| {
                ["/error/message", "/message", "/Message"]
                    .iter()
                    .find_map(|p| v.pointer(p).and_then(|m| m.as_str()))
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| {
                let text = String::from_utf8_lossy(body);
                text.chars().take(200).collect()
            });
        ProviderError::Status {
            status,
            message,
            retry_after,
        }
    }
}

/// The wait of a Google error body (`error.details[]` holding a `google.rpc.RetryInfo`,
/// `retryDelay` like `"30s"` or `"1.5s"`), capped as a `retry-after` header is.
fn google_retry_delay(body: &serde_json::Value) -> Option<Duration> {
    body.pointer("/error/details")?
        .as_array()?
        .iter()
        .filter(|d| {
            d.get("@type")
                .and_then(|t| t.as_str())
                .is_some_and(|t| t.ends_with("google.rpc.RetryInfo"))
        })
        .find_map(|d| d.get("retryDelay")?.as_str()?.strip_suffix('s'))
        .and_then(|secs| parse_retry_after(Some(secs)))
}

/// Parses a `retry-after` header given in seconds (the HTTP-date form is rare from LLM APIs
/// and is ignored).
pub fn parse_retry_after(value: Option<&str>) -> Option<Duration> {
    let secs: f64 = value?.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let s = |status| ProviderError::Status {
            status,
            message: String::new(),
            retry_after: None,
        };
        assert!(s(429).retryable() && s(503).retryable() && s(408).retryable());
        assert!(!s(400).retryable() && !s(401).retryable() && !s(404).retryable());
        assert!(!s(400).counts_against_deployment());
        assert!(ProviderError::Timeout.retryable());
        assert_eq!(s(502).kind(), "upstream_5xx");
        // A redirect is not followed: the deployment is misconfigured, another may answer.
        assert!(s(307).retryable() && s(307).counts_against_deployment());
        assert_eq!(s(307).kind(), "upstream_redirect");
    }

    #[test]
    fn unsupported_names_the_field_within_its_message() {
        let param = |e: ProviderError| match e {
            ProviderError::Unsupported { param, .. } => param,
            other => panic!("{other:?}"),
        };
        let e = ProviderError::unsupported(Some("content[1]"), "no audio");
        assert_eq!(
            param(e.within("messages[2]")).as_deref(),
            Some("messages[2].content[1]")
        );
        let e = ProviderError::unsupported(Some("role"), "no function role");
        assert_eq!(
            param(e.within("messages[0]")).as_deref(),
            Some("messages[0].role")
        );
        let e = ProviderError::unsupported(None, "x");
        assert_eq!(
            param(e.within("messages[3]")).as_deref(),
            Some("messages[3]")
        );
    }

    #[test]
    fn message_from_openai_error_body() {
        let e = ProviderError::from_response(
            400,
            br#"{"error":{"message":"bad thing","type":"x"}}"#,
            None,
        );
        assert_eq!(e.to_string(), "the upstream answered 400: bad thing");
        let e = ProviderError::from_response(429, br#"{"message":"Too many requests"}"#, None);
        assert_eq!(
            e.to_string(),
            "the upstream answered 429: Too many requests"
        );
        let e = ProviderError::from_response(502, b"<html>gateway</html>", None);
        assert_eq!(
            e.to_string(),
            "the upstream answered 502: <html>gateway</html>"
        );
        assert_eq!(parse_retry_after(Some("2")), Some(Duration::from_secs(2)));
        // Google's shape: the wait in RetryInfo; a header wins over it.
        let google = br#"{"error": {"code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED",
            "details": [{"@type": "type.googleapis.com/google.rpc.QuotaFailure"},
                        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.5s"}]}}"#;
        let e = ProviderError::from_response(429, google, None);
        assert_eq!(e.to_string(), "the upstream answered 429: Quota exceeded");
        let wait = |e: ProviderError| match e {
            ProviderError::Status { retry_after, .. } => retry_after,
            _ => None,
        };
        assert_eq!(wait(e), Some(Duration::from_millis(1500)));
        let e = ProviderError::from_response(429, google, Some(Duration::from_secs(9)));
        assert_eq!(wait(e), Some(Duration::from_secs(9)));
        assert_eq!(parse_retry_after(Some("Wed, 21 Oct")), None);
    }
}
