//! Input tables mapped onto the host application's own tables (DESIGN §9,
//! `[sources.<table>]`): each mapped source becomes, on every connection, a
//! TEMP view of the contract's name and columns over the host's table or
//! query. rappel's queries read it as they read a contract table; nothing is
//! created, altered or indexed in the host's schema, and the view goes with
//! the connection.

use std::collections::BTreeMap;

use rusqlite::Connection;

use super::conn::{Conn, Dialect};

/// The logs that may still go, from the ledger's row under `$k` (a contract
/// `attendance_logs` row, or `rappel_punch_state`'s): the partial indexes'
/// own condition, which a query must repeat word for word for SQLite to use
/// them (`store::attendance`), and the punches `left_out` counts.
macro_rules! unsent {
    ($k:ident) => {
        concat!(
            "(",
            stringify!($k),
            ".sync_status IN ('pending', 'sending') OR (",
            stringify!($k),
            ".sync_status = 'failed' AND ",
            stringify!($k),
            ".next_attempt_at IS NOT NULL))"
        )
    };
}
pub(crate) use unsent;

mod kept;
mod migrations;
pub mod server;

pub use kept::{KEPT, Kept, Value, kept};
pub use migrations::{statements, target, without_references};

/// Where a mapped source reads from.
#[derive(Clone, Debug, PartialEq)]
pub enum Origin {
    /// A host table (or view), by name.
    Table(String),
    /// A `SELECT` returning the contract's columns (by name).
    Query(String),
}

/// One input table read from the host's data: `[sources.<name>]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Source {
    /// The contract table it stands for (`tickets`).
    pub name: &'static str,
    pub origin: Origin,
    /// Contract column -> host column or SQL expression over the host
    /// table's columns (`table` form only).
    pub columns: BTreeMap<String, String>,
    /// `[sources.<name>.update]`: what rappel records about a row (`sent`,
    /// `sent_at`, `status`...) -> the host column kept up to date with it,
    /// in the same transaction (`table` form only; see [`KEPT`]).
    pub update: BTreeMap<String, String>,
    /// `naive_timezone`: the zone instants written without an offset are
    /// read in. In UTC, instants written back to a host's text column go
    /// in that form, `YYYY-MM-DD HH:MM:SS`; otherwise with `+00:00`. A
    /// PostgreSQL `timestamp` (without time zone) column gets its local
    /// time in this zone.
    pub naive_zone: chrono_tz::Tz,
}

impl Source {
    /// Whether instants written without an offset are read as UTC.
    pub fn naive_utc(&self) -> bool {
        self.naive_zone == chrono_tz::UTC
    }
}

/// The contract's flag columns (0/1; DESIGN §4), which a host may write as
/// a boolean, a number or a word (`db::loose::flag`).
pub const FLAGS: &[&str] = &[
    "email_enabled",
    "whatsapp_enabled",
    "sms_enabled",
    "active",
    "subscription_active",
    "cancelled",
    "access_granted",
];

/// What a contract column is when the host has nothing for it (DESIGN §4's
/// defaults); a column not listed has none and must be mapped.
const DEFAULTS: &[(&str, &str, &str)] = &[
    ("contacts", "email", "NULL"),
    ("contacts", "phone", "NULL"),
    ("contacts", "locale", "NULL"),
    ("contacts", "timezone", "NULL"),
    ("contacts", "email_enabled", "1"),
    ("contacts", "whatsapp_enabled", "0"),
    ("contacts", "sms_enabled", "0"),
    ("contacts", "muted_kinds", "''"),
    ("tickets", "device", "''"),
    ("tickets", "customer", "''"),
    ("tickets", "closed_at", "NULL"),
    ("alert_recipients", "active", "1"),
    ("alert_recipients", "stages", "NULL"),
    ("loans", "term", "'long'"),
    ("loans", "returned_at", "NULL"),
    ("students", "parent_contact_id", "NULL"),
    ("students", "subscription_active", "1"),
    ("students", "subscribed_at", "NULL"),
    ("students", "last_active_at", "NULL"),
    ("revision_sessions", "objective", "''"),
    ("revision_sessions", "link", "NULL"),
    ("revision_sessions", "cancelled", "0"),
    ("revision_sessions", "completed_at", "NULL"),
    ("scheduled_reports", "attachment_path", "NULL"),
    ("scheduled_reports", "report", "NULL"),
    ("scheduled_reports", "recurrence", "NULL"),
    ("scheduled_reports", "timezone", "NULL"),
    ("scheduled_reports", "status", "'pending'"),
    ("scheduled_reports", "attempts", "0"),
    ("scheduled_reports", "next_attempt_at", "NULL"),
    ("scheduled_reports", "sent_at", "NULL"),
    ("scheduled_reports", "last_error", "NULL"),
    ("manual_reminders", "author_contact_id", "NULL"),
    ("manual_reminders", "sent_at", "NULL"),
    ("terminals", "name", "NULL"),
    ("terminals", "timezone", "NULL"),
    ("attendance_logs", "user_name", "''"),
    ("attendance_logs", "mode", "0"),
    ("attendance_logs", "inout", "0"),
    ("attendance_logs", "event", "0"),
    ("attendance_logs", "temperature", "NULL"),
    ("attendance_logs", "access_granted", "1"),
    ("attendance_logs", "sync_status", "'pending'"),
    ("attendance_logs", "sync_attempts", "0"),
    ("attendance_logs", "next_attempt_at", "NULL"),
    ("attendance_logs", "sync_lease_until", "NULL"),
    ("attendance_logs", "synced_at", "NULL"),
    ("attendance_logs", "sync_error", "NULL"),
];

