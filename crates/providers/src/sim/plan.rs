//! What a simulated model answers: the decision from rules, tools, `response_format` and echo,
//! then clamping to the output cap and stop sequences.
//!
//! The plan is a pure function of (seed, model, request), so identical prompts get identical
//! answers; timing and faults are drawn elsewhere, per call.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use switchyard_api::{
    finish_reason, ChatCompletionRequest, ResponseFormat, Tool, ToolChoice, ToolChoiceMode,
};
use switchyard_control::{SimModelSpec, SimRuleAction};

use super::schema;
use super::text::{self, Pieces, StableHasher};
use crate::{tokens, ProviderError};

/// Characters per piece of JSON output (tool arguments, JSON replies): about one BPE token.
const JSON_PIECE_CHARS: usize = 4;

/// The answer to one request, before timing.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) output: Output,
    pub(crate) finish_reason: &'static str,
    /// The stop sequence that cut the text, reported as the choice's `stop_reason`.
    pub(crate) stop_sequence: Option<String>,
    pub(crate) prompt_tokens: u32,
}

#[derive(Debug)]
pub(crate) enum Output {
    Text(Pieces),
    ToolCall {
        id: String,
        name: String,
        arguments: Pieces,
    },
}

impl Plan {
    pub(crate) fn pieces(&self) -> &Pieces {
        match &self.output {
            Output::Text(p) => p,
            Output::ToolCall { arguments, .. } => arguments,
        }
    }

    /// The simulator's completion tokens are its pieces: what it paced, clamped and sent.
    pub(crate) fn completion_tokens(&self) -> u32 {
        u32::try_from(self.pieces().len()).unwrap_or(u32::MAX)
    }
}

/// What the rules and the request ask for, before it is rendered into pieces.
enum Decision {
    Text(String),
    Json(String),
    Generated,
    ToolCall(String),
}

/// Rejects tool requests the real API rejects, before any time is spent.
pub(crate) fn validate(req: &ChatCompletionRequest) -> Result<(), ProviderError> {
    let tools = req.tools.as_deref().unwrap_or_default();
    let bad = |message: String| ProviderError::Status {
        status: 400,
        message,
        retry_after: None,
    };
    match &req.tool_choice {
        Some(ToolChoice::Mode(ToolChoiceMode::Required)) if tools.is_empty() => Err(bad(
            "tool_choice is \"required\" but no tools were given".to_owned(),
        )),
        Some(ToolChoice::Named(n)) if find_tool(tools, &n.function.name).is_none() => {
            Err(bad(format!(
                "tool_choice names `{}`, which is not in tools",
                n.function.name
            )))
        }
        _ => Ok(()),
    }
}

/// The text seed: (seed, model, messages, request seed) and nothing else.
pub(crate) fn text_seed(model_seed: u64, req: &ChatCompletionRequest) -> u64 {
    let mut h = StableHasher::new(model_seed);
    for m in &req.messages {
        h.str(m.role.as_str()).str(&m.text());
        h.str(m.name.as_deref().unwrap_or(""));
        h.str(m.tool_call_id.as_deref().unwrap_or(""));
        for call in m.tool_calls.iter().flatten() {
            h.str(&call.function.name).str(&call.function.arguments);
        }
    }
    if let Some(seed) = req.seed {
        h.u64(seed as u64);
    }
    h.finish()
}

/// The answer `spec` gives to `req`, or the error a rule asks for.
pub(crate) fn plan(
    model: &str,
    spec: &SimModelSpec,
    seed: u64,
    req: &ChatCompletionRequest,
) -> Result<Plan, ProviderError> {
    let prompt = req.last_user_text().unwrap_or_default();
    let tools = req.tools.as_deref().unwrap_or_default();
    let mut rng = StdRng::seed_from_u64(seed);
    let decision = decide(spec, req, tools, &prompt, &mut rng)?;
    let cap = req.output_cap().map_or(usize::MAX, |c| c as usize);
    let stops = req.stop_sequences();

    let (output, clamped, stopped) = match decision {
        Decision::ToolCall(name) => {
            let params = find_tool(tools, &name).and_then(|t| t.function.parameters.as_ref());
            let args = match params {
                Some(schema) => schema::instance(schema, &prompt).to_string(),
                None => "{}".to_owned(),
            };
            let mut arguments = Pieces::runs(args, JSON_PIECE_CHARS);
            let clamped = arguments.truncate(cap);
            let id = format!("call_{:016x}", text::mix(seed ^ 0xca11));
            (
                Output::ToolCall {
                    id,
                    name,
                    arguments,
                },
                clamped,
                None,
            )
        }
        Decision::Generated => {
            let z: f64 = rng.sample(StandardNormal);
            // `as` saturates, so an absurd draw is merely long.
            let n = spec.output_tokens.value(z).round().max(1.0) as usize;
            let pieces = text::generate(model, n.min(cap), &mut rng);
            text_output(pieces, n > cap, &stops)
        }
        Decision::Json(t) => clamp_text(Pieces::runs(t, JSON_PIECE_CHARS), cap, &stops),
        Decision::Text(t) => clamp_text(Pieces::words(t), cap, &stops),
    };
    let finish_reason = match (&output, clamped && stopped.is_none()) {
        (_, true) => finish_reason::LENGTH,
        (Output::ToolCall { .. }, false) => finish_reason::TOOL_CALLS,
        (Output::Text(_), false) => finish_reason::STOP,
    };
    // A simulated model's usage is exact, as a real one's: wait for the tokenizer (loading
    // since the provider was made, so only a request at start-up waits).
    tokens::warm_up();
    Ok(Plan {
        output,
        finish_reason,
        stop_sequence: stopped,
        prompt_tokens: tokens::count_messages(&req.messages),
    })
}

