//! send-reminders' reads of the host's tables (`loans`, `revision_sessions`,
//! `students`, `manual_reminders`, each joined to its `contacts` row), the
//! short write transactions its messages are planned in, the engine's last
//! look at a source row, and `manual_reminders.sent_at`.
//!
//! Host columns are of loose types (`db::loose`): texts and ids are read as
//! written, booleans with their default. Host instants are handed over as
//! written: the planners parse them in the zone that applies (`naive_timezone`,
//! the contact's for a date-only due date) and name the raw value when it does
//! not parse. In PostgreSQL the host's columns are typed, and the same reads
//! are the same `SELECT`s, `unixepoch(x)` being `extract(epoch FROM x)`.

use super::{Cell, Conn, Dialect, Param, Result, Row, ToParam, Tx};
use crate::params;
use chrono::{DateTime, Duration, Utc};

use crate::db::loose;
use crate::instant;

/// A read prepared on a connection, its rows taken one at a time: the
/// planners write messages as they read, so memory stays flat however many
/// rows there are.
///
/// On PostgreSQL the read is a cursor `WITH HOLD` (the server keeps its
/// result, which the planners' own statements on the connection leave
/// open) fetched `FETCH` rows at a time.
pub struct Rows<'c, T> {
    conn: &'c Conn,
    sql: String,
    params: Vec<Param<'static>>,
    read: fn(&Row<'_>) -> Result<T>,
    stmt: Option<rusqlite::CachedStatement<'c>>,
}

impl<'c, T> Rows<'c, T> {
    /// The read `sql` with `params` on `conn`, each row through `read`.
    fn new(conn: &'c Conn, sql: String, params: Vec<Param<'static>>, read: fn(&Row<'_>) -> Result<T>) -> Result<Self> {
        let stmt = match conn.lite() {
            Ok(lite) => Some(lite.prepare_cached(&sql)?),
            Err(_) => None,
        };
        Ok(Rows {
            conn,
            sql,
            params,
            read,
            stmt,
        })
    }

    /// Runs the read: each item is one row, or the error reading it
    /// (`StoreError`). Errors: the statement's.
    pub fn iter(&mut self) -> Result<Box<dyn Iterator<Item = Result<T>> + '_>> {
        let read = self.read;
        match &mut self.stmt {
            Some(stmt) => {
                let rows = stmt.query(rusqlite::params_from_iter(self.params.iter()))?;
                Ok(Box::new(rows.and_then(move |r| read(&Row::Sqlite(r)))))
            }
            None => {
                static CURSORS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                let name = format!(
                    "rappel_rows_{}",
                    CURSORS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                );
                let params: Vec<&dyn ToParam> = self.params.iter().map(|p| p as &dyn ToParam).collect();
                self.conn.execute(
                    &format!("DECLARE {name} NO SCROLL CURSOR WITH HOLD FOR {}", self.sql),
                    &params,
                )?;
                Ok(Box::new(Fetched {
                    conn: self.conn,
                    fetch: format!("FETCH FORWARD {FETCH} FROM {name}"),
                    name,
                    read,
                    buffer: std::collections::VecDeque::new(),
                    done: false,
                }))
            }
        }
    }
}

/// Rows a PostgreSQL cursor gives at a time.
const FETCH: usize = 1_000;

/// A PostgreSQL cursor's rows, `FETCH` at a time; closed when dropped.
struct Fetched<'c, T> {
    conn: &'c Conn,
    name: String,
    fetch: String,
    read: fn(&Row<'_>) -> Result<T>,
    buffer: std::collections::VecDeque<Result<T>>,
    done: bool,
}

impl<T> Iterator for Fetched<'_, T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        if self.buffer.is_empty() && !self.done {
            let read = self.read;
            match self.conn.query_map(&self.fetch, &[], |r| Ok(read(r))) {
                Ok(rows) => {
                    self.done = rows.len() < FETCH;
                    self.buffer.extend(rows);
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        self.buffer.pop_front()
    }
}

impl<T> Drop for Fetched<'_, T> {
    fn drop(&mut self) {
        // A session that failed keeps the cursor until it ends.
        let _ = self.conn.execute_batch(&format!("CLOSE {}", self.name));
    }
}

