//! `rappel upcoming [--within 24h]`: what each job would send in the coming
//! hours, and when, from the jobs' own planning code run read-only at
//! successive instants (a message is listed once, at the instant it falls
//! due), and the messages already planned that wait for their time or their
//! next try. Nothing is written.

use std::collections::HashSet;

use crate::store::Conn as Connection;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::domain::planned::Planned;
use crate::domain::{Channel, Job};
use crate::exit::Exit;
use crate::instant;
use crate::jobs::{self, PlanCtx, PlanReport};
use crate::output::printable;
use crate::runner::{Ctx, plan_ctx};

/// The planners look at most this often; a message's time comes from its own
/// slot, so the step only bounds how short a window can be and still be seen.
const STEP_MINUTES: i64 = 15;

/// At most this many planning passes, whatever `--within`.
const MAX_PASSES: i64 = 200;

/// One message to come, as `--json` prints it.
#[derive(Debug, Serialize)]
struct Upcoming {
    /// When it falls due (UTC); at the latest the next run of its job
    /// afterwards sends it.
    at: String,
    job: Job,
    kind: String,
    channel: Channel,
    recipient: String,
    subject: String,
    /// `new` (a job would plan it), `planned` (waiting for its time or its
    /// next try), `held` (either, moved past quiet hours or out of its
    /// kind's send window: `at` is when it goes), `expiring` (held past
    /// its validity: it will not go) or `failing` (known undeliverable: it
    /// will fail).
    state: &'static str,
}

type Plan<'p> = Box<dyn Fn(&mut Connection, &PlanCtx<'_>) -> anyhow::Result<PlanReport> + 'p>;

