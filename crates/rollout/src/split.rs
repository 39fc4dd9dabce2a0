//! Sticky assignment of users to buckets.
//!
//! A user's bucket is a pure function of a seed (a rollout id or a flag key) and the user's key,
//! so every replica, every restart and every future version of Switchyard puts the same user in
//! the same bucket. The hash is frozen: SHA-256 over `len(seed) as u64 little-endian ‖ seed ‖
//! user_key`, the first eight bytes of the digest read as a big-endian `u64`, modulo 10 000.
//! The length prefix keeps `("ab", "c")` and `("a", "bc")` apart. The modulo bias over 2^64 is
//! below 10^-15. `bucket_is_pinned` holds test vectors: changing the hash moves users between
//! arms mid-rollout, so those vectors must never change.

use sha2::{Digest, Sha256};

/// Traffic shares are in basis points: 10 000 is everything, 500 is 5%.
pub const BASIS_POINTS: u16 = 10_000;

/// The user's bucket under `seed`, in `0..10_000`.
pub fn bucket(seed: &str, user_key: &str) -> u16 {
    let mut h = Sha256::new();
    h.update((seed.len() as u64).to_le_bytes());
    h.update(seed.as_bytes());
    h.update(user_key.as_bytes());
    let digest = h.finalize();
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(head) % u64::from(BASIS_POINTS)) as u16
}

/// Whether a bucket falls in a candidate share of `basis_points`. The candidate holds the
/// lowest buckets, so raising the share only adds users: whoever is in at 5% stays in at 25%.
pub fn in_candidate(bucket: u16, basis_points: u16) -> bool {
    bucket < basis_points
}

/// `"5%"`, `"0.5%"`, `"12.34%"`: a share for people to read.
pub(crate) fn percent(basis_points: u16) -> String {
    let whole = basis_points / 100;
    match basis_points % 100 {
        0 => format!("{whole}%"),
        frac if frac % 10 == 0 => format!("{whole}.{}%", frac / 10),
        frac => format!("{whole}.{frac:02}%"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bucket_is_pinned() {
        // Frozen: these must hold on every platform and in every version.
        assert_eq!(bucket("rollout-1", "user-42"), PINNED[0]);
        assert_eq!(bucket("rollout-1", "user-43"), PINNED[1]);
        assert_eq!(bucket("new-ui", "alice"), PINNED[2]);
        assert_eq!(bucket("", ""), PINNED[3]);
    }
    // Computed independently (Python's hashlib) when the hash was frozen.
    const PINNED: [u16; 4] = [9175, 127, 3858, 1850];

    #[test]
    fn the_length_prefix_separates_seed_and_key() {
        assert_ne!(bucket("ab", "c"), bucket("a", "bc"));
    }

    #[test]
    fn percent_reads_well() {
        assert_eq!(percent(500), "5%");
        assert_eq!(percent(50), "0.5%");
        assert_eq!(percent(1234), "12.34%");
        assert_eq!(percent(10_000), "100%");
    }

    #[test]
    fn shares_are_close_to_their_basis_points() {
        let users = 20_000;
        let inside = (0..users)
            .filter(|u| in_candidate(bucket("r", &format!("u{u}")), 2_500))
            .count();
        let share = inside as f64 / users as f64;
        assert!((share - 0.25).abs() < 0.015, "{share}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn bucket_is_in_range_and_deterministic(seed in ".{0,20}", user in ".{0,40}") {
            let b = bucket(&seed, &user);
            prop_assert!(b < BASIS_POINTS);
            prop_assert_eq!(b, bucket(&seed, &user));
        }

        #[test]
        fn raising_the_share_never_removes_a_user(
            seed in "[a-z0-9-]{1,16}", user in ".{0,40}", lo in 0u16..=10_000, hi in 0u16..=10_000
        ) {
            let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
            let b = bucket(&seed, &user);
            if in_candidate(b, lo) {
                prop_assert!(in_candidate(b, hi));
            }
            prop_assert!(in_candidate(b, BASIS_POINTS));
            prop_assert!(!in_candidate(b, 0));
        }
    }
}
