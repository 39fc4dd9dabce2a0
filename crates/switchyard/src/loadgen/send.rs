//! Sending: one planned request, read to its end and classified by what any client sees
//! (status, OpenAI error code, `x-switchyard-*` headers), then its feedback.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::{StatusCode, Url};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::args::{usage, Args, Failure};
use super::plan::Planned;
use switchyard_admission::Class as Priority;

/// A request's time limit; the demo's slowest model answers well within it.
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Class {
    Ok,
    /// 400 `content_policy_violation`: a guard refused it.
    Refused,
    /// Any other 4xx but 429.
    ClientError,
    RateLimited,
    ServerError,
    /// 503 `overloaded`: the gateway shed it (its deployment's queue was full or too slow).
    Shed,
    /// No answer: connection refused or reset, a timeout, a broken stream.
    Network,
    /// Rate mode: due while `--max-inflight` were outstanding; never sent.
    Dropped,
}

#[derive(Debug, Clone)]
pub(super) struct Outcome {
    pub(super) kind: usize,
    pub(super) class: Class,
    pub(super) stream: bool,
    pub(super) latency: Duration,
    pub(super) ttft: Option<Duration>,
    /// `x-switchyard-cache`, when it names a hit: `hit-exact`, `hit-semantic`.
    pub(super) cache: Option<String>,
    pub(super) model: Option<String>,
    pub(super) feedback: Option<bool>,
    /// The class asked for with `x-switchyard-priority`.
    pub(super) priority: Option<Priority>,
}

impl Outcome {
    pub(super) fn dropped(plan: &Planned) -> Self {
        Outcome {
            kind: plan.kind,
            priority: plan.priority,
            class: Class::Dropped,
            stream: false,
            latency: Duration::ZERO,
            ttft: None,
            cache: None,
            model: None,
            feedback: None,
        }
    }
}

pub(super) struct Target {
    pub(super) http: reqwest::Client,
    pub(super) base: Url,
    pub(super) key: String,
    pub(super) model: String,
    /// For the progress bar.
    pub(super) sent: AtomicU64,
    pub(super) failed: AtomicU64,
}

impl Target {
    pub(super) fn new(args: &Args) -> Result<Self, Failure> {
        let base = Url::parse(&args.target)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                usage(format!(
                    "--target `{}` is not an http:// or https:// URL",
                    args.target
                ))
            })?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| usage(format!("cannot build the HTTP client: {e}")))?;
        Ok(Target {
            http,
            base,
            key: args
                .key
                .clone()
                .unwrap_or_else(|| switchyard_control::DEMO_KEY.to_owned()),
            model: args.model.clone(),
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        })
    }

    pub(super) fn url(&self, path: &str) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(path.split('/'));
        }
        url
    }

    pub(super) async fn probe(&self) -> Result<(), Failure> {
        let unreachable = |why: String| Failure {
            code: 3,
            message: format!("cannot reach the gateway at {}: {why}", self.base),
        };
        let health = self
            .http
            .get(self.url("healthz"))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| unreachable(root_cause(&e)))?;
        if !health.status().is_success() {
            return Err(unreachable(format!(
                "/healthz answered {}",
                health.status()
            )));
        }
        let models = self
            .http
            .get(self.url("v1/models"))
            .bearer_auth(&self.key)
            .send()
            .await
            .map_err(|e| {
                if e.is_builder() {
                    // Not `e` itself: it could quote the key.
                    usage("--key must be printable ASCII")
                } else {
                    unreachable(root_cause(&e))
                }
            })?;
        if matches!(
            models.status(),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        ) {
            return Err(Failure {
                code: 1,
                message: format!(
                    "the gateway at {} refused the key ({})",
                    self.base,
                    models.status()
                ),
            });
        }
        Ok(())
    }

    /// Sends one planned request, timed from `origin`, and its feedback if planned.
    pub(super) async fn send(&self, plan: Planned, origin: Instant) -> Outcome {
        self.sent.fetch_add(1, Ordering::Relaxed);
        let mut outcome = Outcome {
            class: Class::Network,
            stream: plan.stream,
            ..Outcome::dropped(&plan)
        };
        let answer = self.exchange(&plan, origin, &mut outcome).await;
        outcome.latency = origin.elapsed();
        if outcome.class != Class::Ok {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(request_id) = answer.filter(|_| plan.feedback) {
            if let Some(verdict) = verdict(&plan.kind_name, outcome.class, outcome.model.as_deref())
            {
                outcome.feedback = Some(self.feedback(&request_id, verdict).await);
            }
        }
        outcome
    }

    /// Fills `outcome` from the response; returns the request id of an answer or refusal.
    pub(super) async fn exchange(
        &self,
        plan: &Planned,
        origin: Instant,
        outcome: &mut Outcome,
    ) -> Option<String> {
        let mut request = self
            .http
            .post(self.url("v1/chat/completions"))
            .bearer_auth(&self.key)
            .json(&plan.body);
        if let Some(priority) = plan.priority {
            request = request.header("x-switchyard-priority", priority.as_str());
        }
        let mut response = request.send().await.ok()?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let request_id = header("x-switchyard-request-id");
        // `frontier; deployment=sim/sim-frontier`: the model is the first part.
        outcome.model = header("x-switchyard-model")
            .and_then(|m| m.split(';').next().map(|m| m.trim().to_owned()));
        outcome.cache = header("x-switchyard-cache").filter(|c| c.starts_with("hit"));
        let status = response.status();
        // The whole body, timing the first SSE event of a stream.
        let mut bytes: Vec<u8> = Vec::new();
        let mut first_token = FirstToken::default();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    bytes.extend_from_slice(&chunk);
                    if plan.stream && outcome.ttft.is_none() && first_token.push(&chunk) {
                        outcome.ttft = Some(origin.elapsed());
                    }
                }
                Ok(None) => break,
                Err(_) => return None,
            }
        }
        outcome.class = classify(status, &bytes);
        if outcome.class == Class::Ok && plan.stream && outcome.ttft.is_none() {
            outcome.class = Class::Network;
        }
        request_id.filter(|_| matches!(outcome.class, Class::Ok | Class::Refused))
    }

    pub(super) async fn feedback(&self, request_id: &str, verdict: Value) -> bool {
        let mut body = verdict;
        body["request_id"] = json!(request_id);
        self.http
            .post(self.url("v1/feedback"))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    }
}

