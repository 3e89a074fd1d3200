//! `rappel config check [--connect]`: the configuration is already validated by
//! loading it; this renders every template with sample data (optional values
//! present, then absent) and, with `--connect`, reaches the SMTP server and
//! reads each HR service's users list.

use crate::app::{self, Ctx};
use crate::channels::SendError;
use crate::channels::http::HrApi;
use crate::config::Locale;
use crate::exit::{Exit, OrExit, fail};
use crate::jobs::{attendance, delay_alerts, reminders, reports};
use crate::templates::{self, Templates};

use super::test_email;

type Sample = fn(bool) -> serde_json::Value;

/// Sample data for every kind that has templates.
const SAMPLES: &[(&str, Sample)] = &[
    (delay_alerts::KIND, delay_alerts::sample_context),
    (test_email::KIND, test_email::sample_context),
    (reports::KIND, reports::sample_context),
    ("loan_created", reminders::sample_context),
    ("loan_d2", reminders::sample_context),
    ("loan_d1", reminders::sample_context),
    ("loan_due", reminders::sample_context),
    ("loan_short_notice", reminders::sample_context),
    ("loan_overdue", reminders::sample_context),
    ("loan_returned", reminders::sample_context),
    ("session_eve", reminders::session_sample),
    ("session_day", reminders::session_sample),
    ("inactivity", reminders::inactivity_sample),
    ("weekly_digest", reminders::digest_sample),
    ("manual", reminders::manual_sample),
];

pub fn run(ctx: &Ctx<'_>, connect: bool) -> anyhow::Result<Exit> {
    let config = ctx.config;
    let templates = Templates::new(config.templates_dir.clone()).or_exit(Exit::Config)?;
    let mut errors = Vec::new();
    for kind in templates::builtin_kinds() {
        let Some((_, sample)) = SAMPLES.iter().find(|(k, _)| *k == kind) else {
            errors.push(format!(
                "kind {kind} has templates but no sample data to check them with"
            ));
            continue;
        };
        for locale in Locale::ALL {
            for optional_present in [true, false] {
                if let Err(e) = templates.render(locale, kind, &sample(optional_present)) {
                    errors.push(format!("{e:#}"));
                }
            }
        }
    }
    if !errors.is_empty() {
        for e in &errors {
            log::error!("{e}");
        }
        return Err(fail(Exit::Config, format!("{} template error(s)", errors.len())));
    }
    let channels = app::channels(config)?;
    if connect && let Some(email) = &channels.email {
        match email.test_connection() {
            Ok(()) => println!("email: connected"),
            Err(e @ SendError::Credentials(_)) => return Err(fail(Exit::Config, e)),
            Err(e) => return Err(fail(Exit::TempFail, e)),
        }
    }
    let mut exit = Exit::Ok;
    if connect {
        for service in &config.attendance.services {
            exit = exit.max(connect_hr(service, ctx.clock.now()));
        }
    }
    if exit != Exit::Ok {
        return Err(fail(exit, "an HR service could not be reached as configured"));
    }
    println!("configuration OK: {}", config.path.display());
    Ok(Exit::Ok)
}

/// Reads the service's users list, as the next sync would, and stores nothing.
fn connect_hr(service: &crate::config::ServiceConfig, now: chrono::DateTime<chrono::Utc>) -> Exit {
    let name = &service.name;
    let api = HrApi::new(service);
    match api.users(now) {
        Ok(None) => {
            println!(
                "attendance.services.{name}: nothing to read without posting (no users_endpoint, or file transport)"
            );
            Exit::Ok
        }
        Ok(Some(body)) => match attendance::users::parse(&body) {
            Ok((users, skipped)) => {
                println!(
                    "attendance.services.{name}: connected, {} user(s) listed{}",
                    users.len(),
                    if skipped.is_empty() {
                        String::new()
                    } else {
                        format!(", {} unreadable", skipped.len())
                    }
                );
                Exit::Ok
            }
            Err(why) => {
                log::error!("attendance.services.{name}: {why}");
                Exit::DataErr
            }
        },
        Err(refused) => {
            let e = refused.error;
            log::error!("attendance.services.{name}: {e}");
            match e {
                SendError::Credentials(_) => Exit::Config,
                SendError::Temporary { .. } => Exit::TempFail,
                SendError::Permanent(_) => Exit::DataErr,
            }
        }
    }
}
