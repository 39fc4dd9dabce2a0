//! Feature flags: switch behaviour per user at once, with no deploy.
//!
//! A flag is data (serialised as JSON so the gateway stores and versions it); evaluating it
//! is a pure function of the flag and the user's key. Percentages and variants use the same
//! sticky buckets as rollouts ([`crate::bucket`]), seeded by the flag's key, so a user keeps
//! their value on every replica and after every restart, and raising a percentage only adds
//! users. Flags with different keys split users independently (a flag whose key equals a
//! rollout's id splits them as that rollout does).

use serde::{Deserialize, Serialize};

use crate::split::{bucket, in_candidate, BASIS_POINTS};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flag {
    pub key: String,
    pub kind: FlagKind,
    /// A disabled flag is off for everyone, whatever its kind says.
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum FlagKind {
    /// On or off for everyone.
    Boolean { on: bool },
    /// On for this share of users.
    Percentage { basis_points: u16 },
    /// One named variant per user, in proportion to the weights.
    Variant { variants: Vec<WeightedVariant> },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedVariant {
    pub name: String,
    pub weight: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlagValue {
    Off,
    On,
    Variant(String),
}

impl Flag {
    /// Every problem with the flag, for the config validator.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.key.trim().is_empty() {
            out.push("a flag needs a key".to_string());
        }
        match &self.kind {
            FlagKind::Boolean { .. } => {}
            FlagKind::Percentage { basis_points } => {
                if *basis_points > BASIS_POINTS {
                    out.push(format!(
                        "basis_points is at most {BASIS_POINTS} (100%), got {basis_points}"
                    ));
                }
            }
            FlagKind::Variant { variants } => {
                if variants.iter().all(|v| v.weight == 0) {
                    out.push("a variant flag needs a variant of weight above 0".to_string());
                }
                for (i, v) in variants.iter().enumerate() {
                    if v.name.trim().is_empty() {
                        out.push(format!("variant {} has no name", i + 1));
                    } else if variants[..i].iter().any(|w| w.name == v.name) {
                        out.push(format!("variant `{}` is named twice", v.name));
                    }
                }
            }
        }
        out
    }
}

/// The flag's value for a user. Deterministic and sticky: the same flag and key give the same
/// value everywhere.
///
/// Variants split the 10 000 buckets in proportion to their weights, in the order given:
/// variant `i` holds the buckets from `W(i-1) × 10 000 / W` up to `W(i) × 10 000 / W`, where
/// `W(i)` is the sum of the first `i + 1` weights. Variants of weight 0 get no one; all
/// weights 0 (or no variants) is `Off`.
pub fn evaluate(flag: &Flag, user_key: &str) -> FlagValue {
    if !flag.enabled {
        return FlagValue::Off;
    }
    let on_if = |on: bool| if on { FlagValue::On } else { FlagValue::Off };
    match &flag.kind {
        FlagKind::Boolean { on } => on_if(*on),
        FlagKind::Percentage { basis_points } => {
            on_if(in_candidate(bucket(&flag.key, user_key), *basis_points))
        }
        FlagKind::Variant { variants } => {
            let total: u64 = variants.iter().map(|v| u64::from(v.weight)).sum();
            if total == 0 {
                return FlagValue::Off;
            }
            let b = u64::from(bucket(&flag.key, user_key));
            let mut upto = 0u64;
            for v in variants {
                upto += u64::from(v.weight);
                if b < upto * u64::from(BASIS_POINTS) / total {
                    return FlagValue::Variant(v.name.clone());
                }
            }
            // Unreachable: the last bound is 10 000 and buckets are below it.
            FlagValue::Off
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn flag(kind: FlagKind) -> Flag {
        Flag {
            key: "new-ui".into(),
            kind,
            enabled: true,
        }
    }

    fn variants(weights: &[u32]) -> FlagKind {
        FlagKind::Variant {
            variants: weights
                .iter()
                .enumerate()
                .map(|(i, &weight)| WeightedVariant {
                    name: format!("v{i}"),
                    weight,
                })
                .collect(),
        }
    }

    #[test]
    fn booleans_and_the_enabled_switch() {
        assert_eq!(
            evaluate(&flag(FlagKind::Boolean { on: true }), "u"),
            FlagValue::On
        );
        assert_eq!(
            evaluate(&flag(FlagKind::Boolean { on: false }), "u"),
            FlagValue::Off
        );
        let mut f = flag(FlagKind::Percentage {
            basis_points: BASIS_POINTS,
        });
        assert_eq!(evaluate(&f, "u"), FlagValue::On);
        f.enabled = false;
        assert_eq!(evaluate(&f, "u"), FlagValue::Off);
    }

    #[test]
    fn variants_without_weight_are_off() {
        assert_eq!(evaluate(&flag(variants(&[])), "u"), FlagValue::Off);
        assert_eq!(evaluate(&flag(variants(&[0, 0])), "u"), FlagValue::Off);
        assert_eq!(
            evaluate(&flag(variants(&[0, 3, 0])), "u"),
            FlagValue::Variant("v1".into())
        );
    }

    #[test]
    fn problems_are_listed() {
        assert!(flag(variants(&[1, 2])).problems().is_empty());
        let bad = Flag {
            key: " ".into(),
            kind: variants_named(&[("a", 0), ("", 0), ("a", 0)]),
            enabled: true,
        };
        assert_eq!(bad.problems().len(), 4, "{:?}", bad.problems());
        let over = flag(FlagKind::Percentage {
            basis_points: 10_001,
        });
        assert_eq!(over.problems().len(), 1);
    }

    #[test]
    fn json_shape_is_stable() {
        let f = flag(FlagKind::Percentage { basis_points: 500 });
        let json = serde_json::to_string(&f).unwrap();
        assert_eq!(
            json,
            r#"{"key":"new-ui","kind":{"type":"percentage","basis_points":500},"enabled":true}"#
        );
        let v: Flag = serde_json::from_str(
            r#"{"key":"k","enabled":true,"kind":{"type":"variant","variants":[{"name":"a","weight":1}]}}"#,
        )
        .unwrap();
        assert_eq!(v.kind, variants_named(&[("a", 1)]));
        assert!(serde_json::from_str::<Flag>(
            r#"{"key":"k","enabled":true,"kind":{"type":"boolean","on":true,"x":1}}"#
        )
        .is_err());
        assert_eq!(
            serde_json::to_string(&FlagValue::Variant("a".into())).unwrap(),
            r#"{"variant":"a"}"#
        );
    }

    fn variants_named(v: &[(&str, u32)]) -> FlagKind {
        FlagKind::Variant {
            variants: v
                .iter()
                .map(|&(name, weight)| WeightedVariant {
                    name: name.into(),
                    weight,
                })
                .collect(),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn evaluation_is_sticky(
            key in "[a-z-]{1,12}", user in ".{0,30}", bp in 0u16..=10_000,
            weights in proptest::collection::vec(0u32..100, 0..5)
        ) {
            for kind in [FlagKind::Percentage { basis_points: bp }, variants(&weights)] {
                let f = Flag { key: key.clone(), kind, enabled: true };
                let first = evaluate(&f, &user);
                // The same value again, and from a copy that went through JSON.
                prop_assert_eq!(&evaluate(&f, &user), &first);
                let back: Flag = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
                prop_assert_eq!(evaluate(&back, &user), first);
            }
        }

        #[test]
        fn raising_a_percentage_keeps_everyone_on(
            key in "[a-z-]{1,12}", user in ".{0,30}", lo in 0u16..=10_000, hi in 0u16..=10_000
        ) {
            let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
            let at = |bp| evaluate(&Flag {
                key: key.clone(), kind: FlagKind::Percentage { basis_points: bp }, enabled: true,
            }, &user);
            if at(lo) == FlagValue::On {
                prop_assert_eq!(at(hi), FlagValue::On);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]

        #[test]
        fn percentages_reach_their_share(key in "[a-z-]{1,12}", bp in 0u16..=10_000) {
            let f = Flag { key, kind: FlagKind::Percentage { basis_points: bp }, enabled: true };
            let users = 8_000;
            let on = (0..users).filter(|u| evaluate(&f, &format!("user-{u}")) == FlagValue::On).count();
            let share = on as f64 / users as f64;
            let want = f64::from(bp) / 10_000.0;
            // Five standard deviations of a binomial share at n = 8 000 is at most 0.028.
            prop_assert!((share - want).abs() < 0.03, "{} vs {}", share, want);
        }

        #[test]
        fn variants_follow_their_weights(key in "[a-z-]{1,12}", weights in proptest::collection::vec(0u32..10, 1..5)) {
            let total: u32 = weights.iter().sum();
            prop_assume!(total > 0);
            let f = Flag { key, kind: variants(&weights), enabled: true };
            let users = 8_000;
            let mut counts = vec![0usize; weights.len()];
            for u in 0..users {
                match evaluate(&f, &format!("user-{u}")) {
                    FlagValue::Variant(name) => {
                        let i: usize = name[1..].parse().unwrap();
                        counts[i] += 1;
                    }
                    other => prop_assert!(false, "{:?}", other),
                }
            }
            for (i, &w) in weights.iter().enumerate() {
                let share = counts[i] as f64 / users as f64;
                let want = f64::from(w) / f64::from(total);
                prop_assert!((share - want).abs() < 0.03, "variant {}: {} vs {}", i, share, want);
            }
        }
    }
}
