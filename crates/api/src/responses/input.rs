//! A Responses request as a chat completions request: its input read into conversation
//! [`Item`]s (every mistake named by its `param`), the conversation a `previous_response_id`
//! carries put before them, `instructions` first as a system message, function tools,
//! `tool_choice` and `text.format` in chat's terms.

use serde_json::{Map, Value};

use super::{CreateResponse, Invalid, Item, ItemRole, Part, TextFormat};
use crate::chat::{
    ChatCompletionRequest, ChatMessage, ContentPart, FunctionCall, FunctionDefinition,
    JsonSchemaFormat, MessageContent, NamedFunction, NamedToolChoice, ResponseFormat, Role,
    StreamOptions, Tool, ToolCall, ToolChoice, ToolChoiceMode,
};
use crate::Extra;

/// One turn, made ready: the conversation kept with its response, and the chat request.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    /// The conversation's items up to and including this turn's input (instructions apart:
    /// as OpenAI does, they apply to one turn only).
    pub context: Vec<Item>,
    pub chat: ChatCompletionRequest,
}

/// The most entries of `metadata`, and the longest key and value (OpenAI's limits).
const METADATA_ENTRIES: usize = 16;
const METADATA_KEY_CHARS: usize = 64;
const METADATA_VALUE_CHARS: usize = 512;

/// `request` as a chat request, after `earlier` (the conversation of the response its
/// `previous_response_id` names, that response's output included; empty without one).
pub fn to_chat(request: &CreateResponse, earlier: Vec<Item>) -> Result<Turn, Invalid> {
    check_settings(request)?;
    let context = conversation(earlier, request.input.as_ref())?;
    let mut messages = Vec::with_capacity(context.len() + 1);
    if let Some(instructions) = &request.instructions {
        messages.push(ChatMessage::new(Role::System, instructions.clone()));
    }
    messages.extend(chat_messages(&context));
    let stream = request.is_stream();
    // Chat completions refuse `tool_choice` and `parallel_tool_calls` (and an empty list)
    // without tools, where the Responses API takes them: they go only with tools.
    let tools = tools(request.tools.as_deref())?.filter(|t| !t.is_empty());
    let tool_choice = request.tool_choice.as_ref().map(tool_choice).transpose()?;
    let tool_choice = tool_choice.filter(|_| tools.is_some());
    let mut extra = Extra::new();
    if let Some(parallel) = request.parallel_tool_calls.filter(|_| tools.is_some()) {
        extra.insert("parallel_tool_calls".into(), parallel.into());
    }
    if let Some(effort) = request.reasoning.as_ref().and_then(|r| r.effort.clone()) {
        extra.insert("reasoning_effort".into(), effort.into());
    }
    if let Some(tier) = &request.service_tier {
        extra.insert("service_tier".into(), tier.clone().into());
    }
    if let Some(key) = &request.prompt_cache_key {
        extra.insert("prompt_cache_key".into(), key.clone().into());
    }
    if let Some(verbosity) = request.text.as_ref().and_then(|t| t.verbosity.clone()) {
        extra.insert("verbosity".into(), verbosity.into());
    }
    let chat = ChatCompletionRequest {
        model: request.model.clone(),
        messages,
        stream: stream.then_some(true),
        // The usage closes the stream's `response.completed`.
        stream_options: stream.then(|| StreamOptions {
            include_usage: Some(true),
            extra: Extra::new(),
        }),
        tools,
        tool_choice,
        response_format: request
            .text
            .as_ref()
            .and_then(|t| t.format.clone())
            .map(response_format),
        stop: None,
        max_tokens: None,
        max_completion_tokens: request.max_output_tokens,
        temperature: request.temperature,
        top_p: request.top_p,
        seed: None,
        user: request
            .user
            .clone()
            .or_else(|| request.safety_identifier.clone()),
        n: None,
        extra,
    };
    Ok(Turn { context, chat })
}

