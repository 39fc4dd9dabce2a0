//! `switchyard flag list|set|delete`: feature flags.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;
use switchyard_rollout::{Flag, FlagKind, WeightedVariant};

use super::client::{Client, Outcome, Remote, EXIT_CODES};
use super::text::print_table;

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

pub(super) async fn run(command: FlagCommand) -> Outcome {
    match command {
        FlagCommand::List { remote } => flag_list(&remote).await,
        FlagCommand::Set {
            key,
            value,
            disabled,
            reason,
            remote,
        } => flag_set(&remote, &key, value, disabled, &reason).await,
        FlagCommand::Delete { key, remote } => flag_delete(&remote, &key).await,
    }
}

/// `2.5` (percent) as 250 basis points.
pub(super) fn parse_percent(text: &str) -> Result<u16, String> {
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
}
