//! Every answer names its request: `x-request-id` (which the OpenAI SDKs read into
//! `request_id`) and `x-switchyard-request-id`, the same id, which is also the record's.

#![expect(clippy::unwrap_used, clippy::panic, reason = "test code")]

mod common;

use common::{admin_fast_config, start, user, ADMIN, KEY};
use reqwest::Method;
use serde_json::json;

/// The id an answer carries, checked to be the same under both names.
fn id_of(r: &reqwest::Response) -> String {
    let id = r
        .headers()
        .get("x-request-id")
        .unwrap_or_else(|| panic!("no x-request-id on a {} answer", r.status()))
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(r.headers()["x-switchyard-request-id"], id.as_str());
    assert!(!id.is_empty());
    id
}

#[tokio::test]
async fn every_kind_of_answer_carries_the_request_id() {
    let mut gw = start(&admin_fast_config()).await;
    let chat = json!({"model": "fast", "messages": user("hi")});
    let cases: Vec<(&str, reqwest::RequestBuilder, u16)> = vec![
        ("answer", gw.chat(chat.clone()), 200),
        (
            "stream",
            gw.chat(json!({"model": "fast", "messages": user("hi"), "stream": true})),
            200,
        ),
        (
            "bad request",
            gw.chat(json!({"model": "fast", "messages": []})),
            400,
        ),
        (
            "no key",
            gw.http.post(gw.url("/v1/chat/completions")).json(&chat),
            401,
        ),
        ("unknown url", gw.http.get(gw.url("/v2/nothing")), 404),
        (
            "wrong method",
            gw.http.delete(gw.url("/v1/chat/completions")),
            405,
        ),
        (
            "models",
            gw.http.get(gw.url("/v1/models")).bearer_auth(KEY),
            200,
        ),
        (
            "admin",
            gw.http
                .request(Method::GET, gw.url("/admin/v1/audit"))
                .bearer_auth(ADMIN),
            200,
        ),
        (
            "admin refused",
            gw.http.get(gw.url("/admin/v1/audit")).bearer_auth(KEY),
            401,
        ),
        ("health", gw.http.get(gw.url("/healthz")), 200),
    ];
    let mut chat_ids = Vec::new();
    for (what, request, status) in cases {
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), status, "{what}");
        let id = id_of(&r);
        if ["answer", "stream", "bad request", "no key"].contains(&what) {
            chat_ids.push(id);
        }
        let _ = r.bytes().await.unwrap();
    }
    gw.stop().await;
    let recorded: Vec<String> = gw.records().into_iter().map(|r| r.request_id).collect();
    assert_eq!(recorded, chat_ids, "each chat record has its answer's id");
}

#[tokio::test]
async fn a_client_id_is_kept_and_a_bad_one_replaced() {
    let mut gw = start(&admin_fast_config()).await;
    let chat = || gw.chat(json!({"model": "fast", "messages": user("hi")}));
    let r = chat()
        .header("x-request-id", "trace-42.a_b:c")
        .send()
        .await
        .unwrap();
    assert_eq!(id_of(&r), "trace-42.a_b:c");
    let r = chat()
        .header("x-switchyard-request-id", "mine-1")
        .header("x-request-id", "other-2")
        .send()
        .await
        .unwrap();
    assert_eq!(id_of(&r), "mine-1", "the gateway's own header wins");
    let long = "x".repeat(129);
    for bad in ["has space", long.as_str()] {
        let r = chat().header("x-request-id", bad).send().await.unwrap();
        let id = id_of(&r);
        assert_ne!(id, bad);
        assert!(uuid_like(&id), "{id}");
    }
    gw.stop().await;
    let recorded: Vec<String> = gw.records().into_iter().map(|r| r.request_id).collect();
    assert_eq!(&recorded[..2], ["trace-42.a_b:c", "mine-1"]);
    assert!(recorded[2..].iter().all(|id| uuid_like(id)), "{recorded:?}");
}

fn uuid_like(id: &str) -> bool {
    id.len() == 36 && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}
