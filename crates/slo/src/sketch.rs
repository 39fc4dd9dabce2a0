//! A mergeable percentile sketch: DDSketch (Masson, Rim and Lee, VLDB 2019), small.
//!
//! Why our own DDSketch and not `hdrhistogram` (a workspace dependency): HdrHistogram keeps a
//! dense array of counters sized by its value range and precision (about 2,000 u64s for
//! 1 ms..1 h at two significant digits), and its serialisation needs extra features and a
//! binary format. A DDSketch keeps only the span of buckets that values actually fell into
//! (latencies of one route usually span a few hundred), serialises as plain serde, merges by
//! adding counts, and guarantees a relative error on every quantile, which is the guarantee
//! percentiles of latency want. The whole algorithm is a page of code, tested below.
//!
//! 1. A positive value `x` goes to bucket `i = ceil(ln x / ln γ)` with `γ = (1+α)/(1-α)`;
//!    bucket `i` holds the values in `(γ^(i-1), γ^i]`.
//! 2. The estimate for bucket `i` is `2γ^i/(γ+1)`, within a relative `α` of every value in it.
//! 3. Quantile `q` of `n` values is the value of rank `⌊q(n-1)⌋` (0-based): walk the buckets
//!    in order until the running count passes that rank, answer that bucket's estimate
//!    (clamped to the observed min and max, which only moves it closer).
//! 4. Values at or below [`MIN_INDEXABLE`] (zero, and negatives, which latencies never are)
//!    are counted in a zero bucket whose estimate is 0; NaN is ignored.
//! 5. Buckets are a dense run from `offset`; when the run would pass [`MAX_BINS`] the lowest
//!    buckets are folded into the lowest kept one, so memory is bounded and only the lowest
//!    quantiles lose accuracy. With α = 1% that needs values spanning 1e-9..1e12.
//! 6. Merging adds counts bucket by bucket, so merge(a, b) equals recording a's and b's values
//!    into one sketch.

use serde::{Deserialize, Serialize};

/// The default relative accuracy: 1%.
pub const DEFAULT_ALPHA: f64 = 0.01;
/// At most this many buckets; see point 5 above.
pub const MAX_BINS: usize = 4096;
/// Values at or below this go to the zero bucket.
pub const MIN_INDEXABLE: f64 = 1e-9;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SketchError {
    #[error("cannot merge sketches of different accuracy ({0} and {1})")]
    Mismatch(f64, f64),
    #[error("relative accuracy must be in (0, 1), got {0}")]
    Alpha(f64),
    #[error("a sketch may hold at most {MAX_BINS} buckets, got {0}")]
    TooManyBins(usize),
}

/// A DDSketch over non-negative values (milliseconds, in Switchyard).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "Repr", into = "Repr")]
pub struct Sketch {
    alpha: f64,
    ln_gamma: f64,
    zero: u64,
    offset: i32,
    bins: Vec<u64>,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

/// The serialised form: `ln_gamma` is derived, min and max are 0 when empty.
#[derive(Serialize, Deserialize)]
struct Repr {
    alpha: f64,
    zero: u64,
    offset: i32,
    bins: Vec<u64>,
    sum: f64,
    min: f64,
    max: f64,
}

impl TryFrom<Repr> for Sketch {
    type Error = SketchError;

    fn try_from(r: Repr) -> Result<Self, SketchError> {
        let mut s = Sketch::with_alpha(r.alpha)?;
        if r.bins.len() > MAX_BINS {
            return Err(SketchError::TooManyBins(r.bins.len()));
        }
        let count = r.bins.iter().fold(r.zero, |acc, &c| acc.saturating_add(c));
        s.zero = r.zero;
        s.offset = r.offset;
        s.bins = r.bins;
        s.count = count;
        s.sum = r.sum;
        s.min = r.min;
        s.max = r.max;
        Ok(s)
    }
}

impl From<Sketch> for Repr {
    fn from(s: Sketch) -> Repr {
        Repr {
            alpha: s.alpha,
            zero: s.zero,
            offset: s.offset,
            bins: s.bins,
            sum: s.sum,
            min: s.min,
            max: s.max,
        }
    }
}

impl Default for Sketch {
    fn default() -> Self {
        Sketch::new()
    }
}

impl Sketch {
    /// An empty sketch with 1% relative accuracy.
    pub fn new() -> Self {
        Sketch {
            alpha: DEFAULT_ALPHA,
            ln_gamma: ln_gamma(DEFAULT_ALPHA),
            zero: 0,
            offset: 0,
            bins: Vec::new(),
            count: 0,
            sum: 0.0,
            min: 0.0,
            max: 0.0,
        }
    }

