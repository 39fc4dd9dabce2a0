//! A Messages request served by the chat pipeline (the gateway's `/v1/messages`), and the
//! chat answer written back as Messages: whole ([`to_messages_response`]) or as a stream of
//! Messages events ([`EventWriter`]). The inverse of [`super::outbound`]:
//! - `system` (text or text blocks) becomes a system message; `tool_result` blocks become tool
//!   messages, put before the rest of their user turn (chat completions want the answers to
//!   tool calls right after the call); `tool_use` blocks become the assistant's tool calls;
//!   images become `image_url` parts (base64 sources as `data:` URLs).
//! - `tool_choice` `any` is `required`, `disable_parallel_tool_use` is
//!   `parallel_tool_calls: false`; `metadata.user_id` is `user`; `top_k`, which chat
//!   completions lack, travels as an extra field (an Anthropic upstream takes it back, an
//!   OpenAI-compatible one is sent it as it is).
//! - A tool result marked `is_error` says so in its text: chat completions have no flag. Its
//!   images (a tool that read a picture) follow in the user message, since a tool message
//!   holds only text.
//! - A stream always asks for usage (`stream_options.include_usage`): `message_delta` carries
//!   it.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{
    stop_reason_of, AnthropicUsage, Block, BlockDelta, Content, ImageSource, MessageDeltaBody,
    MessagesRequest, MessagesResponse, ResponseBlock, Speaker, StreamEvent, ToolChoice,
    TranslateError,
};
use crate::chat::{
    stop_sequence_of, ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse,
    ChatMessage, ContentPart, FunctionCall, FunctionDefinition, MessageContent, NamedFunction,
    NamedToolChoice, Role, Stop, StreamOptions, Tool, ToolCall, ToolChoice as ChatToolChoice,
    ToolChoiceMode, Usage,
};
use crate::Extra;

/// A Messages request as a chat request.
pub fn to_chat_request(req: MessagesRequest) -> Result<ChatCompletionRequest, TranslateError> {
    let mut messages = Vec::new();
    if let Some(system) = &req.system {
        let text = system.text();
        if !text.is_empty() {
            messages.push(ChatMessage::new(Role::System, text));
        }
    }
    for (i, message) in req.messages.into_iter().enumerate() {
        let at = |e: TranslateError| e.within(&format!("messages[{i}]"));
        match message.role {
            Speaker::User => messages.extend(user_messages(message.content).map_err(at)?),
            Speaker::Assistant => messages.push(assistant_message(message.content).map_err(at)?),
        }
    }
    let has_tools = !req.tools.is_empty();
    let tools = has_tools.then(|| req.tools.into_iter().map(chat_tool).collect());
    let mut extra = Extra::new();
    let mut tool_choice = None;
    if let Some(choice) = req.tool_choice.filter(|_| has_tools) {
        let (choice, parallel_off) = chat_tool_choice(choice);
        tool_choice = Some(choice);
        if parallel_off {
            extra.insert("parallel_tool_calls".into(), Value::Bool(false));
        }
    }
    if let Some(k) = req.top_k {
        extra.insert("top_k".into(), Value::from(k));
    }
    Ok(ChatCompletionRequest {
        model: req.model,
        messages,
        stream: req.stream.then_some(true),
        stream_options: req.stream.then(|| StreamOptions {
            include_usage: Some(true),
            extra: Extra::new(),
        }),
        tools,
        tool_choice,
        response_format: None,
        stop: (!req.stop_sequences.is_empty()).then_some(Stop::Many(req.stop_sequences)),
        max_tokens: req.max_tokens,
        max_completion_tokens: None,
        temperature: req.temperature,
        top_p: req.top_p,
        seed: None,
        user: req.metadata.and_then(|m| m.user_id),
        n: None,
        extra,
    })
}

