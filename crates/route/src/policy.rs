//! The routing decision: rules first, then the classifier and a quality bar.
//!
//! 1. Rules are tried in order; the first that matches (regex on the prompt, the caller's
//!    key, or a metadata pair) names the model, and the classifier is not run at all.
//! 2. Otherwise every candidate that has a head gets a predicted probability of answering
//!    well enough.
//! 3. The policy gives a bar (`cheap` and `balanced` from the artifact, `best` above every
//!    score, or a number); the cheapest candidate whose score clears it wins.
//! 4. If none clears it, the last (most capable) candidate is the fallback.
//!
//! The result is a [`Decision`] that says all of this and renders as one header value.

use std::fmt;
use std::str::FromStr;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::estimator::Estimator;
use crate::neighbours::Evidence;

/// A model the router may choose, listed cheapest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Candidate {
    /// The gateway's model name.
    pub model: String,
    /// Quality tier (higher is better); informational, the order of the list is the cost order.
    pub tier: u32,
    /// The classifier head that scores this candidate (defaults to `model`).
    #[serde(default)]
    pub head: Option<String>,
}

impl Candidate {
    pub fn new(model: impl Into<String>, tier: u32) -> Self {
        Self {
            model: model.into(),
            tier,
            head: None,
        }
    }

    pub fn with_head(mut self, head: impl Into<String>) -> Self {
        self.head = Some(head.into());
        self
    }

    fn head_name(&self) -> &str {
        self.head.as_deref().unwrap_or(&self.model)
    }
}

/// What the caller asked for.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    Cheap,
    Balanced,
    Best,
    /// An explicit bar in `[0, 1]` for experts.
    Bar(f32),
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("unknown route policy {0:?}: expected cheap, balanced, best or a number in [0, 1]")]
pub struct BadPolicy(pub String);

impl FromStr for Policy {
    type Err = BadPolicy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cheap" => Ok(Self::Cheap),
            "balanced" => Ok(Self::Balanced),
            "best" => Ok(Self::Best),
            other => match other.parse::<f32>() {
                Ok(v) if (0.0..=1.0).contains(&v) => Ok(Self::Bar(v)),
                _ => Err(BadPolicy(s.to_owned())),
            },
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cheap => f.write_str("cheap"),
            Self::Balanced => f.write_str("balanced"),
            Self::Best => f.write_str("best"),
            Self::Bar(v) => write!(f, "{v}"),
        }
    }
}

impl Policy {
    /// Splits a model name such as `auto:cheap` into the alias and its policy
    /// (`None` when there is no suffix).
    pub fn split_model(name: &str) -> Result<(&str, Option<Policy>), BadPolicy> {
        match name.split_once(':') {
            Some((alias, p)) => Ok((alias, Some(p.parse()?))),
            None => Ok((name, None)),
        }
    }
}

/// The bars behind the named policies. Stored in the artifact, because a bar only means
/// something for the heads it was chosen with.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bars {
    pub cheap: f32,
    pub balanced: f32,
}

impl Default for Bars {
    fn default() -> Self {
        Self {
            cheap: 0.5,
            balanced: 0.7,
        }
    }
}

impl Bars {
    pub fn bar(&self, policy: Policy) -> f32 {
        match policy {
            Policy::Cheap => self.cheap,
            Policy::Balanced => self.balanced,
            // Above any probability: always the fallback, the most capable candidate.
            Policy::Best => f32::INFINITY,
            Policy::Bar(v) => v,
        }
    }
}

/// When a rule applies.
#[derive(Debug, Clone)]
pub enum RuleMatch {
    PromptRegex(Regex),
    Key(String),
    Metadata { key: String, value: String },
}

/// A rule route: evaluated before the classifier, first match wins.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub when: RuleMatch,
    pub model: String,
}

impl Rule {
    pub fn regex(name: &str, pattern: &str, model: &str) -> Result<Self, RouteError> {
        let re = Regex::new(pattern).map_err(|source| RouteError::BadRegex {
            rule: name.to_owned(),
            source,
        })?;
        Ok(Self {
            name: name.to_owned(),
            when: RuleMatch::PromptRegex(re),
            model: model.to_owned(),
        })
    }

