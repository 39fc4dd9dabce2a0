//! The control state in SQLite: [`ControlRead`] and [`ControlTx`] hold the SQL, and
//! [`SqliteStore`] runs them on its connection, each read under its lock and each change in
//! one immediate transaction (`BEGIN IMMEDIATE`, so audit appends from several processes on
//! one file are ordered by SQLite's write lock).

use std::collections::BTreeMap;

use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use serde::Serialize;
use switchyard_rollout::{AuditEntry, AuditEvent, Flag, Rollout};

use super::{
    AppliedRow, ConfigVersion, ConfigVersionSummary, ControlReader, ControlStore, ControlWork,
    ControlWriter, PromptRow, PromptSummary, StoredRollout, Transact, CONFIG_APPLY, MIN_PREFIX,
};
use crate::{SqliteStore, StoreError};

/// Reads of the control plane's state, on the store's connection or inside a
/// [`ControlTx`] ([`ControlWriter::read`]).
pub struct ControlRead<'a> {
    conn: &'a Connection,
}

/// One immediate (write-locked) transaction over the control tables: every write in it, and
/// the audit entries appended with [`ControlTx::append_audit`], commit together or not at all.
/// Made by [`ControlStore::transact_dyn`] on a [`SqliteStore`].
pub struct ControlTx<'c> {
    tx: rusqlite::Transaction<'c>,
}

const CONFIG_COLUMNS: &str = "id, parent, author, message, created_at_ms, source";
const AUDIT_COLUMNS: &str = "seq, at_ms, actor, action, target, reason, diff, prev_hash, hash";
/// The audit columns as read back. A value whose type was changed behind the store's back
/// (`at_ms = 'soon'`) is read as its cast, so verification reports the entry as edited
/// instead of failing to read it.
const AUDIT_READ: &str = "seq, CAST(at_ms AS INTEGER), CAST(actor AS TEXT), \
    CAST(action AS TEXT), CAST(target AS TEXT), CAST(reason AS TEXT), CAST(diff AS TEXT), \
    CAST(prev_hash AS TEXT), CAST(hash AS TEXT)";
const PROMPT_COLUMNS: &str = "name, version, body, author, message, created_at_ms";
const ROLLOUT_COLUMNS: &str = "id, body, active, created_at_ms, updated_at_ms";

fn config_row(row: &Row) -> rusqlite::Result<ConfigVersion> {
    Ok(ConfigVersion {
        id: row.get(0)?,
        parent: row.get(1)?,
        author: row.get(2)?,
        message: row.get(3)?,
        created_at_ms: row.get(4)?,
        source: row.get(5)?,
    })
}

// Audit times are u64 in the chain and i64 in SQLite: stored by bit pattern (`as`), so every
// value, even one above i64::MAX, reads back as it was hashed.
fn audit_row(row: &Row) -> rusqlite::Result<AuditEntry> {
    Ok(AuditEntry {
        seq: row.get::<_, i64>(0)? as u64,
        event: AuditEvent {
            at_ms: row.get::<_, i64>(1)? as u64,
            actor: row.get(2)?,
            action: row.get(3)?,
            target: row.get(4)?,
            reason: row.get(5)?,
            diff: row.get(6)?,
        },
        prev_hash: row.get(7)?,
        hash: row.get(8)?,
    })
}

fn prompt_row(row: &Row) -> rusqlite::Result<PromptRow> {
    Ok(PromptRow {
        name: row.get(0)?,
        version: row.get(1)?,
        body: row.get(2)?,
        author: row.get(3)?,
        message: row.get(4)?,
        created_at_ms: row.get(5)?,
    })
}

/// A rollout row before its JSON body is parsed (parsing fails with a [`StoreError`], which a
/// row mapper cannot return).
struct RawRollout {
    id: String,
    body: String,
    active: bool,
    created_at_ms: i64,
    updated_at_ms: i64,
}

fn raw_rollout_row(row: &Row) -> rusqlite::Result<RawRollout> {
    Ok(RawRollout {
        id: row.get(0)?,
        body: row.get(1)?,
        active: row.get(2)?,
        created_at_ms: row.get(3)?,
        updated_at_ms: row.get(4)?,
    })
}

