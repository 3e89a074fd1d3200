//! The outcome writer: one per delivery run, on the thread that started it,
//! writing the outcomes the workers decide, in groups. A worker hands over each outcome right
//! after its send and goes on to the next message; the writer takes every
//! outcome waiting when it starts a transaction (up to `GROUP`) and commits
//! them together, so the workers never contend for the write lock and the
//! database sees one commit where it saw dozens. Under a light load each
//! outcome commits alone, as soon as it arrives; on a PostgreSQL server
//! under load, a group waits up to `SERVER_PATIENCE` for more.
//!
//! The bound a kill -9 can cost (docs/guarantees.md): a message sent but
//! whose outcome is not committed is sent again once its lease expires. At
//! most `QUEUE` outcomes wait in the queue and `GROUP` are in the transaction
//! being written, plus one per worker between its send and the hand-over:
//! `QUEUE + GROUP + workers` messages, each for as long as one commit takes
//! and, on a server under load, a group's wait (`SERVER_PATIENCE`). The
//! queue is bounded, so a slow commit holds the workers back rather than
//! letting unwritten outcomes pile up.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::record::{self, Decided, Effect, SourceHook};
use crate::domain::tally::Tally;
use crate::store;

/// Outcomes that may wait for the writer before a worker is held back.
pub const QUEUE: usize = 64;

/// Outcomes written in one transaction at the most.
pub const GROUP: usize = 64;

/// Adds to `group` (up to `GROUP`) the outcomes waiting in `inbox`, and
/// those arriving within `wait` (none when zero).
fn gather<T>(inbox: &Receiver<T>, group: &mut Vec<T>, wait: Duration) {
    let until = Instant::now() + wait;
    while group.len() < GROUP {
        let next = if wait.is_zero() {
            inbox.try_recv().ok()
        } else {
            inbox.recv_timeout(until.saturating_duration_since(Instant::now())).ok()
        };
        match next {
            Some(d) => group.push(d),
            None => break,
        }
    }
}

/// On a PostgreSQL server, how long a group already under way waits for
/// more outcomes when the workers keep the writer busy (`BUSY`): each
/// group is a statement and a commit there, a round trip and the server's
/// work for each. 10,000 digests over 8 workers went in groups of 12
/// (842 statements) without it, in groups of 55 (182) with it, at a median
/// 13,700 messages a second rather than 13,250 (`bench/run.sh
/// postgres_send`'s run, 6 runs each). A message waits that much longer to be
/// recorded; how many can be sent and not yet recorded (the kill -9
/// bound) is unchanged.
const SERVER_PATIENCE: Duration = Duration::from_millis(2);

/// A group this large or larger means the workers keep the writer busy:
/// the next one waits for more (`SERVER_PATIENCE`). Under a light load,
/// each outcome is written as soon as it arrives.
const BUSY: usize = 8;

/// The workers' end: hands outcomes to the writer.
#[derive(Clone)]
pub struct Queue(SyncSender<Decided>);

/// The writer's end, moved to its thread.
pub struct Inbox(Receiver<Decided>);

/// A queue of `QUEUE` outcomes and the writer's end of it.
pub fn queue() -> (Queue, Inbox) {
    let (tx, rx) = sync_channel(QUEUE);
    (Queue(tx), Inbox(rx))
}

impl Queue {
    /// Hands `d` to the writer, waiting while the queue is full. Errors:
    /// the writer stopped (its own error ends the run).
    pub fn push(&self, d: Decided) -> anyhow::Result<()> {
        self.0
            .send(d)
            .map_err(|_| anyhow::anyhow!("the outcome writer stopped; no more messages are sent this run"))
    }
}

/// A run's lock around its write transactions (claims, lease renewals,
/// outcome groups). On SQLite, which has one writer at a time, the run's
/// writers queue for one another here, woken as soon as the lock is free,
/// rather than in SQLite's busy handler, which polls (other processes still
/// meet the busy handler). On PostgreSQL, none: the server locks rows one
/// by one, and a run's claims and outcomes touch different rows (claims
/// skip locked ones). Held there, it made 8 connections' claims and
/// outcomes wait for one another: 0.8 s of a 1.15 s run of 10,000 messages
/// (`bench/run.sh postgres_send`).
#[derive(Debug)]
pub struct WriteLock(Option<Mutex<()>>);

impl WriteLock {
    /// The lock for a run on `dialect`.
    pub fn new(dialect: store::Dialect) -> Self {
        WriteLock((dialect == store::Dialect::Sqlite).then(|| Mutex::new(())))
    }

    /// Holds the lock until the guard is dropped (at once on PostgreSQL).
    pub fn hold(&self) -> Option<MutexGuard<'_, ()>> {
        self.0.as_ref().map(|m| m.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// What the writer needs: for which run, the sources' bookkeeping, and
/// the run's clock (it writes on the run's connection, `Writer::run`).
pub struct Writer<'a> {
    pub run_id: &'a str,
    pub hooks: &'a [&'a dyn SourceHook],
    pub now: DateTime<Utc>,
    /// This run's write lock (`Shared::writes` in `engine.rs`).
    pub writes: &'a WriteLock,
    /// Raised once an outcome could not be written (`Shared::writer_failed`).
    pub failed: &'a AtomicBool,
}

