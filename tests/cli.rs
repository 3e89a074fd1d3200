//! The command line end to end: configuration errors, usage errors, init,
//! demo, db, config check and test-email.

use crate::support;

use support::{BIN, SmtpServer, TestEnv, rappel_in};

const NOW: &str = "2026-03-10T07:00:00Z";

#[test]
fn unknown_key_is_a_config_error_naming_file_and_key() {
    let smtp = SmtpServer::start();
    let env = TestEnv::new(smtp.port, "");
    let text = std::fs::read_to_string(env.config_path()).unwrap();
    env.write_config(&format!("{text}[delay_alerts]\nthreshold_dayz = 3\n"));
    let out = env.run(&["check-delay-alerts"], NOW).code(78);
    assert!(out.stderr.contains("rappel.toml"), "{}", out.stderr);
    assert!(out.stderr.contains("delay_alerts"), "{}", out.stderr);
    assert!(out.stderr.contains("threshold_dayz"), "{}", out.stderr);
    assert!(out.stderr.contains("line"), "the error says where: {}", out.stderr);
}

#[test]
fn unknown_time_zone_is_a_config_error() {
    let smtp = SmtpServer::start();
    let env = TestEnv::new(smtp.port, "");
    let text = std::fs::read_to_string(env.config_path())
        .unwrap()
        .replace("Europe/Paris", "Europe/Pariss");
    env.write_config(&text);
    let out = env.run(&["check-delay-alerts"], NOW).code(78);
    assert!(
        out.stderr.contains("timezone") && out.stderr.contains("Europe/Pariss"),
        "{}",
        out.stderr
    );
}

#[test]
fn missing_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = rappel_in(dir.path(), &["--config", "nope.toml", "check-delay-alerts"]).code(78);
    assert!(out.stderr.contains("nope.toml"), "{}", out.stderr);
    let out = rappel_in(dir.path(), &["check-delay-alerts"]).code(78);
    assert!(
        out.stderr.contains("rappel.toml") && out.stderr.contains("rappel init"),
        "{}",
        out.stderr
    );

    std::fs::write(
        dir.path().join("rappel.toml"),
        "[email]\nfrom = \"a@example.com\"\n[email.smtp]\nhost = \"localhost\"\npassword_file = \"missing-secret\"\nusername = \"u\"\n",
    )
    .unwrap();
    let out = rappel_in(dir.path(), &["config", "check"]).code(78);
    assert!(
        out.stderr.contains("email.smtp.password_file") && out.stderr.contains("missing-secret"),
        "{}",
        out.stderr
    );
}

#[test]
fn secrets_from_env_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rappel.toml"),
        "[email]\nfrom = \"a@example.com\"\n[email.smtp]\nhost = \"localhost\"\nsecurity = \"none\"\nusername = \"u\"\npassword_env = \"RAPPEL_TEST_PW\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(BIN)
        .args(["-v", "config", "check"])
        .current_dir(dir.path())
        .env("RAPPEL_TEST_PW", "hunter2-secret")
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{all}");
    assert!(!all.contains("hunter2-secret"), "{all}");
    let out = rappel_in(dir.path(), &["config", "check"]).code(78);
    assert!(out.stderr.contains("RAPPEL_TEST_PW"), "{}", out.stderr);
}

#[test]
fn bad_now_and_unknown_flags_are_usage_errors() {
    let smtp = SmtpServer::start();
    let env = TestEnv::new(smtp.port, "");
    let out = env.run(&["check-delay-alerts"], "next tuesday").code(64);
    assert!(out.stderr.contains("RFC 3339"), "{}", out.stderr);
    env.run(&["check-delay-alerts", "--frobnicate"], NOW).code(64);
    rappel_in(env.dir.path(), &["--help"]).success();
}