/// A host's boolean column: 0/1, or text such as "true"; NULL is `default`.
fn flag(v: Cell<'_>, default: bool) -> bool {
    loose::flag(v).unwrap_or(default)
}

/// Whether a host column holds something: not NULL, not blank.
fn filled(v: Cell<'_>) -> bool {
    loose::text(v).is_some_and(|v| !v.trim().is_empty())
}

/// The condition (on `column`, the table's id, parameter `?n`) that narrows
/// a read to row `only`, and its parameter; none when `only` is `None`.
fn narrowed(column: &str, n: usize, only: Option<i64>, params: &mut Vec<Param<'static>>) -> String {
    match only {
        Some(id) => {
            params.push(Param::Int(id));
            format!(" AND {column} = ?{n}")
        }
        None => String::new(),
    }
}

/// The contact a reminder goes to, as the host wrote it.
#[derive(Debug)]
pub struct ContactRow {
    /// `None` when the row's link matches no contact.
    pub id: Option<i64>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub locale: Option<String>,
    /// An IANA zone name, as written.
    pub timezone: Option<String>,
    /// On unless the host says otherwise (NULL or unreadable: on).
    pub email_enabled: bool,
    /// Off unless the host says otherwise.
    pub whatsapp_enabled: bool,
    /// Off unless the host says otherwise.
    pub sms_enabled: bool,
    /// The kinds the contact muted, comma-separated, as written.
    pub muted_kinds: Option<String>,
}

/// The contact in columns `at..at + 10` (id, name, email, phone, locale,
/// timezone, email_enabled, whatsapp_enabled, sms_enabled, muted_kinds).
fn contact_at(row: &Row<'_>, at: usize) -> Result<ContactRow> {
    Ok(ContactRow {
        id: row.get(at)?,
        name: loose::text(row.cell(at + 1)?),
        email: loose::text(row.cell(at + 2)?),
        phone: loose::text(row.cell(at + 3)?),
        locale: loose::text(row.cell(at + 4)?),
        timezone: loose::text(row.cell(at + 5)?),
        email_enabled: flag(row.cell(at + 6)?, true),
        whatsapp_enabled: flag(row.cell(at + 7)?, false),
        sms_enabled: flag(row.cell(at + 8)?, false),
        muted_kinds: loose::text(row.cell(at + 9)?),
    })
}

/// A loan with its borrower; instants as written.
#[derive(Debug)]
pub struct LoanRow {
    pub id: i64,
    pub item: Option<String>,
    pub term: Option<String>,
    pub lent_at: Option<String>,
    pub due_at: Option<String>,
    pub returned_at: Option<String>,
    pub contact: ContactRow,
}

/// The loans that may still have a reminder, in id order: those returned
/// after `returned_after`, and those not returned and due after
/// `due_after` (UTC), plus any whose instant is not one (to be reported);
/// only row `only` when given. Errors: the statement's (`StoreError`).
pub fn loans(
    conn: &Conn,
    returned_after: DateTime<Utc>,
    due_after: DateTime<Utc>,
    only: Option<i64>,
) -> Result<Rows<'_, LoanRow>> {
    let mut params = vec![
        Param::Int(returned_after.timestamp()),
        Param::Int(due_after.timestamp()),
    ];
    let only = narrowed("l.id", 3, only, &mut params);
    // SQLite's prefilter on the instants as written (NULL where a value is
    // not one); PostgreSQL reads every loan, the planner judging each.
    let window = match conn.dialect() {
        Dialect::Sqlite => {
            "(l.returned_at IS NOT NULL AND (unixepoch(l.returned_at) IS NULL OR unixepoch(l.returned_at) > ?1)
                OR l.returned_at IS NULL AND (unixepoch(l.due_at) IS NULL OR unixepoch(l.due_at) > ?2))"
        }
        Dialect::Postgres => "(CAST(?1 AS bigint) IS NOT NULL AND CAST(?2 AS bigint) IS NOT NULL)",
    };
    let sql = format!(
        "SELECT l.id, l.item, l.term, l.lent_at, l.due_at, l.returned_at, c.id, c.name, c.email, c.phone,
                c.locale, c.timezone, c.email_enabled, c.whatsapp_enabled, c.sms_enabled, c.muted_kinds
         FROM loans l LEFT JOIN contacts c ON c.id = l.contact_id
         WHERE {window}{only}
         ORDER BY l.id"
    );
    Rows::new(conn, sql, params, |r| {
        Ok(LoanRow {
            id: r.get(0)?,
            item: loose::text(r.cell(1)?),
            term: loose::text(r.cell(2)?),
            lent_at: loose::text(r.cell(3)?),
            due_at: loose::text(r.cell(4)?),
            returned_at: loose::text(r.cell(5)?),
            contact: contact_at(r, 6)?,
        })
    })
}

