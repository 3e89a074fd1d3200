//! `rappel stats [--since 30d] [--fail-above PCT]`: the notification dashboard
//! in a terminal (or `--json`): totals and success rate, by channel and kind,
//! failures by reason, median time from planned to sent, the last deliveries,
//! and attendance (pending, failed, last sync per service).

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
use serde::Serialize;

use crate::cli::{LogArgs, StatsArgs};
use crate::cmd::log;
use crate::db::Database;
use crate::exit::Exit;
use crate::instant;
use crate::runner::Ctx;

/// Counts of deliveries by status.
#[derive(Debug, Default, Serialize)]
struct Counts {
    total: i64,
    sent: i64,
    failed: i64,
    /// Not sent because its source stopped wanting it (DESIGN §9): not a failure.
    cancelled: i64,
    /// Pending or being sent.
    open: i64,
}

impl Counts {
    /// Failed among finished, in percent; `None` when nothing finished.
    fn failure_rate(&self) -> Option<f64> {
        let finished = self.sent + self.failed;
        (finished > 0).then(|| 100.0 * self.failed as f64 / finished as f64)
    }
}

#[derive(Debug, Serialize)]
struct Group {
    name: String,
    #[serde(flatten)]
    counts: Counts,
}

#[derive(Debug, Serialize)]
struct Reason {
    reason: String,
    count: i64,
}

#[derive(Debug, Serialize)]
struct Service {
    service: String,
    last_attendance_sync: Option<String>,
    last_users_sync: Option<String>,
}

#[derive(Debug, Default, Serialize)]
struct Attendance {
    pending: i64,
    sending: i64,
    retrying: i64,
    failed: i64,
    sent: i64,
    services: Vec<Service>,
}

#[derive(Debug, Serialize)]
struct Stats {
    since: String,
    totals: Counts,
    success_rate: Option<f64>,
    median_seconds_to_send: Option<f64>,
    by_channel: Vec<Group>,
    by_kind: Vec<Group>,
    failures_by_reason: Vec<Reason>,
    /// Not failures: messages whose source stopped wanting them.
    cancellations_by_reason: Vec<Reason>,
    attendance: Attendance,
    last: Vec<log::Entry>,
}

pub fn run(ctx: &Ctx<'_>, args: &StatsArgs) -> anyhow::Result<Exit> {
    let since = args.since.resolve(ctx.clock.now(), ctx.config.timezone);
    let conn = Database::new(ctx.config.database.clone(), true).connect_current()?;
    let stats = gather(&conn, since)?;
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
    let stats = Stats { last, ..stats };
    if ctx.json {
        println!("{}", crate::output::json(&stats, true));
    } else {
        print!("{}", render(&stats, ctx.config.timezone));
    }
    let over = match (args.fail_above, stats.totals.failure_rate()) {
        (Some(limit), Some(rate)) => rate > limit,
        _ => false,
    };
    if over && !ctx.json {
        eprintln!(
            "rappel: failure rate {:.1} % is above {:.1} %",
            stats.totals.failure_rate().unwrap_or_default(),
            args.fail_above.unwrap_or_default()
        );
    }
    Ok(if over { Exit::Threshold } else { Exit::Ok })
}

