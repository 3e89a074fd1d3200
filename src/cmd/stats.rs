//! `rappel stats [--since 30d] [--fail-above PCT]`: the notification dashboard
//! in a terminal (or `--json`): totals and success rate, by channel and kind,
//! failures by reason, median time from planned to sent, the last deliveries,
//! and attendance (pending, failed, last sync per service).

use std::fmt::Write as _;

use serde::Serialize;

use crate::cli::{LogArgs, StatsArgs};
use crate::cmd::log;
use crate::exit::Exit;
use crate::instant;
use crate::runner::Ctx;
use crate::store::stats::Figures;

/// The dashboard as `--json` prints it: the figures, then the last deliveries.
#[derive(Debug, Serialize)]
struct Stats {
    #[serde(flatten)]
    figures: Figures,
    last: Vec<log::Entry>,
}

pub fn run(ctx: &Ctx<'_>, args: &StatsArgs) -> anyhow::Result<Exit> {
    let since = args.since.resolve(ctx.clock.now(), ctx.config.timezone);
    let conn = ctx.config.db(true).connect_current()?;
    let figures = crate::store::stats::gather(&conn, since)?;
    let last = log::query(
        ctx,
        &LogArgs {
            status: None,
            kind: None,
            channel: None,
            since: Some(crate::cli::Since::At(since)),
            limit: 50,
        },
    )?;
    let stats = Stats { figures, last };
    if ctx.json {
        println!("{}", crate::output::json(&stats, true));
    } else {
        print!("{}", render(&stats.figures, &stats.last, ctx.config.timezone));
    }
    let over = match (args.fail_above, stats.figures.totals.failure_rate()) {
        (Some(limit), Some(rate)) => rate > limit,
        _ => false,
    };
    if over && !ctx.json {
        eprintln!(
            "rappel: failure rate {:.1} % is above {:.1} %",
            stats.figures.totals.failure_rate().unwrap_or_default(),
            args.fail_above.unwrap_or_default()
        );
    }
    Ok(if over { Exit::Threshold } else { Exit::Ok })
}

fn render(s: &Figures, last: &[log::Entry], zone: chrono_tz::Tz) -> String {
    let mut out = String::new();
    let local = |at: &str| {
        instant::parse(at).map_or_else(
            || at.to_string(),
            |t| t.with_timezone(&zone).format("%Y-%m-%d %H:%M %Z").to_string(),
        )
    };
    let t = &s.totals;
    let _ = writeln!(out, "Deliveries since {}", local(&s.since));
    let _ = writeln!(
        out,
        "  {} planned: {} sent, {} failed, {} cancelled, {} pending; success {}; median planned to sent {}",
        t.total,
        t.sent,
        t.failed,
        t.cancelled,
        t.open,
        s.success_rate.map_or("n/a".into(), |r| format!("{r:.1} %")),
        s.median_seconds_to_send.map_or("n/a".into(), human_seconds)
    );
    for (title, groups) in [("By channel", &s.by_channel), ("By kind", &s.by_kind)] {
        if groups.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{title}");
        let _ = writeln!(
            out,
            "  {:<20} {:>7} {:>7} {:>7} {:>9} {:>7}",
            "", "total", "sent", "failed", "cancelled", "pending"
        );
        for g in groups {
            let c = &g.counts;
            let _ = writeln!(
                out,
                "  {:<20} {:>7} {:>7} {:>7} {:>9} {:>7}",
                crate::output::printable(&g.name),
                c.total,
                c.sent,
                c.failed,
                c.cancelled,
                c.open
            );
        }
    }
    for (title, reasons) in [
        ("Failures by reason", &s.failures_by_reason),
        ("Cancelled, by reason (not failures)", &s.cancellations_by_reason),
    ] {
        if !reasons.is_empty() {
            let _ = writeln!(out, "\n{title}");
            for r in reasons {
                let _ = writeln!(out, "  {:>5}  {}", r.count, crate::output::printable(&r.reason));
            }
        }
    }
    let a = &s.attendance;
    if a.pending + a.sending + a.retrying + a.failed + a.sent > 0 || !a.services.is_empty() {
        let _ = writeln!(out, "\nAttendance");
        let _ = writeln!(
            out,
            "  {} pending, {} sending, {} to retry, {} failed for good, {} sent",
            a.pending, a.sending, a.retrying, a.failed, a.sent
        );
        for svc in &a.services {
            let _ = writeln!(
                out,
                "  {}: last push {}, last users pull {}",
                svc.service,
                svc.last_attendance_sync.as_deref().map_or("never".into(), local),
                svc.last_users_sync.as_deref().map_or("never".into(), local)
            );
        }
    }
    if !last.is_empty() {
        let _ = writeln!(out, "\nLast {} deliveries", last.len());
        out.push_str(&log::table(last, zone, 40));
    }
    out
}

pub(crate) fn human_seconds(s: f64) -> String {
    match s {
        s if s < 90.0 => format!("{s:.0} s"),
        s if s < 5_400.0 => format!("{:.0} min", s / 60.0),
        s => format!("{:.1} h", s / 3_600.0),
    }
}
