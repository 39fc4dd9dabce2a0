//! Reading a chat conversation for the APIs that lift the system prompt out of it and take
//! tool results in the user's turn (Anthropic's Messages, Bedrock's Converse, Gemini): what
//! their translations (`anthropic::outbound`, `bedrock::outbound`, `gemini::outbound`) share,
//! so that a message is read one way whichever of them it is sent to. Each error names the
//! field within the message; the caller adds which message. Gemini builds its turns itself
//! (its tool results are matched to their call by name, not id) and shares the readers of
//! parts: [`user_blocks`], [`assistant_texts`], [`image_url`], [`data_url`],
//! [`tool_arguments`].

use serde_json::Value;

use crate::anthropic::{Speaker, TranslateError};
use crate::chat::{ChatMessage, ContentPart, MessageContent, Role, ToolCall};
use crate::Extra;

/// How one API writes a message's blocks.
pub(crate) trait TurnBlocks {
    type Block;
    /// Names the upstream in errors.
    const API: &'static str;
    /// A text block; none for text the API would reject (empty).
    fn text(text: String) -> Option<Self::Block>;
    fn image(part: &ContentPart) -> Result<Self::Block, TranslateError>;
    fn user(message: ChatMessage) -> Result<Vec<Self::Block>, TranslateError> {
        user_blocks(message, Self::API, Self::text, Self::image)
    }
    fn assistant(message: ChatMessage) -> Result<Vec<Self::Block>, TranslateError>;
    /// The result of the tool call `tool_use_id` (a `tool` message).
    fn tool_result(tool_use_id: String, text: String) -> Self::Block;
    fn is_tool_result(block: &Self::Block) -> bool;
}

/// The system prompt's parts, and the turns.
pub(crate) type Conversation<B> = (Vec<String>, Vec<(Speaker, Vec<B>)>);

/// A conversation as system prompt and turns: system and developer messages' texts gathered;
/// each other message's blocks appended to the previous turn when the same side speaks
/// (both APIs require turns to alternate), empty turns dropped, and the results of tool
/// calls first in their turn (before anything else the user says).
pub(crate) fn conversation<T: TurnBlocks>(
    messages: Vec<ChatMessage>,
) -> Result<Conversation<T::Block>, TranslateError> {
    let mut system = Vec::new();
    let mut turns: Vec<(Speaker, Vec<T::Block>)> = Vec::new();
    for (i, message) in messages.into_iter().enumerate() {
        let at = |e: TranslateError| e.within(&format!("messages[{i}]"));
        let (side, blocks) = match message.role {
            Role::System | Role::Developer => {
                let text = message.text();
                if !text.is_empty() {
                    system.push(text);
                }
                continue;
            }
            Role::User => (Speaker::User, T::user(message).map_err(at)?),
            Role::Assistant => (Speaker::Assistant, T::assistant(message).map_err(at)?),
            Role::Tool => {
                let tool_use_id = message.tool_call_id.clone().ok_or_else(|| {
                    at(TranslateError::new(
                        "tool_call_id",
                        "a tool message has no tool_call_id",
                    ))
                })?;
                (
                    Speaker::User,
                    vec![T::tool_result(tool_use_id, message.text())],
                )
            }
            Role::Function => {
                return Err(at(TranslateError::new(
                    "role",
                    format!(
                        "the legacy `function` role is not supported by {}; use tools",
                        T::API
                    ),
                )))
            }
        };
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last, content)) if *last == side => content.extend(blocks),
            _ => turns.push((side, blocks)),
        }
    }
    for (_, blocks) in &mut turns {
        blocks.sort_by_key(|b| !T::is_tool_result(b));
    }
    Ok((system, turns))
}

/// A user message's blocks: its text (`text` makes a block, or none) and images (`image`),
/// any other kind of part refused naming it.
pub(crate) fn user_blocks<B>(
    message: ChatMessage,
    api: &str,
    text: impl Fn(String) -> Option<B>,
    image: impl Fn(&ContentPart) -> Result<B, TranslateError>,
) -> Result<Vec<B>, TranslateError> {
    match message.content {
        None => Ok(Vec::new()),
        Some(MessageContent::Text(t)) => Ok(text(t).into_iter().collect()),
        Some(MessageContent::Parts(parts)) => {
            let mut blocks = Vec::new();
            for (j, part) in parts.into_iter().enumerate() {
                let at = |e: TranslateError| e.within(&format!("content[{j}]"));
                match part.kind.as_str() {
                    "text" => blocks.extend(text(part.text.unwrap_or_default())),
                    "image_url" => blocks.push(image(&part).map_err(at)?),
                    other => {
                        return Err(at(TranslateError::new(
                            "type",
                            format!("content parts of type `{other}` are not supported by {api}"),
                        )))
                    }
                }
            }
            Ok(blocks)
        }
    }
}

/// An assistant message's texts, one per part (a refusal the model gave earlier is part of
/// what it said); a part of any other kind is refused, naming it.
pub(crate) fn assistant_texts(
    content: Option<MessageContent>,
    api: &str,
) -> Result<Vec<String>, TranslateError> {
    match content {
        None => Ok(Vec::new()),
        Some(MessageContent::Text(text)) => Ok(vec![text]),
        Some(MessageContent::Parts(parts)) => parts
            .into_iter()
            .enumerate()
            .map(|(j, part)| match part.kind.as_str() {
                "text" => Ok(part.text.unwrap_or_default()),
                "refusal" => Ok(part
                    .extra
                    .get("refusal")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()),
                other => Err(TranslateError::new(
                    &format!("content[{j}].type"),
                    format!("assistant content parts of type `{other}` are not supported by {api}"),
                )),
            })
            .collect(),
    }
}

/// The URL of an `image_url` part.
pub(crate) fn image_url(part: &ContentPart) -> Result<&str, TranslateError> {
    part.extra
        .get("image_url")
        .and_then(|v| v.get("url").or(Some(v)))
        .and_then(Value::as_str)
        .ok_or_else(|| TranslateError::new("image_url", "an image_url part has no url"))
}

/// A `data:` URL's media type and base64 data; `None` for any other URL.
pub(crate) fn data_url(url: &str) -> Option<Result<(&str, &str), TranslateError>> {
    let rest = url.strip_prefix("data:")?;
    Some(
        rest.split_once(";base64,").ok_or_else(|| {
            TranslateError::new("image_url", "image data URLs must be base64-encoded")
        }),
    )
}

/// An assistant message's tool calls as (id, name, input object).
pub(crate) fn tool_uses(
    calls: Option<Vec<ToolCall>>,
) -> Result<Vec<(String, String, Value)>, TranslateError> {
    let mut uses = Vec::new();
    for (k, call) in calls.unwrap_or_default().into_iter().enumerate() {
        let input =
            tool_arguments(&call).map_err(|e| e.within(&format!("tool_calls[{k}].function")))?;
        uses.push((call.id, call.function.name, input));
    }
    Ok(uses)
}

/// Tool call arguments as the JSON object these APIs want; models often send `""` for a tool
/// without parameters.
pub(crate) fn tool_arguments(call: &ToolCall) -> Result<Value, TranslateError> {
    let text = call.function.arguments.trim();
    if text.is_empty() {
        return Ok(Value::Object(Extra::new()));
    }
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(TranslateError::new(
            "arguments",
            format!(
                "the arguments of tool call `{}` are not a JSON object",
                call.id
            ),
        )),
    }
}
