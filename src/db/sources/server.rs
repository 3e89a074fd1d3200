//! `[sources]` on PostgreSQL (DESIGN §9): each mapped source becomes, on
//! every session, a TEMP view of the contract's name over the host's table
//! or query, its columns converted to the contract's types as rappel's own
//! tables hold them (instants as text in UTC, flags and ids as integers),
//! whatever the application typed them (`timestamptz`, `timestamp`, `date`,
//! `boolean`, `numeric`, `varchar`...). A source rappel writes to reads
//! rappel's record of its rows, and an `INSTEAD OF UPDATE` trigger (a
//! PL/pgSQL function of the session's) writes that record and the host
//! columns named under `[sources.<table>.update]`. Names in the mappings
//! resolve on the session's own search path (the application's: `public`
//! for Django), as they would in `psql`; nothing is created in the host's
//! schema, and the views go with the session.

use postgres::types::Type;

use super::kept::{self, ColumnInfo, Value};
use super::{KEYED, Origin, Source, contract_columns, quoted, raw_view, selection, usable};
use crate::db::conn::Dialect;

/// What a contract column holds in rappel's own tables (sql/postgres).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Target {
    /// `bigint`: a row id or a count.
    Int,
    /// `integer` 0/1: a flag, which a host may also write as text.
    Flag,
    /// `double precision`.
    Real,
    /// `text`: an instant (RFC 3339, UTC) or a word.
    Text,
}

fn target(column: &str) -> Target {
    match column {
        c if super::FLAGS.contains(&c) => Target::Flag,
        "id" | "attempts" | "sync_attempts" | "mode" | "inout" | "event" => Target::Int,
        "temperature" => Target::Real,
        c if c.ends_with("_id") => Target::Int,
        _ => Target::Text,
    }
}

/// The text form a host writes a whole number in (a PostgreSQL regular
/// expression).
const WHOLE: &str = r"'^\s*[-+]?[0-9]{1,18}\s*$'";

/// The magnitudes beyond which a `numeric` is not a `double precision`:
/// from here up, infinite; below this, zero.
const REAL_MAX: &str = "1.7976931348623158e308";
const REAL_MIN: &str = "2.5e-324";

