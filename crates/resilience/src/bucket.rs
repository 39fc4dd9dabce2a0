use std::time::{Duration, Instant};

/// A token bucket for per-minute limits (requests or tokens per minute).
///
/// 1. The bucket holds at most `per_minute` units and refills continuously at
///    `per_minute / 60` a second.
/// 2. `try_take` admits when enough units are there. A single take larger than the whole
///    bucket is admitted only when the bucket is full, so an oversized request is slow, not
///    impossible.
/// 3. `settle` corrects an estimate once the real amount is known; the level may go below
///    zero, and the debt delays later requests.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBucket {
    capacity: f64,
    refill_per_sec: f64,
    level: f64,
    last: Instant,
}

/// One limit as OpenAI's `x-ratelimit-*` headers state it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub limit: u32,
    pub remaining: u32,
    /// Until the limit is back to its full allowance.
    pub reset: Duration,
}

impl TokenBucket {
    pub fn per_minute(limit: u32, now: Instant) -> Self {
        let capacity = f64::from(limit);
        TokenBucket {
            capacity,
            refill_per_sec: capacity / 60.0,
            level: capacity,
            last: now,
        }
    }

    /// Takes `amount`, or says how long until it could be taken.
    pub fn try_take(&mut self, amount: f64, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        let needed = amount.min(self.capacity);
        if self.level >= needed {
            self.level -= amount;
            Ok(())
        } else if self.refill_per_sec > 0.0 {
            Err(Duration::from_secs_f64(
                (needed - self.level) / self.refill_per_sec,
            ))
        } else {
            Err(Duration::from_secs(60))
        }
    }

    /// Replaces an admitted `estimate` with the `actual` amount.
    pub fn settle(&mut self, estimate: f64, actual: f64, now: Instant) {
        self.refill(now);
        self.level = (self.level + estimate - actual).min(self.capacity);
    }

    pub fn level(&mut self, now: Instant) -> f64 {
        self.refill(now);
        self.level
    }

    /// The most the bucket holds: the per-minute limit.
    pub fn capacity(&self) -> f64 {
        self.capacity
    }

    /// The bucket as OpenAI's `x-ratelimit-*` headers state a limit.
    pub fn window(&mut self, now: Instant) -> Window {
        let level = self.level(now);
        Window {
            limit: self.capacity as u32,
            remaining: level.clamp(0.0, self.capacity) as u32,
            reset: self.until_full(now),
        }
    }

    /// How long until the bucket is full again, if nothing more is taken.
    pub fn until_full(&mut self, now: Instant) -> Duration {
        self.refill(now);
        if self.refill_per_sec > 0.0 {
            Duration::from_secs_f64(((self.capacity - self.level) / self.refill_per_sec).max(0.0))
        } else {
            Duration::ZERO
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.level = (self.level + elapsed * self.refill_per_sec).min(self.capacity);
        self.last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn admits_a_minutes_worth_then_waits() {
        let t0 = Instant::now();
        let mut b = TokenBucket::per_minute(60, t0);
        for _ in 0..60 {
            assert!(b.try_take(1.0, t0).is_ok());
        }
        let wait = b.try_take(1.0, t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(1));
        assert!(b.try_take(1.0, t0 + Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn settling_refunds_or_charges_the_difference() {
        let t0 = Instant::now();
        let mut b = TokenBucket::per_minute(1000, t0);
        b.try_take(500.0, t0).unwrap();
        b.settle(500.0, 100.0, t0);
        assert_eq!(b.level(t0), 900.0);
        b.settle(0.0, 1500.0, t0);
        assert_eq!(b.level(t0), -600.0);
        assert!(b.try_take(1.0, t0).is_err());
    }

    #[test]
    fn until_full_counts_the_refill_of_what_is_missing() {
        let t0 = Instant::now();
        let mut b = TokenBucket::per_minute(60, t0);
        assert_eq!(b.until_full(t0), Duration::ZERO);
        b.try_take(6.0, t0).unwrap();
        assert_eq!(b.until_full(t0), Duration::from_secs(6));
        assert_eq!(
            b.until_full(t0 + Duration::from_secs(2)),
            Duration::from_secs(4)
        );
        assert_eq!(b.capacity(), 60.0);
    }

    #[test]
    fn oversized_take_needs_a_full_bucket() {
        let t0 = Instant::now();
        let mut b = TokenBucket::per_minute(100, t0);
        assert!(b.try_take(250.0, t0).is_ok());
        assert!(b.try_take(250.0, t0 + Duration::from_secs(60)).is_err());
    }

    proptest! {
        /// Over any schedule, admitted units never exceed the initial capacity plus the refill.
        #[test]
        fn never_admits_more_than_the_rate(
            limit in 1u32..10_000,
            takes in proptest::collection::vec((1u32..500, 0u64..2_000), 1..100)
        ) {
            let t0 = Instant::now();
            let mut b = TokenBucket::per_minute(limit, t0);
            let mut now = t0;
            let mut admitted = 0f64;
            for (amount, dt) in takes {
                now += Duration::from_millis(dt);
                let amount = f64::from(amount.min(limit));
                if b.try_take(amount, now).is_ok() { admitted += amount; }
            }
            let elapsed = now.duration_since(t0).as_secs_f64();
            prop_assert!(admitted <= f64::from(limit) * (1.0 + elapsed / 60.0) + 1e-6);
        }
    }
}
