//! The delay alerts' host reads: open tickets' stage events, a ticket's
//! details and current entry, and who receives alerts (`alert_recipients`
//! joined to `contacts`). Host columns are read as written (DESIGN §4):
//! through `db::loose`, never by their declared type.

use super::{Cell, Conn, Result};
use crate::db::loose;
use crate::params;
use std::collections::HashMap;

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
    // On PostgreSQL, each open ticket's events by the `(ticket_id, …)`
    // index (`OFFSET 0` keeps the planner from making it a join again):
    // the hash join it otherwise picks reads every event of every ticket,
    // open or closed, 30 ms of a no-op run over 100,000 tickets where this
    // takes 17. SQLite already walks the index so.
    let sql = match conn.dialect() {
        super::Dialect::Sqlite => {
            "SELECT t.id, e.id, e.stage, e.entered_at
             FROM tickets t JOIN ticket_events e ON e.ticket_id = t.id
             WHERE t.closed_at IS NULL
             ORDER BY t.id"
        }
        super::Dialect::Postgres => {
            "SELECT t.id, e.id, e.stage, e.entered_at
             FROM tickets t
             CROSS JOIN LATERAL (SELECT id, stage, entered_at FROM ticket_events
                                 WHERE ticket_id = t.id OFFSET 0) e
             WHERE t.closed_at IS NULL
             ORDER BY t.id"
        }
    };
    conn.query_each(sql, params![], |row| {
        let stage = match row.cell(2)? {
            Cell::Text(s) => Some(s.into_owned()),
            _ => None,
        };
        let entered_at = match row.cell(3)? {
            Cell::Text(s) => Ok(s.into_owned()),
            other => Err(other.type_name().to_string()),
        };
        f(StageEvent {
            ticket_id: row.get(0)?,
            event_id: row.get(1)?,
            stage,
            entered_at,
        });
        Ok(())
    })
}

/// What a delay alert shows of a ticket (empty text for NULL).
#[derive(Debug, Default)]
pub struct TicketDetails {
    pub reference: String,
    pub device: String,
    pub customer: String,
}

/// The reference, device and customer of each ticket of `ids` that is still
/// there, by id, in one read. Errors: `StoreError`.
pub fn details_of(conn: &Conn, ids: &[i64]) -> Result<HashMap<i64, TicketDetails>> {
    let list = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
    let rows = conn.query_map(
        &format!(
            "SELECT id, reference, device, customer FROM tickets WHERE id {}",
            super::any_id(conn.dialect(), 1)
        ),
        params![list],
        |r| {
            Ok((
                r.get::<i64>(0)?,
                TicketDetails {
                    reference: text(r.cell(1)?),
                    device: text(r.cell(2)?),
                    customer: text(r.cell(3)?),
                },
            ))
        },
    )?;
    Ok(rows.into_iter().collect())
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
    conn.query_map(
        "SELECT c.id, c.name, c.email, c.locale, c.email_enabled, c.muted_kinds, ar.stages, c.timezone, ar.active
         FROM alert_recipients ar JOIN contacts c ON c.id = ar.contact_id
         ORDER BY ar.id",
        params![],
        |r| {
            Ok(AlertRecipient {
                contact_id: r.get(0)?,
                name: text(r.cell(1)?),
                email: text(r.cell(2)?),
                locale: match r.cell(3)? {
                    Cell::Text(l) => Some(l.into_owned()),
                    _ => None,
                },
                email_enabled: loose::flag(r.cell(4)?),
                muted_kinds: text(r.cell(5)?),
                stages: nullable(r.cell(6)?),
                timezone: nullable(r.cell(7)?),
                active: loose::flag(r.cell(8)?).unwrap_or(false),
            })
        },
    )
}

/// The stage events, `(id, entered_at as written)`, of each ticket of
/// `ids` that is still open, by ticket id: a ticket closed or gone has no
/// key (an open one without events has an empty list). One statement.
/// Errors: `StoreError`.
pub fn open_events(conn: &Conn, ids: &[i64]) -> Result<HashMap<i64, Vec<(i64, String)>>> {
    let mut open: HashMap<i64, Vec<(i64, String)>> = HashMap::new();
    let list = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
    let sql = format!(
        "SELECT t.id, e.id, e.entered_at FROM tickets t
         LEFT JOIN ticket_events e ON e.ticket_id = t.id
         WHERE t.id {} AND t.closed_at IS NULL",
        super::any_id(conn.dialect(), 1)
    );
    conn.query_each(&sql, params![list], |r| {
        let events = open.entry(r.get(0)?).or_default();
        if let Some(id) = r.get::<Option<i64>>(1)? {
            events.push((id, text(r.cell(2)?)));
        }
        Ok(())
    })?;
    Ok(open)
}

/// What the last look at digests reads of their recipients, in one
/// statement, by contact id (each of `contact_ids` has a key): the
/// contact's `alert_recipients` rows (`stages`, `None`: every stage; and
/// whether each is active), and the contact's email preferences
/// (`email_enabled`, NULL or odd text: enabled; `muted_kinds`) and address,
/// `None` when the contact is gone. Errors: `StoreError`.
pub fn recipients_now(conn: &Conn, contact_ids: &[i64]) -> Result<HashMap<i64, RecipientNow>> {
    let mut found: HashMap<i64, RecipientNow> = HashMap::new();
    let ids = match conn.dialect() {
        super::Dialect::Sqlite => "SELECT DISTINCT CAST(value AS INTEGER) AS id FROM json_each(?1)",
        super::Dialect::Postgres => "SELECT DISTINCT CAST(json_array_elements_text(CAST(?1 AS json)) AS bigint) AS id",
    };
    let list = serde_json::to_string(contact_ids).unwrap_or_else(|_| "[]".into());
    conn.query_each(
        &format!(
            "SELECT k.id, ar.contact_id IS NOT NULL, ar.stages, ar.active, c.id IS NOT NULL, c.email_enabled, c.muted_kinds,
                    c.email
             FROM ({ids}) k
             LEFT JOIN alert_recipients ar ON ar.contact_id = k.id
             LEFT JOIN contacts c ON c.id = k.id"
        ),
        params![list],
        |r| {
            let now = found.entry(r.get(0)?).or_default();
            if r.get::<bool>(1)? {
                now.stages
                    .push((loose::text(r.cell(2)?), loose::flag(r.cell(3)?).unwrap_or(false)));
            }
            if r.get::<bool>(4)? {
                now.email = Some((loose::flag(r.cell(5)?).unwrap_or(true), text(r.cell(6)?)));
                now.address = text(r.cell(7)?);
            }
            Ok(())
        },
    )?;
    Ok(found)
}

/// [`recipients_now`]' answer, for one contact.
#[derive(Debug, Default)]
pub struct RecipientNow {
    /// The `alert_recipients` rows: `stages` and whether active.
    pub stages: Vec<(Option<String>, bool)>,
    /// `email_enabled` and `muted_kinds`; `None`: no such contact.
    pub email: Option<(bool, String)>,
    /// The contact's `email` as written (empty for NULL or no contact).
    pub address: String,
}

/// A host text column, empty for NULL.
fn text(v: Cell<'_>) -> String {
    loose::text(v).unwrap_or_default()
}

/// A host text column; `None` only for NULL (a blob reads as empty).
fn nullable(v: Cell<'_>) -> Option<String> {
    match v {
        Cell::Null => None,
        v => Some(text(v)),
    }
}
