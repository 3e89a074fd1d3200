//! The planning writer: while the planners read rows on the calling thread,
//! a renderer thread renders the messages they make and a writer thread
//! writes them into `rappel_deliveries`, `BATCH` to a write transaction.
//! Reading, rendering and writing go on at once, so planning costs about
//! the longest of the three rather than their sum, and the host's writes
//! still wait for at most one batch.
//!
//! Nothing changes in what is planned: each message is inserted under its
//! dedupe key (`ON CONFLICT DO NOTHING`), so a message planned twice, by this
//! run or by any other, is written once; and a message is planned when its
//! batch commits, as before.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use chrono::{DateTime, Utc};

use super::render::Draft;
use crate::domain::planned::Planned;
use crate::jobs::PlanReport;
use crate::store::{self, Conn};
use crate::templates::Templates;

/// Messages written per transaction.
const BATCH: usize = 500;

/// Drafts handed to the renderer together: one wake-up of its thread per
/// `CHUNK` reminders, not one per reminder.
const CHUNK: usize = 64;

/// Chunks of drafts made but not yet rendered, at the most: the planners
/// wait rather than let drafts (each with its template data) pile up in
/// memory.
const QUEUE: usize = 4;

/// Chunks rendered but not yet written, at the most: with `CHUNK_BYTES`,
/// 2 MB of texts (some 900 weekly digests of 2.3 KB), what the renderer
/// makes while the writer is in a WAL checkpoint's `fsync` (3 ms each, 150
/// of them on Sunday 20:00's 83,000 messages). With 4 chunks, as for the
/// drafts, the renderer and then the planners waited through each: Sunday
/// 20:00 took 2.05-2.16 s against 1.86-1.95 s, paired (peak 54 to 56 MB).
const RENDERED: usize = 32;

/// A rendered chunk goes to the writer once its messages' texts reach this
/// many bytes, whatever their number: the queue holds `RENDERED` times
/// this, plus one message per chunk, however long the messages are (a
/// manual reminder's text has no limit: 3,000 of 300 KB peaked at 1.16 GB
/// with chunks of 64 messages).
const CHUNK_BYTES: usize = 64 * 1024;

/// The planners' end: hands drafts to the renderer, `CHUNK` at a time; the
/// last ones go when it is dropped.
pub struct Queue {
    chunk: Vec<Draft>,
    to_renderer: SyncSender<Vec<Draft>>,
}

impl Queue {
    /// Hands `draft` on, waiting while the queue is full. Errors: the
    /// renderer or the writer stopped (the writer's own error is the one
    /// `planning` returns).
    pub fn push(&mut self, draft: Draft) -> anyhow::Result<()> {
        self.chunk.push(draft);
        if self.chunk.len() >= CHUNK {
            let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK));
            self.to_renderer
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
            let _ = self.to_renderer.send(std::mem::take(&mut self.chunk));
        }
    }
}

/// Runs `plan` on this thread with a [`Queue`] to a renderer thread
/// rendering with `templates`, and a writer thread writing through its own
/// connection to `db`; returns `plan`'s report with the others' added
/// (`planned`; `failures`: messages recorded failed at planning, an address
/// or phone that cannot be used; template errors: reminders not planned).
/// `now` (UTC) is the messages' `created_at`.
///
/// Errors: the writer's (the database cannot be opened, or a `StoreError`
/// from a write: every message before it is committed), else `plan`'s. A
/// panic on any thread goes on unwinding on this one, once the others have
/// stopped.
pub fn planning(
    db: &crate::db::Database,
    templates: &Templates,
    now: DateTime<Utc>,
    plan: impl FnOnce(Queue) -> anyhow::Result<PlanReport>,
) -> anyhow::Result<PlanReport> {
    let (to_renderer, drafts) = sync_channel(QUEUE);
    let (to_writer, rendered) = sync_channel(RENDERED);
    std::thread::scope(|scope| {
        let renderer = scope.spawn(move || render_all(templates, &drafts, &to_writer));
        // Its own connection, opened on its thread.
        let writer = scope.spawn(move || write_all(&mut db.connect()?, &rendered, now));
        // `plan` drops its queue when it returns: the renderer then renders
        // what is left and stops, and the writer commits it and stops.
        let planned = plan(Queue {
            chunk: Vec::with_capacity(CHUNK),
            to_renderer,
        });
        let template_errors = match renderer.join() {
            Ok(errors) => errors,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        let written = match writer.join() {
            Ok(written) => written?,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        let mut report = planned?;
        for e in &template_errors {
            report.template_failed(e);
        }
        report.planned += written.planned;
        report.failures.extend(written.failures);
        Ok(report)
    })
}

/// Renders every draft `inbox` brings, handing the messages to the writer a
/// chunk at a time, until the planners drop their end or the writer stops.
/// Returns the template errors, one per reminder not planned.
fn render_all(
    templates: &Templates,
    inbox: &Receiver<Vec<Draft>>,
    to_writer: &SyncSender<Vec<Planned>>,
) -> Vec<anyhow::Error> {
    let mut errors = Vec::new();
    'drafts: for drafts in inbox {
        let mut messages = Vec::with_capacity(drafts.len() * 2);
        let mut bytes = 0;
        for draft in drafts {
            match draft.render(templates) {
                Ok(made) => {
                    bytes += made.iter().map(size).sum::<usize>();
                    messages.extend(made);
                }
                Err(e) => errors.push(e),
            }
            if bytes >= CHUNK_BYTES {
                bytes = 0;
                // The writer stopped: its error is the run's.
                if to_writer.send(std::mem::take(&mut messages)).is_err() {
                    break 'drafts;
                }
            }
        }
        if !messages.is_empty() && to_writer.send(messages).is_err() {
            break;
        }
    }
    errors
}

/// The bytes of `message`'s texts, as held until written.
fn size(message: &Planned) -> usize {
    message.subject.len()
        + message.body.len()
        + message.html.as_ref().map_or(0, String::len)
        + message.payload.as_ref().map_or(0, String::len)
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
fn write_all(conn: &mut Conn, inbox: &Receiver<Vec<Planned>>, now: DateTime<Utc>) -> anyhow::Result<Written> {
    let mut written = Written::default();
    let mut in_batch = 0;
    for chunk in inbox {
        write_chunk(conn, &chunk, now, &mut written, &mut in_batch)?;
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
