//! One HTTP/1.1 client per endpoint and one timed chat request.
//!
//! Plain hyper rather than a convenience client, so nothing sits between the measurement and
//! the socket: TCP_NODELAY on, a keep-alive pool, no retries, no redirects.

use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use http::{Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;

use crate::cli::{EndpointSpec, Workload};

/// What one request came to. Times are from the request's origin: the moment it was sent
/// (closed loop) or scheduled (open loop).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok {
        /// Until the first body frame holding an SSE `data:` line; streaming only.
        first_chunk: Option<Duration>,
        /// Until the end of the response body.
        total: Duration,
    },
    Failed(Failure),
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Failure {
    Status(u16),
    Transport,
    Timeout,
    /// A 2xx stream that carried no `data:` line.
    EmptyStream,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Status(s) => write!(f, "http {s}"),
            Failure::Transport => f.write_str("transport"),
            Failure::Timeout => f.write_str("timeout"),
            Failure::EmptyStream => f.write_str("empty stream"),
        }
    }
}

/// A prepared endpoint: its client, and the two request bodies, built once.
pub struct Endpoint {
    pub spec: EndpointSpec,
    client: Client<HttpConnector, Full<Bytes>>,
    auth: Option<HeaderValue>,
    body_full: Bytes,
    body_stream: Bytes,
    timeout: Duration,
    workload: Workload,
    /// Numbers the questions of the `unique` workload.
    sent: std::sync::atomic::AtomicU64,
    max_tokens: u32,
}

impl Endpoint {
    pub fn new(
        spec: EndpointSpec,
        max_tokens: u32,
        timeout: Duration,
        workload: Workload,
    ) -> Result<Self> {
        let mut http = HttpConnector::new();
        // Without it, Nagle plus delayed ACK can add up to 40 ms to a small request.
        http.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(usize::MAX)
            // A retried request would hide a failure and double-count its time.
            .retry_canceled_requests(false)
            .build(http);
        let auth = spec
            .key
            .as_ref()
            .map(|k| {
                let mut v = HeaderValue::from_str(&format!("Bearer {k}"))
                    .context("the key is not a valid header value")?;
                v.set_sensitive(true);
                anyhow::Ok(v)
            })
            .transpose()?;
        let fixed = match workload {
            Workload::Same => (FIXED_PROMPT, None),
            Workload::Repeat | Workload::Unique => (REPEATED_QUESTION, Some(0.0)),
        };
        Ok(Endpoint {
            body_full: chat_body(&spec.model, max_tokens, false, fixed.0, fixed.1)?,
            body_stream: chat_body(&spec.model, max_tokens, true, fixed.0, fixed.1)?,
            spec,
            client,
            auth,
            timeout,
            workload,
            sent: std::sync::atomic::AtomicU64::new(0),
            max_tokens,
        })
    }

    fn request(&self, stream: bool) -> Result<Request<Full<Bytes>>, http::Error> {
        let unique;
        let body = if self.workload == Workload::Unique {
            let n = self.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            unique = chat_body(
                &self.spec.model,
                self.max_tokens,
                stream,
                &question(n),
                Some(0.0),
            )
            .unwrap_or_default();
            &unique
        } else if stream {
            &self.body_stream
        } else {
            &self.body_full
        };
        let mut b = Request::post(self.spec.uri.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(auth) = &self.auth {
            b = b.header(AUTHORIZATION, auth.clone());
        }
        b.body(Full::new(body.clone()))
    }

    /// Sends one chat request and reads the whole response, timing it from `origin`.
    pub async fn send(&self, stream: bool, origin: Instant) -> Outcome {
        match tokio::time::timeout(self.timeout, self.exchange(stream, origin)).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::Failed(Failure::Timeout),
        }
    }

