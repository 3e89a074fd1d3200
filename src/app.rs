//! The composition root: builds the configuration, clock, database, templates,
//! channels and engine once, and hands each command only what it needs.

use std::time::Instant;

use rusqlite::Connection;

use crate::channels::Channels;
use crate::channels::email::EmailChannel;
use crate::channels::ping::Ping;
use crate::cli::{Cli, Command, ConfigCommand, DbCommand};
use crate::clock::Clock;
use crate::cmd;
use crate::config::{self, Config};
use crate::db::Database;
use crate::domain::{Job, Kind, Run, RunMode};
use crate::engine::claim::{self, Scope};
use crate::engine::plan::Planned;
use crate::engine::tally::{self, Tally};
use crate::engine::{Engine, lock};
use crate::exit::{Exit, OrExit};
use crate::jobs::reports::ReportsHook;
use crate::jobs::{self, PlanCtx, PlanReport};
use crate::output::{self, Report, Verbosity};
use crate::templates::Templates;

/// What every command gets from the command line and the configuration.
pub struct Ctx<'a> {
    pub config: &'a Config,
    pub clock: Clock,
    pub verbosity: Verbosity,
    pub json: bool,
}

/// A job's planning step, given its connection and the shared planning context.
pub type Planner<'p> = &'p dyn Fn(&mut Connection, &PlanCtx<'_>) -> anyhow::Result<PlanReport>;

pub fn run(cli: Cli) -> anyhow::Result<Exit> {
    let verbosity = if cli.quiet {
        Verbosity::Quiet
    } else if cli.verbose {
        Verbosity::Verbose
    } else {
        Verbosity::Normal
    };
    output::init(verbosity);
    let clock = Clock::new(cli.now);
    match &cli.command {
        Command::Init { dir, database } => return cmd::init::run(dir, database.as_deref()),
        Command::Demo { dir, scale, no_run } => {
            return cmd::demo::run(dir, *scale, *no_run, clock, verbosity, cli.json);
        }
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut command, "rappel", &mut script);
            output::write_stdout(&script).or_exit(Exit::IoErr)?;
            return Ok(Exit::Ok);
        }
        Command::Man => {
            let page = man_page().or_exit(Exit::Software)?;
            output::write_stdout(&page).or_exit(Exit::IoErr)?;
            return Ok(Exit::Ok);
        }
        _ => {}
    }
    let config = config::load(cli.config.as_deref())?;
    output::set_json_logs(config.json_logs);
    for warning in &config.warnings {
        log::warn!("{warning}");
    }
    let ctx = Ctx {
        config: &config,
        clock,
        verbosity,
        json: cli.json,
    };
    match cli.command {
        Command::CheckDelayAlerts(args) => delay_alerts(&ctx, args.mode()),
        Command::SendReports(args) => reports(&ctx, args.mode()),
        Command::SendReminders { job, kinds } => reminders(&ctx, job.mode(), &kinds),
        Command::SyncAttendance { job, service } => cmd::sync::run(&ctx, job.mode(), service.as_deref()),
        Command::RunAll(args) => run_all(&ctx, args.mode()),
        Command::Purge(args) => cmd::purge::run(&ctx, &args),
        Command::Deliver(args) => run_job(&ctx, Run::Deliver, args.mode(), None),
        Command::Retry(args) => cmd::hand::retry(&ctx, &args),
        Command::Cancel(args) => cmd::hand::cancel(&ctx, &args),
        Command::Show { id } => cmd::show::run(&ctx, id),
        Command::Upcoming { within } => cmd::upcoming::run(&ctx, within),
        Command::Db(DbCommand::Migrate) => cmd::db::migrate(&ctx),
        Command::Db(DbCommand::Status) => cmd::db::status(&ctx),
        Command::Config(ConfigCommand::Check { connect }) => cmd::check::run(&ctx, connect),
        Command::TestEmail { to } => cmd::test_email::run(&ctx, &to),
        Command::Log(args) => cmd::log::run(&ctx, &args),
        Command::Stats(args) => cmd::stats::run(&ctx, &args),
        Command::Init { .. } | Command::Demo { .. } | Command::Completions { .. } | Command::Man => {
            unreachable!("handled above")
        }
    }
}

