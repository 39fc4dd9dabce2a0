//! Multi-window, multi-burn-rate alerts (Google SRE workbook, "Alerting on SLOs", approach 6).
//!
//! A rule fires when the budget burns faster than `burn_rate` over both a long window (so a
//! blip does not page) and a short one (so the alert stops soon after the burning stops).
//! The defaults are the workbook's, for a 30-day SLO:
//!
//! | rule | severity | long | short | burn rate | spends | for | resolve after |
//! |---|---|---|---|---|---|---|---|
//! | `page-1h` | page | 1 h | 5 min | 14.4 | 2% of the budget in 1 h | 2 min | 5 min |
//! | `page-6h` | page | 6 h | 30 min | 6 | 5% in 6 h | 2 min | 5 min |
//! | `ticket-3d` | ticket | 3 d | 6 h | 1 | 10% in 3 d | 1 h | 1 h |
//!
//! The short window already makes a `for` duration unneeded for correctness; `for` is kept
//! to give Pending a meaning: a page must hold over two minutes of evaluations (one bad
//! minute of a tiny route does not wake anyone) and a ticket over an hour. The resolve delay
//! is hysteresis: a firing alert resolves only after its condition has stayed false that
//! long, so a burn hovering at the threshold does not flap.
//!
//! Sending webhooks is the gateway's job; the engine returns state changes as [`AlertEvent`]s
//! and keeps a bounded history of them.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::budget::burn_rate;
use crate::series::Series;
use crate::spec::SloSpec;

const MINUTE: i64 = 60;
const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;

/// How many state changes the engine remembers.
pub const DEFAULT_HISTORY: usize = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Page,
    Ticket,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Page => "page",
            Severity::Ticket => "ticket",
        }
    }
}

/// One multi-window burn-rate rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurnRule {
    pub name: String,
    pub severity: Severity,
    pub long_secs: i64,
    pub short_secs: i64,
    /// The condition holds when both windows burn faster than this.
    pub burn_rate: f64,
    /// How long the condition must hold before Pending becomes Firing (0: at once).
    pub for_secs: i64,
    /// How long the condition must stay false before Firing becomes Resolved (0: at once).
    pub resolve_after_secs: i64,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuleError {
    #[error("alert rule `{0}`: windows must satisfy 0 < short < long")]
    Windows(String),
    #[error("alert rule `{0}`: burn rate must be above 0")]
    BurnRate(String),
    #[error("alert rule `{0}`: for and resolve delays must not be negative")]
    Delay(String),
    #[error("alert rule `{0}` is declared twice")]
    Duplicate(String),
}

impl BurnRule {
    pub fn validate(&self) -> Result<(), RuleError> {
        if !(0 < self.short_secs && self.short_secs < self.long_secs) {
            return Err(RuleError::Windows(self.name.clone()));
        }
        if self.burn_rate.is_nan() || self.burn_rate <= 0.0 {
            return Err(RuleError::BurnRate(self.name.clone()));
        }
        if self.for_secs < 0 || self.resolve_after_secs < 0 {
            return Err(RuleError::Delay(self.name.clone()));
        }
        Ok(())
    }

    /// The share of an SLO window's budget this rule's long window spends at its threshold.
    pub fn budget_share(&self, slo_window_secs: i64) -> f64 {
        crate::budget::budget_spent(self.burn_rate, self.long_secs, slo_window_secs)
    }
}

