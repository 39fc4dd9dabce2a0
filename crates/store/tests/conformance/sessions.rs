//! Dashboard sessions: expiry, the admin key they were opened with, closing, purging, and the
//! bound on how many are kept, also when two stores open sessions at once.

use switchyard_store::StoredSession;

use crate::{conformance, Backend};

conformance!(
    a_session_lives_until_it_expires_and_is_seen_by_every_store,
    sessions_beyond_the_bound_end_those_that_expire_first,
    the_bound_holds_when_two_stores_open_sessions_at_once,
    expired_sessions_are_purged,
);

fn token(i: u32) -> [u8; 32] {
    let mut t = [0u8; 32];
    t[..4].copy_from_slice(&i.to_be_bytes());
    t
}

fn a_session_lives_until_it_expires_and_is_seen_by_every_store(b: &Backend) {
    let store = b.store();
    let (t, admin) = (token(7), [1u8; 32]);
    store.open_session(&t, &admin, 1_000, 5_000, 10).unwrap();
    let live = StoredSession {
        admin,
        expires_at_ms: 5_000,
    };
    assert_eq!(store.session(&t, 1_000).unwrap(), Some(live));
    assert_eq!(store.session(&t, 4_999).unwrap(), Some(live));
    assert_eq!(store.session(&t, 5_000).unwrap(), None);
    assert_eq!(store.session(&token(8), 1_000).unwrap(), None);
    // Another process or replica reads the same session.
    assert_eq!(b.another().session(&t, 1_000).unwrap(), Some(live));
    assert!(store.close_session(&t).unwrap());
    assert!(!store.close_session(&t).unwrap());
    assert_eq!(store.session(&t, 1_000).unwrap(), None);
}

fn sessions_beyond_the_bound_end_those_that_expire_first(b: &Backend) {
    let store = b.store();
    for i in 0..5 {
        store
            .open_session(&token(i), &[1; 32], 0, 100 + i64::from(i), 3)
            .unwrap();
    }
    assert_eq!(store.session_count().unwrap(), 3);
    for (i, kept) in [(0, false), (1, false), (2, true), (3, true), (4, true)] {
        assert_eq!(store.session(&token(i), 0).unwrap().is_some(), kept, "{i}");
    }
    // Expired sessions go first, before any live one is ended.
    store
        .open_session(&token(9), &[1; 32], 102, 500, 3)
        .unwrap();
    for (i, kept) in [(2, false), (3, true), (4, true), (9, true)] {
        assert_eq!(
            store.session(&token(i), 102).unwrap().is_some(),
            kept,
            "{i}"
        );
    }
}

fn the_bound_holds_when_two_stores_open_sessions_at_once(b: &Backend) {
    let stores = [b.another(), b.another()];
    std::thread::scope(|s| {
        for t in 0..4u32 {
            let store = &stores[(t % 2) as usize];
            s.spawn(move || {
                for i in 0..25u32 {
                    let at = i64::from(i);
                    store
                        .open_session(&token(t * 1_000 + i), &[2; 32], at, 10_000 + at, 5)
                        .unwrap();
                }
            });
        }
    });
    assert_eq!(b.store().session_count().unwrap(), 5);
}

fn expired_sessions_are_purged(b: &Backend) {
    let store = b.store();
    for (i, expires) in [(1, 10), (2, 20), (3, 30)] {
        store
            .open_session(&token(i), &[1; 32], 0, expires, 10)
            .unwrap();
    }
    assert_eq!(store.purge_sessions(20).unwrap(), 2);
    assert_eq!(store.session_count().unwrap(), 1);
    assert_eq!(store.purge_sessions(20).unwrap(), 0);
    assert!(store.session(&token(3), 20).unwrap().is_some());
}
