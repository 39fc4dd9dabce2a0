//! Turning a provider's chunk stream into what the client is sent, while counting what the
//! record needs: time to first token, usage (from the upstream, or counted), how it ended.
//! [`stream_items`] says it as [`StreamItem`]s, framed by [`sse_body`] as chat completions'
//! SSE, by `data_plane::responses` as the Responses API's events and by `edge::messages` as
//! Anthropic's Messages events.
//!
//! The record guard lives inside the body stream: if the client hangs up, the body is dropped,
//! the upstream stream with it (cancelling the call), and the guard writes a 499 record.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use switchyard_api::{
    sse, ChatCompletionChunk, ChatCompletionRequest, ChunkAssembler, ErrorBody, ErrorObject, Usage,
};
use switchyard_providers::{tokens, ChunkStream, ProviderError};

use crate::data_plane::admission::Slot;
use crate::data_plane::cache::CacheFill;
use crate::data_plane::guards::{GuardVerdict, Masking, OutputWindow};
use crate::data_plane::record::RecordGuard;

struct State {
    first: Option<ChatCompletionChunk>,
    rest: ChunkStream,
    record: Option<RecordGuard>,
    request: Box<ChatCompletionRequest>,
    model: String,
    idle_timeout: Duration,
    usage: Option<Usage>,
    /// Output text, kept only to count tokens if the upstream reports no usage.
    text: String,
    /// The answer being put together for the cache, when it is to be stored.
    fill: Option<(CacheFill, ChunkAssembler)>,
    /// Puts pseudonymised values back, chunk by chunk.
    restore: Option<Restore>,
    /// The answer as the model wrote it, when the request's content is stored.
    content: Option<crate::data_plane::content::StreamCapture>,
    /// The output guards' window over each choice, by index (none without output guards).
    windows: Vec<OutputWindow>,
    verdicts: Vec<GuardVerdict>,
    finished: bool,
    /// The deployment's capacity the stream holds, given back when the body is dropped: at
    /// its end, or when the client hangs up.
    _slot: Option<Slot>,
}

/// A started stream and what its body needs besides the record.
pub struct StreamAnswer {
    pub first: ChatCompletionChunk,
    pub rest: ChunkStream,
    /// Kept for counting prompt tokens if the upstream reports no usage.
    pub request: Box<ChatCompletionRequest>,
    pub idle_timeout: Duration,
    /// Set when the finished stream should be stored in the cache.
    pub fill: Option<CacheFill>,
    /// Set when pseudonymised values are to be put back into the streamed answer.
    pub masking: Option<Masking>,
    /// Output guards watching the text, one window per choice (`n`), when configured.
    pub windows: Vec<OutputWindow>,
    /// The input guards' verdicts, to which the window's are added in the record.
    pub verdicts: Vec<GuardVerdict>,
    /// The deployment's capacity it holds until the stream ends.
    pub slot: Option<Slot>,
}

/// What a chat stream sends, in order: chunks, then the end, or an error in OpenAI's shape
/// (the upstream broke). A chunk stopped by an output guard is the last chunk before the end.
#[derive(Debug)]
pub enum StreamItem {
    Chunk(Box<ChatCompletionChunk>),
    Failed(ErrorBody),
    Done,
}

impl StreamItem {
    /// As chat completions' SSE frames it.
    fn frame(&self) -> Bytes {
        match self {
            StreamItem::Chunk(chunk) => sse::data_event(chunk).unwrap_or_default(),
            StreamItem::Failed(body) => sse::data_event(body).unwrap_or_default(),
            StreamItem::Done => Bytes::from_static(sse::DONE),
        }
    }
}

/// The chat completions stream's SSE body.
pub fn sse_body(
    answer: StreamAnswer,
    record: RecordGuard,
    model: String,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
    stream_items(answer, record, model).map(|item| Ok(item.frame()))
}

