//! Planned messages: what a job hands the engine, inserted with its
//! de-duplication key in the job's own transaction.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Transaction, params};
use serde::Serialize;

use crate::instant;

/// One message a job wants sent. The dedupe key makes planning idempotent.
#[derive(Clone, Debug, Serialize)]
pub struct Planned {
    pub job: &'static str,
    pub kind: String,
    pub dedupe_key: String,
    pub source_table: Option<&'static str>,
    pub source_id: Option<i64>,
    pub contact_id: Option<i64>,
    pub channel: &'static str,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub html: Option<String>,
    pub valid_until: Option<DateTime<Utc>>,
    /// Indented lines a dry run prints under the message (tickets of a digest...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub detail: Vec<String>,
}

/// Inserts the message unless its dedupe key exists; returns its id when new.
pub fn insert(tx: &Transaction<'_>, p: &Planned, now: DateTime<Utc>) -> rusqlite::Result<Option<i64>> {
    tx.prepare_cached(
        "INSERT INTO deliveries (job, kind, dedupe_key, source_table, source_id, contact_id, channel,
                                 recipient, subject, body, html_body, valid_until, status, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 'pending', ?13)
         ON CONFLICT (dedupe_key) DO NOTHING
         RETURNING id",
    )?
    .query_row(
        params![
            p.job,
            p.kind,
            p.dedupe_key,
            p.source_table,
            p.source_id,
            p.contact_id,
            p.channel,
            p.recipient,
            p.subject,
            p.body,
            p.html,
            p.valid_until.map(instant::format),
            instant::format(now),
        ],
        |r| r.get(0),
    )
    .optional()
}