    pub fn key(name: &str, key: &str, model: &str) -> Self {
        Self {
            name: name.to_owned(),
            when: RuleMatch::Key(key.to_owned()),
            model: model.to_owned(),
        }
    }

    pub fn metadata(name: &str, key: &str, value: &str, model: &str) -> Self {
        Self {
            name: name.to_owned(),
            when: RuleMatch::Metadata {
                key: key.to_owned(),
                value: value.to_owned(),
            },
            model: model.to_owned(),
        }
    }

    fn matches(&self, req: &RouteRequest<'_>) -> bool {
        match &self.when {
            RuleMatch::PromptRegex(re) => re.is_match(req.prompt),
            RuleMatch::Key(k) => req.key == Some(k.as_str()),
            RuleMatch::Metadata { key, value } => {
                req.metadata.iter().any(|(k, v)| k == key && v == value)
            }
        }
    }
}

/// Everything the router looks at for one request.
#[derive(Debug, Clone, Copy, Default)]
pub struct RouteRequest<'a> {
    /// The text to classify (the gateway chooses: the last user message, or the conversation).
    pub prompt: &'a str,
    /// The caller's virtual key name, for key rules.
    pub key: Option<&'a str>,
    /// Request metadata pairs, for metadata rules.
    pub metadata: &'a [(String, String)],
    /// An optional sentence embedding of `prompt`, when the artifact was trained with one.
    pub dense: Option<&'a [f32]>,
}

impl<'a> RouteRequest<'a> {
    pub fn prompt(prompt: &'a str) -> Self {
        Self {
            prompt,
            ..Self::default()
        }
    }
}

/// One candidate's score in a decision; `None` for a candidate without a head (the
/// fallback) or when a rule decided.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CandidateScore {
    pub model: String,
    pub score: Option<f32>,
}

/// Which of the router's own targets a decision chose: an index into the candidates or the
/// rules it was built with, so a caller that resolved those once (to its model handles)
/// looks the choice up without a name, and cannot miss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chosen {
    Candidate(usize),
    Rule(usize),
}

/// Why the router chose what it chose.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub policy: Policy,
    pub bar: f32,
    pub model: String,
    /// The same choice as `model`, by position.
    #[serde(skip)]
    pub chosen: Chosen,
    /// The rule that decided, if one did.
    pub rule: Option<String>,
    pub scores: Vec<CandidateScore>,
    /// What moved each head's estimate (neighbour estimators only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<Evidence>,
}

impl Decision {
    /// A compact `x-switchyard-route` value, e.g.
    /// `policy=balanced; model=mixtral; bar=0.70; rule=-; scores=mixtral:0.812,gpt-4:-`.
    /// Model and rule names come from config, not from callers, so they need no escaping
    /// beyond what config validation already enforces.
    pub fn header_value(&self) -> String {
        let bar = if self.bar.is_finite() {
            format!("{:.2}", self.bar)
        } else {
            "max".to_owned()
        };
        let scores = self
            .scores
            .iter()
            .map(|s| match s.score {
                Some(v) => format!("{}:{v:.3}", s.model),
                None => format!("{}:-", s.model),
            })
            .collect::<Vec<_>>()
            .join(",");
        format!(
            "policy={}; model={}; bar={bar}; rule={}; scores={scores}",
            self.policy,
            self.model,
            self.rule.as_deref().unwrap_or("-"),
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("a route needs at least one candidate")]
    NoCandidates,
    #[error(
        "candidate {model:?} has no classifier head {head:?}; only the last candidate may lack one"
    )]
    MissingHead { model: String, head: String },
    #[error("the router's neighbour estimate needs its static embedding model: {0}")]
    Embedder(String),
    #[error("rule {rule:?}: bad regex")]
    BadRegex {
        rule: String,
        #[source]
        source: regex::Error,
    },
}

/// A validated route: candidates, rules, classifier and bars.
#[derive(Debug, Clone)]
pub struct Router {
    candidates: Vec<Candidate>,
    /// For each candidate, the index of its head in the classifier (None: fallback only).
    head_index: Vec<Option<usize>>,
    rules: Vec<Rule>,
    estimator: Estimator,
    bars: Bars,
}

