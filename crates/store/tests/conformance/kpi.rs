//! Every KPI report, on the same requests and feedback.

use switchyard_store::csv::to_csv;
use switchyard_store::{
    Bucket, Feedback, FeedbackStats, GroupBy, GuardTrigger, KpiFilter, KpiPoint, KpiSummary,
    ModelShare, RequestFilter, RequestRecord, StatusClass, Store,
};

use crate::{conformance, Backend};

conformance!(
    semantic_hits_are_counted_apart_among_the_hits,
    the_summary_counts_successes_costs_savings_and_rates_exactly,
    filters_narrow_the_summary_and_an_empty_range_has_no_ratios,
    groups_by_day_split_at_utc_midnight,
    groups_by_tenant_key_model_and_route,
    the_trend_has_a_point_per_bucket_with_empty_ones_as_zeros,
    minute_buckets_split_an_hour_into_points,
    guard_triggers_count_every_verdict_but_pass,
    the_model_mix_shares_requests_and_cost,
    the_request_list_filters_and_pages,
    a_request_refused_before_anything_was_known_still_counts,
    percentiles_are_exact_nearest_rank,
    every_report_exports_as_csv,
    groups_by_priority_count_waits_sheds_and_preemptions,
);

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

/// Midnight UTC, 2024-10-04.
const D: i64 = 20_000 * DAY_MS;

struct Row {
    id: &'static str,
    at: i64,
    tenant: &'static str,
    key: &'static str,
    requested: &'static str,
    model: Option<&'static str>,
    routed: bool,
    cache: Option<&'static str>,
    status: u16,
    guards: Option<&'static str>,
    cost: u64,
    baseline: u64,
    latency: f64,
}

const BASE: Row = Row {
    id: "",
    at: D,
    tenant: "t1",
    key: "k1",
    requested: "small",
    model: Some("small"),
    routed: false,
    cache: None,
    status: 200,
    guards: None,
    cost: 0,
    baseline: 0,
    latency: 0.0,
};

fn record(r: Row) -> RequestRecord {
    RequestRecord {
        request_id: r.id.into(),
        started_at_ms: r.at,
        endpoint: "chat".into(),
        tenant: Some(r.tenant.into()),
        key_id: Some(r.key.into()),
        requested_model: Some(r.requested.into()),
        model: r.model.map(Into::into),
        deployment: match (r.cache, r.guards) {
            (Some(c), _) if c.starts_with("hit") => Some("cache".into()),
            (_, Some(g)) if g.contains("\"refused\"") => Some("guard".into()),
            _ => r.model.map(|m| format!("sim/{m}")),
        },
        status: r.status,
        latency_ms: r.latency,
        prompt_tokens: 10,
        completion_tokens: 5,
        cost_nanos: r.cost,
        baseline_cost_nanos: r.baseline,
        route: r.routed.then(|| {
            r#"{"policy":"balanced","bar":0.7,"model":"small","rule":null,"scores":[]}"#.into()
        }),
        cache: r.cache.map(Into::into),
        guards: r.guards.map(Into::into),
        ..RequestRecord::default()
    }
}

fn feedback(id: &str, tenant: &str, score: Option<f64>, outcome: Option<&str>) -> Feedback {
    Feedback {
        request_id: id.into(),
        key_id: "k".into(),
        tenant: tenant.into(),
        created_at_ms: D + 20 * DAY_MS,
        score,
        outcome: outcome.map(Into::into),
        comment: None,
    }
}

