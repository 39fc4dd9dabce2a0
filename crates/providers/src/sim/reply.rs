//! Renders a [`Plan`] as a whole response or as a stream of chunks paced in (tokio) time.
//!
//! Every wait is an absolute deadline from the moment the request arrived, so a slow consumer
//! or a coarse timer never adds drift, and a wait already over costs no timer at all.

use std::sync::Arc;
use std::time::Duration;

use futures::stream;
use switchyard_api::{
    ChatCompletionChunk, ChatCompletionResponse, ChatMessage, Choice, ChunkChoice, Delta, Extra,
    FunctionCall, FunctionCallDelta, MessageContent, Role, ToolCall, ToolCallDelta, Usage,
};
use switchyard_engine::{Ask, Engine, EngineError, Slot};
use tokio::time::Instant;

use super::plan::{Output, Plan};
use crate::{ChunkStream, ProviderError};

/// Chunks closer together than this are merged: a 2,000 tokens/s model would otherwise arm a
/// timer every half millisecond, which costs more than the data it carries.
const MIN_CHUNK_INTERVAL: Duration = Duration::from_millis(5);

/// tokio's timer wheel has millisecond resolution: a shorter sleep would round up to a whole
/// millisecond, so it is skipped (deadlines are absolute, so nothing accumulates).
const MIN_SLEEP: Duration = Duration::from_millis(1);

/// The fields every chunk (and the whole response) of one completion shares.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    pub(crate) id: String,
    pub(crate) created: i64,
    pub(crate) model: String,
    /// `Some(top_logprobs)` when the request asked for `logprobs`.
    pub(crate) logprobs: Option<u32>,
}

/// The timing drawn for one call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pace {
    pub(crate) start: Instant,
    pub(crate) ttft: Duration,
    /// Seconds per token; 0 for an unbounded rate.
    pub(crate) interval: f64,
}

impl Pace {
    /// When token `i` (0-based) is ready: the first at the ttft, then one per interval.
    fn token_ready(&self, i: usize) -> Instant {
        self.at(self.ttft + secs(i as f64 * self.interval))
    }

    /// When a whole answer of `n` tokens is ready, as a non-streaming upstream answers.
    pub(crate) fn all_ready(&self, n: usize) -> Instant {
        self.at(self.ttft + secs(n as f64 * self.interval))
    }

    /// When the first token is ready; failures answer then too.
    pub(crate) fn at_ttft(&self) -> Instant {
        self.at(self.ttft)
    }

    fn at(&self, offset: Duration) -> Instant {
        self.start.checked_add(offset).unwrap_or(self.start)
    }
}

/// How a call's tokens are timed: by its own draw, or by a continuous-batching engine
/// (queue, prefill, then decode at the pace of the running batch).
pub(crate) enum Timing {
    Drawn(Pace),
    Engine { engine: Arc<Engine>, ask: Ask },
}

impl Timing {
    /// Seconds per token when nothing else runs.
    fn interval(&self) -> f64 {
        match self {
            Timing::Drawn(pace) => pace.interval,
            Timing::Engine { engine, .. } => engine.params().step(1).as_secs_f64(),
        }
    }
}

/// The engine's refusal as an upstream's (vLLM answers 400 to a request it can never hold).
pub(crate) fn engine_error(e: EngineError) -> ProviderError {
    let status = match e {
        EngineError::TooLarge { .. } => 400,
        EngineError::Poisoned => 500,
    };
    ProviderError::Status {
        status,
        message: e.to_string(),
        retry_after: None,
    }
}

/// Runs a whole answer of `tokens` tokens through the engine: waits for a slot, prefills,
/// decodes in groups of `group` tokens, and frees the slot.
pub(crate) async fn run_engine(
    engine: &Arc<Engine>,
    ask: Ask,
    tokens: usize,
) -> Result<(), ProviderError> {
    let group = group_size(engine.params().step(1).as_secs_f64(), tokens);
    let slot = engine.admit(ask).await.map_err(engine_error)?;
    slot.prefill().await;
    let mut left = tokens.saturating_sub(1);
    while left > 0 {
        let n = left.min(group);
        slot.decode(u32::try_from(n).unwrap_or(u32::MAX)).await;
        left -= n;
    }
    Ok(())
}

/// Tokens per chunk for a pace of `interval` seconds per token: chunks at least
/// [`MIN_CHUNK_INTERVAL`] apart.
fn group_size(interval: f64, tokens: usize) -> usize {
    if interval <= 0.0 {
        tokens.max(1)
    } else {
        // The epsilon keeps float noise from turning an exact 5 into 6.
        let per = (MIN_CHUNK_INTERVAL.as_secs_f64() / interval - 1e-9).ceil();
        (per as usize).clamp(1, tokens.max(1))
    }
}

/// A non-negative, finite duration of `s` seconds, at most an hour (anything longer is a
/// misconfiguration, and the gateway's timeouts fire long before).
pub(crate) fn secs(s: f64) -> Duration {
    const HOUR: Duration = Duration::from_secs(3600);
    if s.is_nan() || s <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(s).map_or(HOUR, |d| d.min(HOUR))
}

/// Sleeps until `deadline` unless it is (nearly) past: the zero-latency baseline never arms a
/// timer.
pub(crate) async fn wait_until(deadline: Instant) {
    if deadline.saturating_duration_since(Instant::now()) >= MIN_SLEEP {
        tokio::time::sleep_until(deadline).await;
    }
}

