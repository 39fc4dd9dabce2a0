//! Engine-aware routing against fake self-hosted engines over real HTTP: the gateway reads
//! each engine's own `/metrics`, sends requests to the replica whose engine is not loaded,
//! and falls back to its usual pick when an engine's metrics cannot be read.
//!
//! The metrics recorder is process-wide: each test names its providers apart, so the series
//! one test waits for are its own.

#![expect(clippy::unwrap_used, reason = "test code")]

mod common;

use std::time::Duration;

use common::{start, user, TestGateway};
use serde_json::json;
use switchyard_testkit::{eventually, EngineFlavor, FakeEngine, ENGINE_MODEL};

/// A deadline for a slow machine, never a measurement.
const PATIENCE: Duration = Duration::from_secs(20);

/// Model `m` on one deployment per engine, each provider naming its engine, polled every
/// 50 ms.
fn config(engines: &[(&str, &str, &FakeEngine)]) -> String {
    let mut text = String::new();
    let mut deployments = Vec::new();
    for (name, kind, fake) in engines {
        text.push_str(&format!(
            "[providers.{name}]\nkind = \"openai\"\nbase_url = \"{}\"\nengine = \"{kind}\"\nmetrics_poll_ms = 50\n\n",
            fake.base_url()
        ));
        deployments.push(format!(
            "{{ provider = \"{name}\", upstream_model = \"{ENGINE_MODEL}\" }}"
        ));
    }
    text.push_str(&format!(
        "[models.m]\ndeployments = [{}]\n\n[[keys]]\nid = \"test\"\nsecret_sha256 = \"{{KEY}}\"\n",
        deployments.join(", ")
    ));
    text
}

/// The value of the series `name{labels}` in `/metrics`, if shown.
async fn series(gw: &TestGateway, name: &str, labels: &str) -> Option<f64> {
    let text = gw.metrics().await;
    let head = format!("{name}{{{labels}}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&head))
        .and_then(|v| v.trim().parse().ok())
}

async fn wait_for(gw: &TestGateway, name: &str, labels: &str, want: f64, what: &str) {
    eventually(PATIENCE, what, || async move {
        series(gw, name, labels).await == Some(want)
    })
    .await;
}

async fn ask(gw: &TestGateway, n: usize) {
    for _ in 0..n {
        let body = json!({"model": "m", "messages": user("hi"), "max_tokens": 2, "priority": -100});
        let r = gw.chat(body).send().await.unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
}

#[tokio::test]
async fn requests_avoid_a_loaded_vllm_replica_until_its_metrics_go_dark() {
    let busy = FakeEngine::start(EngineFlavor::Vllm, FakeEngine::params(1))
        .await
        .unwrap();
    let idle = FakeEngine::start(EngineFlavor::Vllm, FakeEngine::params(1))
        .await
        .unwrap();
    let hold = busy.hold(3).await;
    let gw = start(&config(&[("va", "vllm", &busy), ("vb", "vllm", &idle)])).await;
    let requests = "switchyard_engine_requests";
    wait_for(
        &gw,
        requests,
        "deployment=\"va/served-model\",state=\"waiting\"",
        2.0,
        "the busy engine's queue is seen",
    )
    .await;
    wait_for(
        &gw,
        requests,
        "deployment=\"va/served-model\",state=\"running\"",
        1.0,
        "the busy engine's batch is seen",
    )
    .await;
    wait_for(
        &gw,
        requests,
        "deployment=\"vb/served-model\",state=\"waiting\"",
        0.0,
        "the idle engine is seen",
    )
    .await;
    let kv = series(
        &gw,
        "switchyard_engine_kv_usage",
        "deployment=\"va/served-model\"",
    )
    .await;
    assert!(kv.is_some_and(|v| v > 0.0), "{kv:?}");

    ask(&gw, 12).await;
    assert_eq!(
        busy.requests().len(),
        0,
        "a request went to the loaded engine"
    );
    assert_eq!(idle.requests().len(), 12);
    // The gateway passes no priority of the caller's to vLLM (the class is the only source).
    assert!(idle.requests().iter().all(|b| b.get("priority").is_none()));

    // Its metrics go dark, then its load ends: the gateway cannot know, and picks as usual.
    busy.set_metrics_up(false);
    let up = "switchyard_engine_metrics_up";
    wait_for(
        &gw,
        up,
        "deployment=\"va/served-model\"",
        0.0,
        "the failed read is seen",
    )
    .await;
    drop(hold);
    ask(&gw, 24).await;
    assert!(
        !busy.requests().is_empty(),
        "without its metrics the replica was never picked"
    );
}

#[tokio::test]
async fn other_engines_are_read_in_their_own_formats() {
    for (flavor, kind, names) in [
        (EngineFlavor::LlamaCpp, "llamacpp", ["la", "lb"]),
        (EngineFlavor::VllmLegacy, "vllm", ["ga", "gb"]),
        (EngineFlavor::Tgi, "tgi", ["ta", "tb"]),
        (EngineFlavor::Sglang, "sglang", ["sa", "sb"]),
    ] {
        let busy = FakeEngine::start(flavor, FakeEngine::params(1))
            .await
            .unwrap();
        let idle = FakeEngine::start(flavor, FakeEngine::params(1))
            .await
            .unwrap();
        let _hold = busy.hold(2).await;
        let gw = start(&config(&[(names[0], kind, &busy), (names[1], kind, &idle)])).await;
        let waiting = |name: &str| format!("deployment=\"{name}/served-model\",state=\"waiting\"");
        wait_for(
            &gw,
            "switchyard_engine_requests",
            &waiting(names[0]),
            1.0,
            kind,
        )
        .await;
        wait_for(
            &gw,
            "switchyard_engine_requests",
            &waiting(names[1]),
            0.0,
            kind,
        )
        .await;
        ask(&gw, 8).await;
        assert_eq!(
            busy.requests().len(),
            0,
            "{kind}: a request went to the loaded engine"
        );
        assert_eq!(idle.requests().len(), 8, "{kind}");
    }
}

#[tokio::test]
async fn the_requests_class_reaches_vllm_as_its_priority() {
    let engine = FakeEngine::start(EngineFlavor::Vllm, FakeEngine::params(4))
        .await
        .unwrap();
    let text = config(&[("vp", "vllm", &engine)]).replace(
        "metrics_poll_ms = 50\n",
        "metrics_poll_ms = 50\npriority_scheduling = true\n",
    );
    let gw = start(&text).await;
    for class in [None, Some("batch"), Some("standard"), Some("critical")] {
        let body = json!({"model": "m", "messages": user("hi"), "max_tokens": 2, "priority": -100});
        let mut r = gw.chat(body);
        if let Some(c) = class {
            r = r.header("x-switchyard-priority", c);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    let sent: Vec<_> = engine
        .requests()
        .iter()
        .map(|b| b["priority"].as_i64())
        .collect();
    // interactive 1, batch 3, standard 2; `critical` is above the key's maximum (interactive).
    assert_eq!(sent, [Some(1), Some(3), Some(2), Some(1)]);
}
