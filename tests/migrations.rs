//! Schema 6 on real files, through `rappel db migrate`: rappel's tables take
//! their `rappel_*` names with their rows, the former names stay as
//! read-only views where they are free, a host's own tables under those
//! names are left as they are, and migrating again changes nothing.

use rusqlite::Connection;

use crate::support::{SmtpServer, TestEnv};

const NOW: &str = "2026-03-10T07:00:00Z";

/// The names rappel's tables had before schema 6.
const FORMER: &[&str] = &[
    "deliveries",
    "delay_alert_log",
    "attendance_users",
    "terminal_sync_state",
    "job_runs",
];

/// Every object of the main schema: `(type, name, table, sql)`, sorted.
fn schema(db: &Connection) -> Vec<(String, String, String, Option<String>)> {
    let mut stmt = db
        .prepare("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// What holds `name` in the main schema (`table`, `view`...), if anything.
fn kind_of(db: &Connection, name: &str) -> Option<String> {
    db.query_row("SELECT type FROM sqlite_master WHERE name = ?1", [name], |r| r.get(0))
        .ok()
}

/// Every row of `table` (or view) as text, by its first column.
fn rows(db: &Connection, table: &str) -> Vec<String> {
    let mut stmt = db.prepare(&format!("SELECT * FROM {table} ORDER BY 1")).unwrap();
    let n = stmt.column_count();
    stmt.query_map([], |r| {
        (0..n)
            .map(|i| r.get_ref(i).map(|v| format!("{v:?}")))
            .collect::<rusqlite::Result<Vec<_>>>()
            .map(|cells| cells.join("|"))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

fn columns(db: &Connection, table: &str) -> Vec<String> {
    let mut stmt = db.prepare("SELECT name FROM pragma_table_info(?1)").unwrap();
    stmt.query_map([table], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn version(db: &Connection) -> String {
    db.query_row("SELECT value FROM rappel_meta WHERE key = 'schema_version'", [], |r| {
        r.get(0)
    })
    .unwrap()
}

/// The environment's database file removed (with its WAL files), so the
/// test can make the file rappel will find.
fn without_database(env: &TestEnv) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", env.db_path().display()));
    }
}

/// A schema-5 database with a delivery, its delay alert and a run, made by
/// hand the way rappel 5 left it, becomes schema 6 with the same rows under
/// the `rappel_*` names, each former name a view that still reads them.
#[test]
fn a_schema_5_database_keeps_its_rows_under_the_rappel_names() {
    let smtp = SmtpServer::start();
    let env = TestEnv::new(smtp.port, "");
    let fresh = schema(&env.db());
    without_database(&env);
    let db = env.db();
    for sql in [
        include_str!("../sql/0001_initial.sql"),
        include_str!("../sql/0002_reports.sql"),
        include_str!("../sql/0003_sessions.sql"),
        include_str!("../sql/0004_attendance.sql"),
        include_str!("../sql/0005_row_identity.sql"),
    ] {
        db.execute_batch(sql).unwrap();
    }
    db.execute_batch(
        // Migration 5's own step drops the table it carried over.
        "DROP TABLE report_recurrences;
         CREATE TABLE rappel_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
         INSERT INTO rappel_meta VALUES ('schema_version', '5');
         INSERT INTO deliveries (id, job, kind, dedupe_key, channel, recipient, subject, status, attempts,
                                 created_at, sent_at)
         VALUES (7, 'check-delay-alerts', 'delay_alert', 'delay_alert:awa@example.com:2026-03-10T06:30:00Z',
                 'email', 'awa@example.com', 'Delay: 1 ticket', 'sent', 1,
                 '2026-03-10T06:30:00Z', '2026-03-10T06:30:02Z');
         INSERT INTO delay_alert_log (event_id, ticket_id, stage, days_in_stage, alerted_at, delivery_id, entered_at)
         VALUES (1, 1, 'Diagnostic', 20, '2026-03-10T06:30:00Z', 7, '2026-02-17T07:00:00Z');
         INSERT INTO job_runs (id, job, started_at, finished_at, planned, sent, exit_code)
         VALUES (3, 'check-delay-alerts', '2026-03-10T06:30:00Z', '2026-03-10T06:30:03Z', 1, 1, 0);
         INSERT INTO terminals (id, serial) VALUES (1, 'TM20-001');
         INSERT INTO attendance_users (service, enroll_id, name, synced_at) VALUES ('rh', 12, 'Awa', '2026-03-09T06:00:00Z');
         INSERT INTO terminal_sync_state (terminal_id, service, last_users_sync) VALUES (1, 'rh', '2026-03-09T06:00:00Z');",
    )
    .unwrap();
    let before: Vec<(&str, Vec<String>)> = FORMER.iter().map(|t| (*t, rows(&db, t))).collect();
    drop(db);

    let out = env.run(&["db", "migrate"], NOW).success();
    assert!(out.stdout.contains("applied 0006_rappel_names.sql"), "{}", out.stdout);
    assert!(out.stdout.contains("schema 5 -> 9"), "{}", out.stdout);

    let db = env.db();
    assert_eq!(version(&db), "9");
    for (table, old_rows) in &before {
        assert_eq!(old_rows.len(), 1, "{table}");
        let renamed = format!("rappel_{table}");
        assert_eq!(kind_of(&db, &renamed).as_deref(), Some("table"), "{renamed}");
        // Columns added since schema 5 come after the old ones, empty.
        let kept = |table: &str| -> Vec<String> {
            rows(&db, table)
                .iter()
                .zip(old_rows)
                .map(|(new, old)| match new.strip_prefix(old.as_str()) {
                    Some(rest) if rest.split('|').all(|c| c.is_empty() || c == "Null") => old.clone(),
                    _ => new.clone(),
                })
                .collect()
        };
        assert_eq!(&kept(&renamed), old_rows, "{renamed} keeps the rows");
        assert_eq!(kind_of(&db, table).as_deref(), Some("view"), "{table}");
        assert_eq!(&kept(table), old_rows, "the view {table} reads them");
    }
    let (recipient, status): (String, String) = db
        .query_row("SELECT recipient, status FROM deliveries WHERE id = 7", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((recipient.as_str(), status.as_str()), ("awa@example.com", "sent"));
    let parent: String = db
        .query_row(
            "SELECT \"table\" FROM pragma_foreign_key_list('rappel_delay_alert_log')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(parent, "rappel_deliveries", "the alert still points at its delivery");
    for index in [
        "deliveries_pending",
        "deliveries_source_open",
        "delay_alert_log_event",
        "job_runs_job",
    ] {
        assert_eq!(kind_of(&db, index), None, "{index} is gone");
        let renamed = format!("rappel_{index}");
        assert_eq!(kind_of(&db, &renamed).as_deref(), Some("index"), "{renamed}");
    }
    let check: String = db.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
    assert_eq!(schema(&db), fresh, "an upgraded database has the schema a new one gets");
    drop(db);

    let status = env.run(&["db", "status"], NOW).success();
    assert!(status.stdout.contains("up to date"), "{}", status.stdout);
    // Jobs go on, recording into the renamed tables: the alert sent half an
    // hour before is not sent again (its history came along).
    let awa = env.contact("Awa", "awa@example.com");
    env.recipient(awa, None);
    env.ticket("T-1", &[("Diagnostic", "2026-02-17T07:00:00Z")]);
    env.run(&["check-delay-alerts"], NOW).success();
    assert!(smtp.mails().is_empty(), "alerted before the upgrade");
    let db = env.db();
    let runs: i64 = db
        .query_row("SELECT count(*) FROM rappel_job_runs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(runs, 2, "the run before the upgrade and this one");
    assert_eq!(rows(&db, "job_runs").len(), 2, "the view sees the new run");
}

/// A database whose host already has tables named `deliveries` and
/// `job_runs` (its own, other columns) and an index named as one of rappel's
/// were: migrating leaves each as it was, makes no view under those names,
/// and rappel works in its own `rappel_*` tables.
#[test]
fn a_host_table_under_a_former_name_is_left_as_it_is() {
    let smtp = SmtpServer::start();
    let env = TestEnv::new(smtp.port, "[delay_alerts]\nthreshold_days = 14\nrearm_hours = 24\n");
    without_database(&env);
    let host = "CREATE TABLE deliveries (id INTEGER PRIMARY KEY, parcel TEXT NOT NULL, courier TEXT, shipped_on TEXT);
         CREATE INDEX deliveries_pending ON deliveries (courier) WHERE shipped_on IS NULL;
         CREATE TABLE job_runs (name TEXT NOT NULL, ran_on TEXT);";
    let db = env.db();
    db.execute_batch(host).unwrap();
    db.execute_batch(
        "INSERT INTO deliveries (parcel, courier, shipped_on) VALUES ('P-1', 'DHL', NULL), ('P-2', 'UPS', '2026-03-01');
         INSERT INTO job_runs VALUES ('nightly-export', '2026-03-09');",
    )
    .unwrap();
    let host_schema: Vec<_> = schema(&db);
    let host_rows = (rows(&db, "deliveries"), rows(&db, "job_runs"));
    let host_columns = (columns(&db, "deliveries"), columns(&db, "job_runs"));
    drop(db);

    let out = env.run(&["db", "migrate"], NOW).success();
    assert!(out.stdout.contains("schema 0 -> 9"), "{}", out.stdout);
    let unchanged = |db: &Connection| {
        assert_eq!((columns(db, "deliveries"), columns(db, "job_runs")), host_columns);
        assert_eq!((rows(db, "deliveries"), rows(db, "job_runs")), host_rows);
        let now = schema(db);
        for object in &host_schema {
            assert!(now.contains(object), "the host's {object:?} is as it was");
        }
    };
    let db = env.db();
    unchanged(&db);
    assert_eq!(version(&db), "9");
    assert_eq!(kind_of(&db, "deliveries").as_deref(), Some("table"));
    assert_eq!(kind_of(&db, "job_runs").as_deref(), Some("table"));
    for free in ["delay_alert_log", "attendance_users", "terminal_sync_state"] {
        assert_eq!(kind_of(&db, free).as_deref(), Some("view"), "{free}");
    }
    assert!(columns(&db, "rappel_deliveries").contains(&"dedupe_key".to_string()));
    assert!(columns(&db, "rappel_job_runs").contains(&"cancelled".to_string()));
    let parent: String = db
        .query_row(
            "SELECT \"table\" FROM pragma_foreign_key_list('rappel_delay_alert_log')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(parent, "rappel_deliveries");
    drop(db);

    let status = env.run(&["db", "status"], NOW).success();
    assert!(status.stdout.contains("up to date"), "{}", status.stdout);
    let awa = env.contact("Awa", "awa@example.com");
    env.recipient(awa, None);
    env.ticket("T-1", &[("Diagnostic", "2026-02-17T07:00:00Z")]);
    env.run(&["check-delay-alerts"], NOW).success();
    assert_eq!(smtp.mails().len(), 1, "the alert went");
    let db = env.db();
    let sent: String = db
        .query_row("SELECT status FROM rappel_deliveries", [], |r| r.get(0))
        .unwrap();
    assert_eq!(sent, "sent");
    let run: String = db
        .query_row("SELECT job FROM rappel_job_runs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(run, "check-delay-alerts");
    unchanged(&db);
    drop(db);

    env.run(&["db", "migrate"], NOW).success();
    unchanged(&env.db());
}

/// `db migrate` on a database already at schema 6 changes nothing: not the
/// schema (views included), not a row.
#[test]
fn migrating_twice_changes_nothing() {
    let smtp = SmtpServer::start();
    let env = TestEnv::new(smtp.port, "");
    env.run(&["test-email", "--to", "ops@example.com"], NOW).success();
    let db = env.db();
    for name in FORMER {
        assert_eq!(kind_of(&db, name).as_deref(), Some("view"), "{name}");
    }
    let before = (schema(&db), env.dump());
    drop(db);
    let out = env.run(&["db", "migrate"], NOW).success();
    assert!(out.stdout.contains("schema 9, up to date"), "{}", out.stdout);
    assert_eq!((schema(&env.db()), env.dump()), before);
    // A view dropped by hand comes back; one the host made instead stays.
    env.db()
        .execute_batch(
            "DROP VIEW deliveries; DROP VIEW job_runs;
             CREATE VIEW job_runs AS SELECT job, started_at FROM rappel_job_runs",
        )
        .unwrap();
    env.run(&["db", "migrate"], NOW).success();
    let db = env.db();
    assert_eq!(kind_of(&db, "deliveries").as_deref(), Some("view"));
    assert_eq!(columns(&db, "job_runs"), ["job", "started_at"], "the host's view stays");
}
