//! Recalibrating a route's bars from outcomes: user feedback on the answers the router chose.
//!
//! For each named policy (`cheap`, `balanced`) on its own:
//! 1. Split the recent classifier decisions that got feedback into those that went to a
//!    cheaper candidate and those that went to the last (strongest) one. Rule decisions and
//!    `best` are left out: the bar did not choose them.
//! 2. With at least `min_feedback` of each, compare the mean feedback of the cheaper answers
//!    with the strongest's: their ratio is the quality the policy kept.
//! 3. Below the policy's target, the bar rises by `step` (fewer prompts go cheap); above the
//!    target by more than `margin`, it falls by `step` (more go cheap, saving more). In
//!    between, or with too little feedback, it stays.
//! 4. The bar never leaves `[base - max_shift, base + max_shift]` (the trained bar is the
//!    anchor, so a run of odd feedback cannot walk the router anywhere), stays in [0, 1], and
//!    `cheap` never rises above `balanced`.
//!
//! One step per run: the caller runs it now and then (minutes), so a change is gradual and
//! each one is explained.

use serde::{Deserialize, Serialize};

use crate::policy::{Bars, Policy};

/// Bounds and targets; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CalibrationConfig {
    pub min_feedback: usize,
    pub step: f32,
    pub max_shift: f32,
    /// Quality kept (cheaper answers' mean feedback over the strongest's) that `cheap` aims at.
    pub target_cheap: f32,
    /// The same for `balanced`.
    pub target_balanced: f32,
    pub margin: f32,
}

impl Default for CalibrationConfig {
    fn default() -> Self {
        CalibrationConfig {
            min_feedback: 30,
            step: 0.01,
            max_shift: 0.1,
            target_cheap: 0.90,
            target_balanced: 0.95,
            margin: 0.03,
        }
    }
}

/// One routed request that got feedback.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    pub policy: Policy,
    /// The answer came from the route's last (strongest) candidate.
    pub strongest: bool,
    /// A rule decided, not the classifier.
    pub by_rule: bool,
    /// Mean feedback score in [0, 1].
    pub score: f32,
}

/// What a run found for one policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyCalibration {
    pub policy: String,
    pub cheaper_feedback: usize,
    pub strongest_feedback: usize,
    /// Cheaper answers' mean feedback over the strongest's, when both were measured.
    pub quality_kept: Option<f32>,
    pub target: f32,
    pub bar_before: f32,
    pub bar_after: f32,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Calibration {
    pub bars: Bars,
    pub policies: Vec<PolicyCalibration>,
}

impl Calibration {
    pub fn changed(&self, before: Bars) -> bool {
        self.bars != before
    }
}

/// One recalibration step from `current` bars, anchored at the trained `base` bars.
pub fn recalibrate(
    current: Bars,
    base: Bars,
    outcomes: &[Outcome],
    cfg: &CalibrationConfig,
) -> Calibration {
    let cheap = step_policy(
        Policy::Cheap,
        current.cheap,
        base.cheap,
        cfg.target_cheap,
        outcomes,
        cfg,
    );
    let balanced = step_policy(
        Policy::Balanced,
        current.balanced,
        base.balanced,
        cfg.target_balanced,
        outcomes,
        cfg,
    );
    let mut bars = Bars {
        cheap: cheap.bar_after,
        balanced: balanced.bar_after,
    };
    let mut policies = vec![cheap, balanced];
    if bars.cheap > bars.balanced {
        // Keep the order the names promise; the move that broke it is undone.
        bars.cheap = bars.balanced;
        policies[0].bar_after = bars.cheap;
        policies[0].reason.push_str("; held at the balanced bar");
    }
    Calibration { bars, policies }
}

