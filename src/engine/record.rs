//! Recording each message's outcome right after its send, in its own
//! transaction together with the source row's bookkeeping. A row whose lease
//! this process no longer holds is left alone.

use crate::store::{self, Conn as Connection, Tx as Transaction};
use chrono::{DateTime, Utc};

use super::backoff;
use crate::channels::{SendError, Sent};
use crate::config::DeliveryConfig;
use crate::domain::ErrorClass;
use crate::store::claims::Claimed;
use crate::store::outcomes::{self, Change};

/// Keeps a source table's status column in step with its deliveries
/// (`scheduled_reports.status`, `manual_reminders.sent_at`).
pub trait SourceHook: Sync {
    /// The `source_table` value this hook owns.
    fn table(&self) -> &'static str;
    /// Called inside the transaction that recorded a delivery's new state.
    fn after_outcome(&self, tx: &Transaction<'_>, outcome: &Outcome<'_>, now: DateTime<Utc>) -> store::Result<()>;
}

/// Whose state changed: the source row a delivery was made for, named by
/// its id and identifying instant (`source_at` as stored; a row with another
/// instant is another row), and the delivery, when one alone changed (`None`
/// when several were re-armed at once).
pub struct Outcome<'a> {
    pub delivery_id: Option<i64>,
    pub source_id: i64,
    pub source_at: Option<&'a str>,
}

/// What happened to a claimed row, for the run's counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    Sent,
    /// Permanent failure, or temporary with attempts exhausted.
    Failed {
        permanent: bool,
    },
    /// Back to pending, next tried at `next` (the run's clock).
    Retrying {
        next: DateTime<Utc>,
    },
    /// Not attempted (expired validity).
    Skipped,
    /// Not attempted: its source no longer wants it (not a failure).
    Cancelled,
    /// Given back without counting the attempt (lease too short, run stopping).
    Released,
    /// Given back because the transport rejected our credentials (exit 78).
    Rejected,
    /// Another process took the row after our lease expired.
    LostLease,
}

pub struct Recorder<'a> {
    pub run_id: &'a str,
    pub delivery: &'a DeliveryConfig,
    pub hooks: &'a [&'a dyn SourceHook],
    pub now: DateTime<Utc>,
}

impl Recorder<'_> {
    pub fn sent(&self, conn: &mut Connection, row: &Claimed, sent: &Sent) -> store::Result<Effect> {
        let change = Change::Sent {
            at: self.now,
            provider_ref: sent.provider_ref.as_deref(),
        };
        self.record(conn, row, change, Effect::Sent)
    }

    pub fn failed(&self, conn: &mut Connection, row: &Claimed, err: &SendError) -> store::Result<Effect> {
        // A provider's answer may repeat our credentials: never stored as it came.
        let masked = crate::mask::mask(err.reason());
        let reason = masked.as_str();
        match err {
            SendError::Permanent(_) => self.record(
                conn,
                row,
                Change::Failed {
                    class: ErrorClass::Permanent,
                    reason,
                },
                Effect::Failed { permanent: true },
            ),
            SendError::Temporary { retry_after, .. } | SendError::Throttled { retry_after, .. } => {
                if row.attempts >= self.delivery.max_attempts {
                    let reason = format!("{reason} (gave up after {} attempts)", row.attempts);
                    return self.record(
                        conn,
                        row,
                        Change::Failed {
                            class: ErrorClass::Temporary,
                            reason: &reason,
                        },
                        Effect::Failed { permanent: false },
                    );
                }
                let wait = backoff::delay(
                    row.attempts,
                    self.delivery.retry_base,
                    self.delivery.retry_cap,
                    *retry_after,
                );
                let next = backoff::next_at(self.now, wait);
                self.record(conn, row, Change::Retry { reason, next }, Effect::Retrying { next })
            }
            SendError::Credentials(_) => Ok(match self.release(conn, row, Some(("credentials", reason)))? {
                Effect::Released => Effect::Rejected,
                other => other,
            }),
        }
    }

    /// The row is past its validity: it is not sent, and says why.
    pub fn expired(&self, conn: &mut Connection, row: &Claimed) -> store::Result<Effect> {
        let until = row.valid_until.map_or_else(|| "?".to_string(), crate::instant::format);
        let reason = format!("not sent: valid until {until}");
        let change = Change::Failed {
            class: ErrorClass::Permanent,
            reason: &reason,
        };
        self.record(conn, row, change, Effect::Skipped)
    }

    /// The source no longer wants the message: not sent, not counted as an
    /// attempt, `cancelled` with the reason.
    pub fn cancelled(&self, conn: &mut Connection, row: &Claimed, reason: &str) -> store::Result<Effect> {
        let reason = format!("cancelled: {reason}");
        self.record(conn, row, Change::Cancelled { reason: &reason }, Effect::Cancelled)
    }

    /// Not tried: its transport asked the run to wait. Back to `pending`,
    /// the attempt not counted, due again at `until` (the run's clock).
    pub fn postpone(
        &self,
        conn: &mut Connection,
        row: &Claimed,
        until: DateTime<Utc>,
        reason: &str,
    ) -> store::Result<Effect> {
        let reason = format!("not tried: {reason}");
        let change = Change::Postponed { until, reason: &reason };
        self.record(conn, row, change, Effect::Retrying { next: until })
    }

    /// Points a claimed message at the address its person has now. `None`:
    /// done, send it there; `Some`: the row is no longer this run's.
    pub fn readdress(&self, conn: &Connection, row: &Claimed, to: &str) -> store::Result<Option<Effect>> {
        let held = outcomes::readdress(conn, row.id, self.run_id, to)?;
        Ok((!held).then_some(Effect::LostLease))
    }

    /// Gives the row back to `pending` without counting the attempt.
    pub fn release(&self, conn: &mut Connection, row: &Claimed, why: Option<(&str, &str)>) -> store::Result<Effect> {
        let (class, reason) = why.unzip();
        self.record(conn, row, Change::Released { class, reason }, Effect::Released)
    }

    /// Records `change` on the claimed row and, in the same transaction, the
    /// source row's bookkeeping; `LostLease` when the row is no longer ours.
    fn record(
        &self,
        conn: &mut Connection,
        row: &Claimed,
        change: Change<'_>,
        effect: Effect,
    ) -> store::Result<Effect> {
        let tx = store::begin(conn)?;
        if !outcomes::record(&tx, row.id, self.run_id, &change)? {
            return Ok(Effect::LostLease);
        }
        if let (Some(table), Some(source_id)) = (row.source_table.as_deref(), row.source_id)
            && let Some(hook) = self.hooks.iter().find(|h| h.table() == table)
        {
            let outcome = Outcome {
                delivery_id: Some(row.id),
                source_id,
                source_at: row.source_at.as_deref(),
            };
            hook.after_outcome(&tx, &outcome, self.now)?;
        }
        tx.commit()?;
        Ok(effect)
    }
}
