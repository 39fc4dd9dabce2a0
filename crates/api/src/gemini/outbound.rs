//! A chat request sent to Gemini (`generateContent`), and Gemini's answer read back as a chat
//! completion. What carries over and how:
//! - `system` and `developer` messages become `systemInstruction`; `assistant` turns are
//!   `model` turns; consecutive turns of one speaker are merged.
//! - Images: `data:` URLs become `inlineData`. Gemini cannot fetch an `http(s)` image URL
//!   itself (only its own file URIs), and the gateway does not fetch for it: such a part is
//!   refused, naming the field.
//! - Tools become `functionDeclarations` (with `parametersJsonSchema`, full JSON Schema);
//!   `tool_choice` becomes `toolConfig` (`required` is `ANY`, a named tool `ANY` limited to
//!   it). Tool results become `functionResponse` parts, matched to their call by name (the
//!   name of the call their `tool_call_id` answers); calls Gemini returns without an id get a
//!   stable one ([`super::tool_call_id`]).
//! - `response_format` becomes `responseMimeType: application/json`, with
//!   `responseJsonSchema` for a schema; `stop`, `n` (`candidateCount`), the output cap,
//!   sampling, `seed`, penalties and `top_k` carry over; other OpenAI-only fields are dropped.
//! - Thinking parts of answers are skipped (their tokens are counted in usage).

use std::collections::HashMap;

use serde_json::{json, Value};

use super::{
    finish_reason_of, tool_call_id, Blob, Candidate, Content, FunctionCall as GeminiCall,
    FunctionCallingConfig, FunctionDeclaration, FunctionResponse, GenerateContentRequest,
    GenerateContentResponse, GenerationConfig, Part, Tool as GeminiTool, ToolConfig,
    TranslateError,
};
use crate::chat::{
    finish_reason, ChatCompletionRequest, ChatCompletionResponse, ChatMessage, Choice, ContentPart,
    FunctionCall, MessageContent, ResponseFormat, Role, Tool, ToolCall, ToolChoice, ToolChoiceMode,
};
use crate::conversation;
use crate::Extra;

fn unsupported(param: &str, message: impl Into<String>) -> TranslateError {
    TranslateError::new(param, message)
}

/// A chat request as a `generateContent` request (the model goes in the URL, the stream
/// switch in the method: neither is in the body).
pub fn to_gemini(req: ChatCompletionRequest) -> Result<GenerateContentRequest, TranslateError> {
    let extra_f64 = |name: &str| req.extra.get(name).and_then(Value::as_f64);
    let generation = GenerationConfig {
        stop_sequences: req.stop_sequences(),
        candidate_count: req.n.filter(|n| *n > 1),
        max_output_tokens: req.output_cap(),
        temperature: req.temperature,
        top_p: req.top_p,
        top_k: req
            .extra
            .get("top_k")
            .and_then(Value::as_u64)
            .and_then(|k| u32::try_from(k).ok()),
        seed: req.seed,
        presence_penalty: extra_f64("presence_penalty"),
        frequency_penalty: extra_f64("frequency_penalty"),
        response_mime_type: None,
        response_json_schema: None,
    };
    let generation = structured_output(generation, req.response_format.as_ref());
    let (system, contents) = conversation(req.messages)?;
    let tools = tool_declarations(req.tools);
    let tool_config = if tools.is_empty() {
        None
    } else {
        req.tool_choice.map(tool_config)
    };
    Ok(GenerateContentRequest {
        contents,
        system_instruction: (!system.is_empty()).then(|| Content {
            role: None,
            parts: vec![Part::text(system.join("\n\n"))],
        }),
        tools,
        tool_config,
        generation_config: (generation != GenerationConfig::default()).then_some(generation),
    })
}

fn structured_output(
    mut config: GenerationConfig,
    format: Option<&ResponseFormat>,
) -> GenerationConfig {
    match format {
        None | Some(ResponseFormat::Text) => {}
        Some(ResponseFormat::JsonObject) => {
            config.response_mime_type = Some("application/json".into());
        }
        Some(ResponseFormat::JsonSchema { json_schema }) => {
            config.response_mime_type = Some("application/json".into());
            config.response_json_schema = json_schema.schema.clone();
        }
    }
    config
}

