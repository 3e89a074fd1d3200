//! The delivery engine: the one place that sends. Jobs plan rows into
//! `rappel_deliveries`; the engine claims due rows, sends each through its channel,
//! records each outcome right after the send, and retries with backoff.

pub mod backoff;
pub mod lock;
pub mod recheck;
pub mod record;
pub mod sessions;
pub mod writer;

use crate::domain::Channel;
use crate::quiet::Hold;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Duration as ChronoDuration, Utc};

use crate::channels::{Channels, Outgoing, OutgoingAttachment, SendError};
use crate::clock::Clock;
use crate::config::DeliveryConfig;
use crate::db::Database;
use crate::domain::tally::Tally;
use crate::exit::Exit;
use crate::store;
use crate::store::claims::{self as claim, Claimed, Scope};
use recheck::{Looks, Recheck, Verdict};
use record::{Decided, Effect, Recorder, SourceHook};
use sessions::Sessions;
use writer::{Queue, WriteLock, Writer};

/// Rows one worker claims at a time: a claim is one write transaction, so
/// a long queue is taken in bites of up to `claim_batch`; a short one in
/// bites of `CLAIM_MIN`, as it always was (a few large digests then go one
/// after the other on one worker, not all at once, each held in memory).
const CLAIM_BATCH: usize = 32;
const CLAIM_MIN: usize = 8;

/// The largest claim on a PostgreSQL server: a claim there is a statement
/// the server plans and commits, and the claim's rows are looked at in as
/// many statements again (`recheck::Looks`), each costing the server a
/// few hundred microseconds whatever its rows. 10,000 digests over 8
/// connections went at 11,700 messages a second in claims of 32, 13,250 in
/// claims of 128 (`bench/run.sh postgres_send`); SQLite, whose statements
/// cost no round trip, gained as much from larger claims as the server
/// did and keeps `CLAIM_BATCH`.
const CLAIM_BATCH_SERVER: usize = 128;

/// The largest claim on `dialect`.
fn claim_batch(dialect: store::Dialect) -> usize {
    match dialect {
        store::Dialect::Sqlite => CLAIM_BATCH,
        store::Dialect::Postgres => CLAIM_BATCH_SERVER,
    }
}

/// Rows per claim when `due` rows are to go over `workers`: an even share,
/// from `CLAIM_MIN` to `batch` (`claim_batch`).
///
/// Under `delivery.rate_per_s` (`rate`, 0 for none), a claim holds no more
/// than the workers can send in half a `lease` at that rate, so its last
/// rows are not given back for want of lease, each after taking a slot.
fn claim_size(due: i64, workers: usize, batch: usize, rate: f64, lease: Duration) -> usize {
    let share = due / i64::try_from(workers.max(1)).unwrap_or(1);
    let size = usize::try_from(share).unwrap_or(batch).clamp(CLAIM_MIN, batch);
    if rate > 0.0 {
        let in_half_a_lease = rate * lease.as_secs_f64() / 2.0 / workers.max(1) as f64;
        // A float to an integer saturates; below 1 is at least 1.
        size.min((in_half_a_lease as usize).max(1))
    } else {
        size
    }
}

pub struct Engine<'a> {
    pub db: &'a Database,
    pub clock: Clock,
    pub delivery: &'a DeliveryConfig,
    pub channels: &'a Channels,
    pub hooks: &'a [&'a dyn SourceHook],
    /// Each job's last look at a message's source before it goes.
    pub rechecks: &'a [&'a dyn Recheck],
    pub run_id: String,
    /// The configured zone (`timezone`): quiet hours for a recipient who is
    /// not a contact with a zone of their own.
    pub zone: chrono_tz::Tz,
}

/// Consecutive temporary failures of a transport after which the run stops
/// using it (a server down, or answering 5xx to everything): the messages
/// left wait, their attempts not spent.
const FAILURES_BEFORE_PAUSE: u32 = 3;

