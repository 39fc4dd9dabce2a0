//! The control state's SQL, one text for SQLite and PostgreSQL ([`crate::sql`]):
//! [`ControlRead`] and [`ControlTx`] hold it, and every store that runs the shared SQL gets
//! [`ControlReader`] (each read on one connection) and [`ControlStore`] (each change in one
//! transaction holding [`Lock::Control`]: SQLite's write lock, or on PostgreSQL an advisory
//! lock, so audit appends from several processes or replicas build one chain).

use std::collections::BTreeMap;

use serde::Serialize;
use switchyard_rollout::{AuditEntry, AuditEvent, Flag, Rollout};

use super::{
    AppliedRow, ConfigVersion, ConfigVersionSummary, ControlReader, ControlStore, ControlWork,
    ControlWriter, PromptRow, PromptSummary, StoredRollout, MIN_PREFIX,
};
use crate::sql::{limit, Dialect, Exec, Lock, Param, SqlReads, SqlRow, SqlStore};
use crate::StoreError;

/// Reads of the control plane's state, on a store's connection or inside a [`ControlTx`]
/// ([`ControlWriter::read`]).
pub struct ControlRead<'a> {
    e: &'a dyn Exec,
}

/// One transaction over the control tables, holding the control lock: every write in it, and
/// the audit entries appended with [`ControlWriter::append_audit`], commit together or not at
/// all. Made by [`ControlStore::transact_dyn`].
pub struct ControlTx<'a> {
    e: &'a dyn Exec,
}

const CONFIG_COLUMNS: &str = "id, parent, author, message, created_at_ms, source";
const AUDIT_COLUMNS: &str = "seq, at_ms, actor, action, target, reason, diff, prev_hash, hash";
const PROMPT_COLUMNS: &str = "name, version, body, author, message, created_at_ms";
const ROLLOUT_COLUMNS: &str = "id, body, active, created_at_ms, updated_at_ms";

/// The audit columns as read back. In SQLite, a value whose type was changed behind the
/// store's back (`at_ms = 'soon'`) is read as its cast, so verification reports the entry as
/// edited instead of failing to read it; PostgreSQL's columns keep their types.
fn audit_read(d: Dialect) -> &'static str {
    match d {
        Dialect::Sqlite => {
            "seq, CAST(at_ms AS INTEGER), CAST(actor AS TEXT), \
             CAST(action AS TEXT), CAST(target AS TEXT), CAST(reason AS TEXT), CAST(diff AS TEXT), \
             CAST(prev_hash AS TEXT), CAST(hash AS TEXT)"
        }
        Dialect::Postgres => AUDIT_COLUMNS,
    }
}

fn config_row(row: &dyn SqlRow) -> Result<ConfigVersion, StoreError> {
    Ok(ConfigVersion {
        id: row.string(0)?,
        parent: row.opt_string(1)?,
        author: row.string(2)?,
        message: row.string(3)?,
        created_at_ms: row.i64(4)?,
        source: row.string(5)?,
    })
}

// Audit times are u64 in the chain and i64 in the database: stored by bit pattern (`as`), so
// every value, even one above i64::MAX, reads back as it was hashed.
fn audit_row(row: &dyn SqlRow) -> Result<AuditEntry, StoreError> {
    Ok(AuditEntry {
        seq: row.i64(0)? as u64,
        event: AuditEvent {
            at_ms: row.i64(1)? as u64,
            actor: row.string(2)?,
            action: row.string(3)?,
            target: row.string(4)?,
            reason: row.string(5)?,
            diff: row.string(6)?,
        },
        prev_hash: row.string(7)?,
        hash: row.string(8)?,
    })
}

fn prompt_row(row: &dyn SqlRow) -> Result<PromptRow, StoreError> {
    Ok(PromptRow {
        name: row.string(0)?,
        version: row.u32(1)?,
        body: row.string(2)?,
        author: row.string(3)?,
        message: row.string(4)?,
        created_at_ms: row.i64(5)?,
    })
}

