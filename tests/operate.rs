//! Operating rappel end to end: `log` over deliveries made by real runs
//! against a real SMTP server, `run-all`, monitoring pings received by an
//! HTTP server on 127.0.0.1, `purge`, completions and the man page.

use crate::support;

use support::hr::FakeHr;
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

/// A config with an HR service on `hr` (token in a file) besides email.
fn with_attendance(smtp: &SmtpServer, hr: &FakeHr, extra: &str) -> TestEnv {
    let env = TestEnv::new(smtp.port, extra);
    std::fs::write(env.dir.path().join("hr-token"), "tok\n").unwrap();
    let config = std::fs::read_to_string(env.config_path()).unwrap();
    env.write_config(&format!(
        r#"{config}
[attendance.services.rh]
base_url = "{}"
attendance_endpoint = "/att"
token_file = "hr-token"
timeout_s = 2
terminals = ["TM20-001"]
"#,
        hr.base_url()
    ));
    let db = env.db();
    db.execute("INSERT INTO terminals (id, serial) VALUES (1, 'TM20-001')", [])
        .unwrap();
    db.execute(
        "INSERT INTO attendance_logs (terminal_id, enroll_id, punched_at) VALUES (1, 7, '2026-03-10T06:00:00Z')",
        [],
    )
    .unwrap();
    env
}

#[test]
fn run_all_runs_every_job_and_exits_with_the_most_serious_code() {
    let smtp = SmtpServer::start();
    let hr = FakeHr::start();
    let env = with_attendance(&smtp, &hr, "");
    for i in 0..2 {
        let c = env.contact(&format!("R{i}"), &format!("r{i}@example.com"));
        env.recipient(c, None);
    }
    env.ticket("T-1", &[("Diagnostic", "2026-02-01T07:00:00Z")]);
    smtp.set_mode(Mode::RejectRcpt("r1@".into()));
    hr.answer_next(503, "busy", &[]);
    // 65 (a refused address) outranks 75 (the HR API to try again).
    let out = env.run(&["run-all"], NOW).code(65);
    assert!(out.stdout.contains("check-delay-alerts:"), "{}", out.stdout);
    assert!(out.stdout.contains("sync-attendance:"), "{}", out.stdout);
    assert_eq!(smtp.recipients(), vec!["r0@example.com"]);
    assert_eq!(hr.posts().len(), 1);
    let jobs: Vec<String> = {
        let db = env.db();
        let mut stmt = db.prepare("SELECT job FROM rappel_job_runs ORDER BY id").unwrap();
        stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    };
    assert_eq!(
        jobs,
        [
            "check-delay-alerts",
            "send-reports",
            "send-reminders",
            "sync-attendance",
            "deliver"
        ]
    );

    // Credentials refused by the HR API: 78 outranks 65, and the rest still ran.
    hr.answer_next(401, "no", &[]);
    env.run(&["run-all"], "2026-03-10T09:00:00Z").code(78);
    assert_eq!(hr.posts().len(), 2);
    // -q: a run that went well says nothing, whatever it did.
    let quiet = env.run(&["-q", "run-all"], "2026-03-10T09:30:00Z").success();
    assert_eq!((quiet.stdout.as_str(), quiet.stderr.as_str()), ("", ""));
    assert_eq!(hr.posts().len(), 3, "the logs the 401 left went now");
    let dry = env.run(&["--json", "run-all", "--dry-run"], NOW).success();
    let jobs: Vec<String> = dry
        .stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["job"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        jobs,
        [
            "check-delay-alerts",
            "send-reports",
            "send-reminders",
            "sync-attendance",
            "deliver"
        ],
        "one JSON summary per job"
    );
}

