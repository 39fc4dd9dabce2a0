//! Mergeable latency percentiles: DDSketch (Masson, Rim and Lee, VLDB 2019), the
//! `sketches-ddsketch` crate (the one the metrics exporter uses), with the stored form this
//! crate has always written.
//!
//! Why DDSketch and not `hdrhistogram` (a workspace dependency): HdrHistogram keeps a dense
//! array of counters sized by its value range and precision (about 2,000 u64s for 1 ms..1 h at
//! two significant digits), and its serialisation needs extra features and a binary format. A
//! DDSketch keeps only the span of buckets that values fell into, merges by adding counts, and
//! guarantees a relative error on every quantile, which is the guarantee latency percentiles
//! want.
//!
//! 1. A positive value `x` goes to bucket `i = ceil(ln x / ln γ)` with `γ = (1+α)/(1-α)`;
//!    bucket `i` holds the values in `(γ^(i-1), γ^i]`. α is 1% ([`DEFAULT_ALPHA`]).
//! 2. The estimate for bucket `i` is `2γ^i/(γ+1)`, within a relative `α` of every value in it.
//! 3. Quantile `q` of `n` values is the value of rank `⌊q(n-1)⌋` (0-based): that bucket's
//!    estimate, clamped to the observed min and max (which only moves it closer); `q = 0` and
//!    `q = 1` are the min and the max themselves.
//! 4. Values at or below [`MIN_INDEXABLE`] (zero, and negatives, which latencies never are and
//!    which count as 0) are counted in a zero bucket whose estimate is 0; NaN is ignored.
//! 5. At most [`MAX_BINS`] buckets: past that the lowest buckets are folded into the lowest
//!    kept one, so memory is bounded and only the lowest quantiles lose accuracy. With α = 1%
//!    that needs values more than a factor of `γ^4096` (about 10^35) apart.
//! 6. Merging adds counts bucket by bucket, so merge(a, b) equals recording a's and b's values
//!    into one sketch.
//!
//! Stored form (inside the SLO state the gateway saves): `{alpha, zero, offset, bins, sum,
//! min, max}`, the counts of the buckets `offset, offset + 1, ...` from the lowest non-empty
//! one to the highest; min and max are 0 when empty. It is converted to and from the crate's
//! own serde layout ([`Layout`], which must match the crate's fields exactly: a crate update
//! that changes them fails the tests here, never a saved state).

use serde::{Deserialize, Serialize};
use sketches_ddsketch::{Config, DDSketch};

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
    #[error("the sketch's buckets cannot be read or written: {0}")]
    Layout(String),
}

/// A DDSketch over non-negative values (milliseconds, in Switchyard).
#[derive(Clone)]
pub struct Sketch {
    alpha: f64,
    inner: DDSketch,
}

impl std::fmt::Debug for Sketch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sketch")
            .field("alpha", &self.alpha)
            .field("count", &self.count())
            .field("min", &self.min())
            .field("max", &self.max())
            .finish_non_exhaustive()
    }
}

/// The stored form (see the module comment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Repr {
    alpha: f64,
    zero: u64,
    offset: i32,
    bins: Vec<u64>,
    sum: f64,
    min: f64,
    max: f64,
}

/// `sketches_ddsketch::DDSketch`'s serde layout (its `use_serde` feature): the only way to
/// read its buckets, and to rebuild it from stored counts without replaying every value.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Layout {
    config: serde_json::Value,
    store: StoreLayout,
    negative_store: StoreLayout,
    /// Infinite when empty, which JSON writes as `null`.
    min: Option<f64>,
    max: Option<f64>,
    sum: f64,
    zero_count: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreLayout {
    bins: Vec<u64>,
    count: u64,
    min_key: i32,
    max_key: i32,
    offset: i32,
    bin_limit: usize,
    is_collapsed: bool,
}

impl StoreLayout {
    /// The counts of buckets `offset, offset + 1, ...`, `offset` the lowest non-empty one.
    fn from_counts(offset: i32, bins: Vec<u64>) -> StoreLayout {
        let first = bins.iter().position(|&c| c > 0);
        let last = bins.iter().rposition(|&c| c > 0);
        match (first, last) {
            (Some(f), Some(l)) => StoreLayout {
                count: bins.iter().fold(0, |a: u64, &c| a.saturating_add(c)),
                min_key: offset.saturating_add(f as i32),
                max_key: offset.saturating_add(l as i32),
                offset,
                bins,
                bin_limit: MAX_BINS,
                is_collapsed: false,
            },
            _ => StoreLayout {
                bins: Vec::new(),
                count: 0,
                min_key: i32::MAX,
                max_key: i32::MIN,
                offset: 0,
                bin_limit: MAX_BINS,
                is_collapsed: false,
            },
        }
    }

