//! SLI event counts in time buckets, and [`Sli`], the one place that says which requests are
//! good for an objective.
//!
//! Memory and persistence. The alert windows need minute resolution up to three days (the
//! ticket rule's long window); the 30-day budget does not. So a [`Series`] keeps two tiers:
//!
//! - fine: one-minute buckets for the last `fine_span_secs` (default 3 days, 4,320 buckets),
//! - coarse: one-hour buckets for older events up to `retention_secs` (the SLO window,
//!   default 30 days, 720 buckets),
//!
//! about 5,000 buckets of `(start, good, total)` per series instead of 43,200, and only
//! buckets that saw traffic are stored. Buckets roll from fine to coarse as time passes and
//! fall off the coarse tier beyond the retention. A window that fits in the fine tier is
//! counted to the minute; a longer one (the budget's 30 days) is exact except at its oldest
//! edge, where the hour bucket straddling the edge is left out (under 1/720 of a 30-day
//! window). The whole series is serde state: the gateway persists it and reads it back at
//! start-up, so a restart loses no history.
//!
//! A window of `w` seconds evaluated at `now` is the last `⌈w / step⌉` buckets counting the
//! one holding `now`: buckets whose start is in `[floor(now) - w + step, floor(now)]`, where
//! `floor` rounds down to the step. Events in the future of `now` are not counted.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::spec::{Objective, SloSpec, DEFAULT_WINDOW_SECS};

/// Good and total events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub good: u64,
    pub total: u64,
}

impl Counts {
    pub fn bad(&self) -> u64 {
        self.total.saturating_sub(self.good)
    }

    /// The share of good events; `None` without traffic.
    pub fn ratio(&self) -> Option<f64> {
        (self.total > 0).then(|| self.good as f64 / self.total as f64)
    }

    /// The share of bad events; 0 without traffic.
    pub fn bad_ratio(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.bad() as f64 / self.total as f64
        }
    }

    fn add(&mut self, good: u64, total: u64) {
        self.good = self.good.saturating_add(good);
        self.total = self.total.saturating_add(total);
    }
}

/// Bucket sizes and how long history is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesConfig {
    pub step_secs: i64,
    pub fine_span_secs: i64,
    pub coarse_step_secs: i64,
    pub retention_secs: i64,
}

impl Default for SeriesConfig {
    fn default() -> Self {
        SeriesConfig {
            step_secs: 60,
            fine_span_secs: 3 * 86_400,
            coarse_step_secs: 3_600,
            retention_secs: DEFAULT_WINDOW_SECS,
        }
    }
}

impl SeriesConfig {
    /// Bucket sizes that divide each other and spans of whole steps; anything else is
    /// bent into that shape rather than refused (a series must always accept events).
    fn normalised(self) -> Self {
        const MAX_STEP: i64 = 86_400;
        const MAX_RETENTION: i64 = 100 * 365 * 86_400;
        let step = self.step_secs.clamp(1, MAX_STEP);
        let coarse = (self.coarse_step_secs.clamp(step, MAX_STEP) / step) * step;
        let retention = round_up(self.retention_secs.clamp(step, MAX_RETENTION), step);
        SeriesConfig {
            step_secs: step,
            fine_span_secs: round_up(self.fine_span_secs.max(step), step).min(retention),
            coarse_step_secs: coarse,
            retention_secs: retention,
        }
    }
}

/// `(start, good, total)`, serialised as a three-number array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Bucket(i64, u64, u64);

/// Good/total counts over time for one SLO (and, in the gateway, one config version).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Series {
    /// Normalised again when read back, so corrupt state cannot divide by zero.
    #[serde(deserialize_with = "normalised_config")]
    config: SeriesConfig,
    fine: VecDeque<Bucket>,
    coarse: VecDeque<Bucket>,
    /// The latest instant recorded or advanced to; rolls buckets up and out.
    latest: Option<i64>,
}

impl Default for Series {
    fn default() -> Self {
        Series::new(SeriesConfig::default())
    }
}

impl Series {
    pub fn new(config: SeriesConfig) -> Self {
        Series {
            config: config.normalised(),
            fine: VecDeque::new(),
            coarse: VecDeque::new(),
            latest: None,
        }
    }

