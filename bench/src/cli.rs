//! The command line, and its resolution into the endpoints and scenarios a run goes through.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use http::Uri;

/// Measures the latency an OpenAI-compatible gateway adds, by sending the same load straight
/// to an upstream (the baseline) and through each target, alternating, in one run.
#[derive(Debug, Parser)]
#[command(name = "switchyard-bench", version)]
pub struct Args {
    /// OpenAI-compatible base URL of the upstream itself, e.g. http://127.0.0.1:9100/v1.
    #[arg(long)]
    pub baseline: String,

    /// Bearer token sent to the baseline.
    #[arg(long, env = "SWITCHYARD_BENCH_BASELINE_KEY", hide_env_values = true)]
    pub baseline_key: Option<String>,

    /// Model name sent to the baseline [default: the value of --model].
    #[arg(long)]
    pub baseline_model: Option<String>,

    /// Base URL through a gateway, as `NAME=URL` or `URL`; repeat to compare several gateways.
    #[arg(long = "target", required = true, value_name = "[NAME=]URL")]
    pub targets: Vec<String>,

    /// Bearer token sent to every target without its own --target-key (`report::KEY_ENV`).
    #[arg(long, env = "SWITCHYARD_BENCH_KEY", hide_env_values = true)]
    pub key: Option<String>,

    /// Bearer token for one target, as `NAME=KEY`.
    #[arg(long = "target-key", value_name = "NAME=KEY")]
    pub target_keys: Vec<String>,

    /// Model name sent to the targets.
    #[arg(long, default_value = "fast")]
    pub model: String,

    /// Model name for one target, as `NAME=MODEL` (gateways spell model names differently).
    #[arg(long = "target-model", value_name = "NAME=MODEL")]
    pub target_models: Vec<String>,

    /// The target every other's throughput is given as a share of (`nginx` as a plain
    /// reverse proxy: the floor a proxy in Rust is judged against).
    #[arg(long, value_name = "NAME")]
    pub floor: Option<String>,

    /// Measured seconds per scenario and endpoint.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,

    /// Seconds of the same load before each measurement, not recorded.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,

    /// Closed-loop worker counts, comma-separated; `none` for no closed-loop scenarios.
    #[arg(long, default_value = "1,16,64")]
    pub concurrency: String,

    /// Open-loop request rates per second, comma-separated; `none` for no open-loop scenarios.
    #[arg(long, default_value = "500,2000")]
    pub rates: String,

    /// Which response modes to run.
    #[arg(long, value_enum, default_value_t = StreamMode::Both)]
    pub stream: StreamMode,

    /// Process to sample CPU time and peak memory of, as `NAME=PID` or `PID` (the first target).
    #[arg(long = "gateway-pid", value_name = "[NAME=]PID")]
    pub gateway_pids: Vec<String>,

    /// Append a markdown section (command, machine, table) to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,

    /// Write every result as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,

    /// A line written into the markdown section, e.g. how to reproduce the run.
    #[arg(long)]
    pub note: Option<String>,

    /// Open-loop bound on requests in flight; a request due beyond it is dropped and counted.
    #[arg(long, default_value_t = 4096)]
    pub max_inflight: usize,

    /// Seconds before one request counts as an error.
    #[arg(long, default_value_t = 30.0)]
    pub timeout: f64,

    /// `max_tokens` of the chat request.
    #[arg(long, default_value_t = 16)]
    pub max_tokens: u32,

    /// Runtime worker threads [default: the CPUs this process may run on].
    #[arg(long)]
    pub threads: Option<usize>,

    /// Allow non-loopback URLs. Off by default so a typo cannot load a paid API.
    #[arg(long)]
    pub allow_remote: bool,

    /// What the requests ask: `same` (one fixed prompt, no temperature: caches bypass it),
    /// `unique` (a new question every request at temperature 0: every cache lookup misses,
    /// embeds, searches and stores), `repeat` (one question at temperature 0: cache hits).
    #[arg(long, value_enum, default_value_t = Workload::Same)]
    pub workload: Workload,

