//! Hostile servers and hostile data: a server that trickles its replies, or
//! answers without end, or repeats our secrets; host rows with control
//! characters; files swapped behind rappel's back. Each is bounded, masked
//! or refused, and the run goes on.

use crate::support;

use std::io::Write;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use support::TestEnv;

/// An SMTP server that sends `220-please wait` every 300 ms and never
/// finishes its greeting: each read gets a byte well within any timeout.
fn trickling_smtp() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut out = stream;
                while out.write_all(b"220-please wait\r\n").is_ok() {
                    std::thread::sleep(Duration::from_millis(300));
                }
            });
        }
    });
    port
}

/// DESIGN §5: a send ends before its lease does. A server trickling its
/// greeting no longer holds a send past `lease_s` (another run would take
/// the row and send it too): the whole exchange has a deadline.
#[test]
fn a_trickling_server_cannot_hold_a_send_past_its_lease() {
    let port = trickling_smtp();
    let env = TestEnv::new(port, "");
    let config = std::fs::read_to_string(env.config_path())
        .unwrap()
        .replace("timeout_s = 2", "timeout_s = 1")
        .replace("lease_s = 10", "lease_s = 5");
    env.write_config(&config);
    let started = Instant::now();
    env.run(&["test-email", "--to", "someone@example.com"], "2026-03-10T07:00:00Z")
        .code(75);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "the send outlived its 5 s lease: {took:?}"
    );
    let (status, error): (String, String) = env
        .db()
        .query_row("SELECT status, last_error FROM rappel_deliveries", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(status, "pending", "recorded by this run, within its lease");
    assert!(error.contains("deadline"), "{error}");
}

/// Twilio's error answer repeats the request's credentials (the Basic
/// header, the token raw, JSON-escaped and percent-encoded): none of it is
/// kept or printed, by any command.
#[test]
fn a_provider_echoing_credentials_leaks_nothing() {
    use base64::Engine as _;
    let smtp = support::SmtpServer::start();
    let twilio = support::twilio::FakeTwilio::start();
    let env = TestEnv::new(smtp.port, "");
    let base = std::fs::read_to_string(env.config_path()).unwrap();
    env.write_config(&format!("{base}\n{}", twilio.config(env.dir.path())));
    // FakeTwilio's account and token (support/twilio.rs).
    let token = "s3cret-token";
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("ACtest:{token}"));
    let echo = format!(
        r#"{{"code": 20500, "message": "internal error for Basic {basic} token={} json=\"{}\" raw {token}"}}"#,
        "s3cret%2Dtoken".replace("%2D", "-"),
        token.replace('-', "\\u002d")
    );
    twilio.answer_next(500, &echo, &[]);
    env.db()
        .execute_batch(
            "INSERT INTO contacts (id, name, phone, email_enabled, whatsapp_enabled) VALUES (1, 'A', '+33612345678', 0, 1);
             INSERT INTO loans (contact_id, item, lent_at, due_at) VALUES (1, 'X', '2026-03-10T08:00:00Z', '2026-03-20T17:00:00Z');",
        )
        .unwrap();
    let now = "2026-03-10T08:05:00Z";
    let mut seen = String::new();
    for args in [
        &["--json", "send-reminders", "--kind", "loan_created"][..],
        &["--json", "log"],
        &["log"],
        &["--json", "stats"],
        &["stats"],
    ] {
        let out = env.run(args, now);
        seen.push_str(&out.stdout);
        seen.push_str(&out.stderr);
    }
    seen.push_str(&env.dump());
    assert!(seen.contains("internal error for Basic ***"), "{seen}");
    for leak in [token, &basic, "s3cret\\u002dtoken"] {
        assert!(!seen.contains(leak), "{leak:?} leaked:\n{seen}");
    }
}