    /// A series that keeps the SLO's whole window.
    pub fn for_spec(spec: &SloSpec) -> Self {
        Series::new(SeriesConfig {
            retention_secs: spec.window_secs,
            ..SeriesConfig::default()
        })
    }

    pub fn config(&self) -> SeriesConfig {
        self.config
    }

    /// Buckets held (fine, coarse): what the persisted state costs.
    pub fn bucket_counts(&self) -> (usize, usize) {
        (self.fine.len(), self.coarse.len())
    }

    pub fn record(&mut self, at_secs: i64, good: bool) {
        self.record_many(at_secs, u64::from(good), 1);
    }

    /// Records `total` events at `at_secs`, `good` of them good (capped at `total`).
    pub fn record_many(&mut self, at_secs: i64, good: u64, total: u64) {
        if total == 0 {
            return;
        }
        let good = good.min(total);
        self.advance(at_secs);
        let cur = self.cursor();
        let start = floor(at_secs, self.config.step_secs);
        if start >= self.fine_cut(cur) {
            add_to(&mut self.fine, start, good, total);
        } else if start >= self.retention_cut(cur) {
            let coarse = floor(at_secs, self.config.coarse_step_secs);
            add_to(&mut self.coarse, coarse, good, total);
        }
    }

    /// Turns up to `good_delta` of the events counted at `at_secs` from bad to good (a
    /// negative delta: from good to bad); returns how many turned, with the sign.
    ///
    /// The event's bucket is found the way [`Self::record_many`] placed it (its minute if
    /// still in the fine tier, else its hour). A verdict that changes after the fact (late
    /// feedback) moves the event, not the clock: the total never changes, and the good count
    /// stays within `0..=total` of its bucket, so a regrade of an event that is not there
    /// (aged out past the retention, never recorded, or already turned) is a no-op rather
    /// than a count going negative.
    pub fn regrade(&mut self, at_secs: i64, good_delta: i64) -> i64 {
        let cur = self.cursor();
        let start = floor(at_secs, self.config.step_secs);
        let bucket = if start >= self.fine_cut(cur) {
            find(&mut self.fine, start)
        } else if start >= self.retention_cut(cur) {
            find(
                &mut self.coarse,
                floor(at_secs, self.config.coarse_step_secs),
            )
        } else {
            None
        };
        let Some(b) = bucket else {
            return 0;
        };
        let up = good_delta >= 0;
        let room = if up { b.2.saturating_sub(b.1) } else { b.1 };
        let n = good_delta.unsigned_abs().min(room);
        b.1 = if up { b.1 + n } else { b.1 - n };
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        if up {
            n
        } else {
            -n
        }
    }

    /// Moves the series' clock to `now` (if later): rolls old minutes into hours and drops
    /// what is beyond the retention. Recording does this too.
    pub fn advance(&mut self, now: i64) {
        if self.latest.is_some_and(|l| l >= now) {
            return;
        }
        self.latest = Some(now);
        let cur = self.cursor();
        let (fine_cut, retention_cut) = (self.fine_cut(cur), self.retention_cut(cur));
        while let Some(&Bucket(start, good, total)) = self.fine.front() {
            if start >= fine_cut {
                break;
            }
            self.fine.pop_front();
            if start >= retention_cut {
                let coarse = floor(start, self.config.coarse_step_secs);
                add_to(&mut self.coarse, coarse, good, total);
            }
        }
        while self.coarse.front().is_some_and(|b| b.0 < retention_cut) {
            self.coarse.pop_front();
        }
    }

    /// Counts over the `window_secs` ending at `now` (see the module comment for the edges).
    pub fn window_counts(&self, now: i64, window_secs: i64) -> Counts {
        let step = self.config.step_secs;
        let cur = floor(now, step);
        let lo = cur
            .saturating_sub(round_up(window_secs.max(0), step))
            .saturating_add(step);
        let mut counts = Counts::default();
        for b in self.fine.iter().rev() {
            if b.0 < lo {
                break;
            }
            if b.0 <= cur {
                counts.add(b.1, b.2);
            }
        }
        for b in self.coarse.iter().filter(|b| b.0 >= lo && b.0 <= cur) {
            counts.add(b.1, b.2);
        }
        counts
    }

