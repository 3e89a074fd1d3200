//! A report definition's own query, as the operator wrote it in
//! `[reports.definitions]`, run on a guarded read-only connection: only
//! reading is authorised, within a time limit (SQLite's progress handler), a
//! row limit and a bound on the text returned. What goes wrong comes back as
//! a sentence saying why, for the report's failure or `config check`.
//!
//! On PostgreSQL it runs in a read-only session and transaction, with
//! `statement_timeout` as the time limit (the role rappel connects as
//! decides what it may read; README).

use std::time::{Duration, Instant};

use rusqlite::types::ValueRef;

use crate::db::Database;

/// Text a query may return in all before its report fails: a bound on
/// memory whatever the operator wrote.
const QUERY_MAX_BYTES: usize = 64 * 1024 * 1024;

/// One value a definition's query returned.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    /// An integer or real, written as it is.
    Number(String),
    /// Anything else, as text (empty for NULL).
    Text(String),
}

impl Cell {
    /// The value as text, whatever it is.
    pub fn into_text(self) -> String {
        match self {
            Cell::Number(t) | Cell::Text(t) => t,
        }
    }
}

/// What a definition's query returned: its column names and its rows, in
/// the order it gave them.
#[derive(Clone, Debug, PartialEq)]
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

/// A read-only connection for an operator's query: only reading is
/// authorised (SELECT, reads, functions other than `load_extension`, WITH
/// RECURSIVE); a write, PRAGMA, ATTACH, SAVEPOINT or transaction is refused
/// when the statement is prepared, like any other write.
fn guarded(db: &Database) -> anyhow::Result<rusqlite::Connection> {
    use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
    let mut conn = db.reading().connect()?.into_lite()?;
    // One value may not hold more than the whole report may: SQLite refuses
    // to build a longer string or blob rather than fill the memory.
    conn.set_limit(
        rusqlite::limits::Limit::SQLITE_LIMIT_LENGTH,
        i32::try_from(QUERY_MAX_BYTES).unwrap_or(i32::MAX),
    )?;
    conn.authorizer(Some(|ctx: AuthContext<'_>| match ctx.action {
        AuthAction::Select | AuthAction::Read { .. } | AuthAction::Recursive => Authorization::Allow,
        AuthAction::Function { function_name } if !function_name.eq_ignore_ascii_case("load_extension") => {
            Authorization::Allow
        }
        _ => Authorization::Deny,
    }))?;
    Ok(conn)
}

/// Prepares a definition's `query` on `db` as send-reports would run it,
/// and reads its first row (some refusals only come when it runs) within
/// `timeout`, for `config check`. `Err` says why it cannot run: the database
/// cannot be opened, the query does more than read, fails, or its first row
/// took longer than `timeout`.
pub fn check(db: &Database, query: &str, timeout: Duration) -> Result<(), String> {
    if db.server().is_some() {
        return run_postgres(db, query, timeout, 1, true)
            .map(|_| ())
            .map_err(|e| format!("{e:#}"));
    }
    let mut conn = guarded(db).map_err(|e| format!("{e:#}"))?;
    let deadline = Instant::now() + timeout;
    conn.progress_handler(10_000, Some(move || Instant::now() > deadline))
        .map_err(|e| e.to_string())?;
    let mut stmt = conn.prepare(query).map_err(|e| refused(&e))?;
    if !stmt.readonly() {
        return Err("it would write to the database; report queries must only read".into());
    }
    match stmt.query([]).and_then(|mut rows| rows.next().map(|_| ())) {
        Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::OperationInterrupted) => Err(format!(
            "its first row took longer than [reports] query_timeout_s ({} s)",
            timeout.as_secs()
        )),
        Err(e) => Err(refused(&e)),
        Ok(()) => Ok(()),
    }
}

fn refused(e: &rusqlite::Error) -> String {
    let text = e.to_string();
    if text.contains("string or blob too big") {
        format!(
            "one of its values is longer than {} MB",
            QUERY_MAX_BYTES / (1024 * 1024)
        )
    } else if text.contains("not authorized") {
        "it does more than read (a write, PRAGMA, ATTACH, SAVEPOINT or transaction); report queries must only read"
            .into()
    } else {
        text
    }
}