/// State the workers of one run share.
struct Shared {
    /// Transports whose credentials were rejected this run ("email", "twilio").
    stopped: Mutex<Vec<&'static str>>,
    /// Transports that asked the run to wait (a 429, or repeated temporary
    /// failures): until when (the run's clock), and why.
    paused: Mutex<Vec<(&'static str, DateTime<Utc>, String)>>,
    /// Consecutive temporary failures per transport.
    streak: Mutex<Vec<(&'static str, u32)>>,
    rate: RateLimiter,
    /// Held around each write transaction of this run (`WriteLock`).
    writes: WriteLock,
    /// Raised by the writer once an outcome could not be written: nothing
    /// more is sent this run, and claimed rows are given back.
    writer_failed: AtomicBool,
    /// The highest id this run claimed: the next claims start above it
    /// (`claim::Claimer::after`).
    claimed_up_to: AtomicI64,
}

impl Engine<'_> {
    /// Sends every due row in `scope`, with as many workers as the channels
    /// allow; `conn` (the run's connection) takes the run's first steps,
    /// then writes the outcomes (`Writer::run`) while the workers send, on
    /// sessions of their own they share (`sessions::limit`).
    pub fn deliver(&self, scope: &Scope, conn: &mut store::Conn) -> anyhow::Result<Tally> {
        let mut tally = Tally::default();
        let reclaimed = claim::reclaim_expired(conn, self.clock.wall())?;
        if reclaimed > 0 {
            log::warn!("{reclaimed} message(s) whose sender stopped mid-send are pending again");
        }
        if scope.force {
            // One transaction: the re-armed rows and their sources' status change together.
            let tx = store::begin(conn)?;
            for (table, id, at) in claim::rearm_exhausted(&tx, scope)? {
                if let Some(hook) = self.hooks.iter().find(|h| h.table() == table) {
                    let outcome = record::Outcome {
                        delivery_id: None,
                        source_id: id,
                        source_at: at.as_deref(),
                    };
                    hook.after_outcome(&tx, &outcome, self.clock.now())?;
                }
            }
            tx.commit()?;
        }
        let channels = self.channels.configured();
        let mut sendable = 0;
        for (channel, count) in claim::due_by_channel(conn, scope, self.clock.now())? {
            // Stored as text: a row a host wrote by hand may name no channel rappel knows.
            let known = channel.parse::<Channel>();
            if known.as_ref().is_ok_and(|c| channels.contains(c)) {
                sendable += count;
            } else {
                match known.as_ref().map(|c| self.channels.why_unavailable(*c)) {
                    Ok(Some(why)) => log::error!("{count} {channel} message(s) are due and wait: {why}"),
                    Ok(None) => {
                        log::error!("{count} {channel} message(s) are due but no {channel} transport is configured")
                    }
                    Err(why) => log::error!("{count} message(s) are due on a channel rappel does not know: {why}"),
                }
                tally.raise(Exit::Config);
            }
        }
        // A large queue planned since the server last looked at the table
        // would have every claim sort it (`fresh_statistics`).
        claim::fresh_statistics(conn, sendable)?;
        if sendable == 0 {
            // Nothing to send: no workers, no connections (a run every minute
            // with nothing due stays cheap).
            return Ok(tally);
        }

        let shared = Shared {
            stopped: Mutex::new(Vec::new()),
            paused: Mutex::new(Vec::new()),
            streak: Mutex::new(Vec::new()),
            rate: RateLimiter::new(self.delivery.rate_per_s),
            writes: WriteLock::new(conn.dialect()),
            writer_failed: AtomicBool::new(false),
            claimed_up_to: AtomicI64::new(0),
        };
        let workers = self.channels.parallelism().max(1);
        let per_claim = claim_size(
            sendable,
            workers,
            claim_batch(conn.dialect()),
            self.delivery.rate_per_s,
            self.delivery.lease,
        );
        let writer = Writer {
            run_id: &self.run_id,
            hooks: self.hooks,
            now: self.clock.now(),
            writes: &shared.writes,
            failed: &shared.writer_failed,
        };
        let (queue, inbox) = writer::queue();
        let sessions = Sessions::new(self.db, sessions::limit(self.db, workers));
        let (written, results) = std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    let queue = queue.clone();
                    s.spawn(|| self.worker(scope, &channels, &shared, &sessions, queue, per_claim))
                })
                .collect();
            // The writer runs on this thread (whose memory planning already
            // grew) and ends once every worker's end of the queue is gone.
            drop(queue);
            let written = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| writer.run(conn, inbox)))
                .unwrap_or_else(|_| Err(anyhow::anyhow!("the outcome writer panicked")));
            let results: Vec<anyhow::Result<Tally>> = handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("a delivery worker panicked")))
                })
                .collect();
            (written, results)
        });
        // The writer's error first: a worker that stopped because the
        // writer did says less.
        tally.merge(written?);
        for r in results {
            tally.merge(r?);
        }
        Ok(tally)
    }

    /// Claims due rows and sends them, handing each outcome to the writer;
    /// returns the counts of what it settled itself (a row lost to another
    /// run before its send). A session of `sessions` is taken for each
    /// claim and each row's reads and writes, never across a send or a wait.
    fn worker(
        &self,
        scope: &Scope,
        channels: &[Channel],
        shared: &Shared,
        sessions: &Sessions<'_>,
        queue: Queue,
        per_claim: usize,
    ) -> anyhow::Result<Tally> {
        let mut tally = Tally::default();
        let recorder = Recorder {
            run_id: &self.run_id,
            delivery: self.delivery,
            now: self.clock.now(),
        };
        let now = self.clock.now();
        loop {
            // Channels whose transport rejected our credentials, or asked us
            // to wait, are not claimed again.
            let open: Vec<Channel> = channels
                .iter()
                .copied()
                .filter(|c| {
                    let transport = c.transport();
                    !shared.is_stopped(transport) && shared.pause_of(transport).is_none()
                })
                .collect();
            if open.is_empty() {
                break;
            }
            let mut claimer = claim::Claimer {
                run_id: &self.run_id,
                scope,
                channels: &open,
                now,
                lease: self.delivery.lease,
                after: 0,
            };
            // The session before the write lock, in every thread: a thread
            // holding the lock never waits for a session another holds
            // while it waits for the lock.
            let mut conn = sessions.take()?;
            // Read once the session is had: the claims made meanwhile count.
            claimer.after = shared.claimed_up_to.load(Ordering::Relaxed);
            let mut batch = {
                let _writing = shared.writes.hold();
                claim::claim(&mut conn, &claimer, self.clock.wall(), per_claim)?
            };
            if batch.is_empty() && claimer.after > 0 {
                // Rows below the run's last claim may be pending again (given
                // back by this run, or by another machine): the worker stops
                // only once a claim from the first row finds nothing.
                claimer.after = 0;
                let _writing = shared.writes.hold();
                batch = claim::claim(&mut conn, &claimer, self.clock.wall(), per_claim)?;
            }
            let Some(last) = batch.last() else {
                break;
            };
            shared.claimed_up_to.fetch_max(last.id, Ordering::Relaxed);
            let wide = self.reads_together_on_server(&conn, last.job);
            drop(conn);
            let mut looks = if wide {
                Looks::wide(batch.len())
            } else {
                Looks::new(batch.len())
            };
            // Each row's lease (wall time), renewed as the worker goes;
            // `None`: the row is no longer this run's.
            let mut leases: Vec<Option<DateTime<Utc>>> = batch.iter().map(|r| Some(r.lease_until)).collect();
            for (i, row) in batch.iter().enumerate() {
                let transport = row.channel.transport();
                let hold = self.hold_of(sessions, row)?;
                // A transport that rejected our credentials sends nothing
                // more; nor does anything once an outcome could not be
                // recorded (another may not be either). The rows go back.
                let decided = if shared.writer_failed.load(Ordering::Relaxed) || shared.is_stopped(transport) {
                    recorder.release(row)
                } else if let Some((until, why)) = shared.pause_of(transport) {
                    recorder.postpone(row, until, &why)
                } else if is_expired(row, now) {
                    log::info!(
                        "{} via {} to {} not sent: its validity passed",
                        row.kind,
                        row.channel,
                        row.recipient
                    );
                    recorder.expired(row)
                } else if let Some(until) = hold.as_ref().and_then(|h| h.until(now)) {
                    if row.valid_until.is_some_and(|valid| until > valid) {
                        log::info!(
                            "{} via {} to {} not sent: quiet hours or its send window hold it past its validity",
                            row.kind,
                            row.channel,
                            row.recipient
                        );
                        recorder.held_past_validity(row, until)
                    } else {
                        recorder.held(row, until)
                    }
                } else {
                    // The lease is checked after the rate limiter's wait, right
                    // before the send, never before a sleep.
                    shared.rate.wait();
                    let margin = send_margin(self.delivery.lease, self.channels.budget(row.channel));
                    // Given back before the send (`send_one`).
                    let mut conn = sessions.take()?;
                    if leases[i].is_some_and(|until| self.clock.wall() + margin >= until) {
                        self.renew(&conn, &batch[i..], &mut leases[i..], shared)?;
                    }
                    // Read again: a renewal that could not be written may
                    // have waited out the busy timeout.
                    let lease_until = leases[i].filter(|until| self.clock.wall() + margin < *until);
                    if let Some(lease_until) = lease_until {
                        let verdict = self.verdict(&mut conn, &batch, i, &mut looks, now)?;
                        // The next row's recipient, for its commands to go
                        // with this message (SMTP pipelining): not one known
                        // not to go, nor under a rate limit, which spaces the
                        // sends out.
                        let then = batch
                            .get(i + 1)
                            .filter(|next| {
                                next.channel == row.channel
                                    && self.delivery.rate_per_s <= 0.0
                                    && !is_expired(next, now)
                                    && !looks.cancels(i + 1)
                            })
                            .map(|next| next.recipient.as_str());
                        let to_send = Send { row, lease_until, then };
                        let readdressed = match &verdict {
                            Verdict::SendTo(to) => Some(recorder.readdress(&conn, row, to)?),
                            _ => None,
                        };
                        drop(conn);
                        match verdict {
                            Verdict::Send => self.send_one(&recorder, &to_send, &row.recipient, shared),
                            Verdict::SendTo(to) => {
                                log::info!(
                                    "{} via {}: to {to}, the address it has now (was {})",
                                    row.kind,
                                    row.channel,
                                    row.recipient
                                );
                                if let Some(effect) = readdressed.flatten() {
                                    count(&mut tally, effect, row.id, &row.kind, &row.recipient);
                                    continue;
                                }
                                self.send_one(&recorder, &to_send, &to, shared)
                            }
                            Verdict::Cancel(reason) => {
                                log::info!(
                                    "{} via {} to {} not sent: {reason}",
                                    row.kind,
                                    row.channel,
                                    row.recipient
                                );
                                recorder.cancelled(row, &reason)
                            }
                        }
                    } else {
                        // Not renewed: the lease passed (another run may
                        // hold the row now), or the renewal could not be
                        // written. Nothing goes; the row waits for its lease.
                        recorder.release(row)
                    }
                };
                let mut decided = decided;
                if let (Some(hold), store::outcomes::Change::Retry { next, .. }) = (&hold, &mut decided.change) {
                    // A backoff never lands inside quiet hours.
                    *next = hold.next_allowed(*next);
                    decided.effect = Effect::Retrying { next: *next };
                }
                queue.push(decided)?;
            }
            if shared.writer_failed.load(Ordering::Relaxed) {
                break;
            }
        }
        Ok(tally)
    }

    /// Renews the lease of `rows` (the rest of a claim, not yet decided) to
    /// a whole `[delivery] lease_s` from now, setting each of `leases` to its
    /// new end, or to `None` for a row this run no longer holds. A renewal
    /// that cannot be written leaves the leases as they were, with a warning
    /// (the rows go back once they pass). Errors: the connection was lost
    /// (exit 74): the worker stops, sending nothing more.
    fn renew(
        &self,
        conn: &store::Conn,
        rows: &[Claimed],
        leases: &mut [Option<DateTime<Utc>>],
        shared: &Shared,
    ) -> anyhow::Result<()> {
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let until = claim::lease_end(self.clock.wall(), self.delivery.lease);
        let renewed = {
            let _writing = shared.writes.hold();
            claim::renew(conn, &self.run_id, &ids, until)
        };
        match renewed {
            Ok(held) => {
                for (row, lease) in rows.iter().zip(leases.iter_mut()) {
                    *lease = held.binary_search(&row.id).is_ok().then_some(until);
                }
                Ok(())
            }
            Err(e) if e.is_connection_lost() => Err(crate::exit::fail(
                Exit::IoErr,
                format!("the database connection was lost ({e}); the rest of the claim goes once its lease expires"),
            )),
            Err(e) => {
                log::warn!("the lease of {} claimed deliveries cannot be renewed ({e})", ids.len());
                Ok(())
            }
        }
    }

    /// What holds `row` back, when `[delivery] quiet_hours` or its kind's
    /// send window is set (`quiet::SendPolicy::hold_for`, read on a session
    /// of `sessions`); a contact whose zone cannot be read is held in the
    /// configured zone, with a warning. Errors: no session could be opened.
    fn hold_of(&self, sessions: &Sessions<'_>, row: &Claimed) -> anyhow::Result<Option<Hold<'_>>> {
        let policy = &self.delivery.send;
        if policy.is_open() {
            return Ok(None);
        }
        let conn = sessions.take()?;
        Ok(policy
            .hold_for(&conn, &row.kind, row.contact_id, self.zone)
            .unwrap_or_else(|e| {
                log::warn!(
                    "delivery {}: its contact's zone cannot be read ({e}); the configured one is used",
                    row.id
                );
                policy.hold_for(&conn, &row.kind, None, self.zone).ok().flatten()
            }))
    }

    /// Whether row `i` of `batch` still goes: its last look, read with
    /// the next rows' when no verdict read within `recheck::LOOK_FOR` is
    /// at hand (`Looks`). Errors: the connection was lost (exit 74): the
    /// worker stops, sending nothing more.
    fn verdict(
        &self,
        conn: &mut store::Conn,
        batch: &[Claimed],
        i: usize,
        looks: &mut Looks,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Verdict> {
        if let Some(verdict) = looks.take(i, Instant::now()) {
            return Ok(verdict);
        }
        let server = conn.dialect() == store::Dialect::Postgres;
        let one = server
            && !batch
                .get(i)
                .is_some_and(|row| self.reads_together_on_server(conn, row.job));
        let rows = batch.get(looks.span(i, one)).unwrap_or_default();
        let read_at = Instant::now();
        // On SQLite, the rows' reads in one read transaction: the WAL's read
        // lock is taken, and the page cache filled, once for them all, and
        // they see one state of the sources. On PostgreSQL, without one: a
        // transaction there is two more round trips per look, and the look
        // is as recent either way.
        let verdicts = if server {
            self.look(conn, rows, now)?
        } else {
            match store::begin_read(conn) {
                Ok(tx) => self.look(&tx, rows, now)?,
                Err(e) if e.is_connection_lost() => return settle(&batch[i], Err(e)),
                Err(e) => rows.iter().map(|row| unreadable(row, &e)).collect(),
            }
        };
        looks.fill(i, verdicts, read_at, read_at.elapsed());
        Ok(looks.take(i, read_at).unwrap_or(Verdict::Send))
    }

    /// Whether `conn` is a server's and `job` reads its rows together
    /// (`Recheck::reads_together`): a look then reads as many rows as one.
    fn reads_together_on_server(&self, conn: &store::Conn, job: crate::domain::Job) -> bool {
        conn.dialect() == store::Dialect::Postgres && self.check_of(job).is_some_and(|check| check.reads_together())
    }

    /// The check of `job`'s messages, when it has one.
    fn check_of(&self, job: crate::domain::Job) -> Option<&dyn Recheck> {
        self.rechecks.iter().find(|r| r.job() == job).copied()
    }

    /// Asks each row's job whether its source still wants it: a job's
    /// consecutive rows together when it reads them so
    /// (`Recheck::reads_together`), one by one otherwise, or when reading
    /// them together failed (each row then says what it could not read).
    /// Errors: the connection was lost (exit 74).
    fn look(&self, conn: &store::Conn, rows: &[Claimed], now: DateTime<Utc>) -> anyhow::Result<Vec<Verdict>> {
        let mut verdicts = Vec::with_capacity(rows.len());
        let mut rest = rows;
        while let Some(first) = rest.first() {
            let run = rest.iter().take_while(|r| r.job == first.job).count();
            let (group, next) = rest.split_at(run);
            rest = next;
            let together = match self.check_of(first.job) {
                Some(check) if group.len() > 1 && check.reads_together() => match check.recheck_all(conn, group, now) {
                    Ok(read) if read.len() == group.len() => Some(read),
                    Err(e) if e.is_connection_lost() => return settle(first, Err(e)).map(|_| Vec::new()),
                    _ => None,
                },
                _ => None,
            };
            match together {
                Some(read) => {
                    for (row, verdict) in group.iter().zip(read) {
                        verdicts.push(self.replaced(conn, row).unwrap_or(verdict));
                    }
                }
                None => {
                    for row in group {
                        verdicts.push(settle(row, self.look_one(conn, row, now))?);
                    }
                }
            }
        }
        Ok(verdicts)
    }

    /// A cancellation, when `row` is a fallback whose message before it was
    /// reported delivered after all (channel fallback): the person was
    /// reached.
    fn replaced(&self, conn: &store::Conn, row: &Claimed) -> Option<Verdict> {
        let before = row.replaces_id?;
        store::deliveries::reached(conn, before)
            .unwrap_or(false)
            .then(|| Verdict::Cancel(format!("delivery {before}, which it replaces, was delivered after all")))
    }

    /// Asks the row's job whether its source still wants it.
    fn look_one(&self, conn: &store::Conn, row: &Claimed, now: DateTime<Utc>) -> store::Result<Verdict> {
        if let Some(cancel) = self.replaced(conn, row) {
            return Ok(cancel);
        }
        match self.check_of(row.job) {
            Some(check) => check.recheck(conn, row, now),
            None => Ok(Verdict::Send),
        }
    }

    /// Sends `row` to `recipient` and decides its outcome; a transport that
    /// rejected the credentials, asked to slow down or failed repeatedly is
    /// set aside for the rest of the run.
    fn send_one(&self, recorder: &Recorder<'_>, send: &Send<'_>, recipient: &str, shared: &Shared) -> Decided {
        let Send { row, lease_until, then } = *send;
        let outgoing = Outgoing {
            kind: &row.kind,
            dedupe_key: &row.dedupe_key,
            recipient,
            subject: &row.subject,
            body: &row.body,
            html: row.html.as_deref(),
            attachment: row.attachment.as_ref().map(|a| OutgoingAttachment {
                path: &a.path,
                name: &a.name,
                mime: &a.mime,
            }),
            payload: row.payload.as_deref(),
            // The send ends before the lease does, so no other run can take
            // the row while this one may still deliver it.
            deadline: Some(
                Instant::now()
                    + (lease_until - self.clock.wall() - ChronoDuration::seconds(1))
                        .to_std()
                        .unwrap_or_default(),
            ),
            then,
        };
        let transport = row.channel.transport();
        match self.channels.send(row.channel, &outgoing, self.clock.wall()) {
            Ok(sent) => {
                log::info!("sent {} via {} to {}", row.kind, row.channel, row.recipient);
                shared.count_failure(transport, false);
                recorder.sent(row, sent)
            }
            Err(err) => {
                if matches!(err, SendError::Credentials(_)) {
                    if shared.stop(transport) {
                        log::error!("{}: stopping {} delivery for this run", err.reason(), row.channel);
                    }
                } else {
                    log::warn!("{} via {} to {}: {err}", row.kind, row.channel, row.recipient);
                }
                let decided = recorder.failed(row, &err);
                let temporary = matches!(err, SendError::Temporary { .. } | SendError::Throttled { .. });
                let repeated = shared.count_failure(transport, temporary) >= FAILURES_BEFORE_PAUSE;
                if let Effect::Retrying { next } = decided.effect
                    && (matches!(err, SendError::Throttled { .. }) || repeated)
                {
                    let why = if repeated {
                        format!(
                            "{transport} failed {FAILURES_BEFORE_PAUSE} times in a row ({})",
                            err.reason()
                        )
                    } else {
                        format!("{transport} asked to slow down ({})", err.reason())
                    };
                    if shared.pause(transport, next, &why) {
                        log::warn!(
                            "{why}: nothing more goes through {transport} this run; the rest wait until {}",
                            crate::instant::format(next)
                        );
                    }
                }
                decided
            }
        }
    }
}

/// A row about to be sent: its lease as last renewed (wall time), and the
/// next row's recipient when its commands go with this message.
struct Send<'a> {
    row: &'a Claimed,
    lease_until: DateTime<Utc>,
    then: Option<&'a str>,
}

