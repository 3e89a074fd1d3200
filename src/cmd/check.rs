//! `rappel config check [--connect]`: the configuration is already validated by
//! loading it; this renders every template with sample data (optional values
//! present, then absent) and, with `--connect`, reaches the SMTP server (EHLO,
//! STARTTLS, AUTH, no message), reads the Twilio account and each HR
//! service's users list, and says ok or failed for each (exit 78 on a failure).

use crate::channels::http::HrApi;
use crate::config::Locale;
use crate::exit::{Exit, fail};
use crate::jobs::{attendance, delay_alerts, reminders, reports};
use crate::runner::Ctx;
use crate::templates;

use super::test_email;

type Sample = fn(bool) -> serde_json::Value;

/// Sample data for every kind that has templates.
const SAMPLES: &[(&str, Sample)] = &[
    ("delay_alert", delay_alerts::sample_context),
    ("test", test_email::sample_context),
    ("report", reports::sample_context),
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
    let templates = ctx.templates()?;
    let mut errors = Vec::new();
    for kind in templates::builtin_kinds() {
        let Some((_, sample)) = SAMPLES.iter().find(|(k, _)| *k == kind) else {
            errors.push(format!(
                "kind {kind} has templates but no sample data to check them with"
            ));
            continue;
        };
        for locale in Locale::ALL {
            // Rendered with optional values present, then absent: an error
            // both give is one error, named once.
            let full = templates
                .render(locale, kind, &sample(true))
                .err()
                .map(|e| format!("{e:#}"));
            let bare = templates
                .render(locale, kind, &sample(false))
                .err()
                .map(|e| format!("{e:#}"));
            match (full, bare) {
                (Some(a), Some(b)) if a == b => errors.push(a),
                (full, bare) => {
                    errors.extend(full.map(|e| format!("{e} (with optional values present)")));
                    errors.extend(bare.map(|e| format!("{e} (with optional values absent)")));
                }
            }
        }
    }
    let checked = |errors: &mut Vec<String>| -> anyhow::Result<()> {
        let db = config.db(true);
        let session = Session::open(config, &db, connect);
        errors.extend(session.mappings(config));
        errors.extend(session.report_queries(config, &db)?);
        Ok(())
    };
    match &config.postgres {
        None => {
            checked(&mut errors)?;
            naive_instants(config)?;
        }
        Some(server) => match &server.password {
            Some(Err(why)) => errors.push(why.clone()),
            // On a server, checking the mappings and queries is connecting: --connect.
            _ => checked(&mut errors)?,
        },
    }
    // Each transport and HR service's client, as the jobs build them: a
    // secret that cannot be had, a token that cannot be a header, a CA file.
    let (channels, unusable) = ctx.channels();
    errors.extend(unusable.iter().map(|e| format!("{e:#}")));
    for service in &config.attendance.services {
        if let Err(e) = HrApi::new(service) {
            errors.push(format!("{e:#}"));
        }
    }
    if let Some(dir) = &config.templates_dir
        && !dir.is_dir()
    {
        errors.push(format!(
            "templates_dir: {} is not a folder (no template there would override the built-in ones)",
            dir.display()
        ));
    }
    if let Some(dir) = &config.textfile_dir
        && !dir.is_dir()
    {
        errors.push(format!(
            "monitoring.textfile_dir: {} is not a folder (create it, writable by the user the jobs run as)",
            dir.display()
        ));
    }
    if !errors.is_empty() {
        for e in &errors {
            log::error!("{e}");
        }
    }
    let in_config = (!errors.is_empty()).then(|| {
        format!(
            "{} error(s) in templates, [sources] mappings, report queries, transports, services or monitoring",
            errors.len()
        )
    });
    if !connect {
        if let Some(why) = in_config {
            return Err(fail(Exit::Config, why));
        }
        println!("configuration OK: {}", config.path.display());
        return Ok(Exit::Ok);
    }
    // Under --connect, every connection is tried even after an error
    // above: the operator sees at once all that stands in the way.
    let mut failed = 0;
    let mut report = |what: &str, outcome: Result<String, String>| match outcome {
        Ok(detail) => println!("{what}: ok ({detail})"),
        Err(why) => {
            println!("{what}: failed: {why}");
            failed += 1;
        }
    };
    // A password that cannot be had is an error above already: not tried,
    // nor counted again.
    if let Some(server) = config.postgres.as_ref().filter(|s| !matches!(s.password, Some(Err(_)))) {
        report(
            "database",
            crate::db::postgres::describe(server).map_err(|e| format!("{e:#}")),
        );
    }
    if let (Some(email), Some(cfg)) = (&channels.email, &config.email) {
        report(
            "email",
            match &cfg.transport {
                crate::config::EmailTransport::Smtp(smtp) => {
                    let at = format!("{}:{}", smtp.host, smtp.port);
                    email
                        .test_connection()
                        .map(|()| smtp_greeting(smtp, &at))
                        .map_err(|e| format!("{at} ({}): {e}", security(smtp)))
                }
                _ => Ok("file or sendmail transport, nothing to connect to".into()),
            },
        );
    }
    if let Some(twilio) = &channels.twilio {
        report(
            "whatsapp",
            match twilio.check_account() {
                Ok(true) => Ok("Twilio account read".into()),
                Ok(false) => Ok("file transport, nothing to connect to".into()),
                Err(e) => Err(e.to_string()),
            },
        );
    }
    for service in &config.attendance.services {
        report(
            &format!("attendance.services.{}", service.name),
            connect_hr(service, ctx.clock.now()),
        );
    }
    let connections = (failed > 0).then(|| format!("{failed} connection check(s) failed"));
    match (in_config, connections) {
        (None, None) => {
            println!("configuration OK: {}", config.path.display());
            Ok(Exit::Ok)
        }
        (Some(a), Some(b)) => Err(fail(Exit::Config, format!("{a}; {b}"))),
        (Some(why), None) | (None, Some(why)) => Err(fail(Exit::Config, why)),
    }
}

