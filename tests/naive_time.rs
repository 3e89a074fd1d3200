//! Instants host rows write without an offset (`2026-03-10 14:00:00`, as
//! Django with `USE_TZ = False` or PHP writes local time): read in
//! `naive_timezone` (default UTC), punches in their terminal's `timezone`,
//! rows named in keys the same whatever the setting, and `config check`
//! warning when such values are read as UTC by default.

use crate::support;

use support::hr::FakeHr;
use support::{SmtpServer, TestEnv, free_port};

/// An environment whose config starts with `naive` (a top-level line, or "").
fn env_with(smtp: &SmtpServer, naive: &str, extra: &str) -> TestEnv {
    let env = TestEnv::new(smtp.port, extra);
    let base = std::fs::read_to_string(env.config_path()).unwrap();
    env.write_config(&format!("{naive}\n{base}"));
    env
}

fn keys(env: &TestEnv) -> Vec<String> {
    let db = env.db();
    let mut stmt = db
        .prepare("SELECT dedupe_key FROM rappel_deliveries ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
}

#[test]
fn reports_are_due_at_their_local_time_and_keep_their_name() {
    // 09:00 in Tokyo is 00:00Z; read as UTC it would be 09:00Z.
    const NOW: &str = "2026-03-10T01:00:00Z";
    let smtp = SmtpServer::start();
    let extra = "[reports]\n[reports.definitions.one]\nquery = \"SELECT 1 AS one\"\n";
    let tokyo = env_with(&smtp, "naive_timezone = \"Asia/Tokyo\"", extra);
    let id = tokyo.report("Morning", "a@example.com", "2026-03-10 09:00:00", None, Some("one"));
    // A row with its own zone is read in it: 22:00 in New York (EDT) is 02:00Z.
    let own = tokyo.report("Evening", "b@example.com", "2026-03-09 22:00:00", None, Some("one"));
    tokyo
        .db()
        .execute(
            "UPDATE scheduled_reports SET timezone = 'America/New_York' WHERE id = ?1",
            [own],
        )
        .unwrap();
    tokyo.run(&["send-reports"], NOW).success();
    assert_eq!(smtp.recipients(), ["a@example.com"]);
    assert_eq!(tokyo.report_status(id).0, "sent");
    assert_eq!(tokyo.report_status(own).0, "pending");
    assert_eq!(
        keys(&tokyo),
        [format!("report:{id}@2026-03-10T09:00:00Z:a@example.com")],
        "the row is named by its value as written, whatever naive_timezone says"
    );
    tokyo.run(&["send-reports"], "2026-03-10T02:00:00Z").success();
    assert_eq!(smtp.recipients(), ["a@example.com", "b@example.com"]);

    // Without the setting: UTC, as before.
    let smtp = SmtpServer::start();
    let utc = env_with(&smtp, "", extra);
    let id = utc.report("Morning", "a@example.com", "2026-03-10 09:00:00", None, Some("one"));
    utc.run(&["send-reports"], NOW).success();
    assert!(smtp.recipients().is_empty());
    assert_eq!(utc.report_status(id).0, "pending");
    utc.run(&["send-reports"], "2026-03-10T09:00:00Z").success();
    assert_eq!(smtp.recipients(), ["a@example.com"]);
}

#[test]
fn days_in_stage_count_from_the_local_entry_time() {
    // Entered 24 Feb 07:00 in Tokyo (23 Feb 22:00Z): past 14 days on 10 March
    // 07:00Z; read as UTC it is exactly 14 days, not yet past.
    const NOW: &str = "2026-03-10T07:00:00Z";
    let thresholds = "[delay_alerts]\nthreshold_days = 14\n";
    let mut sent = Vec::new();
    for naive in ["naive_timezone = \"Asia/Tokyo\"", ""] {
        let smtp = SmtpServer::start();
        let env = env_with(&smtp, naive, thresholds);
        let awa = env.contact("Awa", "awa@example.com");
        env.recipient(awa, None);
        env.ticket("T-LOCAL", &[("Diagnostic", "2026-02-24 07:00:00")]);
        env.run(&["check-delay-alerts"], NOW).success();
        sent.push(smtp.recipients().len());
        if !naive.is_empty() {
            let entered: String = env
                .db()
                .query_row("SELECT entered_at FROM rappel_delay_alert_log", [], |r| r.get(0))
                .unwrap();
            assert_eq!(entered, "2026-02-24T07:00:00Z", "the entry's name, as written");
            // Planned again the next day: the same entry, not a new one.
            env.run(&["check-delay-alerts"], "2026-03-10T08:00:00Z").success();
            assert_eq!(smtp.recipients().len(), 1, "once per re-arm slot");
        }
    }
    assert_eq!(sent, [1, 0], "Tokyo: due; UTC: not yet");
}

#[test]
fn session_reminders_tell_the_local_start_time() {
    const NOW: &str = "2026-03-10T07:30:00Z"; // 08:30 in Paris, after session_day_at
    for (naive, told) in [("naive_timezone = \"Europe/Paris\"", "at 14:00"), ("", "at 15:00")] {
        let smtp = SmtpServer::start();
        let env = env_with(&smtp, naive, "");
        let db = env.db();
        db.execute(
            "INSERT INTO contacts (name, email) VALUES ('Léa', 'lea@example.com')",
            [],
        )
        .unwrap();
        let contact = db.last_insert_rowid();
        db.execute("INSERT INTO students (contact_id) VALUES (?1)", [contact])
            .unwrap();
        let student = db.last_insert_rowid();
        db.execute(
            "INSERT INTO revision_sessions (student_id, subject, starts_at) VALUES (?1, 'Maths', '2026-03-10 14:00:00')",
            [student],
        )
        .unwrap();
        env.run(&["send-reminders"], NOW).success();
        let mail = smtp.mail_to("lea@example.com");
        assert!(mail.subject().contains(told), "{naive:?}: {}", mail.subject());
    }
}

#[test]
fn punches_are_read_in_their_terminal_zone_then_naive_timezone() {
    let hr = FakeHr::start();
    let env = TestEnv::new(free_port(), "");
    std::fs::write(env.dir.path().join("hr-token"), "hr-token-value-1234\n").unwrap();
    env.write_config(&format!(
        r#"database = "rappel.db"
timezone = "Europe/Paris"
naive_timezone = "Asia/Tokyo"

[delivery]
lease_s = 5

[attendance.services.rh]
base_url = "{}"
attendance_endpoint = "/api/v1/attendance"
auth = "bearer"
token_file = "hr-token"
timeout_s = 1
"#,
        hr.base_url()
    ));
    let db = env.db();
    db.execute_batch(
        "INSERT INTO terminals (id, serial, timezone) VALUES (1, 'TM-LBV', 'Africa/Libreville'), (2, 'TM-HQ', NULL), (3, 'TM-BAD', 'Mars/Olympus');
         INSERT INTO attendance_logs (id, terminal_id, enroll_id, punched_at) VALUES
           (1, 1, 7, '2026-03-09 08:00:00'),
           (2, 2, 7, '2026-03-09 08:00:00'),
           (3, 1, 8, '2026-03-09T08:00:00+02:00'),
           (4, 3, 9, '2026-03-09 08:00:00');",
    )
    .unwrap();
    env.run(&["sync-attendance"], "2026-03-10T09:00:00Z").code(65);
    let mut times: Vec<(i64, String)> = hr
        .posts()
        .iter()
        .flat_map(|p| {
            let body: serde_json::Value = serde_json::from_str(&p.body).unwrap();
            body["attendance"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| (i["log_id"].as_i64().unwrap(), i["time"].as_str().unwrap().to_string()))
                .collect::<Vec<_>>()
        })
        .collect();
    times.sort();
    assert_eq!(
        times,
        [
            (1, "2026-03-09T07:00:00Z".to_string()), // Libreville, UTC+1
            (2, "2026-03-08T23:00:00Z".to_string()), // no zone: naive_timezone, Tokyo
            (3, "2026-03-09T06:00:00Z".to_string()), // its own offset
        ]
    );
    let error: String = env
        .db()
        .query_row("SELECT sync_error FROM attendance_logs WHERE id = 4", [], |r| r.get(0))
        .unwrap();
    assert!(error.contains("its terminal's timezone is unusable"), "{error}");
}

#[test]
fn config_check_warns_of_naive_instants_read_as_utc() {
    let smtp = SmtpServer::start();
    let env = env_with(&smtp, "", "");
    env.ticket("T-Z", &[("Diagnostic", "2026-02-24T07:00:00Z")]);
    let out = env.run(&["config", "check"], "2026-03-10T07:00:00Z").success();
    assert!(!out.stderr.contains("without a zone"), "{}", out.stderr);

    env.ticket("T-NAIVE", &[("Diagnostic", "2026-02-24 07:00:00")]);
    env.db()
        .execute_batch(
            "INSERT INTO contacts (id, name) VALUES (50, 'Lender');
             INSERT INTO loans (contact_id, item, lent_at, due_at) VALUES (50, 'Book', '2026-03-01T10:00:00+01:00', '2026-03-13');",
        )
        .unwrap();
    let out = env.run(&["config", "check"], "2026-03-10T07:00:00Z").success();
    assert!(
        out.stderr.contains(
            "ticket_events.entered_at holds instants without a zone (e.g. \"2026-02-24 07:00:00\"), read as UTC"
        ) && out.stderr.contains("naive_timezone = \"Europe/Paris\""),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("loans."),
        "an offset or a date alone is no naive instant: {}",
        out.stderr
    );

    let base = std::fs::read_to_string(env.config_path()).unwrap();
    env.write_config(&format!("naive_timezone = \"UTC\"\n{base}"));
    let out = env.run(&["config", "check"], "2026-03-10T07:00:00Z").success();
    assert!(!out.stderr.contains("without a zone"), "set: {}", out.stderr);
}