/// How much of its lease a row must have left for its send to start,
/// the lease being renewed first when less is left (`Engine::renew`): a
/// quarter of the lease, and the channel's whole exchange (`budget`) and a
/// second, so the send's deadline (the lease less a second) does not cut an
/// exchange the server is still answering in time: cut after the message's
/// end went, its outcome is unknown and it goes again. At most three
/// quarters of the lease, so a row whose lease was just renewed goes (a
/// lease barely over the budget, which `config check` allows, is given
/// that much).
fn send_margin(lease: Duration, budget: Duration) -> ChronoDuration {
    let margin = (lease / 4).max((budget + Duration::from_secs(1)).min(lease * 3 / 4));
    ChronoDuration::from_std(margin).unwrap_or(ChronoDuration::minutes(2))
}

/// A look's verdict for `row`. A connection the server ended (an
/// administrator, a failover) cannot record what would be sent: nothing
/// more goes on it, and the error ends the worker (its claimed rows wait for
/// their lease). A source that cannot be read now (a host table changed
/// under us) is no reason to hold back a message made when it could: it
/// goes.
fn settle(row: &Claimed, verdict: store::Result<Verdict>) -> anyhow::Result<Verdict> {
    match verdict {
        Ok(verdict) => Ok(verdict),
        Err(e) if e.is_connection_lost() => Err(crate::exit::fail(
            Exit::IoErr,
            format!(
                "the database connection was lost ({e}); delivery {} is not sent, and goes once its lease expires",
                row.id
            ),
        )),
        Err(e) => Ok(unreadable(row, &e)),
    }
}

