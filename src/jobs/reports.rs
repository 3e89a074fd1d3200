//! send-reports: every pending report whose `scheduled_at` has come gets one
//! email per recipient with its content (stored file or generated rows). The
//! report row follows its deliveries, and a recurring report gets its next
//! occurrence once it leaves `pending`.

mod content;
mod recheck;
mod recurrence;
mod status;

use std::collections::HashMap;

use anyhow::Context;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::{PlanCtx, PlanReport};
use crate::config::ReportsConfig;
use crate::db::Database;
use crate::db::identity::source_ref;
use crate::domain::planned::{AttachmentSpec, Planned};
use crate::store::{self, Conn};

use crate::instant;
pub use content::check_query;
pub use recheck::ReportsRecheck;
pub use status::{ReportCounts, ReportsHook, count};

pub const JOB: crate::domain::Job = crate::domain::Job::SendReports;
pub const KIND: crate::domain::Kind = crate::domain::Kind::Report;
pub const TABLE: &str = store::reports::TABLE;

struct Row {
    id: i64,
    title: String,
    recipients: String,
    /// When it is due: `scheduled_at`, a value without an offset read in the
    /// row's `timezone`, else `naive_timezone`.
    scheduled_at: DateTime<Utc>,
    /// The row's name in keys and its deliveries (`db::identity`): the value
    /// read as `instant::parse` does, whatever the zones say.
    source_at: DateTime<Utc>,
    attachment_path: Option<String>,
    report: Option<String>,
    recurrence: Option<String>,
    zone: Tz,
}

impl Row {
    /// The time a mailing is titled with: its slot, or, for a recurring row
    /// sent after its next slot passed too (the machine was off), `now`: the
    /// one catch-up mailing is made now, not at the oldest missed slot.
    fn titled_at(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let missed = recurrence::Recurrence::of(self.recurrence.as_deref())
            .and_then(Result::ok)
            .and_then(|r| r.next_after(self.scheduled_at, self.zone))
            .is_some_and(|next| next <= now);
        if missed { now } else { self.scheduled_at }
    }
}

pub fn plan(conn: &mut Conn, cfg: &ReportsConfig, ctx: &PlanCtx<'_>) -> anyhow::Result<PlanReport> {
    let db = ctx.db;
    let mut report = PlanReport::default();
    let files_dir = db.files_dir();
    let recur = status::Recur {
        cfg,
        zone: ctx.zone,
        naive: ctx.naive_zone,
    };
    for row in due_rows(conn, ctx, &mut report)? {
        plan_one(conn, &row, &recur, db, files_dir.as_deref(), ctx, &mut report)
            .with_context(|| format!("scheduled_reports id {}", row.id))?;
    }
    Ok(report)
}

/// Pending rows whose time has come, oldest first. A row whose columns do not
/// parse is skipped with a warning naming it.
fn due_rows(conn: &Conn, ctx: &PlanCtx<'_>, report: &mut PlanReport) -> anyhow::Result<Vec<Row>> {
    let mut due = Vec::new();
    for r in store::reports::pending(conn)? {
        let id = r.id;
        let mut bad = |column: &str, why: String| {
            log::warn!("scheduled_reports id {id}: {column}: {why}; row skipped");
            report.data_errors += 1;
        };
        let raw_at = r.scheduled_at.unwrap_or_default();
        let Some(source_at) = instant::parse(&raw_at) else {
            bad("scheduled_at", format!("{raw_at:?} is not a timestamp"));
            continue;
        };
        let (zone, naive) = match r.timezone.as_deref().map(str::trim).filter(|z| !z.is_empty()) {
            None => (ctx.zone, ctx.naive_zone),
            Some(z) => match crate::config::parse_zone(z) {
                Ok(zone) => (zone, zone),
                Err(why) => {
                    bad("timezone", why);
                    continue;
                }
            },
        };
        let Some(scheduled_at) = instant::parse_in(&raw_at, naive) else {
            bad("scheduled_at", format!("{raw_at:?} is not a timestamp"));
            continue;
        };
        if scheduled_at > ctx.now {
            continue;
        }
        if let Some(next) = r.next_attempt_at.filter(|n| !n.trim().is_empty()) {
            match instant::parse(&next) {
                Some(next) if next > ctx.now && !ctx.force => continue,
                Some(_) => {}
                None => {
                    bad("next_attempt_at", format!("{next:?} is not a timestamp"));
                    continue;
                }
            }
        }
        let recurrence = r.recurrence;
        if let Some(Err(why)) = recurrence::Recurrence::of(recurrence.as_deref()) {
            // Sent all the same (its content is fine), but loudly: no next
            // occurrence can be made, and a recurring mailing would stop unseen.
            log::error!(
                "scheduled_reports id {id}: recurrence: {why}; this occurrence is sent, but no next one is \
                 made until the row's recurrence is fixed"
            );
            report.data_errors += 1;
        }
        due.push(Row {
            id,
            title: r.title.unwrap_or_default(),
            recipients: r.recipients.unwrap_or_default(),
            scheduled_at,
            source_at,
            attachment_path: r.attachment_path,
            report: r.report,
            recurrence,
            zone,
        });
    }
    due.sort_by_key(|r| (r.scheduled_at, r.id));
    Ok(due)
}

