//! `switchyard-eval`: offline evaluations of Switchyard's components on the public
//! development data in `../shared/data/`. Each subcommand trains what it needs on one part of
//! the data, reports on the other, and writes its results beside this crate (`eval/*.md`).
//! It is a measuring tool, not part of the gateway: nothing here ships in the binary.

mod data;
mod neighbour_router;
mod router;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Offline evaluations of Switchyard on public data")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train the router on 70% of the routing data and report on the other 30%.
    Router {
        /// Folder holding routellm.dev.jsonl and alpacaeval.dev.jsonl; default: `routing/` of
        /// the shared data folder ($SWITCHYARD_DATA_DIR, else ../shared/data beside the
        /// repository root).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Where the Markdown report goes.
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/router.md"))]
        out: PathBuf,
        /// Where the trained artifacts go.
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/artifacts"))]
        artifacts: PathBuf,
        /// The static embedding model's folder.
        #[arg(long, default_value = "models/minilm-static-256")]
        embedder: PathBuf,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Router {
            data_dir,
            out,
            artifacts,
            embedder,
        } => router::run(
            &router::Args {
                embedder,
                data_dir: switchyard_testkit::data::require_or_exit(
                    data_dir.unwrap_or_else(|| switchyard_testkit::data::path("routing")),
                ),
                out,
                artifacts,
            },
            &[neighbour_router::run],
        ),
    }
}
