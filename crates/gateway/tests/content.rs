//! Request content (`[telemetry] content = "masked"`) through the gateway over real HTTP: the
//! stored prompt is what the model was sent (placeholders, never the values), the stored
//! answer what the model wrote (whole, streamed, or served from the cache), PII the guard let
//! through or that no guard looked for is redacted for storage, a refusal stores the prompt
//! only, `content = "none"` stores nothing, and the purge deletes content past its retention
//! while the records stay.

#![expect(clippy::unwrap_used, clippy::panic, reason = "test code")]

mod common;

use common::{admin_section, request_id, start, user, TestGateway, ADMIN};
use serde_json::{json, Value};
use switchyard_testkit::{FakeUpstream, Flavor, Reply};

fn config(up: &FakeUpstream, telemetry: &str, guards: &str) -> String {
    let before = format!("{}\n[telemetry]\n{telemetry}\n", admin_section());
    common::guarded_config(up, &before, guards)
}

const MASKED: &str = "content = \"masked\"";
const PII: &str = "[guards.pii]\nactions = { SECRET = \"block\" }\n";

/// `GET /admin/v1/requests/ID` once the record is written: the detail's JSON.
async fn detail(gw: &TestGateway, id: &str) -> Value {
    for _ in 0..400 {
        let r = gw
            .http
            .get(gw.url(&format!("/admin/v1/requests/{id}")))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            return r.json().await.unwrap();
        }
        assert_eq!(r.status(), 404, "{}", r.text().await.unwrap());
        // The record is written by the telemetry writer within its flush interval.
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("request {id} was never written");
}

