use serde::{Deserialize, Serialize};

/// Everything known about one request once it is over. Every stage of the pipeline fills in
/// its part; the record is written once, at the end, even when the client hung up.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    pub request_id: String,
    /// Unix time in milliseconds when the request arrived.
    pub started_at_ms: i64,
    /// `chat` or `embeddings`.
    pub endpoint: String,
    pub tenant: Option<String>,
    pub key_id: Option<String>,
    pub requested_model: Option<String>,
    /// The logical model that answered (differs from the requested one after a fallback).
    pub model: Option<String>,
    /// `provider/upstream_model` of the deployment that answered.
    pub deployment: Option<String>,
    pub attempts: u32,
    pub fallback_from: Option<String>,
    pub stream: bool,
    /// HTTP status sent to the client; 499 when the client hung up first.
    pub status: u16,
    pub error_kind: Option<String>,
    pub latency_ms: f64,
    pub ttft_ms: Option<f64>,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    /// True when the provider did not report usage and the gateway counted tokens itself.
    pub usage_counted: bool,
    pub cost_nanos: u64,
    /// Filled by later stages: the route decision (JSON), the cache outcome (`hit-exact`,
    /// `hit-semantic`, `miss`, `bypass`), guard verdicts (JSON), and the config version the
    /// request ran on.
    pub route: Option<String>,
    pub cache: Option<String>,
    pub guards: Option<String>,
    pub config_version: Option<String>,
    /// What the answer would have cost on the route's most expensive candidate (on the model
    /// itself when no route chose it), served fresh. Savings are this minus `cost_nanos`: from
    /// the cache when `cache` is a hit, from routing otherwise.
    pub baseline_cost_nanos: u64,
    /// The best semantic-cache similarity seen: the served one on a hit, the nearest on a miss.
    pub cache_similarity: Option<f64>,
    /// The stored prompt the request rendered, `name@version`.
    pub prompt: Option<String>,
    /// The rollout that chose this request's arm, `id:baseline` or `id:candidate`.
    pub rollout: Option<String>,
    /// What the request said and was answered, when the config stores it: written to its own
    /// table with the record ([`crate::content`]), read with [`SqliteStore::request_content`];
    /// not part of the record's JSON or CSV, and `None` in records read back.
    ///
    /// [`SqliteStore::request_content`]: crate::SqliteStore::request_content
    #[serde(skip)]
    pub content: Option<Box<RequestContent>>,
}

/// A client's verdict on an answer (`POST /v1/feedback`). Kept apart from the request record:
/// it may arrive before the record is written, and more than one may arrive. Reports join the
/// two on the request id and the tenant, so one tenant cannot score another's requests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Feedback {
    pub request_id: String,
    pub key_id: String,
    pub tenant: String,
    pub created_at_ms: i64,
    /// Satisfaction from 0 (bad) to 1 (good); thumbs up is 1, down 0.
    pub score: Option<f64>,
    /// What became of the conversation, e.g. `resolved` or `escalated`.
    pub outcome: Option<String>,
    pub comment: Option<String>,
}

impl Feedback {
    /// A score below this is negative (a thumbs down is 0), as `kpi::SUCCESS_SQL` counts it.
    pub const NEGATIVE_BELOW: f64 = 0.5;

    /// The verdict is negative. An `escalated` outcome is not: handing a conversation to a
    /// human says nothing of the answer by itself (the KPIs count it apart).
    pub fn is_negative(&self) -> bool {
        self.score.is_some_and(|s| s < Self::NEGATIVE_BELOW)
    }
}

/// A request's conversation and answer as stored. Every text is as the gateway gave it:
/// masked, and cut with a marker when it was longer than the configured size.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestContent {
    /// The conversation as the model was sent it, oldest first.
    pub messages: Vec<ContentMessage>,
    /// Messages of a long conversation not stored, between the first and the last ones kept.
    #[serde(default)]
    pub omitted_messages: usize,
    /// What the model answered; `None` when it did not (a refusal, an error).
    pub answer: Option<ContentAnswer>,
}

/// One message of the conversation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContentMessage {
    /// `system`, `user`, `assistant`, `tool`, ...
    pub role: String,
    /// Its text (the text parts of a multi-part message, other parts named in brackets).
    pub text: String,
    /// The tool calls of an assistant message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ContentToolCall>,
    /// The call a tool message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

/// The model's answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContentAnswer {
    pub text: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ContentToolCall>,
    pub finish_reason: Option<String>,
}

/// A tool the model called, and with what.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContentToolCall {
    pub name: String,
    /// The arguments' JSON text, as the model wrote it (masked).
    pub arguments: String,
}