fn rollout_row(row: &dyn SqlRow) -> Result<StoredRollout, StoreError> {
    let id = row.string(0)?;
    Ok(StoredRollout {
        rollout: from_json(&row.string(1)?, || format!("stored rollout `{id}`"))?,
        active: row.bool(2)?,
        created_at_ms: row.i64(3)?,
        updated_at_ms: row.i64(4)?,
    })
}

fn from_json<T: serde::de::DeserializeOwned>(
    text: &str,
    what: impl FnOnce() -> String,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|source| StoreError::Json {
        what: what(),
        source,
    })
}

fn to_json<T: Serialize>(value: &T, what: impl FnOnce() -> String) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|source| StoreError::Json {
        what: what(),
        source,
    })
}

impl ControlRead<'_> {
    fn prompt_versions_limit(
        &self,
        name: &str,
        limit_to: usize,
    ) -> Result<Vec<PromptRow>, StoreError> {
        self.e.all(
            &format!(
                "SELECT {PROMPT_COLUMNS} FROM prompt_versions WHERE name = ?1 \
                 ORDER BY version DESC LIMIT ?2"
            ),
            &[name.into(), limit(limit_to)],
            prompt_row,
        )
    }

    fn flags_where(&self, filter: &str, params: &[Param<'_>]) -> Result<Vec<Flag>, StoreError> {
        let rows = self.e.all(
            &format!("SELECT key, body FROM flags {filter} ORDER BY key"),
            params,
            |r| Ok((r.string(0)?, r.string(1)?)),
        )?;
        rows.iter()
            .map(|(key, body)| from_json(body, || format!("stored flag `{key}`")))
            .collect()
    }

    fn rollouts_where(
        &self,
        filter: &str,
        params: &[Param<'_>],
    ) -> Result<Vec<StoredRollout>, StoreError> {
        self.e.all(
            &format!("SELECT {ROLLOUT_COLUMNS} FROM rollouts {filter} ORDER BY created_at_ms, id"),
            params,
            rollout_row,
        )
    }

    fn audit_where(&self, rest: &str, params: &[Param<'_>]) -> Result<Vec<AuditEntry>, StoreError> {
        let columns = audit_read(self.e.dialect());
        self.e.all(
            &format!("SELECT {columns} FROM audit {rest}"),
            params,
            audit_row,
        )
    }
}

impl ControlReader for ControlRead<'_> {
    fn config_version(&self, id_or_prefix: &str) -> Result<Option<ConfigVersion>, StoreError> {
        let by_id = format!("SELECT {CONFIG_COLUMNS} FROM config_versions WHERE id = ?1");
        let key = id_or_prefix.trim().to_ascii_lowercase();
        let exact = self.e.one(&by_id, &[key.as_str().into()], config_row)?;
        let hex = key.bytes().all(|b| b.is_ascii_hexdigit());
        if exact.is_some() || key.len() < MIN_PREFIX || !hex {
            return Ok(exact);
        }
        // Ids are lowercase hex, so every id starting with `key` sorts in [key, key || 'g')
        // (bytewise: PostgreSQL's ids are in the "C" collation).
        let matches: Vec<String> = self.e.all(
            "SELECT id FROM config_versions WHERE id >= ?1 AND id < ?1 || 'g' \
             ORDER BY id LIMIT 10",
            &[key.as_str().into()],
            |r| r.string(0),
        )?;
        match matches.as_slice() {
            [] => Ok(None),
            [id] => self.e.one(&by_id, &[id.into()], config_row),
            _ => Err(StoreError::AmbiguousPrefix {
                prefix: key,
                matches,
            }),
        }
    }

    fn config_versions(&self, limit_to: usize) -> Result<Vec<ConfigVersionSummary>, StoreError> {
        self.e.all(
            "SELECT v.id, v.parent, v.author, v.message, v.created_at_ms, \
             (SELECT MAX(a.at_ms) FROM config_applied a WHERE a.version_id = v.id) \
             FROM config_versions v ORDER BY v.created_at_ms DESC, v.rowid DESC LIMIT ?1",
            &[limit(limit_to)],
            |row| {
                Ok(ConfigVersionSummary {
                    id: row.string(0)?,
                    parent: row.opt_string(1)?,
                    author: row.string(2)?,
                    message: row.string(3)?,
                    created_at_ms: row.i64(4)?,
                    last_applied_at_ms: row.opt_i64(5)?,
                })
            },
        )
    }

    fn applied_history(&self, limit_to: usize) -> Result<Vec<AppliedRow>, StoreError> {
        self.e.all(
            "SELECT seq, version_id, at_ms, actor, reason FROM config_applied \
             ORDER BY seq DESC LIMIT ?1",
            &[limit(limit_to)],
            |row| {
                Ok(AppliedRow {
                    seq: row.u64(0)?,
                    version_id: row.string(1)?,
                    at_ms: row.i64(2)?,
                    actor: row.string(3)?,
                    reason: row.string(4)?,
                })
            },
        )
    }

    fn current_config(&self) -> Result<Option<ConfigVersion>, StoreError> {
        self.e.one(
            "SELECT v.id, v.parent, v.author, v.message, v.created_at_ms, v.source \
             FROM config_applied a JOIN config_versions v ON v.id = a.version_id \
             ORDER BY a.seq DESC LIMIT 1",
            &[],
            config_row,
        )
    }

    fn previous_config(&self) -> Result<Option<ConfigVersion>, StoreError> {
        self.e.one(
            "SELECT v.id, v.parent, v.author, v.message, v.created_at_ms, v.source \
             FROM config_applied a JOIN config_versions v ON v.id = a.version_id \
             WHERE a.version_id != \
               (SELECT version_id FROM config_applied ORDER BY seq DESC LIMIT 1) \
             ORDER BY a.seq DESC LIMIT 1",
            &[],
            config_row,
        )
    }

    fn audit_entries(
        &self,
        after_seq: u64,
        limit_to: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let after = i64::try_from(after_seq).unwrap_or(i64::MAX);
        self.audit_where(
            "WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            &[after.into(), limit(limit_to)],
        )
    }

    fn audit_latest(&self, limit_to: usize) -> Result<Vec<AuditEntry>, StoreError> {
        self.audit_where("ORDER BY seq DESC LIMIT ?1", &[limit(limit_to)])
    }

    fn audit_last(&self) -> Result<Option<AuditEntry>, StoreError> {
        Ok(self.audit_where("ORDER BY seq DESC LIMIT 1", &[])?.pop())
    }

    fn prompt(&self, name: &str, version: u32) -> Result<Option<PromptRow>, StoreError> {
        self.e.one(
            &format!(
                "SELECT {PROMPT_COLUMNS} FROM prompt_versions WHERE name = ?1 AND version = ?2"
            ),
            &[name.into(), version.into()],
            prompt_row,
        )
    }

    fn prompt_by_label(&self, name: &str, label: &str) -> Result<Option<PromptRow>, StoreError> {
        self.e.one(
            "SELECT p.name, p.version, p.body, p.author, p.message, p.created_at_ms \
             FROM prompt_labels l JOIN prompt_versions p \
             ON p.name = l.name AND p.version = l.version \
             WHERE l.name = ?1 AND l.label = ?2",
            &[name.into(), label.into()],
            prompt_row,
        )
    }

    fn latest_prompt(&self, name: &str) -> Result<Option<PromptRow>, StoreError> {
        Ok(self.prompt_versions_limit(name, 1)?.pop())
    }

    fn prompt_versions(&self, name: &str) -> Result<Vec<PromptRow>, StoreError> {
        self.prompt_versions_limit(name, usize::MAX)
    }

    fn prompt_names(&self) -> Result<Vec<PromptSummary>, StoreError> {
        let latest: Vec<(String, u32)> = self.e.all(
            "SELECT name, MAX(version) FROM prompt_versions GROUP BY name",
            &[],
            |r| Ok((r.string(0)?, r.u32(1)?)),
        )?;
        let mut out: BTreeMap<String, PromptSummary> = latest
            .into_iter()
            .map(|(name, latest_version)| {
                let summary = PromptSummary {
                    name: name.clone(),
                    latest_version,
                    labels: BTreeMap::new(),
                };
                (name, summary)
            })
            .collect();
        let labels: Vec<(String, String, u32)> =
            self.e
                .all("SELECT name, label, version FROM prompt_labels", &[], |r| {
                    Ok((r.string(0)?, r.string(1)?, r.u32(2)?))
                })?;
        for (name, label, version) in labels {
            if let Some(summary) = out.get_mut(&name) {
                summary.labels.insert(label, version);
            }
        }
        Ok(out.into_values().collect())
    }

    fn flag(&self, key: &str) -> Result<Option<Flag>, StoreError> {
        Ok(self.flags_where("WHERE key = ?1", &[key.into()])?.pop())
    }

    fn flags(&self) -> Result<Vec<Flag>, StoreError> {
        self.flags_where("", &[])
    }

    fn rollout(&self, id: &str) -> Result<Option<StoredRollout>, StoreError> {
        Ok(self.rollouts_where("WHERE id = ?1", &[id.into()])?.pop())
    }

    fn rollouts(&self, active_only: bool) -> Result<Vec<StoredRollout>, StoreError> {
        self.rollouts_where("WHERE active OR NOT ?1", &[active_only.into()])
    }

    fn control_generation(&self) -> Result<u64, StoreError> {
        let g = self.e.one(
            "SELECT generation FROM control_generation WHERE id = 1",
            &[],
            |r| r.i64(0),
        )?;
        Ok(g.and_then(|g| u64::try_from(g).ok()).unwrap_or(0))
    }
}

impl ControlTx<'_> {
    /// Reads that see this transaction's writes.
    fn reader(&self) -> ControlRead<'_> {
        ControlRead { e: self.e }
    }

    fn bump_generation(&self) -> Result<(), StoreError> {
        self.e.execute(
            "UPDATE control_generation SET generation = generation + 1 WHERE id = 1",
            &[],
        )?;
        Ok(())
    }
}

