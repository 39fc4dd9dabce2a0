//! `switchyard prompt push|list|show|label`: stored prompt versions and their labels.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};
use switchyard_store::PromptSummary;

use super::client::{pretty_json, read_file, shape, Client, Failure, Outcome, Remote, EXIT_CODES};
use super::text::{print_table, table, when};

#[derive(Subcommand)]
pub enum PromptCommand {
    /// Push prompt files; a directory pushes every `*.toml` in it, in name order. A changed
    /// file becomes the prompt's next version; an unchanged one is left as it is.
    #[command(after_help = EXIT_CODES)]
    Push {
        #[arg(required = true, value_name = "FILE_OR_DIR")]
        paths: Vec<PathBuf>,
        /// Point this label (e.g. `staging`) at each pushed version too.
        #[arg(long)]
        label: Option<String>,
        /// What the change is, stored with the version.
        #[arg(long, short, default_value = "", hide_default_value = true)]
        message: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Every stored prompt, its latest version and its labels.
    #[command(after_help = EXIT_CODES)]
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// A prompt's versions and labels; with --version, that version's template.
    #[command(after_help = EXIT_CODES)]
    Show {
        name: String,
        /// One version (1, 2, ...).
        #[arg(long)]
        version: Option<u32>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Point LABEL at VERSION: requests naming `prompt:NAME@LABEL` get it from the next one on.
    #[command(after_help = EXIT_CODES)]
    Label {
        name: String,
        label: String,
        version: u32,
        /// Why, recorded in the audit log (a ticket, an incident).
        #[arg(long, default_value = "", hide_default_value = true)]
        reason: String,
        #[command(flatten)]
        remote: Remote,
    },
}

pub(super) async fn run(command: PromptCommand) -> Outcome {
    match command {
        PromptCommand::Push {
            paths,
            label,
            message,
            remote,
        } => prompt_push(&remote, &paths, label, &message).await,
        PromptCommand::List { remote } => prompt_list(&remote).await,
        PromptCommand::Show {
            name,
            version,
            remote,
        } => prompt_show(&remote, &name, version).await,
        PromptCommand::Label {
            name,
            label,
            version,
            reason,
            remote,
        } => prompt_label(&remote, &name, &label, version, &reason).await,
    }
}

/// The files `paths` name: files as given, directories as their `*.toml` files in name order.
fn prompt_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Failure> {
    let mut files = Vec::new();
    for path in paths {
        if !path.is_dir() {
            files.push(path.clone());
            continue;
        }
        let entries = std::fs::read_dir(path)
            .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", path.display())))?;
        let mut found: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "toml"))
            .collect();
        if found.is_empty() {
            return Err(Failure::Usage(format!(
                "{} holds no *.toml file",
                path.display()
            )));
        }
        found.sort();
        files.extend(found);
    }
    Ok(files)
}

#[derive(Deserialize)]
struct Pushed {
    name: String,
    version: u32,
    created: bool,
    label: Option<String>,
}

async fn prompt_push(
    remote: &Remote,
    paths: &[PathBuf],
    label: Option<String>,
    message: &str,
) -> Outcome {
    let files = prompt_files(paths)?;
    // Every file is read before the first push, so a typo in a path pushes nothing.
    let sources = files
        .iter()
        .map(|f| read_file(f))
        .collect::<Result<Vec<_>, _>>()?;
    let client = Client::new(remote)?;
    let mut answers = Vec::new();
    let mut failure = None;
    for (file, source) in files.iter().zip(sources) {
        let body = json!({"source": source, "message": message, "label": label});
        match client.send(Method::POST, &["prompts"], body).await {
            Ok(value) => {
                if !remote.json {
                    let pushed: Pushed = shape(value.clone())?;
                    let state = if pushed.created { "new" } else { "unchanged" };
                    let label = pushed
                        .label
                        .map(|l| format!(", labelled {l}"))
                        .unwrap_or_default();
                    println!(
                        "{}: version {} ({state}){label}",
                        pushed.name, pushed.version
                    );
                }
                answers.push(value);
            }
            Err(e) => {
                failure = Some(match e {
                    Failure::Refused(m) => Failure::Refused(format!("{}: {m}", file.display())),
                    other => other,
                });
                break;
            }
        }
    }
    // One JSON array, one answer per file pushed (the ones before a failure included).
    client.printed_json(&Value::Array(answers));
    failure.map_or(Ok(ExitCode::SUCCESS), Err)
}

