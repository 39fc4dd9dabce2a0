//! `switchyard loadgen` against the real binary's embedded demo: the summary it prints agrees
//! with what the gateway recorded.

#![expect(clippy::unwrap_used, clippy::panic, reason = "test code")]

mod common;

use common::{spawn_demo, stdout_of, switchyard};

#[test]
fn loadgen_fills_the_demo_and_its_summary_matches_the_records() {
    let cwd = tempfile::tempdir().unwrap();
    let (server, base) = spawn_demo(cwd.path());
    // The JSON summary of a run against the demo asking for `small`, which answers in well
    // under a second.
    let loadgen = |args: &[&str]| -> serde_json::Value {
        let out = stdout_of(
            switchyard()
                .args(["loadgen", "--json", "--target", &base, "--model", "small"])
                .args(args),
        );
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    };

    // Three seconds make a few dozen requests; the repeated questions' popular head makes
    // exact cache hits certain at this count.
    let summary = loadgen(&[
        "--duration",
        "3s",
        "--concurrency",
        "4",
        "--mix",
        "simple=1,pii=1,injection=2,repeat=8",
        "--seed",
        "6",
    ]);
    let kind = |name: &str| {
        summary["kinds"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kind"] == name)
            .unwrap_or_else(|| panic!("no {name} in {summary:#}"))
            .clone()
    };
    let overall = &summary["overall"];
    let requests = overall["requests"].as_u64().unwrap();
    assert!(requests >= 10, "{summary:#}");
    assert_eq!(summary["kinds"].as_array().unwrap().len(), 4, "{summary:#}");
    assert!(
        kind("repeat")["cache_hits"].as_u64().unwrap() >= 1,
        "{summary:#}"
    );
    assert!(
        kind("injection")["refused"].as_u64().unwrap() >= 1,
        "{summary:#}"
    );
    assert!(
        overall["ok"].as_u64().unwrap() >= requests / 2,
        "{summary:#}"
    );
    assert_eq!(overall["models"]["small"], overall["ok"], "{summary:#}");
    assert!(overall["latency_ms"]["p50"].as_f64().unwrap() > 0.0);
    let feedback = overall["feedback_sent"].as_u64().unwrap();
    assert_eq!(overall["feedback_failed"], 0);

    // Open loop: 20 requests a second for a second are 20 due, each sent or dropped.
    let paced = loadgen(&[
        "--rate",
        "20",
        "--duration",
        "1s",
        "--stream-share",
        "1",
        "--feedback-share",
        "0",
        "--priority",
        "interactive=1,batch=1",
    ]);
    let p = &paced["overall"];
    let paced_requests = p["requests"].as_u64().unwrap();
    assert_eq!(
        paced_requests + p["dropped"].as_u64().unwrap(),
        20,
        "{paced:#}"
    );
    assert_eq!(p["streams"], p["requests"], "{paced:#}");
    assert!(p["ttft_ms_p50"].as_f64().unwrap() > 0.0, "{paced:#}");
    assert_eq!(paced["mode"], "rate");
    // Each request went as one of the two classes, each class summarised on its own.
    let classes = paced["priorities"].as_array().unwrap();
    let names: Vec<&str> = classes.iter().filter_map(|c| c["kind"].as_str()).collect();
    assert!(
        names.iter().all(|n| ["interactive", "batch"].contains(n)),
        "{paced:#}"
    );
    let by_class: u64 = classes
        .iter()
        .map(|c| c["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(by_class, paced_requests, "{paced:#}");
    assert!(classes
        .iter()
        .all(|c| c["shed"] == 0 && c.get("ttft_ms_p99").is_some()));
    assert!(
        summary.get("priorities").is_none(),
        "no mix, no lines per class"
    );

    // Stopped gracefully, the gateway has written a record of every request, and every
    // feedback the summary counts.
    server.stop();
    let db = rusqlite::Connection::open(cwd.path().join("switchyard-data/switchyard.db")).unwrap();
    let count = |sql: &str| db.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap() as u64;
    assert_eq!(
        count("SELECT COUNT(*) FROM requests"),
        requests + paced_requests
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM requests WHERE stream = 1"),
        overall["streams"].as_u64().unwrap() + paced_requests
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM requests WHERE error_kind = 'content_policy_violation'"),
        overall["refused"].as_u64().unwrap() + p["refused"].as_u64().unwrap()
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM requests WHERE cache LIKE 'hit%'"),
        overall["cache_hits"].as_u64().unwrap() + p["cache_hits"].as_u64().unwrap()
    );
    assert_eq!(count("SELECT COUNT(*) FROM feedback"), feedback);
}

#[test]
fn loadgen_exits_3_when_the_target_is_unreachable_and_2_on_a_bad_mix() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = switchyard()
        .args([
            "loadgen",
            "--target",
            &format!("http://127.0.0.1:{port}"),
            "--duration",
            "1s",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the gateway"));

    for (flag, mix) in [
        ("--mix", "simple=1,nonsense"),
        ("--mix", "simple=1,nonsense=2"),
        ("--priority", "urgent=1"),
        ("--priority", "batch=0"),
    ] {
        let out = switchyard().args(["loadgen", flag, mix]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{mix}");
    }
    let out = switchyard()
        .args(["loadgen", "--rate", "5", "--concurrency", "2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
