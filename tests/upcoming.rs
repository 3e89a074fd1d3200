//! `rappel upcoming`: what the jobs would send in the coming hours, and
//! when, from their own planning code, writing nothing.

use crate::support;

use support::{SmtpServer, TestEnv};

const NOW: &str = "2026-03-10T07:00:00Z"; // 08:00 in Paris

fn listed(env: &TestEnv, within: &str) -> Vec<(String, String, String, String, String)> {
    let out = env.run(&["--json", "upcoming", "--within", within], NOW).success();
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|u| {
            let s = |k: &str| u[k].as_str().unwrap().to_string();
            (s("at"), s("job"), s("kind"), s("recipient"), s("state"))
        })
        .collect()
}

#[test]
fn lists_what_comes_and_when_and_writes_nothing() {
    let smtp = SmtpServer::start();
    let env = TestEnv::new(
        smtp.port,
        "[reports]\n[reports.definitions.one]\nquery = \"SELECT 1 AS one\"\n",
    );
    let db = env.db();
    db.execute_batch(
        "INSERT INTO contacts (id, name, email) VALUES (1, 'Léa', 'lea@example.com');
         INSERT INTO students (id, contact_id) VALUES (1, 1);
         INSERT INTO revision_sessions (student_id, subject, starts_at) VALUES (1, 'Maths', '2026-03-11T09:00:00Z');",
    )
    .unwrap();
    drop(db);
    env.report("Noon", "boss@example.com", "2026-03-10T12:00:00Z", None, Some("one"));
    env.report("Later", "boss@example.com", "2026-03-12T12:00:00Z", None, Some("one"));
    let before = env.dump();

    let all = listed(&env, "24h");
    assert_eq!(
        all,
        [
            (
                "2026-03-10T12:00:00Z".into(),
                "send-reports".into(),
                "report".into(),
                "boss@example.com".into(),
                "new".into()
            ),
            // 18:30 and 08:00 in Paris, the contact's zone.
            (
                "2026-03-10T17:30:00Z".into(),
                "send-reminders".into(),
                "session_eve".into(),
                "lea@example.com".into(),
                "new".into()
            ),
            (
                "2026-03-11T07:00:00Z".into(),
                "send-reminders".into(),
                "session_day".into(),
                "lea@example.com".into(),
                "new".into()
            ),
        ],
        "the report two days away is not listed"
    );
    assert_eq!(env.dump(), before, "nothing written");
    assert_eq!(listed(&env, "6h").len(), 1, "only the noon report within 6h");

    let out = env.run(&["upcoming"], NOW).success();
    assert!(
        out.stdout
            .contains("2026-03-10 18:30 CET  send-reminders  session_eve email lea@example.com"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("3 message(s) within 24h"), "{}", out.stdout);

    // The jobs, when the time comes, send exactly these.
    env.run(&["send-reports"], "2026-03-10T12:00:00Z").success();
    env.run(&["send-reminders"], "2026-03-10T17:30:00Z").success();
    env.run(&["send-reminders"], "2026-03-11T07:00:00Z").success();
    assert_eq!(
        smtp.recipients(),
        ["boss@example.com", "lea@example.com", "lea@example.com"]
    );
}

#[test]
fn a_waiting_message_is_listed_at_its_next_try() {
    let port = support::free_port();
    let env = TestEnv::new(port, "[delay_alerts]\nthreshold_days = 14\n");
    let awa = env.contact("Awa", "awa@example.com");
    env.recipient(awa, None);
    env.ticket("T-1", &[("Diagnostic", "2026-02-01T07:00:00Z")]);
    env.run(&["check-delay-alerts"], NOW).code(75); // no server: waits
    let next: String = env
        .db()
        .query_row("SELECT next_attempt_at FROM rappel_deliveries", [], |r| r.get(0))
        .unwrap();
    let all = listed(&env, "24h");
    assert!(
        all.contains(&(
            next.clone(),
            "check-delay-alerts".into(),
            "delay_alert".into(),
            "awa@example.com".into(),
            "planned".into()
        )),
        "{all:?}"
    );
    // No re-armed alert of the same entry while its digest still waits
    // (`rearm_hours` counts from when a digest goes, README "Quiet hours").
    assert!(
        !all.iter().any(|u| u.1 == "check-delay-alerts" && u.4 == "new"),
        "{all:?}"
    );
}

/// A job that cannot plan (a host table without a column it reads) is named
/// and left out, with its run's exit code; the others are still listed. A
/// report that will fail for want of content is said; spans read as given.
#[test]
fn one_job_that_cannot_plan_leaves_the_others_listed() {
    let smtp = SmtpServer::start();
    let env = TestEnv::new(smtp.port, "");
    env.report("Soon", "boss@example.com", "2026-03-10T07:30:00Z", None, None);
    let db = env.db();
    db.execute_batch(
        "INSERT INTO contacts (id, name, email) VALUES (1, 'Léa', 'lea@example.com');
         INSERT INTO students (id, contact_id) VALUES (1, 1);
         INSERT INTO revision_sessions (student_id, subject, starts_at) VALUES (1, 'Maths', '2026-03-10T12:00:00Z');
         DROP INDEX rappel_tickets_active; ALTER TABLE tickets DROP COLUMN closed_at;",
    )
    .unwrap();
    drop(db);
    let out = env.run(&["upcoming", "--within", "90m"], NOW).code(74);
    assert!(
        out.stderr.contains("check-delay-alerts: ") && out.stderr.contains("closed_at"),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout
            .contains("would fail scheduled_reports id 1 (Soon): no attachment_path and no report definition"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("within 90m"), "{}", out.stdout);
    let out = env.run(&["upcoming", "--within", "6h"], NOW).code(74);
    assert!(
        out.stdout.contains("session_day email lea@example.com"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("message(s) within 6h"), "{}", out.stdout);
}
