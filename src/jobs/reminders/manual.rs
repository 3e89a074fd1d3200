//! `manual` reminders: a message a parent (or anyone) wrote to a student in
//! `manual_reminders`, sent at the next run with its author named, valid a
//! week. `sent_at` is set in the transaction that records the first delivery
//! that went out.

use crate::domain::Kind;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::ContactCtx;
use super::contact::Contact;
use super::emit::{Due, Emitter};
use crate::engine::record::{Outcome, SourceHook};
use crate::instant;
use crate::store::reminders::AlsoSent;
use crate::store::{self, Tx};
use crate::templates::local_datetime;

pub const TABLE: &str = "manual_reminders";

/// WhatsApp and SMS carry at most this many characters of the author's text;
/// Twilio refuses bodies over 1,600 and the template needs room around it.
pub const SHORT_MAX: usize = 1000;

#[derive(Serialize)]
struct Author<'a> {
    name: &'a str,
    /// The student's parent (`students.parent_contact_id`).
    parent: bool,
}

#[derive(Serialize)]
struct ManualCtx<'a> {
    kind: Kind,
    contact: ContactCtx<'a>,
    /// `none` when the row names no author.
    author: Option<Author<'a>>,
    /// The author's text, whole (email; escaped in HTML like all data).
    message: &'a str,
    /// At most `SHORT_MAX` characters, for WhatsApp and SMS.
    message_short: String,
    /// Whether `message_short` was cut.
    truncated: bool,
    created_local: String,
    site_url: Option<&'a str>,
}

pub fn plan(em: &mut Emitter<'_>) -> anyhow::Result<()> {
    if !em.r.wanted(Kind::Manual) {
        return Ok(());
    }
    let (conn, ctx) = (em.conn, em.ctx);
    let Some(only) = em.only(TABLE) else {
        return Ok(());
    };
    // A probe also reads a reminder already sent on one channel: its other
    // channels still go. Under `channels = "first"`, so do runs, for the
    // week a reminder is valid: its next channel may fall due.
    let also = if em.is_probe() {
        AlsoSent::All
    } else if em.r.cfg.policy(Kind::Manual) == crate::config::ChannelPolicy::First {
        AlsoSent::Since(ctx.now - Duration::days(8))
    } else {
        AlsoSent::No
    };
    let mut reminders = store::reminders::manual_reminders(conn, also, only)?;
    for row in reminders.iter()? {
        let row = row?;
        let id = row.id;
        let raw = row.created_at;
        let Some(created) = raw.as_deref().and_then(|s| instant::parse_in(s, ctx.naive_zone)) else {
            em.bad_instant(TABLE, id, "created_at", raw.as_deref(), "reminder skipped");
            continue;
        };
        // The row's name in keys, whatever naive_timezone says (db::identity).
        let source_at = raw.as_deref().and_then(instant::parse);
        // Older than its week: expired long ago, counted when it expired.
        if created + Duration::days(8) < em.since().min(ctx.now) {
            continue;
        }
        let Some(contact) = Contact::from_row(
            row.contact,
            ((TABLE, id), "student_id (or its student's contact_id)"),
            ctx,
            &mut em.report,
        ) else {
            continue;
        };
        let message = row.message.unwrap_or_default();
        let author_id = row.author_contact_id;
        let parent_id = row.parent_contact_id;
        let author_name = row.author_name;
        let due = Due {
            kind: Kind::Manual,
            source_table: TABLE,
            source_id: id,
            source_at,
            about: None,
            at: created,
            valid_until: created + Duration::days(7),
        };
        em.emit(&due, &contact, |locale| {
            let (message_short, truncated) = crate::shorten::cut(&message, SHORT_MAX);
            ManualCtx {
                kind: Kind::Manual,
                contact: ContactCtx { name: &contact.name },
                author: author_name.as_deref().map(|name| Author {
                    name,
                    parent: author_id.is_some() && author_id == parent_id,
                }),
                message: &message,
                message_short,
                truncated,
                created_local: local_datetime(created, contact.zone, locale),
                site_url: ctx.site_url,
            }
        })?;
    }
    Ok(())
}

/// Sets `manual_reminders.sent_at` once one of its messages went out.
pub struct ManualHook;

impl SourceHook for ManualHook {
    fn table(&self) -> &'static str {
        TABLE
    }

    fn after_outcome(&self, tx: &Tx<'_>, outcome: &Outcome<'_>, now: DateTime<Utc>) -> store::Result<()> {
        store::reminders::set_manual_sent(tx, outcome.source_id, outcome.source_at, now)
    }
}

/// Template data for `config check`.
pub fn sample(optional_present: bool) -> serde_json::Value {
    let message = "N'oublie pas <b>ton</b> cahier & ta calculatrice !\nBisous";
    let (message_short, truncated) = crate::shorten::cut(message, 30);
    serde_json::to_value(ManualCtx {
        kind: Kind::Manual,
        contact: ContactCtx { name: "Léa <Mba>" },
        author: optional_present.then_some(Author {
            name: "Marie \"Maman\" Mba",
            parent: true,
        }),
        message,
        message_short,
        truncated,
        created_local: "09/03/2026 19:12".into(),
        site_url: optional_present.then_some("https://example.com"),
    })
    .unwrap_or_default()
}
