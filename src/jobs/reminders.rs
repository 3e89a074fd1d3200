//! send-reminders: each run computes, from the stored loans, revision
//! sessions, students and manual reminders, which reminders are due now and
//! still valid, and plans one message per enabled channel of the contact. A
//! reminder past its validity is skipped, never sent late.

mod contact;
mod emit;
mod fallback;
mod loans;
mod manual;
mod recheck;
mod refresh;
mod render;
mod sessions;
mod students;
mod writer;

use crate::store::Conn;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{PlanCtx, PlanReport};
use crate::config::{RemindersConfig, WhatsappConfig};
use crate::domain::Kind;
use crate::exit::Exit;
use emit::Emitter;
pub use manual::ManualHook;
pub use recheck::RemindersRecheck;

pub const JOB: crate::domain::Job = crate::domain::Job::SendReminders;

/// What send-reminders needs beyond the planning context.
pub struct Reminders<'a> {
    pub cfg: &'a RemindersConfig,
    pub whatsapp: Option<&'a WhatsappConfig>,
    /// `--kind`: only these (empty: all).
    pub kinds: &'a [Kind],
}

impl Reminders<'_> {
    fn wanted(&self, kind: Kind) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&kind)) && !self.cfg.disabled_kinds.contains(&kind)
    }
}

/// The person a reminder speaks to, in every template.
#[derive(Serialize)]
struct ContactCtx<'a> {
    name: &'a str,
}

pub fn plan(conn: &mut Conn, r: &Reminders<'_>, ctx: &PlanCtx<'_>) -> anyhow::Result<PlanReport> {
    // Whether Twilio was asked about every message awaiting its word; with
    // no [whatsapp] there is none to ask about.
    let mut statuses_asked = r.whatsapp.is_none();
    if !ctx.dry_run
        && let Some(w) = r.whatsapp
    {
        // Without its token Twilio cannot be asked; the send says why.
        if let Ok(twilio) = crate::channels::twilio::TwilioChannel::new(w) {
            statuses_asked = refresh::refresh(conn, &twilio, ctx.now)?.is_some();
        }
    }
    if !Kind::REMINDERS.iter().any(|k| r.wanted(*k)) {
        return Ok(PlanReport::default());
    }
    let since = last_run(conn, ctx.now)?;
    if ctx.dry_run {
        let mut em = Emitter::collecting(conn, r, ctx, since);
        // Judged on the statuses as recorded: a dry run asks Twilio nothing.
        em.statuses_asked = true;
        plan_all(&mut em)?;
        return Ok(em.finish());
    }
    // Rows are read on a second connection while a renderer thread renders
    // the messages as they are made and the writer thread writes them, in
    // short transactions: memory stays flat, the host's writes never wait
    // long, however many reminders are due, and reading, rendering and
    // writing go on at once.
    let reader = ctx.db.connect()?;
    let last_started = crate::store::runs::last_started(conn, JOB, ctx.now)?;
    writer::planning(ctx.db, ctx.templates, ctx.now, |queue| {
        let mut em = Emitter::writing(&reader, queue, r, ctx, since, last_started);
        em.statuses_asked = statuses_asked;
        plan_all(&mut em)?;
        Ok(em.finish())
    })
}

fn plan_all(em: &mut Emitter<'_>) -> anyhow::Result<()> {
    loans::plan(em)?;
    sessions::plan(em)?;
    students::plan(em)?;
    manual::plan(em)
}

/// A link from the data: kept when absolute (http or https), else joined to
/// `site_url`; `None` when there is nothing to link to.
fn absolute_link(link: Option<&str>, site_url: Option<&str>) -> Option<String> {
    let link = link.map(str::trim).filter(|l| !l.is_empty())?;
    let lower = link.to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("http://") {
        return Some(link.to_string());
    }
    let base = site_url?.trim_end_matches('/');
    Some(format!("{base}/{}", link.trim_start_matches('/')))
}

/// The approved template for `kind`, with its variables read from the
/// template context by path (`contact.name` -> "1", ...).
fn content_payload(
    whatsapp: Option<&WhatsappConfig>,
    kind: Kind,
    context: &impl Serialize,
) -> anyhow::Result<Option<String>> {
    let Some(t) = whatsapp.and_then(|w| w.content_sids.get(&kind)) else {
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

/// When this job last finished, or a week ago.
fn last_run(conn: &Conn, now: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
    let last = crate::store::runs::last_finished(conn, JOB, now)?;
    Ok(last.unwrap_or(now - chrono::Duration::days(7)))
}

/// Template data for `config check`, per kind family.
pub fn session_sample(optional_present: bool) -> serde_json::Value {
    sessions::sample(Kind::SessionEve, optional_present)
}

pub fn inactivity_sample(optional_present: bool) -> serde_json::Value {
    students::inactivity_sample(optional_present)
}

pub fn digest_sample(optional_present: bool) -> serde_json::Value {
    students::digest_sample(optional_present)
}

pub fn manual_sample(optional_present: bool) -> serde_json::Value {
    manual::sample(optional_present)
}

/// Template data for `config check`: the loan kinds.
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
