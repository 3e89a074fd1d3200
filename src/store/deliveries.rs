//! Planning's writes to `deliveries`: a message inserted under its
//! de-duplication key (`ON CONFLICT DO NOTHING`, PostgreSQL's too), planned
//! again under the same key, or looked up by it.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::engine::plan::Planned;
use crate::instant;

/// Inserts the message unless its dedupe key exists; returns its id when new.
/// Called inside the job's write transaction.
pub fn insert(tx: &Connection, p: &Planned, now: DateTime<Utc>) -> rusqlite::Result<Option<i64>> {
    let attachment = p.attachment.as_ref();
    tx.prepare_cached(
        "INSERT INTO deliveries (job, kind, dedupe_key, source_table, source_id, contact_id, channel,
                                 recipient, subject, body, html_body, valid_until, created_at,
                                 attachment_path, attachment_name, attachment_type,
                                 status, error_class, last_error, payload, source_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                 CASE WHEN ?17 IS NULL THEN 'pending' ELSE 'failed' END,
                 CASE WHEN ?17 IS NULL THEN NULL ELSE 'permanent' END, ?17, ?18, ?19)
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
            attachment.map(|a| &a.path),
            attachment.map(|a| &a.name),
            attachment.map(|a| &a.mime),
            p.failed,
            p.payload,
            p.source_at.map(instant::format),
        ],
        |r| r.get(0),
    )
    .optional()
}

/// Plans a message again under its existing key (its source was set back to
/// pending by the operator, or an address came back to a report's list):
/// fresh content, attempts from zero. Only a failed or cancelled message.
pub fn rearm(tx: &Transaction<'_>, p: &Planned) -> rusqlite::Result<usize> {
    let attachment = p.attachment.as_ref();
    tx.prepare_cached(
        "UPDATE deliveries
         SET subject = ?2, body = ?3, html_body = ?4, attachment_path = ?5, attachment_name = ?6,
             attachment_type = ?7, attempts = 0, next_attempt_at = NULL, claimed_by = NULL, lease_until = NULL,
             status = CASE WHEN ?8 IS NULL THEN 'pending' ELSE 'failed' END,
             error_class = CASE WHEN ?8 IS NULL THEN NULL ELSE 'permanent' END,
             last_error = ?8
         WHERE dedupe_key = ?1 AND status IN ('failed', 'cancelled')",
    )?
    .execute(params![
        p.dedupe_key,
        p.subject,
        p.body,
        p.html,
        attachment.map(|a| &a.path),
        attachment.map(|a| &a.name),
        attachment.map(|a| &a.mime),
        p.failed,
    ])
}

/// Whether a message with `key` was planned already (whatever became of it).
pub fn planned_already(conn: &Connection, key: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM deliveries WHERE dedupe_key = ?1)")?
        .query_row([key], |r| r.get(0))
}
