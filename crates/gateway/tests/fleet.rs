//! Three replicas on one PostgreSQL and one Redis, over real HTTP: what a fleet shares.
//!
//! Each test starts servers of its own (`switchyard_testkit::servers`); where PostgreSQL or
//! Redis cannot be started the test says so and skips, except under
//! `SWITCHYARD_REQUIRE_SERVERS=1` (CI), where it fails.

#![expect(clippy::unwrap_used, reason = "test code")]

mod common;

use std::time::{Duration, Instant};

use common::{admin_fast_config, user, TestGateway};
use serde_json::{json, Value};
use switchyard_control::{RedisFailure, RedisSpec, SecretUrl};
use switchyard_testkit::servers::{PostgresServer, RedisServer};

struct Fleet {
    replicas: Vec<TestGateway>,
    _postgres: PostgresServer,
    _redis: RedisServer,
}

/// Three replicas of `config` sharing a new PostgreSQL and Redis; `None` (skipped) when they
/// cannot be started.
async fn fleet(test: &str, config: &str) -> Option<Fleet> {
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
                    on_failure: RedisFailure::PerReplica,
                });
            })
            .await,
        );
    }
    Some(Fleet {
        replicas,
        _postgres: postgres,
        _redis: redis,
    })
}

/// Waits for `done` (checked every 20 ms), failing after `limit`: for what another replica
/// does in the background.
async fn eventually<F, Fut>(limit: Duration, what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = Instant::now() + limit;
    while !done().await {
        assert!(Instant::now() < until, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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
        eventually(
            Duration::from_secs(10),
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