#[test]
fn monitoring_pings_start_and_end_with_one_run_id_and_never_hold_a_run_up() {
    let smtp = SmtpServer::start();
    let pings = FakeHr::start();
    let env = TestEnv::new(
        smtp.port,
        &format!(
            "[monitoring]\nping_timeout_s = 1\n[monitoring.ping_urls]\ncheck-delay-alerts = \"{}/ping/abc\"\n",
            pings.base_url()
        ),
    );
    let c = env.contact("R0", "r0@example.com");
    env.recipient(c, None);
    env.ticket("T-1", &[("Diagnostic", "2026-02-01T07:00:00Z")]);
    smtp.set_mode(Mode::RejectRcpt("r0@".into()));
    env.run(&["check-delay-alerts"], NOW).code(65);
    smtp.set_mode(Mode::Accept);
    env.run(&["check-delay-alerts", "--dry-run"], NOW).success();
    env.run(&["send-reports"], NOW).success();
    env.run(&["check-delay-alerts", "--force"], NOW).success();
    let urls: Vec<String> = pings.requests().iter().map(|r| r.url.clone()).collect();
    assert_eq!(
        urls.len(),
        4,
        "two runs, two pings each; none for a dry run or an unpinged job: {urls:?}"
    );
    let rid = |u: &str| u.split_once("?rid=").unwrap().1.to_string();
    assert!(urls[0].starts_with("/ping/abc/start?rid="), "{urls:?}");
    assert!(urls[1].starts_with("/ping/abc/65?rid="), "{urls:?}");
    assert_eq!(rid(&urls[0]), rid(&urls[1]));
    assert!(urls[2].starts_with("/ping/abc/start?rid=") && urls[3].starts_with("/ping/abc?rid="));
    assert_eq!(rid(&urls[2]), rid(&urls[3]));
    assert_ne!(rid(&urls[0]), rid(&urls[2]));
    // The start is a GET; the end a POST whose text body is what healthchecks
    // shows: the run's warnings and errors, then its summary, secrets masked.
    let requests = pings.requests();
    assert_eq!(
        requests.iter().map(|r| r.method.as_str()).collect::<Vec<_>>(),
        ["GET", "POST", "GET", "POST"]
    );
    let failed = &requests[1].body;
    assert!(
        failed.contains("r0@example.com") && failed.contains("550"),
        "the refused address and why: {failed}"
    );
    assert!(
        failed
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("check-delay-alerts: 1 planned, 0 sent, 1 failed")),
        "{failed}"
    );
    assert!(
        requests[1]
            .content_type
            .as_deref()
            .is_some_and(|c| c.starts_with("text/plain"))
    );
    let ok = &requests[3].body;
    assert!(
        ok.starts_with("check-delay-alerts: 0 planned, 0 sent, 0 failed"),
        "{ok}"
    );
    assert!(!ok.contains("550"), "only this run's lines: {ok}");

    // A run that finds its lock held sends no ping.
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(env.dir.path().join("rappel.db.check-delay-alerts.lock"))
        .unwrap();
    lock.lock().unwrap();
    env.run(&["check-delay-alerts"], NOW).success();
    assert_eq!(pings.requests().len(), 4);
    drop(lock);

    // A ping URL holds its check's secret: a bad one is refused unshown.
    let config = std::fs::read_to_string(env.config_path()).unwrap();
    env.write_config(&config.replace(&pings.base_url(), "http://hc.example.com"));
    let out = env.run(&["check-delay-alerts"], NOW).code(78);
    assert!(
        out.stderr.contains("monitoring.ping_urls.check-delay-alerts") && !out.stderr.contains("/ping/abc"),
        "{}",
        out.stderr
    );
    env.write_config(&config);

    // A ping endpoint that accepts and never answers costs at most its timeout, twice.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let config = std::fs::read_to_string(env.config_path())
        .unwrap()
        .replace(&pings.base_url(), &format!("http://127.0.0.1:{port}"));
    env.write_config(&config);
    let started = std::time::Instant::now();
    let out = env.run(&["check-delay-alerts"], "2026-03-12T07:00:00Z").success();
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_millis(4_000), "{took:?}");
    assert!(
        out.stderr
            .contains("monitoring ping got no answer within monitoring.ping_timeout_s; the run goes on"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("the run's outcome stands"), "{}", out.stderr);
    drop(silent);
}

/// The end ping's body under -q holds the summary once, and purge's ping
/// carries what it deleted.
#[test]
fn ping_bodies_hold_each_line_once_and_purge_says_what_it_deleted() {
    let pings = FakeHr::start();
    let env = TestEnv::new(
        support::free_port(),
        &format!(
            "[monitoring]\n[monitoring.ping_urls]\ncheck-delay-alerts = \"{0}/p/alerts\"\npurge = \"{0}/p/purge\"\n",
            pings.base_url()
        ),
    );
    let c = env.contact("R0", "r0@example.com");
    env.recipient(c, None);
    env.ticket("T-1", &[("Diagnostic", "2026-02-01T07:00:00Z")]);
    env.run(&["-q", "check-delay-alerts"], NOW).code(75);
    env.run(&["purge", "--older-than", "30d"], NOW).success();
    let posts: Vec<_> = pings.requests().into_iter().filter(|r| r.method == "POST").collect();
    assert_eq!(posts.len(), 2, "{posts:?}");
    let alerts = &posts[0].body;
    assert_eq!(
        alerts.matches("check-delay-alerts: 1 planned").count(),
        1,
        "the summary once: {alerts}"
    );
    assert!(posts[1].body.starts_with("purge: deleted "), "{}", posts[1].body);
    assert!(posts[1].body.contains("deliveries"), "{}", posts[1].body);
}

