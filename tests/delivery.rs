//! The delivery engine end to end: failures of the SMTP server, retries,
//! overlapping runs and a run killed mid-send.

use crate::support;

use std::time::Duration;

use support::{Mode, SmtpServer, TestEnv, free_port};

const NOW: &str = "2026-03-10T07:00:00Z";

/// One overdue ticket and `n` recipients `r0@example.com`...
fn with_recipients(port: u16, n: usize) -> TestEnv {
    let env = TestEnv::new(port, "");
    for i in 0..n {
        let c = env.contact(&format!("R{i}"), &format!("r{i}@example.com"));
        env.recipient(c, None);
    }
    env.ticket("T-1", &[("Diagnostic", "2026-02-01T07:00:00Z")]);
    env
}

#[test]
fn unreachable_server_retries_later_and_delivers() {
    let port = free_port();
    let env = with_recipients(port, 1);

    env.run(&["check-delay-alerts"], NOW).code(75);
    assert_eq!(env.deliveries(), vec![("r0@example.com".into(), "pending".into(), 1)]);
    let (class, next): (String, String) = env
        .db()
        .query_row("SELECT error_class, next_attempt_at FROM rappel_deliveries", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(class, "temporary");
    assert!(
        next.as_str() >= "2026-03-10T07:00:54Z" && next.as_str() <= "2026-03-10T07:01:06Z",
        "backoff from --now: {next}"
    );

    let smtp = SmtpServer::start_on(port);
    env.run(&["deliver"], "2026-03-10T07:00:30Z").success();
    assert!(smtp.mails().is_empty(), "not before next_attempt_at");
    env.run(&["check-delay-alerts"], "2026-03-10T07:00:40Z").success();
    assert!(
        smtp.mails().is_empty(),
        "re-running the job neither re-plans nor retries early"
    );

    env.run(&["deliver"], "2026-03-10T07:10:00Z").success();
    assert_eq!(smtp.recipients(), vec!["r0@example.com"]);
    assert_eq!(env.deliveries(), vec![("r0@example.com".into(), "sent".into(), 2)]);
    env.run(&["deliver"], "2026-03-10T08:00:00Z").success();
    assert_eq!(smtp.mails().len(), 1, "sent once");
}

#[test]
fn rejected_recipient_fails_permanently_others_go_out() {
    let smtp = SmtpServer::start();
    let env = with_recipients(smtp.port, 3);
    smtp.set_mode(Mode::RejectRcpt("r1@".into()));

    env.run(&["check-delay-alerts"], NOW).code(65);
    assert_eq!(smtp.recipients(), vec!["r0@example.com", "r2@example.com"]);
    let (status, class, error): (String, String, String) = env
        .db()
        .query_row(
            "SELECT status, error_class, last_error FROM rappel_deliveries WHERE recipient = 'r1@example.com'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((status.as_str(), class.as_str()), ("failed", "permanent"));
    assert!(error.contains("550"), "{error}");

    smtp.set_mode(Mode::Accept);
    env.run(&["deliver", "--dry-run"], "2026-03-11T07:00:00Z").success();
    env.run(&["deliver"], "2026-03-11T07:00:00Z").success();
    assert_eq!(
        smtp.mails().len(),
        2,
        "a permanent failure is never retried, even later"
    );
}

#[test]
fn rejected_credentials_stop_the_run_without_counting_the_attempt() {
    let smtp = SmtpServer::start();
    let env = with_recipients(smtp.port, 3);
    smtp.set_mode(Mode::BadCredentials);

    let out = env.run(&["check-delay-alerts"], NOW).code(78);
    assert!(out.stderr.contains("credentials"), "{}", out.stderr);
    for (_, status, attempts) in env.deliveries() {
        assert_eq!((status.as_str(), attempts), ("pending", 0));
    }

    smtp.set_mode(Mode::Accept);
    env.run(&["deliver"], NOW).success();
    assert_eq!(smtp.recipients().len(), 3);
}

#[test]
fn deferred_message_backs_off_gives_up_then_force_retries() {
    let smtp = SmtpServer::start();
    let env = with_recipients(smtp.port, 1);
    smtp.set_mode(Mode::Defer);

    env.run(&["check-delay-alerts"], NOW).code(75);
    env.run(&["deliver"], "2026-03-10T09:00:00Z").code(75);
    env.run(&["deliver"], "2026-03-10T12:00:00Z").code(75);
    assert_eq!(
        env.deliveries(),
        vec![("r0@example.com".into(), "failed".into(), 3)],
        "max_attempts = 3"
    );
    env.run(&["deliver"], "2026-03-11T12:00:00Z").success();
    assert_eq!(env.deliveries()[0].2, 3, "an exhausted message waits for --force");

    smtp.set_mode(Mode::Accept);
    env.run(&["check-delay-alerts", "--force"], "2026-03-10T12:00:00Z")
        .success();
    assert_eq!(
        smtp.recipients().iter().filter(|r| *r == "r0@example.com").count(),
        2,
        "--force re-plans the digest (new key) and retries the exhausted one"
    );
    assert!(env.deliveries().iter().all(|(_, s, _)| s == "sent"));
}

#[test]
fn overlapping_runs_send_each_digest_once() {
    let smtp = SmtpServer::start();
    let env = with_recipients(smtp.port, 12);
    env.run_concurrently(6, &["check-delay-alerts"], &["deliver"], NOW);
    env.run(&["deliver"], NOW).success();
    let expected: Vec<String> = {
        let mut v: Vec<String> = (0..12).map(|i| format!("r{i}@example.com")).collect();
        v.sort();
        v
    };
    assert_eq!(smtp.recipients(), expected, "every digest exactly once");
}

#[test]
fn a_run_killed_mid_send_is_resent_after_its_lease() {
    let smtp = SmtpServer::start();
    let env = with_recipients(smtp.port, 1);
    smtp.set_mode(Mode::Hang(30));

    let mut child = env.command(&["check-delay-alerts"], NOW).spawn().unwrap();
    assert!(
        smtp.wait_data_started(Duration::from_secs(10)),
        "the run reached the send"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(env.deliveries(), vec![("r0@example.com".into(), "sending".into(), 1)]);
    smtp.set_mode(Mode::Accept);

    env.run(&["deliver"], NOW).success();
    assert!(smtp.mails().is_empty(), "the lease still holds: nobody else sends it");

    std::thread::sleep(Duration::from_secs(11)); // lease_s = 10, in wall time
    let out = env.run(&["deliver"], NOW).success();
    assert!(out.stderr.contains("pending again"), "{}", out.stderr);
    assert_eq!(smtp.recipients(), vec!["r0@example.com"]);
    assert_eq!(env.deliveries(), vec![("r0@example.com".into(), "sent".into(), 2)]);
}

#[test]
fn job_runs_records_each_run_and_lock_blocks_overlap() {
    let smtp = SmtpServer::start();
    let env = with_recipients(smtp.port, 1);
    env.run(&["check-delay-alerts"], NOW).success();
    let (job, sent, code, finished): (String, i64, i64, Option<String>) = env
        .db()
        .query_row(
            "SELECT job, sent, exit_code, finished_at FROM rappel_job_runs",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!((job.as_str(), sent, code), ("check-delay-alerts", 1, 0));
    assert!(finished.is_some());

    // Hold the job's lock as another run would.
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(env.dir.path().join("rappel.db.check-delay-alerts.lock"))
        .unwrap();
    lock.lock().unwrap();
    let out = env.run(&["check-delay-alerts", "--force"], NOW).success();
    assert!(out.stderr.contains("holds its lock"), "{}", out.stderr);
    let runs: i64 = env
        .db()
        .query_row("SELECT count(*) FROM rappel_job_runs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(runs, 1, "a locked-out run records nothing");
    assert_eq!(smtp.mails().len(), 1);
}

#[test]
fn sendmail_transport_pipes_each_message_to_the_command() {
    let env = TestEnv::new(free_port(), "");
    let script = env.dir.path().join("fake-sendmail");
    std::fs::write(
        &script,
        "#!/bin/sh\nout=\"$(dirname \"$0\")/sent\"\nmkdir -p \"$out\"\n{ echo \"ARGS: $*\"; cat; } > \"$out/$$.eml\"\n",
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let text = std::fs::read_to_string(env.config_path()).unwrap().replace(
        "transport = \"smtp\"",
        "transport = \"sendmail\"\nsendmail_command = \"./fake-sendmail\"",
    );
    env.write_config(&text);
    let c = env.contact("R0", "r0@example.com");
    env.recipient(c, None);
    env.ticket("T-1", &[("Diagnostic", "2026-02-01T07:00:00Z")]);

    env.run(&["check-delay-alerts"], NOW).success();
    let sent: Vec<_> = std::fs::read_dir(env.dir.path().join("sent"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(sent.len(), 1);
    let message = std::fs::read_to_string(sent[0].path()).unwrap();
    assert!(
        message.starts_with("ARGS: ") && message.lines().next().unwrap().contains("r0@example.com"),
        "{message}"
    );
    assert!(message.contains("X-Rappel-Kind: delay_alert"), "{message}");
    assert_eq!(env.deliveries(), vec![("r0@example.com".into(), "sent".into(), 1)]);
}

#[test]
fn rate_per_s_spaces_the_sends() {
    let smtp = SmtpServer::start();
    let env = TestEnv::new(smtp.port, "rate_per_s = 5\n");
    for i in 0..6 {
        let c = env.contact(&format!("R{i}"), &format!("r{i}@example.com"));
        env.recipient(c, None);
    }
    env.ticket("T-1", &[("Diagnostic", "2026-02-01T07:00:00Z")]);
    let start = std::time::Instant::now();
    env.run(&["check-delay-alerts"], NOW).success();
    let elapsed = start.elapsed();
    assert_eq!(smtp.mails().len(), 6);
    assert!(
        elapsed >= Duration::from_millis(950),
        "6 messages at 5/s take at least 1 s, took {elapsed:?}"
    );
}

#[test]
fn dry_run_marks_retries_and_quiet_prints_only_errors() {
    let port = free_port();
    let env = with_recipients(port, 1);
    let out = env.run(&["-q", "check-delay-alerts"], NOW).code(75);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert!(
        out.stderr
            .contains("check-delay-alerts: 1 planned, 0 sent, 0 failed, 0 skipped, 1 retrying")
            && out.stderr.contains("(exit 75)"),
        "-q still reports a run that did not fully succeed: {}",
        out.stderr
    );

    let dry = env.run(&["deliver", "--dry-run"], "2026-03-10T08:00:00Z").success();
    assert!(
        dry.stdout
            .contains("would send delay_alert via email to r0@example.com: ")
            && dry.stdout.contains("(retry)"),
        "{}",
        dry.stdout
    );
    let early = env.run(&["deliver", "--dry-run"], "2026-03-10T07:00:10Z").success();
    assert!(
        !early.stdout.contains("would send"),
        "not due before its backoff: {}",
        early.stdout
    );
    let quiet = env.run(&["-q", "deliver"], "2026-03-10T07:00:10Z").success();
    assert!(
        quiet.stdout.is_empty() && quiet.stderr.is_empty(),
        "nothing to do prints nothing"
    );
}

#[test]
fn starttls_with_a_private_ca_and_untrusted_certificates_refused() {
    let certs = tempfile::tempdir().unwrap();
    let tls = support::TlsFiles::generate(certs.path());
    let smtp = SmtpServer::start_starttls(&tls);
    let env = TestEnv::new(smtp.port, "");
    let base = std::fs::read_to_string(env.config_path()).unwrap();
    let starttls = base
        .replace("host = \"127.0.0.1\"", "host = \"localhost\"")
        .replace("security = \"none\"", "security = \"starttls\"");

    // The server's certificate is signed by a CA the system does not know.
    env.write_config(&starttls);
    let out = env.run(&["test-email", "--to", "ops@example.com"], NOW).code(78);
    assert!(
        out.stderr.contains("extra_ca_file"),
        "the error says how to fix it: {}",
        out.stderr
    );
    assert!(smtp.mails().is_empty());
    assert_eq!(env.deliveries(), vec![("ops@example.com".into(), "pending".into(), 0)]);

    let trusted = starttls.replace(
        "[email]\n",
        &format!("[email]\nextra_ca_file = {:?}\n", tls.ca.to_str().unwrap()),
    );
    env.write_config(&trusted);
    env.run(&["deliver"], NOW).success();
    assert_eq!(
        smtp.recipients(),
        vec!["ops@example.com"],
        "sent over TLS once the CA is trusted"
    );
}

#[test]
fn a_server_that_stops_answering_times_out_and_is_retried() {
    let smtp = SmtpServer::start();
    let env = with_recipients(smtp.port, 1);
    smtp.set_mode(Mode::Hang(30));
    let start = std::time::Instant::now();
    let out = env.run(&["check-delay-alerts"], NOW).code(75);
    // The reply to "." is waited for until the exchange's deadline (4 x
    // timeout_s = 8 s), not one timeout: a slow server's 250 is heard.
    assert!(
        start.elapsed() < Duration::from_secs(11),
        "the exchange's deadline bounds the wait: {:?}",
        start.elapsed()
    );
    assert!(
        out.stderr.to_lowercase().contains("timed out") || out.stderr.contains("timeout"),
        "{}",
        out.stderr
    );
    assert_eq!(env.deliveries(), vec![("r0@example.com".into(), "pending".into(), 1)]);
}

#[test]
fn json_log_format_writes_one_object_per_line() {
    let env = TestEnv::new(free_port(), "[monitoring]\nlog_format = \"json\"\n");
    let c = env.contact("R0", "r0@example.com");
    env.recipient(c, None);
    env.ticket("T-1", &[("Diagnostic", "2026-02-01T07:00:00Z")]);
    let out = env.run(&["check-delay-alerts"], NOW).code(75);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert!(!lines.is_empty());
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(v["level"], "warning", "{line}");
        assert!(v["message"].as_str().unwrap().contains("r0@example.com"), "{line}");
    }
}

#[test]
fn force_gives_one_more_try_not_a_burst() {
    let smtp = SmtpServer::start();
    let env = with_recipients(smtp.port, 1);
    smtp.set_mode(Mode::Defer);
    env.run(&["check-delay-alerts"], NOW).code(75);
    assert_eq!(env.deliveries(), vec![("r0@example.com".into(), "pending".into(), 1)]);

    // --force re-plans (a new digest) and retries the waiting one, each once.
    env.run(&["check-delay-alerts", "--force"], "2026-03-10T07:00:05Z")
        .code(75);
    assert_eq!(
        env.deliveries(),
        vec![
            ("r0@example.com".into(), "pending".into(), 2),
            ("r0@example.com".into(), "pending".into(), 1),
        ],
        "one try each in a forced run, not max_attempts in a loop"
    );
}

/// A delivery a host wrote by hand on a channel rappel does not know is
/// never sent on another: `deliver` names it (exit 78) and leaves it
/// pending; a dry run does not list it.
#[test]
fn a_row_on_an_unknown_channel_is_named_and_never_sent() {
    let smtp = SmtpServer::start();
    let env = TestEnv::new(smtp.port, "");
    env.db()
        .execute(
            "INSERT INTO rappel_deliveries (job, kind, dedupe_key, channel, recipient, subject, body, status, created_at)
             VALUES ('send-reminders', 'manual', 'k-fax', 'fax', 'a@example.com', 'Hi', 'Body', 'pending', ?1)",
            [NOW],
        )
        .unwrap();
    let out = env.run(&["deliver", "--dry-run"], NOW).success();
    assert!(!out.stdout.contains("a@example.com"), "{}", out.stdout);
    let out = env.run(&["deliver"], NOW).code(78);
    assert!(
        out.stderr
            .contains("1 message(s) are due on a channel rappel does not know: \"fax\" is not a channel"),
        "{}",
        out.stderr
    );
    assert!(smtp.mails().is_empty(), "never sent as email");
    assert_eq!(env.deliveries(), vec![("a@example.com".into(), "pending".into(), 0)]);
}

/// 61 report messages to a slow database (outcomes wait and are written in
/// groups), one of them refused by `trigger` (SQL with `{one}` for the
/// refused report's id); the test environment, the server and that id.
fn refused_once(trigger: &str) -> (TestEnv, support::faulty_smtp::FaultySmtp, i64) {
    use support::faulty_smtp::{Fault, FaultySmtp};
    let server = FaultySmtp::start(Fault::None);
    let env = TestEnv::new(server.port, "[reports]\nattachments_dir = \"reports\"\n");
    std::fs::create_dir_all(env.dir.path().join("reports")).unwrap();
    std::fs::write(env.dir.path().join("reports/x.pdf"), b"%PDF-1.4 x").unwrap();
    let many = |p: &str, n: usize| {
        (0..n)
            .map(|i| format!("{p}{i}@example.com"))
            .collect::<Vec<_>>()
            .join(",")
    };
    const AT: &str = "2026-05-04T08:00:00Z";
    env.report("Many", &many("r", 14), AT, Some("x.pdf"), None);
    let one = env.report("One", "one@example.com", AT, Some("x.pdf"), None);
    env.report("More", &many("s", 46), AT, Some("x.pdf"), None);
    env.db()
        .execute_batch(&format!(
            "CREATE TRIGGER slow AFTER UPDATE OF status ON rappel_deliveries WHEN NEW.status = 'sent' BEGIN
               SELECT count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000)
                                     SELECT x FROM c);
             END;
             {}",
            trigger.replace("{one}", &one.to_string())
        ))
        .unwrap();
    (env, server, one)
}

/// How many of `env`'s deliveries have `status`.
fn with_status(env: &TestEnv, status: &str) -> usize {
    env.db()
        .query_row(
            "SELECT count(*) FROM rappel_deliveries WHERE status = ?1",
            [status],
            |r| r.get::<_, i64>(0),
        )
        .unwrap() as usize
}

/// An outcome the database refuses to record costs that message alone:
/// the others sent are recorded, the run sends nothing more and gives its
/// claimed rows back, and exits 74.
#[test]
fn an_outcome_that_cannot_be_recorded_costs_only_itself() {
    let (env, server, _) = refused_once(
        "CREATE TRIGGER refuse BEFORE UPDATE OF status ON rappel_deliveries
         WHEN NEW.recipient = 'one@example.com' AND NEW.status = 'sent' BEGIN SELECT RAISE(ABORT, 'no'); END;",
    );
    let out = env.run(&["send-reports"], "2026-05-04T08:05:00Z");
    assert_eq!(out.code, 74, "{}", out.stderr);
    assert!(out.stderr.contains("could not be recorded"), "{}", out.stderr);
    let accepted = server.accepted().len();
    let sent = with_status(&env, "sent");
    assert!(accepted - sent <= 1, "{accepted} sent, {sent} recorded");
    assert!(with_status(&env, "sending") <= 1, "rows left sending");
}

/// When outcomes cannot be recorded, the run says which messages went (each
/// goes again once its lease passes) apart from those that did not go: the
/// rows it gives back, counted in one line, each named with `-v`.
#[test]
fn an_outcome_not_recorded_says_whether_its_message_went() {
    // The sent outcome of one message refused, and every row given back
    // to `pending` refused too.
    let (env, server, _) = refused_once(
        "CREATE TRIGGER refuse BEFORE UPDATE OF status ON rappel_deliveries
         WHEN (NEW.recipient = 'one@example.com' AND NEW.status = 'sent') OR NEW.status = 'pending'
         BEGIN SELECT RAISE(ABORT, 'no'); END;",
    );
    let out = env.run(&["-v", "send-reports"], "2026-05-04T08:05:00Z");
    assert_eq!(out.code, 74, "{}", out.stderr);
    let went: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("was sent but its outcome could not be recorded: it goes again once its lease passes"))
        .collect();
    // Named as it happened, and again as the run's error.
    assert!(
        !went.is_empty() && went.iter().all(|l| l.contains("to one@example.com")),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("was settled but"), "{}", out.stderr);
    // What was claimed and not sent stays `sending` (its release refused):
    // one line counts it, and -v names each.
    let unsent = with_status(&env, "sending") - 1;
    let accepted = server.accepted().len();
    assert_eq!(
        accepted,
        with_status(&env, "sent") + 1,
        "the rest went and were recorded"
    );
    if unsent > 0 {
        assert!(
            out.stderr.contains(&format!(
                "{unsent} claimed message(s) were not sent and could not be given back: each goes once its lease passes"
            )),
            "{}",
            out.stderr
        );
        let named = out
            .stderr
            .lines()
            .filter(|l| l.contains("was not sent and could not be recorded as such"))
            .count();
        assert!(named >= unsent, "{named} named, {unsent} unsent:\n{}", out.stderr);
    }
}

/// A message whose source row refuses its update (a host trigger on the
/// report row) is recorded sent all the same, never to go again; the run
/// sends the rest, exits 74 naming it, and the next run brings the row up
/// to date once the host accepts it.
#[test]
fn a_source_row_that_refuses_its_update_does_not_get_its_message_again() {
    let (env, server, one) = refused_once(
        "CREATE TRIGGER refuse BEFORE UPDATE OF status ON scheduled_reports
         WHEN NEW.id = {one} AND NEW.status = 'sent' BEGIN SELECT RAISE(ABORT, 'the host says no'); END;",
    );
    let out = env.run(&["send-reports"], "2026-05-04T08:05:00Z");
    assert_eq!(out.code, 74, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("was settled and recorded, but its source row's update failed")
            && out.stderr.contains("the host says no"),
        "{}",
        out.stderr
    );
    assert_eq!(server.accepted().len(), 61, "every message sent");
    assert_eq!(with_status(&env, "sent"), 61, "and recorded");
    assert_eq!(env.report_status(one).0, "pending");
    // Past any lease, while the host still refuses: nothing goes again.
    env.run(&["send-reports"], "2026-05-04T09:05:00Z");
    env.run(&["deliver"], "2026-05-04T09:05:00Z");
    assert_eq!(server.accepted().len(), 61, "nothing twice");
    env.db().execute_batch("DROP TRIGGER refuse").unwrap();
    env.run(&["send-reports"], "2026-05-04T10:05:00Z").success();
    assert_eq!(env.report_status(one).0, "sent", "brought up to date");
    assert_eq!(server.accepted().len(), 61, "nothing twice");
}
