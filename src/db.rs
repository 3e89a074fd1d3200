//! The database: opening it (WAL, busy timeout, foreign keys), its numbered
//! migrations from `sql/`, and the schema checks. The only place that opens a
//! `Connection`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use crate::exit::{Exit, OrExit, fail};

/// How long a statement waits for another writer before giving up (exit 74).
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

pub mod host;
pub mod identity;
pub mod loose;
pub mod sources;

struct Migration {
    version: u32,
    name: &'static str,
    sql: &'static str,
    /// Work SQL alone cannot do (parsing host instants), in the same transaction.
    then: Option<fn(&rusqlite::Transaction<'_>) -> rusqlite::Result<()>>,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_initial.sql",
        sql: include_str!("../sql/0001_initial.sql"),
        then: None,
    },
    Migration {
        version: 2,
        name: "0002_reports.sql",
        sql: include_str!("../sql/0002_reports.sql"),
        then: None,
    },
    Migration {
        version: 3,
        name: "0003_sessions.sql",
        sql: include_str!("../sql/0003_sessions.sql"),
        then: None,
    },
    Migration {
        version: 4,
        name: "0004_attendance.sql",
        sql: include_str!("../sql/0004_attendance.sql"),
        then: None,
    },
    Migration {
        version: 5,
        name: "0005_row_identity.sql",
        sql: include_str!("../sql/0005_row_identity.sql"),
        then: Some(identity::backfill),
    },
];

/// The schema version this binary writes.
pub const LATEST: u32 = 5;

/// Where the database is and how it may be used.
#[derive(Clone, Debug)]
pub struct Database {
    path: PathBuf,
    read_only: bool,
    /// Whether a missing file is created: only `init`, `demo` and `db
    /// migrate` do; a job never makes an empty database and reports nothing.
    create: bool,
    /// `[sources]`: mapped on each connection as TEMP views.
    sources: std::sync::Arc<Vec<sources::Source>>,
}

impl Database {
    pub fn new(path: PathBuf, read_only: bool) -> Self {
        Database {
            path,
            read_only,
            create: false,
            sources: std::sync::Arc::default(),
        }
    }

    /// The same database, its sources included, opened read-only.
    pub fn reading(&self) -> Self {
        Database {
            read_only: true,
            create: false,
            ..self.clone()
        }
    }

    /// The same database with `sources` read from the host's tables.
    pub fn with_sources(self, sources: Vec<sources::Source>) -> Self {
        Database {
            sources: std::sync::Arc::new(sources),
            ..self
        }
    }

    /// The same database, created when it does not exist (read-write only).
    pub fn creating(self) -> Self {
        Database { create: true, ..self }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// The folder generated report files (CSV) are written to:
    /// `rappel-files/` beside the database. `purge` removes old ones.
    pub fn files_dir(&self) -> Option<PathBuf> {
        self.path.parent().map(|d| d.join("rappel-files"))
    }

    /// Opens a connection. Read-only (dry runs) never creates the file and sets
    /// `PRAGMA query_only`; read-write creates it and switches it to WAL.
    /// A `[sources]` mapping that does not read (a missing table or
    /// column, an expression or query that does not compile) is a
    /// configuration error (exit 78) naming the source.
    pub fn connect(&self) -> anyhow::Result<Connection> {
        let conn = self
            .connect_inner()
            .with_context(|| format!("cannot open database {}", self.path.display()))
            .or_exit(Exit::IoErr)?;
        sources::create_views(&conn, &self.sources).or_exit(Exit::Config)?;
        if self.read_only {
            conn.pragma_update(None, "query_only", "ON").or_exit(Exit::IoErr)?;
        }
        Ok(conn)
    }

    fn connect_inner(&self) -> anyhow::Result<Connection> {
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if self.create && !self.read_only {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        } else if !self.path.exists() {
            anyhow::bail!(
                "it does not exist: check `database` in the configuration (relative paths are \
                 relative to the configuration file), or create it with `rappel db migrate`"
            );
        }
        #[allow(clippy::disallowed_methods, reason = "db.rs is where connections are opened")]
        let mut conn = Connection::open_with_flags(&self.path, flags)?;
        conn.busy_handler(Some(wait_for_writer))?;
        // A delivery worker cycles through some thirty statements (claim,
        // the last look at each kind of source, each outcome): kept all
        // prepared rather than parsed again for every message.
        conn.set_prepared_statement_cache_capacity(64);
        // A cached statement keeps its plan whatever values are bound
        // (SQLite's query planner stability guarantee). Without it, a
        // parameter compared to an indexed column makes every new binding
        // parse the statement again: the last look at a loan before each
        // send spent a third of its time in SQLite's parser.
        conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        if !self.read_only {
            let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                anyhow::bail!("could not switch to WAL mode (got {mode}); is it on a network file system?");
            }
            conn.pragma_update(None, "synchronous", "NORMAL")?;
        }
        // Touch the schema so that a file that is not a database fails here.
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0))?;
        Ok(conn)
    }

    /// Opens a connection whose schema is current: applies pending migrations
    /// (read-write) or refuses them (read-only), and refuses a newer schema.
    pub fn connect_current(&self) -> anyhow::Result<Connection> {
        let mut conn = self.connect()?;
        let version = schema_version(&conn)?;
        if version > LATEST {
            return Err(newer_error(&self.path, version));
        }
        if version < LATEST {
            if self.read_only {
                return Err(fail(
                    Exit::IoErr,
                    format!(
                        "database {} needs migrations (schema {version}, this rappel needs {LATEST}); run `rappel db migrate`",
                        self.path.display()
                    ),
                ));
            }
            migrate(&mut conn)?;
        }
        Ok(conn)
    }
}