/// The verdict for `row` whose source cannot be read again (`e`): sent as
/// planned, with a warning.
fn unreadable(row: &Claimed, e: &dyn std::fmt::Display) -> Verdict {
    log::warn!(
        "delivery {} ({} to {}): its source cannot be read again ({e}); sent as planned",
        row.id,
        row.kind,
        row.recipient
    );
    Verdict::Send
}

fn is_expired(row: &Claimed, now: DateTime<Utc>) -> bool {
    row.valid_until.is_some_and(|until| now > until)
}

/// Counts `effect` of delivery `id` (a `kind` message to `recipient`) in
/// `tally`, raising its exit code as DESIGN §2 says.
fn count(tally: &mut Tally, effect: Effect, id: i64, kind: &str, recipient: &str) {
    let c = &mut tally.counts;
    match effect {
        Effect::Sent => c.sent += 1,
        Effect::Failed { permanent: true } => {
            c.failed += 1;
            tally.raise(Exit::DataErr);
        }
        Effect::Failed { permanent: false } => {
            c.failed += 1;
            tally.raise(Exit::TempFail);
        }
        Effect::Retrying { .. } => {
            c.retrying += 1;
            tally.raise(Exit::TempFail);
        }
        Effect::Skipped => c.skipped += 1,
        Effect::Cancelled => c.cancelled += 1,
        Effect::Released => {}
        Effect::Held { until } => {
            c.held += 1;
            log::info!(
                "delivery {id} ({kind} to {recipient}): held by quiet hours or its send window until {}",
                crate::instant::format(until)
            );
        }
        Effect::Rejected => tally.raise(Exit::Config),
        Effect::LostLease => {
            // Another run took the row: this one cannot say what became of it.
            tally.raise(Exit::TempFail);
            log::warn!(
                "delivery {id} ({kind} to {recipient}): lease expired during the send; another run may have sent it too"
            );
        }
    }
}

