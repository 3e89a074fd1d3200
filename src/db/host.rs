//! The host application's input tables (DESIGN §4): which job reads each,
//! the tables a host made first without a column rappel reads (a clash:
//! only the jobs that read that table stop, with one line saying which
//! column), and the indexes rappel adds to them, each created only where its
//! table has the columns, after the migrations (a clash never stops a
//! migration).

use rusqlite::Connection;

/// Each input table's columns (DESIGN §4), checked against the migrations
/// by a test.
pub const CONTRACT: &[(&str, &[&str])] = &[
    (
        "contacts",
        &[
            "id",
            "name",
            "email",
            "phone",
            "locale",
            "timezone",
            "email_enabled",
            "whatsapp_enabled",
            "sms_enabled",
            "muted_kinds",
        ],
    ),
    (
        "tickets",
        &["id", "reference", "device", "customer", "created_at", "closed_at"],
    ),
    ("ticket_events", &["id", "ticket_id", "stage", "entered_at"]),
    ("alert_recipients", &["id", "contact_id", "active", "stages"]),
    (
        "scheduled_reports",
        &[
            "id",
            "title",
            "recipients",
            "scheduled_at",
            "attachment_path",
            "report",
            "recurrence",
            "timezone",
            "status",
            "attempts",
            "next_attempt_at",
            "sent_at",
            "last_error",
        ],
    ),
    (
        "loans",
        &["id", "contact_id", "item", "term", "lent_at", "due_at", "returned_at"],
    ),
    (
        "students",
        &[
            "id",
            "contact_id",
            "parent_contact_id",
            "subscription_active",
            "subscribed_at",
            "last_active_at",
        ],
    ),
    (
        "revision_sessions",
        &[
            "id",
            "student_id",
            "subject",
            "starts_at",
            "objective",
            "link",
            "cancelled",
            "completed_at",
        ],
    ),
    (
        "manual_reminders",
        &[
            "id",
            "student_id",
            "author_contact_id",
            "message",
            "created_at",
            "sent_at",
        ],
    ),
    ("terminals", &["id", "serial", "name", "timezone"]),
    (
        "attendance_logs",
        &[
            "id",
            "terminal_id",
            "enroll_id",
            "user_name",
            "punched_at",
            "mode",
            "inout",
            "event",
            "temperature",
            "access_granted",
            "sync_status",
            "sync_attempts",
            "next_attempt_at",
            "sync_lease_until",
            "synced_at",
            "sync_error",
        ],
    ),
];

/// Each input table and the jobs that read it.
pub const READERS: &[(&str, &[&str])] = &[
    ("contacts", &["check-delay-alerts", "send-reminders"]),
    ("tickets", &["check-delay-alerts"]),
    ("ticket_events", &["check-delay-alerts"]),
    ("alert_recipients", &["check-delay-alerts"]),
    ("scheduled_reports", &["send-reports"]),
    ("loans", &["send-reminders"]),
    ("students", &["send-reminders"]),
    ("revision_sessions", &["send-reminders"]),
    ("manual_reminders", &["send-reminders"]),
    ("terminals", &["sync-attendance"]),
    ("attendance_logs", &["sync-attendance"]),
];

