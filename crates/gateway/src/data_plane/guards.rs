//! The guard stage: what may reach the model, and what comes back.
//!
//! 1. Masking transforms the request, so it runs first, before the cache and the router see
//!    it: PII and secrets in every message become placeholders (`<EMAIL_1>`) or are redacted,
//!    hashed or refused, per kind. The session's restorations put pseudonymised values back
//!    into the answer (whole, or chunk by chunk for a stream). The cache stores the masked
//!    answer, so a value never reaches another request.
//! 2. Classifying guards only read the request, so they run alongside the provider call
//!    ([`alongside`]): the injection screen and the topic filter start on blocking threads
//!    when the call starts, the webhook when it is first polled; if one refuses, the call is
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

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use switchyard_api::{ChatCompletionRequest, ChatMessage, MessageContent, Role};
use switchyard_control::{GuardsSpec, OutputAction, OutputPolicySpec};
use switchyard_grounding::Grounding;
use switchyard_pii::{MaskSession, Masker, Restorations, Scanner, ScannerConfig};
use switchyard_textclass::injection::{Channel, Detector};
use switchyard_textclass::toxicity::ToxicityDetector;
use switchyard_topics::{BiasDetector, Reason, TopicFilter};

use crate::data_plane::cache::StaticModels;

use switchyard_guards::output::last_user_text;
pub use switchyard_guards::output::CONTEXT_NAME;
pub use switchyard_guards::verdict::{header_value, stored_outcomes};
use switchyard_guards::{BiasCheck, GroundingCheck, OutputChecks, ToxicityCheck};
pub use switchyard_guards::{GuardVerdict, Outcome, OutputWindow};

/// The classifying guards of one request, started together; resolves to every verdict.
pub type Screen = std::pin::Pin<Box<dyn Future<Output = Vec<GuardVerdict>> + Send>>;
type OneScreen = std::pin::Pin<Box<dyn Future<Output = GuardVerdict> + Send>>;

use crate::error::{ErrorKind, GatewayError};

/// The client error a blocking verdict becomes.
pub fn refusal(v: &GuardVerdict) -> GatewayError {
    let what = if v.outcome == Outcome::Error {
        format!(
            "the {} guard failed and is configured to refuse when it fails",
            v.guard
        )
    } else {
        format!("the {} guard refused the request ({})", v.guard, v.detail)
    };
    let e = GatewayError::new(ErrorKind::InvalidRequest, "content_policy_violation", what);
    // Input guards read the conversation; a guard that failed refused no field of it.
    if v.outcome == Outcome::Error {
        e
    } else {
        e.with_param("messages")
    }
}

struct PiiGuard {
    masker: Masker,
    salt: Vec<u8>,
}

struct InjectionGuard {
    detector: Detector,
    block: bool,
    scan_tool_results: bool,
    fail_open: bool,
}

/// A text embedder the topic filter can own.
type BoxedEmbed = Box<dyn Fn(&str) -> Vec<f32> + Send + Sync>;

struct TopicsGuard {
    filter: TopicFilter<BoxedEmbed>,
    refuse: bool,
    refusal: String,
    fail_open: bool,
}

/// A team's own service, asked about the request alongside the call.
struct WebhookGuard {
    client: reqwest::Client,
    url: String,
    timeout: std::time::Duration,
    fail_open: bool,
}

/// What a webhook answers: `{"action": "allow" | "block" | "flag", "reason": "...", "score": 0.2}`.
#[derive(Debug, serde::Deserialize)]
struct WebhookAnswer {
    action: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    score: Option<f32>,
}

