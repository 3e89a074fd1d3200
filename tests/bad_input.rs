//! The bad-input table: host rows with wrong types, huge strings, invalid
//! UTF-8, addresses and phones that are not, and unknown time zones, beside
//! good rows of every job. Each bad row is reported and skipped, the good
//! ones go, and nothing panics: `run-all` ends with 65, not 70 or a crash.

use crate::support;

const NOW: &str = "2026-03-10T07:00:00Z";

#[test]
fn every_bad_row_is_named_and_skipped_and_the_good_ones_go() {
    let (smtp, twilio, hr, env) = support::every_transport("");
    let huge = "x".repeat(200_000);
    let db = env.db();
    // A host that does not enforce foreign keys can write a loan of contact 'abc',
    // a student of a contact that is not there, a session of no student.
    db.pragma_update(None, "foreign_keys", "OFF").unwrap();
    db.execute_batch(
        "INSERT INTO contacts (id, name, email, phone, whatsapp_enabled, timezone) VALUES
           (1, 'Good', 'good@example.com', NULL, 0, NULL),
           (2, 'Mars', 'mars@example.com', NULL, 0, 'Mars/Olympus_Mons'),
           (3, 'Not an address', 'not-an-address', NULL, 0, NULL),
           (4, 'Bad phone', NULL, '12', 1, NULL),
           (6, CAST(x'ff00fe41' AS TEXT), 'utf8@example.com', NULL, 0, NULL),
           (7, 'No address', NULL, NULL, 0, NULL);",
    )
    .unwrap();
    db.execute(
        "INSERT INTO contacts (id, name, email) VALUES (5, ?1, 'huge@example.com')",
        [&huge],
    )
    .unwrap();
    db.execute_batch(
        "INSERT INTO loans (contact_id, item, lent_at, due_at) VALUES
           (1, 'Good drill', '2026-03-10T06:59:00Z', '2026-05-01T12:00:00Z'),
           (2, 'Drill on Mars', '2026-03-10T06:59:00Z', '2026-05-01T12:00:00Z'),
           (3, 'Drill', '2026-03-10T06:59:00Z', '2026-05-01T12:00:00Z'),
           (4, 'Drill', '2026-03-10T06:59:00Z', '2026-05-01T12:00:00Z'),
           (5, 'Drill', '2026-03-10T06:59:00Z', '2026-05-01T12:00:00Z'),
           (6, 'Drill', '2026-03-10T06:59:00Z', '2026-05-01T12:00:00Z'),
           (7, 'Drill', '2026-03-10T06:59:00Z', '2026-05-01T12:00:00Z'),
           ('abc', 'Drill', '2026-03-10T06:59:00Z', '2026-05-01T12:00:00Z'),
           (1, 'Soon', 'yesterday', 'soon');
         INSERT INTO scheduled_reports (title, recipients, scheduled_at, report) VALUES
           ('Good report', 'good@example.com', '2026-03-10T06:00:00Z', 'open'),
           ('Nobody', 'nobody', '2026-03-10T06:00:00Z', 'open'),
           ('Whenever', 'good@example.com', 'whenever', 'open');
         INSERT INTO students (id, contact_id) VALUES (1, 99);
         INSERT INTO revision_sessions (id, student_id, subject, starts_at) VALUES (5, 42, 'Maths', '2026-03-11T10:00:00Z');
         INSERT INTO manual_reminders (id, student_id, message, created_at) VALUES (3, 42, 'Hi', '2026-03-10T06:00:00Z');
         INSERT INTO terminals (id, serial, timezone) VALUES (1, 'TM20-001', 'Nowhere/Zone');
         INSERT INTO attendance_logs (terminal_id, enroll_id, punched_at) VALUES
           (1, 1, '2026-03-10T06:00:00Z'),
           (1, 'abc', '2026-03-10T06:01:00Z'),
           (1, 3, CAST(x'ff' AS TEXT));",
    )
    .unwrap();
    drop(db);

    let out = env.run(&["run-all"], NOW);
    assert_eq!(out.code, 65, "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);

    // The good rows went.
    let subjects: Vec<(String, String)> = smtp
        .mails()
        .iter()
        .map(|m| (m.to.join(","), m.header("X-Rappel-Kind").unwrap_or_default()))
        .collect();
    assert!(
        subjects.contains(&("good@example.com".into(), "loan_created".into())),
        "{subjects:?}"
    );
    assert!(
        subjects.contains(&("good@example.com".into(), "report".into())),
        "{subjects:?}"
    );
    assert!(
        subjects.contains(&("huge@example.com".into(), "loan_created".into())),
        "{subjects:?}"
    );
    assert!(
        subjects.contains(&("utf8@example.com".into(), "loan_created".into())),
        "{subjects:?}"
    );
    assert_eq!(hr.posts().len(), 1);
    assert_eq!(hr.posts()[0].log_ids().len(), 1, "only the readable punch");
    assert!(twilio.accepted().is_empty(), "no phone was usable");
    // Nothing went to an address that is not one.
    assert!(
        !subjects
            .iter()
            .any(|(to, _)| to.contains("not-an-address") || to == "nobody")
    );

    // Each bad row is named, and a second run plans none of it again.
    for named in [
        "Mars/Olympus_Mons",
        "not-an-address",
        "yesterday",
        "nobody",
        "whenever",
        "enroll_id",
        "punched_at",
        "loans id 8: contact_id matches no row",
        "students id 1: contact_id matches no row",
        "revision_sessions id 5: student_id (or its student's contact_id) matches no row",
        "manual_reminders id 3: student_id (or its student's contact_id) matches no row",
    ] {
        assert!(out.stderr.contains(named), "{named} not named:\n{}", out.stderr);
    }
    let again = env.run(&["run-all"], NOW);
    assert!(again.code == 0 || again.code == 65, "{}", again.stderr);
    assert!(!again.stderr.contains("panicked"));
}