/// What a successful `--connect` to the SMTP server at `at` (host:port)
/// established: the security in use and, when a username is configured,
/// that the server accepted it; without one nothing was authenticated.
fn smtp_greeting(smtp: &crate::config::SmtpConfig, at: &str) -> String {
    let security = security(smtp);
    match &smtp.username {
        Some(user) => format!("{at}: connected {security}, authenticated as {user}"),
        None => format!("{at}: connected {security}, no authentication configured"),
    }
}

/// How the connection is protected, as `email.smtp.security` says.
fn security(smtp: &crate::config::SmtpConfig) -> &'static str {
    match smtp.security {
        crate::config::Security::Tls => "over TLS",
        crate::config::Security::StartTls => "with STARTTLS",
        crate::config::Security::None => "without TLS",
    }
}

/// The session the checks that read the database share (the `[sources]`
/// mappings, made as the jobs make them, then the report queries): one
/// connection, on a server one session, opened only when there is
/// something to check.
enum Session {
    /// Nothing to read, or not now: why, when the report queries say it.
    Skipped(Option<String>),
    Open(crate::store::Conn),
    /// The connection or a mapping failed.
    Refused(anyhow::Error),
}

impl Session {
    /// Opens the session on `db` when a mapping or a report query is to
    /// be checked: on a server only under `--connect` (`connect`; a plain
    /// check opens no network connection), on a SQLite file once it exists
    /// (`db migrate` makes it).
    fn open(config: &crate::config::Config, db: &crate::db::Database, connect: bool) -> Session {
        let queries = !config.reports.definitions.is_empty() || config.email.is_some();
        if config.sources.is_empty() && !queries {
            return Session::Skipped(None);
        }
        let made = match db.server() {
            Some(server) if !connect => {
                return Session::Skipped(Some(format!(
                    "the database is a server ({}); `config check --connect` runs them",
                    server.shown
                )));
            }
            Some(_) => db.connect_current(),
            None if !db.path().exists() => {
                return Session::Skipped(Some(format!(
                    "{} does not exist yet (rappel db migrate creates it)",
                    db.path().display()
                )));
            }
            None => db.connect(),
        };
        match made {
            Ok(conn) => Session::Open(conn),
            Err(e) => Session::Refused(e),
        }
    }

    /// The `[sources]` mapping that does not read, named with its column
    /// (`db::sources`). A database that cannot be reached is said by
    /// `database: ...` or by the report queries' check, not here.
    fn mappings(&self, config: &crate::config::Config) -> Vec<String> {
        match self {
            // One error per mapping: each is a line of its own.
            Session::Refused(e) if !config.sources.is_empty() && of_a_mapping(e) => {
                format!("{e:#}").lines().map(str::to_string).collect()
            }
            _ => Vec::new(),
        }
    }

