//! Admission for a deployment of finite capacity: priority classes ([`Class`]), the queue of
//! requests waiting for a deployment's capacity ([`Queue`]: served by class first and by
//! deficit round robin between tenants within a class), shedding when a queue is full or a
//! ticket waited past its class's limit, the `retry-after` a shed request is given, and the
//! choice of the batch holder to preempt when interactive work waits.
//!
//! Everything here is pure: it owns no I/O, no tokio, no locks and no clock of its own. Every
//! call that needs the time takes `now: Instant` (tickets carry their own `enqueued_at`), so
//! every algorithm is tested with exact instants. The caller (the gateway's data plane) owns
//! synchronisation, cancels the upstream call of a preempted holder and answers shed requests.

pub mod class;
pub mod config;
mod drr;
pub mod queue;
mod rate;
pub mod ticket;

pub use class::{Class, ParseClassError, PerClass};
pub use config::{Capacity, ClassLimits, QueueConfig};
pub use queue::{Offer, Queue};
pub use ticket::{AdmissionError, Ticket, TicketId};
