use serde::{Deserialize, Serialize};

use crate::StoreError;

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
    /// The priority class it ran at (`critical`, `interactive`, `standard`, `batch`); `None`
    /// for requests that have none (embeddings, those refused before it was known).
    #[serde(default)]
    pub priority: Option<String>,
    /// Milliseconds it waited for a deployment's capacity, every wait added.
    #[serde(default)]
    pub queue_ms: u64,
    /// Times its upstream call was cancelled to give its capacity to urgent work (and it was
    /// queued again).
    #[serde(default)]
    pub preemptions: u32,
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

/// Which requests [`RecordStore::served_outcomes`] reads: those a model served, that rendered a
/// prompt version (`name@N`), or that ran on a config version (its 12-digit short id).
#[derive(Debug, Clone, Copy)]
pub enum Served<'a> {
    Model(&'a str),
    Prompt(&'a str),
    ConfigVersion(&'a str),
}

/// What a rollout's analysis reads of a past request.
#[derive(Debug, Clone, PartialEq)]
pub struct ServedOutcome {
    pub status: u16,
    pub latency_ms: f64,
    pub ttft_ms: Option<f64>,
    pub stream: bool,
    /// The verdicts' JSON, as recorded.
    pub guards: Option<String>,
}

/// The request records every replica writes and reads back. Every method blocks (see
/// [`crate::Store`] for why the seams are sync).
pub trait RecordStore {
    /// Writes records in one transaction, with what their guard verdicts mean
    /// ([`crate::verdicts::GuardFlags`], kept beside each record so reports need not parse
    /// the verdicts' JSON) and their content, when they carry some ([`crate::content`]).
    fn write_batch(&self, records: &[RequestRecord]) -> Result<(), StoreError>;

    /// Nano-dollars a key has spent since a time (for budgets after a restart).
    fn spend_since(&self, key_id: &str, since_ms: i64) -> Result<u64, StoreError>;

    /// The most recent records, newest first.
    fn recent(&self, limit: usize) -> Result<Vec<RequestRecord>, StoreError>;

    /// Chat requests a provider answered (no cache hits, no guard refusals) between `from_ms`
    /// and `to_ms`, newest first: the reference window of a blue-green rollout, whose baseline
    /// serves nothing once it has switched.
    fn served_outcomes(
        &self,
        served: Served<'_>,
        from_ms: i64,
        to_ms: i64,
        limit: usize,
    ) -> Result<Vec<ServedOutcome>, StoreError>;

    /// The record of one request, once it is written.
    fn request(&self, request_id: &str) -> Result<Option<RequestRecord>, StoreError>;

    /// How many records are stored.
    fn count(&self) -> Result<u64, StoreError>;

    /// Whether the store accepts a write now (for `/readyz`).
    fn check_writable(&self) -> Result<(), StoreError>;
}

/// Clients' feedback on answers. Every method blocks.
pub trait FeedbackStore {
    /// Stores one piece of feedback; durable when this returns. Returns whether it is the
    /// first negative score ([`Feedback::is_negative`]) the request got from its tenant: the
    /// one that spoils the request's quality, so a caller acting on it acts once however often
    /// the client sends or changes its verdict. The check and the insert are one transaction,
    /// so two negatives sent at once (to any replica) cannot both be first.
    fn add_feedback(&self, f: &Feedback) -> Result<bool, StoreError>;

    /// Feedback given on a request, oldest first.
    fn feedback_for(&self, request_id: &str) -> Result<Vec<Feedback>, StoreError>;
}

/// The JSON kept of a record's content ([`crate::content`]).
pub(crate) fn content_json(
    r: &RequestRecord,
    content: &RequestContent,
) -> Result<String, StoreError> {
    serde_json::to_string(content).map_err(|source| StoreError::Json {
        what: format!("the content of request {}", r.request_id),
        source,
    })
}
