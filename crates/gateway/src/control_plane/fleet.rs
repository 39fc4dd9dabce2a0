//! Judgement across a fleet: replicas sharing one PostgreSQL judge rollouts and SLOs on every
//! replica's traffic, and exactly one of them acts.
//!
//! 1. Each replica counts the requests it serves, as alone: its SLO ledger (`slos.rs`) and
//!    its rollouts' windows (`data_plane::arms`). Every tick it publishes them to the store
//!    under its own name ([`switchyard_store::FleetStore::save_replica_state`]): area `slo`,
//!    and `rollout:ID` per rollout in force.
//! 2. One replica holds the judge's lease ([`Fleet::judges`], renewed every tick, taken over
//!    by another within [`LEASE_TTL_MS`] when its holder stops). It reads every replica's
//!    state of an area and adds them up (`Ledger::merge`, `Windows::merge`): burn rates and a
//!    canary's analysis see the whole fleet's traffic, not a replica's share of it. It acts on
//!    what it finds (a rollout step or rollback, an alert's action) through the store, once;
//!    the others follow through the change feed.
//! 3. A replica that stopped leaves its last state, which still counts (its requests happened)
//!    until it is older than the area's window. A rollout's windows count one step: a
//!    replica's state of another step (it has not seen the judge move the rollout on yet) is
//!    left out.
//!
//! Without `[storage] url` a gateway is one process, judges alone and keeps its state as it
//! always has: none of this runs.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use switchyard_store::Store;

/// The judge's lease.
const LEASE: &str = "judge";

/// How long the lease holds without renewal: a stopped judge is replaced within this.
pub const LEASE_TTL_MS: i64 = 10_000;

/// This replica's place in the fleet's judgement.
pub struct Fleet {
    /// The replica's name in the store's replica states and leases (unique per process: a
    /// restarted replica is a new one, and its predecessor's state ages out).
    pub replica: String,
    judging: AtomicBool,
    /// The replicas that published their SLO counts lately ([`Fleet::count_live`]): what a
    /// fleet without Redis divides a deployment's capacity by.
    live: Arc<AtomicU32>,
}

/// A replica that published within this long is alive: three of its 5 s publications.
const LIVE_WITHIN_MS: i64 = 15_000;

/// What [`Fleet::judges`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Judging {
    /// This replica holds the lease now.
    pub now: bool,
    /// ... and did not at the last look: state another judge kept must be read again.
    pub newly: bool,
}

impl Fleet {
    pub fn new(replica: String) -> Self {
        Fleet {
            replica,
            judging: AtomicBool::new(false),
            live: Arc::new(AtomicU32::new(1)),
        }
    }

    /// Counts the replicas that published their SLO counts within [`LIVE_WITHIN_MS`] of
    /// `now_ms` (every replica does every 5 s); this one is counted even when its own
    /// publication failed. Blocks on the store; a failure keeps the last count.
    pub fn count_live(&self, store: &dyn Store, now_ms: i64) {
        match store.count_replica_states(SLO_AREA, now_ms - LIVE_WITHIN_MS) {
            Ok(n) => {
                let n = u32::try_from(n).unwrap_or(u32::MAX).max(1);
                self.live.store(n, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot count the live replicas; keeping the last count")
            }
        }
    }

    /// The replicas alive at the last count (at least 1).
    pub fn live(&self) -> u32 {
        self.live.load(Ordering::Relaxed).max(1)
    }

    /// The live count as an admission gate reads it, at each request.
    pub fn live_counter(&self) -> crate::data_plane::admission::Replicas {
        let live = self.live.clone();
        Arc::new(move || live.load(Ordering::Relaxed).max(1))
    }

    /// Takes or renews the judge's lease at `now_ms`. Blocks on the store. A store that
    /// cannot answer means not judging: two judges are worse than a late one.
    pub fn judges(&self, store: &dyn Store, now_ms: i64) -> Judging {
        let now = match store.take_lease(LEASE, &self.replica, LEASE_TTL_MS, now_ms) {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(error = %e, "cannot renew the judge's lease; not judging");
                false
            }
        };
        let was = self.judging.swap(now, Ordering::AcqRel);
        if now && !was {
            tracing::info!(
                replica = %self.replica,
                "this replica judges the fleet's rollouts and SLOs"
            );
        } else if was && !now {
            tracing::info!(
                replica = %self.replica,
                "another replica judges the fleet's rollouts and SLOs"
            );
        }
        Judging {
            now,
            newly: now && !was,
        }
    }

    /// Gives the lease up at shutdown, so another replica takes over at once.
    pub fn release(&self, store: &dyn Store) {
        if self.judging.swap(false, Ordering::AcqRel) {
            if let Err(e) = store.release_lease(LEASE, &self.replica) {
                tracing::warn!(error = %e, "cannot give up the judge's lease; it expires");
            }
        }
    }
}

/// The area of a rollout's windows.
pub fn rollout_area(rollout: &str) -> String {
    format!("rollout:{rollout}")
}

/// The area of the SLO ledgers.
pub const SLO_AREA: &str = "slo";

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_store::SqliteStore;

    #[test]
    fn one_replica_judges_and_another_takes_over_when_it_stops() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_in(dir.path()).unwrap();
        let (a, b) = (Fleet::new("a".into()), Fleet::new("b".into()));
        assert_eq!(
            a.judges(&store, 0),
            Judging {
                now: true,
                newly: true
            }
        );
        assert_eq!(
            b.judges(&store, 1_000),
            Judging {
                now: false,
                newly: false
            }
        );
        assert_eq!(
            a.judges(&store, 2_000),
            Judging {
                now: true,
                newly: false
            }
        );
        // `a` goes quiet: `b` takes over once the lease has run out.
        assert!(!b.judges(&store, 2_000 + LEASE_TTL_MS - 1).now);
        assert!(b.judges(&store, 2_000 + LEASE_TTL_MS).newly);
        assert!(!a.judges(&store, 2_000 + LEASE_TTL_MS + 1).now);
        // A clean stop hands it over at once.
        b.release(&store);
        assert!(a.judges(&store, 2_000 + LEASE_TTL_MS + 2).newly);
    }
}
