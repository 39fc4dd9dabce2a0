//! Rollouts end to end with the simulator: a healthy candidate is promoted through every step,
//! a candidate with 20% errors is rolled back within a stated number of its requests, one whose
//! latency doubles is rolled back, and a prompt version whose answers fail an output guard is
//! rolled back (its label never moves). Each test prints the timeline it saw and writes it to
//! `target/tmp/rollout-timelines/ID.txt`.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    clippy::disallowed_methods,
    reason = "test code"
)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{start, user, TestGateway};
use reqwest::Method;
use serde_json::{json, Value};
use switchyard_rollout::{requests_to_detect, AnalysisSpec, Look};

/// Two simulated models: `base` and `cand`, the candidate's behaviour given by `cand_model`.
fn config(cand_model: &str) -> String {
    format!(
        r#"
{}
[providers.sim]
kind = "sim"

[providers.sim.models.base]
ttft_ms = {{ p50 = 20 }}
tokens_per_second = {{ p50 = 1e9 }}
output_tokens = {{ p50 = 4 }}

[providers.sim.models.cand]
{cand_model}

[models.base]
deployments = [{{ provider = "sim", upstream_model = "base" }}]
resilience = {{ max_attempts = 1 }}

[models.cand]
deployments = [{{ provider = "sim", upstream_model = "cand" }}]
resilience = {{ max_attempts = 1 }}

[guards.compliance]
action = "block"
forbidden = ["(?i)guaranteed returns"]

[[keys]]
id = "test"
secret_sha256 = "{{KEY}}"
"#,
        common::admin_section()
    )
}

const HEALTHY: &str =
    "ttft_ms = { p50 = 20 }\ntokens_per_second = { p50 = 1e9 }\noutput_tokens = { p50 = 4 }";

/// Small steps so a test sees every one: 20%, 50%, then promotion (100% is never judged).
fn spec(min_samples: u64) -> Value {
    json!({
        "steps": [2000, 5000, 10000],
        "min_step_duration_ms": 0,
        "min_step_requests": min_samples,
        "analysis": {"min_samples": min_samples},
    })
}

