//! `rappel_deliveries` outside claims and outcomes: planning's writes (a message
//! inserted under its de-duplication key with `ON CONFLICT DO NOTHING`,
//! PostgreSQL's too, planned again under it, looked up by it) and the log's
//! filtered read.

use super::Result;
use crate::params;
use crate::store::{Conn, Dialect, Param, ToParam, Tx};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::{Channel, DeliveryStatus, Kind};

use crate::domain::planned::Planned;
use crate::instant;

/// Inserts the message unless its dedupe key exists; returns its id when new.
/// Called inside the job's write transaction.
///
/// The new id is the connection's last inserted rowid rather than a
/// `RETURNING` clause: SQLite runs `RETURNING` as a trigger, which makes the
/// statement keep a statement journal (every page it changes copied to a
/// temporary file first), a large share of planning's writes.
pub fn insert(tx: &Conn, p: &Planned, now: DateTime<Utc>) -> Result<Option<i64>> {
    const INSERT: &str =
        "INSERT INTO rappel_deliveries (job, kind, dedupe_key, source_table, source_id, contact_id, channel,
                                 recipient, subject, body, html_body, valid_until, created_at,
                                 attachment_path, attachment_name, attachment_type,
                                 status, error_class, last_error, payload, source_at, replaces_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                 CASE WHEN CAST(?17 AS TEXT) IS NULL THEN 'pending' ELSE 'failed' END,
                 CASE WHEN CAST(?17 AS TEXT) IS NULL THEN NULL ELSE 'permanent' END, ?17, ?18, ?19,
                 CASE WHEN CAST(?20 AS TEXT) IS NULL THEN NULL
                      ELSE (SELECT r.id FROM rappel_deliveries r WHERE r.dedupe_key = CAST(?20 AS TEXT)) END)
         ON CONFLICT (dedupe_key) DO NOTHING";
    let attachment = p.attachment.as_ref();
    let values = params![
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
        p.valid_until,
        now,
        attachment.map(|a| &a.path),
        attachment.map(|a| &a.name),
        attachment.map(|a| &a.mime),
        p.failed,
        p.payload,
        p.source_at,
        p.replaces,
    ];
    match tx.dialect() {
        Dialect::Sqlite => {
            let inserted = tx.execute(INSERT, values)?;
            Ok((inserted > 0)
                .then(|| tx.lite().map(|c| c.last_insert_rowid()))
                .transpose()?)
        }
        Dialect::Postgres => tx.query_opt(&format!("{INSERT} RETURNING id"), values, |r| r.get(0)),
    }
}

/// Plans a message again under its existing key (its source was set back to
/// pending by the operator, or an address came back to a report's list):
/// fresh content, attempts from zero. Only a failed or cancelled message.
pub fn rearm(tx: &Tx<'_>, p: &Planned) -> Result<usize> {
    let attachment = p.attachment.as_ref();
    tx.execute(
        "UPDATE rappel_deliveries
         SET subject = ?2, body = ?3, html_body = ?4, attachment_path = ?5, attachment_name = ?6,
             attachment_type = ?7, attempts = 0, next_attempt_at = NULL, claimed_by = NULL, lease_until = NULL,
             status = CASE WHEN CAST(?8 AS TEXT) IS NULL THEN 'pending' ELSE 'failed' END,
             error_class = CASE WHEN CAST(?8 AS TEXT) IS NULL THEN NULL ELSE 'permanent' END,
             last_error = ?8
         WHERE dedupe_key = ?1 AND status IN ('failed', 'cancelled')",
        params![
            p.dedupe_key,
            p.subject,
            p.body,
            p.html,
            attachment.map(|a| &a.path),
            attachment.map(|a| &a.name),
            attachment.map(|a| &a.mime),
            p.failed,
        ],
    )
}

/// Whether delivery `id` exists (whatever its status). Errors: `StoreError`.
pub fn exists(conn: &Conn, id: i64) -> Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM rappel_deliveries WHERE id = ?1)",
        params![id],
        |r| r.get(0),
    )
}

/// Whether a message with `key` was planned already (whatever became of it).
pub fn planned_already(conn: &Conn, key: &str) -> Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM rappel_deliveries WHERE dedupe_key = ?1)",
        params![key],
        |r| r.get(0),
    )
}

