//! `rappel sync-attendance [--service NAME]`: one lock per service (a service
//! whose lock another run holds is left to it), expired claims returned,
//! then each service synced in turn; one `rappel_job_runs` row and one summary.

use std::time::Instant;

use super::{Ctx, Started};
use crate::channels::http::HrApi;
use crate::config::ServiceConfig;
use crate::domain::tally::Tally;
use crate::domain::{Run, RunMode};
use crate::engine::lock;
use crate::exit::{Exit, fail};
use crate::jobs::attendance::{self, JOB, Sync};
use crate::output::{self, Report};
use crate::store::Conn;
use crate::store::attendance::{Rows, Terminal, ledger, rows};

pub fn run(ctx: &Ctx<'_>, mode: RunMode, only: Option<&str>) -> anyhow::Result<Exit> {
    let RunMode { dry_run, force } = mode;
    let started = Instant::now();
    crate::output::set_job(JOB.as_str());
    let cfg = &ctx.config.attendance;
    if cfg.services.is_empty() {
        log::warn!(
            "{JOB}: no [attendance.services.NAME] section in {}, so this job has nothing to do; it exits",
            ctx.config.path.display()
        );
        return Ok(Exit::Ok);
    }
    let chosen: Vec<(usize, &ServiceConfig)> = cfg
        .services
        .iter()
        .enumerate()
        .filter(|(_, s)| only.is_none_or(|o| o == s.name))
        .collect();
    if chosen.is_empty() {
        let names: Vec<&str> = cfg.services.iter().map(|s| s.name.as_str()).collect();
        return Err(fail(
            Exit::Usage,
            format!(
                "--service {}: no such service (configured: {})",
                only.unwrap_or_default(),
                names.join(", ")
            ),
        ));
    }
    let mut sync = Sync {
        clock: ctx.clock,
        max_attempts: cfg.max_attempts,
        retry_base: ctx.config.delivery.retry_base,
        retry_cap: ctx.config.delivery.retry_cap,
        lease: ctx.config.delivery.lease,
        force,
        started,
        naive_zone: ctx.config.naive_timezone,
        rows: Rows::Table,
    };
    if dry_run {
        let db = ctx.config.db(true);
        let conn = db.connect_current()?;
        crate::db::host::check_for(&conn, JOB.as_str())?;
        // Read-only: a mapped attendance_logs is read whole, nothing taken in.
        sync.rows = Rows::of(&conn, false)?;
        let (terminals, unknown) = attendance::terminals(&conn, &cfg.services)?;
        warn_unknown(&conn, sync.rows, &terminals, &unknown)?;
        let mut tally = Tally::default();
        if crate::db::sources::warn_left_out(&conn, JOB.as_str())? > 0 {
            tally.raise(Exit::DataErr);
        }
        // With --json, stdout carries the summary alone.
        let mut out: Box<dyn std::io::Write> = if ctx.json {
            Box::new(std::io::sink())
        } else {
            Box::new(std::io::stdout().lock())
        };
        for (i, service) in chosen {
            // A dry run sends nothing: it needs no secret.
            let api = HrApi::offline(service);
            let t = attendance::dry_run(&conn, &sync, service, &terminals[i], &api, &mut out)?;
            tally.merge(t);
        }
        drop(out);
        report(ctx, true, tally, started, None);
        return Ok(tally.exit);
    }

    let mut locked = Vec::new();
    for (i, service) in chosen {
        match lock::try_lock(&ctx.config.db(false), &format!("{JOB}.{}", service.name))? {
            Some(l) => locked.push((i, service, l)),
            None => log::warn!(
                "another {JOB} run holds the lock of service {}; this run leaves it alone",
                service.name
            ),
        }
    }
    if locked.is_empty() {
        return Ok(Exit::Ok);
    }
    let db = ctx.config.db(false);
    let Started { mut conn, run_id, ping } = super::begin_run(ctx, Run::Job(JOB), &db, None)?;
    let mut tally = Tally::default();
    let result = (|| -> anyhow::Result<()> {
        crate::db::host::check_for(&conn, JOB.as_str())?;
        // Rows the mapping cannot use: said on every run (exit 65).
        if crate::db::sources::warn_left_out(&conn, JOB.as_str())? > 0 {
            tally.raise(Exit::DataErr);
        }
        sync.rows = Rows::of(&conn, true)?;
        let taken = rows::take_in(&mut conn, sync.rows)?;
        if taken > 0 {
            log::info!("{taken} new punch(es) of the mapped attendance_logs taken into rappel_punch_state");
        }
        let reclaimed = ledger::reclaim_expired(&conn, sync.rows, ctx.clock.wall())?;
        if reclaimed > 0 {
            log::warn!("{reclaimed} log(s) claimed by a run that stopped are pending again");
        }
        let (terminals, unknown) = attendance::terminals(&conn, &cfg.services)?;
        warn_unknown(&conn, sync.rows, &terminals, &unknown)?;
        for (i, service, _lock) in &locked {
            // A service that cannot be used as configured stops alone.
            let api = match HrApi::new(service) {
                Ok(api) => api,
                Err(e) => {
                    log::error!("{e:#}");
                    tally.raise(crate::exit::of_error(&e));
                    continue;
                }
            };
            attendance::sync_service(&mut conn, &sync, service, &terminals[*i], &api, &mut tally)?;
        }
        Ok(())
    })();
    let error = result.as_ref().err().map(|e| {
        tally.raise(crate::exit::of_error(e));
        format!("{e:#}")
    });
    let finished = ctx.clock.now() + chrono::Duration::from_std(started.elapsed()).unwrap_or_default();
    if let Err(e) = crate::store::runs::finish(&conn, run_id, finished, &tally, error.as_deref()) {
        log::error!("cannot record the end of this run in rappel_job_runs: {e}");
    }
    crate::metrics::after_run(ctx.config, &conn, ctx.clock.now());
    if result.is_ok() || ctx.json {
        report(ctx, false, tally, started, error.as_deref());
    }
    // After the summary, so the ping carries it.
    if let Some(p) = ping {
        p.finish(tally.exit, error.as_deref());
    }
    result?;
    Ok(tally.exit)
}

