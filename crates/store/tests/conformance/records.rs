//! Records, feedback, content, calibration and SLO state.

use switchyard_store::routing::CalibrationRow;
use switchyard_store::{
    ContentAnswer, ContentMessage, ContentToolCall, Feedback, RequestContent, RequestRecord, Served,
};

use crate::{conformance, Backend};

conformance!(
    only_the_first_negative_from_the_tenant_is_first,
    writes_reads_and_sums_spend,
    every_column_of_a_record_reads_back,
    served_outcomes_are_the_provider_answers_of_one_model_prompt_or_version,
    content_is_written_with_its_record_and_read_back,
    the_purge_deletes_old_content_and_keeps_the_records,
    feedback_joins_routed_requests_of_the_same_tenant,
    the_slo_state_is_replaced_whole,
);

fn rec(id: &str, key: &str, at: i64, cost: u64) -> RequestRecord {
    RequestRecord {
        request_id: id.into(),
        started_at_ms: at,
        endpoint: "chat".into(),
        key_id: Some(key.into()),
        status: 200,
        cost_nanos: cost,
        ..RequestRecord::default()
    }
}

fn only_the_first_negative_from_the_tenant_is_first(b: &Backend) {
    let store = b.store();
    let f = |tenant: &str, score: Option<f64>| Feedback {
        request_id: "r".into(),
        tenant: tenant.into(),
        score,
        ..Feedback::default()
    };
    assert!(!store.add_feedback(&f("t", Some(0.9))).unwrap());
    assert!(!store.add_feedback(&f("t", None)).unwrap());
    // Another tenant's word is its own (the caller checks whose request it is).
    assert!(store.add_feedback(&f("other", Some(0.0))).unwrap());
    assert!(store.add_feedback(&f("t", Some(0.2))).unwrap());
    assert!(!store.add_feedback(&f("t", Some(0.0))).unwrap());
    assert!(!store.add_feedback(&f("t", Some(1.0))).unwrap());
    assert_eq!(store.feedback_for("r").unwrap().len(), 6);
    assert!(store.request("r").unwrap().is_none());
    store.write_batch(&[rec("r", "k", 5, 0)]).unwrap();
    assert_eq!(store.request("r").unwrap(), Some(rec("r", "k", 5, 0)));
}

fn writes_reads_and_sums_spend(b: &Backend) {
    let store = b.store();
    store
        .write_batch(&[
            rec("a", "k1", 100, 5),
            rec("b", "k1", 200, 7),
            rec("c", "k2", 300, 11),
        ])
        .unwrap();
    assert_eq!(store.spend_since("k1", 150).unwrap(), 7);
    assert_eq!(store.spend_since("k1", 0).unwrap(), 12);
    let recent = store.recent(2).unwrap();
    assert_eq!(
        recent
            .iter()
            .map(|r| r.request_id.as_str())
            .collect::<Vec<_>>(),
        ["c", "b"]
    );
    assert_eq!(recent[0], rec("c", "k2", 300, 11));
    store.check_writable().unwrap();
}

fn with_content(id: &str, at: i64, content: Option<RequestContent>) -> RequestRecord {
    RequestRecord {
        request_id: id.into(),
        started_at_ms: at,
        endpoint: "chat".into(),
        status: 200,
        content: content.map(Box::new),
        ..RequestRecord::default()
    }
}

fn conversation(text: &str) -> RequestContent {
    RequestContent {
        messages: vec![
            ContentMessage {
                role: "system".into(),
                text: "Be brief.".into(),
                ..ContentMessage::default()
            },
            ContentMessage {
                role: "user".into(),
                text: text.into(),
                ..ContentMessage::default()
            },
        ],
        omitted_messages: 0,
        answer: Some(ContentAnswer {
            text: "Done.".into(),
            tool_calls: vec![ContentToolCall {
                name: "send".into(),
                arguments: r#"{"to":"<EMAIL_1>"}"#.into(),
            }],
            finish_reason: Some("tool_calls".into()),
        }),
    }
}