/// `expr`, of PostgreSQL type `ty`, as contract column `column` holds it;
/// NULL where the value is not one (text that is not a number, a `uuid`
/// where an id is due): such a row is left out when the column is one the
/// jobs need, and `rappel sources` names it. A decimal column's (the
/// punch's `temperature`, which may be NULL) stays text when written as
/// text, read by the job as on SQLite, and is NaN where its type is no
/// number (a `uuid`), which the job refuses.
fn converted(expr: &str, ty: &Type, column: &str) -> String {
    let e = format!("({expr})");
    let trimmed = format!("btrim(CAST({e} AS text), E' \\t\\r\\n')");
    let (integer, decimal) = (INTEGER.contains(ty), DECIMAL_TYPES.contains(ty));
    let text = TEXT.contains(ty);
    match target(column) {
        Target::Int | Target::Flag if integer => format!("CAST({e} AS bigint)"),
        Target::Int | Target::Flag if *ty == Type::BOOL => format!("CAST(CAST({e} AS integer) AS bigint)"),
        Target::Int | Target::Flag if decimal => {
            format!("CASE WHEN {e} = trunc({e}) AND abs({e}) < 1e18 THEN CAST({e} AS bigint) END")
        }
        Target::Flag if text => format!(
            "CASE WHEN lower({trimmed}) IN ('true', 't', 'yes', 'y', 'on') THEN CAST(1 AS bigint) \
             WHEN lower({trimmed}) IN ('false', 'f', 'no', 'n', 'off', '') THEN CAST(0 AS bigint) \
             WHEN {e} ~ {WHOLE} THEN CAST({trimmed} AS bigint) END"
        ),
        Target::Int if text => format!("CASE WHEN {e} ~ {WHOLE} THEN CAST({trimmed} AS bigint) END"),
        Target::Int | Target::Flag => "CAST(NULL AS bigint)".to_string(),
        // A `numeric` beyond `double precision` read as SQLite's REAL holds
        // it: too large, not a number (the punch held); too small, zero. A
        // cast that overflowed would fail the whole read.
        Target::Real if *ty == Type::NUMERIC => format!(
            "CASE WHEN abs({e}) >= {REAL_MAX} THEN CAST('NaN' AS double precision) \
             WHEN abs({e}) < {REAL_MIN} THEN CAST(0 AS double precision) \
             ELSE CAST({e} AS double precision) END"
        ),
        Target::Real if integer || decimal => format!("CAST({e} AS double precision)"),
        // A decimal written as text stays text: rappel reads it as it
        // reads it on SQLite (`str::trim`, then an `f64`), the same values
        // the same way, and a punch whose temperature is not a number
        // (`'hot'`) held with the value named. Converted here, some text
        // (an exponent beyond `numeric`'s range) failed the whole read.
        Target::Real if text => format!("CAST({e} AS text)"),
        Target::Real => format!("CASE WHEN {e} IS NOT NULL THEN CAST('NaN' AS double precision) END"),
        // Instants as rappel writes them, and as `db::value` reads the
        // same types from rappel's own tables: UTC with `Z`, microseconds
        // only when there are some; a `timestamp` without an offset, read
        // in `naive_timezone`.
        Target::Text if *ty == Type::TIMESTAMPTZ => format!(
            "to_char({e} AT TIME ZONE 'UTC', CASE WHEN extract(microseconds FROM {e}) = trunc(extract(seconds FROM {e})) * 1000000 \
             THEN 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"' ELSE 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"' END)"
        ),
        Target::Text if *ty == Type::TIMESTAMP => format!(
            "to_char({e}, CASE WHEN extract(microseconds FROM {e}) = trunc(extract(seconds FROM {e})) * 1000000 \
             THEN 'YYYY-MM-DD HH24:MI:SS' ELSE 'YYYY-MM-DD HH24:MI:SS.US' END)"
        ),
        Target::Text if *ty == Type::DATE => format!("to_char({e}, 'YYYY-MM-DD')"),
        Target::Text => format!("CAST({e} AS text)"),
    }
}

/// Text types, as `converted` reads them.
const TEXT: [Type; 5] = [Type::TEXT, Type::VARCHAR, Type::BPCHAR, Type::NAME, Type::UNKNOWN];

/// Whole-number types, and decimal ones, as `converted` reads them.
const INTEGER: [Type; 4] = [Type::INT2, Type::INT4, Type::INT8, Type::OID];
const DECIMAL_TYPES: [Type; 3] = [Type::NUMERIC, Type::FLOAT4, Type::FLOAT8];

/// Whether `converted` may read a value of type `ty` as NULL for contract
/// column `column`: text that is not a number or a flag, a decimal that is
/// not whole where an id is due, a type with no conversion (a `uuid`).
fn lossy(ty: &Type, column: &str) -> bool {
    let integer = INTEGER.contains(ty);
    match target(column) {
        Target::Int | Target::Flag => !(integer || *ty == Type::BOOL),
        Target::Real => !(integer || DECIMAL_TYPES.contains(ty) || TEXT.contains(ty)),
        Target::Text => false,
    }
}

/// The name of the raw view's column holding, as text, the value that
/// contract column `column` was converted from, where the conversion may
/// lose it (`lossy`): `rappel sources` names such a value, as on SQLite.
pub fn written(column: &str) -> String {
    format!("{column}:written")
}

/// A host table's column on PostgreSQL: as `ColumnInfo`, with its type as
/// `format_type` writes it (`timestamp with time zone`, `varchar(20)`).
struct HostColumn {
    info: ColumnInfo,
    ty: String,
}

