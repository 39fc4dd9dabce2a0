//! OpenAI's Responses API (`POST /v1/responses`) as wire types, and its translation to and
//! from chat completions, so that every provider the gateway speaks chat completions to
//! serves it: [`input`] turns a request (with the conversation a `previous_response_id`
//! names) into a [`ChatCompletionRequest`](crate::ChatCompletionRequest), [`output`] a chat
//! answer into a [`ResponseObject`], [`events`] a chat stream into the Responses stream's
//! events, in their order; [`items`] pages through a stored conversation.
//!
//! A conversation is kept as a list of [`Item`]s (messages, function calls and their
//! outputs) in one normal form: what a client sends is read into it with every mistake named
//! by its `param` ([`Invalid`]), and a stored response's output is added to it as items. Pure:
//! ids and times are the caller's.

pub mod events;
pub mod input;
pub mod items;
pub mod output;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use events::{Event, ResponseStream};
pub use input::{conversation, to_chat, Turn};
pub use items::{ItemList, ItemsQuery};
pub use output::from_chat;

/// A request the Responses API cannot serve as sent: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    /// The field in OpenAI's `param` style (`input[2].content[0].type`).
    pub param: String,
    pub message: String,
}

impl Invalid {
    pub fn new(param: impl Into<String>, message: impl Into<String>) -> Self {
        Invalid {
            param: param.into(),
            message: message.into(),
        }
    }
}

/// `POST /v1/responses`' body. Fields OpenAI defines that mean nothing here are accepted
/// and ignored (`include`, `truncation`, `stream_options`); any other field is refused by
/// name rather than silently dropped.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateResponse {
    pub model: String,
    /// Text, or a list of items; read by [`input::items`].
    #[serde(default)]
    pub input: Option<Value>,
    #[serde(default)]
    pub instructions: Option<String>,
    #[serde(default)]
    pub previous_response_id: Option<String>,
    /// Read by [`input::tools`]: only function tools are served.
    #[serde(default)]
    pub tools: Option<Vec<Value>>,
    #[serde(default)]
    pub tool_choice: Option<Value>,
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default)]
    pub text: Option<TextConfig>,
    #[serde(default)]
    pub max_output_tokens: Option<u32>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub user: Option<String>,
    /// Whether the response is kept for `GET` and `previous_response_id`; OpenAI's default
    /// is true.
    #[serde(default)]
    pub store: Option<bool>,
    #[serde(default)]
    pub stream: Option<bool>,
    /// `{"effort": ...}`: passed on as chat's `reasoning_effort`.
    #[serde(default)]
    pub reasoning: Option<Reasoning>,
    #[serde(default)]
    pub service_tier: Option<String>,
    /// The newer name of `user`.
    #[serde(default)]
    pub safety_identifier: Option<String>,
    #[serde(default)]
    pub prompt_cache_key: Option<String>,
    /// Refused when true: responses are answered while the client waits.
    #[serde(default)]
    pub background: Option<bool>,
    #[serde(default)]
    pub include: Option<Vec<String>>,
    #[serde(default)]
    pub truncation: Option<String>,
    #[serde(default)]
    pub stream_options: Option<Value>,
}

