//! The Batch API over real HTTP, against the fake OpenAI upstream: files, batches, the worker
//! running every line through the pipeline, the output and error files in OpenAI's format,
//! tenants apart, cancel, invalid and oversized files, a restart that finishes a batch, and a
//! second gateway on one PostgreSQL taking over a line whose lease expired.

#![expect(clippy::unwrap_used, reason = "test code")]

mod common;

use std::time::Duration;

use common::{hex_sha256, openai_model, TestGateway, KEY};
use serde_json::{json, Value};
use switchyard_store::BatchStore;
use switchyard_testkit::{eventually, Behavior, FakeUpstream, Flavor, Reply};

const OTHER_KEY: &str = "sk-other-tenant";
const WAIT: Duration = Duration::from_secs(60);

/// The fake upstream's model `m` (its own retries off: the worker's are under test), the
/// test key in tenant `t1`, another key in tenant `t2`, and `[batch]` with `batch_lines`.
fn config(up: &FakeUpstream, batch: &str) -> String {
    format!(
        "{}price = {{ input_per_mtok = 1000.0, output_per_mtok = 2000.0 }}\nresilience = {{ max_attempts = 1 }}\n\n\
         [resilience.breaker]\nconsecutive_failures = 100\nmin_requests = 1000\n\n\
         [batch]\nretry_backoff_ms = 0\n{batch}\n\n\
         [[keys]]\nid = \"k1\"\ntenant = \"t1\"\nsecret_sha256 = \"{{KEY}}\"\n\n\
         [[keys]]\nid = \"k2\"\ntenant = \"t2\"\nsecret_sha256 = \"{}\"\n",
        openai_model(up),
        hex_sha256(OTHER_KEY)
    )
}

const BOUNDARY: &str = "batch-test-boundary";

/// A multipart form as the OpenAI SDK sends it: `purpose`, then `file`.
fn form(purpose: &str, content: &[u8]) -> Vec<u8> {
    let mut form = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n{purpose}\r\n\
         --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"input.jsonl\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    form.extend_from_slice(content);
    form.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    form
}

fn line(id: &str, text: &str) -> String {
    json!({
        "custom_id": id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "m", "messages": [{"role": "user", "content": text}]},
    })
    .to_string()
}

fn lines(n: usize) -> String {
    (1..=n)
        .map(|i| line(&format!("c{i}"), &format!("question {i}")))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A gateway's Batch API as a client sees it.
struct Client<'a> {
    gw: &'a TestGateway,
    key: &'a str,
}

