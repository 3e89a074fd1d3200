//! `rappel sources [TABLE] [--rows N]`: each input table as rappel reads it,
//! to check a `[sources]` mapping before trusting it: where it is read from,
//! how many rows, the first rows as the jobs see them (instants in UTC and
//! in the configured zone, booleans, ids), and each column some rows of
//! which do not read, with how many and an example. Nothing is written.

use chrono::NaiveTime;

use crate::db::host::CONTRACT;
use crate::db::sources::{Origin, required};
use crate::exit::{Exit, fail};
use crate::instant;
use crate::output::printable;
use crate::runner::Ctx;
use crate::store::sources::{Cell, Found, each_row, found};

/// How the jobs read a contract column.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Read {
    /// A row id (an integer, or integer text).
    Id,
    /// A boolean (0/1, or text such as true/false, yes/no).
    Flag,
    /// An instant (DESIGN §4's forms; without an offset, in `naive_timezone`).
    Instant,
    /// An instant, or a date alone: its start (a loan's return date).
    Dated,
    /// An instant, or a date alone: its end (a loan's due date).
    Due,
    /// A number (a punch's temperature).
    Number,
    /// A punch's sync status: one of the contract's words.
    SyncStatus,
    /// Text, taken as written.
    Text,
}

fn read_of(column: &str) -> Read {
    match column {
        "id" | "contact_id" | "ticket_id" | "student_id" | "parent_contact_id" | "author_contact_id"
        | "terminal_id" | "enroll_id" => Read::Id,
        c if crate::db::sources::FLAGS.contains(&c) => Read::Flag,
        "due_at" => Read::Due,
        "sync_status" => Read::SyncStatus,
        "temperature" => Read::Number,
        // When a report, message or punch went, which rappel writes under
        // `update` and the jobs read as "sent" once filled: a host's `date`
        // column keeps the day alone (PostgreSQL casts the instant to it),
        // and that reads.
        "returned_at" | "sent_at" | "synced_at" => Read::Dated,
        "created_at" | "closed_at" | "entered_at" | "scheduled_at" | "next_attempt_at" | "lent_at"
        | "subscribed_at" | "last_active_at" | "starts_at" | "punched_at" | "sync_lease_until" => Read::Instant,
        // completed_at counts as done when filled, whatever it holds.
        _ => Read::Text,
    }
}

/// A column's rows that do not read: how many, and the first one's value.
#[derive(Default)]
struct Unread {
    rows: u64,
    example: Option<String>,
    why: &'static str,
}

