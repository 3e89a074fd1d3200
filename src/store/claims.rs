//! Claiming: expired leases go back to pending, and due rows are taken with one
//! `UPDATE ... RETURNING` inside `BEGIN IMMEDIATE`, never a SELECT then UPDATE,
//! so two processes never hold the same row.

use super::{Conn, Dialect, Result, Row};
use crate::params;
use chrono::{DateTime, Duration as ChronoDuration, Utc};

use crate::domain::Channel;
use crate::instant;

/// A delivery row this process holds until `lease_until` (wall time).
#[derive(Debug)]
pub struct Claimed {
    pub id: i64,
    pub job: crate::domain::Job,
    pub kind: String,
    pub dedupe_key: String,
    pub source_table: Option<String>,
    pub source_id: Option<i64>,
    /// The source row's identifying instant, as stored (`db::identity`).
    pub source_at: Option<String>,
    pub contact_id: Option<i64>,
    /// The delivery it replaces on another channel (channel fallback).
    pub replaces_id: Option<i64>,
    pub channel: Channel,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub html: Option<String>,
    pub attempts: u32,
    /// Not sent after this instant (UTC); `None` when it has no end (or the
    /// stored value does not parse, as before: it is then sent).
    pub valid_until: Option<DateTime<Utc>>,
    pub lease_until: DateTime<Utc>,
    /// A file to attach, as planned.
    pub attachment: Option<crate::domain::planned::AttachmentSpec>,
    pub payload: Option<String>,
}

/// Which rows a run may take.
#[derive(Clone, Debug)]
pub struct Scope {
    /// `None`: every job's rows (`rappel deliver`).
    pub job: Option<crate::domain::Job>,
    /// Ignore `next_attempt_at` (and, before claiming, `max_attempts`).
    pub force: bool,
}

/// Returns rows whose lease has passed to `pending`, keeping `attempts`.
pub fn reclaim_expired(conn: &Conn, wall: DateTime<Utc>) -> Result<usize> {
    conn.execute(
        "UPDATE rappel_deliveries SET status = 'pending', claimed_by = NULL, lease_until = NULL,
                last_error = 'lease expired'
         WHERE status = 'sending' AND lease_until < ?1",
        params![wall],
    )
}

/// `--force`: temporarily failed rows (attempts exhausted) get one more try.
/// Returns the sources of the rows re-armed, so their status can follow.
/// Each source is `(table, id, source_at)`.
pub fn rearm_exhausted(conn: &Conn, scope: &Scope) -> Result<Vec<(String, i64, Option<String>)>> {
    let rows = conn.query_map(
        "UPDATE rappel_deliveries SET status = 'pending', next_attempt_at = NULL
         WHERE status = 'failed' AND error_class = 'temporary' AND (?1 IS NULL OR job = ?1)
         RETURNING source_table, source_id, source_at",
        params![scope.job],
        |r| {
            Ok((
                r.get::<Option<String>>(0)?,
                r.get::<Option<i64>>(1)?,
                r.get::<Option<String>>(2)?,
            ))
        },
    )?;
    let mut sources = Vec::new();
    for row in rows {
        if let (Some(table), Some(id), at) = row {
            sources.push((table, id, at));
        }
    }
    sources.sort();
    sources.dedup();
    Ok(sources)
}

/// What a run may claim: its id, scope and usable channels.
pub struct Claimer<'a> {
    pub run_id: &'a str,
    pub scope: &'a Scope,
    pub channels: &'a [Channel],
    pub now: DateTime<Utc>,
    pub lease: std::time::Duration,
    /// Only rows whose id is above this one (0: from the first): the run's
    /// claims go on from where the last one ended, rather than walk again
    /// past every row they already took (on PostgreSQL, index entries of
    /// rows no longer pending stay until VACUUM, and each claim would read
    /// them all; on SQLite this is a seek on the same index).
    pub after: i64,
}

/// A due row read without claiming it (dry runs).
#[derive(Debug)]
pub struct Pending {
    pub job: crate::domain::Job,
    pub kind: crate::domain::Kind,
    pub channel: Channel,
    pub recipient: String,
    pub subject: String,
    pub attempts: u32,
    pub contact_id: Option<i64>,
}