/// The man page, rappel(1): one page. Its commands are listed with what
/// each does and `rappel <command> --help`, not as rappel-<command>(1) pages
/// that no package installs.
fn man_page() -> std::io::Result<Vec<u8>> {
    use clap_mangen::roff::{Roff, bold, roman};
    let command = <Cli as clap::CommandFactory>::command();
    let man = clap_mangen::Man::new(command.clone());
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    let mut commands = Roff::new();
    commands.control("SH", ["COMMANDS"]);
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        commands.control("TP", []);
        commands.text([bold(format!("rappel {}", sub.get_name()))]);
        let about = sub.get_about().map(ToString::to_string).unwrap_or_default();
        commands.text([roman(format!(
            "{about}. Its options: rappel {} --help.",
            sub.get_name()
        ))]);
    }
    commands.to_writer(&mut page)?;
    man.render_version_section(&mut page)?;
    Ok(page)
}

/// A job the configuration gives nothing to send with: one notice, exit 0.
/// The crontab and timers in contrib/ run every job as copied, and a job an
/// operator does not use must not fail every quarter of an hour (exit 78).
fn unconfigured(job: Job, missing: &str) -> anyhow::Result<Exit> {
    log::warn!("{job}: {missing} in the configuration, so this job has nothing to do; it exits");
    Ok(Exit::Ok)
}

pub fn delay_alerts(ctx: &Ctx<'_>, mode: RunMode) -> anyhow::Result<Exit> {
    if ctx.config.email.is_none() {
        return unconfigured(jobs::delay_alerts::JOB, "no [email] section");
    }
    let cfg = &ctx.config.delay_alerts;
    run_job(
        ctx,
        Run::Job(jobs::delay_alerts::JOB),
        mode,
        Some(&|conn, plan_ctx| jobs::delay_alerts::plan(conn, cfg, plan_ctx)),
    )
}

pub fn reports(ctx: &Ctx<'_>, mode: RunMode) -> anyhow::Result<Exit> {
    if ctx.config.email.is_none() {
        return unconfigured(jobs::reports::JOB, "no [email] section");
    }
    let cfg = &ctx.config.reports;
    run_job(
        ctx,
        Run::Job(jobs::reports::JOB),
        mode,
        Some(&|conn, plan_ctx| jobs::reports::plan(conn, cfg, plan_ctx)),
    )
}

pub fn reminders(ctx: &Ctx<'_>, mode: RunMode, kinds: &[Kind]) -> anyhow::Result<Exit> {
    if ctx.config.email.is_none() && ctx.config.whatsapp.is_none() {
        return unconfigured(jobs::reminders::JOB, "no [email] or [whatsapp] section");
    }
    let reminders = jobs::reminders::Reminders {
        cfg: &ctx.config.reminders,
        whatsapp: ctx.config.whatsapp.as_ref(),
        kinds,
    };
    run_job(
        ctx,
        Run::Job(jobs::reminders::JOB),
        mode,
        Some(&|conn, plan_ctx| jobs::reminders::plan(conn, &reminders, plan_ctx)),
    )
}

