//! Token counting with a real BPE tokenizer (o200k_base), for usage an upstream did not
//! report. Loading the tokenizer takes a moment, so it happens once, on first use.

use std::sync::OnceLock;

use switchyard_api::ChatMessage;
use tiktoken_rs::CoreBPE;

fn bpe() -> Option<&'static CoreBPE> {
    static BPE: OnceLock<Option<CoreBPE>> = OnceLock::new();
    BPE.get_or_init(|| tiktoken_rs::o200k_base().ok()).as_ref()
}

/// Loads the tokenizer now rather than on the first request that needs it.
pub fn warm_up() {
    let _ = bpe();
}

/// Tokens in a text; falls back to a 4-bytes-a-token estimate if the tokenizer failed to load.
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

/// A cheap estimate (no tokenizer) for admission checks on the hot path: about 4 bytes a token.
pub fn estimate_text(text: &str) -> u32 {
    (text.len() as u32).div_ceil(4)
}

pub fn estimate_messages(messages: &[ChatMessage]) -> u32 {
    3 + messages
        .iter()
        .map(|m| 3 + estimate_text(&m.text()))
        .sum::<u32>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_api::Role;

    #[test]
    fn counts_with_the_real_tokenizer() {
        assert_eq!(count_text("hello world"), 2);
        let msgs = vec![ChatMessage::new(Role::User, "hello world")];
        assert_eq!(count_messages(&msgs), 3 + 3 + 2);
    }
}
