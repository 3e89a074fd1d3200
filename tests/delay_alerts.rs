//! check-delay-alerts end to end: the real binary, a real SMTP server.

use crate::support;

use support::{SmtpServer, TestEnv};

const NOW: &str = "2026-03-10T07:00:00Z";

fn env_with(smtp: &SmtpServer, delay_alerts: &str) -> TestEnv {
    TestEnv::new(smtp.port, delay_alerts)
}

const DEFAULTS: &str = "[delay_alerts]\nthreshold_days = 14\nrearm_hours = 24\n[delay_alerts.stage_threshold_days]\n\"Attente pièce\" = 21\n";

#[test]
fn due_entries_by_threshold_override_and_current_stage() {
    let smtp = SmtpServer::start();
    let env = env_with(&smtp, DEFAULTS);
    let awa = env.contact("Awa", "awa@example.com");
    env.recipient(awa, None);
    env.ticket("T-DUE18", &[("Diagnostic", "2026-02-20T07:00:00Z")]);
    env.ticket("T-RECENT", &[("Diagnostic", "2026-03-01T07:00:00Z")]);
    env.ticket("T-OVERRIDE18", &[("Attente pièce", "2026-02-20T07:00:00Z")]);
    env.ticket("T-OVERRIDE28", &[("Attente pièce", "2026-02-10T07:00:00Z")]);
    let closed = env.ticket("T-CLOSED", &[("Diagnostic", "2026-01-01T07:00:00Z")]);
    env.db()
        .execute(
            "UPDATE tickets SET closed_at = '2026-03-01T00:00:00Z' WHERE id = ?1",
            [closed],
        )
        .unwrap();
    env.ticket(
        "T-MOVED",
        &[
            ("Diagnostic", "2026-01-01T07:00:00Z"),
            ("Réparation", "2026-03-05T07:00:00Z"),
        ],
    );
    // The latest entered_at is the current stage, whatever the insertion order.
    env.ticket(
        "T-ORDER",
        &[
            ("Réparation", "2026-03-08T07:00:00Z"),
            ("Diagnostic", "2026-01-15T07:00:00Z"),
        ],
    );
    env.ticket("T-DJANGO23", &[("Diagnostic", "2026-02-15 07:00:00")]);
    env.ticket("T-BOUNDARY", &[("Diagnostic", "2026-02-24T07:00:00Z")]);
    env.ticket(
        "T-BROKEN",
        &[("Diagnostic", "2026-01-01T07:00:00Z"), ("Réparation", "yesterday")],
    );

    let out = env.run(&["check-delay-alerts"], NOW).code(65);
    assert!(
        out.stderr.contains("entered_at \"yesterday\" is not a timestamp"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("ticket_events id 13"),
        "the warning names the row: {}",
        out.stderr
    );

    let mail = smtp.mail_to("awa@example.com").decoded();
    let due = ["T-OVERRIDE28", "T-DJANGO23", "T-DUE18"];
    let positions: Vec<usize> = due
        .iter()
        .map(|r| mail.find(r).unwrap_or_else(|| panic!("{r} missing:\n{mail}")))
        .collect();
    assert!(
        positions[0] < positions[1] && positions[1] < positions[2],
        "longest in stage first:\n{mail}"
    );
    for not_due in [
        "T-RECENT",
        "T-OVERRIDE18",
        "T-CLOSED",
        "T-MOVED",
        "T-ORDER",
        "T-BOUNDARY",
        "T-BROKEN",
    ] {
        assert!(!mail.contains(not_due), "{not_due} should not be alerted:\n{mail}");
    }
    assert!(mail.contains("for 28 days (threshold: 21 days)"), "{mail}");
    assert!(
        mail.contains("Subject: Delay: 3 tickets have waited too long"),
        "{mail}"
    );
    let log_rows: i64 = env
        .db()
        .query_row("SELECT count(*) FROM rappel_delay_alert_log", [], |r| r.get(0))
        .unwrap();
    assert_eq!(log_rows, 3);
}

#[test]
fn recipients_stage_filters_merge_and_html_escaping() {
    let smtp = SmtpServer::start();
    let env = env_with(
        &smtp,
        "[delay_alerts]\nrecipients = [\"atelier@example.com\", \"AWA@Example.com\"]\n",
    );
    let awa = env.contact("Awa", "awa@example.com");
    env.recipient(awa, None);
    let jean = env.contact("Jean", "jean@example.com");
    env.recipient(jean, Some("Réparation, Contrôle"));
    let bob = env.contact("Bob", "bob@example.com");
    env.recipient(bob, None);
    env.db()
        .execute("UPDATE alert_recipients SET active = 0 WHERE contact_id = ?1", [bob])
        .unwrap();
    let nomail = env.contact("No Mail", "");
    env.recipient(nomail, None);
    env.ticket("T-DIAG", &[("Diagnostic", "2026-02-01T07:00:00Z")]);
    let rep = env.ticket("T-REP", &[("Réparation", "2026-02-10T07:00:00Z")]);
    env.db()
        .execute(
            "UPDATE tickets SET customer = '<script>alert(1)</script>' WHERE id = ?1",
            [rep],
        )
        .unwrap();

    env.run(&["check-delay-alerts"], NOW).success();

    assert_eq!(
        smtp.recipients(),
        vec!["atelier@example.com", "awa@example.com", "jean@example.com"],
        "one digest each; Bob is inactive, config duplicates merge case-insensitively"
    );
    let jean_mail = smtp.mail_to("jean@example.com").decoded();
    assert!(
        jean_mail.contains("T-REP") && !jean_mail.contains("T-DIAG"),
        "{jean_mail}"
    );
    let awa_mail = smtp.mail_to("awa@example.com").decoded();
    assert!(awa_mail.contains("T-REP") && awa_mail.contains("T-DIAG"), "{awa_mail}");
    assert!(
        awa_mail.find("T-DIAG") < awa_mail.find("T-REP"),
        "longest in stage first"
    );
    let html = &awa_mail[awa_mail.find("Content-Type: text/html").expect("an HTML part")..];
    assert!(html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"), "{html}");
    assert!(!html.contains("<script>"), "{html}");
}

#[test]
fn rearm_window_force_and_stage_change() {
    let smtp = SmtpServer::start();
    let env = env_with(&smtp, DEFAULTS);
    let awa = env.contact("Awa", "awa@example.com");
    env.recipient(awa, None);
    let ticket = env.ticket("T-1", &[("Diagnostic", "2026-02-20T07:00:00Z")]);

    env.run(&["check-delay-alerts"], NOW).success();
    assert_eq!(smtp.mails().len(), 1);

    let again = env.run(&["check-delay-alerts"], "2026-03-10T08:00:00Z").success();
    assert_eq!(smtp.mails().len(), 1, "a re-run inside rearm_hours sends nothing");
    assert!(
        again.stdout.is_empty(),
        "nothing to do prints nothing: {}",
        again.stdout
    );

    env.run(&["check-delay-alerts", "--force"], "2026-03-10T08:00:00Z")
        .success();
    assert_eq!(smtp.mails().len(), 2, "--force ignores the rearm window");

    // Tomorrow's run starting a little earlier than today's still alerts.
    env.run(&["check-delay-alerts"], "2026-03-11T07:50:00Z").success();
    assert_eq!(smtp.mails().len(), 3);

    // A stage change restarts the clock.
    env.event(ticket, "Réparation", "2026-03-11T09:00:00Z");
    env.run(&["check-delay-alerts"], "2026-03-13T09:00:00Z").success();
    assert_eq!(smtp.mails().len(), 3, "two days in the new stage is not overdue");
    env.run(&["check-delay-alerts"], "2026-03-25T10:00:00Z").success();
    assert_eq!(smtp.mails().len(), 4, "fourteen days later the new entry is due");
    assert!(smtp.mails()[3].decoded().contains("stage \"Réparation\" for 14 days"));
}

#[test]
fn dry_run_prints_and_changes_nothing() {
    let smtp = SmtpServer::start();
    let env = env_with(&smtp, DEFAULTS);
    let awa = env.contact("Awa", "awa@example.com");
    env.recipient(awa, None);
    // A recipient who reads French gets the detail lines in French too.
    let jean = env.contact("Jean", "jean@example.com");
    env.db()
        .execute("UPDATE contacts SET locale = 'fr' WHERE id = ?1", [jean])
        .unwrap();
    env.recipient(jean, None);
    env.ticket("T-1", &[("Diagnostic", "2026-02-20T07:00:00Z")]);
    let before = env.dump();

    let out = env.run(&["check-delay-alerts", "--dry-run"], NOW).success();
    let french = out.stdout.split("to jean@example.com").nth(1).unwrap_or_default();
    assert!(
        french.contains("\n    T-1 Phone (Customer) : Diagnostic depuis 18 jours, seuil 14\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("would send delay_alert via email to awa@example.com: Delay: ticket T-1 has waited 18 days"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("    T-1 Phone (Customer): Diagnostic for 18 days, threshold 14"),
        "{}",
        out.stdout
    );
    let json = env.run(&["--json", "check-delay-alerts", "--dry-run"], NOW).success();
    let summary: serde_json::Value = serde_json::from_str(json.stdout.trim()).expect("one JSON object");
    assert_eq!(summary["planned"], 2);
    assert_eq!(summary["messages"][0]["recipient"], "awa@example.com");

    assert_eq!(env.dump(), before, "a dry run writes nothing");
    assert!(smtp.mails().is_empty(), "a dry run sends nothing");
    assert!(!support_lock_exists(&env), "a dry run takes no lock file");
}

fn support_lock_exists(env: &TestEnv) -> bool {
    env.dir.path().join("rappel.db.check-delay-alerts.lock").exists()
}

#[test]
fn digest_shows_the_time_in_the_contact_zone() {
    let smtp = SmtpServer::start();
    let env = env_with(&smtp, DEFAULTS);
    let sam = env.contact("Sam", "sam@example.com");
    env.recipient(sam, None);
    let bad = env.contact("Bad Zone", "bad@example.com");
    env.recipient(bad, None);
    let db = env.db();
    db.execute("UPDATE contacts SET timezone = 'America/New_York' WHERE id = ?1", [sam])
        .unwrap();
    db.execute("UPDATE contacts SET timezone = 'Mars/Olympus' WHERE id = ?1", [bad])
        .unwrap();
    env.ticket("T-1", &[("Diagnostic", "2026-02-20T07:00:00Z")]);

    let out = env.run(&["check-delay-alerts"], NOW).code(65);
    assert!(
        out.stderr.contains(&format!("contacts id {bad}: timezone")),
        "{}",
        out.stderr
    );
    // 07:00 UTC on 10 March 2026 is 03:00 in New York (daylight time since 8 March).
    let mail = smtp.mail_to("sam@example.com").decoded();
    assert!(mail.contains("(as of 2026-03-10 03:00)"), "{mail}");
    assert_eq!(
        smtp.recipients(),
        vec!["sam@example.com"],
        "the contact with a bad zone is skipped"
    );
}

/// The sent instants of the delay digests, in order.
fn alert_times(env: &TestEnv) -> Vec<chrono::DateTime<chrono::Utc>> {
    let db = env.db();
    let mut stmt = db
        .prepare("SELECT sent_at FROM rappel_deliveries WHERE kind = 'delay_alert' ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|t| t.unwrap().parse().unwrap())
        .collect()
}

/// grafana#47592's drift: with rearm_hours = 24 and a run every 5 minutes,
/// each digest came 30 minutes earlier than the day before. It stays at its
/// time of day, within the cron's interval, once a day.
#[test]
fn a_daily_alert_keeps_its_time_of_day_under_a_frequent_cron() {
    let smtp = SmtpServer::start();
    let env = env_with(
        &smtp,
        "[delay_alerts]\nthreshold_days = 14\nrearm_hours = 24\nrecipients = [\"lead@example.com\"]\n",
    );
    env.ticket("T-1", &[("Diagnostic", "2026-01-01 08:02:00")]);
    let mut now: chrono::DateTime<chrono::Utc> = "2026-01-15T06:00:00Z".parse().unwrap();
    let end: chrono::DateTime<chrono::Utc> = "2026-01-18T12:00:00Z".parse().unwrap();
    while now < end {
        env.run(&["-q", "check-delay-alerts"], &support::instant(now)).success();
        now += chrono::Duration::minutes(5);
    }
    let times: Vec<String> = alert_times(&env).iter().map(|t| support::instant(*t)).collect();
    assert_eq!(
        times,
        [
            "2026-01-15T08:05:00Z",
            "2026-01-16T08:00:00Z",
            "2026-01-17T08:00:00Z",
            "2026-01-18T08:00:00Z"
        ],
        "overdue from 08:02: the first run after, then each day the run nearest to 08:02"
    );
}

/// A daily cron long after the entry's slot (19:30 for 07:00 UTC) alerts
/// at each run; a run by hand at the slot in between (less than half a day
/// after the last alert) takes no day's alert: the cron's next run sends it.
#[test]
fn a_daily_cron_long_after_the_slot_alerts_every_day_even_with_a_run_by_hand() {
    let smtp = SmtpServer::start();
    let env = env_with(
        &smtp,
        "[delay_alerts]\nthreshold_days = 14\nrearm_hours = 24\nrecipients = [\"lead@example.com\"]\n",
    );
    env.ticket("T-1", &[("Diagnostic", "2026-01-01 07:00:00")]);
    for at in [
        "2026-01-15T19:30:00Z",
        "2026-01-16T19:30:00Z",
        "2026-01-17T07:00:00Z",
        "2026-01-17T19:30:00Z",
        "2026-01-18T19:30:00Z",
    ] {
        env.run(&["-q", "check-delay-alerts"], at).success();
    }
    let times: Vec<String> = alert_times(&env).iter().map(|t| support::instant(*t)).collect();
    assert_eq!(
        times,
        [
            "2026-01-15T19:30:00Z",
            "2026-01-16T19:30:00Z",
            "2026-01-17T19:30:00Z",
            "2026-01-18T19:30:00Z"
        ]
    );
}

/// `alert_at`: every digest at that local time, one digest with every entry
/// overdue by then, and a daily cron that starts a few seconds early, or a
/// minute late, neither skips a day nor sends twice, across the spring change.
#[test]
fn alert_at_gathers_the_entries_at_one_local_time_every_day_across_dst() {
    let smtp = SmtpServer::start();
    let env = env_with(
        &smtp,
        "[delay_alerts]\nthreshold_days = 14\nalert_at = \"07:00\"\nrecipients = [\"lead@example.com\"]\n",
    );
    env.ticket("T-1", &[("Diagnostic", "2026-03-12T09:13:00Z")]);
    env.ticket("T-2", &[("Diagnostic", "2026-03-12T15:40:00Z")]);
    // 07:00 Paris: 06:00Z until the 29th, 05:00Z after; the cron fires a
    // little early or late.
    let runs = [
        "2026-03-26T20:00:00Z", // overdue, but not 07:00 yet
        "2026-03-27T05:59:57Z",
        "2026-03-27T06:10:00Z",
        "2026-03-28T06:01:00Z",
        "2026-03-29T04:59:50Z",
        "2026-03-30T04:59:59Z",
        "2026-03-30T05:00:30Z",
    ];
    for now in runs {
        env.run(&["check-delay-alerts"], now).success();
    }
    let times: Vec<String> = alert_times(&env).iter().map(|t| support::instant(*t)).collect();
    assert_eq!(
        times,
        [
            "2026-03-27T05:59:57Z",
            "2026-03-28T06:01:00Z",
            "2026-03-29T04:59:50Z",
            "2026-03-30T04:59:59Z"
        ]
    );
    let first = smtp.mails()[0].decoded();
    assert!(first.contains("T-1") && first.contains("T-2"), "one digest: {first}");
    let bad = env.run(&["config", "check"], "2026-03-30T06:00:00Z");
    assert_eq!(bad.code, 0, "{}", bad.stderr);
    let config = std::fs::read_to_string(env.config_path()).unwrap();
    env.write_config(&config.replace("\"07:00\"", "\"7h\""));
    let bad = env.run(&["check-delay-alerts"], "2026-03-31T06:00:00Z").code(78);
    assert!(bad.stderr.contains("delay_alerts.alert_at"), "{}", bad.stderr);
}

/// Host flags written as text are read as the host means them, for alert
/// recipients as for reminders: `email_enabled = 'false'` or `'no'` is off,
/// `active = 'true'` or `'yes'` is on, `active = 'false'` is off.
#[test]
fn text_flags_on_contacts_and_alert_recipients_are_read_as_meant() {
    let smtp = SmtpServer::start();
    let env = env_with(&smtp, DEFAULTS);
    let db = env.db();
    for (name, email_enabled, active) in [
        ("off-false", "'false'", "1"),
        ("off-no", "'no'", "1"),
        ("off-zero", "'0'", "1"),
        ("on-true", "'true'", "'true'"),
        ("on-yes", "'Yes'", "'yes'"),
        ("inactive", "1", "'false'"),
        ("inactive-off", "1", "'off'"),
    ] {
        db.execute(
            &format!("INSERT INTO contacts (name, email, email_enabled) VALUES (?1, ?2, {email_enabled})"),
            [name, &format!("{name}@example.com")],
        )
        .unwrap();
        db.execute(
            &format!("INSERT INTO alert_recipients (contact_id, active) VALUES (?1, {active})"),
            [db.last_insert_rowid()],
        )
        .unwrap();
    }
    env.ticket("T-1", &[("Diagnostic", "2026-02-20T07:00:00Z")]);
    env.run(&["check-delay-alerts"], NOW).success();
    assert_eq!(
        smtp.recipients(),
        vec!["on-true@example.com", "on-yes@example.com"],
        "only the enabled, active recipients"
    );
}

/// Entries written with fractions of a second, or with an offset of hours
/// alone (as PostgreSQL writes a timestamptz as text), are alerted: the
/// last look before the send names the entry to the second, as planning did.
#[test]
fn entries_written_with_fractions_of_a_second_are_alerted() {
    let smtp = SmtpServer::start();
    let env = env_with(&smtp, DEFAULTS);
    let awa = env.contact("Awa", "awa@example.com");
    env.recipient(awa, None);
    env.ticket("T-FRACTION", &[("Diagnostic", "2026-02-20 07:00:00.123456")]);
    env.ticket("T-HOURS", &[("Diagnostic", "2026-02-20 07:00:00.5+01")]);
    let out = env.run(&["check-delay-alerts"], NOW).success();
    assert!(out.stdout.contains("1 sent"), "{}", out.stdout);
    let mail = smtp.mail_to("awa@example.com");
    let body = mail.decoded();
    assert!(body.contains("T-FRACTION") && body.contains("T-HOURS"), "{body}");
}

/// `[delivery.send_windows] delay_alert`: a digest due on Saturday waits for
/// Monday 08:00 (the configured zone for a recipient without one, the
/// contact's own otherwise); still valid then, it goes once.
#[test]
fn a_delay_digest_waits_for_its_send_window() {
    let smtp = SmtpServer::start();
    let env = env_with(
        &smtp,
        &format!("[delivery.send_windows]\ndelay_alert = \"mon-fri 08:00-18:00\"\n{DEFAULTS}"),
    );
    let awa = env.contact("Awa", "awa@example.com");
    env.recipient(awa, None);
    env.ticket("T-1", &[("Diagnostic", "2026-02-20T07:00:00Z")]);
    // Saturday 14 March, 10:00 in Paris.
    env.run(&["check-delay-alerts"], "2026-03-14T09:00:00Z").success();
    assert!(smtp.mails().is_empty(), "not on a Saturday");
    let next: Option<String> = env
        .db()
        .query_row("SELECT next_attempt_at FROM rappel_deliveries", [], |r| r.get(0))
        .unwrap();
    assert_eq!(next.as_deref(), Some("2026-03-16T07:00:00Z"), "Monday 08:00 in Paris");
    env.run(&["deliver"], "2026-03-15T12:00:00Z").success();
    assert!(smtp.mails().is_empty(), "nor on Sunday");
    for now in ["2026-03-16T07:00:00Z", "2026-03-16T07:10:00Z"] {
        env.run(&["check-delay-alerts"], now).success();
    }
    assert_eq!(smtp.recipients(), ["awa@example.com"], "once");
}

/// The last look reads waiting digests together (a claim's, in one pair of
/// statements): each still gets its own verdict, two digests to one
/// contact included, on SQLite and on PostgreSQL.
#[test]
fn digests_read_again_together_each_get_their_own_verdict() {
    for backend in support::Backend::sqlite_and_postgres("digests_read_again_together_each_get_their_own_verdict") {
        let smtp = SmtpServer::start();
        let mut env = env_with(
            &smtp,
            "[delay_alerts]\nthreshold_days = 14\nrearm_hours = 24\nrecipients = [\"boss@example.com\"]\n",
        );
        let diagnostic_only = env.contact("Awa", "awa@example.com");
        env.recipient(diagnostic_only, Some("Diagnostic"));
        let repair_only = env.contact("Bintou", "bintou@example.com");
        env.recipient(repair_only, Some("Repair"));
        let every_stage = env.contact("Chérif", "cherif@example.com");
        env.recipient(every_stage, None);
        let leaving = env.contact("Dior", "dior@example.com");
        env.recipient(leaving, None);
        let t1 = env.ticket("T-1", &[("Diagnostic", "2026-02-01T08:00:00Z")]);
        env.ticket("T-2", &[("Repair", "2026-02-01T08:00:00Z")]);
        env.ticket("T-3", &[("Repair", "2026-02-20T08:00:00Z")]);
        backend.place(&mut env, &[], "together");

        // T-1 and T-2 are due on the 5th, T-3 on the 6th: nothing goes
        // (the server defers), and the second run adds a digest of T-3 for
        // those who get it, beside the first ones still waiting.
        smtp.set_mode(support::Mode::Defer);
        env.run(&["check-delay-alerts"], "2026-03-05T08:05:00Z").code(75);
        env.run(&["check-delay-alerts"], "2026-03-07T08:05:00Z").code(75);
        let waiting = env.rows(
            "SELECT recipient FROM rappel_deliveries WHERE status = 'pending' ORDER BY id",
            |r| r.get::<_, String>(0),
        );
        assert_eq!(waiting.len(), 9, "{backend:?}: {waiting:?}");

        // Meanwhile T-1 is closed and Dior stops receiving alerts.
        env.db()
            .execute_batch(&format!(
                "UPDATE tickets SET closed_at = '2026-03-07T09:00:00Z' WHERE id = {t1};
                 UPDATE alert_recipients SET active = 0 WHERE contact_id = {leaving};"
            ))
            .unwrap();
        smtp.set_mode(support::Mode::Accept);
        env.run(&["deliver"], "2026-03-07T10:05:00Z").success();
        let mut sent = smtp.recipients();
        sent.sort();
        assert_eq!(
            sent,
            [
                "bintou@example.com",
                "bintou@example.com",
                "boss@example.com",
                "boss@example.com",
                "cherif@example.com",
                "cherif@example.com"
            ],
            "{backend:?}"
        );
        let cancelled = env.rows(
            "SELECT recipient, last_error FROM rappel_deliveries WHERE status = 'cancelled' ORDER BY recipient, id",
            |r| Ok(format!("{}: {}", r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
        );
        assert_eq!(cancelled.len(), 3, "{backend:?}: {cancelled:?}");
        assert!(
            cancelled[0].starts_with("awa@example.com: ") && cancelled[0].contains("its ticket was closed or moved on"),
            "{backend:?}: {cancelled:?}"
        );
        for dior in &cancelled[1..] {
            assert!(
                dior.starts_with("dior@example.com: ")
                    && dior.contains(&format!("contact {leaving} is no longer an active alert recipient")),
                "{backend:?}: {cancelled:?}"
            );
        }
    }
}

/// The last look reads a digest's tickets in rounds (8, then 64…) and
/// stops at the first still in the stage it was alerted for: a digest of
/// 80 tickets whose first 79 closed still goes, and one whose 80 all
/// closed is cancelled, on SQLite and on PostgreSQL.
#[test]
fn a_long_digest_goes_while_any_of_its_tickets_is_still_due() {
    for backend in support::Backend::sqlite_and_postgres("a_long_digest_goes_while_any_of_its_tickets_is_still_due") {
        for (closed, goes) in [(79, true), (80, false)] {
            let smtp = SmtpServer::start();
            let mut env = env_with(&smtp, DEFAULTS);
            let awa = env.contact("Awa", "awa@example.com");
            env.recipient(awa, None);
            let tickets: Vec<i64> = (0..80)
                .map(|n| env.ticket(&format!("T-{n}"), &[("Diagnostic", "2026-02-01T08:00:00Z")]))
                .collect();
            backend.place(&mut env, &[], "long_digest");
            smtp.set_mode(support::Mode::Defer);
            env.run(&["check-delay-alerts"], "2026-03-05T08:05:00Z").code(75);
            let ids = tickets[..closed]
                .iter()
                .map(|id| id.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            let status = deliver_after(
                &env,
                &smtp,
                &format!("UPDATE tickets SET closed_at = '2026-03-05T09:00:00Z' WHERE id IN ({ids})"),
                "2026-03-05T10:05:00Z",
            );
            if goes {
                assert_eq!(smtp.recipients(), ["awa@example.com"], "{backend:?}: {status:?}");
                assert_eq!(status, ["sent "], "{backend:?}");
            } else {
                assert!(smtp.mails().is_empty(), "{backend:?}: {status:?}");
                assert_eq!(status.len(), 1, "{backend:?}: {status:?}");
                assert!(
                    status[0].starts_with("cancelled ") && status[0].contains("its 80 tickets were closed or moved on"),
                    "{backend:?}: {status:?}"
                );
            }
        }
    }
}

/// Recipients are merged by address: a digest whose contact stopped
/// receiving alerts (deactivated, deleted) still goes while another
/// contact with the same address, in another case, receives them; once
/// none does, it is cancelled. On SQLite and on PostgreSQL.
#[test]
fn a_digest_goes_while_any_contact_with_its_address_still_receives_alerts() {
    for backend in
        support::Backend::sqlite_and_postgres("a_digest_goes_while_any_contact_with_its_address_still_receives_alerts")
    {
        for (change, goes) in [
            ("UPDATE alert_recipients SET active = 0 WHERE contact_id = 1", true),
            (
                "DELETE FROM alert_recipients WHERE contact_id = 1; DELETE FROM contacts WHERE id = 1",
                true,
            ),
            ("UPDATE alert_recipients SET active = 0", false),
        ] {
            let smtp = SmtpServer::start();
            let mut env = env_with(&smtp, DEFAULTS);
            let first = env.contact("Awa", "shared@example.com");
            let second = env.contact("Awa at the desk", "SHARED@example.com");
            assert_eq!((first, second), (1, 2));
            env.recipient(first, None);
            env.recipient(second, None);
            env.ticket("T-1", &[("Diagnostic", "2026-02-01T08:00:00Z")]);
            backend.place(&mut env, &[], "shared_address");
            smtp.set_mode(support::Mode::Defer);
            env.run(&["check-delay-alerts"], "2026-03-05T08:05:00Z").code(75);
            let planned = env.rows("SELECT recipient FROM rappel_deliveries", |r| r.get::<_, String>(0));
            assert_eq!(planned.len(), 1, "one digest per address: {planned:?}");
            let status = deliver_after(&env, &smtp, change, "2026-03-05T10:05:00Z");
            if goes {
                assert_eq!(status, ["sent "], "{backend:?} {change}");
                assert_eq!(smtp.mails().len(), 1, "{backend:?} {change}");
            } else {
                assert!(
                    status[0].starts_with("cancelled ") && status[0].contains("no longer an active alert recipient"),
                    "{backend:?} {change}: {status:?}"
                );
                assert!(smtp.mails().is_empty(), "{backend:?} {change}");
            }
        }
    }
}

/// Applies `change` to the sources of the digests waiting on a deferring
/// `smtp`, lets it accept, and delivers at `at`: each delivery's status and
/// last error, by id.
fn deliver_after(env: &TestEnv, smtp: &SmtpServer, change: &str, at: &str) -> Vec<String> {
    env.db().execute_batch(change).unwrap();
    smtp.set_mode(support::Mode::Accept);
    env.run(&["deliver"], at).success();
    env.rows(
        "SELECT status || ' ' || coalesce(last_error, '') FROM rappel_deliveries ORDER BY id",
        |r| r.get::<_, String>(0),
    )
}
