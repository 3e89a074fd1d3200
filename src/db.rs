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

pub mod conn;
pub mod error;
pub mod former;
pub mod host;
pub mod identity;
pub mod loose;
pub mod postgres;
pub mod sources;
pub mod value;

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
    Migration {
        version: 6,
        name: "0006_rappel_names.sql",
        sql: include_str!("../sql/0006_rappel_names.sql"),
        then: None,
    },
    Migration {
        version: 7,
        name: "0007_source_state.sql",
        sql: include_str!("../sql/0007_source_state.sql"),
        then: None,
    },
    Migration {
        version: 8,
        name: "0008_punch_state.sql",
        sql: include_str!("../sql/0008_punch_state.sql"),
        then: None,
    },
    Migration {
        version: 9,
        name: "0009_fallback.sql",
        sql: include_str!("../sql/0009_fallback.sql"),
        then: None,
    },
];

/// The schema version this binary writes.
pub const LATEST: u32 = 9;

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
    /// `database = "postgres://…"`: the server, where `path` is unused.
    server: Option<std::sync::Arc<postgres::Server>>,
}

impl Database {
    pub fn new(path: PathBuf, read_only: bool) -> Self {
        Database {
            path,
            read_only,
            create: false,
            sources: std::sync::Arc::default(),
            server: None,
        }
    }

    /// The same database on the PostgreSQL `server` (DESIGN §9).
    pub fn on_server(self, server: std::sync::Arc<postgres::Server>) -> Self {
        Database {
            server: Some(server),
            ..self
        }
    }

