//! The checks a whole answer passes, and the text helpers they share with the stream's
//! window.

use std::time::Instant;

use switchyard_api::{
    ChatCompletionRequest, ChatCompletionResponse, ChatMessage, MessageContent, Role,
};
use switchyard_control::{ComplianceGuardSpec, ContextSources, OutputAction};
use switchyard_grounding::Grounding;
use switchyard_textclass::toxicity::ToxicityDetector;
use switchyard_topics::BiasDetector;

use crate::verdict::{GuardVerdict, Outcome};

pub struct ToxicityCheck {
    pub detector: ToxicityDetector,
    pub action: OutputAction,
}

pub struct GroundingCheck {
    pub scorer: Grounding,
    pub action: OutputAction,
    pub sources: ContextSources,
}

pub struct BiasCheck {
    pub detector: BiasDetector,
    pub action: OutputAction,
}

/// One output check, as configured.
pub enum OutputCheck {
    Toxicity(ToxicityCheck),
    Grounding(GroundingCheck),
    Bias(BiasCheck),
    Compliance(ComplianceGuardSpec),
}

impl OutputCheck {
    /// What the check does with an answer that fails it.
    pub fn action(&self) -> OutputAction {
        match self {
            OutputCheck::Toxicity(t) => t.action,
            OutputCheck::Grounding(g) => g.action,
            OutputCheck::Bias(b) => b.action,
            OutputCheck::Compliance(c) => c.action,
        }
    }

    /// Its verdict on a whole answer whose text is `text`; `None` when it has nothing to
    /// check against (grounding without a context). Compliance may append a disclaimer.
    fn review(
        &self,
        request: &ChatCompletionRequest,
        response: &mut ChatCompletionResponse,
        text: &str,
    ) -> Option<GuardVerdict> {
        let started = Instant::now();
        let mut verdict = match self {
            OutputCheck::Toxicity(t) => {
                let v = t.detector.scan(text);
                classified("toxicity", v.toxic, t.action, v.score, || {
                    toxicity_detail(&v)
                })
            }
            OutputCheck::Grounding(g) => {
                let context = grounding_context(request, g.sources)?;
                // The question's words count as support: an answer may restate it.
                let v = g
                    .scorer
                    .check_lexical(&context, &last_user_text(request), text);
                classified("grounding", !v.supported, g.action, v.score, || {
                    grounding_detail(&v)
                })
            }
            OutputCheck::Bias(b) => {
                let v = b.detector.scan(text);
                classified("bias", v.biased, b.action, v.score, || bias_detail(&v))
            }
            OutputCheck::Compliance(c) => compliance_verdict(c, request, response),
        };
        verdict.ms = started.elapsed().as_secs_f64() * 1e3;
        Some(verdict)
    }
}

/// A classifying check's verdict: `pass`, `flagged` (found, but the action only flags) or
/// `failed`.
fn classified(
    guard: &'static str,
    found: bool,
    action: OutputAction,
    score: f32,
    detail: impl FnOnce() -> String,
) -> GuardVerdict {
    let outcome = match (found, action) {
        (false, _) => Outcome::Pass,
        (true, OutputAction::Flag) => Outcome::Flagged,
        (true, _) => Outcome::Failed,
    };
    let detail = if found { detail() } else { String::new() };
    GuardVerdict::new(guard, outcome, Some(score), &detail)
}

/// The compliance rules' verdict on a whole answer, a missing disclaimer appended.
fn compliance_verdict(
    c: &ComplianceGuardSpec,
    request: &ChatCompletionRequest,
    response: &mut ChatCompletionResponse,
) -> GuardVerdict {
    let (problem, added) = compliance(c, request, response);
    let failed = problem.is_some() && c.action != OutputAction::Flag;
    let outcome = match (&problem, failed, added) {
        (Some(_), true, _) => Outcome::Failed,
        (Some(_), false, _) => Outcome::Flagged,
        (None, _, true) => Outcome::Fixed,
        (None, _, false) => Outcome::Pass,
    };
    let detail = problem.unwrap_or_else(|| {
        if added {
            "disclaimer added".to_owned()
        } else {
            String::new()
        }
    });
    GuardVerdict::new("compliance", outcome, None, &detail)
}

/// The output guards of a guard policy, in the order they run, shared with the streams they
/// watch.
pub struct OutputChecks {
    checks: Vec<OutputCheck>,
}

impl OutputChecks {
    /// `None` when there is no check.
    pub fn new(checks: Vec<OutputCheck>) -> Option<Self> {
        (!checks.is_empty()).then_some(OutputChecks { checks })
    }

    pub fn iter(&self) -> impl Iterator<Item = &OutputCheck> {
        self.checks.iter()
    }

    pub(crate) fn compliance(&self) -> Option<&ComplianceGuardSpec> {
        self.checks.iter().find_map(|c| match c {
            OutputCheck::Compliance(c) => Some(c),
            _ => None,
        })
    }

    pub(crate) fn grounding(&self) -> Option<&GroundingCheck> {
        self.checks.iter().find_map(|c| match c {
            OutputCheck::Grounding(g) => Some(g),
            _ => None,
        })
    }

    /// Checks a whole answer. Appends missing disclaimers in place; returns the first failure
    /// that is not only flagged, with its action. Every check's verdict is pushed.
    pub fn review(
        &self,
        request: &ChatCompletionRequest,
        response: &mut ChatCompletionResponse,
        verdicts: &mut Vec<GuardVerdict>,
    ) -> Option<(GuardVerdict, OutputAction)> {
        let text = response.text();
        let mut failure = None;
        for check in &self.checks {
            let Some(verdict) = check.review(request, response, &text) else {
                continue;
            };
            if verdict.outcome == Outcome::Failed && failure.is_none() {
                failure = Some((verdict.clone(), check.action()));
            }
            verdicts.push(verdict);
        }
        failure
    }
}

