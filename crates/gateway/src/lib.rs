//! The gateway, in three parts with one direction of dependency (a test in
//! `crates/switchyard/tests/architecture.rs` keeps it so):
//!
//! - [`data_plane`]: what serves a request. The pipeline and its stages (keys and limits,
//!   guards, cache, routing, dispatch, streaming) and the record every request leaves. It
//!   imports neither of the others.
//! - [`control_plane`]: what changes what runs. Config versions, rollouts, SLOs, calibration,
//!   feedback, retention. It reaches the data plane only through what it publishes
//!   ([`data_plane::Running`]: the pipeline, flags, prompts and rollouts in force) and through
//!   the outcomes requests report to it ([`data_plane::OutcomeSink`]).
//! - [`edge`]: HTTP. The OpenAI API, the admin API, the dashboard, health and metrics; it
//!   frames what the other two answer and owns no decision of its own.
//!
//! Beneath all three: [`error`] (every failure in the client's API shape, made a response in
//! exactly one place), [`metrics`] (the names and the bounded label values) and [`otel`] (OTLP
//! export of traces, off the request path). This crate
//! owns no algorithm that can live in a pure crate: breakers, backoff and limits come from
//! `switchyard-resilience`, guard models from their own crates.

pub mod control_plane;
pub mod data_plane;
pub mod edge;
pub mod error;
pub mod metrics;
pub mod otel;
pub mod tasks;
pub mod upstream_server;

pub use edge::server::{Server, StartError};
pub use error::{ErrorKind, GatewayError, Side};