/// Says which configured serials have no terminal yet (-v), and warns of
/// pending punches on terminals no service takes: they would never be sent.
fn warn_unknown(conn: &Conn, rows: Rows, terminals: &[Vec<Terminal>], unknown: &[String]) -> anyhow::Result<()> {
    for serial in unknown {
        log::info!("terminal {serial:?} is named in [attendance.services] but not in the terminals table yet");
    }
    let owned: Vec<i64> = terminals.iter().flatten().map(|t| t.id).collect();
    let stray = ledger::unowned_pending(conn, rows, &owned)?;
    let (known, missing): (Vec<_>, Vec<_>) = stray.iter().partition(|u| u.serial.is_some());
    if !known.is_empty() {
        let list: Vec<String> = known
            .iter()
            .map(|u| format!("{} ({})", u.serial.as_deref().unwrap_or_default(), u.pending))
            .collect();
        log::warn!(
            "pending punches of terminals no [attendance.services] entry takes, never sent until one does \
             (add them to a service's terminals, or leave one service's terminals empty): {}",
            list.join(", ")
        );
    }
    if !missing.is_empty() {
        let list: Vec<String> = missing
            .iter()
            .map(|u| format!("terminal_id {} ({})", u.terminal_id, u.pending))
            .collect();
        log::warn!(
            "pending punches under terminal ids the terminals table does not have, never sent until it has \
             them: {}",
            list.join(", ")
        );
    }
    Ok(())
}

fn report(ctx: &Ctx<'_>, dry_run: bool, tally: Tally, started: Instant, error: Option<&str>) {
    output::print_report(
        &Report {
            job: JOB.as_str(),
            dry_run,
            tally,
            duration: started.elapsed(),
            messages: &[],
            retries: &[],
            skipped: &[],
            failures: &[],
            error,
            reports: None,
        },
        ctx.verbosity,
        ctx.json,
    );
}