impl Shared {
    fn is_stopped(&self, transport: &str) -> bool {
        self.stopped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&transport)
    }

    /// Whether, and until when, `transport` asked the run to wait.
    fn pause_of(&self, transport: &str) -> Option<(DateTime<Utc>, String)> {
        self.paused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(t, ..)| *t == transport)
            .map(|(_, until, why)| (*until, why.clone()))
    }

    /// Pauses `transport` until `until`; true the first time.
    fn pause(&self, transport: &'static str, until: DateTime<Utc>, why: &str) -> bool {
        let mut paused = self.paused.lock().unwrap_or_else(|e| e.into_inner());
        if paused.iter().any(|(t, ..)| *t == transport) {
            return false;
        }
        paused.push((transport, until, why.to_string()));
        true
    }

    /// Counts a temporary failure of `transport` (or, `false`, an answer
    /// that was not one); returns how many came in a row.
    fn count_failure(&self, transport: &'static str, temporary: bool) -> u32 {
        let mut streak = self.streak.lock().unwrap_or_else(|e| e.into_inner());
        let i = match streak.iter().position(|(t, _)| *t == transport) {
            Some(i) => i,
            None => {
                streak.push((transport, 0));
                streak.len() - 1
            }
        };
        let n = &mut streak[i].1;
        *n = if temporary { *n + 1 } else { 0 };
        *n
    }

    /// Marks a transport stopped; true the first time.
    fn stop(&self, transport: &'static str) -> bool {
        let mut stopped = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        if stopped.contains(&transport) {
            return false;
        }
        stopped.push(transport);
        true
    }
}