fn clamp_text(mut pieces: Pieces, cap: usize, stops: &[String]) -> (Output, bool, Option<String>) {
    let clamped = pieces.truncate(cap);
    text_output(pieces, clamped, stops)
}

/// Text output after stop sequences: (output, clamped, the stop sequence that cut it).
fn text_output(
    mut pieces: Pieces,
    clamped: bool,
    stops: &[String],
) -> (Output, bool, Option<String>) {
    let stopped = pieces.stop_at(stops);
    (Output::Text(pieces), clamped, stopped)
}

/// 1. The first rule whose pattern matches the last user message decides, except that a
///    tool-call rule applies only when the request offers that tool and allows tools.
/// 2. A forced `tool_choice` (a named function, or "required") always gets a tool call: the
///    named one, else the rule's, else the tool that best matches the prompt.
/// 3. Otherwise: the rule's reply, an echo, a JSON reply for `response_format`, or generated
///    sentences.
fn decide(
    spec: &SimModelSpec,
    req: &ChatCompletionRequest,
    tools: &[Tool],
    prompt: &str,
    rng: &mut StdRng,
) -> Result<Decision, ProviderError> {
    let tools_allowed = !tools.is_empty()
        && !matches!(
            req.tool_choice,
            Some(ToolChoice::Mode(ToolChoiceMode::None))
        );
    let rule = spec.rules.iter().find(|r| {
        r.pattern.is_match(prompt)
            && match &r.action {
                SimRuleAction::ToolCall(name) => tools_allowed && find_tool(tools, name).is_some(),
                _ => true,
            }
    });
    if let Some(r) = rule {
        if let SimRuleAction::Error(status) = r.action {
            return Err(ProviderError::Status {
                status,
                message: format!("simulated error: the prompt matched `{}`", r.pattern),
                retry_after: (status == 429).then_some(std::time::Duration::from_secs(1)),
            });
        }
    }
    let rule_tool = rule.and_then(|r| match &r.action {
        SimRuleAction::ToolCall(name) => Some(name.clone()),
        _ => None,
    });
    match &req.tool_choice {
        Some(ToolChoice::Named(n)) => return Ok(Decision::ToolCall(n.function.name.clone())),
        Some(ToolChoice::Mode(ToolChoiceMode::Required)) => {
            let name = rule_tool.unwrap_or_else(|| best_tool(tools, prompt));
            return Ok(Decision::ToolCall(name));
        }
        _ => {}
    }
    if let Some(name) = rule_tool {
        return Ok(Decision::ToolCall(name));
    }
    if let Some(SimRuleAction::Reply(text)) = rule.map(|r| &r.action) {
        return Ok(Decision::Text(text.replace("{{echo}}", prompt)));
    }
    if spec.echo {
        return Ok(Decision::Text(prompt.to_owned()));
    }
    Ok(match &req.response_format {
        Some(ResponseFormat::JsonObject) => Decision::Json(json_object(req, rng)),
        Some(ResponseFormat::JsonSchema { json_schema }) => {
            let schema = json_schema
                .schema
                .clone()
                .unwrap_or_else(|| serde_json::json!({"type": "object"}));
            Decision::Json(schema::instance(&schema, prompt).to_string())
        }
        _ => Decision::Generated,
    })
}

/// A small JSON object that still says it is simulated.
fn json_object(req: &ChatCompletionRequest, rng: &mut StdRng) -> String {
    serde_json::json!({
        "simulated": true,
        "model": req.model,
        "answer": text::sentence(rng),
    })
    .to_string()
}

fn find_tool<'a>(tools: &'a [Tool], name: &str) -> Option<&'a Tool> {
    tools.iter().find(|t| t.function.name == name)
}

/// The tool whose name and description share the most words with the prompt; the first on a
/// tie, so a single-tool request always calls that tool.
fn best_tool(tools: &[Tool], prompt: &str) -> String {
    let prompt = prompt.to_lowercase();
    let words: Vec<&str> = prompt
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 2)
        .collect();
    let score = |t: &Tool| {
        let about = format!(
            "{} {}",
            t.function.name.replace('_', " "),
            t.function.description.as_deref().unwrap_or("")
        )
        .to_lowercase();
        words.iter().filter(|w| about.contains(**w)).count()
    };
    let mut best: Option<(&Tool, usize)> = None;
    for t in tools {
        let s = score(t);
        if best.is_none_or(|(_, b)| s > b) {
            best = Some((t, s));
        }
    }
    best.map(|(t, _)| t.function.name.clone())
        .unwrap_or_default()
}