/// The settings a chat request would check under other names, checked under these.
fn check_settings(r: &CreateResponse) -> Result<(), Invalid> {
    if r.model.trim().is_empty() {
        return Err(Invalid::new("model", "`model` must not be empty"));
    }
    if r.background == Some(true) {
        return Err(Invalid::new(
            "background",
            "background responses are not supported: the response is answered while the client waits",
        ));
    }
    if let Some(t) = r.temperature.filter(|t| !(0.0..=2.0).contains(t)) {
        return Err(Invalid::new(
            "temperature",
            format!("`temperature` must be between 0 and 2 (got {t})"),
        ));
    }
    if let Some(p) = r.top_p.filter(|p| !(0.0..=1.0).contains(p)) {
        return Err(Invalid::new(
            "top_p",
            format!("`top_p` must be between 0 and 1 (got {p})"),
        ));
    }
    if r.max_output_tokens == Some(0) {
        return Err(Invalid::new(
            "max_output_tokens",
            "`max_output_tokens` must be at least 1",
        ));
    }
    if let Some(truncation) = r.truncation.as_deref() {
        if !matches!(truncation, "auto" | "disabled") {
            return Err(Invalid::new(
                "truncation",
                "`truncation` must be `auto` or `disabled`",
            ));
        }
    }
    let metadata = r.metadata.iter().flatten();
    if metadata.clone().count() > METADATA_ENTRIES {
        return Err(Invalid::new(
            "metadata",
            format!("`metadata` holds at most {METADATA_ENTRIES} entries"),
        ));
    }
    for (k, v) in metadata {
        if k.chars().count() > METADATA_KEY_CHARS || v.chars().count() > METADATA_VALUE_CHARS {
            return Err(Invalid::new(
                format!("metadata.{k}"),
                format!(
                    "metadata keys are at most {METADATA_KEY_CHARS} characters and values at most {METADATA_VALUE_CHARS}"
                ),
            ));
        }
    }
    Ok(())
}

/// `earlier` then the items of `input`; refused when it comes to nothing, or when a function
/// call's output answers no call made before it.
pub fn conversation(earlier: Vec<Item>, input: Option<&Value>) -> Result<Vec<Item>, Invalid> {
    let new = items(input)?;
    if new.is_empty() && earlier.is_empty() {
        return Err(Invalid::new(
            "input",
            "`input` is required: text, or a list of items",
        ));
    }
    let mut context = earlier;
    let first_new = context.len();
    context.extend(new);
    for (i, item) in context.iter().enumerate().skip(first_new) {
        if let Item::FunctionCallOutput { call_id, .. } = item {
            let called = context[..i].iter().any(
                |earlier| matches!(earlier, Item::FunctionCall { call_id: c, .. } if c == call_id),
            );
            if !called {
                return Err(Invalid::new(
                    format!("input[{}].call_id", i - first_new),
                    format!("no function call found with call_id `{call_id}` for this output"),
                ));
            }
        }
    }
    Ok(context)
}

/// A request's `input` as items: text is one user message.
pub fn items(input: Option<&Value>) -> Result<Vec<Item>, Invalid> {
    match input {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(text)) => Ok(vec![Item::Message {
            role: ItemRole::User,
            content: vec![Part::InputText { text: text.clone() }],
        }]),
        Some(Value::Array(list)) => list
            .iter()
            .enumerate()
            .filter_map(|(i, v)| item(v, &format!("input[{i}]")).transpose())
            .collect(),
        Some(_) => Err(Invalid::new(
            "input",
            "`input` must be text or a list of items",
        )),
    }
}

/// One input item (`None`: a reasoning item, which no chat provider takes back).
fn item(value: &Value, at: &str) -> Result<Option<Item>, Invalid> {
    let Value::Object(fields) = value else {
        return Err(Invalid::new(at, "an input item must be an object"));
    };
    // An "easy" message has a role and no type.
    let kind = match fields.get("type") {
        None if fields.contains_key("role") => "message",
        None => return Err(Invalid::new(format!("{at}.type"), "missing field `type`")),
        Some(Value::String(kind)) => kind.as_str(),
        Some(_) => {
            return Err(Invalid::new(
                format!("{at}.type"),
                "`type` must be a string",
            ))
        }
    };
    let item = match kind {
        "message" => Item::Message {
            role: role(fields, at)?,
            content: content(fields.get("content"), &format!("{at}.content"))?,
        },
        "function_call" => Item::FunctionCall {
            call_id: string(fields, "call_id", at)?,
            name: string(fields, "name", at)?,
            arguments: string(fields, "arguments", at)?,
        },
        "function_call_output" => Item::FunctionCallOutput {
            call_id: string(fields, "call_id", at)?,
            output: call_output(fields.get("output"), &format!("{at}.output"))?,
        },
        "reasoning" => return Ok(None),
        other => {
            return Err(Invalid::new(
                format!("{at}.type"),
                format!(
                    "input items of type `{other}` are not supported; use `message`, \
                     `function_call` or `function_call_output`"
                ),
            ))
        }
    };
    Ok(Some(item))
}

