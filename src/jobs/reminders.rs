//! send-reminders: each run computes, from the stored loans, which reminders
//! are due now and still valid, and plans one message per enabled channel of
//! the contact. A reminder past its validity is skipped, never sent late.

mod contact;
mod loans;
mod refresh;

use anyhow::Context;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;

use super::{PlanCtx, PlanReport};
use crate::config::{RemindersConfig, WhatsappConfig};
use crate::engine::plan::{self, Planned};
use crate::exit::{Exit, OrExit};
use crate::instant;
use contact::Contact;

pub const JOB: &str = "send-reminders";

/// The loan kinds, in the order a loan meets them: the first seven kinds.
pub const LOAN_KINDS: &[&str] = crate::config::KINDS.split_at(7).0;

/// What send-reminders needs beyond the planning context.
pub struct Reminders<'a> {
    pub cfg: &'a RemindersConfig,
    pub whatsapp: Option<&'a WhatsappConfig>,
    /// `--kind`: only these (empty: all).
    pub kinds: &'a [String],
}

impl Reminders<'_> {
    fn wanted(&self, kind: &str) -> bool {
        (self.kinds.is_empty() || self.kinds.iter().any(|k| k == kind))
            && !self.cfg.disabled_kinds.iter().any(|k| k == kind)
    }
}

#[derive(Serialize)]
struct LoanCtx<'a> {
    kind: &'a str,
    contact: ContactCtx<'a>,
    loan: LoanInfo<'a>,
    due_local: String,
    due_date_local: String,
    lent_local: String,
    returned_local: Option<String>,
    overdue_days: Option<u32>,
    hours_left: Option<i64>,
    site_url: Option<&'a str>,
}

#[derive(Serialize)]
struct ContactCtx<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct LoanInfo<'a> {
    id: i64,
    item: &'a str,
    term: &'a str,
}