/// Finds the first server-sent event that carries output (content or a tool call), as the
/// gateway's own time to first token does: a first event with only the role is not a token.
#[derive(Default)]
pub(super) struct FirstToken {
    /// The bytes of the event not yet complete.
    pending: Vec<u8>,
}

impl FirstToken {
    /// Feeds the next bytes of the stream; true when an event carrying output ended in them.
    pub(super) fn push(&mut self, bytes: &[u8]) -> bool {
        self.pending.extend_from_slice(bytes);
        let mut found = false;
        while let Some(end) = self.pending.windows(2).position(|w| w == b"\n\n") {
            let event: Vec<u8> = self.pending.drain(..end + 2).collect();
            found |= carries_output(&String::from_utf8_lossy(&event));
        }
        found
    }
}

fn carries_output(event: &str) -> bool {
    event
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .filter_map(|data| serde_json::from_str::<Value>(data.trim()).ok())
        .any(|chunk| {
            chunk["choices"].as_array().is_some_and(|choices| {
                choices.iter().any(|c| {
                    c["delta"]["content"]
                        .as_str()
                        .is_some_and(|t| !t.is_empty())
                        || !c["delta"]["tool_calls"].is_null()
                })
            })
        })
}

pub(super) fn root_cause(e: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

pub(super) fn classify(status: StatusCode, body: &[u8]) -> Class {
    match status.as_u16() {
        200..=299 => Class::Ok,
        429 => Class::RateLimited,
        400..=499 => {
            if error_code(body).as_deref() == Some("content_policy_violation") {
                Class::Refused
            } else {
                Class::ClientError
            }
        }
        503 if error_code(body).as_deref() == Some("overloaded") => Class::Shed,
        500..=599 => Class::ServerError,
        _ => Class::ClientError,
    }
}

/// The OpenAI error body's `code`.
fn error_code(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
}

/// The feedback a user would give, by a fixed rule: a refusal is a thumbs down and escalated;
/// a hard question answered by the `small` model scores 0.3 and is escalated (the cheap
/// choice fell short); every other answer is a thumbs up, resolved.
pub(super) fn verdict(kind: &str, class: Class, model: Option<&str>) -> Option<Value> {
    match class {
        Class::Refused => Some(json!({"thumbs": "down", "outcome": "escalated"})),
        Class::Ok if kind == "hard" && model == Some("small") => {
            Some(json!({"score": 0.3, "outcome": "escalated"}))
        }
        Class::Ok => Some(json!({"thumbs": "up", "outcome": "resolved"})),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_token_is_the_first_event_with_output() {
        let role = "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n";
        let token = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n";
        let mut scan = FirstToken::default();
        assert!(!scan.push(b": keep-alive\n\n"));
        assert!(!scan.push(role.as_bytes()));
        // An event split across reads counts when it ends.
        let (head, tail) = token.split_at(17);
        assert!(!scan.push(head.as_bytes()));
        assert!(scan.push(tail.as_bytes()));
        let tool =
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0}]}}]}\n\n";
        assert!(FirstToken::default().push(tool.as_bytes()));
        assert!(!FirstToken::default().push(b"data: [DONE]\n\n"));
    }

    #[test]
    fn responses_are_classified_and_judged() {
        let refusal = br#"{"error": {"code": "content_policy_violation"}}"#;
        assert_eq!(classify(StatusCode::BAD_REQUEST, refusal), Class::Refused);
        assert_eq!(classify(StatusCode::BAD_REQUEST, b"{}"), Class::ClientError);
        assert_eq!(
            classify(StatusCode::TOO_MANY_REQUESTS, b""),
            Class::RateLimited
        );
        assert_eq!(classify(StatusCode::BAD_GATEWAY, b""), Class::ServerError);
        let shed = br#"{"error": {"code": "overloaded", "type": "server_error"}}"#;
        assert_eq!(classify(StatusCode::SERVICE_UNAVAILABLE, shed), Class::Shed);
        assert_eq!(
            classify(StatusCode::SERVICE_UNAVAILABLE, b"{}"),
            Class::ServerError
        );
        assert_eq!(classify(StatusCode::OK, b""), Class::Ok);
        assert_eq!(
            verdict("injection", Class::Refused, None),
            Some(json!({"thumbs": "down", "outcome": "escalated"}))
        );
        assert_eq!(
            verdict("hard", Class::Ok, Some("small")).unwrap()["score"],
            0.3
        );
        assert_eq!(
            verdict("hard", Class::Ok, Some("frontier")).unwrap()["thumbs"],
            "up"
        );
        assert_eq!(verdict("simple", Class::ServerError, None), None);
    }
}
