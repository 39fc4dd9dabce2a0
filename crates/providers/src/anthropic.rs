//! Anthropic's Messages API, translated to and from OpenAI shapes.
//!
//! The translation is pure (request, response and stream-event functions at the bottom of
//! the module) so it is tested table by table; the provider only adds HTTP. What does not
//! carry over:
//! - `response_format` (`json_object`, `json_schema`) becomes an instruction in `system`
//!   asking for JSON; Anthropic has no constrained decoding, so the answer is not guaranteed
//!   to parse or to match the schema.
//! - `n > 1` is refused ([`ProviderError::Unsupported`]): the gateway fans such a request
//!   out into calls of one choice, since this provider has no `native_choices`. `logprobs`
//!   never reaches it (the gateway refuses them for a provider without them); `seed`,
//!   penalties and other OpenAI-only fields are dropped, since Anthropic rejects fields it
//!   does not know.
//! - `temperature` above 1 (OpenAI allows up to 2) is clamped to Anthropic's maximum of 1.
//! - Thinking blocks in answers are skipped.

use std::collections::BTreeMap;
use std::pin::Pin;

use async_trait::async_trait;
use eventsource_stream::Event;
use futures::{Stream, StreamExt};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchyard_api::{
    finish_reason, ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse, ChatMessage,
    Choice, ChunkChoice, ContentPart, Delta, EmbeddingsRequest, EmbeddingsResponse, Extra,
    FunctionCall, FunctionCallDelta, MessageContent, ResponseFormat, Role, Tool, ToolCall,
    ToolCallDelta, ToolChoice, ToolChoiceMode, Usage,
};
use switchyard_control::{AnthropicSpec, Secret};

use crate::http;
use crate::{unix_now, CallOptions, ChatProvider, ChatReply, ChunkStream, ProviderError};

pub struct AnthropicProvider {
    messages_url: reqwest::Url,
    /// `anthropic-version`, the configured headers and `x-api-key` (marked sensitive).
    headers: HeaderMap,
    default_max_tokens: u32,
    http: reqwest::Client,
}

impl AnthropicProvider {
    pub fn new(
        spec: &AnthropicSpec,
        key: Option<Secret>,
        http: reqwest::Client,
    ) -> Result<Self, String> {
        let base = http::base_url(&spec.base_url)?;
        let mut headers = http::header_map(&spec.headers)?;
        let version = HeaderValue::from_str(&spec.version)
            .map_err(|_| format!("version `{}` is not a valid header value", spec.version))?;
        headers.insert(HeaderName::from_static("anthropic-version"), version);
        if let Some(key) = key {
            headers.insert(
                HeaderName::from_static("x-api-key"),
                http::secret_value(key.expose())?,
            );
        }
        Ok(AnthropicProvider {
            messages_url: http::endpoint(&base, "/v1/messages")?,
            headers,
            default_max_tokens: spec.default_max_tokens,
            http,
        })
    }
}

