//! sync-attendance's ledger of punches: claiming a batch of due ones
//! (`sending` under a wall-clock lease, inside `BEGIN IMMEDIATE`), recording
//! each batch's outcome, expired claims given back, and the batches still
//! open for a retry (`rappel_attendance_batches`). Each write goes to
//! `attendance_logs`: a contract table's own columns, or, mapped onto the
//! host's table, its view's trigger, which writes `rappel_punch_state` and
//! the host columns named under `[sources.attendance_logs.update]`. Writes
//! say what they changed with `RETURNING` (SQLite counts no change made
//! through a view's trigger).

use chrono::{DateTime, Utc};

use super::Rows;
use super::due::{self, Cursor, Due, json_ids};
use super::punch::Read;
use super::unsent;
use crate::instant;
use crate::params;
use crate::store::{Conn, Dialect, Result, ToParam};

/// Claims whose lease passed (their run died) are given back, attempts and
/// retry time unchanged; they stay in their open batch, so they go out
/// together again. Takes where the ledger is and the run's wall clock
/// (UTC); returns how many logs were given back. Errors: `StoreError`
/// (SQLite's). PostgreSQL runs the same `UPDATE`.
pub fn reclaim_expired(conn: &Conn, rows: Rows, wall: DateTime<Utc>) -> Result<usize> {
    let given_back = conn.query_map(
        &format!(
            "UPDATE attendance_logs SET sync_status = {GIVEN_BACK}, sync_lease_until = NULL
         WHERE id IN (SELECT {id} FROM {from}
                      WHERE {unsent} AND k.sync_status = 'sending' AND k.sync_lease_until < ?1)
           AND sync_status = 'sending' AND sync_lease_until < ?1
         RETURNING id",
            id = rows.id(),
            from = rows.from(),
            unsent = unsent!(k),
        ),
        params![wall],
        |r| r.get::<i64>(0),
    )?;
    Ok(given_back.len())
}

/// A log given back untried returns to what it was: `failed` with its retry
/// time if it had one, else `pending`.
const GIVEN_BACK: &str = "CASE WHEN next_attempt_at IS NOT NULL THEN 'failed' ELSE 'pending' END";

/// A batch this run holds until `lease` (wall time).
#[derive(Debug)]
pub struct Claimed {
    pub key: String,
    /// The lease as written in `sync_lease_until`: the claim's mark, which
    /// `record_batch` requires still to be there.
    pub lease: String,
    /// The logs to post (each with a sound item).
    pub logs: Vec<Read>,
    /// Logs that cannot be sent as they are: failed for good, with the reason.
    pub unreadable: Vec<(i64, String)>,
}

/// Takes the next batch (`due::next_batch`) in one write transaction (`BEGIN
/// IMMEDIATE`): its logs become `sending` until `lease_until` (wall time,
/// UTC), its membership is remembered under its key, `key(due.service, ids)`
/// of its log ids, and rows that cannot be read fail for good with the
/// reason. `None`: nothing left. Errors: `StoreError` (SQLite's, the write
/// lock held past the busy timeout among them); nothing is written then.
/// PostgreSQL would select the batch `FOR UPDATE SKIP LOCKED` in one
/// transaction, then the same `UPDATE`s and `INSERT … ON CONFLICT (log_id)
/// DO UPDATE`.
pub fn claim_batch(
    conn: &mut Conn,
    due: &Due<'_>,
    cursor: &mut Cursor,
    lease_until: DateTime<Utc>,
    key: impl FnOnce(&str, &[i64]) -> String,
) -> Result<Option<Claimed>> {
    let tx = crate::store::begin(conn)?;
    let reads = due::next_batch(&tx, due, cursor)?;
    if reads.is_empty() {
        return Ok(None);
    }
    let lease = instant::format(lease_until);
    let mut logs = Vec::with_capacity(reads.len());
    let mut unreadable = Vec::new();
    for read in reads {
        match &read.item {
            Ok(_) => logs.push(read),
            Err(why) => unreadable.push((read.id, why.clone())),
        }
    }
    for (id, why) in &unreadable {
        tx.execute(
            "UPDATE attendance_logs SET sync_status = 'failed', next_attempt_at = NULL,
                    sync_lease_until = NULL, sync_error = ?2
             WHERE id = ?1",
            params![id, why],
        )?;
    }
    forget(&tx, &unreadable.iter().map(|(id, _)| *id).collect::<Vec<_>>())?;
    let ids: Vec<i64> = logs.iter().map(|l| l.id).collect();
    let key = key(due.service, &ids);
    // One statement for the batch: on a mapped source each statement
    // through its view costs SQLite a scratch table.
    tx.execute(
        &format!(
            "UPDATE attendance_logs SET sync_status = 'sending', sync_lease_until = ?2
             WHERE id IN ({})",
            crate::store::json_list(tx.dialect(), 1, "bigint")
        ),
        params![json_ids(&ids), lease],
    )?;
    // The batch's membership in one statement (each log one round trip
    // to a server otherwise).
    let members = ids_with_two(tx.dialect());
    tx.execute(
        &format!(
            "INSERT INTO rappel_attendance_batches (log_id, service, batch_key) {members}
             ON CONFLICT (log_id) DO UPDATE SET service = excluded.service, batch_key = excluded.batch_key"
        ),
        params![json_ids(&ids), due.service, key],
    )?;
    tx.commit()?;
    Ok(Some(Claimed {
        key,
        lease,
        logs,
        unreadable,
    }))
}