#[test]
fn init_writes_config_and_database_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    rappel_in(dir.path(), &["init"]).success();
    let written = std::fs::read_to_string(dir.path().join("rappel.toml")).unwrap();
    assert_eq!(written, include_str!("../examples/rappel.toml"));
    assert!(dir.path().join("rappel.db").exists());
    rappel_in(dir.path(), &["config", "check"]).success();
    let out = rappel_in(dir.path(), &["init"]).code(64);
    assert!(out.stderr.contains("already exists"), "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("rappel.toml")).unwrap(),
        written
    );
}

/// The layout README's install follows: the config in one folder (that may
/// be read-only), the database, its lock files and generated files in another.
#[test]
fn init_puts_the_database_where_asked_and_jobs_write_only_there() {
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc/rappel");
    let var = dir.path().join("var/lib/rappel");
    let out = rappel_in(
        dir.path(),
        &["init", "etc/rappel", "--database", "var/lib/rappel/rappel.db"],
    )
    .success();
    assert!(out.stdout.contains("created "), "{}", out.stdout);
    assert!(var.join("rappel.db").is_file());
    // A folder given as the database is refused before anything is written.
    let out = rappel_in(dir.path(), &["init", "other", "--database", "var/lib/rappel"]).code(64);
    assert!(out.stderr.contains("is not a file"), "{}", out.stderr);
    assert!(!dir.path().join("other/rappel.toml").exists());
    // An existing database is kept, and the next step named.
    let out = rappel_in(dir.path(), &["init", "again", "--database", "var/lib/rappel/rappel.db"]).success();
    assert!(out.stdout.contains("rappel db migrate"), "{}", out.stdout);
    assert!(!etc.join("rappel.db").exists());
    let config = std::fs::read_to_string(etc.join("rappel.toml")).unwrap();
    let table: toml::Table = config.parse().unwrap();
    assert_eq!(
        table["database"].as_str(),
        Some(var.join("rappel.db").to_str().unwrap()),
        "an absolute path, so the config can move"
    );
    let listing = |d: &std::path::Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let config_path = etc.join("rappel.toml");
    let config_arg = config_path.to_str().unwrap();
    for job in [&["deliver"][..], &["send-reminders"], &["db", "status"]] {
        let mut args = vec!["--config", config_arg, "--now", "2026-03-10T07:00:00Z"];
        args.extend_from_slice(job);
        rappel_in(dir.path(), &args).success();
    }
    assert_eq!(listing(&etc), ["rappel.toml"], "nothing is written beside the config");
    assert!(
        listing(&var).iter().any(|n| n.ends_with(".lock")),
        "lock files beside the database: {:?}",
        listing(&var)
    );
}

#[test]
fn demo_builds_a_folder_sends_and_resets_only_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let out = rappel_in(dir.path(), &["demo", "--dir", "d"]).success();
    let eml: Vec<_> = std::fs::read_dir(dir.path().join("d/outbox/email"))
        .unwrap()
        .flatten()
        .collect();
    assert!(eml.len() >= 3, "{}", out.stdout);
    assert!(out.stdout.contains("outbox/email"), "{}", out.stdout);
    let kinds: Vec<String> = eml
        .iter()
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .filter_map(|body| {
            body.lines()
                .find_map(|l| l.strip_prefix("X-Rappel-Kind: ").map(str::to_string))
        })
        .collect();
    assert!(kinds.iter().any(|k| k == "delay_alert"), "{kinds:?}");
    assert!(kinds.iter().any(|k| k == "report"), "{kinds:?}");
    for sub in ["reports", "outbox/whatsapp", "outbox/sms", "outbox/attendance"] {
        assert!(dir.path().join("d").join(sub).is_dir(), "{sub}");
    }
    let batches: Vec<_> = std::fs::read_dir(dir.path().join("d/outbox/attendance/rh"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(batches.len(), 1, "{}", out.stdout);
    let name = batches[0].file_name().into_string().unwrap();
    assert!(name.starts_with("rappel-rh-") && name.ends_with(".json"), "{name}");
    let batch: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(batches[0].path()).unwrap()).unwrap();
    assert_eq!(batch["attendance"].as_array().unwrap().len(), 10);
    assert_eq!(batch["attendance"][0]["terminal_sn"], "TM20-001");

    rappel_in(dir.path(), &["demo", "--dir", "d", "--no-run"]).success();
    assert_eq!(
        std::fs::read_dir(dir.path().join("d/outbox/email")).unwrap().count(),
        0,
        "reset"
    );

    std::fs::create_dir(dir.path().join("mine")).unwrap();
    std::fs::write(dir.path().join("mine/keep.txt"), "x").unwrap();
    rappel_in(dir.path(), &["demo", "--dir", "mine"]).code(64);
    assert!(dir.path().join("mine/keep.txt").exists());
}

