//! What a run did: counts per outcome and the exit code they imply (the
//! `rappel_job_runs` row that records them is `store::runs`).

use serde::Serialize;

use crate::exit::Exit;

#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Counts {
    pub planned: u64,
    pub sent: u64,
    pub failed: u64,
    pub skipped: u64,
    pub retrying: u64,
    /// Not sent: the source no longer wanted the message (not a failure).
    pub cancelled: u64,
    /// Not tried this run: quiet hours or its kind's send window hold it
    /// (it goes when they end; not a failure).
    pub held: u64,
}

impl Counts {
    pub fn add(&mut self, other: Counts) {
        self.planned += other.planned;
        self.sent += other.sent;
        self.failed += other.failed;
        self.skipped += other.skipped;
        self.retrying += other.retrying;
        self.cancelled += other.cancelled;
        self.held += other.held;
    }

    pub fn is_empty(&self) -> bool {
        self.planned + self.sent + self.failed + self.skipped + self.retrying + self.cancelled + self.held == 0
    }
}

/// Counts and the most serious exit code seen.
#[derive(Clone, Copy, Debug)]
pub struct Tally {
    pub counts: Counts,
    pub exit: Exit,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            counts: Counts::default(),
            exit: Exit::Ok,
        }
    }
}

impl Tally {
    pub fn merge(&mut self, other: Tally) {
        self.counts.add(other.counts);
        self.exit = self.exit.max(other.exit);
    }

    pub fn raise(&mut self, exit: Exit) {
        self.exit = self.exit.max(exit);
    }
}
