//! `switchyard audit list|verify`: the hash-chained audit log.

use std::process::ExitCode;

use clap::Subcommand;
use serde::Deserialize;
use switchyard_rollout::AuditEntry;

use super::client::{shape, Client, Outcome, Remote, CHECK_FAILED, EXIT_CODES};
use super::text::{table, when};

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Audit entries in order: who changed what, when and why.
    #[command(after_help = EXIT_CODES)]
    List {
        /// Only entries after this sequence number (SEQ).
        #[arg(long, default_value_t = 0)]
        after: u64,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print each entry's diff under it.
        #[arg(long)]
        diff: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Check the hash chain of the whole log (exit 1 when it is broken).
    #[command(after_help = EXIT_CODES)]
    Verify {
        #[command(flatten)]
        remote: Remote,
    },
}

pub(super) async fn run(command: AuditCommand) -> Outcome {
    match command {
        AuditCommand::List {
            after,
            limit,
            diff,
            remote,
        } => audit_list(&remote, after, limit, diff).await,
        AuditCommand::Verify { remote } => audit_verify(&remote).await,
    }
}

#[derive(Deserialize)]
struct AuditView {
    entries: Vec<AuditEntry>,
}

async fn audit_list(remote: &Remote, after: u64, limit: usize, diff: bool) -> Outcome {
    let client = Client::new(remote)?;
    let value = client
        .get(
            &["audit"],
            &[("after", after.to_string()), ("limit", limit.to_string())],
        )
        .await?;
    let Some(view) = client.text::<AuditView>(value)? else {
        return Ok(ExitCode::SUCCESS);
    };
    if view.entries.is_empty() {
        println!("no audit entries after {after}");
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = view
        .entries
        .iter()
        .map(|e| {
            vec![
                e.seq.to_string(),
                when(i64::try_from(e.event.at_ms).unwrap_or(i64::MAX)),
                e.event.actor.clone(),
                e.event.action.clone(),
                e.event.target.clone(),
                e.event.reason.clone(),
            ]
        })
        .collect();
    let header = ["SEQ", "TIME (UTC)", "ACTOR", "ACTION", "TARGET", "REASON"];
    let text = table(&header, &rows);
    if !diff {
        println!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    // The table's lines, each entry's diff indented under its row.
    let mut lines = text.lines();
    if let Some(head) = lines.next() {
        println!("{head}");
    }
    for (line, entry) in lines.zip(&view.entries) {
        println!("{line}");
        for d in entry.event.diff.lines() {
            println!("    {d}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Deserialize)]
struct VerifyView {
    ok: bool,
    checked: u64,
    error: Option<String>,
    seq: Option<u64>,
}

async fn audit_verify(remote: &Remote) -> Outcome {
    let client = Client::new(remote)?;
    let value = client.get(&["audit", "verify"], &[]).await?;
    let printed = client.printed_json(&value);
    let view: VerifyView = shape(value)?;
    if view.ok {
        if !printed {
            println!("audit log intact: {} entries", view.checked);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !printed {
        eprintln!(
            "audit log broken at entry {}: {}",
            view.seq.map_or_else(|| "?".to_owned(), |s| s.to_string()),
            view.error.as_deref().unwrap_or("(no detail)")
        );
    }
    Ok(ExitCode::from(CHECK_FAILED))
}
