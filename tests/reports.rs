//! send-reports end to end: the real binary, a real SMTP server, real files.

use crate::support;

use support::{Mode, SmtpServer, TestEnv, free_port};

const NOW: &str = "2026-03-10T07:00:00Z";

const REPORTS: &str = r#"
[reports]
attachments_dir = "reports"
[reports.definitions.open_tickets]
query = "SELECT reference, customer FROM tickets WHERE closed_at IS NULL ORDER BY reference"
[reports.definitions.broken]
query = "SELECT nope FROM no_such_table"
[reports.definitions.writes]
query = "DELETE FROM tickets"
[reports.definitions.kept]
query = "SELECT 1 AS one"
keep_attachment = true
[reports.definitions.empty]
query = "SELECT reference FROM tickets WHERE 0"
skip_if_empty = true
"#;

fn env(port: u16) -> TestEnv {
    let env = TestEnv::new(port, REPORTS);
    std::fs::create_dir_all(env.dir.path().join("reports")).unwrap();
    env
}

fn pdf(env: &TestEnv, name: &str, len: usize) -> Vec<u8> {
    let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(env.dir.path().join("reports").join(name), &bytes).unwrap();
    bytes
}

#[test]
fn stored_pdf_is_attached_byte_identical_to_each_recipient() {
    let smtp = SmtpServer::start();
    let env = env(smtp.port);
    let bytes = pdf(&env, "weekly.pdf", 300_000);
    let id = env.report(
        "Weekly",
        "a@example.com; B@example.com , a@example.com",
        "2026-03-10 06:30:00",
        Some("weekly.pdf"),
        None,
    );

    env.run(&["send-reports"], NOW).success();
    assert_eq!(
        smtp.recipients(),
        vec!["B@example.com", "a@example.com"],
        "one each, duplicates merged"
    );
    for to in ["a@example.com", "B@example.com"] {
        let mail = smtp.mail_to(to);
        assert_eq!(
            mail.attachment("weekly.pdf").as_deref(),
            Some(bytes.as_slice()),
            "byte-identical"
        );
        assert!(mail.data.contains("Content-Type: application/pdf"), "PDF type");
        assert!(
            mail.header("Subject").unwrap().starts_with("Weekly (2026-03-10 07:30)"),
            "in the config zone"
        );
    }
    let (status, attempts, error) = env.report_status(id);
    assert_eq!((status.as_str(), attempts, error), ("sent", 1, None));
    env.run(&["send-reports"], "2026-03-10T08:00:00Z").success();
    assert_eq!(smtp.mails().len(), 2, "never sent twice");
}

#[test]
fn missing_file_falls_back_to_the_definition() {
    let smtp = SmtpServer::start();
    let env = env(smtp.port);
    env.ticket("R-1", &[("Diagnostic", "2026-03-01T00:00:00Z")]);
    env.ticket("R-2", &[("Diagnostic", "2026-03-01T00:00:00Z")]);
    env.db()
        .execute(
            "UPDATE tickets SET customer = 'Marie, \"la\" Ndongô <b>' WHERE reference = 'R-1'",
            [],
        )
        .unwrap();
    let id = env.report(
        "Open tickets",
        "ops@example.com",
        NOW,
        Some("gone.pdf"),
        Some("open_tickets"),
    );

    env.run(&["send-reports"], NOW).success();
    let mail = smtp.mail_to("ops@example.com");
    let csv = String::from_utf8(mail.attachment("open_tickets-2026-03-10.csv").expect("a CSV")).unwrap();
    assert_eq!(
        csv,
        "\u{feff}reference,customer\r\nR-1,\"Marie, \"\"la\"\" Ndongô <b>\"\r\nR-2,Customer\r\n"
    );
    let html = mail.part("text/html").unwrap();
    assert!(
        html.contains("<td>Marie, &quot;la&quot; Ndongô &lt;b&gt;</td>"),
        "escaped table: {html}"
    );
    assert_eq!(env.report_status(id).0, "sent");
}

