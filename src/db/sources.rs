//! Input tables mapped onto the host application's own tables (DESIGN §9,
//! `[sources.<table>]`): each mapped source becomes, on every connection, a
//! TEMP view of the contract's name and columns over the host's table or
//! query. rappel's queries read it as they read a contract table; nothing is
//! created, altered or indexed in the host's schema, and the view goes with
//! the connection.

use std::collections::BTreeMap;

use rusqlite::Connection;

/// Where a mapped source reads from.
#[derive(Clone, Debug, PartialEq)]
pub enum Origin {
    /// A host table (or view), by name.
    Table(String),
    /// A `SELECT` returning the contract's columns (by name).
    Query(String),
}

/// One input table read from the host's data: `[sources.<name>]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Source {
    /// The contract table it stands for (`tickets`).
    pub name: &'static str,
    pub origin: Origin,
    /// Contract column -> host column or SQL expression over the host
    /// table's columns (`table` form only).
    pub columns: BTreeMap<String, String>,
}

/// The sources that may be mapped today. The others are written by rappel
/// (a report's status, a manual reminder's `sent_at`, a punch's sync state,
/// a terminal's sync bookkeeping refers to its row) and stay contract tables.
pub const MAPPABLE: &[&str] = &[
    "contacts",
    "tickets",
    "ticket_events",
    "alert_recipients",
    "loans",
    "students",
    "revision_sessions",
];

/// What a contract column is when the host has nothing for it (DESIGN §4's
/// defaults); a column not listed has none and must be mapped.
const DEFAULTS: &[(&str, &str, &str)] = &[
    ("contacts", "email", "NULL"),
    ("contacts", "phone", "NULL"),
    ("contacts", "locale", "NULL"),
    ("contacts", "timezone", "NULL"),
    ("contacts", "email_enabled", "1"),
    ("contacts", "whatsapp_enabled", "0"),
    ("contacts", "sms_enabled", "0"),
    ("contacts", "muted_kinds", "''"),
    ("tickets", "device", "''"),
    ("tickets", "customer", "''"),
    ("tickets", "closed_at", "NULL"),
    ("alert_recipients", "active", "1"),
    ("alert_recipients", "stages", "NULL"),
    ("loans", "term", "'long'"),
    ("loans", "returned_at", "NULL"),
    ("students", "parent_contact_id", "NULL"),
    ("students", "subscription_active", "1"),
    ("students", "subscribed_at", "NULL"),
    ("students", "last_active_at", "NULL"),
    ("revision_sessions", "objective", "''"),
    ("revision_sessions", "link", "NULL"),
    ("revision_sessions", "cancelled", "0"),
    ("revision_sessions", "completed_at", "NULL"),
];

fn default_of(source: &str, column: &str) -> Option<&'static str> {
    DEFAULTS
        .iter()
        .find(|(s, c, _)| *s == source && *c == column)
        .map(|(_, _, d)| *d)
}

/// The contract's columns of input table `name` (DESIGN §4).
pub fn contract_columns(name: &str) -> Option<&'static [&'static str]> {
    super::host::CONTRACT
        .iter()
        .find(|(t, _)| *t == name)
        .map(|(_, columns)| *columns)
}

/// An SQL identifier in double quotes.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Creates the TEMP view of each source on `conn`, after checking that
/// each reads: its table exists, every contract column without a default
/// is mapped or found under its own name, each expression compiles.
/// Errors: one line naming the source, the column and the fix.
pub fn create_views(conn: &Connection, sources: &[Source]) -> anyhow::Result<()> {
    for source in sources {
        let sql = view_sql(conn, source)?;
        conn.execute_batch(&sql)
            .map_err(|e| anyhow::anyhow!("[sources.{}]: {e}", source.name))?;
        // A column that is not there or an expression that does not compile
        // says so now, named after its source, not in the middle of a job.
        conn.prepare(&format!("SELECT * FROM temp.{}", quoted(source.name)))
            .map_err(|e| anyhow::anyhow!("[sources.{}]: {e}", source.name))?;
    }
    Ok(())
}

