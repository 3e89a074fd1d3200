//! Planned messages: what a job hands the engine, inserted with its
//! de-duplication key in the job's own transaction (`store::deliveries`).

use chrono::{DateTime, Utc};
use serde::Serialize;

/// One message a job wants sent. The dedupe key makes planning idempotent.
#[derive(Clone, Debug, Serialize)]
pub struct Planned {
    pub job: crate::domain::Job,
    pub kind: crate::domain::Kind,
    pub dedupe_key: String,
    pub source_table: Option<&'static str>,
    pub source_id: Option<i64>,
    /// With `source_id`, names the source row: its own creation or scheduling
    /// instant (`db::identity`), as a host may reuse a deleted row's id.
    pub source_at: Option<DateTime<Utc>>,
    pub contact_id: Option<i64>,
    pub channel: crate::domain::Channel,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub html: Option<String>,
    pub valid_until: Option<DateTime<Utc>>,
    /// A file sent with the message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attachment: Option<AttachmentSpec>,
    /// Channel extras (JSON), such as a WhatsApp template.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// Known at planning to be undeliverable (invalid address): recorded as
    /// failed, never sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
    /// Indented lines a dry run prints under the message (tickets of a digest...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub detail: Vec<String>,
    /// When it fell due (a reminder's slot, a report's time, a delay
    /// alert's re-arm slot), UTC; `None` for a message made on the spot.
    /// Not stored: `rappel upcoming` tells by it when a message goes.
    #[serde(skip)]
    pub due_at: Option<DateTime<Utc>>,
    /// The dedupe key of the delivery this one replaces on another channel
    /// (channel fallback, `[reminders] channels = "first"`): stored as its
    /// id in `replaces_id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
    /// In a dry run: quiet hours or its kind's send window would hold it
    /// until this instant (UTC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_until: Option<DateTime<Utc>>,
}

impl Planned {
    /// A message from `job`, of `kind`, under `dedupe_key`, on `channel` to
    /// `recipient` with `subject` and `body`; every other field empty (no
    /// source, no HTML, no attachment...), for the caller to set those that
    /// apply with struct update syntax.
    pub fn new(
        job: super::Job,
        kind: super::Kind,
        dedupe_key: String,
        channel: super::Channel,
        recipient: String,
        subject: String,
        body: String,
    ) -> Planned {
        Planned {
            job,
            kind,
            dedupe_key,
            source_table: None,
            source_id: None,
            source_at: None,
            contact_id: None,
            channel,
            recipient,
            subject,
            body,
            html: None,
            valid_until: None,
            attachment: None,
            payload: None,
            failed: None,
            detail: Vec::new(),
            due_at: None,
            replaces: None,
            held_until: None,
        }
    }

    /// An email with its rendered subject, text and HTML (`new` otherwise).
    pub fn email(
        job: super::Job,
        kind: super::Kind,
        dedupe_key: String,
        recipient: String,
        rendered: crate::templates::Rendered,
    ) -> Planned {
        Planned {
            html: rendered.html,
            ..Planned::new(
                job,
                kind,
                dedupe_key,
                super::Channel::Email,
                recipient,
                rendered.subject,
                rendered.text,
            )
        }
    }
}

/// A file attached to a message, read when the message is sent.
#[derive(Clone, Debug, Serialize)]
pub struct AttachmentSpec {
    pub path: String,
    pub name: String,
    pub mime: String,
}