/// Contract columns never read from the host, whatever it has: what only
/// rappel may write there (a report's next occurrence, which would be
/// inserted in the host's table; a punch's claim, rappel's own lease).
pub const NEVER_MAPPED: &[(&str, &str, &str)] = &[
    (
        "scheduled_reports",
        "recurrence",
        "a report read from your table does not recur (rappel would have to write its next occurrence there); \
         schedule each occurrence in your application",
    ),
    (
        "attendance_logs",
        "sync_lease_until",
        "a punch's claim is rappel's own (rappel_punch_state holds it)",
    ),
];

/// Why contract column `column` of `source` is never read from the host,
/// if it is not.
pub fn never_mapped(source: &str, column: &str) -> Option<&'static str> {
    NEVER_MAPPED
        .iter()
        .find(|(s, c, _)| *s == source && *c == column)
        .map(|(_, _, why)| *why)
}

fn default_of(source: &str, column: &str) -> Option<&'static str> {
    DEFAULTS
        .iter()
        .find(|(s, c, _)| *s == source && *c == column)
        .map(|(_, _, d)| *d)
}

/// The view of a mapped source's rows as the host gives them, before the
/// rows the jobs cannot use are left out (`rappel sources` reads it).
pub fn raw_view(name: &str) -> String {
    format!("rappel_source_{name}")
}

/// Contract columns a row cannot do without (NOT NULL without a default in
/// DESIGN §4): a mapped row without one is left out of what the jobs read.
pub fn required(table: &str, column: &str) -> bool {
    column == "id"
        || matches!(
            (table, column),
            ("contacts", "name")
                | ("tickets", "reference" | "created_at")
                | ("ticket_events", "ticket_id" | "stage" | "entered_at")
                | ("alert_recipients", "contact_id")
                | ("scheduled_reports", "title" | "recipients" | "scheduled_at")
                | ("loans", "contact_id" | "item" | "lent_at" | "due_at")
                | ("students", "contact_id")
                | ("revision_sessions", "student_id" | "subject" | "starts_at")
                | ("manual_reminders", "student_id" | "message" | "created_at")
                | ("terminals", "serial")
                | ("attendance_logs", "terminal_id" | "enroll_id" | "punched_at")
        )
}

/// The condition on a row of `name`'s raw view (`raw_view`), under
/// `alias`, that the jobs can use it: an integer id and every column they
/// need (`required`). The mapped source's view keeps these rows only. On
/// PostgreSQL the raw view's id is already `bigint`, NULL where the host's
/// is not an integer (`server`).
pub fn usable(name: &str, alias: &str, dialect: Dialect) -> String {
    let mut conditions = vec![match dialect {
        Dialect::Sqlite => format!("typeof({alias}.id) = 'integer'"),
        Dialect::Postgres => format!("{alias}.id IS NOT NULL"),
    }];
    for column in contract_columns(name).unwrap_or_default() {
        if *column != "id" && required(name, column) {
            conditions.push(format!("{alias}.{column} IS NOT NULL"));
        }
    }
    conditions.join(" AND ")
}

/// The contract's columns of input table `name` (DESIGN §4).
pub fn contract_columns(name: &str) -> Option<&'static [&'static str]> {
    super::host::CONTRACT
        .iter()
        .find(|(t, _)| *t == name)
        .map(|(_, columns)| *columns)
}