/// Runs a definition's `query` on a guarded read-only connection to `db`,
/// within `timeout` (`[reports] query_timeout_s`: SQLite's progress handler
/// interrupts it), `max_rows` rows (`query_max_rows`) and 64 MB of text; it
/// returns its columns and every row. `Err` says why the report cannot have
/// them: past any limit, a query that does more than read, or one that
/// fails.
pub fn run(db: &Database, query: &str, timeout: Duration, max_rows: u64) -> Result<Rows, String> {
    run_guarded(db, query, timeout, max_rows).map_err(|e| e.to_string())
}

fn run_guarded(db: &Database, query: &str, timeout: Duration, max_rows: u64) -> anyhow::Result<Rows> {
    if db.server().is_some() {
        return run_postgres(db, query, timeout, max_rows, false);
    }
    let mut conn = guarded(db)?;
    let deadline = Instant::now() + timeout;
    conn.progress_handler(10_000, Some(move || Instant::now() > deadline))?;
    let timed_out = || anyhow::anyhow!(ran_too_long(timeout));
    let mut stmt = conn.prepare(query).map_err(|e| anyhow::anyhow!(refused(&e)))?;
    if !stmt.readonly() {
        anyhow::bail!("it would write to the database; report queries must only read");
    }
    let columns: Vec<String> = stmt.column_names().map(str::to_string).collect();
    let n = columns.len();
    let mut rows = Vec::new();
    let mut bytes = 0;
    let mut result = stmt.query([])?;
    loop {
        let row = match result.next() {
            Ok(Some(row)) => row,
            Ok(None) => break,
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::OperationInterrupted) => {
                return Err(timed_out());
            }
            Err(e) => anyhow::bail!(refused(&e)),
        };
        if rows.len() as u64 >= max_rows {
            anyhow::bail!("it returned more than [reports] query_max_rows ({max_rows}) rows");
        }
        let mut cells = Vec::with_capacity(n);
        for i in 0..n {
            let cell = match row.get_ref(i)? {
                ValueRef::Null => Cell::Text(String::new()),
                ValueRef::Integer(v) => Cell::Number(v.to_string()),
                ValueRef::Real(v) => Cell::Number(v.to_string()),
                ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => Cell::Text(format!("<{} bytes>", b.len())),
            };
            bytes += match &cell {
                Cell::Number(t) | Cell::Text(t) => t.len(),
            };
            cells.push(cell);
        }
        if bytes > QUERY_MAX_BYTES {
            anyhow::bail!("it returned more than {} MB of text", QUERY_MAX_BYTES / (1024 * 1024));
        }
        rows.push(cells);
    }
    Ok(Rows { columns, rows })
}

/// Why a query that ran past `timeout` (`[reports] query_timeout_s`) is no
/// report, on either backend.
fn ran_too_long(timeout: Duration) -> String {
    format!(
        "it ran longer than [reports] query_timeout_s ({} s) and was stopped",
        timeout.as_secs()
    )
}

/// Why a query that returns no column (`SELECT FROM t` on PostgreSQL) is
/// no report: its table and CSV would be empty lines.
const NO_COLUMN: &str = "it returns no column; a report needs at least one";

/// The cursor a report's query runs in on PostgreSQL, and the rows read
/// from it at a time.
const CURSOR: &str = "rappel_report";
const FETCH_ROWS: usize = 1000;

/// Whether `query` begins as PostgreSQL's queries do (`SELECT`, `WITH`,
/// `VALUES`, `TABLE`, or a parenthesis): a syntax error in one is its own,
/// not a statement of another kind.
fn starts_as_a_query(query: &str) -> bool {
    let first: String = query
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphabetic() || *c == '(')
        .collect();
    first.starts_with('(')
        || ["select", "with", "values", "table"]
            .iter()
            .any(|k| first.eq_ignore_ascii_case(k))
}

