//! check-delay-alerts: a ticket's current stage entry is due when it has lasted
//! longer than its threshold and was not alerted within `rearm_hours`; each
//! recipient gets one digest of its due entries, longest in stage first.

use std::collections::HashMap;

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;

use super::{PlanCtx, PlanReport};
use crate::config::{DelayAlertsConfig, Locale};
use crate::engine::plan::{self, Planned};
use crate::exit::{Exit, OrExit};
use crate::instant;

pub const JOB: &str = "check-delay-alerts";
pub const KIND: &str = "delay_alert";

/// A stage entry that has lasted past its threshold.
#[derive(Clone, Debug, Serialize)]
struct Entry {
    #[serde(skip)]
    event_id: i64,
    #[serde(skip)]
    ticket_id: i64,
    #[serde(skip)]
    entered: DateTime<Utc>,
    reference: String,
    device: String,
    customer: String,
    stage: String,
    days: i64,
    threshold: u32,
}

struct Recipient {
    contact_id: Option<i64>,
    name: String,
    email: String,
    locale: Option<Locale>,
    /// `None`: the configured zone.
    zone: Option<Tz>,
    /// `None`: every stage.
    stages: Option<Vec<String>>,
}

pub fn plan(conn: &mut Connection, cfg: &DelayAlertsConfig, ctx: &PlanCtx<'_>) -> anyhow::Result<PlanReport> {
    let mut report = PlanReport::default();
    let mut due = overdue_entries(conn, cfg, ctx.now, &mut report)?;
    if due.is_empty() {
        return Ok(report);
    }
    let recipients = recipients(conn, cfg, &mut report)?;
    let mut skipped = Vec::new();
    if ctx.dry_run {
        retain_unalerted(conn, cfg, ctx, &mut due)?;
        fill_details(conn, &mut due)?;
        each_digest(&recipients, &due, ctx, &mut skipped, |message, _| {
            report.messages.push(message);
            Ok(())
        })?;
        report.planned = report.messages.len() as u64;
        report.skipped.append(&mut skipped);
        return Ok(report);
    }
    // The rearm check and the writes share one write transaction, so two runs
    // that overlap can never both alert the same entry.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    retain_unalerted(&tx, cfg, ctx, &mut due)?;
    fill_details(&tx, &mut due)?;
    let alerted_at = instant::format(ctx.now);
    each_digest(&recipients, &due, ctx, &mut skipped, |message, entries| {
        let Some(delivery_id) = plan::insert(&tx, &message, ctx.now)? else {
            return Ok(());
        };
        let mut log = tx.prepare_cached(
            "INSERT INTO delay_alert_log (event_id, ticket_id, stage, days_in_stage, alerted_at, delivery_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for e in entries {
            log.execute(params![
                e.event_id,
                e.ticket_id,
                e.stage,
                e.days,
                alerted_at,
                delivery_id
            ])?;
        }
        report.planned += 1;
        Ok(())
    })?;
    tx.commit()?;
    report.skipped.append(&mut skipped);
    Ok(report)
}

/// Current stage entries of active tickets past their threshold. A ticket with
/// an unreadable `entered_at` is skipped with a warning naming it.
fn overdue_entries(
    conn: &Connection,
    cfg: &DelayAlertsConfig,
    now: DateTime<Utc>,
    report: &mut PlanReport,
) -> anyhow::Result<Vec<Entry>> {
    let mut stmt = conn.prepare(
        "SELECT t.id, e.id, e.stage, e.entered_at
         FROM tickets t JOIN ticket_events e ON e.ticket_id = t.id
         WHERE t.closed_at IS NULL
         ORDER BY t.id",
    )?;
    let mut rows = stmt.query([])?;
    let mut due = Vec::new();
    let mut current: Option<Current> = None;
    while let Some(row) = rows.next()? {
        let ticket_id: i64 = row.get(0)?;
        if current.as_ref().is_some_and(|c| c.ticket_id != ticket_id) {
            finish_ticket(current.take(), cfg, now, &mut due, report);
        }
        let cur = current.get_or_insert(Current {
            ticket_id,
            best: None,
            bad: None,
        });
        let event_id: i64 = row.get(1)?;
        let stage = match row.get_ref(2)? {
            ValueRef::Text(s) => String::from_utf8_lossy(s).into_owned(),
            _ => {
                cur.bad.get_or_insert((event_id, "stage is not text".into()));
                continue;
            }
        };
        let parsed = match row.get_ref(3)? {
            ValueRef::Text(s) => std::str::from_utf8(s)
                .ok()
                .and_then(instant::parse)
                .ok_or_else(|| format!("entered_at {:?} is not a timestamp", String::from_utf8_lossy(s))),
            other => Err(format!("entered_at is {:?}, not a timestamp", other.data_type())),
        };
        match parsed {
            Ok(at) => {
                if cur
                    .best
                    .as_ref()
                    .is_none_or(|(b_at, b_id, _)| (at, event_id) > (*b_at, *b_id))
                {
                    cur.best = Some((at, event_id, stage));
                }
            }
            Err(why) => {
                cur.bad.get_or_insert((event_id, why));
            }
        }
    }
    finish_ticket(current, cfg, now, &mut due, report);
    Ok(due)
}

