//! The PostgreSQL test server, and scenarios run on it: [`Mirror::attach`]
//! moves a test's SQLite database, as its scenario filled it, to a schema
//! of its own on the server and points the config there. From then on
//! `TestEnv::run` copies the SQLite file's rows to the server before each
//! run and the server's rows back after it ([`Mirror::push`],
//! [`Mirror::pull`]), so one scenario's code (its inserts, and its checks
//! through `env.db()`) runs on both backends: rappel itself reads and
//! writes only the server.
#![allow(clippy::disallowed_methods, reason = "test set-up writes host data directly")]

use std::io::{Read, Write};

use rusqlite::types::Value;

use super::TestEnv;

/// The test server: URL, password and CA file; `None` (and a line on
/// stderr) when the environment names none. `RAPPEL_TEST_POSTGRES` is a URL
/// without a password, `RAPPEL_TEST_POSTGRES_PASSWORD` the password and
/// `RAPPEL_TEST_POSTGRES_CA` the server certificate's CA (`.ci/run` sets
/// all three).
pub fn server(test: &str) -> Option<(String, String, String)> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match (
        var("RAPPEL_TEST_POSTGRES"),
        var("RAPPEL_TEST_POSTGRES_PASSWORD"),
        var("RAPPEL_TEST_POSTGRES_CA"),
    ) {
        (Some(url), Some(password), Some(ca)) => Some((url, password, ca)),
        _ => {
            eprintln!(
                "{test} on PostgreSQL: skipped (RAPPEL_TEST_POSTGRES, RAPPEL_TEST_POSTGRES_PASSWORD and \
                 RAPPEL_TEST_POSTGRES_CA name no server; .ci/run starts one)"
            );
            None
        }
    }
}

/// `url` with `query` added to its own.
pub fn with(url: &str, query: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{query}")
}

/// A schema name no other test uses, on a server others share.
pub fn fresh_schema(test: &str) -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("rappel_{test}_{}_{n}", std::process::id())
}

/// A direct connection to the test server, without TLS (loopback).
pub fn client(url: &str, password: &str) -> postgres::Client {
    let mut config: postgres::Config = with(url, "sslmode=disable").parse().unwrap();
    config.password(password);
    config.connect(postgres::NoTls).unwrap()
}

/// The environment variable the mirrored config reads the password from.
pub const PASSWORD_ENV: &str = "RAPPEL_TEST_PG_PASSWORD";

/// A test's schema on the server that its SQLite file stands for.
pub struct Mirror {
    pub password: String,
    pub schema: String,
    /// One session on the server for every copy.
    server: std::sync::Mutex<postgres::Client>,
    /// The mirror's own connection to the file (opened at the first copy),
    /// and the file's `data_version` as it saw it at its last copy either
    /// way: when unchanged, no other connection has written since, and
    /// there is nothing to push.
    file: std::sync::Mutex<Option<(rusqlite::Connection, Option<i64>)>>,
}

/// Tables each backend keeps for itself (its migrations' bookkeeping).
const OWN: &[&str] = &["rappel_meta", "sqlite_sequence"];

impl Mirror {
    /// Points `env`'s config at a fresh schema on the test server (TLS
    /// checked against its CA, the password from [`PASSWORD_ENV`], the
    /// schema first on the role's search path so host tables made by
    /// `support::host::rehost` resolve as the application's), migrates it
    /// and copies the SQLite file's rows there. `None`, the test skipped,
    /// without a server.
    pub fn attach(env: &mut TestEnv, test: &str) -> Option<()> {
        let (url, password, ca) = server(test)?;
        let schema = fresh_schema(test.split('_').next().unwrap_or("t"));
        let config = std::fs::read_to_string(env.config_path()).unwrap();
        assert!(config.contains("database = \"rappel.db\"\n"), "{config}");
        let database = format!(
            "\n[database]\nurl = \"{}\"\npassword_env = \"{PASSWORD_ENV}\"\nschema = \"{schema}\"\n",
            with(&url, &format!("sslrootcert={ca}&options=-csearch_path%3D{schema}"))
        );
        env.write_config(&(config.replace("database = \"rappel.db\"\n", "") + &database));
        let mut db = client(&url, &password);
        db.batch_execute(&format!("SET search_path TO \"{schema}\"")).unwrap();
        env.pg = Some(Mirror {
            password,
            schema,
            server: std::sync::Mutex::new(db),
            file: std::sync::Mutex::new(None),
        });
        let out = super::Output::of(env.command(&["db", "migrate"], "2026-03-10T07:00:00Z"));
        assert_eq!(out.code, 0, "db migrate on PostgreSQL: {}", out.stderr);
        Some(())
    }

