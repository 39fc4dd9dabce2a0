//! The control plane's durable state: applied config versions, the hash-chained audit log,
//! prompt templates with their versions and labels, feature flags, rollouts, and the counter
//! replicas poll to notice that any of these changed.
//!
//! It owns how these are kept: config versions are content-addressed (the id is the SHA-256
//! of the TOML text) and never overwritten; every version, prompt version and audit entry
//! stays readable forever; audit entries are sealed ([`AuditEntry::seal`]) inside the write
//! transaction that reads the previous one, so several processes appending to one file still
//! build one valid chain. Several changes and their audit entry commit together through
//! [`Transact::transact`]. It stores what `switchyard-rollout` defines ([`Flag`],
//! [`Rollout`], [`AuditEvent`]) as that crate serialises it, and prompt bodies as opaque JSON.
//! It must not speak HTTP, parse or validate configs, render templates or evaluate flags:
//! callers validate, the store keeps.
//!
//! What every replica shares is behind three traits, so another database can keep it:
//! [`ControlReader`] (the reads, the same inside a transaction and out), [`ControlWriter`]
//! (the writes, only inside a transaction) and [`ControlStore`] (the reads, the transaction,
//! and the audit chain's verification, written once over the reads). Their SQL is one text
//! for SQLite and PostgreSQL ([`ControlRead`], [`ControlTx`]), run by [`crate::SqliteStore`]
//! and [`crate::PostgresStore`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use switchyard_rollout::{
    verify, verify_after, AuditEntry, AuditEvent, ChainError, ChainFault, Flag, Head, Rollout,
};

use crate::StoreError;

mod sql;
mod sqlite;

pub use sql::{ControlRead, ControlTx};

/// The shortest id prefix [`ControlReader::config_version`] resolves.
pub const MIN_PREFIX: usize = 6;
/// The audit action [`ControlStore::apply_config_version`] records.
pub const CONFIG_APPLY: &str = "config.apply";
/// How many audit entries a verification reads at a time.
const VERIFY_PAGE: usize = 1_000;

/// One config snapshot, immutable once stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigVersion {
    /// Lowercase hex SHA-256 of `source` ([`ConfigVersion::id_of`]).
    pub id: String,
    pub parent: Option<String>,
    pub author: String,
    pub message: String,
    pub created_at_ms: i64,
    /// The TOML text, exactly as applied.
    pub source: String,
}

impl ConfigVersion {
    /// A version of `source`, its id computed.
    pub fn new(
        source: impl Into<String>,
        parent: Option<String>,
        author: impl Into<String>,
        message: impl Into<String>,
        created_at_ms: i64,
    ) -> ConfigVersion {
        let source = source.into();
        ConfigVersion {
            id: ConfigVersion::id_of(&source),
            parent,
            author: author.into(),
            message: message.into(),
            created_at_ms,
            source,
        }
    }

    /// The id of a config text: lowercase hex SHA-256 of its bytes.
    pub fn id_of(source: &str) -> String {
        hex::encode(Sha256::digest(source.as_bytes()))
    }
}

/// A config version without its text, for listings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigVersionSummary {
    pub id: String,
    pub parent: Option<String>,
    pub author: String,
    pub message: String,
    pub created_at_ms: i64,
    /// When it was last applied, if ever.
    pub last_applied_at_ms: Option<i64>,
}

/// One application of a config version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedRow {
    pub seq: u64,
    pub version_id: String,
    pub at_ms: i64,
    pub actor: String,
    pub reason: String,
}

/// One version of a prompt template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptRow {
    pub name: String,
    /// 1 for the first push, then one more each time the body changes.
    pub version: u32,
    /// JSON, opaque to the store (system and user parts, variables, model, parameters).
    pub body: String,
    pub author: String,
    pub message: String,
    pub created_at_ms: i64,
}

/// A prompt's latest version and where its labels point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptSummary {
    pub name: String,
    pub latest_version: u32,
    /// Label (`production`, `staging`, `canary`, ...) to version.
    pub labels: BTreeMap<String, u32>,
}

/// A stored rollout with its bookkeeping.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredRollout {
    pub rollout: Rollout,
    /// Whether the gateway should drive it (false once finished or set aside).
    pub active: bool,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// Reads of the control plane's state. Inside a transaction ([`ControlWriter::read`]) they