struct Current {
    ticket_id: i64,
    best: Option<(DateTime<Utc>, i64, String)>,
    bad: Option<(i64, String)>,
}

fn finish_ticket(
    cur: Option<Current>,
    cfg: &DelayAlertsConfig,
    now: DateTime<Utc>,
    due: &mut Vec<Entry>,
    report: &mut PlanReport,
) {
    let Some(cur) = cur else { return };
    if let Some((event_id, why)) = cur.bad {
        log::warn!(
            "ticket_events id {event_id} (ticket id {}): {why}; ticket skipped",
            cur.ticket_id
        );
        report.data_errors += 1;
        return;
    }
    let Some((entered, event_id, stage)) = cur.best else {
        return;
    };
    let threshold = cfg.threshold_for(&stage);
    let age = now - entered;
    if age > Duration::days(i64::from(threshold)) {
        due.push(Entry {
            event_id,
            ticket_id: cur.ticket_id,
            entered,
            reference: String::new(),
            device: String::new(),
            customer: String::new(),
            stage,
            days: age.num_days(),
            threshold,
        });
    }
}

/// Drops entries alerted less than `rearm_hours` ago (30 minutes of slack so a
/// daily run that starts a little earlier does not skip a day). `--force` keeps all.
fn retain_unalerted(
    conn: &Connection,
    cfg: &DelayAlertsConfig,
    ctx: &PlanCtx<'_>,
    due: &mut Vec<Entry>,
) -> anyhow::Result<()> {
    if ctx.force {
        return Ok(());
    }
    let cutoff = ctx.now - Duration::hours(i64::from(cfg.rearm_hours)) + Duration::minutes(30);
    let mut stmt =
        conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM delay_alert_log WHERE event_id = ?1 AND alerted_at > ?2)")?;
    let cutoff = instant::format(cutoff);
    let mut keep = Vec::with_capacity(due.len());
    for e in due.drain(..) {
        let alerted: bool = stmt.query_row(params![e.event_id, cutoff], |r| r.get(0))?;
        if !alerted {
            keep.push(e);
        }
    }
    *due = keep;
    Ok(())
}

/// Reads reference, device and customer of each due entry; an entry whose
/// ticket was deleted since the scan is dropped.
fn fill_details(conn: &Connection, due: &mut Vec<Entry>) -> anyhow::Result<()> {
    let mut stmt = conn.prepare_cached("SELECT reference, device, customer FROM tickets WHERE id = ?1")?;
    let mut kept = Vec::with_capacity(due.len());
    for mut e in due.drain(..) {
        let details = stmt
            .query_row([e.ticket_id], |r| {
                Ok((text(r.get_ref(0)?), text(r.get_ref(1)?), text(r.get_ref(2)?)))
            })
            .optional()?;
        match details {
            Some(d) => {
                (e.reference, e.device, e.customer) = d;
                kept.push(e);
            }
            None => log::info!("ticket id {} was deleted during the run; not alerted", e.ticket_id),
        }
    }
    *due = kept;
    Ok(())
}

fn text(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Text(s) => String::from_utf8_lossy(s).into_owned(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => f.to_string(),
        _ => String::new(),
    }
}

/// Active `alert_recipients` plus config `recipients`, merged by address
/// (case-insensitively); a contact without a usable address is skipped.
fn recipients(conn: &Connection, cfg: &DelayAlertsConfig, report: &mut PlanReport) -> anyhow::Result<Vec<Recipient>> {
    let mut stmt = conn.prepare(
        "SELECT c.id, c.name, c.email, c.locale, c.email_enabled, c.muted_kinds, ar.stages, c.timezone
         FROM alert_recipients ar JOIN contacts c ON c.id = ar.contact_id
         WHERE ar.active = 1
         ORDER BY ar.id",
    )?;
    let mut rows = stmt.query([])?;
    let mut list: Vec<Recipient> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut add = |r: Recipient, list: &mut Vec<Recipient>| {
        let key = r.email.to_lowercase();
        match index.get(&key) {
            Some(&i) => {
                let existing = &mut list[i];
                existing.stages = match (existing.stages.take(), r.stages) {
                    (Some(mut a), Some(b)) => {
                        a.extend(b);
                        Some(a)
                    }
                    _ => None,
                };
            }
            None => {
                index.insert(key, list.len());
                list.push(r);
            }
        }
    };
    while let Some(row) = rows.next()? {
        let contact_id: i64 = row.get(0)?;
        let name = text(row.get_ref(1)?);
        let email = text(row.get_ref(2)?).trim().to_string();
        let enabled = !matches!(row.get_ref(4)?, ValueRef::Integer(0));
        let muted = text(row.get_ref(5)?);
        let skip = if email.is_empty() {
            Some("has no email address")
        } else if !enabled {
            Some("has email disabled")
        } else if muted.split(',').any(|k| k.trim() == KIND) {
            Some("muted delay_alert")
        } else {
            None
        };
        if let Some(why) = skip {
            report.skipped.push(format!("contact {contact_id} ({name}) {why}"));
            continue;
        }
        let stages = match row.get_ref(6)? {
            ValueRef::Null => None,
            v => Some(
                text(v)
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect(),
            ),
        };
        let locale = match row.get_ref(3)? {
            ValueRef::Text(l) => Locale::parse(&String::from_utf8_lossy(l)),
            _ => None,
        };
        let zone = match row.get_ref(7)? {
            ValueRef::Null => None,
            v => match text(v).trim() {
                "" => None,
                name => match crate::config::parse_zone(name) {
                    Ok(zone) => Some(zone),
                    Err(why) => {
                        log::warn!("contacts id {contact_id}: timezone: {why}; recipient skipped");
                        report.data_errors += 1;
                        continue;
                    }
                },
            },
        };
        add(
            Recipient {
                contact_id: Some(contact_id),
                name,
                email,
                locale,
                zone,
                stages,
            },
            &mut list,
        );
    }
    for address in &cfg.recipients {
        let email = address.to_string();
        add(
            Recipient {
                contact_id: None,
                name: email.clone(),
                email,
                locale: None,
                zone: None,
                stages: None,
            },
            &mut list,
        );
    }
    Ok(list)
}

