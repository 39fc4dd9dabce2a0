//! The fake upstream over real HTTP: scripting, recording, and the wire shapes it answers in.

#![expect(clippy::expect_used, reason = "test code")]

use serde_json::{json, Value};
use switchyard_testkit::{Behavior, FakeUpstream, Flavor, Reply};

async fn post(url: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(url)
        .header("x-probe", "1")
        .json(&body)
        .send()
        .await
        .expect("request sent")
}

#[tokio::test]
async fn answers_in_script_order_then_by_default_and_records_requests() {
    let fake = FakeUpstream::start(Flavor::OpenAi).await.expect("starts");
    fake.push(Behavior::rate_limited("3"));
    fake.push(Reply::text("scripted"));
    let url = format!("{}/chat/completions", fake.base_url());
    let body = json!({"model": "m", "messages": []});

    let r = post(&url, body.clone()).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "3");
    let err: Value = r.json().await.expect("json");
    assert_eq!(err["error"]["type"], "rate_limit_error");

    let ok: Value = post(&url, body.clone()).await.json().await.expect("json");
    assert_eq!(ok["choices"][0]["message"]["content"], "scripted");
    assert_eq!(ok["usage"]["total_tokens"], 13);

    let default: Value = post(&url, body.clone()).await.json().await.expect("json");
    assert_eq!(
        default["choices"][0]["message"]["content"],
        switchyard_testkit::DEFAULT_TEXT
    );

    let requests = fake.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[0].path, "/v1/chat/completions");
    assert_eq!(requests[0].header("X-Probe"), Some("1"));
    assert_eq!(requests[0].body, body);
    assert_eq!(fake.disconnects(), 0);
}

#[tokio::test]
async fn anthropic_flavor_streams_messages_events_and_errors_in_its_shape() {
    let fake = FakeUpstream::start(Flavor::Anthropic)
        .await
        .expect("starts");
    let url = format!("{}/v1/messages", fake.base_url());
    fake.push(Reply::text("a b"));
    let r = post(&url, json!({"model": "c", "messages": [], "stream": true})).await;
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let text = r.text().await.expect("body");
    let events: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(
        events,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );

    fake.push(Behavior::status(529, "Overloaded"));
    let r = post(&url, json!({"model": "c", "messages": []})).await;
    assert_eq!(r.status(), 529);
    let err: Value = r.json().await.expect("json");
    assert_eq!(
        err,
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    );

    let r = post(
        &format!("{}/v1/chat/completions", fake.base_url()),
        json!({}),
    )
    .await;
    assert_eq!(r.status(), 404);
}
