//! The gateway over real HTTP, against the built-in simulator: the API surface, errors,
//! limits, streaming, records and shutdown.

#![expect(clippy::unwrap_used, clippy::disallowed_methods, reason = "test code")]

mod common;

use common::{start, user, KEY};
use futures::StreamExt;
use serde_json::{json, Value};
use switchyard_store::FeedbackStore;

const SIM: &str = r#"
[providers.sim]
kind = "sim"
seed = 1
[providers.sim.models.fast]
ttft_ms = { p50 = 0 }
tokens_per_second = { p50 = 100000 }
output_tokens = { p50 = 12 }
[[providers.sim.models.fast.rules]]
pattern = "(?i)capital of france"
reply = "Paris."
[providers.sim.models.slow]
ttft_ms = { p50 = 300 }
tokens_per_second = { p50 = 20 }
output_tokens = { p50 = 40 }
[providers.sim.models.broken]
error_rate = 1.0
[providers.sim.models.hangs]
timeout_rate = 1.0

# The same simulator again, with a breaker that opens after two failures.
[providers.strict]
kind = "sim"
breaker = { consecutive_failures = 2, open_secs = 60 }
[providers.strict.models.broken]
error_rate = 1.0

[models.small]
deployments = [{ provider = "sim", upstream_model = "fast" }]
price = { input_per_mtok = 1.0, output_per_mtok = 2.0 }
[models.slow]
deployments = [{ provider = "sim", upstream_model = "slow" }]
[models.secret]
deployments = [{ provider = "sim", upstream_model = "fast" }]
[models.broken]
deployments = [{ provider = "sim", upstream_model = "broken" }]
fallbacks = ["small"]
resilience = { max_attempts = 2, backoff_base_ms = 1, backoff_max_ms = 2 }
[models.broken-alone]
deployments = [{ provider = "strict", upstream_model = "broken" }]
resilience = { max_attempts = 1 }
[models.hangs]
deployments = [{ provider = "sim", upstream_model = "hangs" }]
resilience = { attempt_timeout_ms = 150, max_attempts = 2, backoff_base_ms = 1, backoff_max_ms = 2 }

[[keys]]
id = "test"
tenant = "acme"
secret_sha256 = "{KEY}"
models = ["small", "slow", "broken", "broken-alone", "hangs"]

[admin]
secret_sha256 = "6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b"
"#;

async fn error_of(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    assert!(body["error"]["message"].is_string(), "{body}");
    assert!(body["error"]["type"].is_string(), "{body}");
    assert!(
        body["error"].get("param").is_some() && body["error"].get("code").is_some(),
        "{body}"
    );
    (status, body)
}

#[tokio::test]
async fn plain_chat_answers_with_headers_and_a_record() {
    let mut gw = start(SIM).await;
    let r = gw
        .chat(json!({"model": "small", "messages": user("What is the capital of France?")}))
        .header("x-switchyard-request-id", "req-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-request-id"], "req-123");
    assert_eq!(
        r.headers()["x-switchyard-model"],
        "small; deployment=sim/fast"
    );
    assert_eq!(r.headers()["x-switchyard-attempts"], "1");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "small");
    assert_eq!(body["choices"][0]["message"]["content"], "Paris.");
    let usage = &body["usage"];
    assert!(usage["prompt_tokens"].as_u64().unwrap() > 0);
    gw.stop().await;
    let records = gw.records();
    assert_eq!(records.len(), 1);
    let rec = &records[0];
    assert_eq!(rec.request_id, "req-123");
    assert_eq!(
        (rec.status, rec.tenant.as_deref(), rec.key_id.as_deref()),
        (200, Some("acme"), Some("test"))
    );
    assert_eq!(rec.deployment.as_deref(), Some("sim/fast"));
    assert_eq!(
        u64::from(rec.prompt_tokens),
        usage["prompt_tokens"].as_u64().unwrap()
    );
    // 1 USD/Mtok in, 2 USD/Mtok out, in nano-dollars.
    assert_eq!(
        rec.cost_nanos,
        u64::from(rec.prompt_tokens) * 1000 + u64::from(rec.completion_tokens) * 2000
    );
}