impl Router {
    /// `candidates` are cheapest first. Every candidate but the last needs a head in
    /// `estimator`, since a candidate that cannot be scored could never be chosen.
    pub fn new(
        candidates: Vec<Candidate>,
        rules: Vec<Rule>,
        estimator: Estimator,
        bars: Bars,
    ) -> Result<Self, RouteError> {
        if candidates.is_empty() {
            return Err(RouteError::NoCandidates);
        }
        let last = candidates.len() - 1;
        let mut head_index = Vec::with_capacity(candidates.len());
        for (i, c) in candidates.iter().enumerate() {
            let idx = estimator.head_position(c.head_name());
            if idx.is_none() && i != last {
                return Err(RouteError::MissingHead {
                    model: c.model.clone(),
                    head: c.head_name().to_owned(),
                });
            }
            head_index.push(idx);
        }
        Ok(Self {
            candidates,
            head_index,
            rules,
            estimator,
            bars,
        })
    }

    pub fn estimator(&self) -> &Estimator {
        &self.estimator
    }

    pub fn candidates(&self) -> &[Candidate] {
        &self.candidates
    }

    pub fn bars(&self) -> Bars {
        self.bars
    }

    /// Decide for one request. Pure and allocation-light: featurise once, one sparse dot
    /// product per head.
    pub fn decide(&self, req: &RouteRequest<'_>, policy: Policy) -> Decision {
        self.decide_with_bars(req, policy, self.bars)
    }