/// What became of a delivery, as channel fallback judges it.
#[derive(Debug)]
pub struct Attempt {
    pub id: i64,
    pub status: DeliveryStatus,
    pub channel: Channel,
    /// Twilio's later word (`delivered`, `read`, `undelivered`, `failed`...).
    pub provider_status: Option<String>,
    /// `file:...` for the file transport, which never reports a status.
    pub provider_ref: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// The delivery planned under `key`, if any. Errors: `StoreError`.
pub fn attempt(conn: &Conn, key: &str) -> Result<Option<Attempt>> {
    conn.query_opt(
        "SELECT id, status, channel, provider_status, provider_ref, sent_at FROM rappel_deliveries WHERE dedupe_key = ?1",
        params![key],
        |r| {
            Ok(Attempt {
                id: r.get(0)?,
                status: r.get(1)?,
                channel: r.get(2)?,
                provider_status: r.get(3)?,
                provider_ref: r.get(4)?,
                sent_at: r.get::<Option<String>>(5)?.as_deref().and_then(instant::parse),
            })
        },
    )
}

/// `contacts.timezone` of contact `id`, as written (`None`: no such
/// contact, or no zone). Errors: `StoreError`.
pub fn contact_zone(conn: &Conn, id: i64) -> Result<Option<String>> {
    Ok(conn
        .query_opt("SELECT timezone FROM contacts WHERE id = ?1", params![id], |r| {
            r.get::<Option<String>>(0)
        })?
        .flatten()
        .filter(|z| !z.trim().is_empty()))
}

/// Whether delivery `id` was reported delivered or read (Twilio's later
/// word). Errors: `StoreError`.
pub fn reached(conn: &Conn, id: i64) -> Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM rappel_deliveries WHERE id = ?1 AND provider_status IN ('delivered', 'read'))",
        params![id],
        |r| r.get(0),
    )
}

/// One row of the log, as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct LogEntry {
    pub id: i64,
    pub job: String,
    pub kind: String,
    pub channel: String,
    pub recipient: String,
    pub subject: String,
    pub status: String,
    pub provider_status: Option<String>,
    pub attempts: i64,
    pub error_class: Option<String>,
    pub last_error: Option<String>,
    pub provider_ref: Option<String>,
    pub created_at: String,
    pub next_attempt_at: Option<String>,
    pub sent_at: Option<String>,
    /// The delivery this one replaces on another channel (channel fallback).
    pub replaces_id: Option<i64>,
    /// The delivery that replaced this one on the next channel.
    pub replaced_by: Option<i64>,
}

/// The delivery that replaced row `d` on the next channel (channel
/// fallback), as a column expression over `rappel_deliveries d`.
const REPLACED_BY: &str = "(SELECT min(n.id) FROM rappel_deliveries n WHERE n.replaces_id = d.id)";

/// Which deliveries `list` returns: each `Some` narrows; `since` is
/// compared with `created_at` (UTC); `limit: None` is all.
#[derive(Debug, Default)]
pub struct Filter {
    pub status: Option<DeliveryStatus>,
    pub kind: Option<Kind>,
    pub channel: Option<Channel>,
    pub since: Option<DateTime<Utc>>,
    pub limit: Option<u64>,
}

/// The deliveries `filter` selects, newest first. Errors: `StoreError`.
pub fn list(conn: &Conn, filter: &Filter) -> Result<Vec<LogEntry>> {
    let mut filters = Vec::new();
    let mut params: Vec<Param<'_>> = Vec::new();
    let mut narrow = |sql: &str, value: Param<'static>| {
        params.push(value);
        filters.push(format!("{sql} ?{}", params.len()));
    };
    if let Some(status) = filter.status {
        narrow("status =", Param::Text(status.as_str().into()));
    }
    if let Some(kind) = filter.kind {
        narrow("kind =", Param::Text(kind.as_str().into()));
    }
    if let Some(channel) = filter.channel {
        narrow("channel =", Param::Text(channel.as_str().into()));
    }
    if let Some(since) = filter.since {
        // rappel writes created_at itself, in the one format whose text order is time order.
        narrow("created_at >=", Param::Text(instant::format(since).into()));
    }
    // No limit: -1 in SQLite, NULL in PostgreSQL.
    params.push(match (filter.limit, conn.dialect()) {
        (Some(n), _) => Param::Int(i64::try_from(n).unwrap_or(i64::MAX)),
        (None, Dialect::Sqlite) => Param::Int(-1),
        (None, Dialect::Postgres) => Param::Null,
    });
    let sql = format!(
        "SELECT id, job, kind, channel, recipient, subject, status, provider_status, attempts, error_class,
                last_error, provider_ref, created_at, next_attempt_at, sent_at, replaces_id, {REPLACED_BY}
         FROM rappel_deliveries d {} ORDER BY id DESC LIMIT ?{}",
        if filters.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", filters.join(" AND "))
        },
        params.len()
    );
    let params: Vec<&dyn ToParam> = params.iter().map(|p| p as &dyn ToParam).collect();
    conn.query_map(&sql, &params, |r| {
        Ok(LogEntry {
            id: r.get(0)?,
            job: r.get(1)?,
            kind: r.get(2)?,
            channel: r.get(3)?,
            recipient: r.get(4)?,
            subject: r.get(5)?,
            status: r.get(6)?,
            provider_status: r.get(7)?,
            attempts: r.get(8)?,
            error_class: r.get(9)?,
            last_error: r.get(10)?,
            provider_ref: r.get(11)?,
            created_at: r.get(12)?,
            next_attempt_at: r.get(13)?,
            sent_at: r.get(14)?,
            replaces_id: r.get(15)?,
            replaced_by: r.get(16)?,
        })
    })
}

