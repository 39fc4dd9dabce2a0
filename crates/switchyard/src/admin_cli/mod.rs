//! The admin CLI: `switchyard config apply|diff|history|rollback`, `prompt push|list|show|label`,
//! `flag list|set|delete`, `rollout start|status|promote|pause|resume|rollback|abort` and
//! `audit list|verify`, one file per command group. Each is one call (one per file for `prompt
//! push`) to the gateway's admin API under `/admin/v1/`, printed for people or, with `--json`,
//! as the API's own JSON. The gateway validates, stores and audits; this module only sends,
//! formats, and turns every outcome into an exit code scripts can trust ([`EXIT_CODES`]). It
//! must never print the admin key.

mod audit;
mod client;
mod config;
mod flags;
mod prompts;
mod rollouts;
mod slos;
mod text;

use std::process::ExitCode;

pub use audit::AuditCommand;
pub use client::EXIT_CODES;
pub use config::ConfigCommand;
pub use flags::FlagCommand;
pub use prompts::PromptCommand;
pub use rollouts::RolloutCommand;
pub use slos::SloCommand;

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

async fn dispatch(command: Group) -> client::Outcome {
    match command {
        Group::Config(c) => config::run(c).await,
        Group::Prompt(c) => prompts::run(c).await,
        Group::Flag(c) => flags::run(c).await,
        Group::Rollout(c) => rollouts::run(c).await,
        Group::Slo(c) => slos::run(c).await,
        Group::Audit(c) => audit::run(c).await,
    }
}