#[test]
fn reports_without_content_fail_with_a_reason_and_send_nothing() {
    let smtp = SmtpServer::start();
    let env = env(smtp.port);
    let missing = env.report("Missing", "a@example.com", NOW, Some("nope.pdf"), None);
    let broken = env.report("Broken", "a@example.com", NOW, None, Some("broken"));
    let writes = env.report("Writes", "a@example.com", NOW, None, Some("writes"));
    let escape = env.report("Escape", "a@example.com", NOW, Some("../rappel.toml"), None);
    let undefined = env.report("Undefined", "a@example.com", NOW, None, Some("no_such_definition"));
    env.ticket("R-1", &[("Diagnostic", "2026-03-01T00:00:00Z")]);

    let out = env.run(&["send-reports"], NOW).code(65);
    assert!(smtp.mails().is_empty(), "never sent without content");
    for (id, reason) in [
        (missing, "\"nope.pdf\" not found"),
        (broken, "the query failed"),
        (writes, "report queries must only read"),
        (escape, "outside attachments_dir"),
        (undefined, "not defined under [reports.definitions]"),
    ] {
        let (status, _, error) = env.report_status(id);
        assert_eq!(status, "failed", "{reason}");
        assert!(error.as_deref().unwrap_or("").contains(reason), "{reason}: {error:?}");
        assert!(
            out.stderr.contains(&format!("scheduled_reports id {id}")),
            "{}",
            out.stderr
        );
    }
    let tickets: i64 = env
        .db()
        .query_row("SELECT count(*) FROM tickets", [], |r| r.get(0))
        .unwrap();
    assert_eq!(tickets, 1, "the writing query never ran");
}

#[test]
fn future_rows_wait_and_empty_reports_can_be_skipped() {
    let smtp = SmtpServer::start();
    let env = env(smtp.port);
    pdf(&env, "x.pdf", 10);
    let future = env.report("Later", "a@example.com", "2026-03-10T08:00:00Z", Some("x.pdf"), None);
    let empty = env.report("Empty", "a@example.com", NOW, None, Some("empty"));
    env.run(&["send-reports"], NOW).success();
    assert!(smtp.mails().is_empty());
    assert_eq!(env.report_status(future).0, "pending");
    let (status, _, note) = env.report_status(empty);
    assert_eq!(status, "sent");
    assert!(note.unwrap().contains("no rows"));
    env.run(&["send-reports"], "2026-03-10T08:00:00Z").success();
    assert_eq!(smtp.recipients(), vec!["a@example.com"]);
}

#[test]
fn an_invalid_address_fails_only_itself() {
    let smtp = SmtpServer::start();
    let env = env(smtp.port);
    pdf(&env, "x.pdf", 10);
    let id = env.report(
        "R",
        "good@example.com, not an address; other@example.com",
        NOW,
        Some("x.pdf"),
        None,
    );
    env.run(&["send-reports"], NOW).code(65);
    assert_eq!(smtp.recipients(), vec!["good@example.com", "other@example.com"]);
    let (status, _, error) = env.report_status(id);
    assert_eq!(status, "failed");
    assert!(
        error.unwrap().starts_with("not an address: invalid recipient"),
        "names the address"
    );
}

#[test]
fn smtp_down_then_back_serves_each_recipient_once() {
    let port = free_port();
    let env = env(port);
    pdf(&env, "x.pdf", 10);
    let id = env.report("R", "a@example.com, b@example.com", NOW, Some("x.pdf"), None);
    env.run(&["send-reports"], NOW).code(75);
    let (status, attempts, _) = env.report_status(id);
    assert_eq!(
        (status.as_str(), attempts),
        ("pending", 1),
        "pending while deliveries retry"
    );

    let smtp = SmtpServer::start_on(port);
    smtp.set_mode(Mode::RejectRcpt("b@".into()));
    env.run(&["send-reports"], "2026-03-10T07:10:00Z").code(65);
    assert_eq!(smtp.recipients(), vec!["a@example.com"]);
    let (status, attempts, error) = env.report_status(id);
    assert_eq!((status.as_str(), attempts), ("failed", 2));
    assert!(
        error.unwrap().starts_with("b@example.com: SMTP server refused"),
        "names b and why"
    );

    // The operator fixes the address problem and sets the row back to pending:
    // only the failed recipient is tried again.
    smtp.set_mode(Mode::Accept);
    env.db()
        .execute("UPDATE scheduled_reports SET status = 'pending' WHERE id = ?1", [id])
        .unwrap();
    env.run(&["send-reports"], "2026-03-10T08:00:00Z").success();
    assert_eq!(
        smtp.recipients(),
        vec!["a@example.com", "b@example.com"],
        "a is never sent twice"
    );
    assert_eq!(env.report_status(id).0, "sent");
}