    /// Adds another series' events (another config version, another replica's state).
    pub fn merge(&mut self, other: &Series) {
        if let Some(l) = other.latest {
            self.advance(l);
        }
        for b in other.coarse.iter().chain(other.fine.iter()) {
            self.record_many(b.0, b.1, b.2);
        }
    }

    fn cursor(&self) -> i64 {
        floor(self.latest.unwrap_or(0), self.config.step_secs)
    }

    fn fine_cut(&self, cur: i64) -> i64 {
        cur.saturating_sub(self.config.fine_span_secs)
            .saturating_add(self.config.step_secs)
    }

    fn retention_cut(&self, cur: i64) -> i64 {
        cur.saturating_sub(self.config.retention_secs)
            .saturating_add(self.config.step_secs)
    }
}

fn normalised_config<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SeriesConfig, D::Error> {
    SeriesConfig::deserialize(d).map(SeriesConfig::normalised)
}

pub(crate) fn floor(t: i64, step: i64) -> i64 {
    t.div_euclid(step) * step
}

pub(crate) fn round_up(t: i64, step: i64) -> i64 {
    t.saturating_add(step - 1).div_euclid(step) * step
}

/// Adds to the bucket starting at `start`, keeping the deque sorted. Events nearly always
/// land in the newest bucket; late ones are found by binary search.
fn add_to(buckets: &mut VecDeque<Bucket>, start: i64, good: u64, total: u64) {
    match buckets.back_mut() {
        Some(b) if b.0 == start => {
            b.1 = b.1.saturating_add(good);
            b.2 = b.2.saturating_add(total);
            return;
        }
        Some(b) if b.0 > start => {}
        _ => {
            buckets.push_back(Bucket(start, good, total));
            return;
        }
    }
    match buckets.binary_search_by_key(&start, |b| b.0) {
        Ok(i) => {
            if let Some(b) = buckets.get_mut(i) {
                b.1 = b.1.saturating_add(good);
                b.2 = b.2.saturating_add(total);
            }
        }
        Err(i) => buckets.insert(i, Bucket(start, good, total)),
    }
}

/// The bucket starting at `start`, if it holds events.
fn find(buckets: &mut VecDeque<Bucket>, start: i64) -> Option<&mut Bucket> {
    let i = buckets.binary_search_by_key(&start, |b| b.0).ok()?;
    buckets.get_mut(i)
}

/// What happened to one request, as far as SLOs care.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sli {
    /// The HTTP status sent to the client (499 when the client hung up).
    pub status: u16,
    /// The request failed because of a provider, whatever status the client got. A request
    /// a fallback model answered is not a provider error.
    pub provider_error: bool,
    pub latency_ms: f64,
    /// Time to the first streamed token; `None` for answers that were not streamed.
    pub ttft_ms: Option<f64>,
    /// Every output guard passed (or none ran).
    pub guard_passed: bool,
    /// The user gave negative feedback.
    pub feedback_negative: bool,
}

impl Sli {
    /// A request answered with status 200 in `latency_ms`, not streamed, every guard passed,
    /// no feedback: the common case, to adjust with struct update syntax.
    pub fn answered(latency_ms: f64) -> Self {
        Sli {
            status: 200,
            provider_error: false,
            latency_ms,
            ttft_ms: None,
            guard_passed: true,
            feedback_negative: false,
        }
    }