fn newer_error(path: &Path, version: u32) -> anyhow::Error {
    fail(
        Exit::IoErr,
        format!(
            "database {} has schema {version}, newer than this rappel understands ({LATEST}); upgrade rappel",
            path.display()
        ),
    )
}

/// The schema version recorded in `rappel_meta` (0 for a fresh database).
pub fn schema_version(conn: &Connection) -> anyhow::Result<u32> {
    let has_meta: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'rappel_meta')",
        [],
        |r| r.get(0),
    )?;
    if !has_meta {
        return Ok(0);
    }
    let v: Option<String> = conn
        .query_row("SELECT value FROM rappel_meta WHERE key = 'schema_version'", [], |r| {
            r.get(0)
        })
        .optional()?;
    match v {
        None => Ok(0),
        Some(v) => v.parse().map_err(|_| {
            fail(
                Exit::IoErr,
                format!("rappel_meta.schema_version is {v:?}, not a number"),
            )
        }),
    }
}

/// Applies pending migrations, each inside `BEGIN IMMEDIATE`; returns their names.
pub fn migrate(conn: &mut Connection) -> anyhow::Result<Vec<&'static str>> {
    let mut applied = Vec::new();
    for m in MIGRATIONS {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch("CREATE TABLE IF NOT EXISTS rappel_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")?;
        // Re-read under the write lock: another process may have migrated meanwhile.
        let current = schema_version(&tx)?;
        if current > LATEST {
            return Err(newer_error(Path::new(tx.path().unwrap_or("?")), current));
        }
        if current >= m.version {
            continue;
        }
        // A source mapped onto the host's own tables is never created,
        // altered or indexed: the statements on its contract table are left out.
        let mapped = sources::mapped(&tx)?;
        let sql = if mapped.is_empty() {
            m.sql.to_string()
        } else {
            sources::statements(m.sql)
                .into_iter()
                .filter(|s| sources::target(s).is_none_or(|t| !mapped.iter().any(|m| m.eq_ignore_ascii_case(&t))))
                .map(|s| s + ";\n")
                .collect()
        };
        tx.execute_batch(&sql)
            .with_context(|| format!("migration {} failed", m.name))
            .or_exit(Exit::IoErr)?;
        if let Some(then) = m.then {
            then(&tx)
                .with_context(|| format!("migration {} failed", m.name))
                .or_exit(Exit::IoErr)?;
        }
        tx.execute(
            "INSERT INTO rappel_meta (key, value) VALUES ('schema_version', ?1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [m.version.to_string()],
        )?;
        tx.commit()?;
        applied.push(m.name);
    }
    // The indexes on input tables, where the host's tables have the columns.
    let clashes = host::clashes(conn)?;
    host::ensure_indexes(conn, &clashes)?;
    Ok(applied)
}

/// Problems with the host's input tables: a missing table, or one that
/// exists without a column rappel reads (naming the jobs it stops).
pub fn input_table_problems(conn: &Connection) -> anyhow::Result<Vec<String>> {
    let mut problems = Vec::new();
    for (table, _) in host::CONTRACT {
        if host::columns(conn, table)?.is_empty() {
            problems.push(format!("table {table} is missing"));
        }
    }
    problems.extend(host::clashes(conn)?.iter().map(host::Clash::line));
    Ok(problems)
}

/// SQLite's busy handler: polls every millisecond for [`BUSY_TIMEOUT`] in
/// all. SQLite's own backoff sleeps up to 100 ms at a time, and a host that
/// holds write transactions back to back, with gaps of a millisecond or two
/// between them, kept a run waiting through every gap until it gave up
/// (exit 74); polling this often takes the lock in the first gap.
fn wait_for_writer(tries: i32) -> bool {
    let waited = Duration::from_millis(u64::try_from(tries).unwrap_or(0));
    if waited >= BUSY_TIMEOUT {
        return false;
    }
    std::thread::sleep(Duration::from_millis(1));
    true
}

/// What `PRAGMA quick_check` finds wrong with the file's structure (pages,
/// indexes' ordering), without the slow cross-check of every index against
/// its table: its lines other than `ok`. A file too damaged for the check to
/// run is damaged too: the error is the one line.
pub fn damage(conn: &Connection) -> Vec<String> {
    let checked: rusqlite::Result<Vec<String>> = conn
        .prepare("PRAGMA quick_check")
        .and_then(|mut stmt| stmt.query_map([], |r| r.get::<_, String>(0))?.collect());
    match checked {
        Ok(lines) => lines.into_iter().filter(|line| line != "ok").collect(),
        Err(e) => vec![e.to_string()],
    }
}

/// Whether an error means the database stayed locked past the busy timeout.
pub fn is_busy(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_keep_their_plans_whatever_is_bound() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::new(dir.path().join("r.db"), false).creating();
        let conn = db.connect().unwrap();
        assert!(
            conn.db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG)
                .unwrap()
        );
    }
}