/// Every job the configuration gives something to do, in turn, then
/// `deliver`; one job's failure never stops the next. The most serious exit wins.
pub fn run_all(ctx: &Ctx<'_>, mode: RunMode) -> anyhow::Result<Exit> {
    let config = ctx.config;
    let messages = config.email.is_some() || config.whatsapp.is_some();
    if !messages && config.attendance.services.is_empty() {
        return Err(crate::exit::fail(
            Exit::Config,
            format!(
                "{}: no [email], [whatsapp] or [attendance.services] section, so no job has anything to do",
                config.path.display()
            ),
        ));
    }
    let _lock = if mode.dry_run {
        None
    } else {
        match lock::try_lock(&config.database, Run::RunAll.as_str()).or_exit(Exit::IoErr)? {
            Some(l) => Some(l),
            None => {
                log::warn!("another run-all holds its lock; this one exits without doing anything");
                return Ok(Exit::Ok);
            }
        }
    };
    let ping = if mode.dry_run {
        None
    } else {
        Ping::start(config, Run::RunAll)
    };
    let mut exit = Exit::Ok;
    let mut step = |job: &str, result: anyhow::Result<Exit>| match result {
        Ok(e) => exit = exit.max(e),
        Err(e) => {
            log::error!("{job}: {e:#}");
            exit = exit.max(crate::exit::of_error(&e));
        }
    };
    if config.email.is_some() {
        step(jobs::delay_alerts::JOB.as_str(), delay_alerts(ctx, mode));
        step(jobs::reports::JOB.as_str(), reports(ctx, mode));
    }
    if messages {
        step(jobs::reminders::JOB.as_str(), reminders(ctx, mode, &[]));
    }
    if !config.attendance.services.is_empty() {
        step(jobs::attendance::JOB.as_str(), cmd::sync::run(ctx, mode, None));
    }
    if messages {
        // Never --force here: the jobs above already gave their rows one more try.
        let deliver = RunMode {
            dry_run: mode.dry_run,
            force: false,
        };
        step(Run::Deliver.as_str(), run_job(ctx, Run::Deliver, deliver, None));
    }
    if let Some(p) = ping {
        p.finish(exit, None);
    }
    Ok(exit)
}

/// Builds the channels the configuration describes. One that cannot be
/// built (a secret that cannot be had, a CA file that cannot be read) is
/// left out, with the reason among the errors (exit 78): the others still
/// carry their messages, and a job's messages for that channel wait.
pub fn channels(config: &Config) -> (Channels, Vec<anyhow::Error>) {
    let mut errors = Vec::new();
    let mut unavailable = Vec::new();
    let mut built = |transport: &'static str, result: anyhow::Result<_>| match result {
        Ok(channel) => Some(channel),
        Err(err) => {
            unavailable.push((transport, format!("{err:#}")));
            errors.push(err);
            None
        }
    };
    let email = config
        .email
        .as_ref()
        .and_then(|e| built("email", EmailChannel::new(e, config.delivery.redirect_to.clone())));
    let twilio = config.whatsapp.as_ref().and_then(|w| {
        crate::channels::twilio::TwilioChannel::new(w)
            .map_err(|err| {
                unavailable.push(("twilio", format!("{err:#}")));
                errors.push(err);
            })
            .ok()
    });
    (
        Channels {
            email,
            twilio,
            unavailable,
        },
        errors,
    )
}

/// Runs one job: lock, migrate, plan, deliver, record the run, report.
/// `planner` is `None` for `deliver`, which sends every job's due rows.
pub fn run_job(ctx: &Ctx<'_>, run: Run, mode: RunMode, planner: Option<Planner<'_>>) -> anyhow::Result<Exit> {
    let started = Instant::now();
    output::set_job(run.as_str());
    let scope = Scope {
        job: run.job(),
        force: mode.force,
    };
    if mode.dry_run {
        return dry_run_job(ctx, run, &scope, planner, started);
    }
    let Some(_lock) = lock::try_lock(&ctx.config.database, run.as_str()).or_exit(Exit::IoErr)? else {
        log::warn!("another {run} run holds its lock; this one exits without doing anything");
        return Ok(Exit::Ok);
    };
    let db = Database::new(ctx.config.database.clone(), false);
    let Started { conn, run_id, ping } = begin_run(ctx, run, &db)?;
    let mut report = PlanReport::default();
    let result = job_body(ctx, run, &db, &scope, planner, &mut report, run_id);
    let (tally, error) = match &result {
        Ok(t) => (*t, None),
        Err(e) => {
            let mut t = Tally::default();
            t.raise(crate::exit::of_error(e));
            (t, Some(format!("{e:#}")))
        }
    };
    let finished = ctx.clock.now() + chrono::Duration::from_std(started.elapsed()).unwrap_or_default();
    if let Err(e) = tally::finish_run(&conn, run_id, finished, &tally, error.as_deref()) {
        log::error!("cannot record the end of this run in job_runs: {e}");
    }
    let reports = report_counts(run, &conn, &report.report_rows);
    // A run that stopped says so in --json too (the error itself goes to stderr).
    if result.is_ok() || ctx.json {
        output::print_report(
            &Report {
                job: run.as_str(),
                dry_run: false,
                tally,
                duration: started.elapsed(),
                messages: &[],
                retries: &[],
                skipped: &report.skipped,
                failures: &report.failures,
                error: error.as_deref(),
                reports,
            },
            ctx.verbosity,
            ctx.json,
        );
    }
    // After the summary, so the ping carries it.
    if let Some(p) = ping {
        p.finish(tally.exit, error.as_deref());
    }
    result?;
    Ok(tally.exit)
}