/// The rows `(id, ?2, ?3)` of an `INSERT … SELECT`, one per id of the JSON
/// array `?1`, ending so that `ON CONFLICT` may follow (SQLite needs a
/// `WHERE` there).
fn ids_with_two(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "SELECT value, ?2, ?3 FROM json_each(?1) WHERE true",
        Dialect::Postgres => {
            "SELECT CAST(value AS bigint), ?2, ?3 FROM json_array_elements_text(CAST(?1 AS json)) AS value"
        }
    }
}

/// Drops `ids` from their open batches (they ended), in one statement.
fn forget(tx: &Conn, ids: &[i64]) -> Result<()> {
    if !ids.is_empty() {
        tx.execute(
            &format!(
                "DELETE FROM rappel_attendance_batches WHERE log_id IN ({})",
                crate::store::json_list(tx.dialect(), 1, "bigint")
            ),
            params![json_ids(ids)],
        )?;
    }
    Ok(())
}

/// What became of one log of a posted batch.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Sent,
    /// Failed for good (`next_attempt_at` NULL).
    Failed(String),
    /// Tried again from `next` on; `last`: the attempts are used up
    /// (only `--force` tries again), counted failed.
    Retry {
        reason: String,
        next: DateTime<Utc>,
        last: bool,
    },
    /// Not tried after all (credentials refused): pending, attempts unchanged.
    Back,
}

/// How many logs of a batch ended each way; `stolen` were no longer this
/// run's (their lease passed and another run took them) and were left alone.
#[derive(Debug, Default)]
pub struct Recorded {
    pub sent: u64,
    pub failed: u64,
    pub retrying: u64,
    pub stolen: u64,
    /// A mapped source whose host row refused its update (a trigger, a
    /// lock past the timeout): why. The outcomes are in rappel's record
    /// all the same, so nothing is posted again.
    pub host_unwritten: Option<String>,
}

/// Where a batch's outcomes are written: the contract's `attendance_logs`
/// (a mapped source's view, whose trigger writes rappel's record and the
/// host's `update` columns), or rappel's record of a mapped source alone.
#[derive(Clone, Copy)]
enum Ledger {
    Logs,
    Record,
}

/// Records a posted batch's outcome, log by log (`outcomes` in the order of
/// `claimed.logs`; reasons masked; the logs of one outcome in one
/// statement), in one write transaction (`BEGIN
/// IMMEDIATE`), and the sync time `now` (UTC) of each terminal that had a
/// log sent for `service`. A log is written only while `claimed`'s lease is
/// still its own; returns how many ended each way. Errors: `StoreError`
/// (SQLite's); nothing is written then. PostgreSQL runs the same
/// conditional `UPDATE`s and `INSERT … ON CONFLICT (terminal_id, service)
/// DO UPDATE` in one transaction.
///
/// When the write through a mapped source fails for another reason than a
/// lock (a host trigger refusing the row, a column it may not take), the
/// outcomes go to rappel's record alone (`Recorded::host_unwritten` says
/// why): the batch was posted, and must not be posted again.
pub fn record_batch(
    conn: &mut Conn,
    service: &str,
    claimed: &Claimed,
    outcomes: &[Outcome],
    now: DateTime<Utc>,
) -> Result<Recorded> {
    match record_in(conn, Ledger::Logs, service, claimed, outcomes, now) {
        Err(e)
            if !e.is_busy()
                && !e.is_connection_lost()
                && crate::db::sources::mapped(conn)?.iter().any(|t| t == "attendance_logs") =>
        {
            let mut done = record_in(conn, Ledger::Record, service, claimed, outcomes, now)?;
            done.host_unwritten = Some(e.to_string());
            Ok(done)
        }
        done => done,
    }
}