    /// Each report definition's query run as send-reports will run it: a
    /// missing table or column, or a query that would write, is an error
    /// now rather than a failed report later. Pending report rows whose
    /// recipients are not addresses are named as warnings. What could not
    /// be checked is said on stdout. Errors: a SQLite file that cannot be
    /// opened.
    fn report_queries(self, config: &crate::config::Config, db: &crate::db::Database) -> anyhow::Result<Vec<String>> {
        if config.reports.definitions.is_empty() && config.email.is_none() {
            return Ok(Vec::new());
        }
        let conn = match self {
            Session::Skipped(why) => {
                if let Some(why) = why {
                    println!("report queries not checked: {why}");
                }
                return Ok(Vec::new());
            }
            // A mapping that does not read: an error of its own (`mappings`).
            Session::Refused(e) if !config.sources.is_empty() && of_a_mapping(&e) => {
                println!("report queries not checked: a [sources] mapping does not read");
                return Ok(Vec::new());
            }
            // A schema not made yet: as on SQLite.
            Session::Refused(e) => match crate::db::schema_state_of(&e) {
                Some(crate::db::SchemaState::Behind) => {
                    println!("report queries not checked: {e:#}");
                    return Ok(Vec::new());
                }
                // A server that refuses us, or whose schema is newer than
                // this rappel's: said once, by `database: ...` below.
                _ if db.server().is_some() => {
                    println!("report queries not checked: the database cannot be read (see database: below)");
                    return Ok(Vec::new());
                }
                _ => return Err(e),
            },
            Session::Open(conn) => conn,
        };
        if db.server().is_none() {
            let version = crate::db::schema_version(conn.lite()?)?;
            if version > crate::db::LATEST {
                return Ok(vec![format!("{:#}", crate::db::newer_error(db.path(), version))]);
            }
            if version < crate::db::LATEST {
                println!("report queries not checked: the database needs `rappel db migrate` first");
                return Ok(Vec::new());
            }
        }
        Ok(checked_queries(config, db, &conn)?)
    }
}

/// Whether `e`, met making a session's `[sources]` views, is a mapping's
/// (which names its source, `[sources.<table>]`) rather than the
/// connection's (a password refused, a schema not made).
fn of_a_mapping(e: &anyhow::Error) -> bool {
    crate::exit::of_error(e) == Exit::Config && format!("{e:#}").contains("[sources.")
}

/// Each definition's query checked (`reports::check_query`): the errors,
/// each naming its key; pending report rows to invalid addresses warned of.
fn checked_queries(
    config: &crate::config::Config,
    db: &crate::db::Database,
    conn: &crate::store::Conn,
) -> crate::store::Result<Vec<String>> {
    let mut errors = Vec::new();
    for (name, definition) in &config.reports.definitions {
        if let Err(why) = reports::check_query(db, &definition.query, config.reports.query_timeout) {
            errors.push(format!("reports.definitions.{name}.query: {why}"));
        }
    }
    for problem in reports::invalid_recipients(conn)? {
        log::warn!("{problem}");
    }
    Ok(errors)
}

/// Warns, when `naive_timezone` is not set, of each host column whose
/// recent rows hold instants written without an offset: they are read as
/// UTC, which is wrong if the application writes local time.
fn naive_instants(config: &crate::config::Config) -> anyhow::Result<()> {
    if config.naive_timezone_set {
        return Ok(());
    }
    let db = config.db(true);
    // Read from a SQLite file only (`db::host::naive_instants`).
    if db.server().is_some() || !db.path().exists() {
        return Ok(());
    }
    // A database that does not open (a mapping that does not read) is said
    // by the checks above; this warning waits for it.
    let Ok(conn) = db.connect() else {
        return Ok(());
    };
    for (column, example) in crate::db::host::naive_instants(conn.lite()?)? {
        log::warn!(
            "{column} holds instants without a zone (e.g. {example:?}), read as UTC; if your application writes local time there, set naive_timezone (e.g. naive_timezone = {:?})",
            config.timezone.name()
        );
    }
    Ok(())
}

/// Reads the service's users list, as the next sync would, and stores nothing.
fn connect_hr(service: &crate::config::ServiceConfig, now: chrono::DateTime<chrono::Utc>) -> Result<String, String> {
    let api = HrApi::new(service).map_err(|e| format!("{e:#}"))?;
    match api.users(now) {
        Ok(None) => Ok("nothing to read without posting (no users_endpoint, or file transport)".into()),
        Ok(Some(body)) => {
            let (users, skipped) = attendance::users::parse(&body)?;
            Ok(format!(
                "connected, {} user(s) listed{}",
                users.len(),
                if skipped.is_empty() {
                    String::new()
                } else {
                    format!(", {} unreadable", skipped.len())
                }
            ))
        }
        Err(refused) => Err(refused.error.to_string()),
    }
}