fn content_is_written_with_its_record_and_read_back(b: &Backend) {
    let store = b.store();
    store
        .write_batch(&[
            with_content("a", 1, Some(conversation("mail <EMAIL_1>"))),
            with_content("b", 2, None),
        ])
        .unwrap();
    assert_eq!(
        store.request_content("a").unwrap(),
        Some(conversation("mail <EMAIL_1>"))
    );
    assert_eq!(store.request_content("b").unwrap(), None);
    // The record itself reads as before, without its content.
    assert_eq!(
        store.request("a").unwrap().unwrap(),
        with_content("a", 1, None)
    );
}

fn the_purge_deletes_old_content_and_keeps_the_records(b: &Backend) {
    let store = b.store();
    let records: Vec<RequestRecord> = (0..12_000)
        .map(|i| with_content(&format!("r{i}"), i, Some(conversation("hi"))))
        .collect();
    store.write_batch(&records).unwrap();
    // More than one chunk goes.
    assert_eq!(store.purge_content(11_000).unwrap(), 11_000);
    assert_eq!(store.request_content("r10999").unwrap(), None);
    assert!(store.request_content("r11000").unwrap().is_some());
    assert_eq!(store.purge_content(11_000).unwrap(), 0);
    assert_eq!(store.count().unwrap(), 12_000);
}

fn feedback_joins_routed_requests_of_the_same_tenant(b: &Backend) {
    let store = b.store();
    let rec = |id: &str, model: &str, tenant: &str| RequestRecord {
        request_id: id.into(),
        started_at_ms: 1_000,
        endpoint: "chat".into(),
        tenant: Some(tenant.into()),
        requested_model: Some(model.into()),
        route: Some(format!("{{\"id\": \"{id}\"}}")),
        status: 200,
        ..RequestRecord::default()
    };
    store
        .write_batch(&[
            rec("a", "auto", "t1"),
            rec("b", "auto:cheap", "t1"),
            rec("c", "autopilot", "t1"),
            rec("d", "auto", "t2"),
        ])
        .unwrap();
    let fb = |id: &str, tenant: &str, score: f64| Feedback {
        request_id: id.into(),
        key_id: "k".into(),
        tenant: tenant.into(),
        created_at_ms: 2_000,
        score: Some(score),
        ..Feedback::default()
    };
    for f in [
        fb("a", "t1", 1.0),
        fb("a", "t1", 0.5),
        fb("b", "t1", 0.0),
        fb("c", "t1", 1.0),
        fb("d", "t1", 1.0), // another tenant's request: ignored
    ] {
        store.add_feedback(&f).unwrap();
    }
    let mut got: Vec<(String, f64)> = store
        .routed_feedback("auto", 0)
        .unwrap()
        .into_iter()
        .map(|r| (r.decision, r.score))
        .collect();
    got.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(
        got,
        vec![
            ("{\"id\": \"a\"}".to_owned(), 0.75),
            ("{\"id\": \"b\"}".to_owned(), 0.0)
        ]
    );
    assert_eq!(store.route_rows("auto", 0).unwrap().len(), 3);
    assert!(store.routed_feedback("auto", 5_000).unwrap().is_empty());

    let row = CalibrationRow {
        route: "auto".into(),
        at_ms: 3,
        base: (0.7, 0.8),
        bars: (0.7, 0.81),
        report: "{}".into(),
    };
    store.add_calibration(&row).unwrap();
    assert_eq!(store.latest_calibration("auto").unwrap(), Some(row));
    assert_eq!(store.latest_calibration("other").unwrap(), None);
}

