//! How fast the dashboard's KPI queries are as the request store grows: `cargo run --release
//! -p switchyard-store --example kpi_queries -- [--requests N] [--days D] [--seed S] [--dir PATH]`
//! (defaults 200000, 30, 7, a temporary folder; with `--dir` the store is kept, to look at
//! query plans afterwards).
//!
//! Fills a store through `write_batch` with N synthetic requests over the last D days (a daily
//! cycle, 3 tenants, routed and direct models, ~20% cache hits, guard verdicts as the gateway
//! writes them, errors, feedback on ~10%), then runs each query the dashboard's pages make over
//! the last hour, 24 hours and 30 days, 7 times each, and prints the median and max in ms as
//! markdown. No `ANALYZE` is run: the gateway never runs it either.

use std::error::Error;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use switchyard_store::{
    Bucket, Feedback, FeedbackStore, GroupBy, KpiFilter, KpiStore, RecordStore, RequestFilter,
    RequestRecord, SqliteStore, StatusClass, StoreError,
};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
const RUNS: usize = 7;
const BATCH: usize = 1_000;

/// Name, nano-dollars per 1000 tokens, latency range in ms.
const MODELS: [(&str, u64, f64, f64); 3] = [
    ("small", 150_000, 250.0, 900.0),
    ("medium", 1_000_000, 500.0, 2_000.0),
    ("frontier", 10_000_000, 1_200.0, 6_000.0),
];

/// Name, share of the traffic, keys, whether guards run on its requests.
const TENANTS: [(&str, f64, &[&str], bool); 3] = [
    ("acme", 0.5, &["acme-web", "acme-batch", "acme-dev"], true),
    ("globex", 0.3, &["globex-app", "globex-ci"], true),
    ("initech", 0.2, &["initech-bot"], false),
];

struct Args {
    requests: usize,
    days: i64,
    seed: u64,
    dir: Option<String>,
}

fn args() -> Result<Args, Box<dyn Error>> {
    let mut a = Args {
        requests: 200_000,
        days: 30,
        seed: 7,
        dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--requests" => a.requests = value.parse()?,
            "--days" => a.days = value.parse()?,
            "--seed" => a.seed = value.parse()?,
            "--dir" => a.dir = Some(value),
            _ => {
                return Err(
                    format!("unknown `{flag}`: give --requests, --days, --seed or --dir").into(),
                )
            }
        }
    }
    Ok(a)
}

/// Pseudo-random numbers without a dependency: std's SipHash of the seed and a counter. Fixed
/// by the seed for one toolchain (std does not promise its hash across releases), which is all
/// synthetic data needs.
struct Rng {
    seed: u64,
    drawn: u64,
}

impl Rng {
    fn next(&mut self) -> u64 {
        self.drawn += 1;
        let mut h = DefaultHasher::new();
        (self.seed, self.drawn).hash(&mut h);
        h.finish()
    }

    /// Uniform in `[0, 1)`.
    fn f(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.f() < p
    }

    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.f()
    }

    /// An index into `weights`, drawn in proportion to them.
    fn pick(&mut self, weights: &[f64]) -> usize {
        let mut x = self.f() * weights.iter().sum::<f64>();
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len() - 1
    }
}

/// `n` start times in `[end - days, end)`, sorted, with more traffic in the UTC afternoon
/// (peak at 14:00, a tenth of it at 02:00).
fn start_times(rng: &mut Rng, n: usize, days: i64, end: i64) -> Vec<i64> {
    let span = days * DAY_MS;
    let mut times = Vec::with_capacity(n);
    while times.len() < n {
        let at = end - 1 - (rng.f() * span as f64) as i64;
        let hour = at.rem_euclid(DAY_MS) as f64 / HOUR_MS as f64;
        let weight = 0.55 + 0.45 * ((hour - 14.0) / 24.0 * std::f64::consts::TAU).cos();
        if rng.chance(weight) {
            times.push(at);
        }
    }
    times.sort_unstable();
    times
}

/// One guard verdict as the gateway serialises it.
fn verdict(guard: &str, outcome: &str, score: Option<f64>, detail: &str, ms: f64) -> String {
    let mut v = serde_json::json!({"guard": guard, "outcome": outcome, "detail": detail, "ms": ms});
    if let Some(s) = score {
        v["score"] = s.into();
    }
    v.to_string()
}

fn cost(model: usize, tokens: u32) -> u64 {
    MODELS[model].1 * u64::from(tokens) / 1_000
}