/// A run under way: its connection, `job_runs` row and monitoring ping.
pub struct Started {
    pub conn: Connection,
    pub run_id: i64,
    pub ping: Option<Ping>,
}

/// Pings the start, opens the database (migrating it) and opens the run's
/// `job_runs` row; a failure on the way still ends the ping with its code.
pub fn begin_run(ctx: &Ctx<'_>, run: Run, db: &Database) -> anyhow::Result<Started> {
    let ping = Ping::start(ctx.config, run);
    let opened = db.connect_current().and_then(|conn| {
        let run_id = tally::start_run(&conn, run.as_str(), ctx.clock.now())?;
        Ok((conn, run_id))
    });
    match opened {
        Ok((conn, run_id)) => Ok(Started { conn, run_id, ping }),
        Err(e) => {
            if let Some(p) = ping {
                p.finish(crate::exit::of_error(&e), Some(&format!("{e:#}")));
            }
            Err(e)
        }
    }
}

fn job_body(
    ctx: &Ctx<'_>,
    run: Run,
    db: &Database,
    scope: &Scope,
    planner: Option<Planner<'_>>,
    report: &mut PlanReport,
    run_id: i64,
) -> anyhow::Result<Tally> {
    // A transport that cannot be built matters only to the messages due on
    // it: the engine says why when there are some (exit 78).
    let (channels, _) = channels(ctx.config);
    let mut tally = Tally::default();
    // Built once: planning renders with them, and the engine's recheck
    // renders a retry again with the source as it is now.
    let templates = Templates::new(ctx.config.templates_dir.clone()).or_exit(Exit::Config)?;
    if let Some(plan) = planner {
        let mut conn = db.connect()?;
        // A host table without a column this job reads stops this job only.
        crate::db::host::check_for(&conn, run.as_str())?;
        let started = Instant::now();
        *report = plan(&mut conn, &plan_ctx(ctx, &templates, db, false, scope.force))?;
        log::info!(
            "{run}: planned {} message(s) in {} ms",
            report.planned,
            started.elapsed().as_millis()
        );
        count_plan(&mut tally, report);
    }
    let reports_hook = ReportsHook::new(&ctx.config.reports, ctx.config.timezone, ctx.config.naive_timezone);
    let manual_hook = jobs::reminders::ManualHook;
    let reminders_recheck = jobs::reminders::RemindersRecheck {
        cfg: &ctx.config.reminders,
        phone_region: ctx.config.whatsapp.as_ref().and_then(|w| w.default_region),
        zone: ctx.config.timezone,
        naive_zone: ctx.config.naive_timezone,
        locale: ctx.config.locale,
        db,
        templates: &templates,
    };
    let reports_recheck = jobs::reports::ReportsRecheck::default();
    let alerts_recheck = jobs::delay_alerts::DelayAlertsRecheck {
        cfg: &ctx.config.delay_alerts,
    };
    let engine = Engine {
        db,
        clock: ctx.clock,
        delivery: &ctx.config.delivery,
        channels: &channels,
        hooks: &[&reports_hook, &manual_hook],
        rechecks: &[&reminders_recheck, &alerts_recheck, &reports_recheck],
        run_id: format!("{run}:{}:{run_id}", std::process::id()),
    };
    let delivered = engine.deliver(scope);
    report.report_rows.extend(reports_hook.touched());
    tally.merge(delivered?);
    Ok(tally)
}

