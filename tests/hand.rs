//! Retrying, cancelling and reading a delivery by hand, without SQL:
//! `rappel retry`, `rappel cancel`, `rappel show` and `deliver --force`,
//! against the real binary, a real SMTP server and real SQLite files.

use crate::support;

use support::{Mode, SmtpServer, TestEnv, free_port};

const NOW: &str = "2026-03-10T07:00:00Z";

fn status(env: &TestEnv, id: i64) -> (String, i64, Option<String>) {
    env.db()
        .query_row(
            "SELECT status, attempts, next_attempt_at FROM rappel_deliveries WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
}

fn ids(env: &TestEnv, status: &str) -> Vec<i64> {
    let db = env.db();
    let mut stmt = db
        .prepare("SELECT id FROM rappel_deliveries WHERE status = ?1 ORDER BY id")
        .unwrap();
    stmt.query_map([status], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Two overdue tickets, each alerted to its own recipient (two digests).
fn two_alerts(env: &TestEnv) {
    for (name, stage) in [("Awa", "Diagnostic"), ("Bob", "Réparation")] {
        let c = env.contact(name, &format!("{}@example.com", name.to_lowercase()));
        env.recipient(c, Some(stage));
        env.ticket(&format!("T-{name}"), &[(stage, "2026-02-01T07:00:00Z")]);
    }
}

#[test]
fn retry_puts_failed_messages_back_and_never_a_sent_one() {
    let smtp = SmtpServer::start();
    let env = TestEnv::new(smtp.port, "[delay_alerts]\nthreshold_days = 14\n");
    two_alerts(&env);
    smtp.set_mode(Mode::RejectRcpt("bob@".into()));
    env.run(&["check-delay-alerts"], NOW).code(65);
    assert_eq!(smtp.recipients(), ["awa@example.com"]);
    let sent = ids(&env, "sent");
    let failed = ids(&env, "failed");
    assert_eq!((sent.len(), failed.len()), (1, 1));

    // Nothing named: a usage error, nothing changed.
    let out = env.run(&["retry"], NOW).code(64);
    assert!(out.stderr.contains("name the deliveries to retry"), "{}", out.stderr);

    // A dry run says what it would do and changes nothing.
    let before = env.dump();
    let out = env.run(&["retry", "--failed", "--dry-run"], NOW).success();
    assert!(
        out.stdout.contains(&format!(
            "would retry {} delay_alert email bob@example.com (was failed)",
            failed[0]
        )),
        "{}",
        out.stdout
    );
    assert_eq!(env.dump(), before);

    // A sent message is never retried; named, it is said so (exit 65).
    let out = env.run(&["retry", &sent[0].to_string()], NOW).code(65);
    assert!(
        out.stderr
            .contains(&format!("delivery {}: not changed: it was sent", sent[0])),
        "{}",
        out.stderr
    );
    let out = env.run(&["retry", "424242"], NOW).code(65);
    assert!(out.stderr.contains("no such delivery"), "{}", out.stderr);
    assert_eq!(env.dump(), before);

    smtp.set_mode(Mode::Accept);
    let out = env
        .run(&["--json", "retry", "--kind", "delay_alert", "--since", "1d"], NOW)
        .success();
    let summary: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(summary["changed"][0]["id"], failed[0], "{}", out.stdout);
    assert_eq!(
        summary["changed"].as_array().unwrap().len(),
        1,
        "the sent one is not selected"
    );
    assert_eq!(
        status(&env, failed[0]),
        ("pending".into(), 0, None),
        "due now, fresh attempts"
    );

    env.run(&["deliver"], NOW).success();
    assert_eq!(smtp.recipients(), ["awa@example.com", "bob@example.com"]);
    assert_eq!(ids(&env, "sent").len(), 2);
}

#[test]
fn cancel_stops_a_waiting_message_for_good_and_deliver_force_sends_now() {
    let port = free_port();
    let env = TestEnv::new(port, "[delay_alerts]\nthreshold_days = 14\n");
    two_alerts(&env);
    // The server is down: both wait for their next try.
    env.run(&["check-delay-alerts"], NOW).code(75);
    let waiting = ids(&env, "pending");
    assert_eq!(waiting.len(), 2);
    assert!(status(&env, waiting[0]).2.is_some(), "a next try is set");

    let smtp = SmtpServer::start_on(port);
    let out = env.run(&["cancel", &waiting[1].to_string()], NOW).success();
    assert!(
        out.stdout
            .contains(&format!("cancelled {} delay_alert email", waiting[1])),
        "{}",
        out.stdout
    );
    assert_eq!(status(&env, waiting[1]).0, "cancelled");
    let out = env.run(&["cancel", &waiting[1].to_string()], NOW).code(65);
    assert!(out.stderr.contains("already cancelled"), "{}", out.stderr);

    // Not yet due: a plain deliver waits, --force sends now.
    env.run(&["deliver"], "2026-03-10T07:00:10Z").success();
    assert!(smtp.recipients().is_empty());
    env.run(&["deliver", "--force"], "2026-03-10T07:00:10Z").success();
    assert_eq!(smtp.recipients().len(), 1);
    assert_eq!(status(&env, waiting[0]).0, "sent");

    // The cancelled one stays cancelled through later runs of its job.
    env.run(&["check-delay-alerts"], "2026-03-10T07:30:00Z").success();
    env.run(&["deliver", "--force"], "2026-03-10T07:30:00Z").success();
    assert_eq!(smtp.recipients().len(), 1);
    let out = env.run(&["log", "--status", "cancelled"], NOW).success();
    assert!(out.stdout.contains("cancelled by hand"), "{}", out.stdout);
    // A sent message cannot be cancelled.
    let out = env.run(&["cancel", &waiting[0].to_string()], NOW).code(65);
    assert!(out.stderr.contains("it was sent"), "{}", out.stderr);
}

#[test]
fn a_report_message_cancelled_by_hand_is_not_planned_again() {
    let port = free_port();
    let env = TestEnv::new(
        port,
        "[reports]\n[reports.definitions.one]\nquery = \"SELECT 1 AS one\"\n",
    );
    let id = env.report("Weekly", "a@example.com, b@example.com", NOW, None, Some("one"));
    env.run(&["send-reports"], NOW).code(75);
    let b: i64 = env
        .db()
        .query_row(
            "SELECT id FROM rappel_deliveries WHERE recipient = 'b@example.com'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    env.run(&["cancel", &b.to_string()], NOW).success();

    let smtp = SmtpServer::start_on(port);
    env.run(&["send-reports", "--force"], "2026-03-10T08:00:00Z").success();
    env.run(&["send-reports"], "2026-03-10T09:00:00Z").success();
    assert_eq!(smtp.recipients(), ["a@example.com"]);
    assert_eq!(env.report_status(id).0, "sent", "b was withdrawn by hand");

    // Retried by id, it goes after all, once.
    env.run(&["retry", &b.to_string()], "2026-03-10T09:00:00Z").success();
    assert_eq!(env.report_status(id).0, "pending", "the row follows its message");
    env.run(&["send-reports"], "2026-03-10T09:01:00Z").success();
    env.run(&["send-reports"], "2026-03-10T09:02:00Z").success();
    assert_eq!(smtp.recipients(), ["a@example.com", "b@example.com"]);
    assert_eq!(env.report_status(id).0, "sent");
}

#[test]
fn show_prints_one_delivery_whole() {
    let smtp = SmtpServer::start();
    let env = TestEnv::new(smtp.port, "[delay_alerts]\nthreshold_days = 14\n");
    two_alerts(&env);
    smtp.set_mode(Mode::RejectRcpt("bob@".into()));
    env.run(&["check-delay-alerts"], NOW).code(65);
    let failed = ids(&env, "failed")[0];
    let out = env.run(&["show", &failed.to_string()], NOW).success();
    for part in [
        "status        failed",
        "recipient     bob@example.com",
        "attempts      1 (last failure: permanent)",
        "last error    SMTP server refused",
        "--- headers ---",
        "From: Rappel Test <rappel@example.com>",
        "To: bob@example.com",
        "Message-ID: <",
        "X-Rappel-Kind: delay_alert",
        "--- text ---",
        "T-Bob",
        "--- html ---",
        "<table",
    ] {
        assert!(out.stdout.contains(part), "{part:?} in:\n{}", out.stdout);
    }
    // The Message-ID shown is the one the message carried.
    let sent = ids(&env, "sent")[0];
    let shown = env.run(&["--json", "show", &sent.to_string()], NOW).success();
    let shown: serde_json::Value = serde_json::from_str(shown.stdout.trim()).unwrap();
    let mail = smtp.mail_to("awa@example.com");
    assert_eq!(
        mail.header("Message-ID").as_deref(),
        shown["message_id"].as_str(),
        "{}",
        shown
    );
    assert_eq!(shown["status"], "sent");
    // Off a terminal, `log` keeps provider ids whole (this one is 46 characters).
    let id = shown["provider_ref"].as_str().unwrap();
    assert!(id.chars().count() > 40, "{id}");
    let log = env.run(&["log"], NOW).success();
    assert!(log.stdout.contains(id), "{}", log.stdout);

    let out = env.run(&["show", "999"], NOW).code(64);
    assert!(out.stderr.contains("there is no delivery 999"), "{}", out.stderr);
}

/// `retry --failed` says which failed messages it leaves because they
/// expired (they would not be sent), without making that an error.
#[test]
fn retry_by_filter_names_the_expired_messages_it_leaves() {
    let smtp = SmtpServer::start();
    let env = TestEnv::new(smtp.port, "");
    let db = env.db();
    db.execute(
        "INSERT INTO rappel_deliveries (job, kind, dedupe_key, channel, recipient, subject, body, status,
                                     error_class, last_error, attempts, created_at, valid_until)
             VALUES ('send-reminders', 'loan_d1', 'k-old', 'email', 'a@example.com', 'Hi', 'Body', 'failed',
                     'temporary', 'gave up', 3, '2026-03-08T07:00:00Z', '2026-03-09T07:00:00Z')",
        [],
    )
    .unwrap();
    let id = db.last_insert_rowid();
    let out = env.run(&["retry", "--failed"], NOW).success();
    assert!(out.stdout.contains("retried 0 delivery(ies)"), "{}", out.stdout);
    assert!(
        out.stderr.contains(&format!(
            "delivery {id}: left as it is: it was valid until 2026-03-09T07:00:00Z"
        )),
        "{}",
        out.stderr
    );
    let json = env.run(&["--json", "retry", "--failed"], NOW).success();
    let v: serde_json::Value = serde_json::from_str(json.stdout.trim()).unwrap();
    assert_eq!(v["not_changed"][0]["id"], id);
    assert_eq!(status(&env, id).0, "failed");
}