    /// The PostgreSQL server, when the database is one.
    pub fn server(&self) -> Option<&postgres::Server> {
        self.server.as_deref()
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
    pub fn connect(&self) -> anyhow::Result<conn::Conn> {
        if let Some(server) = &self.server {
            return self.connect_server(server);
        }
        let conn = self
            .connect_inner()
            .with_context(|| format!("cannot open database {}", self.path.display()))
            .or_exit(Exit::IoErr)?;
        sources::create_views(&conn, &self.sources).or_exit(Exit::Config)?;
        if self.read_only {
            conn.pragma_update(None, "query_only", "ON").or_exit(Exit::IoErr)?;
        }
        Ok(conn::Conn::sqlite(conn))
    }

    /// A connection to the server, rappel's schema first on its search
    /// path; read-only sessions for a read-only database. Errors: as
    /// `postgres::connect`; a `[sources]` mapping that does not read (exit 78).
    fn connect_server(&self, server: &postgres::Server) -> anyhow::Result<conn::Conn> {
        Ok(conn::Conn::postgres(
            self.server_session(server)?,
            !self.sources.is_empty(),
        ))
    }

    /// `connect_server`'s session before it is wrapped.
    fn server_session(&self, server: &postgres::Server) -> anyhow::Result<::postgres::Client> {
        let client = postgres::connect(server)?;
        self.set_up(server, client)
    }

    /// Maps `[sources]` on `client` as TEMP views (`sources::server`).
    /// Errors: a mapping that does not read (exit 78).
    fn map_sources(&self, server: &postgres::Server, client: &mut ::postgres::Client) -> anyhow::Result<()> {
        if self.sources.is_empty() {
            return Ok(());
        }
        sources::server::create_views(client, &self.sources, &server.schema).or_exit(Exit::Config)
    }

    /// `client`, a session just opened on `server`, set up as every
    /// session of rappel's is: rappel's schema first on the search path,
    /// UTC, the commit and lock settings below, `[sources]` mapped, then
    /// read-only for a read-only database (a TEMP view cannot be made in a
    /// read-only transaction).
    fn set_up(&self, server: &postgres::Server, mut client: ::postgres::Client) -> anyhow::Result<::postgres::Client> {
        let schema = server.schema.replace('"', "\"\"");
        // `synchronous_commit = off`: a commit returns before its WAL is on
        // disk, as SQLite's `synchronous = NORMAL` in WAL mode does; the
        // server crashing (not rappel) may lose the last few hundred
        // milliseconds of outcomes, as power lost may in SQLite.
        // `lock_timeout`: a statement waits for another's lock as long as
        // SQLite's busy timeout, then fails (exit 74) rather than hang.
        // `jit = off`: rappel's statements walk indexes and return as they
        // go; compiling one that the planner costs high (the scan of every
        // open ticket's stage events) took 55 ms of its 290 on a million
        // tickets, and saved none of it. Every server rappel migrates has
        // the setting (PostgreSQL 11 and later: schema 12's `INCLUDE` needs
        // 11); reading it from `pg_settings` instead cost 2 ms of a run with
        // nothing due, the view's first read on a new session.
        let setup = format!(
            "SET search_path TO \"{schema}\"; SET TIME ZONE 'UTC'; SET synchronous_commit = off; \
             SET lock_timeout = '{}s'; SET jit = off;",
            BUSY_TIMEOUT.as_secs()
        );
        client
            .batch_execute(&setup)
            .map_err(|e| postgres::refused(&e, &format!("{}: cannot set up the session", server.shown)))?;
        self.map_sources(server, &mut client)?;
        if self.read_only {
            client
                .batch_execute("SET default_transaction_read_only = on")
                .map_err(|e| postgres::refused(&e, &format!("{}: cannot set up the session", server.shown)))?;
        }
        Ok(client)
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
    pub fn connect_current(&self) -> anyhow::Result<conn::Conn> {
        if let Some(server) = &self.server {
            return self.connect_server_current(server);
        }
        let mut conn = self.connect()?;
        let version = schema_version(conn.lite()?)?;
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
            self.migrate(&mut conn)?;
        }
        Ok(conn)
    }

    /// As `connect_current`, on the server: its schema brought up to date
    /// (`db::postgres::migrate`, under its advisory lock) unless read-only.
    fn connect_server_current(&self, server: &postgres::Server) -> anyhow::Result<conn::Conn> {
        let client = self.server_session(server)?;
        self.current_on(server, client)
    }

    /// As `connect_current`, on `session`, a session already open on this
    /// database's server (the one holding a job's advisory lock, which then
    /// serves the run: one server process and handshake less per run).
    /// On SQLite, or for another server, a connection of its own.
    pub fn connect_current_on(&self, session: Option<::postgres::Client>) -> anyhow::Result<conn::Conn> {
        match (&self.server, session) {
            (Some(server), Some(client)) => {
                let client = self.set_up(server, client)?;
                self.current_on(server, client)
            }
            _ => self.connect_current(),
        }
    }

    /// The version checks and migration of `connect_current`, on `client`.
    fn current_on(&self, server: &postgres::Server, mut client: ::postgres::Client) -> anyhow::Result<conn::Conn> {
        let version = postgres::migrate::version(&mut client, &server.schema)?;
        let latest = postgres::migrate::LATEST;
        if version == 0 && !self.create {
            // As a SQLite file that is not there: a job never makes an empty
            // schema and reports nothing (a misspelt `schema` would).
            return Err(schema_state(
                SchemaState::Behind,
                format!(
                    "{} has no rappel schema {:?} (or it holds no rappel tables): check `schema` under [database], \
                     or create it with `rappel db migrate`",
                    server.shown, server.schema
                ),
            ));
        }
        if version > latest {
            return Err(server_newer(server, version));
        }
        if version < latest {
            if self.read_only {
                return Err(schema_state(
                    SchemaState::Behind,
                    format!(
                        "{} (schema {}) needs migrations (schema {version}, this rappel needs {latest}); run `rappel db migrate`",
                        server.shown, server.schema
                    ),
                ));
            }
            postgres::migrate::migrate(server)?;
            // Mapped again: a source rappel records things about reads
            // rappel's record now, a table the migrations made.
            self.map_sources(server, &mut client)?;
        }
        Ok(conn::Conn::postgres(client, !self.sources.is_empty()))
    }

    /// Applies pending migrations on `conn` ([`migrate`]), then maps its
    /// `[sources]` again: a source rappel records things about reads
    /// rappel's record too, a table the migrations make. Returns the
    /// migrations applied. Errors: as `migrate`; a mapping that does not
    /// read (exit 78).
    pub fn migrate(&self, conn: &mut conn::Conn) -> anyhow::Result<Vec<&'static str>> {
        let conn = conn.lite_mut()?;
        let applied = migrate(conn)?;
        sources::create_views(conn, &self.sources).or_exit(Exit::Config)?;
        Ok(applied)
    }
}