/// The claim on SQLite: one `UPDATE … RETURNING` in `BEGIN IMMEDIATE`.
const CLAIM_SQLITE: &str = "UPDATE rappel_deliveries
             SET status = 'sending', attempts = attempts + 1, claimed_by = ?1, lease_until = ?2
             WHERE id IN (
                 SELECT id FROM rappel_deliveries
                 WHERE status = 'pending'
                   AND (CASE WHEN ?3
                        -- --force: one more try now, but only one per run: a row this
                        -- run already tried waits for its backoff like any other.
                        THEN claimed_by IS NOT ?1
                        ELSE next_attempt_at IS NULL OR next_attempt_at <= ?4 END)
                   -- `+job`: the rows are walked in id order on rappel_deliveries_pending
                   -- and the walk stops at the limit; an index on job would have
                   -- every pending row of the jobs read and sorted at each claim.
                   AND (?5 IS NULL OR +job = ?5)
                   AND channel IN (SELECT value FROM json_each(?6))
                   -- A row only a hand could have written (no job rappel knows) stays put.
                   AND +job IN ('check-delay-alerts', 'send-reports', 'send-reminders', 'sync-attendance',
                               'test-email')
                   AND id > ?8
                 ORDER BY id
                 LIMIT ?7)
             RETURNING id, job, kind, dedupe_key, source_table, source_id, channel, recipient,
                       subject, body, html_body, attempts, valid_until,
                       attachment_path, attachment_name, attachment_type, payload, source_at, contact_id, replaces_id";

/// The claim on PostgreSQL: one statement, the rows to take locked with
/// `FOR UPDATE SKIP LOCKED`, so two machines claiming at once each take
/// rows the other did not, neither waiting for the other.
///
/// The ids (and the channels) are read once into an array (`ARRAY(...)`,
/// an init plan): the rows locked are exactly the rows updated, whatever
/// join the planner would pick for `IN (SELECT ...)`, and the statement
/// plans in 0.17 ms rather than 0.28 (planned again at each claim, its
/// limit and ids being parameters).
const CLAIM_POSTGRES: &str = "UPDATE rappel_deliveries
     SET status = 'sending', attempts = attempts + 1, claimed_by = $1, lease_until = $2
     WHERE id = ANY (ARRAY(
         SELECT id FROM rappel_deliveries
         WHERE status = 'pending'
           AND (CASE WHEN $3::boolean
                THEN claimed_by IS DISTINCT FROM $1
                ELSE next_attempt_at IS NULL OR next_attempt_at <= $4 END)
           AND ($5::text IS NULL OR job = $5)
           AND channel = ANY (ARRAY(SELECT json_array_elements_text($6::json)))
           AND job IN ('check-delay-alerts', 'send-reports', 'send-reminders', 'sync-attendance',
                       'test-email')
           AND id > $8
         ORDER BY id
         LIMIT $7
         FOR UPDATE SKIP LOCKED))
     RETURNING id, job, kind, dedupe_key, source_table, source_id, channel, recipient,
               subject, body, html_body, attempts, valid_until,
               attachment_path, attachment_name, attachment_type, payload, source_at, contact_id, replaces_id";

/// Due rows below which statistics are not checked: a few claims cost
/// little whatever their plan.
const STATISTICS_FROM: i64 = 256;

/// On PostgreSQL, analyzes `rappel_deliveries` when the planner's estimate of
/// its pending rows is off by more than half from `due` (the pending rows a
/// run just counted, when at least `STATISTICS_FROM`); returns whether it did.
/// Nothing on SQLite, whose plans do not depend on statistics rappel keeps.
///
/// Why: a claim takes the first rows in id order. With statistics from
/// before a large planning (autovacuum analyzes a minute or more later),
/// the planner believes a handful of rows are pending, reads every pending
/// row and sorts them at each claim; 10,000 due messages then cost 300
/// claims of 10 to 30 ms each instead of under 1 ms. ANALYZE reads a
/// sample (30,000 rows by default), not the table, and only the columns a
/// claim's plan depends on.
///
/// Errors: the statements' (`StoreError`); a role that may not analyze the
/// table gets a warning from the server and no error.
pub fn fresh_statistics(conn: &Conn, due: i64) -> Result<bool> {
    if conn.dialect() != Dialect::Postgres || due < STATISTICS_FROM {
        return Ok(false);
    }
    let plan: String = conn.query_row(
        "EXPLAIN (FORMAT JSON) SELECT id FROM rappel_deliveries WHERE status = 'pending'",
        params![],
        |r| r.get(0),
    )?;
    let estimate = serde_json::from_str::<serde_json::Value>(&plan)
        .ok()
        .and_then(|v| v.pointer("/0/Plan/Plan Rows").and_then(serde_json::Value::as_f64))
        .unwrap_or(0.0);
    #[allow(clippy::cast_precision_loss, reason = "a row count, compared by halves")]
    let due = due as f64;
    if estimate >= due / 2.0 && estimate <= due * 2.0 {
        return Ok(false);
    }
    log::debug!("the server estimates {estimate} pending deliveries for {due}: analyzing rappel_deliveries");
    // The columns a claim filters and orders on alone: the bodies' statistics
    // cost the most to gather (52 ms of 60 over 10,000 digests, against 17)
    // and no claim reads them. A sample of 3,000 rows (a statistics target
    // of 10) rather than 30,000: the share of pending rows and the order
    // of ids it gives choose the same plan, in 7 ms rather than 20 to 26
    // over 10,000 digests. Autovacuum's own analyze gathers them all later.
    conn.execute_batch(
        "SET default_statistics_target = 10;
         ANALYZE rappel_deliveries (id, status, next_attempt_at, job, channel, claimed_by);
         RESET default_statistics_target",
    )?;
    Ok(true)
}