/// One synthetic request started at `at`.
fn request(rng: &mut Rng, at: i64) -> RequestRecord {
    let (tenant, _, keys, guarded) = TENANTS[rng.pick(&[0.5, 0.3, 0.2])];
    let mut r = RequestRecord {
        request_id: format!("{:016x}{:016x}", rng.next(), rng.next()),
        started_at_ms: at,
        endpoint: "chat".into(),
        tenant: Some(tenant.into()),
        key_id: Some(keys[(rng.f() * keys.len() as f64) as usize].into()),
        attempts: 1,
        status: 200,
        config_version: Some("3f9a1c2b7d4e".into()),
        ..RequestRecord::default()
    };
    if rng.chance(0.05) {
        // Embeddings: no route, cache or guards.
        let tokens = rng.range(20.0, 500.0) as u32;
        r.endpoint = "embeddings".into();
        r.requested_model = Some("embed".into());
        r.model = r.requested_model.clone();
        r.deployment = Some("vllm/embed".into());
        r.latency_ms = rng.range(15.0, 80.0);
        r.prompt_tokens = tokens;
        r.cost_nanos = u64::from(tokens) * 20;
        r.baseline_cost_nanos = r.cost_nanos;
        return r;
    }
    let routed = rng.chance(0.5);
    let cheap = routed && rng.chance(0.2);
    let direct = rng.pick(&[0.5, 0.35, 0.15]);
    r.requested_model = Some(match (routed, cheap) {
        (true, true) => "auto:cheap".into(),
        (true, false) => "auto".into(),
        _ => MODELS[direct].0.into(),
    });
    r.stream = rng.chance(0.6);
    if rng.chance(0.01) {
        // Refused before anything ran: a bad key or a rate limit.
        (r.status, r.error_kind) = if rng.chance(0.3) {
            (401, Some("unauthorized".into()))
        } else {
            (429, Some("rate_limited".into()))
        };
        r.latency_ms = rng.range(0.1, 1.0);
        return r;
    }
    let mut verdicts = Vec::new();
    if guarded {
        let x = rng.f();
        let injection = if x < 0.005 {
            "blocked"
        } else if x < 0.015 {
            "flagged"
        } else {
            "pass"
        };
        let score = if injection == "pass" { 0.02 } else { 0.97 };
        verdicts.push(verdict(
            "injection",
            injection,
            Some(score),
            "",
            rng.range(1.0, 4.0),
        ));
        let masked = rng.chance(0.07);
        let (outcome, detail) = if masked {
            ("masked", "EMAIL:1")
        } else {
            ("pass", "")
        };
        verdicts.push(verdict("pii", outcome, None, detail, rng.range(0.1, 0.5)));
        if injection == "blocked" {
            r.status = 400;
            r.error_kind = Some("guard_blocked".into());
            r.latency_ms = rng.range(2.0, 6.0);
            r.guards = Some(format!("[{}]", verdicts.join(",")));
            return r;
        }
        if tenant == "acme" {
            let refused = rng.chance(0.007);
            let (outcome, detail) = if refused {
                ("refused", "denied")
            } else {
                ("pass", "")
            };
            verdicts.push(verdict(
                "topics",
                outcome,
                None,
                detail,
                rng.range(0.5, 2.0),
            ));
            if refused {
                // The topic filter's polite answer.
                r.deployment = Some("guard".into());
                r.latency_ms = rng.range(3.0, 8.0);
                r.guards = Some(format!("[{}]", verdicts.join(",")));
                return r;
            }
        }
    }
    let (prompt, completion) = (
        rng.range(50.0, 2_000.0) as u32,
        rng.range(20.0, 800.0) as u32,
    );
    let tokens = prompt + completion;
    let model = if routed {
        let weights: &[f64] = if cheap {
            &[0.7, 0.25, 0.05]
        } else {
            &[0.45, 0.35, 0.2]
        };
        rng.pick(weights)
    } else {
        direct
    };
    let baseline = if routed { 2 } else { model };
    r.model = Some(MODELS[model].0.into());
    (r.prompt_tokens, r.completion_tokens) = (prompt, completion);
    let x = rng.f();
    r.cache = Some(
        if x < 0.08 {
            "bypass"
        } else if x < 0.20 {
            "hit-exact"
        } else if x < 0.28 {
            "hit-semantic"
        } else {
            "miss"
        }
        .into(),
    );
    match r.cache.as_deref() {
        Some("hit-exact") => r.cache_similarity = Some(1.0),
        Some("hit-semantic") => r.cache_similarity = Some(rng.range(0.93, 0.99)),
        Some("miss") => r.cache_similarity = Some(rng.range(0.4, 0.92)),
        _ => {}
    }
    if r.cache.as_deref().is_some_and(|c| c.starts_with("hit")) {
        // Answered before the router ran: no route decision, nothing paid.
        r.deployment = Some("cache".into());
        r.latency_ms = rng.range(1.0, 25.0);
        r.baseline_cost_nanos = cost(baseline, tokens);
        r.guards = (!verdicts.is_empty()).then(|| format!("[{}]", verdicts.join(",")));
        return r;
    }
    if routed {
        let scores: Vec<_> = MODELS
            .iter()
            .map(|m| serde_json::json!({"model": m.0, "score": (m.0 != "frontier").then(|| rng.range(0.5, 0.95))}))
            .collect();
        let policy = if cheap { "cheap" } else { "balanced" };
        let rule = rng.chance(0.1).then_some("short-prompts");
        r.route = Some(
            serde_json::json!({"policy": policy, "bar": 0.7, "model": MODELS[model].0, "rule": rule, "scores": scores})
                .to_string(),
        );
    }
    r.deployment = Some(format!("vllm/{}", MODELS[model].0));
    let (lo, hi) = (MODELS[model].2, MODELS[model].3);
    r.latency_ms = rng.range(lo, hi);
    r.ttft_ms = r.stream.then(|| r.latency_ms * rng.range(0.05, 0.2));
    r.cost_nanos = cost(model, tokens);
    r.baseline_cost_nanos = cost(baseline, tokens);
    let x = rng.f();
    if x < 0.025 {
        // The provider failed: nothing paid, nothing saved.
        r.status = [502, 503, 504][rng.pick(&[0.5, 0.3, 0.2])];
        r.error_kind = Some("upstream".into());
        (r.cost_nanos, r.baseline_cost_nanos, r.completion_tokens) = (0, 0, 0);
    } else if x < 0.03 {
        r.status = 499;
        r.error_kind = Some("client_closed".into());
    } else if x < 0.04 && model < 2 {
        // The first deployment failed and the next model answered.
        r.attempts = 2;
        r.fallback_from = r.model.clone();
        r.model = Some(MODELS[model + 1].0.into());
        r.deployment = Some(format!("vllm/{}", MODELS[model + 1].0));
        r.cost_nanos = cost(model + 1, tokens);
        r.baseline_cost_nanos = r.baseline_cost_nanos.max(r.cost_nanos);
    }
    if guarded && r.status == 200 {
        let x = rng.f();
        let (outcome, score) = if x < 0.005 {
            ("replaced", 0.92)
        } else if x < 0.03 {
            ("flagged", 0.65)
        } else {
            ("pass", 0.03)
        };
        verdicts.push(verdict(
            "toxicity",
            outcome,
            Some(score),
            "",
            rng.range(2.0, 8.0),
        ));
    }
    r.guards = (!verdicts.is_empty()).then(|| format!("[{}]", verdicts.join(",")));
    r
}

