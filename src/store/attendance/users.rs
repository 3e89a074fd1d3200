//! `rappel_attendance_users`: the employees each HR service lists, upserted by
//! (service, enroll_id), and the pull's time on each of the service's
//! terminals (`rappel_terminal_sync_state.last_users_sync`).

use chrono::{DateTime, Utc};

use crate::instant;
use crate::params;
use crate::store::{Conn, Result};

/// One employee of an HR service's users list.
#[derive(Debug, PartialEq)]
pub struct User {
    pub enroll_id: i64,
    pub name: String,
    pub admin: i64,
    pub enabled: bool,
    pub weekzone: Option<i64>,
    pub group: Option<i64>,
}

/// Upserts the `users` pulled from `service` and records the pull at `now`
/// (UTC) on each of `terminal_ids`, in one write transaction (`BEGIN
/// IMMEDIATE`). Users the service no longer lists are kept. Errors:
/// `StoreError` (SQLite's, the write lock held past the busy timeout among
/// them); nothing is written then. PostgreSQL runs the same `INSERT … ON
/// CONFLICT … DO UPDATE` statements in one transaction.
pub fn record_pull(
    conn: &mut Conn,
    service: &str,
    users: &[User],
    terminal_ids: &[i64],
    now: DateTime<Utc>,
) -> Result<()> {
    let now = instant::format(now);
    let tx = crate::store::begin(conn)?;
    for u in users {
        tx.execute(
            "INSERT INTO rappel_attendance_users (service, enroll_id, name, admin, enabled, weekzone, grp, synced_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (service, enroll_id) DO UPDATE SET name = excluded.name, admin = excluded.admin,
                 enabled = excluded.enabled, weekzone = excluded.weekzone, grp = excluded.grp,
                 synced_at = excluded.synced_at",
            params![
                service,
                u.enroll_id,
                u.name,
                u.admin,
                u.enabled,
                u.weekzone,
                u.group,
                now
            ],
        )?;
    }
    for id in terminal_ids {
        tx.execute(
            "INSERT INTO rappel_terminal_sync_state (terminal_id, service, last_users_sync) VALUES (?1, ?2, ?3)
             ON CONFLICT (terminal_id, service) DO UPDATE SET last_users_sync = excluded.last_users_sync",
            params![id, service, now],
        )?;
    }
    tx.commit()
}
