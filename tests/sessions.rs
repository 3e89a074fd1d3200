//! send-reminders for revision sessions end to end: eve and day-of reminders,
//! inactivity, the weekly digest and manual messages, through the real
//! binary, a real SMTP server and an HTTP server standing in for Twilio.
//! Students are in the config's zone, Europe/Paris.

use crate::support;

use support::twilio::FakeTwilio;
use support::{SmtpServer, TestEnv};

fn env(smtp: &SmtpServer, twilio: &FakeTwilio, extra: &str) -> TestEnv {
    let env = TestEnv::new(smtp.port, "");
    let base = std::fs::read_to_string(env.config_path()).unwrap();
    env.write_config(&format!(
        r#"site_url = "https://tutor.example.com/"
{base}
{}
{extra}"#,
        twilio.config(env.dir.path())
    ));
    env
}

/// A student (email only, or also WhatsApp and SMS on `phone`) last active at `active`.
fn student(env: &TestEnv, name: &str, phone: Option<&str>, active: &str) -> i64 {
    let db = env.db();
    db.execute(
        "INSERT INTO contacts (name, email, phone, whatsapp_enabled, sms_enabled) VALUES (?1, ?2, ?3, ?4, ?4)",
        rusqlite::params![
            name,
            format!("{}@example.com", name.to_lowercase()),
            phone,
            phone.is_some()
        ],
    )
    .unwrap();
    let contact = db.last_insert_rowid();
    db.execute(
        "INSERT INTO students (contact_id, subscribed_at, last_active_at) VALUES (?1, '2026-01-05 09:00:00', ?2)",
        rusqlite::params![contact, active],
    )
    .unwrap();
    db.last_insert_rowid()
}

fn session(env: &TestEnv, student: i64, subject: &str, starts_at: &str) -> i64 {
    let db = env.db();
    db.execute(
        "INSERT INTO revision_sessions (student_id, subject, starts_at, objective, link)
         VALUES (?1, ?2, ?3, 'Chapter 4 exercises', 'sessions/' || ?2)",
        rusqlite::params![student, subject, starts_at],
    )
    .unwrap();
    db.last_insert_rowid()
}

/// `(kind, recipient)` of every email received, in order.
fn received(smtp: &SmtpServer) -> Vec<(String, String)> {
    smtp.mails()
        .iter()
        .map(|m| (m.header("X-Rappel-Kind").unwrap_or_default(), m.to.join(",")))
        .collect()
}

fn kinds(smtp: &SmtpServer) -> Vec<String> {
    received(smtp).into_iter().map(|(k, _)| k).collect()
}

/// Runs send-reminders at each instant and returns the kinds received at each.
fn timeline(env: &TestEnv, smtp: &SmtpServer, args: &[&str], instants: &[&str]) -> Vec<(String, Vec<String>)> {
    let mut all = vec!["send-reminders"];
    all.extend_from_slice(args);
    let mut seen = 0;
    instants
        .iter()
        .map(|now| {
            env.run(&all, now).success();
            let k = kinds(smtp);
            let new = k[seen..].to_vec();
            seen = k.len();
            (now.to_string(), new)
        })
        .collect()
}