/// An SMTP server whose refusal of AUTH repeats the AUTH PLAIN blob and the
/// password, whole and split over reply lines or by a tab: stored and
/// printed masked, whether it refuses for now (454) or for good (535, which
/// stops the run's email delivery with an error line of its own).
#[test]
fn an_smtp_server_echoing_the_auth_blob_leaks_nothing() {
    use base64::Engine as _;
    let password = "hunter2-pass";
    let blob = base64::engine::general_purpose::STANDARD.encode(format!("\0bob\0{password}"));
    for code in ["454", "535"] {
        let env = TestEnv::new(echo_server(code), "");
        std::fs::write(env.dir.path().join("smtp-password"), password).unwrap();
        let config = std::fs::read_to_string(env.config_path()).unwrap().replace(
            "timeout_s = 2",
            "timeout_s = 2\nusername = \"bob\"\npassword_file = \"smtp-password\"",
        );
        env.write_config(&config);
        env.report("Weekly", "boss@example.com", "2026-03-10 06:00:00", None, None);
        let mut seen = String::new();
        for args in [
            &["test-email", "--to", "a@example.com"][..],
            &["send-reports"],
            &["--json", "log"],
        ] {
            let out = env.run(args, "2026-03-10T07:00:00Z");
            seen.push_str(&out.stdout);
            seen.push_str(&out.stderr);
        }
        seen.push_str(&env.dump());
        assert!(seen.contains("failure for *** ***"), "{code}: {seen}");
        assert!(!seen.contains(password) && !seen.contains(&blob), "{code}: {seen}");
        // Split over lines or by a tab: masked whole all the same.
        assert!(
            !seen.contains(&blob[10..]) && !seen.contains(&password[5..]),
            "{code}: {seen}"
        );
    }
}

/// A server refusing AUTH with `code`, its reply repeating the AUTH PLAIN
/// blob and the password it holds, whole, then each split over two reply
/// lines and by a tab. Returns its port.
fn echo_server(code: &'static str) -> u16 {
    use base64::Engine as _;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut out = stream.try_clone().unwrap();
                let mut lines = std::io::BufReader::new(stream);
                let _ = out.write_all(b"220 echo.test ESMTP\r\n");
                let mut line = String::new();
                while std::io::BufRead::read_line(&mut lines, &mut line).unwrap_or(0) > 0 {
                    let reply = if line.starts_with("EHLO") {
                        "250-echo.test\r\n250 AUTH PLAIN\r\n".to_string()
                    } else if let Some(blob) = line.strip_prefix("AUTH PLAIN ") {
                        let decoded = base64::engine::general_purpose::STANDARD
                            .decode(blob.trim())
                            .unwrap_or_default();
                        let password = String::from_utf8_lossy(&decoded)
                            .rsplit('\0')
                            .next()
                            .unwrap_or("")
                            .to_string();
                        // Each line with its enhanced code (RFC 2034), as servers write them.
                        let enhanced = if code.starts_with('5') { "5.7.8" } else { "4.7.0" };
                        let (b1, b2) = blob.trim().split_at(10);
                        let (p1, p2) = password.split_at(5);
                        format!(
                            "{code}-{enhanced} failure for {} {password}\r\n{code}-{enhanced} {b1}\r\n{code} {enhanced} {b2} {p1}\t{p2}\r\n",
                            blob.trim()
                        )
                    } else {
                        "221 bye\r\n".to_string()
                    };
                    let _ = out.write_all(reply.as_bytes());
                    line.clear();
                }
            });
        }
    });
    port
}

/// A report's file swapped for a symbolic link to a file outside
/// `attachments_dir` after planning: checked when opened, never mailed.
#[cfg(unix)]
#[test]
fn an_attachment_swapped_for_a_link_after_planning_is_not_mailed() {
    let smtp = support::SmtpServer::start();
    let env = TestEnv::new(smtp.port, "[reports]\nattachments_dir = \"reports\"\n");
    let reports = env.dir.path().join("reports");
    std::fs::create_dir_all(&reports).unwrap();
    std::fs::write(reports.join("weekly.pdf"), "the weekly report").unwrap();
    let outside = env.dir.path().join("payroll.txt");
    std::fs::write(&outside, "TOP-SECRET payroll").unwrap();
    env.report(
        "Weekly",
        "boss@example.com",
        "2026-03-10 06:00:00",
        Some("weekly.pdf"),
        None,
    );
    smtp.set_mode(support::Mode::Defer);
    env.run(&["send-reports"], "2026-03-10T07:00:00Z").code(75);
    // Between planning and the retry, the file becomes a link out of the folder.
    std::fs::remove_file(reports.join("weekly.pdf")).unwrap();
    std::os::unix::fs::symlink(&outside, reports.join("weekly.pdf")).unwrap();
    smtp.set_mode(support::Mode::Accept);
    env.run(&["deliver"], "2026-03-10T08:00:00Z").code(65);
    assert!(smtp.mails().is_empty(), "nothing mailed");
    let error: String = env
        .db()
        .query_row("SELECT last_error FROM rappel_deliveries", [], |r| r.get(0))
        .unwrap();
    assert!(error.contains("symbolic link"), "{error}");
}

