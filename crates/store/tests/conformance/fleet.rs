//! What replicas publish for the fleet's judgement, and the leases that make one of them act.

use crate::{conformance, Backend};

conformance!(
    each_replica_keeps_its_latest_state_and_every_store_reads_them_all,
    old_states_are_forgotten,
    a_lease_has_one_holder_until_it_expires_or_is_released,
    replicas_racing_for_a_lease_see_one_winner,
);

fn each_replica_keeps_its_latest_state_and_every_store_reads_them_all(b: &Backend) {
    let store = b.store();
    store
        .save_replica_state("slo", "a", "{\"n\":1}", 1_000)
        .unwrap();
    store
        .save_replica_state("slo", "b", "{\"n\":2}", 1_500)
        .unwrap();
    store
        .save_replica_state("slo", "a", "{\"n\":3}", 2_000)
        .unwrap();
    store
        .save_replica_state("rollout:r1", "a", "{}", 2_000)
        .unwrap();
    let other = b.another();
    let states = other.replica_states("slo", 0).unwrap();
    let seen: Vec<(&str, &str, i64)> = states
        .iter()
        .map(|s| (s.replica.as_str(), s.body.as_str(), s.saved_at_ms))
        .collect();
    assert_eq!(seen, [("a", "{\"n\":3}", 2_000), ("b", "{\"n\":2}", 1_500)]);
    let recent = other.replica_states("slo", 1_600).unwrap();
    assert_eq!(recent.len(), 1);
    assert_eq!(recent[0].replica, "a");
    // The replicas alive: those that saved lately, each once.
    assert_eq!(other.count_replica_states("slo", 0).unwrap(), 2);
    assert_eq!(other.count_replica_states("slo", 1_600).unwrap(), 1);
    assert_eq!(other.count_replica_states("rollout:r2", 0).unwrap(), 0);
}

fn old_states_are_forgotten(b: &Backend) {
    let store = b.store();
    store.save_replica_state("slo", "a", "1", 1_000).unwrap();
    store.save_replica_state("slo", "b", "2", 5_000).unwrap();
    store
        .save_replica_state("rollout:r1", "a", "3", 1_000)
        .unwrap();
    assert_eq!(store.forget_replica_states(Some("slo"), 2_000).unwrap(), 1);
    assert_eq!(store.replica_states("rollout:r1", 0).unwrap().len(), 1);
    assert_eq!(store.forget_replica_states(None, 2_000).unwrap(), 1);
    assert_eq!(store.replica_states("slo", 0).unwrap().len(), 1);
}

fn a_lease_has_one_holder_until_it_expires_or_is_released(b: &Backend) {
    let store = b.store();
    let other = b.another();
    assert!(store.take_lease("judge", "a", 10_000, 0).unwrap());
    assert!(!other.take_lease("judge", "b", 10_000, 5_000).unwrap());
    // The holder renews it.
    assert!(store.take_lease("judge", "a", 10_000, 9_000).unwrap());
    assert!(!other.take_lease("judge", "b", 10_000, 12_000).unwrap());
    // Expired: another takes it over, and the old holder no longer has it.
    assert!(other.take_lease("judge", "b", 10_000, 19_000).unwrap());
    assert!(!store.take_lease("judge", "a", 10_000, 19_500).unwrap());
    // Released: free at once; releasing another's lease does nothing.
    store.release_lease("judge", "a").unwrap();
    assert!(!store.take_lease("judge", "a", 10_000, 20_000).unwrap());
    other.release_lease("judge", "b").unwrap();
    assert!(store.take_lease("judge", "a", 10_000, 20_000).unwrap());
    // Leases are apart by name.
    assert!(other.take_lease("retention", "b", 10_000, 20_000).unwrap());
}

fn replicas_racing_for_a_lease_see_one_winner(b: &Backend) {
    for round in 0..10 {
        let stores: Vec<_> = (0..4).map(|_| b.another()).collect();
        let barrier = std::sync::Barrier::new(stores.len());
        let won: Vec<bool> = std::thread::scope(|s| {
            let handles: Vec<_> = stores
                .iter()
                .enumerate()
                .map(|(i, store)| {
                    let barrier = &barrier;
                    s.spawn(move || {
                        barrier.wait();
                        store
                            .take_lease(&format!("race-{round}"), &format!("r{i}"), 10_000, 0)
                            .unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(
            won.iter().filter(|w| **w).count(),
            1,
            "round {round}: {won:?}"
        );
    }
}
