//! What a run prints: logs on stderr (text or one JSON object per line), the
//! one-line summary, dry-run listings and `--json` summaries on stdout.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use serde::Serialize;

use crate::domain::planned::Planned;
use crate::domain::tally::Tally;
use crate::jobs::reports::ReportCounts;

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
static RUN_ID: OnceLock<String> = OnceLock::new();
static JOB: Mutex<&'static str> = Mutex::new("rappel");

/// This process's run id: a random UUID (version 4), in every log line and
/// in monitoring pings (healthchecks.io's `rid`), so a cron log's lines and a
/// ping's run can be matched.
pub fn run_id() -> &'static str {
    RUN_ID.get_or_init(new_run_id)
}

/// The job the next log lines are about (`run-all` runs several).
pub fn set_job(job: &'static str) {
    *JOB.lock().unwrap_or_else(|e| e.into_inner()) = job;
}

fn new_run_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let random = || {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.finish()
    };
    let (a, b) = (random(), random());
    let a = (a & 0xffff_ffff_ffff_0fff) | 0x4000;
    let b = (b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

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
        let level = match record.level() {
            log::Level::Error => "error",
            log::Level::Warn => "warning",
            _ => "info",
        };
        let problem = record.level() <= log::Level::Warn && record.target().starts_with("rappel");
        if !problem && !self.enabled(record.metadata()) {
            return;
        }
        // A message of several lines (a list of paths tried...) keeps its
        // lines; each is escaped on its own, so data cannot forge one.
        // Masked whole, before it is split: a secret a message splits over
        // its lines is masked too.
        let lines: Vec<String> = crate::mask::mask(&record.args().to_string())
            .split('\n')
            .map(|l| printable(l.trim_end_matches('\r')).into_owned())
            .collect();
        let message = lines.join("\n");
        if problem {
            // Kept for the monitoring ping even when -q does not print it.
            keep(format!("{level}: {message}"));
            if !self.enabled(record.metadata()) {
                return;
            }
        }
        let ts = crate::instant::format(crate::clock::wall_now());
        let job = *JOB.lock().unwrap_or_else(|e| e.into_inner());
        let mut err = std::io::stderr().lock();
        if JSON_LOGS.load(Ordering::Relaxed) {
            let line = json(
                &serde_json::json!({ "ts": ts, "run_id": run_id(), "job": job, "level": level, "message": message }),
                false,
            );
            let _ = writeln!(err, "{line}");
            return;
        }
        let prefix = if std::io::stderr().is_terminal() {
            format!("rappel: {level}: ")
        } else {
            // A cron mail or a log file: every line can be placed in time and
            // run (the first part of the run id, as pings carry it whole).
            format!("{ts} run={} rappel: {level}: ", &run_id()[..8])
        };
        // Every line carries the prefix: a log file keeps each line dated.
        for line in &lines {
            let _ = writeln!(err, "{prefix}{line}");
        }
    }

    fn flush(&self) {}
}

/// The lines a monitoring ping carries as its body: summaries and
/// warnings or errors, numbered in the order they came.
struct Kept {
    next: u64,
    lines: std::collections::VecDeque<(u64, String)>,
}

static KEPT: Mutex<Kept> = Mutex::new(Kept {
    next: 0,
    lines: std::collections::VecDeque::new(),
});

/// How many lines [`kept_since`] keeps at most (the latest), and how long
/// each may be (characters), so a ping body stays a few kilobytes.
const KEPT_LINES: usize = 40;
const KEPT_CHARS: usize = 500;

/// Keeps `line` for the monitoring ping's body (`kept_since`): a summary
/// that is not logged (the run's own, purge's counts).
pub fn keep(line: String) {
    let mut kept = KEPT.lock().unwrap_or_else(|e| e.into_inner());
    let line = match line.char_indices().nth(KEPT_CHARS) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line,
    };
    let n = kept.next;
    kept.next += 1;
    kept.lines.push_back((n, line));
    if kept.lines.len() > KEPT_LINES {
        kept.lines.pop_front();
    }
}

/// A mark to pass to [`kept_since`] later: lines kept after it are the run's.
pub fn kept_mark() -> u64 {
    KEPT.lock().unwrap_or_else(|e| e.into_inner()).next
}

/// The summary lines and warning or error lines (secrets masked) logged
/// since `mark`, oldest first; at most the latest 40, each cut at 500
/// characters. What a monitoring ping sends as its body.
pub fn kept_since(mark: u64) -> Vec<String> {
    let kept = KEPT.lock().unwrap_or_else(|e| e.into_inner());
    kept.lines
        .iter()
        .filter(|(n, _)| *n >= mark)
        .map(|(_, l)| l.clone())
        .collect()
}

/// Writes `bytes` to stdout; a reader that stopped reading (`| head`, a
/// closed pipe) is no error. Errors: any other write error.
pub fn write_stdout(bytes: &[u8]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Makes a closed stdout (`rappel log | head`) end the process quietly
/// with exit 0, as a reader that stopped reading is no error, instead of the
/// panic `println!` raises on a broken pipe. Other panics go on as before.
pub fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let text = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if text.starts_with("failed printing to stdout") && text.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

/// `text` as it may be shown on a terminal or in a log file: control
/// characters (ESC, CR, LF, NUL, DEL, C1...), Unicode line separators and
/// bidirectional overrides are written as Rust escapes (`\u{1b}`, `\n`), so
/// host data can neither forge a log line nor drive the terminal.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
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

/// Whether `c` could forge a line or act on a terminal or a reader: a
/// control character (C0, DEL, C1), a line or paragraph separator, or an
/// invisible format character (bidirectional marks, overrides and isolates,
/// zero-width characters, the byte-order mark, interlinear annotations,
/// tags, the soft hyphen).
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00ad}'
                | '\u{061c}'
                | '\u{180e}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{206f}'
                | '\u{feff}'
                | '\u{fff9}'..='\u{fffb}'
                | '\u{e0000}'..='\u{e007f}'
        )
}

