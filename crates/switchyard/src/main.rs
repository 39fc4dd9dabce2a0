//! The `switchyard` binary: a thin CLI over the gateway crates. Commands parse arguments,
//! load config, and hand over; no gateway logic lives here.

mod admin_cli;
mod loadgen;
mod router_report;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use switchyard_control::{
    Config, LogFormat, ProviderSpec, RedisFailure, RedisSpec, SecretUrl, DEMO_ADMIN_KEY, DEMO_KEY,
};

/// mimalloc: the gateway allocates many small, short-lived buffers per request (JSON, headers,
/// records), where glibc's allocator showed up as a fifth of the CPU profile.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The embedded demo's config, the same file users start from.
const DEMO_CONFIG: &str = include_str!("../../../examples/demo.toml");
const DEMO_ORIGIN: &str = "examples/demo.toml (embedded)";

/// Serving is the default command, so its options also stand alone (`switchyard --listen
/// ADDR`); before another command they would be ignored, so clap refuses them there.
#[derive(Parser)]
#[command(
    name = "switchyard",
    version,
    about = "An OpenAI-compatible LLM gateway and control plane",
    long_about = "An OpenAI-compatible LLM gateway and control plane.\n\n\
        Without a command it serves (as `switchyard serve`), taking --config and --listen.",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(flatten)]
    serve: ServeArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