/// The recipients of a row (`recipient::email_list`: `,` or `;`, quoted
/// names, duplicates merged), each as its bare address, or as written with
/// the reason it cannot be used.
fn addresses(list: &str) -> Vec<(String, Option<String>)> {
    crate::recipient::email_list(list)
        .into_iter()
        .map(|entry| match crate::recipient::email(&entry) {
            Ok(address) => (address, None),
            Err(why) => (entry, Some(format!("invalid recipient: {why}"))),
        })
        .collect()
}

/// For `config check`: each pending report row's recipients that are not
/// addresses, one line per row naming them all, and each pending row whose
/// `recurrence`, `timezone` or `scheduled_at` cannot be read.
pub fn invalid_recipients(conn: &Conn) -> store::Result<Vec<String>> {
    let mut problems = Vec::new();
    for r in store::reports::pending(conn)? {
        let id = r.id;
        let text = |v: &Option<String>| v.as_deref().unwrap_or_default().trim().to_string();
        if let Some(Err(why)) = recurrence::Recurrence::of(Some(&text(&r.recurrence))) {
            problems.push(format!(
                "scheduled_reports id {id}: recurrence: {why}; no next occurrence will be made"
            ));
        }
        let zone = text(&r.timezone);
        if let Err(why) = crate::config::parse_zone(&zone)
            && !zone.is_empty()
        {
            problems.push(format!(
                "scheduled_reports id {id}: timezone: {why}; the row will be skipped"
            ));
        }
        let scheduled_at = text(&r.scheduled_at);
        if instant::parse(&scheduled_at).is_none() {
            problems.push(format!(
                "scheduled_reports id {id}: scheduled_at: {scheduled_at:?} is not a timestamp; the row will be skipped"
            ));
        }
        let list = r.recipients.unwrap_or_default();
        let bad: Vec<String> = addresses(&list)
            .into_iter()
            .filter_map(|(address, invalid)| invalid.map(|_| format!("{address:?}")))
            .collect();
        if !bad.is_empty() {
            problems.push(format!(
                "scheduled_reports id {id}: not an email address, will fail: {}",
                bad.join(", ")
            ));
        }
    }
    Ok(problems)
}

#[derive(Serialize)]
struct ReportCtx<'a> {
    title: &'a str,
    scheduled_local: String,
    generated: bool,
    attachment_name: Option<&'a str>,
    table: Option<&'a content::Table>,
    site_url: Option<&'a str>,
}