#[derive(Deserialize)]
struct PromptsView {
    prompts: Vec<PromptSummary>,
}

fn labels_text(labels: &BTreeMap<String, u32>) -> String {
    labels
        .iter()
        .map(|(l, v)| format!("{l}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn prompt_list(remote: &Remote) -> Outcome {
    let client = Client::new(remote)?;
    let value = client.get(&["prompts"], &[]).await?;
    let Some(view) = client.text::<PromptsView>(value)? else {
        return Ok(ExitCode::SUCCESS);
    };
    let rows: Vec<Vec<String>> = view
        .prompts
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                p.latest_version.to_string(),
                labels_text(&p.labels),
            ]
        })
        .collect();
    print_table(
        &["NAME", "LATEST", "LABELS"],
        &rows,
        "no prompts stored (push one with `switchyard prompt push FILE`)",
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Deserialize)]
struct PromptView {
    name: String,
    labels: BTreeMap<String, u32>,
    versions: Vec<PromptVersionView>,
}

#[derive(Deserialize)]
struct PromptVersionView {
    version: u32,
    author: String,
    message: String,
    created_at_ms: i64,
    #[serde(default)]
    template: Option<Value>,
}

async fn prompt_show(remote: &Remote, name: &str, version: Option<u32>) -> Outcome {
    let client = Client::new(remote)?;
    if let Some(version) = version {
        let value = client
            .get(&["prompts", name, "versions", &version.to_string()], &[])
            .await?;
        if let Some(v) = client.text::<PromptVersionView>(value)? {
            println!(
                "{name} version {} by {} at {} UTC{}",
                v.version,
                v.author,
                when(v.created_at_ms),
                if v.message.is_empty() {
                    String::new()
                } else {
                    format!(": {}", v.message)
                }
            );
            println!("{}", pretty_json(&v.template.unwrap_or(Value::Null)));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let value = client.get(&["prompts", name], &[]).await?;
    let Some(view) = client.text::<PromptView>(value)? else {
        return Ok(ExitCode::SUCCESS);
    };
    println!("{}  labels: {}", view.name, labels_text(&view.labels));
    let rows: Vec<Vec<String>> = view
        .versions
        .iter()
        .map(|v| {
            let labels: Vec<&str> = view
                .labels
                .iter()
                .filter(|(_, n)| **n == v.version)
                .map(|(l, _)| l.as_str())
                .collect();
            vec![
                v.version.to_string(),
                when(v.created_at_ms),
                v.author.clone(),
                labels.join(", "),
                v.message.clone(),
            ]
        })
        .collect();
    println!(
        "{}",
        table(
            &["VERSION", "CREATED (UTC)", "AUTHOR", "LABELS", "MESSAGE"],
            &rows
        )
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Deserialize)]
struct Labelled {
    name: String,
    label: String,
    version: u32,
    previous: Option<u32>,
}

async fn prompt_label(
    remote: &Remote,
    name: &str,
    label: &str,
    version: u32,
    reason: &str,
) -> Outcome {
    let client = Client::new(remote)?;
    let value = client
        .send(
            Method::PUT,
            &["prompts", name, "labels", label],
            json!({"version": version, "reason": reason}),
        )
        .await?;
    if let Some(l) = client.text::<Labelled>(value)? {
        match l.previous {
            Some(p) if p == l.version => {
                println!("{}@{}: unchanged, version {}", l.name, l.label, l.version);
            }
            Some(p) => println!("{}@{}: version {p} -> {}", l.name, l.label, l.version),
            None => println!("{}@{}: (new) -> version {}", l.name, l.label, l.version),
        }
    }
    Ok(ExitCode::SUCCESS)
}
