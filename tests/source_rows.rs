//! A message belongs to one source row: a host row that reuses the id of a
//! deleted one is a new row (its own messages, its own status), and rows
//! written before rappel named them by their instant keep their history.

mod support;

use rusqlite::params;
use support::{SmtpServer, TestEnv};

/// SQLite gives a new row the id of a deleted last row: the new report is
/// sent, and marked sent for its own delivery, not the old one's.
#[test]
fn a_report_row_that_reuses_an_id_is_sent_and_counted_for_itself() {
    let smtp = SmtpServer::start();
    let env = TestEnv::new(smtp.port, "[reports.definitions.open]\nquery = \"SELECT 1 AS one\"\n");
    let first = env.report(
        "January close",
        "boss@example.com",
        "2026-02-01 07:00:00",
        None,
        Some("open"),
    );
    env.run(&["send-reports"], "2026-02-01T07:05:00Z").success();
    assert_eq!(env.report_status(first).0, "sent");
    env.db()
        .execute_batch(
            "DELETE FROM scheduled_reports;
             INSERT INTO scheduled_reports (title, recipients, scheduled_at, report)
             VALUES ('February close', 'boss@example.com', '2026-03-01 07:00:00', 'open');",
        )
        .unwrap();
    let second: i64 = env
        .db()
        .query_row("SELECT id FROM scheduled_reports", [], |r| r.get(0))
        .unwrap();
    assert_eq!(second, first, "SQLite reused the id");
    env.run(&["send-reports"], "2026-03-01T06:00:00Z").success();
    assert_eq!(env.report_status(second).0, "pending", "not sent before its time");
    env.run(&["send-reports"], "2026-03-01T07:05:00Z").success();
    let subjects: Vec<String> = smtp.mails().iter().map(|m| m.subject()).collect();
    assert_eq!(subjects.len(), 2, "{subjects:?}");
    assert!(subjects[1].contains("February close"), "{subjects:?}");
    let (status, sent_at): (String, String) = env
        .db()
        .query_row("SELECT status, sent_at FROM scheduled_reports", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((status.as_str(), sent_at.as_str()), ("sent", "2026-03-01T07:05:00Z"));
    let keys: Vec<String> = column(&env, "SELECT dedupe_key FROM deliveries ORDER BY id");
    assert_eq!(
        keys,
        [
            "report:1@2026-02-01T07:00:00Z:boss@example.com",
            "report:1@2026-03-01T07:00:00Z:boss@example.com"
        ]
    );
}

/// A recurring report row replaced under the same id gets its own next occurrence.
#[test]
fn a_recurring_report_under_a_reused_id_still_schedules_its_next() {
    let smtp = SmtpServer::start();
    let env = TestEnv::new(smtp.port, "[reports.definitions.open]\nquery = \"SELECT 1 AS one\"\n");
    let insert = |at: &str| {
        env.db()
            .execute(
                "INSERT INTO scheduled_reports (title, recipients, scheduled_at, report, recurrence)
                 VALUES ('Daily', 'boss@example.com', ?1, 'open', '0 8 * * *')",
                [at],
            )
            .unwrap();
    };
    insert("2026-03-10T07:00:00Z");
    env.run(&["send-reports"], "2026-03-10T07:05:00Z").success();
    // The host deletes every row, the last one first, and starts afresh.
    env.db()
        .execute_batch("DELETE FROM scheduled_reports WHERE id = 2; DELETE FROM scheduled_reports;")
        .unwrap();
    insert("2026-03-12T07:00:00Z");
    env.run(&["send-reports"], "2026-03-12T07:05:00Z").success();
    let rows: Vec<String> = column(
        &env,
        "SELECT id || ' ' || status || ' ' || scheduled_at FROM scheduled_reports ORDER BY id",
    );
    assert_eq!(
        rows,
        ["1 sent 2026-03-12T07:00:00Z", "2 pending 2026-03-13T07:00:00Z"],
        "the new row 1 has its next occurrence too"
    );
}

/// A loan re-entered under a deleted loan's id, the same day, for another
/// borrower: the new borrower gets the confirmation.
#[test]
fn a_loan_that_reuses_an_id_gets_its_own_reminders() {
    let smtp = SmtpServer::start();
    let env = TestEnv::new(smtp.port, "");
    let awa = env.contact("Awa", "awa@example.com");
    let ben = env.contact("Ben", "ben@example.com");
    let loan = |contact: i64, lent: &str| {
        env.db()
            .execute(
                "INSERT INTO loans (contact_id, item, lent_at, due_at) VALUES (?1, 'Drill', ?2, '2026-03-20T17:00:00Z')",
                params![contact, lent],
            )
            .unwrap();
    };
    loan(awa, "2026-03-10T08:00:00Z");
    env.run(&["send-reminders", "--kind", "loan_created"], "2026-03-10T08:05:00Z")
        .success();
    env.db().execute_batch("DELETE FROM loans").unwrap();
    loan(ben, "2026-03-10 09:00:00");
    env.run(&["send-reminders", "--kind", "loan_created"], "2026-03-10T09:05:00Z")
        .success();
    assert_eq!(smtp.recipients(), ["awa@example.com", "ben@example.com"]);
}

/// A manual reminder re-inserted after a bad address (README: "insert it
/// again as a new row") goes, and its own row is marked sent.
#[test]
fn a_manual_reminder_inserted_again_goes_and_is_marked_sent() {
    let smtp = SmtpServer::start();
    let env = TestEnv::new(smtp.port, "");
    let lou = env.contact("Lou", "lou@@example.com");
    env.db()
        .execute_batch(&format!(
            "INSERT INTO students (id, contact_id) VALUES (1, {lou});
             INSERT INTO manual_reminders (student_id, message, created_at) VALUES (1, 'Calculator', '2026-03-10T10:00:00Z');"
        ))
        .unwrap();
    env.run(&["send-reminders", "--kind", "manual"], "2026-03-10T10:05:00Z")
        .code(65);
    env.db()
        .execute_batch(
            "UPDATE contacts SET email = 'lou@example.com';
             DELETE FROM manual_reminders WHERE sent_at IS NULL;
             INSERT INTO manual_reminders (student_id, message, created_at) VALUES (1, 'Calculator', '2026-03-10T10:20:00Z');",
        )
        .unwrap();
    env.run(&["send-reminders", "--kind", "manual"], "2026-03-10T10:25:00Z")
        .success();
    assert_eq!(smtp.recipients(), ["lou@example.com"]);
    let sent_at: Vec<String> = column(&env, "SELECT coalesce(sent_at, 'NULL') FROM manual_reminders");
    assert_eq!(sent_at, ["2026-03-10T10:25:00Z"]);
}

/// A stage entry is its event's id and entered_at: an event that reuses a
/// deleted event's id is a new entry, not one alerted already.
#[test]
fn a_stage_entry_that_reuses_an_event_id_is_alerted() {
    let smtp = SmtpServer::start();
    let env = TestEnv::new(
        smtp.port,
        "[delay_alerts]\nthreshold_days = 14\nrecipients = [\"lead@example.com\"]\n",
    );
    let t1 = env.ticket("T-1", &[("Diagnostic", "2026-02-01T08:00:00Z")]);
    env.run(&["check-delay-alerts"], "2026-03-01T08:00:00Z").success();
    assert_eq!(smtp.mails().len(), 1);
    // The host deletes the ticket's event and records another ticket's entry,
    // which SQLite gives the same id.
    env.db()
        .execute("DELETE FROM ticket_events WHERE ticket_id = ?1", [t1])
        .unwrap();
    env.ticket("T-2", &[("Repair", "2026-02-05T08:00:00Z")]);
    let reused: i64 = env
        .db()
        .query_row("SELECT id FROM ticket_events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(reused, 1, "SQLite reused the event id");
    env.run(&["check-delay-alerts"], "2026-03-01T09:00:00Z").success();
    assert_eq!(smtp.mails().len(), 2, "T-2's entry is new");
    assert!(smtp.mails()[1].decoded().contains("T-2"));
}

/// A database written before schema 5 keeps its history: its deliveries are
/// named by their source row's instant, so nothing goes twice after the upgrade.
#[test]
fn an_upgraded_database_sends_nothing_twice() {
    let smtp = SmtpServer::start();
    let env = TestEnv::new(smtp.port, "");
    // Build a schema-4 database by hand, as rappel 4 left it.
    std::fs::remove_file(env.db_path()).unwrap();
    let db = env.db();
    for sql in [
        include_str!("../sql/0001_initial.sql"),
        include_str!("../sql/0002_reports.sql"),
        include_str!("../sql/0003_sessions.sql"),
        include_str!("../sql/0004_attendance.sql"),
    ] {
        db.execute_batch(sql).unwrap();
    }
    db.execute_batch(
        "CREATE TABLE rappel_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
         INSERT INTO rappel_meta VALUES ('schema_version', '4');
         INSERT INTO contacts (id, name, email) VALUES (1, 'Awa', 'awa@example.com');
         INSERT INTO loans (id, contact_id, item, lent_at, due_at) VALUES (7, 1, 'Drill', '2026-03-10 08:00:00', '2026-03-20T17:00:00Z');
         INSERT INTO deliveries (job, kind, dedupe_key, source_table, source_id, contact_id, channel, recipient, status, created_at, sent_at)
         VALUES ('send-reminders', 'loan_created', 'loan_created:7:2026-03-10:email', 'loans', 7, 1, 'email', 'awa@example.com', 'sent',
                 '2026-03-10T08:05:00Z', '2026-03-10T08:05:00Z');
         INSERT INTO tickets (id, reference, created_at) VALUES (1, 'T-1', '2026-01-01T00:00:00Z');
         INSERT INTO ticket_events (id, ticket_id, stage, entered_at) VALUES (1, 1, 'Diagnostic', '2026-02-01 08:00:00');
         INSERT INTO delay_alert_log (event_id, ticket_id, stage, days_in_stage, alerted_at) VALUES (1, 1, 'Diagnostic', 37, '2026-03-10T08:00:00Z');",
    )
    .unwrap();
    drop(db);
    env.run(&["db", "migrate"], "2026-03-10T09:00:00Z").success();
    let keys: Vec<String> = column(&env, "SELECT dedupe_key || ' ' || source_at FROM deliveries");
    assert_eq!(
        keys,
        ["loan_created:7@2026-03-10T08:00:00Z:2026-03-10:email 2026-03-10T08:00:00Z"]
    );
    let entered: Vec<String> = column(&env, "SELECT entered_at FROM delay_alert_log");
    assert_eq!(entered, ["2026-02-01T08:00:00Z"]);
    env.run(&["send-reminders", "--kind", "loan_created"], "2026-03-10T09:05:00Z")
        .success();
    assert!(smtp.mails().is_empty(), "the confirmation went before the upgrade");
}

fn column(env: &TestEnv, sql: &str) -> Vec<String> {
    let db = env.db();
    let mut stmt = db.prepare(sql).unwrap();
    stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
}
