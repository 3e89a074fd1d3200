//! The migrations' statements beside mapped sources: split into statements,
//! each named by the table it writes (a mapped source's are left out), and
//! contract tables made without foreign keys to mapped sources.

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

/// `sql` (a contract table's `CREATE TABLE`) without its foreign keys to
/// the `mapped` sources: there is no such table to refer to, and with
/// foreign keys on, the host's inserts into this one would fail.
pub fn without_references(sql: &str, mapped: &[String]) -> String {
    let mut out = sql.to_string();
    for m in mapped {
        for form in [format!(" REFERENCES {m}(id)"), format!(" REFERENCES {m} (id)")] {
            out = out.replace(&form, "");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_statement_of_the_migrations_names_its_table() {
        let mut targets = Vec::new();
        for sql in [
            include_str!("../../../sql/0001_initial.sql"),
            include_str!("../../../sql/0005_row_identity.sql"),
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
    fn a_contract_table_loses_its_foreign_keys_to_mapped_sources_only() {
        let sql = "CREATE TABLE students (id INTEGER PRIMARY KEY, contact_id INTEGER NOT NULL REFERENCES contacts(id),
                   parent_contact_id INTEGER REFERENCES contacts (id), x INTEGER REFERENCES loans(id))";
        let out = without_references(sql, &["contacts".to_string()]);
        assert!(!out.contains("contacts"), "{out}");
        assert!(out.contains("REFERENCES loans(id)"), "{out}");
    }
}