/// A revision session with its student's contact; `starts_at` as written.
#[derive(Debug)]
pub struct SessionRow {
    pub id: i64,
    pub subject: Option<String>,
    pub starts_at: Option<String>,
    pub objective: Option<String>,
    pub link: Option<String>,
    pub cancelled: bool,
    /// `completed_at` is set.
    pub completed: bool,
    pub contact: ContactRow,
}

/// Start times that do not begin with a date (the text prefilter cannot find
/// them; they are read to be reported).
fn not_a_date(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "starts_at NOT GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*'",
        Dialect::Postgres => "starts_at !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}'",
    }
}

/// Bounds `[lo, hi)` for a text prefilter on instants a host wrote: every
/// accepted form begins with its date in its own offset (UTC-12 to UTC+14).
fn date_bounds(from: DateTime<Utc>, to: DateTime<Utc>) -> (String, String) {
    let day = |t: DateTime<Utc>| t.date_naive().format("%Y-%m-%d").to_string();
    (
        day(from - Duration::hours(12)),
        day(to + Duration::hours(14) + Duration::days(1)),
    )
}

/// The sessions that may start between `from` and `to` (UTC), found by date
/// through the index, so with a margin the caller compares as instants; and
/// every session whose start is not a date (to be reported). Only row `only`
/// when given. Errors: the statement's (`StoreError`). In PostgreSQL, with
/// `starts_at` a `timestamptz`, the same read is `starts_at > $1 AND
/// starts_at <= $2`.
pub fn sessions(
    conn: &Conn,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    only: Option<i64>,
) -> Result<Rows<'_, SessionRow>> {
    let (lo, hi) = date_bounds(from, to);
    let mut params = vec![Param::Text(lo.into()), Param::Text(hi.into())];
    let only = narrowed("r.id", 3, only, &mut params);
    let not_a_date = not_a_date(conn.dialect());
    let columns = "r.id, r.subject, r.starts_at, r.objective, r.link, r.cancelled, r.completed_at,
                   c.id, c.name, c.email, c.phone, c.locale, c.timezone, c.email_enabled, c.whatsapp_enabled,
                   c.sms_enabled, c.muted_kinds
                   FROM revision_sessions r LEFT JOIN students s ON s.id = r.student_id
                   LEFT JOIN contacts c ON c.id = s.contact_id";
    // The window's ids found through the start index, then their rows read
    // in id order: one pass over the table's pages, not a page per session.
    let sql = format!(
        "SELECT {columns} WHERE r.id IN (SELECT id FROM revision_sessions WHERE starts_at >= ?1 AND starts_at < ?2){only}
         UNION ALL SELECT {columns} WHERE r.{not_a_date}{only}"
    );
    Rows::new(conn, sql, params, |r| {
        Ok(SessionRow {
            id: r.get(0)?,
            subject: loose::text(r.cell(1)?),
            starts_at: loose::text(r.cell(2)?),
            objective: loose::text(r.cell(3)?),
            link: loose::text(r.cell(4)?),
            cancelled: flag(r.cell(5)?, false),
            completed: filled(r.cell(6)?),
            contact: contact_at(r, 7)?,
        })
    })
}

/// A student with their contact; instants as written.
#[derive(Debug)]
pub struct StudentRow {
    pub id: i64,
    /// On unless the host says otherwise.
    pub subscription_active: bool,
    pub subscribed_at: Option<String>,
    pub last_active_at: Option<String>,
    pub contact: ContactRow,
}