/// A user turn: its tool results as tool messages, then what else it says as one user
/// message.
fn user_messages(content: Content) -> Result<Vec<ChatMessage>, TranslateError> {
    let blocks = match content {
        Content::Text(text) => return Ok(vec![ChatMessage::new(Role::User, text)]),
        Content::Blocks(blocks) => blocks,
    };
    let mut out = Vec::new();
    let mut parts = Vec::new();
    for (j, block) in blocks.into_iter().enumerate() {
        let at = |e: TranslateError| e.within(&format!("content[{j}]"));
        match block {
            Block::Text { text } => parts.push(text_part(text)),
            Block::Image { source } => parts.push(image_part(source)),
            Block::ToolResult {
                tool_use_id,
                content,
                is_error,
            } => {
                let (mut text, images) = tool_result_parts(content).map_err(at)?;
                parts.extend(images);
                if is_error == Some(true) {
                    text = format!("Error: {text}");
                }
                let mut message = ChatMessage::new(Role::Tool, text);
                message.tool_call_id = Some(tool_use_id);
                out.push(message);
            }
            Block::ToolUse { .. } => {
                return Err(at(TranslateError::new(
                    "type",
                    "a user message cannot hold a `tool_use` block; the assistant calls tools",
                )))
            }
        }
    }
    if !parts.is_empty() {
        out.push(ChatMessage {
            content: Some(parts_content(parts)),
            ..ChatMessage::new(Role::User, "")
        });
    }
    Ok(out)
}

/// A tool result's content: the text of its tool message, and its images as parts.
fn tool_result_parts(
    content: Option<Content>,
) -> Result<(String, Vec<ContentPart>), TranslateError> {
    let blocks = match content {
        None => return Ok((String::new(), Vec::new())),
        Some(Content::Text(text)) => return Ok((text, Vec::new())),
        Some(Content::Blocks(blocks)) => blocks,
    };
    let mut texts = Vec::new();
    let mut images = Vec::new();
    for (k, block) in blocks.into_iter().enumerate() {
        match block {
            Block::Text { text } => texts.push(text),
            Block::Image { source } => images.push(image_part(source)),
            Block::ToolUse { .. } | Block::ToolResult { .. } => {
                return Err(TranslateError::new(
                    &format!("content[{k}].type"),
                    "a tool result holds only text and image blocks",
                ))
            }
        }
    }
    Ok((texts.join("\n"), images))
}

fn assistant_message(content: Content) -> Result<ChatMessage, TranslateError> {
    let blocks = match content {
        Content::Text(text) => return Ok(ChatMessage::new(Role::Assistant, text)),
        Content::Blocks(blocks) => blocks,
    };
    let mut text = String::new();
    let mut calls = Vec::new();
    for (j, block) in blocks.into_iter().enumerate() {
        match block {
            Block::Text { text: t } => text.push_str(&t),
            Block::ToolUse { id, name, input } => calls.push(ToolCall {
                id,
                kind: "function".into(),
                function: FunctionCall {
                    name,
                    arguments: input.to_string(),
                },
            }),
            Block::Image { .. } | Block::ToolResult { .. } => {
                return Err(TranslateError::new(
                    &format!("content[{j}].type"),
                    "an assistant message can hold only `text` and `tool_use` blocks",
                ))
            }
        }
    }
    // As OpenAI writes a pure tool-call answer: `content: null`.
    let content = (!text.is_empty() || calls.is_empty()).then_some(MessageContent::Text(text));
    Ok(ChatMessage {
        content,
        tool_calls: (!calls.is_empty()).then_some(calls),
        ..ChatMessage::new(Role::Assistant, "")
    })
}

fn text_part(text: String) -> ContentPart {
    ContentPart {
        kind: "text".into(),
        text: Some(text),
        extra: Extra::new(),
    }
}

/// An image as an `image_url` part: the inverse of `outbound`'s `image_block`.
fn image_part(source: ImageSource) -> ContentPart {
    let url = match source {
        ImageSource::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
        ImageSource::Url { url } => url,
    };
    let mut extra = Extra::new();
    extra.insert("image_url".into(), serde_json::json!({ "url": url }));
    ContentPart {
        kind: "image_url".into(),
        text: None,
        extra,
    }
}

/// One text part is plain text; anything else stays in parts.
fn parts_content(mut parts: Vec<ContentPart>) -> MessageContent {
    if parts.len() == 1 && parts[0].kind == "text" {
        if let Some(text) = parts.pop().and_then(|p| p.text) {
            return MessageContent::Text(text);
        }
    }
    MessageContent::Parts(parts)
}

fn chat_tool(tool: super::ToolDef) -> Tool {
    Tool {
        kind: "function".into(),
        function: FunctionDefinition {
            name: tool.name,
            description: tool.description,
            parameters: Some(tool.input_schema),
            strict: None,
        },
    }
}