/// Lists `only` (or every input table) with up to `rows` rows each; exit
/// 0 when every value reads, 65 when some do not, 64 for an unknown table,
/// 78 for a mapping that does not read (the connection says which).
pub fn run(ctx: &Ctx<'_>, only: Option<&str>, rows: usize) -> anyhow::Result<Exit> {
    let config = ctx.config;
    let tables: Vec<_> = CONTRACT
        .iter()
        .filter(|(name, _)| only.is_none_or(|o| o == *name))
        .collect();
    if tables.is_empty() {
        let names: Vec<&str> = CONTRACT.iter().map(|(n, _)| *n).collect();
        return Err(fail(
            Exit::Usage,
            format!(
                "{}: not an input table (expected one of {})",
                only.unwrap_or(""),
                names.join(", ")
            ),
        ));
    }
    let conn = config.db(true).connect()?;
    let (zone, naive) = (config.timezone, config.naive_timezone);
    let mut unreadable = false;
    let mut out = String::new();
    // With --json, the same as one object per table.
    let mut json: Vec<serde_json::Value> = Vec::new();
    for (name, columns) in tables {
        let mapping = config.sources.iter().find(|s| s.name == *name);
        let found = found(&conn, name)?;
        // A mapped source: every host row, those the jobs leave out included.
        let relation = match found {
            Found::Mapped => crate::db::sources::raw_view(name),
            _ => name.to_string(),
        };
        let origin = match (found, mapping) {
            (Found::Mapped, Some(source)) => match &source.origin {
                Origin::Table(table) => format!("table {table:?} ([sources.{name}])"),
                Origin::Query(_) => format!("a query ([sources.{name}])"),
            },
            (Found::Table | Found::Mapped, _) => format!("table {name} (not mapped)"),
            (Found::Missing, _) => {
                out.push_str(&format!(
                    "{name}: missing: not mapped in [sources], and `rappel db migrate` has not created it\n"
                ));
                json.push(serde_json::json!({ "table": name, "origin": "missing" }));
                continue;
            }
        };
        let reads: Vec<Read> = columns.iter().map(|c| read_of(c)).collect();
        let mut unread: Vec<Unread> = columns.iter().map(|_| Unread::default()).collect();
        let mut count = 0u64;
        let mut shown = Vec::new();
        let mut sample: Vec<serde_json::Value> = Vec::new();
        let mut ids: std::collections::HashMap<i64, u64> = std::collections::HashMap::new();
        let read = each_row::<anyhow::Error>(&conn, &relation, columns, |cells| {
            count += 1;
            if let Some(id) = cells.first().filter(|c| c.integer).and_then(|c| c.id) {
                *ids.entry(id).or_default() += 1;
            }
            for (i, cell) in cells.iter().enumerate() {
                if let Some(why) = problem(name, columns[i], reads[i], cell, zone, naive) {
                    let u = &mut unread[i];
                    u.rows += 1;
                    u.why = why;
                    if u.example.is_none() {
                        // NULL as such, a value quoted (so the text "NULL" is not NULL).
                        u.example = Some(
                            cell.text
                                .as_deref()
                                .map_or_else(|| "NULL".to_string(), |t| format!("{:?}", printable(t))),
                        );
                    }
                }
            }
            if shown.len() < rows {
                // Each value as read, once: a line of text and a JSON object.
                let values: Vec<(&str, String)> = cells
                    .iter()
                    .zip(columns.iter())
                    .zip(&reads)
                    .map(|((cell, column), read)| (*column, shown_as(*read, cell, zone, naive)))
                    .collect();
                let line: Vec<String> = values.iter().map(|(c, v)| format!("{c} {v}")).collect();
                shown.push(line.join(", "));
                let object: serde_json::Map<String, serde_json::Value> =
                    values.into_iter().map(|(c, v)| (c.to_string(), v.into())).collect();
                sample.push(object.into());
            }
            Ok(())
        });
        if let Err(e) = read {
            // A mapped expression that fails on some row: the jobs would stop on it.
            if !ctx.json {
                crate::output::write_stdout(out.as_bytes())?;
            }
            return Err(fail(
                Exit::Config,
                format!("[sources.{name}]: a row does not read: {e}"),
            ));
        }
        out.push_str(&format!(
            "{name}: {origin}, {count} row{}\n",
            if count == 1 { "" } else { "s" }
        ));
        if let Some(source) = mapping {
            for (column, expr) in &source.columns {
                out.push_str(&format!("  {column} = {}\n", printable(expr)));
            }
            for (what, column) in &source.update {
                out.push_str(&format!("  kept up to date: {} <- {what}\n", printable(column)));
            }
        }
        for row in shown {
            out.push_str(&format!("  {}\n", printable(&row)));
        }
        let (mut bad, mut problems) = (Vec::new(), Vec::new());
        for (column, u) in columns.iter().zip(&unread).filter(|(_, u)| u.rows > 0) {
            bad.push(format!(
                "  {column}: {} of {count} row{} {}, e.g. {}\n",
                u.rows,
                if count == 1 { "" } else { "s" },
                u.why,
                u.example.as_deref().unwrap_or("")
            ));
            problems.push(serde_json::json!({ "column": column, "rows": u.rows, "why": u.why, "example": u.example }));
        }
        let orphans = if *name == "attendance_logs" {
            crate::store::sources::orphan_punches(&conn)?
        } else {
            None
        };
        if let Some((n, id)) = orphans {
            let why = "under a terminal id the terminals table does not have: such punches are never pushed";
            problems.push(serde_json::json!({ "column": "terminal_id", "rows": n, "why": why, "example": id }));
            bad.push(format!(
                "  terminal_id: {n} row{} under a terminal id the terminals table does not have, e.g. {id}: \
                 such punches are never pushed\n",
                if n == 1 { "" } else { "s" }
            ));
        }
        let mut repeated: Vec<(i64, u64)> = ids.into_iter().filter(|(_, n)| *n > 1).collect();
        repeated.sort();
        json.push(serde_json::json!({
            "table": name,
            "origin": origin,
            "rows": count,
            "columns": mapping.map(|m| &m.columns),
            "update": mapping.map(|m| &m.update),
            "sample": sample,
            "problems": problems,
            "repeated_ids": repeated.len(),
        }));
        if let Some((id, n)) = repeated.first() {
            bad.push(format!(
                "  id: {} id{} on more than one row, e.g. {id} ({n} rows): ids must be unique within a source\n",
                repeated.len(),
                if repeated.len() == 1 { "" } else { "s" },
            ));
        }
        if bad.is_empty() {
            if count > 0 {
                out.push_str("  every value reads\n");
            }
        } else {
            unreadable = true;
            out.extend(bad);
        }
    }
    if ctx.json {
        out = crate::output::json(&serde_json::json!({ "sources": json }), true) + "\n";
    }
    crate::output::write_stdout(out.as_bytes())?;
    Ok(if unreadable { Exit::DataErr } else { Exit::Ok })
}

