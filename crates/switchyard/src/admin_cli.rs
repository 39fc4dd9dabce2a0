//! The admin CLI: `switchyard config apply|diff|history|rollback`, `prompt push|list|show|label`,
//! `flag list|set|delete`, `rollout start|status|promote|pause|resume|rollback|abort` and
//! `audit list|verify`. Each is one call (one per file for `prompt
//! push`) to the gateway's admin API under `/admin/v1/`, printed for people or, with `--json`,
//! as the API's own JSON. The gateway validates, stores and audits; this module only sends,
//! formats, and turns every outcome into an exit code scripts can trust ([`EXIT_CODES`]). It
//! must never print the admin key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use switchyard_rollout::{AuditEntry, Flag, FlagKind, WeightedVariant};
use switchyard_store::{AppliedRow, ConfigVersionSummary, PromptSummary};

/// For the `--help` of every command group that talks to the gateway.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the gateway refused (invalid config, unknown version, wrong admin key, ...) or a check failed (a diff with problems, a broken audit log)
  2  usage error (bad arguments, a file that cannot be read)
  3  the gateway could not be reached, or failed (connection error, timeout, 5xx)";

/// Where the gateway is and who is asking; flattened into every remote command.
#[derive(Args)]
pub struct Remote {
    /// The gateway's base URL.
    #[arg(long, env = "SWITCHYARD_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The admin key (`[admin]` in the gateway's config). Never printed.
    #[arg(long, env = "SWITCHYARD_ADMIN_KEY", hide_env_values = true)]
    admin_key: String,
    /// Who is acting, recorded in the audit log [default: $USER, else `cli`].
    #[arg(long, env = "SWITCHYARD_ACTOR")]
    actor: Option<String>,
    /// Print the API's JSON response (pretty) instead of text.
    #[arg(long)]
    json: bool,
}

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

#[derive(Subcommand)]
pub enum FlagCommand {
    /// Every flag set, with its value.
    #[command(after_help = EXIT_CODES)]
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Set a flag; every replica reads it on its next request.
    #[command(after_help = EXIT_CODES)]
    Set {
        /// `cache`, `cache.semantic`, `guards.policy` or `routes.NAME.policy`.
        key: String,
        #[command(flatten)]
        value: FlagValueArgs,
        /// Store the flag switched off for everyone, whatever its value says.
        #[arg(long)]
        disabled: bool,
        /// Why, recorded in the audit log (a ticket, an incident).
        #[arg(long, default_value = "", hide_default_value = true)]
        reason: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Delete a flag: the stages behave as if it was never set.
    #[command(after_help = EXIT_CODES)]
    Delete {
        key: String,
        #[command(flatten)]
        remote: Remote,
    },
}

/// Exactly one kind of value for `flag set`.
#[derive(Args)]
#[group(required = true, multiple = false)]
pub struct FlagValueArgs {
    /// On for everyone.
    #[arg(long)]
    on: bool,
    /// Off for everyone.
    #[arg(long)]
    off: bool,
    /// On for this percentage of users, sticky per user (decimals allowed: 2.5).
    #[arg(long, value_name = "P", value_parser = parse_percent)]
    percent: Option<u16>,
    /// A variant and its weight; repeat for each variant.
    #[arg(long, value_name = "NAME=WEIGHT", value_parser = parse_variant)]
    variant: Vec<WeightedVariant>,
}

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

#[derive(Subcommand)]
pub enum SloCommand {
    /// Each SLO's good share, error budget left, burn rates and alert states, and the recent
    /// alert changes (exit 1 when an alert is firing).
    #[command(after_help = EXIT_CODES)]
    Status {
        #[command(flatten)]
        remote: Remote,
    },
}

/// One remote command, from any group.
pub enum Group {
    Slo(SloCommand),
    Config(ConfigCommand),
    Prompt(PromptCommand),
    Flag(FlagCommand),
    Rollout(RolloutCommand),
    Audit(AuditCommand),
}

/// Runs one remote command; prints the error, if any, on stderr and returns the exit code.
pub fn run(command: Group) -> ExitCode {
    block_on(async {
        match dispatch(command).await {
            Ok(code) => code,
            Err(failure) => {
                eprintln!("error: {}", failure.message());
                failure.code()
            }
        }
    })
}

/// Runs a command's work on a single-threaded runtime (a client's work is waiting on the
/// network) and returns its exit code.
pub fn block_on(work: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(work),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Why a command did not succeed, by exit code.
#[derive(Debug)]
enum Failure {
    /// 1: the gateway refused (a 4xx).
    Refused(String),
    /// 2: bad input on this side.
    Usage(String),
    /// 3: the gateway could not be reached, or failed.
    Unavailable(String),
}

impl Failure {
    fn message(&self) -> &str {
        match self {
            Failure::Refused(m) | Failure::Usage(m) | Failure::Unavailable(m) => m,
        }
    }

    fn code(&self) -> ExitCode {
        ExitCode::from(match self {
            Failure::Refused(_) => 1,
            Failure::Usage(_) => 2,
            Failure::Unavailable(_) => 3,
        })
    }
}

/// A check that ran and failed (its report already printed).
const CHECK_FAILED: u8 = 1;

type Outcome = Result<ExitCode, Failure>;

async fn dispatch(command: Group) -> Outcome {
    match command {
        Group::Config(c) => match c {
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
        },
        Group::Prompt(c) => match c {
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
        },
        Group::Flag(c) => match c {
            FlagCommand::List { remote } => flag_list(&remote).await,
            FlagCommand::Set {
                key,
                value,
                disabled,
                reason,
                remote,
            } => flag_set(&remote, &key, value, disabled, &reason).await,
            FlagCommand::Delete { key, remote } => flag_delete(&remote, &key).await,
        },
        Group::Rollout(c) => match c {
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
        },
        Group::Slo(SloCommand::Status { remote }) => slo_status(&remote).await,
        Group::Audit(c) => match c {
            AuditCommand::List {
                after,
                limit,
                diff,
                remote,
            } => audit_list(&remote, after, limit, diff).await,
            AuditCommand::Verify { remote } => audit_verify(&remote).await,
        },
    }
}

// ---- The HTTP side ----

/// A connection to one gateway's admin API.
struct Client<'a> {
    http: reqwest::Client,
    base: Url,
    remote: &'a Remote,
    actor: String,
}

impl<'a> Client<'a> {
    fn new(remote: &'a Remote) -> Result<Self, Failure> {
        let base = Url::parse(&remote.url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                Failure::Usage(format!(
                    "--url `{}` is not an http:// or https:// URL",
                    remote.url
                ))
            })?;
        let http = reqwest::Client::builder()
            // The admin key goes to --url and nowhere else.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(std::time::Duration::from_secs(10))
            // Applying a config builds its pipeline (models, classifiers) before answering.
            .timeout(std::time::Duration::from_secs(120))
            .build()
            .map_err(|e| Failure::Usage(format!("cannot build the HTTP client: {e}")))?;
        let actor = remote
            .actor
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .filter(|a| !a.trim().is_empty())
            .unwrap_or_else(|| "cli".to_owned());
        Ok(Client {
            http,
            base,
            remote,
            actor,
        })
    }

