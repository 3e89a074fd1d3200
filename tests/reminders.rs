//! send-reminders for loans end to end: the real binary, a real SMTP server,
//! and an HTTP server on 127.0.0.1 standing in for Twilio.

use crate::support;

use support::twilio::FakeTwilio;
use support::{SmtpServer, TestEnv};

/// Config zone Libreville (UTC+1, no DST); Twilio at the fake server.
fn env(smtp: &SmtpServer, twilio: &FakeTwilio, extra: &str) -> TestEnv {
    let env = TestEnv::new(smtp.port, "");
    let base = std::fs::read_to_string(env.config_path())
        .unwrap()
        .replace("Europe/Paris", "Africa/Libreville");
    env.write_config(&format!(
        r#"{base}
{}[whatsapp.content_sids]
loan_d1 = {{ sid = "HX0123456789abcdef0123456789abcdef", variables = ["contact.name", "loan.item", "due_local"] }}
{extra}"#,
        twilio.config(env.dir.path())
    ));
    env
}

/// A contact with email only, or with WhatsApp and SMS on `phone`.
fn contact(env: &TestEnv, name: &str, phone: Option<&str>, zone: Option<&str>) -> i64 {
    let db = env.db();
    db.execute(
        "INSERT INTO contacts (name, email, phone, timezone, whatsapp_enabled, sms_enabled) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        rusqlite::params![name, format!("{}@example.com", name.to_lowercase()), phone, zone, phone.is_some()],
    )
    .unwrap();
    db.last_insert_rowid()
}

fn loan(env: &TestEnv, contact: i64, term: &str, lent_at: &str, due_at: &str) -> i64 {
    let db = env.db();
    db.execute(
        "INSERT INTO loans (contact_id, item, term, lent_at, due_at) VALUES (?1, 'Drill', ?2, ?3, ?4)",
        rusqlite::params![contact, term, lent_at, due_at],
    )
    .unwrap();
    db.last_insert_rowid()
}

/// The kinds received by email, in order.
fn kinds(smtp: &SmtpServer) -> Vec<String> {
    smtp.mails().iter().filter_map(|m| m.header("X-Rappel-Kind")).collect()
}

// Loan A: lent Monday 2 March, due Friday 13 March 18:00 Libreville (17:00Z).
const LENT: &str = "2026-03-02T10:00:00Z";
const DUE: &str = "2026-03-13T17:00:00Z";

#[test]
fn each_kind_goes_at_its_local_time_and_not_a_minute_before() {
    let (smtp, twilio) = (SmtpServer::start(), FakeTwilio::start());
    let env = env(&smtp, &twilio, "");
    let c = contact(&env, "Awa", None, None);
    loan(&env, c, "long", LENT, DUE);
    let steps = [
        ("2026-03-02T10:00:00Z", "loan_created"),
        ("2026-03-11T08:00:00Z", "loan_d2"),      // 09:00 local
        ("2026-03-12T08:00:00Z", "loan_d1"),      // 09:00 local
        ("2026-03-13T07:00:00Z", "loan_due"),     // 08:00 local
        ("2026-03-14T09:00:00Z", "loan_overdue"), // 10:00 local, the day after
    ];
    for (i, (at, kind)) in steps.iter().enumerate() {
        let minute_before = chrono::DateTime::parse_from_rfc3339(at).unwrap() - chrono::Duration::minutes(1);
        env.run(&["send-reminders"], &minute_before.to_rfc3339()).success();
        assert_eq!(kinds(&smtp).len(), i, "nothing new a minute before {kind}");
        env.run(&["send-reminders"], at).success();
        assert_eq!(kinds(&smtp).last().map(String::as_str), Some(*kind), "{kind} at {at}");
    }
    env.run(&["send-reminders"], "2026-03-14T09:30:00Z").success();
    assert_eq!(kinds(&smtp).len(), 5, "never twice");
}

#[test]
fn after_three_days_off_only_what_is_still_valid_goes() {
    let (smtp, twilio) = (SmtpServer::start(), FakeTwilio::start());
    let env = env(&smtp, &twilio, "");
    let c = contact(&env, "Awa", None, None);
    loan(&env, c, "long", LENT, DUE);
    env.run(&["send-reminders"], "2026-03-10T12:00:00Z").success(); // created expired: skipped
    let out = env.run(&["send-reminders"], "2026-03-14T09:30:00Z").success();
    assert_eq!(kinds(&smtp), vec!["loan_overdue"], "not D-2, D-1 and due-day at once");
    assert!(
        out.stdout.contains("1 planned, 1 sent, 0 failed, 3 skipped"),
        "{}",
        out.stdout
    );
    let again = env.run(&["send-reminders"], "2026-03-14T09:35:00Z").success();
    assert!(
        again.stdout.is_empty(),
        "expired reminders are counted once: {}",
        again.stdout
    );
}

#[test]
fn the_contact_zone_wins_over_the_config() {
    let (smtp, twilio) = (SmtpServer::start(), FakeTwilio::start());
    let env = env(&smtp, &twilio, "");
    let c = contact(&env, "Ny", None, Some("America/New_York"));
    loan(&env, c, "long", LENT, "2026-03-13T22:00:00Z"); // 18:00 in New York (EDT)
    // D-1 09:00 in New York is 13:00Z; in Libreville it would be 08:00Z.
    env.run(&["send-reminders", "--kind", "loan_d1"], "2026-03-12T12:59:00Z")
        .success();
    assert!(smtp.mails().is_empty());
    env.run(&["send-reminders", "--kind", "loan_d1"], "2026-03-12T13:00:00Z")
        .success();
    let mail = smtp.mail_to("ny@example.com").decoded();
    assert!(
        mail.contains("13/03/2026 18:00") || mail.contains("2026-03-13 18:00"),
        "due time in New York: {mail}"
    );
}

#[test]
fn dst_nights_move_nothing_and_send_once() {
    let (smtp, twilio) = (SmtpServer::start(), FakeTwilio::start());
    let env = env(&smtp, &twilio, "[reminders]\nloan_overdue_at = \"02:30\"\n");
    let paris = contact(&env, "Pia", None, Some("Europe/Paris"));
    // D-1 on Monday 30 March, the day after the spring change: 09:00 is 07:00Z.
    loan(&env, paris, "long", "2026-03-20T10:00:00Z", "2026-03-31T16:00:00Z");
    env.run(&["send-reminders", "--kind", "loan_d1"], "2026-03-30T06:59:00Z")
        .success();
    assert!(smtp.mails().is_empty());
    env.run(&["send-reminders", "--kind", "loan_d1"], "2026-03-30T07:00:00Z")
        .success();
    assert_eq!(kinds(&smtp), vec!["loan_d1"]);

    // Overdue at 02:30 on the autumn night that has two: sent at the first, once.
    loan(&env, paris, "long", "2026-10-01T10:00:00Z", "2026-10-24T16:00:00Z");
    env.run(&["send-reminders", "--kind", "loan_overdue"], "2026-10-25T00:30:00Z")
        .success();
    env.run(&["send-reminders", "--kind", "loan_overdue"], "2026-10-25T01:30:00Z")
        .success();
    assert_eq!(kinds(&smtp), vec!["loan_d1", "loan_overdue"]);
}

