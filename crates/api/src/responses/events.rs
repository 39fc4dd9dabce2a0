//! A chat stream as the Responses API's stream of events, in OpenAI's order:
//!
//! 1. `response.created`, `response.in_progress` ([`ResponseStream::start`]);
//! 2. for text, once: `response.output_item.added` (a message), `response.content_part.added`,
//!    then a `response.output_text.delta` per chunk of text;
//! 3. for each tool call: the open item closed first, then `response.output_item.added` (a
//!    function call), a `response.function_call_arguments.delta` per chunk of arguments;
//! 4. at the end ([`ResponseStream::finish`]) the open item closed (`output_text.done`,
//!    `content_part.done`, `output_item.done`; or `function_call_arguments.done`,
//!    `output_item.done`), then `response.completed` (or `response.incomplete`) with the
//!    whole response; a stream that broke ends with `response.failed` instead
//!    ([`ResponseStream::fail`]).
//!
//! Nothing is said of an item after its `output_item.done`: should an upstream interleave
//! (a tool call's arguments after other output), the late arguments reach the final
//! response only. Every event carries its `sequence_number`. Only the first choice is followed (the
//! Responses API has one output). A stream with no output at all still gets its (empty)
//! message, as OpenAI's always has one.

use serde_json::{json, Value};

use super::output::{finish, item_id, usage};
use super::{status, OutputContent, OutputItem, ResponseError, ResponseObject};
use crate::chat::{ChatCompletionChunk, Usage};

/// One event: its type (the SSE `event:` name) and its body (which repeats the type).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: &'static str,
    pub data: Value,
}

/// The item being written: events go to it until another starts or the stream ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text(usize),
    Call(usize),
}

/// Turns one chat stream into Responses events; holds the response as it grows.
#[derive(Debug)]
pub struct ResponseStream {
    response: ResponseObject,
    sequence: u64,
    open: Option<Open>,
    /// The output index of each tool call, by its chat stream index.
    calls: Vec<(u32, usize)>,
    finish_reason: Option<String>,
    usage: Option<Usage>,
}

impl ResponseStream {
    /// A stream for `pending` (from [`ResponseObject::pending`]).
    pub fn new(pending: ResponseObject) -> Self {
        ResponseStream {
            response: pending,
            sequence: 0,
            open: None,
            calls: Vec::new(),
            finish_reason: None,
            usage: None,
        }
    }

    /// The response so far (whole after [`Self::finish`] or [`Self::fail`]).
    pub fn response(&self) -> &ResponseObject {
        &self.response
    }

    fn event(&mut self, kind: &'static str, mut data: Value) -> Event {
        if let Value::Object(fields) = &mut data {
            fields.insert("type".into(), kind.into());
            fields.insert("sequence_number".into(), self.sequence.into());
        }
        self.sequence += 1;
        Event { kind, data }
    }

    fn snapshot(&mut self, kind: &'static str) -> Event {
        let response = serde_json::to_value(&self.response).unwrap_or(Value::Null);
        self.event(kind, json!({ "response": response }))
    }

    /// The first two events.
    pub fn start(&mut self) -> Vec<Event> {
        vec![
            self.snapshot("response.created"),
            self.snapshot("response.in_progress"),
        ]
    }

    /// The events a chunk makes (none for a chunk without output).
    pub fn push(&mut self, chunk: &ChatCompletionChunk) -> Vec<Event> {
        let mut out = Vec::new();
        if chunk.usage.is_some() {
            self.usage.clone_from(&chunk.usage);
        }
        if !chunk.model.is_empty() {
            self.response.model.clone_from(&chunk.model);
        }
        for choice in chunk.choices.iter().filter(|c| c.index == 0) {
            if let Some(text) = choice.delta.content.as_deref().filter(|t| !t.is_empty()) {
                let index = self.text_item(&mut out);
                if let Some(OutputItem::Message { content, .. }) =
                    self.response.output.get_mut(index)
                {
                    if let Some(OutputContent::OutputText { text: all, .. }) = content.first_mut() {
                        all.push_str(text);
                    }
                }
                let e = self.event(
                    "response.output_text.delta",
                    json!({"item_id": self.id_of(index), "output_index": index,
                           "content_index": 0, "delta": text, "logprobs": []}),
                );
                out.push(e);
            }
            for call in choice.delta.tool_calls.iter().flatten() {
                let index = self.call_item(call, &mut out);
                let delta = call.function.as_ref().and_then(|f| f.arguments.as_deref());
                if let Some(delta) = delta.filter(|d| !d.is_empty()) {
                    if let Some(OutputItem::FunctionCall { arguments, .. }) =
                        self.response.output.get_mut(index)
                    {
                        arguments.push_str(delta);
                    }
                    // A piece of a call whose item is closed already (an upstream that
                    // interleaves) goes into the final response only.
                    if self.open == Some(Open::Call(index)) {
                        let e = self.event(
                            "response.function_call_arguments.delta",
                            json!({"item_id": self.id_of(index), "output_index": index, "delta": delta}),
                        );
                        out.push(e);
                    }
                }
            }
            if choice.finish_reason.is_some() {
                self.finish_reason.clone_from(&choice.finish_reason);
            }
        }
        out
    }