fn gather(conn: &Connection, since: DateTime<Utc>) -> anyhow::Result<Stats> {
    let from = instant::format(since);
    let grouped = |column: &str| -> rusqlite::Result<Vec<Group>> {
        let mut stmt = conn.prepare(&format!(
            "SELECT {column}, count(*), sum(status = 'sent'), sum(status = 'failed'),
                    sum(status IN ('pending', 'sending')), sum(status = 'cancelled')
             FROM deliveries WHERE created_at >= ?1 GROUP BY 1 ORDER BY 2 DESC, 1"
        ))?;
        let rows = stmt.query_map([&from], |r| {
            Ok(Group {
                name: r.get(0)?,
                counts: Counts {
                    total: r.get(1)?,
                    sent: r.get(2)?,
                    failed: r.get(3)?,
                    open: r.get(4)?,
                    cancelled: r.get(5)?,
                },
            })
        })?;
        rows.collect()
    };
    let by_channel = grouped("channel")?;
    let by_kind = grouped("kind")?;
    let mut totals = Counts::default();
    for g in &by_channel {
        totals.total += g.counts.total;
        totals.sent += g.counts.sent;
        totals.failed += g.counts.failed;
        totals.cancelled += g.counts.cancelled;
        totals.open += g.counts.open;
    }
    let median_seconds_to_send = median_to_send(conn, &from)?;
    let by_reason = |status: &str| -> rusqlite::Result<Vec<Reason>> {
        let mut stmt = conn.prepare(
            "SELECT coalesce(substr(last_error, 1, 120), 'no reason recorded'), count(*) FROM deliveries
             WHERE created_at >= ?1 AND status = ?2 GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10",
        )?;
        let rows = stmt.query_map(params![from, status], |r| {
            Ok(Reason {
                reason: r.get(0)?,
                count: r.get(1)?,
            })
        })?;
        rows.collect()
    };
    let failures_by_reason = by_reason("failed")?;
    let cancellations_by_reason = by_reason("cancelled")?;
    Ok(Stats {
        since: from,
        success_rate: totals.failure_rate().map(|f| 100.0 - f),
        totals,
        median_seconds_to_send,
        by_channel,
        by_kind,
        failures_by_reason,
        cancellations_by_reason,
        attendance: attendance(conn)?,
        last: Vec::new(),
    })
}

/// The median of sent_at - created_at over sent deliveries since `from`.
fn median_to_send(conn: &Connection, from: &str) -> rusqlite::Result<Option<f64>> {
    const SENT: &str = "FROM deliveries WHERE created_at >= ?1 AND status = 'sent' AND sent_at IS NOT NULL";
    let n: i64 = conn.query_row(&format!("SELECT count(*) {SENT}"), [from], |r| r.get(0))?;
    if n == 0 {
        return Ok(None);
    }
    let at = |offset: i64| -> rusqlite::Result<f64> {
        conn.query_row(
            &format!(
                "SELECT (julianday(sent_at) - julianday(created_at)) * 86400.0 AS d {SENT} ORDER BY d LIMIT 1 OFFSET ?2"
            ),
            params![from, offset],
            |r| r.get(0),
        )
    };
    Ok(Some((at((n - 1) / 2)? + at(n / 2)?) / 2.0))
}

/// The attendance ledger now (not limited by `--since`: pending is pending).
fn attendance(conn: &Connection) -> rusqlite::Result<Attendance> {
    let mut a = conn.query_row(
        "SELECT coalesce(sum(sync_status = 'pending'), 0), coalesce(sum(sync_status = 'sending'), 0),
                coalesce(sum(sync_status = 'failed' AND next_attempt_at IS NOT NULL), 0),
                coalesce(sum(sync_status = 'failed' AND next_attempt_at IS NULL), 0),
                coalesce(sum(sync_status = 'sent'), 0)
         FROM attendance_logs",
        [],
        |r| {
            Ok(Attendance {
                pending: r.get(0)?,
                sending: r.get(1)?,
                retrying: r.get(2)?,
                failed: r.get(3)?,
                sent: r.get(4)?,
                services: Vec::new(),
            })
        },
    )?;
    let mut stmt = conn.prepare(
        "SELECT service, max(last_attendance_sync), max(last_users_sync) FROM terminal_sync_state
         GROUP BY service ORDER BY service",
    )?;
    a.services = stmt
        .query_map([], |r| {
            Ok(Service {
                service: r.get(0)?,
                last_attendance_sync: r.get(1)?,
                last_users_sync: r.get(2)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(a)
}

fn render(s: &Stats, zone: chrono_tz::Tz) -> String {
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
    if !s.last.is_empty() {
        let _ = writeln!(out, "\nLast {} deliveries", s.last.len());
        out.push_str(&log::table(&s.last, zone, 40));
    }
    out
}

fn human_seconds(s: f64) -> String {
    match s {
        s if s < 90.0 => format!("{s:.0} s"),
        s if s < 5_400.0 => format!("{:.0} min", s / 60.0),
        s => format!("{:.1} h", s / 3_600.0),
    }
}
