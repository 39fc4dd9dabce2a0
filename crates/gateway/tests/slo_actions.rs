//! SLOs that act: while a page alert fires, the SLO's `[slos.on_page]` actions are in force as
//! flags set by the actor `slo` (audited; batch work is shed meanwhile), and when the page
//! resolves they are undone, giving back the flag an operator had set before. The SLO clock is driven by hand: the test
//! evaluates at chosen instants, as the SLO loop would every 30 s.

#![expect(clippy::unwrap_used, reason = "test code")]

mod common;

use std::sync::Arc;

use common::{start, user, TestGateway};
use reqwest::Method;
use serde_json::{json, Value};
use switchyard_gateway::control_plane::{slo_actions, ControlPlane};

fn config() -> String {
    format!(
        r#"
{}
[providers.sim]
kind = "sim"
[providers.sim.models.ok]
ttft_ms = {{ p50 = 0 }}
tokens_per_second = {{ p50 = 1e9 }}
output_tokens = {{ p50 = 4 }}
[providers.sim.models.broken]
ttft_ms = {{ p50 = 0 }}
tokens_per_second = {{ p50 = 1e9 }}
output_tokens = {{ p50 = 4 }}
error_rate = 1.0

[models.small]
deployments = [{{ provider = "sim", upstream_model = "ok" }}]
[models.frontier]
deployments = [{{ provider = "sim", upstream_model = "ok" }}]
[models.broken]
deployments = [{{ provider = "sim", upstream_model = "broken" }}]
resilience = {{ max_attempts = 1 }}

[routes.auto]
candidates = [
  {{ model = "small", head = "mistralai/Mixtral-8x7B-Instruct-v0.1" }},
  {{ model = "frontier" }},
]
router = "builtin:routellm-mixtral-gpt4.v1"

[[slos]]
name = "availability"
objective = "availability"
target = 0.99
[slos.on_page]
shed = "batch"
route_policy = {{ auto = "cheap" }}

[[keys]]
id = "test"
secret_sha256 = "{{KEY}}"
"#,
        common::admin_section()
    )
}

async fn flags(gw: &TestGateway) -> Value {
    let (status, body) = gw.admin(Method::GET, "/admin/v1/flags", None).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn flag<'a>(flags: &'a Value, key: &str) -> Option<&'a Value> {
    flags["flags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["key"] == key)
}

fn variant(flag: &Value) -> &str {
    flag["kind"]["variants"][0]["name"].as_str().unwrap()
}

/// Evaluates the SLOs at `at` (unix seconds), then brings the page actions in line, as one tick
/// of the SLO loop does.
async fn tick(control: &Arc<ControlPlane>, at: i64) {
    control.slos.evaluate(at);
    let c = control.clone();
    tokio::task::spawn_blocking(move || slo_actions::reconcile(&c))
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_page_sheds_batch_and_moves_the_route_then_resolving_gives_back_the_operators_flag() {
    let gw = start(&config()).await;
    let control = gw.state.control.clone();
    // An operator's own choice for the route, before anything pages.
    let (status, body) = gw
        .admin(
            Method::PUT,
            "/admin/v1/flags/routes.auto.policy",
            Some(json!({"kind": {"type": "variant", "variants": [{"name": "best", "weight": 1}]}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    for _ in 0..20 {
        let r = gw
            .chat(json!({"model": "broken", "messages": user("hi")}))
            .send()
            .await
            .unwrap();
        let status = r.status();
        assert!(
            status.is_server_error(),
            "{status} {}",
            r.text().await.unwrap()
        );
    }
    let now = chrono::Utc::now().timestamp();
    // Counted when each record closes, which may trail the answers a little.
    switchyard_testkit::eventually(
        std::time::Duration::from_secs(30),
        "the SLO counted the 20 requests",
        || {
            let (statuses, _) = control.slos.status(now + 1, None);
            std::future::ready(statuses.iter().any(|s| s.budget.total >= 20))
        },
    )
    .await;
    tick(&control, now + 1).await;
    assert!(control.slos.paging().is_empty(), "pending, not firing yet");
    assert!(flag(&flags(&gw).await, "admission.shed").is_none());
    // The page rules fire after holding for two minutes.
    tick(&control, now + 125).await;
    assert_eq!(
        control.slos.paging().into_iter().collect::<Vec<_>>(),
        ["availability"]
    );
    let set = flags(&gw).await;
    assert_eq!(variant(flag(&set, "admission.shed").unwrap()), "batch");
    // Batch work is shed at once; interactive work goes on.
    let shed = gw
        .chat(json!({"model": "small", "messages": user("hi")}))
        .header("x-switchyard-priority", "batch")
        .send()
        .await
        .unwrap();
    assert_eq!(shed.status(), 503);
    assert_eq!(shed.headers()["retry-after"], "30");
    let body: Value = shed.json().await.unwrap();
    assert_eq!(body["error"]["code"], "overloaded", "{body}");
    let served = gw
        .chat(json!({"model": "small", "messages": user("hi")}))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(variant(flag(&set, "routes.auto.policy").unwrap()), "cheap");
    let (_, audit) = gw.admin(Method::GET, "/admin/v1/audit", None).await;
    let by_slo: Vec<&Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == "slo")
        .collect();
    assert_eq!(by_slo.len(), 2, "{audit}");
    for e in &by_slo {
        assert_eq!(e["action"], "flag.set");
        assert!(
            e["reason"]
                .as_str()
                .unwrap()
                .contains("SLO `availability` paging"),
            "{e}"
        );
    }
    // Evaluated again while still paging: nothing more is written.
    tick(&control, now + 155).await;
    assert_eq!(gw.audit_actions().await.len(), 4);

    // Hours later the errors have left every page window; the page resolves after its delay.
    let later = now + 7 * 3600;
    tick(&control, later).await;
    tick(&control, later + 301).await;
    assert!(control.slos.paging().is_empty());
    let back = flags(&gw).await;
    assert!(flag(&back, "admission.shed").is_none(), "{back}");
    let batch = gw
        .chat(json!({"model": "small", "messages": user("hi")}))
        .header("x-switchyard-priority", "batch")
        .send()
        .await
        .unwrap();
    assert_eq!(batch.status(), 200);
    assert_eq!(variant(flag(&back, "routes.auto.policy").unwrap()), "best");
    assert_eq!(
        gw.audit_actions().await,
        [
            "config.apply",
            "flag.set",
            "flag.set",
            "flag.set",
            "flag.delete",
            "flag.set"
        ]
    );
}