#[test]
fn purge_removes_only_old_finished_rows() {
    let smtp = SmtpServer::start();
    let env = TestEnv::new(smtp.port, "");
    let db = env.db();
    db.execute_batch(
        "INSERT INTO rappel_deliveries (id, job, kind, dedupe_key, channel, recipient, status, created_at, sent_at) VALUES
           (1, 'check-delay-alerts', 'delay_alert', 'k1', 'email', 'a@x', 'sent', '2025-09-01T07:00:00Z', '2025-09-01T07:00:01Z'),
           (2, 'check-delay-alerts', 'delay_alert', 'k2', 'email', 'a@x', 'sent', '2025-09-02T07:00:00Z', '2025-09-02T07:00:01Z'),
           (3, 'send-reminders', 'loan_d1', 'k3', 'email', 'b@x', 'failed', '2025-09-03T07:00:00Z', NULL),
           (4, 'send-reminders', 'loan_d1', 'k4', 'email', 'b@x', 'pending', '2025-09-04T07:00:00Z', NULL),
           (5, 'send-reminders', 'loan_d1', 'k5', 'email', 'b@x', 'sending', '2025-09-05T07:00:00Z', NULL),
           (6, 'send-reminders', 'loan_d1', 'k6', 'email', 'b@x', 'sent', '2026-03-01T07:00:00Z', '2026-03-01T07:00:00Z');
         INSERT INTO scheduled_reports (id, title, recipients, scheduled_at, status) VALUES
           (1, 'Weekly', 'a@x, c@x', '2025-09-01T07:00:00Z', 'failed'),
           (2, 'Monthly', 'a@x', '2025-09-01T07:00:00Z', 'sent');
         INSERT INTO rappel_deliveries (id, job, kind, dedupe_key, channel, recipient, status, created_at, sent_at,
                                 source_table, source_id) VALUES
           (7, 'send-reports', 'report', 'k7', 'email', 'a@x', 'sent', '2025-09-01T07:00:00Z', '2025-09-01T07:00:01Z',
            'scheduled_reports', 1),
           (8, 'send-reports', 'report', 'k8', 'email', 'a@x', 'sent', '2025-09-01T07:00:00Z', '2025-09-01T07:00:01Z',
            'scheduled_reports', 2);
         INSERT INTO rappel_delay_alert_log (id, event_id, ticket_id, stage, days_in_stage, alerted_at, delivery_id) VALUES
           (1, 10, 1, 'Diagnostic', 20, '2025-09-01T07:00:00Z', 1),
           (2, 10, 1, 'Diagnostic', 21, '2025-09-02T07:00:00Z', 2),
           (3, 11, 2, 'Diagnostic', 30, '2025-09-01T07:00:00Z', NULL),
           -- Replayed with --now in the past: a higher id, an older alert.
           (4, 11, 2, 'Diagnostic', 25, '2025-08-20T07:00:00Z', NULL);
         INSERT INTO rappel_job_runs (job, started_at, finished_at) VALUES
           ('deliver', '2025-09-01T07:00:00Z', '2025-09-01T07:00:01Z'),
           ('deliver', '2025-09-02T07:00:00Z', NULL),
           ('deliver', '2026-03-09T07:00:00Z', '2026-03-09T07:00:01Z');
         INSERT INTO terminals (id, serial) VALUES (1, 'TM20-001');
         INSERT INTO attendance_logs (terminal_id, enroll_id, punched_at, sync_status, synced_at) VALUES
           (1, 1, '2025-09-01T07:00:00Z', 'sent', '2025-09-01T07:15:00Z'),
           (1, 2, '2025-09-01T07:00:00Z', 'pending', NULL),
           (1, 3, '2026-03-01T07:00:00Z', 'sent', '2026-03-01T07:15:00Z');",
    )
    .unwrap();
    // Generated report files: old, old but still attached to a pending
    // delivery, recent, a killed run's temporary file, and a link.
    let files = env.dir.path().join("rappel-files");
    std::fs::create_dir(&files).unwrap();
    let old_time = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_756_710_000); // 2025-09-01
    for name in [
        "report-1-7-weekly-2025-09-01.csv",
        "report-2-7-monthly-2025-09-01.csv",
        ".report-3-7-x.csv.42.00ff.tmp",
        "report-9-recent.csv",
        "notes.txt",
    ] {
        let file = std::fs::File::create(files.join(name)).unwrap();
        if name != "report-9-recent.csv" {
            file.set_modified(old_time).unwrap();
        }
    }
    #[cfg(unix)]
    std::os::unix::fs::symlink(files.join("notes.txt"), files.join("report-5-link.csv")).unwrap();
    let pending_file = files.join("report-2-7-monthly-2025-09-01.csv").canonicalize().unwrap();
    db.execute(
        "UPDATE rappel_deliveries SET attachment_path = ?1 WHERE id = 4",
        [pending_file.to_str().unwrap()],
    )
    .unwrap();
    let listing = || -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&files)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let rows = |table: &str| -> Vec<i64> {
        let mut stmt = db
            .prepare(&format!("SELECT rowid FROM {table} ORDER BY rowid"))
            .unwrap();
        stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    };
    let before = env.dump();

    let dry = env
        .run(&["--json", "purge", "--older-than", "90d", "--dry-run"], NOW)
        .success();
    let counts: serde_json::Value = serde_json::from_str(dry.stdout.trim()).unwrap();
    assert_eq!(
        counts["deleted"],
        serde_json::json!({"delay-alert_history": 2, "deliveries": 3, "job_runs": 1, "report_files": 2}),
        "{}",
        dry.stdout
    );
    assert_eq!(env.dump(), before, "a dry run deletes nothing");
    assert_eq!(listing().len(), 6, "a dry run removes no file");

    let out = env.run(&["purge", "--older-than", "90d"], NOW).success();
    assert!(
        out.stdout
            .contains("deleted 3 deliveries older than 2025-12-10T07:00:00Z"),
        "{}",
        out.stdout
    );
    assert_eq!(
        rows("rappel_deliveries"),
        vec![2, 4, 5, 6, 7],
        "pending, sending, recent, still-referenced rows and those of a report not yet sent to all stay"
    );
    assert!(
        out.stdout.contains("deleted 2 report files older than"),
        "{}",
        out.stdout
    );
    assert_eq!(
        listing(),
        [
            "notes.txt",
            "report-2-7-monthly-2025-09-01.csv",
            "report-5-link.csv",
            "report-9-recent.csv"
        ],
        "old generated files go; one a pending delivery attaches, recent ones, links and others' files stay"
    );
    assert_eq!(
        rows("rappel_delay_alert_log"),
        vec![2, 3],
        "each event keeps its latest alert, by time"
    );
    assert_eq!(rows("rappel_job_runs").len(), 2);
    assert_eq!(
        rows("attendance_logs"),
        vec![1, 2, 3],
        "the host's logs stay without the flag"
    );

    let out = env
        .run(
            &["-q", "purge", "--older-than", "12w", "--include-attendance", "--vacuum"],
            NOW,
        )
        .success();
    assert_eq!(out.stdout, "", "-q: nothing to say");
    assert_eq!(rows("attendance_logs"), vec![2, 3], "only old synced logs go");

    env.run(&["purge", "--older-than", "3d"], NOW).code(64);
    env.run(&["purge"], NOW).code(64);
}

