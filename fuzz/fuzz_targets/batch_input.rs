//! The Batch API's input file parser on arbitrary bytes: no panic, and an accepted file has
//! unique custom ids and object bodies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_api::batch::parse_input;

fuzz_target!(|data: &[u8]| {
    for endpoint in ["/v1/chat/completions", "/v1/embeddings"] {
        if let Ok(lines) = parse_input(data, endpoint, 1000) {
            let mut ids = std::collections::HashSet::new();
            for line in &lines {
                assert!(ids.insert(line.custom_id.as_str()), "duplicate id accepted");
                let body: serde_json::Value = serde_json::from_str(&line.body).expect("body is JSON");
                assert!(body.is_object(), "body is an object");
            }
        }
    }
});