fn step_policy(
    policy: Policy,
    bar: f32,
    base: f32,
    target: f32,
    outcomes: &[Outcome],
    cfg: &CalibrationConfig,
) -> PolicyCalibration {
    let mean = |strongest: bool| {
        let scores: Vec<f32> = outcomes
            .iter()
            .filter(|o| o.policy == policy && !o.by_rule && o.strongest == strongest)
            .map(|o| o.score.clamp(0.0, 1.0))
            .collect();
        let n = scores.len();
        let m = if n == 0 {
            0.0
        } else {
            scores.iter().sum::<f32>() / n as f32
        };
        (n, m)
    };
    let (n_cheap, q_cheap) = mean(false);
    let (n_strong, q_strong) = mean(true);
    let mut out = PolicyCalibration {
        policy: policy.to_string(),
        cheaper_feedback: n_cheap,
        strongest_feedback: n_strong,
        quality_kept: None,
        target,
        bar_before: bar,
        bar_after: bar,
        reason: String::new(),
    };
    if n_cheap < cfg.min_feedback || n_strong < cfg.min_feedback {
        out.reason = format!(
            "not enough feedback ({n_cheap} cheaper, {n_strong} strongest; {} each needed)",
            cfg.min_feedback
        );
        return out;
    }
    if q_strong <= 0.0 {
        out.reason = "the strongest answers scored 0: nothing to compare with".to_owned();
        return out;
    }
    let kept = q_cheap / q_strong;
    out.quality_kept = Some(kept);
    let (lo, hi) = (
        (base - cfg.max_shift).max(0.0),
        (base + cfg.max_shift).min(1.0),
    );
    let wanted = if kept < target {
        out.reason = format!("quality kept {kept:.3} < target {target:.2}: raise the bar");
        bar + cfg.step
    } else if kept > target + cfg.margin {
        out.reason = format!(
            "quality kept {kept:.3} > target {target:.2} + margin {:.2}: lower the bar",
            cfg.margin
        );
        bar - cfg.step
    } else {
        out.reason = format!("quality kept {kept:.3} is on target {target:.2}");
        bar
    };
    out.bar_after = wanted.clamp(lo, hi);
    if out.bar_after != wanted {
        out.reason.push_str(&format!(
            "; held within {lo:.2}..{hi:.2} of the trained bar"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcomes(policy: Policy, cheap: (usize, f32), strong: (usize, f32)) -> Vec<Outcome> {
        let mk = |n: usize, score: f32, strongest: bool| {
            std::iter::repeat_n(
                Outcome {
                    policy,
                    strongest,
                    by_rule: false,
                    score,
                },
                n,
            )
        };
        mk(cheap.0, cheap.1, false)
            .chain(mk(strong.0, strong.1, true))
            .collect()
    }

    const BASE: Bars = Bars {
        cheap: 0.7,
        balanced: 0.8,
    };

    #[test]
    fn poor_cheap_answers_raise_the_bar_good_ones_lower_it() {
        let cfg = CalibrationConfig::default();
        let worse = outcomes(Policy::Balanced, (40, 0.6), (40, 0.9));
        let c = recalibrate(BASE, BASE, &worse, &cfg);
        assert!((c.bars.balanced - 0.81).abs() < 1e-6, "{c:?}");
        assert_eq!(c.bars.cheap, 0.7, "cheap had no feedback: unchanged");
        assert!(c.policies[0].reason.starts_with("not enough feedback"));

        let as_good = outcomes(Policy::Balanced, (40, 0.9), (40, 0.9));
        let c = recalibrate(BASE, BASE, &as_good, &cfg);
        assert!((c.bars.balanced - 0.79).abs() < 1e-6, "{c:?}");

        let on_target = outcomes(Policy::Balanced, (40, 0.87), (40, 0.9));
        let c = recalibrate(BASE, BASE, &on_target, &cfg);
        assert_eq!(c.bars, BASE);
        assert!(!c.changed(BASE));
    }

    #[test]
    fn the_bar_stays_within_its_bounds_and_order() {
        let cfg = CalibrationConfig::default();
        let worse = outcomes(Policy::Balanced, (40, 0.1), (40, 0.9));
        let mut bars = BASE;
        for _ in 0..50 {
            bars = recalibrate(bars, BASE, &worse, &cfg).bars;
        }
        assert!(
            (bars.balanced - 0.9).abs() < 1e-5,
            "base + max_shift: {bars:?}"
        );

        // Cheap answers as good as the best keep pulling `cheap` down, to its floor only.
        let good = outcomes(Policy::Cheap, (40, 1.0), (40, 1.0));
        let mut bars = BASE;
        for _ in 0..50 {
            bars = recalibrate(bars, BASE, &good, &cfg).bars;
        }
        assert!((bars.cheap - 0.6).abs() < 1e-5, "{bars:?}");

        // `cheap` never rises above `balanced`.
        let close = Bars {
            cheap: 0.8,
            balanced: 0.8,
        };
        let worse_cheap = outcomes(Policy::Cheap, (40, 0.1), (40, 0.9));
        let c = recalibrate(close, close, &worse_cheap, &cfg);
        assert!(c.bars.cheap <= c.bars.balanced, "{c:?}");
    }

    #[test]
    fn rules_and_best_are_not_the_bars_doing() {
        let cfg = CalibrationConfig {
            min_feedback: 1,
            ..CalibrationConfig::default()
        };
        let mut o = outcomes(Policy::Best, (10, 0.0), (10, 1.0));
        o.extend(outcomes(Policy::Balanced, (0, 0.0), (5, 1.0)));
        o.push(Outcome {
            policy: Policy::Balanced,
            strongest: false,
            by_rule: true,
            score: 0.0,
        });
        let c = recalibrate(BASE, BASE, &o, &cfg);
        assert_eq!(c.bars, BASE, "{c:?}");
    }
}
