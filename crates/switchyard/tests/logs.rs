//! Black-box: the binary's JSON logs. A warning logged while serving a request names the
//! request's id (the one its answer carries), whatever the log level; and a shutdown whose store
//! stopped taking records says how many were written and how many lost, never that all were.

#![expect(clippy::unwrap_used, clippy::panic, reason = "test code")]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;

use serde_json::{json, Value};
use switchyard_testkit::{Behavior, FakeUpstream, Flavor, Reply};

const KEY: &str = "sk-logs-test";

fn sha256_hex(s: &str) -> String {
    switchyard_control::hash_key(s)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_name_the_request_and_shutdown_tells_the_truth() {
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:0"
[storage]
data_dir = {data:?}
[telemetry]
log_format = "json"
log_level = "warn"
flush_interval_ms = 10
[providers.up]
kind = "openai"
base_url = "{base}"
api_key_env = "LOGS_TEST_UPSTREAM_KEY"
[models.m]
deployments = [{{ provider = "up" }}]
resilience = {{ max_attempts = 2, backoff_base_ms = 1, backoff_max_ms = 2 }}
[[keys]]
id = "test"
secret_sha256 = "{hash}"
"#,
        data = data.path().display().to_string(),
        base = up.base_url(),
        hash = sha256_hex(KEY),
    );
    let config_path = data.path().join("gateway.toml");
    std::fs::write(&config_path, config).unwrap();
    let mut child = common::switchyard()
        .args(["serve", "--config"])
        .arg(&config_path)
        .env("LOGS_TEST_UPSTREAM_KEY", "sk-up")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let banner = stdout.next().unwrap().unwrap();
    std::thread::spawn(move || stdout.for_each(drop));
    let mut stderr = child.stderr.take().unwrap();
    let logs = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let base = banner
        .strip_prefix("Switchyard listening on ")
        .unwrap_or_else(|| panic!("{banner:?}"))
        .to_owned();
    let server = common::Server::adopt(child);
    let http = reqwest::Client::new();
    let chat = || {
        http.post(format!("{base}/v1/chat/completions"))
            .bearer_auth(KEY)
            .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
    };

    // The first attempt fails (a warning is logged), the retry answers.
    up.push(Behavior::status(500, "boom"));
    up.push(Reply::text("fine"));
    let r = chat().await.unwrap();
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(r.headers()["x-switchyard-request-id"], id.as_str());

    // From now on every record fails to write, as on a full disk.
    rusqlite::Connection::open(data.path().join("switchyard.db"))
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER refuse BEFORE INSERT ON requests BEGIN SELECT RAISE(ABORT, 'disk full'); END;",
        )
        .unwrap();
    let more = 5;
    for _ in 0..more {
        assert_eq!(chat().await.unwrap().status(), 200);
    }
    server.stop();
    let lines: Vec<Value> = logs
        .join()
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();

    let warning = lines
        .iter()
        .find(|l| l["fields"]["message"] == "upstream attempt failed")
        .unwrap_or_else(|| panic!("no upstream warning in {lines:#?}"));
    assert_eq!(warning["level"], "WARN");
    assert_eq!(warning["span"]["request_id"], id.as_str(), "{warning}");

    let last = lines.last().unwrap();
    let said = last["fields"]["message"].as_str().unwrap();
    assert!(said.starts_with("stopped"), "{last}");
    assert_eq!(last["level"], "ERROR", "{last}");
    assert!(
        !lines.iter().any(|l| {
            let m = l["fields"]["message"].as_str().unwrap_or_default();
            m.contains("every accepted record")
                || m.contains("records were written") && !m.contains("lost")
        }),
        "no line claims every record was written: {lines:#?}"
    );
    let written = last["fields"]["written"].as_u64().unwrap();
    let lost = last["fields"]["lost"].as_u64().unwrap();
    assert!(lost >= more, "{last}");
    assert_eq!(
        written + lost,
        1 + more,
        "every request is written or lost: {last}"
    );
    assert!(
        said.contains(&format!(
            "{written} request records were written and {lost} lost"
        )),
        "{said}"
    );
}