impl WebhookGuard {
    async fn ask(&self, body: serde_json::Value) -> GuardVerdict {
        let started = Instant::now();
        let call = async {
            let response = self.client.post(&self.url).json(&body).send().await.ok()?;
            if !response.status().is_success() {
                return None;
            }
            response.json::<WebhookAnswer>().await.ok()
        };
        let answer = tokio::time::timeout(self.timeout, call)
            .await
            .ok()
            .flatten();
        let ms = started.elapsed().as_secs_f64() * 1e3;
        let (outcome, blocks) = match answer.as_ref().map(|a| a.action.as_str()) {
            Some("allow") => (Outcome::Pass, false),
            Some("flag") => (Outcome::Flagged, false),
            Some("block") => (Outcome::Blocked, true),
            // No answer in time, an error status, or an answer we cannot read.
            _ => (Outcome::Error, !self.fail_open),
        };
        GuardVerdict {
            guard: "webhook",
            outcome,
            score: answer.as_ref().and_then(|a| a.score),
            detail: answer.map(|a| a.reason).unwrap_or_default(),
            ms,
            blocks,
        }
    }
}

/// The guards of one pipeline.
pub struct GuardStage {
    pii: Option<PiiGuard>,
    injection: Option<Arc<InjectionGuard>>,
    topics: Option<Arc<TopicsGuard>>,
    webhook: Option<Arc<WebhookGuard>>,
    judge: Option<switchyard_control::JudgeGuardSpec>,
    checks: Option<Arc<OutputChecks>>,
    output: OutputPolicySpec,
    screen_first: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum GuardBuildError {
    #[error("guards.pii: {0}")]
    Pii(#[from] switchyard_pii::PiiError),
    #[error("guards.injection.artifact: {0}")]
    Injection(#[from] switchyard_textclass::injection::DetectorError),
    #[error("guards.toxicity.artifact: {0}")]
    Toxicity(#[from] switchyard_textclass::toxicity::ToxicityError),
    #[error("guards.webhook: cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("guards.topics.embedder: {0}")]
    TopicsEmbedder(switchyard_embed::EmbedError),
    #[error("guards.topics: {0}")]
    Topics(#[from] switchyard_topics::TopicError),
    #[error("guards.grounding: {0}")]
    Grounding(#[from] switchyard_grounding::GroundingError),
}

/// What masking left for the answer.
pub struct Masking {
    pub restorations: Restorations,
}

impl GuardStage {
    /// `models` loads the static embedding model the topic filter needs (shared with the
    /// cache).
    pub fn build(
        spec: &GuardsSpec,
        env: &dyn Fn(&str) -> Option<String>,
        models: &mut StaticModels,
    ) -> Result<Self, GuardBuildError> {
        let pii = match &spec.pii {
            Some(p) => {
                let scanner = Scanner::new(ScannerConfig::only(p.kinds.iter().copied()))?;
                // Hashes are comparable across restarts only with a configured salt; without
                // one each process draws its own, so they are at least not guessable.
                let salt = p
                    .hash_salt_env
                    .as_deref()
                    .and_then(env)
                    .map(String::into_bytes)
                    .unwrap_or_else(|| rand::random::<[u8; 32]>().to_vec());
                Some(PiiGuard {
                    masker: Masker::new(Arc::new(scanner), p.policy.clone()),
                    salt,
                })
            }
            None => None,
        };
        let injection = match &spec.injection {
            Some(i) => {
                let mut detector = Detector::from_artifact(&i.artifact)?;
                if let Some(t) = i.threshold {
                    detector = detector.with_threshold(t);
                }
                Some(Arc::new(InjectionGuard {
                    detector,
                    block: i.block,
                    scan_tool_results: i.scan_tool_results,
                    fail_open: i.fail_open,
                }))
            }
            None => None,
        };
        let toxicity = match &spec.toxicity {
            Some(t) => {
                let mut detector = ToxicityDetector::from_artifact(&t.artifact)?;
                if let Some(v) = t.threshold {
                    detector = detector.with_threshold(v);
                }
                Some(ToxicityCheck {
                    detector,
                    action: t.action,
                })
            }
            None => None,
        };
        let compliance = spec.compliance.clone();
        let grounding = match &spec.grounding {
            Some(g) => Some(GroundingCheck {
                // The lexical head: it needs no model, and the static head measured no better
                // (eval/hallucination.md).
                scorer: Grounding::embedded()?.with_threshold(g.threshold),
                action: g.action,
                sources: g.context,
            }),
            None => None,
        };
        let bias = spec.bias.as_ref().map(|b| BiasCheck {
            detector: match b.threshold {
                Some(t) => BiasDetector::default().with_threshold(t),
                None => BiasDetector::default(),
            },
            action: b.action,
        });
        let checks =
            (toxicity.is_some() || compliance.is_some() || grounding.is_some() || bias.is_some())
                .then(|| {
                    Arc::new(OutputChecks {
                        toxicity,
                        compliance,
                        grounding,
                        bias,
                    })
                });
        let topics = match &spec.topics {
            Some(t) => {
                let model = models
                    .get(&t.embedder)
                    .map_err(GuardBuildError::TopicsEmbedder)?;
                let embed: BoxedEmbed = Box::new(move |text: &str| {
                    switchyard_cache::Embedder::embed(model.as_ref(), text)
                });
                Some(Arc::new(TopicsGuard {
                    filter: TopicFilter::new(t.topics.clone(), embed, t.thresholds)?,
                    refuse: t.refuse,
                    refusal: t.refusal.clone(),
                    fail_open: t.fail_open,
                }))
            }
            None => None,
        };
        let webhook = match &spec.webhook {
            Some(w) => Some(Arc::new(WebhookGuard {
                client: switchyard_providers::http_client(w.timeout)?,
                url: w.url.clone(),
                timeout: w.timeout,
                fail_open: w.fail_open,
            })),
            None => None,
        };
        Ok(GuardStage {
            pii,
            injection,
            topics,
            webhook,
            judge: spec.judge.clone(),
            checks,
            output: spec.output.clone(),
            screen_first: spec.screen_first,
        })
    }

    /// A watcher for a streamed answer, when output guards are on.
    pub fn stream_window(&self, request: &ChatCompletionRequest) -> Option<OutputWindow> {
        self.checks.as_ref().map(|c| c.window(request))
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
        self.checks.as_ref()?.review(request, response, verdicts)
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
        }
    }

    /// Masks `request` in place. `Err` when a finding's action is `block`.
    pub fn mask(
        &self,
        request: &mut ChatCompletionRequest,
        verdicts: &mut Vec<GuardVerdict>,
    ) -> Result<Option<Masking>, GatewayError> {
        let Some(pii) = &self.pii else {
            return Ok(None);
        };
        let started = Instant::now();
        let mut session = pii.masker.session(&pii.salt);
        let mut counts: std::collections::BTreeMap<&'static str, usize> = Default::default();
        let mut blocked = false;
        let mut flagged_only = true;
        for message in &mut request.messages {
            mask_message(&mut session, message, &mut |m| {
                blocked |= m.blocked;
                for f in &m.findings {
                    *counts.entry(f.kind.label()).or_default() += 1;
                    flagged_only &= f.action == switchyard_pii::Action::Allow;
                }
            });
        }
        let detail = counts
            .iter()
            .map(|(k, n)| format!("{k}:{n}"))
            .collect::<Vec<_>>()
            .join(",");
        let outcome = if blocked {
            Outcome::Blocked
        } else if counts.is_empty() {
            Outcome::Pass
        } else if flagged_only {
            Outcome::Flagged
        } else {
            Outcome::Masked
        };
        let verdict = GuardVerdict {
            guard: "pii",
            outcome,
            score: None,
            detail,
            ms: started.elapsed().as_secs_f64() * 1e3,
            blocks: blocked,
        };
        if blocked {
            let e = refusal(&verdict);
            verdicts.push(verdict);
            return Err(e);
        }
        verdicts.push(verdict);
        let restorations = session.restorations();
        Ok((!restorations.is_empty()).then_some(Masking { restorations }))
    }

    /// Starts the classifying guards: the injection screen at once on a blocking thread, the
    /// webhook when the screen is first polled. `None` when no such guard is on.
    pub fn screen(&self, request: &ChatCompletionRequest) -> Option<Screen> {
        let mut parts: Vec<OneScreen> = Vec::new();
        if let Some(guard) = self.injection.clone() {
            let fail_open = guard.fail_open;
            let texts: Vec<(Channel, String)> = request
                .messages
                .iter()
                .filter_map(|m| match m.role {
                    Role::User => Some((Channel::User, m.text())),
                    Role::Tool | Role::Function if guard.scan_tool_results => {
                        Some((Channel::Indirect, m.text()))
                    }
                    _ => None,
                })
                .filter(|(_, t)| !t.is_empty())
                .collect();
            let handle = crate::tasks::spawn_blocking(move || injection_verdict(&guard, &texts));
            parts.push(Box::pin(async move {
                handle
                    .await
                    .unwrap_or_else(|_| failed("injection", fail_open))
            }));
        }
        if let Some(guard) = self.topics.clone() {
            let fail_open = guard.fail_open;
            let text = last_user_text(request);
            let handle = crate::tasks::spawn_blocking(move || topics_verdict(&guard, &text));
            parts.push(Box::pin(async move {
                handle.await.unwrap_or_else(|_| failed("topics", fail_open))
            }));
        }
        if let Some(hook) = self.webhook.clone() {
            // The (masked) conversation, as the provider would see it.
            let body = serde_json::json!({
                "phase": "input",
                "model": request.model,
                "messages": request
                    .messages
                    .iter()
                    .map(|m| serde_json::json!({"role": m.role, "content": m.text()}))
                    .collect::<Vec<_>>(),
            });
            parts.push(Box::pin(async move { hook.ask(body).await }));
        }
        (!parts.is_empty()).then(|| Box::pin(futures::future::join_all(parts)) as Screen)
    }

    /// The answer a refusing screen gives instead of an error: the topic filter's polite
    /// refusal, when it is the first verdict that refuses.
    pub fn refusal_answer(&self, verdicts: &[GuardVerdict]) -> Option<&str> {
        let first = verdicts.iter().find(|v| v.blocks)?;
        match (&self.topics, first.guard, first.outcome) {
            (Some(t), "topics", Outcome::Refused) => Some(&t.refusal),
            _ => None,
        }
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

fn topics_verdict(guard: &TopicsGuard, text: &str) -> GuardVerdict {
    let started = Instant::now();
    let v = guard.filter.classify(text);
    let topic = match &v.reason {
        Reason::DeniedSimilar(t) | Reason::DeniedKeyword(t) => Some(t.as_str()),
        _ => v.best.as_ref().map(|(t, _)| t.as_str()),
    };
    let outcome = match (v.allowed, guard.refuse) {
        (true, _) => Outcome::Pass,
        (false, true) => Outcome::Refused,
        (false, false) => Outcome::Flagged,
    };
    GuardVerdict {
        guard: "topics",
        outcome,
        score: v.best.as_ref().map(|(_, s)| *s),
        detail: match topic {
            Some(t) => format!("{} {t}", v.reason.label()),
            None => v.reason.label().to_owned(),
        },
        ms: started.elapsed().as_secs_f64() * 1e3,
        blocks: !v.allowed && guard.refuse,
    }
}

/// Moves the request's `context` extension field (a string, or an array of strings or of
/// objects with `text` or `content`) into a system message named `context`, after the
/// leading system messages, so the model reads it, the cache keys on it, masking covers it,
/// and no provider is sent a field it does not know. `Err` when the field has another shape.
pub fn context_field_message(request: &mut ChatCompletionRequest) -> Result<(), GatewayError> {
    let Some(value) = request.extra.remove("context") else {
        return Ok(());
    };
    let piece = |v: &serde_json::Value| -> Option<String> {
        match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Object(o) => o
                .get("text")
                .or_else(|| o.get("content"))
                .and_then(|t| t.as_str())
                .map(str::to_owned),
            _ => None,
        }
    };
    let texts: Option<Vec<String>> = match &value {
        serde_json::Value::Array(items) => items.iter().map(piece).collect(),
        serde_json::Value::String(_) => piece(&value).map(|t| vec![t]),
        _ => None,
    };
    let Some(texts) = texts else {
        return Err(GatewayError::invalid(
            Some("context"),
            "`context` must be a string, or an array of strings or of objects with `text`",
        ));
    };
    let mut message = ChatMessage::new(Role::System, texts.join("\n\n"));
    message.name = Some(CONTEXT_NAME.to_owned());
    let at = request
        .messages
        .iter()
        .take_while(|m| matches!(m.role, Role::System | Role::Developer))
        .count();
    request.messages.insert(at, message);
    Ok(())
}

fn injection_verdict(guard: &InjectionGuard, texts: &[(Channel, String)]) -> GuardVerdict {
    let started = Instant::now();
    let mut worst: Option<switchyard_textclass::injection::Verdict> = None;
    for (channel, text) in texts {
        let v = guard.detector.scan(text, *channel);
        if worst.as_ref().is_none_or(|w| v.score > w.score) {
            worst = Some(v);
        }
    }
    let ms = started.elapsed().as_secs_f64() * 1e3;
    match worst {
        None => GuardVerdict {
            guard: "injection",
            outcome: Outcome::Pass,
            score: None,
            detail: String::new(),
            ms,
            blocks: false,
        },
        Some(v) => {
            let outcome = match (v.injection, guard.block) {
                (false, _) => Outcome::Pass,
                (true, true) => Outcome::Blocked,
                (true, false) => Outcome::Flagged,
            };
            GuardVerdict {
                guard: "injection",
                outcome,
                score: Some(v.score),
                // The rules that fired, or the classifier when it decided alone.
                detail: if v.rules.is_empty() && v.injection {
                    format!("classifier {:.2} >= {:.2}", v.score, v.threshold)
                } else {
                    v.rules.join(",")
                },
                ms,
                blocks: v.injection && guard.block,
            }
        }
    }
}

fn failed(guard: &'static str, fail_open: bool) -> GuardVerdict {
    GuardVerdict {
        guard,
        outcome: Outcome::Error,
        score: None,
        detail: String::new(),
        ms: 0.0,
        blocks: !fail_open,
    }
}

/// Masks every text a message carries: content (string or text parts) and tool-call
/// arguments.
fn mask_message(
    session: &mut MaskSession<'_>,
    message: &mut ChatMessage,
    seen: &mut dyn FnMut(&switchyard_pii::Masked),
) {
    let mut apply = |text: &mut String| {
        let m = session.mask(text);
        seen(&m);
        if !m.findings.is_empty() {
            *text = m.text;
        }
    };
    match &mut message.content {
        Some(MessageContent::Text(t)) => apply(t),
        Some(MessageContent::Parts(parts)) => {
            for p in parts {
                if let Some(t) = &mut p.text {
                    apply(t);
                }
            }
        }
        None => {}
    }
    for call in message.tool_calls.iter_mut().flatten() {
        apply(&mut call.function.arguments);
    }
}

/// Puts pseudonymised values back into a whole answer.
pub fn unmask_response(r: &mut switchyard_api::ChatCompletionResponse, m: &Masking) {
    for c in &mut r.choices {
        match &mut c.message.content {
            Some(MessageContent::Text(t)) => *t = m.restorations.unmask(t),
            Some(MessageContent::Parts(parts)) => {
                for p in parts {
                    if let Some(t) = &mut p.text {
                        *t = m.restorations.unmask(t);
                    }
                }
            }
            None => {}
        }
        for call in c.message.tool_calls.iter_mut().flatten() {
            call.function.arguments = m.restorations.unmask(&call.function.arguments);
        }
    }
}

/// Whether an output guard failed the answer (it was regenerated, replaced or its stream
/// stopped): rollouts and SLOs judge by the same outcomes as the KPIs.
pub fn answer_failed(outcomes: &[Outcome]) -> bool {
    outcomes.iter().any(|o| o.fails_answer())
}