/// Why `cell` of `column` does not read as the jobs need it, if so.
fn problem(
    table: &str,
    column: &str,
    read: Read,
    cell: &Cell,
    zone: chrono_tz::Tz,
    naive: chrono_tz::Tz,
) -> Option<&'static str> {
    if column == "id" && !cell.integer {
        return Some("not an integer id: the jobs leave these rows out");
    }
    let Some(text) = cell.text.as_deref().filter(|t| !t.trim().is_empty()) else {
        return required(table, column).then_some("empty: the jobs leave these rows out");
    };
    match read {
        Read::Id if cell.id.is_none() => Some("not an id (an integer)"),
        Read::Flag if cell.flag.is_none() => Some("not a boolean (0/1, true/false, yes/no)"),
        Read::Instant if instant::parse_in(text, naive).is_none() => Some("not an instant"),
        Read::Dated | Read::Due if instant::parse_dated(text, zone, naive, NaiveTime::MIN).is_none() => {
            Some("not an instant or a date")
        }
        Read::Number if !text.trim().parse::<f64>().is_ok_and(f64::is_finite) => Some("not a number"),
        Read::SyncStatus if !["pending", "sending", "sent", "failed"].contains(&text) => {
            Some("not pending, sending, sent or failed: such a punch is never pushed")
        }
        _ => None,
    }
}

/// `cell` as the jobs read it: an instant in UTC and in `zone`, a day
/// alone as that day, a boolean as yes/no, text quoted, `none` for NULL.
fn shown_as(read: Read, cell: &Cell, zone: chrono_tz::Tz, naive: chrono_tz::Tz) -> String {
    let Some(text) = cell.text.as_deref() else {
        return "none".into();
    };
    // A date alone is shown as one, not as the instant its day starts at,
    // which would look like the time it was written.
    let day = text.trim();
    if matches!(read, Read::Dated | Read::Due)
        && day.len() == 10
        && instant::parse_dated(day, zone, naive, NaiveTime::MIN).is_some()
    {
        return format!("{day} (a day, in {zone})");
    }
    let at = match read {
        Read::Instant => instant::parse_in(text, naive),
        Read::Dated => instant::parse_dated(text, zone, naive, NaiveTime::MIN),
        Read::Due => instant::parse_due(text, zone, naive),
        Read::Flag => {
            return cell
                .flag
                .map_or_else(|| format!("{text:?}?"), |f| (if f { "yes" } else { "no" }).into());
        }
        Read::Id => return cell.id.map_or_else(|| format!("{text:?}?"), |id| id.to_string()),
        Read::Number => return text.to_string(),
        Read::Text | Read::SyncStatus => return format!("{text:?}"),
    };
    match at {
        Some(t) => format!(
            "{} ({} {zone})",
            instant::format(t),
            t.with_timezone(&zone).format("%Y-%m-%d %H:%M")
        ),
        None => format!("{text:?}?"),
    }
}
