//! One SLO's summary, for `switchyard slo status --json` and the dashboard.

use serde::{Deserialize, Serialize};

use crate::alerts::{AlertEngine, AlertState, Severity};
use crate::budget::{burn_rate, Budget};
use crate::history::History;
use crate::series::Series;
use crate::sketch::Sketch;
use crate::spec::{Objective, Scope, SloSpec};

/// Where an SLO stands at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloStatus {
    pub name: String,
    pub scope: Scope,
    pub objective: Objective,
    pub target: f64,
    pub window_secs: i64,
    pub at_secs: i64,
    /// Good share over the window; `None` without traffic.
    pub sli: Option<f64>,
    /// Counts, allowed bad and remaining share of the budget over the window.
    pub budget: Budget,
    /// Burn rates of each rule's windows at `at_secs`, and the rule's alert state.
    pub rules: Vec<RuleReport>,
    /// Latency percentiles, when the caller keeps a sketch for this SLO.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentiles: Option<Percentiles>,
    /// The recent past for charts, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<History>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleReport {
    pub rule: String,
    pub severity: Severity,
    pub threshold: f64,
    pub long_secs: i64,
    pub long_burn: f64,
    pub short_secs: i64,
    pub short_burn: f64,
    pub state: AlertState,
    /// When the state began; `None` before the first evaluation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_secs: Option<i64>,
}

/// Percentiles of a sketch, in its unit (milliseconds in Switchyard).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    /// `None` for an empty sketch.
    pub fn of(sketch: &Sketch) -> Option<Self> {
        Some(Percentiles {
            count: sketch.count(),
            p50: sketch.quantile(0.5)?,
            p90: sketch.quantile(0.9)?,
            p95: sketch.quantile(0.95)?,
            p99: sketch.quantile(0.99)?,
            max: sketch.max()?,
        })
    }
}

/// The status of `spec` at `now`: counts over its window from `series`, fresh burn rates for
/// every rule of `engine`, and the states its last evaluation left.
pub fn status(now: i64, spec: &SloSpec, series: &Series, engine: &AlertEngine) -> SloStatus {
    let budget = Budget::new(spec.target, series.window_counts(now, spec.window_secs));
    let rules = engine
        .rules()
        .iter()
        .map(|rule| {
            let st = engine.status(&spec.name, &rule.name);
            RuleReport {
                rule: rule.name.clone(),
                severity: rule.severity,
                threshold: rule.burn_rate,
                long_secs: rule.long_secs,
                long_burn: burn_rate(spec.target, series.window_counts(now, rule.long_secs)),
                short_secs: rule.short_secs,
                short_burn: burn_rate(spec.target, series.window_counts(now, rule.short_secs)),
                state: st.map_or(AlertState::Inactive, |s| s.state),
                since_secs: st.map(|s| s.since_secs),
            }
        })
        .collect();
    SloStatus {
        name: spec.name.clone(),
        scope: spec.scope.clone(),
        objective: spec.objective,
        target: spec.target,
        window_secs: spec.window_secs,
        at_secs: now,
        sli: budget.sli(),
        budget,
        rules,
        percentiles: None,
        history: None,
    }
}

impl SloStatus {
    pub fn with_percentiles(mut self, sketch: &Sketch) -> Self {
        self.percentiles = Percentiles::of(sketch);
        self
    }

    /// The most severe state among the rules: Firing over Pending over the rest.
    pub fn worst_state(&self) -> AlertState {
        let rank = |s: AlertState| match s {
            AlertState::Firing => 3,
            AlertState::Pending => 2,
            AlertState::Resolved => 1,
            AlertState::Inactive => 0,
        };
        self.rules
            .iter()
            .map(|r| r.state)
            .max_by_key(|&s| rank(s))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_traffic_status_has_the_whole_budget() {
        let spec = SloSpec::new("a", Objective::Availability, 0.999);
        let st = status(
            1_000,
            &spec,
            &Series::for_spec(&spec),
            &AlertEngine::default(),
        );
        assert_eq!(st.sli, None);
        assert_eq!(st.budget.remaining, 1.0);
        assert_eq!(st.rules.len(), 3);
        assert!(st
            .rules
            .iter()
            .all(|r| r.long_burn == 0.0 && r.short_burn == 0.0));
        assert_eq!(st.worst_state(), AlertState::Inactive);
        assert_eq!(st.rules[0].since_secs, None);
    }

    #[test]
    fn status_serialises_with_budget_burns_and_states() {
        let spec = SloSpec::new("a", Objective::Latency { threshold_ms: 2000 }, 0.99);
        let mut series = Series::for_spec(&spec);
        let mut engine = AlertEngine::default();
        series.record_many(0, 90, 100);
        engine.evaluate(0, &spec, &series);
        let mut sketch = Sketch::new();
        (1..=100).for_each(|v| sketch.record(f64::from(v) * 30.0));
        let st = status(0, &spec, &series, &engine).with_percentiles(&sketch);
        assert_eq!(st.sli, Some(0.9));
        assert!(
            (st.budget.remaining + 9.0).abs() < 1e-9,
            "10 bad of 1 allowed"
        );
        assert!((st.rules[0].long_burn - 10.0).abs() < 1e-9);
        assert_eq!(st.rules[0].state, AlertState::Inactive, "10 < 14.4");
        assert_eq!(st.rules[1].state, AlertState::Pending, "10 > 6");
        assert_eq!(st.worst_state(), AlertState::Pending);
        let p = st.percentiles.unwrap();
        assert!((p.p50 - 1500.0).abs() <= 15.0);
        let json = serde_json::to_value(&st).unwrap();
        assert_eq!(json["rules"][1]["state"], "pending");
        assert_eq!(json["objective"]["kind"], "latency");
        let back: SloStatus = serde_json::from_value(json).unwrap();
        assert_eq!(back, st);
    }
}