fn role(fields: &Map<String, Value>, at: &str) -> Result<ItemRole, Invalid> {
    match fields.get("role").and_then(Value::as_str) {
        Some("user") => Ok(ItemRole::User),
        Some("assistant") => Ok(ItemRole::Assistant),
        Some("system") => Ok(ItemRole::System),
        Some("developer") => Ok(ItemRole::Developer),
        _ => Err(Invalid::new(
            format!("{at}.role"),
            "`role` must be `user`, `assistant`, `system` or `developer`",
        )),
    }
}

fn string(fields: &Map<String, Value>, name: &str, at: &str) -> Result<String, Invalid> {
    match fields.get(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(Invalid::new(
            format!("{at}.{name}"),
            format!("`{name}` must be a string"),
        )),
        None => Err(Invalid::new(
            format!("{at}.{name}"),
            format!("missing field `{name}`"),
        )),
    }
}

/// A message's content: text, or a list of parts.
fn content(value: Option<&Value>, at: &str) -> Result<Vec<Part>, Invalid> {
    match value {
        Some(Value::String(text)) => Ok(vec![Part::InputText { text: text.clone() }]),
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .map(|(i, p)| part(p, &format!("{at}[{i}]")))
            .collect(),
        _ => Err(Invalid::new(
            at,
            "`content` must be text or a list of content parts",
        )),
    }
}

fn part(value: &Value, at: &str) -> Result<Part, Invalid> {
    let Value::Object(fields) = value else {
        return Err(Invalid::new(at, "a content part must be an object"));
    };
    match fields.get("type").and_then(Value::as_str) {
        Some("input_text") => Ok(Part::InputText {
            text: string(fields, "text", at)?,
        }),
        Some("output_text") => Ok(Part::OutputText {
            text: string(fields, "text", at)?,
        }),
        Some("refusal") => Ok(Part::Refusal {
            refusal: string(fields, "refusal", at)?,
        }),
        Some("input_image") => match fields.get("image_url") {
            Some(Value::String(url)) => Ok(Part::InputImage {
                image_url: url.clone(),
                detail: fields
                    .get("detail")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            }),
            _ => Err(Invalid::new(
                format!("{at}.image_url"),
                "an image is given by `image_url` (a URL or a data URL); `file_id` is not supported",
            )),
        },
        Some(other) => Err(Invalid::new(
            format!("{at}.type"),
            format!(
                "content parts of type `{other}` are not supported; use `input_text`, \
                 `output_text` or `input_image`"
            ),
        )),
        None => Err(Invalid::new(
            format!("{at}.type"),
            "missing field `type`",
        )),
    }
}

/// A function call's output: text, or text parts (joined).
fn call_output(value: Option<&Value>, at: &str) -> Result<String, Invalid> {
    match value {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(_)) => {
            let parts = content(value, at)?;
            let mut text = String::new();
            for (i, p) in parts.iter().enumerate() {
                match p {
                    Part::InputText { text: t } | Part::OutputText { text: t } => {
                        text.push_str(t);
                    }
                    _ => {
                        return Err(Invalid::new(
                            format!("{at}[{i}].type"),
                            "a function call's output is text",
                        ))
                    }
                }
            }
            Ok(text)
        }
        _ => Err(Invalid::new(at, "`output` must be text")),
    }
}

