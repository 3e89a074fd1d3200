//! The planning writer: while the planners read rows and render messages on
//! the calling thread, one thread writes the messages they make into
//! `rappel_deliveries`, `BATCH` to a write transaction. Reading and
//! rendering take one core and writing the other, so planning costs the
//! longer of the two rather than their sum, and the host's writes still wait
//! for at most one batch.
//!
//! Nothing changes in what is planned: each message is inserted under its
//! dedupe key (`ON CONFLICT DO NOTHING`), so a message planned twice, by this
//! run or by any other, is written once; and a message is planned when its
//! batch commits, as before.

use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};

use chrono::{DateTime, Utc};

use crate::domain::planned::Planned;
use crate::jobs::PlanReport;
use crate::store::{self, Conn};

/// Messages written per transaction.
const BATCH: usize = 500;

/// Messages handed to the writer together: one wake-up of its thread per
/// `CHUNK` messages, not one per message.
const CHUNK: usize = 64;

/// Chunks made but not yet taken by the writer, at the most: the planners
/// wait rather than let messages pile up in memory.
const QUEUE: usize = 4;

/// The planners' end: hands messages to the writer, `CHUNK` at a time; the
/// last ones go when it is dropped.
pub struct Queue {
    chunk: Vec<Planned>,
    to_writer: SyncSender<Vec<Planned>>,
    /// Chunks the writer wrote, given back to be freed on this thread: the
    /// allocator's lock for this thread's memory is then taken by this thread
    /// alone, where freeing them on the writer's had the two threads queue
    /// on it for every message.
    written: Receiver<Vec<Planned>>,
}

impl Queue {
    /// Hands `message` to the writer, waiting while the queue is full.
    /// Errors: the writer stopped (its own error is the one `planning`
    /// returns).
    pub fn push(&mut self, message: Planned) -> anyhow::Result<()> {
        self.chunk.push(message);
        if self.chunk.len() >= CHUNK {
            while let Ok(written) = self.written.try_recv() {
                drop(written);
            }
            let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK));
            self.to_writer
                .send(chunk)
                .map_err(|_| anyhow::anyhow!("the planning writer stopped; nothing more is planned this run"))?;
        }
        Ok(())
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        if !self.chunk.is_empty() {
            // A writer that stopped has its own error to give.
            let _ = self.to_writer.send(std::mem::take(&mut self.chunk));
        }
    }
}

/// Runs `plan` on this thread with a [`Queue`] to a writer thread writing
/// through its own connection to `db`; returns `plan`'s report with the
/// writer's counts added (`planned`, and `failures`: messages recorded
/// failed at planning, an address or phone that cannot be used). `now`
/// (UTC) is the messages' `created_at`.
///
/// Errors: the writer's (the database cannot be opened, or a `StoreError`
/// from a write: every message before it is committed), else `plan`'s. A
/// panic on either thread goes on unwinding on this one, once the other has
/// stopped.
pub fn planning(
    db: &crate::db::Database,
    now: DateTime<Utc>,
    plan: impl FnOnce(Queue) -> anyhow::Result<PlanReport>,
) -> anyhow::Result<PlanReport> {
    let (tx, rx) = sync_channel(QUEUE);
    // Unbounded, but never holds more than the chunks in flight: the
    // planners take them back each time they hand one over.
    let (give_back, written) = channel();
    std::thread::scope(|scope| {
        // Its own connection, opened on its thread: what SQLite allocates
        // for it is then allocated and freed on that thread alone.
        let writer = scope.spawn(move || write_all(&mut db.connect()?, &rx, &give_back, now));
        // `plan` drops its queue when it returns: the writer then commits
        // what is left and stops.
        let planned = plan(Queue {
            chunk: Vec::with_capacity(CHUNK),
            to_writer: tx,
            written,
        });
        let written = match writer.join() {
            Ok(written) => written?,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        let mut report = planned?;
        report.planned += written.planned;
        report.failures.extend(written.failures);
        Ok(report)
    })
}

/// What the writer wrote.
#[derive(Default)]
struct Written {
    planned: u64,
    failures: Vec<String>,
}

/// Writes every message `inbox` brings until the planners drop their end.
/// A message whose key is planned already is not written and not counted.
/// Errors: a `StoreError`, after committing what came before it (those
/// messages are planned; the one that failed and those after it are planned
/// by a later run).
fn write_all(
    conn: &mut Conn,
    inbox: &Receiver<Vec<Planned>>,
    give_back: &Sender<Vec<Planned>>,
    now: DateTime<Utc>,
) -> anyhow::Result<Written> {
    let mut written = Written::default();
    let mut in_batch = 0;
    for chunk in inbox {
        write_chunk(conn, &chunk, now, &mut written, &mut in_batch)?;
        // Once the planners are gone, freed here.
        let _ = give_back.send(chunk);
    }
    if in_batch > 0 {
        store::reminders::commit_batch(conn)?;
    }
    Ok(written)
}

/// Writes `chunk`, committing every `BATCH` messages (`in_batch` counts
/// those written since the last commit).
fn write_chunk(
    conn: &mut Conn,
    chunk: &[Planned],
    now: DateTime<Utc>,
    written: &mut Written,
    in_batch: &mut usize,
) -> anyhow::Result<()> {
    for message in chunk {
        if *in_batch == 0 {
            store::reminders::open_batch(conn)?;
        }
        match store::deliveries::insert(conn, message, now) {
            Ok(Some(_)) => match failure(message) {
                Some(failure) => {
                    log::warn!("{failure}");
                    written.failures.push(failure);
                }
                None => written.planned += 1,
            },
            Ok(None) => {}
            Err(e) => {
                // Keeps what this batch wrote before the failure, when the
                // transaction is still open; if not, it was rolled back.
                let _ = store::reminders::commit_batch(conn);
                return Err(e.into());
            }
        }
        *in_batch += 1;
        if *in_batch >= BATCH {
            store::reminders::commit_batch(conn)?;
            *in_batch = 0;
        }
    }
    Ok(())
}

/// The line a message recorded failed at planning is reported with (its
/// address or phone cannot be used); `None` for a message to send.
pub fn failure(message: &Planned) -> Option<String> {
    let why = message.failed.as_ref()?;
    Some(format!(
        "{} via {} for {} id {}: {why}",
        message.kind,
        message.channel,
        message.source_table.unwrap_or("?"),
        message.source_id.unwrap_or_default()
    ))
}