/// `CREATE TEMP VIEW <name> AS SELECT <contract columns> FROM <origin>`.
fn view_sql(conn: &Connection, source: &Source) -> anyhow::Result<String> {
    let name = source.name;
    let contract = contract_columns(name).ok_or_else(|| anyhow::anyhow!("[sources.{name}]: not an input table"))?;
    let (from, available) = match &source.origin {
        Origin::Table(table) => {
            let columns = host_columns(conn, table)?;
            if columns.is_empty() {
                anyhow::bail!(
                    "[sources.{name}]: table {table:?} is not in the database (check `table`, or the `database` path)"
                );
            }
            (format!("main.{}", quoted(table)), columns)
        }
        Origin::Query(query) => {
            let columns = query_columns(conn, query).map_err(|e| {
                anyhow::anyhow!("[sources.{name}]: the query does not compile: {e} (run it in sqlite3 to see why)")
            })?;
            (format!("({query})"), columns)
        }
    };
    let mut select = Vec::with_capacity(contract.len());
    for column in contract.iter().copied() {
        let expr = match source.columns.get(column) {
            Some(expr) => format!("({expr})"),
            None if available.iter().any(|c| c.eq_ignore_ascii_case(column)) => {
                format!("{}.{}", quoted("rappel_source"), quoted(column))
            }
            None => match default_of(name, column) {
                Some(default) => default.to_string(),
                None => anyhow::bail!(missing(source, column)),
            },
        };
        select.push(format!("{expr} AS {}", quoted(column)));
    }
    Ok(format!(
        "CREATE TEMP VIEW IF NOT EXISTS {} AS SELECT {} FROM {from} AS {}",
        quoted(name),
        select.join(", "),
        quoted("rappel_source")
    ))
}

/// The error for a contract column the host has nothing for.
fn missing(source: &Source, column: &str) -> String {
    let name = source.name;
    match &source.origin {
        Origin::Table(table) => format!(
            "[sources.{name}]: column `{column}` is not in table {table:?}; map it to a column or an SQL \
             expression over that table under [sources.{name}.columns] ({column} = \"...\")"
        ),
        Origin::Query(_) => format!("[sources.{name}]: the query returns no column `{column}`; add `... AS {column}`"),
    }
}

/// The columns of the host's table (or view) `table` in the main schema;
/// none when it does not exist.
fn host_columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info(?1, 'main')")?;
    let names = stmt.query_map([table], |r| r.get(0))?;
    names.collect()
}

/// The names of the columns `query` returns.
fn query_columns(conn: &Connection, query: &str) -> rusqlite::Result<Vec<String>> {
    let stmt = conn.prepare(&format!("SELECT * FROM ({query})"))?;
    Ok(stmt.column_names().map(str::to_string).collect())
}

