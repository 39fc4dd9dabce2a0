/// A spend limit over a calendar period (a UTC day or month), in nano-dollars.
///
/// 1. `admit` reserves the request's worst-case cost while what the period has spent and
///    reserved is below the limit; the request that crosses the limit is admitted whole, so
///    a budget smaller than one request's worst case still serves that request.
/// 2. `settle` swaps the reservation for the real cost once usage is known.
/// 3. Checking and reserving are one step on `&mut self`, so concurrent requests (behind the
///    caller's lock) never both see the same room.
/// 4. Hence the bound: when no request costs more than it reserved, spent + reserved never
///    exceeds the limit by more than the largest single reservation, at any moment, however
///    many requests run at once.
/// 5. When the period changes (the caller passes the period's key, e.g. 20261126 or 202611),
///    spend starts again at zero; reservations made before the change settle against nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
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
        if committed >= self.limit_nanos {
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

    pub fn reserved_nanos(&self) -> u64 {
        self.reserved_nanos
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
        b.admit(500, 1).unwrap();
        assert!(
            b.admit(1, 1).is_err(),
            "reservations count: 1,100 of 1,000 committed"
        );
        b.settle(600, 100, 1);
        b.settle(500, 100, 1);
        b.admit(500, 1).unwrap();
        assert_eq!(b.spent_nanos(), 200);
    }

    #[test]
    fn a_request_larger_than_what_is_left_is_admitted_once() {
        let mut b = SpendBudget::new(1_000, 1, 999);
        b.admit(5_000, 1).unwrap();
        assert!(b.admit(1, 1).is_err());
        b.settle(5_000, 30, 1);
        assert!(b.admit(1, 1).is_err(), "spent 1,029 of 1,000");
    }

    #[test]
    fn new_period_starts_fresh() {
        let mut b = SpendBudget::new(1_000, 1, 1_000);
        assert!(b.admit(1, 1).is_err());
        b.admit(1_000, 2).unwrap();
    }

    proptest! {
        /// Any interleaving of admissions and settlements, each request costing at most what
        /// it reserved: spend (and spend + reservations) never passes the limit by more than
        /// the largest single reservation (point 4).
        #[test]
        fn spend_stays_within_one_worst_case_of_the_limit(
            limit in 0u64..10_000,
            ops in proptest::collection::vec((any::<bool>(), 0u64..3_000, 0.0f64..=1.0), 0..200),
        ) {
            let mut b = SpendBudget::new(limit, 0, 0);
            let mut open: Vec<u64> = Vec::new();
            let mut largest = 0u64;
            for (admit, estimate, share) in ops {
                if admit || open.is_empty() {
                    if b.admit(estimate, 0).is_ok() {
                        open.push(estimate);
                        largest = largest.max(estimate);
                    }
                } else {
                    let i = (share * (open.len() - 1) as f64) as usize;
                    let reserved = open.swap_remove(i);
                    b.settle(reserved, (reserved as f64 * share) as u64, 0);
                }
                prop_assert!(b.spent_nanos() + b.reserved_nanos() <= limit + largest);
            }
            for reserved in open.drain(..) {
                b.settle(reserved, reserved, 0);
            }
            prop_assert!(b.spent_nanos() <= limit + largest);
        }
    }
}
