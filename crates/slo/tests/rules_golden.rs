//! The Prometheus rules file for a representative set of SLOs, compared with a checked-in
//! copy. After a deliberate change, regenerate it with
//! `SWITCHYARD_UPDATE_GOLDEN=1 cargo test -p switchyard-slo --test rules_golden` and read the
//! diff.

use switchyard_slo::{default_rules, generate_rules, MetricNames, Objective, Scope, SloSpec};

const GOLDEN: &str = "tests/golden/rules.yaml";

#[test]
fn rules_match_the_golden_file() {
    let specs = [
        SloSpec::new("chat-availability", Objective::Availability, 0.999).with_scope(Scope {
            route: None,
            model: Some("small".into()),
        }),
        SloSpec::new(
            "chat-latency",
            Objective::Latency { threshold_ms: 2000 },
            0.95,
        ),
        SloSpec::new("chat-ttft", Objective::Ttft { threshold_ms: 500 }, 0.9)
            .with_window(7 * 86_400),
        SloSpec::new("auto-availability", Objective::Availability, 0.99).with_scope(Scope {
            route: Some("auto".into()),
            model: None,
        }),
        SloSpec::new("auto-quality", Objective::Quality, 0.95).with_scope(Scope {
            route: Some("auto".into()),
            model: None,
        }),
    ];
    let generated = generate_rules(&specs, &default_rules(), &MetricNames::default());
    assert!(generated.skipped.is_empty(), "{:?}", generated.skipped);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(GOLDEN);
    if std::env::var_os("SWITCHYARD_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &generated.yaml).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        generated.yaml, want,
        "regenerate {GOLDEN} if the change is deliberate"
    );
}
