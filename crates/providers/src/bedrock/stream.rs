//! ConverseStream's answer: binary event stream frames (decoded by AWS's
//! `aws-smithy-eventstream`, which checks both CRCs) read as chat chunks.

use std::collections::BTreeSet;
use std::pin::Pin;

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use switchyard_api::bedrock::{
    error_status, finish_reason_of, ContentBlockStart, ConverseUsage, StreamEvent, JSON_TOOL,
};
use switchyard_api::{finish_reason, ChatCompletionChunk};

use crate::translate::{OneChoice, Translate};
use crate::{http, ProviderError};

/// AWS's limit on one event stream message; a frame claiming more is not buffered for.
const MAX_FRAME: usize = 16 * 1024 * 1024;

/// One decoded frame: its `:message-type` and the name and payload that go with it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Frame {
    Event {
        event_type: String,
        payload: Bytes,
    },
    /// An `exception` (`:exception-type`) or `error` (`:error-code`) message.
    Exception {
        kind: String,
        message: String,
    },
}

fn frame_of(message: &aws_smithy_types::event_stream::Message) -> Result<Frame, ProviderError> {
    let header = |name: &str| {
        message
            .headers()
            .iter()
            .find(|h| h.name().as_str() == name)
            .and_then(|h| h.value().as_string().ok())
            .map(|s| s.as_str().to_owned())
    };
    let payload = message.payload().clone();
    let message_of = |payload: &Bytes| {
        serde_json::from_slice::<serde_json::Value>(payload)
            .ok()
            .map(|v| http::error_message(&v))
            .unwrap_or_else(|| http::snippet(payload))
    };
    match header(":message-type").as_deref() {
        Some("event") => Ok(Frame::Event {
            event_type: header(":event-type").unwrap_or_default(),
            payload,
        }),
        Some("exception") => Ok(Frame::Exception {
            kind: header(":exception-type").unwrap_or_default(),
            message: message_of(&payload),
        }),
        Some("error") => Ok(Frame::Exception {
            kind: header(":error-code").unwrap_or_default(),
            message: header(":error-message").unwrap_or_default(),
        }),
        other => Err(ProviderError::Decode(format!(
            "an event stream frame of message type {other:?}"
        ))),
    }
}

/// The frames of a response body. A frame whose CRC is wrong (or that is otherwise
/// malformed) is a decode error; a body that ends inside a frame is a stream error, like a
/// broken connection.
pub(crate) fn frames<S>(bytes: S) -> impl Stream<Item = Result<Frame, ProviderError>> + Send
where
    S: Stream<Item = Result<Bytes, reqwest::Error>> + Send + 'static,
{
    struct State<S> {
        bytes: Pin<Box<S>>,
        buffer: BytesMut,
        decoder: MessageFrameDecoder,
        /// Bytes of the current, unfinished frame received (the decoder keeps the prelude
        /// it has read apart from the buffer).
        in_frame: usize,
        ended: bool,
    }
    let state = State {
        bytes: Box::pin(bytes),
        buffer: BytesMut::new(),
        decoder: MessageFrameDecoder::new(),
        in_frame: 0,
        ended: false,
    };
    futures::stream::unfold(state, |mut st| async move {
        if st.ended {
            return None;
        }
        loop {
            match st.decoder.decode_frame(&mut st.buffer) {
                Ok(DecodedFrame::Complete(message)) => {
                    st.in_frame = st.buffer.len();
                    let frame = frame_of(&message);
                    st.ended = frame.is_err();
                    return Some((frame, st));
                }
                Ok(DecodedFrame::Incomplete) => {}
                Err(e) => {
                    st.ended = true;
                    let e = ProviderError::Decode(format!("an event stream frame is corrupt: {e}"));
                    return Some((Err(e), st));
                }
            }
            if st.in_frame > MAX_FRAME {
                st.ended = true;
                let e = ProviderError::Decode("an event stream frame is over 16 MiB".into());
                return Some((Err(e), st));
            }
            match st.bytes.next().await {
                Some(Ok(chunk)) => {
                    st.in_frame += chunk.len();
                    st.buffer.extend_from_slice(&chunk);
                }
                Some(Err(e)) => {
                    st.ended = true;
                    return Some((Err(http::stream_transport_error(&e)), st));
                }
                None if st.in_frame > 0 => {
                    st.ended = true;
                    let e = ProviderError::Stream(
                        "the upstream ended the stream inside an event frame".into(),
                    );
                    return Some((Err(e), st));
                }
                None => return None,
            }
        }
    })
}