/// The SRE workbook's three rules (see the module table).
pub fn default_rules() -> Vec<BurnRule> {
    vec![
        BurnRule {
            name: "page-1h".into(),
            severity: Severity::Page,
            long_secs: HOUR,
            short_secs: 5 * MINUTE,
            burn_rate: 14.4,
            for_secs: 2 * MINUTE,
            resolve_after_secs: 5 * MINUTE,
        },
        BurnRule {
            name: "page-6h".into(),
            severity: Severity::Page,
            long_secs: 6 * HOUR,
            short_secs: 30 * MINUTE,
            burn_rate: 6.0,
            for_secs: 2 * MINUTE,
            resolve_after_secs: 5 * MINUTE,
        },
        BurnRule {
            name: "ticket-3d".into(),
            severity: Severity::Ticket,
            long_secs: 3 * DAY,
            short_secs: 6 * HOUR,
            burn_rate: 1.0,
            for_secs: HOUR,
            resolve_after_secs: HOUR,
        },
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// The condition is false (and the rule has not fired since it was created).
    #[default]
    Inactive,
    /// The condition is true, for less than `for_secs` so far.
    Pending,
    /// The condition held for `for_secs`; it stays firing until the condition has been false
    /// for `resolve_after_secs`.
    Firing,
    /// Fired and recovered; behaves as Inactive, and tells since when the rule is quiet.
    Resolved,
}

/// One state change of one rule of one SLO.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    pub at_secs: i64,
    pub slo: String,
    pub rule: String,
    pub severity: Severity,
    pub from: AlertState,
    pub to: AlertState,
    pub threshold: f64,
    pub long_secs: i64,
    pub long_burn: f64,
    pub short_secs: i64,
    pub short_burn: f64,
}

/// Where one rule of one SLO stands.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct RuleStatus {
    pub state: AlertState,
    /// When the current state began.
    pub since_secs: i64,
    /// While firing: when the condition turned false (the resolve delay runs from here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clear_since_secs: Option<i64>,
    /// The burn rates at the last evaluation.
    pub long_burn: f64,
    pub short_burn: f64,
    pub evaluated_at_secs: i64,
}

/// Alert states for every (SLO, rule) pair, and the history of their changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEngine {
    rules: Vec<BurnRule>,
    /// SLO name → rule name → status.
    states: BTreeMap<String, BTreeMap<String, RuleStatus>>,
    history: VecDeque<AlertEvent>,
    history_limit: usize,
}

impl Default for AlertEngine {
    fn default() -> Self {
        AlertEngine {
            rules: default_rules(),
            states: BTreeMap::new(),
            history: VecDeque::new(),
            history_limit: DEFAULT_HISTORY,
        }
    }
}

impl AlertEngine {
    pub fn new(rules: Vec<BurnRule>) -> Result<Self, RuleError> {
        let mut engine = AlertEngine::default();
        engine.set_rules(rules)?;
        Ok(engine)
    }

    pub fn with_history_limit(mut self, limit: usize) -> Self {
        self.history_limit = limit;
        self.trim_history();
        self
    }

    pub fn rules(&self) -> &[BurnRule] {
        &self.rules
    }

    /// Replaces the rules (a config reload); states of rules that are gone are dropped, the
    /// others kept.
    pub fn set_rules(&mut self, rules: Vec<BurnRule>) -> Result<(), RuleError> {
        let mut names = std::collections::BTreeSet::new();
        for r in &rules {
            r.validate()?;
            if !names.insert(r.name.as_str()) {
                return Err(RuleError::Duplicate(r.name.clone()));
            }
        }
        for per_slo in self.states.values_mut() {
            per_slo.retain(|rule, _| names.contains(rule.as_str()));
        }
        self.rules = rules;
        Ok(())
    }

    /// Drops the states of SLOs not in `slos` (removed from the config).
    pub fn retain_slos(&mut self, slos: &[&str]) {
        self.states.retain(|name, _| slos.contains(&name.as_str()));
    }

    pub fn status(&self, slo: &str, rule: &str) -> Option<&RuleStatus> {
        self.states.get(slo)?.get(rule)
    }

    /// State changes, oldest first.
    pub fn history(&self) -> impl DoubleEndedIterator<Item = &AlertEvent> {
        self.history.iter()
    }

