//! What rappel records about the rows of a mapped source it writes to (a
//! report's progress, a manual message's sending, a punch's sync): its table, keyed by the
//! source row's id and own instant; the view that reads that record over the
//! host's row; and the trigger that writes it, with the host columns named
//! under `[sources.<table>.update]`, instead of the host's row.

use super::{Origin, Source, quoted};

/// rappel's record of the rows of a source it writes to: its table, the
/// columns keying a row there (the source row's id and own instant, as the
/// source gives them), the contract columns it holds, and the host columns
/// `[sources.<name>.update]` may keep up to date, each with the SQL of its
/// value from the updated row (`NEW`).
pub struct Kept {
    pub source: &'static str,
    pub table: &'static str,
    pub key: [(&'static str, &'static str); 2],
    pub columns: &'static [&'static str],
    pub updates: &'static [(&'static str, Value)],
    /// Whether the record, once there, stands for the row whole: each of
    /// `columns` is the record's, even empty (a punch's retry time gone
    /// once it is sent), and the host's values only count for a row rappel
    /// has no record of. Otherwise a column the record leaves empty reads
    /// the host's.
    pub whole: bool,
}

/// What a host column kept up to date receives.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    /// A contract column as it is (`status`, `attempts`, `last_error`).
    Same(&'static str),
    /// An instant column, in the host's form (see `Source::naive_zone`).
    Instant(&'static str),
    /// A boolean, 1 or 0, from an SQL condition on `NEW`.
    Flag(&'static str),
}

impl Value {
    /// Whether the value is never NULL: a flag, or a status or count (NOT
    /// NULL in the contract), so a NOT NULL host column may receive it.
    fn never_empty(self) -> bool {
        matches!(
            self,
            Value::Flag(_) | Value::Same("status" | "attempts" | "sync_status" | "sync_attempts")
        )
    }
}

/// The sources rappel writes to, and where it records what it writes.
pub const KEPT: &[Kept] = &[
    Kept {
        source: "scheduled_reports",
        table: "rappel_report_state",
        key: [("report_id", "id"), ("scheduled_at", "scheduled_at")],
        columns: &["status", "attempts", "next_attempt_at", "sent_at", "last_error"],
        updates: &[
            ("status", Value::Same("status")),
            ("sent", Value::Flag("NEW.status = 'sent'")),
            ("attempts", Value::Same("attempts")),
            ("next_attempt_at", Value::Instant("next_attempt_at")),
            ("sent_at", Value::Instant("sent_at")),
            ("last_error", Value::Same("last_error")),
        ],
        whole: false,
    },
    Kept {
        source: "manual_reminders",
        table: "rappel_manual_state",
        key: [("reminder_id", "id"), ("created_at", "created_at")],
        columns: &["sent_at"],
        updates: &[
            ("sent_at", Value::Instant("sent_at")),
            ("sent", Value::Flag("NEW.sent_at IS NOT NULL")),
        ],
        whole: false,
    },
    Kept {
        source: "attendance_logs",
        table: "rappel_punch_state",
        key: [("log_id", "id"), ("punched_at", "punched_at")],
        columns: &[
            "sync_status",
            "sync_attempts",
            "next_attempt_at",
            "sync_lease_until",
            "synced_at",
            "sync_error",
        ],
        updates: &[
            ("sync_status", Value::Same("sync_status")),
            ("synced", Value::Flag("NEW.sync_status = 'sent'")),
            ("sync_attempts", Value::Same("sync_attempts")),
            ("next_attempt_at", Value::Instant("next_attempt_at")),
            ("synced_at", Value::Instant("synced_at")),
            ("sync_error", Value::Same("sync_error")),
        ],
        whole: true,
    },
];

/// Where rappel records what it writes about `source`'s rows, if it does.
pub fn kept(source: &str) -> Option<&'static Kept> {
    KEPT.iter().find(|k| k.source == source)
}

/// A host table's column: its name, whether it is NOT NULL, whether it is
/// (part of) the primary key.
pub(super) type ColumnInfo = (String, bool, bool);

/// The `SELECT` of a recorded source's view: `kept`'s record of each row of
/// the raw view `raw` (its rows the jobs can use: `usable`, over alias `i`)
/// over the host's values. `raw` and `record`: the raw view and the record
/// table as the dialect names them; `contract`: the source's columns.
pub(super) fn recorded_select(
    source: &Source,
    kept: &Kept,
    contract: &[&str],
    raw: &str,
    record: &str,
    usable: &str,
) -> String {
    let name = source.name;
    let [(k0, c0), (k1, c1)] = kept.key;
    let outer: Vec<String> = contract
        .iter()
        .map(|c| {
            if !kept.columns.contains(c) {
                format!("i.{c} AS {c}")
            } else if kept.whole && (name, *c) == ("attendance_logs", "sync_status") {
                // A punch the host marks `sending` without rappel's record
                // of it is a claim no run holds: pending, as the take-in
                // step (`store::attendance::rows`) records it.
                format!(
                    "CASE WHEN k.{k0} IS NOT NULL THEN k.{c} WHEN i.{c} = 'sending' THEN 'pending' ELSE i.{c} END AS {c}"
                )
            } else if kept.whole {
                format!("CASE WHEN k.{k0} IS NULL THEN i.{c} ELSE k.{c} END AS {c}")
            } else {
                format!("coalesce(k.{c}, i.{c}) AS {c}")
            }
        })
        .collect();
    format!(
        "SELECT {} FROM {raw} AS i LEFT JOIN {record} AS k ON k.{k0} = i.{c0} AND k.{k1} = i.{c1} WHERE {usable}",
        outer.join(", "),
    )
}

/// The statement of the update trigger that records a row's update in
/// `kept`'s table (`record`, as the dialect names it), keyed by the row's
/// id and own instant (`OLD`), its columns from `NEW`.
pub(super) fn record_upsert(kept: &Kept, record: &str) -> String {
    let [(k0, c0), (k1, c1)] = kept.key;
    let set: Vec<String> = kept.columns.iter().map(|c| format!("{c} = excluded.{c}")).collect();
    let new: Vec<String> = kept.columns.iter().map(|c| format!("NEW.{c}")).collect();
    format!(
        "INSERT INTO {record} ({k0}, {k1}, {}) VALUES (OLD.{c0}, coalesce(OLD.{c1}, ''), {}) \
         ON CONFLICT ({k0}, {k1}) DO UPDATE SET {};",
        kept.columns.join(", "),
        new.join(", "),
        set.join(", "),
    )
}

/// The host table `[sources.<name>.update]` writes to, and each column it
/// keeps up to date with what that column receives.
pub(super) type HostUpdates<'s> = (&'s str, Vec<(&'s str, Value)>);

/// The host columns `[sources.<name>.update]` keeps up to date, checked:
/// the host table and each column with what it receives; `None` when the
/// source names none. `info` and `available`: the host table's columns.
/// Errors: one line naming the key (a query's source, the host table of
/// the source's own name, a column naming the row, a NOT NULL column that
/// would get NULL, a column named twice, something rappel does not record,
/// a column the table does not have).
pub(super) fn host_updates<'s>(
    source: &'s Source,
    kept: &Kept,
    info: &[ColumnInfo],
    available: &[String],
) -> anyhow::Result<Option<HostUpdates<'s>>> {
    let name = source.name;
    if source.update.is_empty() {
        return Ok(None);
    }
    let Origin::Table(table) = &source.origin else {
        anyhow::bail!("[sources.{name}.update]: only with `table` (a query has no one table to write to)");
    };
    if table.eq_ignore_ascii_case(name) {
        anyhow::bail!(
            "[sources.{name}.update]: the host's table has the source's own name; rappel cannot keep its columns up to date"
        );
    }
    let [(_, c0), (_, c1)] = kept.key;
    // The host columns naming the row: its id and its own instant.
    let key_columns: Vec<String> = [c0, c1]
        .iter()
        .map(|c| source.columns.get(*c).map_or(c.to_string(), |e| e.trim().to_string()))
        .collect();
    let mut targets: Vec<(&str, Value)> = Vec::new();
    for (what, column) in &source.update {
        let found = info.iter().find(|(n, _, _)| n.eq_ignore_ascii_case(column));
        if let Some((_, not_null, pk)) = found {
            if *pk || key_columns.iter().any(|k| k.eq_ignore_ascii_case(column)) {
                anyhow::bail!(
                    "[sources.{name}.update]: {what} = {column:?}: that column names the row (its id or {c1}); \
                     rappel never writes it"
                );
            }
            let never_empty = kept.updates.iter().any(|(w, v)| w == what && v.never_empty());
            if *not_null && !never_empty {
                anyhow::bail!(
                    "[sources.{name}.update]: {what} = {column:?}: the column is NOT NULL, and {what} is empty \
                     until the row is sent or fails"
                );
            }
        }
        if targets.iter().any(|(t, _)| t.eq_ignore_ascii_case(column)) {
            anyhow::bail!("[sources.{name}.update]: column {column:?} is named twice");
        }
        let Some((_, value)) = kept.updates.iter().find(|(w, _)| w == what) else {
            anyhow::bail!(
                "[sources.{name}.update]: `{what}` is not something rappel records (expected one of {})",
                kept.updates.iter().map(|(w, _)| *w).collect::<Vec<_>>().join(", ")
            );
        };
        if !available.iter().any(|c| c.eq_ignore_ascii_case(column)) {
            anyhow::bail!("[sources.{name}.update]: {what} = {column:?}: no such column in table {table:?}");
        }
        targets.push((column.as_str(), *value));
    }
    Ok(Some((table.as_str(), targets)))
}

