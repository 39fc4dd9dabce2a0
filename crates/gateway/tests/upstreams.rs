//! The gateway against scripted fake upstreams over real HTTP: retries, retry-after, no retry
//! on the caller's errors, streams that break before their first byte, disconnects reaching
//! the upstream, balancing around a failing deployment, secrets and passthrough.

mod common;

use std::time::Duration;

use common::{start, start_with_env, user, TestGateway};
use futures::StreamExt;
use serde_json::{json, Value};
use switchyard_testkit::{
    Behavior, Ending, FakeUpstream, Flavor, Reply, FAKE_AWS_ACCESS_KEY_ID, FAKE_AWS_REGION,
    FAKE_AWS_SECRET_ACCESS_KEY,
};

fn config(upstreams: &[(&str, &FakeUpstream)], models: &str) -> String {
    let mut text = String::new();
    for (name, up) in upstreams {
        let kind = up.flavor().kind();
        let key = match up.flavor() {
            Flavor::Anthropic => "api_key_env = \"ANTHROPIC_TEST_KEY\"\n".to_owned(),
            // Credentials from the environment (`ENV`), as AWS's SDKs look first.
            Flavor::Bedrock => format!("region = \"{FAKE_AWS_REGION}\"\n"),
            _ => "api_key_env = \"UPSTREAM_TEST_KEY\"\nheaders = { \"x-team\" = \"blue\" }\nbreaker = { consecutive_failures = 3, open_secs = 60 }\n".to_owned(),
        };
        text.push_str(&format!(
            "[providers.{name}]\nkind = \"{kind}\"\nbase_url = \"{}\"\n{key}\n",
            up.base_url()
        ));
    }
    text.push_str(models);
    text.push_str("\n[[keys]]\nid = \"test\"\nsecret_sha256 = \"{KEY}\"\n");
    text
}

const ENV: &[(&str, &str)] = &[
    ("UPSTREAM_TEST_KEY", "sk-upstream-secret"),
    ("ANTHROPIC_TEST_KEY", "sk-ant-secret"),
    ("AWS_ACCESS_KEY_ID", FAKE_AWS_ACCESS_KEY_ID),
    ("AWS_SECRET_ACCESS_KEY", FAKE_AWS_SECRET_ACCESS_KEY),
];

async fn gateway(upstreams: &[(&str, &FakeUpstream)], models: &str) -> TestGateway {
    start_with_env(&config(upstreams, models), ENV).await
}

/// A gateway with one model `m` on the upstream `up`, retrying fast.
async fn single(up: &FakeUpstream) -> TestGateway {
    gateway(
        &[("up", up)],
        &format!("[models.m]\ndeployments = [{{ provider = \"up\" }}]\n{FAST_RETRY}\n"),
    )
    .await
}

const FAST_RETRY: &str = "resilience = { max_attempts = 3, backoff_base_ms = 1, backoff_max_ms = 5, attempt_timeout_ms = 2000 }";