/// An exception frame as the error it names: its status says whether to retry (a throttle
/// is a retryable 429, a validation error a 400 that is not).
fn exception(kind: &str, message: String) -> ProviderError {
    ProviderError::Status {
        status: error_status(kind).unwrap_or(500),
        message: if kind.is_empty() {
            message
        } else {
            format!("{kind}: {message}")
        },
        retry_after: None,
    }
}

/// Translates one ConverseStream into OpenAI chunks (the bookkeeping is [`OneChoice`]'s):
/// 1. `messageStart` gives the first chunk (role).
/// 2. Text deltas become content deltas; a `toolUse` block gets the next OpenAI tool call
///    index, announced with its id and name, then fed by its input deltas. With structured
///    output, the forced [`JSON_TOOL`]'s input is content instead.
/// 3. `messageStop` gives the stop reason (the finish chunk).
/// 4. `metadata` gives the usage and ends the stream with a usage-only chunk
///    (`choices: []`). EOF after step 3 is accepted as if `metadata` came without usage.
#[derive(Debug)]
pub(crate) struct Translator {
    choice: OneChoice,
    structured: bool,
    /// Blocks of the forced JSON tool, whose input is the answer's content.
    json_blocks: BTreeSet<u32>,
}

impl Translator {
    pub(crate) fn new(id: String, model: String, created: i64, structured: bool) -> Self {
        Translator {
            choice: OneChoice::new(id, model, created),
            structured,
            json_blocks: BTreeSet::new(),
        }
    }

    fn block_start(&mut self, start: ContentBlockStart) -> Option<ChatCompletionChunk> {
        let tool = start.start.tool_use?;
        if self.structured && tool.name == JSON_TOOL {
            self.json_blocks.insert(start.content_block_index);
            return None;
        }
        Some(
            self.choice
                .tool_start(start.content_block_index, tool.tool_use_id, tool.name),
        )
    }

    fn on_converse(
        &mut self,
        event: StreamEvent,
    ) -> Result<Vec<ChatCompletionChunk>, ProviderError> {
        let mut out = Vec::new();
        match event {
            StreamEvent::MessageStart(_) => out.push(self.choice.role()),
            StreamEvent::ContentBlockStart(start) => out.extend(self.block_start(start)),
            StreamEvent::ContentBlockDelta(d) => {
                let index = d.content_block_index;
                out.extend(d.delta.text.and_then(|t| self.choice.text(t)));
                if let Some(input) = d.delta.tool_use.map(|t| t.input) {
                    if self.json_blocks.contains(&index) {
                        out.extend(self.choice.text(input));
                    } else {
                        out.extend(self.choice.tool_arguments(index, input)?);
                    }
                }
            }
            StreamEvent::MessageStop(stop) => {
                let reason = if self.json_blocks.is_empty() {
                    finish_reason_of(&stop.stop_reason)
                } else {
                    finish_reason::STOP
                };
                out.extend(self.choice.finish(reason));
            }
            StreamEvent::Metadata(metadata) => {
                let usage = metadata.usage.as_ref().and_then(ConverseUsage::to_openai);
                out.extend(self.choice.close(usage));
            }
            StreamEvent::ContentBlockStop(_) | StreamEvent::Unknown => {}
        }
        Ok(out)
    }
}

impl Translate for Translator {
    type Event = Frame;

    fn on_event(&mut self, frame: Frame) -> Result<Vec<ChatCompletionChunk>, ProviderError> {
        match frame {
            Frame::Event {
                event_type,
                payload,
            } => {
                let event = StreamEvent::parse(&event_type, &payload).map_err(|e| {
                    http::decode_error(&format!("a {event_type} event"), e, &payload)
                })?;
                self.on_converse(event)
            }
            Frame::Exception { kind, message } => Err(exception(&kind, message)),
        }
    }

    /// The body ended without `metadata`.
    fn on_eof(&mut self) -> Result<Vec<ChatCompletionChunk>, ProviderError> {
        self.choice.eof(None)
    }

