//! Versioned schema migrations: numbered SQL files in `migrations/`, compiled in, recorded in
//! `schema_migrations` as they are applied.
//!
//! 1. At connect, the store takes a session-level advisory lock ([`MIGRATION_LOCK`]) on one
//!    connection, so of several replicas starting at once one migrates and the others wait.
//! 2. Holding it, it creates `schema_migrations` if missing and reads which versions are
//!    applied; each missing one runs in a transaction of its own that also records it, so a
//!    migration is applied exactly once, or not at all when it fails, and is on disk when
//!    its commit returns (`synchronous_commit = on` for it, whatever the server's setting).
//! 3. It lets the lock go (and on an error drops the connection, which lets it go too). A
//!    database migrated by a newer build (versions this one does not know) is left alone.
//!
//! Only ever append a file: stored data must stay readable.

use postgres::Client;

use crate::StoreError;

/// The advisory lock key of migrations ("SWYD" and 1).
pub(crate) const MIGRATION_LOCK: i64 = 0x5357_5944_0000_0001;

/// The migrations in order: version, name, SQL.
pub(crate) const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "records", include_str!("migrations/0001_records.sql")),
    (2, "routing", include_str!("migrations/0002_routing.sql")),
    (3, "control", include_str!("migrations/0003_control.sql")),
    (4, "slo", include_str!("migrations/0004_slo.sql")),
    (5, "sessions", include_str!("migrations/0005_sessions.sql")),
    (6, "fleet", include_str!("migrations/0006_fleet.sql")),
    (
        7,
        "admission",
        include_str!("migrations/0007_admission.sql"),
    ),
    (8, "batches", include_str!("migrations/0008_batches.sql")),
    (
        9,
        "responses",
        include_str!("migrations/0009_responses.sql"),
    ),
];

/// Applies the migrations not yet applied (1. to 3. above); returns how many this call did.
pub(crate) fn migrate(client: &mut Client) -> Result<usize, StoreError> {
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])?;
    let applied = apply_missing(client);
    let unlocked = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]);
    let applied = applied?;
    unlocked?;
    Ok(applied)
}

fn apply_missing(client: &mut Client) -> Result<usize, StoreError> {
    client.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version    BIGINT PRIMARY KEY,
            name       TEXT NOT NULL,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )",
    )?;
    let done: Vec<i64> = client
        .query("SELECT version FROM schema_migrations", &[])?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    let mut applied = 0;
    for (version, name, sql) in MIGRATIONS {
        if done.contains(version) {
            continue;
        }
        let mut tx = client.transaction()?;
        // Durable before anything relies on it, whatever the server's `synchronous_commit`:
        // a schema change lost in a crash would fail every write of this process after it.
        tx.batch_execute("SET LOCAL synchronous_commit = on")?;
        tx.batch_execute(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )?;
        tx.commit()?;
        tracing::info!(version, name, "applied a PostgreSQL schema migration");
        applied += 1;
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_in_order_without_gaps() {
        for (i, (version, name, sql)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(*version, i as i64 + 1, "{name}");
            assert!(!sql.trim().is_empty(), "{name}");
        }
    }
}