/// The host table `table` names on the session's search path: its name in
/// full (schema and table, quoted) and its columns; `None` when there is
/// no such table or view. A name without a dot is one identifier, as
/// written (`Repairs` is not `repairs`); with one, PostgreSQL's rules.
fn host_table(
    client: &mut postgres::Client,
    table: &str,
) -> Result<Option<(String, Vec<HostColumn>)>, postgres::Error> {
    let rows = client.query(
        "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), a.attname::text, a.attnotnull,
                EXISTS (SELECT 1 FROM pg_index x WHERE x.indrelid = c.oid AND x.indisprimary AND a.attnum = ANY (x.indkey)),
                format_type(a.atttypid, a.atttypmod)
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
         -- A plain name as written, else folded to lower case as psql folds it unquoted.
         WHERE c.oid = CASE WHEN strpos($1, '.') > 0 THEN to_regclass($1)
                            ELSE coalesce(to_regclass(quote_ident($1)), to_regclass(quote_ident(lower($1)))) END
         ORDER BY a.attnum",
        &[&table],
    )?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let full: String = first.get(0);
    let columns = rows
        .iter()
        .map(|r| HostColumn {
            info: (r.get(1), r.get(2), r.get(3)),
            ty: r.get(4),
        })
        .collect();
    Ok(Some((full, columns)))
}

/// The server's own words for `e` (its message and detail), without the
/// client's prefix.
fn said(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.hint() {
            Some(hint) => format!("{} ({hint})", db.message()),
            None => db.message().to_string(),
        },
        None => e.to_string(),
    }
}

/// Creates the TEMP view of each source on `client`, a session of rappel's
/// whose search path is `schema` (rappel's tables): the mappings are read
/// on the session's own search path meanwhile, then `schema` is set again.
/// A source rappel writes to reads its record where the migrations have
/// made it (else the host's rows as they are). Errors: every mapping that
/// does not read (a missing table or column, an expression or query that
/// does not compile, an `update` rappel cannot keep), one line each naming
/// its source; the server's, setting the session up.
pub fn create_views(client: &mut postgres::Client, sources: &[Source], schema: &str) -> anyhow::Result<()> {
    client.batch_execute(&format!(
        "CREATE TEMP TABLE IF NOT EXISTS {KEYED} (name text PRIMARY KEY); RESET search_path;"
    ))?;
    let mut errors = Vec::new();
    for source in sources {
        if let Err(e) = create_view(client, source, schema) {
            errors.push(e.to_string());
        }
    }
    client.batch_execute(&format!("SET search_path TO {}", quoted(schema)))?;
    if errors.is_empty() {
        Ok(())
    } else {
        Err(anyhow::anyhow!("{}", errors.join("\n")))
    }
}