    pub fn with_alpha(alpha: f64) -> Result<Self, SketchError> {
        if !(alpha > 0.0 && alpha < 1.0) {
            return Err(SketchError::Alpha(alpha));
        }
        Ok(Sketch {
            alpha,
            ln_gamma: ln_gamma(alpha),
            ..Sketch::new()
        })
    }

    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn sum(&self) -> f64 {
        self.sum
    }

    pub fn min(&self) -> Option<f64> {
        (self.count > 0).then_some(self.min)
    }

    pub fn max(&self) -> Option<f64> {
        (self.count > 0).then_some(self.max)
    }

    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }

    pub fn record(&mut self, value: f64) {
        self.record_n(value, 1);
    }

    /// Records `value` `n` times.
    pub fn record_n(&mut self, value: f64, n: u64) {
        if value.is_nan() || n == 0 {
            return;
        }
        let value = value.max(0.0);
        self.note(value, value, n, value * n as f64);
        if value <= MIN_INDEXABLE {
            self.zero = self.zero.saturating_add(n);
        } else {
            self.add(self.index(value), n);
        }
    }

    /// Adds `other`'s values to this sketch (point 6).
    pub fn merge(&mut self, other: &Sketch) -> Result<(), SketchError> {
        if self.alpha.to_bits() != other.alpha.to_bits() {
            return Err(SketchError::Mismatch(self.alpha, other.alpha));
        }
        if other.count == 0 {
            return Ok(());
        }
        self.note(other.min, other.max, other.count, other.sum);
        self.zero = self.zero.saturating_add(other.zero);
        for (k, &c) in other.bins.iter().enumerate() {
            if c > 0 {
                self.add(other.offset.saturating_add(k as i32), c);
            }
        }
        Ok(())
    }

