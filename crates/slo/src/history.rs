//! An SLO's recent past as evenly spaced points, for burn-rate and budget charts: per step its
//! requests and bad requests, the burn rates over the hour and six hours ending there (the
//! windows of the default page and ticket rules), and the budget left at that instant.

use serde::{Deserialize, Serialize};

use crate::budget::{burn_rate, Budget};
use crate::series::{floor, round_up, Series};
use crate::spec::SloSpec;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub step_secs: i64,
    /// Oldest first; the last point is the step that holds `now`.
    pub points: Vec<HistoryPoint>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HistoryPoint {
    /// The end of the step (unix seconds).
    pub at_secs: i64,
    /// Requests counted in the step, and the bad ones among them.
    pub total: u64,
    pub bad: u64,
    pub burn_1h: f64,
    pub burn_6h: f64,
    /// The share of the SLO window's budget left at `at_secs` (below 0 when overspent).
    pub budget_remaining: f64,
}

/// The `span_secs` before `now` in at most `max_points` steps. A step is a whole number of
/// the series' buckets, and of its coarse buckets when the span reaches past the minutes it
/// keeps, so no step straddles part of a bucket.
pub fn history(
    spec: &SloSpec,
    series: &Series,
    now: i64,
    span_secs: i64,
    max_points: usize,
) -> History {
    let config = series.config();
    let max_points = max_points.max(1) as i64;
    let span_secs = span_secs.max(config.step_secs);
    let mut step = round_up(
        round_up(span_secs, max_points) / max_points,
        config.step_secs,
    );
    if span_secs > config.fine_span_secs {
        step = round_up(step, config.coarse_step_secs);
    }
    let last = floor(now, step) + step - 1;
    let count = (round_up(span_secs, step) / step).min(max_points);
    let points = (0..count)
        .rev()
        .map(|back| {
            let at = last - back * step;
            let inside = series.window_counts(at, step);
            HistoryPoint {
                at_secs: at,
                total: inside.total,
                bad: inside.bad(),
                burn_1h: burn_rate(spec.target, series.window_counts(at, 3_600)),
                burn_6h: burn_rate(spec.target, series.window_counts(at, 6 * 3_600)),
                budget_remaining: Budget::new(
                    spec.target,
                    series.window_counts(at, spec.window_secs),
                )
                .remaining,
            }
        })
        .collect();
    History {
        step_secs: step,
        points,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Objective;

    fn spec() -> SloSpec {
        SloSpec::new("avail", Objective::Availability, 0.99)
    }

    #[test]
    fn steps_split_the_span_and_count_each_request_once() {
        let spec = spec();
        let mut series = Series::for_spec(&spec);
        let now = 1_000_000 * 60;
        // One request a minute for two hours, the second hour all bad.
        for minute in 0..120 {
            let at = now - 7_200 + minute * 60 + 30;
            series.record(at, minute < 60);
        }
        let h = history(&spec, &series, now - 1, 7_200, 24);
        assert_eq!(h.step_secs, 300);
        assert_eq!(h.points.len(), 24);
        assert!(h
            .points
            .windows(2)
            .all(|w| w[1].at_secs - w[0].at_secs == 300));
        let total: u64 = h.points.iter().map(|p| p.total).sum();
        let bad: u64 = h.points.iter().map(|p| p.bad).sum();
        assert_eq!((total, bad), (120, 60));
        // The last hour is all bad: a burn rate of 1 / (1 - 0.99) = 100 at its end.
        let last = h.points.last().unwrap();
        assert!((last.burn_1h - 100.0).abs() < 1e-9, "{last:?}");
        assert!((last.burn_6h - 50.0).abs() < 1e-9, "{last:?}");
        // 60 bad of 120 against an allowance of 1.2.
        assert!((last.budget_remaining - (1.0 - 60.0 / 1.2)).abs() < 1e-9);
        // Before the bad hour began nothing was spent.
        let early = &h.points[5];
        assert_eq!(early.burn_1h, 0.0);
        assert_eq!(early.budget_remaining, 1.0);
    }

    #[test]
    fn an_empty_series_gives_calm_points() {
        let spec = spec();
        let h = history(&spec, &Series::for_spec(&spec), 86_400 * 100, 86_400, 288);
        assert_eq!(h.points.len(), 288);
        assert!(h
            .points
            .iter()
            .all(|p| p.total == 0 && p.burn_1h == 0.0 && p.budget_remaining == 1.0));
    }

    #[test]
    fn spans_past_the_minute_buckets_use_whole_hours() {
        let spec = spec();
        let h = history(
            &spec,
            &Series::for_spec(&spec),
            86_400 * 100,
            30 * 86_400,
            300,
        );
        assert_eq!(h.step_secs % 3_600, 0);
        assert!(h.points.len() <= 300);
        assert!(h.points.len() as i64 * h.step_secs >= 30 * 86_400);
    }
}