    /// Whether this request is good for `objective`: `Some(true)` good, `Some(false)` bad,
    /// `None` when the objective does not count it.
    ///
    /// - availability counts every request; bad is a 5xx or a provider error (a 4xx is the
    ///   client's doing, a 499 the client leaving);
    /// - latency counts answered requests (status below 400, no provider error) and client
    ///   hang-ups (499, judged by how long the client had waited); errors are availability's;
    /// - time to first token counts the same requests when they were streamed;
    /// - quality counts answered requests; bad is a failed output guard or negative feedback.
    pub fn judge(&self, objective: &Objective) -> Option<bool> {
        let server_error = self.status >= 500 || self.provider_error;
        let answered = self.status < 400 && !self.provider_error;
        let timed = answered || (self.status == 499 && !self.provider_error);
        match *objective {
            Objective::Availability => Some(!server_error),
            Objective::Latency { threshold_ms } => {
                timed.then_some(self.latency_ms <= threshold_ms as f64)
            }
            Objective::Ttft { threshold_ms } => match self.ttft_ms {
                Some(ttft) if timed => Some(ttft <= threshold_ms as f64),
                _ => None,
            },
            Objective::Quality => answered.then_some(self.guard_passed && !self.feedback_negative),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIN: i64 = 60;
    const HOUR: i64 = 3_600;
    const DAY: i64 = 86_400;

    #[test]
    fn window_edges_are_whole_buckets() {
        let mut s = Series::default();
        s.record(0, true); // bucket 0
        s.record(59, false); // bucket 0
        s.record(60, true); // bucket 60
        s.record(299, false); // bucket 240
                              // At 299 a 5-minute window is buckets 0..=240.
        assert_eq!(s.window_counts(299, 5 * MIN), Counts { good: 2, total: 4 });
        // At 300 it is 60..=300: bucket 0 has left.
        assert_eq!(s.window_counts(300, 5 * MIN), Counts { good: 1, total: 2 });
        // Looking back from before an event does not count it.
        assert_eq!(s.window_counts(59, 5 * MIN), Counts { good: 1, total: 2 });
        // A window that is not whole minutes is rounded up.
        assert_eq!(s.window_counts(120, 61), Counts { good: 1, total: 1 });
        assert_eq!(s.window_counts(120, 0), Counts::default());
    }

    #[test]
    fn odd_configs_are_bent_into_shape_even_when_read_back() {
        let s = Series::new(SeriesConfig {
            step_secs: 0,
            fine_span_secs: -5,
            coarse_step_secs: 0,
            retention_secs: i64::MAX,
        });
        let c = s.config();
        assert!(c.step_secs >= 1 && c.coarse_step_secs >= c.step_secs);
        let json = r#"{"config":{"step_secs":0,"fine_span_secs":0,"coarse_step_secs":0,"retention_secs":0},"fine":[],"coarse":[],"latest":null}"#;
        let mut back: Series = serde_json::from_str(json).unwrap();
        back.record(i64::MAX / 2, true);
        back.record(i64::MIN / 2, true);
        assert_eq!(back.window_counts(i64::MAX / 2, i64::MAX).total, 1);
    }

    #[test]
    fn zero_traffic_counts_nothing() {
        let s = Series::default();
        let c = s.window_counts(1_000_000, DAY);
        assert_eq!(c, Counts::default());
        assert_eq!(c.ratio(), None);
        assert_eq!(c.bad_ratio(), 0.0);
    }

    #[test]
    fn late_events_land_in_their_bucket() {
        let mut s = Series::default();
        s.record(10 * MIN, true);
        s.record(2 * MIN, false);
        s.record(5 * MIN, true);
        s.record(2 * MIN + 30, true);
        assert_eq!(s.bucket_counts(), (3, 0));
        assert_eq!(
            s.window_counts(10 * MIN, 9 * MIN),
            Counts { good: 3, total: 4 }
        );
        assert_eq!(
            s.window_counts(10 * MIN, 6 * MIN),
            Counts { good: 2, total: 2 }
        );
    }

    #[test]
    fn minutes_roll_into_hours_and_fall_off_after_retention() {
        let mut s = Series::new(SeriesConfig {
            retention_secs: 10 * DAY,
            ..SeriesConfig::default()
        });
        // One event a minute for 10 days.
        for m in 0..(10 * DAY / MIN) {
            s.record(m * MIN, m % 100 != 0);
        }
        let now = 10 * DAY - MIN;
        let (fine, coarse) = s.bucket_counts();
        assert_eq!(fine, (3 * DAY / MIN) as usize);
        assert_eq!(coarse, (7 * DAY / HOUR) as usize);
        // Windows inside the fine span are exact.
        assert_eq!(s.window_counts(now, HOUR).total, 60);
        assert_eq!(s.window_counts(now, 3 * DAY).total, (3 * DAY / MIN) as u64);
        // The whole retention is all there.
        let all = s.window_counts(now, 10 * DAY);
        assert_eq!(all.total, (10 * DAY / MIN) as u64);
        assert_eq!(all.bad(), (10 * DAY / MIN / 100) as u64);
        // One hour later the first hour has gone.
        s.advance(now + HOUR);
        assert_eq!(
            s.window_counts(now + HOUR, 10 * DAY).total,
            (10 * DAY / MIN - 60) as u64
        );
        // Far in the future nothing is left.
        s.advance(now + 11 * DAY);
        assert_eq!(s.bucket_counts(), (0, 0));
    }

    #[test]
    fn a_long_window_loses_at_most_the_straddling_hour() {
        let mut s = Series::default();
        for m in 0..(5 * DAY / MIN) {
            s.record(m * MIN, true);
        }
        let now = 5 * DAY - MIN;
        // 4 days 30 minutes: the hour straddling the edge is left out.
        let got = s.window_counts(now, 4 * DAY + 30 * MIN).total;
        assert!(got <= (4 * DAY / MIN + 30) as u64);
        assert!(got + 60 >= (4 * DAY / MIN + 30) as u64);
    }

    #[test]
    fn serde_round_trip_keeps_history() {
        let mut s = Series::default();
        for m in 0..500 {
            s.record_many(m * 7 * MIN, 9, 10);
        }
        let json = serde_json::to_string(&s).unwrap();
        let back: Series = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        let now = 500 * 7 * MIN;
        assert_eq!(back.window_counts(now, DAY), s.window_counts(now, DAY));
        assert!(
            json.contains("[0,9,10]"),
            "compact buckets: {}",
            &json[..200]
        );
    }

    #[test]
    fn merge_adds_series() {
        let mut a = Series::default();
        let mut b = Series::default();
        a.record(100, true);
        b.record(100, false);
        b.record(5 * DAY, true);
        a.merge(&b);
        assert_eq!(
            a.window_counts(5 * DAY, 6 * DAY),
            Counts { good: 2, total: 3 }
        );
    }

    #[test]
    fn regrade_moves_events_between_good_and_bad_in_their_bucket() {
        let mut s = Series::default();
        s.record_many(5 * MIN + 10, 3, 3);
        s.record_many(4 * DAY, 2, 2); // the first minutes have rolled into hour 0
        assert_eq!(s.regrade(5 * MIN + 50, -1), -1);
        assert_eq!(s.window_counts(5 * MIN, MIN), Counts::default());
        assert_eq!(
            s.window_counts(HOUR - MIN, HOUR),
            Counts { good: 2, total: 3 }
        );
        assert_eq!(s.regrade(4 * DAY + 1, -5), -2, "at most the good ones turn");
        assert_eq!(s.window_counts(4 * DAY, MIN), Counts { good: 0, total: 2 });
        assert_eq!(s.regrade(4 * DAY, 3), 2, "at most the bad ones turn back");
        assert_eq!(s.regrade(4 * DAY, 1), 0);
        // Nothing counted then: nothing to turn.
        assert_eq!(s.regrade(2 * DAY, -1), 0);
        assert_eq!(s.regrade(5 * DAY, -1), 0);
        // Beyond the retention the event is gone, and so is its regrade.
        s.advance(31 * DAY);
        assert_eq!(s.regrade(4 * DAY, -1), -1);
        s.advance(35 * DAY);
        assert_eq!(s.regrade(5 * MIN, -1), 0);
        assert_eq!(s.window_counts(35 * DAY, 30 * DAY).total, 0);
    }

    fn sli(status: u16) -> Sli {
        Sli {
            status,
            ttft_ms: Some(300.0),
            ..Sli::answered(1500.0)
        }
    }

    #[test]
    fn one_place_defines_good() {
        let avail = Objective::Availability;
        let lat = Objective::Latency { threshold_ms: 2000 };
        let ttft = Objective::Ttft { threshold_ms: 250 };
        let q = Objective::Quality;
        let table: &[(Sli, [Option<bool>; 4])] = &[
            (sli(200), [Some(true), Some(true), Some(false), Some(true)]),
            (sli(400), [Some(true), None, None, None]),
            (sli(429), [Some(true), None, None, None]),
            (sli(499), [Some(true), Some(true), Some(false), None]),
            (sli(500), [Some(false), None, None, None]),
            (sli(503), [Some(false), None, None, None]),
            (
                Sli {
                    provider_error: true,
                    ..sli(200)
                },
                [Some(false), None, None, None],
            ),
            (
                Sli {
                    latency_ms: 2000.0,
                    ..sli(200)
                },
                [Some(true), Some(true), Some(false), Some(true)],
            ),
            (
                Sli {
                    latency_ms: 2000.5,
                    ..sli(200)
                },
                [Some(true), Some(false), Some(false), Some(true)],
            ),
            (
                Sli {
                    ttft_ms: None,
                    ..sli(200)
                },
                [Some(true), Some(true), None, Some(true)],
            ),
            (
                Sli {
                    ttft_ms: Some(250.0),
                    ..sli(200)
                },
                [Some(true), Some(true), Some(true), Some(true)],
            ),
            (
                Sli {
                    guard_passed: false,
                    ..sli(200)
                },
                [Some(true), Some(true), Some(false), Some(false)],
            ),
            (
                Sli {
                    feedback_negative: true,
                    ..sli(200)
                },
                [Some(true), Some(true), Some(false), Some(false)],
            ),
        ];
        for (i, (s, want)) in table.iter().enumerate() {
            let got = [s.judge(&avail), s.judge(&lat), s.judge(&ttft), s.judge(&q)];
            assert_eq!(&got, want, "row {i}: {s:?}");
        }
    }

    proptest! {
        #[test]
        fn regrades_keep_totals_and_stay_within_them(
            events in prop::collection::vec((0i64..(5 * DAY), 0u64..4, 1u64..4), 1..100),
            regrades in prop::collection::vec((0i64..(5 * DAY), -3i64..4), 0..100),
        ) {
            let mut s = Series::default();
            let mut sorted = events.clone();
            sorted.sort();
            for &(t, g, n) in &sorted {
                s.record_many(t, g, n);
            }
            let now = sorted.last().map_or(0, |e| e.0);
            let before = s.window_counts(now, 30 * DAY);
            let (mut applied, mut fine, mut coarse) = (0i64, s.fine.clone(), s.coarse.clone());
            for &(t, d) in &regrades {
                let a = s.regrade(t, d);
                prop_assert!(a.abs() <= d.abs() && (a == 0 || a.signum() == d.signum()));
                applied += a;
                // Only the event's own bucket moves, and its good count stays in 0..=total.
                for (old, new) in fine.iter().chain(&coarse).zip(s.fine.iter().chain(&s.coarse)) {
                    prop_assert_eq!((old.0, old.2), (new.0, new.2));
                    prop_assert!(new.1 <= new.2);
                }
                (fine, coarse) = (s.fine.clone(), s.coarse.clone());
            }
            let after = s.window_counts(now, 30 * DAY);
            prop_assert_eq!(after.total, before.total);
            prop_assert_eq!(after.good as i64, before.good as i64 + applied);
        }

        #[test]
        fn windows_inside_the_fine_span_match_a_naive_count(
            events in prop::collection::vec((0i64..(4 * DAY), any::<bool>()), 0..300),
            now in 0i64..(4 * DAY),
            window in 1i64..(3 * DAY),
        ) {
            let mut s = Series::default();
            let mut sorted = events.clone();
            sorted.sort();
            for &(t, g) in &sorted {
                s.record(t, g);
            }
            // Query only instants the series can still see at minute resolution.
            let latest = sorted.last().map_or(0, |e| e.0);
            let now = now.max(latest - (3 * DAY - round_up(window, MIN)));
            let cur = floor(now, MIN);
            let lo = cur - round_up(window, MIN) + MIN;
            let want = sorted.iter().filter(|(t, _)| {
                let b = floor(*t, MIN);
                b >= lo && b <= cur
            });
            let want = want.fold(Counts::default(), |mut c, (_, g)| { c.add(u64::from(*g), 1); c });
            prop_assert_eq!(s.window_counts(now, window), want);
        }
    }
}