/// Spaces sends `1 / rate` seconds apart across all workers (0 = unlimited).
struct RateLimiter {
    interval: Option<Duration>,
    next: Mutex<Instant>,
}

impl RateLimiter {
    fn new(rate_per_s: f64) -> Self {
        RateLimiter {
            interval: (rate_per_s > 0.0).then(|| Duration::from_secs_f64(1.0 / rate_per_s)),
            next: Mutex::new(Instant::now()),
        }
    }

    fn wait(&self) {
        let Some(interval) = self.interval else { return };
        let slot = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let slot = (*next).max(now);
            *next = slot + interval;
            slot
        };
        let now = Instant::now();
        if slot > now {
            std::thread::sleep(slot - now);
        }
    }
}

#[cfg(test)]
mod claim_tests {
    use super::*;

    #[test]
    fn a_send_starts_only_with_its_whole_exchange_left_on_the_lease() {
        let s = Duration::from_secs;
        assert_eq!(
            send_margin(s(600), s(120)),
            ChronoDuration::seconds(150),
            "a quarter of the lease"
        );
        // lease_s = 20 with timeout_s = 2: an SMTP exchange may take 8 s.
        assert_eq!(send_margin(s(20), s(8)), ChronoDuration::seconds(9));
        // lease_s = 9: three quarters of it, so a row just renewed goes.
        assert_eq!(send_margin(s(9), s(8)), ChronoDuration::milliseconds(6_750));
        assert_eq!(send_margin(s(10), Duration::ZERO), ChronoDuration::milliseconds(2_500));
    }

    #[test]
    fn a_claim_is_an_even_share_within_bounds_and_never_outlasts_the_rate() {
        let lease = Duration::from_secs(600);
        assert_eq!(
            claim_size(3, 4, CLAIM_BATCH, 0.0, lease),
            CLAIM_MIN,
            "a short queue in bites of 8"
        );
        assert_eq!(claim_size(200, 8, CLAIM_BATCH, 0.0, lease), 25, "an even share");
        assert_eq!(
            claim_size(10_000, 8, CLAIM_BATCH, 0.0, lease),
            CLAIM_BATCH,
            "at most 32"
        );
        assert_eq!(
            claim_size(10_000, 8, claim_batch(crate::store::Dialect::Postgres), 0.0, lease),
            128,
            "at most 128 on a server"
        );
        assert_eq!(claim_batch(crate::store::Dialect::Sqlite), 32);
        // 2 messages a second, 2 workers, 10 s lease: 5 each in half a lease.
        assert_eq!(claim_size(64, 2, CLAIM_BATCH_SERVER, 2.0, Duration::from_secs(10)), 5);
        assert_eq!(
            claim_size(64, 2, CLAIM_BATCH, 0.01, Duration::from_secs(10)),
            1,
            "at least one"
        );
    }
}