fn plan_one(
    conn: &mut Conn,
    row: &Row,
    recur: &status::Recur<'_>,
    db: &Database,
    files_dir: Option<&std::path::Path>,
    ctx: &PlanCtx<'_>,
    report: &mut PlanReport,
) -> anyhow::Result<()> {
    report.report_rows.push((row.id, instant::format(row.source_at)));
    let existing = existing_deliveries(conn, row)?;
    if existing.values().any(|s| s == "pending" || s == "sending") {
        return Ok(()); // planned earlier; the engine is on it
    }
    let all = addresses(&row.recipients);
    let to_send: Vec<&(String, Option<String>)> = all
        .iter()
        // Sent, or cancelled by hand (`rappel cancel`): not again.
        .filter(|(a, _)| {
            existing
                .get(&a.to_lowercase())
                .is_none_or(|s| s != "sent" && s != "withdrawn")
        })
        .collect();
    let local = row.scheduled_at.with_timezone(&row.zone);
    let source = content::Source {
        id: row.id,
        attachment_path: row.attachment_path.as_deref(),
        report: row.report.as_deref(),
        local_date: local.format("%Y-%m-%d").to_string(),
    };
    let resolved = if to_send.is_empty() {
        None
    } else {
        Some(content::resolve(
            &source,
            recur.cfg,
            db,
            if ctx.dry_run { None } else { files_dir },
        ))
    };
    let content = match resolved {
        None if all.is_empty() => Err("no recipients".to_string()),
        None => return finish(conn, row, ctx, recur, status::Done::Refresh),
        Some(r) => r,
    };
    let content = match content {
        Err(reason) => {
            log::warn!("scheduled_reports id {} ({}): {reason}", row.id, row.title);
            report
                .failures
                .push(format!("scheduled_reports id {} ({}): {reason}", row.id, row.title));
            return finish(conn, row, ctx, recur, status::Done::Failed(reason));
        }
        Ok(content::Content::Empty { definition }) => {
            report.skipped.push(format!(
                "scheduled_reports id {}: {definition} returned no rows",
                row.id
            ));
            return finish(conn, row, ctx, recur, status::Done::Empty);
        }
        Ok(c) => c,
    };
    let (table, attachment) = match &content {
        content::Content::Stored(a) => (None, a),
        content::Content::Generated { table, attachment, .. } => (Some(table), attachment),
        content::Content::Empty { .. } => unreachable!("handled above"),
    };
    let context = ReportCtx {
        title: &row.title,
        scheduled_local: crate::templates::local_datetime(row.titled_at(ctx.now), row.zone, ctx.locale),
        generated: table.is_some(),
        attachment_name: Some(&attachment.name),
        table,
        site_url: ctx.site_url,
    };
    // A template that fails leaves the row pending: sent once it is fixed.
    let rendered = match ctx
        .templates
        .render(ctx.locale, KIND, &context)
        .context("report templates")
    {
        Ok(rendered) => rendered,
        Err(e) => {
            report.template_failed(&e);
            return Ok(());
        }
    };
    let messages: Vec<Planned> = to_send
        .iter()
        .map(|(address, invalid)| {
            let key = format!(
                "{KIND}:{}:{}",
                source_ref(row.id, Some(row.source_at)),
                address.to_lowercase()
            );
            Planned {
                source_table: Some(TABLE),
                source_id: Some(row.id),
                source_at: Some(row.source_at),
                attachment: Some(AttachmentSpec {
                    path: attachment.path.to_string_lossy().into_owned(),
                    name: attachment.name.clone(),
                    mime: attachment.mime.to_string(),
                }),
                failed: invalid.clone(),
                detail: if ctx.dry_run {
                    vec![crate::templates::labelled(
                        ctx.locale,
                        &row.title,
                        &content.describe(ctx.locale),
                    )]
                } else {
                    vec![]
                },
                due_at: Some(row.scheduled_at),
                ..Planned::email(JOB, KIND, key, address.clone(), rendered.clone())
            }
        })
        .collect();
    let invalid = |m: &Planned| {
        m.failed
            .as_ref()
            .map(|why| format!("scheduled_reports id {}: {why}", row.id))
    };
    if ctx.dry_run {
        for m in messages {
            match invalid(&m) {
                Some(failure) => report.failures.push(failure),
                None => {
                    report.planned += 1;
                    report.messages.push(m);
                }
            }
        }
        return Ok(());
    }
    let tx = store::begin(conn)?;
    // Under the write lock, look again: an overlapping run may have planned it.
    let existing = existing_deliveries(&tx, row)?;
    if existing.values().any(|s| s == "pending" || s == "sending") {
        return Ok(());
    }
    for message in &messages {
        match existing.get(&message.recipient.to_lowercase()).map(String::as_str) {
            Some("sent") => {}
            // The operator set a failed report back to pending: try its failed
            // recipients again, with the content as it is now.
            Some(_) => {
                crate::store::deliveries::rearm(&tx, message)?;
            }
            None => {
                if crate::store::deliveries::insert(&tx, message, ctx.now)?.is_none() {
                    continue;
                }
            }
        }
        match invalid(message) {
            Some(failure) => {
                log::warn!("{failure}");
                report.failures.push(failure);
            }
            None => report.planned += 1,
        }
    }
    status::refresh(&tx, (row.id, &instant::format(row.source_at)), ctx.now, recur)?;
    tx.commit()?;
    Ok(())
}

/// Ends a row that sends nothing this run: failed with a reason, done because
/// empty, or brought up to date with deliveries that already went.
fn finish(
    conn: &mut Conn,
    row: &Row,
    ctx: &PlanCtx<'_>,
    recur: &status::Recur<'_>,
    done: status::Done,
) -> anyhow::Result<()> {
    if ctx.dry_run {
        return Ok(());
    }
    let tx = store::begin(conn)?;
    // Under the write lock: an overlapping run may have planned this row.
    if existing_deliveries(&tx, row)?
        .values()
        .any(|s| s == "pending" || s == "sending")
    {
        return Ok(());
    }
    status::finish(&tx, (row.id, &instant::format(row.source_at)), ctx.now, done, recur)?;
    tx.commit()?;
    Ok(())
}

/// The deliveries made for this row (not for an earlier row with its id), by
/// lower-cased recipient.
fn existing_deliveries(conn: &Conn, row: &Row) -> store::Result<HashMap<String, String>> {
    store::reports::deliveries_by_recipient(conn, row.id, row.source_at)
}

/// Template data for `config check`.
pub fn sample_context(optional_present: bool) -> serde_json::Value {
    serde_json::json!({
        "title": "Tickets ouverts <semaine 12>",
        "scheduled_local": "21/11/2026 07:00",
        "generated": optional_present,
        "attachment_name": "weekly_tickets-2026-11-21.csv",
        "table": optional_present.then(|| serde_json::json!({
            "columns": ["reference", "customer"],
            "rows": [["R-1", "Marie <Ndong>"], ["R-2", "Paul, \"Mba\""]],
            "row_count": 2,
            "truncated": false,
        })),
        "site_url": optional_present.then_some("https://example.com"),
    })
}
