//! A key's limits taken together: requests and tokens per minute ([`TokenBucket`]s) and
//! spend per UTC day and month ([`SpendBudget`]s), reserved in one step and settled with what
//! a request really used.
//!
//! 1. `reserve` takes one request from `rpm`, the request's worst-case tokens from `tpm`, and
//!    its worst-case cost from the day's and the month's budgets, in that order.
//! 2. The first limit that refuses ends the step, and everything the earlier ones took is
//!    given back: a refused request takes nothing from any limit (a refused request would
//!    otherwise use up the allowance of the requests behind it).
//! 3. `settle` replaces the reserved tokens and cost with the real ones; the request itself
//!    stays counted against `rpm`.
//! 4. The caller owns synchronisation: one step runs under one lock (in process) or as one
//!    atomic script (a shared store), so concurrent requests never both see the same room.

use std::time::{Duration, Instant};

use crate::bucket::{TokenBucket, Window};
use crate::budget::SpendBudget;

/// A key's configured limits; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitSpec {
    pub rpm: Option<u32>,
    pub tpm: Option<u32>,
    pub daily_nanos: Option<u64>,
    pub monthly_nanos: Option<u64>,
}

/// The calendar periods budgets count in, as keys (20261126 for a day, 202611 for a month);
/// when a key changes, that budget starts again at zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub day: u32,
    pub month: u32,
}

/// The limit that refused a request; rate limits say how long until it would fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    Requests(Duration),
    Tokens(Duration),
    Daily,
    Monthly,
}

/// One key's limits and what they have counted.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyLimits {
    rpm: Option<TokenBucket>,
    tpm: Option<TokenBucket>,
    daily: Option<SpendBudget>,
    monthly: Option<SpendBudget>,
}

impl KeyLimits {
    /// Full buckets; budgets that already spent `spent_day` and `spent_month` nano-USD in
    /// `period` (read back from storage, so budgets survive restarts).
    pub fn new(
        spec: &LimitSpec,
        now: Instant,
        period: Period,
        spent_day: u64,
        spent_month: u64,
    ) -> KeyLimits {
        KeyLimits {
            rpm: spec.rpm.map(|l| TokenBucket::per_minute(l, now)),
            tpm: spec.tpm.map(|l| TokenBucket::per_minute(l, now)),
            daily: spec
                .daily_nanos
                .map(|l| SpendBudget::new(l, period.day, spent_day)),
            monthly: spec
                .monthly_nanos
                .map(|l| SpendBudget::new(l, period.month, spent_month)),
        }
    }

    /// Reserves one request, `tokens` and `cost_nanos` on every limit, or takes nothing and
    /// says which limit refused (points 1 and 2).
    pub fn reserve(
        &mut self,
        tokens: u32,
        cost_nanos: u64,
        now: Instant,
        period: Period,
    ) -> Result<(), Exceeded> {
        if let Some(b) = &mut self.rpm {
            b.try_take(1.0, now).map_err(Exceeded::Requests)?;
        }
        if let Some(b) = &mut self.tpm {
            if let Err(after) = b.try_take(f64::from(tokens), now) {
                if let Some(r) = &mut self.rpm {
                    r.settle(1.0, 0.0, now);
                }
                return Err(Exceeded::Tokens(after));
            }
        }
        let mut refusal = None;
        if let Some(b) = &mut self.daily {
            if b.admit(cost_nanos, period.day).is_err() {
                refusal = Some(Exceeded::Daily);
            }
        }
        if refusal.is_none() {
            if let Some(b) = &mut self.monthly {
                if b.admit(cost_nanos, period.month).is_err() {
                    if let Some(d) = &mut self.daily {
                        d.settle(cost_nanos, 0, period.day);
                    }
                    refusal = Some(Exceeded::Monthly);
                }
            }
        }
        if let Some(e) = refusal {
            if let Some(r) = &mut self.rpm {
                r.settle(1.0, 0.0, now);
            }
            if let Some(t) = &mut self.tpm {
                t.settle(f64::from(tokens), 0.0, now);
            }
            return Err(e);
        }
        Ok(())
    }

    /// Replaces a reservation of `reserved_tokens` and `reserved_nanos` with what the request
    /// used (point 3).
    pub fn settle(
        &mut self,
        (reserved_tokens, reserved_nanos): (u32, u64),
        (tokens, cost_nanos): (u32, u64),
        now: Instant,
        period: Period,
    ) {
        if let Some(b) = &mut self.tpm {
            b.settle(f64::from(reserved_tokens), f64::from(tokens), now);
        }
        if let Some(b) = &mut self.daily {
            b.settle(reserved_nanos, cost_nanos, period.day);
        }
        if let Some(b) = &mut self.monthly {
            b.settle(reserved_nanos, cost_nanos, period.month);
        }
    }

