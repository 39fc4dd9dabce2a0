//! What the adapters that translate another API's event stream into chat chunks (`anthropic`,
//! `bedrock`, `gemini`) share: one choice's chunks in OpenAI's shape with the stream's
//! bookkeeping ([`OneChoice`]: tool call indices, whether the finish was sent, whether it
//! ended), and the loop that runs a [`Translate`] over the upstream's events
//! ([`chunk_stream`]). Gemini answers several candidates in one stream, so it keeps its own
//! per-candidate bookkeeping and uses only the loop.

use std::collections::{BTreeMap, VecDeque};
use std::pin::Pin;

use futures::{Stream, StreamExt};
use switchyard_api::{
    finish_reason, ChatCompletionChunk, ChunkChoice, Delta, Extra, FunctionCallDelta, Role,
    ToolCallDelta, Usage,
};

use crate::{ChunkStream, ProviderError};

/// The chunks of a one-choice answer and where its stream is:
/// 1. `role` opens it; `text`, `tool_start` and `tool_arguments` carry the answer (each
///    upstream tool block gets the next OpenAI tool call index when it starts);
/// 2. `finish` sends the finish reason once;
/// 3. `close` ends it: a finish chunk if none was sent, then the usage-only chunk
///    (`choices: []`) when usage was reported, as OpenAI does with `include_usage`;
/// 4. `eof` is the body's end: after the end, nothing; after a finish, as `close`; before
///    it, a stream error (retryable), never a clean end.
#[derive(Debug)]
pub(crate) struct OneChoice {
    pub id: String,
    pub model: String,
    created: i64,
    tool_index: BTreeMap<u32, u32>,
    started: bool,
    finish_sent: bool,
    done: bool,
}

impl OneChoice {
    pub(crate) fn new(id: String, model: String, created: i64) -> Self {
        OneChoice {
            id,
            model,
            created,
            tool_index: BTreeMap::new(),
            started: false,
            finish_sent: false,
            done: false,
        }
    }

    pub(crate) fn done(&self) -> bool {
        self.done
    }

    pub(crate) fn chunk(&self, delta: Delta, finish: Option<&str>) -> ChatCompletionChunk {
        let mut chunk = usage_chunk(&self.id, &self.model, self.created, None);
        chunk.choices.push(ChunkChoice {
            index: 0,
            delta,
            finish_reason: finish.map(str::to_owned),
            logprobs: None,
            stop_reason: None,
        });
        chunk
    }

    pub(crate) fn role(&mut self) -> ChatCompletionChunk {
        self.started = true;
        let delta = Delta {
            role: Some(Role::Assistant),
            content: Some(String::new()),
            ..Delta::default()
        };
        self.chunk(delta, None)
    }

    /// A content delta; none for empty text.
    pub(crate) fn text(&self, text: String) -> Option<ChatCompletionChunk> {
        let delta = Delta {
            content: Some(text),
            ..Delta::default()
        };
        (delta.content.as_deref() != Some("")).then(|| self.chunk(delta, None))
    }

    fn tool_delta(&self, delta: ToolCallDelta) -> ChatCompletionChunk {
        let delta = Delta {
            tool_calls: Some(vec![delta]),
            ..Delta::default()
        };
        self.chunk(delta, None)
    }

    /// The upstream's tool block `block` starts: the next OpenAI tool call, announced.
    pub(crate) fn tool_start(
        &mut self,
        block: u32,
        id: String,
        name: String,
    ) -> ChatCompletionChunk {
        let index = self.tool_index.len() as u32;
        self.tool_index.insert(block, index);
        self.tool_delta(ToolCallDelta {
            index,
            id: Some(id),
            kind: Some("function".into()),
            function: Some(FunctionCallDelta {
                name: Some(name),
                arguments: Some(String::new()),
            }),
        })
    }

    /// A piece of the arguments of the tool call started by block `block`; none when empty.
    pub(crate) fn tool_arguments(
        &self,
        block: u32,
        arguments: String,
    ) -> Result<Option<ChatCompletionChunk>, ProviderError> {
        if arguments.is_empty() {
            return Ok(None);
        }
        let index = self.tool_index.get(&block).copied().ok_or_else(|| {
            ProviderError::Decode(format!(
                "tool call input for block {block}, which is not a tool call"
            ))
        })?;
        Ok(Some(self.tool_delta(ToolCallDelta {
            index,
            id: None,
            kind: None,
            function: Some(FunctionCallDelta {
                name: None,
                arguments: Some(arguments),
            }),
        })))
    }

