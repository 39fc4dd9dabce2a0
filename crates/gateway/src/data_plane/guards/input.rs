//! The classifying input guards (injection, topics, harmful requests, a team's webhook): they
//! only read the request, so they run alongside the provider call as one screen. Built from
//! config as a list, in the order their verdicts are recorded.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use switchyard_api::{ChatCompletionRequest, Role};
use switchyard_control::{HarmfulGuardSpec, InjectionGuardSpec, TopicsGuardSpec, WebhookGuardSpec};
use switchyard_guards::output::last_user_text;
use switchyard_guards::{GuardVerdict, Outcome};
use switchyard_textclass::harmful::{Embedding, HarmfulClassifier, HarmfulVerdict};
use switchyard_textclass::injection::{Channel, Detector};
use switchyard_topics::{Reason, TopicFilter};

use super::errors::GuardBuildError;
use crate::data_plane::cache::{StaticModel, StaticModels};

/// One classifying guard's verdict, on its way.
pub type OneScreen = std::pin::Pin<Box<dyn Future<Output = GuardVerdict> + Send>>;

/// A classifying input guard, as configured.
pub enum InputScreen {
    Injection(Arc<InjectionGuard>),
    Topics(Arc<TopicsGuard>),
    Harmful(Arc<HarmfulGuard>),
    Webhook(Arc<WebhookGuard>),
}

impl InputScreen {
    pub fn injection(spec: &InjectionGuardSpec) -> Result<Self, GuardBuildError> {
        Ok(InputScreen::Injection(Arc::new(InjectionGuard::build(
            spec,
        )?)))
    }

    /// `models` loads the static embedding model the filter needs (shared with the cache).
    pub fn topics(
        spec: &TopicsGuardSpec,
        models: &mut StaticModels,
    ) -> Result<Self, GuardBuildError> {
        Ok(InputScreen::Topics(Arc::new(TopicsGuard::build(
            spec, models,
        )?)))
    }

    /// `models` loads the static embedding model the classifier needs (shared with the cache).
    pub fn harmful(
        spec: &HarmfulGuardSpec,
        models: &mut StaticModels,
    ) -> Result<Self, GuardBuildError> {
        Ok(InputScreen::Harmful(Arc::new(HarmfulGuard::build(
            spec, models,
        )?)))
    }

    pub fn webhook(spec: &WebhookGuardSpec) -> Result<Self, GuardBuildError> {
        Ok(InputScreen::Webhook(Arc::new(WebhookGuard::build(spec)?)))
    }

    /// Starts the guard on `request`: the classifiers at once on the model pool, the
    /// webhook when the screen is first polled.
    pub fn start(&self, request: &ChatCompletionRequest) -> OneScreen {
        match self {
            InputScreen::Injection(guard) => {
                let guard = guard.clone();
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
                let handle = crate::tasks::classify(move || injection_verdict(&guard, &texts));
                Box::pin(async move {
                    handle
                        .await
                        .unwrap_or_else(|_| failed("injection", fail_open))
                })
            }
            InputScreen::Topics(guard) => {
                let guard = guard.clone();
                let fail_open = guard.fail_open;
                let text = last_user_text(request);
                let handle = crate::tasks::classify(move || topics_verdict(&guard, &text));
                Box::pin(
                    async move { handle.await.unwrap_or_else(|_| failed("topics", fail_open)) },
                )
            }
            InputScreen::Harmful(guard) => {
                let guard = guard.clone();
                let fail_open = guard.fail_open;
                let texts: Vec<String> = request
                    .messages
                    .iter()
                    .filter(|m| m.role == Role::User)
                    .map(|m| m.text())
                    .filter(|t| !t.trim().is_empty())
                    .collect();
                let handle = crate::tasks::classify(move || harmful_verdict(&guard, &texts));
                Box::pin(async move {
                    handle
                        .await
                        .unwrap_or_else(|_| failed("harmful", fail_open))
                })
            }
            InputScreen::Webhook(hook) => {
                let hook = hook.clone();
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
                Box::pin(async move { hook.ask(body).await })
            }
        }
    }

    /// The answer this guard gives instead of an error when `verdict` (its own) refuses:
    /// the topic filter's polite refusal.
    pub fn refusal_answer(&self, verdict: &GuardVerdict) -> Option<&str> {
        match (self, verdict.guard, verdict.outcome) {
            (InputScreen::Topics(t), "topics", Outcome::Refused) => Some(&t.refusal),
            _ => None,
        }
    }
}

pub struct InjectionGuard {
    detector: Detector,
    block: bool,
    scan_tool_results: bool,
    fail_open: bool,
}

impl InjectionGuard {
    fn build(i: &InjectionGuardSpec) -> Result<Self, GuardBuildError> {
        let mut detector = Detector::from_artifact(&i.artifact)?;
        if let Some(t) = i.threshold {
            detector = detector.with_threshold(t);
        }
        Ok(InjectionGuard {
            detector,
            block: i.block,
            scan_tool_results: i.scan_tool_results,
            fail_open: i.fail_open,
        })
    }
}

