use std::time::{Duration, Instant};

/// How much of the last observation an update keeps: about the last ten releases count.
const ALPHA: f64 = 0.2;

/// An exponentially weighted average of the time between releases of capacity: how fast the
/// queue drains.
#[derive(Debug, Clone, Default)]
pub(crate) struct ReleaseRate {
    last: Option<Instant>,
    interval_secs: Option<f64>,
}

impl ReleaseRate {
    pub fn observe(&mut self, now: Instant) {
        if let Some(last) = self.last {
            let gap = now.saturating_duration_since(last).as_secs_f64();
            self.interval_secs = Some(match self.interval_secs {
                None => gap,
                Some(mean) => mean + ALPHA * (gap - mean),
            });
        }
        self.last = Some(self.last.map_or(now, |last| last.max(now)));
    }

    /// How long until `ahead` more releases, within `[floor, ceiling]`. Before two releases
    /// are seen the floor stands for the time between them.
    pub fn estimate(&self, ahead: usize, floor: Duration, ceiling: Duration) -> Duration {
        let interval = self.interval_secs.unwrap_or(floor.as_secs_f64());
        let secs = interval * ahead as f64;
        let secs = secs.clamp(
            floor.as_secs_f64(),
            ceiling.as_secs_f64().max(floor.as_secs_f64()),
        );
        Duration::try_from_secs_f64(secs).unwrap_or(ceiling)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLOOR: Duration = Duration::from_secs(1);
    const CEILING: Duration = Duration::from_secs(120);

    #[test]
    fn the_estimate_follows_the_observed_interval_within_bounds() {
        let start = Instant::now();
        let mut rate = ReleaseRate::default();
        assert_eq!(rate.estimate(3, FLOOR, CEILING), Duration::from_secs(3));
        for n in 0..50 {
            rate.observe(start + Duration::from_secs(2 * n));
        }
        let estimate = rate.estimate(10, FLOOR, CEILING).as_secs_f64();
        assert!((estimate - 20.0).abs() < 1e-6, "{estimate}");
        assert_eq!(rate.estimate(0, FLOOR, CEILING), FLOOR);
        assert_eq!(rate.estimate(1_000_000, FLOOR, CEILING), CEILING);
    }

    #[test]
    fn releases_at_once_shorten_the_interval_towards_zero() {
        let start = Instant::now();
        let mut rate = ReleaseRate::default();
        rate.observe(start);
        rate.observe(start + Duration::from_secs(10));
        for _ in 0..5 {
            rate.observe(start + Duration::from_secs(10));
        }
        let expected = 10.0 * (1.0 - ALPHA).powi(5);
        let estimate = rate.estimate(100, FLOOR, Duration::from_secs(10_000));
        assert!((estimate.as_secs_f64() - 100.0 * expected).abs() < 1e-6);
    }
}
