//! A message belongs to one source row: a host row that reuses the id of a
//! deleted one is a new row (its own messages, its own status), and rows
//! written before rappel named them by their instant keep their history.

use crate::support;

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
    let keys: Vec<String> = column(&env, "SELECT dedupe_key FROM rappel_deliveries ORDER BY id");
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
                 '2026-03-10T08:05:00Z', '2026-03-10T08:05:00Z'),
                ('send-reminders', 'loan_d1', 'loan_d1:7:2026-03-19:email', 'loans', 7, 1, 'email', 'awa@example.com', 'sent',
                 '2026-03-19T08:05:00Z', '2026-03-19T08:05:00Z');
         INSERT INTO tickets (id, reference, created_at) VALUES (1, 'T-1', '2026-01-01T00:00:00Z');
         INSERT INTO ticket_events (id, ticket_id, stage, entered_at) VALUES (1, 1, 'Diagnostic', '2026-02-01 08:00:00');
         INSERT INTO delay_alert_log (event_id, ticket_id, stage, days_in_stage, alerted_at) VALUES (1, 1, 'Diagnostic', 37, '2026-03-10T08:00:00Z');",
    )
    .unwrap();
    drop(db);
    env.run(&["db", "migrate"], "2026-03-10T09:00:00Z").success();
    let keys: Vec<String> = column(
        &env,
        "SELECT dedupe_key || ' ' || source_at FROM rappel_deliveries ORDER BY id",
    );
    assert_eq!(
        keys,
        [
            "loan_created:7@2026-03-10T08:00:00Z:2026-03-10:email:1 2026-03-10T08:00:00Z",
            "loan_d1:7@2026-03-10T08:00:00Z:2026-03-19:email:1:2026-03-20T17:00:00Z 2026-03-10T08:00:00Z"
        ]
    );
    let entered: Vec<String> = column(&env, "SELECT entered_at FROM rappel_delay_alert_log");
    assert_eq!(entered, ["2026-02-01T08:00:00Z"]);
    env.run(&["send-reminders", "--kind", "loan_created"], "2026-03-10T09:05:00Z")
        .success();
    env.run(&["send-reminders", "--kind", "loan_d1"], "2026-03-19T08:10:00Z")
        .success();
    assert!(smtp.mails().is_empty(), "both went before the upgrade");
}

fn column(env: &TestEnv, sql: &str) -> Vec<String> {
    let db = env.db();
    let mut stmt = db.prepare(sql).unwrap();
    stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
}

/// One message left waiting for a retry, then its source changes.
struct Stale {
    name: &'static str,
    /// Host rows (contact 1 is Awa, awa@example.com).
    setup: &'static str,
    /// The job that plans the message, at `at`, while the server defers it.
    job: &'static [&'static str],
    at: &'static str,
    /// What the host (or the operator) does meanwhile.
    change: &'static str,
    /// Config appended for the retry.
    config: &'static str,
    /// Part of `last_error`.
    reason: &'static str,
}

const LOAN: &str = "INSERT INTO loans (id, contact_id, item, lent_at, due_at) VALUES (1, 1, 'Drill', '2026-03-10T08:00:00Z', '2026-03-20T17:00:00Z');";
const SESSION: &str = "INSERT INTO students (id, contact_id) VALUES (1, 1);
    INSERT INTO revision_sessions (id, student_id, subject, starts_at) VALUES (1, 1, 'Maths', '2026-03-11T13:00:00Z');";
const CREATED: &[&str] = &["send-reminders", "--kind", "loan_created"];

