//! Upstream SSE bodies are untrusted bytes: whatever arrives, parsing yields chunks or errors,
//! never a panic, and how the bytes are split into network reads never changes the result.

#![expect(clippy::unwrap_used, reason = "test code")]

use futures::StreamExt;
use proptest::prelude::*;
use switchyard_providers::fuzzing::{
    anthropic_stream, bedrock_stream, gemini_stream, openai_stream,
};

const OPENAI_BODY: &str = concat!(
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\u{e9}lo\"},\"finish_reason\":null}]}\n\n",
    ": keep-alive comment\n\n",
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}\n\n",
    "data: [DONE]\n\n",
);

const ANTHROPIC_BODY: &str = concat!(
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":7,\"output_tokens\":1}}}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    "event: ping\ndata: {\"type\":\"ping\"}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Bonjour \u{e0} tous\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":4}}\n\n",
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
);

const GEMINI_BODY: &str = concat!(
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Gr\u{fc}\u{df} \"}],\"role\":\"model\"},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":5},\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"r1\"}\r\n\r\n",
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"f\",\"args\":{\"a\":1}}}],\"role\":\"model\"},\"index\":0}],\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"r1\"}\r\n\r\n",
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"\"}],\"role\":\"model\"},\"finishReason\":\"STOP\",\"index\":0}],\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"r1\",\"usageMetadata\":{\"promptTokenCount\":5,\"candidatesTokenCount\":3,\"totalTokenCount\":8}}\r\n\r\n",
);

fn split(body: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
    cuts.sort_unstable();
    let mut pieces = Vec::new();
    let mut at = 0;
    for c in cuts {
        pieces.push(body[at..c].to_vec());
        at = c;
    }
    pieces.push(body[at..].to_vec());
    pieces
}

fn drain(stream: switchyard_providers::ChunkStream) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(
        stream
            .map(|item| match item {
                Ok(chunk) => serde_json::to_string(&chunk).unwrap(),
                Err(e) => format!("error: {e}"),
            })
            .collect(),
    )
}

#[test]
fn the_reference_bodies_parse() {
    let chunks = drain(openai_stream(vec![OPENAI_BODY.as_bytes().to_vec()]));
    assert_eq!(chunks.len(), 4, "{chunks:#?}");
    assert!(
        chunks.iter().all(|c| !c.starts_with("error")),
        "{chunks:#?}"
    );
    let chunks = drain(anthropic_stream(vec![ANTHROPIC_BODY.as_bytes().to_vec()]));
    assert!(chunks.iter().any(|c| c.contains("Bonjour")), "{chunks:#?}");
    assert!(
        chunks.iter().all(|c| !c.starts_with("error")),
        "{chunks:#?}"
    );
    let chunks = drain(gemini_stream(vec![GEMINI_BODY.as_bytes().to_vec()]));
    assert_eq!(chunks.len(), 5, "{chunks:#?}");
    assert!(
        chunks.iter().all(|c| !c.starts_with("error")),
        "{chunks:#?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn splitting_reads_anywhere_changes_nothing(cuts in proptest::collection::vec(0usize..4096, 0..12)) {
        for (body, parse) in [
            (OPENAI_BODY, openai_stream as fn(Vec<Vec<u8>>) -> switchyard_providers::ChunkStream),
            (ANTHROPIC_BODY, anthropic_stream),
            (GEMINI_BODY, gemini_stream),
        ] {
            let whole = drain(parse(vec![body.as_bytes().to_vec()]));
            let pieces = drain(parse(split(body.as_bytes(), &cuts)));
            prop_assert_eq!(whole, pieces);
        }
    }

    /// A body cut short anywhere ends in an error item unless the cut comes after the event
    /// that finishes the answer (OpenAI: the `finish_reason` chunk; Anthropic: the
    /// `message_delta` with its `stop_reason`; Gemini: the event with its `finishReason`): a
    /// truncated answer never looks complete.
    #[test]
    fn a_body_cut_before_the_finish_ends_in_an_error(cut in 0usize..4096) {
        for (body, finish, parse) in [
            (OPENAI_BODY, "\"finish_reason\":\"stop\"}]}\n\n", openai_stream as fn(Vec<Vec<u8>>) -> switchyard_providers::ChunkStream),
            (ANTHROPIC_BODY, "\"usage\":{\"output_tokens\":4}}\n\n", anthropic_stream),
            // Gemini has no terminator: the event with the finish reason is the end. A CR
            // alone ends a line (WHATWG), so the blank line's CR completes that event.
            (GEMINI_BODY, "\"totalTokenCount\":8}}\r\n\r", gemini_stream),
        ] {
            let finished_at = body.find(finish).unwrap() + finish.len();
            let at = cut % (body.len() + 1);
            let items = drain(parse(vec![body.as_bytes()[..at].to_vec()]));
            let failed = items.last().is_some_and(|i| i.starts_with("error"));
            prop_assert_eq!(failed, at < finished_at, "cut at {} of {}: {:?}", at, body.len(), items);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(pieces in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8)) {
        drain(openai_stream(pieces.clone()));
        drain(anthropic_stream(pieces.clone()));
        drain(gemini_stream(pieces.clone()));
        // Bedrock's frames are binary (length prelude, CRCs): random bytes are corrupt frames.
        drain(bedrock_stream(pieces));
    }

    #[test]
    fn mangled_real_bodies_never_panic(cut in 0usize..2000, junk in "[a-z{}\":,\\[\\] \n]{0,20}") {
        for body in [OPENAI_BODY, ANTHROPIC_BODY, GEMINI_BODY] {
            let at = cut % body.len();
            let mut mangled = body.as_bytes()[..at].to_vec();
            mangled.extend_from_slice(junk.as_bytes());
            mangled.extend_from_slice(&body.as_bytes()[at..]);
            drain(openai_stream(vec![mangled.clone()]));
            drain(anthropic_stream(vec![mangled.clone()]));
            drain(gemini_stream(vec![mangled]));
        }
    }
}
