//! Twilio's later word on WhatsApp and SMS messages: each run asks about the
//! ones sent in the last 48 hours that are not final, and records it in
//! `provider_status` (never in `status`: the message did leave). Final
//! statuses: delivered, read, undelivered, failed.

use chrono::{DateTime, Duration, Utc};
use rusqlite::{Connection, params};

use crate::channels::SendError;
use crate::channels::twilio::TwilioChannel;
use crate::instant;

/// What an error code means for the person reading the log.
fn explain(code: i64) -> String {
    match code {
        63016 => "Twilio error 63016: the message was outside WhatsApp's 24-hour window and needs an approved \
                  template (set whatsapp.content_sids for this kind)"
            .into(),
        code => format!("Twilio error {code} after sending"),
    }
}

/// Refreshes what it can; returns how many messages changed. A transport
/// problem ends the refresh quietly: the next run asks again.
pub fn refresh(conn: &Connection, twilio: &TwilioChannel, now: DateTime<Utc>) -> anyhow::Result<usize> {
    let since = instant::format(now - Duration::hours(48));
    let pending: Vec<(i64, String)> = {
        let mut stmt = conn.prepare(
            "SELECT id, provider_ref FROM deliveries
             WHERE channel IN ('whatsapp', 'sms') AND status = 'sent' AND sent_at >= ?1
               AND provider_ref IS NOT NULL AND provider_ref NOT LIKE 'file:%'
               AND (provider_status IS NULL OR provider_status NOT IN ('delivered', 'read', 'undelivered', 'failed'))
             ORDER BY id",
        )?;
        let rows = stmt.query_map([since], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut changed = 0;
    for (id, sid) in pending {
        let status = match twilio.status(&sid) {
            Ok(Some(s)) => s,
            Ok(None) => return Ok(changed),
            Err(SendError::Permanent(e)) => {
                log::warn!("delivery {id}: status of {sid}: {e}");
                continue;
            }
            Err(e) => {
                log::warn!("status refresh stopped: {e}");
                return Ok(changed);
            }
        };
        let error = status.error_code.filter(|c| *c != 0).map(explain);
        if let Some(e) = &error {
            log::warn!("delivery {id} ({sid}): {}: {e}", status.status);
        }
        changed += conn.execute(
            "UPDATE deliveries SET provider_status = ?2, last_error = coalesce(?3, last_error)
             WHERE id = ?1 AND provider_status IS NOT ?2",
            params![id, status.status, error],
        )?;
    }
    Ok(changed)
}