fn tool_declarations(tools: Option<Vec<Tool>>) -> Vec<GeminiTool> {
    let declarations: Vec<FunctionDeclaration> = tools
        .unwrap_or_default()
        .into_iter()
        .map(|t| FunctionDeclaration {
            name: t.function.name,
            description: t.function.description,
            parameters_json_schema: t.function.parameters,
        })
        .collect();
    if declarations.is_empty() {
        return Vec::new();
    }
    vec![GeminiTool {
        function_declarations: declarations,
    }]
}

fn tool_config(choice: ToolChoice) -> ToolConfig {
    let (mode, allowed) = match choice {
        ToolChoice::Mode(ToolChoiceMode::Auto) => ("AUTO", Vec::new()),
        ToolChoice::Mode(ToolChoiceMode::None) => ("NONE", Vec::new()),
        ToolChoice::Mode(ToolChoiceMode::Required) => ("ANY", Vec::new()),
        ToolChoice::Named(named) => ("ANY", vec![named.function.name]),
    };
    ToolConfig {
        function_calling_config: FunctionCallingConfig {
            mode: mode.into(),
            allowed_function_names: allowed,
        },
    }
}

/// The system instruction's parts and the turns, from OpenAI's messages.
fn conversation(messages: Vec<ChatMessage>) -> Result<(Vec<String>, Vec<Content>), TranslateError> {
    let mut system = Vec::new();
    let mut turns: Vec<Content> = Vec::new();
    // The name of each tool call made so far, by id: tool results are matched by name.
    let mut called: HashMap<String, String> = HashMap::new();
    for (i, message) in messages.into_iter().enumerate() {
        let at = |e: TranslateError| e.within(&format!("messages[{i}]"));
        match message.role {
            Role::System | Role::Developer => {
                let text = message.text();
                if !text.is_empty() {
                    system.push(text);
                }
            }
            Role::User => push_turn(&mut turns, "user", user_parts(message).map_err(at)?),
            Role::Assistant => {
                let parts = model_parts(message, &mut called).map_err(at)?;
                push_turn(&mut turns, "model", parts);
            }
            Role::Tool => {
                let part = function_response(&message, &called).map_err(at)?;
                push_turn(&mut turns, "user", vec![part]);
            }
            Role::Function => {
                return Err(at(unsupported(
                    "role",
                    "the legacy `function` role is not supported by gemini; use tools",
                )))
            }
        }
    }
    Ok((system, turns))
}

/// Appends a turn, merged into the previous one when the speaker is the same; empty turns
/// are dropped.
fn push_turn(turns: &mut Vec<Content>, role: &str, parts: Vec<Part>) {
    if parts.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some(last) if last.role.as_deref() == Some(role) => last.parts.extend(parts),
        _ => turns.push(Content {
            role: Some(role.to_owned()),
            parts,
        }),
    }
}

fn text_part(text: String) -> Option<Part> {
    (!text.is_empty()).then(|| Part::text(text))
}

/// A user message's text and images, read as every translation reads them
/// ([`conversation::user_blocks`]).
fn user_parts(message: ChatMessage) -> Result<Vec<Part>, TranslateError> {
    conversation::user_blocks(message, "gemini", text_part, image_part)
}

/// An `image_url` part with a base64 `data:` URL, as inline data.
fn image_part(part: &ContentPart) -> Result<Part, TranslateError> {
    let Some(data_url) = conversation::data_url(conversation::image_url(part)?) else {
        return Err(unsupported(
            "image_url.url",
            "gemini takes images as base64 data URLs (data:image/png;base64,...), not as \
             links to fetch",
        ));
    };
    let (mime_type, data) = data_url?;
    Ok(Part {
        inline_data: Some(Blob {
            mime_type: mime_type.to_owned(),
            data: data.to_owned(),
        }),
        ..Part::default()
    })
}