    /// `/admin/v1/` then `segments`, each percent-encoded, then the query.
    fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(["admin", "v1"]).extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        url
    }

    /// Sends one request; the response body as JSON when the status is a success.
    async fn call(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<Value>,
    ) -> Result<Value, Failure> {
        let url = self.url(segments, query);
        let mut request = self
            .http
            .request(method, url.clone())
            .bearer_auth(&self.remote.admin_key)
            .header("x-switchyard-actor", &self.actor);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        if status.is_redirection() {
            let to = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("nowhere");
            return Err(Failure::Refused(format!(
                "{url} answered {status}, a redirect to `{to}`, which is not followed (the admin \
                 key goes to --url only): give --url the address that answers"
            )));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(&e))?;
        if !status.is_success() {
            return Err(api_error(status, &bytes, &url));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            Failure::Unavailable(format!(
                "the answer from {url} is not JSON ({e}); is this a Switchyard gateway?"
            ))
        })
    }

    async fn get(&self, segments: &[&str], query: &[(&str, String)]) -> Result<Value, Failure> {
        self.call(Method::GET, segments, query, None).await
    }

    async fn send(&self, method: Method, segments: &[&str], body: Value) -> Result<Value, Failure> {
        self.call(method, segments, &[], Some(body)).await
    }

    fn transport_error(&self, e: &reqwest::Error) -> Failure {
        if e.is_builder() {
            // Not `e` itself: it could quote the key.
            return Failure::Usage(
                "cannot build the request: --admin-key and --actor must be printable ASCII"
                    .to_owned(),
            );
        }
        if e.is_timeout() {
            return Failure::Unavailable(format!(
                "the gateway at {} did not answer in time",
                self.base
            ));
        }
        // reqwest's own message names only the URL; the cause is at the bottom of the chain.
        let mut cause: &dyn std::error::Error = e;
        while let Some(next) = cause.source() {
            cause = next;
        }
        Failure::Unavailable(format!(
            "cannot reach the gateway at {}: {cause}",
            self.base
        ))
    }

    /// The answer in the shape the text output needs, or `None` once `--json` has printed
    /// it as is.
    fn text<T: DeserializeOwned>(&self, value: Value) -> Result<Option<T>, Failure> {
        if self.printed_json(&value) {
            Ok(None)
        } else {
            shape(value).map(Some)
        }
    }

    /// Prints `value` as pretty JSON when `--json` was given; says whether it did.
    fn printed_json(&self, value: &Value) -> bool {
        if self.remote.json {
            println!("{}", pretty_json(value));
        }
        self.remote.json
    }
}

