//! A chat request sent to a Messages API, and the Messages answer read back as a chat
//! completion (the `anthropic` provider's translation). What does not carry over:
//! - `response_format` (`json_object`, `json_schema`) becomes an instruction in `system`
//!   asking for JSON; Anthropic has no constrained decoding, so the answer is not guaranteed
//!   to parse or to match the schema.
//! - `n > 1` is refused; `seed`, `logprobs`, penalties and other OpenAI-only fields are
//!   dropped, since Anthropic rejects fields it does not know.
//! - `temperature` above 1 (OpenAI allows up to 2) is clamped to Anthropic's maximum of 1.
//! - Thinking blocks in answers are skipped.

use serde_json::Value;

use super::{
    finish_reason_of, AnthropicUsage, Block, Content, ImageSource, Message, MessagesRequest,
    MessagesResponse, Metadata, ResponseBlock, System, ToolChoice as MessagesToolChoice, ToolDef,
    TranslateError,
};
use crate::chat::{
    ChatCompletionRequest, ChatCompletionResponse, ChatMessage, Choice, ContentPart, FunctionCall,
    MessageContent, ResponseFormat, Role, Tool, ToolCall, ToolChoice, ToolChoiceMode,
};
use crate::conversation::{
    assistant_texts, conversation, data_url, image_url, tool_uses, TurnBlocks,
};
use crate::Extra;

/// A request Anthropic cannot take, about the request field `param` (relative to the message
/// being translated; `to_messages` adds which message).
fn unsupported(param: &str, message: impl Into<String>) -> TranslateError {
    TranslateError::new(param, message)
}

/// A chat request as a Messages request: `default_max_tokens` when the request has no cap
/// (Anthropic requires one); `top_k` from the request's extra fields, where a Messages request
/// read by [`super::inbound`] put it.
pub fn to_messages(
    req: ChatCompletionRequest,
    default_max_tokens: u32,
) -> Result<MessagesRequest, TranslateError> {
    if req.n.is_some_and(|n| n > 1) {
        return Err(unsupported(
            "n",
            "anthropic returns one choice per request (n > 1)",
        ));
    }
    let max_tokens = req.output_cap().unwrap_or(default_max_tokens);
    let stop_sequences = req.stop_sequences();
    let stream = req.is_stream();
    let parallel_off = req.extra.get("parallel_tool_calls") == Some(&Value::Bool(false));
    let top_k = req
        .extra
        .get("top_k")
        .and_then(Value::as_u64)
        .and_then(|k| u32::try_from(k).ok());

    let (mut system, turns) = conversation::<Messages>(req.messages)?;
    if let Some(instruction) = req.response_format.as_ref().and_then(json_instruction) {
        system.push(instruction);
    }

    let tools = tool_definitions(req.tools);
    // A tool choice without tools is meaningless and Anthropic rejects it.
    let tool_choice = if tools.is_empty() {
        None
    } else {
        tool_choice(req.tool_choice, parallel_off)
    };

    Ok(MessagesRequest {
        model: req.model,
        max_tokens: Some(max_tokens),
        system: (!system.is_empty()).then(|| System::Text(system.join("\n\n"))),
        messages: turns
            .into_iter()
            .map(|(role, blocks)| Message {
                role,
                content: Content::Blocks(blocks),
            })
            .collect(),
        stop_sequences,
        temperature: req.temperature.map(|t| t.clamp(0.0, 1.0)),
        top_p: req.top_p,
        top_k,
        tools,
        tool_choice,
        metadata: req.user.map(|user_id| Metadata {
            user_id: Some(user_id),
        }),
        stream,
    })
}

/// How the Messages API writes a message's blocks.
struct Messages;

impl TurnBlocks for Messages {
    type Block = Block;
    const API: &'static str = "anthropic";

    fn text(text: String) -> Option<Block> {
        // Anthropic rejects empty text blocks.
        (!text.is_empty()).then_some(Block::Text { text })
    }

    /// An `image_url` part: a `data:` URL becomes an inline base64 image, any other URL a URL
    /// source that Anthropic fetches itself.
    fn image(part: &ContentPart) -> Result<Block, TranslateError> {
        let url = image_url(part)?;
        let source = match data_url(url).transpose()? {
            Some((media_type, data)) => ImageSource::Base64 {
                media_type: media_type.to_owned(),
                data: data.to_owned(),
            },
            None => ImageSource::Url {
                url: url.to_owned(),
            },
        };
        Ok(Block::Image { source })
    }

