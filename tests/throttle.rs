//! A provider that says "slow down" is obeyed: after Twilio's 429, or a
//! transport failing again and again, nothing more goes through it this run;
//! the messages left wait, their attempts not spent. An SMTP server closing
//! a session (421) gets the message again at once on a fresh connection.
//! A server that offers PIPELINING (RFC 2920) gets MAIL, RCPT and DATA in
//! one write; one that does not is spoken to one command at a time.

use crate::support;

use support::faulty_smtp::{Fault, FaultySmtp};
use support::twilio::FakeTwilio;
use support::{SmtpServer, TestEnv};

const NOW: &str = "2026-05-04T08:05:00Z";

/// `n` contacts on WhatsApp only, each with a loan lent at 08:00.
fn borrowers(env: &TestEnv, n: i64, email: bool) {
    let db = env.db();
    for i in 1..=n {
        db.execute(
            "INSERT INTO contacts (id, name, email, phone, email_enabled, whatsapp_enabled) VALUES (?1, 'M', ?2, ?3, ?4, ?5)",
            rusqlite::params![i, format!("m{i}@example.com"), format!("+336110{i:05}"), email, !email],
        )
        .unwrap();
        db.execute(
            "INSERT INTO loans (contact_id, item, lent_at, due_at) VALUES (?1, 'Game', '2026-05-04T08:00:00Z', '2026-05-18T16:00:00Z')",
            [i],
        )
        .unwrap();
    }
}