    /// The counts from the lowest non-empty bucket to the highest, and the lowest's index.
    fn counts(&self) -> (i32, Vec<u64>) {
        let first = self.bins.iter().position(|&c| c > 0);
        let last = self.bins.iter().rposition(|&c| c > 0);
        match (first, last) {
            (Some(f), Some(l)) => (
                self.offset.saturating_add(f as i32),
                self.bins[f..=l].to_vec(),
            ),
            _ => (0, Vec::new()),
        }
    }
}

fn config(alpha: f64) -> Config {
    Config::new(alpha, MAX_BINS as u32, MIN_INDEXABLE)
}

impl Sketch {
    fn repr(&self) -> Result<Repr, SketchError> {
        let layout: Layout = serde_json::to_value(&self.inner)
            .and_then(serde_json::from_value)
            .map_err(|e| SketchError::Layout(e.to_string()))?;
        let (offset, bins) = layout.store.counts();
        let empty = self.is_empty();
        Ok(Repr {
            alpha: self.alpha,
            zero: layout.zero_count,
            offset,
            bins,
            sum: self.sum(),
            min: if empty {
                0.0
            } else {
                layout.min.unwrap_or(0.0)
            },
            max: if empty {
                0.0
            } else {
                layout.max.unwrap_or(0.0)
            },
        })
    }

    fn from_repr(r: Repr) -> Result<Sketch, SketchError> {
        let empty = Sketch::with_alpha(r.alpha)?;
        if r.bins.len() > MAX_BINS {
            return Err(SketchError::TooManyBins(r.bins.len()));
        }
        let store = StoreLayout::from_counts(r.offset, r.bins);
        if store.count == 0 && r.zero == 0 {
            return Ok(empty);
        }
        let layout = Layout {
            config: serde_json::to_value(config(r.alpha))
                .map_err(|e| SketchError::Layout(e.to_string()))?,
            store,
            negative_store: StoreLayout::from_counts(0, Vec::new()),
            min: Some(r.min),
            max: Some(r.max),
            sum: r.sum,
            zero_count: r.zero,
        };
        let inner = serde_json::to_value(layout)
            .and_then(serde_json::from_value)
            .map_err(|e| SketchError::Layout(e.to_string()))?;
        Ok(Sketch {
            alpha: r.alpha,
            inner,
        })
    }
}