/// Lists what comes within `within` of now; exit 0, or 74/78 as the jobs would.
pub fn run(ctx: &Ctx<'_>, within: Duration) -> anyhow::Result<Exit> {
    let now = ctx.clock.now();
    let until = now + within;
    let db = ctx.config.db(true);
    let mut conn = db.connect_current()?;
    let templates = ctx.templates()?;
    let config = ctx.config;
    let reminders = jobs::reminders::Reminders {
        cfg: &config.reminders,
        whatsapp: config.whatsapp.as_ref(),
        kinds: &[],
    };
    let mut planners: Vec<(Job, Plan<'_>)> = Vec::new();
    if config.email.is_some() {
        planners.push((
            jobs::delay_alerts::JOB,
            Box::new(|c, p| jobs::delay_alerts::plan(c, &config.delay_alerts, p)),
        ));
        planners.push((
            jobs::reports::JOB,
            Box::new(|c, p| jobs::reports::plan(c, &config.reports, p)),
        ));
    }
    if config.email.is_some() || config.whatsapp.is_some() {
        planners.push((
            jobs::reminders::JOB,
            Box::new(|c, p| jobs::reminders::plan(c, &reminders, p)),
        ));
    }
    let mut listed = planned(&conn, config, now, until)?;
    // A job that cannot plan (a host table that clashes, a broken template)
    // is named and left out; the others are still listed. The exit code is
    // the one that job's run would give.
    // (Said at the end: logging is off after the first pass.)
    let mut exit = Exit::Ok;
    let mut stops: Vec<String> = Vec::new();
    let stopped = |job: Job, e: anyhow::Error, exit: &mut Exit, stops: &mut Vec<String>| {
        stops.push(format!("{job}: {e:#}; its messages are not listed"));
        *exit = (*exit).max(crate::exit::of_error(&e));
    };
    // The host's tables checked for the columns each job reads, and the
    // mapped sources for repeated ids.
    planners.retain(|(job, _)| match crate::db::host::check_for(&conn, job.as_str()) {
        Ok(()) => true,
        Err(e) => {
            stopped(*job, e, &mut exit, &mut stops);
            false
        }
    });
    let mut failing: Vec<String> = Vec::new();
    let (mut templating, mut late_templating): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    let step = Duration::minutes(STEP_MINUTES).max(within / MAX_PASSES as i32);
    let mut seen: HashSet<(String, String, String, String)> = HashSet::new();
    let mut at = now;
    let level = log::max_level();
    loop {
        let mut pctx = plan_ctx(ctx, templates, &db, true, false);
        pctx.now = at;
        let mut broken = Vec::new();
        for (i, (job, plan)) in planners.iter().enumerate() {
            let report = match plan(&mut conn, &pctx) {
                Ok(report) => report,
                Err(e) => {
                    stopped(*job, e, &mut exit, &mut stops);
                    broken.push(i);
                    continue;
                }
            };
            for f in report.failures {
                if !failing.contains(&f) {
                    failing.push(f);
                }
            }
            // Said by the job's planning at the first pass; those a later
            // pass meets are said at the end.
            for e in report.template_errors {
                exit = exit.max(Exit::Config);
                if !templating.contains(&e) {
                    if at > now {
                        late_templating.push(e.clone());
                    }
                    templating.push(e);
                }
            }
            for m in report.messages {
                // A fallback falls due when the message before it fell
                // through: at this pass, not at its reminder's slot.
                let due = if m.replaces.is_some() {
                    at
                } else {
                    m.due_at.unwrap_or(at).max(now)
                };
                // Named by its key, or, for a digest made on the spot, by
                // its recipient and slot.
                let id = match m.due_at {
                    Some(d) if *job == jobs::delay_alerts::JOB => instant::format(d),
                    _ => m.dedupe_key.clone(),
                };
                if due > until || !seen.insert((job.to_string(), m.channel.to_string(), m.recipient.clone(), id)) {
                    continue;
                }
                let (goes, held) = going_at(&conn, config, m.kind.as_str(), m.contact_id, due);
                if goes > until {
                    continue;
                }
                let state = match (m.failed.is_some(), held) {
                    (true, _) => "failing",
                    (false, true) if m.valid_until.is_some_and(|v| goes > v) => "expiring",
                    (false, true) => "held",
                    (false, false) => "new",
                };
                listed.push(entry(&m, goes, state));
            }
        }
        for i in broken.into_iter().rev() {
            drop(planners.remove(i));
        }
        if at >= until {
            break;
        }
        // A bad row or template was named once, at the first pass: not
        // once per pass.
        log::set_max_level(log::LevelFilter::Off);
        at = (at + step).min(until);
    }
    log::set_max_level(level);
    for e in stops {
        log::error!("{e}");
    }
    for e in late_templating {
        log::error!("{e}; these messages are not listed");
    }
    listed.sort_by(|a, b| (&a.at, a.job, &a.recipient).cmp(&(&b.at, b.job, &b.recipient)));
    print(ctx, &listed, &failing, within);
    Ok(exit)
}

fn entry(m: &Planned, at: DateTime<Utc>, state: &'static str) -> Upcoming {
    Upcoming {
        at: instant::format(at),
        job: m.job,
        kind: m.kind.to_string(),
        channel: m.channel,
        recipient: m.recipient.clone(),
        subject: m.subject.clone(),
        state,
    }
}

/// Messages already in the ledger, pending, that go before `until`: due
/// now (`now`, UTC), or at their next try, or when quiet hours let them.
fn planned(
    conn: &Connection,
    config: &crate::config::Config,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> anyhow::Result<Vec<Upcoming>> {
    Ok(crate::store::claims::waiting(conn, until)?
        .into_iter()
        .filter_map(|w| {
            let (goes, held) = going_at(conn, config, &w.kind, w.contact_id, w.next.unwrap_or(now).max(now));
            (goes <= until).then(|| Upcoming {
                at: match (held, w.next) {
                    (false, None) => "now".into(),
                    _ => instant::format(goes),
                },
                job: w.job,
                kind: w.kind,
                channel: w.channel,
                recipient: w.recipient,
                subject: w.subject,
                // Held by a run already: its next try is the end of the hold.
                state: if held || w.held { "held" } else { "planned" },
            })
        })
        .collect())
}

/// When a `kind` message to contact `contact` (else someone in the
/// configured zone) due at `at` goes under `[delivery] quiet_hours` and
/// its kind's send window, and whether they move it.
fn going_at(
    conn: &Connection,
    config: &crate::config::Config,
    kind: &str,
    contact: Option<i64>,
    at: DateTime<Utc>,
) -> (DateTime<Utc>, bool) {
    let policy = &config.delivery.send;
    let hold = policy
        .hold_for(conn, kind, contact, config.timezone)
        .unwrap_or_else(|_| policy.hold_for(conn, kind, None, config.timezone).ok().flatten());
    match hold.and_then(|h| h.until(at)) {
        Some(goes) => (goes, true),
        None => (at, false),
    }
}

fn print(ctx: &Ctx<'_>, listed: &[Upcoming], failing: &[String], within: Duration) {
    if ctx.json {
        println!("{}", crate::output::json(&listed, true));
        for f in failing {
            log::warn!("would fail {f}");
        }
        return;
    }
    let span = span(within);
    for f in failing {
        println!("would fail {}", printable(f));
    }
    if listed.is_empty() {
        println!("nothing to send within {span}");
        return;
    }
    let zone = ctx.config.timezone;
    let local = |s: &str| match instant::parse(s) {
        Some(t) => t.with_timezone(&zone).format("%Y-%m-%d %H:%M %Z").to_string(),
        None => s.to_string(),
    };
    for u in listed {
        let state = match u.state {
            "planned" => " (planned, waiting)",
            "held" => " (held by quiet hours or its send window)",
            "failing" => " (will fail: unusable address)",
            "expiring" => " (will not go: held past its validity)",
            _ => "",
        };
        println!(
            "{}  {}  {} {} {}  {}{state}",
            local(&u.at),
            u.job,
            printable(&u.kind),
            u.channel,
            printable(&u.recipient),
            printable(&u.subject)
        );
    }
    println!("{} message(s) within {span}", listed.len());
}

/// A span as `--within` takes it: whole hours up to two days (`24h`),
/// whole days beyond (`3d`), minutes otherwise (`90m`).
fn span(d: Duration) -> String {
    let minutes = d.num_minutes().max(0);
    let (hours, days) = (minutes / 60, minutes / (24 * 60));
    if minutes % (24 * 60) == 0 && days > 2 {
        format!("{days}d")
    } else if minutes % 60 == 0 && hours > 0 {
        format!("{hours}h")
    } else {
        format!("{minutes}m")
    }
}