    fn assistant(message: ChatMessage) -> Result<Vec<Block>, TranslateError> {
        let mut blocks: Vec<Block> = assistant_texts(message.content, "anthropic")?
            .into_iter()
            .filter_map(Self::text)
            .collect();
        for (id, name, input) in tool_uses(message.tool_calls)? {
            blocks.push(Block::ToolUse { id, name, input });
        }
        Ok(blocks)
    }

    fn tool_result(tool_use_id: String, text: String) -> Block {
        Block::ToolResult {
            tool_use_id,
            content: (!text.is_empty()).then_some(Content::Text(text)),
            is_error: None,
        }
    }

    fn is_tool_result(block: &Block) -> bool {
        matches!(block, Block::ToolResult { .. })
    }
}

fn tool_definitions(tools: Option<Vec<Tool>>) -> Vec<ToolDef> {
    tools
        .unwrap_or_default()
        .into_iter()
        .map(|t| ToolDef {
            name: t.function.name,
            description: t.function.description,
            input_schema: t
                .function
                .parameters
                .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}})),
        })
        .collect()
}

/// OpenAI's tool choice (and `parallel_tool_calls: false`) in Anthropic's terms.
fn tool_choice(choice: Option<ToolChoice>, parallel_off: bool) -> Option<MessagesToolChoice> {
    let off = parallel_off;
    match choice {
        None if off => Some(MessagesToolChoice::Auto {
            disable_parallel_tool_use: true,
        }),
        None => None,
        Some(ToolChoice::Mode(ToolChoiceMode::Auto)) => Some(MessagesToolChoice::Auto {
            disable_parallel_tool_use: off,
        }),
        Some(ToolChoice::Mode(ToolChoiceMode::Required)) => Some(MessagesToolChoice::Any {
            disable_parallel_tool_use: off,
        }),
        Some(ToolChoice::Mode(ToolChoiceMode::None)) => Some(MessagesToolChoice::None),
        Some(ToolChoice::Named(named)) => Some(MessagesToolChoice::Tool {
            name: named.function.name,
            disable_parallel_tool_use: off,
        }),
    }
}

