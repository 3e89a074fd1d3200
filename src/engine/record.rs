//! What becomes of each claimed message: decided right after its send
//! (`Recorder`, no database), then written with its source row's
//! bookkeeping (`write`, by the outcome writer, `writer.rs`). A row whose
//! lease this process no longer holds is left alone.

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
    /// Not attempted: quiet hours or a send window hold it until `until`
    /// (the run's clock); not a failure.
    Held {
        until: DateTime<Utc>,
    },
    /// Given back without counting the attempt (lease too short, run stopping).
    Released,
    /// Given back because the transport rejected our credentials (exit 78).
    Rejected,
    /// Another process took the row after our lease expired.
    LostLease,
}

/// A claimed message's outcome, decided and waiting to be written.
#[derive(Debug)]
pub struct Decided {
    pub delivery_id: i64,
    /// The source row (`source_table`, `source_id`, `source_at` as stored).
    pub source: Option<(String, i64, Option<String>)>,
    pub change: Change,
    /// What the run counts once the change is written (`LostLease` instead
    /// when the row is no longer this run's).
    pub effect: Effect,
    /// For the run's log: the message's kind and recipient.
    pub kind: String,
    pub recipient: String,
}

/// Decides outcomes for one run: its id, delivery settings and clock.
pub struct Recorder<'a> {
    pub run_id: &'a str,
    pub delivery: &'a DeliveryConfig,
    pub now: DateTime<Utc>,
}

impl Recorder<'_> {
    /// Accepted by the transport, with its id for the message when it gave one.
    pub fn sent(&self, row: &Claimed, sent: Sent) -> Decided {
        let change = Change::Sent {
            at: self.now,
            provider_ref: sent.provider_ref,
        };
        decided(row, change, Effect::Sent)
    }

    /// Refused or not reached: failed for good, retried after a backoff
    /// (failed once `delivery.max_attempts` are spent), or given back when
    /// the credentials were rejected.
    pub fn failed(&self, row: &Claimed, err: &SendError) -> Decided {
        // A provider's answer may repeat our credentials: never stored as it
        // came; and it is stored on one line, whatever line breaks it had.
        let reason = crate::mask::mask_line(err.reason());
        match err {
            SendError::Permanent(_) => decided(
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
                    return decided(
                        row,
                        Change::Failed {
                            class: ErrorClass::Temporary,
                            reason,
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
                decided(row, Change::Retry { reason, next }, Effect::Retrying { next })
            }
            SendError::Credentials(_) => decided(
                row,
                Change::Released {
                    class: Some("credentials"),
                    reason: Some(reason),
                },
                Effect::Rejected,
            ),
        }
    }

    /// The row is past its validity: it is not sent, and says why.
    pub fn expired(&self, row: &Claimed) -> Decided {
        let until = row.valid_until.map_or_else(|| "?".to_string(), crate::instant::format);
        let change = Change::Failed {
            class: ErrorClass::Permanent,
            reason: format!("not sent: valid until {until}"),
        };
        decided(row, change, Effect::Skipped)
    }

    /// The source no longer wants the message: not sent, not counted as an
    /// attempt, `cancelled` with the reason.
    pub fn cancelled(&self, row: &Claimed, reason: &str) -> Decided {
        let change = Change::Cancelled {
            reason: format!("cancelled: {reason}"),
        };
        decided(row, change, Effect::Cancelled)
    }

    /// Not tried: its transport asked the run to wait. Back to `pending`,
    /// the attempt not counted, due again at `until` (the run's clock).
    pub fn postpone(&self, row: &Claimed, until: DateTime<Utc>, reason: &str) -> Decided {
        let change = Change::Postponed {
            until,
            reason: format!("not tried: {reason}"),
        };
        decided(row, change, Effect::Retrying { next: until })
    }

    /// Not tried: quiet hours or its kind's send window hold it (`quiet`).
    /// Back to `pending`, the attempt not counted, due again at `until`
    /// (the run's clock); not a failure.
    pub fn held(&self, row: &Claimed, until: DateTime<Utc>) -> Decided {
        let change = Change::Held {
            until,
            reason: format!(
                "held: quiet hours or send window until {}",
                crate::instant::format(until)
            ),
        };
        decided(row, change, Effect::Held { until })
    }

    /// Held past the end of its validity: not sent, as an expired message,
    /// saying why.
    pub fn held_past_validity(&self, row: &Claimed, until: DateTime<Utc>) -> Decided {
        let valid = row.valid_until.map_or_else(|| "?".to_string(), crate::instant::format);
        let change = Change::Failed {
            class: ErrorClass::Permanent,
            reason: format!(
                "not sent: valid until {valid}, held by quiet hours or send window until {}",
                crate::instant::format(until)
            ),
        };
        decided(row, change, Effect::Skipped)
    }

    /// Gives the row back to `pending` without counting the attempt.
    pub fn release(&self, row: &Claimed) -> Decided {
        decided(
            row,
            Change::Released {
                class: None,
                reason: None,
            },
            Effect::Released,
        )
    }

    /// Points a claimed message at the address its person has now, at once
    /// (before its send). `None`: done, send it there; `Some`: the row is no
    /// longer this run's. Errors: `StoreError`.
    pub fn readdress(&self, conn: &Connection, row: &Claimed, to: &str) -> store::Result<Option<Effect>> {
        let held = outcomes::readdress(conn, row.id, self.run_id, to)?;
        Ok((!held).then_some(Effect::LostLease))
    }
}

fn decided(row: &Claimed, change: Change, effect: Effect) -> Decided {
    Decided {
        delivery_id: row.id,
        source: row
            .source_table
            .clone()
            .zip(row.source_id)
            .map(|(table, id)| (table, id, row.source_at.clone())),
        change,
        effect,
        kind: row.kind.clone(),
        recipient: row.recipient.clone(),
    }
}

/// Writes `d` on its row, if run `run_id` still holds it, and in the same
/// transaction the source row's bookkeeping (the hook owning its table;
/// `now` is the run's clock). Returns the effect to count: `d.effect`, or
/// `LostLease` when the row is no longer this run's. Errors: `StoreError`.
pub fn write(
    tx: &Transaction<'_>,
    run_id: &str,
    hooks: &[&dyn SourceHook],
    now: DateTime<Utc>,
    d: &Decided,
) -> store::Result<Effect> {
    if !outcomes::record(tx, d.delivery_id, run_id, &d.change)? {
        return Ok(Effect::LostLease);
    }
    if let Some((table, source_id, at)) = &d.source
        && let Some(hook) = hooks.iter().find(|h| h.table() == table)
    {
        let outcome = Outcome {
            delivery_id: Some(d.delivery_id),
            source_id: *source_id,
            source_at: at.as_deref(),
        };
        hook.after_outcome(tx, &outcome, now)?;
    }
    Ok(d.effect)
}