/// What a read-only open found of rappel's schema on a server, when it
/// cannot be used as it is (exit 74).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaState {
    /// Absent, or behind this rappel's: `rappel db migrate` brings it up.
    Behind,
    /// Newer than this rappel understands: rappel must be upgraded.
    Newer,
}

#[derive(Debug, thiserror::Error)]
#[error("{1}")]
struct SchemaError(SchemaState, String);

fn schema_state(state: SchemaState, msg: String) -> anyhow::Error {
    crate::exit::Fatal(Exit::IoErr, SchemaError(state, msg).into()).into()
}

/// What `e` says of rappel's schema on a server (`SchemaState`), when it
/// is why the database could not be opened; `None` for any other reason
/// (the server cannot be reached, the password is refused).
pub fn schema_state_of(e: &anyhow::Error) -> Option<SchemaState> {
    e.chain().find_map(|c| {
        c.downcast_ref::<crate::exit::Fatal>()
            .and_then(|f| f.1.downcast_ref::<SchemaError>())
            .map(|s| s.0)
    })
}

/// The error for rappel's schema on `server` at `version`, newer than this
/// rappel understands (`SchemaState::Newer`, exit 74).
pub(crate) fn server_newer(server: &postgres::Server, version: u32) -> anyhow::Error {
    schema_state(
        SchemaState::Newer,
        format!(
            "{} (schema {}) has schema {version}, newer than this rappel understands ({}); upgrade rappel",
            server.shown,
            server.schema,
            postgres::migrate::LATEST
        ),
    )
}

/// The error for the SQLite file at `path` at schema `version`, newer than
/// this rappel understands (exit 74).
pub(crate) fn newer_error(path: &Path, version: u32) -> anyhow::Error {
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

/// Applies pending migrations, each inside `BEGIN IMMEDIATE`; returns their
/// names. A database rappel has never migrated gets them all at once
/// ([`create_fresh`]). Then the former names of rappel's tables become views
/// where they are free ([`former::ensure_views`]), and the indexes on input
/// tables are made where the host's tables have the columns.
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
        if current == 0 {
            // Never migrated: every migration at once, nothing of the host's touched.
            create_fresh(&tx)
                .context("cannot create rappel's tables")
                .or_exit(Exit::IoErr)?;
            record_version(&tx, LATEST)?;
            tx.commit()?;
            applied.extend(MIGRATIONS.iter().map(|m| m.name));
            continue;
        }
        apply(&tx, m)?;
        record_version(&tx, m.version)?;
        tx.commit()?;
        applied.push(m.name);
    }
    former::ensure_views(conn)
        .context("cannot create the views under the former names of rappel's tables")
        .or_exit(Exit::IoErr)?;
    // The indexes on input tables, where the host's tables have the columns.
    let clashes = host::clashes(conn)?;
    host::ensure_indexes(conn, &clashes)?;
    Ok(applied)
}

/// Runs migration `m`'s SQL and its step in Rust, in `tx`. A source mapped
/// onto the host's own tables (`[sources]`, a TEMP view on `tx`) is never
/// created, altered or indexed: the statements on its contract table are
/// left out.
fn apply(tx: &rusqlite::Transaction<'_>, m: &Migration) -> anyhow::Result<()> {
    let mapped = sources::mapped_lite(tx)?;
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
        then(tx)
            .with_context(|| format!("migration {} failed", m.name))
            .or_exit(Exit::IoErr)?;
    }
    Ok(())
}

fn record_version(tx: &rusqlite::Transaction<'_>, version: u32) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO rappel_meta (key, value) VALUES ('schema_version', ?1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [version.to_string()],
    )?;
    Ok(())
}

