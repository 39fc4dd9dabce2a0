//! `switchyard rollout start|status|promote|pause|resume|rollback|abort`: model, prompt and
//! config rollouts.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use super::client::{Client, Failure, Outcome, Remote, EXIT_CODES};
use super::flags::parse_percent;
use super::text::{print_table, when};

#[derive(Subcommand)]
pub enum RolloutCommand {
    /// Start a rollout: the candidate takes a growing share of users, step by step, judged
    /// against the baseline after each; a breach rolls it back by itself.
    #[command(after_help = EXIT_CODES)]
    Start {
        /// `model` (two models of the running config), `prompt` (a label and a version) or
        /// `config` (`running` and a staged config version).
        kind: String,
        /// A model, a prompt label such as `support-answer@production`, or `running`.
        baseline: String,
        /// A model, a prompt version such as `support-answer@2` (or `2`), or a config
        /// version id (a unique prefix will do).
        candidate: String,
        /// The rollout's id [default: generated].
        #[arg(long)]
        id: Option<String>,
        /// Candidate shares in percent, rising, the last 100 [default: 5,25,50,100].
        #[arg(long, value_delimiter = ',')]
        steps: Vec<f64>,
        /// Each step lasts at least this many seconds [default: 600].
        #[arg(long)]
        min_step_secs: Option<u64>,
        /// And sees at least this many candidate requests [default: 200].
        #[arg(long)]
        min_step_requests: Option<u64>,
        /// Requests each arm needs before anything is judged [default: 50].
        #[arg(long)]
        min_samples: Option<u64>,
        /// Switch everyone at once, keeping the baseline warm for a one-call rollback.
        #[arg(long)]
        blue_green: bool,
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Every rollout, or one with its timeline and the current step's counts.
    #[command(after_help = EXIT_CODES)]
    Status {
        id: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Send everyone to the candidate now.
    #[command(after_help = EXIT_CODES)]
    Promote(RolloutAction),
    /// Hold the current share; no step advances.
    #[command(after_help = EXIT_CODES)]
    Pause(RolloutAction),
    /// Judge the paused step again, in a new window.
    #[command(after_help = EXIT_CODES)]
    Resume(RolloutAction),
    /// Send everyone back to the baseline now: the candidate is judged bad.
    #[command(after_help = EXIT_CODES)]
    Rollback(RolloutAction),
    /// Give the rollout up and send everyone back to the baseline.
    #[command(after_help = EXIT_CODES)]
    Abort(RolloutAction),
}

#[derive(Args)]
pub struct RolloutAction {
    id: String,
    #[arg(long, default_value = "")]
    reason: String,
    #[command(flatten)]
    remote: Remote,
}

pub(super) async fn run(command: RolloutCommand) -> Outcome {
    match command {
        RolloutCommand::Start {
            kind,
            baseline,
            candidate,
            id,
            steps,
            min_step_secs,
            min_step_requests,
            min_samples,
            blue_green,
            reason,
            remote,
        } => {
            let mut spec = serde_json::Map::new();
            if !steps.is_empty() {
                let bp: Result<Vec<u16>, Failure> = steps
                    .iter()
                    .map(|p| {
                        parse_percent(&p.to_string())
                            .map_err(|e| Failure::Usage(format!("--steps: {e}")))
                    })
                    .collect();
                spec.insert("steps".into(), json!(bp?));
            }
            if let Some(s) = min_step_secs {
                spec.insert("min_step_duration_ms".into(), json!(s.saturating_mul(1000)));
            }
            if let Some(n) = min_step_requests {
                spec.insert("min_step_requests".into(), json!(n));
            }
            if let Some(n) = min_samples {
                spec.insert("analysis".into(), json!({"min_samples": n}));
            }
            if blue_green {
                spec.insert("kind".into(), json!("blue_green"));
            }
            let body = json!({
                "id": id, "kind": kind, "baseline": baseline, "candidate": candidate,
                "spec": spec, "reason": reason,
            });
            rollout_start(&remote, body).await
        }
        RolloutCommand::Status { id, remote } => rollout_status(&remote, id.as_deref()).await,
        RolloutCommand::Promote(a) => rollout_act(&a, "promote").await,
        RolloutCommand::Pause(a) => rollout_act(&a, "pause").await,
        RolloutCommand::Resume(a) => rollout_act(&a, "resume").await,
        RolloutCommand::Rollback(a) => rollout_act(&a, "rollback").await,
        RolloutCommand::Abort(a) => rollout_act(&a, "abort").await,
    }
}

#[derive(Deserialize)]
struct RolloutView {
    rollout: Value,
    active: bool,
    traffic: Value,
    windows: Value,
}

impl RolloutView {
    fn field(&self, path: &str) -> String {
        self.rollout
            .pointer(path)
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .unwrap_or_default()
    }

    fn share(&self) -> String {
        let bp = self.traffic["candidate_basis_points"].as_u64().unwrap_or(0);
        format!("{}%", bp as f64 / 100.0)
    }

    fn summary(&self) -> Vec<String> {
        vec![
            self.field("/id"),
            self.field("/baseline/kind"),
            format!(
                "{} -> {}",
                self.field("/baseline/id"),
                self.field("/candidate/id")
            ),
            self.field("/state/state"),
            self.share(),
            if self.active { "yes" } else { "no" }.to_owned(),
        ]
    }

    fn print(&self) {
        println!(
            "rollout {}: {} {} -> {}: {}, candidate serves {} of users",
            self.field("/id"),
            self.field("/baseline/kind"),
            self.field("/baseline/id"),
            self.field("/candidate/id"),
            self.field("/state/state"),
            self.share()
        );
        for arm in ["baseline", "candidate"] {
            let w = &self.windows[arm];
            println!(
                "  this step, {arm:9}: {} requests, {} errors, {} guard violations, {} feedback",
                w["requests"], w["errors"], w["guard_violations"], w["feedback"]
            );
        }
        let rows: Vec<Vec<String>> = self.rollout["timeline"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|t| {
                vec![
                    when(t["at_ms"].as_i64().unwrap_or(0)),
                    t["reason"].as_str().unwrap_or_default().to_owned(),
                ]
            })
            .collect();
        print_table(&["TIME", "WHAT HAPPENED"], &rows, "no transitions yet");
    }
}

async fn rollout_start(remote: &Remote, body: Value) -> Outcome {
    let client = Client::new(remote)?;
    let answer = client.send(Method::POST, &["rollouts"], body).await?;
    if let Some(view) = client.text::<RolloutView>(answer)? {
        view.print();
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Deserialize)]
struct RolloutsView {
    rollouts: Vec<RolloutView>,
}

async fn rollout_status(remote: &Remote, id: Option<&str>) -> Outcome {
    let client = Client::new(remote)?;
    match id {
        Some(id) => {
            let answer = client.get(&["rollouts", id], &[]).await?;
            if let Some(view) = client.text::<RolloutView>(answer)? {
                view.print();
            }
        }
        None => {
            let answer = client.get(&["rollouts"], &[]).await?;
            if let Some(all) = client.text::<RolloutsView>(answer)? {
                let rows: Vec<Vec<String>> =
                    all.rollouts.iter().map(RolloutView::summary).collect();
                print_table(
                    &[
                        "ID",
                        "KIND",
                        "BASELINE -> CANDIDATE",
                        "STATE",
                        "CANDIDATE SHARE",
                        "IN FORCE",
                    ],
                    &rows,
                    "no rollouts",
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn rollout_act(action: &RolloutAction, verb: &str) -> Outcome {
    let client = Client::new(&action.remote)?;
    let answer = client
        .send(
            Method::POST,
            &["rollouts", &action.id, verb],
            json!({"reason": action.reason}),
        )
        .await?;
    if let Some(view) = client.text::<RolloutView>(answer)? {
        view.print();
    }
    Ok(ExitCode::SUCCESS)
}
