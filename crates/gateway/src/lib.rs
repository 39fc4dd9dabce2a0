//! The gateway: the HTTP server, the request pipeline, and the stages it is made of.
//!
//! Follow a request: [`server`] receives it and frames the answer, [`pipeline::Pipeline`]
//! runs the stages in order (authenticate and admit with [`keys`], resolve the model,
//! [`dispatch`] to providers with retries, breakers and fallbacks, stream the answer with
//! [`stream`]), and [`record`] writes one record per request whatever happens. Errors become
//! responses in exactly one place, [`error`]. This crate owns no algorithm that can live in a
//! pure crate: breakers, backoff and limits come from `switchyard-resilience`.

pub mod admin;
pub mod cache;
pub mod calibrate;
pub mod content;
pub mod dashboard;
pub mod dispatch;
pub mod error;
pub mod feedback;
pub mod flags;
pub mod guards;
pub mod keys;
pub mod kpis;
pub mod live;
pub mod metrics;
pub mod pipeline;
pub mod prompts;
pub mod record;
pub mod rollouts;
pub mod routing;
pub mod server;
pub mod slos;
pub mod stream;
pub mod upstream_server;
pub mod versions;

pub use error::{ErrorKind, GatewayError, Side};
pub use server::{Server, StartError};