impl CreateResponse {
    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    /// Whether the response is to be kept (OpenAI's default: yes).
    pub fn stores(&self) -> bool {
        self.store.unwrap_or(true)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reasoning {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effort: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

/// `text`: the output's format (and OpenAI's `verbosity`, passed on).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TextConfig {
    #[serde(default)]
    pub format: Option<TextFormat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verbosity: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TextFormat {
    Text,
    JsonObject,
    JsonSchema {
        name: String,
        schema: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        strict: Option<bool>,
    },
}

/// One item of a conversation, in the one form the gateway keeps: a client's input is read
/// into it ([`input::items`]), a response's output is turned into it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Item {
    Message {
        role: ItemRole,
        content: Vec<Part>,
    },
    FunctionCall {
        call_id: String,
        name: String,
        arguments: String,
    },
    FunctionCallOutput {
        call_id: String,
        output: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemRole {
    User,
    Assistant,
    System,
    Developer,
}

/// A part of a message's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Part {
    InputText {
        text: String,
    },
    OutputText {
        text: String,
    },
    Refusal {
        refusal: String,
    },
    InputImage {
        image_url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
}

/// The response object, as `POST` answers it, the stream's events carry it and `GET` reads
/// it back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseObject {
    pub id: String,
    pub object: String,
    pub created_at: i64,
    /// `in_progress`, `completed`, `incomplete` or `failed`.
    pub status: String,
    pub error: Option<ResponseError>,
    pub incomplete_details: Option<IncompleteDetails>,
    pub instructions: Option<String>,
    pub max_output_tokens: Option<u32>,
    pub model: String,
    pub output: Vec<OutputItem>,
    pub parallel_tool_calls: bool,
    pub previous_response_id: Option<String>,
    pub store: bool,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub text: TextConfig,
    pub tool_choice: Value,
    pub tools: Vec<Value>,
    pub truncation: String,
    pub usage: Option<ResponseUsage>,
    pub user: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

impl ResponseObject {
    /// The response to `request` before any output: `in_progress`, its settings echoed.
    pub fn pending(id: String, created_at: i64, request: &CreateResponse) -> Self {
        let text = request.text.clone().unwrap_or_default();
        ResponseObject {
            id,
            object: "response".to_owned(),
            created_at,
            status: status::IN_PROGRESS.to_owned(),
            error: None,
            incomplete_details: None,
            instructions: request.instructions.clone(),
            max_output_tokens: request.max_output_tokens,
            model: request.model.clone(),
            output: Vec::new(),
            parallel_tool_calls: request.parallel_tool_calls.unwrap_or(true),
            previous_response_id: request.previous_response_id.clone(),
            store: request.stores(),
            temperature: request.temperature,
            top_p: request.top_p,
            text: TextConfig {
                format: Some(text.format.unwrap_or(TextFormat::Text)),
                verbosity: text.verbosity,
            },
            tool_choice: request
                .tool_choice
                .clone()
                .unwrap_or_else(|| Value::from("auto")),
            tools: request.tools.clone().unwrap_or_default(),
            truncation: request
                .truncation
                .clone()
                .unwrap_or_else(|| "disabled".to_owned()),
            usage: None,
            user: request.user.clone(),
            metadata: request.metadata.clone().unwrap_or_default(),
        }
    }

    /// The output as conversation items, for the turn that continues from this response.
    pub fn output_items(&self) -> Vec<Item> {
        self.output
            .iter()
            .map(|item| match item {
                OutputItem::Message { content, .. } => Item::Message {
                    role: ItemRole::Assistant,
                    content: content
                        .iter()
                        .map(|c| match c {
                            OutputContent::OutputText { text, .. } => {
                                Part::OutputText { text: text.clone() }
                            }
                            OutputContent::Refusal { refusal } => Part::Refusal {
                                refusal: refusal.clone(),
                            },
                        })
                        .collect(),
                },
                OutputItem::FunctionCall {
                    call_id,
                    name,
                    arguments,
                    ..
                } => Item::FunctionCall {
                    call_id: call_id.clone(),
                    name: name.clone(),
                    arguments: arguments.clone(),
                },
            })
            .collect()
    }

    /// The output's text, as the SDKs' `output_text` joins it.
    pub fn output_text(&self) -> String {
        let mut text = String::new();
        for item in &self.output {
            if let OutputItem::Message { content, .. } = item {
                for c in content {
                    if let OutputContent::OutputText { text: t, .. } = c {
                        text.push_str(t);
                    }
                }
            }
        }
        text
    }
}

/// The values of a response's `status`.
pub mod status {
    pub const IN_PROGRESS: &str = "in_progress";
    pub const COMPLETED: &str = "completed";
    pub const INCOMPLETE: &str = "incomplete";
    pub const FAILED: &str = "failed";
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseError {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncompleteDetails {
    /// `max_output_tokens` or `content_filter`.
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputItem {
    Message {
        id: String,
        status: String,
        role: String,
        content: Vec<OutputContent>,
    },
    FunctionCall {
        id: String,
        call_id: String,
        name: String,
        arguments: String,
        status: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputContent {
    OutputText {
        text: String,
        #[serde(default)]
        annotations: Vec<Value>,
    },
    Refusal {
        refusal: String,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseUsage {
    pub input_tokens: u32,
    pub input_tokens_details: InputTokensDetails,
    pub output_tokens: u32,
    pub output_tokens_details: OutputTokensDetails,
    pub total_tokens: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputTokensDetails {
    pub cached_tokens: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputTokensDetails {
    pub reasoning_tokens: u32,
}

/// `DELETE /v1/responses/{id}`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseDeleted {
    pub id: String,
    pub object: String,
    pub deleted: bool,
}