/// Every column of one `rappel_deliveries` row.
#[derive(Debug, Serialize)]
pub struct Delivery {
    pub id: i64,
    pub job: String,
    pub kind: String,
    pub dedupe_key: String,
    pub source_table: Option<String>,
    pub source_id: Option<i64>,
    pub source_at: Option<String>,
    pub contact_id: Option<i64>,
    pub channel: String,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub html_body: Option<String>,
    pub status: String,
    pub error_class: Option<String>,
    pub attempts: i64,
    pub next_attempt_at: Option<String>,
    pub valid_until: Option<String>,
    pub claimed_by: Option<String>,
    pub lease_until: Option<String>,
    pub last_error: Option<String>,
    pub provider_ref: Option<String>,
    pub provider_status: Option<String>,
    pub created_at: String,
    pub sent_at: Option<String>,
    pub attachment_path: Option<String>,
    pub attachment_name: Option<String>,
    pub attachment_type: Option<String>,
    pub payload: Option<String>,
    /// The Message-ID its email carries (derived from the dedupe key).
    pub message_id: Option<String>,
    /// The delivery this one replaces on another channel (channel fallback).
    pub replaces_id: Option<i64>,
    /// The delivery that replaced this one on the next channel.
    pub replaced_by: Option<i64>,
}

/// Delivery `id`, every column (`message_id` left for the caller to
/// derive); `None` when there is no such delivery. Errors: `StoreError`.
pub fn one(conn: &Conn, id: i64) -> Result<Option<Delivery>> {
    conn.query_opt(
        &format!(
            "SELECT id, job, kind, dedupe_key, source_table, source_id, source_at, contact_id, channel, recipient,
                    subject, body, html_body, status, error_class, attempts, next_attempt_at, valid_until,
                    claimed_by, lease_until, last_error, provider_ref, provider_status, created_at, sent_at,
                    attachment_path, attachment_name, attachment_type, payload, replaces_id, {REPLACED_BY}
             FROM rappel_deliveries d WHERE id = ?1"
        ),
        params![id],
        |r| {
            Ok(Delivery {
                id: r.get(0)?,
                job: r.get(1)?,
                kind: r.get(2)?,
                dedupe_key: r.get(3)?,
                source_table: r.get(4)?,
                source_id: r.get(5)?,
                source_at: r.get(6)?,
                contact_id: r.get(7)?,
                channel: r.get(8)?,
                recipient: r.get(9)?,
                subject: r.get(10)?,
                body: r.get(11)?,
                html_body: r.get(12)?,
                status: r.get(13)?,
                error_class: r.get(14)?,
                attempts: r.get(15)?,
                next_attempt_at: r.get(16)?,
                valid_until: r.get(17)?,
                claimed_by: r.get(18)?,
                lease_until: r.get(19)?,
                last_error: r.get(20)?,
                provider_ref: r.get(21)?,
                provider_status: r.get(22)?,
                created_at: r.get(23)?,
                sent_at: r.get(24)?,
                attachment_path: r.get(25)?,
                attachment_name: r.get(26)?,
                attachment_type: r.get(27)?,
                payload: r.get(28)?,
                message_id: None,
                replaces_id: r.get(29)?,
                replaced_by: r.get(30)?,
            })
        },
    )
}

/// One delivery an operator's `retry` or `cancel` selected.
#[derive(Debug, Serialize)]
pub struct HandRow {
    pub id: i64,
    pub kind: String,
    pub channel: String,
    pub recipient: String,
    pub status: String,
    #[serde(skip)]
    pub valid_until: Option<String>,
    /// Its source row: table, id and identifying instant as stored.
    #[serde(skip)]
    pub source: Option<(String, i64, Option<String>)>,
    /// The delivery that replaced it on the next channel (channel fallback).
    #[serde(skip)]
    pub replaced_by: Option<i64>,
}

/// Which deliveries `select` starts from: these ids (whatever their
/// status), or every one in these statuses.
#[derive(Clone, Copy, Debug)]
pub enum Pick<'a> {
    Ids(&'a [i64]),
    Statuses(&'a [&'a str]),
}