fn create_view(client: &mut postgres::Client, source: &Source, schema: &str) -> anyhow::Result<()> {
    let name = source.name;
    let raw = raw_view(name);
    let trigger = format!("rappel_update_{name}");
    client.batch_execute(&format!(
        "DROP VIEW IF EXISTS pg_temp.{} CASCADE; DROP VIEW IF EXISTS pg_temp.{} CASCADE;",
        quoted(name),
        quoted(&raw),
    ))?;
    let contract = contract_columns(name).ok_or_else(|| anyhow::anyhow!("[sources.{name}]: not an input table"))?;
    let (from, columns) = match &source.origin {
        Origin::Table(table) => match host_table(client, table)
            .map_err(|e| anyhow::anyhow!("[sources.{name}]: table {table:?}: {}", said(&e)))?
        {
            Some((full, columns)) => (full, columns),
            None if table.contains('.') => anyhow::bail!(
                "[sources.{name}]: table {table:?} is not in the database (check `table`: its schema and its name, \
                 as psql lists them with \\dt)"
            ),
            None => anyhow::bail!(
                "[sources.{name}]: table {table:?} is not in the database (check `table`, with its schema if it is \
                 not on the role's search path: \"app.{table}\")"
            ),
        },
        Origin::Query(query) => {
            let statement = client
                .prepare(&format!("SELECT * FROM (\n{query}\n) AS q"))
                .map_err(|e| {
                    anyhow::anyhow!(
                        "[sources.{name}]: the query does not compile: {} (run it in psql to see why)",
                        said(&e)
                    )
                })?;
            let columns = statement
                .columns()
                .iter()
                .map(|c| HostColumn {
                    info: (c.name().to_string(), false, false),
                    ty: c.type_().name().to_string(),
                })
                .collect();
            (format!("(\n{query}\n)"), columns)
        }
    };
    let infos: Vec<ColumnInfo> = columns.iter().map(|c| c.info.clone()).collect();
    let available: Vec<String> = infos.iter().map(|(n, _, _)| n.clone()).collect();
    let selected = selection(source, contract, &available)?;
    // Each column's type as the server infers it: the conversion to the
    // contract's follows from it.
    let probe: Vec<String> = selected
        .iter()
        .map(|(column, expr)| format!("{expr} AS {}", quoted(column)))
        .collect();
    let statement = client
        .prepare(&format!(
            "SELECT {} FROM {from} AS {}",
            probe.join(", "),
            quoted("rappel_source")
        ))
        .map_err(|e| anyhow::anyhow!("[sources.{name}]: {}", said(&e)))?;
    let types: Vec<Type> = statement.columns().iter().map(|c| c.type_().clone()).collect();
    let mut select: Vec<String> = selected
        .iter()
        .zip(&types)
        .map(|((column, expr), ty)| format!("{} AS {}", converted(expr, ty, column), quoted(column)))
        .collect();
    select.extend(
        selected
            .iter()
            .zip(&types)
            .filter(|((column, _), ty)| lossy(ty, column))
            .map(|((column, expr), _)| format!("CAST(({expr}) AS text) AS {}", quoted(&written(column)))),
    );
    let mut sql = format!(
        "CREATE TEMP VIEW {} AS SELECT {} FROM {from} AS {};\n",
        quoted(&raw),
        select.join(", "),
        quoted("rappel_source")
    );
    let usable = usable(name, "i", Dialect::Postgres);
    // The write-back's UPDATE on the view's rows, and the host columns it sets.
    let mut probe: Option<(String, Vec<String>)> = None;
    let record = kept::kept(name).map(|k| (k, format!("{}.{}", quoted(schema), k.table)));
    let recorded = match &record {
        Some((_, table)) => client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[table])?
            .get::<_, bool>(0),
        None => false,
    };
    match record.filter(|_| recorded) {
        None => sql.push_str(&format!(
            "CREATE TEMP VIEW {} AS SELECT * FROM pg_temp.{} AS i WHERE {usable};",
            quoted(name),
            quoted(&raw)
        )),
        Some((kept, table)) => {
            sql.push_str(&format!(
                "CREATE TEMP VIEW {} AS {};\n",
                quoted(name),
                kept::recorded_select(
                    source,
                    kept,
                    contract,
                    &format!("pg_temp.{}", quoted(&raw)),
                    &table,
                    &usable
                )
            ));
            let mut body = kept::record_upsert(kept, &table);
            if let Some((_, targets)) = kept::host_updates(source, kept, &infos, &available)? {
                text_fits(source, &columns, &targets)?;
                let (set, row) = host_update(source, &columns, &targets, &selected, &types);
                let update = format!("UPDATE {from} AS {} SET {set}", quoted("rappel_source"));
                body.push_str(&format!(" {update} WHERE {row} = OLD.id;"));
                // Checked once the view is made: each value's cast to its
                // column's type, on rows of the view's type (`new`, `old`).
                probe = Some((
                    format!(
                        "WITH new AS (SELECT * FROM pg_temp.{} LIMIT 0) {update} FROM new, new AS old WHERE {row} = old.id",
                        quoted(name)
                    ),
                    targets.iter().map(|(column, _)| column.to_string()).collect::<Vec<_>>(),
                ));
            }
            sql.push_str(&format!(
                "CREATE OR REPLACE FUNCTION pg_temp.{trigger_q}() RETURNS trigger LANGUAGE plpgsql AS $rappel$ \
                 BEGIN {body} RETURN NEW; END $rappel$;\n\
                 CREATE TRIGGER {trigger_q} INSTEAD OF UPDATE ON pg_temp.{name_q} FOR EACH ROW \
                 EXECUTE FUNCTION pg_temp.{trigger_q}();",
                trigger_q = quoted(&trigger),
                name_q = quoted(name),
            ));
        }
    }
    client
        .batch_execute(&sql)
        .map_err(|e| anyhow::anyhow!("[sources.{name}]: {}", said(&e)))?;
    // A column that is not there or an expression that fails on the
    // server's types says so now, named after its source; so does a right
    // the role lacks on what the mapping reads: the server checks them when
    // a statement starts, so the view is read once, for no row. (Not
    // `has_table_privilege`, false for a role granted SELECT column by
    // column, the least a DBA may grant.)
    client
        .query(&format!("SELECT * FROM pg_temp.{} LIMIT 0", quoted(name)), &[])
        .map_err(|e| match e.code() {
            Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) => anyhow::anyhow!(
                "[sources.{name}]: the role rappel connects as may not read {} (it needs SELECT on it, or on each \
                 column the mapping reads): {}",
                match &source.origin {
                    Origin::Table(_) => from.as_str(),
                    Origin::Query(_) => "what its query reads",
                },
                said(&e)
            ),
            _ => anyhow::anyhow!("[sources.{name}]: {}", said(&e)),
        })?;
    if let Some((update, targets)) = probe {
        client.prepare(&update).map_err(|e| {
            anyhow::anyhow!(
                "[sources.{name}.update]: {} (each column named there must take what rappel writes: see `rappel \
                 sources`)",
                said(&e)
            )
        })?;
        let mut denied = Vec::new();
        for column in targets {
            let may: bool = client
                .query_one(
                    "SELECT has_column_privilege(CAST($1 AS text), $2, 'UPDATE')",
                    &[&from, &column],
                )?
                .get(0);
            if !may {
                denied.push(column);
            }
        }
        if !denied.is_empty() {
            anyhow::bail!(
                "[sources.{name}.update]: the role rappel connects as may not update column{} {} of {from} \
                 (it needs UPDATE on the columns named under update)",
                if denied.len() > 1 { "s" } else { "" },
                denied.join(", ")
            );
        }
    }
    let sql = if super::id_is_key(source, &infos) {
        format!("INSERT INTO pg_temp.{KEYED} (name) VALUES ($1) ON CONFLICT DO NOTHING")
    } else {
        format!("DELETE FROM pg_temp.{KEYED} WHERE name = $1")
    };
    client.execute(&sql, &[&name])?;
    Ok(())
}

