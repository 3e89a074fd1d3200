//! The last look before a send: a message waits in the outbox (a retry, a
//! slow queue), and meanwhile its source may stop wanting it: the loan was
//! returned, the session cancelled, the contact opted out. Each job says,
//! for its own messages, whether the source still does (DESIGN §9, status
//! `cancelled`).

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
}
