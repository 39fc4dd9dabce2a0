//! What a chat request said and what it was answered, stored with its record when the config
//! asks for it (`[telemetry] content = "masked"`), for the dashboard's request detail.
//!
//! 1. The prompt is taken after the PII guard has masked the request ([`ContentStage::capture`]):
//!    the conversation as the model was sent it, placeholders (`<EMAIL_1>`) and all. The answer
//!    is what the model wrote, before placeholders are put back for the client: the whole
//!    answer (the last one when output guards had it regenerated), the text a stream
//!    assembled (as far as it went, when it stopped or the client left), or the cached
//!    answer a hit served. A refusal or an error has no answer.
//! 2. Only bounded copies are taken on the request path: each text up to the configured
//!    `content_max_bytes` and a margin, the first message and the last
//!    [`MAX_MESSAGES`]` - 1`, [`MAX_TOOL_CALLS`] tool calls a message. Nothing at all when the
//!    config says `none` (the stage is `None`).
//! 3. On the telemetry writer's thread ([`Captured::finish`], a `ContentJob`), every text is
//!    masked again for storage, whatever the request's guard policy (no PII guard, kinds only
//!    flagged, kinds the guard does not look for): every kind the scanner knows is redacted
//!    (`[EMAIL]`), so no PII or secret is stored in clear. Then each text is cut where the
//!    original reached `content_max_bytes`, with [`cut_marker`]'s note; a value the cut goes
//!    through is redacted whole (`switchyard_pii::Masked::prefix`).
//! 4. The control plane's `retention` deletes content older than `content_retention_days`
//!    every ten minutes, off the async threads; the records and every KPI over them stay.

use std::collections::BTreeMap;
use std::sync::Arc;

use switchyard_api::{ChatCompletionChunk, ChatCompletionRequest, ChatMessage, MessageContent};
use switchyard_control::ContentSpec;
use switchyard_pii::{Action, MaskPolicy, MaskSession, Masker, Scanner, ScannerConfig};
use switchyard_store::{ContentAnswer, ContentMessage, ContentToolCall, RequestContent};

/// Messages stored of one conversation: the first (usually the system prompt) and the last
/// ones.
pub const MAX_MESSAGES: usize = 100;
/// Tool calls stored of one message or answer.
pub const MAX_TOOL_CALLS: usize = 32;
/// Bytes kept past the size limit on the request path, so the scanner sees a value the cut
/// goes through whole (longer values than this are private keys, which it finds by their
/// first line).
const MARGIN: usize = 4096;

/// The content stage of a pipeline: `Some` when its config stores content.
pub struct ContentStage {
    max_bytes: usize,
    /// Redacts every kind of PII and secret, for storage.
    masker: Arc<Masker>,
}

impl ContentStage {
    pub fn build(spec: &ContentSpec) -> Result<Self, switchyard_pii::PiiError> {
        let scanner = Scanner::new(ScannerConfig::default())?;
        Ok(ContentStage {
            max_bytes: spec.max_bytes,
            masker: Arc::new(Masker::new(
                Arc::new(scanner),
                MaskPolicy::uniform(Action::Redact),
            )),
        })
    }

    /// The conversation as the model will be sent it (`request` is masked already).
    pub fn capture(&self, request: &ChatCompletionRequest) -> Captured {
        let all = &request.messages;
        let omitted = all.len().saturating_sub(MAX_MESSAGES);
        let kept = all
            .iter()
            .take(1)
            .chain(all.iter().skip(1 + omitted))
            .map(|m| Message::of(m, self.max_bytes))
            .collect();
        Captured {
            messages: kept,
            omitted,
            answer: None,
            max_bytes: self.max_bytes,
            masker: self.masker.clone(),
        }
    }
}

/// A request's content as taken on the request path: bounded, not yet masked for storage.
pub struct Captured {
    messages: Vec<Message>,
    omitted: usize,
    answer: Option<Answer>,
    max_bytes: usize,
    masker: Arc<Masker>,
}

impl Captured {
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// The model's answer (a later one replaces an earlier one).
    pub fn set_answer(&mut self, answer: Answer) {
        self.answer = Some(answer);
    }

    /// The content as stored: every text masked for storage and cut. Runs on the telemetry
    /// writer's thread.
    pub fn finish(self) -> RequestContent {
        let max = self.max_bytes;
        let mut session = self.masker.session(b"");
        let calls = |session: &mut MaskSession<'_>, calls: Vec<Call>| {
            calls
                .into_iter()
                .map(|c| ContentToolCall {
                    name: c.name,
                    arguments: c.arguments.stored(session, max),
                })
                .collect()
        };
        let messages = self
            .messages
            .into_iter()
            .map(|m| ContentMessage {
                role: m.role,
                text: m.text.stored(&mut session, max),
                tool_calls: calls(&mut session, m.tool_calls),
                tool_call_id: m.tool_call_id,
            })
            .collect();
        let answer = self.answer.map(|a| ContentAnswer {
            text: a.text.stored(&mut session, max),
            tool_calls: calls(&mut session, a.tool_calls),
            finish_reason: a.finish_reason,
        });
        RequestContent {
            messages,
            omitted_messages: self.omitted,
            answer,
        }
    }
}

