//! Starts a real gateway on 127.0.0.1:0 with a config given as TOML text, and stops it.

// `allow`, not `expect`: every test binary includes this module and uses a different part of
// it, so an expectation would be unfulfilled in some of them.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code, shared by every test binary"
)]

use std::net::SocketAddr;

use switchyard_gateway::control_plane::versions::{Env, Launch};
use switchyard_gateway::Server;
use switchyard_store::{RecordStore, SqliteStore};

pub const KEY: &str = "sk-test-key";

pub struct TestGateway {
    /// Under `SWITCHYARD_TEST_POSTGRES=1`, the PostgreSQL server of the gateway's store.
    pub postgres: Option<std::sync::Arc<switchyard_testkit::servers::PostgresServer>>,
    pub addr: SocketAddr,
    /// The running gateway's state, for tests that drive a loop's step by hand.
    pub state: std::sync::Arc<switchyard_gateway::edge::state::AppState>,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<switchyard_store::telemetry::Closed>>>,
}

/// The config text with its storage pointed at a fresh temp folder (a launch override) and
/// a test key added.
/// `{KEY}` in the text stands for the test key's hash.
pub async fn start(config: &str) -> TestGateway {
    start_with_env(config, &[]).await
}

/// As [`start`], with environment variables (upstream API keys) the gateway reads.
pub async fn start_with_env(config: &str, vars: &[(&str, &str)]) -> TestGateway {
    start_in(config, tempfile::tempdir().unwrap(), vars).await
}

/// As [`start_with_env`], on an existing data folder (a restart).
pub async fn start_in(config: &str, dir: tempfile::TempDir, vars: &[(&str, &str)]) -> TestGateway {
    start_adjusted(config, dir, vars, |_| {}).await
}

/// As [`start_in`], with the launch's own overrides (as the binary's environment variables
/// make them: a fleet's PostgreSQL and Redis). The data folder is one of them too, so that
/// replicas started from the same config run the same config text (one version), as a
/// fleet's replicas do.
pub async fn start_adjusted(
    config: &str,
    dir: tempfile::TempDir,
    vars: &[(&str, &str)],
    adjust: impl Fn(&mut switchyard_control::Config) + Send + Sync + 'static,
) -> TestGateway {
    let text = config.replace("{KEY}", &hex_sha256(KEY));
    let data_dir = dir.path().to_path_buf();
    // Every test's gateway on a PostgreSQL server of its own instead of SQLite: the whole
    // suite run on the fleet's store (`SWITCHYARD_TEST_POSTGRES=1 cargo test -p
    // switchyard-gateway`). A restart on the same folder reuses the folder's server.
    let postgres = std::env::var("SWITCHYARD_TEST_POSTGRES")
        .is_ok_and(|v| v == "1")
        .then(|| postgres_for(dir.path()));
    let url = postgres
        .as_ref()
        .map(|p| switchyard_control::SecretUrl::postgres(&p.url()).expect("a PostgreSQL URL"));
    let launch = Launch::new(text, "test.toml").with_adjust(move |c| {
        c.server.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        c.storage.data_dir = data_dir.clone();
        if let Some(url) = &url {
            c.storage.postgres = Some(url.clone());
        }
        adjust(c);
    });
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let env: Env = std::sync::Arc::new(move |k: &str| {
        vars.iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.clone())
    });
    let server = Server::bind(launch, env)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = server.local_addr().unwrap();
    let state = server.state();
    let (stop, rx) = tokio::sync::oneshot::channel();
    #[expect(clippy::disallowed_methods, reason = "joined in `stop`")]
    let task = tokio::spawn(server.run(async {
        let _ = rx.await;
    }));
    TestGateway {
        postgres,
        addr,
        state,
        http: reqwest::Client::new(),
        dir,
        stop: Some(stop),
        task: Some(task),
    }
}

/// The PostgreSQL server of the data folder `dir`: started on first use, kept for the
/// process (the folder's restarts find the same database).
fn postgres_for(
    dir: &std::path::Path,
) -> std::sync::Arc<switchyard_testkit::servers::PostgresServer> {
    use std::collections::HashMap;
    use std::sync::Weak;
    use std::sync::{Arc, Mutex, OnceLock};
    // Weak: the server stops when the last gateway on the folder is dropped (a restart holds
    // the old gateway, and so the server, until the new one has it).
    static SERVERS: OnceLock<
        Mutex<HashMap<std::path::PathBuf, Weak<switchyard_testkit::servers::PostgresServer>>>,
    > = OnceLock::new();
    let mut servers = SERVERS.get_or_init(Default::default).lock().unwrap();
    servers.retain(|_, server| server.strong_count() > 0);
    if let Some(server) = servers.get(dir).and_then(Weak::upgrade) {
        return server;
    }
    let server = Arc::new(
        switchyard_testkit::servers::PostgresServer::start()
            .unwrap_or_else(|e| panic!("SWITCHYARD_TEST_POSTGRES=1: {e}")),
    );
    servers.insert(dir.to_path_buf(), Arc::downgrade(&server));
    server
}

