//! `rappel db migrate | status`.

use crate::db::{self, LATEST};
use crate::exit::Exit;
use crate::runner::Ctx;

pub fn migrate(ctx: &Ctx<'_>) -> anyhow::Result<Exit> {
    let quiet = ctx.verbosity == crate::output::Verbosity::Quiet;
    if let Some(server) = &ctx.config.postgres {
        let (before, applied) = db::postgres::migrate::migrate(server)?;
        let at = format!("{} (schema {})", server.shown, server.schema);
        if quiet {
            // -q: nothing to say when nothing went wrong (cron mails output).
        } else if applied.is_empty() {
            println!("{at}: schema {before}, up to date");
        } else {
            for name in &applied {
                println!("applied postgres/{name}");
            }
            println!("{at}: schema {before} -> {}", db::postgres::migrate::LATEST);
        }
        return Ok(Exit::Ok);
    }
    let database = ctx.config.db(false).creating();
    let mut conn = database.connect()?;
    let before = db::schema_version(conn.lite()?)?;
    if before > LATEST {
        database.connect_current()?;
    }
    let applied = database.migrate(&mut conn)?;
    // Migrated all the same: only the jobs that read such a table stop.
    for clash in db::host::clashes(conn.lite()?)? {
        log::warn!("{}", clash.line());
    }
    if quiet {
        // -q: nothing to say when nothing went wrong (cron mails output).
    } else if applied.is_empty() {
        println!("{}: schema {LATEST}, up to date", database.path().display());
    } else {
        for name in &applied {
            println!("applied {name}");
        }
        println!("{}: schema {before} -> {LATEST}", database.path().display());
    }
    Ok(Exit::Ok)
}

pub fn status(ctx: &Ctx<'_>) -> anyhow::Result<Exit> {
    if let Some(server) = &ctx.config.postgres {
        return postgres_status(server);
    }
    let database = ctx.config.db(true);
    let conn = database.connect()?;
    let version = db::schema_version(conn.lite()?)?;
    println!("database: {}", database.path().display());
    println!("schema:   {version} (this rappel: {LATEST})");
    if !ctx.config.sources.is_empty() {
        // Read from the host's own tables: never made or changed by a migration.
        let mapped: Vec<String> = ctx
            .config
            .sources
            .iter()
            .map(|s| match &s.origin {
                db::sources::Origin::Table(t) => format!("{} <- {t}", s.name),
                db::sources::Origin::Query(_) => format!("{} <- query", s.name),
            })
            .collect();
        println!("sources:  {} (`rappel sources` shows what is read)", mapped.join(", "));
    }
    if version > LATEST {
        println!("status:   newer than this rappel; upgrade rappel");
        return Ok(Exit::IoErr);
    }
    if version < LATEST {
        println!(
            "status:   {} migration(s) pending; run `rappel db migrate`",
            LATEST - version
        );
        if (1..6).contains(&version) {
            println!(
                "migrating renames rappel's tables to rappel_* (rappel_deliveries, rappel_job_runs...); \
                 their former names stay as read-only views where the name is free"
            );
        }
        if version == 0 {
            // What migrating will do to a file rappel has never touched.
            let lite = conn.lite()?;
            let missing: Vec<&str> = db::host::CONTRACT
                .iter()
                .map(|(t, _)| *t)
                .filter(|t| db::host::columns(lite, t).is_ok_and(|c| c.is_empty()))
                .collect();
            println!(
                "migrating switches the file to WAL mode (the host needs write access to its -wal and -shm files)"
            );
            println!(
                "and adds rappel's tables (rappel_deliveries, rappel_delay_alert_log, rappel_job_runs, rappel_meta...)"
            );
            if !missing.is_empty() {
                println!("and these input tables, empty: {}", missing.join(", "));
            }
        }
        let clashes = db::host::clashes(conn.lite()?)?;
        for c in &clashes {
            println!("problem:  {}", c.line());
        }
        return Ok(if clashes.is_empty() { Exit::Ok } else { Exit::IoErr });
    }
    let damage = db::damage(conn.lite()?);
    if !damage.is_empty() {
        for line in damage.iter().take(20) {
            println!("corrupt:  {line}");
        }
        println!("status:   the database is damaged (PRAGMA quick_check); restore it from a backup");
        return Ok(Exit::IoErr);
    }
    let mut problems = db::input_table_problems(conn.lite()?)?;
    problems.extend(db::host::repeated_ids(&conn)?);
    if problems.is_empty() {
        println!("status:   up to date; host tables have every column rappel reads");
        Ok(Exit::Ok)
    } else {
        for p in &problems {
            println!("problem:  {p}");
        }
        Ok(Exit::IoErr)
    }
}

/// `db status` on PostgreSQL: the server, rappel's schema and its version,
/// and the input tables' columns once it is up to date. Exit 74 when the
/// schema is newer than this rappel's, or an input table lacks a column.
fn postgres_status(server: &db::postgres::Server) -> anyhow::Result<Exit> {
    use db::postgres::migrate::{LATEST, version};
    let mut client = db::postgres::connect(server)?;
    let v = version(&mut client, &server.schema)?;
    println!("database: {}", server.shown);
    println!("schema:   {} at version {v} (this rappel: {LATEST})", server.schema);
    if v > LATEST {
        println!("status:   newer than this rappel; upgrade rappel");
        return Ok(Exit::IoErr);
    }
    if v < LATEST {
        println!(
            "status:   {} migration(s) pending; run `rappel db migrate`",
            db::postgres::migrate::pending(v)
        );
        return Ok(Exit::Ok);
    }
    // The input tables as the application may have made them: each column
    // the contract names (DESIGN §4), as on SQLite.
    let mut problems = Vec::new();
    for (table, wanted) in db::host::CONTRACT {
        let have = db::postgres::columns(&mut client, server, table)?;
        if have.is_empty() {
            problems.push(format!("table {table} is missing"));
            continue;
        }
        for column in wanted.iter().filter(|c| !have.iter().any(|h| h == *c)) {
            problems.push(
                db::host::Clash {
                    table,
                    column: (*column).to_string(),
                }
                .line(),
            );
        }
    }
    // A status column rappel cannot write text into, and the tables the
    // application made as a view or without a key on id (as they are now)
    // whose ids repeat.
    problems.extend(db::postgres::status_columns_not_text(&mut client, server)?);
    problems.extend(db::postgres::repeated_ids(client, server)?);
    if problems.is_empty() {
        println!("status:   up to date; the input tables have every column rappel reads");
        Ok(Exit::Ok)
    } else {
        for p in &problems {
            println!("problem:  {p}");
        }
        Ok(Exit::IoErr)
    }
}