    async fn exchange(&self, stream: bool, origin: Instant) -> Outcome {
        let Ok(req) = self.request(stream) else {
            return Outcome::Failed(Failure::Transport);
        };
        let resp = match self.client.request(req).await {
            Ok(r) => r,
            Err(_) => return Outcome::Failed(Failure::Transport),
        };
        let status = resp.status();
        let mut body = resp.into_body();
        // Read error bodies to the end too, so the connection goes back to the pool.
        let first_chunk = match read_body(&mut body, stream, origin).await {
            Ok(first) => first,
            Err(()) => return Outcome::Failed(Failure::Transport),
        };
        let total = origin.elapsed();
        if !status.is_success() {
            return Outcome::Failed(Failure::Status(status.as_u16()));
        }
        if stream && first_chunk.is_none() {
            return Outcome::Failed(Failure::EmptyStream);
        }
        Outcome::Ok { first_chunk, total }
    }

    pub fn uri(&self) -> &Uri {
        &self.spec.uri
    }
}

/// Drains the body; when `stream`, returns when the first `data:` was seen.
async fn read_body(
    body: &mut Incoming,
    stream: bool,
    origin: Instant,
) -> Result<Option<Duration>, ()> {
    let mut first = None;
    let mut scan = DataScan::default();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| ())?;
        if stream && first.is_none() {
            if let Some(data) = frame.data_ref() {
                if scan.push(data) {
                    first = Some(origin.elapsed());
                }
            }
        }
    }
    Ok(first)
}

/// Finds `data:` in a byte stream even when a frame boundary splits it.
#[derive(Default)]
struct DataScan {
    tail: Vec<u8>,
}

impl DataScan {
    const NEEDLE: &'static [u8] = b"data:";

    fn push(&mut self, chunk: &[u8]) -> bool {
        let mut joined = std::mem::take(&mut self.tail);
        joined.extend_from_slice(chunk);
        if joined
            .windows(Self::NEEDLE.len())
            .any(|w| w == Self::NEEDLE)
        {
            return true;
        }
        let keep = joined.len().min(Self::NEEDLE.len() - 1);
        self.tail = joined.split_off(joined.len() - keep);
        false
    }
}

const FIXED_PROMPT: &str = "Say hello in five words.";
const REPEATED_QUESTION: &str = "What is the capital of France?";

/// The `n`th question of the `unique` workload: different words and numbers each time, so
/// neither an exact nor a semantic cache can answer it, and realistic enough to embed.
pub fn question(n: u64) -> String {
    const TOPICS: [&str; 8] = [
        "a sourdough starter",
        "the French revolution",
        "a Rust borrow checker error",
        "compound interest",
        "a cold frame greenhouse",
        "the Krebs cycle",
        "a marathon training plan",
        "TCP congestion control",
    ];
    const ASKS: [&str; 6] = [
        "Explain in simple terms",
        "Give three tips about",
        "What are common mistakes with",
        "Summarise the history of",
        "How would you teach",
        "List the key facts about",
    ];
    let topic = TOPICS[(n % 8) as usize];
    let ask = ASKS[((n / 8) % 6) as usize];
    format!(
        "{ask} {topic}, case {n}, for a reader aged {}.",
        10 + n % 80
    )
}

/// A small chat request, the same for every endpoint but its model.
fn chat_body(
    model: &str,
    max_tokens: u32,
    stream: bool,
    prompt: &str,
    temperature: Option<f64>,
) -> Result<Bytes> {
    let mut body = serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "stream": stream,
    });
    if let Some(t) = temperature {
        body["temperature"] = serde_json::json!(t);
    }
    Ok(Bytes::from(serde_json::to_vec(&body)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_prefix_found_across_frames() {
        let mut s = DataScan::default();
        assert!(!s.push(b": keep-alive\n\nda"));
        assert!(s.push(b"ta: {}\n\n"));
        let mut s = DataScan::default();
        assert!(!s.push(b"d"));
        assert!(!s.push(b"at"));
        assert!(!s.push(b"a"));
        assert!(s.push(b":"));
        assert!(DataScan::default().push(b"data: [DONE]"));
    }

    #[test]
    fn body_is_a_chat_request() {
        let b = chat_body("fast", 16, true, FIXED_PROMPT, None).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["model"], "fast");
        assert_eq!(v["stream"], true);
        assert_eq!(v["max_tokens"], 16);
        assert!(v.get("temperature").is_none());
        assert_ne!(question(1), question(2));
        assert_ne!(question(1), question(9));
    }
}
