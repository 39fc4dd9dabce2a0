//! A chat answer as a Responses object: the first choice's text as a message item, its
//! refusal as a refusal part, each tool call as a function call item; the finish reason as
//! the status (`length` and `content_filter` make a response `incomplete`), usage in the
//! Responses API's names.

use super::{
    status, IncompleteDetails, InputTokensDetails, OutputContent, OutputItem, OutputTokensDetails,
    ResponseObject, ResponseUsage,
};
use crate::chat::{finish_reason, ChatCompletionResponse, Usage};

/// `pending` (from [`ResponseObject::pending`]) completed with `chat`'s answer, served by
/// `chat.model`.
pub fn from_chat(mut pending: ResponseObject, chat: &ChatCompletionResponse) -> ResponseObject {
    pending.model.clone_from(&chat.model);
    let choice = chat.choices.first();
    let message = choice.map(|c| &c.message);
    let text = message.map(crate::ChatMessage::text).unwrap_or_default();
    let refusal = message
        .and_then(|m| m.extra.get("refusal"))
        .and_then(serde_json::Value::as_str)
        .filter(|r| !r.is_empty());
    let calls = message.and_then(|m| m.tool_calls.as_deref()).unwrap_or(&[]);
    let mut output = Vec::with_capacity(1 + calls.len());
    if !text.is_empty() || refusal.is_some() || calls.is_empty() {
        let mut content = Vec::with_capacity(1);
        if let Some(refusal) = refusal {
            content.push(OutputContent::Refusal {
                refusal: refusal.to_owned(),
            });
        }
        if !text.is_empty() || refusal.is_none() {
            content.push(OutputContent::OutputText {
                text,
                annotations: Vec::new(),
            });
        }
        output.push(OutputItem::Message {
            id: item_id(&pending.id, "msg", 0),
            status: status::COMPLETED.to_owned(),
            role: "assistant".to_owned(),
            content,
        });
    }
    for call in calls {
        output.push(OutputItem::FunctionCall {
            id: item_id(&pending.id, "fc", output.len()),
            call_id: call.id.clone(),
            name: call.function.name.clone(),
            arguments: call.function.arguments.clone(),
            status: status::COMPLETED.to_owned(),
        });
    }
    pending.output = output;
    pending.usage = chat.usage.as_ref().map(usage);
    finish(
        &mut pending,
        choice.and_then(|c| c.finish_reason.as_deref()),
    );
    pending
}

/// The status a finish reason makes.
pub(crate) fn finish(response: &mut ResponseObject, reason: Option<&str>) {
    let incomplete = match reason {
        Some(finish_reason::LENGTH) => Some("max_output_tokens"),
        Some(finish_reason::CONTENT_FILTER) => Some("content_filter"),
        _ => None,
    };
    match incomplete {
        Some(reason) => {
            response.status = status::INCOMPLETE.to_owned();
            response.incomplete_details = Some(IncompleteDetails {
                reason: reason.to_owned(),
            });
        }
        None => status::COMPLETED.clone_into(&mut response.status),
    }
}

/// The id of output item `index` of response `response_id`: unique, and the same each time
/// it is asked for, so a streamed item keeps its id in the stored response.
pub(crate) fn item_id(response_id: &str, prefix: &str, index: usize) -> String {
    let base = response_id.strip_prefix("resp_").unwrap_or(response_id);
    format!("{prefix}_{base}_{index}")
}

/// Chat usage in the Responses API's names (cached and reasoning tokens when the upstream
/// reported them).
pub(crate) fn usage(u: &Usage) -> ResponseUsage {
    let detail = |outer: &str, inner: &str| {
        u.extra
            .get(outer)
            .and_then(|d| d.get(inner))
            .and_then(serde_json::Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0)
    };
    ResponseUsage {
        input_tokens: u.prompt_tokens,
        input_tokens_details: InputTokensDetails {
            cached_tokens: detail("prompt_tokens_details", "cached_tokens"),
        },
        output_tokens: u.completion_tokens,
        output_tokens_details: OutputTokensDetails {
            reasoning_tokens: detail("completion_tokens_details", "reasoning_tokens"),
        },
        total_tokens: u.prompt_tokens.saturating_add(u.completion_tokens),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::responses::CreateResponse;
    use serde_json::json;

    fn pending() -> ResponseObject {
        let request: CreateResponse =
            serde_json::from_value(json!({"model": "auto", "input": "x", "metadata": {"a": "b"}}))
                .unwrap();
        ResponseObject::pending("resp_abc".into(), 7, &request)
    }

    fn chat(message: serde_json::Value, finish: &str) -> ChatCompletionResponse {
        serde_json::from_value(json!({
            "id": "c", "created": 1, "model": "small",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8,
                      "prompt_tokens_details": {"cached_tokens": 2}}
        }))
        .unwrap()
    }

    #[test]
    fn text_becomes_a_message_item() {
        let r = from_chat(
            pending(),
            &chat(json!({"role": "assistant", "content": "Paris."}), "stop"),
        );
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["status"], "completed");
        assert_eq!(v["model"], "small");
        assert_eq!(
            v["output"],
            json!([{"type": "message", "id": "msg_abc_0", "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "text": "Paris.", "annotations": []}]}])
        );
        assert_eq!(
            v["usage"],
            json!({"input_tokens": 5, "input_tokens_details": {"cached_tokens": 2},
                   "output_tokens": 3, "output_tokens_details": {"reasoning_tokens": 0},
                   "total_tokens": 8})
        );
        assert_eq!(v["metadata"], json!({"a": "b"}));
        assert_eq!(r.output_text(), "Paris.");
    }

    #[test]
    fn tool_calls_become_function_call_items_and_length_is_incomplete() {
        let r = from_chat(
            pending(),
            &chat(
                json!({"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]}),
                "length",
            ),
        );
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v["output"],
            json!([{"type": "function_call", "id": "fc_abc_0", "call_id": "call_1",
                    "name": "get_weather", "arguments": "{\"city\":\"Paris\"}", "status": "completed"}])
        );
        assert_eq!(v["status"], "incomplete");
        assert_eq!(
            v["incomplete_details"],
            json!({"reason": "max_output_tokens"})
        );
        // The output carried on to the next turn.
        assert_eq!(
            r.output_items(),
            vec![crate::responses::Item::FunctionCall {
                call_id: "call_1".into(),
                name: "get_weather".into(),
                arguments: "{\"city\":\"Paris\"}".into()
            }]
        );
    }
}