/// `value` as JSON (pretty or on one line), every character [`printable`]
/// escapes written as a `\uXXXX` escape (serde escapes only C0): the same
/// data, still valid JSON, that cannot act on a terminal either.
pub fn json(value: &impl Serialize, pretty: bool) -> String {
    let text = if pretty {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    }
    .unwrap_or_default();
    // serde escapes C0 inside strings: any left is the layout's own newline.
    let escape = |c: char| unsafe_char(c) && u32::from(c) >= 0x20;
    if !text.chars().any(escape) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if escape(c) {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    out
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
    /// Why the run stopped, when it did (`--json` says so too).
    pub error: Option<&'a str>,
    /// send-reports: its reports, each counted once (the counts above are
    /// messages, one per address). In a dry run only `reports` is known.
    pub reports: Option<ReportCounts>,
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
    held: u64,
    duration_ms: u128,
    exit_code: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reports: Option<ReportCounts>,
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
            let held = m
                .held_until
                .map(|t| {
                    format!(
                        " (held by quiet hours or its send window until {})",
                        crate::instant::format(t)
                    )
                })
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "would send {} via {} to {}: {}{}{held}",
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
    let line = summary_line(r);
    // Under -q a run that did not fully succeed logs its summary as an
    // error, which keeps it: not twice.
    let ok = r.tally.exit == crate::exit::Exit::Ok;
    if !(verbosity == Verbosity::Quiet && !ok && !json) {
        keep(line.clone());
    }
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
            held: c.held,
            duration_ms: r.duration.as_millis(),
            exit_code: r.tally.exit.code(),
            error: r.error.map(crate::mask::mask),
            reports: r.reports,
            messages: r.dry_run.then(|| r.messages.iter().chain(r.retries).collect()),
        };
        let _ = writeln!(out, "{}", self::json(&summary, false));
        return;
    }
    match verbosity {
        // -q: errors only, but a run that did not fully succeed says so, so
        // that cron mails the operator.
        Verbosity::Quiet if !ok => {
            log::error!("{line} (exit {})", r.tally.exit.code());
        }
        Verbosity::Quiet => {}
        Verbosity::Normal if c.is_empty() && ok => {}
        _ => {
            let _ = writeln!(out, "{line}");
        }
    }
}

/// The one-line summary of a run, as printed (and kept for the ping).
fn summary_line(r: &Report<'_>) -> String {
    let c = r.tally.counts;
    let cancelled = if c.cancelled > 0 {
        format!(", {} cancelled", c.cancelled)
    } else {
        String::new()
    };
    let held = if c.held > 0 {
        format!(", {} held", c.held)
    } else {
        String::new()
    };
    // Reports first, each once; then their messages, one per address.
    let reports = match r.reports {
        Some(n) if r.dry_run => format!(" {} report(s); messages:", n.reports),
        Some(n) => format!(
            " {} report(s): {} sent, {} failed, {} pending; messages:",
            n.reports, n.sent, n.failed, n.pending
        ),
        None => String::new(),
    };
    format!(
        "{}{}:{reports} {} planned, {} sent, {} failed, {} skipped, {} retrying{cancelled}{held} ({} ms)",
        r.job,
        if r.dry_run { " (dry run)" } else { "" },
        c.planned,
        c.sent,
        c.failed,
        c.skipped,
        c.retrying,
        r.duration.as_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_version_4_uuids_and_differ() {
        let (a, b) = (new_run_id(), new_run_id());
        assert_ne!(a, b);
        for id in [a, b] {
            let parts: Vec<&str> = id.split('-').collect();
            assert_eq!(
                parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
                vec![8, 4, 4, 4, 12],
                "{id}"
            );
            assert!(parts[2].starts_with('4'), "{id}");
            assert!("89ab".contains(&parts[3][..1]), "{id}");
        }
    }

    #[test]
    fn json_escapes_what_serde_leaves() {
        let v = serde_json::json!({ "x": "a\u{202e}b\u{7f}c\u{85}\u{2028}\u{e0041}" });
        for pretty in [false, true] {
            let text = json(&v, pretty);
            assert!(!text.chars().any(|c| unsafe_char(c) && c != '\n'), "{text}");
            let back: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(back, v, "still the same data");
        }
        let text = json(&v, false);
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, v, "still the same data");
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("plain é"), "plain é");
        for c in ['\u{200e}', '\u{200b}', '\u{feff}', '\u{e0041}', '\u{9b}', '\u{7f}'] {
            assert!(!printable(&format!("a{c}b")).contains(c), "{c:?}");
        }
        assert_eq!(
            printable("a\u{1b}[2J\nb\r\u{0}\u{202e}"),
            "a\\u{1b}[2J\\nb\\r\\0\\u{202e}"
        );
    }
}