    /// The last events of a stream that ended well: the open item closed, then
    /// `response.completed` (`response.incomplete` when cut by length or a content filter).
    pub fn finish(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        if self.response.output.is_empty() {
            self.text_item(&mut out);
        }
        self.close(&mut out);
        self.response.usage = self.usage.as_ref().map(usage);
        let reason = self.finish_reason.clone();
        finish(&mut self.response, reason.as_deref());
        let kind = if self.response.status == status::INCOMPLETE {
            "response.incomplete"
        } else {
            "response.completed"
        };
        out.push(self.snapshot(kind));
        out
    }

    /// The last event of a stream that broke: `response.failed`, with the error.
    pub fn fail(&mut self, code: &str, message: &str) -> Vec<Event> {
        self.response.usage = self.usage.as_ref().map(usage);
        status::FAILED.clone_into(&mut self.response.status);
        self.response.error = Some(ResponseError {
            code: code.to_owned(),
            message: message.to_owned(),
        });
        vec![self.snapshot("response.failed")]
    }

    fn id_of(&self, index: usize) -> String {
        match self.response.output.get(index) {
            Some(OutputItem::Message { id, .. } | OutputItem::FunctionCall { id, .. }) => {
                id.clone()
            }
            None => String::new(),
        }
    }

    /// The message item text goes to, opened (and announced) when it is not.
    fn text_item(&mut self, out: &mut Vec<Event>) -> usize {
        if let Some(Open::Text(index)) = self.open {
            return index;
        }
        self.close(out);
        let index = self.response.output.len();
        let item = OutputItem::Message {
            id: item_id(&self.response.id, "msg", index),
            status: status::IN_PROGRESS.to_owned(),
            role: "assistant".to_owned(),
            content: Vec::new(),
        };
        out.push(self.item_event("response.output_item.added", index, &item));
        self.response.output.push(item);
        let part = OutputContent::OutputText {
            text: String::new(),
            annotations: Vec::new(),
        };
        let e = self.event(
            "response.content_part.added",
            json!({"item_id": self.id_of(index), "output_index": index, "content_index": 0,
                   "part": part}),
        );
        out.push(e);
        if let Some(OutputItem::Message { content, .. }) = self.response.output.get_mut(index) {
            content.push(part);
        }
        self.open = Some(Open::Text(index));
        index
    }

    /// The function call item of chat tool call `call`, opened when it first appears.
    fn call_item(&mut self, call: &crate::chat::ToolCallDelta, out: &mut Vec<Event>) -> usize {
        if let Some(&(_, index)) = self.calls.iter().find(|(i, _)| *i == call.index) {
            return index;
        }
        self.close(out);
        let index = self.response.output.len();
        let name = call.function.as_ref().and_then(|f| f.name.clone());
        let item = OutputItem::FunctionCall {
            id: item_id(&self.response.id, "fc", index),
            call_id: call
                .id
                .clone()
                .unwrap_or_else(|| item_id(&self.response.id, "call", index)),
            name: name.unwrap_or_default(),
            arguments: String::new(),
            status: status::IN_PROGRESS.to_owned(),
        };
        out.push(self.item_event("response.output_item.added", index, &item));
        self.response.output.push(item);
        self.calls.push((call.index, index));
        self.open = Some(Open::Call(index));
        index
    }

    fn item_event(&mut self, kind: &'static str, index: usize, item: &OutputItem) -> Event {
        let item = serde_json::to_value(item).unwrap_or(Value::Null);
        self.event(kind, json!({"output_index": index, "item": item}))
    }

