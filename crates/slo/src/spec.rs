//! What an SLO promises: which traffic (scope), what counts as good (objective), how often
//! (target) and over how long (window). The target and window give the error budget.

use serde::{Deserialize, Serialize};

/// 30 days, the default SLO window.
pub const DEFAULT_WINDOW_SECS: i64 = 30 * 24 * 3600;

/// One service level objective, declared per route or model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloSpec {
    /// Unique among the SLOs; used as the `slo` label in metrics and rules.
    pub name: String,
    #[serde(default)]
    pub scope: Scope,
    pub objective: Objective,
    /// The share of eligible requests that must be good, in (0, 1), e.g. 0.995.
    pub target: f64,
    #[serde(default = "default_window")]
    pub window_secs: i64,
}

fn default_window() -> i64 {
    DEFAULT_WINDOW_SECS
}

/// Which requests an SLO counts. Fields left `None` match anything, so the default scope is
/// all traffic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// A route alias (`auto`), as the client named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// The model that answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

impl Scope {
    pub fn matches(&self, route: Option<&str>, model: &str) -> bool {
        let route_ok = match &self.route {
            Some(want) => route == Some(want.as_str()),
            None => true,
        };
        let model_ok = match &self.model {
            Some(want) => want == model,
            None => true,
        };
        route_ok && model_ok
    }
}

/// What "good" means for an SLO. [`crate::series::Sli::judge`] is the one place that applies it
/// to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", deny_unknown_fields)]
pub enum Objective {
    /// The share of requests without a server-side or provider error.
    Availability,
    /// The share of successful requests answered within `threshold_ms`.
    Latency { threshold_ms: u64 },
    /// The share of successful streamed requests whose first token came within `threshold_ms`.
    Ttft { threshold_ms: u64 },
    /// The share of answered requests that passed output guards and got no negative feedback.
    Quality,
}

impl Objective {
    pub fn kind(&self) -> &'static str {
        match self {
            Objective::Availability => "availability",
            Objective::Latency { .. } => "latency",
            Objective::Ttft { .. } => "ttft",
            Objective::Quality => "quality",
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    #[error("SLO name is empty")]
    EmptyName,
    #[error("SLO `{slo}`: target must be in (0, 1), got {target}")]
    Target { slo: String, target: f64 },
    #[error("SLO `{slo}`: the latency threshold must be above 0 ms")]
    Threshold { slo: String },
    #[error("SLO `{slo}`: window must be at least one minute, got {window_secs} s")]
    Window { slo: String, window_secs: i64 },
    #[error("SLO `{slo}` is declared twice")]
    Duplicate { slo: String },
}

/// Every error found in a set of SLOs, not only the first.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct SpecErrors(pub Vec<SpecError>);

impl SloSpec {
    /// An SLO over all traffic with the default 30-day window.
    pub fn new(name: impl Into<String>, objective: Objective, target: f64) -> Self {
        SloSpec {
            name: name.into(),
            scope: Scope::default(),
            objective,
            target,
            window_secs: DEFAULT_WINDOW_SECS,
        }
    }

    pub fn with_scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    pub fn with_window(mut self, window_secs: i64) -> Self {
        self.window_secs = window_secs;
        self
    }

    /// The error budget as a share of requests: `1 - target`.
    pub fn budget_ratio(&self) -> f64 {
        1.0 - self.target
    }

    fn errors(&self, out: &mut Vec<SpecError>) {
        if self.name.trim().is_empty() {
            out.push(SpecError::EmptyName);
        }
        let slo = || self.name.clone();
        // `!(x > 0)` also rejects NaN.
        if !(self.target > 0.0 && self.target < 1.0) {
            out.push(SpecError::Target {
                slo: slo(),
                target: self.target,
            });
        }
        if let Objective::Latency { threshold_ms: 0 } | Objective::Ttft { threshold_ms: 0 } =
            self.objective
        {
            out.push(SpecError::Threshold { slo: slo() });
        }
        if self.window_secs < 60 {
            out.push(SpecError::Window {
                slo: slo(),
                window_secs: self.window_secs,
            });
        }
    }

    pub fn validate(&self) -> Result<(), SpecErrors> {
        validate_all(std::slice::from_ref(self))
    }
}

/// Validates a set of SLOs, reporting every error (including duplicate names).
pub fn validate_all(specs: &[SloSpec]) -> Result<(), SpecErrors> {
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for spec in specs {
        spec.errors(&mut out);
        if !seen.insert(spec.name.as_str()) {
            out.push(SpecError::Duplicate {
                slo: spec.name.clone(),
            });
        }
    }
    if out.is_empty() {
        Ok(())
    } else {
        Err(SpecErrors(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_spec_passes() {
        let s = SloSpec::new(
            "chat-latency",
            Objective::Latency { threshold_ms: 2000 },
            0.95,
        );
        assert_eq!(s.validate(), Ok(()));
        assert_eq!(s.window_secs, 30 * 86_400);
        assert!((s.budget_ratio() - 0.05).abs() < 1e-12);
    }

    #[test]
    fn every_error_is_reported() {
        let bad = SloSpec::new("", Objective::Ttft { threshold_ms: 0 }, 1.0).with_window(0);
        let errs = bad.validate().unwrap_err().0;
        assert_eq!(errs.len(), 4, "{errs:?}");
        assert!(matches!(errs[0], SpecError::EmptyName));
        assert!(matches!(errs[1], SpecError::Target { .. }));
        assert!(matches!(errs[2], SpecError::Threshold { .. }));
        assert!(matches!(errs[3], SpecError::Window { .. }));
    }

    #[test]
    fn target_bounds_are_open_and_nan_is_rejected() {
        for t in [0.0, 1.0, -0.5, 1.5, f64::NAN] {
            let s = SloSpec::new("a", Objective::Availability, t);
            assert!(s.validate().is_err(), "target {t}");
        }
        assert!(SloSpec::new("a", Objective::Quality, 0.999_999)
            .validate()
            .is_ok());
    }

    #[test]
    fn duplicates_are_errors() {
        let a = SloSpec::new("a", Objective::Availability, 0.99);
        let errs = validate_all(&[a.clone(), a]).unwrap_err();
        assert_eq!(errs.0, vec![SpecError::Duplicate { slo: "a".into() }]);
        assert_eq!(errs.to_string(), "SLO `a` is declared twice");
    }

    #[test]
    fn scope_matching() {
        let all = Scope::default();
        assert!(all.matches(None, "m"));
        let route = Scope {
            route: Some("auto".into()),
            model: None,
        };
        assert!(route.matches(Some("auto"), "small"));
        assert!(!route.matches(None, "small"));
        assert!(!route.matches(Some("other"), "small"));
        let both = Scope {
            route: Some("auto".into()),
            model: Some("small".into()),
        };
        assert!(both.matches(Some("auto"), "small"));
        assert!(!both.matches(Some("auto"), "large"));
    }

    #[test]
    fn serde_defaults_and_shape() {
        let s: SloSpec = serde_json::from_str(
            r#"{"name":"l","scope":{"model":"m"},"objective":{"kind":"latency","threshold_ms":2000},"target":0.95}"#,
        )
        .unwrap();
        assert_eq!(s.window_secs, DEFAULT_WINDOW_SECS);
        assert_eq!(s.objective, Objective::Latency { threshold_ms: 2000 });
        assert_eq!(s.scope.model.as_deref(), Some("m"));
        let back: SloSpec = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        assert!(serde_json::from_str::<SloSpec>(
            r#"{"name":"x","objective":{"kind":"availability"},"target":0.9,"extra":1}"#
        )
        .is_err());
    }
}