/// Takes up to `limit` due rows on the claimer's channels, leased from `wall`.
pub fn claim(conn: &mut Conn, c: &Claimer<'_>, wall: DateTime<Utc>, limit: usize) -> Result<Vec<Claimed>> {
    let (run_id, scope, channels, now, lease, after) = (c.run_id, c.scope, c.channels, c.now, c.lease, c.after);
    let lease_until = lease_end(wall, lease);
    let channels_json = serde_json::to_string(channels).unwrap_or_else(|_| "[]".into());
    let values = params![
        run_id,
        lease_until,
        scope.force,
        now,
        scope.job,
        channels_json,
        limit,
        after
    ];
    let read = |r: &Row<'_>| claimed(r, lease_until);
    let mut rows = match conn.dialect() {
        Dialect::Sqlite => {
            let tx = super::begin(conn)?;
            let rows = tx.query_map(CLAIM_SQLITE, values, read)?;
            tx.commit()?;
            rows
        }
        Dialect::Postgres => conn.query_map(CLAIM_POSTGRES, values, read)?,
    };
    rows.sort_by_key(|c| c.id);
    Ok(rows)
}

/// When a lease of `lease` taken at `wall` ends (wall time).
pub fn lease_end(wall: DateTime<Utc>, lease: std::time::Duration) -> DateTime<Utc> {
    wall + ChronoDuration::from_std(lease).unwrap_or(ChronoDuration::minutes(10))
}

/// Extends to `until` (wall time) the lease of those of `ids` that run
/// `run_id` still holds (`claimed_by` is its and `status` still `sending`),
/// and returns their ids: a row missing from them went back to `pending`
/// when its lease passed, and another run may hold it now, so it must not be
/// sent. One statement; on SQLite outside any transaction but its own.
///
/// Why: a claim leases its rows for `[delivery] lease_s` from the claim, and
/// a row late in it could start its send with less lease left than its
/// exchange may take; the send's deadline (the lease less a second) then
/// cut the exchange after the message's end had gone, its outcome unknown,
/// and it was sent again (DESIGN §5: nothing sent twice).
///
/// Errors: the statement's (`StoreError`).
pub fn renew(conn: &Conn, run_id: &str, ids: &[i64], until: DateTime<Utc>) -> Result<Vec<i64>> {
    let sql = match conn.dialect() {
        Dialect::Sqlite => {
            "UPDATE rappel_deliveries SET lease_until = ?3
             WHERE id IN (SELECT value FROM json_each(?1)) AND claimed_by = ?2 AND status = 'sending'
             RETURNING id"
        }
        Dialect::Postgres => {
            "UPDATE rappel_deliveries SET lease_until = $3
             WHERE id IN (SELECT json_array_elements_text($1::json)::bigint)
               AND claimed_by = $2 AND status = 'sending'
             RETURNING id"
        }
    };
    let list = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
    let mut renewed = conn.query_map(sql, params![list, run_id, until], |r| r.get::<i64>(0))?;
    renewed.sort_unstable();
    Ok(renewed)
}

