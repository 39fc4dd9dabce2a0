use std::time::Duration;

/// Exponential backoff with full jitter: retry `n` (0-based) waits a uniform draw from
/// `[0, min(max, base * 2^n)]`. Full jitter spreads retries of many clients that failed at the
/// same moment, which plain exponential backoff does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    /// `unit` is a uniform draw from `[0, 1)`.
    pub fn delay(&self, retry: u32, unit: f64) -> Duration {
        let ceiling = self
            .base
            .checked_mul(1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX))
            .unwrap_or(self.max)
            .min(self.max);
        ceiling.mul_f64(unit.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn grows_then_caps() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        assert_eq!(b.delay(0, 1.0), Duration::from_millis(100));
        assert_eq!(b.delay(2, 1.0), Duration::from_millis(400));
        assert_eq!(b.delay(10, 1.0), Duration::from_secs(1));
        assert_eq!(b.delay(3, 0.0), Duration::ZERO);
    }

    proptest! {
        #[test]
        fn never_exceeds_max_or_the_exponential_ceiling(
            base_ms in 0u64..10_000, max_ms in 0u64..100_000, retry in 0u32..100, unit in 0.0f64..1.0
        ) {
            let b = Backoff { base: Duration::from_millis(base_ms), max: Duration::from_millis(max_ms) };
            let d = b.delay(retry, unit);
            prop_assert!(d <= b.max);
            if retry < 20 {
                prop_assert!(d <= Duration::from_millis(base_ms) * (1u32 << retry));
            }
        }

        #[test]
        fn is_monotone_in_the_draw(retry in 0u32..40, a in 0.0f64..1.0, b in 0.0f64..1.0) {
            let bo = Backoff { base: Duration::from_millis(50), max: Duration::from_secs(5) };
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(bo.delay(retry, lo) <= bo.delay(retry, hi));
        }
    }
}