/// The indexes rappel's queries need on input tables (harmless to the
/// host): table and statement.
const INDEXES: &[(&str, &str)] = &[
    // Covering: the delay-alert scan reads events without visiting the table.
    (
        "ticket_events",
        "CREATE INDEX IF NOT EXISTS rappel_ticket_events_ticket ON ticket_events (ticket_id, entered_at, stage)",
    ),
    (
        "tickets",
        "CREATE INDEX IF NOT EXISTS rappel_tickets_active ON tickets (id) WHERE closed_at IS NULL",
    ),
    // The last look before a digest goes: is its recipient still one.
    (
        "alert_recipients",
        "CREATE INDEX IF NOT EXISTS rappel_alert_recipients_contact ON alert_recipients (contact_id)",
    ),
    (
        "scheduled_reports",
        "CREATE INDEX IF NOT EXISTS rappel_scheduled_reports_pending ON scheduled_reports (id) WHERE status = 'pending'",
    ),
    // Hosts write instants in several forms, all beginning with the date, so
    // the text index narrows the search by date with a day of margin and
    // rappel compares the parsed instants; start times that do not begin with
    // a date have their own small index, so each run can still report them.
    (
        "revision_sessions",
        "CREATE INDEX IF NOT EXISTS rappel_revision_sessions_start ON revision_sessions (starts_at)",
    ),
    (
        "revision_sessions",
        "CREATE INDEX IF NOT EXISTS rappel_revision_sessions_odd ON revision_sessions (id)
         WHERE starts_at NOT GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*'",
    ),
    // Weekly digests read a fortnight of sessions in student order: this one
    // gives that order without sorting them (store::reminders::digest_sessions).
    (
        "revision_sessions",
        "CREATE INDEX IF NOT EXISTS rappel_revision_sessions_student ON revision_sessions (student_id, starts_at)",
    ),
    // Manual reminders not yet sent: the only ones each run reads.
    (
        "manual_reminders",
        "CREATE INDEX IF NOT EXISTS rappel_manual_reminders_unsent ON manual_reminders (id) WHERE sent_at IS NULL",
    ),
    // Punches still to push, in time order as instants (not as text:
    // '2026-05-04 12:01:00' sorts before '2026-05-04T07:58:00Z'); only those
    // that may still go, so old punches cost nothing. julianday() is as old
    // as SQLite's date functions, so a host writing this table with an older
    // SQLite (3.20 or later) computes the same entries.
    (
        "attendance_logs",
        "CREATE INDEX IF NOT EXISTS rappel_attendance_logs_unsent
         ON attendance_logs (coalesce(julianday(punched_at), -1), id)
         WHERE sync_status IN ('pending', 'sending') OR (sync_status = 'failed' AND next_attempt_at IS NOT NULL)",
    ),
];

/// The host columns holding instants that rappel reads as times, with the
/// rows whose value `naive_timezone` governs (a report row or a terminal
/// with its own `timezone` is read in that zone).
const INSTANTS: &[(&str, &str, &str)] = &[
    ("ticket_events", "entered_at", "ticket_events"),
    (
        "scheduled_reports",
        "scheduled_at",
        "scheduled_reports WHERE status = 'pending' AND trim(coalesce(timezone, '')) = ''",
    ),
    ("loans", "lent_at", "loans"),
    ("loans", "due_at", "loans"),
    ("students", "last_active_at", "students"),
    ("revision_sessions", "starts_at", "revision_sessions"),
    ("manual_reminders", "created_at", "manual_reminders"),
    (
        "attendance_logs",
        "punched_at",
        "attendance_logs AS l WHERE NOT EXISTS (SELECT 1 FROM terminals AS t
           WHERE t.id = l.terminal_id AND trim(coalesce(t.timezone, '')) <> '')",
    ),
];

/// How many of each column's latest rows `naive_instants` looks at.
const NAIVE_SAMPLE: u32 = 500;

/// Host columns whose latest rows (up to 500 each) hold an instant written
/// without an offset, each as `(table.column, an example value)`: without
/// `naive_timezone` they are read as UTC (DESIGN §9). A date alone
/// (`2026-03-13`, a loan's due date) is not counted: it is read in the
/// person's zone. Tables or columns the host does not have are passed over.
pub fn naive_instants(conn: &Connection) -> rusqlite::Result<Vec<(String, String)>> {
    let mut found = Vec::new();
    for (table, column, from) in INSTANTS {
        if columns(conn, table)?.iter().all(|c| c != column)
            || (*table == "scheduled_reports" && !has_columns(conn, table, &["status", "timezone"])?)
            || (*table == "attendance_logs" && !has_columns(conn, "terminals", &["id", "timezone"])?)
        {
            continue;
        }
        let mut stmt = conn.prepare(&format!(
            "SELECT {column} FROM {from} ORDER BY id DESC LIMIT {NAIVE_SAMPLE}"
        ))?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let Some(value) = crate::db::loose::text(row.get_ref(0)?) else {
                continue;
            };
            let value = value.trim();
            if value.len() > 10 && crate::instant::parse(value).is_some() && !crate::instant::has_offset(value) {
                found.push((format!("{table}.{column}"), value.to_string()));
                break;
            }
        }
    }
    Ok(found)
}

