//! `rappel log`: the deliveries, newest first, filtered, as a table or JSON.

use crate::cli::LogArgs;
use crate::exit::Exit;
use crate::instant;
use crate::runner::Ctx;
pub use crate::store::deliveries::{Filter, LogEntry as Entry};

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

/// The deliveries `args` selects, newest first (`--since` read in the
/// configured zone). Errors: the database cannot be opened or read (74).
pub fn query(ctx: &Ctx<'_>, args: &LogArgs) -> anyhow::Result<Vec<Entry>> {
    let conn = ctx.config.db(true).connect_current()?;
    let filter = Filter {
        status: args.status,
        kind: args.kind,
        channel: args.channel,
        since: args
            .since
            .as_ref()
            .map(|s| s.resolve(ctx.clock.now(), ctx.config.timezone)),
        limit: (args.limit > 0).then_some(args.limit),
    };
    Ok(crate::store::deliveries::list(&conn, &filter)?)
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
            let mut status = match (&e.provider_status, &e.next_attempt_at) {
                (Some(p), _) => format!("{} ({p})", e.status),
                (None, Some(next)) if e.status == "pending" => format!("pending, next {}", local(next)),
                _ => e.status.clone(),
            };
            if let Some(next) = e.replaced_by {
                status.push_str(&format!(", then #{next}"));
            }
            [
                e.id.to_string(),
                local(&e.created_at),
                crate::output::printable(&e.kind).into_owned(),
                match e.replaces_id {
                    // Channel fallback: the message this one replaces.
                    Some(id) => format!("{}, after #{id}", crate::output::printable(&e.channel)),
                    None => crate::output::printable(&e.channel).into_owned(),
                },
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