/// The static embedding model's folder, for configs whose cache has a semantic tier
/// (`scripts/fetch-models.sh` fetches it; `scripts/test.sh` runs that first).
pub fn static_embedder() -> &'static str {
    let embedder = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../models/minilm-static-256"
    );
    assert!(
        std::path::Path::new(embedder)
            .join("model.safetensors")
            .is_file(),
        "the static embedding model is missing at {embedder}: run scripts/fetch-models.sh"
    );
    embedder
}

pub fn hex_sha256(s: &str) -> String {
    switchyard_control::hash_key(s)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl TestGateway {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn chat(&self, body: serde_json::Value) -> reqwest::RequestBuilder {
        self.http
            .post(self.url("/v1/chat/completions"))
            .bearer_auth(KEY)
            .json(&body)
    }

    /// `POST /v1/feedback` with the test key; it must be accepted.
    pub async fn feedback(&self, body: serde_json::Value) {
        let r = self
            .http
            .post(self.url("/v1/feedback"))
            .bearer_auth(KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }

    /// The `/metrics` text now (the process's metrics: every test gateway in it shares them).
    pub async fn metrics(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Asks for shutdown and waits until the server has drained and flushed its records;
    /// what it wrote and lost (`None` when it was stopped before).
    pub async fn stop(&mut self) -> Option<switchyard_store::telemetry::Closed> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let t = self.task.take()?;
        Some(t.await.unwrap().unwrap())
    }

    /// Stops this gateway and starts `config` on the same data folder.
    pub async fn restart(mut self, config: &str) -> TestGateway {
        self.stop().await;
        // Kept until the new gateway holds it (`postgres_for`).
        let _postgres = self.postgres.clone();
        start_in(config, self.dir, &[]).await
    }

    /// How many records the store holds now (the gateway may still be running).
    pub fn records_written(&self) -> u64 {
        self.with_store(|s| s.count().unwrap_or(0))
    }

    /// Every record written, oldest first (call after `stop`).
    pub fn records(&self) -> Vec<switchyard_store::RequestRecord> {
        let mut r = self.with_store(|s| s.recent(10_000).unwrap());
        r.reverse();
        r
    }

    /// Runs `f` on a store of its own on the gateway's database, on a thread of its own
    /// (PostgreSQL's client refuses the async threads).
    fn with_store<T: Send>(&self, f: impl FnOnce(&dyn RecordStore) -> T + Send) -> T {
        let url = self.postgres.as_ref().map(|p| p.url());
        let dir = self.dir.path();
        std::thread::scope(|s| {
            s.spawn(move || match url {
                Some(url) => f(&switchyard_store::PostgresStore::connect(&url).unwrap()),
                None => f(&SqliteStore::open_in(dir).unwrap()),
            })
            .join()
            .unwrap()
        })
    }
}

/// The admin key of configs that declare `[admin]` with [`admin_section`].
pub const ADMIN: &str = "sk-test-admin";

/// An `[admin]` section accepting [`ADMIN`].
pub fn admin_section() -> String {
    format!("[admin]\nsecret_sha256 = \"{}\"\n", hex_sha256(ADMIN))
}

/// One model `m` on the fake upstream `up` (one attempt, no semantic cache), the guards given
/// and the test key, after `before` (an admin or telemetry section): what the guard tests run on.
pub fn guarded_config(up: &switchyard_testkit::FakeUpstream, before: &str, guards: &str) -> String {
    format!(
        r#"
{before}
[providers.up]
kind = "openai"
base_url = "{}"

[models.m]
deployments = [{{ provider = "up" }}]
resilience = {{ max_attempts = 1 }}

[cache]
semantic = false

{guards}

[[keys]]
id = "test"
secret_sha256 = "{{KEY}}"
"#,
        up.base_url()
    )
}

/// An admin key, one simulated model `fast` (1 ms to the first token, 4 tokens) and the test
/// key: what the admin API's tests run on.
pub fn admin_fast_config() -> String {
    format!(
        r#"
{}
[providers.sim]
kind = "sim"

[providers.sim.models.fast]
ttft_ms = {{ p50 = 1 }}
output_tokens = {{ p50 = 4 }}

[models.fast]
deployments = [{{ provider = "sim" }}]
price = {{ input_per_mtok = 1.0, output_per_mtok = 2.0 }}

[[keys]]
id = "test"
secret_sha256 = "{{KEY}}"
"#,
        admin_section()
    )
}

impl TestGateway {
    /// An admin API call as `alice` (`x-switchyard-actor`): status and JSON body.
    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut r = self
            .http
            .request(method, self.url(path))
            .bearer_auth(ADMIN)
            .header("x-switchyard-actor", "alice");
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }
}

impl TestGateway {
    /// The audit log's actions, in order.
    pub async fn audit_actions(&self) -> Vec<String> {
        let (_, audit) = self
            .admin(reqwest::Method::GET, "/admin/v1/audit", None)
            .await;
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// The simulator's `fast` model: instant, 12 tokens an answer, "Paris." to the capital of
/// France, and a `get_weather` call to any question about the weather. The base of the tests
/// of the APIs translated to chat (Responses, Messages).
pub const SIM_FAST: &str = r#"
[providers.sim]
kind = "sim"
seed = 1
[providers.sim.models.fast]
ttft_ms = { p50 = 0 }
tokens_per_second = { p50 = 100000 }
output_tokens = { p50 = 12 }
[[providers.sim.models.fast.rules]]
pattern = "(?i)capital of france"
reply = "Paris."
[[providers.sim.models.fast.rules]]
pattern = "(?i)weather"
tool_call = "get_weather"
"#;

/// A simulated model whose answers are long (2,000 tokens) and slow to start (500 ms), so
/// that 64 requests are all in flight before the first one settles. 10 USD per million
/// output tokens, at most 1,000 output tokens an answer: one answer costs at most 1 cent, and
/// the test key's daily budget is 5 cents.
pub const LONG_ANSWERS: &str = r#"
[providers.sim]
kind = "sim"
seed = 3
[providers.sim.models.long]
ttft_ms = { p50 = 500 }
tokens_per_second = { p50 = 1000000 }
output_tokens = { p50 = 2000 }

[models.big]
deployments = [{ provider = "sim", upstream_model = "long" }]
price = { input_per_mtok = 1.0, output_per_mtok = 10.0 }
max_output_tokens = 1000

[[keys]]
id = "test"
secret_sha256 = "{KEY}"
budget_usd_daily = 0.05
"#;

/// `n` requests for [`LONG_ANSWERS`]' model, every other one streamed.
pub fn long_stories(n: usize) -> Vec<serde_json::Value> {
    (0..n)
        .map(|i| {
            serde_json::json!({
                "model": "big",
                "messages": user(&format!("Tell me a long story about ship number {i}.")),
                "stream": i % 2 == 0,
            })
        })
        .collect()
}

/// The `x-switchyard-request-id` of an answer, for feedback on it.
pub fn request_id(r: &reqwest::Response) -> String {
    r.headers()["x-switchyard-request-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

/// A provider `up` on the fake OpenAI upstream `up`, and a model `m` on it (the model's
/// table is last: more of its fields may follow).
pub fn openai_model(up: &switchyard_testkit::FakeUpstream) -> String {
    format!(
        "[providers.up]\nkind = \"openai\"\nbase_url = \"{}\"\n\n[models.m]\ndeployments = [{{ provider = \"up\" }}]\n",
        up.base_url()
    )
}

pub fn user(text: &str) -> serde_json::Value {
    serde_json::json!([{"role": "user", "content": text}])
}

/// What an SSE body says: the first choice's content joined, and whether a usage chunk came.
pub fn sse_content(text: &str) -> (String, bool) {
    let mut content = String::new();
    let mut saw_usage = false;
    for line in text.lines().filter_map(|l| l.strip_prefix("data: ")) {
        if line == "[DONE]" {
            continue;
        }
        let chunk: serde_json::Value = serde_json::from_str(line).unwrap();
        if let Some(t) = chunk["choices"][0]["delta"]["content"].as_str() {
            content.push_str(t);
        }
        saw_usage |= chunk["usage"].is_object();
    }
    (content, saw_usage)
}

/// The error a gateway with `config` (the `{KEY}` template) stops at, starting (it must not
/// start).
pub async fn start_error(config: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}\n[storage]\ndata_dir = {:?}\n",
        config.replace("{KEY}", &hex_sha256(KEY)),
        dir.path().display().to_string()
    );
    let launch = Launch::new(text, "test.toml");
    // `err().unwrap()`: the caller's config must not start.
    Server::bind(launch, std::sync::Arc::new(|_: &str| None))
        .await
        .err()
        .unwrap()
        .to_string()
}