/// One claimed row, as the claim returns it.
fn claimed(r: &Row<'_>, lease_until: DateTime<Utc>) -> Result<Claimed> {
    Ok(Claimed {
        id: r.get(0)?,
        job: r.get(1)?,
        kind: r.get(2)?,
        dedupe_key: r.get(3)?,
        source_table: r.get(4)?,
        source_id: r.get(5)?,
        channel: r.get(6)?,
        recipient: r.get(7)?,
        subject: r.get(8)?,
        body: r.get(9)?,
        html: r.get(10)?,
        attempts: r.get(11)?,
        valid_until: r.get::<Option<String>>(12)?.as_deref().and_then(instant::parse),
        lease_until,
        attachment: match (r.get(13)?, r.get(14)?, r.get(15)?) {
            (Some(path), Some(name), Some(mime)) => Some(crate::domain::planned::AttachmentSpec { path, name, mime }),
            _ => None,
        },
        payload: r.get(16)?,
        source_at: r.get(17)?,
        contact_id: r.get(18)?,
        replaces_id: r.get(19)?,
    })
}

/// Due pending rows by channel (with `--force`, every pending row).
pub fn due_by_channel(conn: &Conn, scope: &Scope, now: DateTime<Utc>) -> Result<Vec<(String, i64)>> {
    conn.query_map(
        "SELECT channel, count(*) FROM rappel_deliveries
         WHERE status = 'pending' AND (?1 OR next_attempt_at IS NULL OR next_attempt_at <= ?2)
           AND (?3 IS NULL OR job = ?3)
         GROUP BY channel",
        params![scope.force, now, scope.job],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// Due pending rows, read without claiming (dry runs).
pub fn preview(conn: &Conn, scope: &Scope, now: DateTime<Utc>) -> Result<Vec<Pending>> {
    let rows = conn.query_map(
        "SELECT kind, channel, recipient, subject, attempts, job, contact_id FROM rappel_deliveries
         WHERE (status = 'pending' AND (?1 OR next_attempt_at IS NULL OR next_attempt_at <= ?2)
                OR (?1 AND status = 'failed' AND error_class = 'temporary'))
           AND (?3 IS NULL OR job = ?3)
         ORDER BY id",
        params![scope.force, now, scope.job],
        |r| {
            Ok((
                r.get::<String>(0)?,
                r.get::<String>(1)?,
                r.get::<String>(2)?,
                r.get::<String>(3)?,
                r.get::<u32>(4)?,
                r.get::<String>(5)?,
                r.get::<Option<i64>>(6)?,
            ))
        },
    )?;
    let mut due = Vec::new();
    for (kind, channel, recipient, subject, attempts, job, contact_id) in rows {
        // A row written by hand on a channel or job rappel does not know is
        // never claimed; the run says so (`Engine::deliver`).
        let (Ok(channel), Ok(job), Ok(kind)) = (channel.parse(), job.parse(), kind.parse()) else {
            continue;
        };
        due.push(Pending {
            job,
            kind,
            channel,
            recipient,
            subject,
            attempts,
            contact_id,
        });
    }
    Ok(due)
}

/// A pending delivery as `rappel upcoming` lists it.
#[derive(Debug)]
pub struct Waiting {
    pub job: crate::domain::Job,
    pub kind: String,
    pub channel: Channel,
    pub recipient: String,
    pub subject: String,
    /// Its next try (UTC); `None`: due now.
    pub next: Option<DateTime<Utc>>,
    pub contact_id: Option<i64>,
    /// A run held it for quiet hours or its kind's send window (`next` is
    /// the end of the hold).
    pub held: bool,
}

/// Pending deliveries due now or at a next try at or before `until`, by id.
/// A row on a channel or job rappel does not know is left out: it is never
/// claimed, so never sent (a run says why). Errors: SQLite's.
pub fn waiting(conn: &Conn, until: DateTime<Utc>) -> Result<Vec<Waiting>> {
    let rows = conn.query_map(
        "SELECT job, kind, channel, recipient, subject, next_attempt_at, contact_id,
                coalesce(substr(last_error, 1, 5) = 'held:', FALSE) FROM rappel_deliveries
         WHERE status = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= ?1) ORDER BY id",
        params![until],
        |r| {
            Ok((
                r.get::<String>(0)?,
                r.get::<String>(1)?,
                r.get::<String>(2)?,
                r.get::<String>(3)?,
                r.get::<String>(4)?,
                r.get::<Option<String>>(5)?,
                r.get::<Option<i64>>(6)?,
                r.get::<bool>(7)?,
            ))
        },
    )?;
    let mut out = Vec::new();
    for (job, kind, channel, recipient, subject, next, contact_id, held) in rows {
        let (Ok(channel), Ok(job)) = (channel.parse(), job.parse()) else {
            continue;
        };
        out.push(Waiting {
            job,
            kind,
            channel,
            recipient,
            subject,
            next: next.as_deref().and_then(instant::parse),
            contact_id,
            held,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch database with `n` pending emails due at 09:00 (ids 1 to
    /// `n`), every job's scope, and 09:00.
    fn queue(n: i64) -> (Conn, Scope, DateTime<Utc>) {
        #[allow(clippy::disallowed_methods, reason = "a scratch database for the test")]
        let mut lite = rusqlite::Connection::open_in_memory().unwrap();
        crate::db::migrate(&mut lite).unwrap();
        for i in 1..=n {
            lite.execute(
                "INSERT INTO rappel_deliveries (job, kind, dedupe_key, channel, recipient, created_at)
                 VALUES ('send-reminders', 'manual', ?1, 'email', 'a@example.com', '2026-03-01T08:00:00Z')",
                [format!("k{i}")],
            )
            .unwrap();
        }
        let scope = Scope {
            job: None,
            force: false,
        };
        let now = DateTime::parse_from_rfc3339("2026-03-01T09:00:00Z").unwrap().to_utc();
        (Conn::sqlite(lite), scope, now)
    }

    /// A claim takes the due rows above `after`, in id order; from 0, the
    /// first ones again.
    #[test]
    fn a_claim_goes_on_above_the_last_one() {
        let (mut conn, scope, now) = queue(5);
        let claimer = |after| Claimer {
            run_id: "run",
            scope: &scope,
            channels: &[Channel::Email],
            now,
            lease: std::time::Duration::from_secs(600),
            after,
        };
        let ids = |rows: Vec<Claimed>| rows.into_iter().map(|c| c.id).collect::<Vec<_>>();
        assert_eq!(ids(claim(&mut conn, &claimer(2), now, 2).unwrap()), [3, 4]);
        assert_eq!(ids(claim(&mut conn, &claimer(4), now, 8).unwrap()), [5]);
        assert!(claim(&mut conn, &claimer(5), now, 8).unwrap().is_empty());
        assert_eq!(ids(claim(&mut conn, &claimer(0), now, 8).unwrap()), [1, 2]);
    }

    /// A renewal extends only the rows the run still holds.
    #[test]
    fn a_renewal_extends_only_what_the_run_still_holds() {
        let (mut conn, scope, now) = queue(4);
        let claimer = Claimer {
            run_id: "run",
            scope: &scope,
            channels: &[Channel::Email],
            now,
            lease: std::time::Duration::from_secs(10),
            after: 0,
        };
        assert_eq!(claim(&mut conn, &claimer, now, 8).unwrap().len(), 4);
        // Row 2's lease passed and another run took it; row 3 was sent.
        conn.execute(
            "UPDATE rappel_deliveries SET claimed_by = 'other' WHERE id = 2",
            params![],
        )
        .unwrap();
        conn.execute("UPDATE rappel_deliveries SET status = 'sent' WHERE id = 3", params![])
            .unwrap();
        let later = now + ChronoDuration::seconds(30);
        assert_eq!(renew(&conn, "run", &[1, 2, 3, 4], later).unwrap(), [1, 4]);
        let leases: Vec<Option<String>> = conn
            .query_map(
                "SELECT lease_until FROM rappel_deliveries ORDER BY id",
                params![],
                |r| r.get(0),
            )
            .unwrap();
        let stored = |s: &Option<String>| s.as_deref().and_then(instant::parse);
        assert_eq!(stored(&leases[0]), Some(later));
        assert_eq!(
            stored(&leases[1]),
            Some(now + ChronoDuration::seconds(10)),
            "another run's row"
        );
        assert_eq!(stored(&leases[3]), Some(later));
    }

    /// The claim's literal list of jobs is every job rappel knows.
    #[test]
    fn the_claim_names_every_job() {
        let sql = include_str!("claims.rs");
        let list = sql
            .split("AND +job IN (")
            .nth(1)
            .and_then(|s| s.split(')').next())
            .unwrap_or("");
        let named: Vec<&str> = list.split(',').map(|j| j.trim().trim_matches('\'')).collect();
        assert_eq!(named, crate::domain::Job::ALL.map(crate::domain::Job::as_str));
    }
}
