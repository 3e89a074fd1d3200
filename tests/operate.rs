//! Operating rappel end to end: `log` over deliveries made by real runs
//! against a real SMTP server.

mod support;

use support::{Mode, SmtpServer, TestEnv};

const NOW: &str = "2026-03-10T07:00:00Z";

/// Three delay-alert digests (one refused by the server) on 10 March, then a
/// test email two days later.
fn history(smtp: &SmtpServer) -> TestEnv {
    let env = TestEnv::new(smtp.port, "");
    for i in 0..3 {
        let c = env.contact(&format!("R{i}"), &format!("r{i}@example.com"));
        env.recipient(c, None);
    }
    env.ticket("T-1", &[("Diagnostic", "2026-02-01T07:00:00Z")]);
    smtp.set_mode(Mode::RejectRcpt("r1@".into()));
    env.run(&["check-delay-alerts"], NOW).code(65);
    smtp.set_mode(Mode::Accept);
    env.run(&["test-email", "--to", "ops@example.com"], "2026-03-12T07:00:00Z")
        .success();
    env
}

/// The recipients listed by `rappel log ARGS`, from its JSON.
fn logged(env: &TestEnv, args: &[&str]) -> Vec<String> {
    let mut all = vec!["--json", "log"];
    all.extend_from_slice(args);
    let out = env.run(&all, "2026-03-12T08:00:00Z").success();
    let rows: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| r["recipient"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn log_lists_newest_first_and_filters() {
    let smtp = SmtpServer::start();
    let env = history(&smtp);

    assert_eq!(
        logged(&env, &[]),
        ["ops@example.com", "r2@example.com", "r1@example.com", "r0@example.com"]
    );
    assert_eq!(logged(&env, &["--status", "failed"]), ["r1@example.com"]);
    assert_eq!(logged(&env, &["--kind", "test"]), ["ops@example.com"]);
    assert_eq!(
        logged(&env, &["--kind", "delay_alert", "--limit", "2"]),
        ["r2@example.com", "r1@example.com"]
    );
    assert_eq!(logged(&env, &["--since", "1d"]), ["ops@example.com"]);
    assert_eq!(
        logged(
            &env,
            &["--since", "2026-03-10", "--status", "sent", "--channel", "email"]
        )
        .len(),
        3
    );
    assert!(logged(&env, &["--channel", "sms"]).is_empty());

    // The table: times in the config's zone, the server's refusal in full view.
    let out = env
        .run(&["log", "--status", "failed"], "2026-03-12T08:00:00Z")
        .success();
    let mut lines = out.stdout.lines();
    let header = lines.next().unwrap();
    for column in [
        "ID",
        "CREATED",
        "KIND",
        "CHANNEL",
        "RECIPIENT",
        "STATUS",
        "TRIES",
        "LAST ERROR",
    ] {
        assert!(header.contains(column), "{header}");
    }
    let row = lines.next().unwrap();
    assert!(row.contains("2026-03-10 08:00 CET"), "{row}");
    assert!(
        row.contains("r1@example.com") && row.contains("failed") && row.contains("550"),
        "{row}"
    );
    assert_eq!(lines.next(), None);

    let none = env.run(&["log", "--kind", "loan_d2"], NOW).success();
    assert_eq!(none.stdout.trim(), "no deliveries match");
}

#[test]
fn log_refuses_unknown_filters_as_usage_errors() {
    let smtp = SmtpServer::start();
    let env = TestEnv::new(smtp.port, "");
    for args in [
        &["log", "--status", "lost"][..],
        &["log", "--kind", "loan_d3"],
        &["log", "--channel", "fax"],
        &["log", "--since", "last week"],
        &["log", "--limit", "-1"],
    ] {
        let out = env.run(args, NOW).code(64);
        assert!(out.stderr.contains(args[2]), "{args:?}: {}", out.stderr);
    }
}