/// The deliveries `pick` names, of `kind` and created at or after `since`
/// when given, by id. Errors: `StoreError`.
pub fn select(conn: &Conn, pick: Pick<'_>, kind: Option<Kind>, since: Option<DateTime<Utc>>) -> Result<Vec<HandRow>> {
    let list = match pick {
        Pick::Ids(ids) => serde_json::to_string(ids),
        Pick::Statuses(statuses) => serde_json::to_string(statuses),
    }
    .unwrap_or_else(|_| "[]".into());
    let column = match pick {
        Pick::Ids(_) => "id",
        Pick::Statuses(_) => "status",
    };
    // rappel writes created_at itself, in the one format whose text order is time order.
    let sql = format!(
        "SELECT id, kind, channel, recipient, status, valid_until, source_table, source_id, source_at, {REPLACED_BY}
         FROM rappel_deliveries d
         WHERE {column} IN ({}) AND (?2 IS NULL OR kind = ?2)
           AND (?3 IS NULL OR created_at >= ?3)
         ORDER BY id",
        super::json_list(conn.dialect(), 1, if column == "id" { "bigint" } else { "text" })
    );
    conn.query_map(&sql, params![list, kind, since], |r| {
        let table: Option<String> = r.get(6)?;
        let id: Option<i64> = r.get(7)?;
        let at: Option<String> = r.get(8)?;
        Ok(HandRow {
            id: r.get(0)?,
            kind: r.get(1)?,
            channel: r.get(2)?,
            recipient: r.get(3)?,
            status: r.get(4)?,
            valid_until: r.get(5)?,
            source: table.zip(id).map(|(t, i)| (t, i, at)),
            replaced_by: r.get(9)?,
        })
    })
}

/// `rappel retry`: delivery `id` back to `pending`, due now, attempts from
/// zero, if it is failed, pending or cancelled (never sent nor being sent:
/// a run that claimed it meanwhile wins). Returns whether it changed.
pub fn retry_by_hand(conn: &Conn, id: i64) -> Result<bool> {
    let changed = conn.execute(
        "UPDATE rappel_deliveries SET status = 'pending', next_attempt_at = NULL, attempts = 0, error_class = NULL,
                 claimed_by = NULL, lease_until = NULL
             WHERE id = ?1 AND status IN ('failed', 'pending', 'cancelled')",
        params![id],
    )?;
    Ok(changed > 0)
}

/// `rappel cancel`: pending delivery `id` ends `cancelled` by the operator
/// (`error_class = 'operator'`, which a report's next run respects).
/// Returns whether it changed.
pub fn cancel_by_hand(conn: &Conn, id: i64) -> Result<bool> {
    let changed = conn.execute(
        "UPDATE rappel_deliveries SET status = 'cancelled', next_attempt_at = NULL, error_class = 'operator',
                 last_error = 'cancelled by hand'
             WHERE id = ?1 AND status = 'pending'",
        params![id],
    )?;
    Ok(changed > 0)
}

/// WhatsApp and SMS messages sent since `since` (UTC) through Twilio whose
/// provider status is not final yet (delivered, read, undelivered, failed):
/// id and Twilio's message SID, by id. Errors: `StoreError`.
pub fn awaiting_provider_status(conn: &Conn, since: DateTime<Utc>) -> Result<Vec<(i64, String)>> {
    conn.query_map(
        "SELECT id, provider_ref FROM rappel_deliveries
         WHERE channel IN ('whatsapp', 'sms') AND status = 'sent' AND sent_at >= ?1
           AND provider_ref IS NOT NULL AND provider_ref NOT LIKE 'file:%'
           AND (provider_status IS NULL OR provider_status NOT IN ('delivered', 'read', 'undelivered', 'failed'))
         ORDER BY id",
        params![since],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// Records Twilio's later word on delivery `id` (never its `status`: the
/// message did leave), with the error explained when there is one.
/// Returns 1 when it changed, 0 when it was already so.
pub fn set_provider_status(conn: &Conn, id: i64, status: &str, error: Option<&str>) -> Result<usize> {
    conn.execute(
        "UPDATE rappel_deliveries SET provider_status = ?2, last_error = coalesce(?3, last_error)
         WHERE id = ?1 AND provider_status IS DISTINCT FROM ?2",
        params![id, status, error],
    )
}

/// Sets `manual_reminders.sent_at` of row `id` (named by `source_at` as
/// stored) to `now` (UTC), once one of its messages was sent, if it is not
/// set yet. Errors: `StoreError`.
pub fn mark_manual_sent(conn: &Conn, id: i64, source_at: &str, now: DateTime<Utc>) -> Result<()> {
    conn.execute(
        "UPDATE manual_reminders SET sent_at = ?2
         WHERE id = ?1 AND sent_at IS NULL
           AND EXISTS (SELECT 1 FROM rappel_deliveries
                       WHERE source_table = 'manual_reminders' AND source_id = ?1 AND source_at = ?3
                         AND status = 'sent')",
        params![id, now, source_at],
    )?;
    Ok(())
}
