//! `switchyard loadgen`: a realistic workload against a running gateway, to fill its records,
//! metrics and dashboard with meaningful traffic (and to watch what the gateway makes of it).
//!
//! Owns: the embedded workload (`loadgen/workload.jsonl`, made by
//! `scripts/make-loadgen-workload.py`), the plan of each request (kind by the mix, prompt,
//! user, streaming, feedback; all from one seeded generator), the two load shapes (an
//! open-loop rate and a fixed concurrency), the feedback sent after answers, and the summary.
//! Must not: know the gateway's internals. It only reads what any client sees: status codes,
//! OpenAI error codes and the `x-switchyard-*` response headers.
//!
//! How a run goes:
//! 1. One probe of `/healthz` (exit 3 when it fails) and one of `/v1/models` with the key
//!    (exit 1 when the key is refused): a run that could only fail is not started.
//! 2. Requests are planned in order from one generator seeded by `--seed`, so the same seed
//!    asks the same questions as the same users, in the same order.
//! 3. Rate mode: request `i` is due at `i / rate` seconds; its latency runs from that due
//!    time, so a gateway that stalls is charged for the requests it held up. One due while
//!    `--max-inflight` are outstanding is dropped and counted, never sent late.
//!    Concurrency mode: N workers, each sending its next request when the last one finished.
//! 4. After an answer (or a guard refusal) a share of requests gets feedback by its
//!    `x-switchyard-request-id`; that call is not part of the request's latency.
//! 5. Sending stops at `--duration`; requests in flight finish, then the summary prints.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args as ClapArgs;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// The built-in workload: one request a line.
const WORKLOAD: &str = include_str!("../loadgen/workload.jsonl");

pub const EXIT_CODES: &str = "\
Exit codes:
  0  the run completed (whatever the requests' outcomes: errors are counted, not fatal)
  1  the gateway refused the key
  2  usage error
  3  the gateway could not be reached (its /healthz probe failed)";

/// A request's time limit; the demo's slowest model answers well within it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(ClapArgs)]
pub struct Args {
    /// The gateway's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    target: String,
    /// A virtual key of the gateway [default: the demo's key].
    #[arg(long, env = "SWITCHYARD_KEY", hide_env_values = true)]
    key: Option<String>,
    /// The model (or route) every request asks for.
    #[arg(long, default_value = "auto")]
    model: String,
    /// How long to send: 90s, 2m, 500ms, 1h (a bare number is seconds).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// Open loop: requests per second, on a fixed schedule [default: 5, half the demo key's
    /// 600 requests a minute].
    #[arg(long, conflicts_with = "concurrency")]
    rate: Option<f64>,
    /// Closed loop: this many workers, each sending as soon as its last request finished.
    #[arg(long)]
    concurrency: Option<usize>,
    /// Rate mode: requests outstanding at most; one due beyond it is dropped and counted.
    #[arg(long, default_value_t = 256)]
    max_inflight: usize,
    /// Weights of the kinds of request (simple, hard, pii, injection, repeat, paraphrase).
    #[arg(
        long,
        default_value = "simple=40,hard=15,pii=10,injection=5,repeat=20,paraphrase=10",
        value_parser = parse_mix
    )]
    mix: Mix,
    /// How many users the requests come from (the `user` field: sticky rollouts and flags).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    users: u32,
    /// Share of requests that stream (time to first token is measured on them).
    #[arg(long, default_value_t = 0.3, value_parser = parse_share)]
    stream_share: f64,
    /// Share of answered requests that get feedback (`POST /v1/feedback`).
    #[arg(long, default_value_t = 0.3, value_parser = parse_share)]
    feedback_share: f64,
    /// Seed of the plan (kinds, prompts, users, streaming, feedback) [default: random,
    /// printed in the summary].
    #[arg(long)]
    seed: Option<u64>,
    /// Print the summary as JSON, without the progress bar.
    #[arg(long)]
    json: bool,
}

/// Runs a load; prints the error, if any, on stderr and returns the exit code.
pub fn run(args: Args) -> ExitCode {
    crate::admin_cli::block_on(async {
        match run_async(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(failure) => {
                eprintln!("error: {}", failure.message);
                ExitCode::from(failure.code)
            }
        }
    })
}

struct Failure {
    code: u8,
    message: String,
}

fn usage(message: impl Into<String>) -> Failure {
    Failure {
        code: 2,
        message: message.into(),
    }
}

