//! Property tests of the Messages translation (`switchyard_api::anthropic`): any conversation
//! of text, images, tool calls and tool results, read as a chat request (`inbound`, the
//! gateway's `/v1/messages`) and written back as a Messages request (`outbound`, the
//! `anthropic` provider), is the conversation sent; and bodies of any shape are read without
//! a panic.

use proptest::prelude::*;
use serde_json::{json, Value};
use switchyard_api::anthropic::{inbound, outbound, MessagesRequest};

fn text() -> impl Strategy<Value = String> {
    // Non-empty: Anthropic refuses empty text blocks, and the provider drops them.
    "[a-zA-Z0-9 .,!?é\"\\\\\n]{1,30}"
}

fn user_block() -> impl Strategy<Value = Value> {
    prop_oneof![
        text().prop_map(|t| json!({"type": "text", "text": t})),
        "[a-zA-Z0-9+/]{1,12}".prop_map(|d| json!({"type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": d}})),
        "[a-z]{1,8}".prop_map(|p| json!({"type": "image",
            "source": {"type": "url", "url": format!("https://x.test/{p}.png")}})),
    ]
}

fn tool_use(n: usize) -> impl Strategy<Value = Value> {
    (text(), any::<i32>()).prop_map(move |(s, k)| {
        json!({"type": "tool_use", "id": format!("t{n}"), "name": "f", "input": {"s": s, "k": k}})
    })
}

/// User and assistant turns alternating, starting with the user; an assistant turn that calls
/// tools is answered by tool results first in the next user turn, as Anthropic wants them.
fn conversation() -> impl Strategy<Value = Vec<Value>> {
    let turn = (
        proptest::collection::vec(user_block(), 1..4),
        proptest::option::of(text()),
        proptest::collection::vec(0usize..1, 0..3),
    );
    proptest::collection::vec(turn, 1..4)
        .prop_flat_map(|turns| {
            let mut strategies = Vec::new();
            for (i, (user, said, calls)) in turns.into_iter().enumerate() {
                let calls: Vec<_> = (0..calls.len()).map(|k| tool_use(i * 10 + k)).collect();
                strategies.push((Just(user), Just(said), calls));
            }
            strategies
        })
        .prop_map(|turns| {
            let mut messages = Vec::new();
            let mut answers: Vec<Value> = Vec::new();
            for (user, said, calls) in turns {
                let mut content: Vec<Value> = std::mem::take(&mut answers);
                content.extend(user);
                messages.push(json!({"role": "user", "content": content}));
                let mut blocks: Vec<Value> = said
                    .map(|t| json!({"type": "text", "text": t}))
                    .into_iter()
                    .collect();
                for call in calls {
                    answers.push(json!({"type": "tool_result", "tool_use_id": call["id"],
                    "content": format!("result of {}", call["id"])}));
                    blocks.push(call);
                }
                if blocks.is_empty() {
                    blocks.push(json!({"type": "text", "text": "ok"}));
                }
                messages.push(json!({"role": "assistant", "content": blocks}));
            }
            if !answers.is_empty() {
                messages.push(json!({"role": "user", "content": answers}));
            }
            messages
        })
}

proptest! {
    #[test]
    fn conversations_survive_the_round_trip(
        messages in conversation(),
        system in proptest::option::of(text()),
        max_tokens in 1u32..100_000,
    ) {
        let mut request = json!({"model": "m", "max_tokens": max_tokens, "messages": messages,
            "tools": [{"name": "f", "input_schema": {"type": "object"}}]});
        if let Some(system) = system {
            request["system"] = json!(system);
        }
        let parsed: MessagesRequest = serde_json::from_value(request.clone()).unwrap();
        let chat = inbound::to_chat_request(parsed).unwrap();
        let back = outbound::to_messages(chat, 1).unwrap();
        prop_assert_eq!(serde_json::to_value(back).unwrap(), request);
    }

    #[test]
    fn any_json_is_read_or_refused_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(request) = serde_json::from_slice::<MessagesRequest>(&bytes) {
            let _ = inbound::to_chat_request(request);
        }
    }
}