#[test]
fn demo_scale_generates_tickets() {
    let dir = tempfile::tempdir().unwrap();
    rappel_in(dir.path(), &["demo", "--dir", "d", "--scale", "2000", "--no-run"]).success();
    let conn = rusqlite_open(&dir.path().join("d/rappel.db"));
    let tickets: i64 = conn
        .query_row("SELECT count(*) FROM tickets", [], |r| r.get(0))
        .unwrap();
    let events: i64 = conn
        .query_row("SELECT count(*) FROM ticket_events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(tickets, 2000);
    assert!(events > 2000 * 2, "several events per ticket: {events}");
}

#[allow(clippy::disallowed_methods, reason = "tests read the database directly")]
fn rusqlite_open(path: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}

#[test]
fn newer_schema_and_dry_run_migrations_exit_74() {
    let smtp = SmtpServer::start();
    let env = TestEnv::new(smtp.port, "");
    let status = env.run(&["db", "status"], NOW).success();
    assert!(status.stdout.contains("up to date"), "{}", status.stdout);

    env.db()
        .execute("UPDATE rappel_meta SET value = '99' WHERE key = 'schema_version'", [])
        .unwrap();
    let out = env.run(&["check-delay-alerts"], NOW).code(74);
    assert!(out.stderr.contains("newer"), "{}", out.stderr);
    env.run(&["db", "status"], NOW).code(74);
    // config check says so and fails: every job would stop.
    let out = env.run(&["config", "check"], NOW);
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(
        format!("{}{}", out.stdout, out.stderr).contains("newer than this rappel understands"),
        "{} {}",
        out.stdout,
        out.stderr
    );

    let fresh = TestEnv::new(smtp.port, "");
    std::fs::remove_file(fresh.db_path()).unwrap();
    let _ = std::fs::remove_file(fresh.dir.path().join("rappel.db-wal"));
    let _ = std::fs::remove_file(fresh.dir.path().join("rappel.db-shm"));
    let out = fresh.run(&["check-delay-alerts", "--dry-run"], NOW).code(74);
    assert!(out.stderr.contains("rappel db migrate"), "{}", out.stderr);
    assert!(!fresh.db_path().exists(), "a dry run creates nothing");
    // An empty database file: a dry run refuses to migrate it.
    std::fs::write(fresh.db_path(), "").unwrap();
    let out = fresh.run(&["check-delay-alerts", "--dry-run"], NOW).code(74);
    assert!(out.stderr.contains("needs migrations"), "{}", out.stderr);
    // A job migrates by itself.
    fresh.run(&["check-delay-alerts"], NOW).success();
}

#[test]
fn db_status_reports_a_host_table_missing_a_column() {
    let smtp = SmtpServer::start();
    let env = TestEnv::new(smtp.port, "");
    // The host made `tickets` first, without `customer`: rappel keeps it.
    std::fs::remove_file(env.db_path()).unwrap();
    env.db()
        .execute_batch(
            "CREATE TABLE tickets (id INTEGER PRIMARY KEY, reference TEXT NOT NULL UNIQUE,
             device TEXT NOT NULL DEFAULT '', created_at TEXT NOT NULL, closed_at TEXT)",
        )
        .unwrap();
    env.run(&["db", "migrate"], NOW).success();
    let out = env.run(&["db", "status"], NOW).code(74);
    assert!(
        out.stdout
            .contains("table tickets exists without column customer (needed by check-delay-alerts)"),
        "{}",
        out.stdout
    );
}

