//! A chat request sent to Bedrock's Converse API, and the Converse answer read back as a chat
//! completion (the `bedrock` provider's translation). What does not carry over:
//! - Images must be `data:` URLs (png, jpeg, gif, webp): Converse takes bytes and fetches
//!   nothing, so an `http(s)` image URL is refused, naming the part.
//! - `response_format` (`json_object`, `json_schema`): Converse has no JSON mode, so the model
//!   is made to call the tool [`JSON_TOOL`] with the schema as its input schema, and that
//!   call's input is the answer's content (as other gateways do). It cannot be combined with
//!   the caller's own `tools`, which would then never be called: refused.
//! - `tool_choice: "none"`: Converse has no such choice; the tools are left out instead,
//!   unless the conversation already holds tool calls (Bedrock then requires them).
//! - `n > 1` is refused; `seed`, `logprobs`, penalties and other OpenAI-only fields are
//!   dropped, since Bedrock rejects fields it does not know.

use serde_json::{json, Value};

use super::{
    finish_reason_of, Block, ConverseRequest, ConverseResponse, Empty, ImageBlock, ImageSource,
    InferenceConfig, InputSchema, Message, NamedTool, SystemBlock,
    ToolChoice as ConverseToolChoice, ToolConfig, ToolEntry, ToolResult, ToolResultContent,
    ToolSpec, ToolUse, JSON_TOOL,
};
use crate::anthropic::TranslateError;
use crate::chat::{
    finish_reason, ChatCompletionRequest, ChatCompletionResponse, ChatMessage, Choice, ContentPart,
    FunctionCall, MessageContent, ResponseFormat, Role, Tool, ToolCall, ToolChoice, ToolChoiceMode,
};
use crate::conversation::{conversation, data_url, image_url, tool_uses, TurnBlocks};
use crate::Extra;

fn unsupported(param: &str, message: impl Into<String>) -> TranslateError {
    TranslateError::new(param, message)
}

/// A chat request as Converse: the body, and whether the answer's [`JSON_TOOL`] call is the
/// answer's content ([`to_chat_response`] and the stream translation need to know).
#[derive(Debug, Clone, PartialEq)]
pub struct Converse {
    pub body: ConverseRequest,
    pub structured: bool,
}

pub fn to_converse(req: ChatCompletionRequest) -> Result<Converse, TranslateError> {
    if req.n.is_some_and(|n| n > 1) {
        return Err(unsupported(
            "n",
            "bedrock returns one choice per request (n > 1)",
        ));
    }
    let inference_config = InferenceConfig {
        max_tokens: req.output_cap(),
        temperature: req.temperature,
        top_p: req.top_p,
        stop_sequences: req.stop_sequences(),
    };
    let (system, turns) = conversation::<ConverseBlocks>(req.messages)?;
    let messages: Vec<Message> = turns
        .into_iter()
        .map(|(role, content)| Message { role, content })
        .collect();
    let has_tool_blocks = messages
        .iter()
        .flat_map(|m| &m.content)
        .any(|b| matches!(b, Block::ToolUse(_) | Block::ToolResult(_)));
    let structured = match &req.response_format {
        None | Some(ResponseFormat::Text) => None,
        Some(format) => Some(json_tool(format)),
    };
    let is_structured = structured.is_some();
    let tool_config = match structured {
        Some(spec) => {
            if req.tools.as_ref().is_some_and(|t| !t.is_empty()) {
                return Err(unsupported(
                    "response_format",
                    "bedrock makes structured output by forcing a tool, so it cannot be \
                     combined with `tools`",
                ));
            }
            Some(ToolConfig {
                tools: vec![ToolEntry { tool_spec: spec }],
                tool_choice: Some(ConverseToolChoice::Tool(NamedTool {
                    name: JSON_TOOL.to_owned(),
                })),
            })
        }
        None => tool_config(req.tools, req.tool_choice, has_tool_blocks),
    };
    Ok(Converse {
        structured: is_structured,
        body: ConverseRequest {
            messages,
            system: system
                .into_iter()
                .map(|text| SystemBlock { text })
                .collect(),
            inference_config: (inference_config != InferenceConfig::default())
                .then_some(inference_config),
            tool_config,
        },
    })
}

