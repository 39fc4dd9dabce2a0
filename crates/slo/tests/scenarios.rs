//! Synthetic SLI series through a controlled clock: exactly when each default alert fires
//! and resolves.
//!
//! The clock: minute `m` is `[60m, 60m + 60)`. Its traffic is recorded at `60m` and the
//! engine evaluates at the minute's last second, `60m + 59`, so a window of `w` minutes at
//! minute `m` holds minutes `m - w + 1 ..= m`. Every scenario starts with three clean days
//! (minutes 0..4320) so that every window, the ticket's 3 days included, is full when
//! trouble starts at minute `O = 4320`. Target 99.9%, 1,000 requests a minute.

use switchyard_slo::{
    status, AlertEngine, AlertEvent, AlertState, Ledger, Objective, Series, Sli, SloSpec,
};

const O: i64 = 3 * 24 * 60;
const PER_MINUTE: u64 = 1_000;

struct Sim {
    spec: SloSpec,
    series: Series,
    engine: AlertEngine,
    events: Vec<AlertEvent>,
}

impl Sim {
    fn new() -> Self {
        let spec = SloSpec::new("chat", Objective::Availability, 0.999);
        Sim {
            series: Series::for_spec(&spec),
            spec,
            engine: AlertEngine::default(),
            events: Vec::new(),
        }
    }

    /// Minutes `from..to`, with `bad(m)` bad requests of 1,000 in minute `m`.
    fn run(&mut self, from: i64, to: i64, bad: impl Fn(i64) -> u64) {
        for m in from..to {
            let bad = bad(m);
            self.series
                .record_many(m * 60, PER_MINUTE - bad, PER_MINUTE);
            let ev = self.engine.evaluate(m * 60 + 59, &self.spec, &self.series);
            self.events.extend(ev);
        }
    }

    fn timeline(&self) -> Vec<(i64, &str, AlertState)> {
        timeline(&self.events)
    }
}

/// Events as (minute, rule, new state).
fn timeline(events: &[AlertEvent]) -> Vec<(i64, &str, AlertState)> {
    events
        .iter()
        .map(|e| ((e.at_secs - 59) / 60, e.rule.as_str(), e.to))
        .collect()
}

#[test]
fn steady_errors_at_the_budget_pace_never_alert() {
    // 0.1% errors against a 99.9% target burns at exactly 1: the budget lasts the window.
    let mut sim = Sim::new();
    sim.run(0, O + 24 * 60, |_| 1);
    assert_eq!(sim.timeline(), vec![]);
    let st = status((O + 24 * 60) * 60 - 1, &sim.spec, &sim.series, &sim.engine);
    assert!(st
        .rules
        .iter()
        .all(|r| r.long_burn <= 1.0 && r.state == AlertState::Inactive));
    // The budget is a share of the requests seen: burning at exactly 1 spends exactly what
    // they allow, so nothing is left and nothing is overspent.
    assert!(st.budget.remaining.abs() < 1e-9, "{}", st.budget.remaining);
}

#[test]
fn a_full_outage_pages_within_three_minutes_and_resolves_on_time() {
    // 20 minutes of 100% errors, minutes O..O+20, then clean.
    let mut sim = Sim::new();
    sim.run(0, O + 500, |m| {
        if (O..O + 20).contains(&m) {
            PER_MINUTE
        } else {
            0
        }
    });
    use AlertState::*;
    assert_eq!(
        sim.timeline(),
        vec![
            // page-1h: one bad minute burns 16.7 over 1 h and 200 over 5 min, both > 14.4.
            (O, "page-1h", Pending),
            // page-6h: burn over 6 h > 6 needs 3 bad minutes (3/360 × 1000 = 8.3).
            // page-1h: two minutes of `for` have passed: it pages at the end of minute O+2.
            (O + 2, "page-1h", Firing),
            (O + 2, "page-6h", Pending),
            // ticket-3d: burn over 3 d > 1 needs 5 bad minutes (5/4320 × 1000 = 1.16).
            (O + 4, "page-6h", Firing),
            (O + 4, "ticket-3d", Pending),
            // page-1h: the 5-minute window is clean from minute O+24; 5 minutes later it
            // resolves.
            (O + 29, "page-1h", Resolved),
            // page-6h: the 30-minute window is clean from O+49; resolved 5 minutes later.
            (O + 54, "page-6h", Resolved),
            // ticket-3d: an hour of `for` after O+4.
            (O + 64, "ticket-3d", Firing),
            // ticket-3d: the 6-hour window is clean from O+379; resolved an hour later.
            (O + 439, "ticket-3d", Resolved),
        ]
    );
    // The page carries both windows' burn rates: 3 bad minutes of 60 and of 5.
    let page = &sim.events[1];
    assert_eq!(page.at_secs, (O + 2) * 60 + 59);
    assert_eq!((page.from, page.to), (Pending, Firing));
    assert!((page.long_burn - 50.0).abs() < 1e-6, "{}", page.long_burn);
    assert!(
        (page.short_burn - 600.0).abs() < 1e-6,
        "{}",
        page.short_burn
    );
    assert_eq!(page.threshold, 14.4);
    // 20,000 bad requests in the 30-day window (4,820 minutes of traffic so far).
    let st = status((O + 500) * 60 - 1, &sim.spec, &sim.series, &sim.engine);
    assert_eq!(st.budget.bad, 20_000);
    let allowed = 0.001 * (O + 500) as f64 * PER_MINUTE as f64;
    assert!((st.budget.remaining - (1.0 - 20_000.0 / allowed)).abs() < 1e-9);
    assert_eq!(st.worst_state(), Resolved);
}

