//! `switchyard router report`: a route's decisions against their outcomes and what routing
//! and the cache saved, read from the store.

use std::collections::BTreeMap;

use anyhow::Context as _;
use serde::Serialize;
use switchyard_control::Config;
use switchyard_store::routing::RouteRow;
use switchyard_store::SqliteStore;

#[derive(Debug, Default, Serialize)]
pub struct ModelLine {
    pub requests: u64,
    pub by_rule: u64,
    pub feedback: u64,
    pub mean_feedback: Option<f64>,
    pub cost_usd: f64,
}

#[derive(Debug, Default, Serialize)]
pub struct RouteReport {
    pub route: String,
    pub requests: u64,
    pub answered: u64,
    pub cache_hits: u64,
    pub by_model: BTreeMap<String, ModelLine>,
    pub cost_usd: f64,
    /// What the answers would have cost on the route's most expensive candidate.
    pub baseline_usd: f64,
    pub saved_by_routing_usd: f64,
    pub saved_by_cache_usd: f64,
    pub bars: Option<(f32, f32)>,
    pub trained_bars: (f32, f32),
    pub calibrations: Vec<serde_json::Value>,
}

fn usd(nanos: u64) -> f64 {
    nanos as f64 / 1e9
}

pub fn build(rows: &[RouteRow], route: &str, trained: (f32, f32)) -> RouteReport {
    let mut r = RouteReport {
        route: route.to_owned(),
        trained_bars: trained,
        ..RouteReport::default()
    };
    let mut feedback_sum: BTreeMap<String, f64> = BTreeMap::new();
    for row in rows {
        r.requests += 1;
        if !(200..300).contains(&row.status) {
            continue;
        }
        r.answered += 1;
        let saved = usd(row.baseline_cost_nanos.saturating_sub(row.cost_nanos));
        r.cost_usd += usd(row.cost_nanos);
        r.baseline_usd += usd(row.baseline_cost_nanos);
        if row.cache.as_deref().is_some_and(|c| c.starts_with("hit")) {
            r.cache_hits += 1;
            r.saved_by_cache_usd += saved;
            continue;
        }
        r.saved_by_routing_usd += saved;
        let model = row.model.clone().unwrap_or_default();
        let line = r.by_model.entry(model.clone()).or_default();
        line.requests += 1;
        line.cost_usd += usd(row.cost_nanos);
        if row
            .decision
            .as_deref()
            .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
            .is_some_and(|d| d.get("rule").is_some_and(|x| !x.is_null()))
        {
            line.by_rule += 1;
        }
        if let Some(f) = row.feedback {
            line.feedback += 1;
            *feedback_sum.entry(model).or_default() += f;
        }
    }
    for (model, line) in &mut r.by_model {
        if line.feedback > 0 {
            line.mean_feedback = feedback_sum.get(model).map(|s| s / line.feedback as f64);
        }
    }
    r
}

pub fn run(
    config: &Config,
    route: Option<&str>,
    since_hours: u64,
    json: bool,
) -> anyhow::Result<()> {
    let store = SqliteStore::open_in(&config.storage.data_dir)
        .with_context(|| format!("opening the store in {}", config.storage.data_dir.display()))?;
    let since = chrono::Utc::now().timestamp_millis()
        - i64::try_from(since_hours.saturating_mul(3_600_000)).unwrap_or(i64::MAX);
    let names: Vec<&String> = match route {
        Some(name) => vec![
            config
                .routes
                .get_key_value(name)
                .with_context(|| format!("no route `{name}` in the config"))?
                .0,
        ],
        None => config.routes.keys().collect(),
    };
    let mut reports = Vec::new();
    for name in names {
        let spec = &config.routes[name];
        let rows = store.route_rows(name, since)?;
        let mut report = build(&rows, name, (spec.bars.cheap, spec.bars.balanced));
        let history = store.calibrations(name, 5)?;
        report.bars = history.first().map(|c| c.bars);
        report.calibrations = history
            .iter()
            .map(|c| {
                serde_json::json!({
                    "at_ms": c.at_ms,
                    "bars": {"cheap": c.bars.0, "balanced": c.bars.1},
                    "policies": serde_json::from_str::<serde_json::Value>(&c.report).unwrap_or_default(),
                })
            })
            .collect();
        reports.push(report);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
        return Ok(());
    }
    for r in &reports {
        print_report(r, since_hours);
    }
    Ok(())
}

