use super::*;
use crate::neighbours_fit::{fit, FitInput, LabelledRow};

/// Two clusters of prompts: around axis 0 the cheap model is always enough, around axis 1
/// never; lengths carry no signal.
fn toy_rows() -> Vec<LabelledRow> {
    (0..40)
        .map(|i| {
            let easy = i % 2 == 0;
            let mut v = vec![0.0f32; 4];
            v[usize::from(!easy)] = 1.0;
            v[2] = (i as f32 * 0.37).sin() * 0.2;
            v[3] = (i as f32 * 0.11).cos() * 0.2;
            LabelledRow {
                vector: v,
                chars: 100 + (i * 7) % 50,
                source: 0,
                category: u16::from(!easy),
                labels: vec![f32::from(u8::from(easy))],
                fold: (i % 5) as u8,
            }
        })
        .collect()
}

fn toy_input() -> FitInput {
    FitInput {
        embedder: EmbedderFingerprint {
            name: "toy".into(),
            dim: 4,
            probes: vec!["a".into()],
            probe_vectors: encode_f32(&[1.0, 0.0, 0.0, 0.0]),
        },
        sources: vec![SourceInfo {
            name: "toy".into(),
            description: "toy prompts".into(),
        }],
        categories: vec!["easy".into(), "hard".into()],
        heads: vec!["cheap".into()],
        rows: toy_rows(),
    }
}

/// Ranking quality of scores against labels: the share of (easy, hard) pairs ordered right.
fn auc(scores: &[f32], labels: &[f32]) -> f64 {
    let mut right = 0.0;
    let mut pairs = 0.0;
    for (s1, l1) in scores.iter().zip(labels) {
        for (s2, l2) in scores.iter().zip(labels) {
            if *l1 > 0.5 && *l2 < 0.5 {
                pairs += 1.0;
                if s1 > s2 {
                    right += 1.0;
                }
            }
        }
    }
    right / pairs
}

/// The estimator fitted on the toy rows, settings chosen by AUC.
fn toy_fit() -> Neighbours {
    let labels: Vec<f32> = toy_rows().iter().map(|r| r.labels[0]).collect();
    fit(toy_input(), |_, s| auc(s, &labels)).unwrap().neighbours
}

#[test]
fn fit_separates_the_clusters_and_estimates_new_prompts() {
    let labels: Vec<f32> = toy_rows().iter().map(|r| r.labels[0]).collect();
    let fitted = fit(toy_input(), |_, s| auc(s, &labels)).unwrap();
    assert!(auc(&fitted.out_of_fold[0], &labels) > 0.99);
    let n = fitted.neighbours;
    let easy = n.estimate(&unit(&[1.0, 0.0, 0.1, 0.15]), 120);
    let hard = n.estimate(&unit(&[0.0, 1.0, -0.1, 0.15]), 120);
    assert!(easy[0].probability > 0.8, "{easy:?}");
    assert!(hard[0].probability < 0.2, "{hard:?}");
    assert!(easy[0].neighbour_rate > 0.9 && hard[0].neighbour_rate < 0.1);
    assert_eq!(easy[0].kinds, vec![("toy prompts".to_owned(), 1.0)]);
}

#[test]
fn stored_form_round_trips_and_is_checked() {
    let stored = toy_fit().stored();
    let json = serde_json::to_string(&stored).unwrap();
    let back: StoredNeighbours = serde_json::from_str(&json).unwrap();
    let n = Neighbours::new(back.clone()).unwrap();
    assert_eq!(n.rows(), 40);
    // The loaded estimator keeps only the decoded rows and encodes the same text again.
    assert_eq!(n.stored(), back);
    let mut bad = back.clone();
    bad.vectors = "%%%".into();
    assert_eq!(
        Neighbours::new(bad).unwrap_err(),
        NeighbourError::Encoding("vectors")
    );
    let mut bad = back.clone();
    bad.settings.k = 0;
    assert!(matches!(
        Neighbours::new(bad),
        Err(NeighbourError::Invalid(_))
    ));
    let mut bad = back;
    bad.heads[0].category_rates.pop();
    assert!(matches!(
        Neighbours::new(bad),
        Err(NeighbourError::Invalid(_))
    ));
}

#[test]
fn embedder_fingerprint_is_checked() {
    let n = toy_fit();
    assert!(n.check_embedder(|_| vec![2.0, 0.0, 0.0, 0.0]).is_ok());
    let err = n.check_embedder(|_| vec![0.0, 1.0, 0.0, 0.0]).unwrap_err();
    assert!(err.contains("not the `toy`"), "{err}");
    let err = n.check_embedder(|_| vec![1.0; 3]).unwrap_err();
    assert!(err.contains("4 dimensions"), "{err}");
}

#[test]
fn shorter_prompts_score_higher_when_length_is_weighted() {
    let mut stored = toy_fit().stored();
    stored.settings.length_weight = 1.0;
    let n = Neighbours::new(stored).unwrap();
    let q = [0.5, 0.5, 0.0, 0.0];
    let short = &n.estimate(&q, 10)[0];
    let long = &n.estimate(&q, 2000)[0];
    assert!(short.length_term > 0.0 && long.length_term < 0.0);
    assert!(short.probability > long.probability);
}

#[test]
fn quantised_vectors_keep_their_similarities() {
    let a = unit(&[0.3, -0.2, 0.9, 0.1]);
    let b = unit(&[0.25, -0.1, 0.95, 0.0]);
    let exact: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
    let (qa, qb) = (quantise(&a), quantise(&b));
    let approx = qa
        .iter()
        .zip(&qb)
        .map(|(x, y)| i32::from(*x) * i32::from(*y))
        .sum::<i32>() as f32
        / (127.0 * 127.0);
    assert!((exact - approx).abs() < 0.02, "{exact} {approx}");
}

#[test]
fn neighbours_unlike_the_prompt_count_for_nothing() {
    let mut stored = toy_fit().stored();
    let [low, high] = stored.settings.familiarity;
    assert!(
        low > 0.5 && high >= low,
        "the training rows' own similarities: {low} {high}"
    );
    stored.settings.familiarity = [0.6, 0.9];
    let n = Neighbours::new(stored).unwrap();
    // Orthogonal to both clusters: the closest similarity is far below what training saw.
    let stranger = &n.estimate(&[0.0, 0.0, 0.0, 1.0], 120)[0];
    assert_eq!(stranger.trust, 0.0);
    assert_eq!(
        (stranger.neighbour_term, stranger.category_term),
        (0.0, 0.0)
    );
    let familiar = &n.estimate(&unit(&[1.0, 0.0, 0.1, 0.15]), 120)[0];
    assert_eq!(familiar.trust, 1.0);
    assert!(familiar.neighbour_term > 0.0);
}

#[test]
fn the_lane_dot_product_matches_the_plain_one() {
    for width in [0usize, 5, 16, 37, 256] {
        let a: Vec<i16> = (0..width).map(|i| (i as i16 * 7) % 127 - 63).collect();
        let b: Vec<i16> = (0..width).map(|i| (i as i16 * 13) % 127 - 60).collect();
        let plain: i32 = a
            .iter()
            .zip(&b)
            .map(|(x, y)| i32::from(*x) * i32::from(*y))
            .sum();
        assert_eq!(dot(&a, &b), plain, "width {width}");
    }
}
