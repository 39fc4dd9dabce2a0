//! `switchyard-bench`: the latency a gateway adds, measured side by side with its upstream.
//!
//! Every scenario (closed loop at N workers, or open loop at a fixed rate; full or streaming
//! responses) runs first straight against the baseline upstream, then through each target,
//! with the same request and parameters, so the difference is the gateway's. It only sends
//! load and reads /proc; it starts no server. `bench/run.sh` starts the upstream and gateway
//! pinned to separate cores and records the result; `bench/README.md` explains the numbers.

mod cli;
mod client;
mod load;
mod procstat;
mod report;
#[cfg(test)]
mod testserver;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;

use cli::{Args, Load, Plan, Scenario};
use client::{Endpoint, Outcome};
use load::Recorder;
use report::{Row, RunInfo};

fn main() -> Result<()> {
    let args = Args::parse();
    let plan = args.plan()?;
    // Under `taskset` this counts only the allowed CPUs, so the client stays on its core.
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(run(&args, plan, threads))
}

async fn run(args: &Args, plan: Plan, threads: usize) -> Result<()> {
    let key_from_env = std::env::var_os(report::KEY_ENV).is_some();
    let command = report::command_line(std::env::args(), key_from_env);
    let machine = procstat::machine();
    let ticks = procstat::ticks_per_sec();

    // One quiet second first: whatever the CPUs do now, but for the gateways finishing their
    // start-up, is someone else's work, and it would be inside every latency.
    let own_ticks = || -> u64 {
        let pids = plan.targets.iter().filter_map(|t| t.pid);
        pids.map(procstat::process_ticks).sum::<u64>() + procstat::process_ticks(std::process::id())
    };
    let idle_from = procstat::cpu_times();
    let own_from = own_ticks();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let run_from = procstat::cpu_times();
    let own = own_ticks().saturating_sub(own_from);
    let busy_before_percent = match (&idle_from, &run_from) {
        (Some(a), Some(b)) => b.since(a, own).0,
        _ => 0.0,
    };
    if busy_before_percent > 10.0 {
        eprintln!(
            "warning: {busy_before_percent:.0}% of the CPUs are busy before the run; \
             results will be noisy"
        );
    }

    let baseline = Arc::new(Endpoint::new(
        plan.baseline.clone(),
        args.max_tokens,
        plan.timeout,
        args.workload,
    )?);
    let mut endpoints = if args.skip_baseline {
        Vec::new()
    } else {
        vec![Arc::clone(&baseline)]
    };
    for t in &plan.targets {
        endpoints.push(Arc::new(Endpoint::new(
            t.clone(),
            args.max_tokens,
            plan.timeout,
            args.workload,
        )?));
    }
    let modes: Vec<bool> = {
        let mut m: Vec<bool> = plan.scenarios.iter().map(|s| s.stream).collect();
        m.dedup();
        m
    };
    for ep in &endpoints {
        preflight(ep, &modes).await?;
    }

    let gateway_cpus: Vec<String> = plan
        .targets
        .iter()
        .filter_map(|t| {
            let pid = t.pid?;
            let cpus = procstat::cpus_allowed(Some(pid)).unwrap_or_else(|| "?".to_owned());
            Some(format!("`{}` (pid {pid}) on CPUs {cpus}", t.name))
        })
        .collect();
    let per_endpoint = plan.warmup + plan.duration;
    let total = per_endpoint * u32::try_from(plan.scenarios.len() * endpoints.len())?;
    eprintln!(
        "switchyard-bench: {} scenarios x {} endpoints, about {} s; client on CPUs {}, {} thread(s)",
        plan.scenarios.len(),
        endpoints.len(),
        total.as_secs(),
        machine.bench_cpus,
        threads
    );

    let mut rows: Vec<Row> = Vec::new();
    for &scenario in &plan.scenarios {
        let mut base_row: Option<Row> = None;
        for ep in &endpoints {
            let is_baseline = Arc::ptr_eq(ep, &baseline);
            let mut row = measure(args, &plan, ep, scenario, is_baseline, ticks).await?;
            match &base_row {
                Some(b) => row.compare_with(b),
                None if is_baseline => base_row = Some(row.clone()),
                None => {}
            }
            eprintln!("{}", progress(&row));
            rows.push(row);
        }
        if let Some(floor) = &args.floor {
            let scenario_rows = rows.len() - endpoints.len();
            let floor_row = rows[scenario_rows..]
                .iter()
                .find(|r| &r.endpoint == floor)
                .cloned();
            if let Some(floor_row) = floor_row {
                for row in rows[scenario_rows..].iter_mut().filter(|r| !r.baseline) {
                    row.compare_with_floor(&floor_row);
                }
            }
        }
    }

    println!("\n{}", report::text_table(&rows));
    for w in report::warnings(&rows) {
        println!("warning: {w}");
    }
    let steal_percent = match (&run_from, procstat::cpu_times()) {
        (Some(a), Some(b)) => b.since(a, 0).1,
        _ => 0.0,
    };
    let info = RunInfo {
        busy_before_percent,
        steal_percent,
        date_utc: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        command,
        note: args.note.clone(),
        machine,
        gateway_cpus,
        duration_secs: plan.duration.as_secs_f64(),
        warmup_secs: plan.warmup.as_secs_f64(),
        max_tokens: args.max_tokens,
        max_inflight: args.max_inflight,
        client_threads: threads,
    };
    if let Some(path) = &args.out {
        report::append_markdown(path, &info, &rows)?;
        eprintln!("appended to {}", path.display());
    }
    if let Some(path) = &args.json {
        report::write_json(path, &info, &rows)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// One request per mode, so a wrong URL, key or model fails in a second with its reason
/// instead of as a table of errors minutes later.
async fn preflight(ep: &Endpoint, modes: &[bool]) -> Result<()> {
    for &stream in modes {
        let outcome = ep.send(stream, tokio::time::Instant::now()).await;
        if let Outcome::Failed(why) = outcome {
            let mode = if stream { "streaming" } else { "non-streaming" };
            bail!(
                "`{}`: a {mode} request to {} failed ({why}); check the URL, key and model `{}`",
                ep.spec.name,
                ep.uri(),
                ep.spec.model
            );
        }
    }
    Ok(())
}

/// Warm-up, then the measured run, with the gateway's counters read around the latter.
async fn measure(
    args: &Args,
    plan: &Plan,
    ep: &Arc<Endpoint>,
    scenario: Scenario,
    is_baseline: bool,
    ticks: u64,
) -> Result<Row> {
    if !plan.warmup.is_zero() {
        drive(args, ep, scenario, plan.warmup).await?;
    }
    let watch = match ep.spec.pid {
        Some(pid) => Some(procstat::Watch::begin(pid, ticks)?),
        None => None,
    };
    let rec = drive(args, ep, scenario, plan.duration).await?;
    let usage = match watch.map(|w| w.end(rec.ok())) {
        Some(Ok(u)) => Some(u),
        Some(Err(e)) => {
            // Keep the latency numbers: a gateway that died shows up as errors anyway.
            eprintln!("warning: {}: {e:#}", ep.spec.name);
            None
        }
        None => None,
    };
    Ok(Row::new(scenario, &ep.spec, is_baseline, &rec, usage))
}

async fn drive(
    args: &Args,
    ep: &Arc<Endpoint>,
    scenario: Scenario,
    d: Duration,
) -> Result<Recorder> {
    match scenario.load {
        Load::Closed { concurrency } => {
            load::closed(Arc::clone(ep), scenario.stream, concurrency, d).await
        }
        Load::Open { rate } => {
            load::open(Arc::clone(ep), scenario.stream, rate, d, args.max_inflight).await
        }
    }
}

fn progress(row: &Row) -> String {
    let h = row.headline();
    let added = row
        .added_us
        .map(|a| format!(", added p50 {:+.3} ms", a.p50 as f64 / 1000.0))
        .unwrap_or_default();
    format!(
        "  {:<14} {:<12} {:>8.0} req/s  p50 {:.3} ms  p99 {:.3} ms{added}  errors {}  dropped {}",
        row.label,
        row.endpoint,
        row.rps,
        h.map_or(0.0, |s| s.p50 as f64 / 1000.0),
        h.map_or(0.0, |s| s.p99 as f64 / 1000.0),
        row.errors,
        row.dropped
    )
}
