//! A log row read for a batch: the punch, its ledger's row and its terminal
//! decoded into the JSON item the HR API takes, or why it cannot be sent. Host
//! columns are of loose types, so each is read through `db::loose`.

use chrono_tz::Tz;
use serde::Serialize;

use crate::store::{Cell, Dialect, Row};

use crate::db::loose::{flag as column_flag, id as column_id, text as column_text};
use crate::instant;

/// Where a punch whose `punched_at` SQLite cannot read sorts: first.
pub(super) const UNREADABLE_AT: f64 = -1.0;

/// The columns `read` reads, in order, from the punch `l`, its ledger's row
/// `k` (`Rows::from`) and its terminal `t`.
pub(super) fn columns(dialect: Dialect) -> String {
    format!(
        "l.id, l.terminal_id, t.serial, l.enroll_id, l.user_name, l.punched_at, l.mode, \
         l.inout, l.event, l.temperature, l.access_granted, k.sync_attempts, {}, t.timezone",
        super::punched(dialect, "k")
    )
}

/// One punch in the body, fields in the documented order.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub terminal_sn: String,
    pub enrollid: i64,
    pub user_name: String,
    pub time: String,
    pub mode: i64,
    pub inout: i64,
    pub event: i64,
    pub temperature: Option<f64>,
    pub access_granted: bool,
    pub log_id: i64,
}

/// A row read for a batch: its item, or why it cannot be sent.
#[derive(Debug)]
pub struct Read {
    pub id: i64,
    pub terminal_id: i64,
    /// Its instant as a Julian day number (`punched!()`), for the run's
    /// walk in punch order.
    pub at: f64,
    pub attempts: u32,
    pub item: Result<Item, String>,
}

/// Reads a row of `COLUMNS`. Only the id is required to be sound: any other
/// bad value makes the item an error naming the column, not the run's. A
/// `punched_at` without an offset is read in its terminal's `timezone`, else
/// in `naive` (`naive_timezone`), and sent in UTC.
pub(super) fn read(row: &Row<'_>, naive: Tz) -> crate::store::Result<Read> {
    let id: i64 = row.get(0)?;
    let terminal_id = column_id(row.cell(1)?).unwrap_or(0);
    let attempts = column_id(row.cell(11)?).unwrap_or(0).clamp(0, u32::MAX as i64) as u32;
    let at = row.get::<Option<f64>>(12)?.unwrap_or(UNREADABLE_AT);
    let item = item(row, id, naive);
    Ok(Read {
        id,
        terminal_id,
        at,
        attempts,
        item,
    })
}

fn item(row: &Row<'_>, id: i64, naive: Tz) -> Result<Item, String> {
    let get = |i: usize| row.cell(i).map_err(|e| e.to_string());
    let integer = |i: usize, name: &str| -> Result<i64, String> {
        column_id(get(i)?).ok_or_else(|| format!("{name} is {}, not an integer", shown(get(i).ok())))
    };
    let punched_at = column_text(get(5)?).unwrap_or_default();
    // The terminal's zone matters only to a value without its own offset.
    let terminal_zone = column_text(get(13)?).filter(|z| !z.trim().is_empty());
    let zone = match terminal_zone {
        Some(z) if !instant::has_offset(&punched_at) => crate::config::parse_zone(z.trim()).map_err(|why| {
            format!("punched_at {punched_at:?} has no offset and its terminal's timezone is unusable: {why}")
        })?,
        _ => naive,
    };
    let time = instant::parse_in(&punched_at, zone)
        .ok_or_else(|| format!("punched_at {punched_at:?} is not an instant (expected e.g. 2025-12-30T10:30:00Z)"))?;
    let temperature = match get(9)? {
        Cell::Null => None,
        Cell::Int(i) => Some(i as f64),
        Cell::Real(f) if f.is_finite() => Some(f),
        // What a PostgreSQL mapping reads as not a number: a `numeric`
        // beyond a double's range, a type that is no number (a `uuid`).
        Cell::Real(f) if f.is_nan() => {
            return Err("temperature is not a number (`rappel sources attendance_logs` shows it as written)".into());
        }
        Cell::Text(t) if t.trim().is_empty() => None,
        other => Some(
            match &other {
                Cell::Text(t) => t.trim().parse::<f64>().ok(),
                _ => None,
            }
            .filter(|f| f.is_finite())
            .ok_or_else(|| format!("temperature is {}, not a number", shown(Some(other))))?,
        ),
    };
    Ok(Item {
        terminal_sn: column_text(get(2)?).unwrap_or_default(),
        enrollid: integer(3, "enroll_id")?,
        user_name: column_text(get(4)?).unwrap_or_default(),
        time: instant::format(time),
        mode: integer(6, "mode")?,
        inout: integer(7, "inout")?,
        event: integer(8, "event")?,
        temperature,
        access_granted: column_flag(get(10)?)
            .ok_or_else(|| format!("access_granted is {}, not 0 or 1", shown(get(10).ok())))?,
        log_id: id,
    })
}

fn shown(v: Option<Cell<'_>>) -> String {
    match v {
        Some(Cell::Null) | None => "NULL".into(),
        Some(v) => format!("{:?}", column_text(v).unwrap_or_else(|| "a blob".into())),
    }
}
