//! The control state's single changes on a [`SqliteStore`], each in a transaction of its
//! own, for tools and tests; its SQL, shared with PostgreSQL, is `control::sql`.

use switchyard_rollout::{AuditEntry, AuditEvent, Flag, Rollout};

use super::{ConfigVersion, Transact};
use crate::{SqliteStore, StoreError};

/// Single changes, each in a transaction of its own: for tools and tests. The gateway changes
/// through [`Transact::transact`], so that its audit entry commits with the change.
impl SqliteStore {
    /// See [`ControlWriter::put_config_version`](super::ControlWriter::put_config_version).
    pub fn put_config_version(&self, v: &ConfigVersion) -> Result<bool, StoreError> {
        self.transact(|c| c.put_config_version(v))
    }

    /// See [`ControlWriter::mark_applied`](super::ControlWriter::mark_applied).
    pub fn mark_applied(
        &self,
        id: &str,
        at_ms: i64,
        actor: &str,
        reason: &str,
    ) -> Result<u64, StoreError> {
        self.transact(|c| c.mark_applied(id, at_ms, actor, reason))
    }

    /// See [`ControlWriter::append_audit`](super::ControlWriter::append_audit).
    pub fn append_audit(&self, event: AuditEvent) -> Result<AuditEntry, StoreError> {
        self.transact(|c| c.append_audit(event))
    }

    /// See [`ControlWriter::push_prompt`](super::ControlWriter::push_prompt).
    pub fn push_prompt(
        &self,
        name: &str,
        body_json: &str,
        author: &str,
        message: &str,
        at_ms: i64,
    ) -> Result<u32, StoreError> {
        self.transact(|c| c.push_prompt(name, body_json, author, message, at_ms))
    }

    /// See [`ControlWriter::set_prompt_label`](super::ControlWriter::set_prompt_label).
    pub fn set_prompt_label(
        &self,
        name: &str,
        label: &str,
        version: u32,
        at_ms: i64,
    ) -> Result<Option<u32>, StoreError> {
        self.transact(|c| c.set_prompt_label(name, label, version, at_ms))
    }

    /// See [`ControlWriter::put_flag`](super::ControlWriter::put_flag).
    pub fn put_flag(&self, flag: &Flag, at_ms: i64) -> Result<Option<Flag>, StoreError> {
        self.transact(|c| c.put_flag(flag, at_ms))
    }

    /// See [`ControlWriter::delete_flag`](super::ControlWriter::delete_flag).
    pub fn delete_flag(&self, key: &str) -> Result<Option<Flag>, StoreError> {
        self.transact(|c| c.delete_flag(key))
    }

    /// See [`ControlWriter::put_rollout`](super::ControlWriter::put_rollout).
    pub fn put_rollout(
        &self,
        rollout: &Rollout,
        active: bool,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        self.transact(|c| c.put_rollout(rollout, active, at_ms))
    }
}

#[cfg(test)]
mod tests {
    use switchyard_rollout::FlagKind;

    use super::*;
    use crate::{ControlReader, ControlStore, RecordStore};

    fn flag() -> Flag {
        Flag {
            key: "f".into(),
            kind: FlagKind::Boolean { on: true },
            enabled: true,
        }
    }

    #[test]
    fn the_migration_upgrades_an_older_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("switchyard.db");
        {
            // As the build before the control plane left it: four migrations and a record.
            let old = crate::sqlite::open_old_schema(&path, 4);
            old.execute(
                "INSERT INTO requests (request_id, started_at_ms, endpoint, attempts, stream, status, latency_ms, prompt_tokens, completion_tokens, usage_counted, cost_nanos) VALUES ('r1', 1, 'chat', 1, 0, 200, 1.0, 1, 1, 1, 7)",
                [],
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.count().unwrap(), 1);
        assert_eq!(store.control_generation().unwrap(), 0);
        store.put_flag(&flag(), 1).unwrap();
        store
            .append_audit(AuditEvent {
                at_ms: 1,
                actor: "ana".into(),
                action: "flag.set".into(),
                target: "flag:f".into(),
                reason: String::new(),
                diff: String::new(),
            })
            .unwrap();
        drop(store);
        // Re-opening runs nothing again and keeps everything.
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.flags().unwrap(), [flag()]);
        assert_eq!(store.verify_audit().unwrap(), Ok(1));
        assert_eq!(store.control_generation().unwrap(), 1);
    }
}
