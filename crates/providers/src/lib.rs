//! Model providers behind one trait: OpenAI-compatible servers, Anthropic's Messages API, AWS
//! Bedrock's Converse API, Azure OpenAI, Google's Gemini API, Vertex AI (Gemini and Anthropic
//! models), and the built-in simulator.
//!
//! A provider takes an OpenAI-shaped request whose `model` is already the upstream model name
//! and answers in OpenAI shapes, whole or as a stream of chunks. Adapters translate wire
//! formats and classify failures ([`ProviderError::retryable`]); they never retry, balance,
//! time out a whole request or account: that is the gateway's job, done once for all of them.

pub mod anthropic;
pub mod azure;
pub mod bedrock;
mod build;
mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod gemini;
mod http;
mod oauth;
pub mod openai;
mod provider;
pub mod sim;
mod sse;
pub mod tokens;
mod translate;
pub mod vertex;

pub use build::{build, http_client, BuildError, SecretSource};
pub use error::{parse_retry_after, ProviderError};
pub use provider::{engine_priority, unix_now, CallOptions, ChatProvider, ChatReply, ChunkStream};
