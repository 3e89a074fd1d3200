//! Command-line definitions (clap derive): the flags and subcommands of DESIGN §2.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "rappel",
    version,
    about = "Sends the recurring messages small business applications depend on: never twice, never lost.",
    after_help = "Exit codes: 0 ok, 64 usage, 65 bad data, 70 internal, 74 database, 75 retry later, 78 configuration."
)]
pub struct Cli {
    /// Configuration file (default: ./rappel.toml, then the user and system config dirs)
    #[arg(long, global = true, env = "RAPPEL_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Evaluate everything as if at this instant (RFC 3339, e.g. 2026-03-01T07:00:00Z)
    #[arg(long, global = true, env = "RAPPEL_NOW", value_name = "RFC3339", value_parser = parse_now)]
    pub now: Option<DateTime<Utc>>,

    /// Print one JSON summary object per run on stdout
    #[arg(long, global = true)]
    pub json: bool,

    /// Print detail, including skipped items and their reason
    #[arg(short, long, global = true, conflicts_with = "quiet")]
    pub verbose: bool,

    /// Print errors only
    #[arg(short, long, global = true)]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Email staff about repair tickets that sat too long in one stage
    CheckDelayAlerts(JobArgs),
    /// Email reports whose scheduled time has come, with their file or generated data
    SendReports(JobArgs),
    /// Send due reminders and confirmations by email, WhatsApp and SMS
    SendReminders {
        #[command(flatten)]
        job: JobArgs,
        /// Only this kind (repeatable), e.g. --kind loan_created --kind loan_returned
        #[arg(long = "kind", value_name = "KIND", value_parser = parse_kind)]
        kinds: Vec<crate::domain::Kind>,
    },
    /// Pull users from, and push time-clock punches in batches to, the HR APIs
    SyncAttendance {
        #[command(flatten)]
        job: JobArgs,
        /// Only this service of [attendance.services]
        #[arg(long, value_name = "NAME")]
        service: Option<String>,
    },
    /// Send every job's pending messages whose retry time has come
    Deliver(DeliverArgs),
    /// Put failed, waiting or cancelled messages back to pending, due now (never a sent one)
    Retry(RetryArgs),
    /// Cancel pending messages: they are not sent (status cancelled)
    Cancel(Selection),
    /// List what each job would send within a time, and when (writes nothing)
    Upcoming {
        /// How far ahead: 90m, 24h, 7d
        #[arg(long, value_name = "AGE", value_parser = parse_age, default_value = "24h")]
        within: chrono::Duration,
    },
    /// Print one delivery whole: headers, text, HTML, its attempts and last error
    Show {
        /// The delivery's id (the ID column of `rappel log`)
        #[arg(value_name = "ID")]
        id: i64,
    },
    /// Every configured job in turn, then deliver; exits with the most serious code
    RunAll(JobArgs),
    /// Delete finished deliveries, delay-alert history and job runs older than an age
    Purge(PurgeArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish)
    Completions {
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff)
    Man,
    /// Database schema: migrate or show status
    #[command(subcommand)]
    Db(DbCommand),
    /// Each input table as rappel reads it ([sources] mappings included): origin, rows, values that do not read
    Sources {
        /// Only this input table (tickets, loans...)
        #[arg(value_name = "TABLE")]
        table: Option<String>,
        /// Rows shown per table
        #[arg(long, value_name = "N", default_value_t = 3)]
        rows: usize,
    },
    /// Write a commented rappel.toml and create rappel.db (never overwrites)
    Init {
        /// Folder to write rappel.toml into
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Where the database goes (default: rappel.db in DIR); written into
        /// rappel.toml as an absolute path. Its folder also holds the lock
        /// files and generated reports, so it must be writable by the jobs.
        #[arg(long, value_name = "PATH")]
        database: Option<PathBuf>,
    },
    /// Build a sample database with file transports, then run every job
    Demo {
        /// Folder to build (made anew if it is an earlier demo)
        #[arg(long, default_value = "rappel-demo")]
        dir: PathBuf,
        /// Number of generated tickets (for benchmarks)
        #[arg(long, value_name = "N")]
        scale: Option<u64>,
        /// Build the data without running the jobs
        #[arg(long)]
        no_run: bool,
        /// A PostgreSQL server to build it on (`postgres://user@host/db`;
        /// the password from PGPASSWORD or ~/.pgpass), in its own schema
        /// `rappel_demo`, which must not exist yet
        #[arg(long, value_name = "URL")]
        database: Option<String>,
    },
    /// Validate the configuration and templates
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Send one test message through the configured email transport
    TestEmail {
        /// Recipient address
        #[arg(long, value_name = "ADDR")]
        to: String,
    },
    /// List deliveries, newest first (times in the config's zone)
    Log(LogArgs),
    /// The notification dashboard: totals, rates, channels, kinds, failures, attendance
    Stats(StatsArgs),
    /// The dashboard as one self-contained HTML page, for a browser
    Dashboard(DashboardArgs),
    /// Prometheus metrics (text format), for node_exporter's textfile collector
    Metrics(MetricsArgs),
}

