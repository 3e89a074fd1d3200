//! Prometheus metrics in the text exposition format (0.0.4), as
//! node_exporter's textfile collector reads them: each run's end, what was
//! delivered and what waits. `rappel metrics` prints them or writes
//! `rappel.prom`; `[monitoring] textfile_dir` writes it after every run.
//! Names follow Prometheus' conventions: a `rappel_` prefix, base units
//! (`_seconds`), `_total` on counters only.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use chrono::{DateTime, Utc};

use crate::domain::Run;
use crate::instant;
use crate::store::{self, Conn};

/// The file the textfile collector reads, in `textfile_dir`.
pub const FILE: &str = "rappel.prom";

/// One metric family being written: its `# HELP` and `# TYPE` come first,
/// once, then its samples.
struct Family<'a> {
    out: &'a mut String,
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, name: &str, kind: &str, help: &str) -> Self {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        Family { out }
    }

    /// One sample of `name` with `labels` (values escaped as the format asks).
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (label, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{label}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// A label value as the text format writes it: `\`, `"` and line feeds escaped.
fn escape(value: &str) -> String {
    value.replace('\\', r"\\").replace('"', "\\\"").replace('\n', r"\n")
}

/// A value from the database as rappel prints it: control characters and
/// other invisible ones escaped (`output::printable`), so the file or a
/// terminal shows what is there and nothing drives the terminal.
fn shown(value: &str) -> String {
    crate::output::printable(value).into_owned()
}

/// Seconds since the Unix epoch of a stored instant; `None` when it does not parse.
fn epoch(at: &str) -> Option<i64> {
    instant::parse(at).map(|t| t.timestamp())
}

/// The metrics now, as the text to write. `now` (UTC) dates the oldest
/// waiting message's age. Errors: `StoreError` from any of the reads.
pub fn render(conn: &Conn, now: DateTime<Utc>) -> store::Result<String> {
    let mut out = String::new();
    let runs = store::runs::latest(conn, &Run::PINGED)?;

    let name = "rappel_job_last_run_timestamp_seconds";
    let mut f = Family::new(
        &mut out,
        name,
        "gauge",
        "When the job's latest run started (Unix time).",
    );
    for r in &runs {
        if let Some(at) = epoch(&r.started_at) {
            f.sample(name, &[("job", &r.job)], at);
        }
    }
    let name = "rappel_job_last_run_finished";
    let mut f = Family::new(
        &mut out,
        name,
        "gauge",
        "1 when the job's latest run recorded its end; 0 while it runs, or when it was killed.",
    );
    for r in &runs {
        f.sample(name, &[("job", &r.job)], u8::from(r.finished_at.is_some()));
    }
    let name = "rappel_job_last_run_duration_seconds";
    let mut f = Family::new(&mut out, name, "gauge", "How long the job's latest finished run took.");
    for r in &runs {
        if let Some(took) = r.duration() {
            f.sample(name, &[("job", &r.job)], took.num_seconds().max(0));
        }
    }
    let name = "rappel_job_last_run_exit_code";
    let mut f = Family::new(
        &mut out,
        name,
        "gauge",
        "Exit code of the job's latest finished run (0 ok, 75 retrying, 78 config...; see the README).",
    );
    for r in &runs {
        if let Some(code) = r.exit() {
            f.sample(name, &[("job", &r.job)], code);
        }
    }
    let name = "rappel_job_last_success_timestamp_seconds";
    let mut f = Family::new(
        &mut out,
        name,
        "gauge",
        "When the job's latest run that exited 0 started (Unix time).",
    );
    for r in &runs {
        if let Some(at) = r.last_success.as_deref().and_then(epoch) {
            f.sample(name, &[("job", &r.job)], at);
        }
    }

    let name = "rappel_deliveries_total";
    let mut f = Family::new(
        &mut out,
        name,
        "counter",
        "Deliveries that reached a final status (sent, failed, cancelled), by channel and kind; purge lowers it, which Prometheus reads as a reset.",
    );
    // Values as printed (control characters escaped), and series that read
    // the same once so (text that was not UTF-8) counted as one.
    let mut finished: BTreeMap<(String, String, String), i64> = BTreeMap::new();
    for (status, channel, kind, n) in store::metrics::finished(conn)? {
        *finished
            .entry((shown(&status), shown(&channel), shown(&kind)))
            .or_default() += n;
    }
    for ((status, channel, kind), n) in &finished {
        f.sample(name, &[("status", status), ("channel", channel), ("kind", kind)], n);
    }
    let waiting = store::metrics::waiting(conn, now)?;
    let name = "rappel_deliveries_pending";
    let mut f = Family::new(
        &mut out,
        name,
        "gauge",
        "Messages waiting to be sent (pending or being sent), by channel.",
    );
    let mut by_channel: BTreeMap<String, i64> = crate::domain::Channel::ALL
        .iter()
        .map(|c| (c.as_str().to_string(), 0))
        .collect();
    for (channel, n) in &waiting.by_channel {
        *by_channel.entry(shown(channel)).or_default() += n;
    }
    for (channel, n) in &by_channel {
        f.sample(name, &[("channel", channel)], n);
    }
    let name = "rappel_deliveries_oldest_pending_age_seconds";
    let mut f = Family::new(
        &mut out,
        name,
        "gauge",
        "Seconds the longest-waiting message due now has been due (since planned, or since its retry time); 0 when none; messages held by quiet hours or waiting for a retry are not due.",
    );
    let age = waiting
        .oldest_due
        .as_deref()
        .and_then(instant::parse)
        .map_or(0, |t| (now - t).num_seconds().max(0));
    f.sample(name, &[], age);

    let attendance = store::stats::attendance(conn)?;
    let name = "rappel_attendance_punches";
    let mut f = Family::new(&mut out, name, "gauge", "Time-clock punches by sync status.");
    for (status, n) in [
        ("pending", attendance.pending),
        ("sending", attendance.sending),
        ("retrying", attendance.retrying),
        ("failed", attendance.failed),
        ("sent", attendance.sent),
    ] {
        f.sample(name, &[("status", status)], n);
    }
    let name = "rappel_attendance_backlog";
    let mut f = Family::new(
        &mut out,
        name,
        "gauge",
        "Punches not yet accepted by their HR API (pending, being sent, or to retry).",
    );
    f.sample(name, &[], attendance.pending + attendance.sending + attendance.retrying);
    let name = "rappel_attendance_last_push_timestamp_seconds";
    let mut f = Family::new(
        &mut out,
        name,
        "gauge",
        "When punches were last accepted by the service's HR API (Unix time).",
    );
    // Services that print the same are one series, at their latest push.
    let mut pushed: BTreeMap<String, i64> = BTreeMap::new();
    for s in &attendance.services {
        if let Some(at) = s.last_attendance_sync.as_deref().and_then(epoch) {
            let latest = pushed.entry(shown(&s.service)).or_insert(at);
            *latest = (*latest).max(at);
        }
    }
    for (service, at) in &pushed {
        f.sample(name, &[("service", service)], at);
    }
    Ok(out)
}

/// Writes `text` to `dir/rappel.prom` whole (`files::replace_if`: the
/// temporary file does not end in `.prom`, so the collector never reads it
/// half-written). Returns the file's path. Errors: the folder is missing or
/// not writable, or `rappel.prom` there is not a regular file (with the path).
pub fn write_textfile(dir: &Path, text: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(FILE);
    // Never over a file that is not a metrics file.
    crate::files::replace_if(&path, text.as_bytes(), |head| head.starts_with(b"# HELP rappel_"))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// After a run: when `[monitoring] textfile_dir` is set, writes the metrics
/// there. A failure is logged as an error (cron mails it) and does not
/// change the run's exit code: the job itself went as it went.
pub fn after_run(config: &crate::config::Config, conn: &Conn, now: DateTime<Utc>) {
    let Some(dir) = &config.textfile_dir else {
        return;
    };
    let written = render(conn, now)
        .map_err(anyhow::Error::new)
        .and_then(|text| write_textfile(dir, &text));
    if let Err(e) = written {
        log::error!("monitoring.textfile_dir: {e:#}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped_as_the_text_format_asks() {
        assert_eq!(escape(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape("two\nlines"), r"two\nlines");
        let mut out = String::new();
        let mut f = Family::new(&mut out, "rappel_x", "gauge", "Help.");
        f.sample("rappel_x", &[("kind", "a\"b"), ("channel", "sms")], 3);
        assert_eq!(
            out,
            "# HELP rappel_x Help.\n# TYPE rappel_x gauge\nrappel_x{kind=\"a\\\"b\",channel=\"sms\"} 3\n"
        );
    }

    #[test]
    fn the_file_is_replaced_whole_and_no_temporary_file_stays() {
        let dir = tempfile::tempdir().unwrap();
        write_textfile(dir.path(), "# HELP rappel_a A.\nrappel_a 1\n").unwrap();
        let path = write_textfile(dir.path(), "# HELP rappel_b B.\nrappel_b 2\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "# HELP rappel_b B.\nrappel_b 2\n"
        );
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec![FILE.to_string()]);
        let missing = write_textfile(&dir.path().join("nope"), "c 3\n").unwrap_err();
        assert!(format!("{missing:#}").contains("nope/rappel.prom"), "{missing:#}");
        // A rappel.prom that is not rappel's metrics is left alone.
        std::fs::write(&path, "node_something 1\n").unwrap();
        let refused = write_textfile(dir.path(), "# HELP rappel_c C.\n").unwrap_err();
        assert!(format!("{refused:#}").contains("holds something else"), "{refused:#}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "node_something 1\n");
    }
}
