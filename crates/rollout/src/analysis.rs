//! Is the candidate worse than the baseline? Per-arm summaries of one step's window in,
//! a [`Verdict`] out.

use serde::{Deserialize, Serialize};

use crate::stats::{binomial_upper_tail, difference_lower_bound, exact_bounds, quantile};

/// What one arm (candidate or baseline) did during a step's window. The gateway accumulates
/// it with [`ArmStats::record`] and [`ArmStats::record_feedback`] and starts a new one when a
/// transition opens a new window ([`crate::Transition::starts_window`]).
///
/// Latencies are kept as samples (milliseconds): the p95 tests need them. A window of more
/// than [`MAX_SAMPLES`] keeps a uniform reservoir sample of them, which preserves the
/// quantiles and bounds the memory a busy rollout takes. Replicas' windows add up with
/// [`ArmStats::merge`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ArmStats {
    pub requests: u64,
    pub errors: u64,
    pub guard_violations: u64,
    pub feedback_count: u64,
    /// Sum of feedback scores, each in `[0, 1]` (a thumbs up is 1, down is 0).
    pub feedback_sum: f64,
    /// Whole-request latency samples, in milliseconds.
    pub latency_ms: Vec<u32>,
    /// Time to first token of streamed requests, in milliseconds.
    pub ttft_ms: Vec<u32>,
    /// Latencies seen, of which `latency_ms` is a sample once there are more than
    /// [`MAX_SAMPLES`] (0 in windows saved before the cap: then the samples are all there were).
    #[serde(default)]
    pub latency_seen: u64,
    /// Times to first token seen, as `latency_seen`.
    #[serde(default)]
    pub ttft_seen: u64,
}

/// The most latency samples (and, apart, times to first token) an arm keeps: enough for a
/// p95 test at the confidence the analysis uses, and a few tens of KB however long the window.
pub const MAX_SAMPLES: usize = 4_096;

/// Keeps `value` in a reservoir of `samples` from a stream of which it is the `seen`-th
/// (Algorithm R, with the slot chosen by a hash of `seen`, so replays are deterministic).
fn keep(samples: &mut Vec<u32>, seen: u64, value: u32) {
    if samples.len() < MAX_SAMPLES {
        samples.push(value);
        return;
    }
    let slot = splitmix(seen) % seen;
    if let Some(s) = usize::try_from(slot).ok().and_then(|i| samples.get_mut(i)) {
        *s = value;
    }
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Two reservoirs as one of the union of their streams: each contributes samples in
/// proportion to how many values it stands for.
fn merge_samples(mine: &mut Vec<u32>, my_seen: u64, theirs: &[u32], their_seen: u64) {
    if mine.len() + theirs.len() <= MAX_SAMPLES {
        mine.extend_from_slice(theirs);
        return;
    }
    let my_seen = my_seen.max(mine.len() as u64);
    let their_seen = their_seen.max(theirs.len() as u64);
    let share = MAX_SAMPLES as f64 * my_seen as f64 / (my_seen + their_seen) as f64;
    let from_mine = (share.round() as usize).min(mine.len());
    let from_theirs = (MAX_SAMPLES - from_mine).min(theirs.len());
    let mut merged = spread(mine, from_mine);
    merged.extend(spread(theirs, from_theirs));
    *mine = merged;
}

/// `n` of `samples`, evenly spaced (a reservoir is in no order, so any even spacing is a
/// uniform subsample).
fn spread(samples: &[u32], n: usize) -> Vec<u32> {
    if n >= samples.len() {
        return samples.to_vec();
    }
    (0..n).map(|i| samples[i * samples.len() / n]).collect()
}

/// One finished request, as the analysis sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    pub error: bool,
    pub guard_violation: bool,
    pub latency_ms: Option<u32>,
    pub ttft_ms: Option<u32>,
}

