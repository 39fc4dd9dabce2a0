//! AWS Bedrock's Converse API (`POST /model/{modelId}/converse` and `/converse-stream`): its
//! wire types and the translation of chat completions to it and back ([`outbound`], the
//! gateway's `bedrock` provider).
//!
//! Converse is one shape for every model Bedrock hosts (Claude, Llama, Nova, Mistral, ...).
//! Its JSON is camelCase; a content block is an object with one key naming its kind
//! (`{"text": ...}`, `{"toolUse": {...}}`). ConverseStream's events arrive as binary event
//! stream frames whose `:event-type` header names the payload ([`StreamEvent::parse`]); the
//! framing is the provider's business, the payloads are here. Answers are read leniently:
//! block kinds not modelled (reasoning, guard content) are skipped.

pub mod outbound;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::anthropic::AnthropicUsage;
/// `user` or `assistant`, as Anthropic's.
pub use crate::anthropic::Speaker;
use crate::chat::{finish_reason, Usage};

/// The tool that stands in for `response_format`: Converse has no JSON-schema mode, so the
/// model is made to call this tool with the schema as its input schema, and the call's input
/// becomes the answer's content.
pub const JSON_TOOL: &str = "json_response";

// ---------------------------------------------------------------------------------------------
// Requests.

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseRequest {
    pub messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub system: Vec<SystemBlock>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference_config: Option<InferenceConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_config: Option<ToolConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemBlock {
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Speaker,
    pub content: Vec<Block>,
}

/// A content block of a request: one key naming its kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Block {
    Text(String),
    Image(ImageBlock),
    ToolUse(ToolUse),
    ToolResult(ToolResult),
}