/// An assistant message's text and function calls; each call's name is noted by its id.
fn model_parts(
    message: ChatMessage,
    called: &mut HashMap<String, String>,
) -> Result<Vec<Part>, TranslateError> {
    let mut parts: Vec<Part> = conversation::assistant_texts(message.content, "gemini")?
        .into_iter()
        .filter_map(text_part)
        .collect();
    for (k, call) in message
        .tool_calls
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let args = conversation::tool_arguments(&call)
            .map_err(|e| e.within(&format!("tool_calls[{k}].function")))?;
        called.insert(call.id.clone(), call.function.name.clone());
        parts.push(Part {
            function_call: Some(GeminiCall {
                id: None,
                name: call.function.name,
                args,
            }),
            ..Part::default()
        });
    }
    Ok(parts)
}

/// A tool message as a `functionResponse`: named by the call it answers; its text as the
/// response when that is a JSON object, else wrapped as `{"content": text}` (Gemini wants an
/// object).
fn function_response(
    message: &ChatMessage,
    called: &HashMap<String, String>,
) -> Result<Part, TranslateError> {
    let id = message
        .tool_call_id
        .as_deref()
        .ok_or_else(|| unsupported("tool_call_id", "a tool message has no tool_call_id"))?;
    let name = called.get(id).ok_or_else(|| {
        unsupported(
            "tool_call_id",
            format!("`{id}` is not the id of a tool call an earlier assistant message made"),
        )
    })?;
    let text = message.text();
    let response = match serde_json::from_str::<Value>(&text) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({ "content": text }),
    };
    Ok(Part {
        function_response: Some(FunctionResponse {
            id: None,
            name: name.clone(),
            response,
        }),
        ..Part::default()
    })
}

// ---------------------------------------------------------------------------------------------
// Gemini answer → chat answer.

/// A `generateContent` answer as a chat completion for `model`, stamped `created`. A prompt
/// Gemini refused outright (no candidates, `promptFeedback.blockReason`) is one empty choice
/// finished by `content_filter`.
pub fn to_chat_response(
    reply: GenerateContentResponse,
    model: &str,
    created: i64,
) -> ChatCompletionResponse {
    let mut choices: Vec<Choice> = reply
        .candidates
        .into_iter()
        .enumerate()
        .map(|(i, c)| choice(c, i as u32))
        .collect();
    if choices.is_empty() {
        let blocked = reply
            .prompt_feedback
            .as_ref()
            .and_then(|f| f.block_reason.as_ref())
            .is_some();
        let mut empty = choice(Candidate::default(), 0);
        if blocked {
            empty.finish_reason = Some(finish_reason::CONTENT_FILTER.into());
        }
        choices.push(empty);
    }
    ChatCompletionResponse {
        id: reply.response_id.unwrap_or_default(),
        object: "chat.completion".into(),
        created,
        model: reply.model_version.unwrap_or_else(|| model.to_owned()),
        choices,
        usage: reply.usage_metadata.as_ref().and_then(|u| u.to_openai()),
        system_fingerprint: None,
        extra: Extra::new(),
    }
}

fn choice(candidate: Candidate, position: u32) -> Choice {
    let index = candidate.index.unwrap_or(position);
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for part in candidate.content.map(|c| c.parts).unwrap_or_default() {
        if part.thought == Some(true) {
            continue;
        }
        if let Some(t) = part.text {
            text.push_str(&t);
        }
        if let Some(call) = part.function_call {
            tool_calls.push(ToolCall {
                id: tool_call_id(&call, index, tool_calls.len()),
                kind: "function".into(),
                function: FunctionCall {
                    name: call.name,
                    arguments: call.args.to_string(),
                },
            });
        }
    }
    let called = !tool_calls.is_empty();
    let finish = candidate
        .finish_reason
        .as_deref()
        .map_or(finish_reason::STOP, |r| finish_reason_of(r, called));
    Choice {
        index,
        message: ChatMessage {
            role: Role::Assistant,
            content: (!text.is_empty() || !called).then_some(MessageContent::Text(text)),
            name: None,
            tool_calls: called.then_some(tool_calls),
            tool_call_id: None,
            extra: Extra::new(),
        },
        finish_reason: Some(finish.to_owned()),
        logprobs: None,
        stop_reason: None,
    }
}

#[cfg(test)]
mod tests;