    /// The server's tables in the schema, with their columns in order.
    fn server_tables(&self, db: &mut postgres::Client) -> Vec<(String, Vec<String>)> {
        let rows = db
            .query(
                "SELECT c.relname::text, array_agg(a.attname::text ORDER BY a.attnum)
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                 WHERE n.nspname = $1 AND c.relkind = 'r' GROUP BY c.relname ORDER BY 1",
                &[&self.schema],
            )
            .unwrap();
        rows.iter().map(|r| (r.get(0), r.get(1))).collect()
    }

    /// Makes the server's tables hold what the SQLite file holds: every
    /// table of both (but each one's migration bookkeeping) emptied and
    /// filled with the file's rows, identities moved past the largest id.
    /// A table only the file has (a host table `rehost` made) is created
    /// on the server first, with its columns typed from SQLite's declared
    /// types (INTEGER as `bigint`, REAL as `double precision`, others as
    /// `text`).
    pub fn push(&self, env: &TestEnv) {
        let mut file = self.file.lock().unwrap();
        let (lite, seen) = file.get_or_insert_with(|| (env.db(), None));
        let version = data_version(lite);
        if *seen == Some(version) {
            return;
        }
        let mut db = self.server.lock().unwrap();
        let mut on_server = self.server_tables(&mut db);
        let lite_tables = lite_tables(lite);
        for (table, columns) in lite_tables.clone() {
            if on_server.iter().any(|(t, _)| *t == table) {
                continue;
            }
            let defs: Vec<String> = columns
                .iter()
                .map(|(name, declared, pk)| {
                    let ty = match declared.to_ascii_uppercase() {
                        d if d.contains("INT") => "bigint",
                        d if d.contains("REAL") || d.contains("FLOA") || d.contains("DOUB") => "double precision",
                        _ => "text",
                    };
                    format!("\"{name}\" {ty}{}", if *pk { " PRIMARY KEY" } else { "" })
                })
                .collect();
            db.batch_execute(&format!("CREATE TABLE \"{table}\" ({})", defs.join(", ")))
                .unwrap();
            on_server.push((table, columns.into_iter().map(|(c, _, _)| c).collect()));
        }
        let lite_names: Vec<String> = lite_tables.iter().map(|(t, _)| t.clone()).collect();
        let shared: Vec<&(String, Vec<String>)> = on_server
            .iter()
            .filter(|(t, _)| lite_names.contains(t) && !OWN.contains(&t.as_str()))
            .collect();
        let mut tx = db.transaction().unwrap();
        // Foreign keys are not checked while the tables fill in any order.
        tx.batch_execute("SET LOCAL session_replication_role = replica")
            .unwrap();
        for (table, server_columns) in shared {
            // DELETE, not TRUNCATE: on a few rows, a fraction of its cost.
            tx.batch_execute(&format!("DELETE FROM \"{table}\"")).unwrap();
            let lite_columns = &lite_tables.iter().find(|(t, _)| t == table).unwrap().1;
            let columns: Vec<&String> = server_columns
                .iter()
                .filter(|c| lite_columns.iter().any(|(n, _, _)| n == *c))
                .collect();
            let list = quoted(&columns);
            let mut data = Vec::new();
            let mut stmt = lite.prepare(&format!("SELECT {list} FROM \"{table}\"")).unwrap();
            let mut rows = stmt.query([]).unwrap();
            while let Some(row) = rows.next().unwrap() {
                let fields: Vec<String> = (0..columns.len())
                    .map(|i| copy_field(row.get::<_, Value>(i).unwrap(), table, columns[i]))
                    .collect();
                data.extend_from_slice(fields.join("\t").as_bytes());
                data.push(b'\n');
            }
            let mut writer = tx.copy_in(&format!("COPY \"{table}\" ({list}) FROM STDIN")).unwrap();
            writer.write_all(&data).unwrap();
            writer.finish().unwrap();
            if columns.iter().any(|c| *c == "id") {
                tx.batch_execute(&format!(
                    "SELECT setval(s, m) FROM (SELECT pg_get_serial_sequence('\"{table}\"', 'id') AS s,
                                                     max(id) AS m FROM \"{table}\") x
                     WHERE s IS NOT NULL AND m IS NOT NULL"
                ))
                .unwrap();
            }
        }
        tx.commit().unwrap();
        *seen = Some(version);
    }

