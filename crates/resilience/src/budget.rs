/// A spend limit over a calendar period (a UTC day or month), in nano-dollars.
///
/// 1. `admit` reserves an estimate of the request's cost when spent + reserved + estimate stays
///    within the limit.
/// 2. `settle` swaps the reservation for the real cost once usage is known.
/// 3. When the period changes (the caller passes the period's key, e.g. 20261126 or 202611),
///    spend starts again at zero; reservations made before the change settle against nothing.
#[derive(Debug, Clone)]
pub struct SpendBudget {
    limit_nanos: u64,
    period: u32,
    spent_nanos: u64,
    reserved_nanos: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "spend limit reached: {spent_nanos} of {limit_nanos} nano-USD spent or reserved this period"
)]
pub struct BudgetExceeded {
    pub limit_nanos: u64,
    pub spent_nanos: u64,
}

impl SpendBudget {
    /// `spent_nanos` is what the period has already spent (read back from storage at start-up).
    pub fn new(limit_nanos: u64, period: u32, spent_nanos: u64) -> Self {
        SpendBudget {
            limit_nanos,
            period,
            spent_nanos,
            reserved_nanos: 0,
        }
    }

    pub fn admit(&mut self, estimate_nanos: u64, period: u32) -> Result<(), BudgetExceeded> {
        self.roll(period);
        let committed = self.spent_nanos.saturating_add(self.reserved_nanos);
        if committed.saturating_add(estimate_nanos) > self.limit_nanos {
            return Err(BudgetExceeded {
                limit_nanos: self.limit_nanos,
                spent_nanos: committed,
            });
        }
        self.reserved_nanos += estimate_nanos;
        Ok(())
    }

    pub fn settle(&mut self, estimate_nanos: u64, actual_nanos: u64, period: u32) {
        self.roll(period);
        self.reserved_nanos = self.reserved_nanos.saturating_sub(estimate_nanos);
        self.spent_nanos = self.spent_nanos.saturating_add(actual_nanos);
    }

    pub fn spent_nanos(&self) -> u64 {
        self.spent_nanos
    }

    fn roll(&mut self, period: u32) {
        if period != self.period {
            self.period = period;
            self.spent_nanos = 0;
            self.reserved_nanos = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reserves_then_settles() {
        let mut b = SpendBudget::new(1_000, 1, 0);
        b.admit(600, 1).unwrap();
        assert!(b.admit(500, 1).is_err(), "reservation counts");
        b.settle(600, 100, 1);
        b.admit(500, 1).unwrap();
        assert_eq!(b.spent_nanos(), 100);
    }

    #[test]
    fn new_period_starts_fresh() {
        let mut b = SpendBudget::new(1_000, 1, 1_000);
        assert!(b.admit(1, 1).is_err());
        b.admit(1_000, 2).unwrap();
    }

    proptest! {
        /// Settling with actual == estimate never lets committed spend exceed the limit.
        #[test]
        fn exact_estimates_never_overspend(costs in proptest::collection::vec(0u64..400, 0..100)) {
            let mut b = SpendBudget::new(1_000, 0, 0);
            for c in costs {
                if b.admit(c, 0).is_ok() { b.settle(c, c, 0); }
                prop_assert!(b.spent_nanos() <= 1_000);
            }
        }
    }
}