impl ArmStats {
    pub fn record(&mut self, outcome: &Outcome) {
        self.requests += 1;
        self.errors += u64::from(outcome.error);
        self.guard_violations += u64::from(outcome.guard_violation);
        if let Some(ms) = outcome.latency_ms {
            self.latency_seen = self.latency_seen.max(self.latency_ms.len() as u64) + 1;
            keep(&mut self.latency_ms, self.latency_seen, ms);
        }
        if let Some(ms) = outcome.ttft_ms {
            self.ttft_seen = self.ttft_seen.max(self.ttft_ms.len() as u64) + 1;
            keep(&mut self.ttft_ms, self.ttft_seen, ms);
        }
    }

    /// Adds another window of the same arm (another replica's): counts and feedback add up,
    /// and the latency samples become a sample of both.
    pub fn merge(&mut self, other: &ArmStats) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.guard_violations += other.guard_violations;
        self.feedback_count += other.feedback_count;
        self.feedback_sum += other.feedback_sum;
        let latency_seen = self.latency_seen.max(self.latency_ms.len() as u64)
            + other.latency_seen.max(other.latency_ms.len() as u64);
        let ttft_seen = self.ttft_seen.max(self.ttft_ms.len() as u64)
            + other.ttft_seen.max(other.ttft_ms.len() as u64);
        merge_samples(
            &mut self.latency_ms,
            self.latency_seen,
            &other.latency_ms,
            other.latency_seen,
        );
        merge_samples(
            &mut self.ttft_ms,
            self.ttft_seen,
            &other.ttft_ms,
            other.ttft_seen,
        );
        self.latency_seen = latency_seen;
        self.ttft_seen = ttft_seen;
    }

    /// Adds one feedback score, clamped into `[0, 1]`; a NaN is ignored.
    pub fn record_feedback(&mut self, score: f64) {
        if score.is_nan() {
            return;
        }
        self.feedback_count += 1;
        self.feedback_sum += score.clamp(0.0, 1.0);
    }

    fn rate(count: u64, of: u64) -> f64 {
        if of == 0 {
            0.0
        } else {
            count as f64 / of as f64
        }
    }

    pub fn error_rate(&self) -> f64 {
        Self::rate(self.errors, self.requests)
    }

    pub fn guard_violation_rate(&self) -> f64 {
        Self::rate(self.guard_violations, self.requests)
    }

    /// Mean feedback score, `None` without feedback.
    pub fn feedback_mean(&self) -> Option<f64> {
        (self.feedback_count > 0).then(|| self.feedback_sum / self.feedback_count as f64)
    }
}

/// The thresholds a candidate is held to. Margins are absolute (0.02 is two percentage
/// points); ratios compare the candidate's p95 with the baseline's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnalysisSpec {
    /// Breach when the candidate's error rate exceeds the baseline's by more than this.
    pub max_error_rate_increase: f64,
    /// Breach when the candidate's guard-violation rate exceeds the baseline's by more.
    pub max_guard_violation_rate_increase: f64,
    /// Breach when the candidate's p95 latency exceeds this multiple of the baseline's.
    pub max_p95_latency_ratio: f64,
    /// Breach when the candidate's p95 time to first token exceeds this multiple.
    pub max_ttft_p95_ratio: f64,
    /// Breach when the candidate's mean feedback score is lower by more than this.
    pub max_feedback_drop: f64,
    /// Requests (and latency samples) each arm needs before anything is judged.
    pub min_samples: u64,
    /// Feedback scores each arm needs before feedback is judged; fewer skips the criterion.
    pub min_feedback: u64,
    /// One-sided confidence of a breach at the end of a step.
    pub confidence: f64,
    /// One-sided confidence of a breach before the step's end (see the algorithm, 5.).
    pub early_confidence: f64,
}

impl Default for AnalysisSpec {
    fn default() -> Self {
        AnalysisSpec {
            max_error_rate_increase: 0.02,
            max_guard_violation_rate_increase: 0.02,
            max_p95_latency_ratio: 1.5,
            max_ttft_p95_ratio: 1.5,
            max_feedback_drop: 0.1,
            min_samples: 50,
            min_feedback: 20,
            confidence: 0.95,
            early_confidence: 0.999,
        }
    }
}

