//! Replays a cached response as a stream: the chunks an upstream would have sent.
//!
//! Content is cut into word-ish pieces (a word with the whitespace after it), so a client's
//! renderer sees a natural stream and concatenating the deltas gives back the exact text.

use switchyard_api::{
    ChatCompletionChunk, ChatCompletionResponse, ChunkChoice, Delta, Extra, FunctionCallDelta,
    Role, ToolCallDelta,
};

/// Splits `text` into pieces whose concatenation is `text`: each piece is a run of
/// non-whitespace followed by the whitespace after it (leading whitespace is its own piece).
pub fn word_pieces(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_space = text.chars().next().is_some_and(char::is_whitespace);
    for (i, c) in text.char_indices() {
        let space = c.is_whitespace();
        if in_space && !space && i > start {
            out.push(&text[start..i]);
            start = i;
        }
        in_space = space;
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// The chunks of `resp`: per choice, a role chunk, content pieces, one chunk per tool call,
/// and a finish chunk; then, if `include_usage`, the usage chunk with no choices.
pub fn replay_chunks(
    resp: &ChatCompletionResponse,
    include_usage: bool,
) -> Vec<ChatCompletionChunk> {
    let chunk = |choices: Vec<ChunkChoice>| ChatCompletionChunk {
        id: resp.id.clone(),
        object: "chat.completion.chunk".to_owned(),
        created: resp.created,
        model: resp.model.clone(),
        choices,
        usage: None,
        system_fingerprint: resp.system_fingerprint.clone(),
        extra: Extra::new(),
    };
    let one = |index: u32, delta: Delta, finish: Option<String>| {
        chunk(vec![ChunkChoice {
            index,
            delta,
            finish_reason: finish,
            logprobs: None,
            stop_reason: None,
        }])
    };
    let mut out = Vec::new();
    for c in &resp.choices {
        out.push(one(
            c.index,
            Delta {
                role: Some(Role::Assistant),
                content: Some(String::new()),
                ..Delta::default()
            },
            None,
        ));
        let text = c.message.text();
        for p in word_pieces(&text) {
            out.push(one(
                c.index,
                Delta {
                    content: Some(p.to_owned()),
                    ..Delta::default()
                },
                None,
            ));
        }
        for (i, call) in c.message.tool_calls.iter().flatten().enumerate() {
            let d = ToolCallDelta {
                index: u32::try_from(i).unwrap_or(u32::MAX),
                id: Some(call.id.clone()),
                kind: Some(call.kind.clone()),
                function: Some(FunctionCallDelta {
                    name: Some(call.function.name.clone()),
                    arguments: Some(call.function.arguments.clone()),
                }),
            };
            out.push(one(
                c.index,
                Delta {
                    tool_calls: Some(vec![d]),
                    ..Delta::default()
                },
                None,
            ));
        }
        let mut last = one(c.index, Delta::default(), c.finish_reason.clone());
        for choice in &mut last.choices {
            choice.stop_reason.clone_from(&c.stop_reason);
        }
        out.push(last);
    }
    if include_usage {
        let mut u = chunk(Vec::new());
        u.usage = resp.usage.clone();
        out.push(u);
    }
    out
}