/// The harmful-request classifier with the static model it embeds requests with.
pub struct HarmfulGuard {
    classifier: HarmfulClassifier,
    embedder: Option<Arc<StaticModel>>,
    block: bool,
    categories: std::collections::BTreeSet<&'static str>,
    fail_open: bool,
}

impl HarmfulGuard {
    fn build(h: &HarmfulGuardSpec, models: &mut StaticModels) -> Result<Self, GuardBuildError> {
        let mut classifier = h.artifact.classifier()?;
        if let Some(t) = h.threshold {
            classifier = classifier.with_threshold(t);
        }
        // Validation refused the MiniLM kind; `None` needs no model.
        let embedder = match classifier.embedding() {
            Embedding::Static => {
                let model = models
                    .get(&h.embedder)
                    .map_err(GuardBuildError::HarmfulEmbedder)?;
                // Another model's vectors would fail every request (closed: refuse them all).
                let (found, expected) = (model.0.dim(), classifier.layout().dense_dim);
                if found != expected {
                    return Err(GuardBuildError::HarmfulDimension { found, expected });
                }
                Some(model)
            }
            Embedding::None | Embedding::Minilm => None,
        };
        Ok(HarmfulGuard {
            classifier,
            embedder,
            block: h.block,
            categories: h.categories.clone(),
            fail_open: h.fail_open,
        })
    }

    /// The classifier's verdict on one text; `None` when the embedding does not fit it.
    fn classify(&self, text: &str) -> Option<HarmfulVerdict> {
        let dense = match &self.embedder {
            Some(m) => switchyard_cache::Embedder::embed(m.as_ref(), text),
            None => Vec::new(),
        };
        self.classifier.classify(text, &dense)
    }
}

/// A text embedder the topic filter can own.
type BoxedEmbed = Box<dyn Fn(&str) -> Vec<f32> + Send + Sync>;

pub struct TopicsGuard {
    filter: TopicFilter<BoxedEmbed>,
    refuse: bool,
    refusal: String,
    fail_open: bool,
}

impl TopicsGuard {
    fn build(t: &TopicsGuardSpec, models: &mut StaticModels) -> Result<Self, GuardBuildError> {
        let model = models
            .get(&t.embedder)
            .map_err(GuardBuildError::TopicsEmbedder)?;
        let embed: BoxedEmbed =
            Box::new(move |text: &str| switchyard_cache::Embedder::embed(model.as_ref(), text));
        Ok(TopicsGuard {
            filter: TopicFilter::new(t.topics.clone(), embed, t.thresholds)?,
            refuse: t.refuse,
            refusal: t.refusal.clone(),
            fail_open: t.fail_open,
        })
    }
}

/// A team's own service, asked about the request alongside the call.
pub struct WebhookGuard {
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
    fn build(w: &WebhookGuardSpec) -> Result<Self, GuardBuildError> {
        Ok(WebhookGuard {
            client: switchyard_providers::http_client(w.timeout)?,
            url: w.url.clone(),
            timeout: w.timeout,
            fail_open: w.fail_open,
        })
    }

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

/// The worst of the user messages decides: a harmful request cannot hide behind a later,
/// harmless turn ("answer the question above").
fn harmful_verdict(guard: &HarmfulGuard, texts: &[String]) -> GuardVerdict {
    let started = Instant::now();
    let mut worst: Option<HarmfulVerdict> = None;
    for text in texts {
        let Some(v) = guard.classify(text) else {
            return failed("harmful", guard.fail_open);
        };
        if worst.as_ref().is_none_or(|w| v.score > w.score) {
            worst = Some(v);
        }
    }
    let ms = started.elapsed().as_secs_f64() * 1e3;
    let Some(v) = worst else {
        return GuardVerdict {
            guard: "harmful",
            outcome: Outcome::Pass,
            score: None,
            detail: String::new(),
            ms,
            blocks: false,
        };
    };
    // Harmful in an area the guard does not act on: passed, with its area on record.
    let acts = v.harmful && guard.categories.contains(v.category);
    let outcome = match (acts, guard.block) {
        (false, _) => Outcome::Pass,
        (true, true) => Outcome::Blocked,
        (true, false) => Outcome::Flagged,
    };
    if v.harmful {
        use crate::metrics::{self as m, LabelValue};
        m::counter(
            m::HARMFUL_REQUESTS,
            &[
                ("category", LabelValue::fixed(v.category)),
                ("outcome", LabelValue::fixed(outcome.as_str())),
            ],
        )
        .increment(1);
    }
    GuardVerdict {
        guard: "harmful",
        outcome,
        score: Some(v.score),
        // The nearest risk area, named for every scored request; a harmful one says so.
        detail: if v.harmful {
            format!("{} {:.2} >= {:.2}", v.category, v.score, v.threshold)
        } else {
            v.category.to_owned()
        },
        ms,
        blocks: acts && guard.block,
    }
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
