//! Twilio's later word on WhatsApp and SMS messages: each run asks about the
//! ones sent in the last 48 hours that are not final, and records it in
//! `provider_status` (never in `status`: the message did leave). Final
//! statuses: delivered, read, undelivered, failed.

use crate::store::Conn;
use chrono::{DateTime, Duration, Utc};

use crate::channels::SendError;
use crate::channels::twilio::TwilioChannel;
use crate::store::deliveries;

/// What an error code means for the person reading the log.
fn explain(code: i64) -> String {
    match code {
        63016 => "Twilio error 63016: the message was outside WhatsApp's 24-hour window and needs an approved \
                  template (set whatsapp.content_sids for this kind)"
            .into(),
        code => format!("Twilio error {code} after sending"),
    }
}

/// Refreshes what it can; returns how many messages changed, or `None`
/// when Twilio could not be asked about every one (a transport problem ends
/// the refresh quietly: the next run asks again; meanwhile no message falls
/// back for want of a status, `fallback::standing`).
pub fn refresh(conn: &Conn, twilio: &TwilioChannel, now: DateTime<Utc>) -> anyhow::Result<Option<usize>> {
    let pending = deliveries::awaiting_provider_status(conn, now - Duration::hours(48))?;
    let mut changed = 0;
    for (id, sid) in pending {
        let status = match twilio.status(&sid) {
            Ok(Some(s)) => s,
            Ok(None) => return Ok(None),
            Err(SendError::Permanent(e)) => {
                log::warn!("delivery {id}: status of {sid}: {e}");
                continue;
            }
            Err(e) => {
                log::warn!("status refresh stopped: {e}");
                return Ok(None);
            }
        };
        let error = status.error_code.filter(|c| *c != 0).map(explain);
        if let Some(e) = &error {
            log::warn!("delivery {id} ({sid}): {}: {e}", status.status);
        }
        changed += deliveries::set_provider_status(conn, id, &status.status, error.as_deref())?;
    }
    Ok(Some(changed))
}
