//! The few statistical functions the analysis needs, written out so they are checked here
//! against published values rather than taken on trust from a dependency.

/// `ln Γ(x)` for `x > 0`: Lanczos' approximation (g = 7, nine terms; relative error near
/// 1e-15), with the reflection formula below 1/2.
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const COEF: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let sum = COEF[1..]
        .iter()
        .enumerate()
        .fold(COEF[0], |acc, (i, c)| acc + c / (x + i as f64 + 1.0));
    let t = x + G + 0.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

/// The regularised incomplete beta function `I_x(a, b)`, for `a, b > 0`, by its continued
/// fraction (modified Lentz), taken on the side of `x` where it converges fast.
pub(crate) fn incomplete_beta(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    if x < (a + 1.0) / (a + b + 2.0) {
        (ln_front.exp() * beta_fraction(x, a, b) / a).clamp(0.0, 1.0)
    } else {
        (1.0 - ln_front.exp() * beta_fraction(1.0 - x, b, a) / b).clamp(0.0, 1.0)
    }
}

fn beta_fraction(x: f64, a: f64, b: f64) -> f64 {
    const TINY: f64 = 1e-300;
    const EPS: f64 = 1e-15;
    let nonzero = |v: f64| if v.abs() < TINY { TINY } else { v };
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 / nonzero(1.0 - qab * x / qap);
    let mut h = d;
    // Converges in O(sqrt(max(a, b))) terms; 100 000 covers a million trials.
    for m in 1..100_000 {
        let m = f64::from(m);
        let m2 = 2.0 * m;
        let even = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 / nonzero(1.0 + even * d);
        c = nonzero(1.0 + even / c);
        h *= d * c;
        let odd = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 / nonzero(1.0 + odd * d);
        c = nonzero(1.0 + odd / c);
        let step = d * c;
        h *= step;
        if (step - 1.0).abs() < EPS {
            break;
        }
    }
    h
}

/// `P(X >= k)` for `X ~ Binomial(n, p)`: exactly `I_p(k, n - k + 1)`.
pub(crate) fn binomial_upper_tail(n: u64, k: u64, p: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n {
        return 0.0;
    }
    incomplete_beta(p, k as f64, (n - k) as f64 + 1.0)
}

/// One-sided exact (Clopper–Pearson) bounds for a proportion of `x` in `n`, each at error
/// `alpha`: the lowest and highest true rates that would leave the observation no rarer than
/// `alpha` in its tail. `x` may be fractional (a sum of scores in `[0, 1]`): the beta form of
/// the bounds is defined for any real count. `n = 0` gives `(0, 1)`.
pub(crate) fn exact_bounds(x: f64, n: f64, alpha: f64) -> (f64, f64) {
    if n <= 0.0 {
        return (0.0, 1.0);
    }
    let x = x.clamp(0.0, n);
    // low: I_low(x, n - x + 1) = alpha; high: I_high(x + 1, n - x) = 1 - alpha. Both sides are
    // increasing in the rate, so bisection finds them.
    let low = if x <= 0.0 {
        0.0
    } else {
        solve_increasing(|p| incomplete_beta(p, x, n - x + 1.0), alpha)
    };
    let high = if x >= n {
        1.0
    } else {
        solve_increasing(|p| incomplete_beta(p, x + 1.0, n - x), 1.0 - alpha)
    };
    (low, high)
}

