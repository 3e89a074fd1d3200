//! What a run prints: logs on stderr (text or one JSON object per line), the
//! one-line summary, dry-run listings and `--json` summaries on stdout.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

use serde::Serialize;

use crate::engine::plan::Planned;
use crate::engine::tally::Tally;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

struct Logger;

static LEVEL: AtomicU8 = AtomicU8::new(1);
static JSON_LOGS: AtomicBool = AtomicBool::new(false);
static LOGGER: Logger = Logger;

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        let max = match LEVEL.load(Ordering::Relaxed) {
            0 => log::Level::Error,
            1 => log::Level::Warn,
            _ => log::Level::Info,
        };
        metadata.level() <= max && metadata.target().starts_with("rappel")
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            log::Level::Error => "error",
            log::Level::Warn => "warning",
            _ => "info",
        };
        let message = crate::mask::mask(&printable(&record.args().to_string()));
        let line = if JSON_LOGS.load(Ordering::Relaxed) {
            serde_json::json!({ "level": level, "message": message }).to_string()
        } else {
            format!("rappel: {level}: {message}")
        };
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }

    fn flush(&self) {}
}

/// `text` as it may be shown on a terminal or in a log file: control
/// characters (ESC, CR, LF, NUL, DEL, C1...), Unicode line separators and
/// bidirectional overrides are written as Rust escapes (`\u{1b}`, `\n`), so
/// host data can neither forge a log line nor drive the terminal.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| {
        c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_debug());
            if c.escape_debug().len() == 1 {
                // escape_debug keeps some as they are; never these.
                out.pop();
                out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
            }
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Installs the stderr logger.
pub fn init(verbosity: Verbosity) {
    LEVEL.store(verbosity as u8, Ordering::Relaxed);
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(log::LevelFilter::Info);
}

/// `[monitoring] log_format = "json"`: one object per line.
pub fn set_json_logs(on: bool) {
    JSON_LOGS.store(on, Ordering::Relaxed);
}

/// How a run reports itself.
pub struct Report<'a> {
    pub job: &'a str,
    pub dry_run: bool,
    pub tally: Tally,
    pub duration: Duration,
    pub messages: &'a [Planned],
    pub retries: &'a [Planned],
    pub skipped: &'a [String],
    /// Items planning could not send, with the reason.
    pub failures: &'a [String],
}

#[derive(Serialize)]
struct JsonSummary<'a> {
    job: &'a str,
    dry_run: bool,
    planned: u64,
    sent: u64,
    failed: u64,
    skipped: u64,
    retrying: u64,
    cancelled: u64,
    duration_ms: u128,
    exit_code: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    messages: Option<Vec<&'a Planned>>,
}

pub fn print_report(r: &Report<'_>, verbosity: Verbosity, json: bool) {
    let mut out = std::io::stdout().lock();
    if r.dry_run && !json {
        for (m, retry) in r
            .messages
            .iter()
            .map(|m| (m, false))
            .chain(r.retries.iter().map(|m| (m, true)))
        {
            let _ = writeln!(
                out,
                "would send {} via {} to {}: {}{}",
                m.kind,
                m.channel,
                printable(&m.recipient),
                printable(&m.subject),
                if retry { " (retry)" } else { "" }
            );
            for line in &m.detail {
                let _ = writeln!(out, "    {}", printable(line));
            }
        }
        for f in r.failures {
            let _ = writeln!(out, "would fail {}", printable(f));
        }
    }
    if verbosity == Verbosity::Verbose {
        for s in r.skipped {
            log::info!("skipped: {s}");
        }
    }
    let c = r.tally.counts;
    if json {
        let summary = JsonSummary {
            job: r.job,
            dry_run: r.dry_run,
            planned: c.planned,
            sent: c.sent,
            failed: c.failed,
            skipped: c.skipped,
            retrying: c.retrying,
            cancelled: c.cancelled,
            duration_ms: r.duration.as_millis(),
            exit_code: r.tally.exit.code(),
            messages: r.dry_run.then(|| r.messages.iter().chain(r.retries).collect()),
        };
        let _ = writeln!(out, "{}", serde_json::to_string(&summary).unwrap_or_default());
        return;
    }
    let ok = r.tally.exit == crate::exit::Exit::Ok;
    let cancelled = if c.cancelled > 0 {
        format!(", {} cancelled", c.cancelled)
    } else {
        String::new()
    };
    let line = format!(
        "{}{}: {} planned, {} sent, {} failed, {} skipped, {} retrying{cancelled} ({} ms)",
        r.job,
        if r.dry_run { " (dry run)" } else { "" },
        c.planned,
        c.sent,
        c.failed,
        c.skipped,
        c.retrying,
        r.duration.as_millis()
    );
    match verbosity {
        // -q: errors only, but a run that did not fully succeed says so, so
        // that cron mails the operator.
        Verbosity::Quiet if !ok => {
            let _ = writeln!(
                std::io::stderr().lock(),
                "rappel: error: {} (exit {})",
                crate::mask::mask(&line),
                r.tally.exit.code()
            );
        }
        Verbosity::Quiet => {}
        Verbosity::Normal if c.is_empty() && ok => {}
        _ => {
            let _ = writeln!(out, "{line}");
        }
    }
}