    /// Evaluates every rule for one SLO at `now` over its series; returns the state changes
    /// (also appended to the history).
    ///
    /// 1. For each rule, the burn rate over the long and the short window ending at `now`;
    ///    the condition is that both exceed the rule's burn rate (strictly, as the workbook's
    ///    `>`: burning at exactly the budget's pace is what the budget is for).
    /// 2. Inactive or Resolved, condition true: Pending from now; with `for_secs` 0, Firing
    ///    at once (one event, straight to Firing).
    /// 3. Pending, condition true: Firing once `now - pending since >= for_secs`.
    ///    Pending, condition false: back to Inactive (the episode never fired; still an
    ///    event, so the history shows near-misses).
    /// 4. Firing, condition true: stays, and any running resolve delay is cancelled.
    ///    Firing, condition false: the resolve delay starts (first false evaluation); once
    ///    `now - clear since >= resolve_after_secs`, Resolved.
    /// 5. Resolved behaves as Inactive: a new burn goes to Pending, then Firing.
    ///
    /// Evaluating more often gives finer timing; the engine assumes nothing about the period.
    pub fn evaluate(&mut self, now: i64, spec: &SloSpec, series: &Series) -> Vec<AlertEvent> {
        let mut events = Vec::new();
        let per_slo = self.states.entry(spec.name.clone()).or_default();
        for rule in &self.rules {
            let long = burn_rate(spec.target, series.window_counts(now, rule.long_secs));
            let short = burn_rate(spec.target, series.window_counts(now, rule.short_secs));
            let condition = long > rule.burn_rate && short > rule.burn_rate;
            let st = per_slo.entry(rule.name.clone()).or_insert(RuleStatus {
                since_secs: now,
                ..RuleStatus::default()
            });
            st.long_burn = long;
            st.short_burn = short;
            st.evaluated_at_secs = now;
            let next = step(st, rule, now, condition);
            if let Some(to) = next {
                events.push(AlertEvent {
                    at_secs: now,
                    slo: spec.name.clone(),
                    rule: rule.name.clone(),
                    severity: rule.severity,
                    from: st.state,
                    to,
                    threshold: rule.burn_rate,
                    long_secs: rule.long_secs,
                    long_burn: long,
                    short_secs: rule.short_secs,
                    short_burn: short,
                });
                st.state = to;
                st.since_secs = now;
                st.clear_since_secs = None;
            }
        }
        self.history.extend(events.iter().cloned());
        self.trim_history();
        events
    }

    fn trim_history(&mut self) {
        while self.history.len() > self.history_limit {
            self.history.pop_front();
        }
    }
}

