//! sync-attendance: for each HR service, pull its users, then push the due
//! punches of its terminals in batches, each batch's outcome committed before
//! the next request. `attendance_logs` is its own ledger (no `rappel_deliveries`).

pub mod batch;
pub mod users;

use std::io::Write;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::channels::SendError;
use crate::channels::http::{HrApi, Refused};
use crate::clock::Clock;
use crate::config::ServiceConfig;
use crate::domain::tally::Tally;
use crate::engine::backoff;
use crate::exit::Exit;
use crate::store::attendance::due::{self, Cursor, Due};
use crate::store::attendance::ledger::{self, Claimed, Outcome};
use crate::store::attendance::{Rows, Terminal};
use crate::store::{self, Conn};
use batch::Verdict;

pub const JOB: crate::domain::Job = crate::domain::Job::SyncAttendance;

/// At most this many rejected logs are named one by one per batch.
const NAMED_PER_BATCH: usize = 5;

/// What every service's sync needs besides its own configuration.
pub struct Sync {
    pub clock: Clock,
    pub max_attempts: u32,
    pub retry_base: Duration,
    pub retry_cap: Duration,
    pub lease: Duration,
    pub force: bool,
    /// When the run began, so that a wait an answer asks for counts from the
    /// answer, not from the run's `now`.
    pub started: Instant,
    /// `naive_timezone`: where a punch written without an offset is read
    /// when its terminal has no `timezone`.
    pub naive_zone: chrono_tz::Tz,
    /// Where the punches' sync columns are read (`Rows::of`).
    pub rows: Rows,
}

impl Sync {
    /// The run's `now`, moved on by the time the run has taken so far.
    fn at(&self) -> DateTime<Utc> {
        self.clock.now() + chrono::Duration::from_std(self.started.elapsed()).unwrap_or_default()
    }

    /// Which of `service`'s logs may go now, from its `terminals`.
    fn due<'a>(&self, service: &'a ServiceConfig, terminals: &[Terminal]) -> Due<'a> {
        Due {
            rows: self.rows,
            service: &service.name,
            terminals: terminals.iter().map(|t| t.id).collect(),
            now: self.clock.now(),
            wall: self.clock.wall(),
            max_attempts: self.max_attempts,
            force: self.force,
            batch_size: service.batch_size,
            naive: self.naive_zone,
        }
    }
}

/// Each service's terminals (in the order of `services`): the serials it
/// names, or for the one service naming none, every terminal no other names.
/// Also the serials named that no terminal has.
pub fn terminals(conn: &Conn, services: &[ServiceConfig]) -> store::Result<(Vec<Vec<Terminal>>, Vec<String>)> {
    let all = store::attendance::terminals(conn)?;
    let named = |serial: &str| services.iter().any(|s| s.terminals.iter().any(|t| t == serial));
    let per_service = services
        .iter()
        .map(|s| {
            all.iter()
                .filter(|t| {
                    if s.terminals.is_empty() {
                        !named(&t.serial)
                    } else {
                        s.terminals.contains(&t.serial)
                    }
                })
                .cloned()
                .collect()
        })
        .collect();
    let unknown = services
        .iter()
        .flat_map(|s| &s.terminals)
        .filter(|serial| !all.iter().any(|t| &t.serial == *serial))
        .cloned()
        .collect();
    Ok((per_service, unknown))
}