fn pretty_json(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// The API's OpenAI-shaped error as `code: message`, with the exit code its status calls for.
fn api_error(status: StatusCode, body: &[u8], url: &Url) -> Failure {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed
        .as_ref()
        .map(|v| &v["error"])
        .filter(|e| e.is_object());
    let text = match error {
        Some(e) => {
            let message = e["message"].as_str().unwrap_or("(no message)");
            match e["code"].as_str().or_else(|| e["type"].as_str()) {
                Some(code) => format!("{code}: {message}"),
                None => message.to_owned(),
            }
        }
        None => {
            format!("HTTP {status} from {url}; is this a Switchyard gateway with the admin API?")
        }
    };
    if status.is_server_error() {
        Failure::Unavailable(text)
    } else if status == StatusCode::UNAUTHORIZED {
        Failure::Refused(format!(
            "{text} (check --admin-key or SWITCHYARD_ADMIN_KEY)"
        ))
    } else {
        Failure::Refused(text)
    }
}

/// Reads a response into the shape the text output needs.
fn shape<T: DeserializeOwned>(value: Value) -> Result<T, Failure> {
    serde_json::from_value(value).map_err(|e| {
        Failure::Unavailable(format!(
            "unexpected answer from the gateway ({e}); is it the same version as this CLI?"
        ))
    })
}

fn read_file(path: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(path)
        .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", path.display())))
}

// ---- Text output ----

/// The first 12 characters of a version id, as the gateway's logs and records print it.
fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Milliseconds since the epoch as `2026-11-27 06:38:21` (UTC).
fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
    )
}