/// Every student, in id order (only row `only` when given). Errors: the
/// statement's (`StoreError`).
pub fn students(conn: &Conn, only: Option<i64>) -> Result<Rows<'_, StudentRow>> {
    let mut params = Vec::new();
    let only = narrowed("s.id", 1, only, &mut params);
    let sql = format!(
        "SELECT s.id, s.subscription_active, s.subscribed_at, s.last_active_at,
                c.id, c.name, c.email, c.phone, c.locale, c.timezone, c.email_enabled, c.whatsapp_enabled,
                c.sms_enabled, c.muted_kinds
         FROM students s LEFT JOIN contacts c ON c.id = s.contact_id
         WHERE TRUE{only}
         ORDER BY s.id"
    );
    Rows::new(conn, sql, params, |r| {
        Ok(StudentRow {
            id: r.get(0)?,
            subscription_active: flag(r.cell(1)?, true),
            subscribed_at: loose::text(r.cell(2)?),
            last_active_at: loose::text(r.cell(3)?),
            contact: contact_at(r, 4)?,
        })
    })
}

/// A session as a weekly digest lists it; `starts_at` as written.
#[derive(Debug)]
pub struct DigestSession {
    /// `None` when the host's value is not an id.
    pub student_id: Option<i64>,
    pub subject: Option<String>,
    pub starts_at: Option<String>,
    pub objective: Option<String>,
    pub link: Option<String>,
    pub cancelled: bool,
    /// `completed_at` is set.
    pub completed: bool,
}

/// The index on `revision_sessions (student_id, starts_at)` that
/// `db::host::ensure_indexes` creates.
const SESSIONS_BY_STUDENT: &str = "rappel_revision_sessions_student";

/// The sessions that may start between `from` and `to` (UTC), of the
/// students `first..=last` (ids) when `students` is given, in student order, then start as written,
/// then id; found by date with a margin, so the caller compares as instants
/// (start times that are not dates are left out: `sessions` reports them).
/// Errors: the statement's (`StoreError`).
///
/// Read in the order of the `(student_id, starts_at)` index, the dates
/// compared on its entries: a fortnight of a range of students' sessions
/// comes without being sorted first. Give `students` only with that index
/// ([`by_student`]): the range is then a seek on it, and the table's
/// integer affinity makes every id comparable. Without it (a database
/// migrated before the index existed, or a host's view whose ids may be
/// text) the read goes through the `starts_at` index and is sorted.
pub fn digest_sessions(
    conn: &Conn,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    students: Option<(i64, i64)>,
) -> Result<Rows<'_, DigestSession>> {
    let (lo, hi) = date_bounds(from, to);
    let mut params = vec![Param::Text(lo.into()), Param::Text(hi.into())];
    let (indexed, range) = match students {
        Some((first, last)) => {
            params.extend([Param::Int(first), Param::Int(last)]);
            (
                format!(" INDEXED BY {SESSIONS_BY_STUDENT}"),
                "student_id >= ?3 AND student_id <= ?4 AND ",
            )
        }
        None => (String::new(), ""),
    };
    let sql = format!(
        "SELECT student_id, subject, starts_at, objective, link, cancelled, completed_at
         FROM revision_sessions{indexed}
         WHERE {range}starts_at >= ?1 AND starts_at < ?2
         ORDER BY student_id, starts_at, id"
    );
    Rows::new(conn, sql, params, |r| {
        Ok(DigestSession {
            student_id: loose::id(r.cell(0)?),
            subject: loose::text(r.cell(1)?),
            starts_at: loose::text(r.cell(2)?),
            objective: loose::text(r.cell(3)?),
            link: loose::text(r.cell(4)?),
            cancelled: flag(r.cell(5)?, false),
            completed: filled(r.cell(6)?),
        })
    })
}

/// Whether `revision_sessions` has the `(student_id, starts_at)` index that
/// [`digest_sessions`] reads by (SQLite; on PostgreSQL the planner chooses
/// its index itself, and this is `false`). Errors: the statement's.
pub fn by_student(conn: &Conn) -> Result<bool> {
    Ok(conn.dialect() == Dialect::Sqlite
        && conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master
                            WHERE type = 'index' AND name = ?1 AND tbl_name = 'revision_sessions')
                    AND NOT EXISTS (SELECT 1 FROM sqlite_temp_master WHERE name = 'revision_sessions')",
            params![SESSIONS_BY_STUDENT],
            |r| r.get(0),
        )?)
}