/// When the analysis looks: during a step (only a clear breach counts) or at its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Look {
    Early,
    Final,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Criterion {
    ErrorRate,
    GuardViolations,
    P95Latency,
    TtftP95,
    Feedback,
}

impl Criterion {
    pub fn as_str(self) -> &'static str {
        match self {
            Criterion::ErrorRate => "error rate",
            Criterion::GuardViolations => "guard violations",
            Criterion::P95Latency => "p95 latency",
            Criterion::TtftP95 => "p95 time to first token",
            Criterion::Feedback => "feedback",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// No criterion is breached. At an early look this only means "no clear breach yet".
    Pass,
    Breach {
        criterion: Criterion,
        detail: String,
    },
    NotEnoughData {
        detail: String,
    },
}

/// Candidate-versus-baseline analysis.
///
/// 1. Each arm needs `min_samples` requests, or the verdict is `NotEnoughData`: a test on a
///    handful of requests decides nothing.
/// 2. Error and guard-violation rates: a one-sided test of "the candidate's rate exceeds the
///    baseline's by more than the margin". The lower confidence bound of the difference
///    combines each arm's exact (Clopper–Pearson) bound by Newcombe's square-and-add rule
///    (MOVER). Exact bounds, not Wilson's or the normal approximation: healthy error rates sit
///    near 0, where those two are too narrow. At the margin's edge (a candidate at 2%
///    against a clean baseline of 950) the exact chance of a false breach stays within the
///    confidence for any number of candidate requests
///    (`false_breaches_stay_within_the_confidence`); with Wilson-based bounds it reached
///    1.6% at 99.9% when this was chosen. A breach needs the bound above the margin: noise
///    alone does not decide.
/// 3. Latency and time to first token: with `T = ratio × baseline p95` (nearest rank), a
///    candidate whose true p95 is at most `T` has at most 5% of its samples above `T`. With `k`
///    of its `n` samples above `T`, breach when `P(Binomial(n, 0.05) >= k) < 1 - confidence`
///    (exact sum). This is distribution-free and deterministic, where a bootstrap would need
///    randomness and many passes over the samples. It treats the baseline's p95 as known; the
///    ratio above 1 and `min_samples` keep its own noise small. Judged only when both arms
///    have `min_samples` samples (time to first token exists only for streams).
/// 4. Feedback: `1 - score` is a dissatisfaction rate, its sum the (fractional) count,
///    tested as in 2. with `max_feedback_drop` as the margin. Exact for thumbs (0 or 1); for
///    scores between, a score's variance is at most a coin's of the same mean, so the test
///    errs on the side of no breach. Feedback is sparse: with fewer than `min_feedback` scores in an arm the
///    criterion is skipped rather than holding the rollout.
/// 5. Looks: the state machine looks at every tick, and looking again and again at 95% would
///    raise false breaches well above 5%. So, as in the Haybittle–Peto rule of clinical
///    trials, a look during a step breaches only at `early_confidence` (99.9% by default) and
///    the look at the step's end uses `confidence`. An early look that finds nothing returns
///    `Pass`, which the machine reads as "keep going".
/// 6. Criteria are checked in the order above; the first breach is the verdict, with its
///    figures in `detail` for the audit log.
impl AnalysisSpec {
    /// Every problem with the thresholds, for the config validator.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let unit = |name: &str, v: f64, out: &mut Vec<String>| {
            if !(0.0..=1.0).contains(&v) {
                out.push(format!("{name} must be in [0, 1], got {v}"));
            }
        };
        unit(
            "max_error_rate_increase",
            self.max_error_rate_increase,
            &mut out,
        );
        unit(
            "max_guard_violation_rate_increase",
            self.max_guard_violation_rate_increase,
            &mut out,
        );
        unit("max_feedback_drop", self.max_feedback_drop, &mut out);
        for (name, v) in [
            ("max_p95_latency_ratio", self.max_p95_latency_ratio),
            ("max_ttft_p95_ratio", self.max_ttft_p95_ratio),
        ] {
            if !(v >= 1.0 && v.is_finite()) {
                out.push(format!("{name} must be a finite number >= 1, got {v}"));
            }
        }
        for (name, v) in [
            ("confidence", self.confidence),
            ("early_confidence", self.early_confidence),
        ] {
            if !(v > 0.5 && v < 1.0) {
                out.push(format!("{name} must be in (0.5, 1), got {v}"));
            }
        }
        if self.early_confidence < self.confidence {
            out.push(format!(
                "early_confidence ({}) must be at least confidence ({})",
                self.early_confidence, self.confidence
            ));
        }
        if self.min_samples == 0 {
            out.push("min_samples must be at least 1".to_string());
        }
        out
    }

    fn confidence_of(&self, look: Look) -> f64 {
        match look {
            Look::Early => self.early_confidence,
            Look::Final => self.confidence,
        }
    }

    /// Judges the candidate against the baseline (the numbered algorithm above).
    pub fn judge(&self, look: Look, candidate: &ArmStats, baseline: &ArmStats) -> Verdict {
        if candidate.requests < self.min_samples || baseline.requests < self.min_samples {
            return Verdict::NotEnoughData {
                detail: format!(
                    "{} candidate and {} baseline requests; each arm needs {}",
                    candidate.requests, baseline.requests, self.min_samples
                ),
            };
        }
        let confidence = self.confidence_of(look);
        let rate_checks = [
            (
                Criterion::ErrorRate,
                (candidate.errors, baseline.errors),
                self.max_error_rate_increase,
            ),
            (
                Criterion::GuardViolations,
                (candidate.guard_violations, baseline.guard_violations),
                self.max_guard_violation_rate_increase,
            ),
        ];
        for (criterion, (c, b), margin) in rate_checks {
            let c = RateArm::counted(c, candidate.requests);
            let b = RateArm::counted(b, baseline.requests);
            if let Some(detail) = rate_breach(c, b, margin, confidence) {
                return Verdict::Breach { criterion, detail };
            }
        }
        let latency_checks = [
            (
                Criterion::P95Latency,
                &candidate.latency_ms,
                &baseline.latency_ms,
                self.max_p95_latency_ratio,
            ),
            (
                Criterion::TtftP95,
                &candidate.ttft_ms,
                &baseline.ttft_ms,
                self.max_ttft_p95_ratio,
            ),
        ];
        for (criterion, c, b, ratio) in latency_checks {
            let enough = c.len() as u64 >= self.min_samples && b.len() as u64 >= self.min_samples;
            if !enough {
                continue;
            }
            if let Some(detail) = p95_breach(c, b, ratio, confidence) {
                return Verdict::Breach { criterion, detail };
            }
        }
        if candidate.feedback_count >= self.min_feedback.max(1)
            && baseline.feedback_count >= self.min_feedback.max(1)
        {
            let dissatisfied = |s: &ArmStats| RateArm {
                count: s.feedback_count as f64 - s.feedback_sum,
                n: s.feedback_count,
                whole: false,
            };
            let (c, b) = (dissatisfied(candidate), dissatisfied(baseline));
            if let Some(detail) = rate_breach(c, b, self.max_feedback_drop, confidence) {
                return Verdict::Breach {
                    criterion: Criterion::Feedback,
                    detail: format!("dissatisfaction (1 - score): {detail}"),
                };
            }
        }
        Verdict::Pass
    }
}