    /// [`Router::decide`] with bars other than the trained ones (recalibrated from feedback).
    pub fn decide_with_bars(&self, req: &RouteRequest<'_>, policy: Policy, bars: Bars) -> Decision {
        let bar = bars.bar(policy);
        if let Some((i, rule)) = self.rules.iter().enumerate().find(|(_, r)| r.matches(req)) {
            return Decision {
                policy,
                bar,
                model: rule.model.clone(),
                chosen: Chosen::Rule(i),
                rule: Some(rule.name.clone()),
                scores: Vec::new(),
                evidence: Vec::new(),
            };
        }
        let mut evidence = Vec::new();
        let scores: Vec<CandidateScore> = if policy == Policy::Best {
            // `best` never needs the classifier: skip the work, report no scores.
            self.candidates
                .iter()
                .map(|c| CandidateScore {
                    model: c.model.clone(),
                    score: None,
                })
                .collect()
        } else {
            let estimates = self.estimator.estimate(req.prompt, req.dense);
            let scores = self
                .candidates
                .iter()
                .zip(&self.head_index)
                .map(|(c, idx)| CandidateScore {
                    model: c.model.clone(),
                    score: idx.and_then(|i| estimates.probabilities.get(i).copied()),
                })
                .collect();
            evidence = estimates.evidence;
            scores
        };
        let chosen = scores
            .iter()
            .position(|s| s.score.is_some_and(|v| v >= bar))
            .unwrap_or(self.candidates.len() - 1);
        Decision {
            policy,
            bar,
            model: self.candidates[chosen].model.clone(),
            chosen: Chosen::Candidate(chosen),
            rule: None,
            scores,
            evidence,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::FeatureConfig;
    use crate::model::{Classifier, Head, LinearModel};

    /// A classifier whose heads score by hand-set weights on one word each.
    fn toy() -> Router {
        let cfg = FeatureConfig {
            buckets_log2: 10,
            char_ngram_min: 0,
            char_ngram_max: 0,
            ..FeatureConfig::default()
        };
        let dim = cfg.dim();
        // Heads with only a bias: small 0.6, medium 0.8, fixed for every prompt.
        let head = |name: &str, p: f32| Head {
            model: name.to_owned(),
            linear: LinearModel {
                weights: vec![0.0; dim],
                bias: (p / (1.0 - p)).ln(),
            },
        };
        let clf = Classifier::new(cfg, vec![head("small", 0.6), head("medium", 0.8)]);
        Router::new(
            vec![
                Candidate::new("small", 1),
                Candidate::new("medium", 2),
                Candidate::new("large", 3),
            ],
            vec![
                Rule::regex("code", r"(?i)\bfn main\b", "large").unwrap(),
                Rule::key("vip", "key-vip", "medium"),
                Rule::metadata("team", "team", "research", "large"),
            ],
            Estimator::Linear(clf),
            Bars {
                cheap: 0.5,
                balanced: 0.7,
            },
        )
        .unwrap()
    }

    #[test]
    fn named_policies_choose_as_expected() {
        let r = toy();
        let req = RouteRequest::prompt("what is the capital of france");
        assert_eq!(r.decide(&req, Policy::Cheap).model, "small");
        assert_eq!(r.decide(&req, Policy::Balanced).model, "medium");
        assert_eq!(r.decide(&req, Policy::Best).model, "large");
    }

    #[test]
    fn numeric_bar() {
        let r = toy();
        let req = RouteRequest::prompt("hello");
        assert_eq!(r.decide(&req, Policy::Bar(0.55)).model, "small");
        assert_eq!(r.decide(&req, Policy::Bar(0.75)).model, "medium");
        assert_eq!(r.decide(&req, Policy::Bar(0.95)).model, "large");
        assert_eq!(r.decide(&req, Policy::Bar(0.0)).model, "small");
    }

    #[test]
    fn rules_run_first() {
        let r = toy();
        let d = r.decide(&RouteRequest::prompt("fn main() {}"), Policy::Cheap);
        assert_eq!(
            (d.model.as_str(), d.rule.as_deref()),
            ("large", Some("code"))
        );
        assert!(d.scores.is_empty());

        let req = RouteRequest {
            prompt: "hi",
            key: Some("key-vip"),
            ..RouteRequest::default()
        };
        assert_eq!(r.decide(&req, Policy::Cheap).model, "medium");

        let meta = vec![("team".to_owned(), "research".to_owned())];
        let req = RouteRequest {
            prompt: "hi",
            metadata: &meta,
            ..RouteRequest::default()
        };
        let d = r.decide(&req, Policy::Cheap);
        assert_eq!(
            (d.model.as_str(), d.rule.as_deref()),
            ("large", Some("team"))
        );
    }

    #[test]
    fn decision_explains_itself() {
        let r = toy();
        let d = r.decide(&RouteRequest::prompt("hello"), Policy::Balanced);
        assert_eq!(
            d.header_value(),
            "policy=balanced; model=medium; bar=0.70; rule=-; scores=small:0.600,medium:0.800,large:-"
        );
        let best = r.decide(&RouteRequest::prompt("hello"), Policy::Best);
        assert!(best.header_value().contains("bar=max"));
    }

    #[test]
    fn policy_parsing() {
        assert_eq!("cheap".parse::<Policy>(), Ok(Policy::Cheap));
        assert_eq!(" Best ".parse::<Policy>(), Ok(Policy::Best));
        assert_eq!("0.25".parse::<Policy>(), Ok(Policy::Bar(0.25)));
        assert!("1.5".parse::<Policy>().is_err());
        assert!("fast".parse::<Policy>().is_err());
        assert_eq!(
            Policy::split_model("auto:cheap"),
            Ok(("auto", Some(Policy::Cheap)))
        );
        assert_eq!(Policy::split_model("auto"), Ok(("auto", None)));
    }

    #[test]
    fn construction_is_validated() {
        let clf = Classifier::new(FeatureConfig::default(), Vec::new());
        assert!(matches!(
            Router::new(
                Vec::new(),
                Vec::new(),
                Estimator::Linear(clf.clone()),
                Bars::default()
            ),
            Err(RouteError::NoCandidates)
        ));
        assert!(matches!(
            Router::new(
                vec![Candidate::new("a", 1), Candidate::new("b", 2)],
                Vec::new(),
                Estimator::Linear(clf),
                Bars::default()
            ),
            Err(RouteError::MissingHead { .. })
        ));
        assert!(matches!(
            Rule::regex("bad", "(", "x"),
            Err(RouteError::BadRegex { .. })
        ));
    }
}