/// An SQL identifier in double quotes.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The schema of a connection's own TEMP objects, in `dialect`.
pub fn temp(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "temp",
        Dialect::Postgres => "pg_temp",
    }
}

/// Creates the TEMP view of each source on `conn`, after checking that
/// each reads: its table exists, every contract column without a default
/// is mapped or found under its own name, each expression compiles.
/// Errors: one line naming the source, the column and the fix.
pub fn create_views(conn: &Connection, sources: &[Source]) -> anyhow::Result<()> {
    let mut errors = Vec::new();
    for source in sources {
        if let Err(e) = create_view(conn, source) {
            errors.push(e.to_string());
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        // Every mapping that does not read, one line each.
        Err(anyhow::anyhow!("{}", errors.join("\n")))
    }
}

fn create_view(conn: &Connection, source: &Source) -> anyhow::Result<()> {
    let name = source.name;
    // Made again (after the migrations, rappel's record of the source may
    // be there now).
    conn.execute_batch(&format!(
        "DROP TRIGGER IF EXISTS temp.{}; DROP VIEW IF EXISTS temp.{}; DROP VIEW IF EXISTS temp.{};",
        quoted(&format!("rappel_update_{name}")),
        quoted(name),
        quoted(&raw_view(name)),
    ))?;
    // The host table's columns (name, NOT NULL, primary key), read once.
    let info = match &source.origin {
        Origin::Table(table) => host_column_info(conn, table)?,
        Origin::Query(_) => Vec::new(),
    };
    let sql = view_sql(conn, source, &info)?;
    conn.execute_batch(&sql)
        .map_err(|e| anyhow::anyhow!("[sources.{name}]: {e}"))?;
    // A column that is not there or an expression that does not compile
    // says so now, named after its source, not in the middle of a job.
    conn.prepare(&format!("SELECT * FROM temp.{}", quoted(name)))
        .map_err(|e| anyhow::anyhow!("[sources.{name}]: {e}"))?;
    // Whether its ids need checking for repeats (`repeated_id`).
    conn.execute_batch(&format!(
        "CREATE TEMP TABLE IF NOT EXISTS {KEYED} (name TEXT PRIMARY KEY)"
    ))?;
    let sql = if id_is_key(source, &info) {
        format!("INSERT OR IGNORE INTO temp.{KEYED} (name) VALUES (?1)")
    } else {
        format!("DELETE FROM temp.{KEYED} WHERE name = ?1")
    };
    conn.execute(&sql, [name])?;
    Ok(())
}

/// The TEMP table naming the mapped sources whose ids are the host table's
/// key: no two rows can share one.
const KEYED: &str = "rappel_keyed_sources";

/// Whether `source`'s `id` is its host table's primary key, alone: a host
/// column (not an expression, not a query's) that no two rows share (the
/// views keep integer ids only, so a key's NULLs do not count).
fn id_is_key(source: &Source, info: &[(String, bool, bool)]) -> bool {
    if !matches!(source.origin, Origin::Table(_)) {
        return false;
    }
    let column = source.columns.get("id").map_or("id", |c| c.trim());
    let pk: Vec<&str> = info
        .iter()
        .filter(|(_, _, pk)| *pk)
        .map(|(n, _, _)| n.as_str())
        .collect();
    matches!(pk.as_slice(), [only] if only.eq_ignore_ascii_case(column))
}

/// `CREATE TEMP VIEW <name> AS SELECT <contract columns> FROM <origin>`.
/// `info`: the host table's columns (`host_column_info`; none for a query).
fn view_sql(conn: &Connection, source: &Source, info: &[(String, bool, bool)]) -> anyhow::Result<String> {
    let name = source.name;
    let contract = contract_columns(name).ok_or_else(|| anyhow::anyhow!("[sources.{name}]: not an input table"))?;
    let (from, available) = match &source.origin {
        Origin::Table(table) => {
            if info.is_empty() {
                anyhow::bail!(
                    "[sources.{name}]: table {table:?} is not in the database (check `table`, or the `database` path)"
                );
            }
            let columns = info.iter().map(|(n, _, _)| n.clone()).collect();
            (format!("main.{}", quoted(table)), columns)
        }
        Origin::Query(query) => {
            let columns = query_columns(conn, query).map_err(|e| {
                anyhow::anyhow!("[sources.{name}]: the query does not compile: {e} (run it in sqlite3 to see why)")
            })?;
            (format!("(\n{query}\n)"), columns)
        }
    };
    let select: Vec<String> = selection(source, contract, &available)?
        .into_iter()
        .map(|(column, expr)| format!("{expr} AS {}", quoted(column)))
        .collect();
    let recorded = |k: &Kept| -> rusqlite::Result<bool> {
        conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM main.sqlite_master WHERE type = 'table' AND name = ?1)",
            [k.table],
            |r| r.get(0),
        )
    };
    // Every row as the host gives it (what `rappel sources` reads), then
    // the rows the jobs can use: an integer id and every column they need
    // (`rappel sources` names the others). The conditions are on the rows,
    // so a lookup by id still uses the host's index.
    let raw = raw_view(name);
    let mut sql = format!(
        "CREATE TEMP VIEW IF NOT EXISTS {} AS SELECT {} FROM {from} AS {};\n",
        quoted(&raw),
        select.join(", "),
        quoted("rappel_source")
    );
    let usable = usable(name, "i", Dialect::Sqlite);
    // Before the migrations have made rappel's record, the rows as they
    // are (`Database::migrate` maps the source again once it is there).
    let Some(kept) = kept(name).filter(|k| recorded(k).unwrap_or(false)) else {
        sql.push_str(&format!(
            "CREATE TEMP VIEW IF NOT EXISTS {} AS SELECT * FROM temp.{} AS i WHERE {usable};",
            quoted(name),
            quoted(&raw)
        ));
        return Ok(sql);
    };
    sql.push_str(&kept::view_and_trigger(
        source, kept, contract, &raw, &usable, info, &available,
    )?);
    Ok(sql)
}