#[test]
fn corrupt_database_exits_74() {
    let smtp = SmtpServer::start();
    let env = TestEnv::new(smtp.port, "");
    std::fs::remove_file(env.db_path()).unwrap();
    let _ = std::fs::remove_file(env.dir.path().join("rappel.db-wal"));
    let _ = std::fs::remove_file(env.dir.path().join("rappel.db-shm"));
    std::fs::write(env.db_path(), vec![0x42u8; 8192]).unwrap();
    let out = env.run(&["check-delay-alerts"], NOW).code(74);
    assert!(out.stderr.contains("rappel.db"), "{}", out.stderr);
}

#[test]
fn test_email_goes_through_the_engine() {
    let smtp = SmtpServer::start();
    let env = TestEnv::new(smtp.port, "");
    env.run(&["test-email", "--to", "ops@example.com"], NOW).success();
    let mail = smtp.mail_to("ops@example.com");
    assert_eq!(mail.header("Subject").as_deref(), Some("rappel: test message"));
    assert_eq!(env.deliveries(), vec![("ops@example.com".into(), "sent".into(), 1)]);
    let kind: String = env
        .db()
        .query_row("SELECT kind FROM rappel_deliveries", [], |r| r.get(0))
        .unwrap();
    assert_eq!(kind, "test");
    env.run(&["test-email", "--to", "not an address"], NOW).code(64);
}

#[test]
fn redirect_to_diverts_every_email() {
    let smtp = SmtpServer::start();
    let env = TestEnv::new(smtp.port, "");
    let text = std::fs::read_to_string(env.config_path())
        .unwrap()
        .replace("[delivery]\n", "[delivery]\nredirect_to = \"staging@example.com\"\n");
    env.write_config(&text);
    env.run(&["test-email", "--to", "customer@example.com"], NOW).success();
    let mail = smtp.mail_to("staging@example.com");
    assert_eq!(
        mail.header("X-Rappel-Original-To").as_deref(),
        Some("customer@example.com")
    );
    assert_eq!(
        env.deliveries()[0].0,
        "customer@example.com",
        "the log keeps the real recipient"
    );
}

/// `config check --connect` against a server that wants a login: ok names
/// the server and the user it accepted; a refused login names the server;
/// a username for a server that offers no login says what to change.
#[test]
fn config_check_connect_names_the_server_and_the_login() {
    let plain = SmtpServer::start();
    let env = TestEnv::new(plain.port, "");
    std::fs::write(env.dir.path().join("smtp-pass"), "pw\n").unwrap();
    let text = std::fs::read_to_string(env.config_path()).unwrap().replace(
        "timeout_s = 2\n",
        "timeout_s = 2\nusername = \"bob\"\npassword_file = \"smtp-pass\"\n",
    );
    env.write_config(&text);
    let out = env.run(&["config", "check", "--connect"], NOW).code(78);
    assert!(
        out.stdout.contains("offers no login rappel can use") && out.stdout.contains("remove the username"),
        "{}",
        out.stdout
    );

    use support::faulty_smtp::{Fault, FaultySmtp};
    for (fault, expect) in [
        (
            Fault::None,
            "email: ok (127.0.0.1:{port}: connected without TLS, authenticated as bob)",
        ),
        (Fault::Auth535, "email: failed: 127.0.0.1:{port} (without TLS): "),
    ] {
        let smtp = FaultySmtp::start(fault);
        let env = TestEnv::new(smtp.port, "");
        std::fs::write(env.dir.path().join("smtp-pass"), "pw\n").unwrap();
        let text = std::fs::read_to_string(env.config_path()).unwrap().replace(
            "timeout_s = 2\n",
            "timeout_s = 2\nusername = \"bob\"\npassword_file = \"smtp-pass\"\n",
        );
        env.write_config(&text);
        let out = env.run(&["config", "check", "--connect"], NOW);
        let expect = expect.replace("{port}", &smtp.port.to_string());
        assert!(out.stdout.contains(&expect), "{fault:?}: {}", out.stdout);
        assert_eq!(out.code, if fault == Fault::None { 0 } else { 78 }, "{}", out.stdout);
    }
}

