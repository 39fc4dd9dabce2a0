//! Test infrastructure for Switchyard: a scriptable fake upstream that speaks the OpenAI,
//! Anthropic, Azure OpenAI, Gemini or Vertex AI wire format over real HTTP on `127.0.0.1:0`,
//! checking credentials as the cloud APIs do (API keys; bearer tokens from its own OAuth
//! token endpoint, RS256 JWT assertions verified).
//!
//! Tests queue [`Behavior`]s (answer, stream with pacing, error status, malformed chunk,
//! missing usage, hang, abort mid-stream), then assert on what the server received
//! ([`FakeUpstream::requests`]) and on whether a client hung up mid-stream
//! ([`FakeUpstream::wait_for_disconnects`]). The wire bodies are written out as JSON by hand,
//! not with Switchyard's own types, so a test cannot pass because both sides share a mistake.
//!
//! [`FakeEngine`] is a self-hosted engine (vLLM, llama.cpp, TGI, SGLang): an OpenAI-compatible
//! server on the continuous-batching model of `switchyard-engine`, serving its own load on
//! `/metrics` in that engine's format.
//!
//! [`servers`] starts throwaway PostgreSQL and Redis servers for the tests of a fleet.
//!
//! [`data`] finds the shared evaluation data for the evaluations and tests that read it.
//!
//! [`eventually`] waits, with a deadline, for what a server does in the background.
//!
//! This crate is for tests only: it must never be a dependency of production code.

mod behavior;
pub mod data;
mod engine;
mod frames;
mod oauth;
mod server;
pub mod servers;
mod wait;
mod wire;
mod wire_gemini;

pub use behavior::{Behavior, Ending, FakeUsage, Gate, Reply, ToolCallReply, DEFAULT_TEXT};
pub use engine::{EngineFlavor, FakeEngine, Hold, ENGINE_MODEL};
pub use oauth::{foreign_service_account_key_file, service_account_key_file, FAKE_SERVICE_ACCOUNT};
pub use server::{FakeUpstream, RecordedRequest};
pub use wait::eventually;
pub use wire::Flavor;