/// Sends requests from distinct users, `workers` at a time, until the rollout leaves
/// `running` (or `limit` requests); returns the rollout's final view.
async fn drive(
    gw: &Arc<TestGateway>,
    id: &str,
    body: Value,
    workers: usize,
    limit: usize,
) -> Value {
    let sent = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (gw, sent, body, id) = (gw.clone(), sent.clone(), body.clone(), id.to_owned());
        tasks.push(tokio::spawn(async move {
            loop {
                let n = sent.fetch_add(1, Ordering::Relaxed);
                if n >= limit {
                    return;
                }
                let mut b = body.clone();
                b["user"] = json!(format!("user-{n}"));
                let _ = gw.chat(b).send().await.unwrap().bytes().await;
                if n % 20 == 0 {
                    let (_, r) = gw
                        .admin(Method::GET, &format!("/admin/v1/rollouts/{id}"), None)
                        .await;
                    if r["rollout"]["state"]["state"] != "running" {
                        return;
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // The controller runs after each outcome; give it a moment to finish its last look.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (_, r) = gw
        .admin(Method::GET, &format!("/admin/v1/rollouts/{id}"), None)
        .await;
    // The timeline this test saw, printed and kept as an artifact of the run.
    let mut timeline = format!("timeline of {id}:\n");
    for t in r["rollout"]["timeline"].as_array().unwrap() {
        timeline.push_str(&format!(
            "  {} {}\n",
            t["at_ms"],
            t["reason"].as_str().unwrap()
        ));
    }
    print!("{timeline}");
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("rollout-timelines");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{id}.txt")), timeline).unwrap();
    r
}

async fn start_rollout(gw: &TestGateway, body: Value) -> String {
    let (status, r) = gw
        .admin(Method::POST, "/admin/v1/rollouts", Some(body))
        .await;
    assert_eq!(status, 200, "{r}");
    r["rollout"]["id"].as_str().unwrap().to_owned()
}

fn state(r: &Value) -> &str {
    r["rollout"]["state"]["state"].as_str().unwrap_or_default()
}

/// Why the rollout ended: its last transition's reason.
fn last_reason(r: &Value) -> &str {
    r["rollout"]["timeline"]
        .as_array()
        .and_then(|t| t.last())
        .and_then(|t| t["reason"].as_str())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_healthy_candidate_is_promoted_through_every_step() {
    let gw = Arc::new(start(&config(HEALTHY)).await);
    let id = start_rollout(
        &gw,
        json!({"id": "cand-ok", "kind": "model", "baseline": "base", "candidate": "cand", "spec": spec(20)}),
    )
    .await;
    let r = drive(
        &gw,
        &id,
        json!({"model": "base", "messages": user("hi")}),
        4,
        3000,
    )
    .await;
    assert_eq!(state(&r), "promoted", "{r}");
    let reasons: Vec<&str> = r["rollout"]["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons.len(), 3, "{reasons:#?}");
    assert!(reasons[0].starts_with("started: 20%"), "{reasons:#?}");
    assert!(reasons[1].contains("advanced to 50%"), "{reasons:#?}");
    assert!(reasons[2].contains("promoted"), "{reasons:#?}");
    // Promoted: every request for `base` now goes to `cand`.
    let r = gw
        .chat(json!({"model": "base", "user": "anyone", "messages": user("hi")}))
        .send()
        .await
        .unwrap();
    assert!(r.headers()["x-switchyard-model"]
        .to_str()
        .unwrap()
        .starts_with("cand"));
    let actions = gw.audit_actions().await;
    assert_eq!(
        actions,
        [
            "config.apply",
            "rollout.running",
            "rollout.running",
            "rollout.promoted"
        ]
    );
}

#[tokio::test]
async fn a_candidate_with_20_percent_errors_is_rolled_back_within_the_stated_bound() {
    let min_samples = 20;
    let analysis = AnalysisSpec {
        min_samples,
        ..AnalysisSpec::default()
    };
    // The analysis needs this many candidate requests with exactly 20% errors to breach early,
    // at the first step's 20% share, where the baseline sees four clean requests for each.
    let needed = (min_samples..10_000)
        .find(|&n| {
            requests_to_detect(&analysis, Look::Early, 0.0, 4 * n, 0.20).is_some_and(|k| k <= n)
        })
        .unwrap();
    // Stated bound: the simulator's errors are a seeded 20% draw, not exactly every fifth
    // request, so allow twice that, plus the few requests in flight while the controller looks.
    let bound = 2 * needed + 8;
    println!("needed at exactly 20%: {needed}; bound: {bound}");

    let gw = Arc::new(start(&config(&format!("{HEALTHY}\nerror_rate = 0.2"))).await);
    let id = start_rollout(
        &gw,
        json!({"id": "cand-errors", "kind": "model", "baseline": "base", "candidate": "cand", "spec": spec(min_samples)}),
    )
    .await;
    let r = drive(
        &gw,
        &id,
        json!({"model": "base", "messages": user("hi")}),
        1,
        5000,
    )
    .await;
    assert_eq!(state(&r), "rolled_back", "{r}");
    let reason = last_reason(&r);
    assert!(reason.starts_with("error rate breached"), "{reason}");

    // Count the candidate's requests from the records, not from what the rollout says.
    let mut gw = Arc::into_inner(gw).unwrap();
    gw.stop().await;
    let candidate = gw
        .records()
        .iter()
        .filter(|r| r.rollout.as_deref() == Some("cand-errors:candidate"))
        .count() as u64;
    println!("candidate requests until the rollback: {candidate}");
    assert!(
        candidate >= min_samples,
        "judged before min_samples: {candidate}"
    );
    assert!(
        candidate <= bound,
        "{candidate} candidate requests, bound {bound}"
    );
}

#[tokio::test]
async fn a_candidate_whose_latency_doubles_is_rolled_back() {
    // 50 ms against 100 ms to the first token: doubled, and far above this machine's noise.
    let slow = HEALTHY.replace("p50 = 20", "p50 = 100");
    let gw = Arc::new(
        start(&config(&slow).replace("ttft_ms = { p50 = 20 }", "ttft_ms = { p50 = 50 }")).await,
    );
    let id = start_rollout(
        &gw,
        json!({"id": "cand-slow", "kind": "model", "baseline": "base", "candidate": "cand", "spec": spec(20)}),
    )
    .await;
    let r = drive(
        &gw,
        &id,
        json!({"model": "base", "messages": user("hi")}),
        4,
        3000,
    )
    .await;
    assert_eq!(state(&r), "rolled_back", "{r}");
    let reason = last_reason(&r);
    assert!(reason.starts_with("p95 latency breached"), "{reason}");
    // Everyone is back on the baseline at once.
    let r = gw
        .chat(json!({"model": "base", "user": "user-1", "messages": user("hi")}))
        .send()
        .await
        .unwrap();
    assert!(r.headers()["x-switchyard-model"]
        .to_str()
        .unwrap()
        .starts_with("base"));
}

#[tokio::test]
async fn a_prompt_version_that_fails_an_output_guard_is_rolled_back() {
    // The simulator promises returns when asked to sound confident; compliance blocks that.
    let rules = format!(
        "{HEALTHY}\n[[providers.sim.models.cand.rules]]\npattern = \"(?i)confident\"\nreply = \"Buy now: guaranteed returns.\""
    );
    let text = config(&rules).replace("upstream_model = \"base\"", "upstream_model = \"cand\"");
    let gw = Arc::new(start(&text).await);
    let prompt = |style: &str| {
        format!(
            "name = \"advice\"\nmodel = \"base\"\n[variables]\nq = {{ required = true }}\n[[messages]]\nrole = \"user\"\ncontent = \"{{{{ q }}}}{style}\"\n"
        )
    };
    for (source, label) in [
        (prompt(""), "production"),
        (prompt(" Sound confident."), "staging"),
    ] {
        let (status, r) = gw
            .admin(
                Method::POST,
                "/admin/v1/prompts",
                Some(json!({"source": source, "label": label})),
            )
            .await;
        assert_eq!(status, 200, "{r}");
    }
    let id = start_rollout(
        &gw,
        json!({"id": "advice-v2", "kind": "prompt", "baseline": "advice@production", "candidate": "2", "spec": spec(20)}),
    )
    .await;
    let body =
        json!({"model": "prompt:advice", "prompt": {"variables": {"q": "Should I invest?"}}});
    let r = drive(&gw, &id, body, 4, 3000).await;
    assert_eq!(state(&r), "rolled_back", "{r}");
    let reason = last_reason(&r);
    assert!(reason.starts_with("guard violations breached"), "{reason}");
    let (_, shown) = gw
        .admin(Method::GET, "/admin/v1/prompts/advice", None)
        .await;
    assert_eq!(shown["labels"]["production"], 1, "the label never moved");
}

#[tokio::test]
async fn manual_pause_promote_and_conflicts() {
    let gw = start(&config(HEALTHY)).await;
    let body = json!({"id": "by-hand", "kind": "model", "baseline": "base", "candidate": "cand"});
    let id = start_rollout(&gw, body.clone()).await;
    let (status, r) = gw
        .admin(Method::POST, "/admin/v1/rollouts", Some(body))
        .await;
    assert_eq!(status, 400, "{r}");
    assert_eq!(r["error"]["code"], "rollout_conflict");
    let (status, r) = gw
        .admin(
            Method::POST,
            "/admin/v1/rollouts",
            Some(json!({"kind": "model", "baseline": "base", "candidate": "nope"})),
        )
        .await;
    assert_eq!(status, 400, "{r}");
    let path = |a: &str| format!("/admin/v1/rollouts/{id}/{a}");
    let (status, r) = gw
        .admin(
            Method::POST,
            &path("pause"),
            Some(json!({"reason": "lunch"})),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(state(&r), "paused");
    let (status, _) = gw.admin(Method::POST, &path("pause"), None).await;
    assert_eq!(status, 400);
    let (status, r) = gw.admin(Method::POST, &path("promote"), None).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(state(&r), "promoted");
    assert_eq!(r["traffic"]["candidate_basis_points"], 10000);
    let (status, _) = gw.admin(Method::POST, &path("sideways"), None).await;
    assert_eq!(status, 404);
    let (_, list) = gw.admin(Method::GET, "/admin/v1/rollouts", None).await;
    assert_eq!(list["rollouts"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_version_without_a_model_under_rollout_is_refused_and_requests_keep_their_arms() {
    let gw = start(&config(HEALTHY)).await;
    start_rollout(
        &gw,
        json!({"id": "keep-cand", "kind": "model", "baseline": "base", "candidate": "cand"}),
    )
    .await;
    let (_, running) = gw.admin(Method::GET, "/admin/v1/config", None).await;
    let source = running["source"].as_str().unwrap();
    let without_cand = source.replacen(
        "[models.cand]\ndeployments = [{ provider = \"sim\", upstream_model = \"cand\" }]\nresilience = { max_attempts = 1 }\n",
        "",
        1,
    );
    assert_ne!(without_cand, source, "the test's config changed shape");
    let (status, r) = gw
        .admin(
            Method::POST,
            "/admin/v1/config",
            Some(json!({"source": without_cand, "message": "drop cand"})),
        )
        .await;
    assert_eq!(status, 400, "{r}");
    assert_eq!(r["error"]["code"], "rollout_in_force");
    let (_, still) = gw.admin(Method::GET, "/admin/v1/config", None).await;
    assert_eq!(still["id"], running["id"]);
    // Every user is still answered, whichever arm they take.
    // A version without `cand` that starts anyway (a new file at start-up, or another
    // replica's apply): the candidate's arm is served by the baseline, never failed.
    let block = "[models.cand]\ndeployments = [{ provider = \"sim\", upstream_model = \"cand\" }]\nresilience = { max_attempts = 1 }\n";
    let restarted = config(HEALTHY).replacen(block, "", 1);
    assert_ne!(
        restarted,
        config(HEALTHY),
        "the test's config changed shape"
    );
    let gw = gw.restart(&restarted).await;
    for n in 0..20 {
        let body = json!({"model": "base", "messages": user("hi"), "user": format!("user-{n}")});
        let answer = gw.chat(body).send().await.unwrap();
        assert_eq!(answer.status(), 200);
    }
}

/// Stages a candidate config: the running text with `base` served by the simulator's `cand`.
async fn stage_candidate(gw: &TestGateway) -> String {
    let (_, running) = gw.admin(Method::GET, "/admin/v1/config", None).await;
    let source = running["source"].as_str().unwrap().replacen(
        "upstream_model = \"base\"",
        "upstream_model = \"cand\"",
        1,
    );
    let (status, staged) = gw
        .admin(
            Method::POST,
            "/admin/v1/config",
            Some(json!({"source": source, "stage": true, "message": "serve base from cand"})),
        )
        .await;
    assert_eq!(status, 200, "{staged}");
    assert_eq!(staged["staged"], true);
    // Staged, not applied.
    let (_, still) = gw.admin(Method::GET, "/admin/v1/config", None).await;
    assert_eq!(still["id"], running["id"]);
    staged["version"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_config_version_is_rolled_out_and_promoted_then_a_bad_one_rolled_back() {
    let gw = Arc::new(start(&config(HEALTHY)).await);
    let good = stage_candidate(&gw).await;
    let id = start_rollout(
        &gw,
        json!({"id": "config-ok", "kind": "config", "baseline": "running", "candidate": &good[..12], "spec": spec(20)}),
    )
    .await;
    let body = json!({"model": "base", "messages": user("hi")});
    let r = drive(&gw, &id, body.clone(), 4, 3000).await;
    assert_eq!(state(&r), "promoted", "{r}");
    let (_, running) = gw.admin(Method::GET, "/admin/v1/config", None).await;
    assert_eq!(
        running["id"],
        good.as_str(),
        "promotion applied the candidate"
    );

    // The same change again, now to a candidate that fails a fifth of its requests.
    let text = config(&format!("{HEALTHY}\nerror_rate = 0.2"));
    let gw = Arc::new(start(&text).await);
    let bad = stage_candidate(&gw).await;
    let (_, before) = gw.admin(Method::GET, "/admin/v1/config", None).await;
    let id = start_rollout(
        &gw,
        json!({"id": "config-bad", "kind": "config", "baseline": "running", "candidate": bad, "spec": spec(20)}),
    )
    .await;
    let r = drive(&gw, &id, body, 1, 5000).await;
    assert_eq!(state(&r), "rolled_back", "{r}");
    assert!(last_reason(&r).starts_with("error rate breached"), "{r}");
    let (_, after) = gw.admin(Method::GET, "/admin/v1/config", None).await;
    assert_eq!(after["id"], before["id"], "the baseline keeps running");
    let actions = gw.audit_actions().await;
    assert_eq!(
        actions,
        [
            "config.apply",
            "config.stage",
            "rollout.running",
            "rollout.rolled_back"
        ]
    );
}

#[tokio::test]
async fn a_config_rollout_survives_a_restart_and_ends_when_the_version_under_it_changes() {
    let text = config(HEALTHY);
    let gw = start(&text).await;
    let candidate = stage_candidate(&gw).await;
    start_rollout(
        &gw,
        json!({"id": "cfg", "kind": "config", "baseline": "running", "candidate": candidate, "spec": {"steps": [5000, 10000]}}),
    )
    .await;
    let gw = gw.restart(&text).await;
    let (_, r) = gw.admin(Method::GET, "/admin/v1/rollouts/cfg", None).await;
    assert_eq!(state(&r), "running", "{r}");
    // Some users now run on the candidate's pipeline: their records name its version.
    for u in 0..40 {
        let r = gw
            .chat(json!({"model": "base", "user": format!("u{u}"), "messages": user("hi")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let gw = gw.restart(&format!("{text}\n# edited\n")).await;
    let (_, r) = gw.admin(Method::GET, "/admin/v1/rollouts/cfg", None).await;
    assert_eq!(state(&r), "aborted", "{r}");
    assert!(last_reason(&r).contains("another config version"), "{r}");
    let mut gw = gw;
    gw.stop().await;
    let versions: std::collections::BTreeSet<String> = gw
        .records()
        .into_iter()
        .filter(|r| r.rollout.as_deref() == Some("cfg:candidate"))
        .filter_map(|r| r.config_version)
        .collect();
    assert_eq!(
        versions.into_iter().collect::<Vec<_>>(),
        [candidate[..12].to_owned()]
    );
}

/// Waits until the store holds at least `n` records (the telemetry writer batches them).
async fn until_recorded(gw: &TestGateway, n: u64) {
    for _ in 0..200 {
        if gw.records_written() >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("fewer than {n} records were written");
}

#[tokio::test]
async fn blue_green_judges_the_candidate_against_the_baseline_before_the_switch() {
    // The slow candidate of the latency test, switched to all at once.
    let slow = HEALTHY.replace("p50 = 20", "p50 = 100");
    let text = config(&slow).replace("ttft_ms = { p50 = 20 }", "ttft_ms = { p50 = 50 }");
    let gw = Arc::new(start(&text).await);
    // The baseline's traffic before the switch is the reference.
    for u in 0..30 {
        let r = gw
            .chat(json!({"model": "base", "user": format!("before-{u}"), "messages": user("hi")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    until_recorded(&gw, 30).await;
    let mut spec = spec(20);
    spec["kind"] = json!("blue_green");
    let id = start_rollout(
        &gw,
        json!({"id": "bg", "kind": "model", "baseline": "base", "candidate": "cand", "spec": spec}),
    )
    .await;
    let (_, r) = gw.admin(Method::GET, "/admin/v1/rollouts/bg", None).await;
    assert_eq!(r["traffic"]["candidate_basis_points"], 10000, "{r}");
    assert_eq!(r["traffic"]["warm"], "baseline", "{r}");
    let r = drive(
        &gw,
        &id,
        json!({"model": "base", "messages": user("hi")}),
        4,
        2000,
    )
    .await;
    assert_eq!(state(&r), "rolled_back", "{r}");
    assert!(last_reason(&r).starts_with("p95 latency breached"), "{r}");
}

#[tokio::test]
async fn a_firing_page_pauses_the_rollouts_in_force_and_reaches_the_webhook() {
    use axum::routing::post;
    let seen = Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
    let log = seen.clone();
    let hook = axum::Router::new().route(
        "/alerts",
        post(move |axum::Json(body): axum::Json<Value>| {
            let log = log.clone();
            async move {
                log.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/alerts", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, hook).await.unwrap() });

    let text = format!(
        "{}\n[alerts]\nwebhook = \"{url}\"\non_page = \"pause\"\n",
        config(HEALTHY)
    );
    let gw = start(&text).await;
    start_rollout(
        &gw,
        json!({"id": "gated", "kind": "model", "baseline": "base", "candidate": "cand"}),
    )
    .await;
    // What the SLO loop hands over when the fast-burn page starts firing.
    let page = switchyard_slo::AlertEvent {
        at_secs: 1_800_000_000,
        slo: "availability".into(),
        rule: "page-1h".into(),
        severity: switchyard_slo::Severity::Page,
        from: switchyard_slo::AlertState::Pending,
        to: switchyard_slo::AlertState::Firing,
        threshold: 14.4,
        long_secs: 3600,
        long_burn: 20.0,
        short_secs: 300,
        short_burn: 30.0,
    };
    switchyard_gateway::control_plane::alerts::act(
        &gw.state.control,
        &[page],
        &reqwest::Client::new(),
    )
    .await;
    let (_, r) = gw
        .admin(Method::GET, "/admin/v1/rollouts/gated", None)
        .await;
    assert_eq!(state(&r), "paused", "{r}");
    let (_, audit) = gw.admin(Method::GET, "/admin/v1/audit", None).await;
    let why = audit["entries"][2]["reason"].as_str().unwrap();
    assert!(why.contains("SLO `availability` paged"), "{why}");
    assert_eq!(audit["entries"][2]["actor"], "slo");
    let posted = seen.lock().unwrap().clone();
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0]["slo"], "availability");
    assert_eq!(posted[0]["to"], "firing");
    assert_eq!(
        gw.audit_actions().await,
        ["config.apply", "rollout.running", "rollout.paused"]
    );
}
