//! `POST /v1/feedback`: checks a client's verdict and turns it into a stored [`Feedback`].
//! Storing is the caller's job; this module is pure.

use switchyard_api::{FeedbackRequest, Thumbs};
use switchyard_store::Feedback;

use crate::data_plane::keys::KeyState;
use crate::data_plane::record::MAX_REQUEST_ID;
use crate::error::GatewayError;

const MAX_OUTCOME: usize = 32;
const MAX_COMMENT: usize = 4000;

/// The header a client sets on the request that hands a conversation over to a human.
pub const ESCALATED: &str = "x-switchyard-escalated";

/// The `escalated` outcome a chat request's `x-switchyard-escalated: true` stands for, as the
/// feedback `POST /v1/feedback` with `outcome: escalated` would store (the KPIs count both).
pub fn escalation_from_header(
    headers: &axum::http::HeaderMap,
    record: &switchyard_store::RequestRecord,
) -> Option<Feedback> {
    let set = headers
        .get(ESCALATED)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
    let (Some(key_id), Some(tenant)) = (&record.key_id, &record.tenant) else {
        return None;
    };
    set.then(|| Feedback {
        request_id: record.request_id.clone(),
        key_id: key_id.clone(),
        tenant: tenant.clone(),
        created_at_ms: record.started_at_ms,
        score: None,
        outcome: Some("escalated".to_owned()),
        comment: Some(format!("{ESCALATED} header")),
    })
}

/// Validates a feedback request from `key`, made at `now_ms`.
pub fn validate(
    request: FeedbackRequest,
    key: &KeyState,
    now_ms: i64,
) -> Result<Feedback, GatewayError> {
    let id = request.request_id.trim();
    if id.is_empty() || id.len() > MAX_REQUEST_ID {
        return Err(GatewayError::invalid(
            Some("request_id"),
            format!("`request_id` must be the x-switchyard-request-id of an answer (1 to {MAX_REQUEST_ID} characters)"),
        ));
    }
    let score = match (request.score, request.thumbs) {
        (Some(_), Some(_)) => {
            return Err(GatewayError::invalid(
                Some("thumbs"),
                "give `score` or `thumbs`, not both",
            ));
        }
        (Some(s), None) if !(0.0..=1.0).contains(&s) => {
            return Err(GatewayError::invalid(
                Some("score"),
                format!("`score` must be between 0 and 1 (got {s})"),
            ));
        }
        (Some(s), None) => Some(s),
        (None, Some(Thumbs::Up)) => Some(1.0),
        (None, Some(Thumbs::Down)) => Some(0.0),
        (None, None) => None,
    };
    if let Some(outcome) = &request.outcome {
        let ok = !outcome.is_empty()
            && outcome.len() <= MAX_OUTCOME
            && outcome.chars().all(|c| c.is_ascii_lowercase() || c == '_');
        if !ok {
            return Err(GatewayError::invalid(
                Some("outcome"),
                format!("`outcome` is a short lowercase word such as `resolved` or `escalated` (a-z and _, at most {MAX_OUTCOME})"),
            ));
        }
    }
    if score.is_none() && request.outcome.is_none() {
        return Err(GatewayError::invalid(
            Some("score"),
            "give at least one of `score`, `thumbs`, `outcome`",
        ));
    }
    if request
        .comment
        .as_ref()
        .is_some_and(|c| c.chars().count() > MAX_COMMENT)
    {
        return Err(GatewayError::invalid(
            Some("comment"),
            format!("`comment` is limited to {MAX_COMMENT} characters"),
        ));
    }
    Ok(Feedback {
        request_id: id.to_owned(),
        key_id: key.id.clone(),
        tenant: key.tenant.clone(),
        created_at_ms: now_ms,
        score,
        outcome: request.outcome,
        comment: request.comment,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_control::{hash_key, KeySecret, KeySpec, ModelAccess};

    fn key() -> KeyState {
        let spec = KeySpec {
            id: "k".into(),
            tenant: "t".into(),
            secret: KeySecret::Sha256(hash_key("s")),
            models: ModelAccess::All,
            rpm: None,
            tpm: None,
            budget_daily_nanos: None,
            budget_monthly_nanos: None,
            route_policy: None,
            guard_policy: None,
            priority: Default::default(),
        };
        KeyState::new(&spec, &crate::data_plane::keys::Periods::now(), &|_, _| 0)
    }

    fn req(json: serde_json::Value) -> FeedbackRequest {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn thumbs_become_scores_and_the_key_is_attached() {
        let f = validate(
            req(serde_json::json!({"request_id": "r1", "thumbs": "down", "outcome": "escalated"})),
            &key(),
            5,
        )
        .unwrap();
        assert_eq!(
            (
                f.score,
                f.outcome.as_deref(),
                f.tenant.as_str(),
                f.created_at_ms
            ),
            (Some(0.0), Some("escalated"), "t", 5)
        );
    }

    #[test]
    fn nonsense_is_refused_with_the_field() {
        let param = |json| validate(req(json), &key(), 0).unwrap_err().param;
        assert_eq!(
            param(serde_json::json!({"request_id": "r", "score": 7})).as_deref(),
            Some("score")
        );
        assert_eq!(
            param(serde_json::json!({"request_id": "r", "score": 1, "thumbs": "up"})).as_deref(),
            Some("thumbs")
        );
        assert_eq!(
            param(serde_json::json!({"request_id": " ", "score": 1})).as_deref(),
            Some("request_id")
        );
        assert_eq!(
            param(serde_json::json!({"request_id": "r", "outcome": "DROP TABLE"})).as_deref(),
            Some("outcome")
        );
        assert_eq!(
            param(serde_json::json!({"request_id": "r"})).as_deref(),
            Some("score"),
            "a verdict is missing: the first field that could give it"
        );
    }
}