#[derive(Debug, Args)]
pub struct DashboardArgs {
    /// Write the page to this file (replaced whole, never half-written);
    /// without it, the page goes to standard output
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Deliveries created since: an age (30d, 12h), a date or an instant
    #[arg(long, value_name = "D", value_parser = parse_since, default_value = "30d")]
    pub since: Since,
}

#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// Write rappel.prom into this folder (replaced whole) instead of
    /// printing the metrics; without DIR, into `[monitoring] textfile_dir`
    #[arg(long, value_name = "DIR", num_args = 0..=1)]
    pub textfile: Option<Option<PathBuf>>,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Deliveries created since: an age (30d, 12h), a date or an instant
    #[arg(long, value_name = "D", value_parser = parse_since, default_value = "30d")]
    pub since: Since,
    /// Exit 1 when more than this percentage of finished deliveries failed
    #[arg(long, value_name = "PCT", value_parser = parse_percent)]
    pub fail_above: Option<f64>,
}

fn parse_percent(s: &str) -> Result<f64, String> {
    match s.trim().trim_end_matches('%').parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p),
        _ => Err(format!("expected a percentage from 0 to 100, not {s:?}")),
    }
}

#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// Rows older than this age: 90d, 12w (at least a week)
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    pub older_than: chrono::Duration,
    /// Count what would go; delete nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Then give the freed space back to the file system (VACUUM)
    #[arg(long)]
    pub vacuum: bool,
    /// Also delete synced attendance logs (the host's data)
    #[arg(long)]
    pub include_attendance: bool,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// Only this status
    #[arg(long, value_name = "S")]
    pub status: Option<crate::domain::DeliveryStatus>,
    /// Only this kind (a reminder kind, delay_alert, report or test)
    #[arg(long, value_name = "K")]
    pub kind: Option<crate::domain::Kind>,
    /// Only this channel
    #[arg(long, value_name = "C")]
    pub channel: Option<crate::domain::Channel>,
    /// Only deliveries created since: an age (90m, 12h, 30d, 2w) or a date or instant
    #[arg(long, value_name = "D", value_parser = parse_since)]
    pub since: Option<Since>,
    /// At most this many rows (0: all)
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub limit: u64,
}

/// A point in the past given on the command line, resolved against `--now`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Since {
    /// This long before now.
    Ago(chrono::Duration),
    /// The start of this day in the config's zone.
    Day(chrono::NaiveDate),
    /// This instant.
    At(DateTime<Utc>),
}

impl Since {
    pub fn resolve(&self, now: DateTime<Utc>, zone: chrono_tz::Tz) -> DateTime<Utc> {
        match self {
            Since::Ago(age) => now - *age,
            Since::Day(day) => crate::instant::local_to_utc(day.and_time(chrono::NaiveTime::MIN), zone),
            Since::At(at) => *at,
        }
    }
}

/// An age such as `90m`, `12h`, `30d` or `2w`.
pub fn parse_age(s: &str) -> Result<chrono::Duration, String> {
    let usage = || format!("expected an age such as 90m, 12h, 30d or 2w, not {s:?}");
    let s = s.trim();
    let unit = s.chars().last().ok_or_else(usage)?;
    let n: i64 = s[..s.len() - unit.len_utf8()].parse().map_err(|_| usage())?;
    let minutes = match unit {
        'm' => 1,
        'h' => 60,
        'd' => 24 * 60,
        'w' => 7 * 24 * 60,
        _ => return Err(usage()),
    };
    n.checked_mul(minutes)
        .filter(|m| *m >= 0 && *m <= 100 * 366 * 24 * 60)
        .map(chrono::Duration::minutes)
        .ok_or_else(usage)
}