/// The note that ends a text cut for storage.
pub fn cut_marker(full_bytes: usize) -> String {
    format!(" …[cut: {full_bytes} bytes in all]")
}

/// A text as far as it is kept on the request path, and how long it was.
#[derive(Default)]
struct Clip {
    text: String,
    full: usize,
}

impl Clip {
    fn of(text: &str, max: usize) -> Clip {
        let mut clip = Clip::default();
        clip.push(text, max);
        clip
    }

    /// Appends `piece`, keeping at most `max` plus the margin.
    fn push(&mut self, piece: &str, max: usize) {
        self.full += piece.len();
        let room = (max + MARGIN).saturating_sub(self.text.len());
        if room == 0 {
            return;
        }
        let mut end = room.min(piece.len());
        while !piece.is_char_boundary(end) {
            end -= 1;
        }
        self.text.push_str(&piece[..end]);
    }

    /// Masked for storage, cut where the original reached `max` bytes.
    fn stored(self, session: &mut MaskSession<'_>, max: usize) -> String {
        let masked = session.mask(&self.text);
        if self.full <= max {
            return masked.text;
        }
        let mut out = masked.prefix(&self.text, max).to_owned();
        out.push_str(&cut_marker(self.full));
        out
    }
}

struct Message {
    role: String,
    text: Clip,
    tool_calls: Vec<Call>,
    tool_call_id: Option<String>,
}

impl Message {
    fn of(m: &ChatMessage, max: usize) -> Message {
        let mut text = Clip::default();
        match &m.content {
            None => {}
            Some(MessageContent::Text(t)) => text.push(t, max),
            Some(MessageContent::Parts(parts)) => {
                for (i, p) in parts.iter().enumerate() {
                    if i > 0 {
                        text.push("\n", max);
                    }
                    match &p.text {
                        Some(t) => text.push(t, max),
                        // An image or audio part: named, not stored.
                        None => text.push(&format!("[{}]", p.kind), max),
                    }
                }
            }
        }
        let tool_calls = m
            .tool_calls
            .iter()
            .flatten()
            .take(MAX_TOOL_CALLS)
            .map(|t| Call {
                name: t.function.name.clone(),
                arguments: Clip::of(&t.function.arguments, max),
            })
            .collect();
        Message {
            role: m.role.as_str().to_owned(),
            text,
            tool_calls,
            tool_call_id: m.tool_call_id.clone(),
        }
    }
}

struct Call {
    name: String,
    arguments: Clip,
}

/// The model's answer, as taken on the request path.
pub struct Answer {
    text: Clip,
    tool_calls: Vec<Call>,
    finish_reason: Option<String>,
}

impl Answer {
    /// The first choice of a whole answer.
    pub fn of(response: &switchyard_api::ChatCompletionResponse, max: usize) -> Answer {
        match response.choices.first() {
            Some(c) => {
                let m = Message::of(&c.message, max);
                Answer {
                    text: m.text,
                    tool_calls: m.tool_calls,
                    finish_reason: c.finish_reason.clone(),
                }
            }
            None => Answer {
                text: Clip::default(),
                tool_calls: Vec::new(),
                finish_reason: None,
            },
        }
    }
}

/// A streamed answer put together chunk by chunk (the first choice; a request asks for one),
/// bounded as [`Answer::of`] is.
pub struct StreamCapture {
    max: usize,
    text: Clip,
    tool_calls: BTreeMap<u32, Call>,
    finish_reason: Option<String>,
}

impl StreamCapture {
    pub fn new(max: usize) -> Self {
        StreamCapture {
            max,
            text: Clip::default(),
            tool_calls: BTreeMap::new(),
            finish_reason: None,
        }
    }

    pub fn push(&mut self, chunk: &ChatCompletionChunk) {
        for c in chunk.choices.iter().filter(|c| c.index == 0) {
            if let Some(t) = &c.delta.content {
                self.text.push(t, self.max);
            }
            for d in c.delta.tool_calls.iter().flatten() {
                if !self.tool_calls.contains_key(&d.index)
                    && self.tool_calls.len() >= MAX_TOOL_CALLS
                {
                    continue;
                }
                let call = self.tool_calls.entry(d.index).or_insert_with(|| Call {
                    name: String::new(),
                    arguments: Clip::default(),
                });
                if let Some(f) = &d.function {
                    if let Some(name) = &f.name {
                        call.name.push_str(name);
                    }
                    if let Some(args) = &f.arguments {
                        call.arguments.push(args, self.max);
                    }
                }
            }
            if c.finish_reason.is_some() {
                self.finish_reason.clone_from(&c.finish_reason);
            }
        }
    }

