//! Anthropic's Messages API (`POST /v1/messages`): its wire types and the translation between
//! it and chat completions, both ways, in one place.
//!
//! - [`outbound`]: a chat request sent to a Messages API (the gateway's `anthropic` provider),
//!   and the Messages answer read back as a chat completion.
//! - [`inbound`]: a Messages request served by the chat pipeline (the gateway's `/v1/messages`
//!   endpoint), and the chat answer or chunk stream written back as Messages.
//!
//! The two directions share these types and the small mappings at the bottom of this file
//! (stop reasons, usage), so a field read one way is written the same way back. Requests are
//! read leniently where Anthropic is lenient (unknown block fields such as `cache_control` are
//! ignored) and answers carry only what is modelled.

pub mod inbound;
pub mod outbound;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::chat::{finish_reason, Usage};

/// A request the other API cannot express, about the request field `param` (relative to the
/// part being translated until [`TranslateError::within`] adds where that part is).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TranslateError {
    pub param: Option<String>,
    pub message: String,
}

impl TranslateError {
    pub fn new(param: &str, message: impl Into<String>) -> Self {
        TranslateError {
            param: Some(param.to_owned()),
            message: message.into(),
        }
    }

    /// Puts `param` inside `prefix`: `content[0]` within `messages[2]` is
    /// `messages[2].content[0]`.
    pub fn within(mut self, prefix: &str) -> Self {
        self.param = Some(match self.param {
            None => prefix.to_owned(),
            Some(p) if p.starts_with('[') => format!("{prefix}{p}"),
            Some(p) => format!("{prefix}.{p}"),
        });
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Requests.

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessagesRequest {
    pub model: String,
    /// Required by `/v1/messages` (checked there), absent from `count_tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<System>,
    pub messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop_sequences: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
}

/// `system`: a string, or text blocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum System {
    Text(String),
    Blocks(Vec<TextBlock>),
}

impl System {
    pub fn text(&self) -> String {
        match self {
            System::Text(t) => t.clone(),
            System::Blocks(blocks) => {
                let texts: Vec<&str> = blocks.iter().map(|b| b.text.as_str()).collect();
                texts.join("\n\n")
            }
        }
    }
}

/// A `{"type": "text", "text": ...}` block where only text may stand (the system prompt).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextBlock {
    #[serde(rename = "type")]
    pub kind: TextKind,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TextKind {
    Text,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Speaker {
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Speaker,
    pub content: Content,
}

/// A message's content: a string, or blocks.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Blocks(Vec<Block>),
}

impl<'de> Deserialize<'de> for Content {
    /// A string is text; anything else must be blocks. (serde's untagged enums would answer a
    /// bad block with "did not match any variant"; this says what is wrong with it, such as
    /// a block type the gateway does not take.)
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(text) => Ok(Content::Text(text)),
            other => serde_json::from_value(other)
                .map(Content::Blocks)
                .map_err(serde::de::Error::custom),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    Text {
        text: String,
    },
    Image {
        source: ImageSource,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    ToolResult {
        tool_use_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<Content>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        is_error: Option<bool>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ImageSource {
    Base64 { media_type: String, data: String },
    Url { url: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub input_schema: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToolChoice {
    Auto {
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        disable_parallel_tool_use: bool,
    },
    Any {
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        disable_parallel_tool_use: bool,
    },
    None,
    Tool {
        name: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        disable_parallel_tool_use: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Answers.

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessagesResponse {
    #[serde(default)]
    pub id: String,
    #[serde(rename = "type", default = "message_type")]
    pub kind: String,
    #[serde(default = "assistant_role")]
    pub role: String,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub content: Vec<ResponseBlock>,
    #[serde(default)]
    pub stop_reason: Option<String>,
    #[serde(default)]
    pub stop_sequence: Option<String>,
    #[serde(default)]
    pub usage: Option<AnthropicUsage>,
}

fn message_type() -> String {
    "message".to_owned()
}

fn assistant_role() -> String {
    "assistant".to_owned()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseBlock {
    Text {
        #[serde(default)]
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    /// Thinking, server tool results and block kinds added later: not part of the answer.
    #[serde(other)]
    Other,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnthropicUsage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u32>,
}

impl AnthropicUsage {
    /// Later reports (`message_delta`) carry running totals: a field present replaces the
    /// earlier value.
    pub fn update(&mut self, later: &AnthropicUsage) {
        let keep = |old: &mut Option<u32>, new: Option<u32>| {
            if new.is_some() {
                *old = new;
            }
        };
        keep(&mut self.input_tokens, later.input_tokens);
        keep(&mut self.output_tokens, later.output_tokens);
        keep(
            &mut self.cache_creation_input_tokens,
            later.cache_creation_input_tokens,
        );
        keep(
            &mut self.cache_read_input_tokens,
            later.cache_read_input_tokens,
        );
    }

    /// OpenAI counts every input token as a prompt token, cached or not; cache reads are also
    /// reported as `prompt_tokens_details.cached_tokens`, where OpenAI puts them.
    pub fn to_openai(&self) -> Option<Usage> {
        if self.input_tokens.is_none() && self.output_tokens.is_none() {
            return None;
        }
        let cache_read = self.cache_read_input_tokens.unwrap_or(0);
        let prompt = self.input_tokens.unwrap_or(0)
            + self.cache_creation_input_tokens.unwrap_or(0)
            + cache_read;
        let mut usage = Usage::new(prompt, self.output_tokens.unwrap_or(0));
        if cache_read > 0 {
            usage.extra.insert(
                "prompt_tokens_details".into(),
                serde_json::json!({ "cached_tokens": cache_read }),
            );
        }
        Some(usage)
    }

    /// The inverse of [`Self::to_openai`]: cached prompt tokens are cache reads, the rest
    /// plain input tokens.
    pub fn from_openai(usage: &Usage) -> Self {
        let cached = usage
            .extra
            .get("prompt_tokens_details")
            .and_then(|d| d.get("cached_tokens"))
            .and_then(Value::as_u64)
            .and_then(|c| u32::try_from(c).ok())
            .unwrap_or(0)
            .min(usage.prompt_tokens);
        AnthropicUsage {
            input_tokens: Some(usage.prompt_tokens - cached),
            output_tokens: Some(usage.completion_tokens),
            cache_creation_input_tokens: None,
            cache_read_input_tokens: (cached > 0).then_some(cached),
        }
    }
}

/// `POST /v1/messages/count_tokens`'s answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenCount {
    pub input_tokens: u32,
}

// ---------------------------------------------------------------------------------------------
// Stream events.

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    MessageStart {
        message: MessagesResponse,
    },
    ContentBlockStart {
        index: u32,
        content_block: ResponseBlock,
    },
    ContentBlockDelta {
        index: u32,
        delta: BlockDelta,
    },
    ContentBlockStop {
        #[serde(default)]
        index: u32,
    },
    MessageDelta {
        delta: MessageDeltaBody,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        usage: Option<AnthropicUsage>,
    },
    MessageStop {},
    Ping {},
    Error {
        error: Value,
    },
    /// Anthropic documents that new event types may appear; they are ignored.
    #[serde(other)]
    Unknown,
}

impl StreamEvent {
    /// The SSE event name, which Anthropic's SDKs read (they skip events without one).
    pub fn name(&self) -> &'static str {
        match self {
            StreamEvent::MessageStart { .. } => "message_start",
            StreamEvent::ContentBlockStart { .. } => "content_block_start",
            StreamEvent::ContentBlockDelta { .. } => "content_block_delta",
            StreamEvent::ContentBlockStop { .. } => "content_block_stop",
            StreamEvent::MessageDelta { .. } => "message_delta",
            StreamEvent::MessageStop {} => "message_stop",
            StreamEvent::Ping {} => "ping",
            StreamEvent::Error { .. } => "error",
            StreamEvent::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BlockDelta {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MessageDeltaBody {
    #[serde(default)]
    pub stop_reason: Option<String>,
    #[serde(default)]
    pub stop_sequence: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Errors.

/// Anthropic's error body: `{"type": "error", "error": {"type", "message"}}`, also the data
/// of a stream's `error` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    #[serde(rename = "type")]
    pub kind: String,
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
}

impl ErrorBody {
    /// `kind` is one of Anthropic's error types (`invalid_request_error`, `api_error`, ...).
    pub fn new(kind: &str, message: impl Into<String>) -> Self {
        ErrorBody {
            kind: "error".to_owned(),
            error: ErrorDetail {
                kind: kind.to_owned(),
                message: message.into(),
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The mappings both directions share.

/// Anthropic's stop reason as OpenAI's finish reason.
pub fn finish_reason_of(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" => finish_reason::LENGTH,
        "tool_use" => finish_reason::TOOL_CALLS,
        "refusal" => finish_reason::CONTENT_FILTER,
        // end_turn, stop_sequence, pause_turn and reasons added later.
        _ => finish_reason::STOP,
    }
}

/// OpenAI's finish reason as Anthropic's stop reason: the inverse of [`finish_reason_of`],
/// with `stop` split by whether a stop sequence ended the answer.
pub fn stop_reason_of(finish: &str, stop_sequence: Option<&str>) -> &'static str {
    match finish {
        finish_reason::LENGTH => "max_tokens",
        finish_reason::TOOL_CALLS => "tool_use",
        finish_reason::CONTENT_FILTER => "refusal",
        _ if stop_sequence.is_some() => "stop_sequence",
        _ => "end_turn",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_block_the_gateway_does_not_take_is_named() {
        let err = serde_json::from_value::<Message>(json!({"role": "user", "content": [
            {"type": "text", "text": "a"}, {"type": "document", "source": {}}]}))
        .unwrap_err();
        assert!(
            err.to_string().contains("unknown variant `document`"),
            "{err}"
        );
        let ok: Message = serde_json::from_value(json!({"role": "user", "content": "hi"})).unwrap();
        assert_eq!(ok.content, Content::Text("hi".into()));
    }

    /// The two directions agree: a Messages request in the form the provider writes (blocks,
    /// a string system prompt, tool results as text) read as a chat request and written back
    /// is the same request.
    #[test]
    fn messages_requests_survive_the_round_trip() {
        let cases = [
            json!({"model": "m", "max_tokens": 10, "system": "Be brief.",
                   "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
                   "stop_sequences": ["END", "STOP"], "temperature": 0.5, "top_p": 0.9, "top_k": 7,
                   "metadata": {"user_id": "u-1"}, "stream": true}),
            json!({"model": "m", "max_tokens": 10,
                   "tools": [{"name": "get_weather", "description": "Weather",
                              "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
                   "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": true},
                   "messages": [
                       {"role": "user", "content": [
                           {"type": "text", "text": "What is this, and the weather?"},
                           {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
                           {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}}]},
                       {"role": "assistant", "content": [
                           {"type": "text", "text": "Looking."},
                           {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"city": "Paris"}}]},
                       {"role": "user", "content": [
                           {"type": "tool_result", "tool_use_id": "t1", "content": "18C"},
                           {"type": "text", "text": "Thanks"}]}]}),
            json!({"model": "m", "max_tokens": 1, "tools": [{"name": "f", "input_schema": {}}],
                   "tool_choice": {"type": "any"},
                   "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]}),
            json!({"model": "m", "max_tokens": 1, "tools": [{"name": "f", "input_schema": {}}],
                   "tool_choice": {"type": "none"},
                   "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]}),
        ];
        for case in cases {
            let request: MessagesRequest = serde_json::from_value(case.clone()).unwrap();
            let chat = inbound::to_chat_request(request).unwrap();
            let back = outbound::to_messages(chat, 4096).unwrap();
            assert_eq!(serde_json::to_value(back).unwrap(), case);
        }
    }

    /// And answers: a Messages answer read as a chat completion and written back is the same
    /// answer (text, tool calls, stop reasons, usage with cache reads).
    #[test]
    fn messages_answers_survive_the_round_trip() {
        let cases = [
            json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "c",
                   "content": [{"type": "text", "text": "Hello"}],
                   "stop_reason": "end_turn", "stop_sequence": null,
                   "usage": {"input_tokens": 10, "output_tokens": 3, "cache_read_input_tokens": 4}}),
            json!({"id": "msg_2", "type": "message", "role": "assistant", "model": "c",
                   "content": [{"type": "text", "text": "Let me see."},
                               {"type": "tool_use", "id": "t", "name": "f", "input": {"a": [1, 2]}}],
                   "stop_reason": "tool_use", "stop_sequence": null,
                   "usage": {"input_tokens": 1, "output_tokens": 2}}),
            json!({"id": "msg_3", "type": "message", "role": "assistant", "model": "c",
                   "content": [{"type": "text", "text": "one"}],
                   "stop_reason": "stop_sequence", "stop_sequence": "END",
                   "usage": {"input_tokens": 1, "output_tokens": 1}}),
            json!({"id": "msg_4", "type": "message", "role": "assistant", "model": "c",
                   "content": [{"type": "text", "text": "cut"}],
                   "stop_reason": "max_tokens", "stop_sequence": null,
                   "usage": {"input_tokens": 1, "output_tokens": 1}}),
        ];
        for case in cases {
            let answer: MessagesResponse = serde_json::from_value(case.clone()).unwrap();
            let chat = outbound::to_chat_response(answer, 1);
            let back = inbound::to_messages_response(chat);
            assert_eq!(serde_json::to_value(back).unwrap(), case);
        }
    }
}