impl RawRollout {
    fn parse(self) -> Result<StoredRollout, StoreError> {
        Ok(StoredRollout {
            rollout: from_json(&self.body, || format!("stored rollout `{}`", self.id))?,
            active: self.active,
            created_at_ms: self.created_at_ms,
            updated_at_ms: self.updated_at_ms,
        })
    }
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

fn limit_param(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

impl ControlRead<'_> {
    /// The first row `sql` gives, if any.
    fn one<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        row: impl FnOnce(&Row) -> rusqlite::Result<T>,
    ) -> Result<Option<T>, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        Ok(stmt.query_row(params, row).optional()?)
    }

    /// Every row `sql` gives.
    fn all<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        row: impl FnMut(&Row) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_map(params, row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn prompt_versions_limit(
        &self,
        name: &str,
        limit: usize,
    ) -> Result<Vec<PromptRow>, StoreError> {
        self.all(
            &format!(
                "SELECT {PROMPT_COLUMNS} FROM prompt_versions WHERE name = ?1 \
                 ORDER BY version DESC LIMIT ?2"
            ),
            params![name, limit_param(limit)],
            prompt_row,
        )
    }

    fn flags_where(
        &self,
        filter: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<Flag>, StoreError> {
        let rows: Vec<(String, String)> = self.all(
            &format!("SELECT key, body FROM flags {filter} ORDER BY key"),
            params,
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        rows.iter()
            .map(|(key, body)| from_json(body, || format!("stored flag `{key}`")))
            .collect()
    }

    fn rollouts_where(
        &self,
        filter: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<StoredRollout>, StoreError> {
        let rows = self.all(
            &format!("SELECT {ROLLOUT_COLUMNS} FROM rollouts {filter} ORDER BY created_at_ms, id"),
            params,
            raw_rollout_row,
        )?;
        rows.into_iter().map(RawRollout::parse).collect()
    }
}

impl ControlReader for ControlRead<'_> {
    fn config_version(&self, id_or_prefix: &str) -> Result<Option<ConfigVersion>, StoreError> {
        let by_id = format!("SELECT {CONFIG_COLUMNS} FROM config_versions WHERE id = ?1");
        let key = id_or_prefix.trim().to_ascii_lowercase();
        let exact = self.one(&by_id, params![key], config_row)?;
        let hex = key.bytes().all(|b| b.is_ascii_hexdigit());
        if exact.is_some() || key.len() < MIN_PREFIX || !hex {
            return Ok(exact);
        }
        // Ids are lowercase hex, so every id starting with `key` sorts in [key, key || 'g').
        let matches: Vec<String> = self.all(
            "SELECT id FROM config_versions WHERE id >= ?1 AND id < ?1 || 'g' \
             ORDER BY id LIMIT 10",
            params![key],
            |r| r.get(0),
        )?;
        match matches.as_slice() {
            [] => Ok(None),
            [id] => self.one(&by_id, params![id], config_row),
            _ => Err(StoreError::AmbiguousPrefix {
                prefix: key,
                matches,
            }),
        }
    }

    fn config_versions(&self, limit: usize) -> Result<Vec<ConfigVersionSummary>, StoreError> {
        self.all(
            "SELECT v.id, v.parent, v.author, v.message, v.created_at_ms, \
             (SELECT MAX(a.at_ms) FROM config_applied a WHERE a.version_id = v.id) \
             FROM config_versions v ORDER BY v.created_at_ms DESC, v.rowid DESC LIMIT ?1",
            params![limit_param(limit)],
            |row| {
                Ok(ConfigVersionSummary {
                    id: row.get(0)?,
                    parent: row.get(1)?,
                    author: row.get(2)?,
                    message: row.get(3)?,
                    created_at_ms: row.get(4)?,
                    last_applied_at_ms: row.get(5)?,
                })
            },
        )
    }

    fn applied_history(&self, limit: usize) -> Result<Vec<AppliedRow>, StoreError> {
        self.all(
            "SELECT seq, version_id, at_ms, actor, reason FROM config_applied \
             ORDER BY seq DESC LIMIT ?1",
            params![limit_param(limit)],
            |row| {
                Ok(AppliedRow {
                    seq: u64::try_from(row.get::<_, i64>(0)?).unwrap_or(0),
                    version_id: row.get(1)?,
                    at_ms: row.get(2)?,
                    actor: row.get(3)?,
                    reason: row.get(4)?,
                })
            },
        )
    }

    fn current_config(&self) -> Result<Option<ConfigVersion>, StoreError> {
        self.one(
            "SELECT v.id, v.parent, v.author, v.message, v.created_at_ms, v.source \
             FROM config_applied a JOIN config_versions v ON v.id = a.version_id \
             ORDER BY a.seq DESC LIMIT 1",
            [],
            config_row,
        )
    }

    fn previous_config(&self) -> Result<Option<ConfigVersion>, StoreError> {
        self.one(
            "SELECT v.id, v.parent, v.author, v.message, v.created_at_ms, v.source \
             FROM config_applied a JOIN config_versions v ON v.id = a.version_id \
             WHERE a.version_id != \
               (SELECT version_id FROM config_applied ORDER BY seq DESC LIMIT 1) \
             ORDER BY a.seq DESC LIMIT 1",
            [],
            config_row,
        )
    }

    fn audit_entries(&self, after_seq: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let after = i64::try_from(after_seq).unwrap_or(i64::MAX);
        self.all(
            &format!("SELECT {AUDIT_READ} FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2"),
            params![after, limit_param(limit)],
            audit_row,
        )
    }

    fn audit_latest(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        self.all(
            &format!("SELECT {AUDIT_READ} FROM audit ORDER BY seq DESC LIMIT ?1"),
            params![limit_param(limit)],
            audit_row,
        )
    }

    fn audit_last(&self) -> Result<Option<AuditEntry>, StoreError> {
        self.one(
            &format!("SELECT {AUDIT_READ} FROM audit ORDER BY seq DESC LIMIT 1"),
            [],
            audit_row,
        )
    }

    fn prompt(&self, name: &str, version: u32) -> Result<Option<PromptRow>, StoreError> {
        self.one(
            &format!(
                "SELECT {PROMPT_COLUMNS} FROM prompt_versions WHERE name = ?1 AND version = ?2"
            ),
            params![name, version],
            prompt_row,
        )
    }

    fn prompt_by_label(&self, name: &str, label: &str) -> Result<Option<PromptRow>, StoreError> {
        self.one(
            "SELECT p.name, p.version, p.body, p.author, p.message, p.created_at_ms \
             FROM prompt_labels l JOIN prompt_versions p \
             ON p.name = l.name AND p.version = l.version \
             WHERE l.name = ?1 AND l.label = ?2",
            params![name, label],
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
        let latest: Vec<(String, u32)> = self.all(
            "SELECT name, MAX(version) FROM prompt_versions GROUP BY name",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
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
            self.all("SELECT name, label, version FROM prompt_labels", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
        for (name, label, version) in labels {
            if let Some(summary) = out.get_mut(&name) {
                summary.labels.insert(label, version);
            }
        }
        Ok(out.into_values().collect())
    }

    fn flag(&self, key: &str) -> Result<Option<Flag>, StoreError> {
        Ok(self.flags_where("WHERE key = ?1", params![key])?.pop())
    }

    fn flags(&self) -> Result<Vec<Flag>, StoreError> {
        self.flags_where("", [])
    }

    fn rollout(&self, id: &str) -> Result<Option<StoredRollout>, StoreError> {
        Ok(self.rollouts_where("WHERE id = ?1", params![id])?.pop())
    }

    fn rollouts(&self, active_only: bool) -> Result<Vec<StoredRollout>, StoreError> {
        self.rollouts_where("WHERE active = 1 OR ?1 = 0", params![active_only])
    }

    fn control_generation(&self) -> Result<u64, StoreError> {
        let g: Option<i64> = self.one(
            "SELECT generation FROM control_generation WHERE id = 1",
            [],
            |r| r.get(0),
        )?;
        Ok(g.and_then(|g| u64::try_from(g).ok()).unwrap_or(0))
    }
}

impl ControlTx<'_> {
    /// Reads that see this transaction's writes.
    fn reader(&self) -> ControlRead<'_> {
        ControlRead { conn: &self.tx }
    }

    /// Runs one statement; returns how many rows it changed.
    fn exec(&self, sql: &str, params: impl rusqlite::Params) -> Result<usize, StoreError> {
        Ok(self.tx.prepare_cached(sql)?.execute(params)?)
    }

    fn bump_generation(&self) -> Result<(), StoreError> {
        self.exec(
            "UPDATE control_generation SET generation = generation + 1 WHERE id = 1",
            [],
        )?;
        Ok(())
    }
}

impl ControlWriter for ControlTx<'_> {
    fn read(&self) -> Box<dyn ControlReader + '_> {
        Box::new(self.reader())
    }

    fn append_audit(&self, event: AuditEvent) -> Result<AuditEntry, StoreError> {
        let last = self.reader().audit_last()?;
        let e = AuditEntry::seal(last.as_ref(), event);
        let ev = &e.event;
        self.exec(
            &format!(
                "INSERT INTO audit ({AUDIT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
            ),
            params![
                e.seq as i64,
                ev.at_ms as i64,
                ev.actor,
                ev.action,
                ev.target,
                ev.reason,
                ev.diff,
                e.prev_hash,
                e.hash
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
        let inserted = self.exec(
            &format!(
                "INSERT OR IGNORE INTO config_versions ({CONFIG_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
            ),
            params![
                v.id,
                v.parent,
                v.author,
                v.message,
                v.created_at_ms,
                v.source
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
        let known = self
            .tx
            .prepare_cached("SELECT 1 FROM config_versions WHERE id = ?1")?
            .exists(params![id])?;
        if !known {
            return Err(StoreError::NoSuchConfigVersion(id.to_string()));
        }
        self.exec(
            "INSERT INTO config_applied (version_id, at_ms, actor, reason) \
             VALUES (?1, ?2, ?3, ?4)",
            params![id, at_ms, actor, reason],
        )?;
        let seq = self.tx.last_insert_rowid();
        self.bump_generation()?;
        Ok(u64::try_from(seq).unwrap_or(0))
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
        self.exec(
            &format!(
                "INSERT INTO prompt_versions ({PROMPT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
            ),
            params![name, version, body_json, author, message, at_ms],
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
        let previous: Option<u32> = self.reader().one(
            "SELECT version FROM prompt_labels WHERE name = ?1 AND label = ?2",
            params![name, label],
            |r| r.get(0),
        )?;
        self.exec(
            "INSERT INTO prompt_labels (name, label, version, updated_at_ms) \
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT (name, label) \
             DO UPDATE SET version = excluded.version, updated_at_ms = excluded.updated_at_ms",
            params![name, label, version, at_ms],
        )?;
        self.bump_generation()?;
        Ok(previous)
    }

    fn put_flag(&self, flag: &Flag, at_ms: i64) -> Result<Option<Flag>, StoreError> {
        let previous = self.reader().flag(&flag.key)?;
        let body = to_json(flag, || format!("flag `{}`", flag.key))?;
        self.exec(
            "INSERT INTO flags (key, body, updated_at_ms) VALUES (?1, ?2, ?3) ON CONFLICT (key) \
             DO UPDATE SET body = excluded.body, updated_at_ms = excluded.updated_at_ms",
            params![flag.key, body, at_ms],
        )?;
        self.bump_generation()?;
        Ok(previous)
    }

    fn delete_flag(&self, key: &str) -> Result<Option<Flag>, StoreError> {
        let previous = self.reader().flag(key)?;
        if previous.is_some() {
            self.exec("DELETE FROM flags WHERE key = ?1", params![key])?;
            self.bump_generation()?;
        }
        Ok(previous)
    }

    fn put_rollout(&self, rollout: &Rollout, active: bool, at_ms: i64) -> Result<(), StoreError> {
        let body = to_json(rollout, || format!("rollout `{}`", rollout.id()))?;
        self.exec(
            &format!(
                "INSERT INTO rollouts ({ROLLOUT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?4) \
                 ON CONFLICT (id) DO UPDATE SET body = excluded.body, active = excluded.active, \
                 updated_at_ms = excluded.updated_at_ms"
            ),
            params![rollout.id(), body, active, at_ms],
        )?;
        self.bump_generation()
    }
}

/// Single changes, each in a transaction of its own: for tools and tests. The gateway changes
/// through [`Transact::transact`], so that its audit entry commits with the change.
impl SqliteStore {
    /// Runs reads on the connection, under its lock.
    fn read<T>(
        &self,
        f: impl FnOnce(ControlRead<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.with_conn(|conn| f(ControlRead { conn }))
    }

    /// See [`ControlWriter::put_config_version`].
    pub fn put_config_version(&self, v: &ConfigVersion) -> Result<bool, StoreError> {
        self.transact(|c| c.put_config_version(v))
    }

    /// See [`ControlWriter::mark_applied`].
    pub fn mark_applied(
        &self,
        id: &str,
        at_ms: i64,
        actor: &str,
        reason: &str,
    ) -> Result<u64, StoreError> {
        self.transact(|c| c.mark_applied(id, at_ms, actor, reason))
    }

    /// Stores `v` if new, records it applied and appends its `config.apply` audit entry
    /// (target `config:<id>`, the caller's `diff`), all in one transaction.
    pub fn apply_config_version(
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

    /// See [`ControlWriter::append_audit`].
    pub fn append_audit(&self, event: AuditEvent) -> Result<AuditEntry, StoreError> {
        self.transact(|c| c.append_audit(event))
    }

    /// See [`ControlWriter::push_prompt`].
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

    /// See [`ControlWriter::set_prompt_label`].
    pub fn set_prompt_label(
        &self,
        name: &str,
        label: &str,
        version: u32,
        at_ms: i64,
    ) -> Result<Option<u32>, StoreError> {
        self.transact(|c| c.set_prompt_label(name, label, version, at_ms))
    }

    /// See [`ControlWriter::put_flag`].
    pub fn put_flag(&self, flag: &Flag, at_ms: i64) -> Result<Option<Flag>, StoreError> {
        self.transact(|c| c.put_flag(flag, at_ms))
    }

    /// See [`ControlWriter::delete_flag`].
    pub fn delete_flag(&self, key: &str) -> Result<Option<Flag>, StoreError> {
        self.transact(|c| c.delete_flag(key))
    }

    /// See [`ControlWriter::put_rollout`].
    pub fn put_rollout(
        &self,
        rollout: &Rollout,
        active: bool,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        self.transact(|c| c.put_rollout(rollout, active, at_ms))
    }
}

impl ControlReader for SqliteStore {
    fn config_version(&self, id_or_prefix: &str) -> Result<Option<ConfigVersion>, StoreError> {
        self.read(|r| r.config_version(id_or_prefix))
    }

    fn config_versions(&self, limit: usize) -> Result<Vec<ConfigVersionSummary>, StoreError> {
        self.read(|r| r.config_versions(limit))
    }

    fn applied_history(&self, limit: usize) -> Result<Vec<AppliedRow>, StoreError> {
        self.read(|r| r.applied_history(limit))
    }

    fn current_config(&self) -> Result<Option<ConfigVersion>, StoreError> {
        self.read(|r| r.current_config())
    }

    fn previous_config(&self) -> Result<Option<ConfigVersion>, StoreError> {
        self.read(|r| r.previous_config())
    }

    fn audit_entries(&self, after_seq: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        self.read(|r| r.audit_entries(after_seq, limit))
    }

    fn audit_latest(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        self.read(|r| r.audit_latest(limit))
    }

    fn audit_last(&self) -> Result<Option<AuditEntry>, StoreError> {
        self.read(|r| r.audit_last())
    }

    fn prompt(&self, name: &str, version: u32) -> Result<Option<PromptRow>, StoreError> {
        self.read(|r| r.prompt(name, version))
    }

    fn prompt_by_label(&self, name: &str, label: &str) -> Result<Option<PromptRow>, StoreError> {
        self.read(|r| r.prompt_by_label(name, label))
    }

    fn latest_prompt(&self, name: &str) -> Result<Option<PromptRow>, StoreError> {
        self.read(|r| r.latest_prompt(name))
    }

    fn prompt_versions(&self, name: &str) -> Result<Vec<PromptRow>, StoreError> {
        self.read(|r| r.prompt_versions(name))
    }

    fn prompt_names(&self) -> Result<Vec<PromptSummary>, StoreError> {
        self.read(|r| r.prompt_names())
    }

    fn flag(&self, key: &str) -> Result<Option<Flag>, StoreError> {
        self.read(|r| r.flag(key))
    }

    fn flags(&self) -> Result<Vec<Flag>, StoreError> {
        self.read(|r| r.flags())
    }

    fn rollout(&self, id: &str) -> Result<Option<StoredRollout>, StoreError> {
        self.read(|r| r.rollout(id))
    }

    fn rollouts(&self, active_only: bool) -> Result<Vec<StoredRollout>, StoreError> {
        self.read(|r| r.rollouts(active_only))
    }

    fn control_generation(&self) -> Result<u64, StoreError> {
        self.read(|r| r.control_generation())
    }
}

impl ControlStore for SqliteStore {
    /// An immediate transaction: it waits for the write lock up to the busy timeout.
    fn transact_dyn(&self, work: ControlWork<'_>) -> Result<(), StoreError> {
        self.with_conn(|conn| {
            let c = ControlTx {
                tx: conn.transaction_with_behavior(TransactionBehavior::Immediate)?,
            };
            work(&c)?;
            c.tx.commit()?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use switchyard_rollout::{FlagKind, RolloutSpec, TargetKind, TargetRef};

    use super::*;
    use switchyard_rollout::{ChainError, ChainFault};

    use crate::control::verify_pages;
    use crate::RecordStore;

    fn open(dir: &Path) -> SqliteStore {
        SqliteStore::open_in(dir).unwrap()
    }

    /// A second handle on the same file, for tampering as someone with the file would: first
    /// dropping the triggers that refuse edits to the audit log.
    fn raw(dir: &Path) -> Connection {
        let db = Connection::open(dir.join("switchyard.db")).unwrap();
        db.execute_batch("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;")
            .unwrap();
        db
    }

    fn version(source: &str, at: i64) -> ConfigVersion {
        ConfigVersion::new(source, None, "ana", format!("set {source}"), at)
    }

    fn event(i: u64, actor: &str) -> AuditEvent {
        AuditEvent {
            at_ms: 1_000 + i,
            actor: actor.into(),
            action: "flag.set".into(),
            target: format!("flag:f{i}"),
            reason: format!("step {i}"),
            diff: "-a\n+b\n".into(),
        }
    }

    fn flag(key: &str, on: bool) -> Flag {
        Flag {
            key: key.into(),
            kind: FlagKind::Boolean { on },
            enabled: true,
        }
    }

    #[test]
    fn config_versions_are_content_addressed_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let v = ConfigVersion::new("a = 1\n", None, "ana", "first", 10);
        assert_eq!(v.id, ConfigVersion::id_of("a = 1\n"));
        assert_eq!(v.id.len(), 64);
        assert!(store.put_config_version(&v).unwrap());
        // Again, even with other metadata: the stored one is kept.
        let again = ConfigVersion {
            message: "other".into(),
            ..v.clone()
        };
        assert!(!store.put_config_version(&again).unwrap());
        assert_eq!(store.config_version(&v.id).unwrap(), Some(v.clone()));
        // An id that is not the text's hash is refused.
        let forged = ConfigVersion {
            source: "a = 2\n".into(),
            ..v.clone()
        };
        assert!(matches!(
            store.put_config_version(&forged),
            Err(StoreError::NotContentAddressed { .. })
        ));
        assert_eq!(store.config_versions(10).unwrap().len(), 1);
    }

    #[test]
    fn config_versions_resolve_by_unique_prefix() {
        // Two texts whose ids share their first MIN_PREFIX digits.
        let mut seen: HashMap<String, String> = HashMap::new();
        let (a, b) = (0..200_000)
            .find_map(|i| {
                let text = format!("n = {i}\n");
                let prefix = ConfigVersion::id_of(&text)[..MIN_PREFIX].to_string();
                seen.insert(prefix, text.clone()).map(|other| (other, text))
            })
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let (va, vb) = (version(&a, 1), version(&b, 2));
        store.put_config_version(&va).unwrap();
        store.put_config_version(&vb).unwrap();
        let shared = &va.id[..MIN_PREFIX];
        match store.config_version(shared) {
            Err(StoreError::AmbiguousPrefix { prefix, matches }) => {
                assert_eq!(prefix, shared);
                let mut want = vec![va.id.clone(), vb.id.clone()];
                want.sort();
                assert_eq!(matches, want);
            }
            other => panic!("{other:?}"),
        }
        let err = store.config_version(shared).unwrap_err().to_string();
        assert!(err.contains("ambiguous") && err.contains(&va.id), "{err}");
        // A longer prefix (in capitals, with spaces) that tells them apart.
        let n = (0..64)
            .find(|&n| va.id.as_bytes()[n] != vb.id.as_bytes()[n])
            .unwrap();
        let unique = format!(" {} ", va.id[..=n].to_ascii_uppercase());
        assert_eq!(store.config_version(&unique).unwrap(), Some(va.clone()));
        // Too short, not hex, or unknown: nothing.
        assert_eq!(
            store.config_version(&va.id[..MIN_PREFIX - 1]).unwrap(),
            None
        );
        assert_eq!(store.config_version("zzzzzzzz").unwrap(), None);
        assert_eq!(store.config_version("%").unwrap(), None);
        let unknown = if va.id.starts_with('0') {
            "ffffff"
        } else {
            "000000"
        };
        assert_eq!(store.config_version(unknown).unwrap(), None);
    }

    #[test]
    fn applied_history_current_and_previous() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        assert_eq!(store.current_config().unwrap(), None);
        assert_eq!(store.previous_config().unwrap(), None);
        let (v1, v2) = (version("a = 1\n", 10), version("a = 2\n", 20));
        store.put_config_version(&v1).unwrap();
        store.put_config_version(&v2).unwrap();
        let listed: Vec<String> = store
            .config_versions(10)
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(listed, [v2.id.clone(), v1.id.clone()]);
        assert!(matches!(
            store.mark_applied("nope", 1, "ana", "x"),
            Err(StoreError::NoSuchConfigVersion(_))
        ));
        store.mark_applied(&v1.id, 100, "ana", "start").unwrap();
        store.mark_applied(&v2.id, 200, "bo", "bump").unwrap();
        // Re-applying the current one keeps the one before it as the rollback target.
        let seq = store.mark_applied(&v2.id, 300, "bo", "again").unwrap();
        assert_eq!(seq, 3);
        let history = store.applied_history(10).unwrap();
        let seen: Vec<(&str, i64)> = history
            .iter()
            .map(|r| (r.version_id.as_str(), r.at_ms))
            .collect();
        assert_eq!(
            seen,
            [
                (v2.id.as_str(), 300),
                (v2.id.as_str(), 200),
                (v1.id.as_str(), 100)
            ]
        );
        assert_eq!(store.applied_history(1).unwrap().len(), 1);
        assert_eq!(store.current_config().unwrap(), Some(v2.clone()));
        assert_eq!(store.previous_config().unwrap(), Some(v1.clone()));
        let summaries = store.config_versions(10).unwrap();
        assert_eq!(summaries[0].last_applied_at_ms, Some(300));
        assert_eq!(summaries[1].last_applied_at_ms, Some(100));
    }

    #[test]
    fn applying_a_version_audits_it_in_the_same_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let v1 = version("a = 1\n", 10);
        let entry = store
            .apply_config_version(&v1, "ana", "first", 100, "+a = 1\n")
            .unwrap();
        assert_eq!(entry.seq, 1);
        assert_eq!(entry.event.action, CONFIG_APPLY);
        assert_eq!(entry.event.target, format!("config:{}", v1.id));
        assert_eq!(entry.event.at_ms, 100);
        assert_eq!(store.current_config().unwrap(), Some(v1.clone()));
        assert_eq!(
            store.audit_entries(0, 10).unwrap(),
            std::slice::from_ref(&entry)
        );
        // A forged version fails as a whole: nothing applied, nothing audited.
        let forged = ConfigVersion {
            source: "a = 3\n".into(),
            ..version("a = 2\n", 20)
        };
        assert!(store
            .apply_config_version(&forged, "eve", "x", 200, "")
            .is_err());
        assert_eq!(store.applied_history(10).unwrap().len(), 1);
        assert_eq!(store.audit_head().unwrap(), Some(entry.head()));
    }

    #[test]
    fn a_failed_transaction_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let before = store.control_generation().unwrap();
        let out: Result<(), StoreError> = store.transact(|c| {
            c.put_flag(&flag("f", true), 1)?;
            c.append_audit(event(1, "ana"))?;
            assert_eq!(c.read().flags()?.len(), 1, "reads see the transaction");
            c.set_prompt_label("missing", "production", 1, 1)?;
            Ok(())
        });
        assert!(matches!(
            out,
            Err(StoreError::NoSuchPromptVersion { version: 1, .. })
        ));
        assert_eq!(store.flags().unwrap(), []);
        assert_eq!(store.audit_head().unwrap(), None);
        assert_eq!(store.control_generation().unwrap(), before);
    }

    #[test]
    fn concurrent_appends_from_two_connections_form_one_chain() {
        let dir = tempfile::tempdir().unwrap();
        let stores = [open(dir.path()), open(dir.path())];
        let per_thread = 40u64;
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let store = &stores[(t % 2) as usize];
                s.spawn(move || {
                    for i in 0..per_thread {
                        store.append_audit(event(i, &format!("t{t}"))).unwrap();
                    }
                });
            }
        });
        let total = 4 * per_thread;
        assert_eq!(stores[0].verify_audit().unwrap(), Ok(total));
        assert_eq!(stores[1].verify_audit().unwrap(), Ok(total));
        let all = stores[1].audit_entries(0, usize::MAX).unwrap();
        assert_eq!(all.len() as u64, total);
        assert_eq!(
            all.last().map(AuditEntry::head),
            stores[0].audit_head().unwrap()
        );
        for t in 0..4 {
            let mine = all.iter().filter(|e| e.event.actor == format!("t{t}"));
            assert_eq!(mine.count() as u64, per_thread);
        }
    }

    #[test]
    fn kept_rows_refuse_edits() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        store.append_audit(event(1, "ana")).unwrap();
        store.put_config_version(&version("a = 1\n", 1)).unwrap();
        store.push_prompt("p", "{}", "ana", "x", 1).unwrap();
        let db = Connection::open(dir.path().join("switchyard.db")).unwrap();
        for (sql, says) in [
            ("UPDATE audit SET reason = 'x'", "append-only"),
            ("DELETE FROM audit", "append-only"),
            ("UPDATE config_versions SET source = 'x'", "immutable"),
            ("DELETE FROM config_versions", "immutable"),
            ("UPDATE prompt_versions SET body = '[]'", "immutable"),
            ("DELETE FROM prompt_versions", "immutable"),
        ] {
            let err = db.execute(sql, []).unwrap_err().to_string();
            assert!(err.contains(says), "{sql}: {err}");
        }
        assert_eq!(store.verify_audit().unwrap(), Ok(1));
    }

    #[test]
    fn audit_pages_and_tampering() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        assert_eq!(store.verify_audit().unwrap(), Ok(0));
        for i in 0..7 {
            store.append_audit(event(i, "ana")).unwrap();
        }
        let head = store.audit_head().unwrap().unwrap();
        assert_eq!(head.seq, 7);
        let page: Vec<u64> = store
            .audit_entries(2, 3)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(page, [3, 4, 5]);
        // Small pages check the links across page boundaries too.
        for size in [1, 2, 3, 7, 100] {
            assert_eq!(verify_pages(&store, Some(&head), size).unwrap(), Ok(7));
        }
        let fault = |r: Result<u64, ChainError>| r.map_err(|e| (e.seq, e.what));

        // Editing a field of entry 2.
        let db = raw(dir.path());
        let reason: String = db
            .query_row("SELECT reason FROM audit WHERE seq = 2", [], |r| r.get(0))
            .unwrap();
        db.execute("UPDATE audit SET reason = 'x' WHERE seq = 2", [])
            .unwrap();
        for size in [1, 2, 3, 100] {
            assert_eq!(
                fault(verify_pages(&store, None, size).unwrap()),
                Err((2, ChainFault::Edited))
            );
        }
        db.execute("UPDATE audit SET reason = ?1 WHERE seq = 2", [&reason])
            .unwrap();
        assert_eq!(store.verify_audit().unwrap(), Ok(7));

        // Changing a value's type is an edit too, not a read error.
        db.execute("UPDATE audit SET at_ms = 'soon' WHERE seq = 5", [])
            .unwrap();
        assert_eq!(
            fault(store.verify_audit().unwrap()),
            Err((5, ChainFault::Edited))
        );
        db.execute("UPDATE audit SET at_ms = 1004 WHERE seq = 5", [])
            .unwrap();
        assert_eq!(store.verify_audit().unwrap(), Ok(7));

        // Deleting entry 3.
        db.execute("DELETE FROM audit WHERE seq = 3", []).unwrap();
        for size in [1, 2, 3, 100] {
            assert_eq!(
                fault(verify_pages(&store, None, size).unwrap()),
                Err((4, ChainFault::Missing { expected: 3 }))
            );
        }
        let err = store.verify_audit().unwrap().unwrap_err().to_string();
        assert_eq!(err, "audit entry 4: expected entry 3 before it (deleted)");
    }

    #[test]
    fn a_cut_off_tail_is_found_only_with_a_head() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        for i in 0..5 {
            store.append_audit(event(i, "ana")).unwrap();
        }
        let head = store.audit_head().unwrap().unwrap();
        let db = raw(dir.path());
        db.execute("DELETE FROM audit WHERE seq >= 4", []).unwrap();
        assert_eq!(store.verify_audit().unwrap(), Ok(3));
        let r = store.verify_audit_with_head(&head).unwrap();
        assert_eq!(
            r.map_err(|e| e.what),
            Err(ChainFault::Truncated {
                last: 3,
                head_seq: 5
            })
        );
        // Rewritten: appended again to the same length, with other content.
        store.append_audit(event(8, "eve")).unwrap();
        store.append_audit(event(9, "eve")).unwrap();
        let r = store.verify_audit_with_head(&head).unwrap();
        assert_eq!(
            r.map_err(|e| (e.seq, e.what)),
            Err((5, ChainFault::NotTheHead))
        );
        // Later appends after a real head are fine.
        let new_head = store.audit_head().unwrap().unwrap();
        store.append_audit(event(10, "ana")).unwrap();
        assert_eq!(store.verify_audit_with_head(&new_head).unwrap(), Ok(6));
    }

    #[test]
    fn prompts_push_label_and_list() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let body1 = r#"{"system":"Be brief.","user":"{{q}}","variables":["q"]}"#;
        assert_eq!(
            store.push_prompt("qa", body1, "ana", "first", 1).unwrap(),
            1
        );
        // The same JSON, reformatted and reordered: no new version.
        let same = r#"{ "user": "{{q}}", "variables": ["q"], "system": "Be brief." }"#;
        assert_eq!(store.push_prompt("qa", same, "bo", "again", 2).unwrap(), 1);
        let body2 = r#"{"system":"Be very brief.","user":"{{q}}","variables":["q"]}"#;
        assert_eq!(
            store.push_prompt("qa", body2, "bo", "shorter", 3).unwrap(),
            2
        );
        // Pushing an old body again makes it the newest version.
        assert_eq!(
            store.push_prompt("qa", body1, "bo", "revert", 4).unwrap(),
            3
        );
        assert_eq!(store.push_prompt("other", "{}", "bo", "x", 5).unwrap(), 1);
        assert!(matches!(
            store.push_prompt("qa", "{not json", "bo", "x", 6),
            Err(StoreError::Json { .. })
        ));

        let v2 = store.prompt("qa", 2).unwrap().unwrap();
        assert_eq!(
            v2,
            PromptRow {
                name: "qa".into(),
                version: 2,
                body: body2.into(),
                author: "bo".into(),
                message: "shorter".into(),
                created_at_ms: 3,
            }
        );
        assert_eq!(store.prompt("qa", 9).unwrap(), None);
        assert_eq!(store.latest_prompt("qa").unwrap().unwrap().version, 3);
        assert_eq!(store.latest_prompt("none").unwrap(), None);
        let versions: Vec<u32> = store
            .prompt_versions("qa")
            .unwrap()
            .iter()
            .map(|p| p.version)
            .collect();
        assert_eq!(versions, [3, 2, 1]);

        assert_eq!(
            store.set_prompt_label("qa", "production", 1, 10).unwrap(),
            None
        );
        assert_eq!(store.set_prompt_label("qa", "canary", 2, 11).unwrap(), None);
        assert_eq!(
            store.set_prompt_label("qa", "production", 2, 12).unwrap(),
            Some(1)
        );
        assert!(matches!(
            store.set_prompt_label("qa", "staging", 4, 13),
            Err(StoreError::NoSuchPromptVersion { version: 4, .. })
        ));
        assert!(store.set_prompt_label("none", "staging", 1, 13).is_err());
        assert_eq!(store.prompt_by_label("qa", "production").unwrap(), Some(v2));
        assert_eq!(store.prompt_by_label("qa", "staging").unwrap(), None);

        let names = store.prompt_names().unwrap();
        assert_eq!(
            names,
            [
                PromptSummary {
                    name: "other".into(),
                    latest_version: 1,
                    labels: BTreeMap::new(),
                },
                PromptSummary {
                    name: "qa".into(),
                    latest_version: 3,
                    labels: [("canary".to_string(), 2), ("production".to_string(), 2)].into(),
                },
            ]
        );
    }

    #[test]
    fn flags_put_replace_delete_and_generation() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let other = open(dir.path());
        let g0 = other.control_generation().unwrap();
        assert_eq!(store.put_flag(&flag("b", true), 1).unwrap(), None);
        let pct = Flag {
            key: "a".into(),
            kind: FlagKind::Percentage { basis_points: 500 },
            enabled: true,
        };
        assert_eq!(store.put_flag(&pct, 2).unwrap(), None);
        assert_eq!(
            store.put_flag(&flag("b", false), 3).unwrap(),
            Some(flag("b", true))
        );
        assert_eq!(store.flags().unwrap(), [pct.clone(), flag("b", false)]);
        assert_eq!(store.flag("a").unwrap(), Some(pct.clone()));
        // Another connection sees each write as a new generation.
        let g1 = other.control_generation().unwrap();
        assert_eq!(g1, g0 + 3);
        assert_eq!(store.delete_flag("a").unwrap(), Some(pct));
        assert_eq!(store.delete_flag("a").unwrap(), None);
        assert_eq!(
            other.control_generation().unwrap(),
            g1 + 1,
            "no-op deletes do not bump"
        );
        assert_eq!(other.flags().unwrap(), [flag("b", false)]);

        // What else bumps it: applied config, prompt versions and labels, rollouts.
        let g = other.control_generation().unwrap();
        let v = version("a = 1\n", 1);
        store.put_config_version(&v).unwrap();
        assert_eq!(
            other.control_generation().unwrap(),
            g,
            "stored is not applied"
        );
        store.mark_applied(&v.id, 2, "ana", "x").unwrap();
        store.push_prompt("p", "{}", "ana", "x", 3).unwrap();
        store.push_prompt("p", "{}", "ana", "x", 3).unwrap();
        store.set_prompt_label("p", "production", 1, 4).unwrap();
        store.put_rollout(&rollout("r"), true, 5).unwrap();
        store.append_audit(event(1, "ana")).unwrap();
        assert_eq!(other.control_generation().unwrap(), g + 4);
    }

    fn rollout(id: &str) -> Rollout {
        let config = |id: &str| TargetRef {
            kind: TargetKind::Config,
            id: id.into(),
        };
        Rollout::new(id, config("v1"), config("v2"), RolloutSpec::default()).unwrap()
    }

    #[test]
    fn rollouts_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let mut r = rollout("cfg-2");
        store.put_rollout(&r, true, 100).unwrap();
        r.start(150).unwrap();
        store.put_rollout(&r, true, 200).unwrap();
        store.put_rollout(&rollout("cfg-1"), false, 300).unwrap();
        let got = store.rollout("cfg-2").unwrap().unwrap();
        assert_eq!(
            got,
            StoredRollout {
                rollout: r.clone(),
                active: true,
                created_at_ms: 100,
                updated_at_ms: 200,
            }
        );
        assert_eq!(got.rollout.timeline().len(), 1);
        assert_eq!(store.rollout("none").unwrap(), None);
        let ids = |active_only| -> Vec<String> {
            store
                .rollouts(active_only)
                .unwrap()
                .into_iter()
                .map(|s| s.rollout.id().to_string())
                .collect()
        };
        assert_eq!(ids(true), ["cfg-2"]);
        assert_eq!(ids(false), ["cfg-2", "cfg-1"]);
        // A body the crate cannot read says which rollout it is.
        raw(dir.path())
            .execute("UPDATE rollouts SET body = '{}' WHERE id = 'cfg-1'", [])
            .unwrap();
        let err = store.rollouts(false).unwrap_err().to_string();
        assert!(err.contains("stored rollout `cfg-1`"), "{err}");
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
        store.put_flag(&flag("f", true), 1).unwrap();
        store.append_audit(event(1, "ana")).unwrap();
        drop(store);
        // Re-opening runs nothing again and keeps everything.
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.flags().unwrap(), [flag("f", true)]);
        assert_eq!(store.verify_audit().unwrap(), Ok(1));
        assert_eq!(store.control_generation().unwrap(), 1);
    }
}