/// The template data of one digest; borrowed, so a large digest is not copied.
#[derive(Serialize)]
struct DigestCtx<'a> {
    recipient: RecipientCtx<'a>,
    entries: &'a [&'a Entry],
    count: usize,
    now_local: &'a str,
    site_url: Option<&'a str>,
}

#[derive(Serialize)]
struct RecipientCtx<'a> {
    name: &'a str,
    email: &'a str,
}

/// Renders one digest per recipient with at least one due entry of its stages
/// and hands each to `emit` in turn, so only one is in memory at a time.
fn each_digest(
    recipients: &[Recipient],
    due: &[Entry],
    ctx: &PlanCtx<'_>,
    skipped: &mut Vec<String>,
    mut emit: impl FnMut(Planned, &[&Entry]) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut covered = vec![false; due.len()];
    for r in recipients {
        let mut mine: Vec<&Entry> = Vec::new();
        for (i, e) in due.iter().enumerate() {
            if r.stages.as_ref().is_none_or(|s| s.iter().any(|st| st == &e.stage)) {
                covered[i] = true;
                mine.push(e);
            }
        }
        if mine.is_empty() {
            continue;
        }
        mine.sort_by(|a, b| a.entered.cmp(&b.entered).then_with(|| a.reference.cmp(&b.reference)));
        let locale = r.locale.unwrap_or(ctx.locale);
        let now_local = crate::templates::local_datetime(ctx.now, r.zone.unwrap_or(ctx.zone), locale);
        let context = DigestCtx {
            recipient: RecipientCtx {
                name: &r.name,
                email: &r.email,
            },
            entries: &mine,
            count: mine.len(),
            now_local: &now_local,
            site_url: ctx.site_url,
        };
        let rendered = ctx
            .templates
            .render(locale, KIND, &context)
            .with_context(|| format!("delay alert for {}", r.email))
            .or_exit(Exit::Config)?;
        let detail = if ctx.dry_run {
            mine.iter()
                .map(|e| {
                    format!(
                        "{} {} ({}): {} for {} days, threshold {}",
                        e.reference, e.device, e.customer, e.stage, e.days, e.threshold
                    )
                })
                .collect()
        } else {
            Vec::new()
        };
        let message = Planned {
            job: JOB,
            kind: KIND.into(),
            dedupe_key: format!("{KIND}:{}:{}", r.email.to_lowercase(), instant::format(ctx.now)),
            source_table: None,
            source_id: None,
            contact_id: r.contact_id,
            channel: "email",
            recipient: r.email.clone(),
            subject: rendered.subject,
            body: rendered.text,
            html: rendered.html,
            valid_until: None,
            detail,
        };
        emit(message, &mine)?;
    }
    for (e, _) in due.iter().zip(&covered).filter(|(_, c)| !**c) {
        log::warn!(
            "ticket {} is overdue in stage {:?} but no recipient covers that stage",
            e.reference,
            e.stage
        );
        skipped.push(format!("ticket {}: no recipient for stage {:?}", e.reference, e.stage));
    }
    Ok(())
}

/// Template data for `config check`: two entries, with optional values present or absent.
pub fn sample_context(optional_present: bool) -> serde_json::Value {
    let entry = |reference: &str, days: i64| Entry {
        event_id: 0,
        ticket_id: 0,
        entered: DateTime::<Utc>::UNIX_EPOCH,
        reference: reference.into(),
        device: "iPhone 13".into(),
        customer: "Marie <Ndong>".into(),
        stage: "Attente pièce".into(),
        days,
        threshold: 14,
    };
    serde_json::json!({
        "recipient": { "name": "Atelier", "email": "atelier@example.com" },
        "entries": [entry("R-0001", 30), entry("R-0002", 15)],
        "count": 2,
        "now_local": "21/11/2026 07:00",
        "site_url": optional_present.then_some("https://example.com"),
    })
}
