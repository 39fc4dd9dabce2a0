//! Router quality metrics in the style of RouteLLM (Ong et al., 2024), for two models.
//!
//! A router gives each prompt a score ("how much this prompt needs the strong model"). Sending
//! the `k` highest-scored prompts to the strong model and the rest to the weak one, for every
//! `k`, traces the quality-versus-share-of-strong-calls curve. The performance gap recovered,
//! `PGR = (Q - Q_weak) / (Q_strong - Q_weak)`, normalises it; `CPT(x)` is the smallest share of
//! strong calls that reaches `PGR >= x`, and `APGR` is the area under the PGR curve (a random
//! router scores 0.5).

/// One point of the curve: `k` of `n` prompts sent to the strong model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurvePoint {
    pub strong_share: f64,
    pub quality: f64,
    pub pgr: f64,
}

/// The curve for `need_strong` scores (higher = send to strong first). Ties keep input order,
/// so results are reproducible. Returns `n + 1` points (k = 0..=n); empty input gives one point.
/// When both models score the same on average the gap is zero and PGR is reported as 0.
pub fn routing_curve(weak: &[f64], strong: &[f64], need_strong: &[f64]) -> Vec<CurvePoint> {
    let n = weak.len().min(strong.len()).min(need_strong.len());
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| need_strong[b].total_cmp(&need_strong[a]));
    let denom = n.max(1) as f64;
    let q_weak = weak[..n].iter().sum::<f64>() / denom;
    let q_strong = strong[..n].iter().sum::<f64>() / denom;
    let gap = q_strong - q_weak;
    let pgr = |q: f64| {
        if gap.abs() < 1e-12 {
            0.0
        } else {
            (q - q_weak) / gap
        }
    };
    let mut total = weak[..n].iter().sum::<f64>();
    let mut points = Vec::with_capacity(n + 1);
    points.push(CurvePoint {
        strong_share: 0.0,
        quality: q_weak,
        pgr: pgr(q_weak),
    });
    for (k, &i) in order.iter().enumerate() {
        total += strong[i] - weak[i];
        let q = total / denom;
        points.push(CurvePoint {
            strong_share: (k + 1) as f64 / denom,
            quality: q,
            pgr: pgr(q),
        });
    }
    points
}

/// The oracle's scores: the strong model first where it gains the most.
pub fn oracle_scores(weak: &[f64], strong: &[f64]) -> Vec<f64> {
    weak.iter().zip(strong).map(|(w, s)| s - w).collect()
}

/// Smallest share of strong calls whose PGR reaches `target` (None if never).
pub fn cpt(curve: &[CurvePoint], target: f64) -> Option<f64> {
    curve
        .iter()
        .find(|p| p.pgr >= target - 1e-12)
        .map(|p| p.strong_share)
}

/// Area under the PGR-versus-share curve (trapezoids between consecutive points).
pub fn apgr(curve: &[CurvePoint]) -> f64 {
    curve
        .windows(2)
        .map(|w| (w[1].strong_share - w[0].strong_share) * (w[0].pgr + w[1].pgr) / 2.0)
        .sum()
}

/// Smallest share of strong calls whose quality reaches `target` (None if never).
pub fn share_for_quality(curve: &[CurvePoint], target: f64) -> Option<f64> {
    curve
        .iter()
        .find(|p| p.quality >= target - 1e-12)
        .map(|p| p.strong_share)
}

/// Share of the all-strong cost saved when `share` of calls go to the strong model, with
/// per-call costs `weak_cost` and `strong_cost`.
pub fn cost_saved(share: f64, weak_cost: f64, strong_cost: f64) -> f64 {
    if strong_cost <= 0.0 {
        return 0.0;
    }
    1.0 - (share * strong_cost + (1.0 - share) * weak_cost) / strong_cost
}

/// Nearest-rank percentile of a sample (`q` in `[0, 1]`); None for an empty sample.
pub fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank.min(sorted.len()) - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Hand-computed toy: weak right on prompts 2 and 3, strong right on all four.
    // The router ranks 0, 2, 3, 1: one useful strong call, two wasted, then the last useful one.
    // Quality by k: .5, .75, .75, .75, 1  ->  PGR 0, .5, .5, .5, 1.
    const WEAK: [f64; 4] = [0.0, 0.0, 1.0, 1.0];
    const STRONG: [f64; 4] = [1.0, 1.0, 1.0, 1.0];
    const ROUTER: [f64; 4] = [0.9, 0.1, 0.8, 0.2];

    #[test]
    fn curve_cpt_apgr_on_a_hand_computed_toy() {
        let c = routing_curve(&WEAK, &STRONG, &ROUTER);
        let pgr: Vec<f64> = c.iter().map(|p| p.pgr).collect();
        assert_eq!(pgr, vec![0.0, 0.5, 0.5, 0.5, 1.0]);
        assert_eq!(cpt(&c, 0.5), Some(0.25));
        assert_eq!(cpt(&c, 0.8), Some(1.0));
        // Trapezoids: (0+.5)/2 + .5 + .5 + (.5+1)/2 = 2.0, times width 1/4.
        assert!((apgr(&c) - 0.5).abs() < 1e-12);
        assert_eq!(share_for_quality(&c, 0.95 * 1.0), Some(1.0));
        assert_eq!(share_for_quality(&c, 0.7), Some(0.25));
    }

    #[test]
    fn oracle_recovers_the_gap_with_the_fewest_calls() {
        let c = routing_curve(&WEAK, &STRONG, &oracle_scores(&WEAK, &STRONG));
        assert_eq!(cpt(&c, 0.5), Some(0.25));
        assert_eq!(cpt(&c, 1.0), Some(0.5));
        // PGR 0, .5, 1, 1, 1 -> (.25 + .75 + 1 + 1) / 4.
        assert!((apgr(&c) - 0.75).abs() < 1e-12);
    }

    #[test]
    fn cost_and_percentiles() {
        assert!((cost_saved(0.25, 1.0, 11.0) - (1.0 - (2.75 + 0.75) / 11.0)).abs() < 1e-12);
        assert_eq!(cost_saved(1.0, 1.0, 10.0), 0.0);
        let s = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&s, 0.5), Some(2.0));
        assert_eq!(percentile(&s, 0.99), Some(4.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn zero_gap_is_not_nan() {
        let c = routing_curve(&[1.0], &[1.0], &[0.0]);
        assert!(c.iter().all(|p| p.pgr == 0.0));
    }
}
