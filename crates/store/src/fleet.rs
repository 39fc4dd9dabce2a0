//! What the replicas of a fleet publish for its judgement, and who acts on it.
//!
//! - Each replica counts the requests it serves (its SLO ledger, a rollout's windows) and
//!   saves its latest state of each area under its own name, replacing the last one. Whoever
//!   judges reads every replica's state of the area and adds them up: the fleet's view. A
//!   replica that stopped leaves its last state, which still counts until it ages out of the
//!   area's window; [`FleetStore::forget_replica_states`] deletes what is older.
//! - A lease names the one replica that acts on a judgement (rolls a canary back, fires an
//!   alert's action), so N replicas do not act N times. [`FleetStore::take_lease`] takes a
//!   free or expired lease, or renews one's own, in one statement; the holder renews it well
//!   within its time to live, and another replica takes it over when the holder stops.
//!
//! The store keeps rows; the gateway reads the clock and decides what the areas hold.

use crate::sql::{SqlReads, SqlRow};
use crate::StoreError;

/// One replica's latest state of an area.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaState {
    pub replica: String,
    pub body: String,
    pub saved_at_ms: i64,
}

/// Replica states and leases. Every method blocks (see [`crate::Store`] for why).
pub trait FleetStore {
    /// Saves `replica`'s state of `area`, replacing its last one.
    fn save_replica_state(
        &self,
        area: &str,
        replica: &str,
        body: &str,
        at_ms: i64,
    ) -> Result<(), StoreError>;

    /// Every replica's state of `area` saved at `since_ms` or later, by replica name.
    fn replica_states(&self, area: &str, since_ms: i64) -> Result<Vec<ReplicaState>, StoreError>;

    /// How many replicas saved a state of `area` at `since_ms` or later: the replicas alive,
    /// for an area every replica saves on a timer.
    fn count_replica_states(&self, area: &str, since_ms: i64) -> Result<u64, StoreError>;

    /// Deletes the states of `area` (every area when `None`) saved before `before_ms`;
    /// returns how many.
    fn forget_replica_states(&self, area: Option<&str>, before_ms: i64) -> Result<u64, StoreError>;

    /// Takes the lease `name` for `holder` until `now_ms + ttl_ms`, when it is free, expired
    /// at `now_ms`, or already `holder`'s (a renewal); returns whether `holder` holds it now.
    fn take_lease(
        &self,
        name: &str,
        holder: &str,
        ttl_ms: i64,
        now_ms: i64,
    ) -> Result<bool, StoreError>;

    /// Gives the lease up, if `holder` holds it (a clean shutdown: another replica takes it
    /// over at once rather than when it expires).
    fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError>;
}

impl<S: SqlReads> FleetStore for S {
    fn save_replica_state(
        &self,
        area: &str,
        replica: &str,
        body: &str,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        self.exec(|e| {
            e.execute(
                "INSERT INTO replica_states (area, replica, body, saved_at_ms) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (area, replica) DO UPDATE SET \
                 body = excluded.body, saved_at_ms = excluded.saved_at_ms",
                &[area.into(), replica.into(), body.into(), at_ms.into()],
            )
        })?;
        Ok(())
    }

    fn replica_states(&self, area: &str, since_ms: i64) -> Result<Vec<ReplicaState>, StoreError> {
        self.exec(|e| {
            e.all(
                "SELECT replica, body, saved_at_ms FROM replica_states \
                 WHERE area = ?1 AND saved_at_ms >= ?2 ORDER BY replica",
                &[area.into(), since_ms.into()],
                |r: &dyn SqlRow| {
                    Ok(ReplicaState {
                        replica: r.string(0)?,
                        body: r.string(1)?,
                        saved_at_ms: r.i64(2)?,
                    })
                },
            )
        })
    }

    fn count_replica_states(&self, area: &str, since_ms: i64) -> Result<u64, StoreError> {
        let n = self.exec(|e| {
            e.one(
                "SELECT COUNT(*) FROM replica_states WHERE area = ?1 AND saved_at_ms >= ?2",
                &[area.into(), since_ms.into()],
                |r| r.u64(0),
            )
        })?;
        Ok(n.unwrap_or(0))
    }

    fn forget_replica_states(&self, area: Option<&str>, before_ms: i64) -> Result<u64, StoreError> {
        self.exec(|e| match area {
            Some(area) => e.execute(
                "DELETE FROM replica_states WHERE area = ?1 AND saved_at_ms < ?2",
                &[area.into(), before_ms.into()],
            ),
            None => e.execute(
                "DELETE FROM replica_states WHERE saved_at_ms < ?1",
                &[before_ms.into()],
            ),
        })
    }

    fn take_lease(
        &self,
        name: &str,
        holder: &str,
        ttl_ms: i64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let until = now_ms.saturating_add(ttl_ms);
        // One statement: the row is inserted, or updated only where the lease is free to
        // take; two replicas racing for it see one winner (the row's lock orders them).
        let changed = self.exec(|e| {
            e.execute(
                "INSERT INTO leases (name, holder, expires_at_ms) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
                 expires_at_ms = excluded.expires_at_ms \
                 WHERE leases.holder = excluded.holder OR leases.expires_at_ms <= ?4",
                &[name.into(), holder.into(), until.into(), now_ms.into()],
            )
        })?;
        Ok(changed == 1)
    }

    fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        self.exec(|e| {
            e.execute(
                "DELETE FROM leases WHERE name = ?1 AND holder = ?2",
                &[name.into(), holder.into()],
            )
        })?;
        Ok(())
    }
}