#[test]
fn eve_and_day_of_at_local_times_across_both_dst_changes() {
    let (smtp, twilio) = (SmtpServer::start(), FakeTwilio::start());
    let env = env(&smtp, &twilio, "");
    let s = student(&env, "Lea", None, "2026-03-27T10:00:00Z");
    // Monday 30 March 14:00 CEST, the day after spring forward; Monday 26
    // October 14:00 CET, the day after fall back.
    session(&env, s, "Maths", "2026-03-30T12:00:00Z");
    session(&env, s, "Physics", "2026-10-26 13:00:00");
    let steps = timeline(
        &env,
        &smtp,
        &["--kind", "session_eve", "--kind", "session_day"],
        &[
            "2026-03-29T16:29:00Z", // Sunday 18:29 CEST
            "2026-03-29T16:30:00Z", // 18:30 CEST: the eve reminder
            "2026-03-29T21:00:00Z",
            "2026-03-30T05:59:00Z", // Monday 07:59 CEST
            "2026-03-30T06:00:00Z", // 08:00 CEST: the morning reminder
            "2026-03-30T12:30:00Z",
            "2026-10-25T17:29:00Z", // Sunday 18:29 CET
            "2026-10-25T17:30:00Z",
            "2026-10-26T06:59:00Z",
            "2026-10-26T07:00:00Z", // Monday 08:00 CET
        ],
    );
    let expect = |i: usize, kinds: &[&str]| assert_eq!(steps[i].1, kinds, "at {}", steps[i].0);
    expect(0, &[]);
    expect(1, &["session_eve"]);
    expect(2, &[]);
    expect(3, &[]);
    expect(4, &["session_day"]);
    expect(5, &[]);
    expect(6, &[]);
    expect(7, &["session_eve"]);
    expect(8, &[]);
    expect(9, &["session_day"]);

    assert_eq!(smtp.mails()[1].subject(), "Today: Maths at 14:00");
    let eve = &smtp.mails()[0];
    assert_eq!(eve.subject(), "Tomorrow: Maths at 14:00");
    let text = eve.decoded();
    assert!(text.contains("Monday 30 March at 14:00"), "{text}");
    assert!(text.contains("Objective: Chapter 4 exercises"), "{text}");
    let html = eve.part("text/html").unwrap();
    assert!(
        html.contains(r#"<a href="https:&#x2f;&#x2f;tutor.example.com&#x2f;sessions&#x2f;Maths">"#),
        "the session link, joined to site_url, is a real link: {html}"
    );
}

#[test]
fn cancelled_sessions_get_nothing_and_moved_ones_follow_their_new_day() {
    let (smtp, twilio) = (SmtpServer::start(), FakeTwilio::start());
    let env = env(&smtp, &twilio, "");
    let s = student(&env, "Lea", None, "2026-03-09T10:00:00Z");
    let cancelled = session(&env, s, "Chemistry", "2026-03-10T15:00:00Z");
    env.db()
        .execute("UPDATE revision_sessions SET cancelled = 1 WHERE id = ?1", [cancelled])
        .unwrap();
    let moved = session(&env, s, "Maths", "2026-03-10T13:00:00Z"); // Tuesday 14:00
    let run = |now: &str| {
        env.run(
            &["send-reminders", "--kind", "session_eve", "--kind", "session_day"],
            now,
        )
        .success()
    };
    run("2026-03-09T17:30:00Z"); // Monday 18:30: the eve of Maths only
    assert_eq!(kinds(&smtp), ["session_eve"]);
    assert!(smtp.mails()[0].subject().contains("Maths"));

    // Moved to the afternoon of the same day: a moved session gets the
    // reminder of its new time (the start, with the id, names the session).
    let db = env.db();
    db.execute(
        "UPDATE revision_sessions SET starts_at = '2026-03-10T15:00:00Z' WHERE id = ?1",
        [moved],
    )
    .unwrap();
    run("2026-03-09T19:00:00Z");
    assert_eq!(kinds(&smtp), ["session_eve", "session_eve"]);
    assert!(smtp.mails()[1].decoded().contains("16:00"), "the new time");
    run("2026-03-09T19:30:00Z");
    assert_eq!(kinds(&smtp).len(), 2, "once");

    // Moved to Thursday: the reminders of Thursday.
    db.execute(
        "UPDATE revision_sessions SET starts_at = '2026-03-12T13:00:00Z' WHERE id = ?1",
        [moved],
    )
    .unwrap();
    run("2026-03-10T07:00:00Z"); // Tuesday 08:00: nothing any more
    run("2026-03-11T17:30:00Z"); // Wednesday 18:30
    run("2026-03-12T07:00:00Z"); // Thursday 08:00
    assert_eq!(
        kinds(&smtp),
        ["session_eve", "session_eve", "session_eve", "session_day"]
    );
    assert!(smtp.mails()[2].decoded().contains("Thursday 12 March at 14:00"));
}

#[test]
fn an_eve_reminder_caught_up_in_the_morning_says_today() {
    let (smtp, twilio) = (SmtpServer::start(), FakeTwilio::start());
    let env = env(&smtp, &twilio, "");
    let s = student(&env, "Lea", None, "2026-03-09T10:00:00Z");
    session(&env, s, "Maths", "2026-03-10T13:00:00Z"); // Tuesday 14:00
    // Off from Monday afternoon until Tuesday 07:30: the eve reminder is still
    // valid (until the session starts) and no longer says "tomorrow".
    env.run(&["send-reminders"], "2026-03-10T06:30:00Z").success();
    env.run(&["send-reminders"], "2026-03-10T07:00:00Z").success();
    assert_eq!(kinds(&smtp), ["session_eve", "session_day"]);
    let late = &smtp.mails()[0];
    assert_eq!(late.subject(), "Today: Maths at 14:00");
    assert!(
        late.decoded().contains("Today, Tuesday 10 March at 14:00"),
        "{}",
        late.decoded()
    );

    // Off until after the morning reminder: that one alone, not two saying the same.
    session(&env, s, "Physics", "2026-03-11T13:00:00Z"); // Wednesday 14:00
    let out = env.run(&["-v", "send-reminders"], "2026-03-11T08:00:00Z").success();
    assert_eq!(kinds(&smtp), ["session_eve", "session_day", "session_day"]);
    assert!(
        out.stderr
            .contains("session_eve for revision_sessions id 2: expired at 2026-03-11T07:00:00Z"),
        "{}",
        out.stderr
    );
}

#[test]
fn the_morning_reminder_never_comes_after_the_session_began() {
    let (smtp, twilio) = (SmtpServer::start(), FakeTwilio::start());
    let env = env(&smtp, &twilio, "");
    let s = student(&env, "Lea", None, "2026-03-09T10:00:00Z");
    session(&env, s, "Early", "2026-03-10T06:30:00Z"); // 07:30, before the 08:00 reminder
    session(&env, s, "Late", "2026-03-10T08:00:00Z"); // 09:00
    // The machine was off from Monday evening until 09:30 Tuesday.
    let out = env
        .run(
            &["-v", "send-reminders", "--kind", "session_day"],
            "2026-03-10T08:30:00Z",
        )
        .success();
    assert!(smtp.mails().is_empty(), "{:?}", kinds(&smtp));
    assert!(
        out.stderr
            .contains("session_day for revision_sessions id 2: expired at 2026-03-10T08:00:00Z"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("id 1:"),
        "the early session has no morning slot: {}",
        out.stderr
    );
}

#[test]
fn inactivity_on_day_three_once_a_day_until_the_student_returns() {
    let (smtp, twilio) = (SmtpServer::start(), FakeTwilio::start());
    let env = env(&smtp, &twilio, "");
    // Last seen Friday 6 March 23:30 Paris.
    let lea = student(&env, "Lea", None, "2026-03-06T22:30:00Z");
    let gone = student(&env, "Paul", None, "2026-03-01T10:00:00Z");
    env.db()
        .execute("UPDATE students SET subscription_active = 0 WHERE id = ?1", [gone])
        .unwrap();
    let muted = student(&env, "Zoe", None, "2026-03-01T10:00:00Z");
    env.db()
        .execute(
            "UPDATE contacts SET muted_kinds = 'weekly_digest, inactivity' WHERE id = (SELECT contact_id FROM students WHERE id = ?1)",
            [muted],
        )
        .unwrap();
    let steps = timeline(
        &env,
        &smtp,
        &["--kind", "inactivity"],
        &[
            "2026-03-08T09:00:00Z", // Sunday 10:00: day 2
            "2026-03-09T08:59:00Z", // Monday 09:59: day 3, before inactivity_at
            "2026-03-09T09:00:00Z", // Monday 10:00
            "2026-03-09T15:00:00Z",
            "2026-03-10T09:10:00Z", // Tuesday: day 4
        ],
    );
    let got: Vec<usize> = steps.iter().map(|(_, k)| k.len()).collect();
    assert_eq!(got, [0, 0, 1, 0, 1]);
    assert!(received(&smtp).iter().all(|(_, to)| to == "lea@example.com"));
    assert!(smtp.mails()[0].decoded().contains("It has been 3 days"));
    assert!(smtp.mails()[1].decoded().contains("It has been 4 days"));

    // Back on Tuesday afternoon: nothing on Wednesday.
    env.db()
        .execute(
            "UPDATE students SET last_active_at = '2026-03-10 14:00:00' WHERE id = ?1",
            [lea],
        )
        .unwrap();
    env.run(&["send-reminders", "--kind", "inactivity"], "2026-03-11T09:00:00Z")
        .success();
    assert_eq!(smtp.mails().len(), 2);
}

/// Last week: Monday done, Wednesday missed, Thursday cancelled; next week
/// Tuesday and Friday.
fn fortnight(env: &TestEnv, s: i64) {
    let done = session(env, s, "Algebra", "2026-03-02T16:00:00Z");
    session(env, s, "Geometry", "2026-03-04T16:00:00Z");
    let cancelled = session(env, s, "Cancelled", "2026-03-05T16:00:00Z");
    session(env, s, "Statistics", "2026-03-10T16:00:00Z");
    session(env, s, "Probability", "2026-03-13T16:00:00Z");
    session(env, s, "Far future", "2026-03-20T16:00:00Z");
    let db = env.db();
    db.execute(
        "UPDATE revision_sessions SET completed_at = '2026-03-02T17:00:00Z' WHERE id = ?1",
        [done],
    )
    .unwrap();
    db.execute("UPDATE revision_sessions SET cancelled = 1 WHERE id = ?1", [cancelled])
        .unwrap();
}

#[test]
fn weekly_digest_once_under_a_run_every_ten_minutes_for_a_week() {
    let (smtp, twilio) = (SmtpServer::start(), FakeTwilio::start());
    let env = env(&smtp, &twilio, "");
    let s = student(&env, "Lea", None, "2026-03-06T10:00:00Z");
    fortnight(&env, s);
    // Monday 2 March 00:00 Paris to Monday 9 March 02:00, every 10 minutes.
    let start = chrono::DateTime::parse_from_rfc3339("2026-03-01T23:00:00Z").unwrap();
    let mut first_seen = None;
    for step in 0..(7 * 144 + 12) {
        let now = (start + chrono::Duration::minutes(10 * step)).to_rfc3339();
        env.run(&["send-reminders", "--kind", "weekly_digest"], &now).success();
        if first_seen.is_none() && !smtp.mails().is_empty() {
            first_seen = Some(now);
        }
    }
    assert_eq!(kinds(&smtp), ["weekly_digest"], "one digest for the week");
    assert_eq!(
        first_seen.as_deref(),
        Some("2026-03-08T19:00:00+00:00"),
        "Sunday 20:00 Paris"
    );

    let digest = &smtp.mails()[0];
    assert_eq!(digest.subject(), "Your week: 1 session done, 2 coming up");
    let text = digest.decoded();
    assert!(text.contains("done    Monday 2 March 17:00  Algebra"), "{text}");
    assert!(text.contains("missed  Wednesday 4 March 17:00  Geometry"), "{text}");
    assert!(text.contains("1 done, 1 missed."), "{text}");
    assert!(!text.contains("Cancelled") && !text.contains("Far future"), "{text}");
    assert!(
        text.contains("Tuesday 10 March 17:00  Statistics: Chapter 4 exercises"),
        "{text}"
    );
    assert!(text.contains("Friday 13 March 17:00  Probability"), "{text}");
    let html = digest.part("text/html").unwrap();
    assert!(
        html.contains(r#"<a href="https:&#x2f;&#x2f;tutor.example.com&#x2f;sessions&#x2f;Statistics">Statistics</a>"#),
        "{html}"
    );
}

#[test]
fn a_missed_evening_digest_goes_late_that_night_never_on_monday() {
    let (smtp, twilio) = (SmtpServer::start(), FakeTwilio::start());
    let env = env(&smtp, &twilio, "");
    let lea = student(&env, "Lea", None, "2026-03-06T10:00:00Z");
    fortnight(&env, lea);
    let run = |now: &str| {
        env.run(&["-v", "send-reminders", "--kind", "weekly_digest"], now)
            .success()
    };
    run("2026-03-08T18:50:00Z"); // Sunday 19:50
    run("2026-03-08T22:00:00Z"); // back at 23:00
    assert_eq!(kinds(&smtp), ["weekly_digest"]);

    // Another week: off from Sunday 19:50 until Monday 00:10.
    run("2026-03-15T18:50:00Z");
    let out = run("2026-03-15T23:10:00Z");
    assert_eq!(smtp.mails().len(), 1, "never on Monday for the week before");
    assert!(
        out.stderr
            .contains("weekly_digest for students id 1: expired at 2026-03-15T23:00:00Z"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_parent_message_is_escaped_in_html_and_shortened_on_whatsapp_and_sms() {
    let (smtp, twilio) = (SmtpServer::start(), FakeTwilio::start());
    let env = env(&smtp, &twilio, "");
    let lea = student(&env, "Lea", Some("+33612345678"), "2026-03-09T10:00:00Z");
    let db = env.db();
    db.execute(
        "INSERT INTO contacts (name, email) VALUES ('Marie', 'marie@example.com')",
        [],
    )
    .unwrap();
    let parent = db.last_insert_rowid();
    db.execute(
        "UPDATE students SET parent_contact_id = ?1 WHERE id = ?2",
        [parent, lea],
    )
    .unwrap();
    let long = format!("<b>Bravo</b> & courage! {}", "revise ".repeat(700));
    assert!(long.chars().count() > 4_900);
    db.execute(
        "INSERT INTO manual_reminders (student_id, author_contact_id, message, created_at)
         VALUES (?1, ?2, ?3, '2026-03-10 18:00:00')",
        rusqlite::params![lea, parent, long],
    )
    .unwrap();
    let id = db.last_insert_rowid();

    env.run(&["send-reminders", "--kind", "manual"], "2026-03-10T18:02:00Z")
        .success();
    let mail = smtp.mail_to("lea@example.com");
    assert_eq!(mail.subject(), "A message from your parent Marie");
    assert!(mail.decoded().contains(long.trim()), "the whole message by email");
    let html = mail.part("text/html").unwrap();
    assert!(html.contains("&lt;b&gt;Bravo&lt;&#x2f;b&gt; &amp; courage!"), "{html}");
    assert!(!html.contains("<b>Bravo"), "{html}");

    let sent = twilio.accepted();
    assert_eq!(sent.len(), 2, "WhatsApp and SMS");
    for r in &sent {
        let body = &r.form["Body"];
        assert!(
            body.starts_with("Message from your parent Marie: <b>Bravo</b>"),
            "{body}"
        );
        assert!(body.ends_with("[message shortened]"), "{body}");
        assert!(body.chars().count() <= 1600, "{} characters", body.chars().count());
    }
    let sent_at: Option<String> = db
        .query_row("SELECT sent_at FROM manual_reminders WHERE id = ?1", [id], |r| r.get(0))
        .unwrap();
    assert_eq!(sent_at.as_deref(), Some("2026-03-10T18:02:00Z"));

    env.run(&["send-reminders"], "2026-03-10T18:10:00Z").success();
    assert_eq!((smtp.mails().len(), twilio.accepted().len()), (1, 2), "sent once");

    // Another author, then none: named as such.
    db.execute(
        "INSERT INTO contacts (name, email) VALUES ('Mr Obame', 'obame@example.com')",
        [],
    )
    .unwrap();
    let tutor = db.last_insert_rowid();
    db.execute(
        "INSERT INTO manual_reminders (student_id, author_contact_id, message, created_at)
         VALUES (?1, ?2, 'See you Thursday', '2026-03-11T08:00:00Z'), (?1, NULL, 'Hello', '2026-03-11T08:00:00Z')",
        rusqlite::params![lea, tutor],
    )
    .unwrap();
    env.run(&["send-reminders", "--kind", "manual"], "2026-03-11T08:05:00Z")
        .success();
    let subjects: Vec<String> = smtp.mails()[1..].iter().map(|m| m.subject()).collect();
    assert_eq!(subjects, ["A message from Mr Obame", "A message for you"]);
}

#[test]
fn a_manual_message_the_server_refuses_keeps_sent_at_empty() {
    let (smtp, twilio) = (SmtpServer::start(), FakeTwilio::start());
    let env = env(&smtp, &twilio, "");
    let lea = student(&env, "Lea", None, "2026-03-09T10:00:00Z");
    env.db()
        .execute(
            "INSERT INTO manual_reminders (student_id, message, created_at) VALUES (?1, 'Hi', '2026-03-10T18:00:00Z')",
            [lea],
        )
        .unwrap();
    smtp.set_mode(support::Mode::RejectRcpt("lea@".into()));
    env.run(&["send-reminders"], "2026-03-10T18:05:00Z").code(65);
    let sent_at: Option<String> = env
        .db()
        .query_row("SELECT sent_at FROM manual_reminders", [], |r| r.get(0))
        .unwrap();
    assert_eq!(sent_at, None);
}

#[test]
fn dry_run_writes_nothing_and_bad_rows_are_named() {
    let (smtp, twilio) = (SmtpServer::start(), FakeTwilio::start());
    let env = env(&smtp, &twilio, "");
    let s = student(&env, "Lea", None, "2026-03-01T10:00:00Z");
    fortnight(&env, s);
    env.db()
        .execute(
            "INSERT INTO manual_reminders (student_id, message, created_at) VALUES (?1, 'Hi', '2026-03-08T18:00:00Z')",
            [s],
        )
        .unwrap();
    let bad = session(&env, s, "Broken", "next tuesday");
    // Sunday 20:00: the digest, inactivity (a week away) is at 10:00, the manual message.
    let now = "2026-03-08T19:00:00Z";
    let before = env.dump();
    let out = env.run(&["send-reminders", "--dry-run"], now).code(65);
    assert_eq!(env.dump(), before, "a dry run writes nothing");
    assert!(smtp.mails().is_empty());
    for kind in ["weekly_digest", "inactivity", "manual"] {
        assert!(
            out.stdout
                .contains(&format!("would send {kind} via email to lea@example.com")),
            "{kind}: {}",
            out.stdout
        );
    }
    assert!(
        out.stderr
            .contains(&format!("revision_sessions id {bad}: starts_at \"next tuesday\"")),
        "{}",
        out.stderr
    );

    env.run(&["send-reminders"], now).code(65);
    assert_eq!(
        kinds(&smtp).len(),
        3,
        "the bad row held nothing back: {:?}",
        kinds(&smtp)
    );
}

#[test]
fn each_student_gets_a_digest_of_their_own_sessions() {
    let (smtp, twilio) = (SmtpServer::start(), FakeTwilio::start());
    let env = env(&smtp, &twilio, "");
    let ids: Vec<i64> = ["Ana", "Ben", "Cleo"]
        .iter()
        .map(|n| student(&env, n, None, "2026-03-08T10:00:00Z"))
        .collect();
    for (i, id) in ids.iter().enumerate() {
        session(&env, *id, &format!("Past{i}"), "2026-03-04T16:00:00Z");
        session(&env, *id, &format!("Next{i}"), "2026-03-10T16:00:00Z");
    }
    // Ben muted the digest: the sessions read for him must not leak into Cleo's.
    env.db()
        .execute(
            "UPDATE contacts SET muted_kinds = 'weekly_digest' WHERE name = 'Ben'",
            [],
        )
        .unwrap();
    env.run(&["send-reminders", "--kind", "weekly_digest"], "2026-03-08T19:00:00Z")
        .success();
    assert_eq!(smtp.recipients(), ["ana@example.com", "cleo@example.com"]);
    for (to, mine) in [("ana@example.com", 0), ("cleo@example.com", 2)] {
        let text = smtp.mail_to(to).decoded();
        assert!(
            text.contains(&format!("Past{mine}")) && text.contains(&format!("Next{mine}")),
            "{text}"
        );
        for other in (0..3).filter(|i| *i != mine) {
            assert!(
                !text.contains(&format!("Past{other}")),
                "{to} has only their sessions: {text}"
            );
        }
    }
}

/// More students than one read of their sessions takes (1,000 digests per
/// read): each digest still lists its own student's sessions, those of
/// students read at the edges of a range included, past a muted student and
/// one without sessions.
#[test]
fn digests_read_in_ranges_of_students_keep_each_ones_sessions() {
    let (smtp, twilio) = (SmtpServer::start(), FakeTwilio::start());
    let env = env(&smtp, &twilio, "");
    let db = env.db();
    db.execute_batch(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2300)
         INSERT INTO contacts (id, name, email) SELECT i, 'S' || i, 's' || i || '@example.com' FROM n;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2300)
         INSERT INTO students (id, contact_id, subscribed_at, last_active_at)
         SELECT i, i, '2026-01-05 09:00:00', '2026-03-08T10:00:00Z' FROM n;
         -- Ids in reverse: the rows are not in the students' order.
         WITH RECURSIVE n(i) AS (SELECT 2300 UNION ALL SELECT i - 1 FROM n WHERE i > 1)
         INSERT INTO revision_sessions (student_id, subject, starts_at)
         SELECT i, 'Next-' || i || '.', '2026-03-10T16:00:00Z' FROM n WHERE i <> 1500
         UNION ALL SELECT i, 'Past-' || i || '.', '2026-03-04T16:00:00Z' FROM n WHERE i <> 1500;
         UPDATE contacts SET muted_kinds = 'weekly_digest' WHERE id IN (1000, 1001, 2000);",
    )
    .unwrap();
    env.run(&["send-reminders", "--kind", "weekly_digest"], "2026-03-08T19:00:00Z")
        .success();
    let bodies: Vec<(i64, String)> = db
        .prepare(
            "SELECT source_id, body FROM rappel_deliveries
             WHERE kind = 'weekly_digest' AND status = 'sent' ORDER BY source_id",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(bodies.len(), 2297, "every student but the three muted");
    for (id, body) in &bodies {
        let ids: Vec<&str> = body
            .split(['-', '.'])
            .zip(body.split(['-', '.']).skip(1))
            .filter(|(before, _)| before.ends_with("Past") || before.ends_with("Next"))
            .map(|(_, id)| id)
            .collect();
        if *id == 1500 {
            assert!(ids.is_empty() && body.contains("no sessions"), "{body}");
        } else {
            assert_eq!(ids, [id.to_string(), id.to_string()], "student {id}: {body}");
        }
    }
    assert_eq!(smtp.mails().len(), 2297);
}

#[test]
fn students_follow_their_channels_language_and_zone() {
    let (smtp, twilio) = (SmtpServer::start(), FakeTwilio::start());
    let env = env(
        &smtp,
        &twilio,
        "[reminders]\nweekly_digest_at = \"mon 07:00\"\ndisabled_kinds = [\"session_day\"]\n",
    );
    // Awa, in New York, reads French and wants WhatsApp only.
    let awa = student(&env, "Awa", Some("+12125550123"), "2026-03-06T10:00:00Z");
    env.db()
        .execute(
            "UPDATE contacts SET locale = 'fr', timezone = 'America/New_York', email_enabled = 0, sms_enabled = 0
             WHERE name = 'Awa'",
            [],
        )
        .unwrap();
    session(&env, awa, "Chimie", "2026-03-10T14:00:00Z"); // Tuesday 10:00 in New York (EDT)
    // Monday 9 March 18:30 EDT is 22:30Z; on Paris time it would be 17:30Z.
    env.run(&["send-reminders", "--kind", "session_eve"], "2026-03-09T17:30:00Z")
        .success();
    assert!(twilio.accepted().is_empty(), "not on Paris time");
    env.run(&["send-reminders"], "2026-03-09T22:30:00Z").success();
    let sent = twilio.accepted();
    let bodies: Vec<&str> = sent.iter().map(|r| r.form["Body"].as_str()).collect();
    assert_eq!(sent.len(), 3, "eve, digest, inactivity: {bodies:?}");
    assert!(sent.iter().all(|r| r.form["To"] == "whatsapp:+12125550123"));
    // Last seen Friday: Monday is day 3 in New York too.
    assert!(
        bodies.iter().any(|b| b.starts_with("3 jours sans réviser, Awa")),
        "{bodies:?}"
    );
    assert!(
        bodies.contains(
            &"Demain 10:00 : séance de révision, Chimie. Objectif : Chapter 4 exercises. https://tutor.example.com/sessions/Chimie"
        ),
        "{bodies:?}"
    );
    // Monday's 07:00 digest (New York) is valid until midnight there.
    assert!(
        bodies
            .iter()
            .any(|b| b.starts_with("Ta semaine : 0 faite(s), 0 manquée(s). À venir : mardi 10 mars 10:00 Chimie")),
        "{bodies:?}"
    );
    assert!(smtp.mails().is_empty(), "email is off");
    // session_day is disabled in the config.
    env.run(&["send-reminders"], "2026-03-10T12:30:00Z").success();
    assert_eq!(twilio.accepted().len(), 3);
}

#[test]
fn a_student_who_subscribed_again_counts_from_the_subscription() {
    let (smtp, twilio) = (SmtpServer::start(), FakeTwilio::start());
    let env = env(&smtp, &twilio, "");
    let s = student(&env, "Lea", None, "2026-03-01T10:00:00Z");
    // Subscribed again on Thursday, not seen since: four days on Monday, not eight.
    env.db()
        .execute(
            "UPDATE students SET subscribed_at = '2026-03-05 10:00:00' WHERE id = ?1",
            [s],
        )
        .unwrap();
    env.run(&["send-reminders", "--kind", "inactivity"], "2026-03-09T09:00:00Z")
        .success();
    let text = smtp.mails()[0].decoded();
    assert!(text.contains("You subscribed 4 days ago (2026-03-05)"), "{text}");
}

/// Twilio refuses bodies over 1,600 characters (21617). Whatever the data, a
/// WhatsApp or SMS body fits, marked, its link kept, no emoji or flag split;
/// and an email subject stays short whatever the title.
#[test]
fn every_message_fits_its_channel_whatever_the_data() {
    let (smtp, twilio) = (SmtpServer::start(), FakeTwilio::start());
    let env = env(&smtp, &twilio, "");
    let s = student(&env, "Theo", Some("+33612340001"), "2026-03-09T10:00:00Z");
    let objective = "Redo exercise 4 🇬🇦👨‍👩‍👧‍👦 of chapter 7, write the discriminant. ".repeat(40);
    let subject = "Mathématiques ".repeat(60);
    env.db()
        .execute(
            "INSERT INTO revision_sessions (student_id, subject, starts_at, objective, link)
             VALUES (?1, ?2, '2026-03-10T15:00:00Z', ?3, 'sessions/1')",
            rusqlite::params![s, subject, objective],
        )
        .unwrap();
    env.run(&["send-reminders", "--kind", "session_eve"], "2026-03-09T17:35:00Z")
        .success();
    let bodies: Vec<String> = twilio.accepted().iter().map(|r| r.form["Body"].clone()).collect();
    assert_eq!(bodies.len(), 2, "WhatsApp and SMS");
    for body in &bodies {
        let units: usize = body.chars().map(char::len_utf16).sum();
        assert!(units <= 1600, "{units} UTF-16 units");
        assert!(body.ends_with("… https://tutor.example.com/sessions/1"), "{body}");
        assert!(!body.contains('\u{FFFD}'));
        let flags = body.matches("🇬🇦").count();
        assert_eq!(body.matches('🇬').count(), flags, "a flag was split");
    }
    let mail_subject = smtp.mails()[0].subject();
    assert!(
        mail_subject.chars().count() <= 250 && mail_subject.ends_with('…'),
        "{mail_subject}"
    );
    let raw = &smtp.mails()[0].data;
    assert!(
        raw.lines().all(|l| l.len() <= 998),
        "every header line within RFC 5322's limit"
    );
}

/// The weekly digest lists sessions in time order, whatever form each start
/// was written in ('2026-03-10 16:00:00' sorts before '2026-03-10T08:00:00Z'
/// as text).
#[test]
fn the_weekly_digest_lists_sessions_in_time_order() {
    let (smtp, twilio) = (SmtpServer::start(), FakeTwilio::start());
    let env = env(&smtp, &twilio, "");
    let s = student(&env, "Lea", None, "2026-03-08T10:00:00Z");
    session(&env, s, "Late", "2026-03-10 16:00:00");
    session(&env, s, "Early", "2026-03-10T08:00:00Z");
    // Sunday 8 March, 20:00 Paris.
    env.run(&["send-reminders", "--kind", "weekly_digest"], "2026-03-08T19:00:00Z")
        .success();
    let text = smtp.mails()[0].decoded();
    let (early, late) = (text.find("Early").unwrap(), text.find("Late").unwrap());
    assert!(early < late, "{text}");
}

/// Under `channels = "first"` the weekly digest goes on WhatsApp alone and
/// falls back to SMS once Twilio reports it undelivered.
#[test]
fn the_weekly_digest_falls_back_along_the_channel_order() {
    let (smtp, twilio) = (SmtpServer::start(), FakeTwilio::start());
    let env = env(
        &smtp,
        &twilio,
        "[reminders]\nchannels = \"first\"\nchannel_order = [\"whatsapp\", \"sms\", \"email\"]\n",
    );
    let ana = student(&env, "Ana", Some("+33612345678"), "2026-03-08T10:00:00Z");
    session(&env, ana, "Maths", "2026-03-10T16:00:00Z");
    env.run(&["send-reminders", "--kind", "weekly_digest"], "2026-03-08T19:00:00Z")
        .success();
    let sent = twilio.accepted();
    assert_eq!(sent.len(), 1, "WhatsApp alone");
    assert!(smtp.mails().is_empty());
    let sid: String = env
        .db()
        .query_row("SELECT provider_ref FROM rappel_deliveries", [], |r| r.get(0))
        .unwrap();
    twilio.set_status(&sid, "undelivered", Some(63016));
    env.run(&["send-reminders", "--kind", "weekly_digest"], "2026-03-08T19:10:00Z")
        .success();
    let sent = twilio.accepted();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].form["To"], "+33612345678", "then SMS");
    assert!(sent[1].form["Body"].contains("Maths"), "{:?}", sent[1].form);
}
