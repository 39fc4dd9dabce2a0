//! The admin API over real HTTP: config versions applied, diffed, listed and rolled back, the
//! audit chain verified and its tampering detected, 20 swaps under steady load with zero
//! failed requests, and a restart that keeps the version applied through the API.

#![expect(clippy::unwrap_used, clippy::disallowed_methods, reason = "test code")]

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use common::{start, user, TestGateway, ADMIN, KEY};
use serde_json::{json, Value};

fn config() -> String {
    common::admin_fast_config()
}

async fn admin_get(gw: &TestGateway, path: &str) -> (u16, Value) {
    gw.admin(reqwest::Method::GET, path, None).await
}

async fn admin_post(gw: &TestGateway, path: &str, body: Value) -> (u16, Value) {
    gw.admin(reqwest::Method::POST, path, Some(body)).await
}

async fn admin_put(gw: &TestGateway, path: &str, body: Value) -> (u16, Value) {
    gw.admin(reqwest::Method::PUT, path, Some(body)).await
}

async fn model_ids(gw: &TestGateway) -> Vec<String> {
    let r = gw
        .http
        .get(gw.url("/v1/models"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The running text with one more model `extra-N` on the same provider.
fn with_extra_model(source: &str, n: usize) -> String {
    format!("{source}\n[models.extra-{n}]\ndeployments = [{{ provider = \"sim\", upstream_model = \"fast\" }}]\n")
}

#[tokio::test]
async fn only_the_admin_key_opens_the_admin_api() {
    let gw = start(&config()).await;
    let r = gw
        .http
        .get(gw.url("/admin/v1/config"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = gw.http.get(gw.url("/admin/v1/audit")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(ADMIN)
        .json(&json!({"model": "fast", "messages": user("hi")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let (status, body) = admin_get(&gw, "/admin/v1/config").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["author"], "startup");
    assert!(body["source"].as_str().unwrap().contains("[models.fast]"));
}

#[tokio::test]
async fn versions_apply_diff_roll_back_and_are_audited() {
    let mut gw = start(&config()).await;
    let (_, first) = admin_get(&gw, "/admin/v1/config").await;
    let first_id = first["id"].as_str().unwrap().to_owned();
    let source = first["source"].as_str().unwrap().to_owned();

    // A broken text is refused with its line, and nothing changes.
    let broken = source.replace("[models.fast]", "[models.fast]\nprice = \"free\"");
    let (status, err) = admin_post(
        &gw,
        "/admin/v1/config",
        json!({"source": broken, "message": "oops"}),
    )
    .await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["code"], "invalid_config");
    assert!(
        err["error"]["message"].as_str().unwrap().contains(":"),
        "{err}"
    );
    let (_, diff) = admin_post(&gw, "/admin/v1/config/diff", json!({"source": broken})).await;
    assert!(!diff["problems"].as_array().unwrap().is_empty(), "{diff}");

    // A valid change: diffed first, then applied, visible on the next request.
    let next = with_extra_model(&source, 1);
    let (_, diff) = admin_post(&gw, "/admin/v1/config/diff", json!({"source": next})).await;
    assert_eq!(diff["problems"], json!([]));
    assert!(
        diff["diff"].as_str().unwrap().contains("+[models.extra-1]"),
        "{diff}"
    );
    let (status, applied) = admin_post(
        &gw,
        "/admin/v1/config",
        json!({"source": next, "message": "add extra-1", "reason": "ticket 42"}),
    )
    .await;
    assert_eq!(status, 200, "{applied}");
    assert_eq!(applied["changed"], true);
    assert_eq!(applied["parent"], first_id.as_str());
    let second_id = applied["version"].as_str().unwrap().to_owned();
    assert!(model_ids(&gw).await.contains(&"extra-1".to_owned()));
    let r = gw
        .chat(json!({"model": "extra-1", "messages": user("hi")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // The same text again changes nothing.
    let (_, again) = admin_post(&gw, "/admin/v1/config", json!({"source": next})).await;
    assert_eq!(again["changed"], false);

    // Rollback: the version before, one call.
    let (status, back) = admin_post(
        &gw,
        "/admin/v1/config/rollback",
        json!({"reason": "extra-1 misbehaves"}),
    )
    .await;
    assert_eq!(status, 200, "{back}");
    assert_eq!(back["version"], first_id.as_str());
    assert!(!model_ids(&gw).await.contains(&"extra-1".to_owned()));
    // ... and forward again by id prefix.
    let (status, fwd) = admin_post(
        &gw,
        "/admin/v1/config/rollback",
        json!({"to": &second_id[..10]}),
    )
    .await;
    assert_eq!(status, 200, "{fwd}");
    assert_eq!(fwd["version"], second_id.as_str());

    let (_, history) = admin_get(&gw, "/admin/v1/config/history").await;
    assert_eq!(
        history["versions"].as_array().unwrap().len(),
        2,
        "{history}"
    );
    assert_eq!(history["applied"].as_array().unwrap().len(), 4, "{history}");
    assert_eq!(history["running"], second_id.as_str());

    let (_, audit) = admin_get(&gw, "/admin/v1/audit").await;
    let entries = audit["entries"].as_array().unwrap();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "config.apply",
            "config.apply",
            "config.rollback",
            "config.rollback"
        ]
    );
    assert_eq!(entries[1]["actor"], "alice");
    assert_eq!(entries[1]["reason"], "ticket 42");
    assert!(entries[1]["diff"]
        .as_str()
        .unwrap()
        .contains("+[models.extra-1]"));
    let (_, verify) = admin_get(&gw, "/admin/v1/audit/verify").await;
    assert_eq!(verify, json!({"ok": true, "checked": 4}));

    // Records name the version they ran on.
    gw.stop().await;
    let records = gw.records();
    let short = |id: &str| id[..12].to_owned();
    assert!(records
        .iter()
        .any(|r| r.config_version.as_deref() == Some(short(&second_id).as_str())));

    // Any edit of the log is found (shown on SQLite's file; the store's conformance suite
    // shows it on PostgreSQL).
    if gw.postgres.is_some() {
        return;
    }
    let db = rusqlite::Connection::open(gw.dir.path().join("switchyard.db")).unwrap();
    // The store refuses edits through SQL triggers; someone editing the file drops them first.
    db.execute_batch(
        "DROP TRIGGER audit_no_update; UPDATE audit SET reason = 'nothing to see' WHERE seq = 2;",
    )
    .unwrap();
    drop(db);
    let gw = gw.restart(&config()).await;
    let (_, verify) = admin_get(&gw, "/admin/v1/audit/verify").await;
    assert_eq!(verify["ok"], false, "{verify}");
    assert_eq!(verify["seq"], 2, "{verify}");
}

#[tokio::test]
async fn a_restart_with_the_old_file_keeps_the_version_applied_since() {
    let gw = start(&config()).await;
    let (_, first) = admin_get(&gw, "/admin/v1/config").await;
    let next = with_extra_model(first["source"].as_str().unwrap(), 7);
    let (status, _) = admin_post(&gw, "/admin/v1/config", json!({"source": next})).await;
    assert_eq!(status, 200);
    let gw = gw.restart(&config()).await;
    assert!(model_ids(&gw).await.contains(&"extra-7".to_owned()));
    // An edited file is a new version and wins.
    let edited = format!("{}\n# edited\n", config());
    let gw = gw.restart(&edited).await;
    assert!(!model_ids(&gw).await.contains(&"extra-7".to_owned()));
    let (_, current) = admin_get(&gw, "/admin/v1/config").await;
    assert!(current["source"].as_str().unwrap().contains("# edited"));
}

#[tokio::test]
async fn twenty_swaps_under_steady_load_fail_no_request() {
    let gw = Arc::new(start(&config()).await);
    let (_, first) = admin_get(&gw, "/admin/v1/config").await;
    let source = first["source"].as_str().unwrap().to_owned();

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for w in 0..4 {
        let (gw, stop, sent) = (gw.clone(), stop.clone(), sent.clone());
        workers.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let stream = (w + i) % 2 == 0;
                let r = gw
                    .chat(json!({"model": "fast", "stream": stream, "messages": user(&format!("q {w} {i}"))}))
                    .send()
                    .await
                    .unwrap();
                let status = r.status();
                let body = r.text().await.unwrap();
                if status != 200 || (stream && !body.ends_with("data: [DONE]\n\n")) {
                    failures.push(format!("{status}: {body}"));
                }
                sent.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
            failures
        }));
    }
    for n in 0..20 {
        let (status, applied) = admin_post(
            &gw,
            "/admin/v1/config",
            json!({"source": with_extra_model(&source, n), "message": format!("swap {n}")}),
        )
        .await;
        assert_eq!(status, 200, "{applied}");
        assert_eq!(applied["changed"], true);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for w in workers {
        failures.extend(w.await.unwrap());
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(
        sent.load(Ordering::Relaxed) >= 40,
        "the load was not steady: {} requests",
        sent.load(Ordering::Relaxed)
    );
    let (_, history) = admin_get(&gw, "/admin/v1/config/history?limit=100").await;
    assert_eq!(history["applied"].as_array().unwrap().len(), 21);
}

async fn cache_header(gw: &TestGateway, user: &str) -> String {
    let r = gw
        .chat(json!({"model": "fast", "temperature": 0, "user": user, "messages": user_msg()}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.headers()["x-switchyard-cache"]
        .to_str()
        .unwrap()
        .to_owned()
}

fn user_msg() -> Value {
    user("What is the capital of France?")
}

#[tokio::test]
async fn a_flag_flip_takes_effect_on_the_next_request_and_is_audited() {
    let gw = start(&format!("{}\n[cache]\nsemantic = false\n", config())).await;
    assert_eq!(cache_header(&gw, "u1").await, "miss");
    assert_eq!(cache_header(&gw, "u1").await, "hit-exact");

    // Off for everyone: the cache is bypassed at once.
    let (status, set) = admin_put(
        &gw,
        "/admin/v1/flags/cache",
        json!({"kind": {"type": "boolean", "on": false}, "reason": "incident 7"}),
    )
    .await;
    assert_eq!(status, 200, "{set}");
    assert_eq!(cache_header(&gw, "u1").await, "bypass");

    // On for a share of users: sticky per user.
    let (status, _) = admin_put(
        &gw,
        "/admin/v1/flags/cache",
        json!({"kind": {"type": "percentage", "basis_points": 5000}}),
    )
    .await;
    assert_eq!(status, 200);
    let mut on = 0;
    for u in 0..40 {
        let user = format!("user-{u}");
        let first = cache_header(&gw, &user).await;
        let again = cache_header(&gw, &user).await;
        assert_eq!(first == "bypass", again == "bypass", "{user} flipped");
        on += usize::from(first != "bypass");
    }
    assert!((8..=32).contains(&on), "{on} of 40 users had the cache");

    // A flag no stage reads is refused; deleting restores the default.
    let (status, err) = admin_put(
        &gw,
        "/admin/v1/flags/cache.smantic",
        json!({"kind": {"type": "boolean", "on": false}}),
    )
    .await;
    assert_eq!(status, 400, "{err}");
    let r = gw
        .http
        .delete(gw.url("/admin/v1/flags/cache"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(cache_header(&gw, "u1").await, "hit-exact");

    let (_, flags) = admin_get(&gw, "/admin/v1/flags").await;
    assert_eq!(flags["flags"], json!([]));
    let actions = gw.audit_actions().await;
    assert_eq!(
        actions,
        ["config.apply", "flag.set", "flag.set", "flag.delete"]
    );
    let (_, audit) = admin_get(&gw, "/admin/v1/audit").await;
    assert_eq!(audit["entries"][1]["reason"], "incident 7");
    assert_eq!(audit["entries"][1]["actor"], "alice");
}

const PROMPT_V1: &str = r#"
name = "support-answer"
model = "m"
[params]
temperature = 0.2
[variables]
product = { default = "Switchyard" }
question = { required = true }
[[messages]]
role = "system"
content = "You support {{ product }}. Be brief."
[[messages]]
role = "user"
content = "{{ question }}"
"#;

fn upstream_config(up: &switchyard_testkit::FakeUpstream) -> String {
    format!(
        "{}\n[providers.up]\nkind = \"openai\"\nbase_url = \"{}\"\n\n[models.m]\ndeployments = [{{ provider = \"up\" }}]\n\n[[keys]]\nid = \"test\"\nsecret_sha256 = \"{{KEY}}\"\n",
        common::admin_section(),
        up.base_url()
    )
}

#[tokio::test]
async fn stored_prompts_render_by_label_and_version_and_labels_move() {
    use switchyard_testkit::{FakeUpstream, Flavor, Reply};
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    let mut gw = start(&upstream_config(&up)).await;

    // A broken file is refused with its line.
    let (status, err) = admin_post(
        &gw,
        "/admin/v1/prompts",
        json!({"source": PROMPT_V1.replace("{{ question }}", "{{ qestion }}")}),
    )
    .await;
    assert_eq!(status, 400, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("qestion"),
        "{err}"
    );

    let (status, pushed) = admin_post(
        &gw,
        "/admin/v1/prompts",
        json!({"source": PROMPT_V1, "message": "first", "label": "production"}),
    )
    .await;
    assert_eq!(status, 200, "{pushed}");
    assert_eq!(
        pushed,
        json!({"name": "support-answer", "version": 1, "created": true, "label": "production"})
    );
    // The same text again is the same version.
    let (_, again) = admin_post(&gw, "/admin/v1/prompts", json!({"source": PROMPT_V1})).await;
    assert_eq!(again["created"], false);

    up.push(Reply::text("Restart it."));
    let r = gw
        .chat(json!({"model": "prompt:support-answer", "prompt": {"variables": {"question": "It hangs."}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let sent = up.last_request().unwrap().body;
    assert_eq!(sent["model"], "m");
    assert_eq!(sent["temperature"], 0.2);
    assert!(sent.get("prompt").is_none(), "{sent}");
    assert_eq!(
        sent["messages"][0]["content"],
        "You support Switchyard. Be brief."
    );
    assert_eq!(sent["messages"][1]["content"], "It hangs.");

    // Version 2 goes to staging; production still renders version 1 until the label moves.
    let v2 = PROMPT_V1.replace("Be brief.", "Be brief and kind.");
    let (_, pushed) = admin_post(
        &gw,
        "/admin/v1/prompts",
        json!({"source": v2, "label": "staging"}),
    )
    .await;
    assert_eq!(pushed["version"], 2);
    let ask = |model: &str| json!({"model": model, "prompt": {"variables": {"question": "Hi"}}});
    for (model, expected) in [
        ("prompt:support-answer", "You support Switchyard. Be brief."),
        (
            "prompt:support-answer@staging",
            "You support Switchyard. Be brief and kind.",
        ),
        (
            "prompt:support-answer@1",
            "You support Switchyard. Be brief.",
        ),
    ] {
        up.push(Reply::text("ok"));
        let r = gw.chat(ask(model)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{model}");
        assert_eq!(
            up.last_request().unwrap().body["messages"][0]["content"],
            expected,
            "{model}"
        );
    }
    let (status, moved) = admin_put(
        &gw,
        "/admin/v1/prompts/support-answer/labels/production",
        json!({"version": 2, "reason": "reviewed"}),
    )
    .await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["previous"], 1);
    up.push(Reply::text("ok"));
    gw.chat(ask("prompt:support-answer")).send().await.unwrap();
    assert_eq!(
        up.last_request().unwrap().body["messages"][0]["content"],
        "You support Switchyard. Be brief and kind."
    );

    // Mistakes are the caller's errors.
    let r = gw.chat(ask("prompt:nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = gw
        .chat(json!({"model": "prompt:support-answer", "prompt": {"variables": {}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let (status, _) = admin_put(
        &gw,
        "/admin/v1/prompts/support-answer/labels/production",
        json!({"version": 9}),
    )
    .await;
    assert_eq!(status, 404);

    let (_, shown) = admin_get(&gw, "/admin/v1/prompts/support-answer").await;
    assert_eq!(shown["labels"], json!({"production": 2, "staging": 2}));
    assert_eq!(shown["versions"].as_array().unwrap().len(), 2);
    let actions = gw.audit_actions().await;
    assert_eq!(
        actions,
        [
            "config.apply",
            "prompt.push",
            "prompt.label",
            "prompt.push",
            "prompt.label",
            "prompt.label"
        ]
    );

    gw.stop().await;
    let prompts: Vec<Option<String>> = gw.records().into_iter().map(|r| r.prompt).collect();
    assert_eq!(prompts[0].as_deref(), Some("support-answer@1"));
    assert_eq!(prompts[2].as_deref(), Some("support-answer@2"));
}

#[tokio::test]
async fn kpis_summarise_the_traffic_as_json_and_csv() {
    let gw = start(&config()).await;
    let mut ids = Vec::new();
    for i in 0..6 {
        let mut req = gw.chat(json!({"model": "fast", "user": format!("u{i}"), "messages": user(&format!("question {i}"))}));
        if i == 5 {
            // Handing the conversation to a human, said on the request itself.
            req = req.header("x-switchyard-escalated", "true");
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 200);
        ids.push(common::request_id(&r));
    }
    // One answer escalated to a human, one thumbs down.
    for (id, body) in [
        (&ids[0], json!({"outcome": "escalated"})),
        (&ids[1], json!({"thumbs": "down"})),
    ] {
        let mut body = body;
        body["request_id"] = json!(id);
        gw.feedback(body).await;
    }
    for _ in 0..200 {
        if gw.records_written() >= 6 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }

    let (status, s) = admin_get(&gw, "/admin/v1/kpis/summary").await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["requests"], 6);
    assert_eq!(s["successful"], 3, "{s}");
    assert_eq!(s["escalated"], 2, "{s}");
    assert!(s["cost_nanos"].as_u64().unwrap() > 0, "{s}");

    let (_, g) = admin_get(&gw, "/admin/v1/kpis/groups?by=model").await;
    assert_eq!(g["rows"][0]["key"], "fast", "{g}");
    assert_eq!(g["rows"][0]["requests"], 6, "{g}");
    let (status, err) = admin_get(&gw, "/admin/v1/kpis/groups").await;
    assert_eq!(status, 400, "{err}");

    let r = gw
        .http
        .get(gw.url("/admin/v1/kpis/groups?by=day&format=csv"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = r.text().await.unwrap();
    let mut lines = csv.lines();
    assert!(lines.next().unwrap().starts_with("key,bucket_ms,"), "{csv}");
    assert_eq!(lines.count(), 1, "{csv}");

    // Nonsense in the query string or the path is an OpenAI-shaped 400, as everywhere else.
    for path in [
        "/admin/v1/kpis/groups?by=planet",
        "/admin/v1/kpis/summary?hours=-3",
        "/admin/v1/kpis/summary?colour=red",
        "/admin/v1/audit?limit=lots",
        "/admin/v1/prompts/x/versions/latest",
    ] {
        let (status, err) = admin_get(&gw, path).await;
        assert_eq!(status, 400, "{path}: {err}");
        assert_eq!(
            err["error"]["type"], "invalid_request_error",
            "{path}: {err}"
        );
    }
    let (status, _) = admin_get(&gw, "/admin/v1/kpis/nonsense").await;
    assert_eq!(status, 404);

    let (_, recent) = admin_get(&gw, "/admin/v1/requests?limit=2").await;
    assert_eq!(recent["requests"].as_array().unwrap().len(), 2);
    let (_, trend) = admin_get(&gw, "/admin/v1/kpis/trend?bucket=hour&hours=2").await;
    let total: u64 = trend["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 6, "{trend}");
}

#[tokio::test]
async fn slos_count_requests_and_survive_a_restart() {
    let slos = r#"
[[slos]]
name = "availability"
objective = "availability"
target = 0.99

[[slos]]
name = "fast-latency"
objective = "latency"
threshold_ms = 10000
target = 0.95
model = "fast"
"#;
    let text = format!("{}{slos}", config());
    let gw = start(&text).await;
    for i in 0..5 {
        let r = gw
            .chat(json!({"model": "fast", "messages": user(&format!("q{i}"))}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let (status, view) = admin_get(&gw, "/admin/v1/slos").await;
    assert_eq!(status, 200, "{view}");
    let slos = view["slos"].as_array().unwrap();
    assert_eq!(slos.len(), 2, "{view}");
    for s in slos {
        assert_eq!(s["sli"], 1.0, "{s}");
        assert_eq!(s["budget"]["total"], 5, "{s}");
        assert_eq!(s["rules"].as_array().unwrap().len(), 3, "{s}");
    }
    // The counts are saved at shutdown and read back.
    let gw = gw.restart(&text).await;
    let (_, view) = admin_get(&gw, "/admin/v1/slos").await;
    assert_eq!(view["slos"][0]["budget"]["total"], 5, "{view}");
}

/// The config with a model `careful`, a route `auto` onto `fast`, and quality SLOs over all
/// traffic and the route. (`careful` keeps this test's quality counters apart from the other
/// tests', which share the process's metrics.)
fn quality_config() -> String {
    format!(
        r#"{}
[models.careful]
deployments = [{{ provider = "sim", upstream_model = "fast" }}]

[routes.auto]
candidates = [{{ model = "fast" }}]

[[slos]]
name = "quality"
objective = "quality"
target = 0.9

[[slos]]
name = "auto-quality"
objective = "quality"
target = 0.9
route = "auto"

[[slos]]
name = "availability"
objective = "availability"
target = 0.9
"#,
        config()
    )
}

#[tokio::test]
async fn late_negative_feedback_turns_quality_bad_once() {
    const N: usize = 8;
    let gw = start(&quality_config()).await;
    let mut ids = Vec::new();
    for i in 0..N {
        // Half name the route, half a model.
        let model = if i % 2 == 0 { "auto" } else { "careful" };
        let r = gw
            .chat(json!({"model": model, "messages": user(&format!("q{i}"))}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        ids.push(common::request_id(&r));
    }
    let slo = |view: &Value, name: &str| {
        view["slos"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()
            .clone()
    };
    let (_, before) = admin_get(&gw, "/admin/v1/slos").await;
    assert_eq!(slo(&before, "quality")["sli"], 1.0, "{before}");
    assert_eq!(slo(&before, "quality")["budget"]["remaining"], 1.0);

    // k = 3 thumbs down: ids 0 and 2 named the route, 1 the model. Id 0 is disliked again
    // and scored low; id 1 is liked first, then disliked, then liked again; id 3 is only
    // escalated, which is not a quality failure.
    let k = 3;
    for body in [
        json!({"request_id": ids[0], "thumbs": "down"}),
        json!({"request_id": ids[0], "thumbs": "down"}),
        json!({"request_id": ids[0], "score": 0.1}),
        json!({"request_id": ids[1], "thumbs": "up"}),
        json!({"request_id": ids[1], "thumbs": "down"}),
        json!({"request_id": ids[1], "thumbs": "up"}),
        json!({"request_id": ids[2], "score": 0.2, "outcome": "resolved"}),
        json!({"request_id": ids[3], "outcome": "escalated"}),
        json!({"request_id": ids[4], "thumbs": "up"}),
    ] {
        gw.feedback(body).await;
    }
    gw.feedback(json!({"request_id": ids[2], "thumbs": "down"}))
        .await;

    let (_, after) = admin_get(&gw, "/admin/v1/slos").await;
    let q = slo(&after, "quality");
    assert_eq!(q["sli"], (N - k) as f64 / N as f64, "{q}");
    assert_eq!(q["budget"]["total"], N, "{q}");
    assert_eq!(q["budget"]["bad"], k, "{q}");
    assert!(q["budget"]["remaining"].as_f64().unwrap() < 1.0, "{q}");
    // The route's SLO counts the two of its requests disliked, of its four.
    let auto = slo(&after, "auto-quality");
    assert_eq!(auto["budget"]["total"], N / 2, "{auto}");
    assert_eq!(auto["budget"]["bad"], 2, "{auto}");
    // Other objectives do not move.
    assert_eq!(slo(&after, "availability")["sli"], 1.0, "{after}");

    // The quality counters say the same, by model and route.
    let metrics = gw.metrics().await;
    for line in [
        r#"switchyard_quality_bad_total{model="fast",route="auto"} 2"#,
        r#"switchyard_quality_bad_total{model="careful",route=""} 1"#,
        r#"switchyard_quality_answers_total{model="careful",route=""} 4"#,
        r#"switchyard_quality_answers_total{model="fast",route="auto"} 4"#,
        // The request metrics carry the route alias named too, empty for a model.
        r#"switchyard_requests_total{endpoint="chat",model="fast",route="auto",status="200"} 4"#,
        r#"switchyard_request_duration_seconds_count{model="careful",route=""} 4"#,
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }

    // A restart reads the regraded counts back. Feedback after it finds the request in the
    // store (nothing is in memory any more), still once.
    let gw = gw.restart(&quality_config()).await;
    for body in [
        json!({"request_id": ids[0], "thumbs": "down"}),
        json!({"request_id": ids[6], "thumbs": "down"}),
        json!({"request_id": ids[6], "thumbs": "down"}),
    ] {
        gw.feedback(body).await;
    }
    let (_, view) = admin_get(&gw, "/admin/v1/slos").await;
    assert_eq!(slo(&view, "quality")["budget"]["bad"], k + 1, "{view}");
    assert_eq!(slo(&view, "auto-quality")["budget"]["bad"], 3, "{view}");
    assert_eq!(slo(&view, "quality")["budget"]["total"], N, "{view}");
}
