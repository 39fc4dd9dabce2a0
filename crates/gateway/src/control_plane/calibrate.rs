//! Recalibrating routes from feedback, against the store: reads each route's recent routed
//! requests with feedback, takes one bounded step (`switchyard_route::recalibrate`), applies
//! the new bars to the running route and records the step with its explanation.
//!
//! Runs at start-up (so a restart keeps what was learnt, when the trained bars are unchanged)
//! and then every `recalibrate.interval` from `Server::run`.

use serde_json::Value;
use switchyard_route::{recalibrate, Bars, Calibration, Outcome, Policy};
use switchyard_store::routing::CalibrationRow;
use switchyard_store::{Store, StoreError};

use crate::data_plane::pipeline::Pipeline;
use crate::data_plane::routing::RouteRuntime;

/// Applies each route's latest stored calibration if it was anchored at the bars the route
/// has now (a retrained artifact or new config bars start afresh).
pub fn restore(pipeline: &Pipeline, store: &dyn Store) -> Result<(), StoreError> {
    for (name, route) in pipeline.routes() {
        if route.spec.recalibrate.is_none() {
            continue;
        }
        if let Some(row) = store.latest_calibration(name)? {
            let base = route.spec.bars;
            if row.base == (base.cheap, base.balanced) {
                route.set_bars(Bars {
                    cheap: row.bars.0,
                    balanced: row.bars.1,
                });
            }
        }
    }
    Ok(())
}

/// One recalibration step for every route that has it on; returns the routes whose bars moved.
pub fn run_once(
    pipeline: &Pipeline,
    store: &dyn Store,
    now_ms: i64,
) -> Result<Vec<(String, Calibration)>, StoreError> {
    let mut moved = Vec::new();
    for (name, route) in pipeline.routes() {
        let Some(rc) = route.spec.recalibrate else {
            continue;
        };
        let window_ms = i64::try_from(rc.window.as_millis()).unwrap_or(i64::MAX);
        let rows = store.routed_feedback(name, now_ms.saturating_sub(window_ms))?;
        let outcomes: Vec<Outcome> = rows
            .iter()
            .filter_map(|r| outcome(route, &r.decision, r.score))
            .collect();
        let current = route.bars();
        let calibration = recalibrate(current, route.spec.bars, &outcomes, &rc.calibration);
        if calibration.changed(current) {
            route.set_bars(calibration.bars);
            store.add_calibration(&CalibrationRow {
                route: name.clone(),
                at_ms: now_ms,
                base: (route.spec.bars.cheap, route.spec.bars.balanced),
                bars: (calibration.bars.cheap, calibration.bars.balanced),
                report: serde_json::to_string(&calibration.policies).unwrap_or_default(),
            })?;
            tracing::info!(
                route = %name,
                cheap = calibration.bars.cheap,
                balanced = calibration.bars.balanced,
                "route bars recalibrated from feedback"
            );
            moved.push((name.clone(), calibration));
        }
    }
    Ok(moved)
}

/// A stored decision (JSON) with its feedback as the calibrator's outcome.
pub fn outcome(route: &RouteRuntime, decision: &str, score: f64) -> Option<Outcome> {
    let d: Value = serde_json::from_str(decision).ok()?;
    let policy: Policy = serde_json::from_value(d.get("policy")?.clone()).ok()?;
    let model = d.get("model")?.as_str()?;
    let strongest = route
        .spec
        .candidates
        .last()
        .is_some_and(|c| c.model == model);
    Some(Outcome {
        policy,
        strongest,
        by_rule: d.get("rule").is_some_and(|r| !r.is_null()),
        score: score as f32,
    })
}
