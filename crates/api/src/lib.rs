//! OpenAI-compatible wire types: chat completions (plain and streamed), the Responses API
//! and its translation to and from chat (`responses`), embeddings, models,
//! Anthropic's Messages API and its translation to and from chat completions (`anthropic`),
//! AWS Bedrock's Converse API and the translation of chat completions to it (`bedrock`),
//! the Batch API's files and batches (`batch`, with its input file parser),
//! the error body, and SSE framing.
//!
//! This crate owns the shape of bytes on the wire and nothing else: serde types and pure
//! helpers. It does no I/O and knows nothing of providers, routing or policy. Every type keeps
//! unknown fields in an `extra` map, so a field a client sends that we do not model still
//! reaches an OpenAI-compatible upstream unchanged.

pub mod anthropic;
pub mod assemble;
pub mod batch;
pub mod bedrock;
pub mod chat;
mod conversation;
pub mod embeddings;
pub mod error;
pub mod feedback;
pub mod gemini;
pub mod models;
pub mod responses;
pub mod sse;

pub use assemble::ChunkAssembler;
pub use chat::*;
pub use embeddings::*;
pub use error::{ErrorBody, ErrorObject};
pub use feedback::{FeedbackAccepted, FeedbackRequest, Thumbs};
pub use models::{Model, ModelList};

/// Fields a type does not model, kept so they round-trip.
pub type Extra = serde_json::Map<String, serde_json::Value>;
