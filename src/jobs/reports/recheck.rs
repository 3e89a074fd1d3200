//! The last look at a report message before it goes: it is cancelled when
//! its row was deleted, replaced under the same id, or taken out of
//! `pending` by hand, or when its address left the row's recipients.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension};

use super::{JOB, TABLE, addresses};
use crate::db::identity;
use crate::engine::claim::Claimed;
use crate::engine::recheck::{Recheck, Verdict};
use crate::instant;
use crate::jobs::column_text;

/// send-reports' [`Recheck`].
pub struct ReportsRecheck;

impl Recheck for ReportsRecheck {
    fn job(&self) -> &'static str {
        JOB
    }

    fn recheck(&self, conn: &Connection, row: &Claimed, _now: DateTime<Utc>) -> rusqlite::Result<Verdict> {
        Ok(match why_not(conn, row)? {
            Some(reason) => Verdict::Cancel(reason),
            None => Verdict::Send,
        })
    }
}

/// Why the report's message should not go, if so.
fn why_not(conn: &Connection, row: &Claimed) -> rusqlite::Result<Option<String>> {
    let Some(id) = row.source_id.filter(|_| row.source_table.as_deref() == Some(TABLE)) else {
        return Ok(None);
    };
    let Some(current) = identity::current(conn, TABLE, id)? else {
        return Ok(Some(format!("{TABLE} id {id} was deleted")));
    };
    if current.map(instant::format) != row.source_at {
        return Ok(Some(format!(
            "{TABLE} id {id} is another row now (scheduled_at changed)"
        )));
    }
    let found: Option<(Option<String>, Option<String>)> = conn
        .prepare_cached("SELECT status, recipients FROM scheduled_reports WHERE id = ?1")?
        .query_row([id], |r| Ok((column_text(r.get_ref(0)?), column_text(r.get_ref(1)?))))
        .optional()?;
    let Some((status, recipients)) = found else {
        return Ok(Some(format!("{TABLE} id {id} was deleted")));
    };
    let status = status.unwrap_or_default();
    if status != "pending" {
        return Ok(Some(format!("{TABLE} id {id} was set to {status:?} by hand")));
    }
    let listed = addresses(&recipients.unwrap_or_default())
        .iter()
        .any(|(a, _)| a.to_lowercase() == row.recipient.to_lowercase());
    Ok((!listed).then(|| format!("{} is no longer among the recipients of {TABLE} id {id}", row.recipient)))
}