/// A database rappel has never migrated (schema 0), perhaps the host's own
/// file: every migration runs, in order, in a scratch database in memory;
/// then each table it holds is created in `tx` unless the host's schema
/// already holds the name (an input table the host made first, or a table
/// of the host's under a name rappel's tables had before schema 6), and
/// with each table created here, its indexes. Run on the file itself, the
/// migrations would take such a host table for rappel's, add columns to it
/// and rename it; this way nothing of the host's is touched, and the schema
/// is the one the migrations make.
fn create_fresh(tx: &rusqlite::Transaction<'_>) -> anyhow::Result<()> {
    #[allow(clippy::disallowed_methods, reason = "db.rs is where connections are opened")]
    let mut scratch = Connection::open_in_memory()?;
    let stx = scratch.transaction()?;
    for m in MIGRATIONS {
        apply(&stx, m)?;
    }
    // Tables first, then what is made on them (indexes; there are no views
    // or triggers today), each group in the order it was made.
    let objects: Vec<(String, String, String, String)> = stx
        .prepare(
            "SELECT type, name, tbl_name, sql FROM sqlite_master
             WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite!_%' ESCAPE '!'
             ORDER BY type <> 'table', rowid",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<_>>()?;
    // A source mapped onto the host's tables is not made either.
    let mapped = sources::mapped_lite(tx)?;
    let mut created: Vec<String> = Vec::new();
    for (kind, name, table, sql) in objects {
        let on_a_table_made_here = match kind.as_str() {
            "index" | "trigger" => created.iter().any(|t| t.eq_ignore_ascii_case(&table)),
            _ => true,
        };
        if !on_a_table_made_here || taken(tx, &name)? || mapped.iter().any(|m| m.eq_ignore_ascii_case(&name)) {
            continue;
        }
        tx.execute_batch(&sources::without_references(&sql, &mapped))
            .with_context(|| format!("cannot create {kind} {name}"))?;
        if kind == "table" {
            created.push(name);
        }
    }
    Ok(())
}

/// Whether any object of the main schema (table, view, index or trigger)
/// is named `name`, as SQLite compares names (ASCII case ignored).
fn taken(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = ?1 COLLATE NOCASE)")?
        .query_row([name], |r| r.get(0))
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

    #[allow(clippy::disallowed_methods, reason = "a scratch database for the test")]
    fn scratch() -> Connection {
        Connection::open_in_memory().unwrap()
    }

    /// Every object of the main schema: `(type, name, table, sql)`, sorted.
    fn schema(conn: &Connection) -> Vec<(String, String, String, Option<String>)> {
        let mut stmt = conn
            .prepare("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn a_new_database_gets_the_schema_the_migrations_make_one_by_one() {
        let mut fresh = scratch();
        assert_eq!(migrate(&mut fresh).unwrap().len(), MIGRATIONS.len());
        assert_eq!(schema_version(&fresh).unwrap(), LATEST);
        // Schema 1 as rappel 1 left it, then each migration in its own transaction.
        let mut stepwise = scratch();
        stepwise.execute_batch(MIGRATIONS[0].sql).unwrap();
        stepwise
            .execute_batch(
                "CREATE TABLE rappel_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                 INSERT INTO rappel_meta VALUES ('schema_version', '1');",
            )
            .unwrap();
        assert_eq!(migrate(&mut stepwise).unwrap().len(), MIGRATIONS.len() - 1);
        assert_eq!(schema(&fresh), schema(&stepwise));
        for name in former::TABLES {
            let kind: String = fresh
                .query_row("SELECT type FROM sqlite_master WHERE name = ?1", [name], |r| r.get(0))
                .unwrap();
            assert_eq!(kind, "view", "{name}");
        }
    }

    #[test]
    fn the_former_names_become_views_once_and_only_where_free() {
        let mut conn = scratch();
        conn.execute_batch("CREATE TABLE Job_Runs (host_column TEXT)").unwrap();
        migrate(&mut conn).unwrap();
        assert_eq!(
            former::ensure_views(&mut conn).unwrap(),
            Vec::<&str>::new(),
            "made by migrate already"
        );
        assert_eq!(host::columns(&conn, "job_runs").unwrap(), ["host_column"]);
        conn.execute_batch("DROP VIEW deliveries").unwrap();
        assert_eq!(former::ensure_views(&mut conn).unwrap(), ["deliveries"]);
    }

    #[test]
    fn connections_keep_their_plans_whatever_is_bound() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::new(dir.path().join("r.db"), false).creating();
        let conn = db.connect().unwrap();
        assert!(
            conn.lite()
                .unwrap()
                .db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG)
                .unwrap()
        );
    }
}
