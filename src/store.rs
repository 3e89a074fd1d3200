//! The store: the SQL rappel runs on its own tables, one module per area,
//! behind functions named after the operation, taking and returning typed
//! values (`domain`'s enums, `DateTime<Utc>`).
//!
//! Every statement rappel runs is here (opening the file, migrations and the
//! schema checks are `db`). One module per area:
//!
//! - rappel's own tables: `claims` (due deliveries taken under a lease,
//!   expired leases returned, dry-run previews), `outcomes` (what became of
//!   a claimed delivery, written only while its lease is held), `deliveries`
//!   (planning's writes under a dedupe key, the log, one delivery whole,
//!   retry and cancel by hand), `runs` (`rappel_job_runs`), `stats` (the
//!   dashboard's figures), `purge`;
//! - check-delay-alerts: `tickets` (open tickets' stage events, alert
//!   recipients) and `alerts` (the alert history);
//! - send-reports: `reports` (`scheduled_reports` rows, their status
//!   following their deliveries, the next occurrence) and `reports::query`
//!   (a report definition's query, guarded);
//! - send-reminders: `reminders` (loans, sessions, students, manual
//!   reminders, each with its contact; the last look at a source row);
//! - sync-attendance: `attendance` (terminals, the punch ledger claimed in
//!   batches, users pulled from an HR service);
//! - `demo` (the sample data of `rappel demo`).
//!
//! Host columns are read as the host wrote them, through `db::loose`; what a
//! value means (a time zone, a date in the configured zone) is the job's.
//!
//! Every operation runs on SQLite and on PostgreSQL (`db::conn`), in the
//! same SQL but where the dialects differ:
//!
//! | operation | SQLite | PostgreSQL |
//! |---|---|---|
//! | claim due rows | `BEGIN IMMEDIATE`, one `UPDATE … WHERE id IN (SELECT … LIMIT n) RETURNING` | one `UPDATE … WHERE id IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED) RETURNING` |
//! | a list parameter (channels, ids) | `IN (SELECT value FROM json_each(?))` | `IN (SELECT json_array_elements_text(CAST(? AS json))::…)` (`json_list`), or for ids by an index `= ANY(ARRAY(SELECT …))` (`any_id`) |
//! | a job's lock | a lock file beside the database (`engine::lock`) | `pg_try_advisory_lock` on a session of its own (`db::postgres`) |
//! | instants | RFC 3339 text, UTC, `Z` (text order is time order) | the same |
//! | a punch's instant, for its walk | `julianday(…)` | `rappel_instant(…)` (PostgreSQL migration 9) |
//! | plan under a dedupe key | `INSERT … ON CONFLICT (dedupe_key) DO NOTHING`, then the last rowid | the same `… RETURNING id` |
//! | a write transaction (`begin`) | `BEGIN IMMEDIATE`: the write lock at once | `BEGIN`; rows locked as claimed or updated |
//! | the larger of two values (attempts given back, a report's attempts) | `max(a, b)` | `GREATEST(a, b)` |
//! | a report definition's query | a read-only authorizer, a length limit, a progress handler as time limit | a `READ ONLY` transaction, `SET LOCAL statement_timeout` |
//! | durations in the dashboard | `julianday(b) - julianday(a)` | `extract(epoch FROM b - a)` |
//!
//! Callers hold a connection (`Conn`) or a write transaction (`Tx`) as an
//! opaque handle and name no driver; errors at this boundary are
//! `StoreError`, which `exit::of_error` maps to exit 74 (78 for a right
//! PostgreSQL refuses the role).

pub mod alerts;
pub mod attendance;
pub mod claims;
pub mod deliveries;
pub mod demo;
pub mod metrics;
pub mod outcomes;
pub mod purge;
pub mod reminders;
pub mod reports;
pub mod runs;
pub mod sources;
pub mod stats;
pub mod tickets;

pub use crate::db::error::{Result, StoreError, is_store_error};

pub use crate::db::conn::{Conn, Dialect, Row, Tx};
pub use crate::db::value::{Cell, FromCell, Param, ToParam};

/// Opens a write transaction that takes the database's write lock at once
/// (`BEGIN IMMEDIATE`; in PostgreSQL a plain `BEGIN`, rows being locked as
/// they are claimed), so two runs never both read then write. Errors: the
/// lock still held by another writer past the busy timeout.
pub fn begin(conn: &mut Conn) -> Result<Tx<'_>> {
    let sql = match conn.dialect() {
        Dialect::Sqlite => "BEGIN IMMEDIATE",
        Dialect::Postgres => "BEGIN",
    };
    Tx::start(conn, sql)
}

/// Opens a transaction that takes no lock until it writes (`BEGIN
/// DEFERRED`; in PostgreSQL `BEGIN ISOLATION LEVEL REPEATABLE READ`): its
/// reads see one state of the database. A preview that writes nothing uses
/// it, so it never waits for a running send. Errors: `StoreError`.
pub fn begin_read(conn: &mut Conn) -> Result<Tx<'_>> {
    let sql = match conn.dialect() {
        Dialect::Sqlite => "BEGIN DEFERRED",
        Dialect::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ",
    };
    Tx::start(conn, sql)
}

/// A subquery giving the elements of the JSON array bound as `?n`, each as
/// `cast` (`bigint`, `text`): SQLite's `json_each`, PostgreSQL's
/// `json_array_elements_text`. For `column IN (…)` with a list parameter.
fn json_list(dialect: Dialect, n: usize, cast: &str) -> String {
    match dialect {
        Dialect::Sqlite => format!("SELECT value FROM json_each(?{n})"),
        Dialect::Postgres => format!("SELECT json_array_elements_text(CAST(?{n} AS json))::{cast}"),
    }
}

/// A condition on a column: one of the elements of the JSON array of ids
/// bound as `?n` (`{column} {any_id(…)}`). On SQLite, `IN (json_each)`. On
/// PostgreSQL, `= ANY(ARRAY(…))`: the planner takes it for a few ids and
/// walks the column's index, where for `IN (…)` it guesses 100 and may read
/// the whole table (2 ms for a look at 32 digests in a log of 10,000, where
/// the index takes 0.2).
fn any_id(dialect: Dialect, n: usize) -> String {
    match dialect {
        Dialect::Sqlite => format!("IN (SELECT value FROM json_each(?{n}))"),
        Dialect::Postgres => format!("= ANY(ARRAY(SELECT json_array_elements_text(CAST(?{n} AS json))::bigint))"),
    }
}
