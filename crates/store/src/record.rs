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
    /// Filled by later stages: route decision, cache outcome, guard verdicts (JSON texts), and
    /// the config version the request ran on.
    pub route: Option<String>,
    pub cache: Option<String>,
    pub guards: Option<String>,
    pub config_version: Option<String>,
}
