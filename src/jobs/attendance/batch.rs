//! One batch as the HR API sees it: each log row read into its JSON item, the
//! request body, the Idempotency-Key, and the per-item results of the answer.

use std::collections::HashMap;

use rusqlite::Row;
use rusqlite::types::ValueRef;
use serde::Serialize;
use sha2::{Digest, Sha256};

use chrono_tz::Tz;

use crate::instant;
use crate::jobs::{column_flag, column_id, column_text};

/// The columns `item` reads, in order, from `attendance_logs l JOIN terminals t`.
pub const COLUMNS: &str = concat!(
    "l.id, l.terminal_id, t.serial, l.enroll_id, l.user_name, l.punched_at, l.mode, \
     l.inout, l.event, l.temperature, l.access_granted, l.sync_attempts, ",
    punched!(),
    ", t.timezone"
);

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
pub fn read(row: &Row<'_>, naive: Tz) -> rusqlite::Result<Read> {
    let id: i64 = row.get(0)?;
    let terminal_id = column_id(row.get_ref(1)?).unwrap_or(0);
    let attempts = column_id(row.get_ref(11)?).unwrap_or(0).clamp(0, u32::MAX as i64) as u32;
    let at = row.get::<_, Option<f64>>(12)?.unwrap_or(super::ledger::UNREADABLE_AT);
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
    let get = |i: usize| row.get_ref(i).map_err(|e| e.to_string());
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
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(i as f64),
        ValueRef::Real(f) if f.is_finite() => Some(f),
        ValueRef::Text(t) if std::str::from_utf8(t).is_ok_and(|s| s.trim().is_empty()) => None,
        other => Some(
            std::str::from_utf8(other.as_bytes().unwrap_or_default())
                .ok()
                .and_then(|s| s.trim().parse::<f64>().ok())
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

fn shown(v: Option<ValueRef<'_>>) -> String {
    match v {
        Some(ValueRef::Null) | None => "NULL".into(),
        Some(v) => format!("{:?}", column_text(v).unwrap_or_else(|| "a blob".into())),
    }
}

#[derive(Serialize)]
struct Body<'a> {
    attendance: &'a [&'a Item],
}

/// `{"attendance":[...]}`.
pub fn body(items: &[&Item]) -> Vec<u8> {
    serde_json::to_vec(&Body { attendance: items }).unwrap_or_default()
}

/// The same body, indented, for `--dry-run`.
pub fn body_pretty(items: &[&Item]) -> String {
    serde_json::to_string_pretty(&Body { attendance: items }).unwrap_or_default()
}

/// `rappel-<service>-<sha256 of the ascending log ids joined by ','>`.
pub fn idempotency_key(service: &str, ids: &[i64]) -> String {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    let joined = sorted.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    format!("rappel-{service}-{:x}", Sha256::digest(joined.as_bytes()))
}

/// What the answer to a 2xx says of one log.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    Sent,
    /// Failed for good, with the API's reason.
    Rejected(String),
    /// Unclear: tried again later.
    Unclear(String),
}

/// Each log's verdict, in the order of `ids`. A body without `results` (or
/// not JSON at all) accepts the whole batch.
pub fn verdicts(answer: &str, ids: &[i64]) -> Vec<Verdict> {
    let results = serde_json::from_str::<serde_json::Value>(answer)
        .ok()
        .and_then(|v| v.get("results").cloned());
    let Some(results) = results else {
        return ids.iter().map(|_| Verdict::Sent).collect();
    };
    let Some(list) = results.as_array() else {
        return ids
            .iter()
            .map(|_| Verdict::Unclear("the answer's results is not a list".into()))
            .collect();
    };
    let mut by_id: HashMap<i64, &serde_json::Value> = HashMap::new();
    for r in list {
        let id = r.get("log_id").and_then(|v| match v {
            serde_json::Value::Number(n) => n.as_i64(),
            serde_json::Value::String(s) => s.trim().parse().ok(),
            _ => None,
        });
        if let Some(id) = id {
            by_id.insert(id, r);
        }
    }
    ids.iter()
        .map(|id| {
            let Some(r) = by_id.get(id) else {
                return Verdict::Unclear("the answer has no result for this log".into());
            };
            let error = r
                .get("error")
                .and_then(|e| e.as_str())
                .map(crate::channels::http::excerpt);
            match r.get("status").and_then(|s| s.as_str()) {
                Some("created" | "duplicate") => Verdict::Sent,
                Some("rejected") => Verdict::Rejected(format!(
                    "rejected by the API: {}",
                    error.as_deref().unwrap_or("no reason given")
                )),
                other => Verdict::Unclear(format!("unknown result status {other:?}")),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_the_hash_of_the_sorted_ids() {
        let key = idempotency_key("rh", &[3, 1, 2]);
        assert_eq!(key, idempotency_key("rh", &[1, 2, 3]));
        assert_eq!(
            key,
            format!("rappel-rh-{:x}", Sha256::digest(b"1,2,3")),
            "ids ascending, joined by ','"
        );
        assert_ne!(key, idempotency_key("rh", &[1, 2]));
        assert_ne!(key, idempotency_key("paie", &[1, 2, 3]));
    }

    #[test]
    fn body_has_the_documented_fields_in_order() {
        let item = Item {
            terminal_sn: "TM20-001".into(),
            enrollid: 123,
            user_name: "Awa".into(),
            time: "2025-12-30T10:30:00Z".into(),
            mode: 1,
            inout: 0,
            event: 0,
            temperature: None,
            access_granted: true,
            log_id: 7,
        };
        assert_eq!(
            String::from_utf8(body(&[&item])).unwrap(),
            r#"{"attendance":[{"terminal_sn":"TM20-001","enrollid":123,"user_name":"Awa","time":"2025-12-30T10:30:00Z","mode":1,"inout":0,"event":0,"temperature":null,"access_granted":true,"log_id":7}]}"#
        );
    }

    #[test]
    fn verdicts_follow_each_result() {
        let answer = r#"{"results":[{"log_id":1,"status":"created"},{"log_id":"2","status":"duplicate"},
            {"log_id":3,"status":"rejected","error":"unknown enrollid"},{"log_id":4,"status":"queued"}]}"#;
        assert_eq!(
            verdicts(answer, &[1, 2, 3, 4, 5]),
            vec![
                Verdict::Sent,
                Verdict::Sent,
                Verdict::Rejected("rejected by the API: unknown enrollid".into()),
                Verdict::Unclear("unknown result status Some(\"queued\")".into()),
                Verdict::Unclear("the answer has no result for this log".into()),
            ]
        );
        assert_eq!(verdicts("", &[1, 2]), vec![Verdict::Sent, Verdict::Sent]);
        assert_eq!(verdicts(r#"{"ok":true}"#, &[1]), vec![Verdict::Sent]);
        assert!(matches!(verdicts(r#"{"results":7}"#, &[1])[0], Verdict::Unclear(_)));
    }
}
