//! The shipped router artifacts must keep loading and scoring bit for bit the same when the
//! crate's internals move. The expected bits were recorded with the router as it was before
//! its featurizer and trainer moved to `switchyard-textclass`; any change to the hashing,
//! tokenisation, numeric signals or training order shows up here.
#![expect(clippy::unwrap_used, reason = "test code")]

use std::path::PathBuf;

use switchyard_route::{train_head, Artifact, FeatureConfig, Featurizer, TrainConfig};

fn artifact(name: &str) -> Artifact {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../eval/artifacts")
        .join(name);
    Artifact::load(&path).unwrap()
}

const PROMPTS: [&str; 5] = [
    "What is the capital of France?",
    "Prove that there are infinitely many primes.\nA. yes\nB. no",
    "```rust\nfn main() { println!(\"hi\"); }\n```\nWhy does this not compile?",
    "Janet has 3 apples and buys 2*4 more; how many does she have?",
    "Écris un poème sur la mer, s'il te plaît 🌊",
];

fn bits(name: &str) -> Vec<Vec<u32>> {
    let clf = artifact(name).classifier();
    PROMPTS
        .iter()
        .map(|p| {
            clf.predict_all(p, None)
                .iter()
                .map(|(_, v)| v.to_bits())
                .collect()
        })
        .collect()
}

#[test]
fn routellm_artifact_predicts_as_before() {
    let expected: [[u32; 1]; 5] = [
        [0x3f459423],
        [0x3f56468b],
        [0x3f52d037],
        [0x3f362eb3],
        [0x3f45aac8],
    ];
    assert_eq!(bits("routellm-mixtral-gpt4.v1.json"), expected);
}

#[test]
fn alpacaeval_artifact_predicts_as_before() {
    let expected: [[u32; 3]; 5] = [
        [0x3da4aa3c, 0x3e4ec7a2, 0x3dfb9e35],
        [0x3e1dbee6, 0x3eb5f907, 0x3eabfa20],
        [0x3d76222a, 0x3e4c9339, 0x3e181b54],
        [0x3d50ffb7, 0x3e9b8d1a, 0x3e88b7ed],
        [0x3e2a52db, 0x3e22a4a4, 0x3e41e534],
    ];
    assert_eq!(bits("alpacaeval-4tier.v1.json"), expected);
}

fn fnv(h: u64, x: u64) -> u64 {
    (h ^ x).wrapping_mul(0x0000_0100_0000_01b3)
}

#[test]
fn features_and_training_are_unchanged() {
    let cfg = FeatureConfig {
        buckets_log2: 12,
        dense_dim: 2,
        ..FeatureConfig::default()
    };
    let f = Featurizer::new(cfg.clone());
    let xs: Vec<_> = PROMPTS
        .iter()
        .map(|p| f.featurize(p, Some(&[0.5, -0.25])))
        .collect();
    let ys = [1.0, 0.0, 0.3, 0.0, 1.0];
    let head = train_head("m", &xs, &ys, cfg.dim(), &TrainConfig::default());
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for w in head
        .linear
        .weights
        .iter()
        .chain(std::iter::once(&head.linear.bias))
    {
        h = fnv(h, u64::from(w.to_bits()));
    }
    let mut fh: u64 = 0xcbf2_9ce4_8422_2325;
    for x in &xs {
        for (i, v) in x.indices.iter().zip(&x.values) {
            fh = fnv(fh, u64::from(*i) ^ (u64::from(v.to_bits()) << 32));
        }
    }
    assert_eq!(fh, 0x8d8b_7b42_f5b3_23af, "features moved");
    assert_eq!(h, 0x2b20_f49c_cd54_a2f6, "training changed");
}