fn dry_run_job(
    ctx: &Ctx<'_>,
    run: Run,
    scope: &Scope,
    planner: Option<Planner<'_>>,
    started: Instant,
) -> anyhow::Result<Exit> {
    let db = Database::new(ctx.config.database.clone(), true);
    let mut conn = db.connect_current()?;
    let mut tally = Tally::default();
    let mut report = PlanReport::default();
    if let Some(plan) = planner {
        crate::db::host::check_for(&conn, run.as_str())?;
        let templates = Templates::new(ctx.config.templates_dir.clone()).or_exit(Exit::Config)?;
        report = plan(&mut conn, &plan_ctx(ctx, &templates, &db, true, scope.force))?;
        count_plan(&mut tally, &report);
    }
    let retries: Vec<Planned> = claim::preview(&conn, scope, ctx.clock.now())?
        .into_iter()
        .map(|p| Planned {
            job: p.job,
            kind: p.kind,
            dedupe_key: String::new(),
            source_table: None,
            source_id: None,
            source_at: None,
            contact_id: None,
            channel: p.channel,
            recipient: p.recipient,
            subject: p.subject,
            body: String::new(),
            html: None,
            valid_until: None,
            attachment: None,
            failed: None,
            payload: None,
            detail: if p.attempts > 0 {
                vec![format!("attempt {}", p.attempts + 1)]
            } else {
                vec![]
            },
            due_at: None,
        })
        .collect();
    tally.counts.planned += retries.len() as u64;
    output::print_report(
        &Report {
            job: run.as_str(),
            dry_run: true,
            tally,
            duration: started.elapsed(),
            messages: &report.messages,
            retries: &retries,
            skipped: &report.skipped,
            failures: &report.failures,
            error: None,
            reports: (run == Run::Job(Job::SendReports)).then(|| jobs::reports::ReportCounts {
                reports: report
                    .report_rows
                    .iter()
                    .collect::<std::collections::BTreeSet<_>>()
                    .len() as u64,
                ..Default::default()
            }),
        },
        ctx.verbosity,
        ctx.json,
    );
    Ok(tally.exit)
}

/// send-reports' reports, each once, by the state of its row after the run;
/// `None` for other jobs, or when the rows cannot be read (said in a warning:
/// the message counts still stand).
fn report_counts(run: Run, conn: &Connection, rows: &[(i64, String)]) -> Option<jobs::reports::ReportCounts> {
    if run != Run::Job(Job::SendReports) {
        return None;
    }
    jobs::reports::count(conn, rows)
        .inspect_err(|e| log::warn!("cannot count this run's reports: {e}"))
        .ok()
}

/// Planning's counts: planned, skipped, failed with a reason, unreadable rows.
fn count_plan(tally: &mut Tally, report: &PlanReport) {
    tally.counts.planned += report.planned;
    tally.counts.skipped += report.skipped.len() as u64;
    tally.counts.failed += (report.failures.len() + report.template_errors.len()) as u64;
    if !report.template_errors.is_empty() {
        tally.raise(Exit::Config);
    }
    if report.data_errors > 0 || !report.failures.is_empty() {
        tally.raise(Exit::DataErr);
    }
}

pub(crate) fn plan_ctx<'a>(
    ctx: &'a Ctx<'_>,
    templates: &'a Templates,
    db: &'a Database,
    dry_run: bool,
    force: bool,
) -> PlanCtx<'a> {
    PlanCtx {
        now: ctx.clock.now(),
        zone: ctx.config.timezone,
        naive_zone: ctx.config.naive_timezone,
        locale: ctx.config.locale,
        phone_region: ctx.config.whatsapp.as_ref().and_then(|w| w.default_region),
        site_url: ctx.config.site_url.as_deref(),
        templates,
        db,
        dry_run,
        force,
    }
}