#[test]
fn config_check_renders_templates_and_reports_errors() {
    let smtp = SmtpServer::start();
    let env = TestEnv::new(smtp.port, "");
    let out = env.run(&["config", "check", "--connect"], NOW).success();
    assert!(out.stdout.contains("configuration OK"), "{}", out.stdout);
    // The server is named, and nothing claims a login that was not made.
    let at = format!("127.0.0.1:{}", smtp.port);
    assert!(
        out.stdout.contains(&format!(
            "email: ok ({at}: connected without TLS, no authentication configured)"
        )),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("authenticated as"), "{}", out.stdout);

    // Each target says ok or failed; any failure is exit 78.
    let twilio = support::twilio::FakeTwilio::start();
    let down_port = support::free_port();
    let down = TestEnv::new(down_port, "");
    let config = std::fs::read_to_string(down.config_path()).unwrap();
    down.write_config(&format!("{config}\n{}", twilio.config(down.dir.path())));
    let out = down.run(&["config", "check", "--connect"], NOW).code(78);
    assert!(
        out.stdout
            .contains(&format!("email: failed: 127.0.0.1:{} (without TLS): ", down_port)),
        "the refused server is named: {}",
        out.stdout
    );
    assert!(
        out.stdout.contains("whatsapp: ok (Twilio account read)"),
        "{}",
        out.stdout
    );
    let account = twilio.requests().into_iter().find(|r| r.method == "GET").unwrap();
    assert_eq!(account.url, "/2010-04-01/Accounts/ACtest.json");
    assert!(account.authorization.is_some_and(|a| a.starts_with("Basic ")));

    // An error in the configuration does not hide the connections: each is
    // still tried and said, and both counts end the run.
    let config = std::fs::read_to_string(down.config_path()).unwrap();
    down.write_config(&format!(
        "{config}\n[reports.definitions.broken]\nquery = \"SELECT nothing FROM no_such_table\"\n"
    ));
    let out = down.run(&["config", "check", "--connect"], NOW).code(78);
    assert!(
        out.stderr.contains("reports.definitions.broken.query"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.contains("email: failed: "), "{}", out.stdout);
    assert!(out.stdout.contains("whatsapp: ok"), "{}", out.stdout);
    assert!(
        out.stderr.contains(
            "1 error(s) in templates, [sources] mappings, report queries, transports, services or monitoring; 1 connection check(s) failed"
        ),
        "{}",
        out.stderr
    );

    let templates = env.dir.path().join("templates/en");
    std::fs::create_dir_all(&templates).unwrap();
    std::fs::write(
        templates.join("delay_alert.subject.txt"),
        "{{ count }} for {{ recipient.nickname }}",
    )
    .unwrap();
    let text = std::fs::read_to_string(env.config_path())
        .unwrap()
        .replace("locale = \"en\"", "locale = \"en\"\ntemplates_dir = \"templates\"");
    env.write_config(&text);
    let out = env.run(&["config", "check"], NOW).code(78);
    // One line, naming the file, its line and the missing variable, however
    // many samples it was rendered with.
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("delay_alert.subject.txt"))
        .collect();
    assert_eq!(lines.len(), 1, "{}", out.stderr);
    assert!(
        lines[0].contains("`recipient.nickname` is undefined (en/delay_alert.subject.txt line 1)"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("1 error(s) in templates"), "{}", out.stderr);
    // A templates_dir that is not there overrides nothing: said, not ignored.
    env.write_config(&text.replace("templates_dir = \"templates\"", "templates_dir = \"no-such-dir\""));
    let out = env.run(&["config", "check"], NOW).code(78);
    assert!(
        out.stderr.contains("templates_dir: ") && out.stderr.contains("no-such-dir is not a folder"),
        "{}",
        out.stderr
    );
    env.write_config(&text);
    // The job that renders it says the same, once, and exits 78, sending no
    // digest: an entry is alerted once for all its recipients, so one sent
    // would leave the others without it for a whole re-arm period.
    for (name, email) in [("Ops", "ops@example.com"), ("Night", "night@example.com")] {
        let contact = env.contact(name, email);
        env.recipient(contact, None);
    }
    let french = env.contact("Jean", "jean@example.com");
    env.db()
        .execute("UPDATE contacts SET locale = 'fr' WHERE id = ?1", [french])
        .unwrap();
    env.recipient(french, None);
    env.ticket("T-1", &[("Diagnostic", "2026-02-01T07:00:00Z")]);
    let out = env.run(&["check-delay-alerts"], NOW).code(78);
    assert_eq!(
        out.stderr.matches("`recipient.nickname` is undefined").count(),
        1,
        "{}",
        out.stderr
    );
    assert!(smtp.recipients().is_empty(), "no digest marks the entry alerted");
    // Once the template is fixed, every digest goes: nothing was lost.
    std::fs::remove_file(templates.join("delay_alert.subject.txt")).unwrap();
    env.run(&["check-delay-alerts"], "2026-03-10T07:05:00Z").success();
    assert_eq!(
        smtp.recipients(),
        ["jean@example.com", "night@example.com", "ops@example.com"]
    );
}

#[test]
fn file_transport_writes_one_eml_per_message() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rappel.toml"),
        "[email]\nfrom = \"a@example.com\"\ntransport = \"file\"\noutbox_dir = \"out\"\n",
    )
    .unwrap();
    rappel_in(dir.path(), &["db", "migrate"]).success();
    rappel_in(dir.path(), &["--now", NOW, "test-email", "--to", "x@example.com"]).success();
    rappel_in(
        dir.path(),
        &["--now", "2026-03-10T08:00:00Z", "test-email", "--to", "x@example.com"],
    )
    .success();
    let files: Vec<_> = std::fs::read_dir(dir.path().join("out")).unwrap().flatten().collect();
    assert_eq!(files.len(), 2);
}

