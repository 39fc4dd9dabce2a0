//! Dashboard sessions in the store, so that a browser behind a load balancer stays signed in
//! whichever replica it reaches: the `dashboard_sessions` table, by the SHA-256 of each token
//! (the token itself is never stored), with the SHA-256 of the admin key it was opened with
//! and its expiry.
//!
//! The gateway's edge owns what a session means (its token, its lifetime, the admin key in
//! force) and reads the clock; this module keeps rows, with times passed in. The live
//! sessions are bounded: opening one ends the expired ones and, beyond the bound, those that
//! expire first, in one transaction holding [`Lock::Sessions`], so replicas opening sessions
//! at once keep the bound too.

use crate::sql::{Lock, SqlRow, SqlStore};
use crate::StoreError;

/// A stored session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredSession {
    /// The SHA-256 of the admin key it was opened with.
    pub admin: [u8; 32],
    /// When it ends (Unix ms).
    pub expires_at_ms: i64,
}

/// Where dashboard sessions are kept. Every method blocks (see [`crate::Store`] for why the
/// seams are sync).
pub trait SessionRecords {
    /// Keeps a session (`token` is the SHA-256 of its token), after ending the sessions
    /// expired at `now_ms` and, when `max_live` are still live, the ones that expire first,
    /// so that at most `max_live` are kept.
    fn open_session(
        &self,
        token: &[u8; 32],
        admin: &[u8; 32],
        now_ms: i64,
        expires_at_ms: i64,
        max_live: usize,
    ) -> Result<(), StoreError>;

    /// The session `token` names, when it is live at `now_ms`.
    fn session(&self, token: &[u8; 32], now_ms: i64) -> Result<Option<StoredSession>, StoreError>;

    /// Ends the session `token` names; returns whether there was one.
    fn close_session(&self, token: &[u8; 32]) -> Result<bool, StoreError>;

    /// Deletes the sessions expired at `now_ms`; returns how many.
    fn purge_sessions(&self, now_ms: i64) -> Result<u64, StoreError>;

    /// How many sessions are kept, expired or not.
    fn session_count(&self) -> Result<u64, StoreError>;
}

fn digest(row: &dyn SqlRow, i: usize) -> Result<[u8; 32], StoreError> {
    let bytes = row.opt_bytes(i)?.ok_or(StoreError::Null(i))?;
    // A digest of another length was not written by the store: it matches no admin.
    Ok(<[u8; 32]>::try_from(bytes).unwrap_or([0; 32]))
}

impl<S: SqlStore> SessionRecords for S {
    fn open_session(
        &self,
        token: &[u8; 32],
        admin: &[u8; 32],
        now_ms: i64,
        expires_at_ms: i64,
        max_live: usize,
    ) -> Result<(), StoreError> {
        self.transaction(Lock::Sessions, |e| {
            e.execute(
                "DELETE FROM dashboard_sessions WHERE expires_at_ms <= ?1",
                &[now_ms.into()],
            )?;
            let live = e
                .one("SELECT COUNT(*) FROM dashboard_sessions", &[], |r| r.u64(0))?
                .unwrap_or(0);
            let max_live = u64::try_from(max_live.max(1)).unwrap_or(u64::MAX);
            if live >= max_live {
                let over = i64::try_from(live - max_live + 1).unwrap_or(i64::MAX);
                e.execute(
                    "DELETE FROM dashboard_sessions WHERE token IN (SELECT token FROM \
                     dashboard_sessions ORDER BY expires_at_ms, token LIMIT ?1)",
                    &[over.into()],
                )?;
            }
            e.execute(
                "INSERT INTO dashboard_sessions (token, admin, expires_at_ms) VALUES (?1, ?2, ?3)",
                &[token[..].into(), admin[..].into(), expires_at_ms.into()],
            )?;
            Ok(())
        })
    }

    fn session(&self, token: &[u8; 32], now_ms: i64) -> Result<Option<StoredSession>, StoreError> {
        self.exec(|e| {
            e.one(
                "SELECT admin, expires_at_ms FROM dashboard_sessions \
                 WHERE token = ?1 AND expires_at_ms > ?2",
                &[token[..].into(), now_ms.into()],
                |row| {
                    Ok(StoredSession {
                        admin: digest(row, 0)?,
                        expires_at_ms: row.i64(1)?,
                    })
                },
            )
        })
    }

    fn close_session(&self, token: &[u8; 32]) -> Result<bool, StoreError> {
        let n = self.exec(|e| {
            e.execute(
                "DELETE FROM dashboard_sessions WHERE token = ?1",
                &[token[..].into()],
            )
        })?;
        Ok(n > 0)
    }

    fn purge_sessions(&self, now_ms: i64) -> Result<u64, StoreError> {
        self.exec(|e| {
            e.execute(
                "DELETE FROM dashboard_sessions WHERE expires_at_ms <= ?1",
                &[now_ms.into()],
            )
        })
    }

    fn session_count(&self) -> Result<u64, StoreError> {
        let n =
            self.exec(|e| e.one("SELECT COUNT(*) FROM dashboard_sessions", &[], |r| r.u64(0)))?;
        Ok(n.unwrap_or(0))
    }
}