    fn done(&self) -> bool {
        self.choice.done()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use switchyard_testkit::{exception_frame, frame};

    fn event(event_type: &str, payload: Value) -> Bytes {
        frame(
            &[
                (":event-type", event_type),
                (":content-type", "application/json"),
                (":message-type", "event"),
            ],
            payload.to_string().as_bytes(),
        )
    }

    /// Runs `body` (cut into `piece`-byte chunks) through the frame decoder and translator;
    /// each item is a chunk as JSON or `{"err": kind}`.
    async fn run(body: Vec<u8>, piece: usize, structured: bool) -> Vec<Value> {
        let chunks: Vec<Result<Bytes, reqwest::Error>> = body
            .chunks(piece)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let translator = Translator::new("id".into(), "m".into(), 7, structured);
        crate::translate::chunk_stream(frames(futures::stream::iter(chunks)), translator)
            .map(|item| match item {
                Ok(c) => serde_json::to_value(c).unwrap(),
                Err(e) => json!({"err": e.kind(), "retryable": e.retryable()}),
            })
            .collect()
            .await
    }

    fn chunk(delta: Value, finish: Value) -> Value {
        json!({"id": "id", "object": "chat.completion.chunk", "created": 7, "model": "m",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    }

    fn body(frames: &[Bytes]) -> Vec<u8> {
        frames.iter().flat_map(|f| f.to_vec()).collect()
    }

    fn start() -> Bytes {
        event("messageStart", json!({"role": "assistant", "p": "pad"}))
    }

    fn text(t: &str) -> Bytes {
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": t}}),
        )
    }

    #[tokio::test]
    async fn frames_split_anywhere_read_the_same() {
        let frames = body(&[
            start(),
            text("Hel"),
            text("lo"),
            event("contentBlockStop", json!({"contentBlockIndex": 0})),
            event("messageStop", json!({"stopReason": "max_tokens"})),
            event("somethingNew", json!({})),
            event(
                "metadata",
                json!({"usage": {"inputTokens": 3, "outputTokens": 2,
                "totalTokens": 5, "cacheWriteInputTokens": 4}, "metrics": {"latencyMs": 1}}),
            ),
        ]);
        let expected = json!([
            chunk(json!({"role": "assistant", "content": ""}), Value::Null),
            chunk(json!({"content": "Hel"}), Value::Null),
            chunk(json!({"content": "lo"}), Value::Null),
            chunk(json!({}), json!("length")),
            {"id": "id", "object": "chat.completion.chunk", "created": 7, "model": "m",
             "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}},
        ]);
        for piece in [1, 7, frames.len()] {
            assert_eq!(
                Value::Array(run(frames.clone(), piece, false).await),
                expected,
                "{piece}"
            );
        }
    }

    /// A throttle mid-stream is a retryable 429; a validation error is not retryable.
    #[tokio::test]
    async fn exception_frames_are_errors_with_their_status() {
        for (kind, retryable) in [
            ("throttlingException", true),
            ("validationException", false),
        ] {
            let items = run(
                body(&[start(), text("a"), exception_frame(kind, "no")]),
                5,
                false,
            )
            .await;
            assert_eq!(items.len(), 3, "{items:?}");
            let status = if retryable {
                "rate_limited"
            } else {
                "upstream_4xx"
            };
            assert_eq!(items[2], json!({"err": status, "retryable": retryable}));
        }
    }

    #[tokio::test]
    async fn corrupt_and_cut_frames() {
        let mut bad = text("b").to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let items = run([body(&[start()]), bad].concat(), 64, false).await;
        assert_eq!(items[1], json!({"err": "decode", "retryable": false}));
        let cut = body(&[start(), text("a")]);
        let items = run(cut[..cut.len() - 3].to_vec(), 64, false).await;
        assert_eq!(items[1], json!({"err": "stream", "retryable": true}));
        assert_eq!(items.len(), 2);
        let items = run(Vec::new(), 1, false).await;
        assert_eq!(items, [json!({"err": "stream", "retryable": true})]);
    }

    /// With structured output, the forced tool's input arrives as content and the answer
    /// finishes with `stop`; another tool's call is a tool call.
    #[tokio::test]
    async fn structured_output_streams_as_content() {
        let frames = body(&[
            start(),
            event(
                "contentBlockStart",
                json!({"contentBlockIndex": 0, "start": {"toolUse":
                {"toolUseId": "t", "name": JSON_TOOL}}}),
            ),
            event(
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"toolUse":
                {"input": "{\"a\":"}}}),
            ),
            event(
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"toolUse":
                {"input": "1}"}}}),
            ),
            event("messageStop", json!({"stopReason": "tool_use"})),
        ]);
        let items = run(frames, 100, true).await;
        assert_eq!(
            Value::Array(items),
            json!([
                chunk(json!({"role": "assistant", "content": ""}), Value::Null),
                chunk(json!({"content": "{\"a\":"}), Value::Null),
                chunk(json!({"content": "1}"}), Value::Null),
                chunk(json!({}), json!("stop")),
            ])
        );
    }
}