#[test]
fn force_retries_an_exhausted_row_once() {
    let smtp = SmtpServer::start();
    let env = env(smtp.port);
    pdf(&env, "x.pdf", 10);
    let id = env.report("R", "a@example.com", NOW, Some("x.pdf"), None);
    smtp.set_mode(Mode::Defer);
    env.run(&["send-reports"], NOW).code(75);
    env.run(&["deliver"], "2026-03-10T09:00:00Z").code(75);
    env.run(&["deliver"], "2026-03-10T12:00:00Z").code(75);
    assert_eq!(env.report_status(id).0, "failed", "max_attempts = 3");
    env.run(&["send-reports"], "2026-03-11T12:00:00Z").success();
    assert!(smtp.mails().is_empty(), "without --force an exhausted row waits");

    smtp.set_mode(Mode::Accept);
    env.run(&["send-reports", "--force"], "2026-03-11T12:00:00Z").success();
    assert_eq!(smtp.recipients(), vec!["a@example.com"]);
    assert_eq!(env.report_status(id).0, "sent");
    env.run(&["send-reports", "--force"], "2026-03-11T12:05:00Z").success();
    assert_eq!(smtp.mails().len(), 1, "--force never re-sends a sent report");
}

#[test]
fn recurrence_survives_a_dst_change_and_a_three_day_gap() {
    let smtp = SmtpServer::start();
    let env = env(smtp.port);
    pdf(&env, "x.pdf", 10);
    let db = env.db();
    // Daily at 02:30 in Paris; the night of 29 March 2026 has no 02:30.
    db.execute(
        "INSERT INTO scheduled_reports (title, recipients, scheduled_at, attachment_path, report, recurrence, timezone)
         VALUES ('Nightly', 'a@example.com', '2026-03-28T01:30:00Z', 'x.pdf', 'kept', '30 2 * * *', 'Europe/Paris')",
        [],
    )
    .unwrap();
    let next = |after: i64| -> (i64, String) {
        env.db()
            .query_row(
                "SELECT id, scheduled_at FROM scheduled_reports WHERE id > ?1 ORDER BY id LIMIT 1",
                [after],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
    };
    env.run(&["send-reports"], "2026-03-28T01:31:00Z").success();
    let (second, at) = next(1);
    assert_eq!(
        at, "2026-03-29T01:00:00Z",
        "02:30 does not exist that night: 03:00 local, once"
    );
    env.run(&["send-reports"], "2026-03-29T01:00:30Z").success();
    let (third, at) = next(second);
    assert_eq!(at, "2026-03-30T00:30:00Z", "back to 02:30, now summer time");

    // The machine is off for three days: one catch-up mailing, then the schedule resumes.
    env.run(&["send-reports"], "2026-04-02T09:00:00Z").success();
    assert_eq!(smtp.mails().len(), 3);
    let subjects: Vec<String> = smtp.mails().iter().map(|m| m.subject()).collect();
    assert_eq!(
        subjects[1..],
        ["Nightly (2026-03-29 03:00)", "Nightly (2026-04-02 11:00)"],
        "on time: its slot; the catch-up: when it was made, not the oldest missed slot"
    );
    assert!(
        smtp.mails().iter().all(|m| m.attachment("x.pdf").is_some()),
        "keep_attachment carries the file on"
    );
    let (fourth, at) = next(third);
    assert_eq!(
        at, "2026-04-03T00:30:00Z",
        "the next one after now, not the missed ones"
    );
    env.run(&["send-reports"], "2026-04-02T09:05:00Z").success();
    assert_eq!(smtp.mails().len(), 3);
    let later: i64 = env
        .db()
        .query_row("SELECT count(*) FROM scheduled_reports WHERE id > ?1", [fourth], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(later, 0, "one occurrence at a time");
}

#[test]
fn dry_run_lists_and_writes_nothing() {
    let smtp = SmtpServer::start();
    let env = env(smtp.port);
    pdf(&env, "x.pdf", 10);
    env.report("Stored", "a@example.com", NOW, Some("x.pdf"), None);
    env.report("Generated", "b@example.com", NOW, None, Some("open_tickets"));
    env.report("Missing", "c@example.com", NOW, None, None);
    let before = env.dump();
    let out = env.run(&["send-reports", "--dry-run"], NOW).code(65);
    assert!(
        out.stdout
            .contains("would send report via email to a@example.com: Stored"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("stored file "), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("generated from [reports.definitions.open_tickets] (0 rows, CSV)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("would fail scheduled_reports id 3 (Missing): no attachment_path and no report definition"),
        "{}",
        out.stdout
    );
    // In French, the detail lines are French as the mail is.
    let config = std::fs::read_to_string(env.config_path()).unwrap();
    env.write_config(&config.replace("locale = \"en\"", "locale = \"fr\""));
    let out = env.run(&["send-reports", "--dry-run"], NOW).code(65);
    assert!(out.stdout.contains("    Stored : fichier existant "), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("    Generated : généré par [reports.definitions.open_tickets] (0 lignes, CSV)"),
        "{}",
        out.stdout
    );
    assert_eq!(env.dump(), before);
    assert!(
        !env.dir.path().join("rappel-files").exists(),
        "no generated file either"
    );
    assert!(smtp.mails().is_empty());
}

#[test]
fn overlapping_runs_serve_each_recipient_once() {
    let smtp = SmtpServer::start();
    let env = env(smtp.port);
    pdf(&env, "x.pdf", 50_000);
    let recipients: Vec<String> = (0..8).map(|i| format!("r{i}@example.com")).collect();
    for i in 0..5 {
        env.report(&format!("R{i}"), &recipients.join(","), NOW, Some("x.pdf"), None);
    }
    env.run_concurrently(4, &["send-reports"], &["deliver"], NOW);
    env.run(&["send-reports"], NOW).success();
    assert_eq!(smtp.mails().len(), 40, "5 reports x 8 recipients, each once");
    let sent: i64 = env
        .db()
        .query_row(
            "SELECT count(*) FROM scheduled_reports WHERE status = 'sent'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(sent, 5);
}

#[test]
fn a_large_attachment_reaches_every_recipient_intact() {
    let smtp = SmtpServer::start();
    let env = env(smtp.port);
    // Over the size sent in place from one shared body: each recipient's
    // headers are written in front of it in turn.
    let bytes = pdf(&env, "big.pdf", 3 * 1024 * 1024);
    let recipients = ["a@example.com", "a.much.longer.address@example.com", "b@example.com"];
    env.report("Big", &recipients.join(","), NOW, Some("big.pdf"), None);
    env.run(&["send-reports"], NOW).success();
    for to in recipients {
        let mail = smtp.mail_to(to);
        assert_eq!(mail.header("To").as_deref(), Some(to), "its own headers");
        assert_eq!(
            mail.data.matches("\r\nTo: ").count() + usize::from(mail.data.starts_with("To: ")),
            1,
            "one To header"
        );
        assert_eq!(
            mail.attachment("big.pdf").as_deref(),
            Some(bytes.as_slice()),
            "{to}: byte-identical"
        );
    }
}

#[test]
fn the_next_occurrence_drops_the_stored_file_unless_kept() {
    let smtp = SmtpServer::start();
    let env = env(smtp.port);
    pdf(&env, "x.pdf", 10);
    env.db()
        .execute(
            "INSERT INTO scheduled_reports (title, recipients, scheduled_at, attachment_path, report, recurrence)
             VALUES ('Weekly', 'a@example.com', ?1, 'x.pdf', 'open_tickets', '0 8 * * 1')",
            [NOW],
        )
        .unwrap();
    env.run(&["send-reports"], NOW).success();
    let (at, attachment, report): (String, Option<String>, Option<String>) = env
        .db()
        .query_row(
            "SELECT scheduled_at, attachment_path, report FROM scheduled_reports WHERE id = 2",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    // Next Monday 08:00 in Paris (the config zone), winter time.
    assert_eq!(at, "2026-03-16T07:00:00Z");
    assert_eq!(attachment, None, "a new occurrence needs a new file, or is generated");
    assert_eq!(report.as_deref(), Some("open_tickets"));
}

/// README "Retrying by hand": fix the address, set the row back to pending.
/// The row follows its current recipients: `sent` once each got it, the
/// address that left the list no longer named nor failing it.
#[test]
fn a_report_reset_by_hand_ends_sent_once_every_current_recipient_got_it() {
    let smtp = SmtpServer::start();
    let env = env(smtp.port);
    let id = env.report(
        "Weekly",
        "shop@example.com, boss@@example.com, other@example.com",
        "2026-03-10 06:30:00",
        None,
        Some("open_tickets"),
    );
    env.run(&["send-reports"], NOW).code(65);
    let (status, _, error) = env.report_status(id);
    assert_eq!(status, "failed");
    assert!(error.unwrap().contains("boss@@example.com"));
    env.db()
        .execute(
            "UPDATE scheduled_reports SET recipients = 'shop@example.com, boss@example.com, other@@example.com',
                    status = 'pending' WHERE id = ?1",
            [id],
        )
        .unwrap();
    env.run(&["send-reports"], "2026-03-10T08:00:00Z").code(65);
    let (status, _, error) = env.report_status(id);
    let error = error.unwrap_or_default();
    assert_eq!(status, "failed", "other@@example.com, still listed, still fails");
    assert!(
        error.contains("other@@example.com") && !error.contains("boss@@example.com"),
        "{error}"
    );
    env.db()
        .execute(
            "UPDATE scheduled_reports SET recipients = 'shop@example.com, boss@example.com', status = 'pending'
             WHERE id = ?1",
            [id],
        )
        .unwrap();
    env.run(&["send-reports"], "2026-03-10T09:00:00Z").success();
    let (status, sent_at, error): (String, Option<String>, Option<String>) = env
        .db()
        .query_row(
            "SELECT status, sent_at, last_error FROM scheduled_reports WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (status.as_str(), sent_at.as_deref(), error),
        ("sent", Some("2026-03-10T09:00:00Z"), None)
    );
    assert_eq!(
        smtp.recipients(),
        ["boss@example.com", "other@example.com", "shop@example.com"],
        "each once, never again to those already served"
    );
}

/// A recipients list as people write it: quoted names with commas, display
/// names, `;` and `,` mixed, the same person twice in two spellings.
#[test]
fn recipients_with_quoted_names_and_display_names() {
    let smtp = SmtpServer::start();
    let env = env(smtp.port);
    let id = env.report(
        "Weekly",
        "\"Dupont, Jean\" <jean@example.com>; Boss <BOSS@Example.com>, boss@example.com ; \"a;b\" <ab@example.com>",
        "2026-03-10 06:30:00",
        None,
        Some("open_tickets"),
    );
    env.run(&["send-reports"], NOW).success();
    assert_eq!(
        smtp.recipients(),
        ["BOSS@example.com", "ab@example.com", "jean@example.com"]
    );
    assert_eq!(env.report_status(id).0, "sent");
}

/// A stored text file with bare LF line endings reaches the recipient byte
/// for byte, and no bare LF goes inside DATA (Exchange refuses it with
/// 550 5.6.11, qmail with 451).
#[test]
fn a_text_attachment_with_bare_lf_goes_intact_in_base64() {
    let smtp = SmtpServer::start();
    let env = env(smtp.port);
    let text = b"reference,customer\nR-1,Awa\nR-2,Paul\n".repeat(50);
    std::fs::write(env.dir.path().join("reports").join("open.csv"), &text).unwrap();
    env.report("Open", "a@example.com", "2026-03-10 06:30:00", Some("open.csv"), None);
    env.run(&["send-reports"], NOW).success();
    let mail = smtp.mail_to("a@example.com");
    assert_eq!(mail.attachment("open.csv").as_deref(), Some(&text[..]));
    let bytes = mail.data.as_bytes();
    let bare = bytes
        .iter()
        .enumerate()
        .filter(|(i, b)| **b == b'\n' && (*i == 0 || bytes[i - 1] != b'\r'))
        .count();
    assert_eq!(bare, 0, "no bare LF in the message");
    assert!(mail.data.contains("Content-Transfer-Encoding: base64"));
}

/// OWASP CSV injection: text cells a spreadsheet would run as formulas are
/// neutralised in the generated CSV; numbers are not touched.
#[test]
fn generated_csv_cells_never_open_as_formulas() {
    let smtp = SmtpServer::start();
    let env = TestEnv::new(
        smtp.port,
        "[reports.definitions.odd]\nquery = \"SELECT customer, device, -2 AS n FROM tickets ORDER BY id\"\n",
    );
    env.db()
        .execute_batch(
            "INSERT INTO tickets (reference, device, customer, created_at) VALUES
               ('R-1', 'Phone', '=HYPERLINK(\"http://attacker.invalid/\",\"x\")', '2026-01-01'),
               ('R-2', '+1+1', '@SUM(1+1)', '2026-01-01'),
               ('R-3', '-2+3', 'Paul', '2026-01-01');",
        )
        .unwrap();
    env.report("Odd", "a@example.com", "2026-03-10 06:30:00", None, Some("odd"));
    env.run(&["send-reports"], NOW).success();
    let mail = smtp.mail_to("a@example.com");
    let csv = String::from_utf8(mail.attachment("odd-2026-03-10.csv").unwrap()).unwrap();
    let lines: Vec<&str> = csv.trim_start_matches('\u{feff}').lines().collect();
    assert_eq!(
        lines,
        [
            "customer,device,n",
            "\"'=HYPERLINK(\"\"http://attacker.invalid/\"\",\"\"x\"\")\",Phone,-2",
            "'@SUM(1+1),'+1+1,-2",
            "Paul,'-2+3,-2"
        ]
    );
    assert!(
        mail.decoded().contains("=HYPERLINK"),
        "the email's own table shows the data as it is"
    );
}

/// An operator's query is bounded: past `query_timeout_s` it is stopped,
/// past `query_max_rows` it fails, and anything but reading (ATTACH, PRAGMA,
/// SAVEPOINT, load_extension) is refused like a write. Each fails its own
/// report with the reason; the others go.
#[test]
fn report_queries_are_bounded_and_may_only_read() {
    let smtp = SmtpServer::start();
    let env = TestEnv::new(
        smtp.port,
        r#"[reports]
query_timeout_s = 1
query_max_rows = 1000
[reports.definitions.slow]
query = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n"
[reports.definitions.many]
query = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000) SELECT i FROM n"
[reports.definitions.attach]
query = "ATTACH DATABASE '/tmp/x.db' AS x"
[reports.definitions.pragma]
query = "PRAGMA query_only = 0"
[reports.definitions.savepoint]
query = "SAVEPOINT s"
[reports.definitions.extension]
query = "SELECT load_extension('/tmp/evil.so')"
[reports.definitions.huge]
query = "SELECT printf('%.*c', 900000000, 'x') AS big"
[reports.definitions.tablefn]
query = "SELECT * FROM pragma_table_info('tickets')"
[reports.definitions.fine]
query = "SELECT 1 AS one"
"#,
    );
    let names = [
        "slow",
        "many",
        "attach",
        "pragma",
        "savepoint",
        "extension",
        "huge",
        "tablefn",
        "fine",
    ];
    for name in names {
        env.report(
            name,
            &format!("{name}@example.com"),
            "2026-03-10 06:00:00",
            None,
            Some(name),
        );
    }
    let started = std::time::Instant::now();
    let out = env.run(&["send-reports"], NOW).code(65);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(smtp.recipients(), ["fine@example.com"], "{}", out.stderr);
    let errors: Vec<(String, String)> = {
        let db = env.db();
        let mut stmt = db
            .prepare(
                "SELECT title, coalesce(last_error, '') FROM scheduled_reports WHERE status = 'failed' ORDER BY id",
            )
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let reason = |name: &str| {
        errors
            .iter()
            .find(|(t, _)| t == name)
            .map(|(_, e)| e.clone())
            .unwrap_or_default()
    };
    assert!(reason("slow").contains("query_timeout_s (1 s)"), "{errors:?}");
    assert!(reason("many").contains("query_max_rows (1000)"), "{errors:?}");
    for name in ["attach", "pragma", "savepoint", "extension", "tablefn"] {
        assert!(reason(name).contains("must only read"), "{name}: {errors:?}");
    }
    assert!(reason("huge").contains("longer than 64 MB"), "{errors:?}");
    let check = env.run(&["config", "check"], NOW).code(78);
    for name in ["attach", "pragma", "savepoint", "extension", "tablefn", "huge"] {
        assert!(
            check.stderr.contains(&format!("reports.definitions.{name}.query")),
            "{name}: {}",
            check.stderr
        );
    }
}

/// The summary counts each report once, by how its row ended, before the
/// messages (one per address): one report to a good and a bad address is
/// `1 report(s): 0 sent, 1 failed`, whose messages were 1 sent, 1 failed.
#[test]
fn the_summary_counts_a_report_once() {
    let smtp = SmtpServer::start();
    let env = env(smtp.port);
    pdf(&env, "x.pdf", 10);
    let mixed = env.report("Mixed", "a@example.com; not-an-address", NOW, Some("x.pdf"), None);
    env.report("Fine", "b@example.com, c@example.com", NOW, Some("x.pdf"), None);
    let out = env.run(&["send-reports", "--dry-run"], NOW).code(65);
    assert!(
        out.stdout.contains(
            "send-reports (dry run): 2 report(s); messages: 3 planned, 0 sent, 1 failed, 0 skipped, 0 retrying"
        ),
        "{}",
        out.stdout
    );
    let out = env.run(&["--json", "send-reports"], NOW).code(65);
    let summary: serde_json::Value = serde_json::from_str(out.stdout.trim()).expect("one JSON object");
    assert_eq!(
        summary["reports"],
        serde_json::json!({"reports": 2, "sent": 1, "failed": 1, "pending": 0}),
        "{summary}"
    );
    assert_eq!(
        (summary["planned"].as_u64(), summary["sent"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(summary["failed"], 1);
    assert_eq!(env.report_status(mixed).0, "failed");

    // A report whose only address is deferred is pending, its message retrying.
    let later = "2026-03-10T07:30:00Z";
    env.report("Deferred", "d@example.com", later, Some("x.pdf"), None);
    smtp.set_mode(Mode::Defer);
    let out = env.run(&["send-reports"], later).code(75);
    assert!(
        out.stdout.contains(
            "send-reports: 1 report(s): 0 sent, 0 failed, 1 pending; messages: 1 planned, 0 sent, 0 failed, 0 skipped, 1 retrying"
        ),
        "{}",
        out.stdout
    );
    // Its retry, sent by the next run, is the same report, now sent.
    smtp.set_mode(Mode::Accept);
    let out = env.run(&["send-reports"], "2026-03-10T09:00:00Z").success();
    assert!(
        out.stdout
            .contains("send-reports: 1 report(s): 1 sent, 0 failed, 0 pending; messages: 0 planned, 1 sent"),
        "{}",
        out.stdout
    );
}

/// A recurrence that is not a cron expression: the occurrence due is sent,
/// but the run says, under -q too, that no next one can be made (exit 65),
/// the row keeps why, and `config check` warns of it beforehand.
#[test]
fn a_recurrence_that_cannot_be_read_is_loud() {
    let smtp = SmtpServer::start();
    let env = env(smtp.port);
    pdf(&env, "x.pdf", 10);
    let id = env.report("Daily", "a@example.com", NOW, Some("x.pdf"), None);
    env.db()
        .execute(
            "UPDATE scheduled_reports SET recurrence = '61 99 * * *' WHERE id = ?1",
            [id],
        )
        .unwrap();
    // (The definitions this suite's config holds on purpose are errors: 78.)
    let out = env.run(&["config", "check"], NOW).code(78);
    assert!(
        out.stderr.contains(&format!("scheduled_reports id {id}: recurrence: ")),
        "{}",
        out.stderr
    );
    let out = env.run(&["-q", "send-reports"], NOW).code(65);
    assert!(
        out.stderr
            .contains("no next one is made until the row's recurrence is fixed"),
        "{}",
        out.stderr
    );
    assert_eq!(smtp.mails().len(), 1, "the occurrence due is sent");
    let (status, _, error) = env.report_status(id);
    assert_eq!(status, "sent");
    assert!(error.is_some_and(|e| e.contains("no next occurrence")));
    let rows: i64 = env
        .db()
        .query_row("SELECT count(*) FROM scheduled_reports", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 1, "no next occurrence made up");
}