/// A started chat stream as what it sends ([`StreamItem`]), every stage's work done on the
/// way (the record, usage, the cache, the output guards' window, values put back): framed
/// by [`sse_body`] for chat completions, or as the Responses API's or Messages API's events.
pub fn stream_items(
    answer: StreamAnswer,
    record: RecordGuard,
    model: String,
) -> impl Stream<Item = StreamItem> + Send {
    let StreamAnswer {
        first,
        rest,
        request,
        idle_timeout,
        fill,
        masking,
        windows,
        verdicts,
        slot,
    } = answer;
    let content = record
        .content_max_bytes()
        .map(crate::data_plane::content::StreamCapture::new);
    // Boxed: `unfold` moves its state into each chunk's future and back out, and the state
    // (the record among it) is large; moving a pointer instead was 4.5% of a streamed
    // request's instructions (issue 18).
    let state = Box::new(State {
        first: Some(first),
        content,
        rest,
        record: Some(record),
        request,
        model,
        idle_timeout,
        usage: None,
        text: String::new(),
        fill: fill.map(|f| (f, ChunkAssembler::new())),
        restore: masking.map(|m| Restore {
            restorations: m.restorations,
            live: Default::default(),
        }),
        windows,
        verdicts,
        finished: false,
        _slot: slot,
    });
    futures::stream::unfold(state, |mut s| async move {
        loop {
            if s.finished {
                return None;
            }
            let next = match s.first.take() {
                Some(first) => Some(Ok(first)),
                None => match tokio::time::timeout(s.idle_timeout, s.rest.next()).await {
                    Ok(item) => item,
                    Err(_) => Some(Err(ProviderError::Stream(format!(
                        "no chunk for {:.0}s",
                        s.idle_timeout.as_secs_f64()
                    )))),
                },
            };
            let items = match next {
                Some(Ok(chunk)) => match s.on_chunk(chunk) {
                    Some(items) => items,
                    None => continue,
                },
                Some(Err(e)) => vec![s.on_error(&e)],
                None => s.on_end(),
            };
            return Some((futures::stream::iter(items), s));
        }
    })
    .flatten()
}

impl State {
    fn record(&mut self) -> Option<&mut RecordGuard> {
        self.record.as_mut()
    }

    /// What to send for a chunk, or `None` to send nothing (a usage chunk the client did
    /// not ask for).
    fn on_chunk(&mut self, mut chunk: ChatCompletionChunk) -> Option<Vec<StreamItem>> {
        if let Some(r) = self.record.as_mut() {
            r.trace_chunk(&chunk);
        }
        if let Some((_, assembler)) = &mut self.fill {
            assembler.push(&chunk);
        }
        if let Some(c) = &mut self.content {
            c.push(&chunk);
        }
        if let Some(usage) = chunk.usage.take() {
            self.usage = Some(usage);
        }
        let has_output = chunk.choices.iter().any(|c| {
            c.delta.content.as_deref().is_some_and(|t| !t.is_empty())
                || c.delta.tool_calls.is_some()
        });
        if has_output {
            if let Some(r) = self.record() {
                r.mark_first_token();
            }
            if self.usage.is_none() {
                for c in &chunk.choices {
                    if let Some(t) = &c.delta.content {
                        self.text.push_str(t);
                    }
                    for call in c.delta.tool_calls.iter().flatten() {
                        if let Some(f) = &call.function {
                            self.text.push_str(f.name.as_deref().unwrap_or(""));
                            self.text.push_str(f.arguments.as_deref().unwrap_or(""));
                        }
                    }
                }
            }
        }
        // A choice no output window watches (one the request did not ask for) is never sent.
        if !self.windows.is_empty() {
            let watched = self.windows.len();
            chunk.choices.retain(|c| (c.index as usize) < watched);
        }
        if chunk.choices.is_empty() {
            // A usage-only chunk: sent at the end, once, if the client asked for usage.
            return None;
        }
        let sent: Vec<Option<String>> = chunk
            .choices
            .iter()
            .map(|c| c.delta.content.clone())
            .collect();
        // Output guards hold back what they have not checked yet, in every choice.
        if !self.windows.is_empty() {
            for c in chunk.choices.iter_mut() {
                let index = c.index;
                let Some(window) = self.windows.get_mut(index as usize) else {
                    continue;
                };
                let mut out = match c.delta.content.as_deref() {
                    Some(t) => window.push(t),
                    None => Ok(String::new()),
                };
                if c.finish_reason.is_some() {
                    out = out.and_then(|mut o| {
                        o.push_str(&window.finish()?);
                        Ok(o)
                    });
                }
                match out {
                    Ok(o) if c.delta.content.is_some() || !o.is_empty() => {
                        c.delta.content = Some(o);
                    }
                    Ok(_) => {}
                    Err(stop) => return Some(self.stop(&chunk, index, &stop)),
                }
            }
        }
        // After the cache and the token count have seen the masked text: the client gets
        // the values back.
        if let Some(r) = &mut self.restore {
            r.apply(&mut chunk);
        }
        // A chunk whose text was held back or rewritten loses its logprobs: they described
        // the tokens as the model sent them.
        for (c, sent) in chunk.choices.iter_mut().zip(sent) {
            if c.delta.content != sent {
                c.logprobs = None;
            }
        }
        chunk.model.clone_from(&self.model);
        Some(vec![StreamItem::Chunk(Box::new(chunk))])
    }