    /// Closes the open item with its `done` events.
    fn close(&mut self, out: &mut Vec<Event>) {
        let Some(open) = self.open.take() else {
            return;
        };
        let index = match open {
            Open::Text(i) | Open::Call(i) => i,
        };
        let id = self.id_of(index);
        match self.response.output.get_mut(index) {
            Some(OutputItem::Message {
                status: s, content, ..
            }) => {
                status::COMPLETED.clone_into(s);
                let part = content.first().cloned();
                let text = match &part {
                    Some(OutputContent::OutputText { text, .. }) => text.clone(),
                    _ => String::new(),
                };
                let e = self.event(
                    "response.output_text.done",
                    json!({"item_id": id, "output_index": index, "content_index": 0,
                           "text": text, "logprobs": []}),
                );
                out.push(e);
                let e = self.event(
                    "response.content_part.done",
                    json!({"item_id": id, "output_index": index, "content_index": 0, "part": part}),
                );
                out.push(e);
            }
            Some(OutputItem::FunctionCall {
                status: s,
                arguments,
                ..
            }) => {
                status::COMPLETED.clone_into(s);
                let arguments = arguments.clone();
                let e = self.event(
                    "response.function_call_arguments.done",
                    json!({"item_id": id, "output_index": index, "arguments": arguments}),
                );
                out.push(e);
            }
            None => return,
        }
        if let Some(item) = self.response.output.get(index).cloned() {
            out.push(self.item_event("response.output_item.done", index, &item));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::responses::CreateResponse;

    fn stream() -> ResponseStream {
        let request: CreateResponse =
            serde_json::from_value(json!({"model": "m", "input": "x", "stream": true})).unwrap();
        ResponseStream::new(ResponseObject::pending("resp_1".into(), 0, &request))
    }

    fn chunk(delta: Value, finish: Option<&str>) -> ChatCompletionChunk {
        serde_json::from_value(json!({
            "id": "c", "created": 0, "model": "small",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
        }))
        .unwrap()
    }

    fn kinds(events: &[Event]) -> Vec<&'static str> {
        events.iter().map(|e| e.kind).collect()
    }

    #[test]
    fn text_then_tool_calls_come_in_openai_order() {
        let mut s = stream();
        let mut events = s.start();
        events.extend(s.push(&chunk(json!({"role": "assistant", "content": ""}), None)));
        events.extend(s.push(&chunk(json!({"content": "Let me "}), None)));
        events.extend(s.push(&chunk(json!({"content": "check."}), None)));
        events.extend(s.push(&chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                   "function": {"name": "get_weather", "arguments": ""}}]}),
            None,
        )));
        events.extend(s.push(&chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}),
            None,
        )));
        events.extend(s.push(&chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
            Some("tool_calls"),
        )));
        let mut usage = chunk(json!({}), None);
        usage.choices.clear();
        usage.usage = Some(Usage::new(4, 6));
        events.extend(s.push(&usage));
        events.extend(s.finish());
        assert_eq!(
            kinds(&events),
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e.data["sequence_number"], i as u64);
            assert_eq!(e.data["type"], e.kind);
        }
        let done = &events.last().unwrap().data["response"];
        assert_eq!(done["status"], "completed");
        assert_eq!(done["model"], "small");
        assert_eq!(done["usage"]["total_tokens"], 10);
        assert_eq!(done["output"][0]["content"][0]["text"], "Let me check.");
        assert_eq!(done["output"][1]["call_id"], "call_a");
        assert_eq!(done["output"][1]["arguments"], "{\"city\":\"Paris\"}");
        assert_eq!(events[12].data["arguments"], "{\"city\":\"Paris\"}");
        assert_eq!(events[6].data["text"], "Let me check.");
    }

    #[test]
    fn an_empty_answer_still_has_a_message_and_length_is_incomplete() {
        let mut s = stream();
        s.start();
        s.push(&chunk(json!({}), Some("length")));
        let events = s.finish();
        assert_eq!(
            kinds(&events),
            [
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.incomplete",
            ]
        );
        assert_eq!(s.response().status, "incomplete");
    }

    #[test]
    fn a_broken_stream_fails_the_response() {
        let mut s = stream();
        s.start();
        s.push(&chunk(json!({"content": "Par"}), None));
        let events = s.fail("upstream_stream_error", "the stream broke");
        assert_eq!(kinds(&events), ["response.failed"]);
        assert_eq!(
            events[0].data["response"]["error"]["code"],
            "upstream_stream_error"
        );
        assert_eq!(s.response().status, "failed");
    }
}