#[async_trait]
impl ChatProvider for AnthropicProvider {
    fn kind(&self) -> &'static str {
        "anthropic"
    }

    async fn chat_with(
        &self,
        request: ChatCompletionRequest,
        _options: CallOptions,
    ) -> Result<ChatReply, ProviderError> {
        let streaming = request.is_stream();
        let body = to_anthropic(request, self.default_max_tokens)?;
        let response =
            http::post_json(&self.http, &self.messages_url, &self.headers, &body).await?;
        if streaming {
            let events = http::sse_events(response.bytes_stream());
            Ok(ChatReply::Stream(chunk_stream(events, unix_now())))
        } else {
            let reply: MessagesResponse = http::read_json(response).await?;
            Ok(ChatReply::Complete(to_openai(reply, unix_now())))
        }
    }

    async fn embed(
        &self,
        _request: EmbeddingsRequest,
    ) -> Result<EmbeddingsResponse, ProviderError> {
        Err(ProviderError::unsupported(
            Some("model"),
            "anthropic has no embeddings API",
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Anthropic wire types: only what is sent or read.

#[derive(Debug, Serialize)]
struct MessagesRequest {
    model: String,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    messages: Vec<Message>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    stop_sequences: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<ToolDef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<AnthropicToolChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Metadata>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Speaker {
    User,
    Assistant,
}

#[derive(Debug, Serialize)]
struct Message {
    role: Speaker,
    content: Vec<Block>,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block {
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
        #[serde(skip_serializing_if = "String::is_empty")]
        content: String,
    },
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ImageSource {
    Base64 { media_type: String, data: String },
    Url { url: String },
}

#[derive(Debug, Serialize)]
struct ToolDef {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    input_schema: Value,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum AnthropicToolChoice {
    Auto {
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        disable_parallel_tool_use: bool,
    },
    Any {
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        disable_parallel_tool_use: bool,
    },
    None,
    Tool {
        name: String,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        disable_parallel_tool_use: bool,
    },
}

#[derive(Debug, Serialize)]
struct Metadata {
    user_id: String,
}

#[derive(Debug, Deserialize)]
struct MessagesResponse {
    id: String,
    model: String,
    #[serde(default)]
    content: Vec<ResponseBlock>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<AnthropicUsage>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ResponseBlock {
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

#[derive(Debug, Default, Clone, Deserialize)]
struct AnthropicUsage {
    #[serde(default)]
    input_tokens: Option<u32>,
    #[serde(default)]
    output_tokens: Option<u32>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u32>,
    #[serde(default)]
    cache_read_input_tokens: Option<u32>,
}

impl AnthropicUsage {
    /// Later reports (`message_delta`) carry running totals: a field present replaces the
    /// earlier value.
    fn update(&mut self, later: &AnthropicUsage) {
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
    fn to_openai(&self) -> Option<Usage> {
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
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StreamEvent {
    MessageStart {
        message: StartedMessage,
    },
    ContentBlockStart {
        index: u32,
        content_block: ResponseBlock,
    },
    ContentBlockDelta {
        index: u32,
        delta: BlockDelta,
    },
    ContentBlockStop {},
    MessageDelta {
        delta: MessageDeltaBody,
        #[serde(default)]
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

#[derive(Debug, Deserialize)]
struct StartedMessage {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    usage: Option<AnthropicUsage>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
struct MessageDeltaBody {
    #[serde(default)]
    stop_reason: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// OpenAI request → Anthropic request.

/// A request Anthropic cannot take, about the request field `param` (relative to the message
/// being translated; `to_anthropic` adds which message).
fn unsupported(param: &str, message: impl Into<String>) -> ProviderError {
    ProviderError::unsupported(Some(param), message)
}

fn to_anthropic(
    req: ChatCompletionRequest,
    default_max_tokens: u32,
) -> Result<MessagesRequest, ProviderError> {
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

    let (mut system, turns) = conversation(req.messages)?;
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
        max_tokens,
        system: (!system.is_empty()).then(|| system.join("\n\n")),
        messages: turns,
        stop_sequences,
        temperature: req.temperature.map(|t| t.clamp(0.0, 1.0)),
        top_p: req.top_p,
        tools,
        tool_choice,
        metadata: req.user.map(|user_id| Metadata { user_id }),
        stream,
    })
}

/// The system prompt's parts and the alternating turns, from OpenAI's messages.
fn conversation(messages: Vec<ChatMessage>) -> Result<(Vec<String>, Vec<Message>), ProviderError> {
    let mut system = Vec::new();
    let mut turns: Vec<Message> = Vec::new();
    for (i, message) in messages.into_iter().enumerate() {
        let at = |e: ProviderError| e.within(&format!("messages[{i}]"));
        match message.role {
            Role::System | Role::Developer => {
                let text = message.text();
                if !text.is_empty() {
                    system.push(text);
                }
            }
            Role::User => push_turn(&mut turns, Speaker::User, user_blocks(message).map_err(at)?),
            Role::Assistant => push_turn(
                &mut turns,
                Speaker::Assistant,
                assistant_blocks(message).map_err(at)?,
            ),
            Role::Tool => {
                let tool_use_id = message.tool_call_id.clone().ok_or_else(|| {
                    at(unsupported(
                        "tool_call_id",
                        "a tool message has no tool_call_id",
                    ))
                })?;
                let block = Block::ToolResult {
                    tool_use_id,
                    content: message.text(),
                };
                push_turn(&mut turns, Speaker::User, vec![block]);
            }
            Role::Function => {
                return Err(at(unsupported(
                    "role",
                    "the legacy `function` role is not supported by anthropic; use tools",
                )))
            }
        }
    }
    for turn in &mut turns {
        // Anthropic wants the answers to tool calls before anything else the user says.
        turn.content
            .sort_by_key(|b| !matches!(b, Block::ToolResult { .. }));
    }
    Ok((system, turns))
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
fn tool_choice(choice: Option<ToolChoice>, parallel_off: bool) -> Option<AnthropicToolChoice> {
    let off = parallel_off;
    match choice {
        None if off => Some(AnthropicToolChoice::Auto {
            disable_parallel_tool_use: true,
        }),
        None => None,
        Some(ToolChoice::Mode(ToolChoiceMode::Auto)) => Some(AnthropicToolChoice::Auto {
            disable_parallel_tool_use: off,
        }),
        Some(ToolChoice::Mode(ToolChoiceMode::Required)) => Some(AnthropicToolChoice::Any {
            disable_parallel_tool_use: off,
        }),
        Some(ToolChoice::Mode(ToolChoiceMode::None)) => Some(AnthropicToolChoice::None),
        Some(ToolChoice::Named(named)) => Some(AnthropicToolChoice::Tool {
            name: named.function.name,
            disable_parallel_tool_use: off,
        }),
    }
}

/// Appends a turn, merging it into the previous one when the speaker is the same: Anthropic
/// requires user and assistant turns to alternate. Empty turns are dropped (Anthropic rejects
/// them).
fn push_turn(turns: &mut Vec<Message>, role: Speaker, blocks: Vec<Block>) {
    if blocks.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some(last) if last.role == role => last.content.extend(blocks),
        _ => turns.push(Message {
            role,
            content: blocks,
        }),
    }
}

fn text_block(text: String) -> Option<Block> {
    // Anthropic rejects empty text blocks.
    (!text.is_empty()).then_some(Block::Text { text })
}

fn user_blocks(message: ChatMessage) -> Result<Vec<Block>, ProviderError> {
    match message.content {
        None => Ok(Vec::new()),
        Some(MessageContent::Text(text)) => Ok(text_block(text).into_iter().collect()),
        Some(MessageContent::Parts(parts)) => {
            let mut blocks = Vec::new();
            for (j, part) in parts.into_iter().enumerate() {
                let at = |e: ProviderError| e.within(&format!("content[{j}]"));
                match part.kind.as_str() {
                    "text" => blocks.extend(text_block(part.text.unwrap_or_default())),
                    "image_url" => blocks.push(image_block(&part).map_err(at)?),
                    other => {
                        return Err(at(unsupported(
                            "type",
                            format!(
                                "content parts of type `{other}` are not supported by anthropic"
                            ),
                        )))
                    }
                }
            }
            Ok(blocks)
        }
    }
}

/// An `image_url` part: a `data:` URL becomes an inline base64 image, any other URL a URL
/// source that Anthropic fetches itself.
fn image_block(part: &ContentPart) -> Result<Block, ProviderError> {
    let url = part
        .extra
        .get("image_url")
        .and_then(|v| v.get("url").or(Some(v)))
        .and_then(Value::as_str)
        .ok_or_else(|| unsupported("image_url", "an image_url part has no url"))?;
    let source = match url.strip_prefix("data:") {
        Some(rest) => {
            let (media_type, data) = rest.split_once(";base64,").ok_or_else(|| {
                unsupported("image_url", "image data URLs must be base64-encoded")
            })?;
            ImageSource::Base64 {
                media_type: media_type.to_owned(),
                data: data.to_owned(),
            }
        }
        None => ImageSource::Url {
            url: url.to_owned(),
        },
    };
    Ok(Block::Image { source })
}

fn assistant_blocks(message: ChatMessage) -> Result<Vec<Block>, ProviderError> {
    let mut blocks = Vec::new();
    match message.content {
        None => {}
        Some(MessageContent::Text(text)) => blocks.extend(text_block(text)),
        Some(MessageContent::Parts(parts)) => {
            for (j, part) in parts.into_iter().enumerate() {
                // A refusal the model gave earlier is part of what it said.
                let text = match part.kind.as_str() {
                    "text" => part.text,
                    "refusal" => part
                        .extra
                        .get("refusal")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    other => {
                        return Err(unsupported(
                            &format!("content[{j}].type"),
                            format!("assistant content parts of type `{other}` are not supported by anthropic"),
                        ))
                    }
                };
                blocks.extend(text_block(text.unwrap_or_default()));
            }
        }
    }
    for (k, call) in message
        .tool_calls
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let input =
            parse_arguments(&call).map_err(|e| e.within(&format!("tool_calls[{k}].function")))?;
        blocks.push(Block::ToolUse {
            id: call.id,
            name: call.function.name,
            input,
        });
    }
    Ok(blocks)
}

/// Tool call arguments as the object Anthropic wants; models often send `""` for a tool
/// without parameters.
fn parse_arguments(call: &ToolCall) -> Result<Value, ProviderError> {
    let text = call.function.arguments.trim();
    if text.is_empty() {
        return Ok(Value::Object(Extra::new()));
    }
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(unsupported(
            "arguments",
            format!(
                "the arguments of tool call `{}` are not a JSON object",
                call.id
            ),
        )),
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
// Anthropic response → OpenAI response.

fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" => finish_reason::LENGTH,
        "tool_use" => finish_reason::TOOL_CALLS,
        "refusal" => finish_reason::CONTENT_FILTER,
        // end_turn, stop_sequence, pause_turn and reasons added later.
        _ => finish_reason::STOP,
    }
}

fn to_openai(reply: MessagesResponse, created: i64) -> ChatCompletionResponse {
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
                .map(|r| finish_reason(r).to_owned()),
            logprobs: None,
        }],
        usage: reply.usage.as_ref().and_then(AnthropicUsage::to_openai),
        system_fingerprint: None,
        extra: Extra::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// Anthropic stream events → OpenAI chunks.

/// Translates one Anthropic event stream into OpenAI chunks:
/// 1. `message_start` gives the id, model and input tokens, and the first chunk (role).
/// 2. Text blocks become content deltas; each `tool_use` block gets the next OpenAI tool call
///    index, announced with its id and name, then fed by its `input_json_delta`s.
/// 3. `message_delta` gives the stop reason (the finish chunk) and the output tokens.
/// 4. `message_stop` ends the stream with a usage-only chunk (`choices: []`), as OpenAI does
///    when `include_usage` is set. EOF after step 3 is accepted as if `message_stop` came.
#[derive(Debug)]
struct Translator {
    id: String,
    model: String,
    created: i64,
    usage: AnthropicUsage,
    /// Anthropic block index → OpenAI tool call index.
    tool_index: BTreeMap<u32, u32>,
    started: bool,
    finish_sent: bool,
    done: bool,
}

impl Translator {
    fn new(created: i64) -> Self {
        Translator {
            id: String::new(),
            model: String::new(),
            created,
            usage: AnthropicUsage::default(),
            tool_index: BTreeMap::new(),
            started: false,
            finish_sent: false,
            done: false,
        }
    }

    fn chunk(&self, delta: Delta, finish: Option<&str>) -> ChatCompletionChunk {
        ChatCompletionChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".into(),
            created: self.created,
            model: self.model.clone(),
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                finish_reason: finish.map(str::to_owned),
                logprobs: None,
            }],
            usage: None,
            system_fingerprint: None,
            extra: Extra::new(),
        }
    }

    fn text(&self, text: String) -> ChatCompletionChunk {
        self.chunk(
            Delta {
                content: Some(text),
                ..Delta::default()
            },
            None,
        )
    }

    fn tool_delta(&self, delta: ToolCallDelta) -> ChatCompletionChunk {
        self.chunk(
            Delta {
                tool_calls: Some(vec![delta]),
                ..Delta::default()
            },
            None,
        )
    }

    fn finish(&mut self, stop_reason: Option<&str>) -> ChatCompletionChunk {
        self.finish_sent = true;
        let reason = stop_reason.map_or(finish_reason::STOP, finish_reason);
        self.chunk(Delta::default(), Some(reason))
    }

    /// The closing chunks: a finish chunk if none was sent, then usage if any was reported.
    fn close(&mut self, out: &mut Vec<ChatCompletionChunk>) {
        self.done = true;
        if !self.finish_sent {
            out.push(self.finish(None));
        }
        if let Some(usage) = self.usage.to_openai() {
            let mut chunk = self.chunk(Delta::default(), None);
            chunk.choices.clear();
            chunk.usage = Some(usage);
            out.push(chunk);
        }
    }

    fn on_event(&mut self, event: StreamEvent) -> Result<Vec<ChatCompletionChunk>, ProviderError> {
        let mut out = Vec::new();
        match event {
            StreamEvent::MessageStart { message } => {
                self.started = true;
                self.id = message.id;
                self.model = message.model;
                if let Some(usage) = &message.usage {
                    self.usage.update(usage);
                }
                out.push(self.chunk(
                    Delta {
                        role: Some(Role::Assistant),
                        content: Some(String::new()),
                        ..Delta::default()
                    },
                    None,
                ));
            }
            StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => match content_block {
                ResponseBlock::Text { text } if !text.is_empty() => out.push(self.text(text)),
                ResponseBlock::ToolUse { id, name, .. } => {
                    let openai_index = self.tool_index.len() as u32;
                    self.tool_index.insert(index, openai_index);
                    out.push(self.tool_delta(ToolCallDelta {
                        index: openai_index,
                        id: Some(id),
                        kind: Some("function".into()),
                        function: Some(FunctionCallDelta {
                            name: Some(name),
                            arguments: Some(String::new()),
                        }),
                    }));
                }
                _ => {}
            },
            StreamEvent::ContentBlockDelta { index, delta } => match delta {
                BlockDelta::TextDelta { text } if !text.is_empty() => out.push(self.text(text)),
                BlockDelta::InputJsonDelta { partial_json } if !partial_json.is_empty() => {
                    let openai_index = self.tool_index.get(&index).copied().ok_or_else(|| {
                        ProviderError::Decode(format!(
                            "input_json_delta for block {index}, which is not a tool_use block"
                        ))
                    })?;
                    out.push(self.tool_delta(ToolCallDelta {
                        index: openai_index,
                        id: None,
                        kind: None,
                        function: Some(FunctionCallDelta {
                            name: None,
                            arguments: Some(partial_json),
                        }),
                    }));
                }
                _ => {}
            },
            StreamEvent::MessageDelta { delta, usage } => {
                if let Some(usage) = &usage {
                    self.usage.update(usage);
                }
                if !self.finish_sent {
                    if let Some(reason) = delta.stop_reason.as_deref() {
                        out.push(self.finish(Some(reason)));
                    }
                }
            }
            StreamEvent::MessageStop {} => self.close(&mut out),
            StreamEvent::Error { error } => {
                return Err(ProviderError::Stream(http::error_message(&error)));
            }
            StreamEvent::ContentBlockStop {} | StreamEvent::Ping {} | StreamEvent::Unknown => {}
        }
        Ok(out)
    }

    /// The body ended without `message_stop`.
    fn on_eof(&mut self) -> Result<Vec<ChatCompletionChunk>, ProviderError> {
        if self.done {
            return Ok(Vec::new());
        }
        if self.finish_sent {
            let mut out = Vec::new();
            self.close(&mut out);
            return Ok(out);
        }
        Err(ProviderError::Stream(if self.started {
            "the upstream ended the stream before the message was complete".into()
        } else {
            "the upstream ended the stream before any event".into()
        }))
    }

    fn on_sse(&mut self, event: &Event) -> Result<Vec<ChatCompletionChunk>, ProviderError> {
        if event.data.trim().is_empty() {
            return Ok(Vec::new());
        }
        let parsed: StreamEvent = serde_json::from_str(&event.data)
            .map_err(|e| http::decode_error("a stream event", e, event.data.as_bytes()))?;
        self.on_event(parsed)
    }
}

/// Runs the translator over the SSE events of a response. An error item ends the stream; the
/// stream owns the response, so dropping it closes the upstream connection.
pub(crate) fn chunk_stream<S>(events: S, created: i64) -> ChunkStream
where
    S: Stream<Item = Result<Event, ProviderError>> + Send + 'static,
{
    struct State<S> {
        events: Pin<Box<S>>,
        translator: Translator,
        pending: std::collections::VecDeque<ChatCompletionChunk>,
        failed: bool,
    }

    let state = State {
        events: Box::pin(events),
        translator: Translator::new(created),
        pending: Default::default(),
        failed: false,
    };
    Box::pin(futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(chunk) = st.pending.pop_front() {
                return Some((Ok(chunk), st));
            }
            if st.failed || st.translator.done {
                return None;
            }
            let result = match st.events.next().await {
                None => st.translator.on_eof(),
                Some(Ok(event)) => st.translator.on_sse(&event),
                Some(Err(e)) => Err(e),
            };
            match result {
                Ok(chunks) => st.pending.extend(chunks),
                Err(e) => {
                    st.failed = true;
                    return Some((Err(e), st));
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check_request(input: Value, expected: Value) {
        let req: ChatCompletionRequest = serde_json::from_value(input.clone()).unwrap();
        let out = to_anthropic(req, 1024).unwrap();
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
            let err = to_anthropic(req, 1).unwrap_err();
            assert_eq!(err.kind(), "unsupported", "for {input}");
        }
    }

    fn check_response(input: Value, expected: Value) {
        let reply: MessagesResponse = serde_json::from_value(input.clone()).unwrap();
        let out = serde_json::to_value(to_openai(reply, 7)).unwrap();
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

    /// Feeds events (then EOF if `eof`) to a translator; each output is a chunk as JSON or
    /// `{"err": kind}`, after which nothing more is fed.
    fn check_stream(events: Value, eof: bool, expected: Value) {
        let mut t = Translator::new(7);
        let mut out = Vec::new();
        let mut failed = false;
        for e in events.as_array().unwrap() {
            let event = Event {
                data: e.to_string(),
                ..Event::default()
            };
            match t.on_sse(&event) {
                Ok(chunks) => out.extend(chunks.iter().map(|c| serde_json::to_value(c).unwrap())),
                Err(e) => {
                    out.push(json!({"err": e.kind()}));
                    failed = true;
                    break;
                }
            }
        }
        if eof && !failed {
            match t.on_eof() {
                Ok(chunks) => out.extend(chunks.iter().map(|c| serde_json::to_value(c).unwrap())),
                Err(e) => out.push(json!({"err": e.kind()})),
            }
        }
        assert_eq!(Value::Array(out), expected, "for {events}");
    }

    fn chunk(delta: Value, finish: Value) -> Value {
        json!({"id": "msg_1", "object": "chat.completion.chunk", "created": 7, "model": "claude",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    }

    fn usage_chunk(prompt: u32, completion: u32) -> Value {
        json!({"id": "msg_1", "object": "chat.completion.chunk", "created": 7, "model": "claude",
               "choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
               "total_tokens": prompt + completion}})
    }

    fn start(usage: Value) -> Value {
        json!({"type": "message_start", "message": {"id": "msg_1", "type": "message",
               "role": "assistant", "model": "claude", "content": [], "stop_reason": null,
               "usage": usage}})
    }

    #[test]
    fn stream_events() {
        let role = || chunk(json!({"role": "assistant", "content": ""}), Value::Null);
        let text = |t: &str| chunk(json!({"content": t}), Value::Null);
        let cases = [
            // Text, with ping and block stop ignored.
            (
                json!([start(json!({"input_tokens": 25, "output_tokens": 1})),
                    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                    {"type": "ping"},
                    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}},
                    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo"}},
                    {"type": "content_block_stop", "index": 0},
                    {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                     "usage": {"output_tokens": 15}},
                    {"type": "message_stop"}]),
                true,
                json!([
                    role(),
                    text("Hel"),
                    text("lo"),
                    chunk(json!({}), json!("stop")),
                    usage_chunk(25, 15)
                ]),
            ),
            // Text then two tool calls; OpenAI indices count tool calls only.
            (
                json!([start(json!({"input_tokens": 5, "output_tokens": 1, "cache_read_input_tokens": 5})),
                    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": "Hi"}},
                    {"type": "content_block_stop", "index": 0},
                    {"type": "content_block_start", "index": 1, "content_block":
                        {"type": "tool_use", "id": "toolu_a", "name": "f", "input": {}}},
                    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}},
                    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"a\":"}},
                    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "1}"}},
                    {"type": "content_block_stop", "index": 1},
                    {"type": "content_block_start", "index": 2, "content_block":
                        {"type": "tool_use", "id": "toolu_b", "name": "g", "input": {}}},
                    {"type": "content_block_stop", "index": 2},
                    {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}},
                    {"type": "message_stop"}]),
                true,
                json!([role(), text("Hi"),
                    chunk(json!({"tool_calls": [{"index": 0, "id": "toolu_a", "type": "function",
                        "function": {"name": "f", "arguments": ""}}]}), Value::Null),
                    chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":"}}]}), Value::Null),
                    chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}), Value::Null),
                    chunk(json!({"tool_calls": [{"index": 1, "id": "toolu_b", "type": "function",
                        "function": {"name": "g", "arguments": ""}}]}), Value::Null),
                    chunk(json!({}), json!("tool_calls")),
                    {"id": "msg_1", "object": "chat.completion.chunk", "created": 7, "model": "claude",
                     "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 9,
                     "total_tokens": 19, "prompt_tokens_details": {"cached_tokens": 5}}}]),
            ),
            // max_tokens; EOF right after message_delta is accepted; unknown events ignored.
            (
                json!([start(json!({"input_tokens": 2, "output_tokens": 1})),
                    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "a"}},
                    {"type": "some_future_event", "x": 1},
                    {"type": "message_delta", "delta": {"stop_reason": "max_tokens"}, "usage": {"output_tokens": 4}}]),
                true,
                json!([
                    role(),
                    text("a"),
                    chunk(json!({}), json!("length")),
                    usage_chunk(2, 4)
                ]),
            ),
            // No usage anywhere: no usage chunk.
            (
                json!([start(Value::Null),
                    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "a"}},
                    {"type": "message_delta", "delta": {"stop_reason": "refusal"}},
                    {"type": "message_stop"}]),
                false,
                json!([role(), text("a"), chunk(json!({}), json!("content_filter"))]),
            ),
            // An error event mid-stream.
            (
                json!([start(json!({"input_tokens": 2})),
                    {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}]),
                false,
                json!([role(), {"err": "stream"}]),
            ),
            // EOF before the message was complete, and before anything.
            (
                json!([start(json!({"input_tokens": 2})),
                    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "a"}}]),
                true,
                json!([role(), text("a"), {"err": "stream"}]),
            ),
            (json!([]), true, json!([{"err": "stream"}])),
            // Malformed events.
            (json!(["not an object"]), false, json!([{"err": "decode"}])),
            (
                json!([start(json!({})),
                    {"type": "content_block_delta", "index": 3, "delta": {"type": "input_json_delta", "partial_json": "{"}}]),
                false,
                json!([role(), {"err": "decode"}]),
            ),
        ];
        for (events, eof, expected) in cases {
            check_stream(events, eof, expected);
        }
    }

    #[tokio::test]
    async fn stream_over_sse_bytes() {
        let sse = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n\
                   event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"ok\"}}\n\n\
                   event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":2}}\n\n\
                   event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
        let body = futures::stream::iter(vec![Ok::<_, reqwest::Error>(bytes::Bytes::from_static(
            sse.as_bytes(),
        ))]);
        let chunks: Vec<_> = chunk_stream(http::sse_events(body), 7)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .map(|r| serde_json::to_value(r.unwrap()).unwrap())
            .collect();
        assert_eq!(
            Value::Array(chunks),
            json!([
                chunk(json!({"role": "assistant", "content": ""}), Value::Null),
                chunk(json!({"content": "ok"}), Value::Null),
                chunk(json!({}), json!("stop")),
                usage_chunk(3, 2),
            ])
        );
    }

    #[test]
    fn construction_hides_the_key() {
        let spec = AnthropicSpec {
            base_url: "http://h/".into(),
            api_key_env: None,
            version: "2023-06-01".into(),
            headers: vec![],
            connect_timeout: std::time::Duration::from_secs(1),
            default_max_tokens: 1024,
        };
        let p = AnthropicProvider::new(&spec, Some(Secret::new("sk-1")), reqwest::Client::new())
            .unwrap();
        assert_eq!(p.messages_url.as_str(), "http://h/v1/messages");
        assert!(!format!("{:?}", p.headers).contains("sk-1"));
        let err = AnthropicProvider::new(&spec, Some(Secret::new("sk\n1")), reqwest::Client::new())
            .err()
            .unwrap();
        assert!(!err.contains("sk"), "{err}");
    }
}
