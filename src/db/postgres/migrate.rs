//! rappel's schema on PostgreSQL: the files of `sql/postgres/`, each named by
//! the schema version it brings the database to (the versions SQLite's
//! migrations number), applied in order in one transaction, under an
//! advisory lock so that two machines migrating at once apply each file
//! once, in the schema `database.schema` names, which is created first.

use super::Server;
use crate::exit::{Exit, fail};

/// `(version, file name, SQL)`, in order.
const MIGRATIONS: &[(u32, &str, &str)] = &[
    (
        7,
        "0007_schema.sql",
        include_str!("../../../sql/postgres/0007_schema.sql"),
    ),
    (
        8,
        "0008_punch_state.sql",
        include_str!("../../../sql/postgres/0008_punch_state.sql"),
    ),
    (
        9,
        "0009_instants.sql",
        include_str!("../../../sql/postgres/0009_instants.sql"),
    ),
    (
        10,
        "0010_fallback.sql",
        include_str!("../../../sql/postgres/0010_fallback.sql"),
    ),
    (
        11,
        "0011_instants_serial.sql",
        include_str!("../../../sql/postgres/0011_instants_serial.sql"),
    ),
    (
        12,
        "0012_events_cover.sql",
        include_str!("../../../sql/postgres/0012_events_cover.sql"),
    ),
    (
        13,
        "0013_deliveries_fillfactor.sql",
        include_str!("../../../sql/postgres/0013_deliveries_fillfactor.sql"),
    ),
];

/// The version the last file brings the schema to. Up to 8 these are
/// SQLite's versions; 9 is PostgreSQL's own step (`rappel_instant`, what
/// SQLite's `julianday` gives); 10 is SQLite's 9 (`replaces_id`); 11 is
/// PostgreSQL's own again (`rappel_instant` serial: it may not run in a
/// parallel query), and so are 12 (the events index holds the event's id:
/// the delay-alert scan reads the index alone) and 13 (deliveries' pages
/// filled to half, for their rows' next versions).
pub const LATEST: u32 = 13;

/// How many files a schema at `version` lacks.
pub fn pending(version: u32) -> usize {
    MIGRATIONS.iter().filter(|(v, _, _)| *v > version).count()
}

/// The advisory lock key `db migrate` holds for its transaction (any fixed
/// number: "rappel" in ASCII).
const LOCK: i64 = 0x7261_7070_656c;

/// The schema version recorded in `<schema>.rappel_meta` (0: none, or no
/// such schema). Errors: the server's, or a version that is not a number.
pub fn version(client: &mut impl postgres::GenericClient, schema: &str) -> anyhow::Result<u32> {
    let table = format!("\"{schema}\".rappel_meta");
    let exists: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .map_err(|e| super::refused(&e, &format!("reading schema {schema}")))?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let row = client
        .query_opt(
            &format!("SELECT value FROM \"{schema}\".rappel_meta WHERE key = 'schema_version'"),
            &[],
        )
        .map_err(|e| super::refused(&e, &format!("reading {schema}.rappel_meta")))?;
    match row.map(|r| r.get::<_, String>(0)) {
        None => Ok(0),
        Some(v) => v.parse().map_err(|_| {
            fail(
                Exit::IoErr,
                format!("{schema}.rappel_meta.schema_version is {v:?}, not a number"),
            )
        }),
    }
}

/// Applies the files `server`'s schema lacks; returns the version before
/// and their names. Errors: the server's (the transaction is rolled back:
/// nothing applied), or a schema newer than this rappel's (exit 74).
pub fn migrate(server: &Server) -> anyhow::Result<(u32, Vec<&'static str>)> {
    let mut client = super::connect(server)?;
    let schema = &server.schema;
    let at = |what: &str| format!("{} (schema {schema}): {what}", server.shown);
    let mut tx = client
        .transaction()
        .map_err(|e| super::refused(&e, &at("cannot begin")))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK])
        .map_err(|e| super::refused(&e, &at("cannot take the migration lock")))?;
    // Created only when absent: PostgreSQL checks the right to create one
    // before whether it exists, and a role given its schema has no such right.
    let exists: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
            &[schema],
        )
        .map_err(|e| super::refused(&e, &at("cannot read the schemas")))?
        .get(0);
    if !exists {
        tx.batch_execute(&format!("CREATE SCHEMA \"{schema}\""))
            .map_err(|e| super::refused(&e, &at("cannot create the schema")))?;
    }
    tx.batch_execute(&format!("SET LOCAL search_path TO \"{schema}\""))
        .map_err(|e| super::refused(&e, &at("cannot use the schema")))?;
    let before = version(&mut tx, schema)?;
    if before > LATEST {
        return Err(newer(server, before));
    }
    let mut applied = Vec::new();
    for (v, name, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v > before) {
        tx.batch_execute(sql)
            .map_err(|e| super::refused(&e, &at(&format!("migration {name} failed"))))?;
        tx.execute(
            "INSERT INTO rappel_meta (key, value) VALUES ('schema_version', $1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[&v.to_string()],
        )
        .map_err(|e| super::refused(&e, &at("cannot record the version")))?;
        applied.push(*name);
    }
    // The input tables the application made as a view, or without a unique
    // key on `id` (`db::host::unkeyed`): looked up here, once, and not by
    // every job (the catalog's first read costs a session 2 to 5 ms).
    tx.execute(
        &format!(
            "INSERT INTO rappel_meta (key, value) SELECT 'unkeyed_tables', ({})
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            unkeyed_query()
        ),
        &[],
    )
    .map_err(|e| super::refused(&e, &at("cannot record the input tables without a key on id")))?;
    tx.commit().map_err(|e| super::refused(&e, &at("cannot commit")))?;
    Ok((before, applied))
}

/// A query giving, as one comma-separated text, the input tables of rappel's
/// schema (on the search path) that have an `id` column and no key on it:
/// a view, a table without a valid, immediate, whole-table unique index on
/// `id` alone, or one with a child table (`INHERITS`) whose rows that index
/// does not cover. `db::host::KEYED_BY_ID` names the tables looked at.
pub fn unkeyed_query() -> String {
    format!(
        "SELECT coalesce(string_agg(c.relname::text, ',' ORDER BY c.relname), '')
         FROM pg_class c
         WHERE c.oid IN ({})
           AND EXISTS (SELECT 1 FROM pg_attribute a
                       WHERE a.attrelid = c.oid AND a.attname = 'id' AND NOT a.attisdropped)
           AND (NOT EXISTS (SELECT 1 FROM pg_index i
                            WHERE i.indrelid = c.oid AND i.indisunique AND i.indisvalid AND i.indimmediate
                              AND i.indnkeyatts = 1 AND i.indpred IS NULL
                              AND i.indkey[0] = (SELECT a.attnum FROM pg_attribute a
                                                 WHERE a.attrelid = c.oid AND a.attname = 'id'))
                OR EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhparent = c.oid))",
        crate::db::host::KEYED_BY_ID
            .iter()
            .map(|t| format!("to_regclass('{t}')"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// A schema newer than this rappel's.
pub fn newer(server: &Server, version: u32) -> anyhow::Error {
    fail(
        Exit::IoErr,
        format!(
            "{} schema {} has version {version}, newer than this rappel understands ({LATEST}); upgrade rappel",
            server.shown, server.schema
        ),
    )
}