/// The system instruction standing in for `response_format`.
fn json_instruction(format: &ResponseFormat) -> Option<String> {
    match format {
        ResponseFormat::Text => None,
        ResponseFormat::JsonObject => Some(
            "Respond with a single valid JSON object and nothing else: no prose, no code fences."
                .to_owned(),
        ),
        ResponseFormat::JsonSchema { json_schema } => {
            let schema = json_schema
                .schema
                .as_ref()
                .map(Value::to_string)
                .unwrap_or_else(|| "{}".to_owned());
            Some(format!(
                "Respond with a single valid JSON value and nothing else (no prose, no code \
                 fences) that conforms to this JSON schema named `{}`: {schema}",
                json_schema.name
            ))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Messages answer → chat answer.

/// A Messages answer as a chat completion, stamped `created`.
pub fn to_chat_response(reply: MessagesResponse, created: i64) -> ChatCompletionResponse {
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in reply.content {
        match block {
            ResponseBlock::Text { text: t } => text.push_str(&t),
            ResponseBlock::ToolUse { id, name, input } => tool_calls.push(ToolCall {
                id,
                kind: "function".into(),
                function: FunctionCall {
                    name,
                    arguments: input.to_string(),
                },
            }),
            ResponseBlock::Other => {}
        }
    }
    // The stop sequence that ended the answer, where chat completions can carry it.
    let stop_sequence = reply
        .stop_sequence
        .filter(|_| reply.stop_reason.as_deref() == Some("stop_sequence"));
    // OpenAI sends `content: null` on a pure tool-call answer.
    let content = (!text.is_empty() || tool_calls.is_empty()).then_some(MessageContent::Text(text));
    let message = ChatMessage {
        role: Role::Assistant,
        content,
        name: None,
        tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
        tool_call_id: None,
        extra: Extra::new(),
    };
    ChatCompletionResponse {
        id: reply.id,
        object: "chat.completion".into(),
        created,
        model: reply.model,
        choices: vec![Choice {
            index: 0,
            message,
            finish_reason: reply
                .stop_reason
                .as_deref()
                .map(|r| finish_reason_of(r).to_owned()),
            logprobs: None,
            stop_reason: stop_sequence.map(Value::String),
        }],
        usage: reply.usage.as_ref().and_then(AnthropicUsage::to_openai),
        system_fingerprint: None,
        extra: Extra::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check_request(input: Value, expected: Value) {
        let req: ChatCompletionRequest = serde_json::from_value(input.clone()).unwrap();
        let out = to_messages(req, 1024).unwrap();
        assert_eq!(serde_json::to_value(out).unwrap(), expected, "for {input}");
    }

    #[test]
    fn requests() {
        let cases = [
            // System and developer messages gather into `system`; default max_tokens.
            (
                json!({"model": "claude", "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "developer", "content": [{"type": "text", "text": "No emoji."}]},
                    {"role": "user", "content": "Hi"}]}),
                json!({"model": "claude", "max_tokens": 1024, "system": "Be brief.\n\nNo emoji.",
                       "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]}),
            ),
            // Sampling, stop, caps, user, stream; unknown fields are dropped.
            (
                json!({"model": "c", "messages": [{"role": "user", "content": "Hi"}],
                       "temperature": 1.7, "top_p": 0.9, "stop": "END", "max_tokens": 10,
                       "max_completion_tokens": 20, "user": "u-1", "stream": true,
                       "stream_options": {"include_usage": true}, "seed": 3, "logit_bias": {}}),
                json!({"model": "c", "max_tokens": 20,
                       "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
                       "temperature": 1.0, "top_p": 0.9, "stop_sequences": ["END"],
                       "metadata": {"user_id": "u-1"}, "stream": true}),
            ),
            // Images: data URL → base64, http URL → url; consecutive users merge.
            (
                json!({"model": "c", "max_tokens": 5, "messages": [
                    {"role": "user", "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}}]},
                    {"role": "user", "content": [
                        {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg", "detail": "low"}}]}]}),
                json!({"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
                    {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}}]}]}),
            ),
            // Tool round trip: tool_calls → tool_use, tool messages merge into one user turn,
            // tool results go first; tools and a named tool choice.
            (
                json!({"model": "c", "max_tokens": 5,
                    "tools": [{"type": "function", "function": {"name": "get_weather",
                        "description": "Weather", "parameters": {"type": "object",
                        "properties": {"city": {"type": "string"}}}}},
                        {"type": "function", "function": {"name": "now"}}],
                    "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
                    "messages": [
                    {"role": "user", "content": "Weather in Paris and Rome?"},
                    {"role": "assistant", "content": "Checking.", "tool_calls": [
                        {"id": "t1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                        {"id": "t2", "type": "function", "function": {"name": "now", "arguments": ""}}]},
                    {"role": "tool", "tool_call_id": "t1", "content": "18C"},
                    {"role": "user", "content": "Also:"},
                    {"role": "tool", "tool_call_id": "t2", "content": "noon"}]}),
                json!({"model": "c", "max_tokens": 5,
                    "tools": [{"name": "get_weather", "description": "Weather", "input_schema":
                        {"type": "object", "properties": {"city": {"type": "string"}}}},
                        {"name": "now", "input_schema": {"type": "object", "properties": {}}}],
                    "tool_choice": {"type": "tool", "name": "get_weather"},
                    "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"}]},
                    {"role": "assistant", "content": [
                        {"type": "text", "text": "Checking."},
                        {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"city": "Paris"}},
                        {"type": "tool_use", "id": "t2", "name": "now", "input": {}}]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "t1", "content": "18C"},
                        {"type": "tool_result", "tool_use_id": "t2", "content": "noon"},
                        {"type": "text", "text": "Also:"}]}]}),
            ),
            // Tool choice modes, and parallel_tool_calls: false.
            (
                json!({"model": "c", "max_tokens": 5, "messages": [],
                       "tools": [{"type": "function", "function": {"name": "f"}}],
                       "tool_choice": "required", "parallel_tool_calls": false}),
                json!({"model": "c", "max_tokens": 5, "messages": [],
                       "tools": [{"name": "f", "input_schema": {"type": "object", "properties": {}}}],
                       "tool_choice": {"type": "any", "disable_parallel_tool_use": true}}),
            ),
            (
                json!({"model": "c", "max_tokens": 5, "messages": [],
                       "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "auto"}),
                json!({"model": "c", "max_tokens": 5, "messages": [],
                       "tools": [{"name": "f", "input_schema": {"type": "object", "properties": {}}}],
                       "tool_choice": {"type": "auto"}}),
            ),
            (
                json!({"model": "c", "max_tokens": 5, "messages": [],
                       "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "none"}),
                json!({"model": "c", "max_tokens": 5, "messages": [],
                       "tools": [{"name": "f", "input_schema": {"type": "object", "properties": {}}}],
                       "tool_choice": {"type": "none"}}),
            ),
            // A tool choice without tools is dropped.
            (
                json!({"model": "c", "max_tokens": 5, "messages": [], "tool_choice": "auto"}),
                json!({"model": "c", "max_tokens": 5, "messages": []}),
            ),
            // response_format becomes a system instruction.
            (
                json!({"model": "c", "max_tokens": 5, "messages": [{"role": "system", "content": "S"}],
                       "response_format": {"type": "json_object"}}),
                json!({"model": "c", "max_tokens": 5, "messages": [], "system":
                       "S\n\nRespond with a single valid JSON object and nothing else: no prose, no code fences."}),
            ),
            (
                json!({"model": "c", "max_tokens": 5, "messages": [],
                       "response_format": {"type": "json_schema", "json_schema": {"name": "p",
                           "schema": {"type": "object"}}}}),
                json!({"model": "c", "max_tokens": 5, "messages": [], "system":
                       "Respond with a single valid JSON value and nothing else (no prose, no code fences) that conforms to this JSON schema named `p`: {\"type\":\"object\"}"}),
            ),
            // Empty texts are dropped; an assistant answer of only a tool call.
            (
                json!({"model": "c", "max_tokens": 5, "messages": [
                    {"role": "user", "content": ""},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "t", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}]}),
                json!({"model": "c", "max_tokens": 5, "messages": [
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]}]}),
            ),
        ];
        for (input, expected) in cases {
            check_request(input, expected);
        }
    }

    #[test]
    fn requests_anthropic_cannot_take() {
        let cases = [
            json!({"model": "c", "messages": [], "n": 2}),
            json!({"model": "c", "messages": [{"role": "function", "name": "f", "content": "x"}]}),
            json!({"model": "c", "messages": [{"role": "tool", "content": "x"}]}),
            json!({"model": "c", "messages": [{"role": "user", "content": [
                {"type": "input_audio", "input_audio": {}}]}]}),
            json!({"model": "c", "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png,raw"}}]}]}),
            json!({"model": "c", "messages": [{"role": "assistant", "tool_calls": [
                {"id": "t", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]}]}),
        ];
        for input in cases {
            let req: ChatCompletionRequest = serde_json::from_value(input.clone()).unwrap();
            let err = to_messages(req, 1).unwrap_err();
            assert!(err.param.is_some(), "for {input}: {err}");
        }
    }

    fn check_response(input: Value, expected: Value) {
        let reply: MessagesResponse = serde_json::from_value(input.clone()).unwrap();
        let out = serde_json::to_value(to_chat_response(reply, 7)).unwrap();
        assert_eq!(out, expected, "for {input}");
    }

    #[test]
    fn responses() {
        let cases = [
            (
                json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
                       "content": [{"type": "thinking", "thinking": "hm", "signature": "s"},
                                   {"type": "text", "text": "Hello"}, {"type": "text", "text": " there"}],
                       "stop_reason": "end_turn", "stop_sequence": null,
                       "usage": {"input_tokens": 10, "output_tokens": 3}}),
                json!({"id": "msg_1", "object": "chat.completion", "created": 7, "model": "claude",
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there"},
                                    "finish_reason": "stop", "logprobs": null}],
                       "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}}),
            ),
            (
                json!({"id": "msg_2", "model": "claude",
                       "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}],
                       "stop_reason": "tool_use",
                       "usage": {"input_tokens": 5, "output_tokens": 2, "cache_creation_input_tokens": 100,
                                 "cache_read_input_tokens": 1000}}),
                json!({"id": "msg_2", "object": "chat.completion", "created": 7, "model": "claude",
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": null,
                           "tool_calls": [{"id": "toolu_1", "type": "function",
                               "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                           "finish_reason": "tool_calls", "logprobs": null}],
                       "usage": {"prompt_tokens": 1105, "completion_tokens": 2, "total_tokens": 1107,
                                 "prompt_tokens_details": {"cached_tokens": 1000}}}),
            ),
            (
                json!({"id": "m", "model": "c", "content": [{"type": "text", "text": "one"}],
                       "stop_reason": "stop_sequence", "stop_sequence": "END"}),
                json!({"id": "m", "object": "chat.completion", "created": 7, "model": "c",
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": "one"},
                                    "finish_reason": "stop", "logprobs": null, "stop_reason": "END"}]}),
            ),
            (
                json!({"id": "m", "model": "c", "content": [{"type": "text", "text": "cut"}],
                       "stop_reason": "max_tokens"}),
                json!({"id": "m", "object": "chat.completion", "created": 7, "model": "c",
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": "cut"},
                                    "finish_reason": "length", "logprobs": null}]}),
            ),
            (
                json!({"id": "m", "model": "c", "content": [], "stop_reason": "refusal",
                       "usage": {"input_tokens": 1, "output_tokens": 0}}),
                json!({"id": "m", "object": "chat.completion", "created": 7, "model": "c",
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": ""},
                                    "finish_reason": "content_filter", "logprobs": null}],
                       "usage": {"prompt_tokens": 1, "completion_tokens": 0, "total_tokens": 1}}),
            ),
        ];
        for (input, expected) in cases {
            check_response(input, expected);
        }
    }
}