#[test]
fn muted_and_disabled_kinds_are_not_sent() {
    let (smtp, twilio) = (SmtpServer::start(), FakeTwilio::start());
    let env = env(&smtp, &twilio, "[reminders]\ndisabled_kinds = [\"loan_d2\"]\n");
    let c = contact(&env, "Awa", None, None);
    env.db()
        .execute(
            "UPDATE contacts SET muted_kinds = 'loan_created, loan_due' WHERE id = ?1",
            [c],
        )
        .unwrap();
    loan(&env, c, "long", LENT, DUE);
    for at in [
        "2026-03-02T10:00:00Z",
        "2026-03-11T08:00:00Z",
        "2026-03-12T08:00:00Z",
        "2026-03-13T07:00:00Z",
    ] {
        env.run(&["send-reminders"], at).success();
    }
    assert_eq!(kinds(&smtp), vec!["loan_d1"]);
}

#[test]
fn whatsapp_with_an_approved_template_and_sms_with_text() {
    let (smtp, twilio) = (SmtpServer::start(), FakeTwilio::start());
    let env = env(&smtp, &twilio, "");
    let c = contact(&env, "Awa", Some("+24107123456"), None);
    let id = loan(&env, c, "long", LENT, DUE);
    env.run(&["send-reminders", "--kind", "loan_d1"], "2026-03-12T08:00:00Z")
        .success();
    let requests = twilio.accepted();
    assert_eq!(requests.len(), 2, "WhatsApp and SMS");
    let wa = requests.iter().find(|r| r.form["To"].starts_with("whatsapp:")).unwrap();
    assert_eq!(wa.url, "/2010-04-01/Accounts/ACtest/Messages.json");
    assert_eq!(wa.form["To"], "whatsapp:+24107123456");
    assert_eq!(wa.form["From"], "whatsapp:+14155238886");
    assert_eq!(wa.form["ContentSid"], "HX0123456789abcdef0123456789abcdef");
    let vars: serde_json::Value = serde_json::from_str(&wa.form["ContentVariables"]).unwrap();
    assert_eq!(
        vars,
        serde_json::json!({"1": "Awa", "2": "Drill", "3": "2026-03-13 18:00"})
    );
    assert!(!wa.form.contains_key("Body"));
    // Basic auth: account SID and token.
    assert_eq!(wa.authorization.as_deref(), Some("Basic QUN0ZXN0OnMzY3JldC10b2tlbg=="));
    let sms = requests.iter().find(|r| r.form["To"] == "+24107123456").unwrap();
    assert_eq!(sms.form["From"], "+15005550006");
    assert!(sms.form["Body"].contains("Drill"), "{:?}", sms.form);
    let refs: Vec<String> = env
        .db()
        .prepare("SELECT provider_ref FROM rappel_deliveries WHERE source_id = ?1 AND channel <> 'email' ORDER BY id")
        .unwrap()
        .query_map([id], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(refs.iter().all(|r| r.starts_with("SM")), "the SID is kept: {refs:?}");
}

#[test]
fn twilio_errors_by_class() {
    let (smtp, twilio) = (SmtpServer::start(), FakeTwilio::start());
    let env = env(&smtp, &twilio, "");
    let c = contact(&env, "Awa", Some("+24107123456"), None);
    env.db()
        .execute(
            "UPDATE contacts SET sms_enabled = 0, email_enabled = 0 WHERE id = ?1",
            [c],
        )
        .unwrap();
    loan(&env, c, "long", LENT, DUE);
    let status = || -> (String, Option<String>, i64, Option<String>) {
        env.db()
            .query_row(
                "SELECT status, error_class, attempts, next_attempt_at FROM rappel_deliveries ORDER BY id DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap()
    };

    // 21211: invalid number, failed at once, never retried.
    twilio.answer_next(
        400,
        r#"{"code": 21211, "message": "Invalid 'To' Phone Number", "status": 400}"#,
        &[],
    );
    env.run(&["send-reminders", "--kind", "loan_created"], "2026-03-02T10:00:00Z")
        .code(65);
    let (s, class, _, _) = status();
    assert_eq!((s.as_str(), class.as_deref()), ("failed", Some("permanent")));
    env.run(&["deliver"], "2026-03-02T12:00:00Z").success();
    assert_eq!(twilio.requests().len(), 1, "no retry");

    // 429 with Retry-After: retried no sooner.
    twilio.answer_next(
        429,
        r#"{"code": 20429, "message": "Too Many Requests", "status": 429}"#,
        &[("Retry-After", "3600")],
    );
    env.run(&["send-reminders", "--kind", "loan_d2"], "2026-03-11T08:00:00Z")
        .code(75);
    let (s, _, attempts, next) = status();
    assert_eq!((s.as_str(), attempts), ("pending", 1));
    assert!(next.unwrap().as_str() >= "2026-03-11T09:00:00Z", "honours Retry-After");
    env.run(&["deliver"], "2026-03-11T08:30:00Z").success();
    assert_eq!(twilio.accepted().len(), 0);
    env.run(&["deliver"], "2026-03-11T09:01:00Z").success();
    assert_eq!(twilio.accepted().len(), 1);

    // 401: credentials, exit 78, the attempt not counted.
    twilio.answer_next(401, r#"{"code": 20003, "message": "Authenticate", "status": 401}"#, &[]);
    env.run(&["send-reminders", "--kind", "loan_d1"], "2026-03-12T08:00:00Z")
        .code(78);
    let (s, class, attempts, _) = status();
    assert_eq!(
        (s.as_str(), class.as_deref(), attempts),
        ("pending", Some("credentials"), 0)
    );
}

#[test]
fn status_refresh_records_undelivered_with_63016() {
    let (smtp, twilio) = (SmtpServer::start(), FakeTwilio::start());
    let env = env(&smtp, &twilio, "");
    let c = contact(&env, "Awa", Some("+24107123456"), None);
    env.db()
        .execute("UPDATE contacts SET sms_enabled = 0 WHERE id = ?1", [c])
        .unwrap();
    loan(&env, c, "long", LENT, DUE);
    env.run(&["send-reminders", "--kind", "loan_d2"], "2026-03-11T08:00:00Z")
        .success();
    let sid = provider_ref(&env, "channel = 'whatsapp'");
    twilio.set_status(&sid, "undelivered", Some(63016));
    env.run(&["send-reminders"], "2026-03-11T08:10:00Z").success();
    let (status, provider, error): (String, Option<String>, Option<String>) = env
        .db()
        .query_row(
            "SELECT status, provider_status, last_error FROM rappel_deliveries WHERE channel = 'whatsapp'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(status, "sent", "status never changes");
    assert_eq!(provider.as_deref(), Some("undelivered"));
    assert!(error.unwrap().contains("24-hour window"));

    // `rappel log` shows Twilio's later word next to the status, with the SID.
    let out = env
        .run(&["log", "--channel", "whatsapp"], "2026-03-11T08:20:00Z")
        .success();
    let line = out.stdout.lines().nth(1).expect("one delivery under the header");
    assert!(line.contains("sent (undelivered)"), "{line}");
    assert!(line.contains(&sid), "{line}");
    assert!(line.contains("24-hour window"), "{line}");
    let json = env
        .run(&["--json", "log", "--channel", "whatsapp"], "2026-03-11T08:20:00Z")
        .success();
    let rows: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(rows[0]["provider_status"], "undelivered");
    assert_eq!(rows[0]["provider_ref"], sid.as_str());
    assert_eq!(rows.as_array().unwrap().len(), 1);
}

#[test]
fn dry_run_writes_nothing_and_overlapping_runs_send_once() {
    let (smtp, twilio) = (SmtpServer::start(), FakeTwilio::start());
    let env = env(&smtp, &twilio, "");
    for i in 0..6 {
        let c = contact(&env, &format!("P{i}"), Some(&format!("+2410712345{i}")), None);
        loan(&env, c, "long", LENT, DUE);
    }
    let before = env.dump();
    let out = env
        .run(
            &["send-reminders", "--dry-run", "--kind", "loan_d1"],
            "2026-03-12T08:00:00Z",
        )
        .success();
    assert_eq!(out.stdout.matches("would send loan_d1").count(), 18, "{}", out.stdout);
    assert_eq!(env.dump(), before);
    assert!(twilio.requests().is_empty() && smtp.mails().is_empty());

    env.run_concurrently(
        4,
        &["send-reminders", "--kind", "loan_d1"],
        &["deliver"],
        "2026-03-12T08:00:00Z",
    );
    env.run(&["deliver"], "2026-03-12T08:00:00Z").success();
    assert_eq!(smtp.mails().len(), 6);
    assert_eq!(twilio.accepted().len(), 12, "6 WhatsApp + 6 SMS, each once");
}

#[test]
fn an_extended_loan_gets_the_reminders_of_its_new_date() {
    let (smtp, twilio) = (SmtpServer::start(), FakeTwilio::start());
    let env = env(&smtp, &twilio, "");
    let c = contact(&env, "Awa", None, None);
    let id = loan(&env, c, "long", LENT, DUE);
    env.run(&["send-reminders", "--kind", "loan_d1"], "2026-03-12T08:00:00Z")
        .success();
    // Extended by a week: a new D-1, on the new date.
    env.db()
        .execute("UPDATE loans SET due_at = '2026-03-20T17:00:00Z' WHERE id = ?1", [id])
        .unwrap();
    env.run(&["send-reminders"], "2026-03-13T07:00:00Z").success();
    assert_eq!(kinds(&smtp), vec!["loan_d1"], "no due-day or overdue for the old date");
    env.run(&["send-reminders", "--kind", "loan_d1"], "2026-03-19T08:00:00Z")
        .success();
    assert_eq!(kinds(&smtp), vec!["loan_d1", "loan_d1"]);
}

#[test]
fn no_usable_channel_is_a_skip_an_unusable_phone_a_failure_and_unparsable_rows_are_named() {
    let (smtp, twilio) = (SmtpServer::start(), FakeTwilio::start());
    let env = env(&smtp, &twilio, "");
    // Enabled WhatsApp and SMS, on a national number and no default_region.
    let national = contact(&env, "National", Some("0612345678"), None);
    let nobody = contact(&env, "Nobody", None, None);
    env.db()
        .execute(
            "UPDATE contacts SET email_enabled = 0 WHERE id IN (?1, ?2)",
            [national, nobody],
        )
        .unwrap();
    loan(&env, national, "long", LENT, DUE);
    loan(&env, nobody, "long", LENT, DUE);
    let ok = contact(&env, "Awa", None, None);
    let bad = loan(&env, ok, "long", LENT, "next friday");
    loan(&env, ok, "long", LENT, DUE);
    let out = env.run(&["-v", "send-reminders"], "2026-03-02T10:00:00Z").code(65);
    assert!(
        out.stderr.contains(&format!("contact {nobody} has no usable channel")),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("phone \"0612345678\" has no country code, and [whatsapp] default_region is not set"),
        "an unusable phone is named, never dropped silently: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!("loans id {bad}: due_at \"next friday\"")),
        "{}",
        out.stderr
    );
    let failed: Vec<(String, String, String)> = {
        let db = env.db();
        let mut stmt = db
            .prepare("SELECT channel, status, last_error FROM rappel_deliveries WHERE contact_id = ?1 ORDER BY channel")
            .unwrap();
        stmt.query_map([national], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(
        failed
            .iter()
            .all(|(_, status, why)| status == "failed" && why.contains("E.164")),
        "{failed:?}"
    );
    assert_eq!(smtp.recipients(), vec!["awa@example.com"], "the other loans go on");
    assert!(twilio.requests().is_empty());

    // With the country set, the same number is sent, in E.164.
    let config = std::fs::read_to_string(env.config_path()).unwrap();
    env.write_config(&config.replace("[whatsapp]\n", "[whatsapp]\ndefault_region = \"fr\"\n"));
    env.db()
        .execute("DELETE FROM rappel_deliveries WHERE contact_id = ?1", [national])
        .unwrap();
    env.run(&["send-reminders", "--kind", "loan_created"], "2026-03-02T10:05:00Z")
        .code(65); // the unreadable due_at is still there
    let mut to = twilio.accepted_to();
    to.sort();
    assert_eq!(to, ["+33612345678", "whatsapp:+33612345678"]);
}

#[test]
fn twilio_unreachable_is_retried() {
    let smtp = SmtpServer::start();
    let twilio = FakeTwilio::start();
    let env = env(&smtp, &twilio, "");
    let dead = support::free_port();
    let text = std::fs::read_to_string(env.config_path())
        .unwrap()
        .replace(&format!("127.0.0.1:{}", twilio.port), &format!("127.0.0.1:{dead}"));
    env.write_config(&text);
    let c = contact(&env, "Awa", Some("+24107123456"), None);
    env.db()
        .execute(
            "UPDATE contacts SET email_enabled = 0, sms_enabled = 0 WHERE id = ?1",
            [c],
        )
        .unwrap();
    loan(&env, c, "long", LENT, DUE);
    env.run(&["send-reminders", "--kind", "loan_created"], LENT).code(75);
    let (status, attempts): (String, i64) = env
        .db()
        .query_row("SELECT status, attempts FROM rappel_deliveries", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((status.as_str(), attempts), ("pending", 1));
}

/// Phones and addresses as people type them reach them; what cannot be used
/// is a failed delivery naming why; muted kinds in any spelling are obeyed,
/// and an unknown one is named.
#[test]
fn phones_addresses_and_muted_kinds_as_hosts_write_them() {
    let (smtp, twilio) = (SmtpServer::start(), FakeTwilio::start());
    let env = env(&smtp, &twilio, "");
    env.db()
        .execute_batch(
            "INSERT INTO contacts (id, name, email, phone, email_enabled, whatsapp_enabled, sms_enabled, muted_kinds) VALUES
               (1, 'A', NULL, '+33 6 12 34 56 78', 0, 1, 1, ''),
               (2, 'B', NULL, '+1 (415) 555-0100', 0, 0, 1, ''),
               (3, 'C', NULL, '0033 6.12.34.56.79', 0, 1, 0, ''),
               (4, 'D', 'Marie Curie <Marie@Example.COM>', NULL, 1, 0, 0, ''),
               (5, 'E', ' jean@bücher.example ', NULL, 1, 0, 0, ''),
               (6, 'F', 'lou@@example.com', '+33 6', 1, 1, 0, ''),
               (7, 'G', 'g@example.com', NULL, 1, 0, 0, ' Loan_Created ; loan_d1'),
               (8, 'H', 'h@example.com', NULL, 1, 0, 0, 'loan_created,loan_tomorrow');",
        )
        .unwrap();
    for c in 1..=8 {
        loan(&env, c, "long", LENT, DUE);
    }
    let out = env.run(&["send-reminders", "--kind", "loan_created"], LENT).code(65);
    assert_eq!(
        smtp.recipients(),
        ["Marie@example.com", "jean@xn--bcher-kva.example"],
        "display name dropped, domain lower-cased and in punycode; G and H muted"
    );
    let mut to = twilio.accepted_to();
    to.sort();
    assert_eq!(
        to,
        [
            "+14155550100",
            "+33612345678",
            "whatsapp:+33612345678",
            "whatsapp:+33612345679"
        ]
    );
    let failed: Vec<(String, String)> = {
        let db = env.db();
        let mut stmt = db
            .prepare("SELECT channel, last_error FROM rappel_deliveries WHERE status = 'failed' ORDER BY channel")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(
        failed[0]
            .1
            .contains("\"lou@@example.com\" is not a valid email address"),
        "{failed:?}"
    );
    assert!(
        failed[1].1.contains("phone \"+33 6\" is not a phone number"),
        "{failed:?}"
    );
    assert!(
        out.stderr
            .contains("contacts id 8: muted_kinds names \"loan_tomorrow\""),
        "{}",
        out.stderr
    );
    assert_eq!(
        out.stderr.matches("loan_tomorrow").count(),
        1,
        "named once: {}",
        out.stderr
    );
}

/// A template that fails fails only the messages that need it (exit 78,
/// said once): another language's, another kind's still go, and the failed
/// ones go once the template is fixed.
#[test]
fn a_broken_template_holds_back_only_its_own_messages() {
    let (smtp, twilio) = (SmtpServer::start(), FakeTwilio::start());
    let env = env(&smtp, &twilio, "");
    // templates_dir is a top-level key: before any section.
    let config = std::fs::read_to_string(env.config_path()).unwrap();
    env.write_config(&format!("templates_dir = \"tpl\"\n{config}"));
    let tpl = env.dir.path().join("tpl/en");
    std::fs::create_dir_all(&tpl).unwrap();
    std::fs::write(tpl.join("loan_created.subject.txt"), "{{ loan.colour }}").unwrap();
    let (awa, jean) = (contact(&env, "Awa", None, None), contact(&env, "Jean", None, None));
    env.db()
        .execute("UPDATE contacts SET locale = 'fr' WHERE id = ?1", [jean])
        .unwrap();
    let now = "2026-03-02T10:05:00Z";
    for c in [awa, jean] {
        loan(&env, c, "long", "2026-03-02T10:00:00Z", DUE);
    }
    let out = env.run(&["send-reminders"], now).code(78);
    assert_eq!(
        out.stderr.matches("`loan.colour` is undefined").count(),
        1,
        "{}",
        out.stderr
    );
    assert_eq!(smtp.recipients(), ["jean@example.com"], "the French one went");
    std::fs::remove_file(tpl.join("loan_created.subject.txt")).unwrap();
    env.run(&["send-reminders"], "2026-03-02T10:10:00Z").success();
    assert_eq!(
        smtp.recipients(),
        ["awa@example.com", "jean@example.com"],
        "nothing lost"
    );
}

/// The recipients of the planned messages, in the order they were written.
fn planned_to(env: &TestEnv) -> Vec<String> {
    let db = env.db();
    let mut stmt = db
        .prepare("SELECT recipient FROM rappel_deliveries ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
}

#[test]
fn a_message_the_database_refuses_stops_planning_and_keeps_what_came_before() {
    let (smtp, twilio) = (SmtpServer::start(), FakeTwilio::start());
    let env = env(&smtp, &twilio, "");
    for name in ["Awa", "Bob", "Chloe"] {
        let c = contact(&env, name, None, None);
        loan(&env, c, "long", LENT, DUE);
    }
    env.db()
        .execute_batch(
            "CREATE TRIGGER refuse BEFORE INSERT ON rappel_deliveries WHEN NEW.recipient = 'bob@example.com'
             BEGIN SELECT RAISE(ABORT, 'the host says no'); END;",
        )
        .unwrap();
    let out = env.run(&["send-reminders"], LENT).code(74);
    assert!(out.stderr.contains("the host says no"), "{}", out.stderr);
    assert_eq!(
        planned_to(&env),
        ["awa@example.com"],
        "planned before the refusal, and kept"
    );
    assert!(smtp.mails().is_empty(), "a run whose planning failed sends nothing");

    env.db().execute_batch("DROP TRIGGER refuse").unwrap();
    let out = env.run(&["send-reminders"], LENT).success();
    assert!(out.stdout.contains("2 planned, 3 sent"), "{}{}", out.stdout, out.stderr);
    let mut to: Vec<String> = smtp.mails().iter().flat_map(|m| m.to.clone()).collect();
    to.sort();
    assert_eq!(
        to,
        ["awa@example.com", "bob@example.com", "chloe@example.com"],
        "each once"
    );
}

#[test]
fn a_reminder_already_planned_by_a_run_no_longer_recorded_is_not_planned_again() {
    let (smtp, twilio) = (SmtpServer::start(), FakeTwilio::start());
    let env = env(&smtp, &twilio, "");
    let c = contact(&env, "Awa", None, None);
    loan(&env, c, "long", LENT, DUE);
    env.run(&["send-reminders"], LENT).success();
    assert_eq!(kinds(&smtp), ["loan_created"]);
    // The runs purged or lost: nothing says a run came after the reminder
    // was due, so its key is not looked up before it is made; its insert
    // finds it and does nothing.
    env.db().execute_batch("DELETE FROM rappel_job_runs").unwrap();
    env.run(&["send-reminders"], &support::plus(LENT, 60)).success();
    let planned: i64 = env
        .db()
        .query_row("SELECT planned FROM rappel_job_runs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(planned, 0, "found planned: not counted");
    assert_eq!(planned_to(&env), ["awa@example.com"]);
    assert_eq!(kinds(&smtp), ["loan_created"], "not sent again");
}

const FIRST: &str = "[reminders]
channels = \"first\"
channel_order = [\"whatsapp\", \"sms\", \"email\"]
fallback_after_minutes = 30
";

/// `(id, channel, status, provider_status, replaces_id)` of a delivery.
type Link = (i64, String, String, Option<String>, Option<i64>);

/// Under `FIRST`, Awa (WhatsApp, SMS and email) with a loan whose loan_d2
/// went on 11 March at 08:00Z; returns her folder and contact id.
fn first_loan_d2(smtp: &SmtpServer, twilio: &FakeTwilio) -> (TestEnv, i64) {
    let env = env(smtp, twilio, FIRST);
    let c = contact(&env, "Awa", Some("+24107123456"), None);
    loan(&env, c, "long", LENT, DUE);
    env.run(&["send-reminders", "--kind", "loan_d2"], "2026-03-11T08:00:00Z")
        .success();
    (env, c)
}

/// The Twilio SID of the one delivery `condition` selects.
fn provider_ref(env: &TestEnv, condition: &str) -> String {
    env.db()
        .query_row(
            &format!("SELECT provider_ref FROM rappel_deliveries WHERE {condition}"),
            [],
            |r| r.get(0),
        )
        .unwrap()
}

/// Every delivery, in order.
fn chain(env: &TestEnv) -> Vec<Link> {
    let db = env.db();
    let mut stmt = db
        .prepare("SELECT id, channel, status, provider_status, replaces_id FROM rappel_deliveries ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// `channels = "first"`: WhatsApp alone; Twilio reports it undelivered
/// (63016, outside the 24-hour window), so SMS follows, linked to it; once
/// SMS is delivered nothing more goes, however long after. `log` shows the
/// chain and `stats` counts the message once, by SMS.
#[test]
fn first_channel_falls_back_when_twilio_reports_undelivered_and_stops_once_delivered() {
    let (smtp, twilio) = (SmtpServer::start(), FakeTwilio::start());
    let (env, _) = first_loan_d2(&smtp, &twilio);
    let sent = twilio.accepted();
    assert_eq!(sent.len(), 1, "one channel, not three");
    assert_eq!(sent[0].form["To"], "whatsapp:+24107123456");
    assert!(smtp.mails().is_empty());

    // Before Twilio's word: nothing more.
    env.run(&["send-reminders"], "2026-03-11T08:05:00Z").success();
    assert_eq!(twilio.accepted().len(), 1);

    let sid: String = env
        .db()
        .query_row("SELECT provider_ref FROM rappel_deliveries WHERE id = 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    twilio.set_status(&sid, "undelivered", Some(63016));
    env.run(&["send-reminders"], "2026-03-11T08:10:00Z").success();
    let sent = twilio.accepted();
    assert_eq!(sent.len(), 2, "SMS after the undelivered WhatsApp");
    assert_eq!(sent[1].form["To"], "+24107123456");
    assert!(!sent[1].form.contains_key("ContentSid"), "an SMS is text");
    let rows = chain(&env);
    assert_eq!(rows[1].1, "sms");
    assert_eq!(rows[1].4, Some(rows[0].0), "the SMS names the message it replaces");

    let sms_sid = provider_ref(&env, "channel = 'sms'");
    twilio.set_status(&sms_sid, "delivered", None);
    for now in ["2026-03-11T08:20:00Z", "2026-03-11T09:30:00Z"] {
        env.run(&["send-reminders"], now).success();
    }
    assert_eq!(twilio.accepted().len(), 2, "delivered: no email after it");
    assert!(smtp.mails().is_empty());
    // Delivered stays delivered, whatever the contact's channels become.
    env.db()
        .execute("UPDATE contacts SET whatsapp_enabled = 0, sms_enabled = 0", [])
        .unwrap();
    env.run(&["send-reminders"], "2026-03-11T09:40:00Z").success();
    assert!(smtp.mails().is_empty(), "no email once the SMS was delivered");
    env.db()
        .execute("UPDATE contacts SET whatsapp_enabled = 1, sms_enabled = 1", [])
        .unwrap();

    let log = env.run(&["log"], "2026-03-11T09:30:00Z").success();
    assert!(log.stdout.contains("sms, after #1"), "{}", log.stdout);
    assert!(log.stdout.contains("then #2"), "{}", log.stdout);
    let show = env.run(&["show", "2"], "2026-03-11T09:30:00Z").success();
    assert!(show.stdout.contains("replaces      delivery 1"), "{}", show.stdout);
    let stats = env.run(&["--json", "stats"], "2026-03-11T09:30:00Z").success();
    let stats: serde_json::Value = serde_json::from_str(&stats.stdout).unwrap();
    assert_eq!(stats["totals"]["total"], 1, "{stats}");
    assert_eq!(stats["totals"]["sent"], 1, "{stats}");
    assert_eq!(stats["by_channel"][0]["name"], "sms", "{stats}");
}

/// No word from Twilio within `fallback_after_minutes`: the next channel
/// (email here, SMS being off) goes; a number without WhatsApp (a
/// permanent refusal at the send) falls back at the next run; after the
/// reminder's validity nothing falls back.
#[test]
fn first_channel_falls_back_after_silence_or_a_refusal_but_never_after_expiry() {
    let (smtp, twilio) = (SmtpServer::start(), FakeTwilio::start());
    let env = env(&smtp, &twilio, FIRST);
    let awa = contact(&env, "Awa", Some("+24107123456"), None);
    let ben = contact(&env, "Ben", Some("+24107654321"), None);
    env.db().execute("UPDATE contacts SET sms_enabled = 0", []).unwrap();
    loan(&env, awa, "long", LENT, DUE);
    loan(&env, ben, "long", LENT, DUE);
    // Awa's WhatsApp goes first (loans in id order) and is refused.
    twilio.answer_next(
        400,
        r#"{"code": 21211, "message": "The 'To' number +24107123456 is not a valid phone number.", "status": 400}"#,
        &[],
    );
    env.run(&["send-reminders", "--kind", "loan_d2"], "2026-03-11T08:00:00Z")
        .code(65);
    assert_eq!(twilio.accepted().len(), 1, "Ben's WhatsApp; Awa's was refused");

    // Awa's refusal falls back on the next run; Ben's silence not yet.
    env.run(&["send-reminders"], "2026-03-11T08:20:00Z").success();
    assert_eq!(smtp.recipients(), ["awa@example.com"]);
    // Thirty minutes without `delivered`: Ben gets the email.
    env.run(&["send-reminders"], "2026-03-11T08:30:00Z").success();
    assert_eq!(smtp.recipients(), ["awa@example.com", "ben@example.com"]);
    let rows = chain(&env);
    let emails: Vec<_> = rows.iter().filter(|r| r.1 == "email").collect();
    assert_eq!(emails.len(), 2, "{rows:?}");
    assert!(emails.iter().all(|r| r.4.is_some()), "{rows:?}");
    // Awa's refused WhatsApp was replaced: `retry` leaves it.
    let refused = rows.iter().find(|r| r.2 == "failed").map(|r| r.0).unwrap();
    env.run(&["retry", "--failed"], "2026-03-11T08:35:00Z").success();
    let out = env
        .run(&["retry", &refused.to_string()], "2026-03-11T08:35:00Z")
        .code(65);
    assert!(
        out.stdout.contains("replaced it on the next channel")
            || out.stderr.contains("replaced it on the next channel"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    env.run(&["send-reminders"], "2026-03-11T08:36:00Z").success();
    assert_eq!(twilio.accepted().len(), 1, "not sent again on WhatsApp");

    // A new loan whose WhatsApp is never confirmed: once its reminder
    // expired, no email follows.
    let valid_until: String = env
        .db()
        .query_row("SELECT valid_until FROM rappel_deliveries WHERE id = 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    let before = smtp.mails().len();
    let late = chrono::DateTime::parse_from_rfc3339(&valid_until).unwrap() + chrono::Duration::minutes(1);
    env.db()
        .execute("DELETE FROM rappel_deliveries WHERE channel = 'email'", [])
        .unwrap();
    env.run(&["send-reminders", "--kind", "loan_d2"], &late.to_rfc3339())
        .success();
    assert_eq!(smtp.mails().len(), before, "expired: no fallback");
}

/// `channels_by_kind` keeps a kind on every channel under `channels = "first"`.
#[test]
fn a_kind_may_keep_every_channel() {
    let (smtp, twilio) = (SmtpServer::start(), FakeTwilio::start());
    let env = env(
        &smtp,
        &twilio,
        &format!("{FIRST}[reminders.channels_by_kind]\nloan_d2 = \"all\"\n"),
    );
    let c = contact(&env, "Awa", Some("+24107123456"), None);
    loan(&env, c, "long", LENT, DUE);
    env.run(&["send-reminders", "--kind", "loan_d2"], "2026-03-11T08:00:00Z")
        .success();
    assert_eq!(twilio.accepted().len(), 2, "WhatsApp and SMS");
    assert_eq!(smtp.mails().len(), 1);
    env.run(&["send-reminders", "--kind", "loan_d1"], "2026-03-12T08:00:00Z")
        .success();
    assert_eq!(twilio.accepted().len(), 3, "loan_d1 on WhatsApp alone");
    assert_eq!(smtp.mails().len(), 1);
}

/// As `env`, with `delivery` added to the `[delivery]` section.
fn env_with_delivery(smtp: &SmtpServer, twilio: &FakeTwilio, delivery: &str, extra: &str) -> TestEnv {
    let env = TestEnv::new(smtp.port, delivery);
    let base = std::fs::read_to_string(env.config_path())
        .unwrap()
        .replace("Europe/Paris", "Africa/Libreville");
    env.write_config(&format!("{base}\n{}{extra}", twilio.config(env.dir.path())));
    env
}

/// `(status, next_attempt_at, last_error)` of delivery `id`.
fn state(env: &TestEnv, id: i64) -> (String, Option<String>, Option<String>) {
    env.db()
        .query_row(
            "SELECT status, next_attempt_at, last_error FROM rappel_deliveries WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
}

/// `[delivery] quiet_hours`: a message whose time falls inside them, in its
/// recipient's zone, waits for their end (exit 0, not a failure); someone
/// in another zone gets theirs at once. `upcoming` says when it goes.
#[test]
fn quiet_hours_hold_a_message_until_they_end_in_the_recipients_zone() {
    let (smtp, twilio) = (SmtpServer::start(), FakeTwilio::start());
    let env = env_with_delivery(
        &smtp,
        &twilio,
        "quiet_hours = \"21:00-08:00\"\n",
        "[reminders]\nloan_d2_at = \"07:00\"\n",
    );
    let awa = contact(&env, "Awa", None, None); // Libreville, UTC+1
    let ben = contact(&env, "Ben", None, Some("America/New_York"));
    // Lent at 22:30 in Libreville, 17:30 in New York.
    let lent = "2026-03-10T21:30:00Z";
    loan(&env, awa, "long", lent, DUE);
    loan(&env, ben, "long", lent, DUE);
    // A dry run says what the real run will hold.
    let dry = env
        .run(
            &["send-reminders", "--dry-run", "--kind", "loan_created"],
            "2026-03-10T21:31:00Z",
        )
        .success();
    let line = |to: &str| {
        dry.stdout
            .lines()
            .find(|l| l.contains(to))
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        line("awa@example.com").ends_with("(held by quiet hours or its send window until 2026-03-11T07:00:00Z)"),
        "{}",
        dry.stdout
    );
    assert!(!line("ben@example.com").contains("held"), "{}", dry.stdout);
    assert!(
        dry.stdout.contains(", 1 held ("),
        "counted as the run counts it: {}",
        dry.stdout
    );
    let out = env
        .run(
            &["-v", "send-reminders", "--kind", "loan_created"],
            "2026-03-10T21:31:00Z",
        )
        .success();
    assert_eq!(smtp.recipients(), ["ben@example.com"], "Ben's evening is not quiet");
    assert!(out.stderr.contains("held by quiet hours"), "{}", out.stderr);
    // The summary counts it: not sent, not failed, held.
    assert!(out.stdout.contains("1 sent, 0 failed"), "{}", out.stdout);
    assert!(out.stdout.contains(", 1 held ("), "{}", out.stdout);
    let (status, next, why) = state(&env, 1);
    assert_eq!(status, "pending");
    assert_eq!(next.as_deref(), Some("2026-03-11T07:00:00Z"), "08:00 in Libreville");
    // `deliver --force` in quiet hours holds it again, once: the run does
    // not take again what it held (it took it over and over).
    let out = env
        .run(&["--json", "-v", "deliver", "--force"], "2026-03-10T21:33:00Z")
        .success();
    let summary: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(
        (summary["held"].as_u64(), summary["sent"].as_u64()),
        (Some(1), Some(0)),
        "{summary}"
    );
    assert_eq!(out.stderr.matches("held by quiet hours").count(), 1, "{}", out.stderr);
    assert!(why.unwrap_or_default().contains("held"));

    // `upcoming`: the held message at 08:00; Awa's loan_d2, due at 07:00
    // (loan_d2_at), held until 08:00 too.
    let upcoming = env
        .run(&["--json", "upcoming", "--within", "12h"], "2026-03-10T21:40:00Z")
        .success();
    let listed: serde_json::Value = serde_json::from_str(&upcoming.stdout).unwrap();
    let of = |kind: &str| -> Vec<(String, String)> {
        listed
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["recipient"] == "awa@example.com" && m["kind"] == kind)
            .map(|m| {
                (
                    m["at"].as_str().unwrap().to_string(),
                    m["state"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    assert_eq!(
        of("loan_created"),
        [("2026-03-11T07:00:00Z".into(), "held".into())],
        "{listed}"
    );
    assert_eq!(
        of("loan_d2"),
        [("2026-03-11T07:00:00Z".into(), "held".into())],
        "{listed}"
    );

    let out = env.run(&["--json", "send-reminders"], "2026-03-11T06:59:00Z").success();
    assert_eq!(smtp.recipients().len(), 1, "still quiet at 07:59");
    let summary: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    // loan_d2, planned now and held; loan_created is not due before 07:00.
    assert_eq!(summary["held"], 1, "{summary}");
    assert_eq!(summary["sent"], 0, "{summary}");
    env.run(&["send-reminders"], "2026-03-11T07:00:00Z").success();
    let mut got = kinds(&smtp);
    got.sort();
    assert_eq!(got, ["loan_created", "loan_created", "loan_d2"], "Awa's at 08:00, both");
}

/// A retry's backoff never lands inside quiet hours, and a message held
/// past its validity expires saying why.
#[test]
fn a_retry_waits_for_the_morning_and_a_held_message_may_expire() {
    let (smtp, twilio) = (SmtpServer::start(), FakeTwilio::start());
    let env = env_with_delivery(&smtp, &twilio, "quiet_hours = \"21:00-08:00\"\n", "");
    let awa = contact(&env, "Awa", Some("+24107123456"), None);
    env.db()
        .execute("UPDATE contacts SET sms_enabled = 0, email_enabled = 0", [])
        .unwrap();
    // WhatsApp refused with a 500 at 20:59:30 Libreville: the 60 s backoff
    // would be 21:00:30, inside quiet hours: 08:00 instead.
    twilio.answer_next(500, r#"{"code": 20500, "message": "Internal Server Error"}"#, &[]);
    loan(&env, awa, "long", "2026-03-10T19:59:00Z", DUE);
    env.run(&["send-reminders", "--kind", "loan_created"], "2026-03-10T19:59:30Z")
        .code(75);
    let (status, next, _) = state(&env, 1);
    assert_eq!(status, "pending");
    assert_eq!(next.as_deref(), Some("2026-03-11T07:00:00Z"));

    // loan_created goes on Mondays 08:00-09:00 only: lent on a Tuesday, its
    // day of validity ends first: it expires, saying why.
    let (smtp, twilio) = (SmtpServer::start(), FakeTwilio::start());
    let env = env_with_delivery(
        &smtp,
        &twilio,
        "[delivery.send_windows]\nloan_created = \"mon 08:00-09:00\"\n",
        "",
    );
    let awa = contact(&env, "Awa", None, None);
    loan(&env, awa, "long", "2026-03-10T10:00:00Z", DUE);
    env.run(&["send-reminders", "--kind", "loan_created"], "2026-03-10T10:05:00Z")
        .code(0);
    let (status, _, why) = state(&env, 1);
    assert_eq!(status, "failed");
    let why = why.unwrap_or_default();
    assert!(
        why.contains("valid until 2026-03-11T10:00:00Z, held by quiet hours or send window until 2026-03-16T07:00:00Z"),
        "{why}"
    );
    assert!(smtp.mails().is_empty());
}

/// The end of quiet hours on the night clocks go forward (Paris, 29 March
/// 2026): 02:30 does not exist, so the message goes at 03:00 CEST, once.
#[test]
fn quiet_hours_ending_in_a_dst_gap_end_at_the_first_instant_after_it() {
    let (smtp, twilio) = (SmtpServer::start(), FakeTwilio::start());
    let env = env_with_delivery(&smtp, &twilio, "quiet_hours = \"22:00-02:30\"\n", "");
    let cleo = contact(&env, "Cleo", None, Some("Europe/Paris"));
    loan(&env, cleo, "long", "2026-03-28T22:00:00Z", "2026-04-10T16:00:00Z");
    env.run(&["send-reminders", "--kind", "loan_created"], "2026-03-28T22:00:00Z")
        .success();
    let (_, next, _) = state(&env, 1);
    assert_eq!(next.as_deref(), Some("2026-03-29T01:00:00Z"));
    env.run(&["send-reminders"], "2026-03-29T00:59:00Z").success();
    assert!(smtp.mails().is_empty());
    for now in ["2026-03-29T01:00:00Z", "2026-03-29T01:30:00Z"] {
        env.run(&["send-reminders"], now).success();
    }
    assert_eq!(smtp.recipients(), ["cleo@example.com"], "once");
}

/// A fallback waiting for its retry is cancelled once the message it
/// replaces is reported read after all; a manual message falls back too
/// once its first channel is reported undelivered.
#[test]
fn a_fallback_stops_when_the_message_before_is_read_and_manual_messages_fall_back() {
    let (smtp, twilio) = (SmtpServer::start(), FakeTwilio::start());
    let (env, c) = first_loan_d2(&smtp, &twilio);
    // Silent for 30 minutes: the SMS is planned, and Twilio answers 500.
    twilio.answer_next(500, r#"{"code": 20500, "message": "Internal Server Error"}"#, &[]);
    env.run(&["send-reminders", "--kind", "loan_d2"], "2026-03-11T08:31:00Z")
        .code(75);
    let sid: String = env
        .db()
        .query_row("SELECT provider_ref FROM rappel_deliveries WHERE id = 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    twilio.set_status(&sid, "read", None);
    env.run(&["send-reminders", "--kind", "loan_d2"], "2026-03-11T08:40:00Z")
        .success();
    assert_eq!(twilio.accepted().len(), 1, "the SMS did not go");
    let rows = chain(&env);
    assert_eq!(
        (rows[1].1.as_str(), rows[1].2.as_str()),
        ("sms", "cancelled"),
        "{rows:?}"
    );
    let why: String = env
        .db()
        .query_row("SELECT last_error FROM rappel_deliveries WHERE id = 2", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(
        why.contains("delivery 1, which it replaces, was delivered after all"),
        "{why}"
    );

    // A manual message: WhatsApp undelivered (63016), then SMS.
    let db = env.db();
    db.execute(
        "INSERT INTO students (id, contact_id, subscribed_at) VALUES (1, ?1, '2026-01-05 09:00:00')",
        [c],
    )
    .unwrap();
    db.execute(
        "INSERT INTO manual_reminders (student_id, message, created_at) VALUES (1, 'Bring the drill back', '2026-03-11T09:00:00Z')",
        [],
    )
    .unwrap();
    env.run(&["send-reminders", "--kind", "manual"], "2026-03-11T09:01:00Z")
        .success();
    let sent = twilio.accepted();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].form["To"], "whatsapp:+24107123456");
    let sid = provider_ref(&env, "kind = 'manual'");
    twilio.set_status(&sid, "undelivered", Some(63016));
    env.run(&["send-reminders", "--kind", "manual"], "2026-03-11T09:10:00Z")
        .success();
    let sent = twilio.accepted();
    assert_eq!(sent.len(), 3, "the manual message went on SMS");
    assert_eq!(sent[2].form["To"], "+24107123456");
    assert!(
        sent[2].form["Body"].contains("Bring the drill back"),
        "{:?}",
        sent[2].form
    );
}

/// Quiet hours 21:00-08:00; Awa (Libreville, email) lent a drill at 22:30
/// local on 10 March, its confirmation held until 08:00 (delivery 1).
fn held_overnight(smtp: &SmtpServer, twilio: &FakeTwilio) -> TestEnv {
    let env = env_with_delivery(smtp, twilio, "quiet_hours = \"21:00-08:00\"\n", "");
    let awa = contact(&env, "Awa", None, None);
    loan(&env, awa, "long", "2026-03-10T21:30:00Z", DUE);
    env.run(&["send-reminders", "--kind", "loan_created"], "2026-03-10T21:31:00Z")
        .success();
    env
}

/// A held message whose contact's zone became unreadable meanwhile goes at
/// the end of its hold (in the configured zone), as planned: it is not
/// cancelled as if its contact were gone.
#[test]
fn a_held_message_whose_contact_cannot_be_read_now_still_goes() {
    let (smtp, twilio) = (SmtpServer::start(), FakeTwilio::start());
    let env = held_overnight(&smtp, &twilio);
    env.db()
        .execute("UPDATE contacts SET timezone = 'Mars/Olympus'", [])
        .unwrap();
    env.run(&["deliver"], "2026-03-11T07:00:00Z").success();
    assert_eq!(smtp.recipients(), ["awa@example.com"]);
    assert_eq!(state(&env, 1).0, "sent");
}

/// A message held again (its contact moved to another zone overnight) says
/// the new end of its hold.
#[test]
fn a_message_held_again_says_its_new_end() {
    let (smtp, twilio) = (SmtpServer::start(), FakeTwilio::start());
    let env = held_overnight(&smtp, &twilio);
    assert!(
        state(&env, 1)
            .2
            .unwrap_or_default()
            .contains("until 2026-03-11T07:00:00Z")
    );
    env.db()
        .execute("UPDATE contacts SET timezone = 'America/Los_Angeles'", [])
        .unwrap();
    env.run(&["deliver"], "2026-03-11T07:00:00Z").success();
    assert!(smtp.mails().is_empty(), "00:00 in Los Angeles");
    let (status, next, why) = state(&env, 1);
    assert_eq!(
        (status.as_str(), next.as_deref()),
        ("pending", Some("2026-03-11T15:00:00Z"))
    );
    assert!(why.unwrap_or_default().contains("until 2026-03-11T15:00:00Z"));
}

/// A number without WhatsApp reported `failed` with 63003 falls back to
/// SMS; that fallback, due in the evening, waits for the end of quiet hours
/// in the contact's zone, and goes once.
#[test]
fn a_number_without_whatsapp_falls_back_and_the_fallback_keeps_quiet_hours() {
    let (smtp, twilio) = (SmtpServer::start(), FakeTwilio::start());
    let env = env_with_delivery(&smtp, &twilio, "quiet_hours = \"21:00-08:00\"\n", FIRST);
    let awa = contact(&env, "Awa", Some("+24107123456"), None); // Libreville, UTC+1
    loan(&env, awa, "long", LENT, DUE);
    // loan_d2 at 09:00 local on 11 March: WhatsApp.
    env.run(&["send-reminders", "--kind", "loan_d2"], "2026-03-11T08:00:00Z")
        .success();
    let sid = provider_ref(&env, "id = 1");
    twilio.set_status(&sid, "failed", Some(63003));
    // Twilio's word comes in at 21:30 local: the SMS is planned, and held.
    env.run(&["send-reminders", "--kind", "loan_d2"], "2026-03-11T20:30:00Z")
        .success();
    assert_eq!(twilio.accepted().len(), 1, "not at night");
    let rows = chain(&env);
    assert_eq!((rows[1].1.as_str(), rows[1].4), ("sms", Some(1)), "{rows:?}");
    assert_eq!(state(&env, rows[1].0).1.as_deref(), Some("2026-03-12T07:00:00Z"));
    for now in ["2026-03-12T06:50:00Z", "2026-03-12T07:00:00Z", "2026-03-12T07:10:00Z"] {
        env.run(&["send-reminders", "--kind", "loan_d2"], now).success();
    }
    let sent = twilio.accepted();
    assert_eq!(sent.len(), 2, "the SMS, once, at 08:00");
    assert_eq!(sent[1].form["To"], "+24107123456");
}

/// A message's lines that are a lone dot or begin with one arrive as
/// written (RFC 5321 §4.5.2, transparency): a lone "." does not end the
/// message early, and a leading dot is not lost.
#[test]
fn lines_that_are_or_begin_with_a_dot_arrive_as_written() {
    let smtp = SmtpServer::start();
    let env = TestEnv::new(smtp.port, "");
    let awa = contact(&env, "Awa", None, None);
    let written = "Bring back:\n.\n..the drill\n.and its case\nthanks.\n.";
    let db = env.db();
    db.execute(
        "INSERT INTO students (id, contact_id, subscribed_at) VALUES (1, ?1, '2026-01-05 09:00:00')",
        [awa],
    )
    .unwrap();
    db.execute(
        "INSERT INTO manual_reminders (student_id, message, created_at) VALUES (1, ?1, '2026-03-11T09:00:00Z')",
        [written],
    )
    .unwrap();
    env.run(&["send-reminders", "--kind", "manual"], "2026-03-11T09:01:00Z")
        .success();
    let text = smtp
        .mail_to("awa@example.com")
        .part("text/plain")
        .unwrap()
        .replace("\r\n", "\n");
    assert!(text.contains(&format!("\n\n{written}\n\n-- \n")), "{text:?}");
}

/// Long manual messages are handed from the renderer to the writer in
/// chunks cut by size (192 KB): every one of them is planned and sent
/// whole, whichever chunk it fell in.
#[test]
fn long_manual_messages_are_each_planned_and_sent_whole() {
    let smtp = SmtpServer::start();
    let env = TestEnv::new(smtp.port, "");
    let db = env.db();
    for i in 1..=7 {
        let c = contact(&env, &format!("P{i}"), None, None);
        db.execute(
            "INSERT INTO students (id, contact_id, subscribed_at) VALUES (?1, ?2, '2026-01-05 09:00:00')",
            [i, c],
        )
        .unwrap();
        let text = format!("{i}:{}", "word ".repeat(20_000));
        db.execute(
            "INSERT INTO manual_reminders (student_id, message, created_at) VALUES (?1, ?2, '2026-03-11T09:00:00Z')",
            rusqlite::params![i, text],
        )
        .unwrap();
    }
    env.run(&["send-reminders", "--kind", "manual"], "2026-03-11T09:01:00Z")
        .success();
    assert_eq!(smtp.mails().len(), 7);
    for i in 1..=7 {
        let text = smtp
            .mail_to(&format!("p{i}@example.com"))
            .part("text/plain")
            .unwrap()
            .replace("\r\n", "\n");
        assert!(
            text.contains(&format!("\n{i}:{}", "word ".repeat(20_000).trim_end())),
            "message {i} is not whole"
        );
    }
}