/// The type of host column `column` among `columns` (as `format_type`
/// names it), `text` when it is not there.
fn type_of<'c>(columns: &'c [HostColumn], column: &str) -> &'c str {
    columns
        .iter()
        .find(|c| c.info.0.eq_ignore_ascii_case(column))
        .map_or("text", |c| c.ty.as_str())
}

/// Whether each of `targets` that rappel writes as text (a status, a
/// reason; an instant into a column that is not a date or timestamp) goes
/// to a text column: a cast from text to another type compiles, and would
/// fail only on the first row recorded. Errors: every one that does not,
/// each named with its column's type, in one line.
fn text_fits(source: &Source, columns: &[HostColumn], targets: &[(&str, Value)]) -> anyhow::Result<()> {
    let mut unfit = Vec::new();
    for (column, value) in targets {
        let ty = type_of(columns, column);
        let text = match *value {
            Value::Same(c) => matches!(target(c), Target::Text),
            Value::Instant(_) => !(ty.starts_with("timestamp") || ty == "date"),
            Value::Flag(_) => false,
        };
        let texts = ty == "text" || ty.starts_with("character") || ty == "citext";
        if text && !texts {
            let what = match *value {
                Value::Instant(_) => "an instant, as text, since it is not a date or timestamp column",
                _ => "text (a status or a reason)",
            };
            unfit.push(format!(
                "column {column} is {ty}; rappel writes {what} there, so it must be a text column"
            ));
        }
    }
    if unfit.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("[sources.{}.update]: {}", source.name, unfit.join("; "))
    }
}