/// Columns padded to their widest cell; the last column is not padded.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let cells: Vec<&str> = cells.collect();
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.trim_end().to_owned()
    };
    let mut out = line(&mut header.iter().copied());
    for row in rows {
        out.push('\n');
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

/// The table, or `empty` when it has no rows.
fn print_table(header: &[&str], rows: &[Vec<String>], empty: &str) {
    if rows.is_empty() {
        println!("{empty}");
    } else {
        println!("{}", table(header, rows));
    }
}

/// A diff with a blank line before it, or nothing when it is empty.
fn print_diff(diff: &str) {
    if !diff.is_empty() {
        println!();
        print!("{diff}");
        if !diff.ends_with('\n') {
            println!();
        }
    }
}

// ---- config ----
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

// ---- prompt ----

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

// ---- flag ----

/// `2.5` (percent) as 250 basis points.
fn parse_percent(text: &str) -> Result<u16, String> {
    let percent: f64 = text
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    if !(0.0..=100.0).contains(&percent) {
        return Err(format!("{percent} is not between 0 and 100"));
    }
    let basis_points = (percent * 100.0).round();
    if (percent * 100.0 - basis_points).abs() > 1e-6 {
        return Err(format!(
            "{percent} is finer than the 0.01% a flag can express"
        ));
    }
    // In 0..=10_000 by the checks above.
    Ok(basis_points as u16)
}

fn parse_variant(text: &str) -> Result<WeightedVariant, String> {
    let (name, weight) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not NAME=WEIGHT"))?;
    let weight = weight
        .trim()
        .parse()
        .map_err(|_| format!("the weight of `{text}` is not a whole number"))?;
    Ok(WeightedVariant {
        name: name.trim().to_owned(),
        weight,
    })
}

impl FlagValueArgs {
    fn kind(self) -> FlagKind {
        if let Some(basis_points) = self.percent {
            FlagKind::Percentage { basis_points }
        } else if !self.variant.is_empty() {
            FlagKind::Variant {
                variants: self.variant,
            }
        } else {
            // clap's group admits exactly one of the four.
            FlagKind::Boolean { on: self.on }
        }
    }
}

/// `on`, `off`, `2.5%`, `a=90, b=10`.
fn kind_summary(kind: &FlagKind) -> (&'static str, String) {
    match kind {
        FlagKind::Boolean { on } => ("boolean", if *on { "on" } else { "off" }.to_owned()),
        FlagKind::Percentage { basis_points } => (
            "percentage",
            format!("{}%", f64::from(*basis_points) / 100.0),
        ),
        FlagKind::Variant { variants } => (
            "variant",
            variants
                .iter()
                .map(|v| format!("{}={}", v.name, v.weight))
                .collect::<Vec<_>>()
                .join(", "),
        ),
    }
}

fn flag_summary(flag: &Flag) -> String {
    let (kind, value) = kind_summary(&flag.kind);
    let disabled = if flag.enabled { "" } else { ", disabled" };
    format!("{kind} {value}{disabled}")
}

#[derive(Deserialize)]
struct FlagsView {
    flags: Vec<Flag>,
}

async fn flag_list(remote: &Remote) -> Outcome {
    let client = Client::new(remote)?;
    let value = client.get(&["flags"], &[]).await?;
    let Some(view) = client.text::<FlagsView>(value)? else {
        return Ok(ExitCode::SUCCESS);
    };
    let rows: Vec<Vec<String>> = view
        .flags
        .iter()
        .map(|f| {
            let (kind, value) = kind_summary(&f.kind);
            vec![
                f.key.clone(),
                kind.to_owned(),
                value,
                if f.enabled { "yes" } else { "no" }.to_owned(),
            ]
        })
        .collect();
    print_table(&["KEY", "KIND", "VALUE", "ENABLED"], &rows, "no flags set");
    Ok(ExitCode::SUCCESS)
}

#[derive(Deserialize)]
struct FlagChange {
    flag: Option<Flag>,
    previous: Option<Flag>,
}

fn was(previous: Option<&Flag>) -> String {
    previous.map_or_else(|| "not set".to_owned(), flag_summary)
}

async fn flag_set(
    remote: &Remote,
    key: &str,
    value: FlagValueArgs,
    disabled: bool,
    reason: &str,
) -> Outcome {
    let client = Client::new(remote)?;
    let body = json!({"kind": value.kind(), "enabled": !disabled, "reason": reason});
    let answer = client.send(Method::PUT, &["flags", key], body).await?;
    if let Some(change) = client.text::<FlagChange>(answer)? {
        let now = change
            .flag
            .as_ref()
            .map_or_else(|| "not set".to_owned(), flag_summary);
        println!("flag {key}: {now} (was: {})", was(change.previous.as_ref()));
    }
    Ok(ExitCode::SUCCESS)
}

async fn flag_delete(remote: &Remote, key: &str) -> Outcome {
    let client = Client::new(remote)?;
    let answer = client
        .call(Method::DELETE, &["flags", key], &[], None)
        .await?;
    if let Some(change) = client.text::<FlagChange>(answer)? {
        println!(
            "flag {key} deleted (was: {})",
            was(change.previous.as_ref())
        );
    }
    Ok(ExitCode::SUCCESS)
}

// ---- rollouts ----

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

// ---- SLOs ----

#[derive(Deserialize)]
struct SlosView {
    slos: Vec<Value>,
    alerts: Vec<Value>,
}

fn percent_of(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| "-".to_owned(), |x| format!("{:.3}%", x * 100.0))
}

