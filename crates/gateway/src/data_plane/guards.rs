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

use serde::Serialize;
use switchyard_api::{ChatCompletionRequest, ChatMessage, MessageContent, Role};
use switchyard_control::{
    ComplianceGuardSpec, ContextSources, GuardsSpec, OutputAction, OutputPolicySpec,
};
use switchyard_grounding::{Context as GroundingContext, Grounding};
use switchyard_pii::{MaskSession, Masker, Restorations, Scanner, ScannerConfig};
use switchyard_textclass::injection::{Channel, Detector};
use switchyard_textclass::toxicity::ToxicityDetector;
use switchyard_topics::{BiasDetector, Reason, TopicFilter};

use crate::data_plane::cache::StaticModels;

/// The classifying guards of one request, started together; resolves to every verdict.
pub type Screen = std::pin::Pin<Box<dyn Future<Output = Vec<GuardVerdict>> + Send>>;
type OneScreen = std::pin::Pin<Box<dyn Future<Output = GuardVerdict> + Send>>;

use crate::error::{ErrorKind, GatewayError};

/// One guard's verdict on one request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GuardVerdict {
    pub guard: &'static str,
    /// `pass`, `masked`, `flagged`, `blocked` or `error`.
    pub outcome: &'static str,
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
    /// `name=outcome(detail)` for the header.
    pub fn summary(&self) -> String {
        match (&self.score, self.detail.is_empty()) {
            (Some(s), true) => format!("{}={}({s:.2})", self.guard, self.outcome),
            (Some(s), false) => format!("{}={}({s:.2};{})", self.guard, self.outcome, self.detail),
            (None, true) => format!("{}={}", self.guard, self.outcome),
            (None, false) => format!("{}={}({})", self.guard, self.outcome, self.detail),
        }
    }

    /// The refusal a blocking verdict becomes.
    pub fn refusal(&self) -> GatewayError {
        let what = if self.outcome == "error" {
            format!(
                "the {} guard failed and is configured to refuse when it fails",
                self.guard
            )
        } else {
            format!(
                "the {} guard refused the request ({})",
                self.guard, self.detail
            )
        };
        let e = GatewayError::new(ErrorKind::InvalidRequest, "content_policy_violation", what);
        // Input guards read the conversation; a guard that failed refused no field of it.
        if self.outcome == "error" {
            e
        } else {
            e.with_param("messages")
        }
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

struct ToxicityGuard {
    detector: ToxicityDetector,
    action: OutputAction,
}

/// A text embedder the topic filter can own.
type BoxedEmbed = Box<dyn Fn(&str) -> Vec<f32> + Send + Sync>;

struct TopicsGuard {
    filter: TopicFilter<BoxedEmbed>,
    refuse: bool,
    refusal: String,
    fail_open: bool,
}

struct GroundingGuard {
    scorer: Grounding,
    action: OutputAction,
    sources: ContextSources,
}

struct BiasGuard {
    detector: BiasDetector,
    action: OutputAction,
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
            Some("allow") => ("pass", false),
            Some("flag") => ("flagged", false),
            Some("block") => ("blocked", true),
            // No answer in time, an error status, or an answer we cannot read.
            _ => ("error", !self.fail_open),
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

/// The output guards, shared with the streams they watch.
pub struct OutputChecks {
    toxicity: Option<ToxicityGuard>,
    compliance: Option<ComplianceGuardSpec>,
    grounding: Option<GroundingGuard>,
    bias: Option<BiasGuard>,
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
                Some(ToxicityGuard {
                    detector,
                    action: t.action,
                })
            }
            None => None,
        };
        let compliance = spec.compliance.clone();
        let grounding = match &spec.grounding {
            Some(g) => Some(GroundingGuard {
                // The lexical head: it needs no model, and the static head measured no better
                // (eval/hallucination.md).
                scorer: Grounding::embedded()?.with_threshold(g.threshold),
                action: g.action,
                sources: g.context,
            }),
            None => None,
        };
        let bias = spec.bias.as_ref().map(|b| BiasGuard {
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
        let checks = self.checks.clone()?;
        let context = checks.grounding.as_ref().and_then(|g| {
            grounding_context(request, g.sources).map(|text| GroundingContext::new(&text, None))
        });
        Some(OutputWindow {
            checks,
            context,
            question: last_user_text(request),
            wants_json: json_requested(request),
            pending: String::new(),
            released: String::new(),
            finished: false,
            verdicts: Vec::new(),
        })
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

    /// Checks a whole answer. Appends missing disclaimers in place; returns the first failure
    /// that is not only flagged, with its action. Every check's verdict is pushed.
    pub fn review(
        &self,
        request: &ChatCompletionRequest,
        response: &mut switchyard_api::ChatCompletionResponse,
        verdicts: &mut Vec<GuardVerdict>,
    ) -> Option<(GuardVerdict, OutputAction)> {
        let mut failure = None;
        let Some(checks) = &self.checks else {
            return None;
        };
        let text = response.text();
        // A classifying check's verdict: `pass`, `flagged` (found, but the action only flags)
        // or `failed`; the first failure is returned.
        let mut judged = |guard: &'static str,
                          found: bool,
                          action: OutputAction,
                          score: f32,
                          detail: &dyn Fn() -> String,
                          started: Instant| {
            let outcome = match (found, action) {
                (false, _) => "pass",
                (true, OutputAction::Flag) => "flagged",
                (true, _) => "failed",
            };
            let verdict = GuardVerdict {
                guard,
                outcome,
                score: Some(score),
                detail: if found { detail() } else { String::new() },
                ms: started.elapsed().as_secs_f64() * 1e3,
                blocks: false,
            };
            if outcome == "failed" && failure.is_none() {
                failure = Some((verdict.clone(), action));
            }
            verdicts.push(verdict);
        };
        if let Some(t) = &checks.toxicity {
            let started = Instant::now();
            let v = t.detector.scan(&text);
            let detail = || toxicity_detail(&v);
            judged("toxicity", v.toxic, t.action, v.score, &detail, started);
        }
        if let Some(g) = &checks.grounding {
            if let Some(context) = grounding_context(request, g.sources) {
                let started = Instant::now();
                let v = g.scorer.check_lexical(&context, &text);
                let detail = || grounding_detail(&v);
                judged(
                    "grounding",
                    !v.supported,
                    g.action,
                    v.score,
                    &detail,
                    started,
                );
            }
        }
        if let Some(b) = &checks.bias {
            let started = Instant::now();
            let v = b.detector.scan(&text);
            let detail = || bias_detail(&v);
            judged("bias", v.biased, b.action, v.score, &detail, started);
        }
        if let Some(c) = &checks.compliance {
            let started = Instant::now();
            let (problem, added) = compliance(c, request, response);
            let failed = problem.is_some() && c.action != OutputAction::Flag;
            let verdict = GuardVerdict {
                guard: "compliance",
                outcome: match (&problem, failed, added) {
                    (Some(_), true, _) => "failed",
                    (Some(_), false, _) => "flagged",
                    (None, _, true) => "fixed",
                    (None, _, false) => "pass",
                },
                score: None,
                detail: problem.unwrap_or_else(|| {
                    if added {
                        "disclaimer added".to_owned()
                    } else {
                        String::new()
                    }
                }),
                ms: started.elapsed().as_secs_f64() * 1e3,
                blocks: false,
            };
            if failed && failure.is_none() {
                failure = Some((verdict.clone(), c.action));
            }
            verdicts.push(verdict);
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
            "blocked"
        } else if counts.is_empty() {
            "pass"
        } else if flagged_only {
            "flagged"
        } else {
            "masked"
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
            let e = verdict.refusal();
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
            (Some(t), "topics", "refused") => Some(&t.refusal),
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
            return (Err(refusing.refusal()), verdicts);
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
        (true, _) => "pass",
        (false, true) => "refused",
        (false, false) => "flagged",
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

/// The context an answer must be grounded in, from the places the guard reads: system
/// messages named `context` (where the `context` field goes, see [`context_field_message`]),
/// tool results, system messages. `None` when there is none.
fn grounding_context(request: &ChatCompletionRequest, sources: ContextSources) -> Option<String> {
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
            outcome: "pass",
            score: None,
            detail: String::new(),
            ms,
            blocks: false,
        },
        Some(v) => {
            let outcome = match (v.injection, guard.block) {
                (false, _) => "pass",
                (true, true) => "blocked",
                (true, false) => "flagged",
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

fn toxicity_detail(v: &switchyard_textclass::toxicity::ToxicityVerdict) -> String {
    v.categories
        .iter()
        .map(|c| c.name())
        .collect::<Vec<_>>()
        .join(",")
}

/// How many sentences fell short, and the numbers and names the context never mentions.
fn grounding_detail(v: &switchyard_grounding::GroundingVerdict) -> String {
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

fn bias_detail(v: &switchyard_topics::BiasVerdict) -> String {
    v.patterns
        .iter()
        .map(|p| p.name())
        .chain(v.groups.iter().map(|g| g.name()))
        .collect::<Vec<_>>()
        .join(",")
}

fn failed(guard: &'static str, fail_open: bool) -> GuardVerdict {
    GuardVerdict {
        guard,
        outcome: "error",
        score: None,
        detail: String::new(),
        ms: 0.0,
        blocks: !fail_open,
    }
}

/// Compliance rules on an answer: the first problem, and whether a disclaimer was appended.
fn compliance(
    c: &ComplianceGuardSpec,
    request: &ChatCompletionRequest,
    response: &mut switchyard_api::ChatCompletionResponse,
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

fn last_user_text(request: &ChatCompletionRequest) -> String {
    request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .map(ChatMessage::text)
        .unwrap_or_default()
}

fn json_requested(request: &ChatCompletionRequest) -> bool {
    request
        .response_format
        .as_ref()
        .and_then(|f| serde_json::to_value(f).ok())
        .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_owned))
        .is_some_and(|t| t == "json_object" || t == "json_schema")
}

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
        if let Some(c) = &self.checks.compliance {
            for (when, disclaimer) in &c.disclaimers {
                if (when.is_match(&self.question) || when.is_match(&self.released))
                    && !self.released.contains(disclaimer.as_str())
                {
                    let add = format!("\n\n{disclaimer}");
                    self.released.push_str(&add);
                    out.push_str(&add);
                    self.verdicts
                        .push(verdict("compliance", "fixed", None, "disclaimer added"));
                }
            }
            if c.json
                && self.wants_json
                && serde_json::from_str::<serde_json::Value>(self.released.trim()).is_err()
            {
                self.verdicts.push(verdict(
                    "compliance",
                    "flagged",
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
        if let Some(t) = &checks.toxicity {
            let v = t.detector.scan(&window);
            if v.toxic {
                if let Some(stop) = self.found("toxicity", t.action, v.score, &toxicity_detail(&v))
                {
                    return Err(stop);
                }
            }
        }
        if let (Some(g), Some(cx)) = (&checks.grounding, self.context.take()) {
            // Support is per sentence, so only the new sentences are scored.
            let v = g.scorer.check_prepared(&cx, &ready, None);
            self.context = Some(cx);
            if !v.supported {
                let detail = grounding_detail(&v);
                if let Some(stop) = self.found("grounding", g.action, v.score, &detail) {
                    return Err(stop);
                }
            }
        }
        if let Some(b) = &checks.bias {
            let v = b.detector.scan(&window);
            if v.biased {
                if let Some(stop) = self.found("bias", b.action, v.score, &bias_detail(&v)) {
                    return Err(stop);
                }
            }
        }
        if let Some(c) = &checks.compliance {
            let total = self.released.chars().count() + ready.chars().count();
            let problem = c
                .forbidden
                .iter()
                .position(|re| re.is_match(&window))
                .map(|i| format!("forbidden[{i}]"))
                .or_else(|| {
                    c.max_chars
                        .filter(|max| total > *max)
                        .map(|max| format!("more than {max} characters"))
                });
            if let Some(p) = problem {
                if c.action != OutputAction::Flag {
                    let stop = verdict("compliance", "stopped", None, &p);
                    self.verdicts.push(stop.clone());
                    return Err(stop);
                }
                self.verdicts
                    .push(verdict("compliance", "flagged", None, &p));
            }
        }
        self.released.push_str(&ready);
        Ok(ready)
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
            let stop = verdict(guard, "stopped", Some(score), detail);
            self.verdicts.push(stop.clone());
            return Some(stop);
        }
        if !self.verdicts.iter().any(|x| x.guard == guard) {
            self.verdicts
                .push(verdict(guard, "flagged", Some(score), detail));
        }
        None
    }
}

fn verdict(
    guard: &'static str,
    outcome: &'static str,
    score: Option<f32>,
    detail: &str,
) -> GuardVerdict {
    GuardVerdict {
        guard,
        outcome,
        score,
        detail: detail.to_owned(),
        ms: 0.0,
        blocks: false,
    }
}

/// The byte offset just after the last sentence end in `text` (`.`, `!`, `?` or a newline
/// followed by whitespace, or a newline), if any.
fn sentence_cut(text: &str) -> Option<usize> {
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
fn sentence_start_of_tail(text: &str) -> usize {
    let trimmed = text.trim_end();
    sentence_cut(trimmed).unwrap_or(0)
}

/// When the request asked for JSON: whether the answer is JSON, with the schema's required
/// top-level fields.
fn json_problem(request: &ChatCompletionRequest, text: &str) -> Option<String> {
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
/// stopped), from the record's verdict outcomes: rollouts and SLOs judge by the same outcomes
/// as the KPIs ([`switchyard_store::kpi::fails_answer`]).
pub fn answer_failed(outcomes: &[&str]) -> bool {
    outcomes
        .iter()
        .any(|o| switchyard_store::kpi::fails_answer(o))
}

/// The verdict outcomes of a stored record's `guards` (JSON), for [`answer_failed`].
pub fn stored_outcomes(guards: Option<&str>) -> Vec<String> {
    guards
        .and_then(|g| serde_json::from_str::<Vec<serde_json::Value>>(g).ok())
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v["outcome"].as_str().map(str::to_owned))
        .collect()
}

/// The header value summarising every verdict.
pub fn header_value(verdicts: &[GuardVerdict]) -> String {
    verdicts
        .iter()
        .map(GuardVerdict::summary)
        .collect::<Vec<_>>()
        .join("; ")
}
