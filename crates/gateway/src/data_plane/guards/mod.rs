//! The guard stage: what may reach the model, and what comes back.
//!
//! 1. Masking transforms the request, so it runs first, before the cache and the router see
//!    it: PII and secrets in every message become placeholders (`<EMAIL_1>`) or are redacted,
//!    hashed or refused, per kind. The session's restorations put pseudonymised values back
//!    into the answer (whole, or chunk by chunk for a stream). The cache stores the masked
//!    answer, so a value never reaches another request.
//! 2. Classifying guards only read the request, so they run alongside the provider call
//!    ([`GuardStage::alongside`]): the injection screen, the topic filter and the
//!    harmful-request classifier start on blocking threads when the call starts, the webhook
//!    when it is first polled; if one refuses, the call is
//!    dropped (which cancels it upstream) and the refusal returned: an error, or for the topic
//!    filter its polite answer ([`GuardStage::refusal_answer`]). Nothing from the provider
//!    reaches the client before the screen has passed: a call that answers first waits for it.
//! 3. Output guards read the whole answer (toxicity, grounding against the request's context,
//!    bias, compliance rules). A missing disclaimer
//!    is appended; any other failure, by the guard's action, is flagged, or regenerated (up
//!    to `output.retries`, with a note telling the model what failed), and then replaced by
//!    the configured safe answer. Only an answer that passed is cached. A stream cannot be
//!    regenerated once it has started, so [`OutputWindow`] holds back each sentence until it
//!    has passed, and a failure ends the stream with `finish_reason: content_filter`.
//! 4. Every verdict (guard, outcome, score, detail, time) goes to the record (`guards`, JSON)
//!    and the `x-switchyard-guard` header; a refusal is a 400 `content_policy_violation`
//!    naming the guard.

mod errors;
mod input;
mod masking;
mod output;

use std::future::Future;
use std::sync::Arc;

use switchyard_api::{ChatCompletionRequest, ChatMessage, MessageContent, Role};
use switchyard_control::{GuardsSpec, OutputAction, OutputPolicySpec};
use switchyard_guards::output::last_user_text;
use switchyard_guards::OutputChecks;

pub use errors::{refusal, GuardBuildError};
pub use masking::{context_field_message, unmask_response, Masking};
pub use switchyard_guards::output::CONTEXT_NAME;
pub use switchyard_guards::verdict::{header_value, stored_outcomes};
pub use switchyard_guards::{GuardVerdict, Outcome, OutputWindow};

use crate::data_plane::cache::StaticModels;
use crate::error::{ErrorKind, GatewayError};
use input::InputScreen;
use masking::PiiGuard;

/// The classifying guards of one request, started together; resolves to every verdict.
pub type Screen = std::pin::Pin<Box<dyn Future<Output = Vec<GuardVerdict>> + Send>>;

/// The guards of one guard policy: masking, the input screens, the output checks.
pub struct GuardStage {
    masking: Option<PiiGuard>,
    screens: Vec<InputScreen>,
    checks: Option<Arc<OutputChecks>>,
    judge: Option<switchyard_control::JudgeGuardSpec>,
    output: OutputPolicySpec,
    screen_first: bool,
}

impl GuardStage {
    /// `env` reads environment variables (the PII hash salt); `models` loads the static
    /// embedding model the topic filter needs (shared with the cache). Built in the order
    /// the sections' errors have always been reported.
    pub fn build(
        spec: &GuardsSpec,
        env: &dyn Fn(&str) -> Option<String>,
        models: &mut StaticModels,
    ) -> Result<Self, GuardBuildError> {
        let masking = match &spec.pii {
            Some(p) => Some(PiiGuard::build(p, env)?),
            None => None,
        };
        let mut screens = Vec::new();
        if let Some(i) = &spec.injection {
            screens.push(InputScreen::injection(i)?);
        }
        let checks = output::build_checks(spec)?;
        if let Some(t) = &spec.topics {
            screens.push(InputScreen::topics(t, models)?);
        }
        if let Some(h) = &spec.harmful {
            screens.push(InputScreen::harmful(h, models)?);
        }
        if let Some(w) = &spec.webhook {
            screens.push(InputScreen::webhook(w)?);
        }
        Ok(GuardStage {
            masking,
            screens,
            checks,
            judge: spec.judge.clone(),
            output: spec.output.clone(),
            screen_first: spec.screen_first,
        })
    }

    /// A watcher for a streamed answer, when output guards are on.
    pub fn stream_window(&self, request: &ChatCompletionRequest) -> Option<OutputWindow> {
        self.checks.as_ref().map(|c| OutputWindow::over(c, request))
    }

    pub fn output_policy(&self) -> &OutputPolicySpec {
        &self.output
    }

    /// How many times a whole answer may be generated again after failing an output guard
    /// (0 when no output guard is on): admission reserves for each.
    pub fn regenerations(&self) -> u32 {
        if self.checks.is_some() || self.judge.is_some() {
            self.output.retries
        } else {
            0
        }
    }

    pub fn judge(&self) -> Option<&switchyard_control::JudgeGuardSpec> {
        self.judge.as_ref()
    }

