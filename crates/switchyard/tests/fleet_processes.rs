//! Replicas as real `switchyard serve` processes on one PostgreSQL and one Redis, named by
//! `SWITCHYARD_STORAGE_URL` and `SWITCHYARD_REDIS_URL` as an operator names them: a replica
//! killed with SIGKILL under load, Redis stopped mid-run and started again, and the embedded
//! demo started as a replica from the environment alone.
//!
//! Each test starts servers of its own (`switchyard_testkit::servers`); where PostgreSQL or
//! Redis cannot be started the test says so and skips, except under
//! `SWITCHYARD_REQUIRE_SERVERS=1` (CI), where it fails.

#![expect(clippy::unwrap_used, clippy::panic, reason = "test code")]

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_testkit::eventually;
use switchyard_testkit::servers::{PostgresServer, RedisServer};

const ADMIN: &str = "sk-fleet-admin";
/// A key without limits.
const OPEN: &str = "sk-fleet-open";
/// A key with `rpm = 30`.
const LIMITED: &str = "sk-fleet-limited";
/// A key with a daily budget of 5 cents.
const BUDGETED: &str = "sk-fleet-budgeted";

fn hex_sha256(key: &str) -> String {
    hex::encode(switchyard_control::hash_key(key))
}

/// Every replica's config file (the same text, so one config version): a simulated model
/// `fast` (1 ms to the first token), the exact cache, the telemetry writer's default flush
/// window (200 ms), two keys.
fn fleet_config() -> String {
    format!(
        r#"
[storage]
data_dir = "data"

[telemetry]
log_format = "text"
flush_interval_ms = 200

[admin]
secret_sha256 = "{}"

[providers.sim]
kind = "sim"

[providers.sim.models.fast]
ttft_ms = {{ p50 = 1 }}
output_tokens = {{ p50 = 4 }}

[models.fast]
deployments = [{{ provider = "sim" }}]
price = {{ input_per_mtok = 1.0, output_per_mtok = 2.0 }}

# 20 s to the first token: a request stays in flight for as long as a test needs. At most
# 1,000 output tokens at 10 USD a million: a worst case of about 1 cent.
[providers.sim.models.slow]
ttft_ms = {{ p50 = 20000 }}
output_tokens = {{ p50 = 10 }}

[models.slow]
deployments = [{{ provider = "sim", upstream_model = "slow" }}]
price = {{ input_per_mtok = 1.0, output_per_mtok = 10.0 }}
max_output_tokens = 1000

[cache]
semantic = false

[[keys]]
id = "open"
secret_sha256 = "{}"

[[keys]]
id = "limited"
secret_sha256 = "{}"
rpm = 30

[[keys]]
id = "budgeted"
secret_sha256 = "{}"
budget_usd_daily = 0.05
"#,
        hex_sha256(ADMIN),
        hex_sha256(OPEN),
        hex_sha256(LIMITED),
        hex_sha256(BUDGETED)
    )
}

/// The fleet's PostgreSQL and Redis; `None` (skipped) when they cannot be started.
fn servers(test: &str, redis_password: Option<&str>) -> Option<(PostgresServer, RedisServer)> {
    let postgres = match PostgresServer::start() {
        Ok(p) => p,
        Err(e) => {
            e.skip(test);
            return None;
        }
    };
    let redis = match redis_password {
        Some(p) => RedisServer::start_with_password(p),
        None => RedisServer::start(),
    };
    match redis {
        Ok(r) => Some((postgres, r)),
        Err(e) => {
            e.skip(test);
            None
        }
    }
}

/// One `switchyard serve` process: its base URL, and everything it printed (stdout and
/// stderr, collected by threads of their own). Killed when dropped unstopped.
struct Replica {
    child: Option<Child>,
    base: String,
    printed: Arc<Mutex<String>>,
    http: reqwest::Client,
    _cwd: tempfile::TempDir,
}

