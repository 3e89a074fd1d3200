//! Which source row a message belongs to. A host may delete its last row and
//! insert another that SQLite gives the same id, so rappel names a row by its
//! id together with the row's own creation or scheduling instant (DESIGN §9);
//! dedupe keys and the deliveries' `source_at` carry both. Also the step of
//! migration 5 that gives rows written before it their instant.

use crate::domain::Kind;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Transaction, params};

use crate::instant;

/// Each source table and the column whose instant, with the id, names one of
/// its rows.
pub const IDENTITY: &[(&str, &str)] = &[
    ("scheduled_reports", "scheduled_at"),
    ("loans", "lent_at"),
    ("revision_sessions", "starts_at"),
    ("students", "subscribed_at"),
    ("manual_reminders", "created_at"),
];

/// A source row as dedupe keys name it: `<id>@<instant>`, or `<id>` for a
/// row without one (a student with no `subscribed_at`).
pub fn source_ref(id: i64, at: Option<DateTime<Utc>>) -> String {
    match at {
        Some(at) => format!("{id}@{}", instant::format(at)),
        None => id.to_string(),
    }
}

/// A loan's due date as its reminders' keys name it: the instant in
/// rappel's format, or a date-only value as written (`2026-03-13`, whose
/// instant depends on the contact's zone); `None` when empty.
pub fn due_ref(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    Some(instant::parse(raw).map_or_else(|| raw.to_string(), instant::format))
}

/// The loan kinds whose message tells of the due date.
pub const ABOUT_DUE: &[Kind] = &[
    Kind::LoanD2,
    Kind::LoanD1,
    Kind::LoanDue,
    Kind::LoanShortNotice,
    Kind::LoanOverdue,
];

/// The identifying instant of `table`'s row `id` as it is now: `Ok(None)`
/// when the row is gone, `Ok(Some(None))` when its instant is empty or does
/// not parse.
pub fn current(conn: &rusqlite::Connection, table: &str, id: i64) -> rusqlite::Result<Option<Option<DateTime<Utc>>>> {
    let Some((_, column)) = IDENTITY.iter().find(|(t, _)| *t == table) else {
        return Ok(None);
    };
    let raw: Option<Option<String>> = conn
        .prepare_cached(&format!("SELECT {column} FROM {table} WHERE id = ?1"))?
        .query_row([id], |r| Ok(crate::db::loose::text(r.get_ref(0)?)))
        .optional()?;
    Ok(raw.map(|v| v.as_deref().and_then(instant::parse)))
}

/// As `current`, on either backend (`Conn`). Errors: `StoreError`.
pub fn instant_of(
    conn: &super::conn::Conn,
    table: &str,
    id: i64,
) -> super::error::Result<Option<Option<DateTime<Utc>>>> {
    let Some((_, column)) = IDENTITY.iter().find(|(t, _)| *t == table) else {
        return Ok(None);
    };
    let raw = conn.query_opt(
        &format!("SELECT {column} FROM {table} WHERE id = ?1"),
        crate::params![id],
        |r| Ok(crate::db::loose::text(r.cell(0)?)),
    )?;
    Ok(raw.map(|v| v.as_deref().and_then(instant::parse)))
}