impl Client<'_> {
    async fn upload(&self, content: &str) -> Value {
        let r = self.upload_raw(content.as_bytes().to_vec()).await;
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    async fn upload_raw(&self, content: Vec<u8>) -> reqwest::Response {
        self.upload_as("batch", content).await
    }

    async fn upload_as(&self, purpose: &str, content: Vec<u8>) -> reqwest::Response {
        self.upload_request()
            .body(form(purpose, &content))
            .send()
            .await
            .unwrap()
    }

    /// `POST /v1/files` with its headers, for a body of the test's making.
    fn upload_request(&self) -> reqwest::RequestBuilder {
        self.gw
            .http
            .post(self.gw.url("/v1/files"))
            .bearer_auth(self.key)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
    }

    /// A batch of the uploaded `file`, created (its JSON).
    async fn created(&self, file: &Value) -> Value {
        let r = self.create(file["id"].as_str().unwrap()).await;
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    async fn create(&self, file_id: &str) -> reqwest::Response {
        self.post(
            "/v1/batches",
            json!({"input_file_id": file_id, "endpoint": "/v1/chat/completions",
                   "completion_window": "24h", "metadata": {"job": "nightly"}}),
        )
        .await
    }

    async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.gw
            .http
            .post(self.gw.url(path))
            .bearer_auth(self.key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.gw
            .http
            .get(self.gw.url(path))
            .bearer_auth(self.key)
            .send()
            .await
            .unwrap()
    }

    async fn batch(&self, id: &str) -> Value {
        self.get(&format!("/v1/batches/{id}"))
            .await
            .json()
            .await
            .unwrap()
    }

    /// Polls the batch until its status is `status`.
    async fn until(&self, id: &str, status: &str) -> Value {
        eventually(WAIT, &format!("batch {id} {status}"), || async {
            self.batch(id).await["status"] == status
        })
        .await;
        // An ended batch changes no more.
        self.batch(id).await
    }

    /// A file's lines, as JSON.
    /// The lines of a batch's output or error file (`field`: `output_file_id`, `error_file_id`).
    async fn file_of(&self, batch: &Value, field: &str) -> Vec<Value> {
        self.content(batch[field].as_str().unwrap()).await
    }

    async fn content(&self, id: &str) -> Vec<Value> {
        let r = self.get(&format!("/v1/files/{id}/content")).await;
        assert_eq!(r.status(), 200);
        r.text()
            .await
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// The `custom_id` of every line of a batch file, in order.
fn custom_ids(lines: &[Value]) -> Vec<&str> {
    lines
        .iter()
        .map(|l| l["custom_id"].as_str().unwrap())
        .collect()
}

fn counts(batch: &Value) -> (u64, u64, u64) {
    let c = &batch["request_counts"];
    (
        c["total"].as_u64().unwrap(),
        c["completed"].as_u64().unwrap(),
        c["failed"].as_u64().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_runs_every_line_and_writes_openais_output_file() {
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    let mut gw = common::start(&config(&up, "concurrency = 2")).await;
    let client = Client { gw: &gw, key: KEY };
    let file = client.upload(&lines(3)).await;
    assert_eq!(file["object"], "file");
    assert_eq!(file["purpose"], "batch");
    assert_eq!(file["filename"], "input.jsonl");
    assert_eq!(file["bytes"], lines(3).len());
    assert!(file["id"].as_str().unwrap().starts_with("file-"));
    let listed: Value = client
        .get("/v1/files?purpose=batch")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["object"], "list");
    assert_eq!(listed["data"][0]["id"], file["id"]);

    let created = client.create(file["id"].as_str().unwrap()).await;
    assert_eq!(created.status(), 200);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["object"], "batch");
    assert_eq!(created["status"], "validating");
    assert_eq!(created["metadata"]["job"], "nightly");
    assert_eq!(
        created["expires_at"].as_i64().unwrap() - created["created_at"].as_i64().unwrap(),
        86_400
    );
    let id = created["id"].as_str().unwrap();
    assert!(id.starts_with("batch_"));

    let done = client.until(id, "completed").await;
    assert_eq!(counts(&done), (3, 3, 0));
    // The backlog an autoscaler reads (process-wide: other tests' batches count too).
    let metrics = gw.metrics().await;
    for series in [
        "switchyard_batch_backlog_lines ",
        "switchyard_batch_running_lines ",
    ] {
        assert!(metrics.contains(series), "{series}");
    }
    for field in ["in_progress_at", "finalizing_at", "completed_at"] {
        assert!(done[field].as_i64().is_some(), "{field} is set: {done}");
    }
    assert_eq!(done["error_file_id"], Value::Null);
    let output = client.file_of(&done, "output_file_id").await;
    assert_eq!(custom_ids(&output), ["c1", "c2", "c3"]);
    for l in &output {
        assert!(l["id"].as_str().unwrap().starts_with("batch_req_"));
        assert_eq!(l["error"], Value::Null);
        assert_eq!(l["response"]["status_code"], 200);
        assert!(!l["response"]["request_id"].as_str().unwrap().is_empty());
        assert_eq!(l["response"]["body"]["object"], "chat.completion");
        assert_eq!(l["response"]["body"]["model"], "m");
    }
    let output_file: Value = client
        .get(&format!(
            "/v1/files/{}",
            done["output_file_id"].as_str().unwrap()
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(output_file["purpose"], "batch_output");
    let listed: Value = client
        .get("/v1/batches?limit=1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["data"][0]["id"], id);
    assert_eq!(listed["has_more"], false);
    assert_eq!(listed["first_id"], id);

    // The same request online, for its price: a batch line pays half.
    let online = gw
        .chat(json!({"model": "m", "messages": [{"role": "user", "content": "question 1"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(online.status(), 200);
    let asked: Vec<String> = up
        .requests()
        .iter()
        .map(|r| {
            r.body["messages"][0]["content"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(asked.len(), 4, "each line once, then the online request");
    gw.stop().await;
    let records = gw.records();
    assert_eq!(records.len(), 4);
    let online = records.last().unwrap();
    assert!(online.cost_nanos > 0);
    let batch_costs: Vec<u64> = records[..3].iter().map(|r| r.cost_nanos).collect();
    assert!(
        batch_costs.iter().all(|c| *c == online.cost_nanos / 2),
        "{batch_costs:?} vs {}",
        online.cost_nanos
    );
    assert!(records[..3]
        .iter()
        .all(|r| r.key_id.as_deref() == Some("k1")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_lines_are_retried_when_retryable_then_written_to_the_error_file() {
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    // One line at a time, so the script below meets the lines in order: line 1 is refused
    // (400, not retried), line 2 fails twice then is answered, line 3 fails every attempt.
    up.push(Behavior::status(400, "bad request"));
    up.push(Behavior::status(500, "boom"));
    up.push(Behavior::status(503, "busy"));
    up.push(Reply::text("third time lucky"));
    for _ in 0..3 {
        up.push(Behavior::status(500, "still down"));
    }
    let gw = common::start(&config(&up, "concurrency = 1\nmax_attempts = 3")).await;
    let client = Client { gw: &gw, key: KEY };
    let file = client.upload(&lines(3)).await;
    let created = client.created(&file).await;
    let done = client
        .until(created["id"].as_str().unwrap(), "completed")
        .await;
    assert_eq!(counts(&done), (3, 1, 2));
    assert_eq!(up.requests().len(), 7);
    let output = client.file_of(&done, "output_file_id").await;
    assert_eq!(output.len(), 1);
    assert_eq!(output[0]["custom_id"], "c2");
    assert_eq!(
        output[0]["response"]["body"]["choices"][0]["message"]["content"],
        "third time lucky"
    );
    let errors = client.file_of(&done, "error_file_id").await;
    let seen: Vec<(&str, u64)> = errors
        .iter()
        .map(|l| {
            assert_eq!(l["error"], Value::Null);
            assert!(l["response"]["body"]["error"]["message"].is_string());
            (
                l["custom_id"].as_str().unwrap(),
                l["response"]["status_code"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0], ("c1", 400));
    assert_eq!(seen[1].0, "c3");
    assert!(seen[1].1 >= 500, "{errors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenant_finds_nothing() {
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    let gw = common::start(&config(&up, "concurrency = 0")).await;
    let owner = Client { gw: &gw, key: KEY };
    let other = Client {
        gw: &gw,
        key: OTHER_KEY,
    };
    let file = owner.upload(&lines(1)).await;
    let file_id = file["id"].as_str().unwrap();
    let batch: Value = owner.create(file_id).await.json().await.unwrap();
    let batch_id = batch["id"].as_str().unwrap();
    for path in [
        format!("/v1/files/{file_id}"),
        format!("/v1/files/{file_id}/content"),
        format!("/v1/batches/{batch_id}"),
    ] {
        let r = other.get(&path).await;
        assert_eq!(r.status(), 404, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }
    assert_eq!(
        other
            .post(&format!("/v1/batches/{batch_id}/cancel"), json!({}))
            .await
            .status(),
        404
    );
    assert_eq!(
        other.create(file_id).await.status(),
        404,
        "another tenant's file"
    );
    let r = gw
        .http
        .delete(gw.url(&format!("/v1/files/{file_id}")))
        .bearer_auth(OTHER_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let files: Value = other.get("/v1/files").await.json().await.unwrap();
    assert_eq!(files["data"], json!([]));
    let batches: Value = other.get("/v1/batches").await.json().await.unwrap();
    assert_eq!(batches["data"], json!([]));
    // Without a key: 401 as on every /v1 route.
    let r = gw.http.get(gw.url("/v1/batches")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // The owner still has both, and may delete the file.
    assert_eq!(
        owner.get(&format!("/v1/batches/{batch_id}")).await.status(),
        200
    );
    let r = gw
        .http
        .delete(gw.url(&format!("/v1/files/{file_id}")))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    let deleted: Value = r.json().await.unwrap();
    assert_eq!(
        deleted,
        json!({"id": file_id, "object": "file", "deleted": true})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_runs_no_new_line_and_keeps_the_lines_done() {
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    // Line 1 is answered; line 2 is in flight when the batch is cancelled, and fails by the
    // attempt's timeout after it (retryable, but the batch is cancelled: not retried).
    up.push(Reply::default());
    up.push(Behavior::Hang);
    let text = config(&up, "concurrency = 1").replace(
        "resilience = { max_attempts = 1 }",
        "resilience = { max_attempts = 1, attempt_timeout_ms = 1000 }",
    );
    let gw = common::start(&text).await;
    let client = Client { gw: &gw, key: KEY };
    let file = client.upload(&lines(3)).await;
    let created = client.created(&file).await;
    let id = created["id"].as_str().unwrap();
    eventually(WAIT, "line 2 reaches the upstream", || async {
        up.requests().len() == 2
    })
    .await;
    let r = client
        .post(&format!("/v1/batches/{id}/cancel"), json!({}))
        .await;
    assert_eq!(r.status(), 200);
    let cancelling: Value = r.json().await.unwrap();
    assert_eq!(cancelling["status"], "cancelling");
    assert!(cancelling["cancelling_at"].as_i64().is_some());
    let done = client.until(id, "cancelled").await;
    assert!(done["cancelled_at"].as_i64().is_some());
    assert_eq!(counts(&done), (3, 1, 0));
    assert_eq!(
        up.requests().len(),
        2,
        "line 3 never ran, line 2 was not retried"
    );
    let output = client.file_of(&done, "output_file_id").await;
    assert_eq!(output.len(), 1);
    assert_eq!(output[0]["custom_id"], "c1");
    // An ended batch cannot be cancelled.
    let r = client
        .post(&format!("/v1/batches/{id}/cancel"), json!({}))
        .await;
    assert_eq!(r.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_input_file_fails_the_batch_with_its_lines_errors() {
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    let gw = common::start(&config(&up, "concurrency = 1")).await;
    let client = Client { gw: &gw, key: KEY };
    let text = [
        line("a", "fine"),
        "{not json".to_owned(),
        line("a", "again"),
        json!({"custom_id": "d", "method": "POST", "url": "/v1/embeddings", "body": {}})
            .to_string(),
    ]
    .join("\n");
    let file = client.upload(&text).await;
    let r = client.create(file["id"].as_str().unwrap()).await;
    assert_eq!(r.status(), 200);
    let batch: Value = r.json().await.unwrap();
    assert_eq!(batch["status"], "failed");
    assert!(batch["failed_at"].as_i64().is_some());
    assert_eq!(batch["errors"]["object"], "list");
    let errors: Vec<(&str, u64)> = batch["errors"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["code"].as_str().unwrap(), e["line"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        errors,
        [
            ("invalid_json_line", 2),
            ("duplicate_custom_id", 3),
            ("invalid_url", 4)
        ]
    );
    assert_eq!(counts(&batch), (0, 0, 0));
    // Requests OpenAI answers 400 (or 404 for a file it does not know).
    let file_id = file["id"].as_str().unwrap();
    for (body, status, param) in [
        (
            json!({"input_file_id": file_id, "endpoint": "/v1/completions", "completion_window": "24h"}),
            400,
            "endpoint",
        ),
        (
            json!({"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "1h"}),
            400,
            "completion_window",
        ),
        (
            json!({"input_file_id": "file-nope", "endpoint": "/v1/chat/completions", "completion_window": "24h"}),
            404,
            "input_file_id",
        ),
    ] {
        let r = client.post("/v1/batches", body).await;
        assert_eq!(r.status(), status);
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["param"], param);
    }
    assert!(up.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_file_is_refused_in_openais_error_shape() {
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    let gw = common::start(&config(&up, "max_file_mb = 1")).await;
    let client = Client { gw: &gw, key: KEY };
    let big = vec![b'x'; 3 << 20];
    // With its length declared: refused before it is read.
    let r = client.upload_raw(big.clone()).await;
    assert_eq!(r.status(), 413);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "file_too_large");
    assert_eq!(e["error"]["type"], "invalid_request_error");
    // Streamed without a length: refused once the limit is passed.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = form("batch", &big)
        .chunks(64 * 1024)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let r = client
        .upload_request()
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "file_too_large");
    // A file within the limit, and a purpose that is not `batch`.
    assert_eq!(client.upload_raw(vec![b'x'; 1 << 19]).await.status(), 200);
    let r = client.upload_as("fine-tune", b"{}".to_vec()).await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["param"], "purpose");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_four_files_are_held_at_once_and_the_next_waits_its_turn() {
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    let gw = common::start(&config(&up, "")).await;
    let client = Client { gw: &gw, key: KEY };
    let turns = &gw.state.file_transfers;
    let all = switchyard_gateway::edge::batches::FILE_TRANSFERS;
    assert_eq!(turns.available_permits(), all);
    // Four uploads whose bodies stop half-way hold every turn.
    let whole = form("batch", lines(3).as_bytes());
    let (head, tail) = whole.split_at(whole.len() / 2);
    let mut senders = Vec::new();
    let mut pending = Vec::new();
    for _ in 0..all {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
        tx.send(Ok(head.to_vec())).await.unwrap();
        let chunks = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|chunk| (chunk, rx))
        });
        let body = reqwest::Body::wrap_stream(chunks);
        let request = client.upload_request().body(body).send();
        #[expect(clippy::disallowed_methods, reason = "each upload is awaited below")]
        pending.push(tokio::spawn(request));
        senders.push(tx);
    }
    switchyard_testkit::eventually(
        std::time::Duration::from_secs(20),
        "four uploads hold every turn",
        || std::future::ready(turns.available_permits() == 0),
    )
    .await;
    // A fifth, whole, waits for a turn, which one of the four gives back when it ends.
    let fifth = client.upload_raw(lines(2).into_bytes());
    let first = senders.remove(0);
    let finish = async move {
        first.send(Ok(tail.to_vec())).await.unwrap();
        drop(first);
    };
    let (r, ()) = tokio::join!(fifth, finish);
    assert_eq!(r.status(), 200);
    for tx in senders {
        tx.send(Ok(tail.to_vec())).await.unwrap();
    }
    for p in pending {
        assert_eq!(p.await.unwrap().unwrap().status(), 200);
    }
    assert_eq!(turns.available_permits(), all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_restarted_mid_batch_finishes_it() {
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    // Line 2 is in flight (never answered) when the gateway stops.
    up.push(Reply::default());
    up.push(Behavior::Hang);
    let text = config(&up, "concurrency = 1");
    let mut gw = common::start(&text).await;
    let (file_id, id) = {
        let client = Client { gw: &gw, key: KEY };
        let file = client.upload(&lines(3)).await;
        let created = client.created(&file).await;
        (
            file["id"].as_str().unwrap().to_owned(),
            created["id"].as_str().unwrap().to_owned(),
        )
    };
    eventually(WAIT, "line 2 reaches the upstream", || async {
        up.requests().len() == 2
    })
    .await;
    gw.stop().await;
    let gw = gw.restart(&text).await;
    let client = Client { gw: &gw, key: KEY };
    let done = client.until(&id, "completed").await;
    assert_eq!(counts(&done), (3, 3, 0));
    assert_eq!(done["input_file_id"], file_id);
    let output = client.file_of(&done, "output_file_id").await;
    assert_eq!(custom_ids(&output), ["c1", "c2", "c3"]);
    assert_eq!(
        up.requests().len(),
        4,
        "line 2 ran again after the restart, at least once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_gateway_takes_over_a_line_whose_lease_expired() {
    let postgres = match switchyard_testkit::servers::PostgresServer::start() {
        Ok(p) => p,
        Err(e) => {
            e.skip("a_second_gateway_takes_over_a_line_whose_lease_expired");
            return;
        }
    };
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    let url = postgres.url();
    let on_postgres = |concurrency: &str| {
        let pg = switchyard_control::SecretUrl::postgres(&url).unwrap();
        let text = config(&up, concurrency);
        async move {
            common::start_adjusted(&text, tempfile::tempdir().unwrap(), &[], move |c| {
                c.storage.postgres = Some(pg.clone());
            })
            .await
        }
    };
    // The first gateway serves the API only.
    let api = on_postgres("concurrency = 0").await;
    let client = Client { gw: &api, key: KEY };
    let file = client.upload(&lines(2)).await;
    let created = client.created(&file).await;
    let id = created["id"].as_str().unwrap().to_owned();
    // Two replicas that are not these gateways: one died holding line 1 (its lease ran out
    // long ago), one is alive holding line 2.
    let (store_url, batch_id) = (url.clone(), id.clone());
    let store = std::thread::spawn(move || {
        let store = switchyard_store::PostgresStore::connect(&store_url).unwrap();
        assert!(store.start_batch(&batch_id, 1).unwrap());
        let now = chrono::Utc::now().timestamp_millis();
        let dead = store.claim_lines(&batch_id, "dead", 0, 1, 1).unwrap();
        assert_eq!(dead[0].line, 1);
        let alive = store
            .claim_lines(&batch_id, "alive", 0, now + 3_600_000, 1)
            .unwrap();
        assert_eq!(alive[0].line, 2);
        store
    })
    .join()
    .unwrap();
    let worker = on_postgres("concurrency = 4").await;
    let done = eventually(WAIT, "line 1 is taken over and answered", || async {
        counts(&client.batch(&id).await).1 == 1
    });
    done.await;
    assert_eq!(up.requests().len(), 1, "line 2's lease is alive: not taken");
    assert_eq!(client.batch(&id).await["status"], "in_progress");
    // The live replica ends line 2; the worker finalises the batch.
    let (batch_id, out) = (id.clone(), line("c2", "done elsewhere"));
    std::thread::spawn(move || {
        assert!(store
            .finish_line(&batch_id, 2, "alive", false, &out)
            .unwrap())
    })
    .join()
    .unwrap();
    let done = client.until(&id, "completed").await;
    assert_eq!(counts(&done), (2, 2, 0));
    let output = client.file_of(&done, "output_file_id").await;
    assert_eq!(output[0]["custom_id"], "c1");
    assert_eq!(output[0]["response"]["status_code"], 200);
    assert_eq!(output[1]["custom_id"], "c2");
    drop(worker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_past_its_window_expires_with_its_lines_not_run_in_the_error_file() {
    if std::env::var("SWITCHYARD_TEST_POSTGRES").is_ok_and(|v| v == "1") {
        // The window is moved with SQLite's own client; the store's part of expiry runs on
        // both databases in the store's conformance tests.
        eprintln!("skipped under SWITCHYARD_TEST_POSTGRES=1: it edits the SQLite file");
        return;
    }
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    // The first gateway takes the batch but runs no line.
    let mut api = common::start(&config(&up, "concurrency = 0")).await;
    let id = {
        let client = Client { gw: &api, key: KEY };
        let file = client.upload(&lines(3)).await;
        let created = client.created(&file).await;
        created["id"].as_str().unwrap().to_owned()
    };
    api.stop().await;
    // Line 1 was answered (by a replica that is gone), then 24 hours passed: the window is
    // moved into the past behind the store's back.
    let db = api.dir.path().to_path_buf();
    let batch_id = id.clone();
    std::thread::spawn(move || {
        let store = switchyard_store::SqliteStore::open_in(&db).unwrap();
        assert!(store.start_batch(&batch_id, 1).unwrap());
        let claimed = store.claim_lines(&batch_id, "gone", 0, 1_000, 1).unwrap();
        assert_eq!(claimed[0].line, 1);
        let answered = json!({"id": "batch_req_1", "custom_id": "c1", "response": {"status_code": 200, "request_id": "r1", "body": {}}, "error": null});
        assert!(store.finish_line(&batch_id, 1, "gone", false, &answered.to_string()).unwrap());
        let raw = rusqlite::Connection::open(db.join("switchyard.db")).unwrap();
        raw.execute("UPDATE batches SET expires_at = 1 WHERE id = ?1", [&batch_id]).unwrap();
    })
    .join()
    .unwrap();
    let gw = api.restart(&config(&up, "concurrency = 2")).await;
    let client = Client { gw: &gw, key: KEY };
    let done = client.until(&id, "expired").await;
    assert!(done["expired_at"].as_i64().is_some());
    assert_eq!(counts(&done), (3, 1, 2));
    let output = client.file_of(&done, "output_file_id").await;
    assert_eq!(output.len(), 1);
    assert_eq!(output[0]["custom_id"], "c1");
    let errors = client.file_of(&done, "error_file_id").await;
    let expired: Vec<(&str, &str)> = errors
        .iter()
        .map(|l| {
            assert_eq!(l["response"], Value::Null);
            (
                l["custom_id"].as_str().unwrap(),
                l["error"]["code"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(expired, [("c2", "batch_expired"), ("c3", "batch_expired")]);
    assert!(up.requests().is_empty(), "no line ran after the window");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embeddings_batch_runs_through_the_embeddings_pipeline() {
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    let gw = common::start(&config(&up, "concurrency = 2")).await;
    let client = Client { gw: &gw, key: KEY };
    let text = (1..=2)
        .map(|i| {
            json!({"custom_id": format!("e{i}"), "method": "POST", "url": "/v1/embeddings",
                   "body": {"model": "m", "input": format!("text {i}")}})
            .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n");
    let file = client.upload(&text).await;
    let r = client
        .post(
            "/v1/batches",
            json!({"input_file_id": file["id"], "endpoint": "/v1/embeddings", "completion_window": "24h"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["endpoint"], "/v1/embeddings");
    let done = client
        .until(created["id"].as_str().unwrap(), "completed")
        .await;
    assert_eq!(counts(&done), (2, 2, 0));
    let output = client.file_of(&done, "output_file_id").await;
    for (l, id) in output.iter().zip(["e1", "e2"]) {
        assert_eq!(l["custom_id"], id);
        assert_eq!(l["response"]["body"]["object"], "list");
        assert!(l["response"]["body"]["data"][0]["embedding"].is_array());
    }
    assert!(up.requests().iter().all(|r| r.path == "/v1/embeddings"));
}
