//! Nothing a caller sends becomes a metric label value: made-up and huge model names, route
//! policy numbers (in the model's suffix and in the header), embeddings models, and the words a
//! semantic cache guard quotes. `/metrics` keeps the same series however many of them come.
//!
//! Alone in its own test binary: the metrics recorder is process-wide, so another test's
//! requests would add series of their own between the two counts.
//!
//! The semantic tier needs the static embedding model (`scripts/fetch-models.sh`).

#![expect(clippy::unwrap_used, clippy::panic, reason = "test code")]

mod common;

use std::collections::BTreeSet;

use common::{start, user, TestGateway, KEY};
use futures::StreamExt;
use serde_json::{json, Value};

fn config() -> String {
    let embedder = common::static_embedder();
    format!(
        r#"
[providers.sim]
kind = "sim"
seed = 7
[providers.sim.models.s]
ttft_ms = {{ p50 = 0 }}
output_tokens = {{ p50 = 4 }}
[providers.sim.models.f]
ttft_ms = {{ p50 = 0 }}
output_tokens = {{ p50 = 4 }}

[models.small]
deployments = [{{ provider = "sim", upstream_model = "s" }}]
price = {{ input_per_mtok = 0.15, output_per_mtok = 0.60 }}
quality_tier = 1
[models.frontier]
deployments = [{{ provider = "sim", upstream_model = "f" }}]
price = {{ input_per_mtok = 5.0, output_per_mtok = 15.0 }}
quality_tier = 3

[routes.auto]
candidates = [
  {{ model = "small", head = "mistralai/Mixtral-8x7B-Instruct-v0.1" }},
  {{ model = "frontier" }},
]
router = "builtin:routellm-mixtral-gpt4.v1"
# Every prompt goes to `small` by rule, so which series a request adds never depends on the
# classifier's view of its words.
[[routes.auto.rules]]
name = "all"
prompt_regex = "."
model = "small"

[cache]
embedder = "{embedder}"
threshold = 0.8

[[keys]]
id = "test"
tenant = "acme"
secret_sha256 = "{{KEY}}"
"#
    )
}

/// Every series `/metrics` shows: the name with its labels, without the value.
async fn series(gw: &TestGateway) -> BTreeSet<String> {
    gw.metrics()
        .await
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.rsplit_once(' ').map(|(s, _)| s.to_owned()))
        .collect()
}

/// Every value the label `name` takes in `/metrics`.
fn label_values(text: &str, name: &str) -> BTreeSet<String> {
    let needle = format!("{name}=\"");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .flat_map(|l| {
            l.match_indices(&needle).filter_map(|(i, _)| {
                let rest = &l[i + needle.len()..];
                rest.find('"').map(|end| rest[..end].to_owned())
            })
        })
        .collect()
}

/// One request of each kind a caller controls, the `i`th of its kind; returns its status.
async fn send(gw: &TestGateway, kind: &str, i: usize) -> u16 {
    let chat = |body: Value| gw.chat(body);
    let request = match kind {
        "unknown model" => {
            chat(json!({"model": format!("madeup-model-{i}"), "messages": user("hi")}))
        }
        // Five of these are what took 61 MB in the report.
        "huge model" => chat(json!({
            "model": format!("madeup-huge-{i}-{}", "x".repeat(200_000)),
            "messages": user("hi"),
        })),
        "policy suffix" => chat(json!({
            "model": format!("auto:0.{}", 100_000 + i),
            "messages": user(&format!("Translate word {i} into Spanish.")),
        }))
        .header("x-switchyard-cache-control", "bypass"),
        "bad policy suffix" => chat(json!({
            "model": format!("auto:madeup-policy-{i}"),
            "messages": user("hi"),
        })),
        "policy header" => chat(json!({
            "model": "auto",
            "messages": user(&format!("Name a colour, number {i}.")),
        }))
        .header("x-switchyard-route-policy", format!("0.{}", 200_000 + i))
        .header("x-switchyard-cache-control", "bypass"),
        "embeddings model" => gw
            .http
            .post(gw.url("/v1/embeddings"))
            .bearer_auth(KEY)
            .json(&json!({"model": format!("madeup-embed-{i}"), "input": "hi"})),
        other => panic!("no request kind {other}"),
    };
    request.send().await.unwrap().status().as_u16()
}

const KINDS: [&str; 6] = [
    "unknown model",
    "huge model",
    "policy suffix",
    "bad policy suffix",
    "policy header",
    "embeddings model",
];

/// Two questions that differ in one made-up name: the second is close to the first and the
/// cache's false-hit guard refuses it, quoting both names.
async fn guarded_pair(gw: &TestGateway, i: usize) {
    for name in [format!("Madeupzor{i}"), format!("Madeupqix{i}")] {
        let r = gw
            .chat(json!({
                "model": "auto:cheap",
                "temperature": 0,
                "messages": user(&format!("What is the capital city of the country {name}?")),
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
}

#[tokio::test]
async fn caller_values_never_become_metric_labels() {
    let gw = start(&config()).await;
    // One of each kind first: the series a request of that kind adds (under `unknown`, `bar`
    // and the like) exist from here on.
    let mut statuses = Vec::new();
    for kind in KINDS {
        statuses.push((kind, send(&gw, kind, 0).await));
    }
    guarded_pair(&gw, 0).await;
    let before = series(&gw).await;
    assert!(
        statuses.iter().all(|(_, s)| [200, 400, 404].contains(s)),
        "{statuses:?}"
    );

    // Then many of each, each with a value never seen.
    let mut jobs = Vec::new();
    for kind in KINDS {
        let count = if kind == "huge model" { 4 } else { 150 };
        jobs.extend((1..=count).map(move |i| (kind, i)));
    }
    let answered: Vec<(&str, u16)> = futures::stream::iter(jobs)
        .map(|(kind, i)| {
            let gw = &gw;
            async move { (kind, send(gw, kind, i).await) }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    for (kind, status) in &answered {
        let first = statuses.iter().find(|(k, _)| k == kind).unwrap().1;
        assert_eq!(*status, first, "{kind}");
    }
    for i in 1..=20 {
        guarded_pair(&gw, i).await;
    }

    let after = series(&gw).await;
    let new: Vec<&String> = after.difference(&before).collect();
    assert!(
        new.is_empty(),
        "{} series appeared for values callers made up, e.g. {:?}",
        new.len(),
        new.iter()
            .take(3)
            .map(|s| s.chars().take(200).collect::<String>())
            .collect::<Vec<_>>()
    );
    let text = gw.metrics().await;
    assert!(!text.contains("adeup"), "a made-up name is in /metrics");
    for (label, allowed) in [
        (
            "model",
            &[
                "",
                "unknown",
                "small",
                "frontier",
                "auto",
                "auto:cheap",
                "auto:bar",
            ][..],
        ),
        (
            "route",
            &["", "unknown", "auto", "auto:cheap", "auto:bar"][..],
        ),
        ("policy", &["cheap", "balanced", "best", "bar"][..]),
    ] {
        let values = label_values(&text, label);
        assert!(
            values.iter().all(|v| allowed.contains(&v.as_str())),
            "{label}: {values:?}"
        );
    }
    // The guard refused candidates, and is counted by the kind of its reason (`reason` is
    // also lost records' fixed words, such as `queue_full`).
    let reasons = label_values(&text, "reason");
    assert!(!reasons.is_empty(), "the cache guard refused nothing");
    assert!(
        reasons
            .iter()
            .all(|r| r.chars().all(|c| c.is_ascii_lowercase() || c == '_')),
        "{reasons:?}"
    );
}