/// `(attempts, next_attempt_at)` of each delivery.
fn rows(env: &TestEnv) -> Vec<(i64, String)> {
    let db = env.db();
    let mut stmt = db
        .prepare("SELECT attempts, coalesce(next_attempt_at, '') FROM rappel_deliveries WHERE status = 'pending' ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// An environment whose SMTP server on `port` is given `timeout_s = 1`
/// (4 s an exchange) and the shortest lease that allows, `lease_s = 5`; one
/// connection when `one_connection`.
fn short_timeouts(port: u16, one_connection: bool) -> TestEnv {
    let env = TestEnv::new(port, "");
    let mut config = std::fs::read_to_string(env.config_path())
        .unwrap()
        .replace("timeout_s = 2", "timeout_s = 1")
        .replace("lease_s = 10", "lease_s = 5");
    if one_connection {
        config = config.replace("connections = 2", "connections = 1");
    }
    env.write_config(&config);
    env
}

/// How many deliveries are recorded sent at their first attempt.
fn sent_at_first_try(env: &TestEnv) -> i64 {
    env.db()
        .query_row(
            "SELECT count(*) FROM rappel_deliveries WHERE status = 'sent' AND attempts = 1",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

#[test]
fn after_twilio_says_429_nothing_more_is_posted_this_run() {
    let (smtp, twilio) = (SmtpServer::start(), FakeTwilio::start());
    let env = TestEnv::new(smtp.port, "");
    let base = std::fs::read_to_string(env.config_path()).unwrap();
    env.write_config(&format!("{base}\n{}", twilio.config(env.dir.path())));
    borrowers(&env, 20, false);
    for _ in 0..20 {
        twilio.answer_next(
            429,
            r#"{"code": 20429, "message": "Too Many Requests", "status": 429}"#,
            &[("Retry-After", "300")],
        );
    }
    let out = env.run(&["send-reminders", "--kind", "loan_created"], NOW).code(75);
    let posted = twilio.requests().len();
    assert!(
        (1..=4).contains(&posted),
        "at most one per worker: {posted}\n{}",
        out.stderr
    );
    assert!(out.stderr.contains("asked to slow down"), "{}", out.stderr);
    let rows = rows(&env);
    assert_eq!(rows.len(), 20, "all wait");
    assert_eq!(
        rows.iter().filter(|(attempts, _)| *attempts == 0).count(),
        20 - posted,
        "the ones not posted keep their attempts: {rows:?}"
    );
    assert!(
        rows.iter()
            .all(|(_, next)| next.as_str() >= support::plus(NOW, 300).as_str()),
        "every one waits as asked: {rows:?}"
    );
    twilio.clear_answers();
    env.run(&["deliver"], &support::plus(NOW, 290)).success();
    assert_eq!(twilio.requests().len(), posted, "not before the wait is over");
    env.run(&["deliver"], &support::plus(NOW, 400)).success();
    assert_eq!(twilio.accepted().len(), 20, "then each goes, once");
}

#[test]
fn a_transport_failing_again_and_again_is_left_alone_for_the_run() {
    let (smtp, twilio) = (SmtpServer::start(), FakeTwilio::start());
    let env = TestEnv::new(smtp.port, "");
    let base = std::fs::read_to_string(env.config_path()).unwrap();
    env.write_config(&format!("{base}\n{}", twilio.config(env.dir.path())));
    borrowers(&env, 30, false);
    for _ in 0..30 {
        twilio.answer_next(500, r#"{"code": 20500, "message": "Internal Server Error"}"#, &[]);
    }
    let out = env.run(&["send-reminders", "--kind", "loan_created"], NOW).code(75);
    let posted = twilio.requests().len();
    // Three in a row, plus what the other workers had in flight.
    assert!((3..=6).contains(&posted), "{posted}\n{}", out.stderr);
    assert!(out.stderr.contains("failed 3 times in a row"), "{}", out.stderr);
    let rows = rows(&env);
    assert_eq!(rows.iter().filter(|(a, _)| *a == 0).count(), 30 - posted, "{rows:?}");
}

#[test]
fn an_smtp_server_that_is_down_is_not_knocked_on_for_every_message() {
    let dead = support::free_port();
    let env = TestEnv::new(dead, "");
    borrowers(&env, 12, true);
    env.run(&["send-reminders", "--kind", "loan_created"], NOW).code(75);
    let rows = rows(&env);
    assert_eq!(rows.len(), 12);
    let tried = rows.iter().filter(|(a, _)| *a == 1).count();
    assert!(
        (3..=4).contains(&tried),
        "three refused in a row, two connections: {rows:?}"
    );
    // Back up: each goes once it is due.
    let server = FaultySmtp::start_on(dead, Fault::None);
    env.run(&["deliver"], &support::plus(NOW, 3_600)).success();
    assert_eq!(server.accepted().len(), 12);
}

#[test]
fn an_smtp_server_closing_the_session_gets_the_message_again_at_once() {
    // Lock-step, then MAIL, RCPT and DATA pipelined: the 421 comes first either way.
    for server in [
        FaultySmtp::start(Fault::Mail421Once),
        FaultySmtp::start_pipelining(Fault::Mail421Once),
    ] {
        let env = TestEnv::new(server.port, "");
        borrowers(&env, 1, true);
        env.run(&["send-reminders", "--kind", "loan_created"], NOW).success();
        assert_eq!(server.accepted(), [["m1@example.com"]]);
        let attempts: i64 = env
            .db()
            .query_row(
                "SELECT attempts FROM rappel_deliveries WHERE status = 'sent'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(attempts, 1, "one attempt, two connections");
    }
}

#[test]
fn a_server_offering_pipelining_gets_each_transaction_in_one_write_and_others_in_lock_step() {
    for (server, pipelined) in [
        (FaultySmtp::start_pipelining(Fault::None), 3),
        (FaultySmtp::start(Fault::None), 0),
    ] {
        let env = TestEnv::new(server.port, "");
        borrowers(&env, 3, true);
        env.run(&["send-reminders", "--kind", "loan_created"], NOW).success();
        assert_eq!(server.accepted().len(), 3, "every message accepted once");
        assert_eq!(server.pipelined(), pipelined, "transactions sent pipelined");
    }
}

#[test]
fn a_server_closing_each_session_after_its_message_gets_every_message_on_a_new_one() {
    // A pooled connection is tested (NOOP) before it is used again: one the
    // server closed is replaced, never tried and failed.
    for server in [
        FaultySmtp::start(Fault::CloseAfterMessage),
        FaultySmtp::start_pipelining(Fault::CloseAfterMessage),
    ] {
        let env = TestEnv::new(server.port, "");
        borrowers(&env, 6, true);
        env.run(&["send-reminders", "--kind", "loan_created"], NOW).success();
        assert_eq!(server.accepted().len(), 6);
    }
}

#[test]
fn each_message_carries_the_next_ones_commands_and_a_next_that_does_not_go_delivers_nothing() {
    // RFC 2920 §3.1: after one message's ".", the next one's MAIL, RCPT and
    // DATA go in the same write. A server without PIPELINING never gets it.
    for (server, ahead) in [
        (FaultySmtp::start_pipelining(Fault::None), 5),
        (FaultySmtp::start(Fault::None), 0),
    ] {
        let env = TestEnv::new(server.port, "");
        borrowers(&env, 6, true);
        env.run(&["send-reminders", "--kind", "loan_created"], NOW).success();
        assert_eq!(server.accepted().len(), 6, "every message accepted once");
        assert_eq!(server.ahead(), ahead, "transactions sent with the message before");
        assert_eq!(server.abandoned(), 0);
    }

    // The second message goes to the address its contact has now: the
    // transaction made ahead for the old one is left in DATA, its
    // connection closed, and nothing reaches the old address. Planned while
    // the server is down, sent once it is back.
    let port = support::free_port();
    let env = TestEnv::new(port, "");
    borrowers(&env, 3, true);
    env.run(&["send-reminders", "--kind", "loan_created"], NOW).code(75);
    env.db()
        .execute("UPDATE contacts SET email = 'new2@example.com' WHERE id = 2", [])
        .unwrap();
    let server = FaultySmtp::start_pipelining_on(port, Fault::None);
    env.run(&["deliver"], &support::plus(NOW, 3_600)).success();
    let mut accepted = server.accepted();
    accepted.sort();
    assert_eq!(accepted, [["m1@example.com"], ["m3@example.com"], ["new2@example.com"]]);
    assert_eq!(server.ahead(), 2, "m2@'s with m1's content, m3's with new2's");
    server.wait_abandoned(1, std::time::Duration::from_secs(5));
    assert_eq!(server.abandoned(), 1, "m2@'s never ended");
}

#[test]
fn a_bare_250_ends_a_message_and_a_refused_recipient_gets_no_quit_as_content() {
    // "250" alone to the end of DATA is a delivery (RFC 5321 §4.2): recorded
    // sent once, never tried again.
    let server = FaultySmtp::start_pipelining(Fault::BareReply);
    let env = TestEnv::new(server.port, "");
    borrowers(&env, 3, true);
    env.run(&["send-reminders", "--kind", "loan_created"], NOW).success();
    assert_eq!(server.accepted().len(), 3);
    let sent = sent_at_first_try(&env);
    assert_eq!(sent, 3);
    env.run(&["deliver", "--force"], &support::plus(NOW, 3_600)).success();
    assert_eq!(server.accepted().len(), 3, "nothing sent again");

    // A server refusing RCPT that answers the pipelined DATA with 354 all the
    // same: the connection is closed without a word, QUIT would be content.
    let server = FaultySmtp::start_pipelining(Fault::Rcpt550);
    let env = TestEnv::new(server.port, "");
    borrowers(&env, 2, true);
    env.run(&["send-reminders", "--kind", "loan_created"], NOW).code(65);
    assert_eq!(server.accepted().len(), 0);
    assert_eq!(server.quit_in_data(), 0);
}

#[test]
fn a_row_late_in_a_claim_gets_its_lease_renewed_rather_than_its_exchange_cut() {
    // One connection, timeout_s = 1, lease_s = 5: the five messages are one
    // claim, and the server takes 0.8 s to accept each of the first four.
    // The fifth starts about 3.2 s into the lease: the send's deadline (the
    // lease less a second) would cut its exchange after its end went, while
    // the server takes 0.9 s to accept it, within the timeout; the message,
    // delivered, would be recorded as failed and sent again. The rest of the
    // claim's lease is renewed first, and each goes once.
    let server = FaultySmtp::start(Fault::SlowEnd {
        each: std::time::Duration::from_millis(800),
        first: 4,
        then: std::time::Duration::from_millis(900),
    });
    let env = short_timeouts(server.port, true);
    borrowers(&env, 5, true);
    env.run(&["send-reminders", "--kind", "loan_created"], NOW).success();
    assert_eq!(server.accepted().len(), 5);
    let sent = sent_at_first_try(&env);
    assert_eq!(sent, 5, "every message recorded sent, at its first attempt");
}

#[test]
fn a_server_whose_replies_fall_out_of_step_gets_no_content_on_a_reply_meant_for_another_command() {
    // A second 250 after the end of a message: the next MAIL reads it, RCPT
    // reads MAIL's, and DATA would read RCPT's 250 in place of its 354. Only
    // a 354 lets content go: the connection is closed and nothing goes
    // twice, with or without PIPELINING.
    for server in [
        FaultySmtp::start(Fault::ExtraReplyAtEnd),
        FaultySmtp::start_pipelining(Fault::ExtraReplyAtEnd),
    ] {
        let env = TestEnv::new(server.port, "");
        let config = std::fs::read_to_string(env.config_path()).unwrap();
        env.write_config(&config.replace("connections = 2", "connections = 1"));
        borrowers(&env, 4, true);
        env.run(&["send-reminders", "--kind", "loan_created"], NOW);
        server.set(Fault::None);
        for hour in 1..=4 {
            env.run(&["deliver", "--force"], &support::plus(NOW, 3_600 * hour));
        }
        let mut accepted = server.accepted();
        accepted.sort();
        assert_eq!(
            accepted,
            [
                ["m1@example.com"],
                ["m2@example.com"],
                ["m3@example.com"],
                ["m4@example.com"]
            ],
            "each message accepted once"
        );
        assert_eq!(sent_at_first_try(&env) + retried_sent(&env), 4);
    }
}

#[test]
fn a_reply_sent_early_is_never_taken_for_another_commands() {
    // A 354 after RCPT's 250, in the same write: DATA would read it and the
    // content go, the real 354 then read as the reply to ".". A 250 after
    // DATA's 354, before any content: it would be read as the reply to the
    // ".", which the server refuses. Either way the stray line is seen
    // waiting before the next command or the content, and the connection
    // closed: nothing is delivered, nothing is recorded sent.
    for (server, name) in [
        (FaultySmtp::start(Fault::Stray354AfterRcpt), "354 after RCPT"),
        (FaultySmtp::start(Fault::Stray250AfterData), "250 after DATA"),
        (
            FaultySmtp::start_pipelining(Fault::Stray250AfterData),
            "250 after DATA, pipelining",
        ),
    ] {
        let env = TestEnv::new(server.port, "");
        borrowers(&env, 2, true);
        let out = env.run(&["send-reminders", "--kind", "loan_created"], NOW);
        assert!(server.accepted().is_empty(), "{name}: {:?}", server.accepted());
        assert_eq!(sent_at_first_try(&env), 0, "{name}: {}", out.stderr);
        assert!(
            out.stderr.contains("which no command asked for"),
            "{name}: {}",
            out.stderr
        );
        server.set(Fault::None);
        env.run(&["deliver", "--force"], &support::plus(NOW, 3_600)).success();
        assert_eq!(server.accepted().len(), 2, "{name}: each once");
    }
}

#[test]
fn the_end_of_a_message_goes_only_with_time_left_to_hear_its_reply() {
    // timeout_s = 1: an exchange has 4 s in all. Each reply takes 0.7 s:
    // after greeting, EHLO, MAIL, RCPT and DATA, 0.5 s is left, less than a
    // reply's timeout. The "." would be answered after the deadline, the
    // message delivered yet recorded failed, and sent again: it does not go.
    let server = FaultySmtp::start(Fault::SlowReplies(std::time::Duration::from_millis(700)));
    let env = short_timeouts(server.port, true);
    borrowers(&env, 1, true);
    let out = env.run(&["send-reminders", "--kind", "loan_created"], NOW).code(75);
    assert!(server.accepted().is_empty(), "{}", out.stderr);
    let why: String = env
        .db()
        .query_row("SELECT last_error FROM rappel_deliveries", [], |r| r.get(0))
        .unwrap();
    assert!(why.contains("end was not sent"), "{why}");
    server.set(Fault::None);
    env.run(&["deliver"], &support::plus(NOW, 3_600)).success();
    assert_eq!(server.accepted().len(), 1, "sent once, when the server is quick again");
}

#[test]
fn a_server_reading_the_content_slowly_has_until_the_exchanges_deadline_to_answer_its_end() {
    // timeout_s = 1: the content and its "." sit in the sockets' buffers
    // for 1.5 s before the server reads them, then it accepts at once. The
    // reply to "." may take until the exchange's deadline (4 s), not one
    // timeout: given up at 1 s, the message was delivered, recorded failed
    // and sent again.
    let server = FaultySmtp::start(Fault::PauseBeforeContent(std::time::Duration::from_millis(1500)));
    let env = short_timeouts(server.port, false);
    borrowers(&env, 2, true);
    env.run(&["send-reminders", "--kind", "loan_created"], NOW).success();
    assert_eq!(server.accepted().len(), 2);
    assert_eq!(sent_at_first_try(&env), 2, "recorded sent, not tried again");
}

/// Deliveries recorded sent after more than one attempt.
fn retried_sent(env: &TestEnv) -> i64 {
    env.db()
        .query_row(
            "SELECT count(*) FROM rappel_deliveries WHERE status = 'sent' AND attempts > 1",
            [],
            |r| r.get(0),
        )
        .unwrap()
}
