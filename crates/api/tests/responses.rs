//! Property tests of the Responses API's translation (`switchyard_api::responses`): any
//! `input` is read without a panic, and what is accepted is a chat conversation whose tool
//! results answer calls made before them; conversation items survive being stored; a chat
//! stream of any shape becomes events numbered in order, every item opened is closed once,
//! nothing is said of an item after it is done, and the final response holds exactly the
//! text and arguments streamed.

#![expect(clippy::unwrap_used, reason = "test code")]

use proptest::prelude::*;
use serde_json::{json, Value};
use switchyard_api::responses::{to_chat, CreateResponse, Item, ResponseObject, ResponseStream};
use switchyard_api::{ChatCompletionChunk, Role};

/// One of `words` (which steer a value into the parser's branches), or any text `other`
/// matches.
fn one_of(words: &'static [&'static str], other: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(words).prop_map(str::to_owned),
        other
    ]
}

const WORDS: &[&str] = &[
    "message",
    "function_call",
    "function_call_output",
    "reasoning",
    "input_text",
    "output_text",
    "input_image",
    "user",
    "assistant",
    "c1",
];

const KEYS: &[&str] = &[
    "type",
    "role",
    "content",
    "text",
    "call_id",
    "name",
    "arguments",
    "output",
    "image_url",
];

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i32>().prop_map(Value::from),
        one_of(WORDS, "[a-z_]{0,8}").prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            proptest::collection::btree_map(one_of(KEYS, "[a-z]{1,4}"), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn request(input: Value) -> CreateResponse {
    serde_json::from_value(json!({"model": "m", "input": input})).unwrap()
}

fn chunk(delta: Value) -> ChatCompletionChunk {
    serde_json::from_value(json!({
        "id": "c", "created": 0, "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": null}]
    }))
    .unwrap()
}

/// A piece of a chat stream: text, or arguments of tool call `n` (its first piece names it).
#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    Call(u32, String),
}

fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        "[a-z ]{0,5}".prop_map(Piece::Text),
        (0u32..3, "[a-z{}:\"]{0,5}").prop_map(|(n, a)| Piece::Call(n, a)),
    ]
}

proptest! {
    #[test]
    fn any_input_is_read_without_panic(input in value()) {
        let Ok(turn) = to_chat(&request(input), Vec::new()) else {
            return Ok(());
        };
        prop_assert!(!turn.context.is_empty());
        // Every tool result answers a call an earlier assistant message made.
        let mut called = Vec::new();
        for m in &turn.chat.messages {
            for c in m.tool_calls.iter().flatten() {
                called.push(c.id.clone());
            }
            if m.role == Role::Tool {
                let id = m.tool_call_id.clone().unwrap_or_default();
                prop_assert!(called.contains(&id), "{:?}", turn.chat.messages);
            }
        }
        // What is stored reads back the same.
        let stored = serde_json::to_string(&turn.context).unwrap();
        let back: Vec<Item> = serde_json::from_str(&stored).unwrap();
        prop_assert_eq!(back, turn.context);
    }

    #[test]
    fn any_stream_becomes_numbered_balanced_events(pieces in proptest::collection::vec(piece(), 0..20)) {
        let pending = ResponseObject::pending("resp_x".into(), 0, &request(json!("hi")));
        let mut stream = ResponseStream::new(pending);
        let mut events = stream.start();
        let mut text = String::new();
        let mut arguments = std::collections::BTreeMap::<u32, String>::new();
        // Tool calls stream one after another (OpenAI's order, and the adapters'): a piece of
        // an earlier call goes to the latest one.
        let mut latest = 0;
        for p in &pieces {
            let delta = match p {
                Piece::Text(t) => {
                    text.push_str(t);
                    json!({"content": t})
                }
                Piece::Call(n, a) => {
                    latest = latest.max(*n);
                    let n = &latest;
                    let named = arguments.contains_key(n);
                    arguments.entry(*n).or_default().push_str(a);
                    let function = if named {
                        json!({"arguments": a})
                    } else {
                        json!({"name": format!("f{n}"), "arguments": a})
                    };
                    json!({"tool_calls": [{"index": n, "id": format!("call_{n}"), "function": function}]})
                }
            };
            events.extend(stream.push(&chunk(delta)));
        }
        events.extend(stream.finish());
        for (i, e) in events.iter().enumerate() {
            prop_assert_eq!(&e.data["sequence_number"], &json!(i));
        }
        let added = events.iter().filter(|e| e.kind == "response.output_item.added").count();
        let done = events.iter().filter(|e| e.kind == "response.output_item.done").count();
        prop_assert_eq!(added, done);
        // Nothing is said of an item after it is done.
        let mut closed = std::collections::HashSet::new();
        for e in &events {
            let item = e.data.get("item_id").or_else(|| e.data.get("item").and_then(|i| i.get("id")));
            if let Some(id) = item.and_then(Value::as_str) {
                prop_assert!(!closed.contains(id), "{} after {id} was done", e.kind);
                if e.kind == "response.output_item.done" {
                    closed.insert(id.to_owned());
                }
            }
        }
        prop_assert_eq!(events.last().map(|e| e.kind), Some("response.completed"));
        let response = stream.response();
        prop_assert_eq!(response.output.len(), added);
        prop_assert_eq!(response.output_text(), text);
        let items = serde_json::to_value(&response.output).unwrap();
        for (n, args) in &arguments {
            let name = format!("f{n}");
            let call = items.as_array().unwrap().iter().find(|i| i["name"] == name.as_str());
            prop_assert_eq!(call.map(|c| c["arguments"].clone()), Some(json!(args)));
        }
    }
}
