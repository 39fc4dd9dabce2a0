//! `POST /v1/feedback`: Switchyard's own endpoint for a client's verdict on an answer.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    /// The `x-switchyard-request-id` of the answer.
    pub request_id: String,
    /// Satisfaction from 0 (bad) to 1 (good).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// Or thumbs: `up` counts as 1, `down` as 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbs: Option<Thumbs>,
    /// What became of the conversation, e.g. `resolved`, `escalated`, `abandoned`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Thumbs {
    Up,
    Down,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackAccepted {
    pub object: String,
    pub request_id: String,
}
