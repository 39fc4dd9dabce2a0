use std::time::Instant;

use crate::class::Class;

/// The caller's identifier of one request; unique among the tickets a [`crate::Queue`] holds
/// or queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TicketId(pub u64);

/// One request asking for a deployment's capacity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub id: TicketId,
    pub class: Class,
    /// Whom the request is fair to within its class (a key, a team): the tenants of deficit
    /// round robin.
    pub tenant: String,
    /// Tokens the request reserves while it holds capacity (its estimate of prompt and
    /// completion).
    pub tokens: u64,
    pub enqueued_at: Instant,
}

impl Ticket {
    pub fn new(
        id: TicketId,
        class: Class,
        tenant: impl Into<String>,
        tokens: u64,
        enqueued_at: Instant,
    ) -> Self {
        Ticket {
            id,
            class,
            tenant: tenant.into(),
            tokens,
            enqueued_at,
        }
    }
}

/// A call the queue cannot honour: the caller's bookkeeping disagrees with the queue's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    #[error("ticket {0:?} is already queued or holding capacity")]
    Duplicate(TicketId),
    #[error("ticket {0:?} holds no capacity")]
    NotHeld(TicketId),
}