    /// The judge's prompt for an answer: the configured template with `question` and `answer`.
    pub fn judge_prompt(
        &self,
        judge: &switchyard_control::JudgeGuardSpec,
        request: &ChatCompletionRequest,
        answer: &str,
    ) -> Result<String, GatewayError> {
        let env = minijinja::Environment::new();
        env.template_from_str(&judge.template)
            .and_then(|t| {
                t.render(minijinja::context! {
                    question => last_user_text(request),
                    answer => answer,
                })
            })
            .map_err(|e| {
                GatewayError::new(
                    ErrorKind::Internal,
                    "judge_template",
                    format!("the judge guard's template failed: {e}"),
                )
            })
    }

    /// Checks a whole answer (`OutputChecks::review`); `None` when no output guard is on.
    pub fn review(
        &self,
        request: &ChatCompletionRequest,
        response: &mut switchyard_api::ChatCompletionResponse,
        verdicts: &mut Vec<GuardVerdict>,
    ) -> Option<(GuardVerdict, OutputAction)> {
        let checks = self.checks.as_ref()?;
        if response.choices.len() <= 1 {
            let before = [response.text()];
            let failure = checks.review(request, response, verdicts);
            masking::forget_rewritten_logprobs(response, &before);
            return failure;
        }
        // The checks read one choice; with `n > 1` every choice is an answer the client
        // reads, so each is judged alone (and gets its own disclaimer). The first failure
        // fails the answer: it is regenerated or replaced whole.
        let mut failure = None;
        let choices = std::mem::take(&mut response.choices);
        for choice in choices {
            let before = choice.message.text();
            let mut one = switchyard_api::ChatCompletionResponse {
                choices: vec![choice],
                ..response.clone()
            };
            let failed = checks.review(request, &mut one, verdicts);
            failure = failure.or(failed);
            masking::forget_rewritten_logprobs(&mut one, &[before]);
            response.choices.append(&mut one.choices);
        }
        failure
    }

    /// The request to regenerate with: the original, plus a system note saying what the last
    /// answer failed (when `corrective_note` is on).
    pub fn corrected(
        &self,
        request: &ChatCompletionRequest,
        failed: &GuardVerdict,
    ) -> ChatCompletionRequest {
        let mut r = request.clone();
        if self.output.corrective_note {
            r.messages.push(ChatMessage::new(
                Role::System,
                format!(
                    "Your previous answer was withheld: it failed the {} check ({}). Answer the \
                     request again without that problem.",
                    failed.guard,
                    if failed.detail.is_empty() {
                        "no detail"
                    } else {
                        &failed.detail
                    }
                ),
            ));
        }
        r
    }

    /// The configured safe answer in place of `response`'s content.
    pub fn safe_answer(&self, response: &mut switchyard_api::ChatCompletionResponse) {
        for c in &mut response.choices {
            c.message.content = Some(MessageContent::Text(self.output.safe_answer.clone()));
            c.message.tool_calls = None;
            c.finish_reason = Some(switchyard_api::finish_reason::STOP.to_owned());
            // They described the model's tokens, which the client no longer gets.
            c.logprobs = None;
        }
    }

    /// Masks `request` in place. `Err` when a finding's action is `block`.
    pub fn mask(
        &self,
        request: &mut ChatCompletionRequest,
        verdicts: &mut Vec<GuardVerdict>,
    ) -> Result<Option<Masking>, GatewayError> {
        match &self.masking {
            Some(pii) => pii.mask(request, verdicts),
            None => Ok(None),
        }
    }

    /// Starts the classifying guards (`InputScreen::start`). `None` when none is on.
    pub fn screen(&self, request: &ChatCompletionRequest) -> Option<Screen> {
        let parts: Vec<input::OneScreen> = self.screens.iter().map(|s| s.start(request)).collect();
        (!parts.is_empty()).then(|| Box::pin(futures::future::join_all(parts)) as Screen)
    }

    /// The answer a refusing screen gives instead of an error: the topic filter's polite
    /// refusal, when it is the first verdict that refuses.
    pub fn refusal_answer(&self, verdicts: &[GuardVerdict]) -> Option<&str> {
        let first = verdicts.iter().find(|v| v.blocks)?;
        self.screens.iter().find_map(|s| s.refusal_answer(first))
    }

    /// Whether the screen must finish before the provider call starts (`screen = "first"`).
    pub fn screens_first(&self) -> bool {
        self.screen_first
    }

    /// Waits for a screen already started (a cache hit has no call to overlap with).
    pub async fn settle(&self, screen: Screen) -> Vec<GuardVerdict> {
        screen.await
    }

    /// Runs `call` alongside `screen`; see the module documentation.
    pub async fn alongside<T>(
        &self,
        call: impl Future<Output = Result<T, GatewayError>>,
        screen: Screen,
    ) -> (Result<T, GatewayError>, Vec<GuardVerdict>) {
        let mut screen = screen;
        tokio::pin!(call);
        let (verdicts, early) = tokio::select! {
            biased;
            v = &mut screen => (v, None),
            r = &mut call => ((&mut screen).await, Some(r)),
        };
        if let Some(refusing) = verdicts.iter().find(|v| v.blocks) {
            // Dropping `call` here cancels the upstream request.
            return (Err(refusal(refusing)), verdicts);
        }
        let result = match early {
            Some(r) => r,
            None => call.await,
        };
        (result, verdicts)
    }
}

/// Whether an output guard failed the answer (it was regenerated, replaced or its stream
/// stopped): rollouts and SLOs judge by the same outcomes as the KPIs.
pub fn answer_failed(outcomes: &[Outcome]) -> bool {
    outcomes.iter().any(|o| o.fails_answer())
}