fn every_column_of_a_record_reads_back(b: &Backend) {
    let store = b.store();
    let full = RequestRecord {
        request_id: "full".into(),
        started_at_ms: 1_700_000_000_123,
        endpoint: "chat".into(),
        tenant: Some("t".into()),
        key_id: Some("k".into()),
        requested_model: Some("auto:cheap".into()),
        model: Some("small".into()),
        deployment: Some("sim/small-v2".into()),
        attempts: 3,
        fallback_from: Some("big".into()),
        stream: true,
        status: 499,
        error_kind: Some("client_closed".into()),
        latency_ms: 1234.5,
        ttft_ms: Some(12.25),
        prompt_tokens: 4_000_000_000,
        completion_tokens: 7,
        usage_counted: true,
        cost_nanos: 9_000_000_000_000_000_000,
        route: Some(r#"{"policy":"cheap"}"#.into()),
        cache: Some("miss".into()),
        guards: Some(r#"[{"guard":"pii","outcome":"masked"}]"#.into()),
        config_version: Some("abcdef012345".into()),
        baseline_cost_nanos: 42,
        cache_similarity: Some(0.875),
        prompt: Some("qa@3".into()),
        rollout: Some("r1:candidate".into()),
        priority: Some("batch".into()),
        queue_ms: 1_500,
        preemptions: 2,
        content: None,
    };
    let bare = RequestRecord {
        request_id: "bare".into(),
        ..RequestRecord::default()
    };
    store.write_batch(&[full.clone(), bare.clone()]).unwrap();
    store.write_batch(&[]).unwrap();
    assert_eq!(store.request("full").unwrap(), Some(full.clone()));
    assert_eq!(store.request("bare").unwrap(), Some(bare.clone()));
    assert_eq!(store.request("none").unwrap(), None);
    assert_eq!(store.recent(10).unwrap(), [full, bare]);
    assert_eq!(store.count().unwrap(), 2);
}

fn served_outcomes_are_the_provider_answers_of_one_model_prompt_or_version(b: &Backend) {
    let store = b.store();
    let rec = |id: &str, at: i64, deployment: &str, status: u16| RequestRecord {
        request_id: id.into(),
        started_at_ms: at,
        endpoint: "chat".into(),
        model: Some("small".into()),
        prompt: Some("qa@2".into()),
        config_version: Some("abc".into()),
        deployment: Some(deployment.into()),
        status,
        latency_ms: at as f64,
        ttft_ms: Some(1.5),
        stream: at % 2 == 0,
        guards: Some("[]".into()),
        ..RequestRecord::default()
    };
    let embedding = RequestRecord {
        endpoint: "embeddings".into(),
        ..rec("emb", 15, "sim/small", 200)
    };
    store
        .write_batch(&[
            rec("a", 10, "sim/small", 200),
            rec("b", 20, "sim/small", 502),
            rec("hit", 25, "cache", 200),
            rec("refused", 26, "guard", 200),
            rec("c", 30, "sim/small", 200),
            rec("late", 40, "sim/small", 200),
            embedding,
        ])
        .unwrap();
    for served in [
        Served::Model("small"),
        Served::Prompt("qa@2"),
        Served::ConfigVersion("abc"),
    ] {
        let got = store.served_outcomes(served, 10, 40, 10).unwrap();
        let seen: Vec<(u16, f64, bool)> = got
            .iter()
            .map(|o| (o.status, o.latency_ms, o.stream))
            .collect();
        assert_eq!(
            seen,
            [(200, 30.0, true), (502, 20.0, true), (200, 10.0, true)]
        );
        assert!(got
            .iter()
            .all(|o| o.ttft_ms == Some(1.5) && o.guards.as_deref() == Some("[]")));
        assert_eq!(store.served_outcomes(served, 10, 40, 2).unwrap().len(), 2);
    }
    assert!(store
        .served_outcomes(Served::Model("big"), 0, 100, 10)
        .unwrap()
        .is_empty());
}

fn the_slo_state_is_replaced_whole(b: &Backend) {
    let store = b.store();
    assert_eq!(store.slo_state().unwrap(), None);
    store.save_slo_state(r#"{"v":1}"#, 1).unwrap();
    store
        .save_slo_state(r#"{"v":2, "more": [1, 2]}"#, 2)
        .unwrap();
    assert_eq!(
        store.slo_state().unwrap().as_deref(),
        Some(r#"{"v":2, "more": [1, 2]}"#)
    );
}