/// The trigger's `UPDATE` of the host's table: its `SET` list, each column
/// of `targets` given its value from `NEW` in the column's own type, and
/// the host row's id (`selected`'s, of type in `types`), to equal `OLD.id`.
fn host_update(
    source: &Source,
    columns: &[HostColumn],
    targets: &[(&str, Value)],
    selected: &[(&str, String)],
    types: &[Type],
) -> (String, String) {
    let zone = source.naive_zone.name().replace('\'', "''");
    let assignments: Vec<String> = targets
        .iter()
        .map(|(column, value)| {
            let ty = type_of(columns, column);
            let instant = |c: &str| format!("CAST(NEW.{c} AS timestamptz)");
            let value = match *value {
                Value::Same(c) => format!("CAST(NEW.{c} AS {ty})"),
                Value::Flag(condition) if ty == "boolean" => format!("({condition})"),
                Value::Flag(condition) => format!("CAST(CASE WHEN {condition} THEN 1 ELSE 0 END AS {ty})"),
                Value::Instant(c) if ty == "timestamp with time zone" => instant(c),
                Value::Instant(c) if ty.starts_with("timestamp") || ty == "date" => {
                    format!("CAST({} AT TIME ZONE '{zone}' AS {ty})", instant(c))
                }
                // Text, as on SQLite: UTC, without an offset when naive
                // instants are UTC.
                Value::Instant(c) if source.naive_utc() => format!(
                    "CAST(to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS {ty})",
                    instant(c)
                ),
                Value::Instant(c) => format!(
                    "CAST(to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || '+00:00' AS {ty})",
                    instant(c)
                ),
            };
            format!("{} = {value}", quoted(column))
        })
        .collect();
    // The host's id as it is where it is an integer (its index serves the
    // update), else converted as the view reads it.
    let (id, ty) = selected
        .iter()
        .zip(types)
        .find(|((c, _), _)| *c == "id")
        .map_or(("NULL".to_string(), Type::INT8), |((_, e), t)| (e.clone(), t.clone()));
    let id = if [Type::INT2, Type::INT4, Type::INT8].contains(&ty) {
        id
    } else {
        converted(&id, &ty, "id")
    };
    (assignments.join(", "), id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_contract_column_has_the_type_of_rappels_own_table() {
        // sql/postgres/0007_schema.sql: bigint ids, integer flags and
        // counts, a double precision temperature, text for the rest.
        let schema = include_str!("../../../sql/postgres/0007_schema.sql");
        for (table, columns) in crate::db::host::CONTRACT {
            // A table with a foreign key is made in a DO block, without
            // `IF NOT EXISTS`.
            let start = schema
                .find(&format!("CREATE TABLE IF NOT EXISTS {table} ("))
                .or_else(|| schema.find(&format!("CREATE TABLE {table} (")))
                .unwrap_or_else(|| panic!("{table}"));
            let body = &schema[start..start + schema[start..].find(");").unwrap()];
            for column in *columns {
                let line = body
                    .lines()
                    .find(|l| {
                        let l = l.trim_start();
                        l.starts_with(&format!("{column} ")) || l.starts_with(&format!("\"{column}\" "))
                    })
                    .unwrap_or_else(|| panic!("{table}.{column}"));
                let ty = line.split_whitespace().nth(1).unwrap().trim_end_matches(',');
                let expected = match target(column) {
                    Target::Int => ["bigint", "integer"].as_slice(),
                    Target::Flag => &["integer"],
                    Target::Real => &["double"],
                    Target::Text => &["text"],
                };
                assert!(expected.contains(&ty), "{table}.{column}: {ty}");
            }
        }
    }

    #[test]
    fn host_types_are_converted_to_the_contracts() {
        let flag = converted("x", &Type::BOOL, "active");
        assert_eq!(flag, "CAST(CAST((x) AS integer) AS bigint)");
        assert!(converted("x", &Type::TIMESTAMPTZ, "created_at").contains("AT TIME ZONE 'UTC'"));
        assert!(converted("x", &Type::VARCHAR, "id").contains("bigint"));
        assert_eq!(converted("x", &Type::UUID, "id"), "CAST(NULL AS bigint)");
        assert_eq!(converted("x", &Type::VARCHAR, "name"), "CAST((x) AS text)");
    }

    #[test]
    fn a_decimal_written_as_text_is_read_as_written() {
        assert_eq!(converted("x", &Type::VARCHAR, "temperature"), "CAST((x) AS text)");
        assert!(!lossy(&Type::VARCHAR, "temperature"));
        assert_eq!(
            converted("x", &Type::FLOAT8, "temperature"),
            "CAST((x) AS double precision)"
        );
        let numeric = converted("x", &Type::NUMERIC, "temperature");
        assert!(numeric.contains(REAL_MAX) && numeric.contains(REAL_MIN), "{numeric}");
        assert!(lossy(&Type::UUID, "temperature"));
    }
}