/// `run` on PostgreSQL: a read-only session (`Database::reading`), one
/// read-only transaction, `statement_timeout` set to `timeout`, the same row
/// and text limits; with `first_only`, the first row read and the rest left.
fn run_postgres(
    db: &Database,
    query: &str,
    timeout: Duration,
    max_rows: u64,
    first_only: bool,
) -> anyhow::Result<Rows> {
    use crate::store::{StoreError, begin_read};
    let mut conn = db.reading().connect()?;
    let deadline = Instant::now() + timeout;
    let tx = begin_read(&mut conn)?;
    tx.execute_batch(&format!(
        "SET TRANSACTION READ ONLY; SET LOCAL statement_timeout = {}",
        timeout.as_millis().max(1)
    ))?;
    let said = |e: StoreError| -> anyhow::Error {
        match e.sql_state().as_deref() {
            Some("57014") => anyhow::anyhow!(ran_too_long(timeout)),
            Some("25006") => anyhow::anyhow!("it would write to the database; report queries must only read"),
            _ => anyhow::anyhow!("{e}"),
        }
    };
    // The query runs as a cursor's: PostgreSQL's DECLARE takes one SELECT
    // (WITH … SELECT, VALUES and TABLE among its forms) and nothing else,
    // so COPY (whose TO PROGRAM runs a program on the server, and which a
    // read-only transaction allows), DO, CALL or SET cannot be given as a
    // report. Sent on its own (extended protocol): one statement only.
    let query = query.trim().trim_end_matches(';').trim_end();
    tx.execute(
        &format!("DECLARE {CURSOR} NO SCROLL CURSOR FOR {query}"),
        crate::params![],
    )
    .map_err(|e| match e.sql_state().as_deref() {
        Some("42601") if !starts_as_a_query(query) => anyhow::anyhow!(
            "it is not a SELECT ({e}); report queries must only read: one SELECT, WITH … SELECT, VALUES or TABLE"
        ),
        _ => said(e),
    })?;
    let fetch = format!("FETCH FORWARD {FETCH_ROWS} FROM {CURSOR}");
    let columns = tx.columns(&fetch).map_err(said)?;
    if columns.is_empty() {
        anyhow::bail!(NO_COLUMN);
    }
    let mut rows = Vec::new();
    let mut bytes = 0;
    let mut stop: Option<String> = None;
    let read = loop {
        // Each fetch runs within what is left of `timeout`, set again
        // before it: the query itself may change `statement_timeout`
        // (`set_config` in a select list), which would leave later fetches
        // without a bound.
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            stop = Some(ran_too_long(timeout));
            break Err(StoreError::Stopped);
        }
        tx.execute_batch(&format!("SET LOCAL statement_timeout = {}", left.as_millis().max(1)))
            .map_err(said)?;
        let before = rows.len();
        let read = tx.query_each(&fetch, crate::params![], |row| {
            if first_only && !rows.is_empty() {
                return Err(StoreError::Stopped);
            }
            if rows.len() as u64 >= max_rows {
                stop = Some(format!(
                    "it returned more than [reports] query_max_rows ({max_rows}) rows"
                ));
                return Err(StoreError::Stopped);
            }
            let mut cells = Vec::with_capacity(columns.len());
            for i in 0..columns.len() {
                let cell = match row.cell(i)? {
                    crate::store::Cell::Null => Cell::Text(String::new()),
                    crate::store::Cell::Int(v) => Cell::Number(v.to_string()),
                    crate::store::Cell::Real(v) => Cell::Number(v.to_string()),
                    crate::store::Cell::Text(t) if row.numeric(i) => Cell::Number(t.into_owned()),
                    crate::store::Cell::Text(t) => Cell::Text(t.into_owned()),
                    crate::store::Cell::Blob(b) => Cell::Text(format!("<{} bytes>", b.len())),
                };
                bytes += match &cell {
                    Cell::Number(t) | Cell::Text(t) => t.len(),
                };
                cells.push(cell);
            }
            if bytes > QUERY_MAX_BYTES {
                stop = Some(format!(
                    "it returned more than {} MB of text",
                    QUERY_MAX_BYTES / (1024 * 1024)
                ));
                return Err(StoreError::Stopped);
            }
            rows.push(cells);
            Ok(())
        });
        if read.is_err() || rows.len() - before < FETCH_ROWS {
            break read;
        }
    };
    match read {
        Err(StoreError::Stopped) => {
            if let Some(why) = stop {
                anyhow::bail!(why);
            }
        }
        Err(e) => return Err(said(e)),
        Ok(()) => {}
    }
    tx.rollback()?;
    Ok(Rows { columns, rows })
}