async fn run_async(args: Args) -> Result<(), Failure> {
    let workload = Workload::parse(WORKLOAD).map_err(|e| usage(format!("workload: {e}")))?;
    let mix = args.mix.resolve(&workload).map_err(usage)?;
    let shape = match (args.rate, args.concurrency) {
        (_, Some(0)) => return Err(usage("--concurrency must be at least 1")),
        (_, Some(n)) => Shape::Concurrency(n),
        (Some(r), None) if !(r > 0.0 && r.is_finite()) => {
            return Err(usage(
                "--rate must be a positive number of requests per second",
            ))
        }
        (Some(r), None) => Shape::Rate(r),
        (None, None) => Shape::Rate(5.0),
    };
    let seed = args.seed.unwrap_or_else(rand::random);
    let target = Target::new(&args)?;
    target.probe().await?;

    let planner = Planner {
        rng: StdRng::seed_from_u64(seed),
        workload,
        mix,
        users: args.users,
        stream_share: args.stream_share,
        feedback_share: args.feedback_share,
    };
    let progress = Progress::new(!args.json && std::io::stdout().is_terminal(), args.duration);
    let started = Instant::now();
    let outcomes = match shape {
        Shape::Rate(rate) => {
            open_loop(
                Arc::new(target),
                planner,
                rate,
                args.duration,
                args.max_inflight.max(1),
                &progress,
            )
            .await
        }
        Shape::Concurrency(n) => {
            closed_loop(Arc::new(target), planner, n, args.duration, &progress).await
        }
    };
    let elapsed = started.elapsed();
    progress.finish();

    let summary = Summary::build(&args, shape, seed, elapsed, &outcomes);
    if args.json {
        match serde_json::to_string_pretty(&summary) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("error: cannot print the summary: {e}"),
        }
    } else {
        print!("{}", summary.table());
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Shape {
    Rate(f64),
    Concurrency(usize),
}

// ---- Arguments ----

/// `90s`, `2m`, `500ms`, `1h`, or a bare number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a duration such as 90s, 2m or 500ms"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("unknown unit `{other}` in `{s}` (ms, s, m or h)")),
    };
    if !(seconds > 0.0 && seconds.is_finite()) {
        return Err(format!("the duration `{s}` must be more than zero"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

fn parse_share(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("`{s}` is not a share between 0 and 1")),
    }
}

/// Weights by kind, as given: `simple=40,hard=15`. Which kinds exist is the workload's
/// business ([`Mix::resolve`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Mix(Vec<(String, f64)>);

fn parse_mix(s: &str) -> Result<Mix, String> {
    let mut weights: Vec<(String, f64)> = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (kind, weight) = part
            .split_once('=')
            .ok_or_else(|| format!("`{part}` is not KIND=WEIGHT"))?;
        let kind = kind.trim();
        let weight: f64 = weight
            .trim()
            .parse()
            .ok()
            .filter(|w: &f64| *w >= 0.0 && w.is_finite())
            .ok_or_else(|| format!("the weight of `{kind}` must be a number of at least 0"))?;
        if weights.iter().any(|(k, _)| k == kind) {
            return Err(format!("`{kind}` is given twice"));
        }
        weights.push((kind.to_owned(), weight));
    }
    if !weights.iter().any(|(_, w)| *w > 0.0) {
        return Err("give at least one kind a weight above 0".to_owned());
    }
    Ok(Mix(weights))
}

impl Mix {
    /// The kinds with a weight above 0, as indexes into the workload, with their cumulative
    /// share of 1; an unknown kind is an error naming the known ones.
    fn resolve(&self, workload: &Workload) -> Result<Vec<(usize, f64)>, String> {
        let total: f64 = self.0.iter().map(|(_, w)| w).sum();
        let mut cumulative = 0.0;
        let mut out = Vec::new();
        for (kind, weight) in &self.0 {
            let index = workload.kind_index(kind).ok_or_else(|| {
                format!(
                    "--mix: no kind `{kind}` in the workload (kinds: {})",
                    workload.kind_names().join(", ")
                )
            })?;
            if *weight > 0.0 {
                cumulative += weight / total;
                out.push((index, cumulative));
            }
        }
        Ok(out)
    }
}

/// The kind whose cumulative share first exceeds `r` (in [0, 1)).
fn pick_kind(cumulative: &[(usize, f64)], r: f64) -> usize {
    cumulative
        .iter()
        .find(|(_, c)| r < *c)
        .or(cumulative.last())
        .map_or(0, |(k, _)| *k)
}

// ---- The workload and the plan ----

#[derive(Deserialize)]
struct Row {
    kind: String,
    prompt: String,
}