/// The context an answer must be grounded in, from the places the guard reads: system
/// messages named `context` (where the `context` field goes, see [`context_field_message`]),
/// tool results, system messages. `None` when there is none.
pub fn grounding_context(
    request: &ChatCompletionRequest,
    sources: ContextSources,
) -> Option<String> {
    let parts: Vec<String> = request
        .messages
        .iter()
        .filter(|m| match m.role {
            Role::System | Role::Developer => {
                sources.system || (sources.field && m.name.as_deref() == Some(CONTEXT_NAME))
            }
            Role::Tool | Role::Function => sources.tools,
            _ => false,
        })
        .map(ChatMessage::text)
        .filter(|t| !t.trim().is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join("\n\n"))
}

/// The name of the system message that carries the request's `context` field.
pub const CONTEXT_NAME: &str = "context";

pub(crate) fn toxicity_detail(v: &switchyard_textclass::toxicity::ToxicityVerdict) -> String {
    v.categories
        .iter()
        .map(|c| c.name())
        .collect::<Vec<_>>()
        .join(",")
}

/// How many sentences fell short, and the numbers and names the context never mentions.
pub(crate) fn grounding_detail(v: &switchyard_grounding::GroundingVerdict) -> String {
    let weak = v.unsupported();
    let mut terms: Vec<&str> = weak
        .iter()
        .flat_map(|s| s.unsupported_terms.iter().map(String::as_str))
        .collect();
    terms.dedup();
    terms.truncate(5);
    let mut detail = format!(
        "{} of {} sentences below {:.2}",
        weak.len(),
        v.sentences.len(),
        v.threshold
    );
    if !terms.is_empty() {
        detail.push_str(&format!(", unsupported: {}", terms.join(" ")));
    }
    detail
}

pub(crate) fn bias_detail(v: &switchyard_topics::BiasVerdict) -> String {
    v.patterns
        .iter()
        .map(|p| p.name())
        .chain(v.groups.iter().map(|g| g.name()))
        .collect::<Vec<_>>()
        .join(",")
}

/// Compliance rules on an answer: the first problem, and whether a disclaimer was appended.
pub fn compliance(
    c: &ComplianceGuardSpec,
    request: &ChatCompletionRequest,
    response: &mut ChatCompletionResponse,
) -> (Option<String>, bool) {
    let text = response.text();
    if let Some(i) = c.forbidden.iter().position(|re| re.is_match(&text)) {
        return (Some(format!("forbidden[{i}]")), false);
    }
    if let Some(max) = c.max_chars {
        let n = text.chars().count();
        if n > max {
            return (Some(format!("{n} characters, at most {max}")), false);
        }
    }
    if c.json {
        if let Some(problem) = json_problem(request, &text) {
            return (Some(problem), false);
        }
    }
    let question = last_user_text(request);
    let mut added = false;
    for (when, disclaimer) in &c.disclaimers {
        let current = response.text();
        if (when.is_match(&question) || when.is_match(&current))
            && !current.contains(disclaimer.as_str())
        {
            if let Some(choice) = response.choices.first_mut() {
                choice.message.content =
                    Some(MessageContent::Text(format!("{current}\n\n{disclaimer}")));
                added = true;
            }
        }
    }
    (None, added)
}

pub fn last_user_text(request: &ChatCompletionRequest) -> String {
    request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .map(ChatMessage::text)
        .unwrap_or_default()
}

pub fn json_requested(request: &ChatCompletionRequest) -> bool {
    request
        .response_format
        .as_ref()
        .and_then(|f| serde_json::to_value(f).ok())
        .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_owned))
        .is_some_and(|t| t == "json_object" || t == "json_schema")
}

/// The byte offset just after the last sentence end in `text` (`.`, `!`, `?` or a newline
/// followed by whitespace, or a newline), if any.
pub fn sentence_cut(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut cut = None;
    for (i, &b) in bytes.iter().enumerate() {
        let end = match b {
            b'\n' => true,
            b'.' | b'!' | b'?' => bytes.get(i + 1).is_some_and(|n| n.is_ascii_whitespace()),
            _ => false,
        };
        if end {
            cut = Some(i + 1);
        }
    }
    cut
}

/// Where the last sentence of `text` starts (0 when it has one sentence).
pub fn sentence_start_of_tail(text: &str) -> usize {
    let trimmed = text.trim_end();
    sentence_cut(trimmed).unwrap_or(0)
}

/// When the request asked for JSON: whether the answer is JSON, with the schema's required
/// top-level fields.
pub fn json_problem(request: &ChatCompletionRequest, text: &str) -> Option<String> {
    let format = serde_json::to_value(request.response_format.as_ref()?).ok()?;
    let kind = format.get("type")?.as_str()?;
    if kind != "json_object" && kind != "json_schema" {
        return None;
    }
    let value: serde_json::Value = match serde_json::from_str(text.trim()) {
        Ok(v) => v,
        Err(_) => return Some("not JSON, but response_format asks for JSON".to_owned()),
    };
    let required = format
        .pointer("/json_schema/schema/required")
        .and_then(|r| r.as_array())
        .cloned()
        .unwrap_or_default();
    for field in required.iter().filter_map(|f| f.as_str()) {
        if value.get(field).is_none() {
            return Some(format!("JSON without the required field `{field}`"));
        }
    }
    None
}