#[test]
fn a_reminder_slot_late_in_the_evening_is_warned_about() {
    let smtp = SmtpServer::start();
    let env = TestEnv::new(smtp.port, "[reminders]\nweekly_digest_at = \"sun 23:30\"\n");
    let out = env.run(&["config", "check"], NOW).success();
    assert!(
        out.stderr.contains("reminders.weekly_digest_at is 23:30") && out.stderr.contains("midnight"),
        "{}",
        out.stderr
    );
}

/// `config check` finds what would fail later: a report query on a table
/// that does not exist, or that writes; every invalid address at once; a
/// pending report row whose recipients are not addresses.
#[test]
fn config_check_compiles_report_queries_and_names_every_bad_address() {
    let env = support::TestEnv::new(support::free_port(), "");
    let base = std::fs::read_to_string(env.config_path()).unwrap();
    env.write_config(&format!(
        "{base}\n[reports.definitions.ok]\nquery = \"SELECT reference FROM tickets\"\n\
         [reports.definitions.gone]\nquery = \"SELECT x FROM no_such_table\"\n\
         [reports.definitions.wipe]\nquery = \"DELETE FROM tickets\"\n"
    ));
    env.db()
        .execute(
            "INSERT INTO scheduled_reports (title, recipients, scheduled_at) VALUES ('W', 'ok@example.com, a@@b.com; nobody', '2026-03-10')",
            [],
        )
        .unwrap();
    let out = env.run(&["config", "check"], "2026-03-10T07:00:00Z").code(78);
    assert!(
        out.stderr
            .contains("reports.definitions.gone.query: no such table: no_such_table"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("reports.definitions.wipe.query: it does more than read"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("definitions.ok"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("scheduled_reports id 1: not an email address, will fail: \"a@@b.com\", \"nobody\""),
        "{}",
        out.stderr
    );
    env.write_config(&format!(
        "{base}\n[delay_alerts]\nrecipients = [\"a@@b.com\", \"ok@example.com\", \"nobody\"]\n"
    ));
    let out = env.run(&["config", "check"], "2026-03-10T07:00:00Z").code(78);
    assert!(
        out.stderr.contains("delay_alerts.recipients[0]") && out.stderr.contains("delay_alerts.recipients[2]"),
        "every one, not only the first: {}",
        out.stderr
    );
}

/// A job never creates a missing database: `database = "missing.db"` (a
/// typo, the wrong folder) is exit 74 naming the path and the fix, and no
/// empty file appears. Only `init`, `demo` and `db migrate` create one.
#[test]
fn a_job_never_creates_a_missing_database() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rappel.toml"),
        "database = \"missing.db\"\n[email]\nfrom = \"a@example.com\"\ntransport = \"file\"\n",
    )
    .unwrap();
    for job in [
        &["--now", NOW, "check-delay-alerts"][..],
        &["--now", NOW, "send-reminders"],
        &["--now", NOW, "deliver"],
        &["--now", NOW, "run-all"],
        &["log"],
        &["stats"],
        &["db", "status"],
    ] {
        let out = rappel_in(dir.path(), job);
        assert_eq!(out.code, 74, "{job:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("missing.db") && out.stderr.contains("rappel db migrate"),
            "{job:?}: {}",
            out.stderr
        );
        assert!(!dir.path().join("missing.db").exists(), "{job:?} created it");
    }
    rappel_in(dir.path(), &["db", "migrate"]).success();
    assert!(dir.path().join("missing.db").exists());
    rappel_in(dir.path(), &["--now", NOW, "send-reminders"]).success();
}

/// Commands that send nothing need no secret (the documented systemd set-up
/// reads them from `$CREDENTIALS_DIRECTORY`, which a shell lacks): `log`,
/// `stats`, `db`, `purge` and dry runs work without them. A job needing a
/// missing one stops that transport only; `config check` names each.
#[test]
fn commands_that_send_nothing_need_no_secret() {
    let smtp = SmtpServer::start();
    let twilio = support::twilio::FakeTwilio::start();
    let hr = support::hr::FakeHr::start();
    let env = support::TestEnv::new(smtp.port, "");
    let base = std::fs::read_to_string(env.config_path()).unwrap();
    let base = base.replace(
        "timeout_s = 2\n",
        "timeout_s = 2\nusername = \"bob\"\npassword_env = \"RAPPEL_TEST_UNSET_SMTP_PASSWORD\"\n",
    );
    env.write_config(&format!(
        "{base}\n{}\n[attendance.services.rh]\nbase_url = \"{}\"\nattendance_endpoint = \"/att\"\n\
         token_file = \"$CREDENTIALS_DIRECTORY/hr-token\"\ntimeout_s = 1\n",
        twilio.config(env.dir.path()),
        hr.base_url()
    ));
    env.db()
        .execute_batch(
            "INSERT INTO contacts (id, name, email, phone, whatsapp_enabled) VALUES (1, 'Awa', 'awa@example.com', '+33612345678', 1);
             INSERT INTO loans (contact_id, item, lent_at, due_at) VALUES (1, 'X', '2026-03-10T08:00:00Z', '2026-03-20T17:00:00Z');",
        )
        .unwrap();
    let now = "2026-03-10T08:05:00Z";
    for args in [
        &["log"][..],
        &["stats"],
        &["db", "status"],
        &["db", "migrate"],
        &["purge", "--older-than", "90d"],
        &["send-reminders", "--dry-run"],
        &["run-all", "--dry-run"],
    ] {
        let out = env.run(args, now);
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
    }
    let check = env.run(&["config", "check"], now).code(78);
    for key in ["email.smtp.password_env", "attendance.services.rh.token_file"] {
        assert!(check.stderr.contains(key), "{key}: {}", check.stderr);
    }
    // WhatsApp has its token: the WhatsApp message goes, the email waits.
    let out = env.run(&["run-all"], now).code(78);
    assert_eq!(twilio.accepted_to(), ["whatsapp:+33612345678"], "{}", out.stderr);
    assert!(smtp.mails().is_empty());
    assert!(
        out.stderr
            .contains("1 email message(s) are due and wait: email.smtp.password_env"),
        "{}",
        out.stderr
    );
    let waiting: String = env
        .db()
        .query_row(
            "SELECT status FROM rappel_deliveries WHERE channel = 'email'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(waiting, "pending");
}

#[allow(
    clippy::disallowed_methods,
    reason = "the host's own database, written before rappel"
)]
/// A host `tickets` table made without `closed_at`: one clear line, from
/// `db status` before anything is migrated and from the job that reads it;
/// migrating still works, and the jobs that do not read it run.
#[test]
fn a_host_table_that_clashes_is_one_line_and_stops_only_its_jobs() {
    let smtp = SmtpServer::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rappel.toml"),
        format!(
            "database = \"app.db\"\ntimezone = \"Europe/Paris\"\n[email]\nfrom = \"a@example.com\"\n\
             [email.smtp]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"none\"\n",
            smtp.port
        ),
    )
    .unwrap();
    {
        let db = rusqlite::Connection::open(dir.path().join("app.db")).unwrap();
        db.execute_batch(
            "CREATE TABLE tickets (id INTEGER PRIMARY KEY, reference TEXT, device TEXT, customer TEXT, created_at TEXT);
             CREATE TABLE contacts (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, phone TEXT, locale TEXT,
                 timezone TEXT, email_enabled INTEGER NOT NULL DEFAULT 1, whatsapp_enabled INTEGER NOT NULL DEFAULT 0,
                 sms_enabled INTEGER NOT NULL DEFAULT 0, muted_kinds TEXT NOT NULL DEFAULT '');",
        )
        .unwrap();
    }
    let line = "table tickets exists without column closed_at (needed by check-delay-alerts)";
    let status = rappel_in(dir.path(), &["db", "status"]);
    assert_eq!(status.code, 74, "{}{}", status.stdout, status.stderr);
    assert!(status.stdout.contains(line), "{}", status.stdout);
    assert!(status.stdout.contains("WAL"), "{}", status.stdout);
    let migrate = rappel_in(dir.path(), &["db", "migrate"]).success();
    assert!(migrate.stderr.contains(line), "{}", migrate.stderr);
    assert!(
        migrate.stderr.lines().count() <= 2,
        "one clear line, not SQL: {}",
        migrate.stderr
    );
    let alerts = rappel_in(dir.path(), &["--now", NOW, "check-delay-alerts"]);
    assert_eq!(alerts.code, 74, "{}", alerts.stderr);
    assert!(alerts.stderr.contains(line), "{}", alerts.stderr);
    {
        let db = rusqlite::Connection::open(dir.path().join("app.db")).unwrap();
        db.execute_batch(
            "INSERT INTO contacts (id, name, email) VALUES (1, 'Awa', 'awa@example.com');
             INSERT INTO loans (contact_id, item, lent_at, due_at) VALUES (1, 'X', '2026-03-10T07:00:00Z', '2026-03-20T17:00:00Z');",
        )
        .unwrap();
    }
    rappel_in(dir.path(), &["--now", NOW, "send-reminders"]).success();
    assert_eq!(smtp.recipients(), ["awa@example.com"], "reminders do not read tickets");
}
