//! The delay alerts' host reads: open tickets' stage events, a ticket's
//! details and current entry, and who receives alerts (`alert_recipients`
//! joined to `contacts`). Host columns are read as written (DESIGN §4):
//! through `db::loose`, never by their declared type.

use rusqlite::types::ValueRef;
use rusqlite::{OptionalExtension, params};

use super::{Conn, Result};
use crate::db::loose;

/// One stage event of an open ticket, as the host wrote it.
#[derive(Debug)]
pub struct StageEvent {
    pub ticket_id: i64,
    pub event_id: i64,
    /// `stage`, or `None` when it is not text.
    pub stage: Option<String>,
    /// `entered_at` as text, or the SQL type it holds instead (`Integer`,
    /// `Null`…) as `Err`.
    pub entered_at: std::result::Result<String, String>,
}

/// Calls `f` with each stage event of every ticket whose `closed_at` is
/// NULL, grouped by ticket (ascending id), streaming: a large host table is
/// never held whole. Errors: `StoreError` (the tables unreadable, an id not
/// an integer).
pub fn each_open_stage_event(conn: &Conn, mut f: impl FnMut(StageEvent)) -> Result<()> {
    let mut stmt = conn.prepare(
        "SELECT t.id, e.id, e.stage, e.entered_at
         FROM tickets t JOIN ticket_events e ON e.ticket_id = t.id
         WHERE t.closed_at IS NULL
         ORDER BY t.id",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let stage = match row.get_ref(2)? {
            ValueRef::Text(s) => Some(String::from_utf8_lossy(s).into_owned()),
            _ => None,
        };
        let entered_at = match row.get_ref(3)? {
            ValueRef::Text(s) => Ok(String::from_utf8_lossy(s).into_owned()),
            other => Err(format!("{:?}", other.data_type())),
        };
        f(StageEvent {
            ticket_id: row.get(0)?,
            event_id: row.get(1)?,
            stage,
            entered_at,
        });
    }
    Ok(())
}

/// What a delay alert shows of a ticket (empty text for NULL).
#[derive(Debug, Default)]
pub struct TicketDetails {
    pub reference: String,
    pub device: String,
    pub customer: String,
}

/// The ticket's reference, device and customer; `None` when the ticket is
/// gone. Errors: `StoreError`.
pub fn details(conn: &Conn, ticket_id: i64) -> Result<Option<TicketDetails>> {
    Ok(conn
        .prepare_cached("SELECT reference, device, customer FROM tickets WHERE id = ?1")?
        .query_row([ticket_id], |r| {
            Ok(TicketDetails {
                reference: text(r.get_ref(0)?),
                device: text(r.get_ref(1)?),
                customer: text(r.get_ref(2)?),
            })
        })
        .optional()?)
}

/// The stage events of ticket `ticket_id` while it is open: each event's id
/// and `entered_at` as text (empty for NULL); `None` when the ticket is
/// closed or gone. One statement: this is read before every delay digest
/// goes. Errors: `StoreError`.
pub fn open_events(conn: &Conn, ticket_id: i64) -> Result<Option<Vec<(i64, String)>>> {
    let mut stmt = conn.prepare_cached(
        "SELECT t.closed_at IS NULL, e.id, e.entered_at
         FROM tickets t LEFT JOIN ticket_events e ON e.ticket_id = t.id
         WHERE t.id = ?1",
    )?;
    let mut rows = stmt.query([ticket_id])?;
    let mut events = Vec::new();
    let mut found = false;
    while let Some(r) = rows.next()? {
        if !r.get::<_, bool>(0)? {
            return Ok(None);
        }
        found = true;
        if let Some(id) = r.get::<_, Option<i64>>(1)? {
            events.push((id, text(r.get_ref(2)?)));
        }
    }
    Ok(found.then_some(events))
}

/// One `alert_recipients` row with its contact, as the host wrote them.
#[derive(Debug)]
pub struct AlertRecipient {
    pub contact_id: i64,
    pub name: String,
    /// The address as written, untrimmed (empty for NULL).
    pub email: String,
    /// `locale` when it is text.
    pub locale: Option<String>,
    /// `email_enabled` read as a host boolean; `None` for NULL or odd text.
    pub email_enabled: Option<bool>,
    pub muted_kinds: String,
    /// `stages` (a comma-separated list); `None` when NULL: every stage.
    pub stages: Option<String>,
    /// `timezone`; `None` when NULL.
    pub timezone: Option<String>,
    /// `active` read as a host boolean: NULL and odd text are off.
    pub active: bool,
}

/// Every `alert_recipients` row joined to its contact, in `alert_recipients`
/// id order. Errors: `StoreError` (a contact id not an integer).
pub fn alert_recipients(conn: &Conn) -> Result<Vec<AlertRecipient>> {
    let mut stmt = conn.prepare(
        "SELECT c.id, c.name, c.email, c.locale, c.email_enabled, c.muted_kinds, ar.stages, c.timezone, ar.active
         FROM alert_recipients ar JOIN contacts c ON c.id = ar.contact_id
         ORDER BY ar.id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(AlertRecipient {
            contact_id: r.get(0)?,
            name: text(r.get_ref(1)?),
            email: text(r.get_ref(2)?),
            locale: match r.get_ref(3)? {
                ValueRef::Text(l) => Some(String::from_utf8_lossy(l).into_owned()),
                _ => None,
            },
            email_enabled: loose::flag(r.get_ref(4)?),
            muted_kinds: text(r.get_ref(5)?),
            stages: nullable(r.get_ref(6)?),
            timezone: nullable(r.get_ref(7)?),
            active: loose::flag(r.get_ref(8)?).unwrap_or(false),
        })
    })?;
    super::collect(rows)
}

/// The contact's `alert_recipients` rows: `stages` (`None`: every stage)
/// and whether each is active. Errors: `StoreError`.
pub fn recipient_stages(conn: &Conn, contact_id: i64) -> Result<Vec<(Option<String>, bool)>> {
    let mut stmt = conn.prepare_cached("SELECT stages, active FROM alert_recipients WHERE contact_id = ?1")?;
    let rows = stmt.query_map([contact_id], |r| {
        Ok((loose::text(r.get_ref(0)?), loose::flag(r.get_ref(1)?).unwrap_or(false)))
    })?;
    super::collect(rows)
}

/// The contact's email preferences: `email_enabled` (NULL or odd text:
/// enabled) and `muted_kinds`; `None` when the contact is gone.
/// Errors: `StoreError`.
pub fn email_preferences(conn: &Conn, contact_id: i64) -> Result<Option<(bool, String)>> {
    Ok(conn
        .prepare_cached("SELECT email_enabled, muted_kinds FROM contacts WHERE id = ?1")?
        .query_row(params![contact_id], |r| {
            Ok((loose::flag(r.get_ref(0)?).unwrap_or(true), text(r.get_ref(1)?)))
        })
        .optional()?)
}

/// A host text column, empty for NULL.
fn text(v: ValueRef<'_>) -> String {
    loose::text(v).unwrap_or_default()
}

/// A host text column; `None` only for NULL (a blob reads as empty).
fn nullable(v: ValueRef<'_>) -> Option<String> {
    match v {
        ValueRef::Null => None,
        v => Some(text(v)),
    }
}