    /// An output guard stopped the answer: a final chunk with finish reason `content_filter`
    /// (what OpenAI's clients expect of filtered output), then the end of the stream. The
    /// upstream stream is dropped with the state, which cancels it; nothing is cached.
    fn stop(
        &mut self,
        chunk: &ChatCompletionChunk,
        index: u32,
        stop: &GuardVerdict,
    ) -> Vec<StreamItem> {
        self.finished = true;
        self.fill = None;
        let mut last = gateway_chunk(
            &self.model,
            vec![choice(
                index,
                switchyard_api::Delta::default(),
                Some(switchyard_api::finish_reason::CONTENT_FILTER),
            )],
        );
        last.id.clone_from(&chunk.id);
        last.created = chunk.created;
        self.settle_usage();
        self.record_verdicts();
        if let Some(r) = self.record.take() {
            let kind = format!("{}_guard_stopped", stop.guard);
            r.finish(200, Some(&kind));
        }
        vec![StreamItem::Chunk(Box::new(last)), StreamItem::Done]
    }

    /// The input guards' verdicts and the window's, into the record.
    fn record_verdicts(&mut self) {
        let mut all = std::mem::take(&mut self.verdicts);
        for w in &mut self.windows {
            all.append(&mut w.verdicts);
        }
        if let Some(r) = self.record.as_mut() {
            r.set_guards(&all);
        }
    }

    fn on_error(&mut self, e: &ProviderError) -> StreamItem {
        self.finished = true;
        let body = ErrorBody {
            error: ErrorObject {
                message: format!("the model provider's stream failed: {e}"),
                kind: "server_error".to_owned(),
                param: None,
                code: Some("upstream_stream_error".to_owned()),
            },
        };
        self.settle_usage();
        if let Some(r) = self.record.take() {
            r.finish(502, Some("upstream_stream_error"));
        }
        StreamItem::Failed(body)
    }

    fn on_end(&mut self) -> Vec<StreamItem> {
        // A choice that ended without a finish reason still owes its held-back text.
        let mut out = Vec::new();
        for index in 0..self.windows.len() {
            let tail = self.windows[index].finish();
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            let model = self.model.clone();
            let tail_chunk = |text: String| {
                let delta = switchyard_api::Delta {
                    content: Some(text),
                    ..Default::default()
                };
                gateway_chunk(&model, vec![choice(index, delta, None)])
            };
            match tail {
                Err(stop) => {
                    let last = tail_chunk(String::new());
                    out.extend(self.stop(&last, index, &stop));
                    return out;
                }
                Ok(text) if !text.is_empty() => {
                    let mut chunk = tail_chunk(text);
                    if let Some(r) = &mut self.restore {
                        r.apply(&mut chunk);
                    }
                    out.push(StreamItem::Chunk(Box::new(chunk)));
                }
                Ok(_) => {}
            }
        }
        out.extend(self.end_cleanly());
        out
    }

    /// The end of a stream nothing stopped: usage, the cache, the record.
    fn end_cleanly(&mut self) -> Vec<StreamItem> {
        self.finished = true;
        let usage = self.settle_usage();
        if let Some((fill, assembler)) = self.fill.take() {
            let mut response = assembler.finish();
            response.model.clone_from(&self.model);
            response.usage = Some(usage.clone());
            fill.store(&self.request, response);
        }
        let mut out = Vec::with_capacity(3);
        if self.request.wants_stream_usage() {
            let mut chunk = gateway_chunk(&self.model, Vec::new());
            chunk.usage = Some(usage);
            out.push(StreamItem::Chunk(Box::new(chunk)));
        }
        self.record_verdicts();
        if let Some(tail) = self.restore.as_mut().and_then(|r| r.leftover(&self.model)) {
            out.push(StreamItem::Chunk(Box::new(tail)));
        }
        out.push(StreamItem::Done);
        if let Some(r) = self.record.take() {
            r.finish(200, None);
        }
        out
    }

    /// Puts the final usage in the record, counting tokens when the upstream gave none, and
    /// the answer so far in its stored content. Every way a stream ends comes through here.
    fn settle_usage(&mut self) -> Usage {
        if let (Some(c), Some(r)) = (self.content.take(), self.record.as_mut()) {
            r.capture_streamed(c);
        }
        let counted = self.usage.is_none();
        let usage = self.usage.take().unwrap_or_else(|| {
            Usage::new(
                tokens::count_messages(&self.request.messages),
                tokens::count_text(&self.text),
            )
        });
        if let Some(r) = self.record() {
            r.set_usage(usage.prompt_tokens, usage.completion_tokens, counted);
        }
        usage
    }
}