/// A manual reminder with its author and its student's contact;
/// `created_at` as written.
#[derive(Debug)]
pub struct ManualRow {
    pub id: i64,
    pub message: Option<String>,
    pub created_at: Option<String>,
    pub author_contact_id: Option<i64>,
    /// The student's parent (`students.parent_contact_id`).
    pub parent_contact_id: Option<i64>,
    /// The author's name, when the author is a contact.
    pub author_name: Option<String>,
    pub contact: ContactRow,
}

/// Which manual reminders already sent `manual_reminders` reads too.
#[derive(Debug, Clone, Copy)]
pub enum AlsoSent {
    /// None: the unsent ones only.
    No,
    /// Those sent at or after this instant (UTC): their next channel may
    /// still be due (channel fallback).
    Since(DateTime<Utc>),
    /// Every one (a probe: one sent on a channel still goes on the others).
    All,
}

/// The manual reminders not sent yet, and those `also` names, in id order;
/// only row `only` when given. Errors: the statement's (`StoreError`).
pub fn manual_reminders(conn: &Conn, also: AlsoSent, only: Option<i64>) -> Result<Rows<'_, ManualRow>> {
    let mut params = Vec::new();
    let unsent = match also {
        AlsoSent::No => "m.sent_at IS NULL".to_string(),
        AlsoSent::All => "TRUE".to_string(),
        AlsoSent::Since(t) => {
            params.push(Param::Text(crate::instant::format(t).into()));
            "(m.sent_at IS NULL OR m.sent_at >= ?1)".to_string()
        }
    };
    let only = narrowed("m.id", params.len() + 1, only, &mut params);
    let sql = format!(
        "SELECT m.id, m.message, m.created_at, m.author_contact_id, s.parent_contact_id, a.name,
                c.id, c.name, c.email, c.phone, c.locale, c.timezone, c.email_enabled, c.whatsapp_enabled,
                c.sms_enabled, c.muted_kinds
         FROM manual_reminders m LEFT JOIN students s ON s.id = m.student_id LEFT JOIN contacts c ON c.id = s.contact_id
              LEFT JOIN contacts a ON a.id = m.author_contact_id
         WHERE {unsent}{only}
         ORDER BY m.id"
    );
    Rows::new(conn, sql, params, |r| {
        Ok(ManualRow {
            id: r.get(0)?,
            message: loose::text(r.cell(1)?),
            created_at: loose::text(r.cell(2)?),
            author_contact_id: loose::id(r.cell(3)?),
            parent_contact_id: loose::id(r.cell(4)?),
            author_name: loose::text(r.cell(5)?),
            contact: contact_at(r, 6)?,
        })
    })
}

/// Contact `id`; `None` when there is none. Errors: the statement's
/// (`StoreError`).
pub fn contact(conn: &Conn, id: i64) -> Result<Option<ContactRow>> {
    conn.query_opt(
        "SELECT id, name, email, phone, locale, timezone, email_enabled, whatsapp_enabled, sms_enabled, muted_kinds
         FROM contacts WHERE id = ?1",
        params![id],
        |r| contact_at(r, 0),
    )
}

/// The identifying instant of source row `id` of `table` as it is now
/// (`db::identity`): `None` when the row is gone, `Some(None)` when its
/// instant is empty or does not parse. Errors: the statement's
/// (`StoreError`).
pub fn source_instant(conn: &Conn, table: &str, id: i64) -> Result<Option<Option<DateTime<Utc>>>> {
    crate::db::identity::instant_of(conn, table, id)
}

/// Whether loan `id` was returned (`returned_at` is set); `None` when there
/// is no such loan. Errors: the statement's (`StoreError`).
pub fn loan_returned(conn: &Conn, id: i64) -> Result<Option<bool>> {
    conn.query_opt("SELECT returned_at FROM loans WHERE id = ?1", params![id], |r| {
        Ok(filled(r.cell(0)?))
    })
}

/// Whether a session was cancelled or completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionState {
    pub cancelled: bool,
    /// `completed_at` is set.
    pub completed: bool,
}

