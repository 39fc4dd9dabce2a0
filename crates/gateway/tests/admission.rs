//! Priority classes and admission over real HTTP: a deployment with a `capacity` queues
//! what it cannot take, serves the queue by class and fairly between tenants, sheds with 503
//! `overloaded` and a `retry-after`, preempts batch work for urgent work, gives its capacity
//! back on every path, and says all of it in headers, records and `/metrics`.
//!
//! Nothing here measures time: upstream calls are held open by the fake upstream's gates,
//! and what the gateway does in the background is awaited on `/metrics` (each test has a
//! provider of its own, so its deployment's series are its own in the process's metrics).

#![expect(clippy::unwrap_used, clippy::panic, reason = "test code")]

mod common;

use std::time::Duration;

use common::{hex_sha256, start, user, TestGateway, KEY};
use serde_json::{json, Value};
use switchyard_testkit::{eventually, Behavior, FakeUpstream, Flavor, Gate, Reply};

/// The second tenant's key.
const KEY_B: &str = "sk-test-key-b";
/// A key that may not ask for more than `standard`.
const KEY_LOW: &str = "sk-test-key-low";

const PATIENCE: Duration = Duration::from_secs(30);

/// A model `m` on the fake upstream through provider `name` (its deployment `name/m`), with
/// `capacity`; `extra` is appended (more models, `[admission]`).
fn config(up: &FakeUpstream, name: &str, capacity: &str, extra: &str) -> String {
    format!(
        r#"
[providers.{name}]
kind = "openai"
base_url = "{base}"

[models.m]
deployments = [{{ provider = "{name}", upstream_model = "m", capacity = {{ {capacity} }} }}]

[[keys]]
id = "a"
tenant = "a"
secret_sha256 = "{{KEY}}"
max_priority = "critical"

[[keys]]
id = "b"
tenant = "b"
secret_sha256 = "{key_b}"
max_priority = "critical"

[[keys]]
id = "low"
secret_sha256 = "{key_low}"
priority = "batch"
max_priority = "standard"
{extra}
"#,
        base = up.base_url(),
        key_b = hex_sha256(KEY_B),
        key_low = hex_sha256(KEY_LOW),
    )
}

/// A request with `text` as its message, sent in the background: the handle gives the
/// response once its head arrived (a stream's body follows).
fn send(
    gw: &TestGateway,
    key: &str,
    class: Option<&str>,
    body: Value,
) -> tokio::task::JoinHandle<reqwest::Response> {
    let mut request = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&body);
    if let Some(class) = class {
        request = request.header("x-switchyard-priority", class);
    }
    #[expect(
        clippy::disallowed_methods,
        reason = "test requests in flight together; each is awaited or aborted by the test"
    )]
    tokio::spawn(async move { request.send().await.unwrap() })
}

/// The first request, `H`, of `class`, holding the capacity until the gate given back opens.
async fn hold(
    gw: &TestGateway,
    up: &FakeUpstream,
    class: Option<&str>,
) -> (Gate, tokio::task::JoinHandle<reqwest::Response>) {
    let gate = Gate::new();
    up.push(Behavior::Gated {
        gate: gate.clone(),
        then: Box::new(Reply::text("held").into()),
    });
    let holder = send(gw, KEY, class, ask("H"));
    received(up, 1).await;
    (gate, holder)
}

fn ask(text: &str) -> Value {
    json!({"model": "m", "messages": user(text)})
}