fn record_in(
    conn: &mut Conn,
    ledger: Ledger,
    service: &str,
    claimed: &Claimed,
    outcomes: &[Outcome],
    now: DateTime<Utc>,
) -> Result<Recorded> {
    let tx = crate::store::begin(conn)?;
    let at = instant::format(now);
    let mut done = Recorded::default();
    let mut synced_terminals = Vec::new();
    let mut ended = Vec::new();
    // The logs of each outcome together: one statement each (most batches
    // have one outcome), as each through a mapped source's view costs
    // SQLite a scratch table.
    let mut groups: Vec<(&Outcome, Vec<&Read>)> = Vec::new();
    for (log, outcome) in claimed.logs.iter().zip(outcomes) {
        match groups.iter_mut().find(|(o, _)| *o == outcome) {
            Some((_, logs)) => logs.push(log),
            None => groups.push((outcome, vec![log])),
        }
    }
    for (outcome, logs) in groups {
        let ids = json_ids(&logs.iter().map(|l| l.id).collect::<Vec<_>>());
        let changed = match outcome {
            Outcome::Sent => mark(
                &tx,
                ledger,
                "sync_status = 'sent', synced_at = ?3, sync_error = NULL, next_attempt_at = NULL,
                 sync_lease_until = NULL, sync_attempts = sync_attempts + 1",
                params![ids, claimed.lease, at],
            )?,
            Outcome::Failed(why) => mark(
                &tx,
                ledger,
                "sync_status = 'failed', sync_error = ?3, next_attempt_at = NULL, sync_lease_until = NULL,
                 sync_attempts = sync_attempts + 1",
                params![ids, claimed.lease, crate::mask::mask_line(why)],
            )?,
            Outcome::Retry { reason, next, .. } => mark(
                &tx,
                ledger,
                "sync_status = 'failed', sync_error = ?3, next_attempt_at = ?4, sync_lease_until = NULL,
                 sync_attempts = sync_attempts + 1",
                params![ids, claimed.lease, crate::mask::mask_line(reason), next],
            )?,
            Outcome::Back => mark(
                &tx,
                ledger,
                &format!("sync_status = {GIVEN_BACK}, sync_lease_until = NULL"),
                params![ids, claimed.lease],
            )?,
        };
        for log in logs {
            if !changed.contains(&log.id) {
                done.stolen += 1;
                continue;
            }
            match outcome {
                Outcome::Sent => {
                    done.sent += 1;
                    ended.push(log.id);
                    if !synced_terminals.contains(&log.terminal_id) {
                        synced_terminals.push(log.terminal_id);
                    }
                }
                Outcome::Failed(_) => {
                    done.failed += 1;
                    ended.push(log.id);
                }
                Outcome::Retry { last: true, .. } => {
                    // Only --force sends it again, as a batch of its own run.
                    done.failed += 1;
                    ended.push(log.id);
                }
                Outcome::Retry { .. } => done.retrying += 1,
                Outcome::Back => {}
            }
        }
    }
    forget(&tx, &ended)?;
    if !synced_terminals.is_empty() {
        // One statement for the batch's terminals (one round trip each to
        // a server otherwise), in id order: two machines recording at once
        // lock the same rows in the same order.
        synced_terminals.sort_unstable();
        tx.execute(
            &format!(
                "INSERT INTO rappel_terminal_sync_state (terminal_id, service, last_attendance_sync) {}
                 ON CONFLICT (terminal_id, service) DO UPDATE SET last_attendance_sync = excluded.last_attendance_sync",
                ids_with_two(tx.dialect())
            ),
            params![json_ids(&synced_terminals), service, at],
        )?;
    }
    tx.commit()?;
    Ok(done)
}

