//! The shared SQL ([`crate::sql`]) on a PostgreSQL connection or transaction: placeholders
//! turned into PostgreSQL's once per statement and the statement kept prepared on its
//! connection, [`Param`]s bound as the driver's types, rows read through [`SqlRow`].

use std::cell::RefCell;

use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use postgres::{GenericClient, Row, Statement};

use super::pool::Statements;
use crate::sql::{postgres_placeholders, Dialect, Exec, Param, SqlRow};
use crate::StoreError;

/// A connection (`C` = [`postgres::Client`]) or a transaction ([`postgres::Transaction`])
/// with its connection's prepared statements. The driver's calls take `&mut`, the shared
/// code's `&`: the cells hold them for one call at a time.
pub(crate) struct PgExec<'a, C: GenericClient> {
    client: RefCell<&'a mut C>,
    statements: RefCell<&'a mut Statements>,
}

impl<'a, C: GenericClient> PgExec<'a, C> {
    pub(crate) fn new(client: &'a mut C, statements: &'a mut Statements) -> Self {
        PgExec {
            client: RefCell::new(client),
            statements: RefCell::new(statements),
        }
    }

    /// `sql` prepared on this connection, once.
    fn prepare(&self, client: &mut C, sql: &str) -> Result<Statement, StoreError> {
        let mut statements = self
            .statements
            .try_borrow_mut()
            .map_err(|_| StoreError::Reentrant)?;
        Ok(statements.prepare(client, sql, || postgres_placeholders(sql))?)
    }
}

/// A parameter as the driver binds it.
fn bind<'p>(p: &'p Param<'_>) -> &'p (dyn ToSql + Sync) {
    match p {
        Param::Int(v) => v,
        Param::Float(v) => v,
        Param::Text(v) => v,
        Param::Bool(v) => v,
        Param::Bytes(v) => v,
    }
}

impl<C: GenericClient> Exec for PgExec<'_, C> {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn each(
        &self,
        sql: &str,
        params: &[Param<'_>],
        row: &mut dyn FnMut(&dyn SqlRow) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut client = self
            .client
            .try_borrow_mut()
            .map_err(|_| StoreError::Reentrant)?;
        let statement = self.prepare(&mut client, sql)?;
        // Rows stream: a month of latencies is not held twice.
        let mut rows = client.query_raw(&statement, params.iter().map(bind))?;
        while let Some(r) = rows.next()? {
            row(&r)?;
        }
        Ok(())
    }

    fn execute(&self, sql: &str, params: &[Param<'_>]) -> Result<u64, StoreError> {
        let mut client = self
            .client
            .try_borrow_mut()
            .map_err(|_| StoreError::Reentrant)?;
        let statement = self.prepare(&mut client, sql)?;
        let values: Vec<&(dyn ToSql + Sync)> = params.iter().map(bind).collect();
        Ok(client.execute(&statement, &values)?)
    }
}

impl SqlRow for Row {
    fn opt_i64(&self, i: usize) -> Result<Option<i64>, StoreError> {
        Ok(self.try_get(i)?)
    }

    fn opt_f64(&self, i: usize) -> Result<Option<f64>, StoreError> {
        Ok(self.try_get(i)?)
    }

    fn opt_str(&self, i: usize) -> Result<Option<&str>, StoreError> {
        Ok(self.try_get(i)?)
    }

    fn opt_bool(&self, i: usize) -> Result<Option<bool>, StoreError> {
        Ok(self.try_get(i)?)
    }

    fn opt_bytes(&self, i: usize) -> Result<Option<&[u8]>, StoreError> {
        Ok(self.try_get(i)?)
    }
}
