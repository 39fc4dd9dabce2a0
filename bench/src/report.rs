//! Results: one row per scenario and endpoint, printed as a table, appended as markdown and
//! written as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::cli::{Load, Scenario};
use crate::load::Recorder;
use crate::procstat::{Machine, Usage};

/// Open-loop generator lateness (p99) above which a row gets a warning: past it, the
/// generator rather than the server may be what the latency shows.
const LAG_WARN_US: u64 = 1_000;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Summary {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
}

impl Summary {
    fn of(h: &Histogram<u64>) -> Option<Self> {
        (!h.is_empty()).then(|| Summary {
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            max: h.max(),
        })
    }
}

/// Target minus baseline in the same scenario, µs.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Added {
    pub p50: i64,
    pub p99: i64,
}

impl Added {
    fn between(target: Option<&Summary>, baseline: Option<&Summary>) -> Option<Self> {
        let (t, b) = (target?, baseline?);
        Some(Added {
            p50: signed(t.p50) - signed(b.p50),
            p99: signed(t.p99) - signed(b.p99),
        })
    }
}

fn signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub scenario: Scenario,
    pub label: String,
    pub endpoint: String,
    pub baseline: bool,
    pub url: String,
    pub model: String,
    /// Successful responses.
    pub ok: u64,
    pub seconds: f64,
    /// Successful responses per second.
    pub rps: f64,
    /// Whole response, µs.
    pub total_us: Option<Summary>,
    /// Time to the first `data:` chunk, µs; streaming only.
    pub first_chunk_us: Option<Summary>,
    /// On the headline metric: first chunk when streaming, whole response otherwise.
    pub added_us: Option<Added>,
    /// On the whole response, streaming only (equal to `added_us` otherwise).
    pub added_total_us: Option<Added>,
    /// Throughput as a share of the `--floor` target's in the same scenario.
    pub of_floor: Option<f64>,
    pub errors: u64,
    pub error_kinds: BTreeMap<String, u64>,
    pub dropped: u64,
    /// Open loop: how late the generator sent requests past their due time, µs.
    pub send_lag_us: Option<Summary>,
    pub gateway: Option<Usage>,
}

impl Row {
    pub fn new(
        scenario: Scenario,
        endpoint: &crate::cli::EndpointSpec,
        baseline: bool,
        rec: &Recorder,
        gateway: Option<Usage>,
    ) -> Self {
        let seconds = rec.elapsed.as_secs_f64();
        Row {
            scenario,
            label: scenario.label(),
            endpoint: endpoint.name.clone(),
            baseline,
            url: endpoint.base_url.clone(),
            model: endpoint.model.clone(),
            ok: rec.ok(),
            seconds,
            rps: if seconds > 0.0 {
                rec.ok() as f64 / seconds
            } else {
                0.0
            },
            total_us: Summary::of(&rec.total),
            first_chunk_us: if scenario.stream {
                Summary::of(&rec.first_chunk)
            } else {
                None
            },
            added_us: None,
            added_total_us: None,
            of_floor: None,
            errors: rec.error_count(),
            error_kinds: rec.errors.clone(),
            dropped: rec.dropped,
            send_lag_us: match scenario.load {
                Load::Open { .. } => Summary::of(&rec.send_lag),
                Load::Closed { .. } => None,
            },
            gateway,
        }
    }

    /// The latency the row is judged by.
    pub fn headline(&self) -> Option<&Summary> {
        if self.scenario.stream {
            self.first_chunk_us.as_ref()
        } else {
            self.total_us.as_ref()
        }
    }

    pub fn compare_with(&mut self, baseline: &Row) {
        self.added_us = Added::between(self.headline(), baseline.headline());
        self.added_total_us = Added::between(self.total_us.as_ref(), baseline.total_us.as_ref());
    }

    pub fn compare_with_floor(&mut self, floor: &Row) {
        self.of_floor = (floor.rps > 0.0).then(|| self.rps / floor.rps);
    }