/// see its writes. Every method blocks (see [`crate::Store`] for why the seams are sync).
pub trait ControlReader {
    /// A config version by its id, or by a unique prefix of at least [`MIN_PREFIX`] hex
    /// digits (any case). `None` when nothing matches or a shorter prefix is not a whole id;
    /// [`StoreError::AmbiguousPrefix`] when the prefix starts several.
    fn config_version(&self, id_or_prefix: &str) -> Result<Option<ConfigVersion>, StoreError>;

    /// Stored config versions, newest first, without their text.
    fn config_versions(&self, limit: usize) -> Result<Vec<ConfigVersionSummary>, StoreError>;

    /// Applications of config versions, newest first.
    fn applied_history(&self, limit: usize) -> Result<Vec<AppliedRow>, StoreError>;

    /// The config version applied last.
    fn current_config(&self) -> Result<Option<ConfigVersion>, StoreError>;

    /// The version to roll back to: the last applied one that is not the current one.
    fn previous_config(&self) -> Result<Option<ConfigVersion>, StoreError>;

    /// Audit entries with `seq` above `after_seq`, oldest first.
    fn audit_entries(&self, after_seq: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError>;

    /// The newest `limit` audit entries, newest first (the dashboard's trail).
    fn audit_latest(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError>;

    /// The last audit entry.
    fn audit_last(&self) -> Result<Option<AuditEntry>, StoreError>;

    fn prompt(&self, name: &str, version: u32) -> Result<Option<PromptRow>, StoreError>;

    /// The version a label points at.
    fn prompt_by_label(&self, name: &str, label: &str) -> Result<Option<PromptRow>, StoreError>;

    fn latest_prompt(&self, name: &str) -> Result<Option<PromptRow>, StoreError>;

    /// Every version of a prompt, newest first.
    fn prompt_versions(&self, name: &str) -> Result<Vec<PromptRow>, StoreError>;

    /// Every prompt by name, with its latest version and labels.
    fn prompt_names(&self) -> Result<Vec<PromptSummary>, StoreError>;

    fn flag(&self, key: &str) -> Result<Option<Flag>, StoreError>;

    /// Every flag, by key.
    fn flags(&self) -> Result<Vec<Flag>, StoreError>;

    fn rollout(&self, id: &str) -> Result<Option<StoredRollout>, StoreError>;

    /// Rollouts, oldest first; only the active ones if `active_only`.
    fn rollouts(&self, active_only: bool) -> Result<Vec<StoredRollout>, StoreError>;

    /// A counter that every change to what the gateway serves moves: applied config, flags,
    /// prompt versions and labels, rollouts (each [`ControlWriter`] method that says so).
    /// Replicas watch it and reload when it moves.
    fn control_generation(&self) -> Result<u64, StoreError>;
}

/// The writes of one transaction over the control state: every write in it, and the audit
/// entries appended with [`ControlWriter::append_audit`], commit together or not at all.
/// Made by [`Transact::transact`].
pub trait ControlWriter {
    /// Reads that see this transaction's writes.
    fn read(&self) -> Box<dyn ControlReader + '_>;

    /// Seals `event` after the last entry ([`AuditEntry::seal`]) and appends it. No other
    /// writer, in this process or another, may append between the read of the last entry and
    /// the insert: the transaction holds the lock that orders them.
    fn append_audit(&self, event: AuditEvent) -> Result<AuditEntry, StoreError>;

    /// Stores a version unless one with its id exists (then false: ids are content hashes,
    /// so it is the same text). The id must be the hash of the text
    /// ([`StoreError::NotContentAddressed`]). Staging a version does not move the control
    /// generation; applying it does.
    fn put_config_version(&self, v: &ConfigVersion) -> Result<bool, StoreError>;

    /// Records that the stored version `id` (a whole id) was applied; returns the row's `seq`.
    /// Moves the control generation.
    fn mark_applied(
        &self,
        id: &str,
        at_ms: i64,
        actor: &str,
        reason: &str,
    ) -> Result<u64, StoreError>;

    /// Stores a new version of a prompt and returns its number, or returns the latest
    /// version's number when its body is the same JSON value (whitespace and key order
    /// aside). A new version moves the control generation.
    fn push_prompt(
        &self,
        name: &str,
        body_json: &str,
        author: &str,
        message: &str,
        at_ms: i64,
    ) -> Result<u32, StoreError>;

    /// Points `label` at an existing version; returns the version it pointed at before.
    /// Moves the control generation.
    fn set_prompt_label(
        &self,
        name: &str,
        label: &str,
        version: u32,
        at_ms: i64,
    ) -> Result<Option<u32>, StoreError>;

    /// Stores a flag under its key; returns the flag it replaced. The caller validates it
    /// ([`Flag::problems`]). Moves the control generation.
    fn put_flag(&self, flag: &Flag, at_ms: i64) -> Result<Option<Flag>, StoreError>;

    /// Deletes a flag; returns it, or `None` (and changes nothing) when there was none. A
    /// deletion moves the control generation.
    fn delete_flag(&self, key: &str) -> Result<Option<Flag>, StoreError>;

    /// Stores a rollout under its id ([`Rollout::id`]), keeping its first `created_at_ms`.
    /// Moves the control generation.
    fn put_rollout(&self, rollout: &Rollout, active: bool, at_ms: i64) -> Result<(), StoreError>;
}

/// The work of one transaction, as [`ControlStore::transact_dyn`] takes it.
pub type ControlWork<'a> = Box<dyn FnOnce(&dyn ControlWriter) -> Result<(), StoreError> + 'a>;

/// The control state a replica shares: its reads, the transaction its writes go through
/// ([`Transact::transact`]), and the audit chain's verification.
pub trait ControlStore: ControlReader {
    /// Runs `work` once in one transaction that holds the write lock (waiting for it as the
    /// implementation allows), committing if `work` returns `Ok` and rolling everything back
    /// otherwise. `work` goes through its [`ControlWriter`] only: calling the store from inside
    /// may wait forever for what the transaction holds. Callers use [`Transact::transact`],
    /// which returns what `work` made; this form is the one a trait object can offer.
    fn transact_dyn(&self, work: ControlWork<'_>) -> Result<(), StoreError>;

    /// The last entry's `seq` and hash: keep it somewhere else to detect a cut-off tail
    /// later ([`Self::verify_audit_with_head`]).
    fn audit_head(&self) -> Result<Option<Head>, StoreError> {
        Ok(self.audit_last()?.map(|e| e.head()))
    }

    /// Checks the whole log a page at a time: `Ok(Ok(n))` when its `n` entries form a valid
    /// chain, `Ok(Err(_))` where it breaks (an edited or deleted entry). A cut-off tail
    /// passes; see [`Self::verify_audit_with_head`].
    fn verify_audit(&self) -> Result<Result<u64, ChainError>, StoreError> {
        verify_pages(self, None, VERIFY_PAGE)
    }

    /// [`Self::verify_audit`], and the log still holds the `head` known from elsewhere.
    fn verify_audit_with_head(&self, head: &Head) -> Result<Result<u64, ChainError>, StoreError> {
        verify_pages(self, Some(head), VERIFY_PAGE)
    }

    /// Stores `v` if new, records it applied and appends its `config.apply` audit entry
    /// (target `config:<id>`, the caller's `diff`), all in one transaction.
    fn apply_config_version(
        &self,
        v: &ConfigVersion,
        actor: &str,
        reason: &str,
        at_ms: i64,
        diff: &str,
    ) -> Result<AuditEntry, StoreError> {
        self.transact(|c| {
            c.put_config_version(v)?;
            c.mark_applied(&v.id, at_ms, actor, reason)?;
            c.append_audit(AuditEvent {
                at_ms: u64::try_from(at_ms).unwrap_or(0),
                actor: actor.to_string(),
                action: CONFIG_APPLY.to_string(),
                target: format!("config:{}", v.id),
                reason: reason.to_string(),
                diff: diff.to_string(),
            })
        })
    }
}

/// [`ControlStore::transact_dyn`] returning what the work made, for every control store
/// (`dyn Store` included). A flag flip and its audit entry, together:
///
/// ```no_run
/// # use switchyard_store::{Store, StoreError, Transact};
/// use switchyard_rollout::{diff_lines, AuditEvent, Flag};
///
/// fn flip(store: &dyn Store, flag: &Flag, now_ms: i64) -> Result<(), StoreError> {
///     let json = |f: &Flag| serde_json::to_string_pretty(f).unwrap_or_default();
///     store.transact(|c| {
///         let before = c.put_flag(flag, now_ms)?;
///         c.append_audit(AuditEvent {
///             at_ms: now_ms as u64,
///             actor: "ops@example".into(),
///             action: "flag.set".into(),
///             target: format!("flag:{}", flag.key),
///             reason: "launch".into(),
///             diff: diff_lines(&before.as_ref().map(json).unwrap_or_default(), &json(flag)),
///         })
///     })?;
///     Ok(())
/// }
/// ```
pub trait Transact {
    fn transact<T>(
        &self,
        work: impl FnOnce(&dyn ControlWriter) -> Result<T, StoreError>,
    ) -> Result<T, StoreError>;
}

impl<S: ControlStore + ?Sized> Transact for S {
    fn transact<T>(
        &self,
        work: impl FnOnce(&dyn ControlWriter) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut made = None;
        self.transact_dyn(Box::new(|c| {
            made = Some(work(c)?);
            Ok(())
        }))?;
        made.ok_or(StoreError::WorkNotRun)
    }
}

/// Checks the audit log `page` entries at a time, against `head` when one is known.
fn verify_pages(
    log: &(impl ControlReader + ?Sized),
    head: Option<&Head>,
    page: usize,
) -> Result<Result<u64, ChainError>, StoreError> {
    let mut anchor: Option<AuditEntry> = None;
    let mut checked = 0u64;
    loop {
        let after = anchor.as_ref().map_or(0, |a| a.seq);
        let mut entries = log.audit_entries(after, page)?;
        let linked = match &anchor {
            None => verify(&entries),
            Some(a) => verify_after(a, &entries),
        };
        if let Err(e) = linked {
            return Ok(Err(e));
        }
        if let Some(h) = head {
            if let Some(e) = entries.iter().find(|e| e.seq == h.seq) {
                if e.hash != h.hash {
                    return Ok(Err(ChainError {
                        seq: h.seq,
                        what: ChainFault::NotTheHead,
                    }));
                }
            }
        }
        checked += entries.len() as u64;
        match entries.pop() {
            Some(last) => anchor = Some(last),
            None => break,
        }
    }
    // The chain is valid, so its seqs run 1, 2, ..., checked: the head is in it, and was
    // compared above, if and only if its seq is at most `checked`.
    match head {
        Some(h) if h.seq > checked => Ok(Err(ChainError {
            seq: h.seq,
            what: ChainFault::Truncated {
                last: checked,
                head_seq: h.seq,
            },
        })),
        _ => Ok(Ok(checked)),
    }
}

#[cfg(test)]
mod tests {
    use switchyard_rollout::{AuditEvent, ChainError, ChainFault};

    use crate::{SqliteStore, Store, Transact};

    /// The verification reads pages; a fault is found wherever it falls among them (the
    /// conformance suite checks the same faults on every store through the public reads).
    #[test]
    fn faults_are_found_across_page_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let store: Box<dyn Store> = Box::new(SqliteStore::open_in(dir.path()).unwrap());
        for i in 0..7u64 {
            store
                .transact(|c| {
                    c.append_audit(AuditEvent {
                        at_ms: 1_000 + i,
                        actor: "ana".into(),
                        action: "flag.set".into(),
                        target: format!("flag:f{i}"),
                        reason: format!("step {i}"),
                        diff: String::new(),
                    })
                })
                .unwrap();
        }
        let head = store.audit_head().unwrap().unwrap();
        for size in [1, 2, 3, 7, 100] {
            assert_eq!(
                super::verify_pages(&*store, Some(&head), size).unwrap(),
                Ok(7)
            );
        }
        let db = rusqlite::Connection::open(dir.path().join("switchyard.db")).unwrap();
        db.execute_batch(
            "DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete; \
             UPDATE audit SET reason = 'x' WHERE seq = 2;",
        )
        .unwrap();
        let fault = |r: Result<u64, ChainError>| r.map_err(|e| (e.seq, e.what));
        for size in [1, 2, 3, 100] {
            assert_eq!(
                fault(super::verify_pages(&*store, None, size).unwrap()),
                Err((2, ChainFault::Edited))
            );
        }
        db.execute_batch("UPDATE audit SET reason = 'step 1' WHERE seq = 2")
            .unwrap();
        // Changing a value's type is an edit too, not a read error (SQLite keeps any type).
        db.execute_batch("UPDATE audit SET at_ms = 'soon' WHERE seq = 5")
            .unwrap();
        assert_eq!(
            fault(store.verify_audit().unwrap()),
            Err((5, ChainFault::Edited))
        );
        db.execute_batch(
            "UPDATE audit SET at_ms = 1004 WHERE seq = 5; DELETE FROM audit WHERE seq = 3",
        )
        .unwrap();
        for size in [1, 2, 3, 100] {
            assert_eq!(
                fault(super::verify_pages(&*store, None, size).unwrap()),
                Err((4, ChainFault::Missing { expected: 3 }))
            );
        }
    }
}
