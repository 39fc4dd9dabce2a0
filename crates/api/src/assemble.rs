//! The whole response a stream amounts to: the inverse of cutting a response into chunks.
//! Used to cache a streamed answer once it has finished.

use std::collections::BTreeMap;

use crate::chat::{
    ChatCompletionChunk, ChatCompletionResponse, ChatMessage, Choice, FunctionCall, MessageContent,
    Role, ToolCall,
};
use crate::Extra;

#[derive(Debug, Default)]
struct PartialChoice {
    role: Option<Role>,
    content: String,
    tool_calls: BTreeMap<u32, ToolCall>,
    finish_reason: Option<String>,
    stop_reason: Option<serde_json::Value>,
}

/// Feed it every chunk of one stream in order, then call [`ChunkAssembler::finish`].
#[derive(Debug, Default)]
pub struct ChunkAssembler {
    id: String,
    created: i64,
    model: String,
    system_fingerprint: Option<String>,
    choices: BTreeMap<u32, PartialChoice>,
    usage: Option<crate::chat::Usage>,
}

impl ChunkAssembler {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, chunk: &ChatCompletionChunk) {
        if self.id.is_empty() {
            self.id.clone_from(&chunk.id);
            self.created = chunk.created;
            self.model.clone_from(&chunk.model);
        }
        if chunk.system_fingerprint.is_some() {
            self.system_fingerprint
                .clone_from(&chunk.system_fingerprint);
        }
        if chunk.usage.is_some() {
            self.usage.clone_from(&chunk.usage);
        }
        for c in &chunk.choices {
            let p = self.choices.entry(c.index).or_default();
            if let Some(role) = c.delta.role {
                p.role = Some(role);
            }
            if let Some(text) = &c.delta.content {
                p.content.push_str(text);
            }
            for d in c.delta.tool_calls.iter().flatten() {
                // The first delta of a call carries its id, type and name; later ones append
                // to the arguments.
                let call = p.tool_calls.entry(d.index).or_insert_with(|| ToolCall {
                    id: String::new(),
                    kind: "function".to_owned(),
                    function: FunctionCall {
                        name: String::new(),
                        arguments: String::new(),
                    },
                });
                if let Some(id) = &d.id {
                    call.id.clone_from(id);
                }
                if let Some(kind) = &d.kind {
                    call.kind.clone_from(kind);
                }
                if let Some(f) = &d.function {
                    if let Some(name) = &f.name {
                        call.function.name.push_str(name);
                    }
                    if let Some(args) = &f.arguments {
                        call.function.arguments.push_str(args);
                    }
                }
            }
            if c.finish_reason.is_some() {
                p.finish_reason.clone_from(&c.finish_reason);
            }
            if c.stop_reason.is_some() {
                p.stop_reason.clone_from(&c.stop_reason);
            }
        }
    }

    pub fn finish(self) -> ChatCompletionResponse {
        let choices = self
            .choices
            .into_iter()
            .map(|(index, p)| {
                let tool_calls: Vec<ToolCall> = p.tool_calls.into_values().collect();
                Choice {
                    index,
                    message: ChatMessage {
                        role: p.role.unwrap_or(Role::Assistant),
                        content: (!p.content.is_empty() || tool_calls.is_empty())
                            .then_some(MessageContent::Text(p.content)),
                        name: None,
                        tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
                        tool_call_id: None,
                        extra: Extra::new(),
                    },
                    finish_reason: p.finish_reason,
                    logprobs: None,
                    stop_reason: p.stop_reason,
                }
            })
            .collect();
        ChatCompletionResponse {
            id: self.id,
            object: "chat.completion".to_owned(),
            created: self.created,
            model: self.model,
            choices,
            usage: self.usage,
            system_fingerprint: self.system_fingerprint,
            extra: Extra::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chunk(v: serde_json::Value) -> ChatCompletionChunk {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn text_and_tool_calls_come_back_whole() {
        let mut a = ChunkAssembler::new();
        let base = |choices: serde_json::Value| json!({"id": "c1", "created": 7, "model": "m", "choices": choices});
        a.push(&chunk(base(
            json!([{"index": 0, "delta": {"role": "assistant"}, "finish_reason": null}]),
        )));
        a.push(&chunk(base(
            json!([{"index": 0, "delta": {"content": "Hel"}, "finish_reason": null}]),
        )));
        a.push(&chunk(base(
            json!([{"index": 0, "delta": {"content": "lo"}, "finish_reason": null}]),
        )));
        a.push(&chunk(base(json!([{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "id": "t1", "type": "function", "function": {"name": "get", "arguments": "{\"a\""}}]}, "finish_reason": null}]))));
        a.push(&chunk(base(json!([{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": ": 1}"}}]}, "finish_reason": "tool_calls"}]))));
        let r = a.finish();
        assert_eq!(r.id, "c1");
        assert_eq!(r.text(), "Hello");
        let call = &r.choices[0].message.tool_calls.as_ref().unwrap()[0];
        assert_eq!(call.id, "t1");
        assert_eq!(call.function.name, "get");
        assert_eq!(call.function.arguments, "{\"a\": 1}");
        assert_eq!(r.choices[0].finish_reason.as_deref(), Some("tool_calls"));
    }
}