#[tokio::test]
async fn a_5xx_is_retried_and_the_second_attempt_answers() {
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    up.push(Behavior::status(500, "boom"));
    up.push(Reply::text("second time lucky"));
    let mut gw = gateway(&[("up", &up)], &format!("[models.m]\ndeployments = [{{ provider = \"up\", upstream_model = \"real-model\" }}]\n{FAST_RETRY}\n")).await;
    let r = gw
        .chat(json!({"model": "m", "messages": user("hi"), "logit_bias": {"42": -1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-attempts"], "2");
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "second time lucky"
    );
    let seen = up.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].body["model"], "real-model");
    assert_eq!(
        seen[1].body["logit_bias"],
        json!({"42": -1}),
        "unknown fields pass through"
    );
    assert_eq!(
        seen[1].header("authorization"),
        Some("Bearer sk-upstream-secret")
    );
    assert_eq!(seen[1].header("x-team"), Some("blue"));
    gw.stop().await;
    let rec = &gw.records()[0];
    assert_eq!((rec.status, rec.attempts), (200, 2));
}

#[tokio::test]
async fn retry_after_is_honoured_then_success() {
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    up.push(Behavior::rate_limited("0.05"));
    let gw = single(&up).await;
    let r = gw
        .chat(json!({"model": "m", "messages": user("hi")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-attempts"], "2");
}

#[tokio::test]
async fn persistent_upstream_429_becomes_503_with_retry_after() {
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    for _ in 0..3 {
        up.push(Behavior::rate_limited("0.01"));
    }
    let gw = single(&up).await;
    let r = gw
        .chat(json!({"model": "m", "messages": user("hi")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_rate_limited");
    assert_eq!(up.requests().len(), 3);
}

#[tokio::test]
async fn the_callers_error_is_not_retried() {
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    up.push(Behavior::status(
        400,
        "messages[0].content is too long for this model",
    ));
    let gw = single(&up).await;
    let r = gw
        .chat(json!({"model": "m", "messages": user("hi")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("too long for this model"));
    assert_eq!(up.requests().len(), 1);
}

#[tokio::test]
async fn upstream_auth_failure_is_a_502_without_the_upstream_body() {
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    up.push(Behavior::status(
        401,
        "Incorrect API key provided: sk-upstream-secret",
    ));
    let gw = single(&up).await;
    let r = gw
        .chat(json!({"model": "m", "messages": user("hi")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let text = r.text().await.unwrap();
    assert!(!text.contains("sk-upstream-secret"), "{text}");
    assert!(text.contains("upstream_auth"), "{text}");
}

#[tokio::test]
async fn a_stream_that_breaks_before_its_first_chunk_is_retried() {
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    up.push(Behavior::Hang);
    up.push(Reply::text("streamed after a retry"));
    let models = "[models.m]\ndeployments = [{ provider = \"up\" }]\nresilience = { max_attempts = 2, backoff_base_ms = 1, backoff_max_ms = 2, attempt_timeout_ms = 300 }\n";
    let gw = gateway(&[("up", &up)], models).await;
    let r = gw
        .chat(json!({"model": "m", "messages": user("hi"), "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-attempts"], "2");
    let text = r.text().await.unwrap();
    assert!(
        text.contains("streamed ") && text.ends_with("data: [DONE]\n\n"),
        "{text}"
    );
}

#[tokio::test]
async fn a_stream_broken_after_the_first_byte_ends_with_an_error_event() {
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    up.push(Reply::text("one two three four").ending(Ending::Abort));
    let mut gw = single(&up).await;
    let r = gw
        .chat(json!({"model": "m", "messages": user("hi"), "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.contains("\"error\""), "{text}");
    assert!(!text.contains("[DONE]"), "{text}");
    assert_eq!(up.requests().len(), 1, "no retry after the first byte");
    gw.stop().await;
    assert_eq!(gw.records()[0].status, 502);
}

/// The upstream's stream ends (at an event's end or halfway through one) with some text sent
/// but no finish reason and no terminator: the client gets an error event, not `[DONE]`; the
/// record an upstream error; and the cut answer is not cached.
#[tokio::test]
async fn a_truncated_stream_is_an_error_and_is_not_cached() {
    for flavor in [Flavor::OpenAi, Flavor::Anthropic, Flavor::Bedrock] {
        for ending in [Ending::Truncated, Ending::CutMidEvent] {
            let up = FakeUpstream::start(flavor).await.unwrap();
            up.push(Reply::text("one two three four").ending(ending));
            up.push(Reply::text("one two three four"));
            let models = format!(
                "[models.m]\ndeployments = [{{ provider = \"up\" }}]\n{FAST_RETRY}\n\n[cache]\nsemantic = false\n"
            );
            let mut gw = gateway(&[("up", &up)], &models).await;
            let ask = json!({"model": "m", "messages": user("count to four"), "temperature": 0, "stream": true});
            let r = gw.chat(ask.clone()).send().await.unwrap();
            assert_eq!(r.status(), 200);
            let text = r.text().await.unwrap();
            let case = format!("{flavor:?} {ending:?}");
            assert!(text.contains("\"one \""), "{case}: {text}");
            assert!(text.contains("upstream_stream_error"), "{case}: {text}");
            assert!(!text.contains("data: [DONE]"), "{case}: {text}");
            assert_eq!(
                up.requests().len(),
                1,
                "{case}: no retry after the first byte"
            );

            // Not cached: the same request goes upstream again, and now ends cleanly.
            let r = gw.chat(ask).send().await.unwrap();
            assert_eq!(r.headers()["x-switchyard-cache"], "miss", "{case}");
            let text = r.text().await.unwrap();
            assert!(text.ends_with("data: [DONE]\n\n"), "{case}: {text}");
            assert_eq!(up.requests().len(), 2, "{case}");
            gw.stop().await;
            let records = gw.records();
            assert_eq!(records[0].status, 502, "{case}");
            assert_eq!(
                records[0].error_kind.as_deref(),
                Some("upstream_stream_error"),
                "{case}"
            );
            assert_eq!(records[1].status, 200, "{case}");
        }
    }
}

/// A stream cut before its first chunk (halfway through the first event) is a failure like
/// any other before the first byte: retried, and the client sees only the clean answer.
#[tokio::test]
async fn a_stream_cut_before_its_first_chunk_is_retried() {
    for flavor in [Flavor::OpenAi, Flavor::Anthropic] {
        let up = FakeUpstream::start(flavor).await.unwrap();
        up.push(Reply::text("lost words").ending(Ending::CutAtStart));
        up.push(Reply::text("the whole answer"));
        let mut gw = single(&up).await;
        let r = gw
            .chat(json!({"model": "m", "messages": user("hi"), "stream": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-switchyard-attempts"], "2", "{flavor:?}");
        let text = r.text().await.unwrap();
        let (content, _) = common::sse_content(&text);
        assert_eq!(content, "the whole answer", "{flavor:?}: {text}");
        assert!(text.ends_with("data: [DONE]\n\n"), "{flavor:?}: {text}");
        gw.stop().await;
        let rec = &gw.records()[0];
        assert_eq!((rec.status, rec.attempts), (200, 2), "{flavor:?}");
    }
}

#[tokio::test]
async fn client_hang_up_cancels_the_upstream_call() {
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    up.push(Reply::pieces((0..50).map(|i| format!("w{i} "))).with_delay(Duration::from_millis(50)));
    let mut gw = single(&up).await;
    let r = gw
        .chat(json!({"model": "m", "messages": user("hi"), "stream": true}))
        .send()
        .await
        .unwrap();
    let mut body = r.bytes_stream();
    body.next().await.unwrap().unwrap();
    drop(body);
    tokio::time::timeout(Duration::from_secs(10), up.wait_for_disconnects(1))
        .await
        .expect("the upstream saw the disconnect");
    gw.stop().await;
    let rec = &gw.records()[0];
    assert_eq!(rec.status, 499);
}

#[tokio::test]
async fn a_failing_deployment_is_routed_around() {
    let bad = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    let good = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    for _ in 0..100 {
        bad.push(Behavior::status(503, "overloaded"));
    }
    let models = "[models.m]\ndeployments = [{ provider = \"bad\" }, { provider = \"good\" }]\nresilience = { max_attempts = 3, backoff_base_ms = 1, backoff_max_ms = 2 }\n";
    let gw = gateway(&[("bad", &bad), ("good", &good)], models).await;
    for _ in 0..30 {
        let r = gw
            .chat(json!({"model": "m", "messages": user("hi")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert!(
        bad.requests().len() <= 3,
        "breaker opened after 3 failures, got {}",
        bad.requests().len()
    );
    assert_eq!(good.requests().len(), 30);
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("switchyard_breaker_state{deployment=\"bad/m\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn missing_usage_is_counted_by_the_gateway() {
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    up.push(Reply::text("counted by the gateway itself").without_usage());
    up.push(Reply::text("streamed and counted").without_usage());
    let mut gw = single(&up).await;
    let body: Value = gw
        .chat(json!({"model": "m", "messages": user("hi")}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(body["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    let text = gw
        .chat(json!({"model": "m", "messages": user("hi"), "stream": true, "stream_options": {"include_usage": true}}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("\"completion_tokens\""), "{text}");
    gw.stop().await;
    let records = gw.records();
    assert!(
        records
            .iter()
            .all(|r| r.usage_counted && r.completion_tokens > 0),
        "{records:?}"
    );
}

/// A model on an upstream of another API (Anthropic, Bedrock) through the gateway, asked
/// with a system prompt and then streamed: what the upstream got, the answer whole and
/// streamed with the usage it reported, and the records; the calls and what the gateway
/// said go back for the flavor's own checks.
#[expect(
    clippy::unwrap_used,
    reason = "test helper: fails its test as the tests do"
)]
async fn through_the_gateway(up: &FakeUpstream, upstream_model: &str) -> (Value, String, String) {
    up.push(Reply::text("Bonjour from upstream").with_usage(11, 4));
    up.push(Reply::text("streamed upstream").with_usage(9, 2));
    let models = format!(
        "[models.c]\ndeployments = [{{ provider = \"up\", upstream_model = \"{upstream_model}\" }}]\n"
    );
    let mut gw = gateway(&[("up", up)], &models).await;
    let system =
        json!([{"role": "system", "content": "be nice"}, {"role": "user", "content": "hi"}]);
    let r = gw
        .chat(json!({"model": "c", "messages": system}))
        .send()
        .await;
    let body: Value = r.unwrap().json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Bonjour from upstream"
    );
    assert_eq!(body["usage"]["prompt_tokens"], 11);
    let streamed = json!({"model": "c", "messages": user("hi"), "stream": true,
        "stream_options": {"include_usage": true}});
    let text = gw
        .chat(streamed)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("streamed ")
            && text.contains("\"prompt_tokens\":9")
            && text.ends_with("data: [DONE]\n\n"),
        "{text}"
    );
    let metrics = gw.metrics().await;
    gw.stop().await;
    // The usage the upstream reported, not the gateway's own count.
    let records = gw.records();
    let usage: Vec<(u32, u32, bool)> = records
        .iter()
        .map(|r| (r.prompt_tokens, r.completion_tokens, r.usage_counted))
        .collect();
    assert_eq!(usage, [(11, 4, false), (9, 2, false)]);
    (body, text, format!("{metrics}{records:?}"))
}

#[tokio::test]
async fn anthropic_upstream_through_the_gateway() {
    let up = FakeUpstream::start(Flavor::Anthropic).await.unwrap();
    through_the_gateway(&up, "claude-x").await;
    let seen = &up.requests()[0];
    assert_eq!(seen.body["system"], "be nice");
    assert_eq!(seen.header("x-api-key"), Some("sk-ant-secret"));
}

/// Bedrock: the requests signed (the fake checks each), the model id escaped in the path, and
/// no AWS secret in the answers, the records or `/metrics`.
#[tokio::test]
async fn bedrock_upstream_through_the_gateway() {
    let up = FakeUpstream::start(Flavor::Bedrock).await.unwrap();
    let (body, text, rest) = through_the_gateway(&up, "us.amazon.nova-pro-v1:0").await;
    let seen = &up.requests()[0];
    assert_eq!(seen.path, "/model/us.amazon.nova-pro-v1%3A0/converse");
    assert_eq!(seen.body["system"], json!([{"text": "be nice"}]));
    let everything = format!("{body}{text}{rest}");
    assert!(!everything.contains(FAKE_AWS_SECRET_ACCESS_KEY));
}

#[tokio::test]
async fn a_missing_upstream_secret_stops_start_up_with_its_name() {
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    let text = config(
        &[("up", &up)],
        "[models.m]\ndeployments = [{ provider = \"up\" }]\n",
    )
    .replace("{KEY}", &common::hex_sha256("k"));
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{text}\n[storage]\ndata_dir = {:?}\n",
        dir.path().display().to_string()
    );
    let launch = switchyard_gateway::control_plane::versions::Launch::new(text, "t.toml");
    let err = switchyard_gateway::Server::bind(launch, std::sync::Arc::new(|_: &str| None))
        .await
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "provider `up`: environment variable UPSTREAM_TEST_KEY (named by api_key_env) is not set"
    );
    let _ = start; // the plain starter is used by the other test files
}

#[tokio::test]
async fn an_upstream_redirect_is_an_upstream_error_and_never_followed() {
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    let elsewhere = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    for _ in 0..3 {
        up.push(Behavior::Redirect {
            status: 307,
            location: format!("{}/chat/completions", elsewhere.base_url()),
        });
    }
    let mut gw = single(&up).await;
    let r = gw
        .chat(json!({"model": "m", "messages": user("hi")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_error", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("307") && message.contains("redirect"),
        "{message}"
    );
    assert!(
        elsewhere.requests().is_empty(),
        "the request (with its API key) went where the redirect pointed"
    );
    assert!(!up.requests().is_empty());
    gw.stop().await;
    assert_eq!(gw.records()[0].status, 502);
}
