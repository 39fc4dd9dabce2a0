//! Framing a provider's chunk stream as the client's SSE body, while counting what the record
//! needs: time to first token, usage (from the upstream, or counted), how it ended.
//!
//! The record guard lives inside the body stream: if the client hangs up, the body is dropped,
//! the upstream stream with it (cancelling the call), and the guard writes a 499 record.

use std::convert::Infallible;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use switchyard_api::{
    sse, ChatCompletionChunk, ChatCompletionRequest, ChunkAssembler, ErrorBody, ErrorObject, Usage,
};
use switchyard_providers::{tokens, ChunkStream, ProviderError};

use crate::cache::CacheFill;
use crate::record::RecordGuard;

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
    finished: bool,
}

pub fn sse_body(
    first: ChatCompletionChunk,
    rest: ChunkStream,
    record: RecordGuard,
    request: Box<ChatCompletionRequest>,
    model: String,
    idle_timeout: Duration,
    fill: Option<CacheFill>,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
    let state = State {
        first: Some(first),
        rest,
        record: Some(record),
        request,
        model,
        idle_timeout,
        usage: None,
        text: String::new(),
        fill: fill.map(|f| (f, ChunkAssembler::new())),
        finished: false,
    };
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
            let bytes = match next {
                Some(Ok(chunk)) => match s.on_chunk(chunk) {
                    Some(b) => b,
                    None => continue,
                },
                Some(Err(e)) => s.on_error(&e),
                None => s.on_end(),
            };
            return Some((Ok(bytes), s));
        }
    })
}

impl State {
    fn record(&mut self) -> Option<&mut RecordGuard> {
        self.record.as_mut()
    }

    /// The bytes to send for a chunk, or `None` to send nothing (a usage chunk the client did
    /// not ask for).
    fn on_chunk(&mut self, mut chunk: ChatCompletionChunk) -> Option<Bytes> {
        if let Some((_, assembler)) = &mut self.fill {
            assembler.push(&chunk);
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
        if chunk.choices.is_empty() {
            // A usage-only chunk: sent at the end, once, if the client asked for usage.
            return None;
        }
        chunk.model.clone_from(&self.model);
        sse::data_event(&chunk).ok()
    }

    fn on_error(&mut self, e: &ProviderError) -> Bytes {
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
        sse::data_event(&body).unwrap_or_default()
    }

    fn on_end(&mut self) -> Bytes {
        self.finished = true;
        let usage = self.settle_usage();
        if let Some((fill, assembler)) = self.fill.take() {
            let mut response = assembler.finish();
            response.model.clone_from(&self.model);
            response.usage = Some(usage.clone());
            fill.store(&self.request, response);
        }
        let mut out = BytesMut::new();
        if self.request.wants_stream_usage() {
            let chunk = ChatCompletionChunk {
                id: String::new(),
                object: "chat.completion.chunk".to_owned(),
                created: switchyard_providers::unix_now(),
                model: self.model.clone(),
                choices: Vec::new(),
                usage: Some(usage),
                system_fingerprint: None,
                extra: Default::default(),
            };
            if let Ok(b) = sse::data_event(&chunk) {
                out.extend_from_slice(&b);
            }
        }
        out.extend_from_slice(sse::DONE);
        if let Some(r) = self.record.take() {
            r.finish(200, None);
        }
        out.freeze()
    }

    /// Puts the final usage in the record, counting tokens when the upstream gave none.
    fn settle_usage(&mut self) -> Usage {
        let counted = self.usage.is_none();
        let usage = self.usage.take().unwrap_or_else(|| {
            Usage::new(
                tokens::count_messages(&self.request.messages),
                tokens::count_text(&self.text),
            )
        });
        if let Some(r) = self.record() {
            let rec = r.record();
            rec.prompt_tokens = usage.prompt_tokens;
            rec.completion_tokens = usage.completion_tokens;
            rec.usage_counted = counted;
        }
        usage
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
