//! The last look at a report message before it goes: it is cancelled when
//! its row was deleted, replaced under the same id, or taken out of
//! `pending` by hand, or when its address left the row's recipients.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use super::{JOB, TABLE, addresses};
use crate::engine::recheck::{Recheck, Verdict};
use crate::instant;
use crate::store::claims::Claimed;
use crate::store::{self, Conn};

/// send-reports' [`Recheck`]. A row's recipients are parsed once per run
/// while their text is unchanged, so a report to N addresses costs O(N), not
/// O(N²).
#[derive(Default)]
pub struct ReportsRecheck {
    /// Per report row: its `recipients` text and the addresses in it, lower-cased.
    lists: Mutex<HashMap<i64, (String, HashSet<String>)>>,
}

impl Recheck for ReportsRecheck {
    fn job(&self) -> crate::domain::Job {
        JOB
    }

    fn recheck(&self, conn: &Conn, row: &Claimed, _now: DateTime<Utc>) -> store::Result<Verdict> {
        Ok(match self.why_not(conn, row)? {
            Some(reason) => Verdict::Cancel(reason),
            None => Verdict::Send,
        })
    }
}

impl ReportsRecheck {
    /// Whether `address` (lower-cased) is in row `id`'s `recipients` text.
    fn listed(&self, id: i64, recipients: String, address: &str) -> bool {
        let mut lists = self.lists.lock().unwrap_or_else(|e| e.into_inner());
        let entry = lists.entry(id).or_insert_with(|| (String::new(), HashSet::new()));
        if entry.0 != recipients || entry.1.is_empty() {
            entry.1 = addresses(&recipients)
                .into_iter()
                .map(|(a, _)| a.to_lowercase())
                .collect();
            entry.0 = recipients;
        }
        entry.1.contains(address)
    }

    /// Why the report's message should not go, if so.
    fn why_not(&self, conn: &Conn, row: &Claimed) -> store::Result<Option<String>> {
        let Some(id) = row.source_id.filter(|_| row.source_table.as_deref() == Some(TABLE)) else {
            return Ok(None);
        };
        let Some(current) = store::reports::scheduled_at(conn, id)? else {
            return Ok(Some(format!("{TABLE} id {id} was deleted")));
        };
        if current.map(instant::format) != row.source_at {
            return Ok(Some(format!(
                "{TABLE} id {id} is another row now (scheduled_at changed)"
            )));
        }
        let Some(store::reports::State { status, recipients }) = store::reports::state(conn, id)? else {
            return Ok(Some(format!("{TABLE} id {id} was deleted")));
        };
        let status = status.unwrap_or_default();
        if status != "pending" {
            return Ok(Some(format!("{TABLE} id {id} was set to {status:?} by hand")));
        }
        let listed = self.listed(id, recipients.unwrap_or_default(), &row.recipient.to_lowercase());
        Ok((!listed).then(|| format!("{} is no longer among the recipients of {TABLE} id {id}", row.recipient)))
    }
}
