//! Test infrastructure for Switchyard: a scriptable fake upstream that speaks the OpenAI,
//! Anthropic, AWS Bedrock's Converse, Azure OpenAI, Gemini or Vertex AI wire format over real
//! HTTP on `127.0.0.1:0`, checking credentials as the cloud APIs do: Bedrock's every request's
//! SigV4 signature with [`sigv4`], an independent verifier held to AWS's reference vectors;
//! the others API keys, or bearer tokens from its own OAuth token endpoint (RS256 JWT
//! assertions verified).
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
//! [`FakeImds`] is an EC2 instance metadata service (IMDSv2) handing out a role's temporary
//! credentials, for the `bedrock` provider's credentials chain.
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
mod imds;
mod oauth;
mod server;
pub mod servers;
pub mod sigv4;
mod wait;
mod wire;
mod wire_bedrock;
mod wire_gemini;

pub use behavior::{Behavior, Ending, FakeUsage, Gate, Reply, ToolCallReply, DEFAULT_TEXT};
pub use engine::{EngineFlavor, FakeEngine, Hold, ENGINE_MODEL};
pub use imds::{FakeImds, ImdsAnswer, CONTAINER_TOKEN};
pub use oauth::{foreign_service_account_key_file, service_account_key_file, FAKE_SERVICE_ACCOUNT};
pub use server::{FakeUpstream, RecordedRequest};
pub use wait::eventually;
pub use wire::Flavor;
pub use wire_bedrock::{
    exception_frame, frame, FAKE_AWS_ACCESS_KEY_ID, FAKE_AWS_REGION, FAKE_AWS_SECRET_ACCESS_KEY,
};
