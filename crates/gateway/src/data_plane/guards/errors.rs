//! How guards fail: building from config, and refusing a request.

use crate::error::{ErrorKind, GatewayError};
use switchyard_guards::{GuardVerdict, Outcome};

#[derive(Debug, thiserror::Error)]
pub enum GuardBuildError {
    #[error("guards.pii: {0}")]
    Pii(#[from] switchyard_pii::PiiError),
    #[error("guards.injection.artifact: {0}")]
    Injection(#[from] switchyard_textclass::injection::DetectorError),
    #[error("guards.toxicity.artifact: {0}")]
    Toxicity(#[from] switchyard_textclass::toxicity::ToxicityError),
    #[error("guards.webhook: cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("guards.topics.embedder: {0}")]
    TopicsEmbedder(switchyard_embed::EmbedError),
    #[error("guards.topics: {0}")]
    Topics(#[from] switchyard_topics::TopicError),
    #[error("guards.harmful.artifact: {0}")]
    Harmful(#[from] switchyard_textclass::harmful::HarmfulError),
    #[error("guards.harmful.embedder: {0}")]
    HarmfulEmbedder(switchyard_embed::EmbedError),
    #[error(
        "guards.harmful.embedder: the model gives {found}-dimensional vectors, the classifier \
         was trained on {expected}"
    )]
    HarmfulDimension { found: usize, expected: usize },
    #[error("guards.grounding: {0}")]
    Grounding(#[from] switchyard_grounding::GroundingError),
}

/// The client error a blocking verdict becomes.
pub fn refusal(v: &GuardVerdict) -> GatewayError {
    let what = if v.outcome == Outcome::Error {
        format!(
            "the {} guard failed and is configured to refuse when it fails",
            v.guard
        )
    } else {
        format!("the {} guard refused the request ({})", v.guard, v.detail)
    };
    let e = GatewayError::new(ErrorKind::InvalidRequest, "content_policy_violation", what);
    // Input guards read the conversation; a guard that failed refused no field of it.
    if v.outcome == Outcome::Error {
        e
    } else {
        e.with_param("messages")
    }
}