/// The chat tool choice, and whether parallel tool calls are off.
fn chat_tool_choice(choice: ToolChoice) -> (ChatToolChoice, bool) {
    match choice {
        ToolChoice::Auto {
            disable_parallel_tool_use,
        } => (
            ChatToolChoice::Mode(ToolChoiceMode::Auto),
            disable_parallel_tool_use,
        ),
        ToolChoice::Any {
            disable_parallel_tool_use,
        } => (
            ChatToolChoice::Mode(ToolChoiceMode::Required),
            disable_parallel_tool_use,
        ),
        ToolChoice::None => (ChatToolChoice::Mode(ToolChoiceMode::None), false),
        ToolChoice::Tool {
            name,
            disable_parallel_tool_use,
        } => (
            ChatToolChoice::Named(NamedToolChoice {
                kind: "function".into(),
                function: NamedFunction { name },
            }),
            disable_parallel_tool_use,
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Chat answer → Messages answer.

/// A chat completion as a Messages answer: its first choice's text as a text block, its tool
/// calls as `tool_use` blocks.
pub fn to_messages_response(response: ChatCompletionResponse) -> MessagesResponse {
    let mut content = Vec::new();
    let mut finish = None;
    let mut stop_sequence = None;
    if let Some(choice) = response.choices.into_iter().next() {
        finish = choice.finish_reason;
        stop_sequence = stop_sequence_of(choice.stop_reason.as_ref()).map(str::to_owned);
        let text = choice.message.text();
        if !text.is_empty() {
            content.push(ResponseBlock::Text { text });
        }
        for call in choice.message.tool_calls.unwrap_or_default() {
            content.push(ResponseBlock::ToolUse {
                input: tool_input(&call.function.arguments),
                id: call.id,
                name: call.function.name,
            });
        }
    }
    MessagesResponse {
        id: response.id,
        kind: "message".into(),
        role: "assistant".into(),
        model: response.model,
        content,
        stop_reason: Some(
            stop_reason_of(
                finish.as_deref().unwrap_or_default(),
                stop_sequence.as_deref(),
            )
            .to_owned(),
        ),
        stop_sequence,
        usage: Some(messages_usage(response.usage.as_ref())),
    }
}

/// Tool call arguments as the object a `tool_use` block holds. Arguments that are not a JSON
/// object (a model's broken output) are kept whole under `arguments` rather than lost.
fn tool_input(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments.trim()) {
        Ok(v @ Value::Object(_)) => v,
        _ if arguments.trim().is_empty() => Value::Object(Extra::new()),
        _ => serde_json::json!({ "arguments": arguments }),
    }
}

/// Usage as Messages reports it; zeros when the answer has none.
fn messages_usage(usage: Option<&Usage>) -> AnthropicUsage {
    usage.map_or_else(
        || AnthropicUsage {
            input_tokens: Some(0),
            output_tokens: Some(0),
            ..AnthropicUsage::default()
        },
        AnthropicUsage::from_openai,
    )
}

// ---------------------------------------------------------------------------------------------
// Chat chunks → Messages events.

/// The block being streamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text(u32),
    Tool(u32),
}

impl Open {
    fn index(self) -> u32 {
        match self {
            Open::Text(i) | Open::Tool(i) => i,
        }
    }
}

/// Writes a chat chunk stream as Messages events, the inverse of the provider's translator:
/// 1. The first chunk opens the message (`message_start`; usage is not known yet, so it says
///    zero and `message_delta` gives the totals).
/// 2. Text opens a text block unless one is open; a tool call's first delta (the one with its
///    id) closes the open block and opens a `tool_use` block; later argument deltas go to
///    their call's block as `input_json_delta`.
/// 3. The finish reason and the usage chunk are kept; [`EventWriter::finish`] closes the open
///    block and writes `message_delta` (stop reason and usage) and `message_stop`.
#[derive(Debug, Default)]
pub struct EventWriter {
    started: bool,
    id: String,
    model: String,
    next_index: u32,
    open: Option<Open>,
    /// Chat tool call index → block index.
    tools: BTreeMap<u32, u32>,
    finish: Option<String>,
    stop_sequence: Option<String>,
    usage: Option<Usage>,
}

impl EventWriter {
    pub fn new() -> Self {
        Self::default()
    }

    fn start(&mut self, id: &str, model: &str, out: &mut Vec<StreamEvent>) {
        if self.started {
            return;
        }
        self.started = true;
        self.id = id.to_owned();
        self.model = model.to_owned();
        out.push(StreamEvent::MessageStart {
            message: MessagesResponse {
                id: id.to_owned(),
                kind: "message".into(),
                role: "assistant".into(),
                model: model.to_owned(),
                content: Vec::new(),
                stop_reason: None,
                stop_sequence: None,
                usage: Some(messages_usage(None)),
            },
        });
    }

    fn close(&mut self, out: &mut Vec<StreamEvent>) {
        if let Some(open) = self.open.take() {
            out.push(StreamEvent::ContentBlockStop {
                index: open.index(),
            });
        }
    }

    fn open(&mut self, block: ResponseBlock, out: &mut Vec<StreamEvent>) -> u32 {
        self.close(out);
        let index = self.next_index;
        self.next_index += 1;
        self.open = Some(match block {
            ResponseBlock::ToolUse { .. } => Open::Tool(index),
            _ => Open::Text(index),
        });
        out.push(StreamEvent::ContentBlockStart {
            index,
            content_block: block,
        });
        index
    }

    /// The events one chunk makes.
    pub fn chunk(&mut self, chunk: &ChatCompletionChunk) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        self.start(&chunk.id, &chunk.model, &mut out);
        if let Some(usage) = &chunk.usage {
            self.usage = Some(usage.clone());
        }
        let Some(choice) = chunk.choices.iter().find(|c| c.index == 0) else {
            return out;
        };
        if let Some(text) = choice.delta.content.as_deref().filter(|t| !t.is_empty()) {
            let open = self.open;
            let index = match open {
                Some(Open::Text(i)) => i,
                _ => self.open(
                    ResponseBlock::Text {
                        text: String::new(),
                    },
                    &mut out,
                ),
            };
            out.push(StreamEvent::ContentBlockDelta {
                index,
                delta: BlockDelta::TextDelta {
                    text: text.to_owned(),
                },
            });
        }
        for call in choice.delta.tool_calls.iter().flatten() {
            self.tool_delta(call, &mut out);
        }
        if let Some(finish) = &choice.finish_reason {
            self.finish = Some(finish.clone());
            self.stop_sequence = stop_sequence_of(choice.stop_reason.as_ref()).map(str::to_owned);
        }
        out
    }

    fn tool_delta(&mut self, call: &crate::chat::ToolCallDelta, out: &mut Vec<StreamEvent>) {
        let function = call.function.as_ref();
        let known = self.tools.get(&call.index).copied();
        let index = match known {
            Some(index) => index,
            None => {
                let block = ResponseBlock::ToolUse {
                    id: call.id.clone().unwrap_or_default(),
                    name: function.and_then(|f| f.name.clone()).unwrap_or_default(),
                    input: Value::Object(Extra::new()),
                };
                let index = self.open(block, out);
                self.tools.insert(call.index, index);
                index
            }
        };
        if let Some(arguments) = function
            .and_then(|f| f.arguments.as_deref())
            .filter(|a| !a.is_empty())
        {
            out.push(StreamEvent::ContentBlockDelta {
                index,
                delta: BlockDelta::InputJsonDelta {
                    partial_json: arguments.to_owned(),
                },
            });
        }
    }

    /// The usage the stream reported at its end.
    pub fn usage(&mut self, usage: Usage) {
        self.usage = Some(usage);
    }

    /// The closing events, once the stream ended cleanly.
    pub fn finish(&mut self) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        self.start("", "", &mut out);
        self.close(&mut out);
        let finish = self.finish.as_deref().unwrap_or_default();
        let stop_sequence = self.stop_sequence.take();
        out.push(StreamEvent::MessageDelta {
            delta: MessageDeltaBody {
                stop_reason: Some(stop_reason_of(finish, stop_sequence.as_deref()).to_owned()),
                stop_sequence,
            },
            usage: Some(messages_usage(self.usage.as_ref())),
        });
        out.push(StreamEvent::MessageStop {});
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check_request(input: Value, expected: Value) {
        let req: MessagesRequest = serde_json::from_value(input.clone()).unwrap();
        let out = to_chat_request(req).unwrap();
        assert_eq!(serde_json::to_value(out).unwrap(), expected, "for {input}");
    }

    #[test]
    fn requests() {
        let cases = [
            // System blocks, string content, sampling, stop, user, stream.
            (
                json!({"model": "m", "max_tokens": 9, "stream": true, "top_k": 5, "temperature": 0.5,
                       "top_p": 0.9, "stop_sequences": ["END"], "metadata": {"user_id": "u-1"},
                       "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}},
                                  {"type": "text", "text": "No emoji."}],
                       "messages": [{"role": "user", "content": "Hi"}]}),
                json!({"model": "m", "messages": [
                        {"role": "system", "content": "Be brief.\n\nNo emoji."},
                        {"role": "user", "content": "Hi"}],
                       "stream": true, "stream_options": {"include_usage": true},
                       "stop": ["END"], "max_tokens": 9, "temperature": 0.5, "top_p": 0.9,
                       "user": "u-1", "top_k": 5}),
            ),
            // Images; one text block is plain text.
            (
                json!({"model": "m", "max_tokens": 9, "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
                    {"role": "assistant", "content": "Hello"},
                    {"role": "user", "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
                        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}}]}]}),
                json!({"model": "m", "max_tokens": 9, "messages": [
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello"},
                    {"role": "user", "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                        {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}}]}]}),
            ),
            // Tools: definitions, a named choice without parallel calls, tool_use and results.
            (
                json!({"model": "m", "max_tokens": 9,
                    "tools": [{"name": "get_weather", "description": "Weather",
                               "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
                    "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": true},
                    "messages": [
                        {"role": "user", "content": "Weather in Paris?"},
                        {"role": "assistant", "content": [
                            {"type": "text", "text": "Looking."},
                            {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"city": "Paris"}}]},
                        {"role": "user", "content": [
                            {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "18C"}]},
                            {"type": "tool_result", "tool_use_id": "t2", "content": "down", "is_error": true},
                            {"type": "tool_result", "tool_use_id": "t3", "content": [
                                {"type": "text", "text": "a cat"},
                                {"type": "image", "source": {"type": "url", "url": "https://x.test/c.png"}}]},
                            {"type": "text", "text": "Thanks"}]}]}),
                json!({"model": "m", "max_tokens": 9,
                    "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
                               "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
                    "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
                    "parallel_tool_calls": false,
                    "messages": [
                        {"role": "user", "content": "Weather in Paris?"},
                        {"role": "assistant", "content": "Looking.", "tool_calls": [{"id": "t1", "type": "function",
                            "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                        {"role": "tool", "content": "18C", "tool_call_id": "t1"},
                        {"role": "tool", "content": "Error: down", "tool_call_id": "t2"},
                        {"role": "tool", "content": "a cat", "tool_call_id": "t3"},
                        {"role": "user", "content": [
                            {"type": "image_url", "image_url": {"url": "https://x.test/c.png"}},
                            {"type": "text", "text": "Thanks"}]}]}),
            ),
            // `any` is required; a tool choice without tools is dropped.
            (
                json!({"model": "m", "max_tokens": 1, "tools": [{"name": "f", "input_schema": {}}],
                       "tool_choice": {"type": "any"}, "messages": []}),
                json!({"model": "m", "max_tokens": 1, "messages": [], "tool_choice": "required",
                       "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}),
            ),
            (
                json!({"model": "m", "max_tokens": 1, "tool_choice": {"type": "auto"}, "messages": []}),
                json!({"model": "m", "max_tokens": 1, "messages": []}),
            ),
        ];
        for (input, expected) in cases {
            check_request(input, expected);
        }
    }

    #[test]
    fn requests_chat_cannot_take() {
        let cases = [
            (
                json!({"model": "m", "messages": [{"role": "user", "content": [
                    {"type": "tool_use", "id": "t", "name": "f", "input": {}}]}]}),
                "messages[0].content[0].type",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": [
                    {"type": "image", "source": {"type": "url", "url": "u"}}]}]}),
                "messages[1].content[0].type",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "t", "content": [
                        {"type": "tool_use", "id": "t", "name": "f", "input": {}}]}]}]}),
                "messages[0].content[0].content[0].type",
            ),
        ];
        for (input, param) in cases {
            let req: MessagesRequest = serde_json::from_value(input.clone()).unwrap();
            let err = to_chat_request(req).unwrap_err();
            assert_eq!(err.param.as_deref(), Some(param), "for {input}");
        }
    }

    #[test]
    fn responses() {
        let cases = [
            (
                json!({"id": "c1", "created": 1, "model": "small", "choices": [{"index": 0,
                    "message": {"role": "assistant", "content": "Paris."}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12,
                              "prompt_tokens_details": {"cached_tokens": 4}}}),
                json!({"id": "c1", "type": "message", "role": "assistant", "model": "small",
                    "content": [{"type": "text", "text": "Paris."}], "stop_reason": "end_turn",
                    "stop_sequence": null, "usage": {"input_tokens": 6, "output_tokens": 2,
                    "cache_read_input_tokens": 4}}),
            ),
            (
                json!({"id": "c2", "created": 1, "model": "small", "choices": [{"index": 0,
                    "message": {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}},
                        {"id": "t2", "type": "function", "function": {"name": "g", "arguments": "oops"}}]},
                    "finish_reason": "tool_calls"}]}),
                json!({"id": "c2", "type": "message", "role": "assistant", "model": "small",
                    "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}},
                                {"type": "tool_use", "id": "t2", "name": "g", "input": {"arguments": "oops"}}],
                    "stop_reason": "tool_use", "stop_sequence": null,
                    "usage": {"input_tokens": 0, "output_tokens": 0}}),
            ),
            (
                json!({"id": "c3", "created": 1, "model": "small", "choices": [{"index": 0,
                    "message": {"role": "assistant", "content": "cut"}, "finish_reason": "length"}]}),
                json!({"id": "c3", "type": "message", "role": "assistant", "model": "small",
                    "content": [{"type": "text", "text": "cut"}], "stop_reason": "max_tokens",
                    "stop_sequence": null, "usage": {"input_tokens": 0, "output_tokens": 0}}),
            ),
            // An output guard stopped the answer.
            (
                json!({"id": "c5", "created": 1, "model": "small", "choices": [{"index": 0,
                    "message": {"role": "assistant", "content": "I can"}, "finish_reason": "content_filter"}],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}),
                json!({"id": "c5", "type": "message", "role": "assistant", "model": "small",
                    "content": [{"type": "text", "text": "I can"}], "stop_reason": "refusal",
                    "stop_sequence": null, "usage": {"input_tokens": 3, "output_tokens": 2}}),
            ),
            // A stop sequence the upstream names (vLLM's, the simulator's `stop_reason`).
            (
                json!({"id": "c4", "created": 1, "model": "small", "choices": [{"index": 0,
                    "message": {"role": "assistant", "content": "one"}, "finish_reason": "stop",
                    "stop_reason": "END"}]}),
                json!({"id": "c4", "type": "message", "role": "assistant", "model": "small",
                    "content": [{"type": "text", "text": "one"}], "stop_reason": "stop_sequence",
                    "stop_sequence": "END", "usage": {"input_tokens": 0, "output_tokens": 0}}),
            ),
        ];
        for (input, expected) in cases {
            let response: ChatCompletionResponse = serde_json::from_value(input.clone()).unwrap();
            let out = serde_json::to_value(to_messages_response(response)).unwrap();
            assert_eq!(out, expected, "for {input}");
        }
    }

    fn chunk(delta: Value, finish: Value) -> ChatCompletionChunk {
        serde_json::from_value(json!({"id": "c", "created": 1, "model": "small",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}))
        .unwrap()
    }

    #[test]
    fn stream_events() {
        let mut w = EventWriter::new();
        let mut events = Vec::new();
        let chunks = [
            chunk(json!({"role": "assistant", "content": ""}), Value::Null),
            chunk(json!({"content": "Let me"}), Value::Null),
            chunk(json!({"content": " look."}), Value::Null),
            chunk(
                json!({"tool_calls": [{"index": 0, "id": "t1", "type": "function",
                "function": {"name": "f", "arguments": ""}}]}),
                Value::Null,
            ),
            chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":"}}]}),
                Value::Null,
            ),
            chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
                Value::Null,
            ),
            chunk(json!({}), json!("tool_calls")),
        ];
        for c in &chunks {
            events.extend(w.chunk(c));
        }
        w.usage(Usage::new(7, 3));
        events.extend(w.finish());
        let out: Vec<Value> = events
            .iter()
            .map(|e| {
                let v = serde_json::to_value(e).unwrap();
                assert_eq!(v["type"], e.name());
                v
            })
            .collect();
        assert_eq!(
            Value::Array(out),
            json!([
                {"type": "message_start", "message": {"id": "c", "type": "message", "role": "assistant",
                 "model": "small", "content": [], "stop_reason": null, "stop_sequence": null,
                 "usage": {"input_tokens": 0, "output_tokens": 0}}},
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me"}},
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " look."}},
                {"type": "content_block_stop", "index": 0},
                {"type": "content_block_start", "index": 1, "content_block":
                    {"type": "tool_use", "id": "t1", "name": "f", "input": {}}},
                {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"a\":"}},
                {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "1}"}},
                {"type": "content_block_stop", "index": 1},
                {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null},
                 "usage": {"input_tokens": 7, "output_tokens": 3}},
                {"type": "message_stop"}
            ])
        );
    }
}