    fn cells(&self) -> Vec<String> {
        let h = self.headline();
        let pick = |f: fn(&Summary) -> u64| h.map_or_else(dash, |s| ms(f(s)));
        let (total50, total99) = match (self.scenario.stream, &self.total_us) {
            (true, Some(t)) => (ms(t.p50), ms(t.p99)),
            _ => (dash(), dash()),
        };
        let errors = if self.errors == 0 {
            "0".to_owned()
        } else {
            let kinds: Vec<String> = self
                .error_kinds
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            format!("{} ({})", self.errors, kinds.join(", "))
        };
        let gw = self.gateway.as_ref();
        vec![
            self.label.clone(),
            self.endpoint.clone(),
            format!("{:.0}", self.rps),
            self.of_floor
                .map_or_else(dash, |f| format!("{:.0}%", f * 100.0)),
            pick(|s| s.p50),
            pick(|s| s.p90),
            pick(|s| s.p99),
            pick(|s| s.max),
            self.added_us.map_or_else(dash, |a| signed_ms(a.p50)),
            self.added_us.map_or_else(dash, |a| signed_ms(a.p99)),
            total50,
            total99,
            errors,
            self.dropped.to_string(),
            gw.map_or_else(dash, |g| format!("{:.0}%", g.cpu_percent)),
            gw.and_then(|g| g.cpu_us_per_request)
                .map_or_else(dash, |v| format!("{v:.0}")),
            gw.map_or_else(dash, |g| format!("{:.1}", g.peak_rss_kib as f64 / 1024.0)),
        ]
    }
}

const HEADERS: [&str; 17] = [
    "scenario",
    "endpoint",
    "req/s",
    "of floor",
    "p50",
    "p90",
    "p99",
    "max",
    "added p50",
    "added p99",
    "total p50",
    "total p99",
    "errors",
    "dropped",
    "gw CPU",
    "gw CPU µs/req",
    "gw peak MiB",
];

fn dash() -> String {
    "-".to_owned()
}

fn ms(us: u64) -> String {
    format!("{:.3}", us as f64 / 1000.0)
}

fn signed_ms(us: i64) -> String {
    format!("{:+.3}", us as f64 / 1000.0)
}

/// An aligned plain-text table for the terminal.
pub fn text_table(rows: &[Row]) -> String {
    let cells: Vec<Vec<String>> = rows.iter().map(Row::cells).collect();
    let mut widths: Vec<usize> = HEADERS.iter().map(|h| h.chars().count()).collect();
    for r in &cells {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |r: &[String]| -> String {
        let parts: Vec<String> = r
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, w))| {
                // Names left, numbers right, as a reader scans them.
                if i < 2 {
                    format!("{c:<w$}")
                } else {
                    format!("{c:>w$}")
                }
            })
            .collect();
        parts.join("  ").trim_end().to_owned()
    };
    let mut out = line(&HEADERS.map(str::to_owned));
    out.push('\n');
    for (i, r) in cells.iter().enumerate() {
        // A blank line between scenarios keeps each baseline with its targets.
        if i > 0 && rows[i].label != rows[i - 1].label {
            out.push('\n');
        }
        out.push_str(&line(r));
        out.push('\n');
    }
    out
}

fn markdown_table(rows: &[Row]) -> String {
    let mut out = format!("| {} |\n", HEADERS.join(" | "));
    let aligns: Vec<&str> = (0..HEADERS.len())
        .map(|i| if i < 2 { "---" } else { "---:" })
        .collect();
    let _ = writeln!(out, "| {} |", aligns.join(" | "));
    for r in rows {
        let _ = writeln!(out, "| {} |", r.cells().join(" | "));
    }
    out
}

/// What a markdown section or JSON file says about the run besides the rows.
#[derive(Debug, Serialize)]
pub struct RunInfo {
    pub date_utc: String,
    pub command: String,
    pub note: Option<String>,
    pub machine: Machine,
    /// `name: CPUs` of each sampled gateway process.
    pub gateway_cpus: Vec<String>,
    /// Whole-machine CPU use over one idle second before the first request: other work.
    pub busy_before_percent: f64,
    /// CPU time the hypervisor took during the run (VM steal); noise the run cannot control.
    pub steal_percent: f64,
    pub duration_secs: f64,
    pub warmup_secs: f64,
    pub max_tokens: u32,
    pub max_inflight: usize,
    pub client_threads: usize,
}

