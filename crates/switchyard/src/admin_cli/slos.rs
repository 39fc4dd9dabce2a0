//! `switchyard slo status`: every SLO's budget and burn-rate alerts.

use std::process::ExitCode;

use clap::Subcommand;
use serde::Deserialize;
use serde_json::Value;

use super::client::{Client, Outcome, Remote, CHECK_FAILED, EXIT_CODES};
use super::text::{print_table, when};

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

pub(super) async fn run(command: SloCommand) -> Outcome {
    match command {
        SloCommand::Status { remote } => slo_status(&remote).await,
    }
}

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
