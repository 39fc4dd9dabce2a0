//! The control plane: what changes what the data plane runs, and judges how it went.
//!
//! Config [`versions`] (apply, roll back), [`rollouts`] (canaries, the controller that
//! promotes or rolls back), [`slos`] (error budgets and the alerts that act, with the
//! [`slo_actions`] a page puts in force), route [`calibrate`]ion from feedback,
//! [`feedback`] itself, content [`retention`], the Batch API ([`batches`], with the worker
//! that runs their lines), the
//! [`changes`] it hears of, the [`fleet`]'s judgement when replicas share a store, and the
//! [`background`] loops that run them. [`state`] is the `ControlPlane` itself; [`start`]
//! opens it. It publishes what runs now into the data plane's
//! [`Running`] and hears outcomes through the data plane's `OutcomeSink` (the SLOs).

pub mod alerts;
pub mod background;
pub mod batches;
pub mod calibrate;
pub mod changes;
pub mod feedback;
pub mod fleet;
pub mod launch;
pub mod retention;
pub mod rollouts;
pub mod slo_actions;
pub mod slos;
pub mod start;
pub mod state;
pub mod versions;

pub use start::OpenError;
pub use state::ControlPlane;
