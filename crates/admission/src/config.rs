use std::collections::HashMap;
use std::time::Duration;

use crate::class::{Class, PerClass};

/// What a deployment can serve at once. `None` is unlimited; with both `None` nothing ever
/// waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capacity {
    pub max_concurrent: Option<u32>,
    pub max_tokens_in_flight: Option<u64>,
}

impl Capacity {
    /// One replica's share when `replicas` replicas send to the same deployment: each limit
    /// divided among them, rounded up (so the fleet together may pass it by less than one
    /// request or token per replica), never below 1.
    pub fn share(self, replicas: u32) -> Capacity {
        let n = replicas.max(1);
        Capacity {
            max_concurrent: self.max_concurrent.map(|max| max.div_ceil(n).max(1)),
            max_tokens_in_flight: self
                .max_tokens_in_flight
                .map(|max| max.div_ceil(u64::from(n)).max(1)),
        }
    }
}

/// The limits of one class's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassLimits {
    /// A ticket that waited longer is shed by [`crate::Queue::expire`].
    pub max_wait: Duration,
    /// The class's room in the queue. A higher class that finds its room full takes the place
    /// of the newest ticket of a lower class; the queue as a whole never holds more than the
    /// sum of every class's room (plus preempted holders put back).
    pub max_queue: usize,
}

/// One deployment's admission settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    pub capacity: Capacity,
    pub classes: PerClass<ClassLimits>,
    /// Tokens of credit a tenant of weight 1 gets per round of deficit round robin; at least 1.
    pub quantum: u64,
    /// Weights of tenants within a class; a tenant not named has weight 1, and 0 counts as 1.
    pub tenant_weights: HashMap<String, u32>,
    /// The bounds of [`crate::Queue::retry_after`].
    pub retry_after_floor: Duration,
    pub retry_after_ceiling: Duration,
}

impl QueueConfig {
    /// The defaults for a deployment of this capacity.
    pub fn new(capacity: Capacity) -> Self {
        QueueConfig {
            capacity,
            classes: PerClass::from_fn(|class| match class {
                Class::Critical => limits(30, 256),
                Class::Interactive => limits(30, 1024),
                Class::Standard => limits(120, 1024),
                // The Batch API's completion window is 24 hours.
                Class::Batch => limits(24 * 3600, 10_000),
            }),
            quantum: 4096,
            tenant_weights: HashMap::new(),
            retry_after_floor: Duration::from_secs(1),
            retry_after_ceiling: Duration::from_secs(120),
        }
    }

    /// A tenant's share of each round: its weight times the quantum.
    pub(crate) fn credit(&self, tenant: &str) -> u64 {
        let weight = self.tenant_weights.get(tenant).copied().unwrap_or(1).max(1);
        self.quantum.max(1).saturating_mul(u64::from(weight))
    }

    /// The most tickets the queue holds waiting (preempted holders put back aside).
    pub(crate) fn total_room(&self) -> usize {
        self.classes.0.iter().map(|limits| limits.max_queue).sum()
    }
}

fn limits(max_wait_secs: u64, max_queue: usize) -> ClassLimits {
    ClassLimits {
        max_wait: Duration::from_secs(max_wait_secs),
        max_queue,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replicas_share_is_the_capacity_divided_rounded_up() {
        let whole = Capacity {
            max_concurrent: Some(16),
            max_tokens_in_flight: Some(100_000),
        };
        assert_eq!(whole.share(1), whole);
        assert_eq!(whole.share(0), whole);
        assert_eq!(
            whole.share(3),
            Capacity {
                max_concurrent: Some(6),
                max_tokens_in_flight: Some(33_334),
            }
        );
        let small = Capacity {
            max_concurrent: Some(2),
            max_tokens_in_flight: None,
        };
        assert_eq!(small.share(5).max_concurrent, Some(1));
        assert_eq!(small.share(5).max_tokens_in_flight, None);
    }
}