impl Serialize for Sketch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.repr().map_err(serde::ser::Error::custom)?.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Sketch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Sketch::from_repr(Repr::deserialize(d)?).map_err(serde::de::Error::custom)
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
            inner: DDSketch::new(config(DEFAULT_ALPHA)),
        }
    }

    pub fn with_alpha(alpha: f64) -> Result<Self, SketchError> {
        if !(alpha > 0.0 && alpha < 1.0) {
            return Err(SketchError::Alpha(alpha));
        }
        Ok(Sketch {
            alpha,
            inner: DDSketch::new(config(alpha)),
        })
    }

    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    pub fn count(&self) -> u64 {
        self.inner.count() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    pub fn sum(&self) -> f64 {
        self.inner.sum().unwrap_or(0.0)
    }

    pub fn min(&self) -> Option<f64> {
        self.inner.min()
    }

    pub fn max(&self) -> Option<f64> {
        self.inner.max()
    }

    pub fn mean(&self) -> Option<f64> {
        (!self.is_empty()).then(|| self.sum() / self.count() as f64)
    }

    /// Records `value` (point 4: NaN is ignored, a negative counts as 0).
    pub fn record(&mut self, value: f64) {
        if !value.is_nan() {
            self.inner.add(value.max(0.0));
        }
    }

    /// Adds `other`'s values to this sketch (point 6).
    pub fn merge(&mut self, other: &Sketch) -> Result<(), SketchError> {
        if self.alpha.to_bits() != other.alpha.to_bits() {
            return Err(SketchError::Mismatch(self.alpha, other.alpha));
        }
        // Same α, so the same config: the crate's merge cannot refuse.
        self.inner
            .merge(&other.inner)
            .map_err(|_| SketchError::Mismatch(self.alpha, other.alpha))
    }

    /// The `q` quantile (`q` in [0, 1]), within a relative α of the true value of rank
    /// `⌊q(n-1)⌋`; `None` when empty or `q` is out of range.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if !(0.0..=1.0).contains(&q) {
            return None;
        }
        let estimate = self.inner.quantile(q).ok()??;
        Some(estimate.clamp(self.min()?, self.max()?))
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

    /// Adds another series' values (another replica's), bucket by bucket. A series of
    /// another bucket size is added at its buckets' starts; one whose sketches have another
    /// accuracy cannot be merged (every sketch here is made by `Sketch::new`, so two of this
    /// crate's series always can).
    pub fn merge(&mut self, other: &SketchSeries) -> Result<(), SketchError> {
        for (at, sketch) in &other.buckets {
            let start = at.div_euclid(self.step_secs) * self.step_secs;
            match self.buckets.binary_search_by_key(&start, |b| b.0) {
                Ok(i) => {
                    if let Some(b) = self.buckets.get_mut(i) {
                        b.1.merge(sketch)?;
                    }
                }
                Err(i) => {
                    let mut mine = Sketch::new();
                    mine.merge(sketch)?;
                    self.buckets.insert(i, (start, mine));
                }
            }
        }
        let newest = self.buckets.back().map_or(0, |b| b.0);
        let cut = newest - self.retention_secs + self.step_secs;
        while self.buckets.front().is_some_and(|b| b.0 < cut) {
            self.buckets.pop_front();
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn same(a: &Sketch, b: &Sketch) -> bool {
        // The stored form holds the buckets from the lowest non-empty one to the highest.
        let (ra, rb) = (a.repr().unwrap(), b.repr().unwrap());
        ra.zero == rb.zero
            && a.count() == b.count()
            && a.min() == b.min()
            && a.max() == b.max()
            && (ra.offset, &ra.bins) == (rb.offset, &rb.bins)
            && (a.sum() - b.sum()).abs() <= 1e-6 * a.sum().abs().max(1.0)
    }

    fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
        sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
    }

    /// A sketch and a series as the hand-written DDSketch of issue 6 saved them (values 0, 3,
    /// 12.5, 40, 41, 250, 251, 1800, 30000; and the series of 12 and 0 at 0 s, 99.5 at
    /// 400 s): saved SLO states stay readable and are written back the same.
    fn saved_sketch() -> String {
        let mut bins = vec![0u64; 462];
        for (k, c) in [
            (0, 1),
            (72, 1),
            (130, 1),
            (131, 1),
            (222, 2),
            (320, 1),
            (461, 1),
        ] {
            bins[k] = c;
        }
        let bins: Vec<String> = bins.iter().map(u64::to_string).collect();
        format!(
            r#"{{"alpha":0.01,"zero":1,"offset":55,"bins":[{}],"sum":32397.5,"min":0.0,"max":30000.0}}"#,
            bins.join(",")
        )
    }
    const SAVED_SERIES: &str = r#"{"step_secs":300,"retention_secs":3600,"buckets":[[0,{"alpha":0.01,"zero":1,"offset":125,"bins":[1],"sum":12.0,"min":0.0,"max":12.0}],[300,{"alpha":0.01,"zero":0,"offset":231,"bins":[1],"sum":99.5,"min":99.5,"max":99.5}]]}"#;
    const SAVED_EMPTY: &str =
        r#"{"alpha":0.01,"zero":0,"offset":0,"bins":[],"sum":0.0,"min":0.0,"max":0.0}"#;

    #[test]
    fn reads_and_writes_the_stored_form_of_before() {
        let text = saved_sketch();
        let s: Sketch = serde_json::from_str(&text).unwrap();
        assert_eq!(serde_json::to_string(&s).unwrap(), text);
        assert_eq!(s.count(), 9);
        // The figures the hand-written sketch gave for these values (q = 0 and 1 are now the
        // min and max themselves, as they were here after clamping).
        let before = [
            (0.0, 0.0),
            (0.1, 0.0),
            (0.25, 12.55393717991829),
            (0.5, 40.856816402622464),
            (0.75, 252.1777867894794),
            (0.9, 1790.4095636080563),
            (0.99, 1790.4095636080563),
            (1.0, 30000.0),
        ];
        for (q, want) in before {
            let got = s.quantile(q).unwrap();
            assert!((got - want).abs() <= want * 1e-12, "q{q}: {got} vs {want}");
        }
        let series: SketchSeries = serde_json::from_str(SAVED_SERIES).unwrap();
        assert_eq!(serde_json::to_string(&series).unwrap(), SAVED_SERIES);
        assert_eq!(series.window(400, 3_600).count(), 3);
        let empty: Sketch = serde_json::from_str(SAVED_EMPTY).unwrap();
        assert!(empty.is_empty());
        assert_eq!(serde_json::to_string(&empty).unwrap(), SAVED_EMPTY);
    }

    #[test]
    fn a_read_sketch_goes_on_recording_and_merging() {
        let mut s: Sketch = serde_json::from_str(&saved_sketch()).unwrap();
        let mut fresh = Sketch::new();
        for v in [0.0, 3.0, 12.5, 40.0, 41.0, 250.0, 251.0, 1800.0, 30_000.0] {
            fresh.record(v);
        }
        assert!(same(&s, &fresh));
        for v in [0.5, 1e-3, 7e6, 44.0] {
            s.record(v);
            fresh.record(v);
        }
        assert!(same(&s, &fresh));
        let mut merged = Sketch::new();
        merged.merge(&s).unwrap();
        merged.merge(&fresh).unwrap();
        assert_eq!(merged.count(), 26);
        assert_eq!(merged.quantile(0.5), s.quantile(0.5));
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
        let bins = s.repr().unwrap().bins.len();
        assert!(bins < 500, "sparse span: {bins}");
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
        assert!(fine.repr().unwrap().bins.len() <= MAX_BINS);
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