/// The conversation as chat messages: consecutive function calls are one assistant message's
/// tool calls (after its text, when the assistant wrote some just before).
fn chat_messages(context: &[Item]) -> Vec<ChatMessage> {
    let mut messages: Vec<ChatMessage> = Vec::with_capacity(context.len());
    let mut calls_may_join = false;
    for item in context {
        match item {
            Item::Message { role, content } => {
                messages.push(ChatMessage {
                    content: Some(message_content(content)),
                    ..ChatMessage::new(chat_role(*role), "")
                });
                calls_may_join = *role == ItemRole::Assistant;
            }
            Item::FunctionCall {
                call_id,
                name,
                arguments,
            } => {
                let call = ToolCall {
                    id: call_id.clone(),
                    kind: "function".to_owned(),
                    function: FunctionCall {
                        name: name.clone(),
                        arguments: arguments.clone(),
                    },
                };
                match messages.last_mut() {
                    Some(last) if calls_may_join => {
                        last.tool_calls.get_or_insert_with(Vec::new).push(call);
                    }
                    _ => messages.push(ChatMessage {
                        content: None,
                        tool_calls: Some(vec![call]),
                        ..ChatMessage::new(Role::Assistant, "")
                    }),
                }
                calls_may_join = true;
            }
            Item::FunctionCallOutput { call_id, output } => {
                messages.push(ChatMessage {
                    tool_call_id: Some(call_id.clone()),
                    ..ChatMessage::new(Role::Tool, output.clone())
                });
                calls_may_join = false;
            }
        }
    }
    messages
}

fn chat_role(role: ItemRole) -> Role {
    match role {
        ItemRole::User => Role::User,
        ItemRole::Assistant => Role::Assistant,
        ItemRole::System => Role::System,
        ItemRole::Developer => Role::Developer,
    }
}

/// Text alone is sent as a string (every provider takes it); with an image, as parts.
fn message_content(parts: &[Part]) -> MessageContent {
    let text_of = |p: &Part| match p {
        Part::InputText { text } | Part::OutputText { text } => Some(text.clone()),
        Part::Refusal { refusal } => Some(refusal.clone()),
        Part::InputImage { .. } => None,
    };
    if let Some(texts) = parts.iter().map(text_of).collect::<Option<Vec<String>>>() {
        return MessageContent::Text(texts.concat());
    }
    let chat_part = |p: &Part| match p {
        Part::InputImage { image_url, detail } => {
            let mut image = Map::new();
            image.insert("url".into(), image_url.clone().into());
            if let Some(d) = detail {
                image.insert("detail".into(), d.clone().into());
            }
            let mut extra = Extra::new();
            extra.insert("image_url".into(), Value::Object(image));
            ContentPart {
                kind: "image_url".to_owned(),
                text: None,
                extra,
            }
        }
        other => ContentPart {
            kind: "text".to_owned(),
            text: text_of(other),
            extra: Extra::new(),
        },
    };
    MessageContent::Parts(parts.iter().map(chat_part).collect())
}

/// Function tools in chat's shape; any other kind (OpenAI's hosted tools) is refused.
fn tools(tools: Option<&[Value]>) -> Result<Option<Vec<Tool>>, Invalid> {
    let Some(tools) = tools else {
        return Ok(None);
    };
    let tool = |(i, value): (usize, &Value)| {
        let at = format!("tools[{i}]");
        let Value::Object(fields) = value else {
            return Err(Invalid::new(at, "a tool must be an object"));
        };
        match fields.get("type").and_then(Value::as_str) {
            Some("function") => {}
            Some(other) => {
                return Err(Invalid::new(
                    format!("{at}.type"),
                    format!(
                        "tools of type `{other}` are not supported: only `function` tools, \
                         which the client runs"
                    ),
                ))
            }
            None => return Err(Invalid::new(format!("{at}.type"), "missing field `type`")),
        }
        let name = string(fields, "name", &at)?;
        let description = match fields.get("description") {
            None | Some(Value::Null) => None,
            Some(Value::String(d)) => Some(d.clone()),
            Some(_) => {
                return Err(Invalid::new(
                    format!("{at}.description"),
                    "`description` must be a string",
                ))
            }
        };
        Ok(Tool {
            kind: "function".to_owned(),
            function: FunctionDefinition {
                name,
                description,
                parameters: fields.get("parameters").filter(|p| !p.is_null()).cloned(),
                strict: fields.get("strict").and_then(Value::as_bool),
            },
        })
    };
    tools
        .iter()
        .enumerate()
        .map(tool)
        .collect::<Result<_, _>>()
        .map(Some)
}