pub fn warnings(rows: &[Row]) -> Vec<String> {
    let mut w = Vec::new();
    for r in rows {
        if let Some(lag) = r.send_lag_us.map(|l| l.p99).filter(|&l| l > LAG_WARN_US) {
            w.push(format!(
                "{} / {}: the generator sent requests up to {} ms (p99) after their due time; \
                 the latencies include that delay",
                r.label,
                r.endpoint,
                ms(lag)
            ));
        }
        if r.dropped > 0 {
            w.push(format!(
                "{} / {}: {} requests dropped at the in-flight cap: the endpoint did not keep up",
                r.label, r.endpoint, r.dropped
            ));
        }
    }
    w
}

pub fn markdown(info: &RunInfo, rows: &[Row]) -> String {
    let m = &info.machine;
    let mut s = format!("\n## switchyard-bench run, {}\n\n", info.date_utc);
    if let Some(note) = &info.note {
        let _ = writeln!(s, "{note}\n");
    }
    let _ = writeln!(s, "Command:\n\n```sh\n{}\n```\n", info.command);
    let _ = writeln!(
        s,
        "Machine: {} CPUs ({}), {:.1} GiB, Linux {}. Before the run {:.0}% of the CPUs were busy \
         with other work; during it the hypervisor stole {:.1}%. Load generator on CPUs {}{}.\n",
        m.cpus,
        m.cpu_model,
        m.memory_gib,
        m.kernel,
        info.busy_before_percent,
        info.steal_percent,
        m.bench_cpus,
        info.gateway_cpus
            .iter()
            .map(|g| format!("; {g}"))
            .collect::<String>()
    );
    let _ = writeln!(
        s,
        "Load: {} s measured per scenario and endpoint after {} s of warm-up, baseline first, \
         then each target. Request: one short user message, max_tokens {}. Client: HTTP/1.1 \
         keep-alive, TCP_NODELAY, {} runtime thread(s); open loop capped at {} in flight.\n",
        info.duration_secs,
        info.warmup_secs,
        info.max_tokens,
        info.client_threads,
        info.max_inflight
    );
    let mut seen = Vec::new();
    for r in rows {
        if !seen.contains(&r.endpoint) {
            let _ = writeln!(s, "- `{}`: {} (model `{}`)", r.endpoint, r.url, r.model);
            seen.push(r.endpoint.clone());
        }
    }
    s.push('\n');
    s.push_str(&markdown_table(rows));
    s.push_str(
        "\nLatencies in ms. `full` rows time the whole response; `stream` rows give time to \
         the first `data:` chunk in p50..max and the whole stream in `total`. `added` is the \
         endpoint minus the baseline in the same scenario. `c=N` is N closed-loop workers; \
         `N/s` is an open-loop schedule, its latencies measured from each request's scheduled \
         send time. Gateway CPU is in % of one core over the measured run; peak is VmHWM",
    );
    let scopes: Vec<&str> = rows
        .iter()
        .filter_map(|r| r.gateway.as_ref().map(|g| g.peak_scope))
        .collect();
    s.push_str(if scopes.is_empty() {
        ".\n"
    } else if scopes.iter().all(|&p| p == "run") {
        ", reset at the start of each run.\n"
    } else {
        " over the process's life (it could not be reset per run).\n"
    });
    for w in warnings(rows) {
        let _ = writeln!(s, "\n- {w}");
    }
    s
}