    pub fn finish(self) -> Answer {
        Answer {
            text: self.text,
            tool_calls: self.tool_calls.into_values().collect(),
            finish_reason: self.finish_reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(max_bytes: usize) -> ContentStage {
        ContentStage::build(&ContentSpec { max_bytes }).unwrap()
    }

    fn request(messages: serde_json::Value) -> ChatCompletionRequest {
        serde_json::from_value(serde_json::json!({"model": "m", "messages": messages})).unwrap()
    }

    #[test]
    fn what_the_guard_left_in_clear_is_redacted_and_placeholders_stay() {
        let req = request(serde_json::json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Mail <EMAIL_1> and bob@example.org, card 4111 1111 1111 1111"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
                "function": {"name": "send", "arguments": "{\"to\":\"bob@example.org\"}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "sent"},
            {"role": "user", "content": [{"type": "text", "text": "and this?"}, {"type": "image_url", "image_url": {"url": "data:..."}}]},
        ]));
        let mut captured = stage(1024).capture(&req);
        let answer: switchyard_api::ChatCompletionResponse =
            serde_json::from_value(serde_json::json!({
                "id": "x", "object": "chat.completion", "created": 0, "model": "m",
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant",
                    "content": "Done: <EMAIL_1>, cc carol@example.net"}}]
            }))
            .unwrap();
        captured.set_answer(Answer::of(&answer, captured.max_bytes()));
        let c = captured.finish();
        let texts: Vec<&str> = c.messages.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "Be brief.",
                "Mail <EMAIL_1> and [EMAIL], card [CREDIT_CARD]",
                "",
                "sent",
                "and this?\n[image_url]"
            ]
        );
        assert_eq!(c.messages[2].tool_calls[0].name, "send");
        assert_eq!(c.messages[2].tool_calls[0].arguments, r#"{"to":"[EMAIL]"}"#);
        assert_eq!(c.messages[3].tool_call_id.as_deref(), Some("c1"));
        let a = c.answer.unwrap();
        assert_eq!(a.text, "Done: <EMAIL_1>, cc [EMAIL]");
        assert_eq!(a.finish_reason.as_deref(), Some("stop"));
    }

    #[test]
    fn long_texts_are_cut_with_a_marker_and_long_conversations_keep_both_ends() {
        let long = format!(
            "{} write to ann@example.com {}",
            "a".repeat(285),
            "b".repeat(5000)
        );
        let mut messages = vec![serde_json::json!({"role": "system", "content": long})];
        for i in 0..150 {
            messages.push(serde_json::json!({"role": "user", "content": format!("m{i}")}));
        }
        let captured = stage(300).capture(&request(serde_json::Value::Array(messages)));
        // Bounded on the request path already.
        assert!(captured.messages[0].text.text.len() <= 300 + MARGIN);
        let c = captured.finish();
        // The cut goes through the address: it is redacted whole, not left in part.
        assert_eq!(
            c.messages[0].text,
            format!(
                "{} write to [EMAIL]{}",
                "a".repeat(285),
                cut_marker(long.len())
            )
        );
        assert_eq!(c.messages.len(), MAX_MESSAGES);
        assert_eq!(c.omitted_messages, 51);
        assert_eq!(c.messages[1].text, "m51");
        assert_eq!(c.messages[MAX_MESSAGES - 1].text, "m149");
    }

    #[test]
    fn a_streamed_answer_is_assembled_with_its_tool_calls() {
        let chunk = |delta: serde_json::Value, finish: Option<&str>| -> ChatCompletionChunk {
            serde_json::from_value(serde_json::json!({
                "id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
            }))
            .unwrap()
        };
        let mut s = StreamCapture::new(1024);
        s.push(&chunk(
            serde_json::json!({"role": "assistant", "content": "Writing to "}),
            None,
        ));
        s.push(&chunk(
            serde_json::json!({"content": "dan@example.com"}),
            None,
        ));
        s.push(&chunk(
            serde_json::json!({"tool_calls": [{"index": 0, "id": "c", "type": "function",
                "function": {"name": "send", "arguments": "{\"to\":"}}]}),
            None,
        ));
        s.push(&chunk(
            serde_json::json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"dan@example.com\"}"}}]}),
            Some("tool_calls"),
        ));
        let mut captured = stage(1024).capture(&request(
            serde_json::json!([{"role": "user", "content": "hi"}]),
        ));
        captured.set_answer(s.finish());
        let a = captured.finish().answer.unwrap();
        assert_eq!(a.text, "Writing to [EMAIL]");
        assert_eq!(a.tool_calls[0].name, "send");
        assert_eq!(a.tool_calls[0].arguments, r#"{"to":"[EMAIL]"}"#);
        assert_eq!(a.finish_reason.as_deref(), Some("tool_calls"));
    }
}