fn assistant(output: Output) -> ChatMessage {
    let (content, tool_calls) = match output {
        Output::Text(pieces) => (Some(MessageContent::Text(pieces.into_text())), None),
        Output::ToolCall {
            id,
            name,
            arguments,
        } => (
            None,
            Some(vec![ToolCall {
                id,
                kind: "function".to_owned(),
                function: FunctionCall {
                    name,
                    arguments: arguments.into_text(),
                },
            }]),
        ),
    };
    ChatMessage {
        role: Role::Assistant,
        content,
        name: None,
        tool_calls,
        tool_call_id: None,
        extra: Extra::new(),
    }
}

pub(crate) fn complete(plan: Plan, meta: Meta) -> ChatCompletionResponse {
    let usage = Usage::new(plan.prompt_tokens, plan.completion_tokens());
    let logprobs = meta
        .logprobs
        .map(|top| super::logprobs::of(&plan, 0, usize::MAX, top));
    let message = assistant(plan.output);
    ChatCompletionResponse {
        id: meta.id,
        object: "chat.completion".to_owned(),
        created: meta.created,
        model: meta.model,
        choices: vec![Choice {
            index: 0,
            message,
            finish_reason: Some(plan.finish_reason.to_owned()),
            logprobs,
            stop_reason: plan.stop_sequence.clone().map(serde_json::Value::String),
        }],
        usage: Some(usage),
        system_fingerprint: None,
        extra: Extra::new(),
    }
}

struct StreamState {
    plan: Plan,
    meta: Meta,
    timing: Timing,
    /// The engine's slot while the answer is decoded; freed after its last token.
    slot: Option<Slot>,
    /// Tokens per chunk.
    group: usize,
    /// Chunks in all (at least one, which carries the role and the finish reason).
    chunks: usize,
    next: usize,
}

impl StreamState {
    /// Waits until chunk `i`'s first token is ready.
    async fn ready(&mut self, i: usize) -> Result<(), ProviderError> {
        match &self.timing {
            Timing::Drawn(pace) => wait_until(pace.token_ready(i * self.group)).await,
            Timing::Engine { engine, ask } => match &self.slot {
                None => {
                    let slot = engine.admit(*ask).await.map_err(engine_error)?;
                    slot.prefill().await;
                    self.slot = Some(slot);
                }
                Some(slot) => {
                    let group = u32::try_from(self.group).unwrap_or(u32::MAX);
                    slot.decode(group).await;
                }
            },
        }
        Ok(())
    }

    fn chunk(&self, choices: Vec<ChunkChoice>, usage: Option<Usage>) -> ChatCompletionChunk {
        ChatCompletionChunk {
            id: self.meta.id.clone(),
            object: "chat.completion.chunk".to_owned(),
            created: self.meta.created,
            model: self.meta.model.clone(),
            choices,
            usage,
            system_fingerprint: None,
            extra: Extra::new(),
        }
    }

    /// Content chunk `i`: the first carries the role (and, for a tool call, its id and name),
    /// the last the finish reason.
    fn content_chunk(&self, i: usize) -> ChatCompletionChunk {
        let piece = self
            .plan
            .pieces()
            .span(i * self.group, (i + 1) * self.group)
            .to_owned();
        let first = i == 0;
        let mut delta = Delta {
            role: first.then_some(Role::Assistant),
            ..Delta::default()
        };
        match &self.plan.output {
            Output::Text(_) => delta.content = Some(piece),
            Output::ToolCall { id, name, .. } => {
                delta.tool_calls = Some(vec![ToolCallDelta {
                    index: 0,
                    id: first.then(|| id.clone()),
                    kind: first.then(|| "function".to_owned()),
                    function: Some(FunctionCallDelta {
                        name: first.then(|| name.clone()),
                        arguments: Some(piece),
                    }),
                }]);
            }
        }
        let last = i + 1 == self.chunks;
        let choice = ChunkChoice {
            index: 0,
            delta,
            finish_reason: last.then(|| self.plan.finish_reason.to_owned()),
            logprobs: self.meta.logprobs.map(|top| {
                super::logprobs::of(&self.plan, i * self.group, (i + 1) * self.group, top)
            }),
            stop_reason: self
                .plan
                .stop_sequence
                .clone()
                .filter(|_| last)
                .map(serde_json::Value::String),
        };
        self.chunk(vec![choice], None)
    }
}

/// The chunks of `plan`, each sent when its first token is ready; then a usage-only chunk
/// (`choices: []`), always, since the gateway needs usage and strips it for clients that did
/// not ask.
pub(crate) fn stream(plan: Plan, meta: Meta, timing: Timing) -> ChunkStream {
    let tokens = plan.pieces().len();
    let group = group_size(timing.interval(), tokens);
    let state = StreamState {
        chunks: tokens.div_ceil(group).max(1),
        plan,
        meta,
        timing,
        slot: None,
        group,
        next: 0,
    };
    Box::pin(stream::unfold(state, |mut st| async move {
        let i = st.next;
        st.next += 1;
        if i < st.chunks {
            if let Err(e) = st.ready(i).await {
                // Nothing follows an error.
                st.next = st.chunks + 1;
                return Some((Err(e), st));
            }
            let chunk = st.content_chunk(i);
            if i + 1 == st.chunks {
                st.slot = None;
            }
            Some((Ok(chunk), st))
        } else if i == st.chunks {
            let usage = Usage::new(st.plan.prompt_tokens, st.plan.completion_tokens());
            let chunk = st.chunk(Vec::new(), Some(usage));
            Some((Ok(chunk), st))
        } else {
            None
        }
    }))
}
