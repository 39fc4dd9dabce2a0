//! What the SQLite and PostgreSQL stores share: one SQL text for both, written once over
//! [`Exec`] (a connection or a transaction of either database), with the few places where
//! the dialects differ asked of [`Dialect`].
//!
//! A database is a store by implementing [`SqlReads`] (run work on a connection) and
//! [`SqlStore`] (a write transaction holding a [`Lock`], a batch of records, the writable
//! check); every area's trait (records, feedback, content, KPIs, calibration, SLO state,
//! control state, sessions) is then implemented once, over these, in the area's own module.
//! The items are `pub` in this private module so that those blanket implementations may
//! name them; nothing outside the crate can.
//!
//! Shared SQL uses SQLite's numbered placeholders (`?1`, `?2`, ...); the PostgreSQL side turns
//! them into its own (`$1`, [`postgres_placeholders`]) once per statement. Parameters are
//! [`Param`]s and rows are read through [`SqlRow`], so neither side's types leak into the
//! shared code. Integers are `i64` on both sides (PostgreSQL's columns are `BIGINT`), flags
//! are booleans (SQLite keeps them as 0 or 1).

use crate::{RequestRecord, StoreError};

/// The database a statement runs on, for the few fragments that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A statement's parameter, in either database's terms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Param<'a> {
    Int(Option<i64>),
    Float(Option<f64>),
    Text(Option<&'a str>),
    Bool(bool),
    Bytes(&'a [u8]),
}

impl From<i64> for Param<'_> {
    fn from(v: i64) -> Self {
        Param::Int(Some(v))
    }
}

impl From<Option<i64>> for Param<'_> {
    fn from(v: Option<i64>) -> Self {
        Param::Int(v)
    }
}

impl From<u32> for Param<'_> {
    fn from(v: u32) -> Self {
        Param::Int(Some(i64::from(v)))
    }
}

impl From<f64> for Param<'_> {
    fn from(v: f64) -> Self {
        Param::Float(Some(v))
    }
}

impl From<Option<f64>> for Param<'_> {
    fn from(v: Option<f64>) -> Self {
        Param::Float(v)
    }
}

impl<'a> From<&'a str> for Param<'a> {
    fn from(v: &'a str) -> Self {
        Param::Text(Some(v))
    }
}

impl<'a> From<&'a String> for Param<'a> {
    fn from(v: &'a String) -> Self {
        Param::Text(Some(v))
    }
}

impl<'a> From<&'a Option<String>> for Param<'a> {
    fn from(v: &'a Option<String>) -> Self {
        Param::Text(v.as_deref())
    }
}

impl<'a> From<Option<&'a str>> for Param<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Param::Text(v)
    }
}

impl From<bool> for Param<'_> {
    fn from(v: bool) -> Self {
        Param::Bool(v)
    }
}

impl<'a> From<&'a [u8]> for Param<'a> {
    fn from(v: &'a [u8]) -> Self {
        Param::Bytes(v)
    }
}

/// A `LIMIT` as a parameter: `usize::MAX` is "no limit".
pub fn limit(limit: usize) -> Param<'static> {
    Param::Int(Some(i64::try_from(limit).unwrap_or(i64::MAX)))
}

/// One result row of either database. The `opt_*` reads give NULL as `None`; the others
/// fail on NULL ([`StoreError::Null`]).
pub trait SqlRow {
    fn opt_i64(&self, i: usize) -> Result<Option<i64>, StoreError>;
    fn opt_f64(&self, i: usize) -> Result<Option<f64>, StoreError>;
    fn opt_str(&self, i: usize) -> Result<Option<&str>, StoreError>;
    fn opt_bool(&self, i: usize) -> Result<Option<bool>, StoreError>;
    fn opt_bytes(&self, i: usize) -> Result<Option<&[u8]>, StoreError>;

    fn i64(&self, i: usize) -> Result<i64, StoreError> {
        self.opt_i64(i)?.ok_or(StoreError::Null(i))
    }

    fn f64(&self, i: usize) -> Result<f64, StoreError> {
        self.opt_f64(i)?.ok_or(StoreError::Null(i))
    }

    fn bool(&self, i: usize) -> Result<bool, StoreError> {
        self.opt_bool(i)?.ok_or(StoreError::Null(i))
    }

    fn string(&self, i: usize) -> Result<String, StoreError> {
        self.opt_str(i)?
            .map(str::to_owned)
            .ok_or(StoreError::Null(i))
    }

    fn opt_string(&self, i: usize) -> Result<Option<String>, StoreError> {
        Ok(self.opt_str(i)?.map(str::to_owned))
    }

    /// A count or an amount that cannot be negative: a negative one reads as 0.
    fn u64(&self, i: usize) -> Result<u64, StoreError> {
        Ok(u64::try_from(self.i64(i)?).unwrap_or(0))
    }

