use std::time::{Duration, Instant};

/// When a breaker opens and for how long.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerPolicy {
    /// Open after this many failures in a row.
    pub consecutive_failures: u32,
    /// Or open when this share of the window's requests failed...
    pub failure_rate: f64,
    /// ...once the window holds at least this many requests.
    pub min_requests: u32,
    /// Length of the tumbling window that `failure_rate` is measured over.
    pub window: Duration,
    /// How long an open breaker refuses before it lets one probe through.
    pub open_for: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy {
            consecutive_failures: 5,
            failure_rate: 0.5,
            min_requests: 20,
            window: Duration::from_secs(30),
            open_for: Duration::from_secs(15),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    HalfOpen,
    Open,
}

impl BreakerState {
    /// The value exported as the `switchyard_breaker_state` gauge.
    pub fn gauge(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::HalfOpen => 1.0,
            BreakerState::Open => 2.0,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::HalfOpen => "half_open",
            BreakerState::Open => "open",
        }
    }
}

#[derive(Debug, Clone)]
enum Inner {
    Closed {
        consecutive: u32,
        window_start: Instant,
        requests: u32,
        failures: u32,
    },
    Open {
        until: Instant,
    },
    HalfOpen {
        probe_in_flight: bool,
    },
}

/// A circuit breaker for one deployment.
///
/// 1. Closed: every call goes through. Each outcome is counted in a tumbling window. After
///    `consecutive_failures` failures in a row, or when at least `min_requests` calls in the
///    window failed at `failure_rate` or more, the breaker opens.
/// 2. Open: calls are refused until `open_for` has passed since it opened.
/// 3. Then the next call is let through as the single probe (half-open); others are still
///    refused while it is in flight.
/// 4. The probe succeeding closes the breaker with fresh counts; failing re-opens it for
///    another `open_for`. A probe that ends with no outcome (cancelled) frees the slot for
///    another probe.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    policy: BreakerPolicy,
    inner: Inner,
}

impl CircuitBreaker {
    pub fn new(policy: BreakerPolicy, now: Instant) -> Self {
        CircuitBreaker {
            policy,
            inner: closed(now),
        }
    }

    /// Whether a call may go out now. Taking the half-open probe slot is a side effect, so
    /// call this only for a call that will be made, and report its outcome.
    pub fn try_acquire(&mut self, now: Instant) -> bool {
        match &mut self.inner {
            Inner::Closed { .. } => true,
            Inner::Open { until } => {
                if now >= *until {
                    self.inner = Inner::HalfOpen {
                        probe_in_flight: true,
                    };
                    true
                } else {
                    false
                }
            }
            Inner::HalfOpen { probe_in_flight } => {
                if *probe_in_flight {
                    false
                } else {
                    *probe_in_flight = true;
                    true
                }
            }
        }
    }

    /// Whether a call could go out now, without taking anything.
    pub fn is_available(&self, now: Instant) -> bool {
        match &self.inner {
            Inner::Closed { .. } => true,
            Inner::Open { until } => now >= *until,
            Inner::HalfOpen { probe_in_flight } => !probe_in_flight,
        }
    }

    pub fn on_success(&mut self, now: Instant) {
        match &mut self.inner {
            Inner::HalfOpen { .. } => self.inner = closed(now),
            Inner::Open { .. } => {}
            Inner::Closed { .. } => {
                self.roll_window(now);
                if let Inner::Closed {
                    consecutive,
                    requests,
                    ..
                } = &mut self.inner
                {
                    *consecutive = 0;
                    *requests += 1;
                }
            }
        }
    }

    pub fn on_failure(&mut self, now: Instant) {
        match &mut self.inner {
            Inner::HalfOpen { .. } => self.open(now),
            Inner::Open { .. } => {}
            Inner::Closed { .. } => {
                self.roll_window(now);
                let policy = self.policy;
                if let Inner::Closed {
                    consecutive,
                    requests,
                    failures,
                    ..
                } = &mut self.inner
                {
                    *consecutive += 1;
                    *requests += 1;
                    *failures += 1;
                    let rate_tripped = *requests >= policy.min_requests
                        && f64::from(*failures) >= policy.failure_rate * f64::from(*requests);
                    if *consecutive >= policy.consecutive_failures || rate_tripped {
                        self.open(now);
                    }
                }
            }
        }
    }

    /// A call that was let through ended with no outcome (cancelled by the client).
    pub fn on_cancel(&mut self) {
        if let Inner::HalfOpen { probe_in_flight } = &mut self.inner {
            *probe_in_flight = false;
        }
    }

