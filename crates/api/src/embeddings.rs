//! `POST /v1/embeddings`.

use serde::{Deserialize, Serialize};

use crate::Extra;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingsRequest {
    pub model: String,
    pub input: EmbeddingInput,
    /// `"float"` (default) or `"base64"` (little-endian f32, what the OpenAI SDKs ask for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingInput {
    One(String),
    Many(Vec<String>),
    Tokens(Vec<u32>),
    ManyTokens(Vec<Vec<u32>>),
}

impl EmbeddingInput {
    /// The inputs as texts; token-id inputs become their ids joined by spaces, which is enough
    /// for providers that only see text and for the simulator's deterministic vectors.
    pub fn texts(&self) -> Vec<String> {
        fn ids(t: &[u32]) -> String {
            t.iter().map(u32::to_string).collect::<Vec<_>>().join(" ")
        }
        match self {
            EmbeddingInput::One(s) => vec![s.clone()],
            EmbeddingInput::Many(v) => v.clone(),
            EmbeddingInput::Tokens(t) => vec![ids(t)],
            EmbeddingInput::ManyTokens(v) => v.iter().map(|t| ids(t)).collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingsResponse {
    #[serde(default = "object_list")]
    pub object: String,
    pub data: Vec<Embedding>,
    pub model: String,
    pub usage: EmbeddingsUsage,
}

fn object_list() -> String {
    "list".to_owned()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Embedding {
    #[serde(default = "object_embedding")]
    pub object: String,
    pub index: u32,
    pub embedding: EmbeddingVector,
}

fn object_embedding() -> String {
    "embedding".to_owned()
}

/// A vector as floats, or as base64 of little-endian f32 when the caller asked for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingVector {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingsUsage {
    pub prompt_tokens: u32,
    pub total_tokens: u32,
}