/// Each contract column of `source` (`contract`, in order) with the SQL
/// reading it from the host's rows (under the alias `rappel_source`): its
/// mapped expression, else the host's column of the same name
/// (`available`), else the contract's default; NULL for a column never
/// read from the host. Errors: a column without a default the host has
/// nothing for ([`missing`]).
fn selection(
    source: &Source,
    contract: &[&'static str],
    available: &[String],
) -> anyhow::Result<Vec<(&'static str, String)>> {
    let mut select = Vec::with_capacity(contract.len());
    for column in contract.iter().copied() {
        // A report read from the host's table never recurs, and a punch's
        // claim is rappel's, whatever columns the host has.
        if never_mapped(source.name, column).is_some() {
            select.push((column, "NULL".to_string()));
            continue;
        }
        let expr = match source.columns.get(column) {
            Some(expr) => format!("({expr})"),
            None if available.iter().any(|c| c.eq_ignore_ascii_case(column)) => {
                format!("{}.{}", quoted("rappel_source"), quoted(column))
            }
            None => match default_of(source.name, column) {
                Some(default) => default.to_string(),
                None => anyhow::bail!(missing(source, column)),
            },
        };
        select.push((column, expr));
    }
    Ok(select)
}

/// The error for a contract column the host has nothing for.
fn missing(source: &Source, column: &str) -> String {
    let name = source.name;
    match &source.origin {
        Origin::Table(table) => format!(
            "[sources.{name}]: column `{column}` is not in table {table:?}; map it to a column or an SQL \
             expression over that table under [sources.{name}.columns] ({column} = \"...\")"
        ),
        Origin::Query(_) => format!("[sources.{name}]: the query returns no column `{column}`; add `... AS {column}`"),
    }
}

/// Each column of the host's table (or view) `table` in the main schema:
/// its name, whether it is NOT NULL, whether it is (part of) the primary
/// key; none when it does not exist.
fn host_column_info(conn: &Connection, table: &str) -> rusqlite::Result<Vec<(String, bool, bool)>> {
    let mut stmt = conn.prepare("SELECT name, \"notnull\", pk FROM pragma_table_info(?1, 'main')")?;
    let rows = stmt.query_map([table], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? > 0)))?;
    rows.collect()
}

/// The names of the columns `query` returns.
fn query_columns(conn: &Connection, query: &str) -> rusqlite::Result<Vec<String>> {
    let stmt = conn.prepare(&format!("SELECT * FROM (\n{query}\n)"))?;
    Ok(stmt.column_names().map(str::to_string).collect())
}