const STALE: &[Stale] = &[
    Stale {
        name: "loan returned",
        setup: LOAN,
        job: CREATED,
        at: "2026-03-10T08:05:00Z",
        change: "UPDATE loans SET returned_at = '2026-03-10T08:10:00Z'",
        config: "",
        reason: "the loan was returned (loans id 1)",
    },
    Stale {
        name: "loan due date moved",
        setup: LOAN,
        job: &["send-reminders", "--kind", "loan_d1"],
        at: "2026-03-19T08:05:00Z",
        change: "UPDATE loans SET due_at = '2026-03-25T17:00:00Z'",
        config: "",
        reason: "loans id 1 no longer has this loan_d1 reminder",
    },
    Stale {
        name: "loan due time moved within the day",
        setup: LOAN,
        job: &["send-reminders", "--kind", "loan_d1"],
        at: "2026-03-19T08:05:00Z",
        change: "UPDATE loans SET due_at = '2026-03-20 15:00:00'",
        config: "",
        reason: "loans id 1 no longer has this loan_d1 reminder",
    },
    Stale {
        name: "loan given to another borrower",
        setup: "INSERT INTO contacts (id, name, email) VALUES (2, 'Ben', 'ben@example.com');
                INSERT INTO loans (id, contact_id, item, lent_at, due_at) VALUES (1, 1, 'Drill', '2026-03-10T08:00:00Z', '2026-03-20T17:00:00Z');",
        job: CREATED,
        at: "2026-03-10T08:05:00Z",
        change: "UPDATE loans SET contact_id = 2",
        config: "",
        reason: "loans id 1 no longer has this loan_created reminder",
    },
    Stale {
        name: "loan deleted",
        setup: LOAN,
        job: CREATED,
        at: "2026-03-10T08:05:00Z",
        change: "DELETE FROM loans",
        config: "",
        reason: "loans id 1 was deleted",
    },
    Stale {
        name: "contact deleted",
        setup: LOAN,
        job: CREATED,
        at: "2026-03-10T08:05:00Z",
        change: "PRAGMA foreign_keys = OFF; DELETE FROM contacts",
        config: "",
        reason: "contact 1 was deleted",
    },
    Stale {
        name: "contact opted out",
        setup: LOAN,
        job: CREATED,
        at: "2026-03-10T08:05:00Z",
        change: "UPDATE contacts SET muted_kinds = 'loan_created'",
        config: "",
        reason: "contact 1 opted out of loan_created",
    },
    Stale {
        name: "channel disabled",
        setup: LOAN,
        job: CREATED,
        at: "2026-03-10T08:05:00Z",
        change: "UPDATE contacts SET email_enabled = 0",
        config: "",
        reason: "contact 1 no longer has email enabled",
    },
    Stale {
        name: "kind disabled",
        setup: LOAN,
        job: CREATED,
        at: "2026-03-10T08:05:00Z",
        change: "",
        config: "[reminders]\ndisabled_kinds = [\"loan_created\"]\n",
        reason: "kind loan_created is disabled",
    },
    Stale {
        name: "session cancelled",
        setup: SESSION,
        job: &["send-reminders", "--kind", "session_eve"],
        at: "2026-03-10T17:35:00Z",
        change: "UPDATE revision_sessions SET cancelled = 'true'",
        config: "",
        reason: "the session was cancelled",
    },
    Stale {
        name: "session completed",
        setup: SESSION,
        job: &["send-reminders", "--kind", "session_eve"],
        at: "2026-03-10T17:35:00Z",
        change: "UPDATE revision_sessions SET completed_at = '2026-03-10T17:40:00Z'",
        config: "",
        reason: "the session was completed",
    },
    Stale {
        name: "session moved",
        setup: SESSION,
        job: &["send-reminders", "--kind", "session_eve"],
        at: "2026-03-10T17:35:00Z",
        change: "UPDATE revision_sessions SET starts_at = '2026-03-11T15:00:00Z'",
        config: "",
        reason: "the session moved",
    },
    Stale {
        name: "manual reminder deleted",
        setup: "INSERT INTO students (id, contact_id) VALUES (1, 1);
                INSERT INTO manual_reminders (id, student_id, message, created_at) VALUES (1, 1, 'Hi', '2026-03-10T08:00:00Z');",
        job: &["send-reminders", "--kind", "manual"],
        at: "2026-03-10T08:05:00Z",
        change: "DELETE FROM manual_reminders",
        config: "",
        reason: "manual_reminders id 1 was deleted",
    },
    Stale {
        name: "ticket closed",
        setup: "INSERT INTO tickets (id, reference, created_at) VALUES (1, 'T-1', '2026-01-01T00:00:00Z');
                INSERT INTO ticket_events (ticket_id, stage, entered_at) VALUES (1, 'Diagnostic', '2026-02-01T08:00:00Z');
                INSERT INTO alert_recipients (contact_id) VALUES (1);",
        job: &["check-delay-alerts"],
        at: "2026-03-10T08:05:00Z",
        change: "UPDATE tickets SET closed_at = '2026-03-10T08:10:00Z'",
        config: "",
        reason: "its ticket was closed or moved on",
    },
    Stale {
        name: "ticket moved on",
        setup: "INSERT INTO tickets (id, reference, created_at) VALUES (1, 'T-1', '2026-01-01T00:00:00Z');
                INSERT INTO ticket_events (ticket_id, stage, entered_at) VALUES (1, 'Diagnostic', '2026-02-01T08:00:00Z');
                INSERT INTO alert_recipients (contact_id) VALUES (1);",
        job: &["check-delay-alerts"],
        at: "2026-03-10T08:05:00Z",
        change: "INSERT INTO ticket_events (ticket_id, stage, entered_at) VALUES (1, 'Repair', '2026-03-10 08:10:00')",
        config: "",
        reason: "its ticket was closed or moved on",
    },
    Stale {
        name: "alert recipient deactivated",
        setup: "INSERT INTO tickets (id, reference, created_at) VALUES (1, 'T-1', '2026-01-01T00:00:00Z');
                INSERT INTO ticket_events (ticket_id, stage, entered_at) VALUES (1, 'Diagnostic', '2026-02-01T08:00:00Z');
                INSERT INTO alert_recipients (contact_id) VALUES (1);",
        job: &["check-delay-alerts"],
        at: "2026-03-10T08:05:00Z",
        change: "UPDATE alert_recipients SET active = 0",
        config: "",
        reason: "contact 1 is no longer an active alert recipient",
    },
    Stale {
        name: "alert recipient's stages changed",
        setup: "INSERT INTO tickets (id, reference, created_at) VALUES (1, 'T-1', '2026-01-01T00:00:00Z');
                INSERT INTO ticket_events (ticket_id, stage, entered_at) VALUES (1, 'Diagnostic', '2026-02-01T08:00:00Z');
                INSERT INTO alert_recipients (contact_id, stages) VALUES (1, 'Diagnostic');",
        job: &["check-delay-alerts"],
        at: "2026-03-10T08:05:00Z",
        change: "UPDATE alert_recipients SET stages = 'Repair'",
        config: "",
        reason: "contact 1 no longer receives alerts for these stages",
    },
    Stale {
        name: "alert recipient's address removed",
        setup: "INSERT INTO tickets (id, reference, created_at) VALUES (1, 'T-1', '2026-01-01T00:00:00Z');
                INSERT INTO ticket_events (ticket_id, stage, entered_at) VALUES (1, 'Diagnostic', '2026-02-01T08:00:00Z');
                INSERT INTO alert_recipients (contact_id) VALUES (1);",
        job: &["check-delay-alerts"],
        at: "2026-03-10T08:05:00Z",
        change: "UPDATE contacts SET email = NULL",
        config: "",
        reason: "contact 1 no longer has an email address",
    },
    Stale {
        name: "alert recipient's address changed",
        setup: "INSERT INTO tickets (id, reference, created_at) VALUES (1, 'T-1', '2026-01-01T00:00:00Z');
                INSERT INTO ticket_events (ticket_id, stage, entered_at) VALUES (1, 'Diagnostic', '2026-02-01T08:00:00Z');
                INSERT INTO alert_recipients (contact_id) VALUES (1);",
        job: &["check-delay-alerts"],
        at: "2026-03-10T08:05:00Z",
        change: "UPDATE contacts SET email = 'awa.mba@example.com'",
        config: "",
        reason: "contact 1's email address is no longer awa@example.com",
    },
    Stale {
        name: "ticket deleted",
        setup: "INSERT INTO tickets (id, reference, created_at) VALUES (1, 'T-1', '2026-01-01T00:00:00Z');
                INSERT INTO ticket_events (ticket_id, stage, entered_at) VALUES (1, 'Diagnostic', '2026-02-01T08:00:00Z');
                INSERT INTO alert_recipients (contact_id) VALUES (1);",
        job: &["check-delay-alerts"],
        at: "2026-03-10T08:05:00Z",
        change: "DELETE FROM ticket_events; DELETE FROM tickets",
        config: "",
        reason: "its ticket was closed or moved on",
    },
    Stale {
        name: "alert recipient's email disabled",
        setup: "INSERT INTO tickets (id, reference, created_at) VALUES (1, 'T-1', '2026-01-01T00:00:00Z');
                INSERT INTO ticket_events (ticket_id, stage, entered_at) VALUES (1, 'Diagnostic', '2026-02-01T08:00:00Z');
                INSERT INTO alert_recipients (contact_id) VALUES (1);",
        job: &["check-delay-alerts"],
        at: "2026-03-10T08:05:00Z",
        change: "UPDATE contacts SET email_enabled = 0",
        config: "",
        reason: "contact 1 has email disabled",
    },
    Stale {
        name: "alert recipient muted the kind",
        setup: "INSERT INTO tickets (id, reference, created_at) VALUES (1, 'T-1', '2026-01-01T00:00:00Z');
                INSERT INTO ticket_events (ticket_id, stage, entered_at) VALUES (1, 'Diagnostic', '2026-02-01T08:00:00Z');
                INSERT INTO alert_recipients (contact_id) VALUES (1);",
        job: &["check-delay-alerts"],
        at: "2026-03-10T08:05:00Z",
        change: "UPDATE contacts SET muted_kinds = 'delay_alert'",
        config: "",
        reason: "contact 1 opted out of delay_alert (muted_kinds)",
    },
    Stale {
        name: "report row deleted",
        setup: "INSERT INTO scheduled_reports (id, title, recipients, scheduled_at, report) VALUES (1, 'Week', 'awa@example.com', '2026-03-10T08:00:00Z', 'open');",
        job: &["send-reports"],
        at: "2026-03-10T08:05:00Z",
        change: "DELETE FROM scheduled_reports",
        config: "",
        reason: "scheduled_reports id 1 was deleted",
    },
    Stale {
        name: "report set aside by hand",
        setup: "INSERT INTO scheduled_reports (id, title, recipients, scheduled_at, report) VALUES (1, 'Week', 'awa@example.com', '2026-03-10T08:00:00Z', 'open');",
        job: &["send-reports"],
        at: "2026-03-10T08:05:00Z",
        change: "UPDATE scheduled_reports SET status = 'failed'",
        config: "",
        reason: "scheduled_reports id 1 was set to \"failed\" by hand",
    },
    Stale {
        name: "report recipient removed",
        setup: "INSERT INTO scheduled_reports (id, title, recipients, scheduled_at, report) VALUES (1, 'Week', 'awa@example.com', '2026-03-10T08:00:00Z', 'open');",
        job: &["send-reports"],
        at: "2026-03-10T08:05:00Z",
        change: "UPDATE scheduled_reports SET recipients = 'ben@example.com'",
        config: "",
        reason: "awa@example.com is no longer among the recipients of scheduled_reports id 1",
    },
];