#[derive(Debug, Clone, Copy)]
struct RateArm {
    /// How many of `n` were bad; fractional for feedback scores.
    count: f64,
    n: u64,
    /// Whether `count` is a whole count of events (shown as `count/n`).
    whole: bool,
}

impl RateArm {
    fn counted(count: u64, n: u64) -> RateArm {
        RateArm {
            count: count as f64,
            n,
            whole: true,
        }
    }

    fn describe(self) -> String {
        let rate = if self.n == 0 {
            0.0
        } else {
            self.count / self.n as f64 * 100.0
        };
        if self.whole {
            format!("{rate:.1}% ({}/{})", self.count, self.n)
        } else {
            format!("{rate:.1}% (n = {})", self.n)
        }
    }
}

fn rate_breach(c: RateArm, b: RateArm, margin: f64, confidence: f64) -> Option<String> {
    let alpha = 1.0 - confidence;
    let low = difference_lower_bound(c.count, c.n as f64, b.count, b.n as f64, alpha);
    (low > margin).then(|| {
        format!(
            "candidate {} vs baseline {}: the increase is at least {:.2} points at {:.1}% \
             confidence, above the margin of {:.2} points",
            c.describe(),
            b.describe(),
            low * 100.0,
            confidence * 100.0,
            margin * 100.0
        )
    })
}

