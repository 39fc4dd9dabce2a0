//! Three replicas on one PostgreSQL and one Redis, over real HTTP: what a fleet shares.
//!
//! Each test starts servers of its own (`switchyard_testkit::servers`); where PostgreSQL or
//! Redis cannot be started the test says so and skips, except under
//! `SWITCHYARD_REQUIRE_SERVERS=1` (CI), where it fails.

#![expect(clippy::unwrap_used, reason = "test code")]

mod common;

use std::time::{Duration, Instant};

use common::{admin_fast_config, user, TestGateway, LONG_ANSWERS};
use serde_json::{json, Value};
use switchyard_control::{RedisFailure, RedisSpec, SecretUrl};
use switchyard_testkit::eventually;
use switchyard_testkit::servers::{PostgresServer, RedisServer};

struct Fleet {
    replicas: Vec<TestGateway>,
    postgres: PostgresServer,
    redis: RedisServer,
}

/// Three replicas of `config` sharing a new PostgreSQL and Redis; `None` (skipped) when they
/// cannot be started.
async fn fleet(test: &str, config: &str) -> Option<Fleet> {
    fleet_when_down(test, config, RedisFailure::PerReplica).await
}

/// As [`fleet`], with what limits do while Redis is down.
async fn fleet_when_down(test: &str, config: &str, on_failure: RedisFailure) -> Option<Fleet> {
    let postgres = match PostgresServer::start() {
        Ok(p) => p,
        Err(e) => {
            e.skip(test);
            return None;
        }
    };
    let redis = match RedisServer::start() {
        Ok(r) => r,
        Err(e) => {
            e.skip(test);
            return None;
        }
    };
    let mut replicas = Vec::new();
    for _ in 0..3 {
        let pg = SecretUrl::postgres(&postgres.url()).unwrap();
        let rd = SecretUrl::redis(&redis.url()).unwrap();
        replicas.push(
            common::start_adjusted(config, tempfile::tempdir().unwrap(), &[], move |c| {
                c.storage.postgres = Some(pg.clone());
                c.redis = Some(RedisSpec {
                    url: rd.clone(),
                    on_failure,
                });
            })
            .await,
        );
    }
    Some(Fleet {
        replicas,
        postgres,
        redis,
    })
}