/// `switchyard serve`'s options, also accepted without a command.
#[derive(clap::Args)]
struct ServeArgs {
    /// Config file (TOML); see docs/configuration.md. Without it: the embedded demo.
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on, overriding `server.listen`.
    #[arg(long, short, value_name = "ADDR")]
    listen: Option<SocketAddr>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway. Without --config it runs the embedded demo (simulated models, SQLite
    /// in ./switchyard-data, published demo keys, loopback only).
    Serve(ServeArgs),
    /// Run the simulator alone as an OpenAI-compatible server (benchmarks and other gateways
    /// can point at it).
    Sim {
        #[arg(long, short, default_value = "127.0.0.1:9100")]
        listen: SocketAddr,
        /// Config file whose sim provider to serve; default: the demo's simulated models.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Which sim provider of the config to serve, when it has several.
        #[arg(long)]
        provider: Option<String>,
    },
    /// Check config files; apply, diff, list and roll back the gateway's config versions.
    #[command(after_help = admin_cli::EXIT_CODES)]
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Push prompt files, list and show their versions, move labels (the admin API).
    #[command(after_help = admin_cli::EXIT_CODES)]
    Prompt {
        #[command(subcommand)]
        command: admin_cli::PromptCommand,
    },
    /// List, set and delete feature flags (the admin API).
    #[command(after_help = admin_cli::EXIT_CODES)]
    Flag {
        #[command(subcommand)]
        command: admin_cli::FlagCommand,
    },
    /// Start canary and blue-green rollouts, watch them, promote, pause or roll them back
    /// (the admin API).
    #[command(after_help = admin_cli::EXIT_CODES)]
    Rollout {
        #[command(subcommand)]
        command: admin_cli::RolloutCommand,
    },
    /// SLOs: status from a running gateway, or Prometheus rules from a config file.
    #[command(after_help = admin_cli::EXIT_CODES)]
    Slo {
        #[command(subcommand)]
        command: SloCommand,
    },
    /// Read and verify the audit log (the admin API).
    #[command(after_help = admin_cli::EXIT_CODES)]
    Audit {
        #[command(subcommand)]
        command: admin_cli::AuditCommand,
    },
    /// Send a realistic mix of requests (simple, hard, PII, injections, repeated and
    /// paraphrased questions) to a gateway for a while, then print what came of them.
    #[command(after_help = loadgen::EXIT_CODES)]
    Loadgen(loadgen::Args),
    /// Make and hash virtual keys (configs store only the SHA-256 of a key).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Build the in-process embedding models (scripts/fetch-models.sh calls this).
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
    /// Ask a route what it would do with a prompt.
    Route {
        #[command(subcommand)]
        command: RouteCommand,
    },
    /// What the router decided and what came of it.
    Router {
        #[command(subcommand)]
        command: RouterCommand,
    },
}

#[derive(Subcommand)]
enum SloCommand {
    /// Print Prometheus recording and alerting rules equivalent to the config's `[[slos]]`
    /// (the same multi-window burn rates), for teams that alert from Prometheus.
    Rules {
        /// Config file; default: the embedded demo.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    #[command(flatten)]
    Remote(admin_cli::SloCommand),
}

/// `switchyard slo rules`: the YAML on stdout, what could not be expressed on stderr.
fn slo_rules(config: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    let config = load_config(config)?;
    let generated = switchyard_slo::generate_rules(
        &config.slos,
        &switchyard_slo::default_rules(),
        &switchyard_slo::MetricNames::default(),
    );
    print!("{}", generated.yaml);
    for s in &generated.skipped {
        eprintln!(
            "note: SLO `{}` has no Prometheus rules: {}",
            s.slo, s.reason
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand)]
enum RouterCommand {
    /// Decisions against outcomes (feedback) per chosen model, cost against the route's most
    /// expensive candidate (saved by routing and by the cache), and the bars' recalibrations.
    Report {
        /// Config file (for the routes and the data folder); default: the embedded demo.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// One route; default: every route.
        #[arg(long)]
        route: Option<String>,
        /// How far back to read.
        #[arg(long, default_value_t = 24)]
        since_hours: u64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum RouteCommand {
    /// Print the routing decision for a prompt: policy, bar, each candidate's predicted
    /// quality, the rule that matched, the chosen model, and how long deciding took.
    Explain {
        /// The prompt (the last user message of a request).
        prompt: String,
        /// Config file; default: the embedded demo.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The route alias.
        #[arg(long, default_value = "auto")]
        route: String,
        /// cheap, balanced, best or a number in [0, 1]; default: the route's.
        #[arg(long)]
        policy: Option<String>,
        /// Key id, for key rules.
        #[arg(long)]
        key: Option<String>,
        /// Print the decision as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Distil a static (Model2Vec-style) embedding model from all-MiniLM-L6-v2: embeds every
    /// vocabulary token, PCA to 256 dimensions, SIF weighting. A few minutes on two cores.
    Distill {
        /// Folder with the MiniLM files (model.safetensors, tokenizer.json, config.json).
        #[arg(long, default_value = switchyard_embed::MINILM_DIR)]
        from: PathBuf,
        /// Folder to write the static model to (created).
        #[arg(long, default_value = switchyard_embed::STATIC_DIR)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate a config file; prints every error with its line and field; exit code 1 on error.
    Check { file: PathBuf },
    #[command(flatten)]
    Remote(admin_cli::ConfigCommand),
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Print the SHA-256 of a key, for `secret_sha256`.
    Hash { key: String },
    /// Generate a new random key and print it with its hash.
    New {
        /// Prefix of the generated key.
        #[arg(long, default_value = "sk-sy-")]
        prefix: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let command = cli.command.unwrap_or(Command::Serve(cli.serve));
    match command {
        Command::Serve(ServeArgs { config, listen }) => serve(config, listen),
        Command::Sim {
            listen,
            config,
            provider,
        } => sim(listen, config, provider),
        Command::Config {
            command: ConfigCommand::Check { file },
        } => Ok(config_check(&file)),
        Command::Config {
            command: ConfigCommand::Remote(c),
        } => Ok(admin_cli::run(admin_cli::Group::Config(c))),
        Command::Prompt { command } => Ok(admin_cli::run(admin_cli::Group::Prompt(command))),
        Command::Flag { command } => Ok(admin_cli::run(admin_cli::Group::Flag(command))),
        Command::Audit { command } => Ok(admin_cli::run(admin_cli::Group::Audit(command))),
        Command::Rollout { command } => Ok(admin_cli::run(admin_cli::Group::Rollout(command))),
        Command::Loadgen(args) => Ok(loadgen::run(args)),
        Command::Slo {
            command: SloCommand::Rules { config },
        } => slo_rules(config.as_deref()),
        Command::Slo {
            command: SloCommand::Remote(c),
        } => Ok(admin_cli::run(admin_cli::Group::Slo(c))),
        Command::Keys { command } => {
            match command {
                KeysCommand::Hash { key } => {
                    println!("{}", hex::encode(switchyard_control::hash_key(&key)))
                }
                KeysCommand::New { prefix } => {
                    let bytes: [u8; 24] = rand::random();
                    let key = format!("{prefix}{}", hex::encode(bytes));
                    println!("key:           {key}");
                    println!(
                        "secret_sha256: {}",
                        hex::encode(switchyard_control::hash_key(&key))
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Models {
            command: ModelsCommand::Distill { from, out },
        } => models_distill(&from, &out),
        Command::Router {
            command:
                RouterCommand::Report {
                    config,
                    route,
                    since_hours,
                    json,
                },
        } => {
            let config = load_config(config.as_deref())?;
            router_report::run(&config, route.as_deref(), since_hours, json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Route {
            command:
                RouteCommand::Explain {
                    prompt,
                    config,
                    route,
                    policy,
                    key,
                    json,
                },
        } => route_explain(
            config.as_deref(),
            &route,
            &prompt,
            policy.as_deref(),
            key.as_deref(),
            json,
        ),
    }
}

fn route_explain(
    config_path: Option<&std::path::Path>,
    route_name: &str,
    prompt: &str,
    policy: Option<&str>,
    key: Option<&str>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let mut config = load_config(config_path)?;
    if config_path.is_none() {
        demo_without_models(&mut config);
    }
    let spec = config.routes.get(route_name).with_context(|| {
        let names: Vec<&String> = config.routes.keys().collect();
        format!("no route `{route_name}` in the config (routes: {names:?})")
    })?;
    let route = switchyard_gateway::data_plane::routing::RouteRuntime::build(
        spec,
        &config.models,
        &mut switchyard_gateway::data_plane::cache::StaticModels::default(),
    )?;
    let policy = match policy {
        Some(p) => p.parse::<switchyard_control::Policy>()?,
        None => spec.default_policy,
    };
    let request: switchyard_api::ChatCompletionRequest = serde_json::from_value(
        serde_json::json!({"model": route_name, "messages": [{"role": "user", "content": prompt}]}),
    )?;
    let started = std::time::Instant::now();
    let decision = route.decide(&request, key.unwrap_or(""), policy);
    let took = started.elapsed();
    if json {
        println!("{}", serde_json::to_string_pretty(&decision)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("route:    {route_name}");
    println!("policy:   {}", decision.policy);
    let bar = if decision.bar.is_finite() {
        format!("{:.3}", decision.bar)
    } else {
        "above every score (always the last candidate)".to_owned()
    };
    println!("bar:      {bar}");
    match &decision.rule {
        Some(rule) => println!("rule:     `{rule}` matched; the classifier did not run"),
        None => {
            println!("candidates (cheapest first; P = predicted chance of answering as well as the strongest):");
            for (c, s) in spec.candidates.iter().zip(&decision.scores) {
                let score = s.score.map_or_else(
                    || "-    (no head: the fallback)".to_owned(),
                    |v| {
                        format!(
                            "{v:.3}{}",
                            if v >= decision.bar {
                                "  clears the bar"
                            } else {
                                ""
                            }
                        )
                    },
                );
                println!("  {:<16} tier {}  P = {score}", c.model, c.tier);
            }
        }
    }
    for e in &decision.evidence {
        let model = spec
            .candidates
            .iter()
            .find(|c| c.head.as_deref().unwrap_or(&c.model) == e.model)
            .map_or(e.model.as_str(), |c| c.model.as_str());
        println!("why {model} scores {:.3}:", e.probability);
        for line in why(e, model) {
            println!("  - {line}");
        }
    }
    println!("chosen:   {}", decision.model);
    println!("decided in {:.0} µs", took.as_secs_f64() * 1e6);
    Ok(ExitCode::SUCCESS)
}

/// The neighbour estimate's parts in words: what the closest labelled prompts are, how the
/// model did on them, and what the prompt's length did.
fn why(e: &switchyard_control::Evidence, model: &str) -> Vec<String> {
    let moved = |term: f32| match term {
        t if t > 0.05 => format!("raises the estimate ({t:+.2})"),
        t if t < -0.05 => format!("lowers the estimate ({t:+.2})"),
        t => format!("leaves it about where it was ({t:+.2})"),
    };
    let kinds: Vec<String> = e
        .kinds
        .iter()
        .take(2)
        .map(|(kind, share)| format!("{kind} {:.0}%", share * 100.0))
        .collect();
    let trust = match e.trust {
        t if t >= 1.0 => String::new(),
        t if t <= 0.0 => ": none is much like this prompt, so they count for nothing".to_owned(),
        t => format!(
            ": not very like this prompt, so they count {:.0}%",
            t * 100.0
        ),
    };
    vec![
        format!(
            "the most similar labelled prompts are {} (closest similarity {:.2}){trust}",
            kinds.join(", "),
            e.closest_similarity
        ),
        format!(
            "on them {model} answered as well as the strongest model {:.0}% of the time: {}",
            e.neighbour_rate * 100.0,
            moved(e.neighbour_term)
        ),
        format!(
            "their subjects' overall rate is {:.0}%: {}",
            e.category_rate * 100.0,
            moved(e.category_term)
        ),
        format!(
            "the prompt has {} characters ({} than the labelled prompts usually are): {}",
            e.prompt_chars,
            if e.length_term >= 0.0 {
                "shorter"
            } else {
                "longer"
            },
            moved(e.length_term)
        ),
    ]
}

fn models_distill(from: &std::path::Path, out: &std::path::Path) -> anyhow::Result<ExitCode> {
    let opts = switchyard_embed::DistillOptions::default();
    let mut last_percent = usize::MAX;
    let report = switchyard_embed::distill(from, out, &opts, |done, total| {
        // One line per 10%: readable in CI logs, where a redrawn progress bar is not.
        let percent = done * 100 / total.max(1) / 10 * 10;
        if percent != last_percent {
            last_percent = percent;
            eprintln!("embedding vocabulary tokens: {done}/{total} ({percent}%)");
        }
    })
    .with_context(|| format!("distilling {} into {}", from.display(), out.display()))?;
    println!(
        "wrote {}: {} tokens x {} dims, {:.1}% of variance kept, {:.0} s ({:.0} s embedding)",
        out.display(),
        report.vocabulary,
        report.dims,
        report.explained_variance * 100.0,
        report.total_seconds,
        report.embed_seconds
    );
    Ok(ExitCode::SUCCESS)
}

fn config_check(file: &std::path::Path) -> ExitCode {
    match switchyard_control::load(file) {
        Ok(c) => {
            for w in c.warnings() {
                println!("warning: {w}");
            }
            println!(
                "{}: ok ({} providers, {} models, {} keys)",
                file.display(),
                c.providers.len(),
                c.models.len(),
                c.keys.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(path: Option<&std::path::Path>) -> anyhow::Result<Config> {
    Ok(match path {
        Some(p) => switchyard_control::load(p)?,
        None => switchyard_control::parse(DEMO_CONFIG, DEMO_ORIGIN)?,
    })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Logs go to stderr through a writer thread, so a slow terminal or pipe never stalls a
/// request; the returned guard flushes what is queued when it is dropped at exit. Under
/// extreme pressure lines are dropped rather than blocking (tracing-appender's lossy mode).
fn init_logging(format: LogFormat, level: &str) -> tracing_appender::non_blocking::WorkerGuard {
    // 8,192 lines in flight: the default 128,000 is 4 MB of queue allocated at start, for a
    // gateway whose access log is off by default and whose other lines are rare.
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(8_192)
        .finish(std::io::stderr());
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{level},tower_http=warn")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.with_ansi(false).init(),
    }
    guard
}

fn serve(config_path: Option<PathBuf>, listen: Option<SocketAddr>) -> anyhow::Result<ExitCode> {
    let (text, origin) = match &config_path {
        Some(p) => (
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?,
            p.display().to_string(),
        ),
        None => (DEMO_CONFIG.to_owned(), DEMO_ORIGIN.to_owned()),
    };
    let demo = config_path.is_none();
    let postgres = url_from_env(STORAGE_URL_ENV, SecretUrl::postgres)?;
    let redis = url_from_env(REDIS_URL_ENV, SecretUrl::redis)?;
    // The launch's own overrides, applied to every config version this process runs.
    let launch = switchyard_gateway::control_plane::versions::Launch::new(text, origin)
        .with_adjust(move |c| {
            if let Some(addr) = listen {
                c.server.listen = addr;
            }
            if let Some(url) = &postgres {
                c.storage.postgres = Some(url.clone());
            }
            if let Some(url) = &redis {
                match &mut c.redis {
                    Some(spec) => spec.url = url.clone(),
                    None => {
                        c.redis = Some(RedisSpec {
                            url: url.clone(),
                            on_failure: RedisFailure::PerReplica,
                        })
                    }
                }
            }
            if demo {
                demo_without_models(c);
            }
        });
    let config = launch.config_of(&launch.text, &launch.origin)?;
    if config.keys.is_empty() {
        bail!("the config declares no [[keys]], so every request would be refused; add one (`switchyard keys new` makes a key and its hash)");
    }
    let published = config.server.demo || config.accepts_published_keys();
    if published && !config.server.listen.ip().is_loopback() {
        bail!(
            "refusing to listen on {}: this config accepts the published demo keys, so it only listens on loopback (127.0.0.1 or ::1). \
             Give --config a file with your own keys (`switchyard keys new`) to listen elsewhere.",
            config.server.listen
        );
    }
    // On PostgreSQL the data folder holds this replica's spool of records waiting for the
    // database: two processes sharing it would truncate and delete each other's segments.
    let _data_lock = match &config.storage.postgres {
        Some(_) => Some(lock_data_folder(&config.storage.data_dir)?),
        None => None,
    };
    let _log_guard = init_logging(config.telemetry.log_format, &config.telemetry.log_level);
    let data = match &config.storage.postgres {
        Some(url) => url.to_string(),
        None => config.storage.data_dir.display().to_string(),
    };
    let rt = runtime()?;
    rt.block_on(async move {
        let env: switchyard_gateway::control_plane::versions::Env = Arc::new(|k: &str| std::env::var(k).ok());
        // The config parsed above goes to the server: parsed once (issue 18).
        let server = switchyard_gateway::Server::bind_parsed(launch, config, env).await?;
        let addr = server.local_addr()?;
        let stop = shutdown_signal()?;
        if demo {
            println!("Switchyard embedded demo listening on http://{addr}");
            println!("  OpenAI base URL: http://{addr}/v1");
            println!("  demo key:        {DEMO_KEY}");
            println!("  admin key:       {DEMO_ADMIN_KEY}");
            println!("  models:          small, medium, frontier, flaky (falls back to medium), local (a self-hosted engine with 4 slots)");
            println!("  routes:          auto (auto:cheap, auto:balanced, auto:best): the router picks small or frontier");
            println!("  guards:          PII pseudonymised, injections and harmful requests refused, answers checked for toxicity, grounding and compliance");
            println!("  data:            {data}");
        } else {
            println!("Switchyard listening on http://{addr}");
        }
        tracing::info!(%addr, "listening");
        let closed = server.run(stop).await?;
        if closed.lost.total() == 0 {
            tracing::info!(written = closed.written, "stopped; {closed}");
        } else {
            tracing::error!(
                written = closed.written,
                lost = closed.lost.total(),
                lost_at_shutdown = closed.lost.shutdown,
                lost_queue_full = closed.lost.queue_full,
                "stopped; {closed}"
            );
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The environment variables that name a replica's shared PostgreSQL and Redis, over the
/// config file's `[storage] url` and `[redis] url`.
const STORAGE_URL_ENV: &str = "SWITCHYARD_STORAGE_URL";
const REDIS_URL_ENV: &str = "SWITCHYARD_REDIS_URL";

/// The URL in `var`, when it is set and not empty; an error naming the variable (and not its
/// value, which may hold a password) when it is not a URL of the right kind.
fn url_from_env(
    var: &str,
    parse: fn(&str) -> Result<SecretUrl, String>,
) -> anyhow::Result<Option<SecretUrl>> {
    match std::env::var(var) {
        Ok(value) if !value.trim().is_empty() => parse(&value)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("{var} {e}")),
        _ => Ok(None),
    }
}

/// Takes this process's lock on its data folder (`replica.lock` in it, `flock`), held until
/// the process exits or is killed: the kernel lets go of it then, so a replica started again
/// after a crash takes it at once (and writes what its spool kept).
#[cfg(unix)]
fn lock_data_folder(dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    use rustix::fs::{flock, FlockOperation};
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the data folder {}", dir.display()))?;
    let path = dir.join("replica.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => bail!(
            "another switchyard process is using the data folder {} (on PostgreSQL it holds a \
             replica's spool of records waiting for the database): each replica needs a data \
             folder of its own; start this one from another folder, or set [storage] data_dir",
            dir.display()
        ),
        Err(e) => Err(e).with_context(|| format!("cannot lock {}", path.display())),
    }
}

/// Without `flock`, replicas must be given data folders of their own by hand.
#[cfg(not(unix))]
fn lock_data_folder(_dir: &std::path::Path) -> anyhow::Result<()> {
    Ok(())
}

/// The demo runs from a fresh checkout: without the embedding model it still starts, with the
/// exact cache only, the n-gram router in place of the neighbour router and no harmful-request
/// guard, and says how to get them. (A real config that needs the model fails to start instead, with the same
/// instructions.)
fn demo_without_models(config: &mut Config) {
    let missing = |dir: &std::path::Path| !dir.join("model.safetensors").is_file();
    if let Some(cache) = &mut config.cache {
        if missing(&cache.embedder) {
            eprintln!(
                "note: no static embedding model in {}; the semantic cache is off until you run \
                 scripts/fetch-models.sh (exact-match caching works without it)",
                cache.embedder.display()
            );
            cache.defaults.semantic = false;
            for route in config.routes.values_mut() {
                route.cache.semantic = false;
            }
        }
    }
    if let Some(h) = &config.guards.harmful {
        if h.needs_static_model() && missing(&h.embedder) {
            eprintln!(
                "note: no static embedding model in {}; the harmful-request guard is off until \
                 you run scripts/fetch-models.sh",
                h.embedder.display()
            );
            config.guards.harmful = None;
        }
    }
    for (name, route) in &mut config.routes {
        let needs_model = route
            .router
            .as_ref()
            .is_some_and(|r| r.estimator.neighbours().is_some());
        if !needs_model || !missing(&route.embedder) {
            continue;
        }
        let fallback = "builtin:routellm-mixtral-gpt4.v1";
        let Ok(artifact) = switchyard_control::builtin::load_router(fallback) else {
            continue;
        };
        let Ok(estimator) = artifact.estimator() else {
            continue;
        };
        eprintln!(
            "note: no static embedding model in {}; route `{name}` uses the n-gram router \
             ({fallback}) until you run scripts/fetch-models.sh",
            route.embedder.display()
        );
        route.bars = artifact.bars;
        route.router = Some(switchyard_control::RouterSpec {
            source: fallback.to_owned(),
            artifact: std::sync::Arc::new(artifact),
            estimator,
        });
    }
}

fn sim(
    listen: SocketAddr,
    config_path: Option<PathBuf>,
    provider: Option<String>,
) -> anyhow::Result<ExitCode> {
    let config = load_config(config_path.as_deref())?;
    let sims: Vec<(&String, &switchyard_control::SimSpec)> = config
        .providers
        .iter()
        .filter_map(|(name, p)| match p {
            ProviderSpec::Sim(s) => Some((name, s)),
            _ => None,
        })
        .filter(|(name, _)| provider.as_ref().is_none_or(|p| p == *name))
        .collect();
    let (name, spec) = match sims.as_slice() {
        [one] => *one,
        [] => bail!(
            "the config has no sim provider{}",
            provider
                .map(|p| format!(" named `{p}`"))
                .unwrap_or_default()
        ),
        _ => bail!("the config has several sim providers; choose one with --provider"),
    };
    let _log_guard = init_logging(LogFormat::Text, "warn");
    let sim = Arc::new(switchyard_providers::sim::SimProvider::new(name, spec));
    let models = sim.model_names();
    let rt = runtime()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let addr = listener.local_addr()?;
        let stop = shutdown_signal()?;
        println!(
            "Switchyard simulator listening on http://{addr}/v1 with models: {}",
            models.join(", ")
        );
        let app = switchyard_gateway::upstream_server::router(sim.clone(), models);
        let app = switchyard_gateway::upstream_server::with_engine_metrics(app, sim);
        use axum::serve::ListenerExt;
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C or SIGTERM. The handlers are installed by this call, not when the future is first
/// polled: the caller calls it before it says it is listening, so a signal sent right after
/// that line (as a supervisor or a test may) stops the server cleanly instead of killing it.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {},
                _ = interrupt.recv() => {},
            }
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