fn has_columns(conn: &Connection, table: &str, wanted: &[&str]) -> rusqlite::Result<bool> {
    let have = columns(conn, table)?;
    Ok(wanted.iter().all(|w| have.iter().any(|c| c.eq_ignore_ascii_case(w))))
}

/// A host table that exists without a column rappel reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Clash {
    pub table: &'static str,
    pub column: String,
}

impl Clash {
    /// The jobs that cannot run while it stands.
    pub fn jobs(&self) -> &'static [&'static str] {
        READERS
            .iter()
            .find(|(t, _)| *t == self.table)
            .map_or(&[], |(_, jobs)| jobs)
    }

    /// `table tickets exists without column closed_at (needed by check-delay-alerts)`.
    pub fn line(&self) -> String {
        format!(
            "table {} exists without column {} (needed by {})",
            self.table,
            self.column,
            self.jobs().join(", ")
        )
    }
}

/// The columns of `table` as it is (none when it does not exist).
pub fn columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached("SELECT name FROM pragma_table_info(?1)")?;
    stmt.query_map([table], |r| r.get(0))?.collect()
}

/// Every input table that exists in `conn` without a column of the contract.
pub fn clashes(conn: &Connection) -> rusqlite::Result<Vec<Clash>> {
    let mut found = Vec::new();
    for (table, wanted) in CONTRACT {
        let have = columns(conn, table)?;
        if have.is_empty() {
            continue;
        }
        // SQLite's names match in any case: `ID` is the column `id`.
        for column in wanted
            .iter()
            .filter(|c| !have.iter().any(|h| h.eq_ignore_ascii_case(c)))
        {
            found.push(Clash {
                table,
                column: column.to_string(),
            });
        }
    }
    Ok(found)
}

/// What stops `job` on `conn`: a mapped source it reads whose ids repeat
/// (exit 78), and on SQLite the clashes of its input tables, as one error
/// (exit 74) naming each.
pub fn check_for(conn: &super::conn::Conn, job: &str) -> anyhow::Result<()> {
    // A person under two rows of a mapped source would get the other's
    // messages, a punch would go under two terminals, and of two punches
    // under one id one would be recorded sent with the other: such a
    // source stops the jobs that read it. So does a table of the contract
    // the host made as a view, or without a unique key on `id`.
    let mapped = super::sources::mapped(conn)?;
    let read: Vec<&str> = KEYED_BY_ID
        .iter()
        .copied()
        .filter(|name| READERS.iter().any(|(t, jobs)| t == name && jobs.contains(&job)))
        .collect();
    let unkeyed = unkeyed(conn, &unmapped(&read, &mapped))?;
    for name in read {
        if mapped.iter().any(|m| m == name) {
            if let Some((id, rows)) = super::sources::repeated_id(conn, name)? {
                return Err(crate::exit::fail(
                    crate::exit::Exit::Config,
                    format!(
                        "[sources.{name}]: id {id} is on {rows} rows; ids must be unique within a source \
                         (two tables in one source: offset one's ids, as README shows); {job} cannot run"
                    ),
                ));
            }
        } else if unkeyed.iter().any(|u| u == name)
            && let Some((id, rows)) = repeated_in_table(conn, name)?
        {
            return Err(crate::exit::fail(
                crate::exit::Exit::Config,
                format!("{}; {job} cannot run", repeated_line(name, id, rows)),
            ));
        }
    }
    // On PostgreSQL the contract tables are rappel's, in its own schema.
    let Ok(conn) = conn.lite() else {
        return Ok(());
    };
    let lines: Vec<String> = clashes(conn)?
        .iter()
        .filter(|c| c.jobs().contains(&job))
        .map(Clash::line)
        .collect();
    if lines.is_empty() {
        return Ok(());
    }
    Err(crate::exit::fail(
        crate::exit::Exit::IoErr,
        format!(
            "{}; {job} cannot run until the host table has it (rappel never alters a host table: \
             add the column, then run `rappel db migrate`)",
            lines.join("; ")
        ),
    ))
}

