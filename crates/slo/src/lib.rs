//! Service level objectives: what each SLO promises (`spec`), which requests are good and how
//! many there were in each minute (`series`), mergeable latency percentiles (`sketch`), the
//! book of every SLO's history per config version (`ledger`), error budgets and burn rates
//! (`budget`) and their recent history for charts (`history`), multi-window multi-burn-rate alerts with their states and history (`alerts`),
//! equivalent Prometheus rules (`rules`) and a per-SLO summary for the CLI and dashboard
//! (`status`).
//!
//! Everything here is pure: time comes in as `at_secs`/`now` (unix seconds), so every alert is
//! tested against an exact clock. This crate must not read clocks, spawn tasks, lock, do I/O
//! or send anything: the gateway feeds it request outcomes, persists its serde state, runs
//! evaluations on its timer and sends the webhooks for the events it returns.

pub mod alerts;
pub mod budget;
pub mod history;
pub mod ledger;
pub mod rules;
pub mod series;
pub mod sketch;
pub mod spec;
pub mod status;

pub use alerts::{
    default_rules, AlertEngine, AlertEvent, AlertState, BurnRule, RuleError, RuleStatus, Severity,
};
pub use budget::{budget_spent, burn_rate, Budget};
pub use history::{history, History, HistoryPoint};
pub use ledger::Ledger;
pub use rules::{generate as generate_rules, Generated, MetricNames, QualityMetrics, Skipped};
pub use series::{Counts, Series, SeriesConfig, Sli};
pub use sketch::{Sketch, SketchError, SketchSeries};
pub use spec::{validate_all, Objective, Scope, SloSpec, SpecError, SpecErrors};
pub use status::{status, Percentiles, RuleReport, SloStatus};