fn print_report(r: &RouteReport, since_hours: u64) {
    println!("route `{}`, last {since_hours} h", r.route);
    println!(
        "  requests {}  answered {}  cache hits {}",
        r.requests, r.answered, r.cache_hits
    );
    println!(
        "  {:<16} {:>9} {:>8} {:>9} {:>14} {:>11}",
        "model", "requests", "share", "by rule", "mean feedback", "cost USD"
    );
    let routed: u64 = r.by_model.values().map(|l| l.requests).sum();
    for (model, l) in &r.by_model {
        let share = if routed == 0 {
            0.0
        } else {
            l.requests as f64 / routed as f64
        };
        let fb = l
            .mean_feedback
            .map_or_else(|| "-".to_owned(), |m| format!("{m:.2} (n={})", l.feedback));
        println!(
            "  {model:<16} {:>9} {:>7.1}% {:>9} {fb:>14} {:>11.6}",
            l.requests,
            share * 100.0,
            l.by_rule,
            l.cost_usd
        );
    }
    let pct = |x: f64| {
        if r.baseline_usd > 0.0 {
            x / r.baseline_usd * 100.0
        } else {
            0.0
        }
    };
    println!(
        "  cost {:.6} USD against {:.6} USD on the most expensive candidate: saved {:.6} by routing ({:.1}%), {:.6} by the cache ({:.1}%)",
        r.cost_usd,
        r.baseline_usd,
        r.saved_by_routing_usd,
        pct(r.saved_by_routing_usd),
        r.saved_by_cache_usd,
        pct(r.saved_by_cache_usd)
    );
    match r.bars {
        Some((cheap, balanced)) => println!(
            "  bars: cheap {cheap:.3}, balanced {balanced:.3} (recalibrated from feedback; trained {:.3}, {:.3})",
            r.trained_bars.0, r.trained_bars.1
        ),
        None => println!(
            "  bars: cheap {:.3}, balanced {:.3} (as trained; not recalibrated yet)",
            r.trained_bars.0, r.trained_bars.1
        ),
    }
    for c in &r.calibrations {
        for p in c["policies"].as_array().into_iter().flatten() {
            println!(
                "    {}: {} -> {}: {}",
                p["policy"].as_str().unwrap_or(""),
                p["bar_before"],
                p["bar_after"],
                p["reason"].as_str().unwrap_or("")
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn savings_split_between_routing_and_cache() {
        let row = |model: &str, cache: &str, cost: u64, baseline: u64, fb: Option<f64>| RouteRow {
            requested_model: "auto".into(),
            model: Some(model.into()),
            decision: Some(r#"{"rule": null}"#.into()),
            cache: Some(cache.into()),
            status: 200,
            cost_nanos: cost,
            baseline_cost_nanos: baseline,
            feedback: fb,
        };
        let rows = vec![
            row("small", "miss", 100, 1_000, Some(1.0)),
            row("small", "miss", 100, 1_000, Some(0.0)),
            row("big", "miss", 1_000, 1_000, None),
            row("small", "hit-exact", 0, 1_000, None),
        ];
        let r = build(&rows, "auto", (0.7, 0.8));
        assert_eq!((r.requests, r.answered, r.cache_hits), (4, 4, 1));
        assert!((r.saved_by_routing_usd - 1800e-9).abs() < 1e-15);
        assert!((r.saved_by_cache_usd - 1000e-9).abs() < 1e-15);
        assert_eq!(r.by_model["small"].requests, 2);
        assert_eq!(r.by_model["small"].mean_feedback, Some(0.5));
        assert_eq!(r.by_model["big"].mean_feedback, None);
    }
}
