//! Error budgets and burn rates.
//!
//! Over the SLO window, `(1 - target) × total` requests may be bad: that is the budget. The
//! burn rate over any window is how fast the budget goes: the window's bad ratio divided by
//! `1 - target`. A burn rate of 1 spends exactly the budget by the end of the SLO window; 14.4
//! for one hour spends 2% of a 30-day budget (14.4 × 1 h / 720 h). Without traffic nothing
//! is spent: the burn rate is 0 and the whole budget remains.

use serde::{Deserialize, Serialize};

use crate::series::Counts;

/// The state of an SLO's error budget over its window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    pub target: f64,
    pub good: u64,
    pub total: u64,
    pub bad: u64,
    /// Bad requests the window allows: `(1 - target) × total`.
    pub allowed_bad: f64,
    /// The share of the budget left: 1 untouched, 0 spent, below 0 overspent.
    pub remaining: f64,
}

impl Budget {
    pub fn new(target: f64, counts: Counts) -> Self {
        let allowed_bad = (1.0 - target) * counts.total as f64;
        let bad = counts.bad();
        let remaining = if counts.total == 0 || allowed_bad <= 0.0 {
            1.0
        } else {
            1.0 - bad as f64 / allowed_bad
        };
        Budget {
            target,
            good: counts.good,
            total: counts.total,
            bad,
            allowed_bad,
            remaining,
        }
    }

    /// The share of the budget spent (`1 - remaining`).
    pub fn consumed(&self) -> f64 {
        1.0 - self.remaining
    }

    /// The SLI over the window; `None` without traffic.
    pub fn sli(&self) -> Option<f64> {
        (self.total > 0).then(|| self.good as f64 / self.total as f64)
    }
}

/// The burn rate of `counts` against `target`: bad ratio / (1 - target); 0 without traffic.
pub fn burn_rate(target: f64, counts: Counts) -> f64 {
    let budget_ratio = 1.0 - target;
    if counts.total == 0 || budget_ratio <= 0.0 {
        return 0.0;
    }
    counts.bad_ratio() / budget_ratio
}

/// The share of an SLO window's budget that burning at `rate` for `secs` spends.
pub fn budget_spent(rate: f64, secs: i64, slo_window_secs: i64) -> f64 {
    if slo_window_secs <= 0 {
        return 0.0;
    }
    rate * secs as f64 / slo_window_secs as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn c(good: u64, total: u64) -> Counts {
        Counts { good, total }
    }

    #[test]
    fn zero_traffic_spends_nothing() {
        let b = Budget::new(0.999, c(0, 0));
        assert_eq!(b.remaining, 1.0);
        assert_eq!(b.consumed(), 0.0);
        assert_eq!(b.sli(), None);
        assert_eq!(burn_rate(0.999, c(0, 0)), 0.0);
    }

    #[test]
    fn budget_arithmetic() {
        // 99% over 10,000 requests allows 100 bad; 25 bad spends a quarter.
        let b = Budget::new(0.99, c(9_975, 10_000));
        assert!((b.allowed_bad - 100.0).abs() < 1e-9);
        assert_eq!(b.bad, 25);
        assert!((b.remaining - 0.75).abs() < 1e-9);
        assert_eq!(b.sli(), Some(0.9975));
        // Overspent goes negative.
        let over = Budget::new(0.99, c(9_800, 10_000));
        assert!((over.remaining + 1.0).abs() < 1e-9);
    }

    #[test]
    fn burn_rates_of_the_workbook() {
        // All bad at 99.9%: 1000×.
        assert!((burn_rate(0.999, c(0, 10)) - 1000.0).abs() < 1e-6);
        // 1.44% bad at 99.9%: 14.4.
        assert!((burn_rate(0.999, c(9_856, 10_000)) - 14.4).abs() < 1e-6);
        // 14.4 for one hour of a 30-day window spends 2%; 6 for 6 h spends 5%; 1 for 3 d 10%.
        let month = 30 * 86_400;
        assert!((budget_spent(14.4, 3_600, month) - 0.02).abs() < 1e-12);
        assert!((budget_spent(6.0, 6 * 3_600, month) - 0.05).abs() < 1e-12);
        assert!((budget_spent(1.0, 3 * 86_400, month) - 0.1).abs() < 1e-12);
        assert_eq!(budget_spent(1.0, 10, 0), 0.0);
    }

    proptest! {
        #[test]
        fn remaining_is_one_minus_the_window_burn_rate(
            total in 1u64..1_000_000,
            bad_share in 0.0f64..1.0,
            target in 0.5f64..0.9999,
        ) {
            let bad = ((total as f64) * bad_share) as u64;
            let counts = c(total - bad, total);
            let b = Budget::new(target, counts);
            let rate = burn_rate(target, counts);
            prop_assert!((b.remaining - (1.0 - rate)).abs() <= 1e-9 * rate.max(1.0));
            prop_assert!(rate >= 0.0);
            prop_assert_eq!(b.bad, bad);
        }
    }
}