    /// The finish chunk, the first time only.
    pub(crate) fn finish(&mut self, reason: &str) -> Option<ChatCompletionChunk> {
        if self.finish_sent {
            return None;
        }
        self.finish_sent = true;
        Some(self.chunk(Delta::default(), Some(reason)))
    }

    /// The closing chunks: a finish chunk if none was sent, then `usage` if reported.
    pub(crate) fn close(&mut self, usage: Option<Usage>) -> Vec<ChatCompletionChunk> {
        self.done = true;
        let mut out: Vec<ChatCompletionChunk> =
            self.finish(finish_reason::STOP).into_iter().collect();
        if let Some(usage) = usage {
            out.push(usage_chunk(
                &self.id,
                &self.model,
                self.created,
                Some(usage),
            ));
        }
        out
    }

    /// The body ended without the upstream's last event.
    pub(crate) fn eof(
        &mut self,
        usage: Option<Usage>,
    ) -> Result<Vec<ChatCompletionChunk>, ProviderError> {
        if self.done {
            return Ok(Vec::new());
        }
        if self.finish_sent {
            return Ok(self.close(usage));
        }
        Err(ProviderError::Stream(if self.started {
            "the upstream ended the stream before the message was complete".into()
        } else {
            "the upstream ended the stream before any event".into()
        }))
    }
}

/// A chunk without choices: the usage-only chunk (`choices: []`) that ends a stream, as OpenAI
/// sends with `include_usage`, or the frame a choice is pushed into.
pub(crate) fn usage_chunk(
    id: &str,
    model: &str,
    created: i64,
    usage: Option<Usage>,
) -> ChatCompletionChunk {
    ChatCompletionChunk {
        id: id.to_owned(),
        object: "chat.completion.chunk".into(),
        created,
        model: model.to_owned(),
        choices: Vec::new(),
        usage,
        system_fingerprint: None,
        extra: Extra::new(),
    }
}

/// A translator of one upstream stream's events into chunks.
pub(crate) trait Translate: Send + 'static {
    type Event: Send + 'static;
    fn on_event(&mut self, event: Self::Event) -> Result<Vec<ChatCompletionChunk>, ProviderError>;
    fn on_eof(&mut self) -> Result<Vec<ChatCompletionChunk>, ProviderError>;
    fn done(&self) -> bool;
}

/// Runs `translator` over a response's events. An error item ends the stream; the stream owns
/// the response, so dropping it closes the upstream connection.
pub(crate) fn chunk_stream<S, T>(events: S, translator: T) -> ChunkStream
where
    T: Translate,
    S: Stream<Item = Result<T::Event, ProviderError>> + Send + 'static,
{
    struct State<S, T> {
        events: Pin<Box<S>>,
        translator: T,
        pending: VecDeque<ChatCompletionChunk>,
        failed: bool,
    }
    let state = State {
        events: Box::pin(events),
        translator,
        pending: VecDeque::new(),
        failed: false,
    };
    Box::pin(futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(chunk) = st.pending.pop_front() {
                return Some((Ok(chunk), st));
            }
            if st.failed || st.translator.done() {
                return None;
            }
            let result = match st.events.next().await {
                None => st.translator.on_eof(),
                Some(Ok(event)) => st.translator.on_event(event),
                Some(Err(e)) => Err(e),
            };
            match result {
                Ok(chunks) => st.pending.extend(chunks),
                Err(e) => {
                    st.failed = true;
                    return Some((Err(e), st));
                }
            }
        }
    }))
}

/// Feeds SSE events, one a JSON value of `events` as its data (then the body's end if
/// `eof`), to `translator`: each output is a chunk as JSON or `{"err": kind}`, after which
/// nothing more is fed. For the translators' tests.
#[cfg(test)]
pub(crate) fn feed_sse<T>(
    mut translator: T,
    events: &serde_json::Value,
    eof: bool,
) -> Vec<serde_json::Value>
where
    T: Translate<Event = crate::sse::Event>,
{
    let as_json = |chunks: Vec<ChatCompletionChunk>| {
        chunks
            .iter()
            .map(|c| serde_json::to_value(c).unwrap())
            .collect::<Vec<_>>()
    };
    let error = |e: ProviderError| serde_json::json!({"err": e.kind()});
    let mut out = Vec::new();
    for e in events.as_array().unwrap() {
        let event = crate::sse::Event {
            data: e.to_string(),
            ..crate::sse::Event::default()
        };
        match translator.on_event(event) {
            Ok(chunks) => out.extend(as_json(chunks)),
            Err(e) => {
                out.push(error(e));
                return out;
            }
        }
    }
    if eof {
        match translator.on_eof() {
            Ok(chunks) => out.extend(as_json(chunks)),
            Err(e) => out.push(error(e)),
        }
    }
    out
}