/// An HR token that cannot be a header (a pasted `é`, a newline in the
/// file) is a configuration error for its service: `config check` and the
/// job exit 78, no request is made, no attempt is spent, and commands that
/// send nothing still work.
#[test]
fn a_token_that_cannot_be_a_header_is_a_configuration_error() {
    let hr = support::hr::FakeHr::start();
    let env = TestEnv::builder().build();
    for token in ["zqx\u{e9}w", "zqx\nw"] {
        std::fs::write(env.dir.path().join("hr-token"), token).unwrap();
        let base = std::fs::read_to_string(env.config_path()).unwrap();
        let base = base.split("[attendance").next().unwrap().to_string();
        env.write_config(&format!(
            "{base}[attendance.services.rh]\nbase_url = \"{}\"\nattendance_endpoint = \"/att\"\ntoken_file = \"hr-token\"\ntimeout_s = 1\n",
            hr.base_url()
        ));
        env.db()
            .execute_batch(
                "INSERT OR IGNORE INTO terminals (id, serial) VALUES (1, 'T1');
                 INSERT OR IGNORE INTO attendance_logs (terminal_id, enroll_id, punched_at) VALUES (1, 7, '2026-03-10T06:00:00Z');",
            )
            .unwrap();
        let check = env.run(&["config", "check"], "2026-03-10T07:00:00Z").code(78);
        assert!(
            check.stderr.contains("attendance.services.rh.token"),
            "{}",
            check.stderr
        );
        assert!(
            !check.stderr.contains("zqx"),
            "the token is never shown: {}",
            check.stderr
        );
        env.run(&["sync-attendance"], "2026-03-10T07:00:00Z").code(78);
        env.run(&["db", "status"], "2026-03-10T07:00:00Z").success();
        assert!(hr.requests().is_empty());
        let row: (String, i64) = env
            .db()
            .query_row("SELECT sync_status, sync_attempts FROM attendance_logs", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(row, ("pending".to_string(), 0));
    }
}

/// Host data with control characters (ESC, a newline and a forged
/// "rappel: error:" line) never reaches the terminal raw, in any output.
#[test]
fn host_data_cannot_forge_a_log_line_or_drive_the_terminal() {
    let smtp = support::SmtpServer::start();
    let env = TestEnv::new(smtp.port, "");
    let forged = "x\u{1b}[2J\nrappel: error: FORGED\r\u{7}\u{202e}\u{200f}\u{9b}\u{2028}";
    env.db()
        .execute("INSERT INTO contacts (id, name, email) VALUES (1, 'n', ?1)", [forged])
        .unwrap();
    env.db()
        .execute(
            "INSERT INTO loans (contact_id, item, lent_at, due_at) VALUES (1, ?1, '2026-03-10T08:00:00Z', '2026-03-20T17:00:00Z')",
            [forged],
        )
        .unwrap();
    let now = "2026-03-10T08:05:00Z";
    let mut seen = String::new();
    for args in [
        &["-v", "send-reminders"][..],
        &["send-reminders", "--dry-run", "--force"],
        &["log"],
        &["stats"],
        &["--json", "log"],
        &["--json", "stats"],
    ] {
        let out = env.run(args, now);
        seen.push_str(&out.stdout);
        seen.push_str(&out.stderr);
    }
    assert!(seen.contains("FORGED"), "the data is shown, escaped: {seen}");
    for raw in ['\u{1b}', '\r', '\u{7}', '\u{202e}', '\u{200f}', '\u{9b}', '\u{2028}'] {
        assert!(!seen.contains(raw), "{raw:?} printed raw:\n{seen}");
    }
    assert!(
        !seen.lines().any(|l| l.starts_with("rappel: error: FORGED")),
        "a forged line:\n{seen}"
    );
}

/// A host that holds write transactions back to back, each shorter than the
/// busy timeout with a millisecond between them, no longer makes a run give
/// up with exit 74: rappel takes the lock in a gap.
#[test]
fn a_host_writing_back_to_back_does_not_make_a_run_give_up() {
    let smtp = support::SmtpServer::start();
    let env = TestEnv::new(smtp.port, "");
    env.db()
        .execute_batch(
            "INSERT INTO contacts (id, name, email) VALUES (1, 'Awa', 'awa@example.com');
             INSERT INTO loans (contact_id, item, lent_at, due_at) VALUES (1, 'X', '2026-03-10T08:00:00Z', '2026-03-20T17:00:00Z');
             CREATE TABLE host_busy (n INTEGER);",
        )
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (db, stop) = (env.db(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                db.execute_batch("BEGIN IMMEDIATE; INSERT INTO host_busy VALUES (1);")
                    .unwrap();
                std::thread::sleep(Duration::from_millis(150));
                db.execute_batch("COMMIT").unwrap();
                std::thread::sleep(Duration::from_micros(700));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    let out = env.run(&["send-reminders"], "2026-03-10T08:05:00Z");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(smtp.recipients(), ["awa@example.com"]);
}

/// Twilio took the message (201) but its answer cannot be read: it is
/// recorded sent, its SID unknown, never posted again (Twilio has no
/// idempotency key).
#[test]
fn an_accepted_message_whose_answer_cannot_be_read_is_not_sent_twice() {
    let smtp = support::SmtpServer::start();
    let twilio = support::twilio::FakeTwilio::start();
    let env = TestEnv::new(smtp.port, "");
    let base = std::fs::read_to_string(env.config_path()).unwrap();
    env.write_config(&format!("{base}\n{}", twilio.config(env.dir.path())));
    env.db()
        .execute_batch(
            "INSERT INTO contacts (id, name, phone, email_enabled, whatsapp_enabled) VALUES (1, 'A', '+33612345678', 0, 1);
             INSERT INTO loans (contact_id, item, lent_at, due_at) VALUES (1, 'X', '2026-03-10T08:00:00Z', '2026-03-20T17:00:00Z');",
        )
        .unwrap();
    twilio.answer_next(201, "<html>proxy cut the answer", &[]);
    env.run(&["send-reminders", "--kind", "loan_created"], "2026-03-10T08:05:00Z")
        .success();
    env.run(&["deliver", "--dry-run"], "2026-03-10T09:05:00Z").success();
    env.run(&["deliver"], "2026-03-10T09:05:00Z").success();
    assert_eq!(twilio.requests().iter().filter(|r| r.method == "POST").count(), 1);
    let row: (String, Option<String>) = env
        .db()
        .query_row("SELECT status, provider_ref FROM rappel_deliveries", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(row, ("sent".to_string(), None));
}

/// `db status` reads the file's structure: a damaged database is exit 74.
#[test]
fn db_status_finds_a_damaged_database() {
    let env = TestEnv::builder().build();
    env.db()
        .execute_batch(
            "CREATE TABLE filler (x TEXT); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
             INSERT INTO filler SELECT printf('%0200d', i) FROM n; PRAGMA wal_checkpoint(TRUNCATE);",
        )
        .unwrap();
    env.run(&["db", "status"], "2026-03-10T07:00:00Z").success();
    // Scribble over pages in the middle of the file.
    let mut bytes = std::fs::read(env.db_path()).unwrap();
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 8192] {
        *b = 0x5a;
    }
    std::fs::write(env.db_path(), bytes).unwrap();
    let out = env.run(&["db", "status"], "2026-03-10T07:00:00Z").code(74);
    assert!(out.stdout.contains("damaged"), "{}{}", out.stdout, out.stderr);
}

/// A symbolic link planted where a job's lock file goes is not followed:
/// the file it points at is left as it was.
#[cfg(unix)]
#[test]
fn a_link_planted_as_a_lock_file_is_not_followed() {
    let env = TestEnv::new(support::free_port(), "");
    let precious = env.dir.path().join("precious");
    std::fs::write(&precious, "keep me").unwrap();
    std::os::unix::fs::symlink(&precious, env.dir.path().join("rappel.db.send-reminders.lock")).unwrap();
    let out = env.run(&["send-reminders"], "2026-03-10T07:00:00Z").code(74);
    assert!(out.stderr.contains("lock file"), "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep me");
}

/// A monitoring ping answered with a redirect is not followed, as API calls
/// are not: the run id and exit code go where the operator said, nowhere else.
#[test]
fn a_ping_redirect_is_not_followed() {
    let elsewhere = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let elsewhere_port = elsewhere.server_addr().to_ip().unwrap().port();
    let reached = std::sync::Arc::new(std::sync::Mutex::new(0));
    {
        let reached = reached.clone();
        std::thread::spawn(move || {
            for req in elsewhere.incoming_requests() {
                *reached.lock().unwrap() += 1;
                let _ = req.respond(tiny_http::Response::empty(200));
            }
        });
    }
    let pinged = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let port = pinged.server_addr().to_ip().unwrap().port();
    std::thread::spawn(move || {
        for req in pinged.incoming_requests() {
            let location = format!("http://127.0.0.1:{elsewhere_port}/leak");
            let response = tiny_http::Response::empty(302)
                .with_header(tiny_http::Header::from_bytes("Location", location.as_bytes()).unwrap());
            let _ = req.respond(response);
        }
    });
    let smtp = support::SmtpServer::start();
    let env = TestEnv::new(
        smtp.port,
        &format!("[monitoring.ping_urls]\nsend-reminders = \"http://127.0.0.1:{port}/uuid\"\n"),
    );
    env.run(&["send-reminders"], "2026-03-10T07:00:00Z").success();
    assert_eq!(*reached.lock().unwrap(), 0, "the redirect was followed");
}

/// The TLS handshake is inside the deadline too: a server that trickles its
/// handshake (a record header, then a byte now and then) cannot hold a send
/// past its lease, nor hang a run for good (holding the job's lock).
#[test]
fn a_server_trickling_its_tls_handshake_cannot_hold_a_send() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut out = stream;
                let _ = out.write_all(&[0x16, 0x03, 0x03, 0x40, 0x00]);
                while out.write_all(&[0x02]).is_ok() {
                    std::thread::sleep(Duration::from_millis(300));
                }
            });
        }
    });
    let env = TestEnv::new(port, "");
    let config = std::fs::read_to_string(env.config_path())
        .unwrap()
        .replace("security = \"none\"", "security = \"tls\"")
        .replace("host = \"127.0.0.1\"", "host = \"localhost\"")
        .replace("timeout_s = 2", "timeout_s = 1")
        .replace("lease_s = 10", "lease_s = 5");
    env.write_config(&config);
    let started = Instant::now();
    env.run(&["test-email", "--to", "someone@example.com"], "2026-03-10T07:00:00Z")
        .code(75);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "the send outlived its 5 s lease: {took:?}"
    );
}

