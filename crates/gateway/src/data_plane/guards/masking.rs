//! Masking: PII and secrets in every message become placeholders (or are redacted, hashed
//! or refused, per kind) before anything else reads the request; pseudonymised values are
//! put back into the answer.

use std::sync::Arc;
use std::time::Instant;

use switchyard_api::{ChatCompletionRequest, ChatMessage, MessageContent, Role};
use switchyard_control::PiiGuardSpec;
use switchyard_guards::output::CONTEXT_NAME;
use switchyard_guards::{GuardVerdict, Outcome};
use switchyard_pii::{MaskSession, Masker, Restorations, Scanner, ScannerConfig};

use super::errors::refusal;
use crate::error::GatewayError;

pub struct PiiGuard {
    masker: Masker,
    salt: Vec<u8>,
}

/// What masking left for the answer.
pub struct Masking {
    pub restorations: Restorations,
}

impl PiiGuard {
    /// `env` reads the hash salt's environment variable.
    pub fn build(
        p: &PiiGuardSpec,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, switchyard_pii::PiiError> {
        let scanner = Scanner::new(ScannerConfig::only(p.kinds.iter().copied()))?;
        // Hashes are comparable across restarts only with a configured salt; without one
        // each process draws its own, so they are at least not guessable.
        let salt = p
            .hash_salt_env
            .as_deref()
            .and_then(env)
            .map(String::into_bytes)
            .unwrap_or_else(|| rand::random::<[u8; 32]>().to_vec());
        Ok(PiiGuard {
            masker: Masker::new(Arc::new(scanner), p.policy.clone()),
            salt,
        })
    }

    /// Masks `request` in place: every message, and the fields a provider also reads (see
    /// [`mask_fields`]). `Err` when a finding's action is `block`.
    pub fn mask(
        &self,
        request: &mut ChatCompletionRequest,
        verdicts: &mut Vec<GuardVerdict>,
    ) -> Result<Option<Masking>, GatewayError> {
        let started = Instant::now();
        let mut session = self.masker.session(&self.salt);
        let mut tally = Tally::default();
        {
            let mut apply = |text: &mut String| tally.apply(&mut session, text);
            for message in &mut request.messages {
                mask_message(message, &mut apply);
            }
            mask_fields(request, &mut apply);
        }
        let verdict = tally.verdict(started);
        if verdict.blocks {
            let e = refusal(&verdict);
            verdicts.push(verdict);
            return Err(e);
        }
        verdicts.push(verdict);
        let restorations = session.restorations();
        Ok((!restorations.is_empty()).then_some(Masking { restorations }))
    }
}

/// What masking found across a request's texts.
struct Tally {
    counts: std::collections::BTreeMap<&'static str, usize>,
    blocked: bool,
    /// Every finding's action was `allow`: the guard flagged, changed nothing.
    allowed_only: bool,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            counts: Default::default(),
            blocked: false,
            allowed_only: true,
        }
    }
}

impl Tally {
    /// Masks one text in place and counts what was found.
    fn apply(&mut self, session: &mut MaskSession<'_>, text: &mut String) {
        let m = session.mask(text);
        self.blocked |= m.blocked;
        for f in &m.findings {
            *self.counts.entry(f.kind.label()).or_default() += 1;
            self.allowed_only &= f.action == switchyard_pii::Action::Allow;
        }
        if !m.findings.is_empty() {
            *text = m.text;
        }
    }

    fn verdict(self, started: Instant) -> GuardVerdict {
        let detail = self
            .counts
            .iter()
            .map(|(k, n)| format!("{k}:{n}"))
            .collect::<Vec<_>>()
            .join(",");
        let outcome = if self.blocked {
            Outcome::Blocked
        } else if self.counts.is_empty() {
            Outcome::Pass
        } else if self.allowed_only {
            Outcome::Flagged
        } else {
            Outcome::Masked
        };
        GuardVerdict {
            guard: "pii",
            outcome,
            score: None,
            detail,
            ms: started.elapsed().as_secs_f64() * 1e3,
            blocks: self.blocked,
        }
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

/// Masks every text a message carries: content (string or text parts) and tool-call
/// arguments.
fn mask_message(message: &mut ChatMessage, apply: &mut dyn FnMut(&mut String)) {
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

/// How deep a tool's parameter schema is searched for descriptions: schemas nest a few
/// levels; a caller's pathological nesting must not cost unbounded work.
const MAX_SCHEMA_DEPTH: usize = 16;

/// Masks the request's fields outside the messages that a provider also receives and that
/// carry people's data in practice: `user` and `safety_identifier` (often an e-mail address),
/// `metadata`'s string values, and the tools' descriptions (the function's and those in its
/// parameter schema). Names, keys and enum values stay: they are the contract with the
/// caller's code, and an answer's tool call must still name the function.
fn mask_fields(request: &mut ChatCompletionRequest, apply: &mut dyn FnMut(&mut String)) {
    if let Some(user) = &mut request.user {
        apply(user);
    }
    if let Some(serde_json::Value::String(id)) = request.extra.get_mut("safety_identifier") {
        apply(id);
    }
    if let Some(serde_json::Value::Object(metadata)) = request.extra.get_mut("metadata") {
        for value in metadata.values_mut() {
            if let serde_json::Value::String(v) = value {
                apply(v);
            }
        }
    }
    for tool in request.tools.iter_mut().flatten() {
        if let Some(d) = &mut tool.function.description {
            apply(d);
        }
        if let Some(schema) = &mut tool.function.parameters {
            mask_descriptions(schema, MAX_SCHEMA_DEPTH, apply);
        }
    }
}

/// Masks every string under a `description` key of a JSON schema.
fn mask_descriptions(
    schema: &mut serde_json::Value,
    depth: usize,
    apply: &mut dyn FnMut(&mut String),
) {
    let Some(depth) = depth.checked_sub(1) else {
        return;
    };
    match schema {
        serde_json::Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                match value {
                    serde_json::Value::String(text) if key == "description" => apply(text),
                    _ => mask_descriptions(value, depth, apply),
                }
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                mask_descriptions(item, depth, apply);
            }
        }
        _ => {}
    }
}

/// Puts pseudonymised values back into a whole answer.
pub fn unmask_response(r: &mut switchyard_api::ChatCompletionResponse, m: &Masking) {
    let before: Vec<String> = r.choices.iter().map(|c| c.message.text()).collect();
    unmask_choices(r, m);
    forget_rewritten_logprobs(r, &before);
}

fn unmask_choices(r: &mut switchyard_api::ChatCompletionResponse, m: &Masking) {
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

/// A choice whose text the gateway rewrote (a disclaimer added, values put back) loses its
/// `logprobs`: they described tokens the client no longer gets as sent. `before` holds each
/// choice's text before the rewrite, in order.
pub fn forget_rewritten_logprobs(
    response: &mut switchyard_api::ChatCompletionResponse,
    before: &[String],
) {
    for (c, before) in response.choices.iter_mut().zip(before) {
        if c.logprobs.is_some() && c.message.text() != *before {
            c.logprobs = None;
        }
    }
}