#[test]
fn completions_and_man_page_are_generated() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let out = support::rappel_in(dir.path(), &["completions", shell]).success();
        assert!(out.stdout.contains("sync-attendance"), "{shell}: {}", out.stdout.len());
    }
    let man = support::rappel_in(dir.path(), &["man"]).success();
    assert!(
        man.stdout.starts_with(".ie") || man.stdout.contains(".TH rappel"),
        "{}",
        &man.stdout[..200]
    );
    assert!(man.stdout.contains("run\\-all") || man.stdout.contains("run-all"));
    support::rappel_in(dir.path(), &["completions", "tcsh"]).code(64);
    // A reader that closed its end before reading is no error.
    for args in [&["man"][..], &["completions", "bash"]] {
        let mut child = std::process::Command::new(support::BIN)
            .args(args)
            .current_dir(dir.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A message of several lines keeps them, each dated and named by run as a
/// cron log needs, none with an escaped `\n` in it.
#[test]
fn a_message_of_several_lines_keeps_its_lines() {
    let dir = tempfile::tempdir().unwrap();
    let out = support::rappel_in(dir.path(), &["--config", "/nonexistent/rappel.toml", "log"]).code(78);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert!(lines.len() >= 2, "{}", out.stderr);
    for line in &lines {
        assert!(line.contains(" run=") && line.contains("rappel: error: "), "{line}");
        assert!(!line.contains("\\n"), "{line}");
    }
    assert!(out.stderr.contains("/nonexistent/rappel.toml"), "{}", out.stderr);
}

#[test]
fn stats_sums_deliveries_and_attendance_and_alerts_above_a_failure_rate() {
    let smtp = SmtpServer::start();
    let env = TestEnv::new(smtp.port, "");
    env.db()
        .execute_batch(
            "INSERT INTO rappel_deliveries (job, kind, dedupe_key, channel, recipient, status, last_error, created_at, sent_at) VALUES
               ('j', 'loan_d1', 'a', 'email', 'a@x', 'sent', NULL, '2026-03-09T07:00:00Z', '2026-03-09T07:01:00Z'),
               ('j', 'loan_d1', 'b', 'email', 'b@x', 'sent', NULL, '2026-03-09T07:00:00Z', '2026-03-09T07:02:00Z'),
               ('j', 'delay_alert', 'c', 'email', 'c@x', 'sent', NULL, '2026-03-09T07:00:00Z', '2026-03-09T07:10:00Z'),
               ('j', 'loan_d1', 'h', 'email', 'h@x', 'sent', NULL, '2026-03-09T07:00:00Z', '2026-03-09T07:00:30Z'),
               ('j', 'loan_d1', 'd', 'email', 'd@x', 'failed', 'mailbox unavailable', '2026-03-09T08:00:00Z', NULL),
               ('j', 'loan_d1', 'e', 'whatsapp', '+24107000000', 'failed', 'mailbox unavailable', '2026-03-09T08:00:00Z', NULL),
               ('j', 'loan_d1', 'f', 'sms', '+24107000001', 'pending', NULL, '2026-03-09T09:00:00Z', NULL),
               ('j', 'loan_d1', 'g', 'email', 'old@x', 'failed', 'long ago', '2025-01-01T07:00:00Z', NULL),
               ('j', 'loan_d1', 'i', 'email', 'i@x', 'cancelled', 'cancelled: the loan was returned (loans id 3)',
                '2026-03-09T08:00:00Z', NULL);
             INSERT INTO terminals (id, serial) VALUES (1, 'TM20-001');
             INSERT INTO attendance_logs (terminal_id, enroll_id, punched_at, sync_status, next_attempt_at) VALUES
               (1, 1, '2026-03-09T07:00:00Z', 'pending', NULL), (1, 2, '2026-03-09T07:01:00Z', 'pending', NULL),
               (1, 3, '2026-03-09T07:02:00Z', 'failed', NULL), (1, 4, '2026-03-09T07:03:00Z', 'sent', NULL),
               (1, 5, '2026-03-09T07:04:00Z', 'failed', '2026-03-10T08:00:00Z');
             INSERT INTO rappel_terminal_sync_state (terminal_id, service, last_attendance_sync, last_users_sync)
               VALUES (1, 'rh', '2026-03-10T06:45:00Z', NULL);",
        )
        .unwrap();
    let out = env.run(&["--json", "stats"], NOW).success();
    let s: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        s["totals"],
        serde_json::json!({"total": 8, "sent": 4, "failed": 2, "cancelled": 1, "open": 1}),
        "a cancelled message is not a failure"
    );
    assert!(
        (s["success_rate"].as_f64().unwrap() - 66.666).abs() < 0.01,
        "{}",
        s["success_rate"]
    );
    // 60, 120, 600 and 30 s, not in that order: the mean of the two middle ones.
    assert_eq!(s["median_seconds_to_send"].as_f64().map(f64::round), Some(90.0));
    assert_eq!(
        s["by_channel"][0],
        serde_json::json!({"name": "email", "total": 6, "sent": 4, "failed": 1, "cancelled": 1, "open": 0})
    );
    assert_eq!(s["by_kind"][1]["name"], "delay_alert");
    assert_eq!(
        s["failures_by_reason"],
        serde_json::json!([{"reason": "mailbox unavailable", "count": 2}])
    );
    assert_eq!(
        s["cancellations_by_reason"],
        serde_json::json!([{"reason": "cancelled: the loan was returned (loans id 3)", "count": 1}])
    );
    assert_eq!(
        s["attendance"],
        serde_json::json!({"pending": 2, "sending": 0, "retrying": 1, "failed": 1, "sent": 1,
            "services": [{"service": "rh", "last_attendance_sync": "2026-03-10T06:45:00Z", "last_users_sync": null}]})
    );
    assert_eq!(
        s["last"].as_array().unwrap().len(),
        8,
        "the last deliveries since the start"
    );

    let table = env.run(&["stats", "--since", "2w"], NOW).success();
    for part in [
        "8 planned: 4 sent, 2 failed, 1 cancelled, 1 pending; success 66.7 %",
        "By channel",
        "Failures by reason",
        "Cancelled, by reason (not failures)",
        "rh: last push 2026-03-10 07:45 CET",
    ] {
        assert!(table.stdout.contains(part), "{part}:\n{}", table.stdout);
    }
    let out = env.run(&["stats", "--fail-above", "30"], NOW).code(1);
    assert!(out.stderr.contains("33.3 % is above 30.0 %"), "{}", out.stderr);
    env.run(&["stats", "--fail-above", "34"], NOW).success();
    // Over 500 days, one more failure: 3 of 7.
    env.run(&["stats", "--since", "500d", "--fail-above", "40"], NOW)
        .code(1);
    env.run(&["stats", "--fail-above", "120"], NOW).code(64);
}

/// In a cron mail or a log file (stderr not a terminal), every line can be
/// placed in time and run; JSON lines carry `ts`, `run_id`, `job` and
/// `level`, `-q`'s error line too; `-q db migrate` says nothing when all is
/// well; `--json` prints its summary when the run stops, with the error.
#[test]
fn every_line_a_cron_log_keeps_can_be_placed_in_time() {
    let smtp = SmtpServer::start();
    let env = TestEnv::new(smtp.port, "");
    env.db()
        .execute_batch(
            "INSERT INTO contacts (id, name, email) VALUES (1, 'Bad', 'bad@@example.com');
             INSERT INTO loans (contact_id, item, lent_at, due_at) VALUES (1, 'X', '2026-03-10T08:00:00Z', '2026-03-20T17:00:00Z');",
        )
        .unwrap();
    let out = env
        .run(&["send-reminders", "--kind", "loan_created"], "2026-03-10T08:05:00Z")
        .code(65);
    let line = out.stderr.lines().find(|l| l.contains("warning")).unwrap_or_default();
    let (ts, rest) = line.split_once(' ').unwrap_or_default();
    assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{line}");
    assert!(
        rest.starts_with("run=") && rest[12..].starts_with(" rappel: warning: "),
        "{line}"
    );

    let config = std::fs::read_to_string(env.config_path()).unwrap();
    env.write_config(&format!("{config}\n[monitoring]\nlog_format = \"json\"\n"));
    env.db()
        .execute("INSERT INTO loans (contact_id, item, lent_at, due_at) VALUES (1, 'Y', '2026-03-10T08:10:00Z', '2026-03-20T17:00:00Z')", [])
        .unwrap();
    let out = env
        .run(
            &["-q", "send-reminders", "--kind", "loan_created"],
            "2026-03-10T08:15:00Z",
        )
        .code(65);
    let lines: Vec<serde_json::Value> = out
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(!lines.is_empty());
    let run_id = lines[0]["run_id"].as_str().unwrap().to_string();
    for l in &lines {
        assert!(
            chrono::DateTime::parse_from_rfc3339(l["ts"].as_str().unwrap()).is_ok(),
            "{l}"
        );
        assert_eq!(l["run_id"], run_id.as_str(), "one run id for the run");
        assert_eq!(l["job"], "send-reminders");
        assert_eq!(l["level"], "error", "-q: errors only: {l}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l["message"].as_str().unwrap().contains("(exit 65)"))
    );

    let migrate = env.run(&["-q", "db", "migrate"], "2026-03-10T08:15:00Z").success();
    assert_eq!(migrate.stdout, "", "nothing went wrong, nothing said");

    // A run that stops still prints its summary with --json.
    env.db()
        .execute_batch(
            "DROP TABLE ticket_events; CREATE TABLE ticket_events (id INTEGER PRIMARY KEY, ticket_id INTEGER)",
        )
        .unwrap();
    let out = env
        .run(&["--json", "check-delay-alerts"], "2026-03-10T08:15:00Z")
        .code(74);
    let summary: serde_json::Value =
        serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", out.stdout));
    assert_eq!(summary["exit_code"], 74);
    assert!(
        summary["error"]
            .as_str()
            .unwrap()
            .contains("ticket_events exists without column stage"),
        "{summary}"
    );
}
