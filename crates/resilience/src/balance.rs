/// What the balancer knows of one eligible deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    pub weight: u32,
    pub outstanding: u32,
}

/// Weighted power of two choices.
///
/// 1. Draw two candidates, each with probability proportional to its weight (the second draw
///    excludes the first, so with two or more candidates they differ).
/// 2. Of the two, take the one with the lower load, `outstanding / weight`; ties go to the
///    first draw.
///
/// This keeps the least-loaded choice's benefit (no pile-up on a slow deployment) without
/// scanning or coordinating. `r1` and `r2` are uniform draws from `[0, 1)`. Candidates of
/// weight 0 are never picked; `None` when none is eligible.
pub fn pick_p2c(candidates: &[Load], r1: f64, r2: f64) -> Option<usize> {
    let total: u64 = candidates.iter().map(|c| u64::from(c.weight)).sum();
    if total == 0 {
        return None;
    }
    let first = weighted_index(candidates, total, r1, None)?;
    let rest = total - u64::from(candidates[first].weight);
    if rest == 0 {
        return Some(first);
    }
    let second = weighted_index(candidates, rest, r2, Some(first))?;
    let load = |i: usize| {
        let c = candidates[i];
        // Compare outstanding_a / weight_a with outstanding_b / weight_b without division.
        (u64::from(c.outstanding), u64::from(c.weight))
    };
    let ((oa, wa), (ob, wb)) = (load(first), load(second));
    if ob * wa < oa * wb {
        Some(second)
    } else {
        Some(first)
    }
}

fn weighted_index(candidates: &[Load], total: u64, r: f64, skip: Option<usize>) -> Option<usize> {
    let target = ((r.clamp(0.0, 1.0) * total as f64) as u64).min(total - 1);
    let mut acc = 0u64;
    let mut last = None;
    for (i, c) in candidates.iter().enumerate() {
        if Some(i) == skip || c.weight == 0 {
            continue;
        }
        acc += u64::from(c.weight);
        last = Some(i);
        if target < acc {
            return Some(i);
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn l(weight: u32, outstanding: u32) -> Load {
        Load {
            weight,
            outstanding,
        }
    }

    #[test]
    fn prefers_the_less_loaded_of_the_two() {
        let c = [l(1, 10), l(1, 0)];
        assert_eq!(pick_p2c(&c, 0.1, 0.5), Some(1));
        assert_eq!(pick_p2c(&c, 0.9, 0.5), Some(1));
    }

    #[test]
    fn load_is_relative_to_weight() {
        // 4 outstanding on weight 4 is lighter than 2 on weight 1.
        let c = [l(4, 4), l(1, 2)];
        assert_eq!(pick_p2c(&c, 0.95, 0.0), Some(0));
    }

    #[test]
    fn none_without_weight() {
        assert_eq!(pick_p2c(&[], 0.5, 0.5), None);
        assert_eq!(pick_p2c(&[l(0, 0)], 0.5, 0.5), None);
        assert_eq!(pick_p2c(&[l(0, 0), l(3, 9)], 0.5, 0.5), Some(1));
    }

    #[test]
    fn idle_traffic_follows_weights() {
        let c = [l(3, 0), l(1, 0)];
        let mut counts = [0u32; 2];
        for i in 0..1000 {
            let r = f64::from(i) / 1000.0;
            counts[pick_p2c(&c, r, 0.5).unwrap()] += 1;
        }
        assert_eq!(counts, [750, 250]);
    }

    proptest! {
        #[test]
        fn always_picks_an_eligible_candidate(
            loads in proptest::collection::vec((0u32..5, 0u32..50), 0..8),
            r1 in 0.0f64..1.0, r2 in 0.0f64..1.0
        ) {
            let c: Vec<Load> = loads.iter().map(|&(w, o)| l(w, o)).collect();
            match pick_p2c(&c, r1, r2) {
                Some(i) => prop_assert!(c[i].weight > 0),
                None => prop_assert!(c.iter().all(|x| x.weight == 0)),
            }
        }
    }
}