    /// Send the load through the targets only, not straight to the baseline (a soak run,
    /// `bench/soak.sh`, watches one gateway over a long time and compares nothing).
    #[arg(long)]
    pub skip_baseline: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Workload {
    Same,
    Unique,
    Repeat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StreamMode {
    Off,
    On,
    Both,
}

/// One URL the load goes to, with what to send it.
#[derive(Debug, Clone)]
pub struct EndpointSpec {
    pub name: String,
    pub base_url: String,
    pub uri: Uri,
    pub key: Option<String>,
    pub model: String,
    pub pid: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "loop", rename_all = "snake_case")]
pub enum Load {
    /// N workers, each sending its next request when the previous one completes.
    Closed { concurrency: usize },
    /// Requests sent on a fixed schedule whatever the responses do.
    Open { rate: u32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Scenario {
    #[serde(flatten)]
    pub load: Load,
    pub stream: bool,
}

impl Scenario {
    pub fn label(&self) -> String {
        let load = match self.load {
            Load::Closed { concurrency } => format!("c={concurrency}"),
            Load::Open { rate } => format!("{rate}/s"),
        };
        let mode = if self.stream { "stream" } else { "full" };
        format!("{load} {mode}")
    }
}

/// Everything the run needs, checked.
#[derive(Debug)]
pub struct Plan {
    pub baseline: EndpointSpec,
    pub targets: Vec<EndpointSpec>,
    pub scenarios: Vec<Scenario>,
    pub duration: Duration,
    pub warmup: Duration,
    pub timeout: Duration,
}

impl Args {
    pub fn plan(&self) -> Result<Plan> {
        let duration = seconds("--duration", self.duration, false)?;
        let warmup = seconds("--warmup", self.warmup, true)?;
        let timeout = seconds("--timeout", self.timeout, false)?;
        if self.max_inflight == 0 {
            bail!("--max-inflight must be at least 1");
        }

        let baseline = EndpointSpec {
            name: "baseline".to_owned(),
            base_url: self.baseline.clone(),
            uri: chat_uri(&self.baseline, self.allow_remote)?,
            key: self.baseline_key.clone(),
            model: self
                .baseline_model
                .clone()
                .unwrap_or_else(|| self.model.clone()),
            pid: None,
        };

        let mut targets = Vec::new();
        for (i, t) in self.targets.iter().enumerate() {
            let (name, url) = match split_named(t) {
                Some((n, u)) => (n.to_owned(), u.to_owned()),
                None if self.targets.len() == 1 => ("target".to_owned(), t.clone()),
                None => (format!("target{}", i + 1), t.clone()),
            };
            if name == "baseline" || targets.iter().any(|e: &EndpointSpec| e.name == name) {
                bail!("target name `{name}` is used twice (or is `baseline`)");
            }
            targets.push(EndpointSpec {
                uri: chat_uri(&url, self.allow_remote).with_context(|| format!("--target {t}"))?,
                name,
                base_url: url,
                key: self.key.clone(),
                model: self.model.clone(),
                pid: None,
            });
        }
        if let Some(floor) = &self.floor {
            find(&mut targets, floor, "--floor")?;
        }
        for kv in &self.target_keys {
            let (name, key) = split_named(kv).context("--target-key takes NAME=KEY")?;
            find(&mut targets, name, "--target-key")?.key = Some(key.to_owned());
        }
        for kv in &self.target_models {
            let (name, model) = split_named(kv).context("--target-model takes NAME=MODEL")?;
            find(&mut targets, name, "--target-model")?.model = model.to_owned();
        }
        for p in &self.gateway_pids {
            let (name, pid) = match split_named(p) {
                Some((n, pid)) => (n.to_owned(), pid),
                None => (
                    targets.first().map(|t| t.name.clone()).unwrap_or_default(),
                    p.as_str(),
                ),
            };
            let pid: u32 = pid
                .parse()
                .with_context(|| format!("--gateway-pid {p}: not a process id"))?;
            find(&mut targets, &name, "--gateway-pid")?.pid = Some(pid);
        }

        let concurrency = list("--concurrency", &self.concurrency)?;
        let rates = list("--rates", &self.rates)?;
        if concurrency.contains(&0) || rates.contains(&0) {
            bail!("--concurrency and --rates values must be greater than 0");
        }
        let modes: &[bool] = match self.stream {
            StreamMode::Off => &[false],
            StreamMode::On => &[true],
            StreamMode::Both => &[false, true],
        };
        let mut scenarios = Vec::new();
        for &stream in modes {
            for &c in &concurrency {
                scenarios.push(Scenario {
                    load: Load::Closed {
                        concurrency: usize::try_from(c)?,
                    },
                    stream,
                });
            }
            for &rate in &rates {
                scenarios.push(Scenario {
                    load: Load::Open { rate },
                    stream,
                });
            }
        }
        if scenarios.is_empty() {
            bail!("no scenarios: give --concurrency or --rates");
        }

        Ok(Plan {
            baseline,
            targets,
            scenarios,
            duration,
            warmup,
            timeout,
        })
    }
}

fn seconds(flag: &str, v: f64, zero_ok: bool) -> Result<Duration> {
    if !v.is_finite() || v < 0.0 || (!zero_ok && v == 0.0) || v > 86_400.0 {
        bail!("{flag} must be a number of seconds greater than 0 and at most a day");
    }
    Ok(Duration::from_secs_f64(v))
}

fn list(flag: &str, s: &str) -> Result<Vec<u32>> {
    let s = s.trim();
    if s.is_empty() || s == "none" {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|v| {
            v.trim()
                .parse::<u32>()
                .with_context(|| format!("{flag}: `{v}` is not a whole number"))
        })
        .collect()
}

/// Splits `NAME=VALUE`; a value alone (a URL has `:` or `/` before any `=`) gives `None`.
fn split_named(s: &str) -> Option<(&str, &str)> {
    let (name, value) = s.split_once('=')?;
    let is_name = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    is_name.then_some((name, value))
}

fn find<'a>(
    targets: &'a mut [EndpointSpec],
    name: &str,
    flag: &str,
) -> Result<&'a mut EndpointSpec> {
    let known = targets
        .iter()
        .map(|t| t.name.clone())
        .collect::<Vec<_>>()
        .join(", ");
    targets
        .iter_mut()
        .find(|t| t.name == name)
        .with_context(|| format!("{flag}: no target named `{name}` (targets: {known})"))
}

/// The chat completions URI under an OpenAI-style base URL.
fn chat_uri(base: &str, allow_remote: bool) -> Result<Uri> {
    let full = format!("{}/chat/completions", base.trim_end_matches('/'));
    let uri: Uri = full
        .parse()
        .with_context(|| format!("`{base}` is not a URL"))?;
    if uri.scheme_str() != Some("http") {
        // The client is plain HTTP on purpose: TLS would measure the handshake, not the gateway.
        bail!("`{base}`: only http:// URLs are supported");
    }
    let host = uri
        .host()
        .with_context(|| format!("`{base}` has no host"))?;
    if !allow_remote && !is_loopback(host) {
        bail!("`{base}` is not a loopback address; pass --allow-remote to load it anyway");
    }
    Ok(uri)
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Args {
        let mut v = vec!["switchyard-bench", "--baseline", "http://127.0.0.1:9100/v1"];
        v.extend_from_slice(extra);
        Args::parse_from(v)
    }

    #[test]
    fn names_targets_and_routes_keys_models_and_pids() {
        let plan = args(&[
            "--target",
            "sy=http://127.0.0.1:8080/v1/",
            "--target",
            "nginx=http://localhost:8081/v1",
            "--key",
            "k",
            "--target-key",
            "nginx=other",
            "--target-model",
            "nginx=openai/fast",
            "--gateway-pid",
            "42",
        ])
        .plan()
        .unwrap();
        assert_eq!(
            plan.baseline.uri,
            "http://127.0.0.1:9100/v1/chat/completions"
        );
        assert_eq!(plan.targets[0].name, "sy");
        assert_eq!(
            plan.targets[0].uri,
            "http://127.0.0.1:8080/v1/chat/completions"
        );
        assert_eq!(plan.targets[0].key.as_deref(), Some("k"));
        assert_eq!(plan.targets[0].pid, Some(42));
        assert_eq!(plan.targets[1].key.as_deref(), Some("other"));
        assert_eq!(plan.targets[1].model, "openai/fast");
        assert_eq!(plan.targets[1].pid, None);
        // 3 concurrencies + 2 rates, each non-streaming and streaming.
        assert_eq!(plan.scenarios.len(), 10);
    }

    #[test]
    fn unnamed_target_and_empty_lists() {
        let plan = args(&[
            "--target",
            "http://[::1]:8080/v1",
            "--rates",
            "none",
            "--stream",
            "on",
        ])
        .plan()
        .unwrap();
        assert_eq!(plan.targets[0].name, "target");
        assert_eq!(plan.scenarios.len(), 3);
        assert!(plan.scenarios.iter().all(|s| s.stream));
    }

    #[test]
    fn refuses_remote_https_and_unknown_names() {
        assert!(args(&["--target", "http://10.0.0.1:8080/v1"])
            .plan()
            .is_err());
        assert!(args(&["--target", "https://127.0.0.1:8080/v1"])
            .plan()
            .is_err());
        assert!(
            args(&["--target", "http://127.0.0.1:1/v1", "--target-key", "x=y"])
                .plan()
                .is_err()
        );
        assert!(
            args(&["--target", "http://127.0.0.1:1/v1", "--concurrency", "0"])
                .plan()
                .is_err()
        );
    }
}
