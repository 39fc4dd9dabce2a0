//! `switchyard config apply|diff|history|rollback`: config versions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;
use switchyard_store::{AppliedRow, ConfigVersionSummary};

use super::client::{read_file, shape, Client, Outcome, Remote, CHECK_FAILED, EXIT_CODES};
use super::text::{print_diff, short, table, when};

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Apply a config file to the running gateway: validated, stored as a version, swapped in
    /// atomically and audited. Prints the version, its parent and the diff.
    #[command(after_help = EXIT_CODES)]
    Apply {
        /// The whole config file (TOML).
        file: PathBuf,
        /// What the change is, stored with the version.
        #[arg(long, short, default_value = "", hide_default_value = true)]
        message: String,
        /// Why, recorded in the audit log (a ticket, an incident).
        #[arg(long, default_value = "", hide_default_value = true)]
        reason: String,
        /// Validate and store the version without applying it: the candidate of a config
        /// rollout (`switchyard rollout start config running ID`).
        #[arg(long)]
        stage: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// What applying a file would change against the running version, and every problem the
    /// file has (exit 1 when it has any). Changes nothing.
    #[command(after_help = EXIT_CODES)]
    Diff {
        /// The whole config file (TOML).
        file: PathBuf,
        #[command(flatten)]
        remote: Remote,
    },
    /// Every apply and rollback, newest first; `*` marks the running version.
    #[command(after_help = EXIT_CODES)]
    History {
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[command(flatten)]
        remote: Remote,
    },
    /// Run an earlier version again: the one applied before the running one, or --to.
    #[command(after_help = EXIT_CODES)]
    Rollback {
        /// A version id, or a unique prefix of one (as `config history` prints).
        #[arg(long)]
        to: Option<String>,
        /// Why, recorded in the audit log (a ticket, an incident).
        #[arg(long, default_value = "", hide_default_value = true)]
        reason: String,
        #[command(flatten)]
        remote: Remote,
    },
}

pub(super) async fn run(command: ConfigCommand) -> Outcome {
    match command {
        ConfigCommand::Apply {
            file,
            message,
            reason,
            stage,
            remote,
        } => config_apply(&remote, &file, &message, &reason, stage).await,
        ConfigCommand::Diff { file, remote } => config_diff(&remote, &file).await,
        ConfigCommand::History { limit, remote } => config_history(&remote, limit).await,
        ConfigCommand::Rollback { to, reason, remote } => {
            config_rollback(&remote, to, &reason).await
        }
    }
}

//
// The answers' shapes below mirror the views in `switchyard_gateway::edge::admin`, which only
// serialises them; the types the store and rollout crates own (flags, audit entries, history
// rows) are read as they are.

/// `versions::Applied` in the gateway.
#[derive(Deserialize)]
struct Applied {
    version: String,
    parent: Option<String>,
    changed: bool,
    #[serde(default)]
    staged: bool,
    diff: String,
}

async fn config_apply(
    remote: &Remote,
    file: &Path,
    message: &str,
    reason: &str,
    stage: bool,
) -> Outcome {
    let source = read_file(file)?;
    let client = Client::new(remote)?;
    let value = client
        .send(
            Method::POST,
            &["config"],
            json!({"source": source, "message": message, "reason": reason, "stage": stage}),
        )
        .await?;
    if let Some(applied) = client.text::<Applied>(value)? {
        if applied.staged {
            println!(
                "staged {} (not applied; roll it out with `switchyard rollout start config running {}`)",
                short(&applied.version),
                short(&applied.version)
            );
        } else {
            print_applied(&applied, "applied", "parent");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `applied ID (parent ID)` and the diff, or `unchanged`.
fn print_applied(applied: &Applied, verb: &str, parent_is: &str) {
    if !applied.changed {
        println!("unchanged: {} is already running", short(&applied.version));
        return;
    }
    let parent = applied.parent.as_deref().map_or("none", short);
    println!("{verb} {} ({parent_is} {parent})", short(&applied.version));
    print_diff(&applied.diff);
}

#[derive(Deserialize)]
struct DiffView {
    running: String,
    version: String,
    diff: String,
    problems: Vec<String>,
}

async fn config_diff(remote: &Remote, file: &Path) -> Outcome {
    let source = read_file(file)?;
    let client = Client::new(remote)?;
    let value = client
        .send(Method::POST, &["config", "diff"], json!({"source": source}))
        .await?;
    let printed = client.printed_json(&value);
    let view: DiffView = shape(value)?;
    if !view.problems.is_empty() {
        if !printed {
            eprintln!(
                "{} has {} problem{}:",
                file.display(),
                view.problems.len(),
                if view.problems.len() == 1 { "" } else { "s" }
            );
            for p in &view.problems {
                eprintln!("  {p}");
            }
        }
        return Ok(ExitCode::from(CHECK_FAILED));
    }
    if !printed {
        if view.diff.is_empty() {
            println!("no changes: {} is running", short(&view.running));
        } else {
            println!("{} -> {}", short(&view.running), short(&view.version));
            print_diff(&view.diff);
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Deserialize)]
struct HistoryView {
    running: String,
    versions: Vec<ConfigVersionSummary>,
    applied: Vec<AppliedRow>,
}

async fn config_history(remote: &Remote, limit: usize) -> Outcome {
    let client = Client::new(remote)?;
    let value = client
        .get(&["config", "history"], &[("limit", limit.to_string())])
        .await?;
    let Some(history) = client.text::<HistoryView>(value)? else {
        return Ok(ExitCode::SUCCESS);
    };
    let messages: BTreeMap<&str, &str> = history
        .versions
        .iter()
        .map(|v| (v.id.as_str(), v.message.as_str()))
        .collect();
    // The newest apply of the running version is the one in effect.
    let current = history
        .applied
        .iter()
        .position(|row| row.version_id == history.running);
    let rows: Vec<Vec<String>> = history
        .applied
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let message = messages.get(row.version_id.as_str()).copied().unwrap_or("");
            let note: Vec<&str> = [message, row.reason.as_str()]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect();
            vec![
                if Some(i) == current { "*" } else { "" }.to_owned(),
                short(&row.version_id).to_owned(),
                when(row.at_ms),
                row.actor.clone(),
                note.join("; "),
            ]
        })
        .collect();
    println!(
        "{}",
        table(
            &["", "VERSION", "APPLIED (UTC)", "ACTOR", "MESSAGE; REASON"],
            &rows
        )
    );
    Ok(ExitCode::SUCCESS)
}

async fn config_rollback(remote: &Remote, to: Option<String>, reason: &str) -> Outcome {
    let client = Client::new(remote)?;
    let value = client
        .send(
            Method::POST,
            &["config", "rollback"],
            json!({"to": to, "reason": reason}),
        )
        .await?;
    if let Some(applied) = client.text::<Applied>(value)? {
        print_applied(&applied, "rolled back to", "was");
    }
    Ok(ExitCode::SUCCESS)
}
