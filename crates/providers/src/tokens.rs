//! Token counting with a real BPE tokenizer (o200k_base), for usage an upstream did not
//! report.
//!
//! The tokenizer's tables hold about 35 MB of heap (a third of the plain gateway's memory,
//! bench/RESULTS.md) and most upstreams report usage, so it is not loaded at start: the first
//! count starts loading it on a thread of its own, and counts until it is ready (a fraction
//! of a second) are the 4-bytes-a-token estimate. No request waits for the load.

use std::sync::{Once, OnceLock};

use switchyard_api::{ChatCompletionRequest, ChatMessage, MessageContent};
use tiktoken_rs::CoreBPE;

static BPE: OnceLock<Option<CoreBPE>> = OnceLock::new();

/// The tokenizer when it is loaded; otherwise starts loading it in the background.
fn bpe() -> Option<&'static CoreBPE> {
    match BPE.get() {
        Some(loaded) => loaded.as_ref(),
        None => {
            preload();
            None
        }
    }
}

/// Starts loading the tokenizer on a thread of its own (once), for a part that will count
/// soon: the simulator, whose usage stands in for a model's.
pub fn preload() {
    static LOADING: Once = Once::new();
    LOADING.call_once(|| {
        // Without a thread the estimate stays: counting still works, less exactly.
        let _ = std::thread::Builder::new()
            .name("tokenizer-load".to_owned())
            .spawn(warm_up);
    });
}

/// Loads the tokenizer on this thread now (it blocks for a fraction of a second), for a caller
/// that needs exact counts from the first one.
pub fn warm_up() {
    let _ = BPE.get_or_init(|| tiktoken_rs::o200k_base().ok());
}

/// Tokens in a text: exact once the tokenizer is loaded, a 4-bytes-a-token estimate before
/// (or if it failed to load).
pub fn count_text(text: &str) -> u32 {
    match bpe() {
        Some(b) => b.encode_ordinary(text).len() as u32,
        None => estimate_text(text),
    }
}

/// Prompt tokens of a conversation, as OpenAI counts them for chat models: the text of each
/// message plus 3 tokens of framing per message and 3 to prime the reply.
pub fn count_messages(messages: &[ChatMessage]) -> u32 {
    3 + messages
        .iter()
        .map(|m| {
            let calls: u32 = m
                .tool_calls
                .iter()
                .flatten()
                .map(|c| count_text(&c.function.name) + count_text(&c.function.arguments))
                .sum();
            3 + count_text(&m.text()) + calls
        })
        .sum::<u32>()
}

/// A cheap estimate (no tokenizer), for when the tokenizer failed to load: about 4 bytes a
/// token.
fn estimate_text(text: &str) -> u32 {
    (text.len() as u32).div_ceil(4)
}

/// Allowances in [`prompt_bound`]: a chat template's framing per message and per request
/// (role markers, a default system preamble), the instructions a provider adds when tools
/// are offered, and the tokens of one non-text part (an image, audio, a file) given by
/// reference, which its few bytes of JSON do not bound (a large image is about 1,500 to
/// 3,800 tokens at today's providers).
const FRAMING_PER_MESSAGE: u32 = 8;
const FRAMING_PER_REQUEST: u32 = 64;
const TOOL_USE_PREAMBLE: u32 = 1_000;
const MEDIA_PART: u32 = 4_000;

/// An upper bound of a request's prompt tokens, for admission's worst case. No BPE token is
/// shorter than a byte (byte-level BPE, and SentencePiece with byte fallback alike), so a
/// text's UTF-8 bytes bound its tokens under any such tokenizer. Every text counts by its
/// bytes (messages, tool calls, and the JSON of tool definitions, `response_format` and
/// other passed-through fields, which providers render into the prompt); framing, a tool-use
/// preamble and media given by reference by the allowances above. About four times the
/// usual count for English prose: admission settles with the real usage afterwards.
pub fn prompt_bound(request: &ChatCompletionRequest) -> u32 {
    let mut total: u64 = u64::from(FRAMING_PER_REQUEST);
    for m in &request.messages {
        total += u64::from(FRAMING_PER_MESSAGE);
        total += m.name.as_deref().map_or(0, str::len) as u64;
        match &m.content {
            None => {}
            Some(MessageContent::Text(t)) => total += t.len() as u64,
            Some(MessageContent::Parts(parts)) => {
                for p in parts {
                    match &p.text {
                        Some(t) if p.kind == "text" => total += t.len() as u64,
                        _ => total += json_len(p).max(u64::from(MEDIA_PART)),
                    }
                }
            }
        }
        for c in m.tool_calls.iter().flatten() {
            total += (c.function.name.len() + c.function.arguments.len()) as u64;
        }
        total += json_len(&m.extra);
    }
    let offers_tools = request.tools.as_ref().is_some_and(|t| !t.is_empty())
        || request.extra.contains_key("functions");
    if offers_tools {
        total += u64::from(TOOL_USE_PREAMBLE);
    }
    total += json_len(&request.tools);
    total += json_len(&request.response_format);
    total += json_len(&request.extra);
    u32::try_from(total).unwrap_or(u32::MAX)
}

/// The length of `value`'s JSON, counted without building it (an image's base64 may be
/// megabytes).
fn json_len<T: serde::Serialize + ?Sized>(value: &T) -> u64 {
    struct Count(u64);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Serialising these types cannot fail; if it did, what was counted still stands.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_api::Role;

    #[test]
    fn the_prompt_bound_is_never_below_the_real_count() {
        warm_up();
        let texts = [
            "hello world",
            "Grüße aus Köln, 東京からこんにちは 👋",
            "fn main() { println!(\"{}\", 1 + 2); }",
            "aaaa aaaa aaaa 1234567890 !!!???",
        ];
        for t in texts {
            let req: ChatCompletionRequest = serde_json::from_value(serde_json::json!({
                "model": "m",
                "messages": [{"role": "system", "content": t}, {"role": "user", "content": t}],
            }))
            .unwrap();
            let counted = count_messages(&req.messages);
            assert!(
                prompt_bound(&req) >= counted,
                "{t}: {} < {counted}",
                prompt_bound(&req)
            );
        }
        // Tools, media by reference and passed-through fields all add to it.
        let base: ChatCompletionRequest = serde_json::from_value(serde_json::json!({
            "model": "m", "messages": [{"role": "user", "content": "hi"}]}))
        .unwrap();
        let rich: ChatCompletionRequest = serde_json::from_value(serde_json::json!({
            "model": "m",
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "hi"},
                {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}]}],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        }))
        .unwrap();
        assert!(prompt_bound(&rich) >= prompt_bound(&base) + MEDIA_PART + TOOL_USE_PREAMBLE);
    }

    #[test]
    fn counts_with_the_real_tokenizer() {
        warm_up();
        assert_eq!(count_text("hello world"), 2);
        let msgs = vec![ChatMessage::new(Role::User, "hello world")];
        assert_eq!(count_messages(&msgs), 3 + 3 + 2);
    }
}
