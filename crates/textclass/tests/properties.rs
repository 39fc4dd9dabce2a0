//! Properties that must hold for any input text: untrusted bytes reach these functions from
//! users, tool results and model output.

use proptest::prelude::*;
use switchyard_textclass::injection::{Channel, Detector, PatternTier};
use switchyard_textclass::toxicity::ToxicityDetector;
use switchyard_textclass::{BinaryClassifier, LinearModel, NgramConfig, NgramFeaturizer};

fn classifier(max_bytes: usize) -> BinaryClassifier {
    let cfg = NgramConfig {
        buckets_log2: 10,
        max_bytes,
        ..NgramConfig::default()
    };
    let weights = (0..1024).map(|i| ((i % 7) as f32 - 3.0) / 10.0).collect();
    BinaryClassifier::new(
        cfg,
        LinearModel {
            weights,
            bias: -0.5,
        },
        0.5,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn features_are_sorted_finite_and_in_range(text in "\\PC{0,300}") {
        let f = NgramFeaturizer::new(NgramConfig { buckets_log2: 10, max_bytes: 128, ..NgramConfig::default() });
        let x = f.featurize(&text);
        prop_assert!(x.indices.windows(2).all(|w| w[0] < w[1]));
        prop_assert!(x.indices.iter().all(|&i| i < 1024));
        prop_assert!(x.values.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn detectors_score_any_text_in_unit_range(text in "\\PC{0,600}", indirect in any::<bool>()) {
        // A small window and byte cap so the window walk crosses multi-byte characters.
        let d = Detector::new(PatternTier::new().unwrap(), Some(classifier(64)), 0.5)
            .with_max_scan_bytes(400);
        let channel = if indirect { Channel::Indirect } else { Channel::User };
        let v = d.scan(&text, channel);
        prop_assert!((0.0..=1.0).contains(&v.score));
        prop_assert!(v.score >= v.pattern_score - 1e-6);
        prop_assert_eq!(v.injection, v.score >= v.threshold);

        let t = ToxicityDetector::new(Some(classifier(64)), 0.5).scan(&text);
        prop_assert!((0.0..=1.0).contains(&t.score));
    }
}