/// An id that more than one usable row of mapped source `name` has, with
/// how many rows have it; `None` when each id is on one row, or when the id
/// is the host table's primary key (no row is read then).
pub fn repeated_id(conn: &Conn, name: &str) -> super::error::Result<Option<(i64, i64)>> {
    let temp = temp(conn.dialect());
    let keyed = conn
        .query_opt(
            &format!("SELECT 1 FROM {temp}.{KEYED} WHERE name = ?1"),
            crate::params![name],
            |_| Ok(()),
        )
        .ok()
        .flatten()
        .is_some();
    if keyed {
        // The host's key: read every row to find none would cost a scan of
        // the table on every run.
        return Ok(None);
    }
    conn.query_opt(
        &format!(
            "SELECT id, count(*) FROM {temp}.{} GROUP BY id HAVING count(*) > 1 ORDER BY id LIMIT 1",
            quoted(name)
        ),
        crate::params![],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// For each mapped source `job` reads (`host::READERS`), how many of the
/// host's rows it leaves out (no integer id, or an empty column the job
/// needs; of punches, those still to send), when some are: one line each,
/// naming the source and the command that shows the rows. Reads every row
/// of those sources. Errors: `StoreError`.
fn left_out(conn: &Conn, job: &str) -> super::error::Result<Vec<String>> {
    let mut lines = Vec::new();
    for name in mapped(conn)? {
        let read = super::host::READERS
            .iter()
            .any(|(t, jobs)| *t == name && jobs.contains(&job));
        if !read {
            continue;
        }
        // Of a time clock's punches, those its columns say are still to
        // send: the others would not be pushed anyway, and a host that says
        // so costs one comparison per punch. And punches in a state none of
        // the four, which nothing ever pushes.
        let (still_to_send, odd_state) = if name == "attendance_logs" {
            (
                unsent!(i),
                "(i.sync_status IS NULL OR i.sync_status NOT IN ('pending', 'sending', 'sent', 'failed'))",
            )
        } else {
            ("1=1", "1=0")
        };
        let n: i64 = conn.query_row(
            &format!(
                "SELECT count(*) FROM {}.{} AS i WHERE ({still_to_send} AND NOT ({})) OR {odd_state}",
                temp(conn.dialect()),
                quoted(&raw_view(&name)),
                usable(&name, "i", conn.dialect()),
            ),
            crate::params![],
            |r| r.get(0),
        )?;
        if n > 0 {
            let state = if name == "attendance_logs" {
                ", or a sync_status none of pending, sending, sent and failed"
            } else {
                ""
            };
            lines.push(format!(
                "[sources.{name}]: {n} row(s) of yours left out: no integer id, or an empty column {job} \
                 needs{state} (`rappel sources {name}` names them)"
            ));
        }
    }
    Ok(lines)
}

/// Warns of each line of [`left_out`] for `job`; returns how many there
/// were (data errors: exit 65). Errors: `StoreError`.
pub fn warn_left_out(conn: &Conn, job: &str) -> super::error::Result<u64> {
    let lines = left_out(conn, job)?;
    for line in &lines {
        log::warn!("{line}");
    }
    Ok(lines.len() as u64)
}

/// The input tables mapped on `conn` (its TEMP views). Errors:
/// `StoreError`.
pub fn mapped(conn: &Conn) -> super::error::Result<Vec<String>> {
    match conn.dialect() {
        Dialect::Sqlite => Ok(mapped_lite(conn.lite()?)?),
        // By name, so the catalog's (relname, relnamespace) index serves: a
        // server with thousands of tables makes a scan by schema cost
        // milliseconds on every connection. A session rappel mapped nothing
        // on has no TEMP view: no look (a millisecond of a run with nothing
        // due, the catalog's first read on a new session).
        Dialect::Postgres if !conn.may_have_views() => Ok(Vec::new()),
        Dialect::Postgres => {
            let names: Vec<String> = super::host::CONTRACT.iter().map(|(n, _)| format!("'{n}'")).collect();
            conn.query_map(
                &format!(
                    "SELECT relname::text FROM pg_class WHERE relname IN ({}) AND relnamespace = pg_my_temp_schema()
                       AND relkind = 'v' ORDER BY relname",
                    names.join(", ")
                ),
                crate::params![],
                |r| r.get(0),
            )
        }
    }
}

/// [`mapped`] on a SQLite connection (the migrations' own).
pub fn mapped_lite(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT name FROM sqlite_temp_master WHERE type = 'view' AND name NOT LIKE 'rappel!_%' ESCAPE '!'",
    )?;
    let names = stmt.query_map([], |r| r.get(0))?;
    names.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Connection {
        #[allow(clippy::disallowed_methods, reason = "a scratch database for the test")]
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE repairs_ticket (id integer PRIMARY KEY, numero text NOT NULL, modele text,
                                          statut text, cree_le datetime, cloture_le datetime);
             INSERT INTO repairs_ticket VALUES (1, 'R-1', 'Pixel', 'livre', '2026-02-01 10:00:00', NULL);",
        )
        .unwrap();
        conn
    }

    fn tickets(columns: &[(&str, &str)]) -> Source {
        Source {
            name: "tickets",
            origin: Origin::Table("repairs_ticket".into()),
            columns: columns.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            update: BTreeMap::new(),
            naive_zone: chrono_tz::UTC,
        }
    }

    #[test]
    fn a_mapped_table_reads_as_the_contract_with_defaults_for_the_rest() {
        let conn = conn();
        let source = tickets(&[
            ("reference", "numero"),
            ("device", "modele"),
            ("created_at", "cree_le"),
            (
                "closed_at",
                "CASE WHEN statut = 'livre' THEN coalesce(cloture_le, cree_le) END",
            ),
        ]);
        create_views(&conn, &[source]).unwrap();
        let row: (i64, String, String, String, Option<String>) = conn
            .query_row(
                "SELECT id, reference, device, customer, closed_at FROM tickets",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .unwrap();
        assert_eq!(
            row,
            (
                1,
                "R-1".into(),
                "Pixel".into(),
                String::new(),
                Some("2026-02-01 10:00:00".into())
            )
        );
        assert_eq!(mapped_lite(&conn).unwrap(), ["tickets"]);
        let created: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master WHERE name = 'tickets'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(created, 0, "nothing in the host's schema");
    }

    #[test]
    fn a_column_without_a_default_must_be_mapped_and_the_error_says_how() {
        let e = create_views(&conn(), &[tickets(&[("created_at", "cree_le")])]).unwrap_err();
        let e = e.to_string();
        assert!(e.contains("[sources.tickets]") && e.contains("`reference`"), "{e}");
        assert!(e.contains("[sources.tickets.columns]"), "{e}");
    }

    #[test]
    fn an_expression_over_a_missing_column_is_named_with_its_source() {
        let source = tickets(&[("reference", "numero"), ("created_at", "date_creation")]);
        let e = create_views(&conn(), &[source]).unwrap_err().to_string();
        assert!(e.contains("[sources.tickets]") && e.contains("date_creation"), "{e}");
    }

    #[test]
    fn a_query_source_gets_defaults_and_must_return_the_required_columns() {
        let conn = conn();
        let ok = Source {
            name: "tickets",
            origin: Origin::Query("SELECT id, numero AS reference, cree_le AS created_at FROM repairs_ticket".into()),
            columns: BTreeMap::new(),
            update: BTreeMap::new(),
            naive_zone: chrono_tz::UTC,
        };
        create_views(&conn, &[ok]).unwrap();
        let device: String = conn.query_row("SELECT device FROM tickets", [], |r| r.get(0)).unwrap();
        assert_eq!(device, "");
        let bad = Source {
            name: "ticket_events",
            origin: Origin::Query("SELECT id, id AS ticket_id FROM repairs_ticket".into()),
            columns: BTreeMap::new(),
            update: BTreeMap::new(),
            naive_zone: chrono_tz::UTC,
        };
        let e = create_views(&conn, &[bad]).unwrap_err().to_string();
        assert!(e.contains("[sources.ticket_events]") && e.contains("AS stage"), "{e}");
        let broken = Source {
            name: "loans",
            origin: Origin::Query("SELEC nothing".into()),
            columns: BTreeMap::new(),
            update: BTreeMap::new(),
            naive_zone: chrono_tz::UTC,
        };
        let e = create_views(&conn, &[broken]).unwrap_err().to_string();
        assert!(e.contains("[sources.loans]") && e.contains("does not compile"), "{e}");
    }

    #[test]
    fn a_missing_host_table_is_named() {
        let source = Source {
            name: "tickets",
            origin: Origin::Table("repairs_tickets".into()),
            columns: BTreeMap::new(),
            update: BTreeMap::new(),
            naive_zone: chrono_tz::UTC,
        };
        let e = create_views(&conn(), &[source]).unwrap_err().to_string();
        assert!(e.contains("\"repairs_tickets\" is not in the database"), "{e}");
    }
}
