//! The source layout's rules (README, Development): no top-level module
//! imports one that imports it back, commands never import the composition
//! root, only `store/` and `db/` write on rappel's own `rappel_deliveries`
//! table, no other file names the database driver or holds an SQL
//! statement, and no statement names rappel's tables by their names before
//! schema 6.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Every `.rs` file under `src/`, with its text.
fn sources() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                out.push((path.to_string_lossy().into_owned(), text));
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    walk(&root, &mut out);
    out.into_iter()
        .map(|(p, t)| (p[root.to_string_lossy().len() + 1..].to_string(), t))
        .collect()
}

/// The top-level module a file belongs to (`engine/record.rs` -> `engine`).
fn top(path: &str) -> String {
    path.trim_end_matches(".rs").split('/').next().unwrap_or("").to_string()
}

/// Each top-level module and the other top-level modules its files name
/// through `crate::`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, text) in sources() {
        let from = top(&path);
        if from == "main" || from == "lib" {
            continue;
        }
        let named = graph.entry(from.clone()).or_default();
        for part in text.split("crate::").skip(1) {
            let to: String = part
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !to.is_empty() && to != from {
                named.insert(to);
            }
        }
    }
    graph
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let graph = imports();
    let mut cycles = Vec::new();
    for (a, named) in &graph {
        for b in named {
            if a < b && graph.get(b).is_some_and(|back| back.contains(a)) {
                cycles.push(format!("{a} <-> {b}"));
            }
        }
    }
    assert!(cycles.is_empty(), "modules that import each other: {cycles:?}");
}

#[test]
fn commands_never_import_the_composition_root() {
    let graph = imports();
    for module in ["cmd", "runner", "jobs", "engine", "store", "channels"] {
        assert!(
            !graph.get(module).is_some_and(|named| named.contains("app")),
            "{module} imports app"
        );
    }
}

#[test]
fn deliveries_are_written_only_by_the_store() {
    let writers: Vec<String> = sources()
        .into_iter()
        .filter(|(path, text)| {
            let store = path.starts_with("store") || path.starts_with("db");
            let writes = [
                "INSERT INTO rappel_deliveries",
                "UPDATE rappel_deliveries",
                "DELETE FROM rappel_deliveries",
            ]
            .iter()
            .any(|w| text.contains(w));
            !store && writes
        })
        .map(|(path, _)| path)
        .collect();
    assert!(
        writers.is_empty(),
        "files outside store/ writing deliveries: {writers:?}"
    );
}

#[test]
fn only_the_store_and_db_name_the_driver_or_write_sql() {
    let statements = ["SELECT ", "INSERT INTO", "UPDATE ", "DELETE FROM", "PRAGMA ", "BEGIN "];
    /// Whether `text` passes a string literal starting with `keyword` to a
    /// call or a list: `("SELECT …`, `, "UPDATE …`.
    fn statement_literal(text: &str, keyword: &str) -> bool {
        let quoted = format!("\"{keyword}");
        text.match_indices(&quoted).any(|(at, _)| {
            let before = text[..at].trim_end();
            before.ends_with('(') || before.ends_with(',') || before.ends_with('[')
        })
    }
    let outside: Vec<String> = sources()
        .into_iter()
        .filter(|(path, text)| {
            let store = path.starts_with("store") || path.starts_with("db");
            // rappel's statements are string literals passed to a call; a
            // report's own query (the operator's SQL, in the demo's
            // configuration) is not.
            let sql = statements.iter().any(|s| statement_literal(text, s));
            !store && (text.contains("rusqlite") || sql)
        })
        .map(|(path, _)| path)
        .collect();
    assert!(
        outside.is_empty(),
        "files outside store/ and db/ naming rusqlite or holding SQL: {outside:?}"
    );
}

/// rappel's tables are `rappel_*` since schema 6; their former names are
/// read-only views, or a host's own tables. No statement names a table by
/// its former name, but migration 5's step (`db/identity.rs`), which runs on
/// the schema as it was then.
#[test]
fn statements_name_rappel_tables_by_their_rappel_names() {
    let former = [
        "deliveries",
        "delay_alert_log",
        "attendance_users",
        "terminal_sync_state",
        "job_runs",
    ];
    let keywords = ["FROM", "INTO", "UPDATE", "JOIN", "TABLE", "ON"];
    let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let mut found = Vec::new();
    for (path, text) in sources() {
        if path == "db/identity.rs" {
            continue;
        }
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for keyword in keywords {
                for name in former {
                    let phrase = format!("{keyword} {name}");
                    for (at, _) in line.match_indices(&phrase) {
                        let before = line[..at].chars().next_back();
                        let after = line[at + phrase.len()..].chars().next();
                        if !word(before) && !word(after) {
                            found.push(format!("{path}:{}: {}", n + 1, line.trim()));
                        }
                    }
                }
            }
        }
    }
    assert!(found.is_empty(), "statements naming a former table name: {found:#?}");
}