/// Prompts by kind, kinds in the order of their first appearance.
struct Workload {
    kinds: Vec<(String, Vec<String>)>,
}

impl Workload {
    fn parse(text: &str) -> Result<Self, String> {
        let mut kinds: Vec<(String, Vec<String>)> = Vec::new();
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let row: Row =
                serde_json::from_str(line).map_err(|e| format!("line {}: {e}", n + 1))?;
            match kinds.iter_mut().find(|(k, _)| *k == row.kind) {
                Some((_, prompts)) => prompts.push(row.prompt),
                None => kinds.push((row.kind, vec![row.prompt])),
            }
        }
        Ok(Workload { kinds })
    }

    fn kind_index(&self, kind: &str) -> Option<usize> {
        self.kinds.iter().position(|(k, _)| k == kind)
    }

    fn kind_names(&self) -> Vec<&str> {
        self.kinds.iter().map(|(k, _)| k.as_str()).collect()
    }
}

/// Kinds whose answers the cache may serve: they are asked at temperature 0.
fn cacheable(kind: &str) -> bool {
    matches!(kind, "repeat" | "paraphrase")
}

/// One request to send.
#[derive(Debug, Clone)]
struct Planned {
    kind: usize,
    kind_name: String,
    body: Value,
    stream: bool,
    feedback: bool,
}

struct Planner {
    rng: StdRng,
    workload: Workload,
    mix: Vec<(usize, f64)>,
    users: u32,
    stream_share: f64,
    feedback_share: f64,
}

impl Planner {
    fn next(&mut self, model: &str) -> Planned {
        let kind = pick_kind(&self.mix, self.rng.random::<f64>());
        let (name, prompts) = &self.workload.kinds[kind];
        let prompt =
            &prompts[popular_index(prompts.len(), self.rng.random::<f64>(), cacheable(name))];
        let user = self.rng.random_range(0..self.users);
        let stream = self.rng.random_bool(self.stream_share);
        let feedback = self.rng.random_bool(self.feedback_share);
        let mut body = json!({
            "model": model,
            "messages": [{"role": "user", "content": prompt}],
            "user": format!("loadgen-user-{user:04}"),
        });
        if stream {
            body["stream"] = json!(true);
            body["stream_options"] = json!({"include_usage": true});
        }
        if cacheable(name) {
            body["temperature"] = json!(0);
        }
        Planned {
            kind,
            kind_name: name.clone(),
            body,
            stream,
            feedback,
        }
    }
}

/// Which of `len` prompts to ask, from `u` in [0, 1): uniformly, or for the cacheable kinds
/// with a heavy head (the cube of `u`: the first of 40 questions is asked about 29% of the
/// time, as a few questions dominate real traffic), so repeats and paraphrases meet their
/// originals within a minute. The workload lists paraphrases in their originals' order, so
/// a popular paraphrase has a popular original.
fn popular_index(len: usize, u: f64, skewed: bool) -> usize {
    let u = if skewed { u * u * u } else { u };
    ((u * len as f64) as usize).min(len.saturating_sub(1))
}

/// When request `i` of an open-loop run at `rate` per second is due, from the start.
fn due_offset(i: u64, rate: f64) -> Duration {
    Duration::from_secs_f64(i as f64 / rate)
}

/// How many requests an open-loop run schedules: those due before `duration` ends.
fn scheduled_count(rate: f64, duration: Duration) -> u64 {
    let exact = rate * duration.as_secs_f64();
    // Due times are i / rate for i < count; a product that lands on a whole number to within
    // rounding error (3 per second for 1 s) must not gain or lose one.
    let rounded = exact.round();
    if (exact - rounded).abs() < 1e-9 {
        rounded as u64
    } else {
        exact.ceil() as u64
    }
}

// ---- Sending ----

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Class {
    Ok,
    /// 400 `content_policy_violation`: a guard refused it.
    Refused,
    /// Any other 4xx but 429.
    ClientError,
    RateLimited,
    ServerError,
    /// No answer: connection refused or reset, a timeout, a broken stream.
    Network,
    /// Rate mode: due while `--max-inflight` were outstanding; never sent.
    Dropped,
}

#[derive(Debug, Clone)]
struct Outcome {
    kind: usize,
    class: Class,
    stream: bool,
    latency: Duration,
    ttft: Option<Duration>,
    /// `x-switchyard-cache`, when it names a hit: `hit-exact`, `hit-semantic`.
    cache: Option<String>,
    model: Option<String>,
    feedback: Option<bool>,
}