    /// How long until an open breaker lets a probe through; `None` when it is not open.
    pub fn open_remaining(&self, now: Instant) -> Option<Duration> {
        match &self.inner {
            Inner::Open { until } if now < *until => Some(*until - now),
            _ => None,
        }
    }

    pub fn state(&self, now: Instant) -> BreakerState {
        match &self.inner {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { until } if now >= *until => BreakerState::HalfOpen,
            Inner::Open { .. } => BreakerState::Open,
            Inner::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    fn open(&mut self, now: Instant) {
        self.inner = Inner::Open {
            until: now + self.policy.open_for,
        };
    }

    fn roll_window(&mut self, now: Instant) {
        if let Inner::Closed {
            window_start,
            requests,
            failures,
            ..
        } = &mut self.inner
        {
            if now.saturating_duration_since(*window_start) >= self.policy.window {
                *window_start = now;
                *requests = 0;
                *failures = 0;
            }
        }
    }
}

fn closed(now: Instant) -> Inner {
    Inner::Closed {
        consecutive: 0,
        window_start: now,
        requests: 0,
        failures: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy() -> BreakerPolicy {
        BreakerPolicy {
            consecutive_failures: 3,
            failure_rate: 0.5,
            min_requests: 10,
            window: Duration::from_secs(10),
            open_for: Duration::from_secs(5),
        }
    }

    #[test]
    fn opens_after_consecutive_failures_then_probes() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(policy(), t0);
        for _ in 0..2 {
            assert!(b.try_acquire(t0));
            b.on_failure(t0);
        }
        assert_eq!(b.state(t0), BreakerState::Closed);
        b.on_failure(t0);
        assert_eq!(b.state(t0), BreakerState::Open);
        assert_eq!(
            b.open_remaining(t0 + Duration::from_secs(1)),
            Some(Duration::from_secs(4))
        );
        assert_eq!(b.open_remaining(t0 + Duration::from_secs(5)), None);
        assert!(!b.try_acquire(t0 + Duration::from_secs(4)));
        let t1 = t0 + Duration::from_secs(5);
        assert!(b.try_acquire(t1), "one probe after open_for");
        assert!(!b.try_acquire(t1), "only one probe at a time");
        b.on_success(t1);
        assert_eq!(b.state(t1), BreakerState::Closed);
        assert!(b.try_acquire(t1));
    }

    #[test]
    fn failed_probe_reopens_for_another_period() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(policy(), t0);
        (0..3).for_each(|_| b.on_failure(t0));
        let t1 = t0 + Duration::from_secs(5);
        assert!(b.try_acquire(t1));
        b.on_failure(t1);
        assert!(!b.try_acquire(t1 + Duration::from_secs(4)));
        assert!(b.try_acquire(t1 + Duration::from_secs(5)));
    }

    #[test]
    fn cancelled_probe_frees_the_slot() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(policy(), t0);
        (0..3).for_each(|_| b.on_failure(t0));
        let t1 = t0 + Duration::from_secs(6);
        assert!(b.try_acquire(t1));
        b.on_cancel();
        assert!(b.try_acquire(t1));
    }

    #[test]
    fn opens_on_failure_rate_without_a_streak() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(policy(), t0);
        for i in 0..10 {
            if i % 2 == 1 {
                b.on_failure(t0);
            } else {
                b.on_success(t0);
            }
        }
        assert_eq!(b.state(t0), BreakerState::Open);
    }

    #[test]
    fn window_rolls_over() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(policy(), t0);
        for i in 0..9 {
            if i % 2 == 0 {
                b.on_failure(t0);
            } else {
                b.on_success(t0);
            }
        }
        let t1 = t0 + Duration::from_secs(11);
        b.on_failure(t1);
        assert_eq!(b.state(t1), BreakerState::Closed, "old window forgotten");
    }

    proptest! {
        /// Whatever the history, a closed breaker admits, and an open one never admits before
        /// its period is over.
        #[test]
        fn admission_matches_state(ops in proptest::collection::vec((0u8..4, 0u64..3_000), 0..200)) {
            let t0 = Instant::now();
            let mut now = t0;
            let mut b = CircuitBreaker::new(policy(), t0);
            for (op, dt) in ops {
                now += Duration::from_millis(dt);
                match op {
                    0 => b.on_success(now),
                    1 => b.on_failure(now),
                    2 => b.on_cancel(),
                    _ => {
                        let state = b.state(now);
                        let available = b.is_available(now);
                        let admitted = b.try_acquire(now);
                        prop_assert_eq!(admitted, available);
                        if state == BreakerState::Closed { prop_assert!(admitted); }
                        if state == BreakerState::Open { prop_assert!(!admitted); }
                    }
                }
            }
        }
    }
}