pub fn plan(conn: &mut Connection, r: &Reminders<'_>, ctx: &PlanCtx<'_>) -> anyhow::Result<PlanReport> {
    let mut report = PlanReport::default();
    if !ctx.dry_run
        && let Some(w) = r.whatsapp
    {
        refresh::refresh(conn, &crate::channels::twilio::TwilioChannel::new(w), ctx.now)?;
    }
    if !LOAN_KINDS.iter().any(|k| r.wanted(k)) {
        return Ok(report);
    }
    // A reminder whose validity ended since the last run is counted once as skipped.
    let since = last_run(conn, ctx.now)?;
    let mut planned: Vec<Planned> = Vec::new();
    let mut stmt = conn.prepare(
        "SELECT l.id, l.item, l.term, l.lent_at, l.due_at, l.returned_at, c.id, c.name, c.email, c.phone,
                c.locale, c.timezone, c.email_enabled, c.whatsapp_enabled, c.sms_enabled, c.muted_kinds
         FROM loans l JOIN contacts c ON c.id = l.contact_id
         WHERE l.returned_at IS NOT NULL AND (unixepoch(l.returned_at) IS NULL OR unixepoch(l.returned_at) > ?1)
            OR l.returned_at IS NULL AND (unixepoch(l.due_at) IS NULL OR unixepoch(l.due_at) > ?2)
         ORDER BY l.id",
    )?;
    // Loans returned more than 8 days ago, or overdue past every reminder, have nothing left.
    let returned_horizon = ctx.now.timestamp() - 8 * 86_400;
    let due_horizon = ctx.now.timestamp() - (i64::from(r.cfg.loan_overdue_max) + 3) * 86_400;
    let mut rows = stmt.query(params![returned_horizon, due_horizon])?;
    while let Some(row) = rows.next()? {
        let loan_id: i64 = row.get(0)?;
        let Some(contact) = Contact::from_row(row, 6, ctx, &mut report)? else {
            continue;
        };
        let text = |i: usize| -> rusqlite::Result<Option<String>> { Ok(super::column_text(row.get_ref(i)?)) };
        let mut bad = |column: &str, value: Option<String>| {
            match value {
                Some(v) => log::warn!("loans id {loan_id}: {column} {v:?} is not a timestamp; loan skipped"),
                None => log::warn!("loans id {loan_id}: {column} is empty; loan skipped"),
            }
            report.data_errors += 1;
        };
        let lent_raw = text(3)?;
        let Some(lent_at) = lent_raw.as_deref().and_then(instant::parse) else {
            bad("lent_at", lent_raw);
            continue;
        };
        let due_raw = text(4)?;
        let Some(due_at) = due_raw.as_deref().and_then(|d| instant::parse_due(d, contact.zone)) else {
            bad("due_at", due_raw);
            continue;
        };
        let returned_raw = text(5)?;
        let returned_at = match returned_raw.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            None => None,
            Some(v) => match instant::parse(v) {
                Some(t) => Some(t),
                None => {
                    bad("returned_at", returned_raw);
                    continue;
                }
            },
        };
        let item = text(1)?.unwrap_or_default();
        let term = text(2)?.unwrap_or_else(|| "long".into());
        let loan = loans::Loan {
            term: &term,
            lent_at,
            due_at,
            returned_at,
        };
        for slot in loans::slots(&loan, contact.zone, r.cfg) {
            if !r.wanted(slot.kind) || contact.muted(slot.kind) || slot.at > ctx.now {
                continue;
            }
            let local_date = slot.at.with_timezone(&contact.zone).date_naive();
            let key = |channel: &str| format!("{}:{loan_id}:{local_date}:{channel}", slot.kind);
            let channels = contact.channels();
            let already = |k: &str| planned_already(conn, k);
            if ctx.now >= slot.valid_until {
                if slot.valid_until > since
                    && !channels
                        .iter()
                        .map(|(c, _)| key(c))
                        .any(|k| already(&k).unwrap_or(true))
                {
                    report.skipped.push(format!(
                        "{} for loans id {loan_id}: expired at {}",
                        slot.kind,
                        instant::format(slot.valid_until)
                    ));
                }
                continue;
            }
            if channels.is_empty() {
                let k = key("none");
                if !already(&k)? && slot.at > since {
                    report.skipped.push(format!(
                        "{} for loans id {loan_id}: contact {} has no usable channel",
                        slot.kind, contact.id
                    ));
                }
                continue;
            }
            let locale = contact.locale.unwrap_or(ctx.locale);
            let context = LoanCtx {
                kind: slot.kind,
                contact: ContactCtx { name: &contact.name },
                loan: LoanInfo {
                    id: loan_id,
                    item: &item,
                    term: &term,
                },
                due_local: crate::templates::local_datetime(due_at, contact.zone, locale),
                due_date_local: crate::templates::local_date(due_at, contact.zone, locale),
                lent_local: crate::templates::local_datetime(lent_at, contact.zone, locale),
                returned_local: returned_at.map(|t| crate::templates::local_datetime(t, contact.zone, locale)),
                overdue_days: slot.overdue_day,
                hours_left: (slot.kind == "loan_short_notice").then(|| (due_at - slot.at).num_hours()),
                site_url: ctx.site_url,
            };
            let mut rendered = None;
            for (channel, recipient) in &channels {
                let dedupe_key = key(channel);
                if already(&dedupe_key)? {
                    continue;
                }
                let r_ = match &rendered {
                    Some(r_) => r_,
                    None => rendered.insert(
                        ctx.templates
                            .render(locale, slot.kind, &context)
                            .with_context(|| format!("{} templates", slot.kind))
                            .or_exit(Exit::Config)?,
                    ),
                };
                let email = *channel == "email";
                let body = if email {
                    r_.text.clone()
                } else {
                    r_.short.clone().unwrap_or_else(|| r_.text.clone())
                };
                planned.push(Planned {
                    job: JOB,
                    kind: slot.kind.to_string(),
                    dedupe_key,
                    source_table: Some("loans"),
                    source_id: Some(loan_id),
                    contact_id: Some(contact.id),
                    channel,
                    recipient: recipient.clone(),
                    subject: r_.subject.clone(),
                    body,
                    html: if email { r_.html.clone() } else { None },
                    valid_until: Some(slot.valid_until),
                    attachment: None,
                    payload: if *channel == "whatsapp" {
                        content_payload(r.whatsapp, slot.kind, &context)?
                    } else {
                        None
                    },
                    failed: None,
                    detail: vec![],
                });
            }
        }
    }
    drop(rows);
    drop(stmt);
    if ctx.dry_run {
        report.planned = planned.len() as u64;
        report.messages = planned;
        return Ok(report);
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for p in &planned {
        if plan::insert(&tx, p, ctx.now)?.is_some() {
            report.planned += 1;
        }
    }
    tx.commit()?;
    Ok(report)
}