impl Outcome {
    fn dropped(kind: usize) -> Self {
        Outcome {
            kind,
            class: Class::Dropped,
            stream: false,
            latency: Duration::ZERO,
            ttft: None,
            cache: None,
            model: None,
            feedback: None,
        }
    }
}

struct Target {
    http: reqwest::Client,
    base: Url,
    key: String,
    model: String,
    /// For the progress bar.
    sent: AtomicU64,
    failed: AtomicU64,
}

impl Target {
    fn new(args: &Args) -> Result<Self, Failure> {
        let base = Url::parse(&args.target)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                usage(format!(
                    "--target `{}` is not an http:// or https:// URL",
                    args.target
                ))
            })?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| usage(format!("cannot build the HTTP client: {e}")))?;
        Ok(Target {
            http,
            base,
            key: args
                .key
                .clone()
                .unwrap_or_else(|| switchyard_control::DEMO_KEY.to_owned()),
            model: args.model.clone(),
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        })
    }

    fn url(&self, path: &str) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(path.split('/'));
        }
        url
    }

    async fn probe(&self) -> Result<(), Failure> {
        let unreachable = |why: String| Failure {
            code: 3,
            message: format!("cannot reach the gateway at {}: {why}", self.base),
        };
        let health = self
            .http
            .get(self.url("healthz"))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| unreachable(root_cause(&e)))?;
        if !health.status().is_success() {
            return Err(unreachable(format!(
                "/healthz answered {}",
                health.status()
            )));
        }
        let models = self
            .http
            .get(self.url("v1/models"))
            .bearer_auth(&self.key)
            .send()
            .await
            .map_err(|e| unreachable(root_cause(&e)))?;
        if matches!(
            models.status(),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        ) {
            return Err(Failure {
                code: 1,
                message: format!(
                    "the gateway at {} refused the key ({})",
                    self.base,
                    models.status()
                ),
            });
        }
        Ok(())
    }

    /// Sends one planned request, timed from `origin`, and its feedback if planned.
    async fn send(&self, plan: Planned, origin: Instant) -> Outcome {
        self.sent.fetch_add(1, Ordering::Relaxed);
        let mut outcome = Outcome {
            kind: plan.kind,
            class: Class::Network,
            stream: plan.stream,
            latency: Duration::ZERO,
            ttft: None,
            cache: None,
            model: None,
            feedback: None,
        };
        let answer = self.exchange(&plan, origin, &mut outcome).await;
        outcome.latency = origin.elapsed();
        if outcome.class != Class::Ok {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(request_id) = answer.filter(|_| plan.feedback) {
            if let Some(verdict) = verdict(&plan.kind_name, outcome.class, outcome.model.as_deref())
            {
                outcome.feedback = Some(self.feedback(&request_id, verdict).await);
            }
        }
        outcome
    }

    /// Fills `outcome` from the response; returns the request id of an answer or refusal.
    async fn exchange(
        &self,
        plan: &Planned,
        origin: Instant,
        outcome: &mut Outcome,
    ) -> Option<String> {
        let mut response = self
            .http
            .post(self.url("v1/chat/completions"))
            .bearer_auth(&self.key)
            .json(&plan.body)
            .send()
            .await
            .ok()?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let request_id = header("x-switchyard-request-id");
        // `frontier; deployment=sim/sim-frontier`: the model is the first part.
        outcome.model = header("x-switchyard-model")
            .and_then(|m| m.split(';').next().map(|m| m.trim().to_owned()));
        outcome.cache = header("x-switchyard-cache").filter(|c| c.starts_with("hit"));
        let status = response.status();
        // The whole body, timing the first SSE event of a stream.
        let mut bytes: Vec<u8> = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let from = bytes.len().saturating_sub(4);
                    bytes.extend_from_slice(&chunk);
                    if plan.stream && outcome.ttft.is_none() && contains(&bytes[from..], b"data:") {
                        outcome.ttft = Some(origin.elapsed());
                    }
                }
                Ok(None) => break,
                Err(_) => return None,
            }
        }
        outcome.class = classify(status, &bytes);
        if outcome.class == Class::Ok && plan.stream && outcome.ttft.is_none() {
            outcome.class = Class::Network;
        }
        request_id.filter(|_| matches!(outcome.class, Class::Ok | Class::Refused))
    }

    async fn feedback(&self, request_id: &str, verdict: Value) -> bool {
        let mut body = verdict;
        body["request_id"] = json!(request_id);
        self.http
            .post(self.url("v1/feedback"))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn root_cause(e: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

fn classify(status: StatusCode, body: &[u8]) -> Class {
    match status.as_u16() {
        200..=299 => Class::Ok,
        429 => Class::RateLimited,
        400..=499 => {
            let code = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v["error"]["code"].as_str().map(str::to_owned));
            if code.as_deref() == Some("content_policy_violation") {
                Class::Refused
            } else {
                Class::ClientError
            }
        }
        500..=599 => Class::ServerError,
        _ => Class::ClientError,
    }
}

/// The feedback a user would give, by a fixed rule: a refusal is a thumbs down and escalated;
/// a hard question answered by the `small` model scores 0.3 and is escalated (the cheap
/// choice fell short); every other answer is a thumbs up, resolved.
fn verdict(kind: &str, class: Class, model: Option<&str>) -> Option<Value> {
    match class {
        Class::Refused => Some(json!({"thumbs": "down", "outcome": "escalated"})),
        Class::Ok if kind == "hard" && model == Some("small") => {
            Some(json!({"score": 0.3, "outcome": "escalated"}))
        }
        Class::Ok => Some(json!({"thumbs": "up", "outcome": "resolved"})),
        _ => None,
    }
}

/// Open loop: requests due every `1 / rate` seconds until `duration`, in-flight capped.
async fn open_loop(
    target: Arc<Target>,
    mut planner: Planner,
    rate: f64,
    duration: Duration,
    max_inflight: usize,
    progress: &Progress,
) -> Vec<Outcome> {
    let start = Instant::now();
    let count = scheduled_count(rate, duration);
    let mut outcomes = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    let mut inflight: JoinSet<Outcome> = JoinSet::new();
    for i in 0..count {
        let due = start + due_offset(i, rate);
        let plan = planner.next(&target.model);
        tokio::time::sleep_until(due).await;
        while let Some(done) = inflight.try_join_next() {
            outcomes.extend(done.ok());
        }
        progress.tick(start, &target);
        if inflight.len() >= max_inflight {
            outcomes.push(Outcome::dropped(plan.kind));
            continue;
        }
        let target = Arc::clone(&target);
        inflight.spawn(async move { target.send(plan, due).await });
    }
    progress.draining(inflight.len());
    while let Some(done) = inflight.join_next().await {
        outcomes.extend(done.ok());
    }
    outcomes
}

/// Closed loop: `workers` tasks sending back to back until `duration`.
async fn closed_loop(
    target: Arc<Target>,
    planner: Planner,
    workers: usize,
    duration: Duration,
    progress: &Progress,
) -> Vec<Outcome> {
    let start = Instant::now();
    let deadline = start + duration;
    let planner = Arc::new(Mutex::new(planner));
    let mut set: JoinSet<Vec<Outcome>> = JoinSet::new();
    for _ in 0..workers {
        let target = Arc::clone(&target);
        let planner = Arc::clone(&planner);
        set.spawn(async move {
            let mut outcomes = Vec::new();
            while Instant::now() < deadline {
                let plan = match planner.lock() {
                    Ok(mut p) => p.next(&target.model),
                    Err(_) => break,
                };
                outcomes.push(target.send(plan, Instant::now()).await);
            }
            outcomes
        });
    }
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        progress.tick(start, &target);
    }
    progress.draining(workers);
    let mut outcomes = Vec::new();
    while let Some(done) = set.join_next().await {
        outcomes.extend(done.unwrap_or_default());
    }
    outcomes
}