impl ControlWriter for ControlTx<'_> {
    fn read(&self) -> Box<dyn ControlReader + '_> {
        Box::new(self.reader())
    }

    /// The transaction holds the control lock from its start, so the last entry read here is
    /// still the last when this one is inserted.
    fn append_audit(&self, event: AuditEvent) -> Result<AuditEntry, StoreError> {
        let last = self.reader().audit_last()?;
        let e = AuditEntry::seal(last.as_ref(), event);
        let ev = &e.event;
        self.e.execute(
            &format!(
                "INSERT INTO audit ({AUDIT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
            ),
            &[
                (e.seq as i64).into(),
                (ev.at_ms as i64).into(),
                (&ev.actor).into(),
                (&ev.action).into(),
                (&ev.target).into(),
                (&ev.reason).into(),
                (&ev.diff).into(),
                (&e.prev_hash).into(),
                (&e.hash).into(),
            ],
        )?;
        Ok(e)
    }

    fn put_config_version(&self, v: &ConfigVersion) -> Result<bool, StoreError> {
        let hash = ConfigVersion::id_of(&v.source);
        if v.id != hash {
            return Err(StoreError::NotContentAddressed {
                id: v.id.clone(),
                hash,
            });
        }
        let inserted = self.e.execute(
            &format!(
                "INSERT INTO config_versions ({CONFIG_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) DO NOTHING"
            ),
            &[
                (&v.id).into(),
                (&v.parent).into(),
                (&v.author).into(),
                (&v.message).into(),
                v.created_at_ms.into(),
                (&v.source).into(),
            ],
        )?;
        Ok(inserted == 1)
    }

    fn mark_applied(
        &self,
        id: &str,
        at_ms: i64,
        actor: &str,
        reason: &str,
    ) -> Result<u64, StoreError> {
        let known = self.e.one(
            "SELECT 1 FROM config_versions WHERE id = ?1",
            &[id.into()],
            |_| Ok(()),
        )?;
        if known.is_none() {
            return Err(StoreError::NoSuchConfigVersion(id.to_string()));
        }
        // One more than the last: under the control lock, and rows are never deleted, so
        // numbers are never reused nor skipped.
        let seq = self.e.one(
            "INSERT INTO config_applied (seq, version_id, at_ms, actor, reason) \
             SELECT COALESCE(MAX(seq), 0) + 1, ?1, ?2, ?3, ?4 FROM config_applied RETURNING seq",
            &[id.into(), at_ms.into(), actor.into(), reason.into()],
            |r| r.u64(0),
        )?;
        self.bump_generation()?;
        Ok(seq.unwrap_or(0))
    }

    fn push_prompt(
        &self,
        name: &str,
        body_json: &str,
        author: &str,
        message: &str,
        at_ms: i64,
    ) -> Result<u32, StoreError> {
        let body: serde_json::Value = from_json(body_json, || format!("prompt `{name}`'s body"))?;
        let latest = self.reader().latest_prompt(name)?;
        if let Some(latest) = &latest {
            if serde_json::from_str::<serde_json::Value>(&latest.body).ok() == Some(body) {
                return Ok(latest.version);
            }
        }
        let version = latest.map_or(1, |l| l.version + 1);
        self.e.execute(
            &format!(
                "INSERT INTO prompt_versions ({PROMPT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
            ),
            &[
                name.into(),
                version.into(),
                body_json.into(),
                author.into(),
                message.into(),
                at_ms.into(),
            ],
        )?;
        self.bump_generation()?;
        Ok(version)
    }

    fn set_prompt_label(
        &self,
        name: &str,
        label: &str,
        version: u32,
        at_ms: i64,
    ) -> Result<Option<u32>, StoreError> {
        if self.reader().prompt(name, version)?.is_none() {
            return Err(StoreError::NoSuchPromptVersion {
                name: name.to_string(),
                version,
            });
        }
        let previous = self.e.one(
            "SELECT version FROM prompt_labels WHERE name = ?1 AND label = ?2",
            &[name.into(), label.into()],
            |r| r.u32(0),
        )?;
        self.e.execute(
            "INSERT INTO prompt_labels (name, label, version, updated_at_ms) \
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT (name, label) \
             DO UPDATE SET version = excluded.version, updated_at_ms = excluded.updated_at_ms",
            &[name.into(), label.into(), version.into(), at_ms.into()],
        )?;
        self.bump_generation()?;
        Ok(previous)
    }

    fn put_flag(&self, flag: &Flag, at_ms: i64) -> Result<Option<Flag>, StoreError> {
        let previous = self.reader().flag(&flag.key)?;
        let body = to_json(flag, || format!("flag `{}`", flag.key))?;
        self.e.execute(
            "INSERT INTO flags (key, body, updated_at_ms) VALUES (?1, ?2, ?3) ON CONFLICT (key) \
             DO UPDATE SET body = excluded.body, updated_at_ms = excluded.updated_at_ms",
            &[(&flag.key).into(), (&body).into(), at_ms.into()],
        )?;
        self.bump_generation()?;
        Ok(previous)
    }

    fn delete_flag(&self, key: &str) -> Result<Option<Flag>, StoreError> {
        let previous = self.reader().flag(key)?;
        if previous.is_some() {
            self.e
                .execute("DELETE FROM flags WHERE key = ?1", &[key.into()])?;
            self.bump_generation()?;
        }
        Ok(previous)
    }

    fn put_rollout(&self, rollout: &Rollout, active: bool, at_ms: i64) -> Result<(), StoreError> {
        let body = to_json(rollout, || format!("rollout `{}`", rollout.id()))?;
        self.e.execute(
            &format!(
                "INSERT INTO rollouts ({ROLLOUT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?4) \
                 ON CONFLICT (id) DO UPDATE SET body = excluded.body, active = excluded.active, \
                 updated_at_ms = excluded.updated_at_ms"
            ),
            &[
                rollout.id().into(),
                (&body).into(),
                active.into(),
                at_ms.into(),
            ],
        )?;
        self.bump_generation()
    }
}