/// Migration 5: rows written before it get the instant of the source row they
/// were made for (when it still exists), and their dedupe keys become
/// `<kind>:<id>@<instant>:...` as new ones are; delay-alert history gets each
/// event's `entered_at`; recurring reports already followed are carried over.
/// It runs on the schema as migration 5 leaves it, so it names rappel's
/// tables as they were named then (`deliveries`, `delay_alert_log`; schema 6
/// renamed them `rappel_*`).
pub fn backfill(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    for (table, _) in IDENTITY {
        type Row = (i64, String, i64, String, Option<i64>);
        let pending: Vec<Row> = {
            let mut stmt = tx.prepare(
                "SELECT id, dedupe_key, source_id, kind, contact_id FROM deliveries
                 WHERE source_table = ?1 AND source_id IS NOT NULL AND source_at IS NULL",
            )?;
            stmt.query_map([table], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
                .collect::<rusqlite::Result<_>>()?
        };
        let mut update = tx.prepare("UPDATE OR IGNORE deliveries SET source_at = ?2, dedupe_key = ?3 WHERE id = ?1")?;
        for (id, key, source_id, kind, contact_id) in pending {
            let Some(Some(at)) = current(tx, table, source_id)? else {
                continue;
            };
            // Reminders' keys end with the contact, and a loan's with its due date.
            let mut tail = String::new();
            if let Some(contact) = contact_id.filter(|_| *table != "scheduled_reports") {
                tail.push_str(&format!(":{contact}"));
                if kind.parse().is_ok_and(|k: Kind| ABOUT_DUE.contains(&k)) {
                    let due: Option<String> = tx
                        .query_row("SELECT due_at FROM loans WHERE id = ?1", [source_id], |r| {
                            Ok(crate::db::loose::text(r.get_ref(0)?))
                        })
                        .optional()?
                        .flatten();
                    if let Some(due) = due.as_deref().and_then(due_ref) {
                        tail.push(':');
                        tail.push_str(&due);
                    }
                }
            }
            let new_key = format!("{}{tail}", rekey(&key, source_id, at));
            update.execute(params![id, instant::format(at), new_key])?;
        }
    }
    let events: Vec<(i64, i64)> = {
        let mut stmt = tx.prepare("SELECT id, event_id FROM delay_alert_log WHERE entered_at IS NULL")?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?
    };
    let mut entered = tx.prepare("SELECT entered_at FROM ticket_events WHERE id = ?1")?;
    let mut update = tx.prepare("UPDATE delay_alert_log SET entered_at = ?2 WHERE id = ?1")?;
    for (id, event_id) in events {
        let raw: Option<Option<String>> = entered
            .query_row([event_id], |r| Ok(crate::db::loose::text(r.get_ref(0)?)))
            .optional()?;
        if let Some(at) = raw.flatten().as_deref().and_then(instant::parse) {
            update.execute(params![id, instant::format(at)])?;
        }
    }
    let followed: Vec<(i64, i64, String)> = {
        let mut stmt = tx.prepare("SELECT report_id, next_report_id, created_at FROM report_recurrences")?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?
    };
    for (report_id, next_id, created_at) in followed {
        if let Some(Some(at)) = current(tx, "scheduled_reports", report_id)? {
            tx.execute(
                "INSERT OR IGNORE INTO rappel_report_recurrences (report_id, scheduled_at, next_report_id, created_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![report_id, instant::format(at), next_id, created_at],
            )?;
        }
    }
    tx.execute_batch("DROP TABLE report_recurrences")
}

/// `<kind>:<id>:rest` as `<kind>:<id>@<instant>:rest`; other keys unchanged.
fn rekey(key: &str, id: i64, at: DateTime<Utc>) -> String {
    let Some((kind, rest)) = key.split_once(':') else {
        return key.to_string();
    };
    match rest.strip_prefix(&format!("{id}:")) {
        Some(tail) => format!("{kind}:{}:{tail}", source_ref(id, Some(at))),
        None => key.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_keys_take_the_row_instant_after_the_id() {
        let at = instant::parse("2026-05-04T08:00:00Z").unwrap();
        assert_eq!(
            rekey("loan_d1:7:2026-05-05:sms", 7, at),
            "loan_d1:7@2026-05-04T08:00:00Z:2026-05-05:sms"
        );
        assert_eq!(
            rekey("report:12:a@example.com", 12, at),
            "report:12@2026-05-04T08:00:00Z:a@example.com"
        );
        assert_eq!(rekey("report:120:a@example.com", 12, at), "report:120:a@example.com");
        assert_eq!(source_ref(3, None), "3");
    }
}