fn p95_breach(candidate: &[u32], baseline: &[u32], ratio: f64, confidence: f64) -> Option<String> {
    let base_p95 = quantile(baseline, 0.95)?;
    let cand_p95 = quantile(candidate, 0.95)?;
    let limit = f64::from(base_p95) * ratio;
    let above = candidate.iter().filter(|&&v| f64::from(v) > limit).count() as u64;
    let n = candidate.len() as u64;
    let p_value = binomial_upper_tail(n, above, 0.05);
    (p_value < 1.0 - confidence).then(|| {
        format!(
            "candidate p95 {cand_p95} ms vs baseline p95 {base_p95} ms (limit {limit:.0} ms = \
             {ratio}×): {above} of {n} candidate samples above the limit, p = {p_value:.2e} \
             against at most 5% if the candidate's p95 were within it"
        )
    })
}

/// How many candidate requests an early look needs to breach a candidate whose error rate is
/// `candidate_rate`, against a baseline of `baseline_requests` at `baseline_rate`: the
/// smallest `n >= min_samples` at which `floor(candidate_rate × n)` errors of `n` breach.
/// `None` when no `n` up to a million does (the difference is within the margin, or too
/// small to tell). A rollout's tests state this bound and check the rollback came within it.
pub fn requests_to_detect(
    spec: &AnalysisSpec,
    look: Look,
    baseline_rate: f64,
    baseline_requests: u64,
    candidate_rate: f64,
) -> Option<u64> {
    const MAX: u64 = 1_000_000;
    let confidence = spec.confidence_of(look);
    let baseline_rate = baseline_rate.clamp(0.0, 1.0);
    let candidate_rate = candidate_rate.clamp(0.0, 1.0);
    if baseline_requests < spec.min_samples {
        return None;
    }
    let baseline = RateArm::counted(
        (baseline_rate * baseline_requests as f64).round() as u64,
        baseline_requests,
    );
    // However many candidate requests, the bound stays below the candidate's rate minus the
    // baseline's upper bound: when that is within the margin, no n will do.
    let (_, baseline_high) =
        exact_bounds(baseline.count, baseline_requests as f64, 1.0 - confidence);
    if candidate_rate - baseline_high <= spec.max_error_rate_increase {
        return None;
    }
    let breaches = |n: u64| {
        let errors = (candidate_rate * n as f64).floor() as u64;
        let c = RateArm::counted(errors, n);
        rate_breach(c, baseline, spec.max_error_rate_increase, confidence).is_some()
    };
    // A breach at n does not promise one at n + 1 (the floor), so scan rather than bisect;
    // steps of one up to 10 000, then coarser.
    let mut n = spec.min_samples.max(1);
    while n <= MAX {
        if breaches(n) {
            return Some(n);
        }
        n += if n < 10_000 { 1 } else { n / 100 };
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `requests` requests of which `errors` fail, spread evenly, with latencies
    /// `base_ms + i % spread_ms`.
    pub(crate) fn arm(requests: u64, errors: u64, base_ms: u32, spread_ms: u32) -> ArmStats {
        let mut s = ArmStats::default();
        for i in 0..requests {
            s.record(&Outcome {
                // Spread the errors evenly through the window.
                error: errors > 0 && (i * errors) / requests != ((i + 1) * errors) / requests,
                guard_violation: false,
                latency_ms: Some(base_ms + (i as u32 % spread_ms)),
                ttft_ms: None,
            });
        }
        s
    }

    #[test]
    fn arm_helper_counts_what_it_says() {
        let a = arm(100, 20, 100, 50);
        assert_eq!((a.requests, a.errors, a.latency_ms.len()), (100, 20, 100));
    }

    #[test]
    fn a_long_window_keeps_a_bounded_sample_with_its_quantiles() {
        // 100,000 latencies of 0..1000 ms, uniformly: the p95 of the sample stays near 950.
        let mut a = ArmStats::default();
        for i in 0..100_000u32 {
            a.record(&Outcome {
                latency_ms: Some((i * 7919) % 1000),
                ..Outcome::default()
            });
        }
        assert_eq!(a.latency_ms.len(), MAX_SAMPLES);
        assert_eq!(a.latency_seen, 100_000);
        let p95 = quantile(&a.latency_ms, 0.95).unwrap();
        assert!((930..970).contains(&p95), "{p95}");
    }

    #[test]
    fn replicas_windows_merge_into_the_fleets() {
        // Three replicas: two fast and busy, one slow and quiet.
        let fast = arm(30_000, 30, 100, 50);
        let slow = arm(3_000, 300, 1_000, 50);
        let mut fleet = ArmStats::default();
        for r in [&fast, &fast, &slow] {
            fleet.merge(r);
        }
        assert_eq!((fleet.requests, fleet.errors), (63_000, 360));
        assert_eq!(fleet.latency_seen, 63_000);
        assert_eq!(fleet.latency_ms.len(), MAX_SAMPLES);
        // About 3,000 of 63,000 are slow: the sample has the same share, within a point.
        let slow_share = fleet.latency_ms.iter().filter(|&&ms| ms >= 1_000).count() as f64
            / fleet.latency_ms.len() as f64;
        assert!((slow_share - 3.0 / 63.0).abs() < 0.01, "{slow_share}");
        // Small windows are kept whole.
        let mut small = arm(10, 0, 5, 1);
        small.merge(&arm(20, 0, 7, 1));
        assert_eq!(small.latency_ms.len(), 30);
    }

    #[test]
    fn too_few_requests_is_not_enough_data() {
        let spec = AnalysisSpec::default();
        let v = spec.judge(Look::Final, &arm(49, 49, 100, 10), &arm(1000, 0, 100, 10));
        assert!(matches!(v, Verdict::NotEnoughData { .. }), "{v:?}");
        let v = spec.judge(Look::Final, &arm(100, 0, 100, 10), &arm(10, 0, 100, 10));
        assert!(matches!(v, Verdict::NotEnoughData { .. }), "{v:?}");
    }

    #[test]
    fn equal_arms_pass() {
        let spec = AnalysisSpec::default();
        let v = spec.judge(
            Look::Final,
            &arm(500, 5, 100, 100),
            &arm(5000, 50, 100, 100),
        );
        assert_eq!(v, Verdict::Pass);
    }

    #[test]
    fn a_small_noisy_excess_is_not_a_breach() {
        // 3% vs 1% over 200 requests: above the 2-point margin? Not provably.
        let spec = AnalysisSpec::default();
        let v = spec.judge(Look::Final, &arm(200, 8, 100, 10), &arm(4000, 40, 100, 10));
        assert_eq!(v, Verdict::Pass);
    }

    #[test]
    fn a_clearly_higher_error_rate_breaches() {
        let spec = AnalysisSpec::default();
        let v = spec.judge(Look::Final, &arm(500, 100, 100, 10), &arm(5000, 0, 100, 10));
        match v {
            Verdict::Breach { criterion, detail } => {
                assert_eq!(criterion, Criterion::ErrorRate);
                assert!(detail.contains("20.0% (100/500)"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_early_look_is_stricter_than_the_final_one() {
        // 3.5% vs 0% over 400: the increase is provably above 2 points at 95% (the lower
        // bound is 2.27 points) but not at 99.9% (1.57 points).
        let spec = AnalysisSpec::default();
        let (c, b) = (arm(400, 14, 100, 10), arm(8000, 0, 100, 10));
        assert!(matches!(
            spec.judge(Look::Final, &c, &b),
            Verdict::Breach { .. }
        ));
        assert_eq!(spec.judge(Look::Early, &c, &b), Verdict::Pass);
    }

    /// The chance that noise alone breaches, computed exactly: a candidate whose true error
    /// rate sits at the margin's edge (2 points above a baseline of 0) breaches when it shows
    /// at least the fewest errors that breach, with binomial probability.
    #[test]
    fn false_breaches_stay_within_the_confidence() {
        let spec = AnalysisSpec {
            min_samples: 1,
            ..AnalysisSpec::default()
        };
        let baseline = ArmStats {
            requests: 950,
            ..ArmStats::default()
        };
        for look in [Look::Early, Look::Final] {
            let alpha = 1.0 - spec.confidence_of(look);
            for n in [10, 20, 50, 100, 200, 500, 2_000] {
                let breaches = |errors: u64| {
                    let c = ArmStats {
                        requests: n,
                        errors,
                        ..ArmStats::default()
                    };
                    matches!(spec.judge(look, &c, &baseline), Verdict::Breach { .. })
                };
                let Some(fewest) = (0..=n).find(|&e| breaches(e)) else {
                    continue;
                };
                let false_breach = binomial_upper_tail(n, fewest, 0.02);
                assert!(
                    false_breach <= alpha,
                    "{look:?}, n = {n}: {fewest} errors breach, P = {false_breach} > {alpha}"
                );
            }
        }
    }

    #[test]
    fn doubled_p95_breaches_and_same_latency_passes() {
        let spec = AnalysisSpec::default();
        let base = arm(2000, 0, 100, 100);
        let slow = arm(200, 0, 200, 200);
        match spec.judge(Look::Final, &slow, &base) {
            Verdict::Breach { criterion, .. } => assert_eq!(criterion, Criterion::P95Latency),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            spec.judge(Look::Final, &arm(200, 0, 100, 100), &base),
            Verdict::Pass
        );
        // 20% slower is within the 1.5× ratio.
        assert_eq!(
            spec.judge(Look::Final, &arm(200, 0, 120, 120), &base),
            Verdict::Pass
        );
    }

    #[test]
    fn slow_first_tokens_breach_only_with_enough_samples() {
        let spec = AnalysisSpec::default();
        let with_ttft = |n: u64, ms: u32| {
            let mut s = arm(200, 0, 100, 10);
            s.ttft_ms = (0..n).map(|i| ms + i as u32 % 20).collect();
            s
        };
        let base = with_ttft(200, 50);
        match spec.judge(Look::Final, &with_ttft(200, 150), &base) {
            Verdict::Breach { criterion, .. } => assert_eq!(criterion, Criterion::TtftP95),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            spec.judge(Look::Final, &with_ttft(10, 150), &base),
            Verdict::Pass
        );
    }

    #[test]
    fn guard_violations_breach() {
        let spec = AnalysisSpec::default();
        let mut c = arm(300, 0, 100, 10);
        c.guard_violations = 45;
        match spec.judge(Look::Final, &c, &arm(3000, 0, 100, 10)) {
            Verdict::Breach { criterion, .. } => assert_eq!(criterion, Criterion::GuardViolations),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn feedback_drop_breaches_and_sparse_feedback_is_skipped() {
        let spec = AnalysisSpec::default();
        let scored = |n: u64, good_share: f64| {
            let mut s = arm(500, 0, 100, 10);
            for i in 0..n {
                s.record_feedback(if (i as f64) < good_share * n as f64 {
                    1.0
                } else {
                    0.0
                });
            }
            s
        };
        let base = scored(400, 0.9);
        match spec.judge(Look::Final, &scored(200, 0.5), &base) {
            Verdict::Breach { criterion, detail } => {
                assert_eq!(criterion, Criterion::Feedback);
                assert!(detail.starts_with("dissatisfaction"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            spec.judge(Look::Final, &scored(10, 0.0), &base),
            Verdict::Pass
        );
        assert_eq!(
            spec.judge(Look::Final, &scored(200, 0.85), &base),
            Verdict::Pass
        );
    }

    #[test]
    fn feedback_scores_are_clamped_and_nan_ignored() {
        let mut s = ArmStats::default();
        s.record_feedback(2.0);
        s.record_feedback(-1.0);
        s.record_feedback(f64::NAN);
        assert_eq!(s.feedback_count, 2);
        assert_eq!(s.feedback_mean(), Some(0.5));
    }

    #[test]
    fn detection_bound_for_twenty_percent_errors() {
        // With the defaults, 20% errors against a clean baseline of 1000 is caught at the
        // first look allowed: min_samples (50) requests already hold overwhelming evidence.
        let spec = AnalysisSpec::default();
        assert_eq!(
            requests_to_detect(&spec, Look::Early, 0.0, 1000, 0.20),
            Some(spec.min_samples)
        );
        // Let the statistics alone set the bound: stated, 20 candidate requests.
        let spec = AnalysisSpec {
            min_samples: 10,
            ..AnalysisSpec::default()
        };
        let n = requests_to_detect(&spec, Look::Early, 0.0, 1000, 0.20).unwrap();
        assert_eq!(n, 20);
        let look = |requests: u64, errors: u64| {
            let c = ArmStats {
                requests,
                errors,
                ..ArmStats::default()
            };
            let b = ArmStats {
                requests: 1000,
                ..ArmStats::default()
            };
            spec.judge(Look::Early, &c, &b)
        };
        assert!(matches!(look(20, 4), Verdict::Breach { .. }));
        // The bound is tight: 3 errors in 19 is not yet clear at 99.9%.
        assert_eq!(look(19, 3), Verdict::Pass);
        // A bigger difference is caught sooner, and a final look sooner than an early one.
        assert!(requests_to_detect(&spec, Look::Early, 0.0, 1000, 0.5).unwrap() < n);
        assert!(requests_to_detect(&spec, Look::Final, 0.0, 1000, 0.2).unwrap() < n);
    }

    #[test]
    fn a_small_baseline_limits_what_can_be_told() {
        // 0 errors in 19 baseline requests leave its rate possibly above 20%.
        let spec = AnalysisSpec {
            min_samples: 1,
            ..AnalysisSpec::default()
        };
        assert_eq!(requests_to_detect(&spec, Look::Early, 0.0, 19, 0.2), None);
    }

    #[test]
    fn detection_bound_is_none_within_the_margin() {
        let spec = AnalysisSpec::default();
        assert_eq!(
            requests_to_detect(&spec, Look::Early, 0.01, 10_000, 0.02),
            None
        );
        assert_eq!(requests_to_detect(&spec, Look::Early, 0.0, 10, 0.9), None);
    }

    #[test]
    fn small_differences_need_many_requests() {
        let spec = AnalysisSpec::default();
        // 5% against 1% is 4 points, twice the margin: some hundreds of requests.
        let small = requests_to_detect(&spec, Look::Final, 0.01, 100_000, 0.05).unwrap();
        assert!((150..=400).contains(&small), "{small}");
        let large = requests_to_detect(&spec, Look::Final, 0.01, 100_000, 0.2).unwrap();
        assert!(large * 2 < small, "{large} vs {small}");
    }

    #[test]
    fn problems_lists_every_bad_threshold() {
        let spec = AnalysisSpec {
            max_error_rate_increase: 2.0,
            max_p95_latency_ratio: 0.5,
            confidence: 1.0,
            early_confidence: 0.9,
            min_samples: 0,
            ..AnalysisSpec::default()
        };
        let p = spec.problems();
        assert_eq!(p.len(), 5, "{p:?}");
        assert!(AnalysisSpec::default().problems().is_empty());
    }

    #[test]
    fn spec_reads_partial_json_and_refuses_unknown_fields() {
        let spec: AnalysisSpec = serde_json::from_str(r#"{"min_samples": 10}"#).unwrap();
        assert_eq!(spec.min_samples, 10);
        assert_eq!(spec.confidence, 0.95);
        assert!(serde_json::from_str::<AnalysisSpec>(r#"{"min_sample": 10}"#).is_err());
    }
}
