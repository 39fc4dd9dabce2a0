//! The crate as the gateway and the eval use it: train heads, save an artifact, load it back,
//! build a router and decide.

use switchyard_route::{
    train_head, Artifact, Bars, Candidate, FeatureConfig, Featurizer, Policy, RouteRequest, Router,
    Rule, TrainConfig, TrainingData,
};

#[test]
fn trained_artifact_routes_easy_prompts_to_the_small_model() {
    let cfg = FeatureConfig {
        buckets_log2: 12,
        ..FeatureConfig::default()
    };
    let f = Featurizer::new(cfg.clone());
    let easy = [
        "say hello to bob",
        "greet my friend",
        "say thanks",
        "hello there",
    ];
    let hard = [
        "prove the theorem about primes",
        "derive the integral of the gamma function",
        "prove the lemma by induction",
        "derive the bound for the theorem",
    ];
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for _ in 0..5 {
        for t in easy {
            xs.push(f.featurize(t, None));
            ys.push(1.0);
        }
        for t in hard {
            xs.push(f.featurize(t, None));
            ys.push(0.0);
        }
    }
    let head = train_head("small", &xs, &ys, cfg.dim(), &TrainConfig::default());
    let artifact = Artifact::from_heads(
        TrainingData {
            description: "toy".into(),
            rows: xs.len(),
            licence: "Apache-2.0".into(),
        },
        cfg,
        TrainConfig::default(),
        Bars {
            cheap: 0.3,
            balanced: 0.6,
        },
        &[head],
        0.0,
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("router.json");
    artifact.save(&path).unwrap();
    let loaded = Artifact::load(&path).unwrap();

    let router = Router::new(
        vec![Candidate::new("small", 1), Candidate::new("large", 2)],
        vec![Rule::key("pinned", "key-research", "large")],
        switchyard_route::Estimator::Linear(loaded.classifier()),
        loaded.bars,
    )
    .unwrap();

    let easy = router.decide(
        &RouteRequest::prompt("say hello to alice"),
        Policy::Balanced,
    );
    assert_eq!(easy.model, "small", "{}", easy.header_value());
    let hard = router.decide(
        &RouteRequest::prompt("prove the theorem by induction"),
        Policy::Balanced,
    );
    assert_eq!(hard.model, "large", "{}", hard.header_value());
    assert_eq!(
        router
            .decide(&RouteRequest::prompt("say hello"), Policy::Best)
            .model,
        "large"
    );
    let pinned = router.decide(
        &RouteRequest {
            prompt: "say hello",
            key: Some("key-research"),
            ..RouteRequest::default()
        },
        Policy::Cheap,
    );
    assert_eq!(pinned.rule.as_deref(), Some("pinned"));
}
