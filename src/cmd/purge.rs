//! `rappel purge --older-than 90d [--dry-run] [--vacuum] [--include-attendance]`:
//! deletes what rappel no longer needs: finished deliveries, delay-alert
//! history and job runs older than the age, and with `--include-attendance`
//! the synced attendance logs. Never a pending or sending row. Generated
//! report files (`rappel-files/` beside the database) older than the age go
//! too, unless a delivery that may still be sent attaches them.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::store::Conn as Connection;
use anyhow::Context;
use chrono::{DateTime, Utc};

use crate::channels::ping::Ping;
use crate::cli::PurgeArgs;
use crate::db::Database;
use crate::exit::{Exit, fail};
use crate::instant;
use crate::runner::Ctx;
use crate::store;

/// Younger rows may still be what stops a message going twice (the longest
/// validity of a planned message is a week).
const MIN_AGE_DAYS: i64 = 7;

pub fn run(ctx: &Ctx<'_>, args: &PurgeArgs) -> anyhow::Result<Exit> {
    if args.older_than < chrono::Duration::days(MIN_AGE_DAYS) {
        return Err(fail(
            Exit::Usage,
            format!(
                "--older-than: at least {MIN_AGE_DAYS}d; younger deliveries may still keep a message from going twice"
            ),
        ));
    }
    let cutoff = ctx.clock.now() - args.older_than;
    let ping = if args.dry_run {
        None
    } else {
        Ping::start(ctx.config, crate::domain::Run::Purge)
    };
    let db = ctx.config.db(args.dry_run);
    let result = db
        .connect_current()
        .and_then(|mut conn| purge(&mut conn, &db, cutoff, args, ctx));
    if let Some(p) = ping {
        match &result {
            Ok(()) => p.finish(Exit::Ok, None),
            Err(e) => p.finish(crate::exit::of_error(e), Some(&format!("{e:#}"))),
        }
    }
    result?;
    Ok(Exit::Ok)
}

fn purge(
    conn: &mut Connection,
    db: &Database,
    cutoff: DateTime<Utc>,
    args: &PurgeArgs,
    ctx: &Ctx<'_>,
) -> anyhow::Result<()> {
    let cutoff_text = instant::format(cutoff);
    let verb = if args.dry_run { "would delete" } else { "deleted" };
    let mut counts = store::purge::old_rows(conn, cutoff, args.include_attendance, args.dry_run)?;
    if let Some(dir) = db.files_dir() {
        counts.push(("report files", old_files(conn, &dir, cutoff, args.dry_run)?));
    }
    let vacuum = args.vacuum && !args.dry_run;
    // What the monitoring ping carries, whatever is printed.
    let deleted: Vec<String> = counts.iter().map(|(what, n)| format!("{n} {what}")).collect();
    crate::output::keep(format!("purge: {verb} {} older than {cutoff_text}", deleted.join(", ")));
    if ctx.json {
        let counts: serde_json::Map<String, serde_json::Value> = counts
            .iter()
            .map(|(what, n)| (what.replace(' ', "_"), (*n).into()))
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "job": crate::domain::Run::Purge.as_str(), "dry_run": args.dry_run, "older_than": cutoff_text,
                "deleted": counts, "vacuum": vacuum,
            })
        );
    } else if ctx.verbosity != crate::output::Verbosity::Quiet {
        for (what, n) in &counts {
            println!("{verb} {n} {what} older than {cutoff_text}");
        }
        if !args.include_attendance {
            println!("attendance logs kept (they are the host's data; --include-attendance deletes the synced ones)");
        }
    }
    // After the counts: what was deleted stays deleted if VACUUM cannot run.
    if vacuum {
        store::purge::vacuum(conn)?;
        if !ctx.json && ctx.verbosity != crate::output::Verbosity::Quiet {
            println!("vacuumed");
        }
    }
    Ok(())
}

/// Removes (or, in a dry run, counts) the generated report files in `dir`
/// last written before `cutoff` that no delivery still to be sent attaches
/// (pending or sending, or not sent and younger than the cutoff), with the
/// temporary files a killed run left. A file that cannot be removed is a
/// warning; the others go on. A missing folder is nothing to do.
fn old_files(conn: &Connection, dir: &Path, cutoff: DateTime<Utc>, dry_run: bool) -> anyhow::Result<i64> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("cannot read {}", dir.display()))),
    };
    let in_use: HashSet<PathBuf> = store::purge::attachments_in_use(conn, cutoff)?
        .into_iter()
        .map(PathBuf::from)
        .collect();
    let real_dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let cutoff = std::time::SystemTime::from(cutoff);
    let mut count = 0;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = name.starts_with("report-") || (name.starts_with(".report-") && name.ends_with(".tmp"));
        // Never follows a link: only a regular file of ours is judged.
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        if !ours || !meta.is_file() || meta.modified().is_ok_and(|m| m >= cutoff) {
            continue;
        }
        if in_use.contains(&real_dir.join(&name)) || in_use.contains(&entry.path()) {
            continue;
        }
        if !dry_run && let Err(e) = std::fs::remove_file(entry.path()) {
            log::warn!("cannot remove {}: {e}", entry.path().display());
            continue;
        }
        count += 1;
    }
    Ok(count)
}