/// The tool standing in for `response_format`.
fn json_tool(format: &ResponseFormat) -> ToolSpec {
    let (description, schema) = match format {
        ResponseFormat::JsonSchema { json_schema } => (
            json_schema.description.clone().unwrap_or_else(|| {
                format!(
                    "Respond with a JSON value conforming to the schema `{}`",
                    json_schema.name
                )
            }),
            json_schema.schema.clone(),
        ),
        _ => ("Respond with a JSON object".to_owned(), None),
    };
    ToolSpec {
        name: JSON_TOOL.to_owned(),
        description: Some(description),
        input_schema: InputSchema {
            json: schema.unwrap_or_else(|| json!({"type": "object"})),
        },
    }
}

fn tool_config(
    tools: Option<Vec<Tool>>,
    choice: Option<ToolChoice>,
    has_tool_blocks: bool,
) -> Option<ToolConfig> {
    let tools = tools.unwrap_or_default();
    if tools.is_empty() {
        return None;
    }
    let none = matches!(choice, Some(ToolChoice::Mode(ToolChoiceMode::None)));
    if none && !has_tool_blocks {
        return None;
    }
    let tool_choice = match choice {
        None | Some(ToolChoice::Mode(ToolChoiceMode::None)) => None,
        Some(ToolChoice::Mode(ToolChoiceMode::Auto)) => Some(ConverseToolChoice::Auto(Empty {})),
        Some(ToolChoice::Mode(ToolChoiceMode::Required)) => Some(ConverseToolChoice::Any(Empty {})),
        Some(ToolChoice::Named(named)) => Some(ConverseToolChoice::Tool(NamedTool {
            name: named.function.name,
        })),
    };
    Some(ToolConfig {
        tools: tools
            .into_iter()
            .map(|t| ToolEntry {
                tool_spec: ToolSpec {
                    name: t.function.name,
                    description: t.function.description,
                    input_schema: InputSchema {
                        json: t
                            .function
                            .parameters
                            .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
                    },
                },
            })
            .collect(),
        tool_choice,
    })
}

/// How Converse writes a message's blocks.
struct ConverseBlocks;

impl TurnBlocks for ConverseBlocks {
    type Block = Block;
    const API: &'static str = "bedrock";

    fn text(text: String) -> Option<Block> {
        // Bedrock rejects blank text blocks.
        (!text.trim().is_empty()).then_some(Block::Text(text))
    }

    /// An `image_url` part, which must be a base64 `data:` URL of a format Converse takes.
    fn image(part: &ContentPart) -> Result<Block, TranslateError> {
        let Some(data_url) = data_url(image_url(part)?) else {
            return Err(unsupported(
                "image_url",
                "bedrock takes images as bytes and fetches no URLs: send the image as a base64 \
                 data: URL",
            ));
        };
        let (media_type, data) = data_url?;
        let format = match media_type.to_ascii_lowercase().as_str() {
            "image/png" => "png",
            "image/jpeg" | "image/jpg" => "jpeg",
            "image/gif" => "gif",
            "image/webp" => "webp",
            other => {
                return Err(unsupported(
                    "image_url",
                    format!("bedrock takes png, jpeg, gif and webp images, not `{other}`"),
                ))
            }
        };
        Ok(Block::Image(ImageBlock {
            format: format.to_owned(),
            source: ImageSource {
                bytes: data.to_owned(),
            },
        }))
    }

    fn assistant(message: ChatMessage) -> Result<Vec<Block>, TranslateError> {
        let mut blocks: Vec<Block> = match message.content {
            None => Vec::new(),
            Some(MessageContent::Text(text)) => Self::text(text).into_iter().collect(),
            Some(MessageContent::Parts(_)) => Self::text(message_text(&message.content))
                .into_iter()
                .collect(),
        };
        for (tool_use_id, name, input) in tool_uses(message.tool_calls)? {
            blocks.push(Block::ToolUse(ToolUse {
                tool_use_id,
                name,
                input,
            }));
        }
        Ok(blocks)
    }

    fn tool_result(tool_use_id: String, text: String) -> Block {
        // Bedrock rejects a blank text block; an empty result is an empty object.
        let content = if text.is_empty() {
            ToolResultContent::Json(Value::Object(Extra::new()))
        } else {
            ToolResultContent::Text(text)
        };
        Block::ToolResult(ToolResult {
            tool_use_id,
            content: vec![content],
        })
    }

    fn is_tool_result(block: &Block) -> bool {
        matches!(block, Block::ToolResult(_))
    }
}