/// The statements of a migration file, without their comments (`--` to
/// the end of the line; the files hold no `--` inside a string) and without
/// their ending `;`.
pub fn statements(sql: &str) -> Vec<String> {
    let text: String = sql
        .lines()
        .map(|line| line.split("--").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    text.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// The table a migration statement creates, alters, indexes or writes
/// (`CREATE TABLE [IF NOT EXISTS] t`, `CREATE [UNIQUE] INDEX [IF NOT
/// EXISTS] i ON t`, `ALTER TABLE t`, `INSERT INTO t`, `UPDATE t`, `DELETE
/// FROM t`), lower-cased; `None` for any other statement.
pub fn target(statement: &str) -> Option<String> {
    let words: Vec<String> = statement
        .split(|c: char| c.is_whitespace() || c == '(')
        .filter(|w| !w.is_empty())
        .map(|w| w.trim_matches('"').to_ascii_lowercase())
        .collect();
    let word = |i: usize| words.get(i).map(String::as_str);
    let after_if_not_exists = |i: usize| {
        if word(i) == Some("if") && word(i + 1) == Some("not") && word(i + 2) == Some("exists") {
            i + 3
        } else {
            i
        }
    };
    let at = match (word(0)?, word(1)?) {
        ("create", "table") => after_if_not_exists(2),
        ("create", "index") | ("create", "unique") => {
            let on = words.iter().position(|w| w == "on")?;
            on + 1
        }
        ("alter", "table") => 2,
        ("insert", "into") | ("delete", "from") => 2,
        ("update", _) => 1,
        _ => return None,
    };
    word(at).map(str::to_string)
}

/// The input tables mapped on `conn` (its TEMP views).
pub fn mapped(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached("SELECT name FROM sqlite_temp_master WHERE type = 'view'")?;
    let names = stmt.query_map([], |r| r.get(0))?;
    names.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Connection {
        #[allow(clippy::disallowed_methods, reason = "a scratch database for the test")]
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE repairs_ticket (id integer PRIMARY KEY, numero text NOT NULL, modele text,
                                          statut text, cree_le datetime, cloture_le datetime);
             INSERT INTO repairs_ticket VALUES (1, 'R-1', 'Pixel', 'livre', '2026-02-01 10:00:00', NULL);",
        )
        .unwrap();
        conn
    }

    fn tickets(columns: &[(&str, &str)]) -> Source {
        Source {
            name: "tickets",
            origin: Origin::Table("repairs_ticket".into()),
            columns: columns.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    #[test]
    fn a_mapped_table_reads_as_the_contract_with_defaults_for_the_rest() {
        let conn = conn();
        let source = tickets(&[
            ("reference", "numero"),
            ("device", "modele"),
            ("created_at", "cree_le"),
            (
                "closed_at",
                "CASE WHEN statut = 'livre' THEN coalesce(cloture_le, cree_le) END",
            ),
        ]);
        create_views(&conn, &[source]).unwrap();
        let row: (i64, String, String, String, Option<String>) = conn
            .query_row(
                "SELECT id, reference, device, customer, closed_at FROM tickets",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .unwrap();
        assert_eq!(
            row,
            (
                1,
                "R-1".into(),
                "Pixel".into(),
                String::new(),
                Some("2026-02-01 10:00:00".into())
            )
        );
        assert_eq!(mapped(&conn).unwrap(), ["tickets"]);
        let created: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master WHERE name = 'tickets'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(created, 0, "nothing in the host's schema");
    }

    #[test]
    fn a_column_without_a_default_must_be_mapped_and_the_error_says_how() {
        let e = create_views(&conn(), &[tickets(&[("created_at", "cree_le")])]).unwrap_err();
        let e = e.to_string();
        assert!(e.contains("[sources.tickets]") && e.contains("`reference`"), "{e}");
        assert!(e.contains("[sources.tickets.columns]"), "{e}");
    }

    #[test]
    fn an_expression_over_a_missing_column_is_named_with_its_source() {
        let source = tickets(&[("reference", "numero"), ("created_at", "date_creation")]);
        let e = create_views(&conn(), &[source]).unwrap_err().to_string();
        assert!(e.contains("[sources.tickets]") && e.contains("date_creation"), "{e}");
    }

    #[test]
    fn a_query_source_gets_defaults_and_must_return_the_required_columns() {
        let conn = conn();
        let ok = Source {
            name: "tickets",
            origin: Origin::Query("SELECT id, numero AS reference, cree_le AS created_at FROM repairs_ticket".into()),
            columns: BTreeMap::new(),
        };
        create_views(&conn, &[ok]).unwrap();
        let device: String = conn.query_row("SELECT device FROM tickets", [], |r| r.get(0)).unwrap();
        assert_eq!(device, "");
        let bad = Source {
            name: "ticket_events",
            origin: Origin::Query("SELECT id, id AS ticket_id FROM repairs_ticket".into()),
            columns: BTreeMap::new(),
        };
        let e = create_views(&conn, &[bad]).unwrap_err().to_string();
        assert!(e.contains("[sources.ticket_events]") && e.contains("AS stage"), "{e}");
        let broken = Source {
            name: "loans",
            origin: Origin::Query("SELEC nothing".into()),
            columns: BTreeMap::new(),
        };
        let e = create_views(&conn, &[broken]).unwrap_err().to_string();
        assert!(e.contains("[sources.loans]") && e.contains("does not compile"), "{e}");
    }

    #[test]
    fn each_statement_of_the_migrations_names_its_table() {
        let mut targets = Vec::new();
        for sql in [
            include_str!("../../sql/0001_initial.sql"),
            include_str!("../../sql/0005_row_identity.sql"),
        ] {
            for s in statements(sql) {
                assert!(!s.contains("--") && !s.ends_with(';'), "{s}");
                targets.push(target(&s));
            }
        }
        for table in [
            "tickets",
            "ticket_events",
            "contacts",
            "revision_sessions",
            "deliveries",
        ] {
            assert!(targets.contains(&Some(table.to_string())), "{table}: {targets:?}");
        }
        assert_eq!(
            target("CREATE UNIQUE INDEX IF NOT EXISTS x ON \"Loans\" (id)").as_deref(),
            Some("loans")
        );
        assert_eq!(
            target("ALTER TABLE tickets ADD COLUMN x TEXT").as_deref(),
            Some("tickets")
        );
        assert_eq!(target("DROP INDEX IF EXISTS x"), None);
    }

    #[test]
    fn a_missing_host_table_is_named() {
        let source = Source {
            name: "tickets",
            origin: Origin::Table("repairs_tickets".into()),
            columns: BTreeMap::new(),
        };
        let e = create_views(&conn(), &[source]).unwrap_err().to_string();
        assert!(e.contains("\"repairs_tickets\" is not in the database"), "{e}");
    }
}
