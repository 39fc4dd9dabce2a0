//! What a guard decided about one request.

use serde::{Deserialize, Serialize};

/// A verdict's outcome. Stored as its lowercase name in the record's `guards` JSON and shown
/// in `x-switchyard-guard`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Checked; nothing found.
    Pass,
    /// Values were masked in the request.
    Masked,
    /// Found, but the guard's action only flags.
    Flagged,
    /// An answer was mended in place (a disclaimer appended).
    Fixed,
    /// A whole answer failed an output check.
    Failed,
    /// A streamed answer was stopped by an output check.
    Stopped,
    /// An answer that failed was replaced by the safe answer.
    Replaced,
    /// The request was refused (a 400).
    Blocked,
    /// The request was answered with the guard's own refusal (the topic filter's).
    Refused,
    /// The guard itself failed (fails open or closed by its config).
    Error,
}

impl Outcome {
    pub const ALL: [Outcome; 10] = [
        Outcome::Pass,
        Outcome::Masked,
        Outcome::Flagged,
        Outcome::Fixed,
        Outcome::Failed,
        Outcome::Stopped,
        Outcome::Replaced,
        Outcome::Blocked,
        Outcome::Refused,
        Outcome::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Masked => "masked",
            Outcome::Flagged => "flagged",
            Outcome::Fixed => "fixed",
            Outcome::Failed => "failed",
            Outcome::Stopped => "stopped",
            Outcome::Replaced => "replaced",
            Outcome::Blocked => "blocked",
            Outcome::Refused => "refused",
            Outcome::Error => "error",
        }
    }

    /// The outcome named `name`, as stored; `None` for a name no guard writes.
    pub fn parse(name: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == name)
    }

    /// The answer the client got is not the one it should have: a failed, stopped or
    /// replaced answer. Rollouts and SLOs count it against the answer's quality.
    pub fn fails_answer(self) -> bool {
        matches!(self, Outcome::Failed | Outcome::Stopped | Outcome::Replaced)
    }

    /// The request was refused: a 400, or the topic filter's polite answer.
    pub fn refuses(self) -> bool {
        matches!(self, Outcome::Blocked | Outcome::Refused)
    }

    /// The request is not a successful interaction (KPIs): its answer failed, or it was
    /// refused. A flag, a mask, a fix or a guard's own error does not spoil it.
    pub fn spoils(self) -> bool {
        self.fails_answer() || self.refuses()
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One guard's verdict on one request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GuardVerdict {
    pub guard: &'static str,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
    /// What it found: kinds and counts, or the rules that fired. Never the values.
    pub detail: String,
    pub ms: f64,
    /// Refuses the request.
    #[serde(skip)]
    pub blocks: bool,
}

impl GuardVerdict {
    /// A verdict found without timing of its own (`ms` 0) that refuses nothing.
    pub fn new(guard: &'static str, outcome: Outcome, score: Option<f32>, detail: &str) -> Self {
        GuardVerdict {
            guard,
            outcome,
            score,
            detail: detail.to_owned(),
            ms: 0.0,
            blocks: false,
        }
    }

    /// `name=outcome(detail)` for the header.
    pub fn summary(&self) -> String {
        match (&self.score, self.detail.is_empty()) {
            (Some(s), true) => format!("{}={}({s:.2})", self.guard, self.outcome),
            (Some(s), false) => format!("{}={}({s:.2};{})", self.guard, self.outcome, self.detail),
            (None, true) => format!("{}={}", self.guard, self.outcome),
            (None, false) => format!("{}={}({})", self.guard, self.outcome, self.detail),
        }
    }
}

/// The header value summarising every verdict.
pub fn header_value(verdicts: &[GuardVerdict]) -> String {
    verdicts
        .iter()
        .map(GuardVerdict::summary)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The outcomes of a stored record's `guards` (the JSON the record holds); names no guard
/// writes, and text that is not such JSON, hold none.
pub fn stored_outcomes(guards: Option<&str>) -> Vec<Outcome> {
    guards
        .and_then(|g| serde_json::from_str::<Vec<serde_json::Value>>(g).ok())
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v["outcome"].as_str().and_then(Outcome::parse))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_is_stored_as_its_name_and_read_back() {
        for o in Outcome::ALL {
            let json = serde_json::to_string(&o).unwrap();
            assert_eq!(json, format!("\"{}\"", o.as_str()));
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
            assert_eq!(serde_json::from_str::<Outcome>(&json).unwrap(), o);
        }
        assert_eq!(Outcome::parse("maybe"), None);
    }

    #[test]
    fn which_outcomes_fail_refuse_and_spoil() {
        let table = [
            // (outcome, fails the answer, refuses, spoils)
            ("pass", false, false, false),
            ("masked", false, false, false),
            ("flagged", false, false, false),
            ("fixed", false, false, false),
            ("error", false, false, false),
            ("failed", true, false, true),
            ("stopped", true, false, true),
            ("replaced", true, false, true),
            ("blocked", false, true, true),
            ("refused", false, true, true),
        ];
        assert_eq!(table.len(), Outcome::ALL.len());
        for (name, fails, refuses, spoils) in table {
            let o = Outcome::parse(name).unwrap();
            assert_eq!(
                (o.fails_answer(), o.refuses(), o.spoils()),
                (fails, refuses, spoils),
                "{name}"
            );
        }
    }

    #[test]
    fn a_verdict_is_recorded_and_summarised_as_before() {
        let v = GuardVerdict {
            guard: "pii",
            outcome: Outcome::Masked,
            score: None,
            detail: "EMAIL:1".to_owned(),
            ms: 0.5,
            blocks: true,
        };
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"guard":"pii","outcome":"masked","detail":"EMAIL:1","ms":0.5}"#
        );
        let scored = GuardVerdict::new("toxicity", Outcome::Failed, Some(0.9), "");
        assert_eq!(
            header_value(&[v, scored]),
            "pii=masked(EMAIL:1); toxicity=failed(0.90)"
        );
    }

    #[test]
    fn stored_outcomes_skip_what_no_guard_writes() {
        let json = r#"[{"guard":"pii","outcome":"masked"},{"outcome":"odd"},{"guard":"x"}]"#;
        assert_eq!(stored_outcomes(Some(json)), vec![Outcome::Masked]);
        assert!(stored_outcomes(Some("not json")).is_empty());
        assert!(stored_outcomes(None).is_empty());
    }
}