/// Each read of a store on one of its connections.
impl<S: SqlReads> ControlReader for S {
    fn config_version(&self, id_or_prefix: &str) -> Result<Option<ConfigVersion>, StoreError> {
        self.exec(|e| ControlRead { e }.config_version(id_or_prefix))
    }

    fn config_versions(&self, limit: usize) -> Result<Vec<ConfigVersionSummary>, StoreError> {
        self.exec(|e| ControlRead { e }.config_versions(limit))
    }

    fn applied_history(&self, limit: usize) -> Result<Vec<AppliedRow>, StoreError> {
        self.exec(|e| ControlRead { e }.applied_history(limit))
    }

    fn current_config(&self) -> Result<Option<ConfigVersion>, StoreError> {
        self.exec(|e| ControlRead { e }.current_config())
    }

    fn previous_config(&self) -> Result<Option<ConfigVersion>, StoreError> {
        self.exec(|e| ControlRead { e }.previous_config())
    }

    fn audit_entries(&self, after_seq: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        self.exec(|e| ControlRead { e }.audit_entries(after_seq, limit))
    }

    fn audit_latest(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        self.exec(|e| ControlRead { e }.audit_latest(limit))
    }

    fn audit_last(&self) -> Result<Option<AuditEntry>, StoreError> {
        self.exec(|e| ControlRead { e }.audit_last())
    }

