//! Property tests of the Batch API's input parser (`switchyard_api::batch::parse_input`):
//! it never panics on any bytes, what it accepts is what was written, and what it refuses is
//! reported by line.

use proptest::prelude::*;
use switchyard_api::batch::{parse_input, MAX_REPORTED_ERRORS};

const CHAT: &str = "/v1/chat/completions";

fn valid_line(id: &str, n: u32) -> String {
    serde_json::json!({
        "custom_id": id,
        "method": "POST",
        "url": CHAT,
        "body": {"model": "m", "messages": [{"role": "user", "content": format!("q{n}")}]},
    })
    .to_string()
}

proptest! {
    #[test]
    fn any_bytes_are_read_without_panic_and_within_bounds(bytes in proptest::collection::vec(any::<u8>(), 0..2048), max in 1usize..50) {
        match parse_input(&bytes, CHAT, max) {
            Ok(lines) => {
                prop_assert!(!lines.is_empty() && lines.len() <= max);
                let ids: std::collections::HashSet<_> = lines.iter().map(|l| &l.custom_id).collect();
                prop_assert_eq!(ids.len(), lines.len());
            }
            Err(errors) => {
                prop_assert!(!errors.is_empty() && errors.len() <= MAX_REPORTED_ERRORS);
            }
        }
    }

    #[test]
    fn valid_files_read_back_exactly(ids in proptest::collection::btree_set("[a-zA-Z0-9_\\-\\\\\"é ]{1,20}", 1..30), blank_every in 2usize..6) {
        let ids: Vec<String> = ids.into_iter().collect();
        let mut text = String::new();
        let mut expected = Vec::new();
        let mut number = 0u64;
        for (i, id) in ids.iter().enumerate() {
            if i % blank_every == 0 {
                text.push_str("  \n");
                number += 1;
            }
            text.push_str(&valid_line(id, i as u32));
            text.push('\n');
            number += 1;
            expected.push((number, id.clone()));
        }
        let lines = parse_input(text.as_bytes(), CHAT, ids.len()).unwrap();
        let got: Vec<(u64, String)> = lines.iter().map(|l| (l.line, l.custom_id.clone())).collect();
        prop_assert_eq!(got, expected);
        for (i, l) in lines.iter().enumerate() {
            let body: serde_json::Value = serde_json::from_str(&l.body).unwrap();
            let want = format!("q{i}");
            prop_assert_eq!(body["messages"][0]["content"].as_str(), Some(want.as_str()));
        }
    }

    #[test]
    fn a_repeated_id_is_reported_at_its_second_line(n in 1usize..20, repeat_at in 0usize..20) {
        let repeat_at = repeat_at % n;
        let mut lines: Vec<String> = (0..n).map(|i| valid_line(&format!("id{i}"), i as u32)).collect();
        lines.push(valid_line(&format!("id{repeat_at}"), 99));
        let errors = parse_input(lines.join("\n").as_bytes(), CHAT, 100).unwrap_err();
        prop_assert_eq!(errors.len(), 1);
        prop_assert_eq!(errors[0].code.as_str(), "duplicate_custom_id");
        prop_assert_eq!(errors[0].line, Some(n as u64 + 1));
    }
}