/// The input tables whose rows a job tells apart by `id` alone: contacts
/// (messages), students, tickets (their stage entries), terminals and
/// punches (what is recorded sent).
pub const KEYED_BY_ID: &[&str] = &["contacts", "students", "tickets", "terminals", "attendance_logs"];

/// Of `names` (input tables, none mapped), those in rappel's schema that
/// have an `id` column but no unique key on it alone (a view, or a table an
/// application made without one): their ids must be checked
/// (`repeated_in_table`). A table rappel made has its primary key and
/// costs no scan. On SQLite read from the catalog; on PostgreSQL as `db
/// migrate` recorded them. Errors: `StoreError`.
fn unkeyed(conn: &super::conn::Conn, names: &[&str]) -> super::error::Result<Vec<String>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    match conn.dialect() {
        super::conn::Dialect::Sqlite => {
            let mut found = Vec::new();
            for name in names {
                let unkeyed: Option<bool> = conn.query_opt(
                    "SELECT type = 'view' OR NOT (
                         ((SELECT count(*) FROM pragma_table_info(?1) WHERE pk > 0) = 1
                          AND EXISTS (SELECT 1 FROM pragma_table_info(?1) WHERE name = 'id' COLLATE NOCASE AND pk = 1))
                         OR EXISTS (SELECT 1 FROM pragma_index_list(?1) AS l
                                    WHERE l.\"unique\" = 1 AND l.partial = 0
                                      AND (SELECT count(*) FROM pragma_index_info(l.name)) = 1
                                      AND (SELECT name FROM pragma_index_info(l.name)) = 'id' COLLATE NOCASE))
                     FROM main.sqlite_master
                     WHERE name = ?1 COLLATE NOCASE AND type IN ('table', 'view')
                       AND EXISTS (SELECT 1 FROM pragma_table_info(?1) WHERE name = 'id' COLLATE NOCASE)",
                    crate::params![*name],
                    |r| r.get(0),
                )?;
                if unkeyed == Some(true) {
                    found.push((*name).to_string());
                }
            }
            Ok(found)
        }
        // As `db migrate` last found them (`postgres::migrate`): a catalog
        // read per run would cost a new session 2 to 5 ms.
        super::conn::Dialect::Postgres => Ok(recorded_unkeyed(conn)?
            .unwrap_or_default()
            .split(',')
            .filter(|t| names.contains(t))
            .map(str::to_string)
            .collect()),
    }
}

/// On PostgreSQL, the input tables without a key on `id` as `db migrate`
/// last recorded them (`rappel_meta.unkeyed_tables`, comma-separated);
/// `None` before it first did. Errors: `StoreError`.
pub fn recorded_unkeyed(conn: &super::conn::Conn) -> super::error::Result<Option<String>> {
    conn.query_opt(
        "SELECT value FROM rappel_meta WHERE key = 'unkeyed_tables'",
        crate::params![],
        |r| r.get(0),
    )
}

/// `table contacts: id 1 is on 2 rows; ids must be unique (...)`.
fn repeated_line(name: &str, id: i64, rows: i64) -> String {
    format!(
        "table {name}: id {id} is on {rows} rows; ids must be unique (it is a view, or a table without a \
         unique key on id)"
    )
}

/// For `db status`: one line for each input table (not mapped) made as a
/// view or without a unique key on `id` where an id is on more than one
/// row; the jobs that read it stop (`check_for`). Reads those tables whole.
/// Errors: `StoreError`.
pub fn repeated_ids(conn: &super::conn::Conn) -> super::error::Result<Vec<String>> {
    let mapped = super::sources::mapped(conn)?;
    repeated_ids_in(conn, &unkeyed(conn, &unmapped(KEYED_BY_ID, &mapped))?)
}