/// Restores pseudonymised values in a stream: one unmasker per text being streamed (each
/// choice's content, each tool call's arguments), each holding back at most a possible
/// placeholder's prefix until the next chunk shows whether it is one.
struct Restore {
    restorations: switchyard_pii::Restorations,
    live: std::collections::BTreeMap<(u32, Option<u32>), switchyard_pii::StreamUnmasker>,
}

impl Restore {
    fn unmasker(&mut self, key: (u32, Option<u32>)) -> &mut switchyard_pii::StreamUnmasker {
        let Restore { restorations, live } = self;
        live.entry(key)
            .or_insert_with(|| switchyard_pii::StreamUnmasker::new(restorations.clone()))
    }

    fn apply(&mut self, chunk: &mut ChatCompletionChunk) {
        for c in &mut chunk.choices {
            if let Some(t) = &mut c.delta.content {
                *t = self.unmasker((c.index, None)).push(t);
            }
            for call in c.delta.tool_calls.iter_mut().flatten() {
                if let Some(args) = call.function.as_mut().and_then(|f| f.arguments.as_mut()) {
                    *args = self.unmasker((c.index, Some(call.index))).push(args);
                }
            }
            if c.finish_reason.is_some() {
                // The choice is over: what was held back is plain text after all.
                let held = self.finish_choice(c.index);
                for (tool, text) in held {
                    match tool {
                        None => c
                            .delta
                            .content
                            .get_or_insert_with(String::new)
                            .push_str(&text),
                        Some(i) => c
                            .delta
                            .tool_calls
                            .get_or_insert_with(Vec::new)
                            .push(arguments_delta(i, text)),
                    }
                }
            }
        }
    }

    fn finish_choice(&mut self, index: u32) -> Vec<(Option<u32>, String)> {
        let keys: Vec<(u32, Option<u32>)> = self
            .live
            .range((index, None)..=(index, Some(u32::MAX)))
            .map(|(k, _)| *k)
            .collect();
        keys.into_iter()
            .filter_map(|k| {
                let text = self.live.remove(&k)?.finish();
                (!text.is_empty()).then_some((k.1, text))
            })
            .collect()
    }

    /// Text still held when a stream ends without a finish reason, as one last chunk.
    fn leftover(&mut self, model: &str) -> Option<ChatCompletionChunk> {
        let keys: Vec<u32> = self.live.keys().map(|k| k.0).collect();
        let mut choices = Vec::new();
        for index in keys {
            for (tool, text) in self.finish_choice(index) {
                let mut delta = switchyard_api::Delta::default();
                match tool {
                    None => delta.content = Some(text),
                    Some(i) => delta.tool_calls = Some(vec![arguments_delta(i, text)]),
                }
                choices.push(choice(index, delta, None));
            }
        }
        (!choices.is_empty()).then(|| gateway_chunk(model, choices))
    }
}

/// A chunk the gateway writes itself (usage, held-back text, a stop), stamped now.
pub(crate) fn gateway_chunk(
    model: &str,
    choices: Vec<switchyard_api::ChunkChoice>,
) -> ChatCompletionChunk {
    ChatCompletionChunk {
        id: String::new(),
        object: "chat.completion.chunk".to_owned(),
        created: switchyard_providers::unix_now(),
        model: model.to_owned(),
        choices,
        usage: None,
        system_fingerprint: None,
        extra: Default::default(),
    }
}

fn choice(
    index: u32,
    delta: switchyard_api::Delta,
    finish_reason: Option<&str>,
) -> switchyard_api::ChunkChoice {
    switchyard_api::ChunkChoice {
        index,
        delta,
        finish_reason: finish_reason.map(str::to_owned),
        logprobs: None,
        stop_reason: None,
    }
}

/// More arguments for tool call `index`.
fn arguments_delta(index: u32, text: String) -> switchyard_api::ToolCallDelta {
    switchyard_api::ToolCallDelta {
        index,
        id: None,
        kind: None,
        function: Some(switchyard_api::FunctionCallDelta {
            name: None,
            arguments: Some(text),
        }),
    }
}

impl Drop for State {
    fn drop(&mut self) {
        // The client went away mid-stream: record what was produced so far. The guard's own
        // drop then writes the record as 499 and settles the account.
        if self.record.is_some() {
            self.settle_usage();
        }
    }
}