/// Sets `set` on the logs `?1` (a JSON array of ids) that the claim `?2`
/// (its lease) still holds; returns those it set (read back with
/// `RETURNING`: a mapped source's trigger changes no row SQLite counts).
fn mark(tx: &Conn, ledger: Ledger, set: &str, params: &[&dyn ToParam]) -> Result<Vec<i64>> {
    let (table, id) = match ledger {
        Ledger::Logs => ("attendance_logs", "id"),
        Ledger::Record => ("rappel_punch_state", "log_id"),
    };
    tx.query_map(
        &format!(
            "UPDATE {table} SET {set}
             WHERE {id} IN ({}) AND sync_status = 'sending' AND sync_lease_until = ?2
             RETURNING {id}",
            crate::store::json_list(tx.dialect(), 1, "bigint")
        ),
        params,
        |r| r.get(0),
    )
}

/// Pending logs of one terminal no service takes.
#[derive(Debug, PartialEq)]
pub struct Unowned {
    /// The terminal's serial; `None` when no terminal has the id.
    pub serial: Option<String>,
    pub terminal_id: i64,
    pub pending: u64,
}

/// Pending logs of terminals outside `owned` (terminal ids), per serial, by
/// serial, from the ledger at `rows`. Reads only. Errors: `StoreError`
/// (SQLite's). In PostgreSQL the list is bound as `<> ALL($1::bigint[])`.
pub fn unowned_pending(conn: &Conn, rows: Rows, owned: &[i64]) -> Result<Vec<Unowned>> {
    let plus = if conn.dialect() == Dialect::Sqlite { "+" } else { "" };
    conn.query_map(
        &format!(
            "SELECT max(t.serial), l.terminal_id, count(*)
             FROM {} LEFT JOIN terminals t ON t.id = l.terminal_id
             WHERE {} AND k.sync_status = 'pending'
               AND {plus}l.terminal_id NOT IN ({})
             GROUP BY 2 ORDER BY 2",
            rows.from(),
            unsent!(k),
            crate::store::json_list(conn.dialect(), 1, "bigint")
        ),
        params![json_ids(owned)],
        |r| {
            Ok(Unowned {
                serial: crate::db::loose::text(r.cell(0)?),
                terminal_id: crate::db::loose::id(r.cell(1)?).unwrap_or_default(),
                pending: r.get::<i64>(2)?.unsigned_abs(),
            })
        },
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::db::Database;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// A batch's key: its service and ids, in order.
    fn key(service: &str, ids: &[i64]) -> String {
        format!("{service}-{ids:?}")
    }

    /// A fresh database with terminal 1 and `n` pending punches on it.
    fn database(dir: &std::path::Path, n: i64) -> Database {
        let db = Database::new(dir.join("r.db"), false).creating();
        let conn = db.connect_current().unwrap();
        conn.execute_batch(&format!(
            "INSERT INTO terminals (id, serial) VALUES (1, 'TM20-001');
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n})
             INSERT INTO attendance_logs (terminal_id, enroll_id, punched_at)
             SELECT 1, i, strftime('%Y-%m-%dT%H:%M:%SZ', '2026-03-09T07:00:00Z', i || ' minutes') FROM n;"
        ))
        .unwrap();
        db
    }

    fn due(now: &str, wall: &str) -> Due<'static> {
        Due {
            rows: Rows::Table,
            service: "rh",
            terminals: vec![1],
            now: at(now),
            wall: at(wall),
            max_attempts: 3,
            force: false,
            batch_size: 7,
            naive: chrono_tz::UTC,
        }
    }

    #[test]
    fn concurrent_claimers_never_share_a_log() {
        let dir = tempfile::tempdir().unwrap();
        let db = database(dir.path(), 200);
        let claimers: Vec<_> = (0..4)
            .map(|_| {
                let mut conn = db.connect().unwrap();
                std::thread::spawn(move || {
                    let due = due("2026-03-10T09:00:00Z", "2026-03-10T09:00:00Z");
                    let mut cursor = Cursor::default();
                    let mut mine = Vec::new();
                    while let Some(claimed) =
                        claim_batch(&mut conn, &due, &mut cursor, at("2026-03-10T09:10:00Z"), key).unwrap()
                    {
                        mine.extend(claimed.logs.iter().map(|l| l.id));
                        let sent = vec![Outcome::Sent; claimed.logs.len()];
                        let done = record_batch(&mut conn, "rh", &claimed, &sent, due.now).unwrap();
                        assert_eq!(done.sent as usize, claimed.logs.len());
                    }
                    mine
                })
            })
            .collect();
        let all: Vec<i64> = claimers.into_iter().flat_map(|c| c.join().unwrap()).collect();
        let distinct: HashSet<i64> = all.iter().copied().collect();
        assert_eq!(all.len(), distinct.len(), "a log was claimed twice");
        assert_eq!(distinct.len(), 200);
    }

    #[test]
    fn an_expired_claim_comes_back_as_the_same_batch() {
        let dir = tempfile::tempdir().unwrap();
        let db = database(dir.path(), 10);
        let mut conn = db.connect().unwrap();
        let first = due("2026-03-10T09:00:00Z", "2026-03-10T09:00:00Z");
        let held = claim_batch(
            &mut conn,
            &first,
            &mut Cursor::default(),
            at("2026-03-10T09:10:00Z"),
            key,
        )
        .unwrap()
        .unwrap();
        // Newer punches arrive; the claim's run dies.
        conn.execute_batch(
            "INSERT INTO attendance_logs (terminal_id, enroll_id, punched_at) VALUES (1, 99, '2026-03-09T06:00:00Z')",
        )
        .unwrap();
        let early = due("2026-03-10T09:05:00Z", "2026-03-10T09:05:00Z");
        assert_eq!(
            reclaim_expired(&conn, Rows::Table, early.wall).unwrap(),
            0,
            "the lease still holds"
        );
        let late = due("2026-03-10T09:05:00Z", "2026-03-10T09:11:00Z");
        assert_eq!(reclaim_expired(&conn, Rows::Table, late.wall).unwrap(), 7);
        let again = claim_batch(
            &mut conn,
            &late,
            &mut Cursor::default(),
            at("2026-03-10T09:21:00Z"),
            key,
        )
        .unwrap()
        .unwrap();
        assert_eq!(again.key, held.key, "the same logs, the same Idempotency-Key");
        let ids = |c: &Claimed| c.logs.iter().map(|l| l.id).collect::<Vec<_>>();
        assert_eq!(ids(&again), ids(&held));
        // Recording under the old lease changes nothing: the logs are the new claim's.
        let stale = record_batch(&mut conn, "rh", &held, &vec![Outcome::Sent; 7], late.now).unwrap();
        assert_eq!((stale.sent, stale.stolen), (0, 7));
    }

    #[test]
    fn a_failed_log_given_back_stays_failed_with_its_attempts() {
        let dir = tempfile::tempdir().unwrap();
        let db = database(dir.path(), 2);
        let mut conn = db.connect().unwrap();
        conn.execute_batch(
            "UPDATE attendance_logs SET sync_status = 'failed', sync_attempts = 3,
                    next_attempt_at = '2026-03-10T08:00:00Z' WHERE id = 1",
        )
        .unwrap();
        let mut forced = due("2026-03-10T09:00:00Z", "2026-03-10T09:00:00Z");
        forced.force = true;
        let held = claim_batch(
            &mut conn,
            &forced,
            &mut Cursor::default(),
            at("2026-03-10T09:10:00Z"),
            key,
        )
        .unwrap()
        .unwrap();
        assert_eq!(held.logs.len(), 2, "--force takes the used-up log too");
        assert_eq!(
            reclaim_expired(&conn, Rows::Table, at("2026-03-10T09:11:00Z")).unwrap(),
            2
        );
        let state = |id: i64| -> (String, i64) {
            conn.query_row(
                "SELECT sync_status, sync_attempts FROM attendance_logs WHERE id = ?1",
                crate::params![id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
        };
        assert_eq!(state(1), ("failed".into(), 3), "not pending: its attempts are used up");
        assert_eq!(state(2), ("pending".into(), 0));
        let plain = due("2026-03-10T09:12:00Z", "2026-03-10T09:12:00Z");
        let next = claim_batch(
            &mut conn,
            &plain,
            &mut Cursor::default(),
            at("2026-03-10T09:22:00Z"),
            key,
        )
        .unwrap()
        .unwrap();
        assert_eq!(next.logs.iter().map(|l| l.id).collect::<Vec<_>>(), vec![2]);
    }
}