/// Session `id`'s state; `None` when there is no such session. Errors: the
/// statement's (`StoreError`).
pub fn session_state(conn: &Conn, id: i64) -> Result<Option<SessionState>> {
    conn.query_opt(
        "SELECT cancelled, completed_at FROM revision_sessions WHERE id = ?1",
        params![id],
        |r| {
            Ok(SessionState {
                cancelled: flag(r.cell(0)?, false),
                completed: filled(r.cell(1)?),
            })
        },
    )
}

/// Whether student `id`'s subscription is active (NULL or unreadable:
/// active); `None` when there is no such student. Errors: the statement's
/// (`StoreError`).
pub fn subscription_active(conn: &Conn, id: i64) -> Result<Option<bool>> {
    conn.query_opt(
        "SELECT subscription_active FROM students WHERE id = ?1",
        params![id],
        |r| Ok(flag(r.cell(0)?, true)),
    )
}

/// Opens a batch of planned messages on `conn`: a write transaction that
/// takes the write lock at once (`BEGIN IMMEDIATE`), so the host's writes
/// wait at most one batch; `commit_batch` ends it. The planner holds the
/// connection shared while it reads through another, so it opens and commits
/// by statement rather than holding a `Tx`. In PostgreSQL, `BEGIN` on the
/// writer's session. Errors: the lock still held by another writer past the
/// busy timeout (`StoreError`).
pub fn open_batch(conn: &Conn) -> Result<()> {
    conn.execute_batch(match conn.dialect() {
        Dialect::Sqlite => "BEGIN IMMEDIATE",
        Dialect::Postgres => "BEGIN",
    })
}

/// Commits the batch `open_batch` opened. Errors: `StoreError`.
pub fn commit_batch(conn: &Conn) -> Result<()> {
    conn.execute_batch("COMMIT")
}

/// Sets `manual_reminders.sent_at` of row `id` to `now` (UTC) once one of
/// its messages was sent, in the transaction that recorded it; only when
/// the row is still the one the message was made for (`source_at`, as the
/// delivery stored it), not a new one under its id. Errors: `StoreError`.
pub fn set_manual_sent(tx: &Tx<'_>, id: i64, source_at: Option<&str>, now: DateTime<Utc>) -> Result<()> {
    // Only the row the message was made for, not a new one under its id.
    let current = source_instant(tx, "manual_reminders", id)?
        .flatten()
        .map(instant::format);
    let Some(at) = source_at.filter(|at| current.as_deref() == Some(*at)) else {
        return Ok(());
    };
    super::deliveries::mark_manual_sent(tx, id, at, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_booleans_in_their_usual_spellings() {
        for yes in [&b"1"[..], b"TRUE", b"True", b" yes ", b"on", b"t"] {
            assert!(
                flag(Cell::from(rusqlite::types::ValueRef::Text(yes)), false),
                "{:?}",
                String::from_utf8_lossy(yes)
            );
        }
        for no in [&b"0"[..], b"FALSE", b"No", b"off", b""] {
            assert!(
                !flag(Cell::from(rusqlite::types::ValueRef::Text(no)), true),
                "{:?}",
                String::from_utf8_lossy(no)
            );
        }
        assert!(flag(Cell::Int(2), false));
        assert!(flag(Cell::Real(1.0), false));
        assert!(!flag(Cell::Int(0), true));
        assert!(flag(Cell::Null, true) && !flag(Cell::Null, false));
        assert!(flag(Cell::Text("maybe".into()), true), "unknown text keeps the default");
    }

    fn utc(s: &str) -> DateTime<Utc> {
        instant::parse(s).unwrap()
    }

    #[test]
    fn the_date_prefilter_keeps_every_offset() {
        let (from, to) = (utc("2026-03-10T05:00:00Z"), utc("2026-03-12T20:00:00Z"));
        let (lo, hi) = date_bounds(from, to);
        // Just after `from` written at UTC-12, just before `to` at UTC+14.
        for written in ["2026-03-09T17:01:00-12:00", "2026-03-13 10:00:00+14:00"] {
            assert!(
                written >= lo.as_str() && written < hi.as_str(),
                "{written} in [{lo}, {hi})"
            );
        }
    }
}