async fn slo_status(remote: &Remote) -> Outcome {
    let client = Client::new(remote)?;
    let answer = client.get(&["slos"], &[]).await?;
    let firing = answer["slos"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .flat_map(|s| s["rules"].as_array().cloned().unwrap_or_default())
        .any(|r| r["state"] == "firing");
    if let Some(view) = client.text::<SlosView>(answer)? {
        let rows: Vec<Vec<String>> = view
            .slos
            .iter()
            .map(|s| {
                let burns: Vec<String> = s["rules"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(|r| {
                        format!(
                            "{} {:.1}x/{:.1}x {}",
                            r["rule"].as_str().unwrap_or_default(),
                            r["long_burn"].as_f64().unwrap_or(0.0),
                            r["short_burn"].as_f64().unwrap_or(0.0),
                            r["state"].as_str().unwrap_or_default()
                        )
                    })
                    .collect();
                vec![
                    s["name"].as_str().unwrap_or_default().to_owned(),
                    s["objective"]["kind"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    percent_of(&s["target"]),
                    percent_of(&s["sli"]),
                    s["budget"]["total"].to_string(),
                    percent_of(&s["budget"]["remaining"]),
                    burns.join(", "),
                ]
            })
            .collect();
        print_table(
            &[
                "SLO",
                "OBJECTIVE",
                "TARGET",
                "GOOD",
                "REQUESTS",
                "BUDGET LEFT",
                "BURN (LONG/SHORT) AND STATE",
            ],
            &rows,
            "no SLOs are declared ([[slos]] in the config)",
        );
        for a in view.alerts.iter().take(10) {
            println!(
                "alert {} {} {} -> {} at {}",
                a["slo"].as_str().unwrap_or_default(),
                a["rule"].as_str().unwrap_or_default(),
                a["from"].as_str().unwrap_or_default(),
                a["to"].as_str().unwrap_or_default(),
                when(a["at_secs"].as_i64().unwrap_or(0) * 1000)
            );
        }
    }
    Ok(if firing {
        ExitCode::from(CHECK_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}

// ---- audit ----

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_become_basis_points() {
        assert_eq!(parse_percent("2.5"), Ok(250));
        assert_eq!(parse_percent("100"), Ok(10_000));
        assert_eq!(parse_percent("0"), Ok(0));
        assert_eq!(parse_percent("12.34%"), Ok(1234));
        assert!(parse_percent("100.5").is_err());
        assert!(parse_percent("-1").is_err());
        assert!(parse_percent("0.001").is_err());
        assert!(parse_percent("half").is_err());
    }

    #[test]
    fn variants_are_name_equals_weight() {
        let v = parse_variant("blue=90").unwrap();
        assert_eq!((v.name.as_str(), v.weight), ("blue", 90));
        assert!(parse_variant("blue").is_err());
        assert!(parse_variant("blue=-1").is_err());
    }

    #[test]
    fn tables_align_all_but_the_last_column() {
        let rows = vec![
            vec!["a".to_owned(), "long value".to_owned(), "x".to_owned()],
            vec!["bbb".to_owned(), "v".to_owned(), String::new()],
        ];
        assert_eq!(
            table(&["K", "VALUE", "NOTE"], &rows),
            "K    VALUE       NOTE\na    long value  x\nbbb  v"
        );
    }

    #[test]
    fn errors_map_to_exit_codes() {
        let url = Url::parse("http://127.0.0.1:8080/admin/v1/config").unwrap();
        let body = br#"{"error": {"message": "config version 3f2a: bad.toml:4: oops", "type": "invalid_request_error", "param": null, "code": "invalid_config"}}"#;
        let refused = api_error(StatusCode::BAD_REQUEST, body, &url);
        assert!(
            matches!(&refused, Failure::Refused(m) if m == "invalid_config: config version 3f2a: bad.toml:4: oops")
        );
        assert!(matches!(
            api_error(StatusCode::SERVICE_UNAVAILABLE, body, &url),
            Failure::Unavailable(_)
        ));
        assert!(matches!(
            api_error(StatusCode::NOT_FOUND, b"", &url),
            Failure::Refused(m) if m.contains("HTTP 404")
        ));
    }

    #[test]
    fn urls_keep_a_base_path_and_encode_segments() {
        let remote = Remote {
            url: "http://gw.internal/switchyard/".to_owned(),
            admin_key: "k".to_owned(),
            actor: None,
            json: false,
        };
        let client = Client::new(&remote).unwrap();
        assert_eq!(
            client
                .url(&["flags", "a b/c"], &[("limit", "5".to_owned())])
                .as_str(),
            "http://gw.internal/switchyard/admin/v1/flags/a%20b%2Fc?limit=5"
        );
    }

    /// Serves `app` on a free loopback port until the test's runtime ends; its base URL.
    async fn serve(app: axum::Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        #[allow(clippy::disallowed_methods)] // test server: ends with the test's runtime
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    #[tokio::test]
    async fn a_redirect_is_refused_and_the_admin_key_goes_nowhere_else() {
        let reached = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = reached.clone();
        let elsewhere = serve(axum::Router::new().fallback(move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async { "{}" }
        }))
        .await;
        let to = format!("{elsewhere}/admin/v1/flags");
        let gateway = serve(axum::Router::new().fallback(move || {
            let to = to.clone();
            async move {
                (
                    StatusCode::TEMPORARY_REDIRECT,
                    [(reqwest::header::LOCATION, to)],
                )
            }
        }))
        .await;
        let remote = Remote {
            url: gateway,
            admin_key: "sk-admin".to_owned(),
            actor: None,
            json: false,
        };
        let err = Client::new(&remote)
            .unwrap()
            .get(&["flags"], &[])
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Failure::Refused(m) if m.contains("307") && m.contains("not followed")),
            "{err:?}"
        );
        assert_eq!(reached.load(std::sync::atomic::Ordering::SeqCst), 0);
    }
}