/// An image as bytes (base64 in the JSON API): Converse fetches no URLs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageBlock {
    /// `png`, `jpeg`, `gif` or `webp`.
    pub format: String,
    pub source: ImageSource,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageSource {
    /// Base64, as the JSON protocol carries blobs.
    pub bytes: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUse {
    pub tool_use_id: String,
    pub name: String,
    pub input: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolResult {
    pub tool_use_id: String,
    pub content: Vec<ToolResultContent>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ToolResultContent {
    Text(String),
    Json(Value),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InferenceConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop_sequences: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolConfig {
    pub tools: Vec<ToolEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
}

/// `{"toolSpec": {...}}`: the one kind of tool entry modelled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolEntry {
    pub tool_spec: ToolSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub input_schema: InputSchema,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputSchema {
    pub json: Value,
}

/// `{"auto": {}}`, `{"any": {}}` or `{"tool": {"name": ...}}`. Converse has no "none".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ToolChoice {
    Auto(Empty),
    Any(Empty),
    Tool(NamedTool),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedTool {
    pub name: String,
}

// ---------------------------------------------------------------------------------------------
// Answers.

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseResponse {
    pub output: Output,
    pub stop_reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<ConverseUsage>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Output {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<ResponseMessage>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseMessage {
    pub role: Speaker,
    #[serde(default)]
    pub content: Vec<ResponseBlock>,
}

/// A block of an answer: text, a tool call, or a kind not modelled (both fields absent).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponseBlock {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_use: Option<ToolUse>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseUsage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_input_tokens: Option<u32>,
}

impl ConverseUsage {
    /// As OpenAI's usage. Bedrock counts input tokens apart from cache reads and writes, as
    /// Anthropic does, so the one mapping of those ([`AnthropicUsage::to_openai`]) is used:
    /// every input token is a prompt token, cache reads also `cached_tokens`.
    pub fn to_openai(&self) -> Option<Usage> {
        AnthropicUsage {
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cache_creation_input_tokens: self.cache_write_input_tokens,
            cache_read_input_tokens: self.cache_read_input_tokens,
        }
        .to_openai()
    }
}

// ---------------------------------------------------------------------------------------------
// ConverseStream's events.

/// One event of a ConverseStream answer, read from a frame's `:event-type` and JSON payload.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    MessageStart(MessageStart),
    ContentBlockStart(ContentBlockStart),
    ContentBlockDelta(ContentBlockDelta),
    ContentBlockStop(ContentBlockStop),
    MessageStop(MessageStop),
    Metadata(Metadata),
    /// An event type this version does not know: skipped, as AWS's SDKs do.
    Unknown,
}

impl StreamEvent {
    pub fn parse(event_type: &str, payload: &[u8]) -> Result<StreamEvent, serde_json::Error> {
        Ok(match event_type {
            "messageStart" => StreamEvent::MessageStart(serde_json::from_slice(payload)?),
            "contentBlockStart" => StreamEvent::ContentBlockStart(serde_json::from_slice(payload)?),
            "contentBlockDelta" => StreamEvent::ContentBlockDelta(serde_json::from_slice(payload)?),
            "contentBlockStop" => StreamEvent::ContentBlockStop(serde_json::from_slice(payload)?),
            "messageStop" => StreamEvent::MessageStop(serde_json::from_slice(payload)?),
            "metadata" => StreamEvent::Metadata(serde_json::from_slice(payload)?),
            _ => StreamEvent::Unknown,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageStart {
    pub role: Speaker,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentBlockStart {
    pub content_block_index: u32,
    pub start: BlockStart,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockStart {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_use: Option<ToolUseStart>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUseStart {
    pub tool_use_id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentBlockDelta {
    pub content_block_index: u32,
    pub delta: BlockDelta,
}

/// Text, or a piece of a tool call's input JSON; other kinds (reasoning) have neither.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockDelta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_use: Option<ToolUseDelta>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolUseDelta {
    pub input: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentBlockStop {
    pub content_block_index: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageStop {
    pub stop_reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<ConverseUsage>,
}

// ---------------------------------------------------------------------------------------------
// Mappings.

/// Converse's stop reason as OpenAI's finish reason.
pub fn finish_reason_of(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" => finish_reason::LENGTH,
        "tool_use" => finish_reason::TOOL_CALLS,
        "guardrail_intervened" | "content_filtered" => finish_reason::CONTENT_FILTER,
        // end_turn, stop_sequence and reasons added later.
        _ => finish_reason::STOP,
    }
}

/// The HTTP status an error named by Bedrock (`x-amzn-ErrorType`, or an exception frame's
/// `:exception-type`, either case) stands for, which says whether to retry: throttling and a
/// model not ready yet are 429, an unavailable service 503, a model timeout 408, an internal
/// error 500 (all retryable); validation 400, access denied 403, not found 404 are not.
pub fn error_status(error_type: &str) -> Option<u16> {
    // `ThrottlingException:http://internal.amazon.com/...`: the name is before the colon.
    let name = error_type.split(':').next().unwrap_or(error_type);
    let name = name.trim().to_ascii_lowercase();
    Some(match name.trim_end_matches("exception") {
        "throttling" | "modelnotready" | "toomanyrequests" => 429,
        "serviceunavailable" => 503,
        "internalserver" | "modelstreamerror" => 500,
        "modeltimeout" => 408,
        "validation" | "modelerror" | "serializationerror" => 400,
        "accessdenied" | "unrecognizedclient" | "invalidsignature" | "expiredtoken" => 403,
        "resourcenotfound" => 404,
        "servicequotaexceeded" => 400,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn errors_map_to_statuses() {
        for (name, status) in [
            (
                "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/",
                Some(429),
            ),
            ("throttlingException", Some(429)),
            ("ModelNotReadyException", Some(429)),
            ("serviceUnavailableException", Some(503)),
            ("ValidationException", Some(400)),
            ("AccessDeniedException", Some(403)),
            ("InternalServerException", Some(500)),
            ("modelStreamErrorException", Some(500)),
            ("SomethingNew", None),
        ] {
            assert_eq!(error_status(name), status, "{name}");
        }
    }

    #[test]
    fn usage_counts_cache_reads_and_writes_as_prompt_tokens() {
        let usage: ConverseUsage = serde_json::from_value(json!({"inputTokens": 10,
            "outputTokens": 4, "totalTokens": 44, "cacheReadInputTokens": 20,
            "cacheWriteInputTokens": 10}))
        .unwrap();
        let openai = usage.to_openai().unwrap();
        assert_eq!(
            serde_json::to_value(openai).unwrap(),
            json!({"prompt_tokens": 40, "completion_tokens": 4, "total_tokens": 44,
                   "prompt_tokens_details": {"cached_tokens": 20}})
        );
        assert_eq!(ConverseUsage::default().to_openai(), None);
    }

    #[test]
    fn stream_events_parse_by_type() {
        let e = StreamEvent::parse(
            "contentBlockDelta",
            br#"{"contentBlockIndex":1,"delta":{"toolUse":{"input":"{\"a\""}},"p":"abc"}"#,
        )
        .unwrap();
        assert_eq!(
            e,
            StreamEvent::ContentBlockDelta(ContentBlockDelta {
                content_block_index: 1,
                delta: BlockDelta {
                    text: None,
                    tool_use: Some(ToolUseDelta {
                        input: "{\"a\"".into()
                    }),
                },
            })
        );
        assert_eq!(
            StreamEvent::parse("somethingNew", b"{}").unwrap(),
            StreamEvent::Unknown
        );
        assert!(StreamEvent::parse("messageStop", b"{}").is_err());
    }

    #[test]
    fn stop_reasons() {
        for (stop, finish) in [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("tool_use", "tool_calls"),
            ("max_tokens", "length"),
            ("guardrail_intervened", "content_filter"),
            ("content_filtered", "content_filter"),
        ] {
            assert_eq!(finish_reason_of(stop), finish);
        }
    }
}