    /// A number kept from a `u32`; out of its range (written behind the store's back) it
    /// reads as 0.
    fn u32(&self, i: usize) -> Result<u32, StoreError> {
        Ok(u32::try_from(self.i64(i)?).unwrap_or(0))
    }
}

/// A connection or a transaction of either database, on which the shared SQL runs. Every
/// method blocks.
pub trait Exec {
    fn dialect(&self) -> Dialect;

    /// Runs `sql` and hands each row to `row`, in order.
    fn each(
        &self,
        sql: &str,
        params: &[Param<'_>],
        row: &mut dyn FnMut(&dyn SqlRow) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;

    /// Runs `sql`; returns how many rows it changed.
    fn execute(&self, sql: &str, params: &[Param<'_>]) -> Result<u64, StoreError>;
}

impl dyn Exec + '_ {
    /// Every row `sql` gives, each made by `map`.
    pub fn all<T>(
        &self,
        sql: &str,
        params: &[Param<'_>],
        mut map: impl FnMut(&dyn SqlRow) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        self.each(sql, params, &mut |row| {
            out.push(map(row)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// The first row `sql` gives, if any.
    pub fn one<T>(
        &self,
        sql: &str,
        params: &[Param<'_>],
        map: impl FnOnce(&dyn SqlRow) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let mut map = Some(map);
        let mut out = None;
        self.each(sql, params, &mut |row| {
            if let Some(map) = map.take() {
                out = Some(map(row)?);
            }
            Ok(())
        })?;
        Ok(out)
    }
}

/// A store that runs the shared SQL: reads and single statements on one of its connections.
pub trait SqlReads {
    /// Runs `f` on a connection (held for the whole of `f`).
    fn exec<T>(&self, f: impl FnOnce(&dyn Exec) -> Result<T, StoreError>) -> Result<T, StoreError>;
}

/// Runs `delete` (a statement deleting at most `?2` rows from before `?1`) until a run
/// deletes fewer than `chunk`; returns how many rows went. Each run is a statement of its
/// own, so writers are never locked out for long.
pub fn delete_in_chunks<S: SqlReads + ?Sized>(
    store: &S,
    delete: &str,
    before_ms: i64,
    chunk: i64,
) -> Result<u64, StoreError> {
    let mut deleted = 0;
    loop {
        let n = store.exec(|e| e.execute(delete, &[before_ms.into(), chunk.into()]))?;
        deleted += n;
        if n < u64::try_from(chunk).unwrap_or(0) {
            return Ok(deleted);
        }
    }
}

/// What several writers must not interleave, held by a write transaction for its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock<'a> {
    /// The control state: its reads-then-writes (the audit chain's last entry, the next prompt
    /// version, the flag a put replaces) see every transaction committed before.
    Control,
    /// The feedback on one request: one of two negatives sent at once is the first.
    Feedback(&'a str),
    /// The dashboard sessions: their bound holds when replicas open sessions at once.
    Sessions,
    /// One batch of the Batch API: its lines' claims, ends and its finalisation.
    Batch(&'a str),
}

/// A store that writes through the shared SQL, and the writes each database does its own way.
pub trait SqlStore: SqlReads {
    /// Runs `f` in one transaction that holds `lock` from its start (waiting for it as the
    /// database allows), committing if `f` returns `Ok` and rolling back otherwise.
    fn transaction<T>(
        &self,
        lock: Lock<'_>,
        f: impl FnOnce(&dyn Exec) -> Result<T, StoreError>,
    ) -> Result<T, StoreError>;

    /// [`crate::RecordStore::write_batch`]: the records, their guard flags and their
    /// content in one transaction, as fast as the database allows.
    fn write_records(&self, records: &[RequestRecord]) -> Result<(), StoreError>;

    /// [`crate::RecordStore::check_writable`].
    fn writable(&self) -> Result<(), StoreError>;
}

/// `sql` with SQLite's numbered placeholders (`?1`) turned into PostgreSQL's (`$1`), outside
/// quoted strings and names. Shared SQL numbers every placeholder.
pub fn postgres_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '\'' | '"') => quote = Some(c),
            (None, '?') if chars.peek().is_some_and(char::is_ascii_digit) => {
                out.push('$');
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_renumbered_outside_quotes_only() {
        assert_eq!(
            postgres_placeholders(
                "SELECT a FROM t WHERE b = ?1 AND c < ?12 || 'g?1' AND \"x?2\" = ?2"
            ),
            "SELECT a FROM t WHERE b = $1 AND c < $12 || 'g?1' AND \"x?2\" = $2"
        );
        // An escaped quote inside a string closes and reopens it: still inside.
        assert_eq!(
            postgres_placeholders("SELECT 'it''s ?1', ?1"),
            "SELECT 'it''s ?1', $1"
        );
        assert_eq!(postgres_placeholders("SELECT ?"), "SELECT ?");
    }

    #[test]
    fn limits_saturate() {
        assert_eq!(limit(usize::MAX), Param::Int(Some(i64::MAX)));
        assert_eq!(limit(5), Param::Int(Some(5)));
    }
}
