//! The names rappel's own tables had before schema 6 (`deliveries`,
//! `job_runs`...): since then each table is `rappel_<name>`, and each former
//! name stays as a read-only view of it, for readers written before, where
//! nothing of the host's holds that name.

use rusqlite::{Connection, TransactionBehavior};

use super::taken;

/// The former names; each table is now `rappel_<name>`.
pub const TABLES: &[&str] = &[
    "deliveries",
    "delay_alert_log",
    "attendance_users",
    "terminal_sync_state",
    "job_runs",
];

/// Makes `CREATE VIEW <name> AS SELECT * FROM rappel_<name>` for each
/// former name no object holds, in one `BEGIN IMMEDIATE`; a name the host
/// uses is left alone, and a view already made is kept as it is, so running
/// it again changes nothing. Returns the views it made.
pub fn ensure_views(conn: &mut Connection) -> rusqlite::Result<Vec<&'static str>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut made = Vec::new();
    for name in TABLES {
        let table = format!("rappel_{name}");
        if taken(&tx, name)? || !taken(&tx, &table)? {
            continue;
        }
        tx.execute_batch(&format!("CREATE VIEW {name} AS SELECT * FROM {table}"))?;
        made.push(*name);
    }
    tx.commit()?;
    Ok(made)
}