/// DESIGN §9: a waiting message whose source no longer qualifies is not
/// sent; it ends `cancelled` with the reason, and the run exits 0.
#[test]
fn a_waiting_message_whose_source_stopped_wanting_it_is_cancelled_not_sent() {
    // Four at a time: each case has its own server and folder.
    let wrong: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = STALE
            .chunks(STALE.len().div_ceil(4))
            .map(|cases| s.spawn(move || cases.iter().filter_map(stale_case).collect::<Vec<_>>()))
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Runs one case; `Some` says what went wrong.
fn stale_case(case: &Stale) -> Option<String> {
    let smtp = SmtpServer::start();
    let base = "[reports.definitions.open]\nquery = \"SELECT 1 AS one\"\n";
    let env = TestEnv::new(smtp.port, base);
    env.db()
        .execute_batch(&format!(
            "INSERT INTO contacts (id, name, email) VALUES (1, 'Awa', 'awa@example.com'); {}",
            case.setup
        ))
        .unwrap();
    smtp.set_mode(support::Mode::Defer);
    let first = env.run(case.job, case.at);
    let pending: Vec<String> = column(&env, "SELECT status FROM rappel_deliveries");
    if first.code != 75 || pending != ["pending"] {
        return Some(format!(
            "{}: first run {} {pending:?}: {}",
            case.name, first.code, first.stderr
        ));
    }
    smtp.set_mode(support::Mode::Accept);
    env.db().execute_batch(case.change).unwrap();
    let config = std::fs::read_to_string(env.config_path()).unwrap();
    env.write_config(&format!("{config}{}", case.config));
    let retry = env.run(&["--json", "deliver"], &support::plus(case.at, 600));
    let row: Vec<String> = column(
        &env,
        "SELECT status || '|' || attempts || '|' || coalesce(last_error, '') FROM rappel_deliveries",
    );
    let summary: serde_json::Value = serde_json::from_str(&retry.stdout).unwrap_or_default();
    let ok = retry.code == 0
        && smtp.mails().is_empty()
        && summary["cancelled"] == 1
        && summary["failed"] == 0
        && row.len() == 1
        && row[0].starts_with("cancelled|1|cancelled: ")
        && row[0].contains(case.reason);
    (!ok).then(|| {
        format!(
            "{}: exit {}, {} sent, {row:?}, summary {}, stderr {}",
            case.name,
            retry.code,
            smtp.mails().len(),
            retry.stdout.trim(),
            retry.stderr
        )
    })
}

/// What still qualifies goes: a retry whose source is unchanged is sent.
#[test]
fn a_waiting_message_whose_source_still_wants_it_goes() {
    let smtp = SmtpServer::start();
    let env = TestEnv::new(smtp.port, "");
    env.db()
        .execute_batch(&format!(
            "INSERT INTO contacts (id, name, email) VALUES (1, 'Awa', 'awa@example.com'); {SESSION}"
        ))
        .unwrap();
    smtp.set_mode(support::Mode::Defer);
    env.run(&["send-reminders", "--kind", "session_eve"], "2026-03-10T17:35:00Z")
        .code(75);
    smtp.set_mode(support::Mode::Accept);
    // An unrelated change: the objective is edited.
    env.db()
        .execute_batch("UPDATE revision_sessions SET objective = 'Fractions'")
        .unwrap();
    env.run(&["deliver"], "2026-03-10T17:45:00Z").success();
    assert_eq!(smtp.recipients(), ["awa@example.com"]);
    let log = env
        .run(&["log", "--status", "cancelled"], "2026-03-10T17:45:00Z")
        .success();
    assert!(!log.stdout.contains("session_eve"), "{}", log.stdout);
}

/// `log --status cancelled` lists the cancelled ones with their reason.
#[test]
fn log_lists_cancelled_messages_apart() {
    let smtp = SmtpServer::start();
    let env = TestEnv::new(smtp.port, "");
    env.db()
        .execute_batch(&format!(
            "INSERT INTO contacts (id, name, email) VALUES (1, 'Awa', 'awa@example.com'); {LOAN}"
        ))
        .unwrap();
    smtp.set_mode(support::Mode::Defer);
    env.run(CREATED, "2026-03-10T08:05:00Z").code(75);
    env.db()
        .execute_batch("UPDATE loans SET returned_at = '2026-03-10T08:10:00Z'")
        .unwrap();
    env.run(&["deliver"], "2026-03-10T08:20:00Z").success();
    let log = env
        .run(&["--json", "log", "--status", "cancelled"], "2026-03-10T08:20:00Z")
        .success();
    let rows: serde_json::Value = serde_json::from_str(&log.stdout).unwrap();
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{}", log.stdout);
    assert_eq!(rows[0]["status"], "cancelled");
    env.run(&["log", "--status", "failed"], "2026-03-10T08:20:00Z")
        .success();
}

/// A report row the operator sets aside while its messages wait: none of
/// them goes, and the row keeps the status the operator gave it.
#[test]
fn a_report_set_aside_by_hand_sends_to_none_and_keeps_its_status() {
    let smtp = SmtpServer::start();
    let env = TestEnv::new(smtp.port, "[reports.definitions.open]\nquery = \"SELECT 1 AS one\"\n");
    env.report(
        "R",
        "a@example.com, b@example.com, c@example.com",
        "2026-03-10T08:00:00Z",
        None,
        Some("open"),
    );
    smtp.set_mode(support::Mode::Defer);
    env.run(&["send-reports"], "2026-03-10T08:05:00Z").code(75);
    smtp.set_mode(support::Mode::Accept);
    env.db()
        .execute_batch("UPDATE scheduled_reports SET status = 'paused', last_error = 'on hold'")
        .unwrap();
    env.run(&["deliver"], "2026-03-10T09:05:00Z").success();
    assert!(smtp.mails().is_empty(), "{:?}", smtp.recipients());
    let statuses: Vec<String> = column(&env, "SELECT status FROM rappel_deliveries");
    assert_eq!(statuses, ["cancelled", "cancelled", "cancelled"]);
    let row: Vec<String> = column(&env, "SELECT status || '|' || last_error FROM scheduled_reports");
    assert_eq!(row, ["paused|on hold"], "the operator's status stays");
}

/// Recipients changed while messages wait: the one taken out is not sent,
/// the one added is, and the row is `sent` only once every current one got it.
#[test]
fn a_report_whose_recipients_change_while_waiting_serves_the_current_list() {
    let smtp = SmtpServer::start();
    let env = TestEnv::new(smtp.port, "[reports.definitions.open]\nquery = \"SELECT 1 AS one\"\n");
    let id = env.report(
        "R",
        "a@example.com, b@example.com, c@example.com",
        "2026-03-10T08:00:00Z",
        None,
        Some("open"),
    );
    smtp.set_mode(support::Mode::Defer);
    env.run(&["send-reports"], "2026-03-10T08:05:00Z").code(75);
    smtp.set_mode(support::Mode::Accept);
    env.db()
        .execute(
            "UPDATE scheduled_reports SET recipients = 'A@EXAMPLE.COM; \"C\" <c@example.com>; d@example.com' WHERE id = ?1",
            [id],
        )
        .unwrap();
    env.run(&["deliver"], "2026-03-10T09:05:00Z").success();
    assert_eq!(smtp.recipients(), ["a@example.com", "c@example.com"]);
    assert_eq!(env.report_status(id).0, "pending", "d is still to serve");
    env.run(&["send-reports"], "2026-03-10T09:10:00Z").success();
    assert_eq!(smtp.recipients(), ["a@example.com", "c@example.com", "d@example.com"]);
    assert_eq!(env.report_status(id).0, "sent");
    // b comes back to the list: it gets it too, once.
    env.db()
        .execute(
            "UPDATE scheduled_reports SET recipients = recipients || ', b@example.com', status = 'pending' WHERE id = ?1",
            [id],
        )
        .unwrap();
    env.run(&["send-reports"], "2026-03-10T09:20:00Z").success();
    env.run(&["send-reports"], "2026-03-10T09:30:00Z").success();
    assert_eq!(
        smtp.recipients(),
        ["a@example.com", "b@example.com", "c@example.com", "d@example.com"]
    );
    assert_eq!(env.report_status(id).0, "sent");
}

/// A session deleted and another made under the same id, at the same
/// round time, for another student: the other student gets theirs.
#[test]
fn a_session_under_a_reused_id_and_time_for_another_student_is_sent() {
    let smtp = SmtpServer::start();
    let env = TestEnv::new(smtp.port, "");
    env.db()
        .execute_batch(
            "INSERT INTO contacts (id, name, email) VALUES (1, 'Awa', 'awa@example.com'), (2, 'Ben', 'ben@example.com');
             INSERT INTO students (id, contact_id) VALUES (1, 1), (2, 2);
             INSERT INTO revision_sessions (student_id, subject, starts_at) VALUES (1, 'Maths', '2026-03-11T13:00:00Z');",
        )
        .unwrap();
    let eve = ["send-reminders", "--kind", "session_eve"];
    env.run(&eve, "2026-03-10T17:35:00Z").success();
    env.db()
        .execute_batch(
            "DELETE FROM revision_sessions;
             INSERT INTO revision_sessions (student_id, subject, starts_at) VALUES (2, 'Physics', '2026-03-11T13:00:00Z');",
        )
        .unwrap();
    env.run(&eve, "2026-03-10T17:45:00Z").success();
    assert_eq!(smtp.recipients(), ["awa@example.com", "ben@example.com"]);
}

/// A loan whose due time moves within the same day: the waiting reminder
/// with the old time is cancelled, and the next run sends the new time.
#[test]
fn a_loan_due_time_moved_within_the_day_is_told_with_the_new_time() {
    let smtp = SmtpServer::start();
    let env = TestEnv::new(smtp.port, "");
    env.db()
        .execute_batch(&format!(
            "INSERT INTO contacts (id, name, email) VALUES (1, 'Awa', 'awa@example.com'); {LOAN}"
        ))
        .unwrap();
    let d1 = ["send-reminders", "--kind", "loan_d1"];
    smtp.set_mode(support::Mode::Defer);
    env.run(&d1, "2026-03-19T08:05:00Z").code(75);
    smtp.set_mode(support::Mode::Accept);
    env.db()
        .execute_batch("UPDATE loans SET due_at = '2026-03-20T15:00:00Z'")
        .unwrap();
    env.run(&d1, "2026-03-19T08:20:00Z").success();
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1, "{:?}", smtp.recipients());
    assert!(
        mails[0].decoded().contains("16:00"),
        "the new time: {}",
        mails[0].decoded()
    );
}