/// Nine requests in `[D - 1 day, D + 1 day)`, two of them the evening before midnight,
/// and one later.
fn fill(store: &dyn Store) {
    let rows = [
        // Routed to the cheap model: saves 900 by routing.
        Row {
            id: "ok1",
            at: D - 2_000,
            requested: "auto",
            routed: true,
            cache: Some("miss"),
            guards: Some(r#"[{"guard":"pii","outcome":"pass","detail":"","ms":0.1}]"#),
            cost: 100,
            baseline: 1_000,
            latency: 10.0,
            ..BASE
        },
        // A cache hit on the route (answered before the router): saves 500 by the cache.
        Row {
            id: "hit1",
            at: D - 1_000,
            requested: "auto:cheap",
            model: Some("big"),
            cache: Some("hit-exact"),
            baseline: 500,
            latency: 1.0,
            ..BASE
        },
        // Answered, but with the safe answer in place of the model's: no success.
        Row {
            id: "replaced",
            at: D + 1_000,
            key: "k2",
            requested: "big",
            model: Some("big"),
            cache: Some("miss"),
            guards: Some(
                r#"[{"guard":"pii","outcome":"masked","detail":"EMAIL:1","ms":0.1},{"guard":"toxicity","outcome":"replaced","score":0.9,"detail":"","ms":2}]"#,
            ),
            cost: 300,
            baseline: 300,
            latency: 20.0,
            ..BASE
        },
        // Thumbs down: no success.
        Row {
            id: "thumbsdown",
            at: D + 2_000,
            cache: Some("bypass"),
            cost: 50,
            baseline: 50,
            latency: 30.0,
            ..BASE
        },
        // Escalated to a human (though scored well): no success.
        Row {
            id: "escalated",
            at: D + 3_000,
            tenant: "t2",
            key: "k3",
            cost: 70,
            baseline: 70,
            latency: 40.0,
            ..BASE
        },
        // A provider error; its guards are not JSON, which reads as no verdict.
        Row {
            id: "err",
            at: D + 4_000,
            tenant: "t2",
            key: "k3",
            requested: "big",
            model: Some("big"),
            status: 502,
            guards: Some("not json"),
            latency: 50.0,
            ..BASE
        },
        // Blocked by the injection screen.
        Row {
            id: "blocked",
            at: D + 5_000,
            tenant: "t2",
            key: "k3",
            model: None,
            status: 400,
            guards: Some(
                r#"[{"guard":"injection","outcome":"blocked","score":0.99,"detail":"","ms":1}]"#,
            ),
            latency: 2.0,
            ..BASE
        },
        // The topic filter's polite refusal, a 200.
        Row {
            id: "polite",
            at: D + 6_000,
            model: None,
            guards: Some(r#"[{"guard":"topics","outcome":"refused","detail":"denied","ms":1}]"#),
            latency: 5.0,
            ..BASE
        },
        // Flagged only, resolved and scored well: a success.
        Row {
            id: "ok2",
            at: D + 7_000,
            key: "k2",
            cache: Some("miss"),
            guards: Some(
                r#"[{"guard":"toxicity","outcome":"flagged","score":0.6,"detail":"","ms":2}]"#,
            ),
            cost: 80,
            baseline: 80,
            latency: 15.0,
            ..BASE
        },
        // Outside the range.
        Row {
            id: "later",
            at: D + 10 * DAY_MS,
            cost: 1_000_000,
            baseline: 1_000_000,
            latency: 1_000.0,
            ..BASE
        },
    ];
    store.write_batch(&rows.map(record)).unwrap();
    for f in [
        feedback("thumbsdown", "t1", Some(0.0), None),
        feedback("escalated", "t2", Some(1.0), Some("escalated")),
        feedback("ok2", "t1", Some(0.9), Some("resolved")),
        // Another tenant cannot score t1's request.
        feedback("ok2", "t2", Some(0.0), Some("escalated")),
    ] {
        store.add_feedback(&f).unwrap();
    }
}

const FROM: i64 = D - DAY_MS;
const TO: i64 = D + DAY_MS;

fn all() -> KpiFilter {
    KpiFilter::default()
}

fn semantic_hits_are_counted_apart_among_the_hits(b: &Backend) {
    let store = b.store();
    let rows = [
        Row {
            id: "exact",
            cache: Some("hit-exact"),
            ..BASE
        },
        Row {
            id: "semantic",
            cache: Some("hit-semantic"),
            ..BASE
        },
        Row {
            id: "miss",
            cache: Some("miss"),
            ..BASE
        },
    ];
    store.write_batch(&rows.map(record)).unwrap();
    let s = store.kpi_summary(FROM, TO, &all()).unwrap();
    assert_eq!(
        (s.cache_hits, s.cache_semantic_hits, s.cache_lookups),
        (2, 1, 3)
    );
}

fn the_summary_counts_successes_costs_savings_and_rates_exactly(b: &Backend) {
    let store = b.store();
    fill(store);
    let s = store.kpi_summary(FROM, TO, &all()).unwrap();
    let feedback = FeedbackStats {
        count: 3,
        mean_score: s.feedback.mean_score,
        positive: 2,
        negative: 1,
        with_outcome: 2,
        resolved: 1,
        escalated: 1,
        task_completion_rate: Some(0.5),
    };
    assert!((s.feedback.mean_score.unwrap() - 1.9 / 3.0).abs() < 1e-12);
    assert_eq!(
        s,
        KpiSummary {
            from_ms: FROM,
            to_ms: TO,
            requests: 9,
            answered: 7,
            // ok1, hit1, ok2; not replaced, thumbsdown, escalated, polite.
            successful: 3,
            errors: 1,
            client_errors: 1,
            guard_refusals: 2,
            guard_triggers: 4,
            cost_nanos: 600,
            // 600 / 9 = 66.7, rounded.
            cost_per_request_nanos: Some(67),
            cost_per_success_nanos: Some(200),
            baseline_cost_nanos: 2_000,
            saved_total_nanos: 1_400,
            saved_by_cache_nanos: 500,
            saved_by_routing_nanos: 900,
            cache_hits: 1,
            cache_semantic_hits: 0,
            cache_lookups: 4,
            cache_hit_rate: Some(0.25),
            escalated: 1,
            escalation_rate: Some(1.0 / 7.0),
            automation_rate: Some(1.0 - 1.0 / 7.0),
            feedback,
            latency_mean_ms: Some(173.0 / 9.0),
            // Sorted: 1 2 5 10 15 20 30 40 50; ranks 5 and 9.
            latency_p50_ms: Some(15.0),
            latency_p95_ms: Some(50.0),
            prompt_tokens: 90,
            completion_tokens: 45,
            shed: 0,
            preemptions: 0,
            queue_wait_mean_ms: None,
        }
    );
}

fn filters_narrow_the_summary_and_an_empty_range_has_no_ratios(b: &Backend) {
    let store = b.store();
    fill(store);
    let on_route = KpiFilter {
        route: Some("auto".into()),
        ..all()
    };
    let s = store.kpi_summary(FROM, TO, &on_route).unwrap();
    assert_eq!(
        (
            s.requests,
            s.successful,
            s.saved_by_cache_nanos,
            s.saved_by_routing_nanos
        ),
        (2, 2, 500, 900)
    );
    let t2 = KpiFilter {
        tenant: Some("t2".into()),
        ..all()
    };
    let s = store.kpi_summary(FROM, TO, &t2).unwrap();
    assert_eq!(
        (
            s.requests,
            s.answered,
            s.escalated,
            s.automation_rate,
            s.feedback.count
        ),
        (3, 1, 1, Some(0.0), 1)
    );
    assert_eq!(s.cost_per_success_nanos, None, "no success in t2");
    let k2_big = KpiFilter {
        key_id: Some("k2".into()),
        model: Some("big".into()),
        ..all()
    };
    assert_eq!(store.kpi_summary(FROM, TO, &k2_big).unwrap().requests, 1);

    let empty = store.kpi_summary(0, 1, &all()).unwrap();
    assert_eq!(
        empty,
        KpiSummary {
            from_ms: 0,
            to_ms: 1,
            ..KpiSummary::default()
        }
    );
}

fn groups_by_day_split_at_utc_midnight(b: &Backend) {
    let store = b.store();
    fill(store);
    let days = store.kpi_groups(FROM, TO, GroupBy::Day, &all()).unwrap();
    assert_eq!(days.len(), 2);
    let before = &days[0];
    assert_eq!(
        (before.key.as_deref(), before.bucket_ms),
        (Some("2024-10-03"), Some(D - DAY_MS))
    );
    let k = &before.kpi;
    assert_eq!(
        (
            k.requests,
            k.successful,
            k.errors,
            k.cost_nanos,
            k.baseline_cost_nanos,
            k.saved_by_cache_nanos,
            k.saved_by_routing_nanos,
            k.cost_per_success_nanos,
            k.latency_mean_ms,
            k.latency_p95_ms,
            k.feedback.count,
        ),
        (
            2,
            2,
            0,
            100,
            1_500,
            500,
            900,
            Some(50),
            Some(5.5),
            Some(10.0),
            0
        )
    );
    let after = &days[1];
    assert_eq!(
        (after.key.as_deref(), after.bucket_ms, after.kpi.requests),
        (Some("2024-10-04"), Some(D), 7)
    );
    // Every piece of feedback is on a request of the second day.
    assert_eq!(
        (after.kpi.feedback.count, after.kpi.feedback.resolved),
        (3, 1)
    );

    let hours = store.kpi_groups(FROM, TO, GroupBy::Hour, &all()).unwrap();
    assert_eq!(
        hours
            .iter()
            .map(|g| (g.key.as_deref().unwrap_or(""), g.kpi.requests))
            .collect::<Vec<_>>(),
        [("2024-10-03T23:00Z", 2), ("2024-10-04T00:00Z", 7)]
    );
}

fn groups_by_tenant_key_model_and_route(b: &Backend) {
    let store = b.store();
    fill(store);
    let keys = |by| {
        store
            .kpi_groups(FROM, TO, by, &all())
            .unwrap()
            .into_iter()
            .map(|g| (g.key, g.kpi.requests, g.kpi.cost_nanos))
            .collect::<Vec<_>>()
    };
    let s = |v: &str| Some(v.to_owned());
    assert_eq!(keys(GroupBy::Tenant), [(s("t1"), 6, 530), (s("t2"), 3, 70)]);
    assert_eq!(
        keys(GroupBy::Key),
        [(s("k1"), 4, 150), (s("k2"), 2, 380), (s("k3"), 3, 70)]
    );
    assert_eq!(
        keys(GroupBy::Model),
        [(None, 2, 0), (s("big"), 3, 300), (s("small"), 4, 300)]
    );
    // The routed miss and the hit on `auto:cheap` count under `auto`; the rest under none.
    assert_eq!(keys(GroupBy::Route), [(None, 7, 500), (s("auto"), 2, 100)]);
    let tenants = store.kpi_groups(FROM, TO, GroupBy::Tenant, &all()).unwrap();
    let feedback = |i: usize| {
        let k = &tenants[i].kpi;
        (k.feedback.count, k.escalated, k.automation_rate)
    };
    // t1: thumbs down and resolved (t2's word on ok2 does not count); t2: escalated.
    assert_eq!(feedback(0), (2, 0, Some(1.0)));
    assert_eq!(feedback(1), (1, 1, Some(0.0)));
}

fn the_trend_has_a_point_per_bucket_with_empty_ones_as_zeros(b: &Backend) {
    let store = b.store();
    fill(store);
    let points = store
        .kpi_trend(D - 2 * HOUR_MS, D + HOUR_MS, Bucket::Hour, &all())
        .unwrap();
    assert_eq!(
        points,
        [
            KpiPoint {
                bucket_ms: D - 2 * HOUR_MS,
                ..KpiPoint::default()
            },
            KpiPoint {
                bucket_ms: D - HOUR_MS,
                requests: 2,
                errors: 0,
                cost_nanos: 100,
                saved_nanos: 1_400,
                latency_p95_ms: Some(10.0),
                cache_hits: 1,
                guard_triggers: 0,
            },
            KpiPoint {
                bucket_ms: D,
                requests: 7,
                errors: 1,
                cost_nanos: 500,
                saved_nanos: 0,
                // Sorted: 2 5 15 20 30 40 50; rank 7.
                latency_p95_ms: Some(50.0),
                cache_hits: 0,
                // replaced (and masked), blocked, polite, flagged.
                guard_triggers: 4,
            },
        ]
    );
    // The whole of time: too many buckets to fill, so only the ones with requests.
    let sparse = store
        .kpi_trend(i64::MIN, i64::MAX, Bucket::Hour, &all())
        .unwrap();
    assert_eq!(
        sparse.iter().map(|p| p.bucket_ms).collect::<Vec<_>>(),
        [D - HOUR_MS, D, D + 10 * DAY_MS]
    );
    let days = store.kpi_trend(FROM, TO, Bucket::Day, &all()).unwrap();
    assert_eq!(days.iter().map(|p| p.requests).collect::<Vec<_>>(), [2, 7]);
}

fn minute_buckets_split_an_hour_into_points(b: &Backend) {
    let store = b.store();
    fill(store);
    let requests = |bucket: Bucket, from: i64, to: i64| {
        store
            .kpi_trend(from, to, bucket, &all())
            .unwrap()
            .iter()
            .map(|p| (p.bucket_ms, p.requests))
            .collect::<Vec<_>>()
    };
    const M: i64 = MINUTE_MS;
    // The two requests of the evening before are in its last minute, the rest in the
    // first minute of the day; every other minute is a zero.
    assert_eq!(
        requests(Bucket::Minute, D - 3 * M, D + 2 * M),
        [
            (D - 3 * M, 0),
            (D - 2 * M, 0),
            (D - M, 2),
            (D, 7),
            (D + M, 0)
        ]
    );
    // An hour is 60 points, not one.
    assert_eq!(requests(Bucket::Minute, D - HOUR_MS, D).len(), 60);
    assert_eq!(
        requests(Bucket::FiveMinutes, D - 10 * M, D + 10 * M),
        [(D - 10 * M, 0), (D - 5 * M, 2), (D, 7), (D + 5 * M, 0)]
    );
    assert_eq!(requests(Bucket::FifteenMinutes, FROM, TO).len(), 2 * 96);
    let groups = store
        .kpi_groups(FROM, TO, GroupBy::Minute, &all())
        .unwrap()
        .into_iter()
        .map(|g| (g.key.unwrap_or_default(), g.bucket_ms, g.kpi.requests))
        .collect::<Vec<_>>();
    assert_eq!(
        groups,
        [
            ("2024-10-03T23:59Z".to_owned(), Some(D - M), 2),
            ("2024-10-04T00:00Z".to_owned(), Some(D), 7)
        ]
    );
    let quarter = store
        .kpi_groups(FROM, TO, GroupBy::FifteenMinutes, &all())
        .unwrap();
    assert_eq!(
        quarter[0].key.as_deref(),
        Some("2024-10-03T23:45Z"),
        "{quarter:?}"
    );
    let guards = store
        .guard_triggers(FROM, TO, Bucket::Minute, &all())
        .unwrap();
    assert!(guards.iter().all(|g| g.bucket_ms == D), "{guards:?}");
    // As the admin API's query string names them.
    for (name, bucket) in [
        ("minute", Bucket::Minute),
        ("5min", Bucket::FiveMinutes),
        ("15min", Bucket::FifteenMinutes),
        ("hour", Bucket::Hour),
    ] {
        assert_eq!(
            serde_json::from_value::<Bucket>(serde_json::json!(name)).unwrap(),
            bucket
        );
    }
    assert_eq!(
        serde_json::from_value::<GroupBy>(serde_json::json!("5min")).unwrap(),
        GroupBy::FiveMinutes
    );
}

fn guard_triggers_count_every_verdict_but_pass(b: &Backend) {
    let store = b.store();
    fill(store);
    let got = store.guard_triggers(FROM, TO, Bucket::Day, &all()).unwrap();
    let t = |guard: &str, outcome: &str| GuardTrigger {
        bucket_ms: D,
        guard: guard.into(),
        outcome: outcome.into(),
        count: 1,
    };
    assert_eq!(
        got,
        [
            t("injection", "blocked"),
            t("pii", "masked"),
            t("topics", "refused"),
            t("toxicity", "flagged"),
            t("toxicity", "replaced"),
        ]
    );
    let t1 = KpiFilter {
        tenant: Some("t1".into()),
        ..all()
    };
    assert_eq!(
        store
            .guard_triggers(FROM, TO, Bucket::Day, &t1)
            .unwrap()
            .len(),
        4
    );
}

fn the_model_mix_shares_requests_and_cost(b: &Backend) {
    let store = b.store();
    fill(store);
    let mix = store.model_mix(FROM, TO, &all()).unwrap();
    let m = |model: Option<&str>, requests: u64, cost_nanos: u64| ModelShare {
        model: model.map(Into::into),
        requests,
        share: requests as f64 / 9.0,
        cost_nanos,
    };
    assert_eq!(
        mix,
        [
            m(Some("small"), 4, 300),
            m(Some("big"), 3, 300),
            m(None, 2, 0)
        ]
    );
}

fn the_request_list_filters_and_pages(b: &Backend) {
    let store = b.store();
    fill(store);
    let ids = |f: RequestFilter| {
        store
            .recent_requests(&f)
            .unwrap()
            .into_iter()
            .map(|r| r.request_id)
            .collect::<Vec<_>>()
    };
    let f = RequestFilter::default;
    assert_eq!(
        ids(RequestFilter {
            limit: Some(2),
            ..f()
        }),
        ["later", "ok2"]
    );
    assert_eq!(
        ids(RequestFilter {
            before_ms: Some(D),
            ..f()
        }),
        ["hit1", "ok1"]
    );
    assert_eq!(
        ids(RequestFilter {
            status_class: Some(StatusClass::ServerError),
            ..f()
        }),
        ["err"]
    );
    assert_eq!(
        ids(RequestFilter {
            cache: Some("hit".into()),
            ..f()
        }),
        ["hit1"]
    );
    assert_eq!(
        ids(RequestFilter {
            cache: Some("miss".into()),
            key_id: Some("k2".into()),
            ..f()
        }),
        ["ok2", "replaced"]
    );
    assert_eq!(
        ids(RequestFilter {
            guard_outcome: Some("blocked".into()),
            ..f()
        }),
        ["blocked"]
    );
    assert_eq!(
        ids(RequestFilter {
            status_class: Some(StatusClass::Success),
            tenant: Some("t1".into()),
            model: Some("small".into()),
            before_ms: Some(D + 10 * DAY_MS),
            ..f()
        }),
        ["ok2", "thumbsdown", "ok1"]
    );
    assert_eq!(
        ids(RequestFilter {
            route: Some("auto".into()),
            ..f()
        }),
        ["hit1", "ok1"]
    );
    let first = store.recent_requests(&f()).unwrap();
    assert_eq!(first.len(), 10);
    assert_eq!(
        first[0],
        record(Row {
            id: "later",
            at: D + 10 * DAY_MS,
            cost: 1_000_000,
            baseline: 1_000_000,
            latency: 1_000.0,
            ..BASE
        })
    );
}

fn a_request_refused_before_anything_was_known_still_counts(b: &Backend) {
    let store = b.store();
    let bare = RequestRecord {
        request_id: "bare".into(),
        started_at_ms: D,
        endpoint: "chat".into(),
        status: 401,
        latency_ms: 0.5,
        ..RequestRecord::default()
    };
    store.write_batch(&[bare]).unwrap();
    let s = store.kpi_summary(FROM, TO, &all()).unwrap();
    assert_eq!(
        (
            s.requests,
            s.client_errors,
            s.guard_refusals,
            s.cache_lookups
        ),
        (1, 1, 0, 0)
    );
    assert_eq!((s.cache_hit_rate, s.automation_rate), (None, None));
    let groups = store.kpi_groups(FROM, TO, GroupBy::Route, &all()).unwrap();
    assert_eq!(
        (groups[0].key.as_deref(), groups[0].kpi.requests),
        (None, 1)
    );
}

fn percentiles_are_exact_nearest_rank(b: &Backend) {
    let store = b.store();
    // 1..=100 ms in a shuffled order, and one request alone in the next hour.
    let mut rows: Vec<RequestRecord> = (0..100)
        .map(|i| {
            record(Row {
                id: "p",
                at: D + i,
                latency: ((i * 37) % 100 + 1) as f64,
                ..BASE
            })
        })
        .collect();
    rows.push(record(Row {
        id: "alone",
        at: D + HOUR_MS,
        latency: 7.5,
        ..BASE
    }));
    store.write_batch(&rows).unwrap();
    let s = store.kpi_summary(D, D + HOUR_MS, &all()).unwrap();
    assert_eq!(
        (s.latency_p50_ms, s.latency_p95_ms),
        (Some(50.0), Some(95.0))
    );
    let alone = store.kpi_summary(D + HOUR_MS, TO, &all()).unwrap();
    assert_eq!(
        (alone.latency_p50_ms, alone.latency_p95_ms),
        (Some(7.5), Some(7.5))
    );
}

fn every_report_exports_as_csv(b: &Backend) {
    let store = b.store();
    fill(store);
    let summary = to_csv(&[store.kpi_summary(FROM, TO, &all()).unwrap()]).unwrap();
    let header = summary.lines().next().unwrap();
    assert!(
        header.starts_with("from_ms,to_ms,requests,answered,successful,"),
        "{header}"
    );
    assert!(
        header.contains(",feedback.count,feedback.mean_score,"),
        "{header}"
    );
    let groups = store.kpi_groups(FROM, TO, GroupBy::Day, &all()).unwrap();
    let csv = to_csv(&groups).unwrap();
    let mut lines = csv.lines();
    assert!(lines
        .next()
        .unwrap()
        .starts_with("key,bucket_ms,from_ms,to_ms,requests,answered,successful,"));
    assert!(lines
        .next()
        .unwrap()
        .starts_with("2024-10-03,1727913600000,1727913600000,1728086400000,2,2,2,"));
    to_csv(&store.kpi_trend(FROM, TO, Bucket::Day, &all()).unwrap()).unwrap();
    to_csv(&store.guard_triggers(FROM, TO, Bucket::Day, &all()).unwrap()).unwrap();
    to_csv(&store.model_mix(FROM, TO, &all()).unwrap()).unwrap();
    let list = store.recent_requests(&RequestFilter::default()).unwrap();
    assert_eq!(to_csv(&list).unwrap().lines().count(), 11);
}

fn groups_by_priority_count_waits_sheds_and_preemptions(b: &Backend) {
    let store = b.store();
    let rec = |id: &str, priority: Option<&str>, status: u16, queue_ms: u64, preemptions: u32| {
        RequestRecord {
            request_id: id.into(),
            started_at_ms: D + 1_000,
            endpoint: "chat".into(),
            status,
            error_kind: (status == 503).then(|| "overloaded".into()),
            latency_ms: 10.0,
            priority: priority.map(Into::into),
            queue_ms,
            preemptions,
            ..RequestRecord::default()
        }
    };
    store
        .write_batch(&[
            rec("i1", Some("interactive"), 200, 0, 0),
            rec("i2", Some("interactive"), 200, 30, 0),
            rec("b1", Some("batch"), 200, 1_000, 2),
            rec("b2", Some("batch"), 503, 500, 0),
            rec("e1", None, 200, 0, 0),
        ])
        .unwrap();
    let groups = store
        .kpi_groups(D, D + DAY_MS, GroupBy::Priority, &KpiFilter::default())
        .unwrap();
    let seen: Vec<_> = groups
        .iter()
        .map(|g| {
            (
                g.key.clone(),
                g.kpi.requests,
                g.kpi.shed,
                g.kpi.preemptions,
                g.kpi.queue_wait_mean_ms,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (None, 1, 0, 0, None),
            (Some("batch".into()), 2, 1, 2, Some(750.0)),
            (Some("interactive".into()), 2, 0, 0, Some(15.0)),
        ]
    );
    let all = store
        .kpi_summary(D, D + DAY_MS, &KpiFilter::default())
        .unwrap();
    assert_eq!((all.shed, all.preemptions), (1, 2));
    // Over the requests with a class: (0 + 30 + 1000 + 500) / 4.
    assert_eq!(all.queue_wait_mean_ms, Some(382.5));
}