// ---- Progress ----

struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    fn new(visible: bool, duration: Duration) -> Self {
        let bar = visible.then(|| {
            let bar = indicatif::ProgressBar::new(duration.as_secs().max(1));
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{elapsed:>4} [{bar:30}] {pos}/{len} s  {msg}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        Progress { bar }
    }

    fn tick(&self, start: Instant, target: &Target) {
        if let Some(bar) = &self.bar {
            bar.set_position(start.elapsed().as_secs());
            let sent = target.sent.load(Ordering::Relaxed);
            let failed = target.failed.load(Ordering::Relaxed);
            bar.set_message(format!("{sent} sent, {failed} not ok"));
        }
    }

    fn draining(&self, inflight: usize) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!("waiting for up to {inflight} in flight"));
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

// ---- The summary ----

/// The value at quantile `q` (0 to 1) of `sorted` by the nearest-rank method: the smallest
/// value with at least `q` of the samples at or below it.
fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[derive(Debug, Default, Serialize, PartialEq)]
struct Latency {
    p50: Option<f64>,
    p95: Option<f64>,
    p99: Option<f64>,
}

#[derive(Debug, Default, Serialize)]
struct KindSummary {
    kind: String,
    /// Sent (dropped ones are not).
    requests: u64,
    ok: u64,
    /// Guard refusals (400 `content_policy_violation`).
    refused: u64,
    /// Other 4xx, 429 apart.
    client_errors: u64,
    rate_limited: u64,
    server_errors: u64,
    /// No answer: connection errors, timeouts, broken streams.
    network_errors: u64,
    dropped: u64,
    cache_hits: u64,
    cache_hits_semantic: u64,
    streams: u64,
    /// Milliseconds, of answered requests (ok), from the due time in rate mode.
    latency_ms: Latency,
    ttft_ms_p50: Option<f64>,
    /// Requests sent per second of the run.
    rate: f64,
    models: BTreeMap<String, u64>,
    feedback_sent: u64,
    feedback_failed: u64,
}

impl KindSummary {
    /// `window`: how long requests were being sent (the run's duration), for the rate.
    fn of<'a>(kind: &str, outcomes: impl Iterator<Item = &'a Outcome>, window: Duration) -> Self {
        let mut s = KindSummary {
            kind: kind.to_owned(),
            ..KindSummary::default()
        };
        let mut latencies = Vec::new();
        let mut ttfts = Vec::new();
        for o in outcomes {
            if o.class == Class::Dropped {
                s.dropped += 1;
                continue;
            }
            s.requests += 1;
            match o.class {
                Class::Ok => s.ok += 1,
                Class::Refused => s.refused += 1,
                Class::ClientError => s.client_errors += 1,
                Class::RateLimited => s.rate_limited += 1,
                Class::ServerError => s.server_errors += 1,
                Class::Network | Class::Dropped => s.network_errors += 1,
            }
            if let Some(cache) = &o.cache {
                s.cache_hits += 1;
                s.cache_hits_semantic += u64::from(cache == "hit-semantic");
            }
            s.streams += u64::from(o.stream);
            if o.class == Class::Ok {
                latencies.push(o.latency.as_secs_f64() * 1000.0);
                if let Some(t) = o.ttft {
                    ttfts.push(t.as_secs_f64() * 1000.0);
                }
            }
            if let Some(m) = &o.model {
                *s.models.entry(m.clone()).or_default() += 1;
            }
            match o.feedback {
                Some(true) => s.feedback_sent += 1,
                Some(false) => s.feedback_failed += 1,
                None => {}
            }
        }
        latencies.sort_by(f64::total_cmp);
        ttfts.sort_by(f64::total_cmp);
        let round = |v: Option<f64>| v.map(|v| (v * 10.0).round() / 10.0);
        s.latency_ms = Latency {
            p50: round(percentile(&latencies, 0.50)),
            p95: round(percentile(&latencies, 0.95)),
            p99: round(percentile(&latencies, 0.99)),
        };
        s.ttft_ms_p50 = round(percentile(&ttfts, 0.50));
        s.rate = (s.requests as f64 / window.as_secs_f64().max(1e-9) * 100.0).round() / 100.0;
        s
    }
}