/// The text of an assistant's parts, refusals included: a refusal is part of what it said.
fn message_text(content: &Option<MessageContent>) -> String {
    let Some(MessageContent::Parts(parts)) = content else {
        return String::new();
    };
    parts
        .iter()
        .filter_map(|p| {
            p.text.clone().or_else(|| {
                p.extra
                    .get("refusal")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
        })
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------------------------------------
// Converse answer → chat answer.

/// A Converse answer as a chat completion. Converse answers carry no id or model: the caller
/// gives them (the request id AWS returned, the model asked for).
pub fn to_chat_response(
    reply: ConverseResponse,
    id: String,
    model: String,
    created: i64,
    structured: bool,
) -> ChatCompletionResponse {
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    let blocks = reply.output.message.map(|m| m.content).unwrap_or_default();
    let mut answered_in_json = false;
    for block in blocks {
        if let Some(t) = block.text {
            text.push_str(&t);
        }
        if let Some(call) = block.tool_use {
            if structured && call.name == JSON_TOOL {
                // The forced tool's input is the answer; text around it is the model musing.
                text = call.input.to_string();
                answered_in_json = true;
                continue;
            }
            tool_calls.push(ToolCall {
                id: call.tool_use_id,
                kind: "function".into(),
                function: FunctionCall {
                    name: call.name,
                    arguments: call.input.to_string(),
                },
            });
        }
    }
    let finish = if answered_in_json {
        finish_reason::STOP
    } else {
        finish_reason_of(&reply.stop_reason)
    };
    // OpenAI sends `content: null` on a pure tool-call answer.
    let content = (!text.is_empty() || tool_calls.is_empty()).then_some(MessageContent::Text(text));
    ChatCompletionResponse {
        id,
        object: "chat.completion".into(),
        created,
        model,
        choices: vec![Choice {
            index: 0,
            message: ChatMessage {
                role: Role::Assistant,
                content,
                name: None,
                tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
                tool_call_id: None,
                extra: Extra::new(),
            },
            finish_reason: Some(finish.to_owned()),
            logprobs: None,
            stop_reason: None,
        }],
        usage: reply
            .usage
            .as_ref()
            .and_then(super::ConverseUsage::to_openai),
        system_fingerprint: None,
        extra: Extra::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn translate(input: Value) -> Result<Converse, TranslateError> {
        to_converse(serde_json::from_value(input).unwrap())
    }

    fn check_request(input: Value, expected: Value) {
        let out = translate(input.clone()).unwrap();
        assert_eq!(
            serde_json::to_value(out.body).unwrap(),
            expected,
            "for {input}"
        );
    }

    #[test]
    fn requests() {
        let cases = [
            // System prompts gather into `system`; sampling and stop into inferenceConfig.
            (
                json!({"model": "m", "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "developer", "content": [{"type": "text", "text": "No emoji."}]},
                    {"role": "user", "content": "Hi"}],
                    "temperature": 0.5, "top_p": 0.9, "stop": ["END"], "max_tokens": 10,
                    "max_completion_tokens": 20, "seed": 3, "logit_bias": {}}),
                json!({"messages": [{"role": "user", "content": [{"text": "Hi"}]}],
                       "system": [{"text": "Be brief."}, {"text": "No emoji."}],
                       "inferenceConfig": {"maxTokens": 20, "temperature": 0.5, "topP": 0.9,
                                           "stopSequences": ["END"]}}),
            ),
            // Tools, a tool call with its id, its result (first in the user's turn), images.
            (
                json!({"model": "m", "messages": [
                    {"role": "user", "content": "Weather?"},
                    {"role": "assistant", "content": null, "tool_calls": [{"id": "t1",
                        "type": "function", "function": {"name": "w", "arguments": "{\"c\":\"P\"}"}}]},
                    {"role": "user", "content": [{"type": "text", "text": "and this"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}}]},
                    {"role": "tool", "tool_call_id": "t1", "content": "sunny"}],
                    "tools": [{"type": "function", "function": {"name": "w", "description": "d",
                        "parameters": {"type": "object"}}}],
                    "tool_choice": "required"}),
                json!({"messages": [
                    {"role": "user", "content": [{"text": "Weather?"}]},
                    {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "w",
                        "input": {"c": "P"}}}]},
                    {"role": "user", "content": [
                        {"toolResult": {"toolUseId": "t1", "content": [{"text": "sunny"}]}},
                        {"text": "and this"},
                        {"image": {"format": "png", "source": {"bytes": "iVBO"}}}]}],
                    "toolConfig": {"tools": [{"toolSpec": {"name": "w", "description": "d",
                        "inputSchema": {"json": {"type": "object"}}}}], "toolChoice": {"any": {}}}}),
            ),
            // A named tool choice; "none" without tool calls in the history drops the tools.
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
                       "tools": [{"type": "function", "function": {"name": "w"}}],
                       "tool_choice": {"type": "function", "function": {"name": "w"}}}),
                json!({"messages": [{"role": "user", "content": [{"text": "x"}]}],
                       "toolConfig": {"tools": [{"toolSpec": {"name": "w", "inputSchema":
                           {"json": {"type": "object", "properties": {}}}}}],
                           "toolChoice": {"tool": {"name": "w"}}}}),
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
                       "tools": [{"type": "function", "function": {"name": "w"}}],
                       "tool_choice": "none"}),
                json!({"messages": [{"role": "user", "content": [{"text": "x"}]}]}),
            ),
        ];
        for (input, expected) in cases {
            check_request(input, expected);
        }
    }

    #[test]
    fn structured_output_forces_a_tool() {
        let out = translate(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "city",
                "schema": {"type": "object", "properties": {"name": {"type": "string"}}}}}}),
        )
        .unwrap();
        assert!(out.structured);
        assert_eq!(
            serde_json::to_value(out.body.tool_config).unwrap(),
            json!({"tools": [{"toolSpec": {"name": JSON_TOOL,
                "description": "Respond with a JSON value conforming to the schema `city`",
                "inputSchema": {"json": {"type": "object", "properties": {"name": {"type": "string"}}}}}}],
                "toolChoice": {"tool": {"name": JSON_TOOL}}})
        );
        let reply: ConverseResponse = serde_json::from_value(json!({
            "output": {"message": {"role": "assistant", "content": [
                {"toolUse": {"toolUseId": "x", "name": JSON_TOOL, "input": {"name": "Paris"}}}]}},
            "stopReason": "tool_use", "usage": {"inputTokens": 3, "outputTokens": 2, "totalTokens": 5}}))
        .unwrap();
        let chat = to_chat_response(reply, "id".into(), "m".into(), 7, true);
        assert_eq!(chat.text(), "{\"name\":\"Paris\"}");
        assert_eq!(chat.choices[0].finish_reason.as_deref(), Some("stop"));
        assert!(chat.choices[0].message.tool_calls.is_none());
        let err = translate(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
            "response_format": {"type": "json_object"},
            "tools": [{"type": "function", "function": {"name": "w"}}]}),
        )
        .unwrap_err();
        assert_eq!(err.param.as_deref(), Some("response_format"));
    }

    #[test]
    fn refusals_name_the_field() {
        for (input, param, words) in [
            (
                json!({"model": "m", "messages": [{"role": "user", "content": [
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]}),
                "messages[0].content[0].image_url",
                "data: URL",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": [
                    {"type": "image_url", "image_url": {"url": "data:image/tiff;base64,AA"}}]}]}),
                "messages[0].content[0].image_url",
                "image/tiff",
            ),
            (
                json!({"model": "m", "n": 2, "messages": [{"role": "user", "content": "x"}]}),
                "n",
                "n > 1",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"},
                    {"role": "tool", "content": "r"}]}),
                "messages[1].tool_call_id",
                "tool_call_id",
            ),
        ] {
            let err = translate(input).unwrap_err();
            assert_eq!(err.param.as_deref(), Some(param));
            assert!(err.message.contains(words), "{}", err.message);
        }
    }

    #[test]
    fn answers() {
        let reply: ConverseResponse = serde_json::from_value(json!({
            "output": {"message": {"role": "assistant", "content": [
                {"text": "Let me look."},
                {"reasoningContent": {"reasoningText": {"text": "hmm"}}},
                {"toolUse": {"toolUseId": "tooluse_1", "name": "w", "input": {"c": "P"}}}]}},
            "stopReason": "tool_use",
            "usage": {"inputTokens": 3, "outputTokens": 2, "totalTokens": 5,
                      "cacheReadInputTokens": 4},
            "metrics": {"latencyMs": 12}}))
        .unwrap();
        let chat = to_chat_response(reply, "req-1".into(), "m".into(), 7, false);
        assert_eq!(
            serde_json::to_value(chat).unwrap(),
            json!({"id": "req-1", "object": "chat.completion", "created": 7, "model": "m",
                "choices": [{"index": 0, "finish_reason": "tool_calls", "logprobs": null, "message": {
                    "role": "assistant", "content": "Let me look.", "tool_calls": [
                        {"id": "tooluse_1", "type": "function",
                         "function": {"name": "w", "arguments": "{\"c\":\"P\"}"}}]}}],
                "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9,
                          "prompt_tokens_details": {"cached_tokens": 4}}})
        );
    }
}