fn solve_increasing(f: impl Fn(f64) -> f64, target: f64) -> f64 {
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if f(mid) < target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// Lower confidence bound, at error `alpha`, of `rate_a - rate_b` (counts `x_a` of `n_a` and
/// `x_b` of `n_b`): Newcombe's square-and-add combination (MOVER) of each arm's exact bound,
/// `a - b - sqrt((a - low_a)^2 + (high_b - b)^2)`.
pub(crate) fn difference_lower_bound(x_a: f64, n_a: f64, x_b: f64, n_b: f64, alpha: f64) -> f64 {
    let rate = |x: f64, n: f64| {
        if n > 0.0 {
            (x / n).clamp(0.0, 1.0)
        } else {
            0.0
        }
    };
    let (a, b) = (rate(x_a, n_a), rate(x_b, n_b));
    let (low_a, _) = exact_bounds(x_a, n_a, alpha);
    let (_, high_b) = exact_bounds(x_b, n_b, alpha);
    a - b - ((a - low_a).powi(2) + (high_b - b).powi(2)).sqrt()
}

/// The nearest-rank quantile `q` of `samples` (sorted here), `None` when empty.
pub(crate) fn quantile(samples: &[u32], q: f64) -> Option<u32> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.saturating_sub(1)).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn ln_gamma_matches_factorials() {
        assert!(close(ln_gamma(1.0), 0.0, 1e-13));
        assert!(close(ln_gamma(5.0), 24f64.ln(), 1e-13));
        assert!(close(
            ln_gamma(0.5),
            std::f64::consts::PI.sqrt().ln(),
            1e-13
        ));
        // ln(170!) from the sum of logs.
        let direct: f64 = (1..=170).map(|i| f64::from(i).ln()).sum();
        assert!(close(ln_gamma(171.0), direct, 1e-9));
    }

    #[test]
    fn incomplete_beta_known_values() {
        assert!(close(incomplete_beta(0.5, 3.0, 3.0), 0.5, 1e-14));
        // I_x(1, b) = 1 - (1 - x)^b and I_x(a, 1) = x^a.
        assert!(close(
            incomplete_beta(0.2, 1.0, 4.0),
            1.0 - 0.8f64.powi(4),
            1e-14
        ));
        assert!(close(incomplete_beta(0.7, 3.0, 1.0), 0.343, 1e-14));
        assert_eq!(incomplete_beta(0.0, 2.0, 2.0), 0.0);
        assert_eq!(incomplete_beta(1.0, 2.0, 2.0), 1.0);
    }

    #[test]
    fn binomial_tails_are_exact() {
        // P(X >= 3), X ~ Bin(10, 0.5) = 1 - (1 + 10 + 45) / 1024.
        assert!(close(
            binomial_upper_tail(10, 3, 0.5),
            1.0 - 56.0 / 1024.0,
            1e-12
        ));
        // P(X >= 9) = (10 + 1) / 1024.
        assert!(close(binomial_upper_tail(10, 9, 0.5), 11.0 / 1024.0, 1e-12));
        assert_eq!(binomial_upper_tail(10, 0, 0.3), 1.0);
        assert_eq!(binomial_upper_tail(10, 11, 0.3), 0.0);
        // P(X >= 20), X ~ Bin(100, 0.05) = 1.0523e-7 (exact sum with big integers).
        let t = binomial_upper_tail(100, 20, 0.05);
        assert!(close(t, 1.0523e-7, 1e-10), "{t}");
        // A million trials stay finite and right: just above one half at the mean.
        let t = binomial_upper_tail(1_000_000, 50_000, 0.05);
        assert!(t > 0.5 && t < 0.51, "{t}");
    }

    #[test]
    fn exact_bounds_match_published_clopper_pearson() {
        // 0 of 10 at 95% one-sided: high = 1 - 0.05^(1/10) = 0.2589.
        let (lo, hi) = exact_bounds(0.0, 10.0, 0.05);
        assert_eq!(lo, 0.0);
        assert!(close(hi, 1.0 - 0.05f64.powf(0.1), 1e-9), "{hi}");
        // 10 of 10: low = 0.05^(1/10).
        let (lo, hi) = exact_bounds(10.0, 10.0, 0.05);
        assert!(close(lo, 0.05f64.powf(0.1), 1e-9), "{lo}");
        assert_eq!(hi, 1.0);
        // 10 of 50, two-sided 95% (2.5% each side): (0.1003, 0.3372).
        let (lo, hi) = exact_bounds(10.0, 50.0, 0.025);
        assert!(close(lo, 0.1003, 1e-4), "{lo}");
        assert!(close(hi, 0.3372, 1e-4), "{hi}");
        assert_eq!(exact_bounds(3.0, 0.0, 0.05), (0.0, 1.0));
    }

    #[test]
    fn difference_bound_is_below_the_observed_difference() {
        let lo = difference_lower_bound(56.0, 70.0, 48.0, 80.0, 0.025);
        // Observed 0.2; Newcombe's Wilson-based bound is 0.0524, the exact one is wider.
        assert!(lo > 0.03 && lo < 0.0524, "{lo}");
        assert!(difference_lower_bound(100.0, 1000.0, 100.0, 1000.0, 0.05) < 0.0);
    }

    #[test]
    fn nearest_rank_quantile() {
        let s: Vec<u32> = (1..=100).rev().collect();
        assert_eq!(quantile(&s, 0.95), Some(95));
        assert_eq!(quantile(&[7], 0.95), Some(7));
        assert_eq!(quantile(&[], 0.95), None);
    }

    proptest! {
        #[test]
        fn binomial_tail_equals_the_sum_of_its_terms(n in 1u64..150, k in 0u64..150, p in 0.001f64..0.999) {
            let k = k.min(n + 1);
            let pmf = |i: u64| {
                let ln_choose: f64 = (1..=i).map(|j| ((n - i + j) as f64 / j as f64).ln()).sum();
                (ln_choose + i as f64 * p.ln() + (n - i) as f64 * (1.0 - p).ln()).exp()
            };
            let direct: f64 = (k..=n).map(pmf).sum();
            let t = binomial_upper_tail(n, k, p);
            prop_assert!((t - direct).abs() < 1e-9 * direct.max(1e-3), "{} vs {}", t, direct);
        }

        #[test]
        fn exact_bounds_hold_their_tails(n in 1u64..300, x in 0u64..300, alpha in 0.0005f64..0.2) {
            let x = x.min(n);
            let (lo, hi) = exact_bounds(x as f64, n as f64, alpha);
            prop_assert!(lo <= x as f64 / n as f64 && x as f64 / n as f64 <= hi);
            if x > 0 {
                prop_assert!((binomial_upper_tail(n, x, lo) - alpha).abs() < 1e-6);
            }
            if x < n {
                prop_assert!((1.0 - binomial_upper_tail(n, x + 1, hi) - alpha).abs() < 1e-6);
            }
        }
    }
}
