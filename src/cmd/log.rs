//! `rappel log`: the deliveries, newest first, filtered, as a table or JSON.

use rusqlite::types::Value;
use serde::Serialize;

use crate::cli::LogArgs;
use crate::db::Database;
use crate::exit::Exit;
use crate::instant;
use crate::runner::Ctx;

/// One row of the log, as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct Entry {
    id: i64,
    job: String,
    kind: String,
    channel: String,
    recipient: String,
    subject: String,
    status: String,
    provider_status: Option<String>,
    attempts: i64,
    error_class: Option<String>,
    last_error: Option<String>,
    provider_ref: Option<String>,
    created_at: String,
    next_attempt_at: Option<String>,
    sent_at: Option<String>,
}

pub fn run(ctx: &Ctx<'_>, args: &LogArgs) -> anyhow::Result<Exit> {
    let entries = query(ctx, args)?;
    if ctx.json {
        println!("{}", crate::output::json(&entries, true));
    } else if entries.is_empty() {
        println!("no deliveries match");
    } else {
        // Off a terminal (a pipe, a file), provider ids are kept whole, to be
        // looked up at the provider.
        let provider_width = if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            40
        } else {
            usize::MAX
        };
        print!("{}", table(&entries, ctx.config.timezone, provider_width));
    }
    Ok(Exit::Ok)
}

pub fn query(ctx: &Ctx<'_>, args: &LogArgs) -> anyhow::Result<Vec<Entry>> {
    let conn = Database::new(ctx.config.database.clone(), true).connect_current()?;
    let mut filters = Vec::new();
    let mut params: Vec<Value> = Vec::new();
    let mut filter = |sql: &str, value: Value| {
        params.push(value);
        filters.push(format!("{sql} ?{}", params.len()));
    };
    if let Some(status) = &args.status {
        filter("status =", Value::Text(status.to_string()));
    }
    if let Some(kind) = &args.kind {
        filter("kind =", Value::Text(kind.to_string()));
    }
    if let Some(channel) = &args.channel {
        filter("channel =", Value::Text(channel.to_string()));
    }
    if let Some(since) = &args.since {
        let at = since.resolve(ctx.clock.now(), ctx.config.timezone);
        // rappel writes created_at itself, in the one format whose text order is time order.
        filter("created_at >=", Value::Text(instant::format(at)));
    }
    let limit = if args.limit == 0 {
        -1
    } else {
        args.limit.min(i64::MAX as u64) as i64
    };
    params.push(Value::Integer(limit));
    let sql = format!(
        "SELECT id, job, kind, channel, recipient, subject, status, provider_status, attempts, error_class,
                last_error, provider_ref, created_at, next_attempt_at, sent_at
         FROM deliveries {} ORDER BY id DESC LIMIT ?{}",
        if filters.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", filters.join(" AND "))
        },
        params.len()
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(params), |r| {
        Ok(Entry {
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
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The human table: one line per delivery, long values shortened (provider
/// ids to `provider_width` characters).
pub fn table(entries: &[Entry], zone: chrono_tz::Tz, provider_width: usize) -> String {
    let local = |s: &str| match instant::parse(s) {
        Some(t) => t.with_timezone(&zone).format("%Y-%m-%d %H:%M %Z").to_string(),
        None => s.to_string(),
    };
    let header = [
        "ID",
        "CREATED",
        "KIND",
        "CHANNEL",
        "RECIPIENT",
        "STATUS",
        "TRIES",
        "PROVIDER ID",
        "LAST ERROR",
    ];
    let rows: Vec<[String; 9]> = entries
        .iter()
        .map(|e| {
            let status = match (&e.provider_status, &e.next_attempt_at) {
                (Some(p), _) => format!("{} ({p})", e.status),
                (None, Some(next)) if e.status == "pending" => format!("pending, next {}", local(next)),
                _ => e.status.clone(),
            };
            [
                e.id.to_string(),
                local(&e.created_at),
                crate::output::printable(&e.kind).into_owned(),
                crate::output::printable(&e.channel).into_owned(),
                shorten(&e.recipient, 40),
                status,
                e.attempts.to_string(),
                shorten(e.provider_ref.as_deref().unwrap_or("-"), provider_width),
                shorten(e.last_error.as_deref().unwrap_or(""), 100),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let text: Vec<String> = cells
            .zip(widths)
            .enumerate()
            .map(|(i, (c, w))| if i == 8 { c.to_string() } else { format!("{c:<w$}") })
            .collect();
        out.push_str(text.join("  ").trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in &rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// One line of at most `max` characters, with `…` where it was cut.
fn shorten(s: &str, max: usize) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    let one_line = crate::output::printable(&one_line).into_owned();
    if one_line.chars().count() <= max {
        one_line
    } else {
        let mut cut: String = one_line.chars().take(max - 1).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorten_keeps_one_line_and_marks_the_cut() {
        assert_eq!(shorten("a\nb  c", 10), "a b c");
        assert_eq!(shorten("é".repeat(12).as_str(), 5), "éééé…");
    }
}