fn with_key_line(config: &str, line: &str) -> String {
    config.replace(
        "secret_sha256 = \"{KEY}\"",
        &format!("secret_sha256 = \"{{KEY}}\"\n{line}"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_with_rpm_10_gets_exactly_10_requests_through_across_three_replicas() {
    let config = with_key_line(&admin_fast_config(), "rpm = 10");
    let Some(fleet) = fleet(
        "a_key_with_rpm_10_gets_exactly_10_requests_through_across_three_replicas",
        &config,
    )
    .await
    else {
        return;
    };
    let sends = (0..30).map(|i| {
        let replica = &fleet.replicas[i % 3];
        replica
            .chat(json!({"model": "fast", "messages": user("hi")}))
            .send()
    });
    let statuses: Vec<u16> = futures::future::join_all(sends)
        .await
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    let admitted = statuses.iter().filter(|s| **s == 200).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((admitted, limited), (10, 20), "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_answer_cached_by_one_replica_is_an_exact_hit_on_another() {
    let config = format!("{}\n[cache]\nsemantic = false\n", admin_fast_config());
    let Some(fleet) = fleet(
        "an_answer_cached_by_one_replica_is_an_exact_hit_on_another",
        &config,
    )
    .await
    else {
        return;
    };
    let ask = |replica: &TestGateway| {
        replica
            .chat(
                json!({"model": "fast", "temperature": 0, "messages": user("capital of France?")}),
            )
            .send()
    };
    let first = ask(&fleet.replicas[0]).await.unwrap();
    assert_eq!(first.headers()["x-switchyard-cache"], "miss");
    let answer: Value = first.json().await.unwrap();
    let again = ask(&fleet.replicas[1]).await.unwrap();
    assert_eq!(again.headers()["x-switchyard-cache"], "hit-exact");
    let cached: Value = again.json().await.unwrap();
    assert_eq!(
        cached["choices"][0]["message"]["content"],
        answer["choices"][0]["message"]["content"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flag_flipped_on_one_replica_changes_the_next_requests_of_the_others() {
    let config = format!("{}\n[cache]\nsemantic = false\n", admin_fast_config());
    let Some(fleet) = fleet(
        "a_flag_flipped_on_one_replica_changes_the_next_requests_of_the_others",
        &config,
    )
    .await
    else {
        return;
    };
    let cache_of = |replica: &TestGateway| {
        let sent = replica
            .chat(json!({"model": "fast", "temperature": 0, "messages": user("same question")}))
            .send();
        async move {
            sent.await.unwrap().headers()["x-switchyard-cache"]
                .to_str()
                .unwrap()
                .to_owned()
        }
    };
    assert_eq!(cache_of(&fleet.replicas[0]).await, "miss");
    assert_eq!(cache_of(&fleet.replicas[1]).await, "hit-exact");
    let (status, body) = fleet.replicas[0]
        .admin(
            reqwest::Method::PUT,
            "/admin/v1/flags/cache",
            Some(json!({"kind": {"type": "boolean", "on": false}, "reason": "incident"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // Redis pub/sub wakes the other replicas at once; the store's poll is the fallback.
    for replica in &fleet.replicas[1..] {
        // A generous limit for a loaded machine: the feed and the poll both take about a
        // second when the machine is not busy.
        eventually(
            Duration::from_secs(30),
            "the flag reaches the replica",
            || {
                let c = cache_of(replica);
                async move { c.await == "bypass" }
            },
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_admin_api_of_any_replica_lists_the_requests_of_all_three() {
    let Some(fleet) = fleet(
        "the_admin_api_of_any_replica_lists_the_requests_of_all_three",
        &admin_fast_config(),
    )
    .await
    else {
        return;
    };
    let mut ids = Vec::new();
    for replica in &fleet.replicas {
        let r = replica
            .chat(json!({"model": "fast", "messages": user("hello")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        ids.push(common::request_id(&r));
    }
    ids.sort();
    let listed = || async {
        let (status, body) = fleet.replicas[2]
            .admin(reqwest::Method::GET, "/admin/v1/requests?limit=50", None)
            .await;
        assert_eq!(status, 200, "{body}");
        let mut seen: Vec<String> = body["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["request_id"].as_str().unwrap().to_owned())
            .collect();
        seen.sort();
        seen
    };
    eventually(
        Duration::from_secs(10),
        "every replica's records reach the store",
        || {
            let l = listed();
            let want = ids.clone();
            async move { l.await == want }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgresql_stopped_mid_run_loses_no_records_and_readyz_says_so() {
    let test = "postgresql_stopped_mid_run_loses_no_records_and_readyz_says_so";
    let postgres = match PostgresServer::start() {
        Ok(p) => p,
        Err(e) => return e.skip(test),
    };
    let url = SecretUrl::postgres(&postgres.url()).unwrap();
    let gw = common::start_adjusted(
        &admin_fast_config(),
        tempfile::tempdir().unwrap(),
        &[],
        move |c| c.storage.postgres = Some(url.clone()),
    )
    .await;
    let ask = || async {
        let r = gw
            .chat(json!({"model": "fast", "messages": user("hello")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        common::request_id(&r)
    };
    let mut ids = vec![ask().await];
    let readyz = || async {
        let r = gw.http.get(gw.url("/readyz")).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    assert_eq!(readyz().await, (200, "ready".to_owned()));

    postgres.stop();
    for _ in 0..20 {
        ids.push(ask().await);
    }
    eventually(
        Duration::from_secs(30),
        "the records go to the spool",
        || async { gw.state.control.telemetry.spooled() > 0 },
    )
    .await;
    let (status, body) = readyz().await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("ready, degraded"), "{body}");

    postgres.start_again().unwrap();
    eventually(Duration::from_secs(60), "the spool is written", || async {
        gw.state.control.telemetry.spooled() == 0 && readyz().await.0 == 200
    })
    .await;
    ids.sort();
    let url = postgres.url();
    let listed = tokio::task::spawn_blocking(move || {
        use switchyard_store::RecordStore;
        let store = switchyard_store::PostgresStore::connect(&url).unwrap();
        store.recent(100).unwrap()
    })
    .await
    .unwrap();
    let mut written: Vec<String> = listed.into_iter().map(|r| r.request_id).collect();
    written.sort();
    // The first request's record may have been written before the stop, or spooled with
    // the rest (the test server runs without fsync, and a stop is a crash): either way once.
    assert_eq!(written, ids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_config_applied_on_one_replica_runs_on_the_others() {
    let Some(fleet) = fleet(
        "a_config_applied_on_one_replica_runs_on_the_others",
        &admin_fast_config(),
    )
    .await
    else {
        return;
    };
    let (_, current) = fleet.replicas[0]
        .admin(reqwest::Method::GET, "/admin/v1/config", None)
        .await;
    let source = current["source"].as_str().unwrap().to_owned();
    let next = source.replace(
        "[models.fast]",
        "[models.extra]\ndeployments = [{ provider = \"sim\", upstream_model = \"fast\" }]\n\n[models.fast]",
    );
    let (status, applied) = fleet.replicas[0]
        .admin(
            reqwest::Method::POST,
            "/admin/v1/config",
            Some(json!({"source": next, "message": "add extra"})),
        )
        .await;
    assert_eq!(status, 200, "{applied}");
    for replica in &fleet.replicas[1..] {
        eventually(
            Duration::from_secs(10),
            "the version reaches the replica",
            || async {
                replica
                    .chat(json!({"model": "extra", "messages": user("hi")}))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    == 200
            },
        )
        .await;
    }
}

/// Every request record the fleet's PostgreSQL holds (read on a thread of its own: the
/// PostgreSQL client refuses the async threads).
async fn stored_records(postgres: &PostgresServer) -> Vec<switchyard_store::RequestRecord> {
    let url = postgres.url();
    tokio::task::spawn_blocking(move || {
        use switchyard_store::RecordStore;
        switchyard_store::PostgresStore::connect(&url)
            .unwrap()
            .recent(10_000)
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_requests_over_three_replicas_overshoot_a_budget_by_at_most_one_worst_case() {
    let Some(mut fleet) = fleet(
        "sixty_four_requests_over_three_replicas_overshoot_a_budget_by_at_most_one_worst_case",
        LONG_ANSWERS,
    )
    .await
    else {
        return;
    };
    let bodies = common::long_stories(64);
    let sends = bodies.iter().enumerate().map(|(i, b)| {
        let replica = &fleet.replicas[i % 3];
        async move {
            let r = replica.chat(b.clone()).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    });
    let answers = futures::future::join_all(sends).await;
    let ok = answers.iter().filter(|(s, _)| *s == 200).count();
    let refused: Vec<&String> = answers
        .iter()
        .filter(|(s, _)| *s == 429)
        .map(|(_, t)| t)
        .collect();
    assert_eq!(ok + refused.len(), 64, "{answers:?}");
    assert!(
        refused.iter().all(|t| t.contains("budget_exceeded")),
        "{refused:?}"
    );
    // Every replica's records written before they are counted.
    for replica in &mut fleet.replicas {
        replica.stop().await;
    }

    // The worst case the gateway reserves for each request (`keys::worst_case`): its prompt
    // at the gateway's upper bound, its output at the model's 1,000 tokens (the cap a key
    // with a budget holds the provider to).
    let price = switchyard_control::Price {
        input_nanos_per_mtok: 1_000_000_000,
        output_nanos_per_mtok: 10_000_000_000,
    };
    let worst = bodies
        .iter()
        .map(|b| {
            let mut request: switchyard_api::ChatCompletionRequest =
                serde_json::from_value(b.clone()).unwrap();
            request.max_completion_tokens = Some(1_000);
            let prompt = switchyard_providers::tokens::prompt_bound(&request);
            switchyard_gateway::data_plane::keys::worst_case(
                prompt,
                Some(1_000),
                [(price, Some(1_000))],
                1_000,
                1,
            )
            .cost_nanos
        })
        .max()
        .unwrap();
    let records = stored_records(&fleet.postgres).await;
    assert_eq!(records.len(), 64, "every request is recorded once");
    let spent: u64 = records.iter().map(|r| r.cost_nanos).sum();
    let budget = 1_000_000_000 / 20;
    // The budget was contested: more requests came than it pays for, and it was used.
    assert!(ok >= 1 && !refused.is_empty(), "{ok} served");
    assert!(
        spent + worst > budget,
        "spent {spent} of {budget}: a further request would have fit"
    );
    assert!(
        spent <= budget + worst,
        "spent {spent} nano-USD against a budget of {budget} and one worst case of {worst}"
    );
    // Replicas stopped gracefully have settled everything in Redis: it counts what the
    // records say, and nothing stays reserved.
    let limits =
        switchyard_gateway::data_plane::shared::names::Names::new("switchyard").limits("test");
    let mut redis = redis::Client::open(fleet.redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let (day_spent, day_reserved): (Option<u64>, Option<u64>) = redis::cmd("HMGET")
        .arg(&limits)
        .arg("day_spent")
        .arg("day_reserved")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!((day_spent, day_reserved), (Some(spent), Some(0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_on_failure_refuse_a_keyed_request_gets_503_while_redis_is_down() {
    let config = with_key_line(&admin_fast_config(), "rpm = 1000");
    let Some(mut fleet) = fleet_when_down(
        "with_on_failure_refuse_a_keyed_request_gets_503_while_redis_is_down",
        &config,
        RedisFailure::Refuse,
    )
    .await
    else {
        return;
    };
    let ask = |replica: &TestGateway| {
        replica
            .chat(json!({"model": "fast", "messages": user("hi")}))
            .send()
    };
    assert_eq!(ask(&fleet.replicas[0]).await.unwrap().status(), 200);

    fleet.redis.stop();
    let r = ask(&fleet.replicas[1]).await.unwrap();
    assert_eq!(r.status(), 503);
    let retry_after: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1, "{retry_after}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "limits_unavailable", "{body}");
    assert!(
        !body.to_string().contains(&fleet.redis.url()),
        "the answer names no Redis: {body}"
    );

    fleet.redis.start_again().unwrap();
    for replica in &fleet.replicas {
        eventually(
            Duration::from_secs(10),
            "the replica's heartbeat finds Redis back",
            || async { ask(replica).await.unwrap().status() == 200 },
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dashboard_session_opened_on_one_replica_is_accepted_by_another() {
    let Some(fleet) = fleet(
        "a_dashboard_session_opened_on_one_replica_is_accepted_by_another",
        &admin_fast_config(),
    )
    .await
    else {
        return;
    };
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let (a, b) = (&fleet.replicas[0], &fleet.replicas[1]);
    let r = browser
        .post(a.url("/dashboard/login"))
        .json(&json!({"key": common::ADMIN}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()[reqwest::header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let with_cookie = |replica: &TestGateway, path: &str| {
        browser
            .get(replica.url(path))
            .header("cookie", &cookie)
            .send()
    };
    let session: Value = with_cookie(b, "/dashboard/session")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(session["signed_in"], true, "{session}");
    let r = with_cookie(b, "/admin/v1/kpis/summary?hours=1")
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Signing out on B ends the session on A too.
    let r = browser
        .post(b.url("/dashboard/logout"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = with_cookie(a, "/admin/v1/kpis/summary?hours=1")
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

/// Base (healthy) and cand (a fifth of its answers fail) on the simulator, for a canary.
fn canary_config() -> String {
    format!(
        r#"
{}
[providers.sim]
kind = "sim"
[providers.sim.models.base]
ttft_ms = {{ p50 = 1 }}
output_tokens = {{ p50 = 4 }}
[providers.sim.models.cand]
ttft_ms = {{ p50 = 1 }}
output_tokens = {{ p50 = 4 }}
error_rate = 0.2
[models.base]
deployments = [{{ provider = "sim", upstream_model = "base" }}]
resilience = {{ max_attempts = 1 }}
[models.cand]
deployments = [{{ provider = "sim", upstream_model = "cand" }}]
resilience = {{ max_attempts = 1 }}
[[keys]]
id = "test"
secret_sha256 = "{{KEY}}"
"#,
        common::admin_section()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_canary_is_judged_on_every_replicas_traffic_and_rolled_back_once() {
    let Some(fleet) = fleet(
        "a_canary_is_judged_on_every_replicas_traffic_and_rolled_back_once",
        &canary_config(),
    )
    .await
    else {
        return;
    };
    // The analysis' minimum of candidate requests: each replica serves about a third of
    // them, so only a judge that adds the replicas' windows up reaches it early.
    let min_samples = 20;
    let (status, started) = fleet.replicas[0]
        .admin(
            reqwest::Method::POST,
            "/admin/v1/rollouts",
            Some(json!({
                "id": "cand-fleet", "kind": "model", "baseline": "base", "candidate": "cand",
                "spec": {
                    "steps": [2000, 5000, 10000],
                    "min_step_duration_ms": 0,
                    "min_step_requests": min_samples,
                    "analysis": {"min_samples": min_samples},
                },
            })),
        )
        .await;
    assert_eq!(status, 200, "{started}");
    let state = || async {
        let (_, r) = fleet.replicas[2]
            .admin(reqwest::Method::GET, "/admin/v1/rollouts/cand-fleet", None)
            .await;
        r["rollout"]["state"]["state"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    // Rounds of 30 requests per replica (about 6 on the candidate's 20% share each), then a
    // pause for the replicas to publish and the judge to look: the fleet reaches the minimum
    // in a few rounds, each replica alone in about seven.
    let mut sent = 0;
    // Which replica served each request.
    let mut served_by = std::collections::HashMap::new();
    for _round in 0..20 {
        let sends = (0..90).map(|i| {
            let n = sent + i;
            let replica = n % 3;
            let send = fleet.replicas[replica]
                .chat(json!({"model": "base", "user": format!("user-{n}"), "messages": user("hi")}))
                .send();
            async move { (replica, send.await) }
        });
        for (replica, r) in futures::future::join_all(sends).await {
            let r = r.unwrap();
            served_by.insert(common::request_id(&r), replica);
            let _ = r.bytes().await;
        }
        sent += 90;
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until && state().await == "running" {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if state().await != "running" {
            break;
        }
    }
    assert_eq!(state().await, "rolled_back");
    let (_, r) = fleet.replicas[2]
        .admin(reqwest::Method::GET, "/admin/v1/rollouts/cand-fleet", None)
        .await;

    // Judged on the union: the judgement counted more candidate requests than any replica
    // served in all.
    let reason = r["rollout"]["timeline"][1]["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    let judged: usize = reason
        .split_once("s with ")
        .and_then(|(_, rest)| rest.split_once(" candidate"))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("{reason}"));
    let listed = || async {
        let (_, listed) = fleet.replicas[1]
            .admin(reqwest::Method::GET, "/admin/v1/requests?limit=1000", None)
            .await;
        listed["requests"].as_array().unwrap().clone()
    };
    eventually(
        Duration::from_secs(10),
        "every record is written",
        || async { listed().await.len() == sent },
    )
    .await;
    let mut per_replica = [0usize; 3];
    for r in listed().await {
        if r["rollout"] == "cand-fleet:candidate" {
            per_replica[served_by[r["request_id"].as_str().unwrap()]] += 1;
        }
    }
    println!("judged on {judged} candidate requests; each replica served {per_replica:?}");
    assert!(judged >= min_samples, "{reason}");
    assert!(
        per_replica.iter().all(|&n| n < judged),
        "a replica served as many candidate requests as were judged: {per_replica:?}, {reason}"
    );
    // Rolled back once, by one replica, whoever started it.
    let (_, audit) = fleet.replicas[1]
        .admin(reqwest::Method::GET, "/admin/v1/audit", None)
        .await;
    let rollbacks = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "rollout.rolled_back")
        .count();
    assert_eq!(rollbacks, 1, "{audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_replica_reports_the_fleets_slo_counts() {
    let config = format!(
        "{}\n[[slos]]\nname = \"availability\"\nobjective = \"availability\"\ntarget = 0.99\n",
        admin_fast_config()
    );
    let Some(fleet) = fleet("every_replica_reports_the_fleets_slo_counts", &config).await else {
        return;
    };
    for (i, replica) in fleet.replicas.iter().enumerate() {
        for _ in 0..=i {
            let r = replica
                .chat(json!({"model": "fast", "messages": user("hi")}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    }
    // 1 + 2 + 3 requests: every replica's view counts all six, once each replica has
    // published its ledger (every 5 s).
    for replica in &fleet.replicas {
        eventually(
            Duration::from_secs(20),
            "the SLO counts every replica's requests",
            || async {
                let (_, view) = replica
                    .admin(reqwest::Method::GET, "/admin/v1/slos", None)
                    .await;
                view["slos"][0]["budget"]["total"] == 6
            },
        )
        .await;
    }
}

/// A model whose one deployment has a capacity of 3, on the fake upstream `up`.
fn shared_capacity_config(up: &switchyard_testkit::FakeUpstream) -> String {
    format!(
        "[providers.share]\nkind = \"openai\"\nbase_url = \"{}\"\n\n[models.m]\ndeployments = [{{ provider = \"share\", capacity = {{ max_concurrent = 3 }} }}]\n\n[[keys]]\nid = \"k\"\nsecret_sha256 = \"{{KEY}}\"\n",
        up.base_url()
    )
}

/// Once three replicas are counted, each admits a third of the capacity of 3: the first
/// replica's second request waits while another replica's is served.
async fn each_admits_a_third(replicas: &[TestGateway], up: &switchyard_testkit::FakeUpstream) {
    use switchyard_testkit::{Behavior, Gate, Reply};
    let first = &replicas[0];
    eventually(
        Duration::from_secs(30),
        "three replicas counted",
        || async { first.state.control.live_replicas() == 3 },
    )
    .await;
    let gate = Gate::new();
    up.push(Behavior::Gated {
        gate: gate.clone(),
        then: Box::new(Reply::text("held").into()),
    });
    let ask = |replica: &TestGateway| {
        replica
            .chat(json!({"model": "m", "messages": user("hi")}))
            .send()
    };
    let held = ask(first);
    let waits = ask(first);
    let (held, waits, depth) = tokio::join!(held, waits, async {
        // Three replicas: this one's share of 3 is 1, so its second request waits.
        eventually(Duration::from_secs(30), "a request waiting", || async {
            first.metrics().await.lines().any(|l| {
                l.starts_with("switchyard_queue_depth{")
                    && l.contains("deployment=\"share/m\"")
                    && l.contains("class=\"interactive\"")
                    && l.ends_with(" 1")
            })
        })
        .await;
        // Another replica's share is its own.
        let other = ask(&replicas[1]).await.unwrap();
        assert_eq!(other.status(), 200);
        gate.open();
    });
    let () = depth;
    assert_eq!(held.unwrap().status(), 200);
    assert_eq!(waits.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_replica_admits_its_share_of_a_deployments_capacity() {
    let up = switchyard_testkit::FakeUpstream::start(switchyard_testkit::Flavor::OpenAi)
        .await
        .unwrap();
    let Some(fleet) = fleet(
        "each_replica_admits_its_share_of_a_deployments_capacity",
        &shared_capacity_config(&up),
    )
    .await
    else {
        return;
    };
    each_admits_a_third(&fleet.replicas, &up).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_redis_the_replicas_are_counted_through_postgresql_for_the_share() {
    let up = switchyard_testkit::FakeUpstream::start(switchyard_testkit::Flavor::OpenAi)
        .await
        .unwrap();
    let postgres = match PostgresServer::start() {
        Ok(p) => p,
        Err(e) => {
            e.skip("without_redis_the_replicas_are_counted_through_postgresql_for_the_share");
            return;
        }
    };
    let mut replicas = Vec::new();
    for _ in 0..3 {
        let pg = SecretUrl::postgres(&postgres.url()).unwrap();
        let config = shared_capacity_config(&up);
        replicas.push(
            common::start_adjusted(&config, tempfile::tempdir().unwrap(), &[], move |c| {
                c.storage.postgres = Some(pg.clone());
            })
            .await,
        );
    }
    each_admits_a_third(&replicas, &up).await;
}