    /// The `q` quantile (`q` in [0, 1]), within a relative α of the true value of rank
    /// `⌊q(n-1)⌋`; `None` when empty or `q` is out of range.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = q * (self.count - 1) as f64;
        let mut seen = self.zero;
        if seen as f64 > rank {
            return Some(0.0_f64.clamp(self.min, self.max));
        }
        for (k, &c) in self.bins.iter().enumerate() {
            seen = seen.saturating_add(c);
            if seen as f64 > rank {
                let i = f64::from(self.offset) + k as f64;
                let estimate = 2.0 * (i * self.ln_gamma).exp() / (self.ln_gamma.exp() + 1.0);
                return Some(estimate.clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }

    fn index(&self, value: f64) -> i32 {
        // `as` saturates; values are > MIN_INDEXABLE so the index is about -1036 or more.
        (value.ln() / self.ln_gamma).ceil() as i32
    }

    fn note(&mut self, min: f64, max: f64, n: u64, sum: f64) {
        if self.count == 0 {
            self.min = min;
            self.max = max;
        } else {
            self.min = self.min.min(min);
            self.max = self.max.max(max);
        }
        self.count = self.count.saturating_add(n);
        self.sum += sum;
    }

    /// Adds `n` to bucket `i`, growing the dense run and folding its lowest buckets (point 5).
    fn add(&mut self, i: i32, n: u64) {
        if self.bins.is_empty() {
            self.offset = i;
            self.bins.push(n);
            return;
        }
        let (lo, hi) = (i64::from(self.offset), self.top());
        let i64_ = i64::from(i);
        if i64_ > hi {
            let new_lo = lo.max(i64_ - MAX_BINS as i64 + 1);
            if new_lo == lo {
                self.bins.resize((i64_ - lo + 1) as usize, 0);
            } else {
                // A jump of more than MAX_BINS: rebuild, folding what falls below `new_lo`.
                let mut bins = vec![0u64; MAX_BINS];
                for (k, &c) in self.bins.iter().enumerate() {
                    let j = ((lo + k as i64).max(new_lo) - new_lo) as usize;
                    if let Some(b) = bins.get_mut(j) {
                        *b = b.saturating_add(c);
                    }
                }
                self.bins = bins;
                self.offset = new_lo as i32;
            }
        } else if i64_ < lo {
            let grow = (lo - i64_) as usize;
            let keep = MAX_BINS.saturating_sub(self.bins.len()).min(grow);
            if keep > 0 {
                let mut bins = vec![0; keep];
                bins.append(&mut self.bins);
                self.bins = bins;
                self.offset -= keep as i32;
            }
        }
        self.fold_lowest();
        let slot = (i64_ - i64::from(self.offset)).max(0) as usize;
        if let Some(b) = self.bins.get_mut(slot) {
            *b = b.saturating_add(n);
        }
    }

    fn top(&self) -> i64 {
        i64::from(self.offset) + self.bins.len() as i64 - 1
    }

    fn fold_lowest(&mut self) {
        if self.bins.len() <= MAX_BINS {
            return;
        }
        let excess = self.bins.len() - MAX_BINS;
        let folded: u64 = self
            .bins
            .drain(..excess)
            .fold(0, |a: u64, c| a.saturating_add(c));
        self.offset = self.offset.saturating_add(excess as i32);
        if let Some(first) = self.bins.first_mut() {
            *first = first.saturating_add(folded);
        }
    }
}

/// Sketches in time buckets, for percentiles over a recent window (the dashboard's p50, p95,
/// p99 of the last hour or day). SLO compliance itself is counted by [`crate::series`];
/// these are for looking. Defaults: 5-minute buckets kept for a day (288 sketches of a few
/// hundred counters each at most); serde state like the series.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SketchSeries {
    step_secs: i64,
    retention_secs: i64,
    buckets: std::collections::VecDeque<(i64, Sketch)>,
}

impl Default for SketchSeries {
    fn default() -> Self {
        SketchSeries::new(300, 86_400)
    }
}

impl SketchSeries {
    pub fn new(step_secs: i64, retention_secs: i64) -> Self {
        SketchSeries {
            step_secs: step_secs.max(1),
            retention_secs: retention_secs.max(step_secs.max(1)),
            buckets: std::collections::VecDeque::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// Records `value` at `at_secs`; drops buckets older than the retention from the newest.
    pub fn record(&mut self, at_secs: i64, value: f64) {
        let start = at_secs.div_euclid(self.step_secs) * self.step_secs;
        match self.buckets.binary_search_by_key(&start, |b| b.0) {
            Ok(i) => {
                if let Some(b) = self.buckets.get_mut(i) {
                    b.1.record(value);
                }
            }
            Err(i) => {
                let mut sketch = Sketch::new();
                sketch.record(value);
                self.buckets.insert(i, (start, sketch));
            }
        }
        let newest = self.buckets.back().map_or(start, |b| b.0);
        let cut = newest - self.retention_secs + self.step_secs;
        while self.buckets.front().is_some_and(|b| b.0 < cut) {
            self.buckets.pop_front();
        }
    }

    /// All values of the buckets whose start is in `[floor(now) - w + step, floor(now)]`,
    /// merged into one sketch.
    pub fn window(&self, now: i64, window_secs: i64) -> Sketch {
        let cur = now.div_euclid(self.step_secs) * self.step_secs;
        let lo = cur - window_secs.max(0) + self.step_secs;
        let mut out = Sketch::new();
        for (_, sketch) in self.buckets.iter().filter(|b| b.0 >= lo && b.0 <= cur) {
            // All buckets are made by `Sketch::new`: same accuracy, merging cannot fail.
            let _ = out.merge(sketch);
        }
        out
    }
}

fn ln_gamma(alpha: f64) -> f64 {
    ((1.0 + alpha) / (1.0 - alpha)).ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn same(a: &Sketch, b: &Sketch) -> bool {
        let trim = |s: &Sketch| {
            let first = s.bins.iter().position(|&c| c > 0);
            let last = s.bins.iter().rposition(|&c| c > 0);
            match (first, last) {
                (Some(f), Some(l)) => (s.offset + f as i32, s.bins[f..=l].to_vec()),
                _ => (0, Vec::new()),
            }
        };
        a.zero == b.zero
            && a.count == b.count
            && a.min() == b.min()
            && a.max() == b.max()
            && trim(a) == trim(b)
            && (a.sum - b.sum).abs() <= 1e-6 * a.sum.abs().max(1.0)
    }

    fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
        sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
    }

    #[test]
    fn empty_sketch_has_no_quantiles() {
        let s = Sketch::new();
        assert_eq!(s.quantile(0.5), None);
        assert_eq!(s.min(), None);
        assert_eq!(s.mean(), None);
        assert_eq!(s.count(), 0);
    }

    #[test]
    fn single_value_and_out_of_range_q() {
        let mut s = Sketch::new();
        s.record(250.0);
        assert_eq!(s.quantile(0.0), Some(250.0), "clamped to min and max");
        assert_eq!(s.quantile(1.0), Some(250.0));
        assert_eq!(s.quantile(1.5), None);
        assert_eq!(s.quantile(f64::NAN), None);
    }

    #[test]
    fn zeros_negatives_and_nan() {
        let mut s = Sketch::new();
        s.record(0.0);
        s.record(-3.0);
        s.record(f64::NAN);
        s.record(10.0);
        assert_eq!(s.count(), 3);
        assert_eq!(s.quantile(0.0), Some(0.0));
        assert_eq!(s.quantile(0.5), Some(0.0));
        let top = s.quantile(1.0).unwrap();
        assert!((top - 10.0).abs() <= 0.1);
    }

    #[test]
    fn percentiles_of_a_uniform_run() {
        let mut s = Sketch::new();
        for v in 1..=10_000 {
            s.record(f64::from(v));
        }
        for (q, want) in [(0.5, 5000.0), (0.95, 9500.0), (0.99, 9900.0)] {
            let got = s.quantile(q).unwrap();
            assert!((got - want).abs() <= want * 0.0101, "q{q}: {got} vs {want}");
        }
        assert!(s.bins.len() < 500, "sparse span: {}", s.bins.len());
    }

    #[test]
    fn buckets_stay_bounded_by_folding_the_lowest() {
        let mut s = Sketch::with_alpha(0.2).unwrap();
        // γ = 1.5: 1e-8..1e300 spans ~1750 buckets; at α = 0.2 well under MAX_BINS, so use
        // a finer sketch to force folding.
        let mut fine = Sketch::with_alpha(0.001).unwrap();
        for e in -8..300 {
            let v = 10f64.powi(e);
            s.record(v);
            fine.record(v);
        }
        assert!(fine.bins.len() <= MAX_BINS);
        assert_eq!(fine.count(), 308);
        let top = fine.quantile(1.0).unwrap();
        assert!((top / 1e299 - 1.0).abs() <= 0.001 + 1e-9);
        let top_s = s.quantile(1.0).unwrap();
        assert!((top_s / 1e299 - 1.0).abs() <= 0.2 + 1e-9);
    }

    #[test]
    fn merge_rejects_a_different_accuracy() {
        let mut a = Sketch::new();
        let b = Sketch::with_alpha(0.02).unwrap();
        assert_eq!(a.merge(&b), Err(SketchError::Mismatch(0.01, 0.02)));
        assert!(Sketch::with_alpha(0.0).is_err());
        assert!(Sketch::with_alpha(1.0).is_err());
    }

    #[test]
    fn serde_round_trip_and_rejects_bad_state() {
        let mut s = Sketch::new();
        for v in [1.0, 2.0, 3.5, 800.0, 0.0] {
            s.record(v);
        }
        let json = serde_json::to_string(&s).unwrap();
        let back: Sketch = serde_json::from_str(&json).unwrap();
        assert!(same(&s, &back));
        assert_eq!(back.quantile(0.75), s.quantile(0.75));
        let empty: Sketch =
            serde_json::from_str(&serde_json::to_string(&Sketch::new()).unwrap()).unwrap();
        assert!(empty.is_empty());
        assert!(serde_json::from_str::<Sketch>(
            r#"{"alpha":2.0,"zero":0,"offset":0,"bins":[],"sum":0,"min":0,"max":0}"#
        )
        .is_err());
    }

    #[test]
    fn sketch_series_windows_and_retention() {
        let mut s = SketchSeries::new(300, 3_600);
        for minute in 0..120 {
            s.record(minute * 60, (minute + 1) as f64);
        }
        assert_eq!(s.len(), 12, "an hour of 5-minute buckets");
        let last_hour = s.window(119 * 60, 3_600);
        assert_eq!(last_hour.count(), 60);
        assert_eq!(last_hour.min(), Some(61.0));
        let last_5m = s.window(119 * 60, 300);
        assert_eq!(last_5m.count(), 5);
        assert!(s.window(0, 3_600).is_empty(), "evicted");
        let json = serde_json::to_string(&s).unwrap();
        let back: SketchSeries = serde_json::from_str(&json).unwrap();
        assert_eq!(
            back.window(119 * 60, 3_600).quantile(0.5),
            last_hour.quantile(0.5)
        );
    }

    proptest! {
        #[test]
        fn merge_equals_recording_everything(
            a in prop::collection::vec(0.0f64..1e6, 0..200),
            b in prop::collection::vec(0.0f64..1e6, 0..200),
        ) {
            let mut sa = Sketch::new();
            let mut sb = Sketch::new();
            let mut all = Sketch::new();
            a.iter().for_each(|&v| { sa.record(v); all.record(v); });
            b.iter().for_each(|&v| { sb.record(v); all.record(v); });
            sa.merge(&sb).unwrap();
            prop_assert!(same(&sa, &all));
            for q in [0.0, 0.5, 0.9, 0.99, 1.0] {
                prop_assert_eq!(sa.quantile(q), all.quantile(q));
            }
        }

        #[test]
        fn quantiles_are_within_relative_accuracy(
            values in prop::collection::vec(1e-3f64..1e7, 1..500),
        ) {
            let mut s = Sketch::new();
            values.iter().for_each(|&v| s.record(v));
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            for q in [0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0] {
                let want = exact_quantile(&sorted, q);
                let got = s.quantile(q).unwrap();
                prop_assert!(
                    (got - want).abs() <= DEFAULT_ALPHA * want * (1.0 + 1e-9),
                    "q{} got {} want {}", q, got, want
                );
            }
        }
    }
}