#[tokio::test]
async fn streaming_sends_chunks_usage_and_done() {
    let mut gw = start(SIM).await;
    let r = gw
        .chat(json!({"model": "small", "messages": user("hello"), "stream": true, "stream_options": {"include_usage": true}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let text = r.text().await.unwrap();
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(*events.last().unwrap(), "data: [DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
        .collect();
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(!content.is_empty());
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    let completion = last["usage"]["completion_tokens"].as_u64().unwrap();
    assert!(completion > 0);
    assert!(chunks.iter().all(|c| c["model"] == "small"));
    gw.stop().await;
    let rec = &gw.records()[0];
    assert!(rec.stream && rec.status == 200 && rec.ttft_ms.is_some());
    assert_eq!(u64::from(rec.completion_tokens), completion);
}

#[tokio::test]
async fn streaming_without_include_usage_has_no_usage_chunk() {
    let gw = start(SIM).await;
    let text = gw
        .chat(json!({"model": "small", "messages": user("hello"), "stream": true}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains("\"usage\""), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn bad_requests_get_openai_errors() {
    let gw = start(SIM).await;
    let chat = gw.url("/v1/chat/completions");
    let body = json!({"model": "small", "messages": user("hi")});

    let (s, e) = error_of(gw.http.post(&chat).json(&body).send().await.unwrap()).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (401, Some("missing_api_key"))
    );
    let (s, e) = error_of(
        gw.http
            .post(&chat)
            .bearer_auth("sk-wrong")
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (401, Some("invalid_api_key"))
    );
    assert!(!e.to_string().contains("sk-wrong"), "keys never echo back");
    // The admin key ("1") is refused on /v1.
    let (s, _) = error_of(
        gw.http
            .post(&chat)
            .bearer_auth("1")
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 401);

    let (s, e) = error_of(
        gw.chat(json!({"model": "secret", "messages": user("hi")}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (403, Some("model_not_allowed"))
    );
    let (s, e) = error_of(
        gw.chat(json!({"model": "nope", "messages": user("hi")}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (s, e["error"]["code"].as_str(), e["error"]["param"].as_str()),
        (404, Some("model_not_found"), Some("model"))
    );

    let malformed = gw
        .http
        .post(&chat)
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body("{\"model\": \"small\", ")
        .send()
        .await
        .unwrap();
    let (s, e) = error_of(malformed).await;
    assert_eq!(s, 400);
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not valid JSON"));
    let (s, e) = error_of(
        gw.chat(json!({"model": "small", "messages": [{"role": "robot", "content": "x"}]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (s, e["error"]["param"].as_str()),
        (400, Some("messages[0].role"))
    );
    let (s, e) = error_of(
        gw.chat(json!({"model": "small", "messages": user("hi"), "n": 9}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, e["error"]["param"].as_str()), (400, Some("n")));

    let huge = "x".repeat(5 * 1024 * 1024);
    let (s, e) = error_of(
        gw.chat(json!({"model": "small", "messages": user(&huge)}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (413, Some("request_too_large"))
    );

    let (s, _) = error_of(gw.http.get(gw.url("/v1/nothing")).send().await.unwrap()).await;
    assert_eq!(s, 404);
    let (s, _) = error_of(gw.http.get(&chat).send().await.unwrap()).await;
    assert_eq!(s, 405);
}

#[tokio::test]
async fn models_lists_what_the_key_may_use() {
    let gw = start(SIM).await;
    let list: Value = gw
        .http
        .get(gw.url("/v1/models"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["broken", "broken-alone", "hangs", "slow", "small"]);
    assert_eq!(list["object"], "list");
}

#[tokio::test]
async fn embeddings_from_the_simulator() {
    let gw = start(SIM).await;
    let r: Value = gw
        .http
        .post(gw.url("/v1/embeddings"))
        .bearer_auth(KEY)
        .json(&json!({"model": "small", "input": ["a cat", "a dog"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["data"].as_array().unwrap().len(), 2);
    assert!(r["data"][0]["embedding"].as_array().unwrap().len() > 8);
    assert_eq!(r["model"], "small");
}

#[tokio::test]
async fn failing_model_falls_back_and_says_so() {
    let mut gw = start(SIM).await;
    let r = gw
        .chat(json!({"model": "broken", "messages": user("capital of france")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-fallback-from"], "broken");
    assert_eq!(
        r.headers()["x-switchyard-model"],
        "small; deployment=sim/fast"
    );
    assert_eq!(
        r.headers()["x-switchyard-attempts"],
        "3",
        "two on broken, one on small"
    );
    gw.stop().await;
    let rec = &gw.records()[0];
    assert_eq!(
        (
            rec.model.as_deref(),
            rec.fallback_from.as_deref(),
            rec.attempts
        ),
        (Some("small"), Some("broken"), 3)
    );
}

#[tokio::test]
async fn breaker_opens_and_fails_fast() {
    let gw = start(SIM).await;
    for _ in 0..2 {
        let r = gw
            .chat(json!({"model": "broken-alone", "messages": user("x")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 502);
    }
    let (s, e) = error_of(
        gw.chat(json!({"model": "broken-alone", "messages": user("x")}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (503, Some("upstream_unavailable"))
    );
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("switchyard_breaker_state{deployment=\"strict/broken\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("switchyard_requests_total"));
}

#[tokio::test]
async fn hanging_upstream_times_out_with_504() {
    let gw = start(SIM).await;
    let r = gw
        .chat(json!({"model": "hangs", "messages": user("x")}))
        .send()
        .await
        .unwrap();
    let (s, e) = error_of(r).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (504, Some("upstream_timeout"))
    );
}

#[tokio::test]
async fn client_disconnect_mid_stream_is_recorded() {
    let mut gw = start(SIM).await;
    let r = gw
        .chat(json!({"model": "slow", "messages": user("tell me a story"), "stream": true}))
        .send()
        .await
        .unwrap();
    let mut body = r.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "));
    drop(body);
    gw.stop().await;
    let rec = &gw.records()[0];
    assert_eq!(
        (rec.status, rec.error_kind.as_deref()),
        (499, Some("client_closed"))
    );
}

#[tokio::test]
async fn shutdown_drains_requests_in_flight() {
    let mut gw = start(SIM).await;
    let pending = gw
        .chat(json!({"model": "slow", "messages": user("x")}))
        .send();
    let pending = tokio::spawn(pending);
    // Give the request time to reach the gateway before asking for shutdown.
    let ready = gw.http.get(gw.url("/healthz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    gw.stop().await;
    let r = pending.await.unwrap().unwrap();
    assert_eq!(r.status(), 200);
    let records = gw.records();
    assert!(
        records
            .iter()
            .any(|r| r.status == 200 && r.model.as_deref() == Some("slow")),
        "{records:?}"
    );
}

#[tokio::test]
async fn health_and_readiness() {
    let gw = start(SIM).await;
    assert_eq!(
        gw.http
            .get(gw.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        gw.http
            .get(gw.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn rpm_limit_and_daily_budget() {
    let cfg = SIM.replace(
        "models = [\"small\", \"slow\", \"broken\", \"broken-alone\", \"hangs\"]",
        "models = [\"small\"]\nrpm = 2",
    );
    let gw = start(&cfg).await;
    for _ in 0..2 {
        assert_eq!(
            gw.chat(json!({"model": "small", "messages": user("x")}))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    let r = gw
        .chat(json!({"model": "small", "messages": user("x")}))
        .send()
        .await
        .unwrap();
    assert!(r.headers().contains_key("retry-after"));
    let (s, e) = error_of(r).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (429, Some("rate_limit_exceeded"))
    );

    // 1 USD/Mtok in: a budget of 20 micro-dollars allows a few requests, then refuses.
    let cfg = SIM.replace(
        "models = [\"small\", \"slow\", \"broken\", \"broken-alone\", \"hangs\"]",
        "models = [\"small\"]\nbudget_usd_daily = 0.00002",
    );
    let gw = start(&cfg).await;
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let r = gw
            .chat(json!({"model": "small", "messages": user("x"), "max_tokens": 5}))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            let (_, e) = error_of(r).await;
            assert_eq!(e["error"]["code"], "budget_exceeded");
            assert_eq!(e["error"]["type"], "insufficient_quota");
            break;
        }
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    assert!(
        statuses.iter().filter(|s| **s == 200).count() >= 1,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn feedback_is_stored_against_the_request() {
    let mut gw = start(SIM).await;
    let r = gw
        .chat(json!({"model": "small", "messages": user("hi")}))
        .send()
        .await
        .unwrap();
    let id = r.headers()["x-switchyard-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let ok = gw
        .http
        .post(gw.url("/v1/feedback"))
        .bearer_auth(KEY)
        .json(&json!({"request_id": id, "thumbs": "up", "outcome": "resolved", "comment": "great"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let (s, e) = error_of(
        gw.http
            .post(gw.url("/v1/feedback"))
            .bearer_auth(KEY)
            .json(&json!({"request_id": id, "score": 3}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, e["error"]["param"].as_str()), (400, Some("score")));
    let (s, _) = error_of(
        gw.http
            .post(gw.url("/v1/feedback"))
            .json(&json!({"request_id": id, "score": 1}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 401);
    gw.stop().await;
    let store = switchyard_store::SqliteStore::open_in(gw.dir.path()).unwrap();
    let stored = store.feedback_for(&id).unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        (
            stored[0].score,
            stored[0].outcome.as_deref(),
            stored[0].tenant.as_str()
        ),
        (Some(1.0), Some("resolved"), "acme")
    );
}