impl Writer<'_> {
    /// Writes outcomes as they come until every `Queue` is dropped; returns
    /// the run's counts of them. A group that cannot be written for any
    /// reason but a lock is written again one outcome at a time, so one bad
    /// outcome (a host trigger refusing its source row's update) costs only
    /// itself. Once an outcome cannot be written, `failed` is raised: the
    /// workers send nothing more and give their claimed rows back, and the
    /// writer goes on writing what comes. Errors: an outcome could not be
    /// written (locked past the busy timeout three times, or any other
    /// `StoreError`): the first, naming the delivery and whether its
    /// message went, after every other outcome was written.
    ///
    /// `conn` is the run's connection, idle while its workers send: a
    /// session of its own would cost a server another process.
    pub fn run(&self, conn: &mut store::Conn, inbox: Inbox) -> anyhow::Result<Tally> {
        let mut tally = Tally::default();
        let mut first_error: Option<anyhow::Error> = None;
        // Outcomes of messages not sent that could not be written.
        let mut unsent = 0;
        let mut group = Vec::with_capacity(GROUP);
        let patience = match conn.dialect() {
            store::Dialect::Postgres => SERVER_PATIENCE,
            store::Dialect::Sqlite => Duration::ZERO,
        };
        let mut last_group = 0;
        while let Ok(first) = inbox.0.recv() {
            group.push(first);
            // Under load (the last group was large), the outcomes arriving
            // within `patience` join this one.
            let wait = if last_group >= BUSY { patience } else { Duration::ZERO };
            gather(&inbox.0, &mut group, wait);
            last_group = group.len();
            // Each outcome's effect, or the error that kept it unwritten
            // (`None`: the same as the group's first).
            let written: Vec<Result<Effect, Option<store::StoreError>>> = match self.write_with_retries(conn, &group) {
                Ok(effects) => effects.into_iter().map(Ok).collect(),
                Err(e) if group.len() > 1 && !e.is_busy() => group
                    .iter()
                    .map(|d| {
                        self.write_with_retries(conn, std::slice::from_ref(d))
                            .map(|effects| effects[0])
                            .map_err(Some)
                    })
                    .collect(),
                Err(e) => std::iter::once(Err(Some(e)))
                    .chain((1..group.len()).map(|_| Err(None)))
                    .collect(),
            };
            for (d, w) in group.drain(..).zip(written) {
                // The message went: its outcome is recorded without its
                // source row's bookkeeping rather than left `sending` (sent
                // again once the lease passes) when only the bookkeeping
                // fails (a host trigger, a host row locked past the timeout).
                let w = match w {
                    Err(e) if !self.hooks.is_empty() && d.source.is_some() => {
                        match self.write_with_retries_hooked(conn, &d, &[]) {
                            Ok(effect) => {
                                let why = e.map_or_else(|| "the database stayed locked".to_string(), |e| e.to_string());
                                let e = crate::exit::fail(
                                    crate::exit::Exit::IoErr,
                                    format!(
                                        "delivery {} ({} to {}) was settled and recorded, but its source row's \
                                         update failed: {why}; the next run updates it",
                                        d.delivery_id, d.kind, d.recipient
                                    ),
                                );
                                log::error!("{e:#}");
                                first_error.get_or_insert(e);
                                Ok(effect)
                            }
                            Err(alone) => Err(Some(alone)),
                        }
                    }
                    w => w,
                };
                match w {
                    Ok(effect) => super::count(&mut tally, effect, d.delivery_id, &d.kind, &d.recipient),
                    Err(e) => {
                        self.failed.store(true, Ordering::Relaxed);
                        if d.effect != Effect::Sent {
                            // Not sent (given back, failed, held...): it goes,
                            // or is tried, once its lease passes; counted, and
                            // named once the log is verbose.
                            unsent += 1;
                            log::info!(
                                "delivery {} ({} to {}) was not sent and could not be recorded as such",
                                d.delivery_id,
                                d.kind,
                                d.recipient
                            );
                            if let Some(e) = e {
                                first_error.get_or_insert_with(|| {
                                    anyhow::Error::new(e).context(format!(
                                        "delivery {} ({} to {}) was not sent and could not be recorded as such",
                                        d.delivery_id, d.kind, d.recipient
                                    ))
                                });
                            }
                            continue;
                        }
                        let what = format!(
                            "delivery {} ({} to {}) was sent but its outcome could not be recorded: it goes \
                             again once its lease passes",
                            d.delivery_id, d.kind, d.recipient
                        );
                        match e {
                            Some(e) => {
                                let e = anyhow::Error::new(e).context(what);
                                log::error!("{e:#}");
                                first_error.get_or_insert(e);
                            }
                            None => log::error!("{what}: the database stayed locked"),
                        }
                    }
                }
            }
        }
        if unsent > 0 {
            log::error!(
                "{unsent} claimed message(s) were not sent and could not be given back: each goes once its \
                 lease passes (-v names them)"
            );
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(tally),
        }
    }

    /// Writes `group` in one transaction, trying again while the database
    /// stays locked (each try already waits the busy timeout): the messages
    /// have gone, and a row left `sending` would be sent again once its
    /// lease expires.
    fn write_with_retries(&self, conn: &mut store::Conn, group: &[Decided]) -> store::Result<Vec<Effect>> {
        self.retried(group.len(), || self.write(conn, group, self.hooks))
    }

    /// [`Writer::write_with_retries`] of `d` alone, with `hooks` in place
    /// of the run's (none: the outcome without its source row's update).
    fn write_with_retries_hooked(
        &self,
        conn: &mut store::Conn,
        d: &Decided,
        hooks: &[&dyn SourceHook],
    ) -> store::Result<Effect> {
        let effects = self.retried(1, || self.write(conn, std::slice::from_ref(d), hooks))?;
        Ok(effects[0])
    }

    /// `write` tried again while the database stays locked, three times in all.
    fn retried(&self, n: usize, mut write: impl FnMut() -> store::Result<Vec<Effect>>) -> store::Result<Vec<Effect>> {
        const TRIES: u32 = 3;
        let mut tries = 0;
        loop {
            tries += 1;
            match write() {
                Err(e) if e.is_busy() && tries < TRIES => {
                    log::warn!("database locked while recording {n} outcome(s); trying again");
                }
                done => return done,
            }
        }
    }

    fn write(
        &self,
        conn: &mut store::Conn,
        group: &[Decided],
        hooks: &[&dyn SourceHook],
    ) -> store::Result<Vec<Effect>> {
        let _writing = self.writes.hold();
        // On PostgreSQL, the sent messages no source row follows in one
        // statement (a round trip and a plan for the group: 3,000 to 4,000
        // messages/s over 8 connections, `bench/run.sh postgres_send`); the
        // others, and every one on SQLite (in-process, where the group's
        // JSON costs more than the statements it saves), one at a time,
        // each with its source row's bookkeeping.
        let grouped = conn.dialect() == store::Dialect::Postgres;
        let alone = |d: &Decided| {
            !grouped
                || !matches!(d.change, store::outcomes::Change::Sent { .. })
                || d.source
                    .as_ref()
                    .is_some_and(|(table, _, _)| hooks.iter().any(|h| h.table() == table))
        };
        let sent: Vec<(i64, DateTime<Utc>, Option<&str>)> = group
            .iter()
            .filter(|d| !alone(d))
            .filter_map(|d| match &d.change {
                store::outcomes::Change::Sent { at, provider_ref } => {
                    Some((d.delivery_id, *at, provider_ref.as_deref()))
                }
                _ => None,
            })
            .collect();
        let effect = |d: &Decided, written: &[i64]| {
            if written.contains(&d.delivery_id) {
                d.effect
            } else {
                Effect::LostLease
            }
        };
        if sent.len() == group.len() {
            // The one statement is its own transaction: no BEGIN and COMMIT
            // round trips (two of every three statements the writer sent).
            let written = store::outcomes::record_sent(conn, self.run_id, &sent)?;
            return Ok(group.iter().map(|d| effect(d, &written)).collect());
        }
        let tx = store::begin(conn)?;
        let written = store::outcomes::record_sent(&tx, self.run_id, &sent)?;
        let effects = group
            .iter()
            .map(|d| {
                if alone(d) {
                    record::write(&tx, self.run_id, hooks, self.now, d)
                } else {
                    Ok(effect(d, &written))
                }
            })
            .collect::<store::Result<Vec<_>>>()?;
        tx.commit()?;
        Ok(effects)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_takes_what_waits_and_what_comes_within_its_wait() {
        let (tx, rx) = sync_channel::<u32>(QUEUE);
        let mut group = vec![0];
        tx.send(1).unwrap();
        tx.send(2).unwrap();
        // Without a wait: what is already there, nothing more.
        gather(&rx, &mut group, Duration::ZERO);
        assert_eq!(group, [0, 1, 2]);

        // With one: what comes within it joins, spaced out as workers'
        // outcomes are; the group ends when the senders are gone.
        let sender = std::thread::spawn(move || {
            for i in 3..6 {
                std::thread::sleep(Duration::from_millis(20));
                tx.send(i).unwrap();
            }
        });
        gather(&rx, &mut group, Duration::from_secs(30));
        sender.join().unwrap();
        assert_eq!(group, [0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn a_group_stops_at_its_size_and_at_the_end_of_its_wait() {
        let (tx, rx) = sync_channel::<usize>(GROUP * 2);
        for i in 0..GROUP + 5 {
            tx.send(i).unwrap();
        }
        let mut group = Vec::new();
        gather(&rx, &mut group, Duration::from_secs(30));
        assert_eq!(group.len(), GROUP, "never more than GROUP");
        // Five left, the senders still there: the wait ends the group.
        let mut group = Vec::new();
        let started = Instant::now();
        gather(&rx, &mut group, Duration::from_millis(50));
        assert_eq!(group, (GROUP..GROUP + 5).collect::<Vec<_>>());
        assert!(started.elapsed() >= Duration::from_millis(50));
        drop(tx);
    }
}