fn parse_since(s: &str) -> Result<Since, String> {
    if let Ok(age) = parse_age(s) {
        return Ok(Since::Ago(age));
    }
    if let Ok(day) = chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d") {
        return Ok(Since::Day(day));
    }
    crate::instant::parse(s)
        .map(Since::At)
        .ok_or_else(|| format!("expected an age (90m, 12h, 30d, 2w), a date (2026-11-01) or an instant, not {s:?}"))
}

#[derive(Debug, Args)]
pub struct JobArgs {
    /// Print what would be sent; write nothing, send nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Ignore the waiting guards (next_attempt_at, rearm_hours, max_attempts)
    #[arg(long)]
    pub force: bool,
}

impl JobArgs {
    pub fn mode(&self) -> crate::domain::RunMode {
        crate::domain::RunMode {
            dry_run: self.dry_run,
            force: self.force,
        }
    }
}

#[derive(Debug, Args)]
pub struct DeliverArgs {
    /// Print what would be sent; write nothing, send nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Send pending retries now, whatever their next_attempt_at, and give
    /// messages that failed for a passing reason one more try
    #[arg(long)]
    pub force: bool,
}

impl DeliverArgs {
    pub fn mode(&self) -> crate::domain::RunMode {
        crate::domain::RunMode {
            dry_run: self.dry_run,
            force: self.force,
        }
    }
}

/// Which deliveries `retry` and `cancel` change: those named by id, or all
/// that match every filter given.
#[derive(Debug, Args)]
pub struct Selection {
    /// Delivery ids (the ID column of `rappel log`)
    #[arg(value_name = "ID")]
    pub ids: Vec<i64>,
    /// Only this kind (a reminder kind, delay_alert, report or test)
    #[arg(long, value_name = "K")]
    pub kind: Option<crate::domain::Kind>,
    /// Only deliveries created since: an age (90m, 12h, 30d, 2w), a date or an instant
    #[arg(long, value_name = "D", value_parser = parse_since)]
    pub since: Option<Since>,
    /// Print what would change; change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct RetryArgs {
    #[command(flatten)]
    pub select: Selection,
    /// Only failed deliveries (not those waiting for their next try)
    #[arg(long)]
    pub failed: bool,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Apply pending migrations
    Migrate,
    /// Show the schema version and check the host tables' columns
    Status,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration and render every template with sample data
    Check {
        /// Also connect to the configured SMTP server
        #[arg(long)]
        connect: bool,
    },
}

/// A send-reminders kind (`--kind`): another job's kind is refused.
fn parse_kind(s: &str) -> Result<crate::domain::Kind, String> {
    s.parse::<crate::domain::Kind>()
        .ok()
        .filter(|k| k.is_reminder())
        .ok_or_else(|| format!("expected one of {}", crate::domain::Kind::reminder_names()))
}

fn parse_now(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("expected an RFC 3339 instant such as 2026-03-01T07:00:00Z ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_their_errors() {
        assert_eq!(parse_age("90m"), Ok(chrono::Duration::minutes(90)));
        assert_eq!(parse_age("30d"), Ok(chrono::Duration::days(30)));
        assert_eq!(parse_age("2w"), Ok(chrono::Duration::days(14)));
        for bad in ["", "d", "30", "30x", "-3d", "99999999999999d", "3é"] {
            assert!(parse_age(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn since_is_an_age_a_local_day_or_an_instant() {
        let now = crate::instant::parse("2026-11-21T12:00:00Z").unwrap();
        let paris: chrono_tz::Tz = "Europe/Paris".parse().unwrap();
        let at = |s: &str| parse_since(s).unwrap().resolve(now, paris);
        assert_eq!(at("12h"), crate::instant::parse("2026-11-21T00:00:00Z").unwrap());
        assert_eq!(at("2026-11-01"), crate::instant::parse("2026-10-31T23:00:00Z").unwrap());
        assert_eq!(
            at("2026-11-20T08:00:00Z"),
            crate::instant::parse("2026-11-20T08:00:00Z").unwrap()
        );
        assert!(parse_since("last week").is_err());
    }
}