/// A contact's address corrected while their message waits: it goes to the
/// address they have now, not the old one.
#[test]
fn a_waiting_message_goes_to_the_address_its_person_has_now() {
    let smtp = SmtpServer::start();
    let env = TestEnv::new(smtp.port, "");
    env.db()
        .execute_batch(&format!(
            "INSERT INTO contacts (id, name, email) VALUES (1, 'Awa', 'old@example.com'); {LOAN}"
        ))
        .unwrap();
    smtp.set_mode(support::Mode::Defer);
    env.run(CREATED, "2026-03-10T08:05:00Z").code(75);
    smtp.set_mode(support::Mode::Accept);
    env.db()
        .execute_batch("UPDATE contacts SET email = 'New <new@example.com>'")
        .unwrap();
    env.run(&["deliver"], "2026-03-10T08:20:00Z").success();
    assert_eq!(smtp.recipients(), ["new@example.com"]);
    let recipient: Vec<String> = column(&env, "SELECT recipient FROM rappel_deliveries");
    assert_eq!(recipient, ["new@example.com"], "the log says where it went");
}

/// An address taken out of `[delay_alerts] recipients` while its digest waits.
#[test]
fn a_digest_to_an_address_taken_out_of_the_config_is_cancelled() {
    let smtp = SmtpServer::start();
    let env = TestEnv::new(smtp.port, "[delay_alerts]\nrecipients = [\"lead@example.com\"]\n");
    env.ticket("T-1", &[("Diagnostic", "2026-02-01T08:00:00Z")]);
    smtp.set_mode(support::Mode::Defer);
    env.run(&["check-delay-alerts"], "2026-03-10T08:05:00Z").code(75);
    smtp.set_mode(support::Mode::Accept);
    let config = std::fs::read_to_string(env.config_path()).unwrap();
    env.write_config(&config.replace("lead@example.com", "boss@example.com"));
    env.run(&["deliver"], "2026-03-10T09:05:00Z").success();
    assert!(smtp.mails().is_empty());
    let row: Vec<String> = column(&env, "SELECT status || '|' || last_error FROM rappel_deliveries");
    assert_eq!(
        row,
        ["cancelled|cancelled: lead@example.com is no longer in [delay_alerts] recipients"]
    );
}