fn tool_choice(value: &Value) -> Result<ToolChoice, Invalid> {
    let refused = || {
        Invalid::new(
            "tool_choice",
            "`tool_choice` must be `none`, `auto`, `required` or {\"type\": \"function\", \"name\": ...}",
        )
    };
    match value {
        Value::String(mode) => match mode.as_str() {
            "none" => Ok(ToolChoice::Mode(ToolChoiceMode::None)),
            "auto" => Ok(ToolChoice::Mode(ToolChoiceMode::Auto)),
            "required" => Ok(ToolChoice::Mode(ToolChoiceMode::Required)),
            _ => Err(refused()),
        },
        Value::Object(fields) if fields.get("type").and_then(Value::as_str) == Some("function") => {
            Ok(ToolChoice::Named(NamedToolChoice {
                kind: "function".to_owned(),
                function: NamedFunction {
                    name: string(fields, "name", "tool_choice")?,
                },
            }))
        }
        _ => Err(refused()),
    }
}

fn response_format(format: TextFormat) -> ResponseFormat {
    match format {
        TextFormat::Text => ResponseFormat::Text,
        TextFormat::JsonObject => ResponseFormat::JsonObject,
        TextFormat::JsonSchema {
            name,
            schema,
            description,
            strict,
        } => ResponseFormat::JsonSchema {
            json_schema: JsonSchemaFormat {
                name,
                description,
                schema: Some(schema),
                strict,
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(body: Value) -> CreateResponse {
        serde_json::from_value(body).unwrap()
    }

    fn turn(body: Value) -> Result<Turn, Invalid> {
        to_chat(&request(body), Vec::new())
    }

    #[test]
    fn text_input_with_instructions_is_a_system_and_a_user_message() {
        let t = turn(json!({
            "model": "m", "instructions": "Be brief.", "input": "Hi",
            "max_output_tokens": 50, "temperature": 0.5, "top_p": 0.9, "user": "u1",
            "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}, "strict": true}}
        }))
        .unwrap();
        let chat = serde_json::to_value(&t.chat).unwrap();
        assert_eq!(
            chat,
            json!({
                "model": "m",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Hi"}
                ],
                "max_completion_tokens": 50, "temperature": 0.5, "top_p": 0.9, "user": "u1",
                "response_format": {"type": "json_schema", "json_schema": {
                    "name": "x", "schema": {"type": "object"}, "strict": true}}
            })
        );
        // Instructions are not part of the conversation carried on.
        assert_eq!(t.context.len(), 1);
    }

    #[test]
    fn items_become_messages_tool_calls_and_tool_results() {
        let t = turn(json!({
            "model": "m", "stream": true,
            "input": [
                {"role": "user", "content": "Weather in Paris?"},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
                {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
                {"type": "function_call", "call_id": "c2", "name": "get_time", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "18C"},
                {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "noon"}]},
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {"role": "user", "content": [
                    {"type": "input_text", "text": "And this?"},
                    {"type": "input_image", "image_url": "data:image/png;base64,AA", "detail": "low"}]}
            ],
            "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}],
            "tool_choice": {"type": "function", "name": "get_weather"}
        }))
        .unwrap();
        let chat = serde_json::to_value(&t.chat).unwrap();
        assert_eq!(chat["stream"], json!(true));
        assert_eq!(chat["stream_options"], json!({"include_usage": true}));
        assert_eq!(
            chat["messages"],
            json!([
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": "Checking.", "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "c2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]},
                {"role": "tool", "content": "18C", "tool_call_id": "c1"},
                {"role": "tool", "content": "noon", "tool_call_id": "c2"},
                {"role": "user", "content": [
                    {"type": "text", "text": "And this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA", "detail": "low"}}]}
            ])
        );
        assert_eq!(
            chat["tools"],
            json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}])
        );
        assert_eq!(
            chat["tool_choice"],
            json!({"type": "function", "function": {"name": "get_weather"}})
        );
        // The reasoning item is left out.
        assert_eq!(t.context.len(), 7);
    }

    #[test]
    fn tool_settings_go_only_with_tools() {
        let t = turn(json!({"model": "m", "input": "x", "tools": [],
                            "tool_choice": "auto", "parallel_tool_calls": false}))
        .unwrap();
        let chat = serde_json::to_value(&t.chat).unwrap();
        assert_eq!(
            chat,
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}]})
        );
        let t = turn(
            json!({"model": "m", "input": "x", "tools": [{"type": "function", "name": "f"}],
                            "tool_choice": "none", "parallel_tool_calls": false}),
        )
        .unwrap();
        let chat = serde_json::to_value(&t.chat).unwrap();
        assert_eq!(chat["tool_choice"], "none");
        assert_eq!(chat["parallel_tool_calls"], false);
    }

    #[test]
    fn earlier_items_come_first_and_answer_the_outputs() {
        let earlier = vec![
            Item::Message {
                role: ItemRole::User,
                content: vec![Part::InputText {
                    text: "Weather?".into(),
                }],
            },
            Item::FunctionCall {
                call_id: "c9".into(),
                name: "get_weather".into(),
                arguments: "{}".into(),
            },
        ];
        let r = request(json!({"model": "m", "input": [
            {"type": "function_call_output", "call_id": "c9", "output": "sunny"}]}));
        let t = to_chat(&r, earlier).unwrap();
        assert_eq!(t.context.len(), 3);
        assert_eq!(t.chat.messages.len(), 3);
        assert_eq!(t.chat.messages[1].role, Role::Assistant);
        assert_eq!(t.chat.messages[2].tool_call_id.as_deref(), Some("c9"));
    }

    #[test]
    fn mistakes_name_their_param() {
        let cases: &[(Value, &str)] = &[
            (json!({"model": "m"}), "input"),
            (json!({"model": "m", "input": []}), "input"),
            (json!({"model": "m", "input": 5}), "input"),
            (json!({"model": " ", "input": "x"}), "model"),
            (
                json!({"model": "m", "input": [{"role": "wizard", "content": "x"}]}),
                "input[0].role",
            ),
            (json!({"model": "m", "input": ["x"]}), "input[0]"),
            (
                json!({"model": "m", "input": [{"content": "x"}]}),
                "input[0].type",
            ),
            (
                json!({"model": "m", "input": [{"type": "item_reference", "id": "x"}]}),
                "input[0].type",
            ),
            (
                json!({"model": "m", "input": [{"role": "user", "content": 5}]}),
                "input[0].content",
            ),
            (
                json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}),
                "input[0].content[0].type",
            ),
            (
                json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]}),
                "input[0].content[0].image_url",
            ),
            (
                json!({"model": "m", "input": [{"type": "function_call", "call_id": "c", "name": "f"}]}),
                "input[0].arguments",
            ),
            (
                json!({"model": "m", "input": ["x", {"type": "function_call_output", "call_id": "c", "output": "o"}]}),
                "input[0]",
            ),
            (
                json!({"model": "m", "input": [{"role": "user", "content": "x"}, {"type": "function_call_output", "call_id": "c", "output": "o"}]}),
                "input[1].call_id",
            ),
            (
                json!({"model": "m", "input": "x", "tools": [{"type": "web_search"}]}),
                "tools[0].type",
            ),
            (
                json!({"model": "m", "input": "x", "tools": [{"type": "function"}]}),
                "tools[0].name",
            ),
            (
                json!({"model": "m", "input": "x", "tool_choice": "sometimes"}),
                "tool_choice",
            ),
            (
                json!({"model": "m", "input": "x", "temperature": 3}),
                "temperature",
            ),
            (json!({"model": "m", "input": "x", "top_p": -1}), "top_p"),
            (
                json!({"model": "m", "input": "x", "max_output_tokens": 0}),
                "max_output_tokens",
            ),
            (
                json!({"model": "m", "input": "x", "background": true}),
                "background",
            ),
            (
                json!({"model": "m", "input": "x", "truncation": "middle"}),
                "truncation",
            ),
            (
                json!({"model": "m", "input": "x", "metadata": {"k": "v".repeat(513)}}),
                "metadata.k",
            ),
        ];
        for (body, param) in cases {
            let e = turn(body.clone()).unwrap_err();
            assert_eq!(e.param, *param, "{body}: {}", e.message);
        }
    }
}