/// Those of `names` that are not among `mapped` (`[sources]`' views).
fn unmapped<'a>(names: &[&'a str], mapped: &[String]) -> Vec<&'a str> {
    names
        .iter()
        .copied()
        .filter(|n| !mapped.iter().any(|m| m == n))
        .collect()
}

/// `repeated_ids` over `names`, input tables found without a key on `id`.
/// Errors: `StoreError`.
pub fn repeated_ids_in(conn: &super::conn::Conn, names: &[String]) -> super::error::Result<Vec<String>> {
    let mut lines = Vec::new();
    for name in names {
        if let Some((id, rows)) = repeated_in_table(conn, name)? {
            lines.push(format!("{}: the jobs that read it stop", repeated_line(name, id, rows)));
        }
    }
    Ok(lines)
}

/// The smallest `id` on more than one row of input table `name` (one
/// `unkeyed` found), with its row count; `None` when each is on one.
/// Reads the whole table. Errors: `StoreError`.
fn repeated_in_table(conn: &super::conn::Conn, name: &str) -> super::error::Result<Option<(i64, i64)>> {
    conn.query_opt(
        &format!(
            "SELECT id, count(*) FROM {name} WHERE id IS NOT NULL GROUP BY id HAVING count(*) > 1 ORDER BY id LIMIT 1"
        ),
        crate::params![],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// Creates the indexes rappel needs on input tables, except on those that
/// `clashes` names (the statement would fail on a missing column).
pub fn ensure_indexes(conn: &Connection, clashes: &[Clash]) -> rusqlite::Result<()> {
    // A source mapped onto the host's own table is never indexed by rappel.
    let mapped = super::sources::mapped_lite(conn)?;
    for (table, sql) in INDEXES {
        if !clashes.iter().any(|c| c.table == *table) && !mapped.iter().any(|m| m == table) {
            conn.execute_batch(sql)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract_is_what_the_migrations_create() {
        #[allow(clippy::disallowed_methods, reason = "a scratch database for the test")]
        let mut conn = Connection::open_in_memory().unwrap();
        crate::db::migrate(&mut conn).unwrap();
        for (table, wanted) in CONTRACT {
            assert_eq!(columns(&conn, table).unwrap(), *wanted, "{table}");
            assert!(READERS.iter().any(|(t, _)| t == table), "{table} has readers");
        }
        assert!(clashes(&conn).unwrap().is_empty());
    }

    #[test]
    fn a_host_table_without_a_column_is_one_line_and_stops_only_its_jobs() {
        #[allow(clippy::disallowed_methods, reason = "a scratch database for the test")]
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE tickets (id INTEGER PRIMARY KEY, reference TEXT, device TEXT, customer TEXT, created_at TEXT)")
            .unwrap();
        crate::db::migrate(&mut conn).unwrap();
        let found = clashes(&conn).unwrap();
        assert_eq!(
            found.iter().map(Clash::line).collect::<Vec<_>>(),
            ["table tickets exists without column closed_at (needed by check-delay-alerts)"]
        );
        let conn = crate::db::conn::Conn::sqlite(conn);
        assert!(check_for(&conn, "check-delay-alerts").is_err());
        assert!(check_for(&conn, "send-reminders").is_ok());
    }

    #[test]
    fn a_column_named_in_other_case_is_the_same_column() {
        #[allow(clippy::disallowed_methods, reason = "a scratch database for the test")]
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE contacts (ID INTEGER PRIMARY KEY, Name TEXT, email TEXT, phone TEXT, locale TEXT,
                 timezone TEXT, email_enabled INTEGER, whatsapp_enabled INTEGER, sms_enabled INTEGER, muted_kinds TEXT)",
        )
        .unwrap();
        crate::db::migrate(&mut conn).unwrap();
        assert!(clashes(&conn).unwrap().is_empty());
        let conn = crate::db::conn::Conn::sqlite(conn);
        assert!(check_for(&conn, "send-reminders").is_ok());
    }

    #[test]
    fn a_table_named_in_other_case_is_the_same_table() {
        #[allow(clippy::disallowed_methods, reason = "a scratch database for the test")]
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE CONTACTS (ID INTEGER, name TEXT, email TEXT, phone TEXT, locale TEXT, timezone TEXT,
                 email_enabled INTEGER, whatsapp_enabled INTEGER, sms_enabled INTEGER, muted_kinds TEXT);
             INSERT INTO CONTACTS (ID, name) VALUES (1, 'Alice'), (1, 'Mallory');",
        )
        .unwrap();
        crate::db::migrate(&mut conn).unwrap();
        let conn = crate::db::conn::Conn::sqlite(conn);
        assert_eq!(unkeyed(&conn, &["contacts"]).unwrap(), ["contacts"]);
        let e = check_for(&conn, "send-reminders").unwrap_err();
        assert!(format!("{e:#}").contains("table contacts: id 1 is on 2 rows"), "{e:#}");
    }

    #[test]
    fn a_contract_table_made_as_a_view_or_without_a_key_on_id_is_checked_for_repeated_ids() {
        #[allow(clippy::disallowed_methods, reason = "a scratch database for the test")]
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE people (pk INTEGER PRIMARY KEY, name TEXT, email TEXT);
             INSERT INTO people VALUES (1, 'Awa', 'awa@example.com'), (2, 'Bob', 'bob@example.com');
             CREATE VIEW contacts AS SELECT pk AS id, name, email, NULL AS phone, NULL AS locale, NULL AS timezone,
                 1 AS email_enabled, 0 AS whatsapp_enabled, 0 AS sms_enabled, '' AS muted_kinds FROM people;
             CREATE TABLE terminals (id INTEGER, serial TEXT, name TEXT, timezone TEXT);
             INSERT INTO terminals VALUES (1, 'TM-A', 'A', NULL), (2, 'TM-B', 'B', NULL);",
        )
        .unwrap();
        crate::db::migrate(&mut conn).unwrap();
        let conn = crate::db::conn::Conn::sqlite(conn);
        assert_eq!(
            unkeyed(&conn, &["contacts", "terminals", "tickets", "students"]).unwrap(),
            ["contacts", "terminals"],
            "rappel's own tables are keyed"
        );
        // Unique ids: the jobs run.
        assert!(check_for(&conn, "send-reminders").is_ok());
        assert!(check_for(&conn, "sync-attendance").is_ok());
        conn.execute_batch(
            "DROP VIEW contacts;
             CREATE VIEW contacts AS SELECT pk AS id, name, email, NULL AS phone, NULL AS locale, NULL AS timezone,
                 1 AS email_enabled, 0 AS whatsapp_enabled, 0 AS sms_enabled, '' AS muted_kinds FROM people
                 UNION ALL SELECT 1, 'Mallory', 'mallory@example.com', NULL, NULL, NULL, 1, 0, 0, '';
             INSERT INTO terminals VALUES (2, 'TM-C', 'C', NULL);",
        )
        .unwrap();
        let e = check_for(&conn, "send-reminders").unwrap_err();
        assert_eq!(crate::exit::of_error(&e), crate::exit::Exit::Config, "{e:#}");
        assert!(
            format!("{e:#}").contains("table contacts: id 1 is on 2 rows; ids must be unique"),
            "{e:#}"
        );
        let e = check_for(&conn, "sync-attendance").unwrap_err();
        assert!(format!("{e:#}").contains("table terminals: id 2 is on 2 rows"), "{e:#}");
        assert!(check_for(&conn, "send-reports").is_ok(), "a job that reads neither");
        assert_eq!(
            repeated_ids(&conn).unwrap(),
            [
                "table contacts: id 1 is on 2 rows; ids must be unique (it is a view, or a table without a unique key \
                 on id): the jobs that read it stop",
                "table terminals: id 2 is on 2 rows; ids must be unique (it is a view, or a table without a unique \
                 key on id): the jobs that read it stop"
            ]
        );
    }
}