    /// The requests-per-minute limit as it stands at `now`; `None` without one.
    pub fn requests(&mut self, now: Instant) -> Option<Window> {
        self.rpm.as_mut().map(|b| b.window(now))
    }

    /// The tokens-per-minute limit as it stands at `now`; `None` without one.
    pub fn tokens(&mut self, now: Instant) -> Option<Window> {
        self.tpm.as_mut().map(|b| b.window(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const P: Period = Period {
        day: 20261126,
        month: 202611,
    };

    fn spec(
        rpm: Option<u32>,
        tpm: Option<u32>,
        daily: Option<u64>,
        monthly: Option<u64>,
    ) -> LimitSpec {
        LimitSpec {
            rpm,
            tpm,
            daily_nanos: daily,
            monthly_nanos: monthly,
        }
    }

    #[test]
    fn each_limit_refuses_in_turn() {
        let t0 = Instant::now();
        let mut l = KeyLimits::new(&spec(Some(1), None, None, None), t0, P, 0, 0);
        l.reserve(1, 0, t0, P).unwrap();
        assert_eq!(
            l.reserve(1, 0, t0, P),
            Err(Exceeded::Requests(Duration::from_secs(60)))
        );
        let mut l = KeyLimits::new(&spec(None, Some(60), None, None), t0, P, 0, 0);
        l.reserve(60, 0, t0, P).unwrap();
        assert_eq!(
            l.reserve(6, 0, t0, P),
            Err(Exceeded::Tokens(Duration::from_secs(6)))
        );
        let mut l = KeyLimits::new(&spec(None, None, Some(10), Some(100)), t0, P, 10, 10);
        assert_eq!(l.reserve(1, 1, t0, P), Err(Exceeded::Daily));
        let mut l = KeyLimits::new(&spec(None, None, Some(100), Some(100)), t0, P, 10, 100);
        assert_eq!(l.reserve(1, 1, t0, P), Err(Exceeded::Monthly));
    }

    #[test]
    fn settling_keeps_the_request_and_swaps_tokens_and_cost() {
        let t0 = Instant::now();
        let mut l = KeyLimits::new(&spec(Some(10), Some(1_000), Some(100), None), t0, P, 0, 0);
        l.reserve(500, 90, t0, P).unwrap();
        l.settle((500, 90), (100, 5), t0, P);
        assert_eq!(l.requests(t0).map(|w| w.remaining), Some(9));
        assert_eq!(l.tokens(t0).map(|w| w.remaining), Some(900));
        // 5 spent of 100: a reservation of 95 still fits, then nothing does.
        l.reserve(1, 95, t0, P).unwrap();
        assert_eq!(l.reserve(1, 1, t0, P), Err(Exceeded::Daily));
        // A new day starts the day's budget again.
        let next = Period {
            day: P.day + 1,
            ..P
        };
        assert_eq!(l.reserve(1, 1, t0, next), Ok(()));
    }

    proptest! {
        /// Whatever the limits and what they have counted, a refused reservation leaves
        /// every limit exactly as it was (point 2).
        #[test]
        fn a_refusal_takes_nothing(
            rpm in proptest::option::of(1u32..5),
            tpm in proptest::option::of(1u32..500),
            daily in proptest::option::of(0u64..1_000),
            monthly in proptest::option::of(0u64..2_000),
            ops in proptest::collection::vec((0u32..300, 0u64..400, 0u64..3_000), 1..40),
        ) {
            let t0 = Instant::now();
            let mut l = KeyLimits::new(&spec(rpm, tpm, daily, monthly), t0, P, 0, 0);
            let mut now = t0;
            for (tokens, cost, dt) in ops {
                now += Duration::from_millis(dt);
                let before = l.clone();
                if l.reserve(tokens, cost, now, P).is_err() {
                    // Compared at the same instant: refilling is not taking.
                    let mut before = before;
                    let mut after = l.clone();
                    before.settle((0, 0), (0, 0), now, P);
                    after.settle((0, 0), (0, 0), now, P);
                    prop_assert_eq!(before.requests(now), after.requests(now));
                    prop_assert_eq!(before.tokens(now), after.tokens(now));
                    prop_assert_eq!(before.daily, after.daily);
                    prop_assert_eq!(before.monthly, after.monthly);
                }
            }
        }
    }
}
