//! A connection to rappel's database whichever the backend: SQLite (a file)
//! or PostgreSQL (a server). Statements are written once with numbered
//! placeholders (`?1`, `?2`: PostgreSQL gets `$1`, `$2`), bound from
//! `ToParam`s and read through `Row::get` into `FromCell`s; where the two
//! dialects differ, the store asks `Conn::dialect` and says both forms.
//! Prepared statements are cached per connection on both backends.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::Deref;

use super::error::{Result, StoreError};
use super::value::{Cell, FromCell, Param, ToParam};

/// Which SQL a connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A connection: opened by `db::Database::connect`, used by one thread at a
/// time.
pub struct Conn {
    inner: Inner,
}

enum Inner {
    Sqlite(rusqlite::Connection),
    Postgres(Box<RefCell<Session>>),
}

/// A PostgreSQL connection and the statements prepared on it, by their
/// SQL as the store writes it.
struct Session {
    client: postgres::Client,
    prepared: HashMap<String, postgres::Statement>,
    /// Statements the server cannot type alone: prepared per the types of
    /// their values (`typed_key`).
    typed: std::collections::HashSet<String>,
    /// Whether a transaction is open (`Tx`): a statement the server refuses
    /// to prepare there is tried under a savepoint, or the refusal would
    /// abort the transaction.
    in_tx: bool,
    /// Whether `[sources]` were mapped on the session (its TEMP views):
    /// without them `db::sources::mapped` needs no look at the catalog.
    views: bool,
    /// Whether a statement met the session's end (`Conn::is_closed`).
    lost: bool,
}

impl Session {
    /// Remembers that `result` met the session's end (the server ended it:
    /// its error may come before the connection is seen closed).
    fn note_loss<T>(&mut self, result: &Result<T>) {
        if result.as_ref().is_err_and(StoreError::is_connection_lost) {
            self.lost = true;
        }
    }