/// A metric's value for the series of `name` whose labels include every one of `labels`.
fn value(metrics: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metrics
        .lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .find(|line| {
            labels
                .iter()
                .all(|(k, v)| line.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Waits until `class` has `n` requests waiting at deployment `deployment`.
async fn queued(gw: &TestGateway, deployment: &str, class: &str, n: usize) {
    eventually(
        PATIENCE,
        &format!("{n} {class} request(s) waiting at {deployment}"),
        || async {
            let metrics = gw.metrics().await;
            value(
                &metrics,
                "switchyard_queue_depth",
                &[("deployment", deployment), ("class", class)],
            ) == Some(n as f64)
        },
    )
    .await;
}

/// Waits until the upstream has received `n` requests.
async fn received(up: &FakeUpstream, n: usize) {
    eventually(PATIENCE, &format!("{n} upstream request(s)"), || async {
        up.requests().len() >= n
    })
    .await;
}

/// The user messages the upstream received, in order.
fn order(up: &FakeUpstream) -> Vec<String> {
    up.requests()
        .iter()
        .map(|r| {
            r.body["messages"][0]["content"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", r.headers()))
        .to_str()
        .unwrap()
}

async fn ok(handle: tokio::task::JoinHandle<reqwest::Response>) -> reqwest::Response {
    let r = handle.await.unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.headers());
    r
}

#[tokio::test]
async fn waiting_requests_are_served_by_class_highest_first() {
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    let gw = start(&config(&up, "ord", "max_concurrent = 1", "")).await;
    let (gate, holder) = hold(&gw, &up, Some("standard")).await;
    let batch = send(&gw, KEY, Some("batch"), ask("B"));
    queued(&gw, "ord/m", "batch", 1).await;
    let standard = send(&gw, KEY, Some("standard"), ask("S"));
    queued(&gw, "ord/m", "standard", 1).await;
    let interactive = send(&gw, KEY, None, ask("I"));
    queued(&gw, "ord/m", "interactive", 1).await;
    gate.open();
    let holder = ok(holder).await;
    assert_eq!(header(&holder, "x-switchyard-queue-ms"), "0");
    for (handle, class) in [
        (interactive, "interactive"),
        (standard, "standard"),
        (batch, "batch"),
    ] {
        let r = ok(handle).await;
        assert_eq!(header(&r, "x-switchyard-priority"), class);
        header(&r, "x-switchyard-queue-ms").parse::<u64>().unwrap();
    }
    assert_eq!(order(&up), ["H", "I", "S", "B"]);
}

#[tokio::test]
async fn tenants_of_one_class_take_turns() {
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    let gw = start(&config(&up, "fair", "max_concurrent = 1", "")).await;
    let (gate, holder) = hold(&gw, &up, Some("standard")).await;
    // Each request reserves about 3,000 tokens of the 4,096 a tenant is credited per round:
    // one request per tenant per round.
    let big = |text: &str| json!({"model": "m", "messages": user(text), "max_tokens": 3000});
    let mut waiting = Vec::new();
    for (n, (key, text)) in [
        (KEY, "a1"),
        (KEY, "a2"),
        (KEY, "a3"),
        (KEY_B, "b1"),
        (KEY_B, "b2"),
    ]
    .into_iter()
    .enumerate()
    {
        waiting.push(send(&gw, key, Some("standard"), big(text)));
        queued(&gw, "fair/m", "standard", n + 1).await;
    }
    gate.open();
    ok(holder).await;
    for handle in waiting {
        ok(handle).await;
    }
    assert_eq!(order(&up), ["H", "a1", "b1", "a2", "b2", "a3"]);
}

#[tokio::test]
async fn a_full_queue_sheds_the_lowest_class_with_retry_after_and_never_interactive_work_while_batch_waits(
) {
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    let extra = "[admission.classes.batch]\nmax_queue = 1\n[admission.classes.interactive]\nmax_queue = 0\n";
    let mut gw = start(&config(&up, "shed", "max_concurrent = 1", extra)).await;
    let (gate, holder) = hold(&gw, &up, Some("standard")).await;
    let first_batch = send(&gw, KEY, Some("batch"), ask("B1"));
    queued(&gw, "shed/m", "batch", 1).await;

    // The batch class's room is full: the newcomer is shed.
    let shed = send(&gw, KEY, Some("batch"), ask("B2")).await.unwrap();
    assert_eq!(shed.status(), 503);
    let retry_after: u64 = header(&shed, "retry-after").parse().unwrap();
    assert!(retry_after >= 1, "{retry_after}");
    assert_eq!(header(&shed, "x-switchyard-priority"), "batch");
    header(&shed, "x-switchyard-queue-ms")
        .parse::<u64>()
        .unwrap();
    let body: Value = shed.json().await.unwrap();
    assert_eq!(body["error"]["code"], "overloaded", "{body}");

    // The interactive class has no room of its own, yet an interactive request is not shed
    // while batch work waits: the waiting batch request is, and it takes its place.
    let interactive = send(&gw, KEY, None, ask("I"));
    let evicted = first_batch.await.unwrap();
    assert_eq!(evicted.status(), 503);
    let body: Value = evicted.json().await.unwrap();
    assert_eq!(body["error"]["code"], "overloaded", "{body}");
    queued(&gw, "shed/m", "interactive", 1).await;
    gate.open();
    ok(holder).await;
    ok(interactive).await;
    assert_eq!(order(&up), ["H", "I"]);

    let metrics = gw.metrics().await;
    assert_eq!(
        value(
            &metrics,
            "switchyard_shed_total",
            &[("deployment", "shed/m"), ("class", "batch")]
        ),
        Some(2.0)
    );
    assert_eq!(
        value(
            &metrics,
            "switchyard_shed_total",
            &[("deployment", "shed/m"), ("class", "interactive")]
        ),
        Some(0.0)
    );
    gw.stop().await;
    let records = gw.records();
    let shed: Vec<_> = records.iter().filter(|r| r.status == 503).collect();
    assert_eq!(shed.len(), 2, "{records:?}");
    assert!(shed
        .iter()
        .all(|r| r.priority.as_deref() == Some("batch") && r.error_kind.is_some()));
}

#[tokio::test]
async fn interactive_work_preempts_a_batch_holder_which_runs_again_afterwards() {
    // Exact counts from the first: the test compares the gateway's count with its own.
    switchyard_providers::tokens::warm_up();
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    let mut gw = start(&config(&up, "pre", "max_concurrent = 1", "")).await;
    up.push(Behavior::Hang);
    up.push(Reply::text("urgent answer"));
    up.push(Reply::text("batch answer"));
    let batch = send(&gw, KEY, Some("batch"), ask("B"));
    received(&up, 1).await;
    let interactive = send(&gw, KEY, Some("interactive"), ask("I"));
    // The batch request's upstream call is cancelled.
    tokio::time::timeout(PATIENCE, up.wait_for_disconnects(1))
        .await
        .unwrap();
    let interactive = ok(interactive).await;
    assert_eq!(
        interactive.json::<Value>().await.unwrap()["choices"][0]["message"]["content"],
        "urgent answer"
    );
    let batch = ok(batch).await;
    assert_eq!(header(&batch, "x-switchyard-priority"), "batch");
    assert_eq!(
        batch.json::<Value>().await.unwrap()["choices"][0]["message"]["content"],
        "batch answer"
    );
    assert_eq!(order(&up), ["B", "I", "B"]);
    let metrics = gw.metrics().await;
    assert_eq!(
        value(
            &metrics,
            "switchyard_preemptions_total",
            &[("deployment", "pre/m"), ("class", "batch")]
        ),
        Some(1.0)
    );
    gw.stop().await;
    let records = gw.records();
    let batch = records
        .iter()
        .find(|r| r.priority.as_deref() == Some("batch"))
        .unwrap();
    assert_eq!((batch.status, batch.preemptions), (200, 1), "{batch:?}");
    assert_eq!(batch.attempts, 1, "a preemption spends no attempt");
    let urgent = records
        .iter()
        .find(|r| r.priority.as_deref() == Some("interactive"))
        .unwrap();
    assert_eq!(urgent.preemptions, 0);
    // The cancelled call is charged its prompt, as the gateway counts it, on top of the
    // answer's usage (the same for both requests: one-letter prompts, the fake's usage).
    let messages: Vec<switchyard_api::ChatMessage> =
        serde_json::from_value(ask("B")["messages"].clone()).unwrap();
    let prompt = switchyard_providers::tokens::count_messages(&messages);
    assert!(prompt > 0);
    assert_eq!(
        batch.prompt_tokens,
        urgent.prompt_tokens + prompt,
        "{batch:?}"
    );
    assert!(batch.usage_counted, "{batch:?}");
}

#[tokio::test]
async fn a_streamed_batch_request_past_its_first_chunk_is_not_preempted() {
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    let mut gw = start(&config(&up, "pin", "max_concurrent = 1", "")).await;
    let gate = Gate::new();
    up.push(Reply::text("one two three").held_after_first(&gate));
    let stream = json!({"model": "m", "messages": user("B"), "stream": true});
    // The head comes once the first chunk is in hand; the rest is held upstream.
    let batch = ok(send(&gw, KEY, Some("batch"), stream)).await;
    assert_eq!(header(&batch, "x-switchyard-priority"), "batch");
    header(&batch, "x-switchyard-queue-ms")
        .parse::<u64>()
        .unwrap();
    let interactive = send(&gw, KEY, None, ask("I"));
    // Had the batch holder been preempted, the interactive request would hold the capacity
    // at once (the offer preempts under the queue's lock) and no longer wait.
    queued(&gw, "pin/m", "interactive", 1).await;
    assert_eq!(up.disconnects(), 0);
    gate.open();
    let (text, _) = common::sse_content(&batch.text().await.unwrap());
    assert_eq!(text, "one two three");
    ok(interactive).await;
    assert_eq!(up.disconnects(), 0);
    gw.stop().await;
    assert!(gw.records().iter().all(|r| r.preemptions == 0));
}

#[tokio::test]
async fn a_client_hanging_up_while_queued_or_mid_stream_frees_the_capacity() {
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    let gw = start(&config(&up, "gone", "max_concurrent = 1", "")).await;
    let (gate, holder) = hold(&gw, &up, Some("standard")).await;
    let waiter = send(&gw, KEY, Some("standard"), ask("W"));
    queued(&gw, "gone/m", "standard", 1).await;
    // The waiting client goes away: its place in the queue is given up.
    waiter.abort();
    queued(&gw, "gone/m", "standard", 0).await;
    gate.open();
    ok(holder).await;

    // A stream whose client hangs up mid-way gives its capacity back: the next request runs
    // although the stream's upstream never finishes.
    let never = Gate::new();
    up.push(Reply::text("a long story").held_after_first(&never));
    let stream = json!({"model": "m", "messages": user("S"), "stream": true});
    let streaming = ok(send(&gw, KEY, None, stream)).await;
    drop(streaming);
    tokio::time::timeout(PATIENCE, up.wait_for_disconnects(1))
        .await
        .unwrap();
    let after = tokio::time::timeout(PATIENCE, send(&gw, KEY, None, ask("after")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.status(), 200);
    assert_eq!(order(&up), ["H", "S", "after"]);
}

#[tokio::test]
async fn the_priority_header_is_clamped_to_the_keys_maximum_and_unknown_values_are_refused() {
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    let mut gw = start(&config(&up, "clamp", "max_concurrent = 4", "")).await;
    let clamped = ok(send(&gw, KEY_LOW, Some("critical"), ask("c"))).await;
    assert_eq!(header(&clamped, "x-switchyard-priority"), "standard");
    assert_eq!(header(&clamped, "x-switchyard-queue-ms"), "0");
    let default = ok(send(&gw, KEY_LOW, None, ask("d"))).await;
    assert_eq!(header(&default, "x-switchyard-priority"), "batch");
    let own = ok(send(&gw, KEY, None, ask("e"))).await;
    assert_eq!(header(&own, "x-switchyard-priority"), "interactive");

    let refused = send(&gw, KEY, Some("urgent"), ask("f")).await.unwrap();
    assert_eq!(refused.status(), 400);
    header(&refused, "x-switchyard-queue-ms");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["param"], "x-switchyard-priority", "{body}");
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("x-switchyard-priority") && message.contains("urgent"));
    // The upstream saw the three answered requests only.
    assert_eq!(up.requests().len(), 3);
    gw.stop().await;
    let classes: Vec<_> = gw
        .records()
        .iter()
        .map(|r| r.priority.clone().unwrap_or_default())
        .collect();
    assert_eq!(classes, ["standard", "batch", "interactive", ""]);
}

#[tokio::test]
async fn a_saturated_model_falls_back_to_a_model_with_room_when_configured() {
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    let extra = format!(
        "[providers.spare]\nkind = \"openai\"\nbase_url = \"{}\"\n[models.f]\ndeployments = [{{ provider = \"spare\", upstream_model = \"f\" }}]\n",
        up.base_url()
    );
    let text = config(&up, "sat", "max_concurrent = 1", &extra).replace(
        "capacity = { max_concurrent = 1 } }]\n",
        "capacity = { max_concurrent = 1 } }]\non_saturation = \"fallback\"\nfallbacks = [\"f\"]\n",
    );
    let gw = start(&text).await;
    let (gate, holder) = hold(&gw, &up, None).await;
    let moved = ok(send(&gw, KEY, None, ask("moved"))).await;
    assert_eq!(header(&moved, "x-switchyard-fallback-from"), "m");
    assert!(header(&moved, "x-switchyard-model").starts_with("f;"));
    assert_eq!(header(&moved, "x-switchyard-queue-ms"), "0");
    gate.open();
    ok(holder).await;
    assert_eq!(up.requests()[1].body["model"], "f");
}

#[tokio::test]
async fn metrics_say_depth_saturation_and_desired_replicas_with_config_labels_only() {
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    let gw = start(&config(&up, "gauge", "max_concurrent = 1", "")).await;
    let (gate, holder) = hold(&gw, &up, Some("standard")).await;
    let waiter = send(&gw, KEY, Some("standard"), ask("W"));
    queued(&gw, "gauge/m", "standard", 1).await;
    // A made-up class is refused before it could name a series.
    let refused = send(&gw, KEY, Some("vip"), ask("x")).await.unwrap();
    assert_eq!(refused.status(), 400);
    let metrics = gw.metrics().await;
    let deployment = [("deployment", "gauge/m")];
    assert_eq!(
        value(&metrics, "switchyard_saturation", &deployment),
        Some(1.0)
    );
    // One deployment, one in flight and one waiting over a capacity of one, against the
    // target of 0.8: ceil(1 × 2 ÷ 0.8) = 3.
    assert_eq!(
        value(&metrics, "switchyard_desired_replicas", &[("model", "m")]),
        Some(3.0)
    );
    let classes: Vec<&str> = metrics
        .lines()
        .filter(|l| {
            l.starts_with("switchyard_queue_depth{") && l.contains("deployment=\"gauge/m\"")
        })
        .map(|l| {
            let at = l.find("class=\"").unwrap() + 7;
            &l[at..at + l[at..].find('"').unwrap()]
        })
        .collect();
    let mut sorted = classes.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, ["batch", "critical", "interactive", "standard"]);
    assert!(!metrics.contains("vip"));
    gate.open();
    ok(holder).await;
    ok(waiter).await;
    let metrics = gw.metrics().await;
    assert_eq!(
        value(&metrics, "switchyard_saturation", &deployment),
        Some(0.0)
    );
    assert!(
        value(
            &metrics,
            "switchyard_queue_wait_seconds_count",
            &[("deployment", "gauge/m"), ("class", "standard")]
        )
        .unwrap()
            >= 2.0
    );
}

#[tokio::test]
async fn a_request_waiting_past_its_class_limit_is_shed_though_nothing_is_released() {
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    let extra = "[admission.classes.standard]\nmax_wait_ms = 50\n";
    let gw = start(&config(&up, "expire", "max_concurrent = 1", extra)).await;
    let (gate, holder) = hold(&gw, &up, Some("interactive")).await;
    // The holder never ends while this waits: only the waiter's own timer can shed it.
    let expired = tokio::time::timeout(PATIENCE, send(&gw, KEY, Some("standard"), ask("late")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(expired.status(), 503);
    assert_eq!(header(&expired, "x-switchyard-priority"), "standard");
    let waited: u64 = header(&expired, "x-switchyard-queue-ms").parse().unwrap();
    assert!(waited >= 50, "{waited}");
    let body: Value = expired.json().await.unwrap();
    assert_eq!(body["error"]["code"], "overloaded", "{body}");
    queued(&gw, "expire/m", "standard", 0).await;
    gate.open();
    ok(holder).await;
    assert_eq!(order(&up), ["H"]);
}

#[tokio::test]
async fn a_config_applied_while_requests_hold_capacity_keeps_counting_it_once() {
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    let text = config(&up, "swap", "max_concurrent = 1", &common::admin_section());
    let gw = start(&text).await;
    let (gate, holder) = hold(&gw, &up, Some("standard")).await;
    // A new version (a price changed), built and swapped in while the holder runs.
    let (_, current) = gw
        .admin(reqwest::Method::GET, "/admin/v1/config", None)
        .await;
    let next = current["source"].as_str().unwrap().replace(
        "[[keys]]\nid = \"a\"",
        "[models.m.price]\ninput_per_mtok = 1.0\n\n[[keys]]\nid = \"a\"",
    );
    let (status, applied) = gw
        .admin(
            reqwest::Method::POST,
            "/admin/v1/config",
            Some(json!({"source": next, "message": "a price"})),
        )
        .await;
    assert_eq!(status, 200, "{applied}");
    // On the new version the deployment's capacity is still held by the old one's request.
    let waiter = send(&gw, KEY, Some("standard"), ask("W"));
    queued(&gw, "swap/m", "standard", 1).await;
    gate.open();
    ok(holder).await;
    ok(waiter).await;
    assert_eq!(order(&up), ["H", "W"]);
}
