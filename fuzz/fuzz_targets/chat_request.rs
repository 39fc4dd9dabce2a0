//! Client request bodies: parsing answers with a 400 and a field path, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_api::anthropic::{inbound, MessagesRequest};
use switchyard_api::{ChatCompletionRequest, EmbeddingsRequest};
use switchyard_gateway::data_plane::pipeline::parse_json;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = parse_json::<ChatCompletionRequest>(data) {
        // What parses must serialize back (it is forwarded upstream).
        let _ = serde_json_roundtrip(&req);
    }
    let _ = parse_json::<EmbeddingsRequest>(data);
    // `/v1/messages`: what parses is translated, or refused with the field it is about.
    if let Ok(req) = parse_json::<MessagesRequest>(data) {
        if let Ok(chat) = inbound::to_chat_request(req) {
            let _ = serde_json_roundtrip(&chat);
        }
    }
});

fn serde_json_roundtrip(req: &ChatCompletionRequest) -> usize {
    switchyard_api::sse::data_event(req).map(|b| b.len()).unwrap_or(0)
}