#[test]
fn a_slow_double_burn_only_tickets() {
    // 0.2% errors (burn 2) from minute O until O+2400, then clean.
    let mut sim = Sim::new();
    sim.run(
        0,
        O + 2700,
        |m| if (O..O + 2400).contains(&m) { 2 } else { 0 },
    );
    use AlertState::*;
    assert_eq!(
        sim.timeline(),
        vec![
            // The 3-day window burns above 1 once more than half of it burns at 2:
            // 2 × 2161 / 4320 > 1 at the 2161st minute, minute O+2160 (a day and a half).
            (O + 2160, "ticket-3d", Pending),
            (O + 2220, "ticket-3d", Firing),
            // The 6-hour window burns at most 1 once it holds 180 burning minutes or fewer:
            // minute O+2579; an hour later the ticket resolves.
            (O + 2639, "ticket-3d", Resolved),
        ]
    );
    assert!(sim.events.iter().all(|e| e.rule == "ticket-3d"));
}

#[test]
fn zero_traffic_never_alerts_and_keeps_the_whole_budget() {
    let spec = SloSpec::new("idle", Objective::Latency { threshold_ms: 2000 }, 0.95);
    let series = Series::for_spec(&spec);
    let mut engine = AlertEngine::default();
    for m in 0..(4 * 24 * 60) {
        assert_eq!(engine.evaluate(m * 60 + 59, &spec, &series), vec![]);
    }
    let st = status(4 * 86_400, &spec, &series, &engine);
    assert_eq!(st.budget.remaining, 1.0);
    assert_eq!(st.sli, None);
    assert_eq!(st.worst_state(), AlertState::Inactive);
}

#[test]
fn a_restart_mid_outage_loses_nothing() {
    let outage = |m: i64| {
        if (O..O + 20).contains(&m) {
            PER_MINUTE
        } else {
            0
        }
    };
    let mut straight = Sim::new();
    straight.run(0, O + 100, outage);

    let mut first = Sim::new();
    first.run(0, O + 10, outage);
    // The gateway persists both pieces of state and reads them back.
    let series = serde_json::to_string(&first.series).unwrap();
    let engine = serde_json::to_string(&first.engine).unwrap();
    let mut second = Sim {
        spec: first.spec.clone(),
        series: serde_json::from_str(&series).unwrap(),
        engine: serde_json::from_str(&engine).unwrap(),
        events: first.events.clone(),
    };
    second.run(O + 10, O + 100, outage);
    assert_eq!(second.timeline(), straight.timeline());
    assert_eq!(
        second.engine.history().count(),
        straight.engine.history().count()
    );
}

#[test]
fn a_burn_that_stops_before_for_elapses_is_a_near_miss() {
    // 800 bad requests in minute O (1 h burn 13.3: under 14.4), then 70 in minute O+4: the
    // hour burns at 870/60 = 14.5 and the 5 minutes at 174, so page-1h goes Pending; a
    // minute later the 5-minute window holds only the 70 (burn 14) and it drops back.
    let mut sim = Sim::new();
    sim.run(0, O + 120, |m| match m - O {
        0 => 800,
        4 => 70,
        _ => 0,
    });
    use AlertState::*;
    assert_eq!(
        sim.timeline(),
        vec![(O + 4, "page-1h", Pending), (O + 5, "page-1h", Inactive)]
    );
}

#[test]
fn slow_answers_page_a_latency_slo_through_the_ledger() {
    // 95% of answers under 2 s; 20 requests a minute, 1.2 s normally, 5 s from minute O.
    // The budget is 5%, so all-slow burns at 20: the hour exceeds 14.4 once 44 of its 60
    // minutes are slow (minute O+43), and page-1h fires two minutes later. page-6h needs
    // 6 × 360 / 20 = 108 slow minutes: it goes Pending at O+108 and fires at O+110.
    let spec = SloSpec::new(
        "chat-latency",
        Objective::Latency { threshold_ms: 2000 },
        0.95,
    );
    let mut ledger = Ledger::new(std::slice::from_ref(&spec));
    let mut engine = AlertEngine::default();
    let mut events = Vec::new();
    for m in 0..O + 120 {
        let latency_ms = if m >= O { 5_000.0 } else { 1_200.0 };
        for i in 0..20 {
            let sli = Sli::answered(latency_ms);
            ledger.observe(m * 60 + i, Some("auto"), "small", "v7", &sli);
        }
        for (spec, series) in ledger.iter() {
            events.extend(engine.evaluate(m * 60 + 59, spec, series));
        }
    }
    use AlertState::*;
    assert_eq!(
        timeline(&events),
        vec![
            (O + 43, "page-1h", Pending),
            (O + 45, "page-1h", Firing),
            (O + 108, "page-6h", Pending),
            (O + 110, "page-6h", Firing),
        ]
    );
    // The last hour's percentiles show the slowness; the version's own series has the day.
    let now = (O + 120) * 60 - 1;
    let last_hour = ledger.values("chat-latency").unwrap().window(now, 3_600);
    let st = status(now, &spec, ledger.series("chat-latency").unwrap(), &engine)
        .with_percentiles(&last_hour);
    let p = st.percentiles.unwrap();
    assert!((p.p50 - 5_000.0).abs() <= 50.0, "{p:?}");
    assert_eq!(st.worst_state(), Firing);
    let v7 = ledger.version_series("chat-latency", "v7").unwrap();
    assert_eq!(v7.window_counts(now, 86_400).total, 24 * 60 * 20);
}
