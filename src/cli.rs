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
        kinds: Vec<String>,
    },
    /// Send every job's pending messages whose retry time has come
    Deliver(DryRun),
    /// Database schema: migrate or show status
    #[command(subcommand)]
    Db(DbCommand),
    /// Write a commented rappel.toml and create rappel.db (never overwrites)
    Init {
        /// Folder to write into
        #[arg(default_value = ".")]
        dir: PathBuf,
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

#[derive(Debug, Args)]
pub struct DryRun {
    /// Print what would be sent; write nothing, send nothing
    #[arg(long)]
    pub dry_run: bool,
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

fn parse_kind(s: &str) -> Result<String, String> {
    if crate::config::KINDS.contains(&s) {
        Ok(s.to_string())
    } else {
        Err(format!("expected one of {}", crate::config::KINDS.join(", ")))
    }
}

fn parse_now(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("expected an RFC 3339 instant such as 2026-03-01T07:00:00Z ({e})"))
}
