//! Output guards over a streamed answer.

use std::sync::Arc;

use switchyard_control::OutputAction;
use switchyard_grounding::Context as GroundingContext;

use switchyard_api::ChatCompletionRequest;

use crate::output::{
    bias_detail, grounding_context, grounding_detail, json_requested, last_user_text, sentence_cut,
    sentence_start_of_tail, toxicity_detail, OutputCheck, OutputChecks,
};
use crate::verdict::{GuardVerdict, Outcome};

/// Text is held back at most this long without a sentence end before it is checked anyway.
const MAX_HOLD_CHARS: usize = 400;

/// Output guards on a stream. What the client has not seen yet is held back until a sentence
/// ends (or `MAX_HOLD_CHARS` pass), then the new sentences are checked with the one before
/// them and released. A failure stops the stream with a final event saying which guard
/// stopped it; nothing that failed is ever sent. At the end, a missing disclaimer is appended
/// and JSON validity is recorded (too late to withhold: flagged).
pub struct OutputWindow {
    checks: Arc<OutputChecks>,
    /// The grounding context, split once for the whole stream.
    context: Option<GroundingContext>,
    question: String,
    wants_json: bool,
    pending: String,
    released: String,
    finished: bool,
    pub verdicts: Vec<GuardVerdict>,
}

impl OutputWindow {
    /// A watcher for a streamed answer to `request`.
    pub fn over(checks: &Arc<OutputChecks>, request: &ChatCompletionRequest) -> Self {
        let question = last_user_text(request);
        let context = checks.grounding().and_then(|g| {
            grounding_context(request, g.sources)
                .map(|text| GroundingContext::new(&text, None).with_question(&question))
        });
        OutputWindow::new(
            Arc::clone(checks),
            context,
            question,
            json_requested(request),
        )
    }

    pub fn new(
        checks: Arc<OutputChecks>,
        context: Option<GroundingContext>,
        question: String,
        wants_json: bool,
    ) -> Self {
        OutputWindow {
            checks,
            context,
            question,
            wants_json,
            pending: String::new(),
            released: String::new(),
            finished: false,
            verdicts: Vec::new(),
        }
    }

    /// Takes new content; returns what may be sent now, or the verdict that stops the stream.
    pub fn push(&mut self, text: &str) -> Result<String, GuardVerdict> {
        self.pending.push_str(text);
        let cut = sentence_cut(&self.pending).or_else(|| {
            (self.pending.chars().count() > MAX_HOLD_CHARS).then(|| {
                self.pending
                    .rfind(char::is_whitespace)
                    .unwrap_or(self.pending.len())
            })
        });
        match cut {
            Some(at) if at > 0 => {
                let ready: String = self.pending.drain(..at).collect();
                self.release(ready)
            }
            _ => Ok(String::new()),
        }
    }

    /// The stream's text is complete: checks and releases the rest, then the end-of-answer
    /// checks. Returns what to send (the rest, and an appended disclaimer).
    pub fn finish(&mut self) -> Result<String, GuardVerdict> {
        if std::mem::replace(&mut self.finished, true) {
            return Ok(String::new());
        }
        let rest = std::mem::take(&mut self.pending);
        let mut out = self.release(rest)?;
        if let Some(c) = self.checks.compliance() {
            for (when, disclaimer) in &c.disclaimers {
                if (when.is_match(&self.question) || when.is_match(&self.released))
                    && !self.released.contains(disclaimer.as_str())
                {
                    let add = format!("\n\n{disclaimer}");
                    self.released.push_str(&add);
                    out.push_str(&add);
                    self.verdicts.push(GuardVerdict::new(
                        "compliance",
                        Outcome::Fixed,
                        None,
                        "disclaimer added",
                    ));
                }
            }
            if c.json
                && self.wants_json
                && serde_json::from_str::<serde_json::Value>(self.released.trim()).is_err()
            {
                self.verdicts.push(GuardVerdict::new(
                    "compliance",
                    Outcome::Flagged,
                    None,
                    "not JSON, but response_format asks for JSON (streamed: already sent)",
                ));
            }
        }
        Ok(out)
    }

    fn release(&mut self, ready: String) -> Result<String, GuardVerdict> {
        if ready.is_empty() {
            return Ok(ready);
        }
        // The new text with the sentence before it, so a phrase cut at a boundary is seen.
        let tail_start = sentence_start_of_tail(&self.released);
        let window = format!("{}{}", &self.released[tail_start..], ready);
        let checks = Arc::clone(&self.checks);
        for check in checks.iter() {
            if let Some(stop) = self.check(check, &window, &ready) {
                return Err(stop);
            }
        }
        self.released.push_str(&ready);
        Ok(ready)
    }

    /// One check over the window (the new text `ready` with the sentence before it): the
    /// verdict that stops the stream, if any.
    fn check(&mut self, check: &OutputCheck, window: &str, ready: &str) -> Option<GuardVerdict> {
        match check {
            OutputCheck::Toxicity(t) => {
                let v = t.detector.scan(window);
                v.toxic
                    .then(|| self.found("toxicity", t.action, v.score, &toxicity_detail(&v)))?
            }
            OutputCheck::Grounding(g) => {
                let cx = self.context.take()?;
                // Support is per sentence, so only the new sentences are scored.
                let v = g.scorer.check_prepared(&cx, ready, None);
                self.context = Some(cx);
                let detail = grounding_detail(&v);
                (!v.supported).then(|| self.found("grounding", g.action, v.score, &detail))?
            }
            OutputCheck::Bias(b) => {
                let v = b.detector.scan(window);
                v.biased
                    .then(|| self.found("bias", b.action, v.score, &bias_detail(&v)))?
            }
            OutputCheck::Compliance(c) => {
                let total = self.released.chars().count() + ready.chars().count();
                let problem = c
                    .forbidden
                    .iter()
                    .position(|re| re.is_match(window))
                    .map(|i| format!("forbidden[{i}]"))
                    .or_else(|| {
                        c.max_chars
                            .filter(|max| total > *max)
                            .map(|max| format!("more than {max} characters"))
                    })?;
                if c.action != OutputAction::Flag {
                    let stop = GuardVerdict::new("compliance", Outcome::Stopped, None, &problem);
                    self.verdicts.push(stop.clone());
                    return Some(stop);
                }
                self.verdicts.push(GuardVerdict::new(
                    "compliance",
                    Outcome::Flagged,
                    None,
                    &problem,
                ));
                None
            }
        }
    }

    /// A check found a problem in the window: the verdict that stops the stream, or, when the
    /// action only flags, `None` after recording the first flag of that guard.
    fn found(
        &mut self,
        guard: &'static str,
        action: OutputAction,
        score: f32,
        detail: &str,
    ) -> Option<GuardVerdict> {
        if action != OutputAction::Flag {
            let stop = GuardVerdict::new(guard, Outcome::Stopped, Some(score), detail);
            self.verdicts.push(stop.clone());
            return Some(stop);
        }
        if !self.verdicts.iter().any(|x| x.guard == guard) {
            self.verdicts.push(GuardVerdict::new(
                guard,
                Outcome::Flagged,
                Some(score),
                detail,
            ));
        }
        None
    }
}