#[derive(Debug, Serialize)]
struct Summary {
    target: String,
    model: String,
    mode: &'static str,
    rate: Option<f64>,
    concurrency: Option<usize>,
    duration_s: f64,
    elapsed_s: f64,
    seed: u64,
    kinds: Vec<KindSummary>,
    overall: KindSummary,
}

impl Summary {
    fn build(
        args: &Args,
        shape: Shape,
        seed: u64,
        elapsed: Duration,
        outcomes: &[Outcome],
    ) -> Self {
        let workload = Workload::parse(WORKLOAD).unwrap_or(Workload { kinds: Vec::new() });
        let kinds = workload
            .kinds
            .iter()
            .enumerate()
            .filter(|(i, _)| outcomes.iter().any(|o| o.kind == *i))
            .map(|(i, (name, _))| {
                KindSummary::of(name, outcomes.iter().filter(|o| o.kind == i), args.duration)
            })
            .collect();
        let (mode, rate, concurrency) = match shape {
            Shape::Rate(r) => ("rate", Some(r), None),
            Shape::Concurrency(n) => ("concurrency", None, Some(n)),
        };
        Summary {
            target: args.target.clone(),
            model: args.model.clone(),
            mode,
            rate,
            concurrency,
            duration_s: args.duration.as_secs_f64(),
            elapsed_s: (elapsed.as_secs_f64() * 100.0).round() / 100.0,
            seed,
            kinds,
            overall: KindSummary::of("all", outcomes.iter(), args.duration),
        }
    }

