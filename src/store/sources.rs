//! An input table read as rappel reads it, for `rappel sources`: whether it
//! is there, where it comes from, and its rows, each cell through the same
//! loose readers as the jobs (`db::loose`).

use super::{Result, StoreError};
use crate::db::loose;
use crate::store::Conn;

/// Where input table `name` is read from on this connection.
#[derive(Debug, PartialEq)]
pub enum Found {
    /// Mapped in `[sources]` (a TEMP view over the host's data).
    Mapped,
    /// The contract table of that name.
    Table,
    /// Neither: not migrated yet.
    Missing,
}

/// Where `name` is read from. Errors: `StoreError`.
pub fn found(conn: &Conn, name: &str) -> Result<Found> {
    if conn.dialect() == crate::store::Dialect::Postgres {
        // A mapped source's TEMP view, else rappel's own table in its schema.
        let (mapped, there): (bool, bool) = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM pg_class WHERE relnamespace = pg_my_temp_schema()
                              AND relkind = 'v' AND relname = ?1),
                    to_regclass(quote_ident(?1)) IS NOT NULL",
            crate::params![name],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        return Ok(if mapped {
            Found::Mapped
        } else if there {
            Found::Table
        } else {
            Found::Missing
        });
    }
    let conn = conn.lite()?;
    let in_schema = |schema: &str| -> Result<bool> {
        Ok(conn
            .prepare(&format!(
                "SELECT EXISTS (SELECT 1 FROM {schema} WHERE name = ?1 AND type IN ('table', 'view'))"
            ))?
            .query_row([name], |r| r.get(0))?)
    };
    Ok(if in_schema("sqlite_temp_master")? {
        Found::Mapped
    } else if in_schema("sqlite_master")? {
        Found::Table
    } else {
        Found::Missing
    })
}

/// One cell as the jobs read it: its text (numbers written out; `None` for
/// NULL or a blob), and the same value read as a row id and as a boolean.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cell {
    /// Whether SQLite holds an integer (a row's own id must be one).
    pub integer: bool,
    pub text: Option<String>,
    pub id: Option<i64>,
    pub flag: Option<bool>,
}

impl Cell {
    /// `v` as the jobs read it, through `db::loose`.
    fn of(v: crate::db::value::Cell<'_>) -> Cell {
        Cell {
            integer: matches!(v, crate::db::value::Cell::Int(_)),
            text: loose::text(v.clone()),
            id: loose::id(v.clone()),
            flag: loose::flag(v),
        }
    }
}

/// Calls `each` with every row of `name` (an input table, or a mapped
/// source's view of every host row: `db::sources::raw_view`), `columns` in
/// that order, by id; stops at the first error `each` returns. `name` and
/// `columns` come from the contract (`db::host::CONTRACT`), never from
/// data. Errors: `StoreError` (a mapped expression failing on some row, as
/// SQLite says), or `each`'s.
pub fn each_row<E: From<StoreError>>(
    conn: &Conn,
    name: &str,
    columns: &[&str],
    mut each: impl FnMut(&[Cell]) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let quoted = |n: &str| format!("\"{}\"", n.replace('"', "\"\""));
    let mut list: Vec<String> = columns.iter().map(|c| quoted(c)).collect();
    let select = |list: &[String]| format!("SELECT {} FROM {} ORDER BY id", list.join(", "), quoted(name));
    if conn.dialect() == crate::store::Dialect::Postgres {
        // The raw view's columns are the contract's types already
        // (`db::sources::server`): a NULL id is one that is not an integer.
        // Where a conversion may have lost the host's value (text that is
        // not a number), the view also holds it as written: such a value
        // is judged as written, as on SQLite, rather than as NULL.
        let in_view: Vec<String> = conn.query_map(
            "SELECT attname::text FROM pg_attribute
             WHERE attrelid = to_regclass('pg_temp.' || quote_ident($1)) AND attnum > 0 AND NOT attisdropped",
            crate::params![name],
            |r| r.get(0),
        )?;
        // Each column's value as written, where the view has it: its place
        // among the columns read, after the contract's.
        let written: Vec<Option<usize>> = columns
            .iter()
            .map(|c| {
                let w = crate::db::sources::server::written(c);
                in_view.contains(&w).then(|| {
                    list.push(quoted(&w));
                    list.len() - 1
                })
            })
            .collect();
        let sql = select(&list);
        let mut cells = Vec::with_capacity(columns.len());
        let mut failed = None;
        conn.query_each(&sql, crate::params![], |row| {
            cells.clear();
            for (i, w) in written.iter().enumerate() {
                let raw = row.cell(i)?;
                // Lost: read as NULL, or as NaN where a decimal is due.
                let nan = matches!(raw, crate::db::value::Cell::Real(f) if f.is_nan());
                let cell = Cell::of(raw);
                let unread = cell.text.is_none() || nan;
                let lost = match w {
                    Some(j) if unread => loose::text(row.cell(*j)?).filter(|t| !t.trim().is_empty()),
                    _ => None,
                };
                cells.push(match lost {
                    Some(text) => Cell::of(crate::db::value::Cell::Text(text.into())),
                    None => cell,
                });
            }
            if let Err(e) = each(&cells) {
                failed = Some(e);
                return Err(StoreError::Stopped);
            }
            Ok(())
        })
        .map_err(|e| match failed.take() {
            Some(mine) => mine,
            None => E::from(e),
        })?;
        return Ok(());
    }
    let conn = conn.lite()?;
    let mut stmt = conn.prepare(&select(&list)).map_err(StoreError::from)?;
    let mut rows = stmt.query([]).map_err(StoreError::from)?;
    let mut cells = Vec::with_capacity(columns.len());
    while let Some(row) = rows.next().map_err(StoreError::from)? {
        cells.clear();
        for i in 0..columns.len() {
            cells.push(Cell::of(row.get_ref(i).map_err(StoreError::from)?.into()));
        }
        each(&cells)?;
    }
    Ok(())
}

/// Punches of `attendance_logs` (the rows the jobs read) under a terminal
/// id the terminals table does not have: how many, and one such id
/// (`None` when there are none). Errors: `StoreError`.
pub fn orphan_punches(conn: &Conn) -> Result<Option<(u64, i64)>> {
    let (n, example): (i64, Option<i64>) = conn.query_row(
        "SELECT count(*), min(l.terminal_id) FROM attendance_logs AS l
         WHERE NOT EXISTS (SELECT 1 FROM terminals AS t WHERE t.id = l.terminal_id)",
        crate::params![],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(example.filter(|_| n > 0).map(|id| (n as u64, id)))
}