/// The transition of points 2-5; `None` when the state stays (the resolve delay's start is
/// noted in `st`).
fn step(st: &mut RuleStatus, rule: &BurnRule, now: i64, condition: bool) -> Option<AlertState> {
    use AlertState::*;
    match (st.state, condition) {
        (Inactive | Resolved, true) if rule.for_secs == 0 => Some(Firing),
        (Inactive | Resolved, true) => Some(Pending),
        (Inactive | Resolved, false) => None,
        (Pending, true) => (now - st.since_secs >= rule.for_secs).then_some(Firing),
        (Pending, false) => Some(Inactive),
        (Firing, true) => {
            st.clear_since_secs = None;
            None
        }
        (Firing, false) => {
            let clear_since = *st.clear_since_secs.get_or_insert(now);
            (now - clear_since >= rule.resolve_after_secs).then_some(Resolved)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Objective;

    fn rule(for_secs: i64, resolve_after_secs: i64) -> BurnRule {
        BurnRule {
            name: "r".into(),
            severity: Severity::Page,
            long_secs: 10 * MINUTE,
            short_secs: 2 * MINUTE,
            burn_rate: 10.0,
            for_secs,
            resolve_after_secs,
        }
    }

    fn spec() -> SloSpec {
        SloSpec::new("s", Objective::Availability, 0.99)
    }

    #[test]
    fn default_rules_are_valid_and_spend_the_workbook_shares() {
        let rules = default_rules();
        let month = 30 * DAY;
        let shares: Vec<f64> = rules.iter().map(|r| r.budget_share(month)).collect();
        for (got, want) in shares.iter().zip([0.02, 0.05, 0.10]) {
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
        assert!(AlertEngine::new(rules).is_ok());
    }

    #[test]
    fn bad_rules_are_refused() {
        let mut r = rule(0, 0);
        r.short_secs = r.long_secs;
        assert!(matches!(r.validate(), Err(RuleError::Windows(_))));
        let mut r = rule(0, 0);
        r.burn_rate = f64::NAN;
        assert!(matches!(r.validate(), Err(RuleError::BurnRate(_))));
        let r = rule(-1, 0);
        assert!(matches!(r.validate(), Err(RuleError::Delay(_))));
        assert!(matches!(
            AlertEngine::new(vec![rule(0, 0), rule(0, 0)]),
            Err(RuleError::Duplicate(_))
        ));
    }

    /// Drives one rule through every transition with a hand-made condition.
    #[test]
    fn transitions() {
        use AlertState::*;
        let r = rule(120, 180);
        let mut st = RuleStatus::default();
        let mut run = |now: i64, cond: bool| {
            let next = step(&mut st, &r, now, cond);
            if let Some(to) = next {
                st.state = to;
                st.since_secs = now;
                st.clear_since_secs = None;
            }
            next
        };
        assert_eq!(run(0, false), None);
        assert_eq!(run(60, true), Some(Pending));
        assert_eq!(run(120, true), None, "60 s of 120");
        assert_eq!(run(180, true), Some(Firing));
        assert_eq!(run(240, false), None, "resolve delay starts");
        assert_eq!(run(300, true), None, "delay cancelled");
        assert_eq!(run(360, false), None);
        assert_eq!(run(480, false), None, "120 s of 180");
        assert_eq!(run(540, false), Some(Resolved));
        assert_eq!(run(600, false), None);
        assert_eq!(run(660, true), Some(Pending));
        assert_eq!(run(720, false), Some(Inactive), "a near miss");
        let instant = rule(0, 0);
        let mut st = RuleStatus::default();
        assert_eq!(step(&mut st, &instant, 0, true), Some(Firing));
        st.state = Firing;
        assert_eq!(step(&mut st, &instant, 60, false), Some(Resolved));
    }

    #[test]
    fn engine_reports_changes_with_burn_rates_and_keeps_bounded_history() {
        let mut engine = AlertEngine::new(vec![rule(0, 0)])
            .unwrap()
            .with_history_limit(2);
        let mut series = Series::default();
        let spec = spec();
        for m in 0..10 {
            series.record_many(m * MINUTE, 0, 10);
        }
        let ev = engine.evaluate(9 * MINUTE, &spec, &series);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].to, AlertState::Firing);
        assert!((ev[0].long_burn - 100.0).abs() < 1e-9);
        assert!((ev[0].short_burn - 100.0).abs() < 1e-9);
        // The short window (2 min) clears after two clean minutes.
        for m in 10..12 {
            series.record_many(m * MINUTE, 10, 10);
        }
        let ev = engine.evaluate(11 * MINUTE, &spec, &series);
        assert_eq!(ev[0].to, AlertState::Resolved);
        assert_eq!(ev[0].short_burn, 0.0);
        let st = engine.status("s", "r").unwrap();
        assert_eq!(st.state, AlertState::Resolved);
        assert_eq!(st.since_secs, 11 * MINUTE);
        // History: bounded to the last two.
        series.record_many(12 * MINUTE, 0, 100);
        series.record_many(13 * MINUTE, 0, 100);
        engine.evaluate(13 * MINUTE, &spec, &series);
        let kinds: Vec<AlertState> = engine.history().map(|e| e.to).collect();
        assert_eq!(kinds, vec![AlertState::Resolved, AlertState::Firing]);
    }

    #[test]
    fn reload_keeps_states_of_surviving_rules_and_serde_round_trips() {
        let mut engine = AlertEngine::default();
        let mut series = Series::default();
        series.record_many(0, 0, 100);
        engine.evaluate(0, &spec(), &series);
        assert_eq!(
            engine.status("s", "page-1h").unwrap().state,
            AlertState::Pending
        );
        let json = serde_json::to_string(&engine).unwrap();
        let mut back: AlertEngine = serde_json::from_str(&json).unwrap();
        assert_eq!(back, engine);
        let only_page = default_rules().into_iter().take(1).collect();
        back.set_rules(only_page).unwrap();
        assert!(back.status("s", "page-1h").is_some());
        assert!(back.status("s", "page-6h").is_none());
        back.retain_slos(&[]);
        assert!(back.status("s", "page-1h").is_none());
    }
}