/// Pulls the service's users, then pushes its due logs until none is left, a
/// temporary failure says to wait, or its credentials are refused.
pub fn sync_service(
    conn: &mut Conn,
    s: &Sync,
    service: &ServiceConfig,
    terminals: &[Terminal],
    api: &HrApi,
    tally: &mut Tally,
) -> anyhow::Result<()> {
    let name = &service.name;
    let now = s.clock.now();
    match api.users(now) {
        Ok(None) => {}
        Ok(Some(body)) => match users::parse(&body) {
            Ok((list, skipped)) => {
                for why in &skipped {
                    log::warn!("{name}: {why}");
                }
                if !skipped.is_empty() {
                    tally.raise(Exit::DataErr);
                }
                let ids: Vec<i64> = terminals.iter().map(|t| t.id).collect();
                store::attendance::users::record_pull(conn, name, &list, &ids, now)?;
                log::info!("{name}: {} user(s) pulled", list.len());
            }
            Err(why) => {
                log::error!("{name}: users not updated: {why}");
                tally.raise(Exit::DataErr);
            }
        },
        Err(Refused {
            error: SendError::Credentials(why),
            ..
        }) => {
            log::error!("{name}: {why}; this service is skipped this run, its logs stay pending");
            tally.raise(Exit::Config);
            return Ok(());
        }
        Err(Refused { error, .. }) => {
            log::warn!("{name}: users not updated: {error}");
            tally.raise(
                if matches!(error, SendError::Temporary { .. } | SendError::Throttled { .. }) {
                    Exit::TempFail
                } else {
                    Exit::DataErr
                },
            );
        }
    }

    let due = s.due(service, terminals);
    let mut cursor = Cursor::default();
    loop {
        let lease_until = s.clock.wall() + chrono::Duration::from_std(s.lease).unwrap_or(chrono::Duration::MAX);
        let Some(claimed) = ledger::claim_batch(conn, &due, &mut cursor, lease_until, batch::idempotency_key)? else {
            break;
        };
        tally.counts.planned += (claimed.logs.len() + claimed.unreadable.len()) as u64;
        for (id, why) in &claimed.unreadable {
            log::warn!("{name}: log {id} cannot be sent: {why}");
            tally.counts.failed += 1;
            tally.raise(Exit::DataErr);
        }
        if claimed.logs.is_empty() {
            continue;
        }
        let items: Vec<&batch::Item> = claimed.logs.iter().filter_map(|l| l.item.as_ref().ok()).collect();
        let started = Instant::now();
        let answer = api.push(&claimed.key, &batch::body(&items), s.at());
        log::info!(
            "{name}: batch of {} ({}) answered in {} ms",
            items.len(),
            claimed.key,
            started.elapsed().as_millis()
        );
        let stop = match &answer {
            Ok(_) => false,
            Err(
                r @ Refused {
                    error: SendError::Permanent(_),
                    ..
                },
            ) => {
                if r.endpoint_wrong() {
                    log::error!(
                        "{name}: {} is not an endpoint that takes batches of {} (HTTP {}); \
                         no more batches to this service this run: check attendance_endpoint and batch_size",
                        api.destination(),
                        items.len(),
                        r.status.unwrap_or_default()
                    );
                }
                r.endpoint_wrong()
            }
            Err(_) => true,
        };
        let outcomes = outcomes(s, &claimed, answer.map_err(|r| r.error), s.at(), name, tally);
        let recorded = ledger::record_batch(conn, name, &claimed, &outcomes, now)?;
        if let Some(why) = &recorded.host_unwritten {
            log::error!(
                "{name}: batch {} was recorded, but the host's columns under [sources.attendance_logs.update] \
                 could not be updated: {why}",
                claimed.key
            );
            tally.raise(crate::exit::Exit::IoErr);
        }
        if recorded.stolen > 0 {
            log::warn!(
                "{name}: {} log(s) of batch {} were taken over by another run after this run's lease passed",
                recorded.stolen,
                claimed.key
            );
        }
        tally.counts.sent += recorded.sent;
        tally.counts.failed += recorded.failed;
        tally.counts.retrying += recorded.retrying;
        if stop {
            break;
        }
    }
    Ok(())
}