pub fn append_markdown(path: &Path, info: &RunInfo, rows: &[Row]) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    f.write_all(markdown(info, rows).as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

pub fn write_json(path: &Path, info: &RunInfo, rows: &[Row]) -> Result<()> {
    #[derive(Serialize)]
    struct Doc<'a> {
        run: &'a RunInfo,
        rows: &'a [Row],
    }
    let text = serde_json::to_string_pretty(&Doc { run: info, rows })?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// The command line as typed, keys replaced by `***`, absolute paths written relative to the
/// repository root (a report names no machine's folders), quoted for a POSIX shell. `--note`
/// is left out: the markdown prints it already, and it changes no result.
pub fn command_line(args: impl IntoIterator<Item = String>, key_from_env: bool) -> String {
    const SECRET_FLAGS: [&str; 3] = ["--key", "--baseline-key", "--target-key"];
    let mut out = Vec::new();
    if key_from_env {
        out.push(format!("{KEY_ENV}='***'"));
    }
    let mut hide_next = false;
    let mut skip_next = false;
    for a in args {
        if skip_next {
            skip_next = false;
            continue;
        }
        let shown = if hide_next {
            hide_next = false;
            redact_value(&a)
        } else if a == "--note" {
            skip_next = true;
            continue;
        } else if a.starts_with("--note=") {
            continue;
        } else if let Some((flag, value)) =
            a.split_once('=').filter(|(f, _)| SECRET_FLAGS.contains(f))
        {
            format!("{flag}={}", redact_value(value))
        } else {
            hide_next = SECRET_FLAGS.contains(&a.as_str());
            relative(&a)
        };
        out.push(shell_quote(&shown));
    }
    out.join(" ")
}

/// An absolute path (alone or as `--flag=PATH`) relative to the repository root.
fn relative(arg: &str) -> String {
    let shown = |p: &str| switchyard_testkit::data::shown(std::path::Path::new(p));
    match arg.split_once('=') {
        Some((flag, value)) if flag.starts_with("--") && value.starts_with('/') => {
            format!("{flag}={}", shown(value))
        }
        _ if arg.starts_with('/') => shown(arg),
        _ => arg.to_owned(),
    }
}

/// The environment variable the target key may come from (see `cli::Args::key`).
pub const KEY_ENV: &str = "SWITCHYARD_BENCH_KEY";

/// `NAME=KEY` keeps its name; a bare key becomes `***`.
fn redact_value(v: &str) -> String {
    match v.split_once('=') {
        Some((name, _)) if !name.is_empty() && !name.contains(' ') => format!("{name}=***"),
        _ => "***".to_owned(),
    }
}

fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+%".contains(c));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_hides_keys() {
        let args = [
            "switchyard-bench",
            "--key",
            "sk-1",
            "--baseline-key=sk-2",
            "--target-key",
            "nginx=sk-3",
            "--note",
            "it's here",
            "--target",
            "sy=http://127.0.0.1:1/v1",
        ]
        .map(str::to_owned);
        assert_eq!(
            command_line(args.clone(), false),
            "switchyard-bench --key '***' '--baseline-key=***' --target-key 'nginx=***' \
             --target sy=http://127.0.0.1:1/v1"
        );
        assert!(command_line(args, true).starts_with("SWITCHYARD_BENCH_KEY='***' switchyard-bench"));
        assert_eq!(
            command_line(
                ["b", "--note=x", "--allow-remote", "--model", "it's"].map(str::to_owned),
                false
            ),
            "b --allow-remote --model 'it'\\''s'"
        );
    }

    #[test]
    fn command_line_names_no_machine_folder() {
        let root = switchyard_testkit::data::repo_root();
        let at = |rel: &str| root.join(rel).display().to_string();
        let args = [
            at("target/release/switchyard-bench"),
            "--out".to_owned(),
            at("../tmp/run.md"),
            format!("--json={}", at("target/bench.json")),
            "--target".to_owned(),
            "sy=http://127.0.0.1:1/v1".to_owned(),
        ];
        assert_eq!(
            command_line(args, false),
            "target/release/switchyard-bench --out ../tmp/run.md --json=target/bench.json \
             --target sy=http://127.0.0.1:1/v1"
        );
    }

    #[test]
    fn added_is_target_minus_baseline() {
        let b = Summary {
            p50: 100,
            p90: 150,
            p99: 300,
            max: 900,
        };
        let t = Summary {
            p50: 350,
            p90: 400,
            p99: 250,
            max: 800,
        };
        let a = Added::between(Some(&t), Some(&b)).unwrap();
        assert_eq!((a.p50, a.p99), (250, -50));
        assert_eq!(signed_ms(a.p50), "+0.250");
        assert_eq!(signed_ms(a.p99), "-0.050");
        assert!(Added::between(None, Some(&b)).is_none());
    }
}
