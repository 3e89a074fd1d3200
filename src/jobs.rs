//! The jobs: each turns stored rows into planned messages for the engine. A
//! job plans; it never sends, and never imports another job.

pub mod attendance;
pub mod delay_alerts;
pub mod reminders;
pub mod reports;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::config::Locale;
use crate::db::Database;
/// Host columns of loose types (`db::loose`), under the names jobs read them by.
pub use crate::db::loose::{flag as column_flag, id as column_id, text as column_text};
use crate::domain::planned::Planned;
use crate::templates::Templates;

/// What every job's planning needs besides its own configuration.
pub struct PlanCtx<'a> {
    pub now: DateTime<Utc>,
    pub zone: Tz,
    /// Where host instants written without an offset are read
    /// (`naive_timezone`, `instant::parse_in`).
    pub naive_zone: Tz,
    pub locale: Locale,
    /// Where a phone written without its country code is read (`[whatsapp] default_region`).
    pub phone_region: Option<crate::recipient::Region>,
    pub site_url: Option<&'a str>,
    pub templates: &'a Templates,
    /// For jobs that read the database beyond their connection (report queries).
    pub db: &'a Database,
    pub dry_run: bool,
    pub force: bool,
}

/// What planning produced.
#[derive(Debug, Default)]
pub struct PlanReport {
    /// How many messages were newly planned (or, in a dry run, would be).
    pub planned: u64,
    /// In a dry run, the messages that would be sent (for printing).
    pub messages: Vec<Planned>,
    /// Items not due a message, with their reason (not failures).
    pub skipped: Vec<String>,
    /// Rows that could not be read (exit 65).
    pub data_errors: u64,
    /// Items that failed at planning, with the reason (counted failed, exit 65).
    pub failures: Vec<String>,
    /// Warnings already printed this run, so a contact in a hundred rows is
    /// named once.
    pub warned: std::collections::HashSet<String>,
    /// Messages not planned because their template could not be rendered
    /// (exit 78, counted failed): the others go on, and a later run plans
    /// these once the template is fixed. One line per template error.
    pub template_errors: Vec<String>,
    /// send-reports: the `scheduled_reports` rows it looked at this run, by
    /// id and `scheduled_at` (rappel's format), so the summary counts
    /// reports as well as messages.
    pub report_rows: Vec<(i64, String)>,
}

impl PlanReport {
    /// A message whose template failed: said once per distinct error (a
    /// template missing a name fails the same way for every row), counted
    /// for each message.
    pub fn template_failed(&mut self, error: &anyhow::Error) {
        let line = format!("{error:#}");
        if !self.template_errors.contains(&line) {
            log::error!("{line}; these messages are not planned until it is fixed");
        }
        self.template_errors.push(line);
    }

    /// Prints a warning once per run.
    pub fn warn_once(&mut self, message: String) {
        if !self.warned.contains(&message) {
            log::warn!("{message}");
            self.warned.insert(message);
        }
    }
}