/// A process's output, gathered into `printed` until it closes.
fn collect(from: impl Read + Send + 'static, printed: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { return };
            let mut all = printed.lock().unwrap();
            all.push_str(&line);
            all.push('\n');
        }
    });
}

impl Replica {
    /// Starts `switchyard serve` on a free loopback port, in a folder of its own (its spool),
    /// with `config` (`None`: the embedded demo) and the fleet's URLs in the environment;
    /// returns once it listens.
    fn start(config: Option<&str>, postgres_url: &str, redis_url: &str) -> Replica {
        let cwd = tempfile::tempdir().unwrap();
        let mut command = common::switchyard();
        command.args(["serve", "--listen", "127.0.0.1:0"]);
        if let Some(text) = config {
            let path = cwd.path().join("gateway.toml");
            std::fs::write(&path, text).unwrap();
            command.arg("--config").arg(path);
        }
        let mut child = command
            .current_dir(cwd.path())
            .env("SWITCHYARD_STORAGE_URL", postgres_url)
            .env("SWITCHYARD_REDIS_URL", redis_url)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let printed = Arc::new(Mutex::new(String::new()));
        collect(child.stderr.take().unwrap(), printed.clone());
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut banner = String::new();
        stdout.read_line(&mut banner).unwrap();
        printed.lock().unwrap().push_str(&banner);
        collect(stdout, printed.clone());
        let base = [
            "Switchyard listening on ",
            "Switchyard embedded demo listening on ",
        ]
        .iter()
        .find_map(|p| banner.trim().strip_prefix(p))
        .unwrap_or_else(|| {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no banner: {banner:?}; {}", printed.lock().unwrap())
        })
        .to_owned();
        Replica {
            child: Some(child),
            base,
            printed,
            http: reqwest::Client::new(),
            _cwd: cwd,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn chat(&self, key: &str, body: Value) -> reqwest::RequestBuilder {
        self.http
            .post(self.url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(&body)
    }

    async fn metrics(&self) -> String {
        let r = self.http.get(self.url("/metrics")).send().await.unwrap();
        r.text().await.unwrap()
    }

    /// What it printed so far.
    fn printed(&self) -> String {
        self.printed.lock().unwrap().clone()
    }

    /// SIGKILL: no shutdown, nothing flushed.
    fn kill(&mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// SIGTERM, and the clean exit it must lead to (every record written).
    fn stop(&mut self) {
        common::stop(self.child.take().unwrap());
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The sum of a metric's samples (every label set) in a `/metrics` text; 0 when absent.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A metric's sample with exactly these labels (`{outcome="written"}`); 0 when absent.
fn sample(text: &str, name: &str, labels: &str) -> f64 {
    let prefix = format!("{name}{labels} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix)?.parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// Every request id the fleet's PostgreSQL holds a record of.
async fn stored_ids(postgres: &PostgresServer) -> Vec<String> {
    let url = postgres.url();
    tokio::task::spawn_blocking(move || {
        use switchyard_store::RecordStore;
        let store = switchyard_store::PostgresStore::connect(&url).unwrap();
        store
            .recent(100_000)
            .unwrap()
            .into_iter()
            .map(|r| r.request_id)
            .collect()
    })
    .await
    .unwrap()
}

fn request_id(r: &reqwest::Response) -> String {
    r.headers()["x-switchyard-request-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

fn ask(text: &str) -> Value {
    json!({"model": "fast", "messages": [{"role": "user", "content": text}]})
}

/// The same question asked for an exact cache entry (temperature 0).
fn cacheable(text: &str) -> Value {
    json!({"model": "fast", "temperature": 0, "messages": [{"role": "user", "content": text}]})
}

async fn cache_outcome(replica: &Replica, key: &str, body: Value) -> String {
    let r = replica.chat(key, body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.headers()["x-switchyard-cache"]
        .to_str()
        .unwrap()
        .to_owned()
}

/// The entries `replica` has written to Redis.
async fn written(replica: &Replica) -> f64 {
    sample(
        &replica.metrics().await,
        "switchyard_cache_shared_total",
        "{outcome=\"written\"}",
    )
}

/// `body` asked of `from` is a miss there; once `from` has written the entry to Redis, it is
/// an exact hit on `to`, which never saw it.
async fn shared_across(from: &Replica, to: &Replica, key: &str, body: Value) {
    let before = written(from).await;
    assert_eq!(cache_outcome(from, key, body.clone()).await, "miss");
    eventually(
        Duration::from_secs(10),
        "the entry is written to Redis",
        || async { written(from).await > before },
    )
    .await;
    assert_eq!(cache_outcome(to, key, body).await, "hit-exact");
}

/// Three replicas of `config` on the servers, started one after the other.
fn three(config: &str, postgres: &PostgresServer, redis: &RedisServer) -> Vec<Replica> {
    (0..3)
        .map(|_| Replica::start(Some(config), &postgres.url(), &redis.url()))
        .collect()
}

/// Waits until every replica's heartbeat counts `n` replicas alive.
async fn until_counted(replicas: &[Replica], n: usize) {
    for r in replicas {
        eventually(
            Duration::from_secs(15),
            "the heartbeats count the replicas",
            || async { metric(&r.metrics().await, "switchyard_replicas") == n as f64 },
        )
        .await;
    }
}

/// One client loop: sequential requests to `replicas` in turn until `stop`, each answer's
/// request id and when it came; stops early (returning what it saw) at the first request that
/// gets no answer at all, when `until_gone` (the replica was killed).
async fn client_loop(
    replicas: Vec<(String, reqwest::Client)>,
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicUsize>,
    until_gone: bool,
) -> Vec<(Result<(u16, String), String>, Instant)> {
    let mut seen = Vec::new();
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let (base, http) = &replicas[i % replicas.len()];
        i += 1;
        let sent = http
            .post(format!("{base}/v1/chat/completions"))
            .bearer_auth(OPEN)
            .json(&ask(&format!("steady request {i}")))
            .send()
            .await;
        let outcome = match sent {
            Ok(r) => {
                let status = r.status().as_u16();
                let id = request_id(&r);
                match r.bytes().await {
                    Ok(_) => Ok((status, id)),
                    Err(e) => Err(format!("{base}: body: {e}")),
                }
            }
            Err(e) => Err(format!("{base}: {e}")),
        };
        let failed = outcome.is_err();
        seen.push((outcome, Instant::now()));
        if failed && until_gone {
            break;
        }
        answered.fetch_add(1, Ordering::Relaxed);
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_killed_under_load_fails_none_of_the_others_requests_and_loses_at_most_its_flush_window(
) {
    let test = "a_replica_killed_under_load_fails_none_of_the_others_requests_and_loses_at_most_its_flush_window";
    let Some((postgres, redis)) = servers(test, None) else {
        return;
    };
    let mut replicas = three(&fleet_config(), &postgres, &redis);
    let stop = Arc::new(AtomicBool::new(false));
    let (to_a, to_others) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let endpoint = |r: &Replica| (r.base.clone(), reqwest::Client::new());
    let others: Vec<_> = replicas[1..].iter().map(endpoint).collect();
    let mut loops = Vec::new();
    for _ in 0..4 {
        #[expect(clippy::disallowed_methods, reason = "joined below")]
        loops.push(tokio::spawn(client_loop(
            others.clone(),
            stop.clone(),
            to_others.clone(),
            false,
        )));
    }
    let mut on_a = Vec::new();
    for _ in 0..2 {
        #[expect(clippy::disallowed_methods, reason = "joined below")]
        on_a.push(tokio::spawn(client_loop(
            vec![endpoint(&replicas[0])],
            stop.clone(),
            to_a.clone(),
            true,
        )));
    }
    eventually(Duration::from_secs(30), "A answers under load", || async {
        to_a.load(Ordering::Relaxed) >= 200
    })
    .await;
    replicas[0].kill();
    let killed_at = Instant::now();
    let before = to_others.load(Ordering::Relaxed);
    eventually(
        Duration::from_secs(30),
        "the others go on answering",
        || async { to_others.load(Ordering::Relaxed) >= before + 200 },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let mut answered_by_others = Vec::new();
    for l in loops {
        answered_by_others.extend(l.await.unwrap());
    }
    let mut answered_by_a = Vec::new();
    for l in on_a {
        answered_by_a.extend(l.await.unwrap());
    }
    let failed: Vec<_> = answered_by_others
        .iter()
        .filter(|(o, _)| !matches!(o, Ok((200, _))))
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
    // B and C stop cleanly: every record they answered is written.
    for r in &mut replicas[1..] {
        r.stop();
    }

    let stored: HashSet<String> = stored_ids(&postgres).await.into_iter().collect();
    for (o, _) in &answered_by_others {
        let (_, id) = o.as_ref().unwrap();
        assert!(stored.contains(id), "B and C lose nothing: {id}");
    }
    let a_ok: Vec<(&String, Instant)> = answered_by_a
        .iter()
        .filter_map(|(o, at)| match o {
            Ok((200, id)) => Some((id, *at)),
            _ => None,
        })
        .collect();
    let lost: Vec<Instant> = a_ok
        .iter()
        .filter(|(id, _)| !stored.contains(*id))
        .map(|(_, at)| *at)
        .collect();
    // What a SIGKILL loses: the records A had answered but not yet written. Its writer takes
    // a record, waits the flush window (`flush_interval_ms`, 200 ms) for more, then writes
    // what gathered; so what is lost is what A answered since its last batch began, plus the
    // time that batch's write took. The bound checked leaves a second for that write and
    // for a loaded machine: every record lost was answered at most 200 ms + 1 s before the
    // kill. Everything answered earlier reached PostgreSQL.
    let window = Duration::from_millis(200) + Duration::from_secs(1);
    let in_window = a_ok
        .iter()
        .filter(|(_, at)| *at + window >= killed_at)
        .count();
    let oldest = lost
        .iter()
        .min()
        .map(|at| killed_at.saturating_duration_since(*at));
    eprintln!(
        "A answered {} requests with 200, {} of their records reached PostgreSQL, {} lost (the oldest answered {oldest:?} \
         before the kill); {in_window} answered in the last {window:?}",
        a_ok.len(),
        a_ok.len() - lost.len(),
        lost.len(),
    );
    assert!(
        lost.iter().all(|at| *at + window >= killed_at),
        "a record answered more than {window:?} before the kill was lost: {} lost, the \
         oldest {oldest:?} before",
        lost.len()
    );
    assert!(lost.len() <= in_window);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_killed_with_reservations_in_flight_leaves_none_of_the_budget_held() {
    let test = "a_replica_killed_with_reservations_in_flight_leaves_none_of_the_budget_held";
    let Some((postgres, redis)) = servers(test, None) else {
        return;
    };
    let mut replicas = three(&fleet_config(), &postgres, &redis);
    // Five slow requests on A reserve their worst case, about 1 cent each: the key's whole
    // 5-cent day, held while they run.
    let mut slow = Vec::new();
    for i in 0..5 {
        let sent = replicas[0]
            .chat(BUDGETED, json!({"model": "slow", "messages": [{"role": "user", "content": format!("slow {i}")}]}))
            .send();
        #[expect(clippy::disallowed_methods, reason = "joined below; they fail with A")]
        slow.push(tokio::spawn(sent));
    }
    let probe = |r: &Replica| {
        let sent = r.chat(BUDGETED, ask("probe")).send();
        async move { sent.await.unwrap().status().as_u16() }
    };
    eventually(
        Duration::from_secs(15),
        "A's reservations hold the whole budget",
        || async { probe(&replicas[1]).await == 429 },
    )
    .await;
    replicas[0].kill();
    for s in slow {
        assert!(s.await.unwrap().is_err(), "A died before answering");
    }
    // Nothing was spent but the probes: once A's heartbeat has expired, what it held is
    // given back and the others admit the key's requests again.
    eventually(
        Duration::from_secs(30),
        "the budget A held is given back",
        || async { probe(&replicas[1]).await == 200 && probe(&replicas[2]).await == 200 },
    )
    .await;
}

/// `n` requests of the `LIMITED` key (rpm = 30) sent at once to `replica`: how many were
/// admitted; every other one must be a 429.
async fn limited_burst(replica: &Replica, n: usize) -> usize {
    let sends = (0..n).map(|i| replica.chat(LIMITED, ask(&format!("limited {i}"))).send());
    let statuses: Vec<u16> = futures::future::join_all(sends)
        .await
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    statuses.iter().filter(|s| **s == 200).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_stopped_mid_run_degrades_to_per_replica_limits_and_no_shared_cache_then_recovers() {
    let test =
        "redis_stopped_mid_run_degrades_to_per_replica_limits_and_no_shared_cache_then_recovers";
    let Some((postgres, mut redis)) = servers(test, None) else {
        return;
    };
    let replicas = three(&fleet_config(), &postgres, &redis);
    until_counted(&replicas, 3).await;
    // Shared: an answer cached by the first replica is an exact hit on the second.
    let before = cacheable("what is the capital of France?");
    shared_across(&replicas[0], &replicas[1], OPEN, before.clone()).await;

    redis.stop();
    // rpm = 30 over the 3 replicas last counted: each admits its share of 10 on its own.
    for r in &replicas {
        assert_eq!(limited_burst(r, 12).await, 10);
    }
    // The cache is bypassed: the third replica never kept the entry, and Redis is not asked.
    assert_eq!(
        cache_outcome(&replicas[2], OPEN, before.clone()).await,
        "miss"
    );
    for r in &replicas {
        let m = r.metrics().await;
        assert_eq!(metric(&m, "switchyard_redis_up"), 0.0, "{m}");
        assert_eq!(metric(&m, "switchyard_redis_outages_total"), 1.0, "{m}");
        assert_eq!(
            sample(
                &m,
                "switchyard_redis_fallback_total",
                "{mode=\"per_replica\"}"
            ),
            12.0,
            "{m}"
        );
    }
    let bypassed = sample(
        &replicas[2].metrics().await,
        "switchyard_cache_shared_total",
        "{outcome=\"bypassed\"}",
    );
    assert!(bypassed >= 1.0, "{bypassed}");

    redis.start_again().unwrap();
    for r in &replicas {
        eventually(
            Duration::from_secs(15),
            "the heartbeat finds Redis back",
            || async { metric(&r.metrics().await, "switchyard_redis_up") == 1.0 },
        )
        .await;
    }
    // Shared again: Redis came back empty, and one replica may take the fleet's whole 30
    // (on its own share it would have none left this minute).
    assert_eq!(limited_burst(&replicas[0], 36).await, 30);
    let after = cacheable("what is the capital of Italy?");
    shared_across(&replicas[0], &replicas[1], OPEN, after).await;

    // One warning for the outage, however many requests and heartbeats failed in it (the
    // outage lasted the limits' bursts and several heartbeats), and one line when it ended.
    for r in &replicas {
        eventually(
            Duration::from_secs(10),
            "the replica logs that Redis is back",
            || async { r.printed().contains("Redis answers again") },
        )
        .await;
        let printed = r.printed();
        let warnings = printed
            .lines()
            .filter(|l| l.contains("WARN") && l.contains("Redis is unreachable"))
            .count();
        assert_eq!(warnings, 1, "{printed}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_embedded_demo_started_from_the_environment_is_a_replica_and_never_prints_a_password() {
    let test =
        "the_embedded_demo_started_from_the_environment_is_a_replica_and_never_prints_a_password";
    const REDIS_PASSWORD: &str = "redis-s3cret-pw";
    const PG_PASSWORD: &str = "pg-s3cret-pw";
    let Some((postgres, mut redis)) = servers(test, Some(REDIS_PASSWORD)) else {
        return;
    };
    // PostgreSQL's test server trusts loopback and ignores the password; Redis requires its.
    let postgres_url = postgres
        .url()
        .replacen("postgres@", &format!("postgres:{PG_PASSWORD}@"), 1);
    assert!(redis.url().contains(REDIS_PASSWORD));
    let demos: Vec<Replica> = (0..2)
        .map(|_| Replica::start(None, &postgres_url, &redis.url()))
        .collect();
    let key = switchyard_control::DEMO_KEY;
    let question = json!({
        "model": "small",
        "temperature": 0,
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
    });
    shared_across(&demos[0], &demos[1], key, question).await;

    // Where a URL could show: the banner, start-up logs, an outage's warning with its error,
    // `/metrics`, `/readyz`, the admin API's config.
    redis.stop();
    let hello = json!({"model": "small", "messages": [{"role": "user", "content": "hello"}]});
    let r = demos[0].chat(key, hello).send().await.unwrap();
    assert_eq!(r.status(), 200);
    redis.start_again().unwrap();
    let mut shown = String::new();
    for d in &demos {
        eventually(
            Duration::from_secs(15),
            "the demo logs that Redis is back",
            || async { d.printed().contains("Redis answers again") },
        )
        .await;
        shown.push_str(&d.metrics().await);
        let ready = d.http.get(d.url("/readyz")).send().await.unwrap();
        shown.push_str(&ready.text().await.unwrap());
        let config = d
            .http
            .get(d.url("/admin/v1/config"))
            .bearer_auth(switchyard_control::DEMO_ADMIN_KEY)
            .send()
            .await
            .unwrap();
        let status = config.status();
        let text = config.text().await.unwrap();
        assert_eq!(status, 200, "{text}");
        shown.push_str(&text);
    }
    for mut d in demos {
        d.stop();
        shown.push_str(&d.printed());
    }
    assert!(shown.contains("redis://:*****@127.0.0.1"), "{shown}");
    for password in [REDIS_PASSWORD, PG_PASSWORD] {
        assert!(!shown.contains(password), "{password} shown: {shown}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_replica_on_the_same_data_folder_refuses_to_start_and_a_restart_after_sigkill_does(
) {
    let test = "a_second_replica_on_the_same_data_folder_refuses_to_start_and_a_restart_after_sigkill_does";
    let Some((postgres, redis)) = servers(test, None) else {
        return;
    };
    // Two demos started from one folder would share its spool of records waiting for
    // PostgreSQL, and truncate and delete each other's segments.
    let folder = tempfile::tempdir().unwrap();
    let demo = |cwd: &std::path::Path| {
        let mut command = common::switchyard();
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .current_dir(cwd)
            .env("SWITCHYARD_STORAGE_URL", postgres.url())
            .env("SWITCHYARD_REDIS_URL", redis.url())
            .env_remove("RUST_LOG");
        command
    };
    let (first, _) = common::spawn_with_banner(&mut demo(folder.path()), 1);
    let first = common::Server::adopt(first);
    let mut second = common::Server::adopt(
        demo(folder.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut exit = None;
    eventually(Duration::from_secs(30), "the second replica exits", || {
        exit = exit.or_else(|| second.try_wait());
        std::future::ready(exit.is_some())
    })
    .await;
    assert!(!exit.unwrap().success());
    let said = second.stderr_text();
    assert!(
        said.contains("switchyard-data") && said.contains("data folder of its own"),
        "{said}"
    );

    // The lock dies with its process: a replica killed and started again on its folder runs.
    first.kill();
    let (again, banner) = common::spawn_with_banner(&mut demo(folder.path()), 1);
    common::stop(again);
    assert!(banner[0].contains("listening on"), "{banner:?}");
}