/// The approved template for `kind`, with its variables read from the
/// template context by path (`contact.name` -> "1", ...).
fn content_payload(
    whatsapp: Option<&WhatsappConfig>,
    kind: &str,
    context: &impl Serialize,
) -> anyhow::Result<Option<String>> {
    let Some(t) = whatsapp.and_then(|w| w.content_sids.get(kind)) else {
        return Ok(None);
    };
    let value = serde_json::to_value(context)?;
    let mut vars = serde_json::Map::new();
    for (i, path) in t.variables.iter().enumerate() {
        let found = path.split('.').try_fold(&value, |v, part| v.get(part));
        let text = match found {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Null) | None => {
                return Err(crate::exit::fail(
                    Exit::Config,
                    format!("whatsapp.content_sids.{kind}.variables: {path:?} is not in the {kind} template data"),
                ));
            }
            Some(other) => other.to_string(),
        };
        vars.insert((i + 1).to_string(), serde_json::Value::String(text));
    }
    let payload = crate::channels::twilio::Payload {
        content_sid: Some(t.sid.clone()),
        content_variables: Some(serde_json::Value::Object(vars)),
    };
    Ok(Some(serde_json::to_string(&payload)?))
}

fn planned_already(conn: &Connection, key: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM deliveries WHERE dedupe_key = ?1)")?
        .query_row([key], |r| r.get(0))
}

/// When this job last finished, or a week ago.
fn last_run(conn: &Connection, now: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
    let last: Option<String> = conn
        .query_row(
            "SELECT max(started_at) FROM job_runs WHERE job = ?1 AND finished_at IS NOT NULL AND started_at <= ?2",
            params![JOB, instant::format(now)],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    Ok(last
        .as_deref()
        .and_then(instant::parse)
        .unwrap_or(now - chrono::Duration::days(7)))
}

/// Template data for `config check`.
pub fn sample_context(optional_present: bool) -> serde_json::Value {
    serde_json::json!({
        "kind": "loan_overdue",
        "contact": { "name": "Marie <Ndong>" },
        "loan": { "id": 7, "item": "Perceuse \"Bosch\"", "term": "short" },
        "due_local": "13/03/2026 18:00",
        "due_date_local": "13/03/2026",
        "lent_local": "02/03/2026 11:00",
        "returned_local": optional_present.then_some("05/03/2026 17:00"),
        "overdue_days": optional_present.then_some(3),
        "hours_left": optional_present.then_some(2),
        "site_url": optional_present.then_some("https://example.com"),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn loan_kinds_are_the_loan_prefixed_kinds() {
        assert_eq!(super::LOAN_KINDS.len(), 7);
        assert!(super::LOAN_KINDS.iter().all(|k| k.starts_with("loan_")));
        assert!(!crate::config::KINDS[7..].iter().any(|k| k.starts_with("loan_")));
    }
}
