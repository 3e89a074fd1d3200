//! Running a job: its lock, its `rappel_job_runs` row, its monitoring ping,
//! planning (or a dry run), delivery, the summary and the exit code. Every
//! job, `deliver`, `run-all` and `test-email` go through `run_job`;
//! sync-attendance (`runner::attendance`) uses its pieces.

pub mod attendance;

use std::cell::OnceCell;
use std::time::Instant;

use crate::store::Conn as Connection;

use crate::channels::Channels;
use crate::channels::ping::Ping;
use crate::clock::Clock;
use crate::config::Config;
use crate::db::Database;
use crate::domain::planned::Planned;
use crate::domain::tally::Tally;
use crate::domain::{Job, Kind, Run, RunMode};
use crate::engine::{Engine, lock};
use crate::exit::{Exit, OrExit};
use crate::jobs::reports::ReportsHook;
use crate::jobs::{self, PlanCtx, PlanReport};
use crate::output::{self, Report, Verbosity};
use crate::store::claims::{self as claim, Scope};
use crate::templates::Templates;

/// What every command gets from the command line and the configuration,
/// with the templates and channels built once, when first asked for.
pub struct Ctx<'a> {
    pub config: &'a Config,
    pub clock: Clock,
    pub verbosity: Verbosity,
    pub json: bool,
    templates: OnceCell<Templates>,
    channels: OnceCell<(Channels, Vec<anyhow::Error>)>,
}

impl<'a> Ctx<'a> {
    pub fn new(config: &'a Config, clock: Clock, verbosity: Verbosity, json: bool) -> Self {
        Ctx {
            config,
            clock,
            verbosity,
            json,
            templates: OnceCell::new(),
            channels: OnceCell::new(),
        }
    }

    /// The built-in templates with `templates_dir`'s overrides, built on
    /// first use. Errors: an override folder that cannot be read (exit 78).
    pub fn templates(&self) -> anyhow::Result<&Templates> {
        if let Some(t) = self.templates.get() {
            return Ok(t);
        }
        let built = Templates::new(self.config.templates_dir.clone()).or_exit(Exit::Config)?;
        Ok(self.templates.get_or_init(|| built))
    }

    /// The channels the configuration describes (`Channels::build`), built
    /// on first use, with why each that could not be built was left out.
    pub fn channels(&self) -> (&Channels, &[anyhow::Error]) {
        let (channels, errors) = self.channels.get_or_init(|| Channels::build(self.config));
        (channels, errors)
    }
}

