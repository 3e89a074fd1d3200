//! The outcome writer: one per delivery run, on the thread that started it,
//! writing the outcomes the workers decide, in groups. A worker hands over each outcome right
//! after its send and goes on to the next message; the writer takes every
//! outcome waiting when it starts a transaction (up to `GROUP`) and commits
//! them together, so the workers never contend for the write lock and the
//! database sees one commit where it saw dozens. Nothing waits on a timer:
//! under a light load each outcome commits alone, as soon as it arrives.
//!
//! The bound a kill -9 can cost (docs/guarantees.md): a message sent but
//! whose outcome is not committed is sent again once its lease expires. At
//! most `QUEUE` outcomes wait in the queue and `GROUP` are in the transaction
//! being written, plus one per worker between its send and the hand-over:
//! `QUEUE + GROUP + workers` messages, each for as long as one commit takes
//! (the queue is bounded, so a slow commit holds the workers back rather than
//! letting unwritten outcomes pile up).

use std::sync::Mutex;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use chrono::{DateTime, Utc};

use super::record::{self, Decided, Effect, SourceHook};
use crate::db::Database;
use crate::domain::tally::Tally;
use crate::store;

/// Outcomes that may wait for the writer before a worker is held back.
pub const QUEUE: usize = 64;

/// Outcomes written in one transaction at the most.
pub const GROUP: usize = 64;

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
        let d = match self.0.try_send(d) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Full(d)) => d,
            Err(TrySendError::Disconnected(_)) => return Err(stopped()),
        };
        self.0.send(d).map_err(|_| stopped())
    }
}

fn stopped() -> anyhow::Error {
    anyhow::anyhow!("the outcome writer stopped; no more messages are sent this run")
}

/// What the writer needs: where to write, for which run, the sources'
/// bookkeeping, and the run's clock.
pub struct Writer<'a> {
    pub db: &'a Database,
    pub run_id: &'a str,
    pub hooks: &'a [&'a dyn SourceHook],
    pub now: DateTime<Utc>,
    /// This run's write lock (`Shared::writes` in `engine.rs`).
    pub writes: &'a Mutex<()>,
}

impl Writer<'_> {
    /// Writes outcomes as they come until every `Queue` is dropped; returns
    /// the run's counts of them. Errors: the database cannot be opened, or a
    /// group cannot be written (locked past the busy timeout three times, or
    /// any other `StoreError`), naming the deliveries that were sent or
    /// settled but not recorded.
    pub fn run(&self, inbox: Inbox) -> anyhow::Result<Tally> {
        let mut conn = self.db.connect()?;
        let mut tally = Tally::default();
        let mut group = Vec::with_capacity(GROUP);
        while let Ok(first) = inbox.0.recv() {
            group.push(first);
            while group.len() < GROUP {
                match inbox.0.try_recv() {
                    Ok(d) => group.push(d),
                    Err(_) => break,
                }
            }
            let effects = self.write_with_retries(&mut conn, &group)?;
            for (d, effect) in group.drain(..).zip(effects) {
                super::count(&mut tally, effect, d.delivery_id, &d.kind, &d.recipient);
            }
        }
        Ok(tally)
    }

    /// Writes `group` in one transaction, trying again while the database
    /// stays locked (each try already waits the busy timeout): the messages
    /// have gone, and a row left `sending` would be sent again once its
    /// lease expires.
    fn write_with_retries(&self, conn: &mut store::Conn, group: &[Decided]) -> anyhow::Result<Vec<Effect>> {
        const TRIES: u32 = 3;
        let mut tries = 0;
        loop {
            tries += 1;
            match self.write(conn, group) {
                Ok(effects) => return Ok(effects),
                Err(e) if e.is_busy() && tries < TRIES => {
                    log::warn!(
                        "database locked while recording {} outcome(s); trying again",
                        group.len()
                    );
                }
                Err(e) => {
                    let ids: Vec<String> = group.iter().map(|d| d.delivery_id.to_string()).collect();
                    let first = &group[0];
                    return Err(anyhow::Error::new(e).context(format!(
                        "deliveries {} ({} to {}{}) were settled but their outcomes could not be recorded",
                        ids.join(", "),
                        first.kind,
                        first.recipient,
                        if group.len() > 1 { ", …" } else { "" }
                    )));
                }
            }
        }
    }

    fn write(&self, conn: &mut store::Conn, group: &[Decided]) -> store::Result<Vec<Effect>> {
        let _writing = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        let tx = store::begin(conn)?;
        let effects = group
            .iter()
            .map(|d| record::write(&tx, self.run_id, self.hooks, self.now, d))
            .collect::<store::Result<Vec<_>>>()?;
        tx.commit()?;
        Ok(effects)
    }
}
