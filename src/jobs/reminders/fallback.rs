//! Channel fallback (`[reminders] channels = "first"`, DESIGN §9): a reminder
//! goes on the first channel of `channel_order` that the contact can be
//! reached on; the next channel's message is planned, as a delivery of its
//! own naming the one it replaces, once the previous one did not reach them.

use chrono::{DateTime, Duration, Utc};

use crate::domain::{Channel, DeliveryStatus};
use crate::store::deliveries::Attempt;

/// Where a reminder's message on one channel stands.
#[derive(Debug, PartialEq, Eq)]
pub enum Standing {
    /// Not settled yet: pending, being sent, or sent and awaiting Twilio's
    /// word within `fallback_after_minutes`.
    Waiting,
    /// It reached the person (an email sent, a message delivered or read), or
    /// was cancelled at its source: no other channel is tried.
    Settled,
    /// It did not reach them: the next channel is tried.
    FellThrough,
}

/// Judges `attempt` at `now` (UTC), `after` being `fallback_after_minutes`;
/// `asked`: whether this run could ask Twilio for its statuses (when it
/// could not, silence proves nothing and does not make a message fall
/// through).
///
/// Falls through: failed for good (a permanent error, or the last attempt's
/// temporary one), or a WhatsApp or SMS message Twilio reports `undelivered`
/// or `failed` (63016 outside the 24-hour window, a number without
/// WhatsApp...), or one sent `after` ago or more without `delivered` or
/// `read`. An email has no delivery report: sent is settled. A message of
/// the file transport never gets a report: sent is settled.
pub fn standing(attempt: &Attempt, now: DateTime<Utc>, after: Duration, asked: bool) -> Standing {
    match attempt.status {
        DeliveryStatus::Pending | DeliveryStatus::Sending => Standing::Waiting,
        DeliveryStatus::Failed => Standing::FellThrough,
        DeliveryStatus::Cancelled => Standing::Settled,
        DeliveryStatus::Sent => {
            if attempt.channel == Channel::Email
                || attempt.provider_ref.as_deref().is_some_and(|r| r.starts_with("file:"))
            {
                return Standing::Settled;
            }
            match attempt.provider_status.as_deref() {
                Some("delivered" | "read") => Standing::Settled,
                Some("undelivered" | "failed") => Standing::FellThrough,
                _ if asked && attempt.sent_at.is_some_and(|at| now >= at + after) => Standing::FellThrough,
                _ => Standing::Waiting,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn sent(channel: Channel, provider_status: Option<&str>) -> Attempt {
        Attempt {
            status: DeliveryStatus::Sent,
            channel,
            provider_status: provider_status.map(str::to_string),
            provider_ref: Some("SM1".into()),
            sent_at: Some(at("2026-03-10T08:00:00Z")),
            id: 1,
        }
    }

    #[test]
    fn a_message_falls_through_when_it_did_not_reach_the_person() {
        let after = Duration::minutes(30);
        let (soon, late) = (at("2026-03-10T08:29:59Z"), at("2026-03-10T08:30:00Z"));
        let w = |s| standing(&sent(Channel::Whatsapp, s), soon, after, true);
        assert_eq!(w(None), Standing::Waiting);
        assert_eq!(w(Some("sent")), Standing::Waiting);
        assert_eq!(w(Some("delivered")), Standing::Settled);
        assert_eq!(w(Some("read")), Standing::Settled);
        assert_eq!(w(Some("undelivered")), Standing::FellThrough);
        assert_eq!(w(Some("failed")), Standing::FellThrough);
        assert_eq!(
            standing(&sent(Channel::Sms, None), late, after, true),
            Standing::FellThrough
        );
        assert_eq!(
            standing(&sent(Channel::Sms, None), late, after, false),
            Standing::Waiting,
            "Twilio could not be asked: silence proves nothing"
        );
        assert_eq!(
            standing(&sent(Channel::Sms, Some("undelivered")), late, after, false),
            Standing::FellThrough
        );
        assert_eq!(
            standing(&sent(Channel::Sms, Some("delivered")), late, after, true),
            Standing::Settled
        );
        assert_eq!(
            standing(&sent(Channel::Email, None), late, after, true),
            Standing::Settled
        );
        let file = Attempt {
            provider_ref: Some("file:outbox/1.json".into()),
            ..sent(Channel::Whatsapp, None)
        };
        assert_eq!(standing(&file, late, after, true), Standing::Settled);
        for (status, expected) in [
            (DeliveryStatus::Pending, Standing::Waiting),
            (DeliveryStatus::Sending, Standing::Waiting),
            (DeliveryStatus::Failed, Standing::FellThrough),
            (DeliveryStatus::Cancelled, Standing::Settled),
        ] {
            let a = Attempt {
                status,
                ..sent(Channel::Whatsapp, None)
            };
            assert_eq!(standing(&a, late, after, true), expected, "{status:?}");
        }
    }
}