    /// The statement for `sql`, prepared once. The server infers each
    /// parameter's type from where it stands; where it cannot (`?1 IS NULL
    /// OR job = ?1`), the statement is prepared again with the types of the
    /// values bound this time (an integer `bigint`, text and NULL `text`, a
    /// flag `boolean`), once per set of types. Inside a transaction the
    /// first attempt goes under a savepoint, so a refusal does not abort it.
    fn statement(&mut self, sql: &str, values: &[Param<'_>]) -> Result<postgres::Statement> {
        if self.typed.contains(sql) {
            return self.typed_statement(sql, values);
        }
        if let Some(statement) = self.prepared.get(sql) {
            return Ok(statement.clone());
        }
        if self.in_tx {
            self.client.batch_execute("SAVEPOINT rappel_prepare")?;
        }
        let attempt = self.client.prepare(&numbered(sql));
        if self.in_tx {
            self.client.batch_execute(if attempt.is_ok() {
                "RELEASE SAVEPOINT rappel_prepare"
            } else {
                "ROLLBACK TO SAVEPOINT rappel_prepare"
            })?;
        }
        match attempt {
            Ok(statement) => {
                self.prepared.insert(sql.to_string(), statement.clone());
                Ok(statement)
            }
            Err(e) if untyped(&e) => {
                self.typed.insert(sql.to_string());
                self.typed_statement(sql, values)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// `sql` prepared with the types of `values` (`Param::pg_type`).
    fn typed_statement(&mut self, sql: &str, values: &[Param<'_>]) -> Result<postgres::Statement> {
        let key = typed_key(sql, values);
        if let Some(statement) = self.prepared.get(&key) {
            return Ok(statement.clone());
        }
        let types: Vec<postgres::types::Type> = values.iter().map(Param::pg_type).collect();
        let statement = self.client.prepare_typed(&numbered(sql), &types)?;
        self.prepared.insert(key, statement.clone());
        Ok(statement)
    }
}

/// Whether the server refused to prepare a statement for want of its
/// parameters' types (42P18 indeterminate, 42P08 ambiguous).
fn untyped(e: &postgres::Error) -> bool {
    use postgres::error::SqlState;
    e.code()
        .is_some_and(|c| *c == SqlState::INDETERMINATE_DATATYPE || *c == SqlState::AMBIGUOUS_PARAMETER)
}

/// The cache key of `sql` prepared for `values`' types.
fn typed_key(sql: &str, values: &[Param<'_>]) -> String {
    let mut key = String::with_capacity(sql.len() + values.len() + 1);
    key.push_str(sql);
    key.push('\0');
    key.extend(values.iter().map(|v| match v {
        Param::Int(_) => 'i',
        Param::Real(_) => 'r',
        Param::Bool(_) => 'b',
        Param::Text(_) | Param::Null => 't',
    }));
    key
}

/// One row of a query's result.
pub enum Row<'r> {
    Sqlite(&'r rusqlite::Row<'r>),
    Postgres(&'r postgres::Row),
}

impl Row<'_> {
    /// Column `index` (from 0), converted. Errors: `StoreError::Column`
    /// naming the column and why it does not convert.
    pub fn get<T: FromCell>(&self, index: usize) -> Result<T> {
        let cell = self.cell(index)?;
        T::from_cell(cell).map_err(|why| self.column_error(index, why))
    }

    /// Column `index` as the database holds it (a host's loosely typed
    /// column, read through `db::loose`).
    pub fn cell(&self, index: usize) -> Result<Cell<'_>> {
        match self {
            Row::Sqlite(r) => Ok(Cell::from(r.get_ref(index)?)),
            Row::Postgres(r) => r.try_get::<_, Cell<'_>>(index).map_err(|e| {
                let ty = r.columns().get(index).map_or("?", |c| c.type_().name());
                let why = std::error::Error::source(&e).map_or_else(|| e.to_string(), ToString::to_string);
                self.column_error(index, format!("{why} (type {ty}: cast it to text in the query)"))
            }),
        }
    }

    /// Whether column `index` is PostgreSQL's `numeric` (which reads as
    /// text): a number to show as one.
    pub fn numeric(&self, index: usize) -> bool {
        match self {
            Row::Sqlite(_) => false,
            Row::Postgres(r) => r
                .columns()
                .get(index)
                .is_some_and(|c| *c.type_() == postgres::types::Type::NUMERIC),
        }
    }

    fn column_error(&self, index: usize, why: String) -> StoreError {
        let name = match self {
            Row::Sqlite(r) => r.as_ref().column_name(index).ok().map(str::to_string),
            Row::Postgres(r) => r.columns().get(index).map(|c| c.name().to_string()),
        };
        StoreError::Column {
            column: name.unwrap_or_else(|| format!("#{index}")),
            why,
        }
    }
}

impl Conn {
    /// Wraps an open SQLite connection (`db` opens it).
    pub(crate) fn sqlite(conn: rusqlite::Connection) -> Conn {
        Conn {
            inner: Inner::Sqlite(conn),
        }
    }

    /// Wraps an open PostgreSQL connection (`db::postgres` opens it);
    /// `views`: whether `[sources]` were mapped on it.
    pub(crate) fn postgres(client: postgres::Client, views: bool) -> Conn {
        Conn {
            inner: Inner::Postgres(Box::new(RefCell::new(Session {
                client,
                prepared: HashMap::new(),
                typed: std::collections::HashSet::new(),
                in_tx: false,
                views,
                lost: false,
            }))),
        }
    }

    /// Whether the connection may hold `[sources]`' TEMP views: `false`
    /// only for a server session on which none were made.
    pub(crate) fn may_have_views(&self) -> bool {
        match &self.inner {
            Inner::Sqlite(_) => true,
            Inner::Postgres(session) => session.borrow().views,
        }
    }

    pub fn dialect(&self) -> Dialect {
        match self.inner {
            Inner::Sqlite(_) => Dialect::Sqlite,
            Inner::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Whether the server's session is known to be gone: the connection
    /// closed, or a statement was told the server ended the session
    /// (`StoreError::is_connection_lost`). Every statement on it would
    /// fail. Never on SQLite.
    pub fn is_closed(&self) -> bool {
        match &self.inner {
            Inner::Sqlite(_) => false,
            Inner::Postgres(session) => session.try_borrow().is_ok_and(|s| s.lost || s.client.is_closed()),
        }
    }

    /// The SQLite connection, for what is written for SQLite alone.
    /// Errors: `StoreError::Unsupported` on PostgreSQL.
    #[track_caller]
    pub fn lite(&self) -> Result<&rusqlite::Connection> {
        match &self.inner {
            Inner::Sqlite(c) => Ok(c),
            Inner::Postgres(_) => Err(StoreError::Unsupported(std::panic::Location::caller())),
        }
    }

    /// The SQLite connection itself (a report's guarded query sets its
    /// own limits on it). Errors: `StoreError::Unsupported` on PostgreSQL.
    #[track_caller]
    pub fn into_lite(self) -> Result<rusqlite::Connection> {
        match self.inner {
            Inner::Sqlite(c) => Ok(c),
            Inner::Postgres(_) => Err(StoreError::Unsupported(std::panic::Location::caller())),
        }
    }

    /// As `lite`, mutably (SQLite's own transactions).
    #[track_caller]
    pub fn lite_mut(&mut self) -> Result<&mut rusqlite::Connection> {
        match &mut self.inner {
            Inner::Sqlite(c) => Ok(c),
            Inner::Postgres(_) => Err(StoreError::Unsupported(std::panic::Location::caller())),
        }
    }

    /// Runs `f` on the PostgreSQL session with its statement for `sql`
    /// (`Session::statement`). Errors: the session already borrowed
    /// (`InUse`), the statement's preparation, or `f`'s.
    fn with_pg<T>(
        cell: &RefCell<Session>,
        sql: &str,
        values: &[Param<'_>],
        f: impl FnOnce(&mut postgres::Client, &postgres::Statement) -> Result<T>,
    ) -> Result<T> {
        let mut session = cell.try_borrow_mut().map_err(|_| StoreError::InUse)?;
        let result = session
            .statement(sql, values)
            .and_then(|statement| f(&mut session.client, &statement));
        session.note_loss(&result);
        result
    }

    /// Records whether a transaction is open on the PostgreSQL session.
    fn set_in_tx(&self, open: bool) {
        if let Inner::Postgres(cell) = &self.inner
            && let Ok(mut session) = cell.try_borrow_mut()
        {
            session.in_tx = open;
        }
    }

    /// Runs one statement; returns the rows it changed.
    pub fn execute(&self, sql: &str, params: &[&dyn ToParam]) -> Result<usize> {
        let values: Vec<Param<'_>> = params.iter().map(|p| p.param()).collect();
        match &self.inner {
            Inner::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                Ok(stmt.execute(rusqlite::params_from_iter(values.iter()))?)
            }
            Inner::Postgres(cell) => Self::with_pg(cell, sql, &values, |client, stmt| {
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = values
                    .iter()
                    .map(|v| v as &(dyn postgres::types::ToSql + Sync))
                    .collect();
                let n = client.execute(stmt, &refs)?;
                Ok(usize::try_from(n).unwrap_or(usize::MAX))
            }),
        }
    }

    /// The names of the columns `sql` returns, in order (the statement is
    /// prepared and kept, not run).
    pub fn columns(&self, sql: &str) -> Result<Vec<String>> {
        match &self.inner {
            Inner::Sqlite(c) => Ok(c.prepare_cached(sql)?.column_names().map(str::to_string).collect()),
            Inner::Postgres(cell) => Self::with_pg(cell, sql, &[], |_, stmt| {
                Ok(stmt.columns().iter().map(|c| c.name().to_string()).collect())
            }),
        }
    }

    /// Runs statements separated by `;`, without parameters.
    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        match &self.inner {
            Inner::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Inner::Postgres(cell) => {
                let mut session = cell.try_borrow_mut().map_err(|_| StoreError::InUse)?;
                let result = session.client.batch_execute(sql).map_err(StoreError::from);
                session.note_loss(&result);
                result
            }
        }
    }

    /// Runs a query and calls `f` on each row as it comes. `f` must not
    /// use this connection (on PostgreSQL that is `StoreError::InUse`).
    pub fn query_each(
        &self,
        sql: &str,
        params: &[&dyn ToParam],
        mut f: impl FnMut(&Row<'_>) -> Result<()>,
    ) -> Result<()> {
        let values: Vec<Param<'_>> = params.iter().map(|p| p.param()).collect();
        match &self.inner {
            Inner::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(values.iter()))?;
                while let Some(row) = rows.next()? {
                    f(&Row::Sqlite(row))?;
                }
                Ok(())
            }
            Inner::Postgres(cell) => Self::with_pg(cell, sql, &values, |client, stmt| {
                use postgres::fallible_iterator::FallibleIterator;
                let mut rows = client.query_raw(stmt, values.iter())?;
                while let Some(row) = rows.next()? {
                    f(&Row::Postgres(&row))?;
                }
                Ok(())
            }),
        }
    }

    /// Runs a query; returns `f` of each row, in order.
    pub fn query_map<T>(
        &self,
        sql: &str,
        params: &[&dyn ToParam],
        mut f: impl FnMut(&Row<'_>) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        self.query_each(sql, params, |row| {
            out.push(f(row)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// `f` of the query's first row, `None` when it gives none.
    pub fn query_opt<T>(
        &self,
        sql: &str,
        params: &[&dyn ToParam],
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<Option<T>> {
        let mut f = Some(f);
        let mut out = None;
        self.query_each(sql, params, |row| {
            if let Some(f) = f.take() {
                out = Some(f(row)?);
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// `f` of the query's first row. Errors: `StoreError::NoRow` when it
    /// gives none.
    pub fn query_row<T>(&self, sql: &str, params: &[&dyn ToParam], f: impl FnOnce(&Row<'_>) -> Result<T>) -> Result<T> {
        self.query_opt(sql, params, f)?.ok_or(StoreError::NoRow)
    }
}

/// A transaction on a `Conn`: its statements commit together (`commit`) or
/// not at all (`rollback`, or dropping it). It reads and writes as its
/// connection does (`Deref`).
pub struct Tx<'c> {
    conn: &'c mut Conn,
    open: bool,
}

impl Deref for Tx<'_> {
    type Target = Conn;

    fn deref(&self) -> &Conn {
        self.conn
    }
}

impl<'c> Tx<'c> {
    /// Starts a transaction with `begin` (`BEGIN IMMEDIATE`, `BEGIN`...).
    pub(crate) fn start(conn: &'c mut Conn, begin: &str) -> Result<Self> {
        conn.execute_batch(begin)?;
        conn.set_in_tx(true);
        Ok(Tx { conn, open: true })
    }

    pub fn commit(mut self) -> Result<()> {
        self.open = false;
        self.conn.set_in_tx(false);
        self.conn.execute_batch("COMMIT")
    }

    pub fn rollback(mut self) -> Result<()> {
        self.open = false;
        self.conn.set_in_tx(false);
        self.conn.execute_batch("ROLLBACK")
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if self.open {
            // Nothing of it is kept; a failure here leaves the connection
            // to be closed, which rolls back all the same.
            self.conn.set_in_tx(false);
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

/// `sql` with SQLite's numbered placeholders (`?1`) as PostgreSQL's (`$1`);
/// a bare `?` takes the number after the largest so far, as in SQLite.
/// Quoted text, quoted names and comments are left as they are.
pub fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    let mut largest = 0u32;
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                out.push(c);
                for d in chars.by_ref() {
                    out.push(d);
                    if d == c {
                        break;
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                out.push(c);
                for d in chars.by_ref() {
                    out.push(d);
                    if d == '\n' {
                        break;
                    }
                }
            }
            '?' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                    digits.push(d);
                    chars.next();
                }
                let n = digits.parse().unwrap_or(largest + 1);
                largest = largest.max(n);
                out.push('$');
                out.push_str(&n.to_string());
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres() {
        assert_eq!(
            numbered("a = ?1 AND b = ?2 OR ?1 IS NULL"),
            "a = $1 AND b = $2 OR $1 IS NULL"
        );
        assert_eq!(numbered("VALUES (?, ?, ?5, ?)"), "VALUES ($1, $2, $5, $6)");
        assert_eq!(
            numbered("x = '?1' AND \"a?\" = ?1 -- ?2\n AND y = ?2"),
            "x = '?1' AND \"a?\" = $1 -- ?2\n AND y = $2"
        );
        assert_eq!(numbered("x = 'it''s ?' AND y = ?1"), "x = 'it''s ?' AND y = $1");
    }
}