/// Each log's outcome from the answer to its batch; says what went wrong.
fn outcomes(
    s: &Sync,
    claimed: &Claimed,
    answer: Result<String, SendError>,
    now: DateTime<Utc>,
    name: &str,
    tally: &mut Tally,
) -> Vec<Outcome> {
    let n = claimed.logs.len();
    let attempts = claimed
        .logs
        .iter()
        .map(|l| l.attempts)
        .max()
        .unwrap_or(0)
        .saturating_add(1);
    let retry = |reason: &str, retry_after: Option<Duration>| {
        let wait = backoff::delay(attempts, s.retry_base, s.retry_cap, retry_after);
        Outcome::Retry {
            reason: reason.to_string(),
            next: backoff::next_at(now, wait),
            last: attempts >= s.max_attempts,
        }
    };
    match answer {
        Ok(body) => {
            let ids: Vec<i64> = claimed.logs.iter().map(|l| l.id).collect();
            let verdicts = batch::verdicts(&body, &ids);
            let mut named = 0;
            let mut unclear = 0;
            let outcomes: Vec<Outcome> = claimed
                .logs
                .iter()
                .zip(verdicts)
                .map(|(log, verdict)| match verdict {
                    Verdict::Sent => Outcome::Sent,
                    Verdict::Rejected(why) => {
                        named += 1;
                        if named <= NAMED_PER_BATCH {
                            log::warn!("{name}: log {}: {why}", log.id);
                        }
                        tally.raise(Exit::DataErr);
                        Outcome::Failed(why)
                    }
                    Verdict::Unclear(why) => {
                        unclear += 1;
                        tally.raise(Exit::TempFail);
                        retry(&why, None)
                    }
                })
                .collect();
            if named > NAMED_PER_BATCH {
                log::warn!(
                    "{name}: and {} more log(s) of batch {} rejected (see attendance_logs.sync_error)",
                    named - NAMED_PER_BATCH,
                    claimed.key
                );
            }
            if unclear > 0 {
                log::warn!(
                    "{name}: the answer to batch {} gave no clear result for {unclear} log(s); they will be posted again",
                    claimed.key
                );
            }
            outcomes
        }
        Err(SendError::Permanent(why)) => {
            log::warn!("{name}: batch of {n} log(s) refused for good: {why}");
            tally.raise(Exit::DataErr);
            (0..n).map(|_| Outcome::Failed(why.clone())).collect()
        }
        Err(SendError::Temporary { reason, retry_after } | SendError::Throttled { reason, retry_after }) => {
            let outcome = retry(&reason, retry_after);
            if let Outcome::Retry { next, last, .. } = &outcome {
                log::warn!(
                    "{name}: {reason}; {n} log(s) {}; no more batches to this service this run",
                    if *last {
                        format!("gave up after {attempts} attempts (--force tries again)")
                    } else {
                        format!("will be tried again from {}", crate::instant::format(*next))
                    }
                );
            }
            tally.raise(Exit::TempFail);
            vec![outcome; n]
        }
        Err(SendError::Credentials(why)) => {
            log::error!("{name}: {why}; this service stops for this run, its logs stay pending");
            tally.raise(Exit::Config);
            (0..n).map(|_| Outcome::Back).collect()
        }
    }
}

/// `--dry-run`: how many logs of each terminal would go in how many batches,
/// and the first batch as it would be posted. Reads only.
pub fn dry_run(
    conn: &Conn,
    s: &Sync,
    service: &ServiceConfig,
    terminals: &[Terminal],
    api: &HrApi,
    out: &mut impl Write,
) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let due = s.due(service, terminals);
    let mut cursor = Cursor::default();
    let mut per_terminal: Vec<(String, u64)> = Vec::new();
    let mut batches = 0u64;
    let mut first: Option<String> = None;
    let mut unreadable = Vec::new();
    loop {
        let reads = due::next_batch(conn, &due, &mut cursor)?;
        if reads.is_empty() {
            break;
        }
        let mut items = Vec::new();
        for read in &reads {
            match &read.item {
                Ok(item) => {
                    match per_terminal.iter_mut().find(|(serial, _)| *serial == item.terminal_sn) {
                        Some((_, n)) => *n += 1,
                        None => per_terminal.push((item.terminal_sn.clone(), 1)),
                    }
                    items.push(item);
                }
                Err(why) => unreadable.push(format!("log {}: {why}", read.id)),
            }
        }
        tally.counts.planned += reads.len() as u64;
        if items.is_empty() {
            continue;
        }
        batches += 1;
        if first.is_none() {
            let ids: Vec<i64> = items.iter().map(|i| i.log_id).collect();
            first = Some(format!(
                "    first batch, Idempotency-Key: {}\n{}",
                batch::idempotency_key(&service.name, &ids),
                batch::body_pretty(&items)
            ));
        }
    }
    let logs: u64 = per_terminal.iter().map(|(_, n)| n).sum();
    if logs == 0 {
        writeln!(out, "{}: nothing to push to {}", service.name, api.destination())?;
    } else {
        writeln!(
            out,
            "{}: would push {logs} log(s) in {batches} batch(es) of up to {} to {}",
            service.name,
            service.batch_size,
            api.destination()
        )?;
    }
    per_terminal.sort();
    for (serial, n) in &per_terminal {
        writeln!(out, "    {serial}: {n} log(s)")?;
    }
    if let Some(url) = api.users_url() {
        writeln!(out, "    would pull users from {url}")?;
    }
    for why in &unreadable {
        writeln!(out, "    would fail {why}")?;
        tally.counts.failed += 1;
        tally.raise(Exit::DataErr);
    }
    if let Some(first) = first {
        writeln!(out, "{first}")?;
    }
    Ok(tally)
}
