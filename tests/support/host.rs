//! Scenarios on a mapped database: [`rehost`] turns contract tables filled
//! by a test into tables shaped as a host application leaves them (its own
//! table and column names, Django's instants) and maps them back in the
//! config with `[sources.<table>]`, so the same scenario runs on both.
#![allow(clippy::disallowed_methods, reason = "test set-up writes host data directly")]

use super::TestEnv;

/// The instant columns of each contract table a host may hold.
const INSTANTS: &[(&str, &[&str])] = &[
    ("tickets", &["created_at", "closed_at"]),
    ("ticket_events", &["entered_at"]),
    ("loans", &["lent_at", "due_at", "returned_at"]),
    ("students", &["subscribed_at", "last_active_at"]),
    ("revision_sessions", &["starts_at", "completed_at"]),
    ("manual_reminders", &["created_at", "sent_at"]),
    ("scheduled_reports", &["scheduled_at", "sent_at", "next_attempt_at"]),
    ("attendance_logs", &["punched_at", "next_attempt_at", "synced_at"]),
];

/// What rappel keeps up to date in a host table (`[sources.<table>.update]`):
/// here, the host's columns of the same names.
const KEPT: &[(&str, &[&str])] = &[(
    "attendance_logs",
    &[
        "sync_status",
        "sync_attempts",
        "next_attempt_at",
        "synced_at",
        "sync_error",
    ],
)];

/// A contract column each host names its own way: renamed in the host
/// table, mapped back in `[sources.<table>.columns]`.
const RENAMED: &[(&str, &str, &str)] = &[
    ("contacts", "name", "full_name"),
    ("tickets", "reference", "ref"),
    ("ticket_events", "entered_at", "created"),
    ("loans", "due_at", "date_retour"),
    ("students", "contact_id", "user_id"),
    ("revision_sessions", "starts_at", "debut"),
    ("terminals", "serial", "sn"),
    ("attendance_logs", "enroll_id", "enrollid"),
];

/// The host table that holds contract table `table` after [`rehost`].
pub fn host_table(table: &str) -> String {
    format!("app_{table}")
}

/// Renames each of `tables` (contract tables, rows in place) to
/// [`host_table`], renames the columns of [`RENAMED`], rewrites its
/// instants as Django writes them (`2026-03-10 07:00:00.000000`, naive UTC),
/// and appends the `[sources]` mapping to the config. rappel reads the same
/// rows through the mapping; a test writes to the host names from then on.
pub fn rehost(env: &TestEnv, tables: &[&str]) {
    let db = env.db();
    let mut config = std::fs::read_to_string(env.config_path()).unwrap();
    for &table in tables {
        let host = host_table(table);
        db.execute_batch(&format!("ALTER TABLE {table} RENAME TO {host}"))
            .unwrap();
        let instants = INSTANTS.iter().find(|(t, _)| *t == table).map_or(&[][..], |(_, c)| c);
        for column in instants {
            db.execute_batch(&format!(
                "UPDATE {host} SET {column} = strftime('%Y-%m-%d %H:%M:%f', {column}) || '000'
                 WHERE {column} GLOB '[0-9][0-9][0-9][0-9]-*T*Z'"
            ))
            .unwrap();
        }
        config.push_str(&format!("\n[sources.{table}]\ntable = \"{host}\"\n"));
        let renamed: Vec<_> = RENAMED.iter().filter(|(t, _, _)| *t == table).collect();
        if !renamed.is_empty() {
            config.push_str(&format!("[sources.{table}.columns]\n"));
        }
        for (_, column, new) in renamed {
            db.execute_batch(&format!("ALTER TABLE {host} RENAME COLUMN {column} TO {new}"))
                .unwrap();
            config.push_str(&format!("{column} = \"{new}\"\n"));
        }
        if let Some((_, kept)) = KEPT.iter().find(|(t, _)| *t == table) {
            config.push_str(&format!("[sources.{table}.update]\n"));
            for column in *kept {
                config.push_str(&format!("{column} = \"{column}\"\n"));
            }
        }
    }
    env.write_config(&config);
}