/// A job's planning step, given its connection and the shared planning context.
pub type Planner<'p> = &'p dyn Fn(&mut Connection, &PlanCtx<'_>) -> anyhow::Result<PlanReport>;

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
        match lock::try_lock(&config.db(false), Run::RunAll.as_str())? {
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
        step(jobs::attendance::JOB.as_str(), attendance::run(ctx, mode, None));
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
    let Some(mut lock) = lock::try_lock(&ctx.config.db(false), run.as_str())? else {
        log::warn!("another {run} run holds its lock; this one exits without doing anything");
        return Ok(Exit::Ok);
    };
    let db = ctx.config.db(false);
    // On a server, the session holding the lock is the run's connection.
    let Started { mut conn, run_id, ping } = begin_run(ctx, run, &db, lock.take_session())?;
    let mut report = PlanReport::default();
    let result = job_body(ctx, run, &db, &mut conn, &scope, planner, &mut report, run_id);
    let (tally, error) = match &result {
        Ok(t) => (*t, None),
        Err(e) => {
            let mut t = Tally::default();
            t.raise(crate::exit::of_error(e));
            (t, Some(format!("{e:#}")))
        }
    };
    let finished = ctx.clock.now() + chrono::Duration::from_std(started.elapsed()).unwrap_or_default();
    // A run whose end cannot be written says so in its exit too: `stats`
    // and a monitor reading rappel_job_runs would see it as still running.
    let mut recorded = Exit::Ok;
    if let Err(e) = crate::store::runs::finish(&conn, run_id, finished, &tally, error.as_deref()) {
        log::error!("cannot record the end of this run in rappel_job_runs: {e}");
        recorded = Exit::IoErr;
    }
    crate::metrics::after_run(ctx.config, &conn, ctx.clock.now());
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
    Ok(tally.exit.max(recorded))
}

/// A run under way: its connection, `rappel_job_runs` row and monitoring ping.
pub struct Started {
    pub conn: Connection,
    pub run_id: i64,
    pub ping: Option<Ping>,
}

/// Pings the start, opens the database (migrating it) and opens the run's
/// `rappel_job_runs` row; a failure on the way still ends the ping with its code.
pub fn begin_run(ctx: &Ctx<'_>, run: Run, db: &Database, session: Option<postgres::Client>) -> anyhow::Result<Started> {
    let ping = Ping::start(ctx.config, run);
    let opened = db.connect_current_on(session).and_then(|conn| {
        let run_id = crate::store::runs::start(&conn, run.as_str(), ctx.clock.now())?;
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

/// Plans (`planner`) then delivers on `conn`, the run's connection: on
/// PostgreSQL each connection opened is a server process started and a
/// handshake, several milliseconds of a run with nothing to do.
#[allow(clippy::too_many_arguments, reason = "the run's parts, each used once")]
fn job_body(
    ctx: &Ctx<'_>,
    run: Run,
    db: &Database,
    conn: &mut Connection,
    scope: &Scope,
    planner: Option<Planner<'_>>,
    report: &mut PlanReport,
    run_id: i64,
) -> anyhow::Result<Tally> {
    // A transport that cannot be built matters only to the messages due on
    // it: the engine says why when there are some (exit 78).
    let (channels, _) = ctx.channels();
    let mut tally = Tally::default();
    // Planning renders with them, and the engine's recheck renders a retry
    // again with the source as it is now.
    let templates = ctx.templates()?;
    if let Some(plan) = planner {
        // A host table without a column this job reads stops this job only.
        crate::db::host::check_for(conn, run.as_str())?;
        let started = Instant::now();
        *report = plan(conn, &plan_ctx(ctx, templates, db, false, scope.force)).map_err(|e| {
            // SQLite's message alone does not say which mapping failed on a row.
            if ctx.config.sources.is_empty() || !e.chain().any(crate::store::is_store_error) {
                e
            } else {
                e.context("reading the sources failed (`rappel sources` names a [sources] mapping that fails on a row)")
            }
        })?;
        // Rows the mapping cannot use: said on every run, as an unreadable
        // row of a contract table is (exit 65).
        report.data_errors += crate::db::sources::warn_left_out(conn, run.as_str())?;
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
        templates,
    };
    let reports_recheck = jobs::reports::ReportsRecheck::default();
    let alerts_recheck = jobs::delay_alerts::DelayAlertsRecheck {
        cfg: &ctx.config.delay_alerts,
    };
    let engine = Engine {
        db,
        clock: ctx.clock,
        delivery: &ctx.config.delivery,
        channels,
        hooks: &[&reports_hook, &manual_hook],
        rechecks: &[&reminders_recheck, &alerts_recheck, &reports_recheck],
        run_id: format!("{run}:{}:{run_id}", std::process::id()),
        zone: ctx.config.timezone,
    };
    let delivered = engine.deliver(scope, conn);
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
    let db = ctx.config.db(true);
    let mut conn = db.connect_current()?;
    let mut tally = Tally::default();
    let mut report = PlanReport::default();
    if let Some(plan) = planner {
        crate::db::host::check_for(&conn, run.as_str())?;
        report = plan(&mut conn, &plan_ctx(ctx, ctx.templates()?, &db, true, scope.force))?;
        report.data_errors += crate::db::sources::warn_left_out(&conn, run.as_str())?;
        count_plan(&mut tally, &report);
    }
    let preview = claim::preview(&conn, scope, ctx.clock.now())?;
    let retry_contacts: Vec<Option<i64>> = preview.iter().map(|p| p.contact_id).collect();
    let mut retries: Vec<Planned> = preview
        .into_iter()
        .map(|p| Planned {
            detail: if p.attempts > 0 {
                vec![format!("attempt {}", p.attempts + 1)]
            } else {
                vec![]
            },
            ..Planned::new(
                p.job,
                p.kind,
                String::new(),
                p.channel,
                p.recipient,
                p.subject,
                String::new(),
            )
        })
        .collect();
    tally.counts.planned += retries.len() as u64;
    // What quiet hours or a send window would hold, as the real run would.
    let policy = &ctx.config.delivery.send;
    if !policy.is_open() {
        let now = ctx.clock.now();
        let contacts: Vec<Option<i64>> = report
            .messages
            .iter()
            .map(|m| m.contact_id)
            .chain(retry_contacts)
            .collect();
        for (m, contact) in report.messages.iter_mut().chain(retries.iter_mut()).zip(contacts) {
            let hold = policy.hold_for(&conn, m.kind.as_str(), contact, ctx.config.timezone)?;
            m.held_until = hold.and_then(|h| h.until(now));
        }
    }
    // Counted as the real run counts them.
    tally.counts.held += report
        .messages
        .iter()
        .chain(retries.iter())
        .filter(|m| m.held_until.is_some())
        .count() as u64;
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
            reports: (run == Run::Job(Job::SendReports))
                .then(|| jobs::reports::ReportCounts::of_rows(&report.report_rows)),
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
