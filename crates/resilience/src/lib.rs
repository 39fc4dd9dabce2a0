//! Mechanisms that keep the gateway and its upstreams healthy: exponential backoff with
//! jitter, circuit breakers, power-of-two-choices balancing, and token buckets and spend
//! budgets for admission.
//!
//! Everything here is pure: time and randomness come in as arguments, so every algorithm is
//! tested with exact instants and exact draws. No I/O, no clocks, no locks; callers own
//! synchronisation.

pub mod backoff;
pub mod balance;
pub mod breaker;
pub mod bucket;
pub mod budget;

pub use backoff::Backoff;
pub use balance::{pick_p2c, Load};
pub use breaker::{BreakerPolicy, BreakerState, CircuitBreaker};
pub use bucket::TokenBucket;
pub use budget::{BudgetExceeded, SpendBudget};