async fn ask(gw: &TestGateway, body: Value) -> (String, String) {
    let r = gw.chat(body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let id = request_id(&r);
    (
        id,
        String::from_utf8(r.bytes().await.unwrap().to_vec()).unwrap(),
    )
}

#[tokio::test]
async fn the_stored_prompt_and_answer_hold_placeholders_not_the_values() {
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    let gw = start(&config(&up, MASKED, PII)).await;
    let question = "Email alice@example.com about the invoice.";

    // Whole: the client gets the address back, the store keeps the placeholder.
    up.push(Reply::text("I wrote to <EMAIL_1>."));
    let (id, body) = ask(
        &gw,
        json!({"model": "m", "temperature": 0, "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": question},
        ]}),
    )
    .await;
    assert!(body.contains("I wrote to alice@example.com."), "{body}");
    let d = detail(&gw, &id).await;
    assert_eq!(d["request"]["request_id"], id.as_str());
    let c = &d["content"];
    assert_eq!(
        c["messages"][0],
        json!({"role": "system", "text": "You are terse."})
    );
    assert_eq!(c["messages"][1]["role"], "user");
    assert_eq!(
        c["messages"][1]["text"],
        "Email <EMAIL_1> about the invoice."
    );
    assert_eq!(c["answer"]["text"], "I wrote to <EMAIL_1>.");
    assert_eq!(c["answer"]["finish_reason"], "stop");

    // From the cache: the answer served, as cached.
    let (id, body) = ask(
        &gw,
        json!({"model": "m", "temperature": 0, "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Email bob@example.org about the invoice."},
        ]}),
    )
    .await;
    assert!(body.contains("bob@example.org"), "{body}");
    let d = detail(&gw, &id).await;
    assert_eq!(d["request"]["cache"], "hit-exact");
    assert_eq!(d["content"]["answer"]["text"], "I wrote to <EMAIL_1>.");

    // Streamed: the text assembled from the chunks, a placeholder cut across two of them.
    up.push(Reply::pieces([
        "Sent to <EMA",
        "IL_1>, and ",
        "cc dan@example.net.",
    ]));
    let (id, body) = ask(
        &gw,
        json!({"model": "m", "stream": true, "messages": user(question)}),
    )
    .await;
    assert_eq!(
        common::sse_content(&body).0,
        "Sent to alice@example.com, and cc dan@example.net."
    );
    let d = detail(&gw, &id).await;
    // The address the model made up is redacted for storage.
    assert_eq!(
        d["content"]["answer"]["text"],
        "Sent to <EMAIL_1>, and cc [EMAIL]."
    );

    // A tool call, with its arguments masked.
    up.push(Reply::tool_call(
        "send_mail",
        json!({"to": "<EMAIL_1>", "cc": "eve@example.com"}),
    ));
    let (id, _) = ask(&gw, json!({"model": "m", "messages": user(question)})).await;
    let d = detail(&gw, &id).await;
    let call = &d["content"]["answer"]["tool_calls"][0];
    assert_eq!(call["name"], "send_mail");
    let args: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"to": "<EMAIL_1>", "cc": "[EMAIL]"}));

    // A refusal: the prompt (redacted as the guard left it), no answer.
    let r = gw
        .chat(json!({"model": "m", "messages": user("my key is sk-proj-4f9aQ2xLm8RtY7vW3nB6cK1dZ0pE5sHj")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let d = detail(&gw, &request_id(&r)).await;
    assert_eq!(d["content"]["messages"][0]["text"], "my key is [SECRET]");
    assert_eq!(d["content"]["answer"], Value::Null);

    let (status, _) = gw
        .admin(reqwest::Method::GET, "/admin/v1/requests/no-such-id", None)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn without_a_pii_guard_values_are_redacted_for_storage() {
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    let gw = start(&config(&up, MASKED, "")).await;
    up.push(Reply::text("Sure, I'll mail alice@example.com today."));
    let (id, body) = ask(
        &gw,
        json!({"model": "m", "messages": user("Email alice@example.com, card 4111 1111 1111 1111.")}),
    )
    .await;
    assert!(body.contains("alice@example.com"), "no guard: {body}");
    let d = detail(&gw, &id).await;
    assert_eq!(
        d["content"]["messages"][0]["text"],
        "Email [EMAIL], card [CREDIT_CARD]."
    );
    assert_eq!(
        d["content"]["answer"]["text"],
        "Sure, I'll mail [EMAIL] today."
    );
    let stored = d.to_string();
    assert!(
        !stored.contains("alice@example.com") && !stored.contains("4111"),
        "{stored}"
    );
}

#[tokio::test]
async fn content_none_stores_nothing_and_old_content_is_purged() {
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    // The default: none.
    let gw = start(&config(&up, "", PII)).await;
    up.push(Reply::text("Hello."));
    let (id, _) = ask(&gw, json!({"model": "m", "messages": user("hi there")})).await;
    let d = detail(&gw, &id).await;
    assert_eq!(d["content"], Value::Null, "{d}");
    assert_eq!(d["request"]["status"], 200);

    // On, with a day's retention: the purge a day and a bit later deletes it, the record stays.
    let gw = gw
        .restart(&config(
            &up,
            "content = \"masked\"\ncontent_retention_days = 1",
            PII,
        ))
        .await;
    up.push(Reply::text("Hello again."));
    let (id, _) = ask(&gw, json!({"model": "m", "messages": user("hi again")})).await;
    let d = detail(&gw, &id).await;
    assert_eq!(d["content"]["answer"]["text"], "Hello again.");
    let started = d["request"]["started_at_ms"].as_i64().unwrap();
    let state = gw.state.control.clone();
    let purged = tokio::task::spawn_blocking(move || {
        let kept =
            switchyard_gateway::control_plane::retention::purge_once(&state, started + 86_400_000)
                .unwrap();
        let gone =
            switchyard_gateway::control_plane::retention::purge_once(&state, started + 86_400_001)
                .unwrap();
        (kept, gone)
    })
    .await
    .unwrap();
    assert_eq!(purged, (0, 1));
    let d = detail(&gw, &id).await;
    assert_eq!(d["content"], Value::Null);
    assert_eq!(d["request"]["status"], 200);
}
