//! What the fake upstream does with the next request: the script tests write.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use serde_json::Value;

/// How the fake upstream answers one request. Queue them with
/// [`FakeUpstream::push`](crate::FakeUpstream::push); with an empty queue it answers
/// [`Reply::default`].
#[derive(Debug, Clone)]
pub enum Behavior {
    /// A successful answer, whole or streamed as the request asks.
    Reply(Reply),
    /// An error response in the flavor's error shape.
    Status {
        status: u16,
        message: String,
        /// Sent verbatim as the `retry-after` header.
        retry_after: Option<String>,
    },
    /// Accepts the request and never answers. Dropping the connection counts as a disconnect.
    Hang,
    /// A redirect (`status` 301, 302, 307 or 308) to `location`, with an empty body.
    Redirect { status: u16, location: String },
    /// Holds the request until `gate` opens, then plays `then`. Dropping the connection while
    /// held counts as a disconnect.
    Gated { gate: Gate, then: Box<Behavior> },
}

/// What a test opens to let held upstream calls go on ([`Behavior::Gated`],
/// [`Reply::held_after_first`]). Clones share one gate; once open it stays open.
#[derive(Debug, Clone)]
pub struct Gate(Arc<Semaphore>);

impl Default for Gate {
    fn default() -> Self {
        Gate(Arc::new(Semaphore::new(0)))
    }
}

impl Gate {
    pub fn new() -> Self {
        Gate::default()
    }

    /// Lets everything held by this gate go on, now and later.
    pub fn open(&self) {
        self.0.close();
    }

    /// Waits until the gate is open.
    pub async fn passed(&self) {
        // No permit is ever added: `acquire` ends only when the semaphore is closed.
        let _ = self.0.acquire().await;
    }
}

impl Behavior {
    pub fn status(status: u16, message: impl Into<String>) -> Self {
        Behavior::Status {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    /// A 429 with a `retry-after` header, as rate-limited APIs send.
    pub fn rate_limited(retry_after: impl Into<String>) -> Self {
        Behavior::Status {
            status: 429,
            message: "rate limit reached, slow down".into(),
            retry_after: Some(retry_after.into()),
        }
    }
}

impl From<Reply> for Behavior {
    fn from(reply: Reply) -> Self {
        Behavior::Reply(reply)
    }
}

/// A successful answer. Streamed, each text piece is one chunk (one `text_delta` for
/// Anthropic) and the tool call's arguments arrive in two halves.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The answer's text in pieces; joined for a whole answer.
    pub pieces: Vec<String>,
    pub tool_call: Option<ToolCallReply>,
    /// `None`: the answer reports no usage at all.
    pub usage: Option<FakeUsage>,
    /// Pause between two frames of a stream (real time, `tokio::time::sleep`).
    pub delay: Duration,
    pub ending: Ending,
    /// Once the first frame is sent, the rest waits for this gate to open.
    pub hold: Option<Gate>,
}

/// The text answered when nothing was queued.
pub const DEFAULT_TEXT: &str = "Hello from the fake upstream.";

impl Default for Reply {
    fn default() -> Self {
        Reply::text(DEFAULT_TEXT)
    }
}

impl Reply {
    /// `text` split after each space, so a stream has several chunks.
    pub fn text(text: &str) -> Self {
        Reply::pieces(text.split_inclusive(' '))
    }

    pub fn pieces<I, S>(pieces: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let pieces: Vec<String> = pieces.into_iter().map(Into::into).collect();
        let completion_tokens = pieces.len() as u32;
        Reply {
            pieces,
            tool_call: None,
            usage: Some(FakeUsage {
                prompt_tokens: 12,
                completion_tokens,
            }),
            delay: Duration::ZERO,
            ending: Ending::Complete,
            hold: None,
        }
    }

    /// An answer that is one tool call and no text.
    pub fn tool_call(name: impl Into<String>, arguments: Value) -> Self {
        Reply {
            tool_call: Some(ToolCallReply {
                id: None,
                name: name.into(),
                arguments,
            }),
            usage: Some(FakeUsage {
                prompt_tokens: 20,
                completion_tokens: 9,
            }),
            ..Reply::pieces(Vec::<String>::new())
        }
    }

    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Sends the first frame (a stream's first chunk), then holds the rest until `gate` opens.
    pub fn held_after_first(mut self, gate: &Gate) -> Self {
        self.hold = Some(gate.clone());
        self
    }

    pub fn without_usage(mut self) -> Self {
        self.usage = None;
        self
    }

    pub fn with_usage(mut self, prompt_tokens: u32, completion_tokens: u32) -> Self {
        self.usage = Some(FakeUsage {
            prompt_tokens,
            completion_tokens,
        });
        self
    }

    pub fn ending(mut self, ending: Ending) -> Self {
        self.ending = ending;
        self
    }

    /// The whole text of the answer.
    pub fn joined(&self) -> String {
        self.pieces.concat()
    }
}

#[derive(Debug, Clone)]
pub struct ToolCallReply {
    /// Defaults to `call_fake_1` (OpenAI) or `toolu_fake_1` (Anthropic).
    pub id: Option<String>,
    pub name: String,
    /// A JSON object.
    pub arguments: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FakeUsage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

/// How a stream ends (a whole answer is only affected by the breaks: `Abort` cuts its body
/// off, the others end it halfway). "After the first content" means after the first text piece,
/// or after the opening frame when there is no text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// As the real API ends it: `data: [DONE]` (OpenAI) or `message_stop` (Anthropic).
    Complete,
    /// The body ends cleanly without the terminator, as many OpenAI-compatible servers do.
    NoTerminator,
    /// After the first content, one event whose data is not JSON; then the rest, complete.
    Malformed,
    /// After the first content, the server aborts the connection (no clean end of body).
    Abort,
    /// After the first content, the body ends cleanly with no finish reason and no
    /// terminator: a truncated answer that looks like a normal end of body.
    Truncated,
    /// As `Truncated`, but the body ends halfway through the next event's `data:` line.
    CutMidEvent,
    /// The body ends cleanly halfway through the very first event: nothing usable came.
    CutAtStart,
}
