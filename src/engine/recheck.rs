//! The last look before a send: a message waits in the outbox (a retry, a
//! slow queue), and meanwhile its source may stop wanting it: the loan was
//! returned, the session cancelled, the contact opted out. Each job says,
//! for its own messages, whether the source still does (DESIGN §9, status
//! `cancelled`).

use std::ops::Range;
use std::time::{Duration, Instant};

use crate::store::{self, Conn};
use chrono::{DateTime, Utc};

use crate::store::claims::Claimed;

/// What becomes of a claimed message after its source was read again.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send it as planned.
    Send,
    /// Send it, to the person's address (or number) as it is now: the host
    /// corrected it while the message waited.
    SendTo(String),
    /// Do not send it: it ends `cancelled` with this reason.
    Cancel(String),
}

/// A job's check of its claimed messages against their source rows.
pub trait Recheck: Sync {
    /// The `rappel_deliveries.job` whose messages this checks.
    fn job(&self) -> crate::domain::Job;

    /// Reads the message's source as it is now (`now` is the run's clock).
    fn recheck(&self, conn: &Conn, row: &Claimed, now: DateTime<Utc>) -> store::Result<Verdict>;

    /// The verdicts of `rows`, all of this job, in their order: by default
    /// each row read on its own ([`Recheck::recheck`]). A job that reads
    /// them together overrides it, and says so in
    /// [`Recheck::reads_together`]. Errors: as `recheck`'s, for them all.
    fn recheck_all(&self, conn: &Conn, rows: &[Claimed], now: DateTime<Utc>) -> store::Result<Vec<Verdict>> {
        rows.iter().map(|row| self.recheck(conn, row, now)).collect()
    }

    /// Whether [`Recheck::recheck_all`] reads its rows in a fixed number of
    /// statements whatever their number: on a server, a look then reads
    /// the next rows of a claim with the first, in as many round trips as
    /// one row takes (`Looks::span`).
    fn reads_together(&self) -> bool {
        false
    }
}

/// How long a last look stays good. A worker reads the sources of its next
/// claimed rows together, in one read transaction, and uses each verdict
/// for a send that starts within this time; an older one is read again.
/// On SQLite a read that follows another connection's commit starts from
/// an empty page cache, so a look per message cost a quarter of the
/// delivery's time (`bench/run.sh send`; docs/guarantees.md).
pub const LOOK_FOR: Duration = Duration::from_millis(100);

/// Rows looked at together at first (one: a look may be costly, and its
/// cost is known once it is read), and at the most (the largest claim's
/// size, a server's: a look never reads past its claim, so SQLite's claims
/// of 32 are read in looks of 32 at most).
const AHEAD_FIRST: usize = 1;
const AHEAD_MAX: usize = super::CLAIM_BATCH_SERVER;

/// The verdicts of one claim's rows, read ahead of their sends. How many
/// rows one look covers adapts to the sends' pace: it doubles while every
/// verdict read is used within [`LOOK_FOR`], and halves when one is not,
/// so a slow server does not have each look read rows it cannot reach in
/// time. A look that itself takes a quarter of [`LOOK_FOR`] or more (a
/// digest of thousands of tickets) reads one row at a time: it has nothing
/// to share with the next, and its verdicts would age before they are used.
#[derive(Debug)]
pub struct Looks {
    verdicts: Vec<Option<Verdict>>,
    /// When the verdicts held were read.
    read_at: Option<Instant>,
    /// The row after the last look's.
    reach: usize,
    ahead: usize,
    /// The last look took a quarter of `LOOK_FOR` or more.
    costly: bool,
}

impl Looks {
    /// No verdicts yet, for a claim of `rows` rows.
    pub fn new(rows: usize) -> Self {
        Looks {
            verdicts: (0..rows).map(|_| None).collect(),
            read_at: None,
            reach: 0,
            ahead: AHEAD_FIRST,
            costly: false,
        }
    }

    /// No verdicts yet, for a claim of `rows` rows whose first look reads
    /// as many as it may at once: on a server, for a job that reads its
    /// rows together, where one row or 128 cost one round trip. A look that
    /// proves costly, or verdicts that age before their sends, narrow it
    /// as they do any look. 10,000 digests in claims of 32 took 1,900 looks
    /// over 330 claims starting from one row, and 330 so; in claims of
    /// 128, a server's, one look each (`bench/run.sh postgres_send`).
    pub fn wide(rows: usize) -> Self {
        Looks {
            ahead: AHEAD_MAX,
            ..Looks::new(rows)
        }
    }

    /// Row `i`'s verdict, when one was read less than [`LOOK_FOR`] before
    /// `at`; `None` when it must be read (again).
    pub fn take(&mut self, i: usize, at: Instant) -> Option<Verdict> {
        let fresh = self
            .read_at
            .is_some_and(|read| at.saturating_duration_since(read) < LOOK_FOR);
        match self.verdicts.get_mut(i).and_then(Option::take) {
            Some(v) if fresh => Some(v),
            Some(_) => {
                // Read too early: the sends are slower than the look's reach.
                self.ahead = (self.ahead / 2).max(1);
                None
            }
            None => {
                if self.read_at.is_some() && i >= self.reach && !self.costly {
                    // Every row of the last look was reached in time.
                    self.ahead = (self.ahead * 2).min(AHEAD_MAX);
                }
                None
            }
        }
    }