    /// Makes the SQLite file hold what the server's tables hold, for every
    /// table of both (but each one's migration bookkeeping): values come
    /// as text and take the file's column affinity (INTEGER, REAL), as
    /// rappel's own writes to the file would give.
    pub fn pull(&self, env: &TestEnv) {
        let mut file = self.file.lock().unwrap();
        let (lite, seen) = file.get_or_insert_with(|| (env.db(), None));
        let mut db = self.server.lock().unwrap();
        let tables = lite_tables(lite);
        // Foreign keys are not checked while the tables fill in any order.
        lite.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
        let tx = lite.transaction().unwrap();
        for (table, server_columns) in self.server_tables(&mut db) {
            let Some((_, lite_columns)) = tables.iter().find(|(t, _)| *t == table) else {
                continue;
            };
            if OWN.contains(&table.as_str()) {
                continue;
            }
            let columns: Vec<&String> = server_columns
                .iter()
                .filter(|c| lite_columns.iter().any(|(n, _, _)| n == *c))
                .collect();
            let list = quoted(&columns);
            let mut text = String::new();
            db.copy_out(&format!("COPY \"{table}\" ({list}) TO STDOUT"))
                .unwrap()
                .read_to_string(&mut text)
                .unwrap();
            tx.execute(&format!("DELETE FROM \"{table}\""), []).unwrap();
            let marks: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
            let mut insert = tx
                .prepare(&format!(
                    "INSERT INTO \"{table}\" ({list}) VALUES ({})",
                    marks.join(", ")
                ))
                .unwrap();
            for line in text.lines() {
                let values: Vec<Option<String>> = line.split('\t').map(copy_value).collect();
                assert_eq!(values.len(), columns.len(), "{table}: {line:?}");
                insert.execute(rusqlite::params_from_iter(values)).unwrap();
            }
        }
        tx.commit().unwrap();
        *seen = Some(data_version(lite));
    }
}

impl Drop for Mirror {
    /// Drops the test's schema: a server's catalog that grows with every
    /// test run would slow the ones after it.
    fn drop(&mut self) {
        if let Ok(mut db) = self.server.lock() {
            let _ = db.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.schema));
        }
    }
}

/// `PRAGMA data_version` of `lite`: it changes when another connection
/// commits a change to the file.
fn data_version(lite: &rusqlite::Connection) -> i64 {
    lite.query_row("PRAGMA data_version", [], |r| r.get(0)).unwrap()
}

/// A column of the SQLite file: name, declared type, whether it is the
/// primary key.
type LiteColumn = (String, String, bool);

/// Each table of the SQLite file (but SQLite's own) with its columns.
fn lite_tables(lite: &rusqlite::Connection) -> Vec<(String, Vec<LiteColumn>)> {
    let names: Vec<String> = lite
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    names
        .into_iter()
        .map(|table| {
            let columns = lite
                .prepare(&format!(
                    "SELECT name, type, pk FROM pragma_table_info('{table}') ORDER BY cid"
                ))
                .unwrap()
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? > 0)))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            (table, columns)
        })
        .collect()
}

fn quoted(columns: &[&String]) -> String {
    columns
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A SQLite value as a field of COPY's text format (`\N` for NULL,
/// backslash escapes for the separators).
fn copy_field(value: Value, table: &str, column: &str) -> String {
    match value {
        Value::Null => "\\N".to_string(),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) => format!("{f:?}"),
        Value::Text(t) => t
            .replace('\\', "\\\\")
            .replace('\t', "\\t")
            .replace('\n', "\\n")
            .replace('\r', "\\r"),
        Value::Blob(_) => panic!("{table}.{column}: a blob the mirror does not copy"),
    }
}

/// A field of COPY's text format as text, `None` for `\N`.
fn copy_value(field: &str) -> Option<String> {
    if field == "\\N" {
        return None;
    }
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('v') => out.push('\u{b}'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    Some(out)
}