/// `CREATE TEMP VIEW <source>` over `kept`'s record (`recorded_select`)
/// and its `INSTEAD OF UPDATE` trigger, on SQLite: the record's upsert, and
/// the host columns `host_updates` names. Errors: as `host_updates`.
pub(super) fn view_and_trigger(
    source: &Source,
    kept: &Kept,
    contract: &[&str],
    raw: &str,
    usable: &str,
    info: &[ColumnInfo],
    available: &[String],
) -> anyhow::Result<String> {
    let name = source.name;
    let record = format!("main.{}", kept.table);
    let mut sql = format!(
        "CREATE TEMP VIEW IF NOT EXISTS {} AS {};\n",
        quoted(name),
        recorded_select(
            source,
            kept,
            contract,
            &format!("temp.{}", quoted(raw)),
            &record,
            usable
        )
    );
    sql.push_str(&format!(
        "CREATE TEMP TRIGGER IF NOT EXISTS {} INSTEAD OF UPDATE ON {} BEGIN {}",
        quoted(&format!("rappel_update_{name}")),
        quoted(name),
        record_upsert(kept, &record),
    ));
    if let Some((table, targets)) = host_updates(source, kept, info, available)? {
        let assignments: Vec<String> = targets
            .iter()
            .map(|(column, value)| {
                let value = match *value {
                    Value::Same(c) => format!("NEW.{c}"),
                    Value::Flag(condition) => format!("CASE WHEN {condition} THEN 1 ELSE 0 END"),
                    Value::Instant(c) if source.naive_utc() => format!("strftime('%Y-%m-%d %H:%M:%S', NEW.{c})"),
                    Value::Instant(c) => format!("strftime('%Y-%m-%d %H:%M:%S', NEW.{c}) || '+00:00'"),
                };
                format!("{} = {value}", quoted(column))
            })
            .collect();
        let id = source
            .columns
            .get("id")
            .map_or_else(|| quoted("id"), |e| format!("({e})"));
        sql.push_str(&format!(
            " UPDATE {} SET {} WHERE {id} = OLD.id;",
            quoted(table),
            assignments.join(", ")
        ));
    }
    sql.push_str(" END;");
    Ok(sql)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rusqlite::Connection;

    use crate::db::sources::{Origin, Source, create_views};

    /// A host's punch that its own job failed, with a retry time of its
    /// own, mapped with its status and sync time kept up to date; rappel's
    /// record table as migration 8 makes it.
    fn punch() -> Connection {
        #[allow(clippy::disallowed_methods, reason = "a scratch database for the test")]
        let conn = Connection::open_in_memory().unwrap();
        let migration = include_str!("../../../sql/0008_punch_state.sql");
        let record = migration.split("-- A terminal's sync times").next().unwrap();
        conn.execute_batch(record).unwrap();
        conn.execute_batch(
            "CREATE TABLE pointage (id integer PRIMARY KEY, terminal_id integer NOT NULL, enrollid integer NOT NULL,
                 heure datetime NOT NULL, sync_status text NOT NULL, next_attempt_at datetime, synced_at datetime,
                 sync_error text);
             INSERT INTO pointage VALUES (1, 1, 101, '2026-03-20 06:58:12', 'failed', '2026-03-20 10:00:00', NULL, 'old');",
        )
        .unwrap();
        let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        let source = Source {
            name: "attendance_logs",
            origin: Origin::Table("pointage".into()),
            columns: map(&[("enroll_id", "enrollid"), ("punched_at", "heure")]),
            update: map(&[("sync_status", "sync_status"), ("synced_at", "synced_at")]),
            naive_zone: chrono_tz::UTC,
        };
        create_views(&conn, &[source]).unwrap();
        conn
    }

    type Ledger = (String, Option<String>, Option<String>, Option<String>);

    fn ledger(conn: &Connection, table: &str) -> Ledger {
        conn.query_row(
            &format!("SELECT sync_status, next_attempt_at, synced_at, sync_error FROM {table} WHERE id = 1"),
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap()
    }

    #[test]
    fn a_punch_reads_the_hosts_columns_until_recorded_then_its_record_whole() {
        let conn = punch();
        let host = |s: &str| -> Ledger { (s.into(), Some("2026-03-20 10:00:00".into()), None, Some("old".into())) };
        assert_eq!(
            ledger(&conn, "attendance_logs"),
            host("failed"),
            "the host's word first"
        );
        conn.execute(
            "UPDATE attendance_logs SET sync_status = 'sent', next_attempt_at = NULL, sync_error = NULL,
                 synced_at = '2026-03-20T09:00:00Z' WHERE id = 1",
            [],
        )
        .unwrap();
        // The record stands whole: its empty retry time and error, not the host's.
        assert_eq!(
            ledger(&conn, "attendance_logs"),
            ("sent".into(), None, Some("2026-03-20T09:00:00Z".into()), None)
        );
        let key: (i64, String) = conn
            .query_row("SELECT log_id, punched_at FROM rappel_punch_state", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(key, (1, "2026-03-20 06:58:12".into()));
        // The named host columns only, in the host's form.
        assert_eq!(
            ledger(&conn, "pointage"),
            (
                "sent".into(),
                Some("2026-03-20 10:00:00".into()),
                Some("2026-03-20 09:00:00".into()),
                Some("old".into())
            )
        );
        // A new punch under the same id is the host's again.
        conn.execute(
            "UPDATE pointage SET heure = '2026-03-20 07:30:00', sync_status = 'pending' WHERE id = 1",
            [],
        )
        .unwrap();
        assert_eq!(
            ledger(&conn, "attendance_logs").0,
            "pending",
            "no record under its punched_at"
        );
    }
}