    fn prompt(&self, name: &str, version: u32) -> Result<Option<PromptRow>, StoreError> {
        self.exec(|e| ControlRead { e }.prompt(name, version))
    }

    fn prompt_by_label(&self, name: &str, label: &str) -> Result<Option<PromptRow>, StoreError> {
        self.exec(|e| ControlRead { e }.prompt_by_label(name, label))
    }

    fn latest_prompt(&self, name: &str) -> Result<Option<PromptRow>, StoreError> {
        self.exec(|e| ControlRead { e }.latest_prompt(name))
    }

    fn prompt_versions(&self, name: &str) -> Result<Vec<PromptRow>, StoreError> {
        self.exec(|e| ControlRead { e }.prompt_versions(name))
    }

    fn prompt_names(&self) -> Result<Vec<PromptSummary>, StoreError> {
        self.exec(|e| ControlRead { e }.prompt_names())
    }

    fn flag(&self, key: &str) -> Result<Option<Flag>, StoreError> {
        self.exec(|e| ControlRead { e }.flag(key))
    }

    fn flags(&self) -> Result<Vec<Flag>, StoreError> {
        self.exec(|e| ControlRead { e }.flags())
    }

    fn rollout(&self, id: &str) -> Result<Option<StoredRollout>, StoreError> {
        self.exec(|e| ControlRead { e }.rollout(id))
    }

    fn rollouts(&self, active_only: bool) -> Result<Vec<StoredRollout>, StoreError> {
        self.exec(|e| ControlRead { e }.rollouts(active_only))
    }

    fn control_generation(&self) -> Result<u64, StoreError> {
        self.exec(|e| ControlRead { e }.control_generation())
    }
}

impl<S: SqlStore> ControlStore for S {
    /// One transaction holding [`Lock::Control`] from its start.
    fn transact_dyn(&self, work: ControlWork<'_>) -> Result<(), StoreError> {
        self.transaction(Lock::Control, |e| work(&ControlTx { e }))
    }
}
