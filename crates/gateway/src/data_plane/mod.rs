//! The data plane: everything a request passes through, from its key to its record.
//!
//! [`pipeline::Pipeline`] is one config version made runnable; a request runs its stages in
//! order (authenticate and admit with [`keys`], whose limits count in [`counters`], render a
//! stored prompt with [`prompts`], mask and screen with [`guards`], look up the [`cache`],
//! decide with [`routing`], [`dispatch`] to providers (fanning out `n > 1`, [`choices`]) with retries, breakers and fallbacks
//! (self-hosted replicas by their engines' load, [`engines`]), waiting for a deployment's
//! capacity in [`admission`],
//! stream the answer with [`stream`]), and
//! [`record`] writes one record per request whatever happens. What the control plane decided
//! reaches it as [`running::Running`]; what requests did goes back through
//! [`record::OutcomeSink`]. A fleet of replicas shares its limits and cache through Redis
//! ([`shared`]).

pub mod admission;
pub mod arms;
pub mod cache;
pub mod choices;
pub mod content;
pub mod counters;
pub mod dispatch;
pub mod engines;
pub mod flags;
pub mod guards;
pub mod keys;
pub mod live;
pub mod pipeline;
pub mod prompts;
pub mod record;
pub mod responses;
pub mod routing;
pub mod running;
pub mod shared;
pub mod stream;
pub mod trace;

pub use record::OutcomeSink;
pub use running::Running;