    fn table(&self) -> String {
        use std::fmt::Write;
        let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0}"));
        let mut out = String::new();
        let load = match (self.rate, self.concurrency) {
            (Some(r), _) => format!("{r} requests/s"),
            (_, Some(n)) => format!("concurrency {n}"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "{} requests to {} (model {}) over {} s at {load}, the last answered after {:.1} s; seed {}",
            self.overall.requests, self.target, self.model, self.duration_s, self.elapsed_s, self.seed
        );
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<11} {:>6} {:>6} {:>7} {:>4} {:>4} {:>4} {:>4} {:>6} {:>7} {:>7} {:>7} {:>9} {:>6}",
            "kind",
            "sent",
            "ok",
            "refused",
            "4xx",
            "429",
            "5xx",
            "net",
            "cached",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "ttft p50",
            "req/s"
        );
        for k in self.kinds.iter().chain(std::iter::once(&self.overall)) {
            let _ = writeln!(
                out,
                "{:<11} {:>6} {:>6} {:>7} {:>4} {:>4} {:>4} {:>4} {:>6} {:>7} {:>7} {:>7} {:>9} {:>6.2}",
                k.kind,
                k.requests,
                k.ok,
                k.refused,
                k.client_errors,
                k.rate_limited,
                k.server_errors,
                k.network_errors,
                k.cache_hits,
                ms(k.latency_ms.p50),
                ms(k.latency_ms.p95),
                ms(k.latency_ms.p99),
                ms(k.ttft_ms_p50),
                k.rate
            );
        }
        let _ = writeln!(out);
        let models: Vec<String> = self
            .overall
            .models
            .iter()
            .map(|(m, n)| format!("{m} {n}"))
            .collect();
        let _ = writeln!(out, "models served:  {}", models.join(", "));
        let _ = writeln!(
            out,
            "cache hits:     {} ({} semantic)",
            self.overall.cache_hits, self.overall.cache_hits_semantic
        );
        let _ = writeln!(
            out,
            "feedback sent:  {} ({} failed)",
            self.overall.feedback_sent, self.overall.feedback_failed
        );
        if self.overall.dropped > 0 {
            let _ = writeln!(
                out,
                "dropped:        {} (due while --max-inflight were outstanding)",
                self.overall.dropped
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_parses_weights_and_refuses_nonsense() {
        let mix = parse_mix("simple=40, hard=15,pii=0").unwrap();
        assert_eq!(
            mix,
            Mix(vec![
                ("simple".into(), 40.0),
                ("hard".into(), 15.0),
                ("pii".into(), 0.0)
            ])
        );
        for bad in ["simple", "simple=-1", "simple=x", "simple=0", "a=1,a=2", ""] {
            assert!(parse_mix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mix_resolves_against_the_workload() {
        let workload = Workload::parse(WORKLOAD).unwrap();
        assert_eq!(
            workload.kind_names(),
            ["simple", "hard", "pii", "injection", "repeat", "paraphrase"]
        );
        let cumulative = parse_mix("hard=1,pii=0,repeat=3")
            .unwrap()
            .resolve(&workload)
            .unwrap();
        assert_eq!(cumulative, vec![(1, 0.25), (4, 1.0)]);
        assert_eq!(pick_kind(&cumulative, 0.0), 1);
        assert_eq!(pick_kind(&cumulative, 0.2499), 1);
        assert_eq!(pick_kind(&cumulative, 0.25), 4);
        assert_eq!(pick_kind(&cumulative, 0.9999), 4);
        let err = parse_mix("nope=1").unwrap().resolve(&workload).unwrap_err();
        assert!(err.contains("kinds: simple, hard"), "{err}");
    }

    #[test]
    fn the_plan_follows_the_mix_and_the_seed() {
        let planner = |seed| Planner {
            rng: StdRng::seed_from_u64(seed),
            workload: Workload::parse(WORKLOAD).unwrap(),
            mix: parse_mix("simple=1,repeat=1")
                .unwrap()
                .resolve(&Workload::parse(WORKLOAD).unwrap())
                .unwrap(),
            users: 3,
            stream_share: 0.5,
            feedback_share: 0.0,
        };
        let (mut a, mut b) = (planner(7), planner(7));
        let plans: Vec<Planned> = (0..400).map(|_| a.next("auto")).collect();
        for p in &plans {
            assert_eq!(p.body, b.next("auto").body);
            assert!(!p.feedback);
            assert_eq!(p.body["model"], "auto");
            assert_eq!(p.body["stream"].as_bool().unwrap_or(false), p.stream);
            // Only the cacheable kind is asked at temperature 0.
            assert_eq!(p.body.get("temperature").is_some(), p.kind == 4);
        }
        let repeats = plans.iter().filter(|p| p.kind == 4).count();
        assert!((150..250).contains(&repeats), "{repeats}");
        let users: std::collections::BTreeSet<&str> = plans
            .iter()
            .filter_map(|p| p.body["user"].as_str())
            .collect();
        assert_eq!(users.len(), 3);
    }

    #[test]
    fn the_schedule_is_evenly_spaced_and_ends_with_the_duration() {
        assert_eq!(scheduled_count(4.0, Duration::from_secs(1)), 4);
        assert_eq!(scheduled_count(3.0, Duration::from_secs(1)), 3);
        assert_eq!(scheduled_count(0.1 + 0.2, Duration::from_secs(10)), 3);
        assert_eq!(scheduled_count(2.5, Duration::from_secs(1)), 3);
        assert_eq!(scheduled_count(5.0, Duration::from_secs(60)), 300);
        let dues: Vec<u128> = (0..4).map(|i| due_offset(i, 4.0).as_millis()).collect();
        assert_eq!(dues, [0, 250, 500, 750]);
        // The last one scheduled is due before the end.
        assert!(due_offset(2, 2.5) < Duration::from_secs(1));
    }

    #[test]
    fn cacheable_kinds_favour_their_first_questions() {
        assert_eq!(popular_index(40, 0.0, true), 0);
        assert_eq!(popular_index(40, 0.29, true), 0);
        assert_eq!(popular_index(40, 0.29, false), 11);
        assert_eq!(popular_index(40, 0.999_999, true), 39);
        assert_eq!(popular_index(40, 0.999_999, false), 39);
        assert_eq!(popular_index(1, 0.5, true), 0);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.50), Some(50.0));
        assert_eq!(percentile(&v, 0.95), Some(95.0));
        assert_eq!(percentile(&v, 0.99), Some(99.0));
        assert_eq!(percentile(&v, 1.0), Some(100.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&[7.0], 0.99), Some(7.0));
        assert_eq!(percentile(&[1.0, 2.0, 3.0], 0.5), Some(2.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["", "0s", "s", "5 parsecs", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn responses_are_classified_and_judged() {
        let refusal = br#"{"error": {"code": "content_policy_violation"}}"#;
        assert_eq!(classify(StatusCode::BAD_REQUEST, refusal), Class::Refused);
        assert_eq!(classify(StatusCode::BAD_REQUEST, b"{}"), Class::ClientError);
        assert_eq!(
            classify(StatusCode::TOO_MANY_REQUESTS, b""),
            Class::RateLimited
        );
        assert_eq!(classify(StatusCode::BAD_GATEWAY, b""), Class::ServerError);
        assert_eq!(classify(StatusCode::OK, b""), Class::Ok);
        assert_eq!(
            verdict("injection", Class::Refused, None),
            Some(json!({"thumbs": "down", "outcome": "escalated"}))
        );
        assert_eq!(
            verdict("hard", Class::Ok, Some("small")).unwrap()["score"],
            0.3
        );
        assert_eq!(
            verdict("hard", Class::Ok, Some("frontier")).unwrap()["thumbs"],
            "up"
        );
        assert_eq!(verdict("simple", Class::ServerError, None), None);
    }

    #[test]
    fn summaries_count_by_class_and_cache() {
        let ok = |ms: u64, cache: Option<&str>| Outcome {
            kind: 0,
            class: Class::Ok,
            stream: false,
            latency: Duration::from_millis(ms),
            ttft: None,
            cache: cache.map(str::to_owned),
            model: Some("small".into()),
            feedback: Some(true),
        };
        let mut outcomes = vec![
            ok(10, None),
            ok(20, Some("hit-exact")),
            ok(30, Some("hit-semantic")),
        ];
        outcomes.push(Outcome {
            class: Class::Refused,
            model: None,
            feedback: None,
            ..ok(1, None)
        });
        outcomes.push(Outcome::dropped(0));
        let s = KindSummary::of("simple", outcomes.iter(), Duration::from_secs(2));
        assert_eq!((s.requests, s.ok, s.refused, s.dropped), (4, 3, 1, 1));
        assert_eq!((s.cache_hits, s.cache_hits_semantic), (2, 1));
        assert_eq!(s.latency_ms.p50, Some(20.0));
        assert_eq!(s.latency_ms.p99, Some(30.0));
        assert_eq!(s.models["small"], 3);
        assert_eq!(s.feedback_sent, 3);
        assert_eq!(s.rate, 2.0);
    }
}