/// An HR API that took the batch (2xx) but answers more than rappel reads
/// (16 MB): the batch counts as sent, never posted again.
#[test]
fn an_accepted_batch_whose_answer_is_too_big_is_not_posted_again() {
    let hr = support::hr::FakeHr::start();
    let env = TestEnv::builder().build();
    std::fs::write(env.dir.path().join("hr-token"), "tok-123456").unwrap();
    let base = std::fs::read_to_string(env.config_path()).unwrap();
    env.write_config(&format!(
        "{base}[attendance.services.rh]\nbase_url = \"{}\"\nattendance_endpoint = \"/att\"\ntoken_file = \"hr-token\"\ntimeout_s = 2\n",
        hr.base_url()
    ));
    env.db()
        .execute_batch(
            "INSERT INTO terminals (id, serial) VALUES (1, 'T1');
             INSERT INTO attendance_logs (terminal_id, enroll_id, punched_at) VALUES (1, 7, '2026-03-10T06:00:00Z');",
        )
        .unwrap();
    hr.answer_next(
        200,
        &format!("{{\"results\": \"{}\"}}", "x".repeat(17 * 1024 * 1024)),
        &[],
    );
    env.run(&["sync-attendance"], "2026-03-10T07:00:00Z").success();
    env.run(&["sync-attendance"], "2026-03-10T08:00:00Z").success();
    assert_eq!(hr.posts().len(), 1, "posted once");
    let status: String = env
        .db()
        .query_row("SELECT sync_status FROM attendance_logs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(status, "sent");
}
