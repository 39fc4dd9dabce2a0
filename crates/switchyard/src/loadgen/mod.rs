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

mod args;
mod plan;
mod send;
mod summary;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::task::JoinSet;
use tokio::time::Instant;

use args::{usage, Failure, Shape, MAX_RATE};
pub use args::{Args, EXIT_CODES};
use plan::{due_offset, scheduled_count, Planner, Workload, WORKLOAD};
use send::{Outcome, Target};
use summary::Summary;

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

async fn run_async(args: Args) -> Result<(), Failure> {
    let workload = Workload::parse(WORKLOAD).map_err(|e| usage(format!("workload: {e}")))?;
    let mix = args.mix.resolve(&workload).map_err(usage)?;
    let shape = match (args.rate, args.concurrency) {
        (_, Some(0)) => return Err(usage("--concurrency must be at least 1")),
        (_, Some(n)) => Shape::Concurrency(n),
        (Some(r), None) if !(r > 0.0 && r <= MAX_RATE) => {
            return Err(usage(format!(
                "--rate must be a number of requests per second above 0 and at most {MAX_RATE}"
            )))
        }
        (Some(r), None) => Shape::Rate(r),
        (None, None) => Shape::Rate(5.0),
    };
    let seed = args.seed.unwrap_or_else(rand::random);
    let target = Target::new(&args)?;
    target.probe().await?;

    let kind_names: Vec<String> = workload
        .kind_names()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let planner = Planner {
        rng: StdRng::seed_from_u64(seed),
        workload,
        mix,
        users: args.users,
        stream_share: args.stream_share,
        feedback_share: args.feedback_share,
        priorities: args.priority.clone(),
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

    let summary = Summary::build(&args, shape, seed, elapsed, &kind_names, &outcomes);
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
    let mut outcomes = Vec::with_capacity(usize::try_from(count.min(1 << 16)).unwrap_or(0));
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
            outcomes.push(Outcome::dropped(&plan));
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