    /// Whether row `i` is known not to go: its verdict, read and not yet
    /// used, is a cancellation.
    pub fn cancels(&self, i: usize) -> bool {
        matches!(self.verdicts.get(i), Some(Some(Verdict::Cancel(_))))
    }

    /// The rows the next look reads, from row `i`: as many as the pace
    /// allows, or one when `one` (a server, for a job that reads a row at
    /// a time: a look ahead there only adds round trips).
    pub fn span(&self, i: usize, one: bool) -> Range<usize> {
        let n = if one { 1 } else { self.ahead };
        i..(i + n).min(self.verdicts.len())
    }

    /// Keeps `verdicts`, read from `at` on for `took`, for the rows from `i` on.
    pub fn fill(&mut self, i: usize, verdicts: impl IntoIterator<Item = Verdict>, at: Instant, took: Duration) {
        self.costly = took >= LOOK_FOR / 4;
        if self.costly {
            self.ahead = 1;
        }
        for slot in self.verdicts.iter_mut() {
            *slot = None;
        }
        self.reach = i;
        for (slot, v) in self.verdicts.iter_mut().skip(i).zip(verdicts) {
            *slot = Some(v);
            self.reach += 1;
        }
        self.read_at = Some(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_verdict_serves_a_send_within_the_window_only() {
        let t0 = Instant::now();
        let mut looks = Looks::new(10);
        assert_eq!(looks.take(0, t0), None, "nothing read yet");
        assert_eq!(looks.span(0, false), 0..1, "one row at first");
        looks.fill(
            0,
            [
                Verdict::Send,
                Verdict::Cancel("closed".into()),
                Verdict::Send,
                Verdict::Send,
            ],
            t0,
            ms(1),
        );
        assert_eq!(looks.take(0, t0 + ms(10)), Some(Verdict::Send));
        assert_eq!(looks.take(1, t0 + ms(99)), Some(Verdict::Cancel("closed".into())));
        assert_eq!(looks.take(1, t0 + ms(99)), None, "a verdict serves one send");
        assert_eq!(looks.take(2, t0 + LOOK_FOR), None, "read too long ago: read again");
        assert_eq!(looks.span(2, false), 2..3, "and no more rows at once");
        assert_eq!(looks.span(2, true), 2..3, "one row on a server");
    }

    #[test]
    fn the_reach_doubles_while_every_verdict_is_used_in_time_and_stays_within_the_claim() {
        let t0 = Instant::now();
        let mut looks = Looks::new(300);
        let mut i = 0;
        let mut spans = Vec::new();
        while i < 300 {
            assert_eq!(looks.take(i, t0), None);
            let span = looks.span(i, false);
            spans.push(span.len());
            looks.fill(i, span.clone().map(|_| Verdict::Send), t0, ms(1));
            for j in span.clone() {
                assert_eq!(looks.take(j, t0 + ms(1)), Some(Verdict::Send));
            }
            i = span.end;
        }
        assert_eq!(spans, [1, 2, 4, 8, 16, 32, 64, 128, 45]);
        // At the largest reach, 128: a verdict read too long before its
        // send halves it.
        let mut looks = Looks::new(400);
        for i in [0, 1, 3, 7, 15, 31, 63, 127] {
            assert_eq!(looks.take(i, t0), None);
            let span = looks.span(i, false);
            looks.fill(i, span.map(|_| Verdict::Send), t0, ms(1));
        }
        assert_eq!(looks.span(255, false).len(), 128);
        looks.fill(255, (0..128).map(|_| Verdict::Send), t0, ms(1));
        assert_eq!(looks.take(256, t0 + LOOK_FOR), None);
        assert_eq!(looks.span(256, false).len(), 64, "halved");
    }

    #[test]
    fn a_wide_start_reads_the_claim_at_once_and_narrows_when_verdicts_age() {
        let t0 = Instant::now();
        let mut looks = Looks::wide(140);
        assert_eq!(looks.span(0, false), 0..128);
        looks.fill(0, (0..128).map(|_| Verdict::Send), t0, ms(1));
        assert_eq!(looks.take(0, t0 + ms(1)), Some(Verdict::Send));
        assert_eq!(looks.take(1, t0 + LOOK_FOR), None, "aged: read again");
        assert_eq!(looks.span(1, false), 1..65, "and half as many at once");
        // A claim of SQLite's size is read whole.
        assert_eq!(Looks::wide(32).span(0, false), 0..32);
    }

    #[test]
    fn a_costly_look_reads_one_row_at_a_time() {
        let t0 = Instant::now();
        let mut looks = Looks::new(10);
        looks.fill(
            0,
            [Verdict::Send, Verdict::Send, Verdict::Send, Verdict::Send],
            t0,
            LOOK_FOR / 4,
        );
        assert_eq!(looks.take(0, t0), Some(Verdict::Send));
        assert_eq!(
            looks.take(1, t0 + ms(1)),
            Some(Verdict::Send),
            "what was read still serves"
        );
        assert_eq!(looks.take(4, t0 + ms(2)), None);
        assert_eq!(looks.span(4, false), 4..5, "one row next time");
    }
}
