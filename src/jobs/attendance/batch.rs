//! One batch as the HR API sees it: the request body of the items read from
//! its log rows (`store::attendance`), the Idempotency-Key, and the per-item
//! results of the answer.

use std::collections::HashMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

/// One punch in the body, as the store reads it from its log row.
pub use crate::store::attendance::Item;

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