/// A client's verdict on `r`, some time after it.
fn feedback(rng: &mut Rng, r: &RequestRecord) -> Feedback {
    let x = rng.f();
    Feedback {
        request_id: r.request_id.clone(),
        key_id: r.key_id.clone().unwrap_or_default(),
        tenant: r.tenant.clone().unwrap_or_default(),
        created_at_ms: r.started_at_ms + rng.range(5_000.0, 600_000.0) as i64,
        score: rng
            .chance(0.9)
            .then(|| if rng.chance(0.8) { 1.0 } else { 0.0 }),
        outcome: if x < 0.05 {
            Some("escalated".into())
        } else if x < 0.45 {
            Some("resolved".into())
        } else {
            None
        },
        comment: None,
    }
}

/// Runs `query` [`RUNS`] times: its median and max in ms, and how many rows it returned.
fn time(query: impl Fn() -> Result<usize, StoreError>) -> Result<(f64, f64, usize), StoreError> {
    let mut ms = Vec::with_capacity(RUNS);
    let mut rows = 0;
    for _ in 0..RUNS {
        let t = Instant::now();
        rows = query()?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    Ok((ms[RUNS / 2], ms[RUNS - 1], rows))
}

fn mb(path: &Path) -> f64 {
    std::fs::metadata(path).map_or(0.0, |m| m.len() as f64 / 1e6)
}

fn load() -> String {
    let avg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    avg.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

fn main() -> Result<(), Box<dyn Error>> {
    let a = args()?;
    let temp = tempfile::tempdir()?;
    let dir = a.dir.as_ref().map_or(temp.path(), Path::new);
    let store = SqliteStore::open_in(dir)?;
    let end = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())?;
    let mut rng = Rng {
        seed: a.seed,
        drawn: 0,
    };

    let t = Instant::now();
    let times = start_times(&mut rng, a.requests, a.days, end);
    let mut feedback_rows = 0;
    for chunk in times.chunks(BATCH) {
        let batch: Vec<RequestRecord> = chunk.iter().map(|at| request(&mut rng, *at)).collect();
        store.write_batch(&batch)?;
        for r in batch.iter().filter(|r| r.status == 200) {
            if rng.chance(0.11) {
                store.add_feedback(&feedback(&mut rng, r))?;
                feedback_rows += 1;
            }
        }
    }
    let db = dir.join("switchyard.db");
    println!(
        "Generated {} requests over {} days and {feedback_rows} feedback rows in {:.1} s; \
         store {:.1} MB (+ {:.1} MB WAL) at {}. Load average: {}.\n",
        store.count()?,
        a.days,
        t.elapsed().as_secs_f64(),
        mb(&db),
        mb(&dir.join("switchyard.db-wal")),
        db.display(),
        load()
    );

    let all = KpiFilter::default();
    // The dashboard's buckets (`BUCKETS` in app.js): minutes for an hour, 15 minutes for a
    // day, hours up to a week, days beyond.
    let ranges = [("1 h", 1), ("24 h", 24), ("30 d", 30 * 24)];
    type Query<'a> = Box<dyn Fn(i64, i64, Bucket) -> Result<usize, StoreError> + 'a>;
    let queries: Vec<(&str, Query)> = vec![
        (
            "summary",
            Box::new(|f, t, _| store.kpi_summary(f, t, &all).map(|s| s.requests as usize)),
        ),
        (
            "trend (bucketed)",
            Box::new(|f, t, b| store.kpi_trend(f, t, b, &all).map(|v| v.len())),
        ),
        (
            "groups by route",
            Box::new(|f, t, _| {
                store
                    .kpi_groups(f, t, GroupBy::Route, &all)
                    .map(|v| v.len())
            }),
        ),
        (
            "groups by time bucket",
            Box::new(|f, t, b| {
                let by = match b {
                    Bucket::Minute => GroupBy::Minute,
                    Bucket::FiveMinutes => GroupBy::FiveMinutes,
                    Bucket::FifteenMinutes => GroupBy::FifteenMinutes,
                    Bucket::Hour => GroupBy::Hour,
                    Bucket::Day => GroupBy::Day,
                };
                store.kpi_groups(f, t, by, &all).map(|v| v.len())
            }),
        ),
        (
            "guard triggers (bucketed)",
            Box::new(|f, t, b| store.guard_triggers(f, t, b, &all).map(|v| v.len())),
        ),
        (
            "model mix",
            Box::new(|f, t, _| store.model_mix(f, t, &all).map(|v| v.len())),
        ),
    ];
    println!("Median / max of {RUNS} runs, ms (requests in the range on the summary's row).\n");
    println!("| query | last 1 h | last 24 h | last 30 d |");
    println!("|---|---:|---:|---:|");
    for (name, query) in &queries {
        let mut cells = Vec::new();
        for (_, hours) in ranges {
            let bucket = match hours {
                ..=1 => Bucket::Minute,
                2..=6 => Bucket::FiveMinutes,
                7..=24 => Bucket::FifteenMinutes,
                25..=168 => Bucket::Hour,
                _ => Bucket::Day,
            };
            let (med, max, rows) = time(|| query(end - hours * HOUR_MS, end, bucket))?;
            let rows = if *name == "summary" {
                format!(" ({rows} req)")
            } else {
                String::new()
            };
            cells.push(format!("{med:.1} / {max:.1}{rows}"));
        }
        println!("| {name} | {} |", cells.join(" | "));
    }

    let lists = [
        ("no filter", RequestFilter::default()),
        (
            "status_class 5xx",
            RequestFilter {
                status_class: Some(StatusClass::ServerError),
                ..RequestFilter::default()
            },
        ),
        (
            "cache hit",
            RequestFilter {
                cache: Some("hit".into()),
                ..RequestFilter::default()
            },
        ),
        (
            "model frontier",
            RequestFilter {
                model: Some("frontier".into()),
                ..RequestFilter::default()
            },
        ),
        (
            "guard_outcome blocked",
            RequestFilter {
                guard_outcome: Some("blocked".into()),
                ..RequestFilter::default()
            },
        ),
    ];
    println!("\n| request list (limit 100) | median | max | rows |");
    println!("|---|---:|---:|---:|");
    for (name, filter) in lists {
        let filter = RequestFilter {
            limit: Some(100),
            ..filter
        };
        let (med, max, rows) = time(|| store.recent_requests(&filter).map(|v| v.len()))?;
        println!("| {name} | {med:.1} | {max:.1} | {rows} |");
    }
    println!("\nLoad average after: {}.", load());
    Ok(())
}
