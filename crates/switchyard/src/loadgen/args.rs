//! What a run is asked to do (the command line: [`Args`], and the load's [`Shape`]), and why
//! it could not run ([`Failure`], by exit code).

use std::time::Duration;

use clap::Args as ClapArgs;

use super::plan::{parse_duration, parse_mix, parse_priorities, parse_share, Mix, PriorityMix};

pub const EXIT_CODES: &str = "\
Exit codes:
  0  the run completed (whatever the requests' outcomes: errors are counted, not fatal)
  1  the gateway refused the key
  2  usage error
  3  the gateway could not be reached (its /healthz probe failed)";

/// A generator sending more than this measures itself more than the gateway.
pub(super) const MAX_RATE: f64 = 100_000.0;

#[derive(ClapArgs)]
pub struct Args {
    /// The gateway's base URL.
    #[arg(long, env = "SWITCHYARD_URL", default_value = "http://127.0.0.1:8080")]
    pub(super) target: String,
    /// A virtual key of the gateway [default: the demo's key].
    #[arg(long, env = "SWITCHYARD_KEY", hide_env_values = true)]
    pub(super) key: Option<String>,
    /// The model (or route) every request asks for.
    #[arg(long, default_value = "auto")]
    pub(super) model: String,
    /// How long to send: 90s, 2m, 500ms, 1h (a bare number is seconds).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub(super) duration: Duration,
    /// Open loop: requests per second, on a fixed schedule [default: 5, half the demo key's
    /// 600 requests a minute].
    #[arg(long, conflicts_with = "concurrency")]
    pub(super) rate: Option<f64>,
    /// Closed loop: this many workers, each sending as soon as its last request finished.
    #[arg(long)]
    pub(super) concurrency: Option<usize>,
    /// Rate mode: requests outstanding at most; one due beyond it is dropped and counted.
    #[arg(long, default_value_t = 256)]
    pub(super) max_inflight: usize,
    /// Weights of the kinds of request (simple, hard, pii, injection, repeat, paraphrase).
    #[arg(
        long,
        default_value = "simple=40,hard=15,pii=10,injection=5,repeat=20,paraphrase=10",
        value_parser = parse_mix
    )]
    pub(super) mix: Mix,
    /// Shares of the priority classes sent as `x-switchyard-priority` (critical, interactive,
    /// standard, batch), e.g. `interactive=70,batch=30`; the summary then has a line per
    /// class [default: no header].
    #[arg(long, value_parser = parse_priorities)]
    pub(super) priority: Option<PriorityMix>,
    /// How many users the requests come from (the `user` field: sticky rollouts and flags).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    pub(super) users: u32,
    /// Share of requests that stream (time to first token is measured on them).
    #[arg(long, default_value_t = 0.3, value_parser = parse_share)]
    pub(super) stream_share: f64,
    /// Share of answered requests that get feedback (`POST /v1/feedback`).
    #[arg(long, default_value_t = 0.3, value_parser = parse_share)]
    pub(super) feedback_share: f64,
    /// Seed of the plan (kinds, prompts, users, streaming, feedback) [default: random,
    /// printed in the summary].
    #[arg(long)]
    pub(super) seed: Option<u64>,
    /// Print the summary as JSON, without the progress bar.
    #[arg(long)]
    pub(super) json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Shape {
    Rate(f64),
    Concurrency(usize),
}

pub(super) struct Failure {
    pub(super) code: u8,
    pub(super) message: String,
}

pub(super) fn usage(message: impl Into<String>) -> Failure {
    Failure {
        code: 2,
        message: message.into(),
    }
}
