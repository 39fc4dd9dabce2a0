//! Mechanisms that keep the gateway and its upstreams healthy: exponential backoff with
//! jitter, circuit breakers, power-of-two-choices balancing, and token buckets and spend
//! budgets for admission, with a key's limits checked and reserved together ([`KeyLimits`]).
//!
//! Everything here is pure: time and randomness come in as arguments, so every algorithm is
//! tested with exact instants and exact draws. No I/O, no clocks, no locks; callers own
//! synchronisation.

pub mod backoff;
pub mod balance;
pub mod breaker;
pub mod bucket;
pub mod budget;
pub mod limits;

pub use backoff::Backoff;
pub use balance::{pick_p2c, Load};
pub use breaker::{BreakerPolicy, BreakerState, CircuitBreaker};
pub use bucket::{TokenBucket, Window};
pub use budget::{BudgetExceeded, SpendBudget};
pub use limits::{Exceeded, KeyLimits, LimitSpec, Period};
