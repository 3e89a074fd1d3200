//! The fault matrix: every way the SMTP server, Twilio and the HR API fail,
//! one row each, with the status, attempts, next attempt and exit code DESIGN
//! §5 gives, then what the next run does once the fault is gone.

use crate::support;

use std::time::Duration;

use chrono::{DateTime, Utc};
use support::faulty_smtp::{Fault as Smtp, FaultySmtp};
use support::{Backend, SmtpServer, TestEnv, every_transport, free_port, hr::FakeHr, plus, twilio::FakeTwilio};

const NOW: &str = "2026-03-10T07:00:00Z";
/// `[delivery] retry_base_s` and `max_attempts` of the test config.
const BASE_S: i64 = 60;
/// Rounding, plus how long a run may take under load.
const SLACK_S: i64 = 10;

/// What breaks.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Nothing listens on the SMTP port.
    SmtpRefused,
    Smtp(Smtp),
    /// The same, from a server that offers PIPELINING (RFC 2920): MAIL,
    /// RCPT and DATA come in one write, their replies are read in order.
    SmtpPipelining(Smtp),
    /// Twilio answers the first POST with this status and body.
    Twilio(u16, &'static str, Option<&'static str>),
    /// Twilio answers after 3 s, beyond `whatsapp.timeout_s = 1`.
    TwilioSlow,
    /// The HR API answers the first push with this status and body.
    Hr(u16, &'static str, Option<&'static str>),
    /// The HR API answers after 3 s, beyond the service's `timeout_s = 2`.
    HrSlow,
    /// The users list is not JSON.
    HrUsers(&'static str),
}

/// When the message may go next.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Next {
    /// `next_attempt_at` NULL: never (failed) or at once (given back).
    Null,
    /// `retry_base_s * 2^(attempts-1)` +-10 % after `--now`.
    Backoff,
    /// At least this many seconds after `--now` (`Retry-After`), at most 10 % more.
    RetryAfter(i64),
}

/// What the next run does once the server is healthy again.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Then {
    /// Sent exactly once, at its next attempt and not before.
    SentOnce,
    /// Never tried again.
    NotRetried,
    /// Already sent: nothing more goes.
    Done,
    /// The server took the message though rappel gave up waiting: the retry
    /// is a second copy (to the HR API with the same `Idempotency-Key`).
    Resent,
}

struct Case {
    name: &'static str,
    fault: Fault,
    exit: i32,
    status: &'static str,
    /// `rappel_deliveries.error_class` (email, WhatsApp); the HR ledger has none.
    class: Option<&'static str>,
    attempts: i64,
    next: Next,
    /// Part of `last_error` / `sync_error`.
    error: &'static str,
    then: Then,
}

const fn case(
    name: &'static str,
    fault: Fault,
    exit: i32,
    (status, class, attempts): (&'static str, Option<&'static str>, i64),
    next: Next,
    error: &'static str,
    then: Then,
) -> Case {
    Case {
        name,
        fault,
        exit,
        status,
        class,
        attempts,
        next,
        error,
        then,
    }
}

const TEMPORARY: (&str, Option<&str>, i64) = ("pending", Some("temporary"), 1);
const PERMANENT: (&str, Option<&str>, i64) = ("failed", Some("permanent"), 1);
const CREDENTIALS: (&str, Option<&str>, i64) = ("pending", Some("credentials"), 0);

#[rustfmt::skip]
const MATRIX: &[Case] = &[
    // SMTP: one delay-alert digest.
    case("smtp refused", Fault::SmtpRefused, 75, TEMPORARY, Next::Backoff, "connection", Then::SentOnce),
    case("smtp 421 greeting", Fault::Smtp(Smtp::Greeting421), 75, TEMPORARY, Next::Backoff, "421", Then::SentOnce),
    case("smtp 451 end of data", Fault::Smtp(Smtp::Data451), 75, TEMPORARY, Next::Backoff, "451", Then::SentOnce),
    case("smtp 550 rcpt", Fault::Smtp(Smtp::Rcpt550), 65, PERMANENT, Next::Null, "550", Then::NotRetried),
    case("smtp 535 auth", Fault::Smtp(Smtp::Auth535), 78, CREDENTIALS, Next::Null, "535", Then::SentOnce),
    // Silent past the exchange's deadline (4 x timeout_s = 8 s), to which the
    // reply to "." may take.
    case("smtp silent past timeout_s", Fault::Smtp(Smtp::Silent(Duration::from_secs(10))), 75, TEMPORARY, Next::Backoff,
         "timeout_s", Then::SentOnce),
    case("smtp drop mid-DATA", Fault::Smtp(Smtp::DropMidData), 75, TEMPORARY, Next::Backoff, "SMTP", Then::SentOnce),
    // A 354 to the end of DATA is no delivery (RFC 5321 §4.1.1.4).
    case("smtp 354 end of data", Fault::Smtp(Smtp::Reply354AtEnd), 75, TEMPORARY, Next::Backoff, "354",
         Then::SentOnce),
    case("smtp garbage end of data", Fault::Smtp(Smtp::GarbageAtEnd), 75, TEMPORARY, Next::Backoff,
         "reply is not an SMTP reply: \"99 weird\"", Then::SentOnce),
    // An answer's control characters are not kept (last_error is one line).
    case("smtp 451 with a bare CR", Fault::Smtp(Smtp::Data451Broken), 75, TEMPORARY, Next::Backoff,
         "4.3.0 queue full try later", Then::SentOnce),
    // The same faults when the server offers PIPELINING.
    case("pipelining 451 end of data", Fault::SmtpPipelining(Smtp::Data451), 75, TEMPORARY, Next::Backoff, "451",
         Then::SentOnce),
    case("pipelining 550 rcpt", Fault::SmtpPipelining(Smtp::Rcpt550), 65, PERMANENT, Next::Null, "550",
         Then::NotRetried),
    case("pipelining 535 auth", Fault::SmtpPipelining(Smtp::Auth535), 78, CREDENTIALS, Next::Null, "535",
         Then::SentOnce),
    case("pipelining drop mid-DATA", Fault::SmtpPipelining(Smtp::DropMidData), 75, TEMPORARY, Next::Backoff, "SMTP",
         Then::SentOnce),
    // Twilio: one WhatsApp loan_created.
    case("twilio 429 Retry-After", Fault::Twilio(429, TWILIO_429, Some("3600")), 75, TEMPORARY, Next::RetryAfter(3600),
         "429", Then::SentOnce),
    case("twilio 500", Fault::Twilio(500, TWILIO_500, None), 75, TEMPORARY, Next::Backoff, "500", Then::SentOnce),
    case("twilio 503 on lines", Fault::Twilio(503, TWILIO_503, None), 75, TEMPORARY, Next::Backoff,
         "Service Unavailable try later", Then::SentOnce),
    case("twilio 21211", Fault::Twilio(400, TWILIO_21211, None), 65, PERMANENT, Next::Null, "21211", Then::NotRetried),
    case("twilio 20003", Fault::Twilio(401, TWILIO_20003, None), 78, CREDENTIALS, Next::Null, "20003", Then::SentOnce),
    case("twilio timeout", Fault::TwilioSlow, 75, TEMPORARY, Next::Backoff, "", Then::Resent),
    // HR API: one punch. A temporary failure is `failed` with a next attempt.
    case("hr 408", Fault::Hr(408, "{}", None), 75, HR_RETRY, Next::Backoff, "408", Then::SentOnce),
    case("hr 429 Retry-After", Fault::Hr(429, r#"{"error": "slow down"}"#, Some("120")), 75, HR_RETRY,
         Next::RetryAfter(120), "429", Then::SentOnce),
    case("hr 500", Fault::Hr(500, r#"{"error": "boom"}"#, None), 75, HR_RETRY, Next::Backoff, "500", Then::SentOnce),
    case("hr timeout", Fault::HrSlow, 75, HR_RETRY, Next::Backoff, "", Then::Resent),
    case("hr 400", Fault::Hr(400, r#"{"error": "terminal_sn unknown"}"#, None), 65, HR_RETRY, Next::Null,
         "terminal_sn unknown", Then::NotRetried),
    case("hr 401", Fault::Hr(401, r#"{"error": "bad token"}"#, None), 78, ("pending", None, 0), Next::Null, "",
         Then::SentOnce),
    case("hr per-item rejected", Fault::Hr(200, HR_REJECTED, None), 65, HR_RETRY, Next::Null, "enrollid 7 unknown",
         Then::NotRetried),
    // A 2xx is the API taking the batch (DESIGN §6): its body only matters
    // when it carries `results`.
    case("hr push 2xx not JSON", Fault::Hr(200, "<html>OK</html>", None), 0, HR_SENT, Next::Null, "", Then::Done),
    // An unreadable users list fails the pull (exit 65); the push still goes.
    case("hr users not JSON", Fault::HrUsers(r#"{"users": [{"enrollid": 7,"#), 65, HR_SENT, Next::Null, "", Then::Done),
];

const TWILIO_429: &str = r#"{"code": 20429, "message": "Too Many Requests", "status": 429}"#;
const TWILIO_500: &str = r#"{"code": 20500, "message": "Internal Server Error", "status": 500}"#;
const TWILIO_503: &str = "{\"code\": 20503, \"message\": \"Service Unavailable\\r\\ntry later\", \"status\": 503}";
const TWILIO_21211: &str = r#"{"code": 21211, "message": "Invalid 'To' Phone Number", "status": 400}"#;
const TWILIO_20003: &str = r#"{"code": 20003, "message": "Authenticate", "status": 401}"#;
const HR_REJECTED: &str = r#"{"results": [{"log_id": 1, "status": "rejected", "error": "enrollid 7 unknown"}]}"#;
const HR_RETRY: (&str, Option<&str>, i64) = ("failed", None, 1);
const HR_SENT: (&str, Option<&str>, i64) = ("sent", None, 1);

/// The message's row after the run: status, class, attempts, next attempt, error.
#[derive(Debug)]
struct Row {
    status: String,
    class: Option<String>,
    attempts: i64,
    next: Option<String>,
    error: Option<String>,
}

/// The servers of one case, kept alive while it runs.
enum Servers {
    Smtp(FaultySmtp),
    Refused(u16),
    /// The SMTP server is only kept alive (the case sends on another channel).
    Other {
        _smtp: SmtpServer,
        twilio: FakeTwilio,
        hr: FakeHr,
    },
}

fn at(t: &str) -> DateTime<Utc> {
    t.parse().unwrap()
}

/// A config and database holding the one message the case's fault hits;
/// on `backend`: with `mapped`, its input tables are the host's, mapped in
/// `[sources]`; with `postgres`, on the test server.
fn set_up(fault: Fault, backend: Backend) -> (Servers, TestEnv, &'static [&'static str]) {
    let rehost = |env: &mut TestEnv, tables: &[&str]| backend.place(env, tables, "faults");
    match fault {
        Fault::SmtpRefused | Fault::Smtp(_) | Fault::SmtpPipelining(_) => {
            let (servers, port) = match fault {
                Fault::Smtp(f) | Fault::SmtpPipelining(f) => {
                    let smtp = if matches!(fault, Fault::SmtpPipelining(_)) {
                        FaultySmtp::start_pipelining(f)
                    } else {
                        FaultySmtp::start(f)
                    };
                    let port = smtp.port;
                    (Servers::Smtp(smtp), port)
                }
                _ => {
                    let port = free_port();
                    (Servers::Refused(port), port)
                }
            };
            let mut env = TestEnv::new(port, "");
            std::fs::write(env.dir.path().join("smtp-pass"), "pw\n").unwrap();
            let text = std::fs::read_to_string(env.config_path()).unwrap().replace(
                "timeout_s = 2\n",
                "timeout_s = 2\nusername = \"rappel\"\npassword_file = \"smtp-pass\"\n",
            );
            env.write_config(&text);
            let c = env.contact("R0", "r0@example.com");
            env.recipient(c, None);
            env.ticket("T-1", &[("Diagnostic", "2026-02-01T07:00:00Z")]);
            rehost(&mut env, &["contacts", "alert_recipients", "tickets", "ticket_events"]);
            (servers, env, &["check-delay-alerts"])
        }
        Fault::Twilio(..) | Fault::TwilioSlow => {
            let (smtp, twilio, hr, mut env) = every_transport("");
            let text = std::fs::read_to_string(env.config_path())
                .unwrap()
                .replace("timeout_s = 2\napi_base = ", "timeout_s = 1\napi_base = ");
            env.write_config(&text);
            let db = env.db();
            db.execute(
                "INSERT INTO contacts (name, email, phone, whatsapp_enabled, email_enabled, sms_enabled)
                 VALUES ('Awa', 'awa@example.com', '+24107123456', 1, 0, 0)",
                [],
            )
            .unwrap();
            db.execute(
                "INSERT INTO loans (contact_id, item, term, lent_at, due_at) VALUES (?1, 'Drill', 'long', ?2, '2026-03-20T17:00:00Z')",
                rusqlite::params![db.last_insert_rowid(), NOW],
            )
            .unwrap();
            rehost(&mut env, &["contacts", "loans"]);
            match fault {
                Fault::Twilio(status, body, retry_after) => {
                    let headers: Vec<(&str, &str)> = retry_after.map(|r| ("Retry-After", r)).into_iter().collect();
                    twilio.answer_next(status, body, &headers);
                }
                _ => twilio.set_delay(Duration::from_secs(3)),
            }
            (
                Servers::Other {
                    _smtp: smtp,
                    twilio,
                    hr,
                },
                env,
                &["send-reminders", "--kind", "loan_created"],
            )
        }
        Fault::Hr(..) | Fault::HrSlow | Fault::HrUsers(_) => {
            let (smtp, twilio, hr, mut env) = every_transport("users_endpoint = \"/users\"\n");
            let db = env.db();
            db.execute(
                "INSERT INTO terminals (id, serial, name) VALUES (1, 'TM-1', 'Door')",
                [],
            )
            .unwrap();
            db.execute(
                "INSERT INTO attendance_logs (id, terminal_id, enroll_id, user_name, punched_at, mode, inout)
                 VALUES (1, 1, 7, 'Awa', '2026-03-10T06:00:00Z', 1, 0)",
                [],
            )
            .unwrap();
            rehost(&mut env, &["terminals", "attendance_logs"]);
            match fault {
                Fault::Hr(status, body, retry_after) => {
                    let headers: Vec<(&str, &str)> = retry_after.map(|r| ("Retry-After", r)).into_iter().collect();
                    hr.answer_next(status, body, &headers);
                }
                Fault::HrUsers(body) => hr.set_users(body),
                _ => hr.set_delay(Duration::from_secs(3)),
            }
            (
                Servers::Other {
                    _smtp: smtp,
                    twilio,
                    hr,
                },
                env,
                &["sync-attendance"],
            )
        }
    }
}

/// The case's message or punch as rappel records it: for a punch of a
/// mapped `attendance_logs`, its record in `rappel_punch_state` (the host's
/// columns hold the same in the host's forms).
fn row(env: &TestEnv, fault: Fault, backend: Backend) -> Row {
    let sql = match fault {
        Fault::Hr(..) | Fault::HrSlow | Fault::HrUsers(_) if backend.mapped => {
            "SELECT sync_status, NULL, sync_attempts, next_attempt_at, sync_error FROM rappel_punch_state"
        }
        Fault::Hr(..) | Fault::HrSlow | Fault::HrUsers(_) => {
            "SELECT sync_status, NULL, sync_attempts, next_attempt_at, sync_error FROM attendance_logs"
        }
        _ => "SELECT status, error_class, attempts, next_attempt_at, last_error FROM rappel_deliveries",
    };
    let db = env.db();
    let mut stmt = db.prepare(sql).unwrap();
    let rows: Vec<Row> = stmt
        .query_map([], |r| {
            Ok(Row {
                status: r.get(0)?,
                class: r.get(1)?,
                attempts: r.get(2)?,
                next: r.get(3)?,
                error: r.get(4)?,
            })
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), 1, "one message per case: {rows:?}");
    rows.into_iter().next().unwrap()
}

/// How many times the message has reached its server.
fn received(servers: &Servers, fault: Fault) -> usize {
    match (servers, fault) {
        (Servers::Smtp(s), _) => s.accepted().len(),
        (Servers::Refused(_), _) => 0,
        (Servers::Other { twilio, .. }, Fault::Twilio(..) | Fault::TwilioSlow) => twilio.accepted().len(),
        (Servers::Other { hr, .. }, _) => hr.posts().iter().filter(|p| (200..300).contains(&p.status)).count(),
    }
}

/// Mends the fault; for a refused connection, starts a server on the port.
fn heal(servers: &mut Servers, fault: Fault) {
    match servers {
        Servers::Smtp(s) => s.set(Smtp::None),
        Servers::Refused(port) => *servers = Servers::Smtp(FaultySmtp::start_on(*port, Smtp::None)),
        Servers::Other { twilio, hr, .. } => {
            if matches!(fault, Fault::TwilioSlow | Fault::HrSlow) {
                // The slow answer still holds the stand-in: let it finish.
                std::thread::sleep(Duration::from_secs(3));
            }
            twilio.set_delay(Duration::ZERO);
            hr.set_delay(Duration::ZERO);
            hr.set_users(r#"{"users": []}"#);
        }
    }
}

/// Runs one case on `backend`; the differences from the table, or nothing.
fn check(c: &Case, backend: Backend) -> Vec<String> {
    let (mut servers, env, job) = set_up(c.fault, backend);
    let mut wrong = Vec::new();
    let mut expect = |what: &str, ok: bool, got: String| {
        if !ok {
            wrong.push(format!("{}: {what}: got {got}", c.name));
        }
    };
    let out = env.run(job, NOW);
    expect(
        &format!("exit {}", c.exit),
        out.code == c.exit,
        format!("{}\n{}", out.code, out.stderr),
    );
    let r = row(&env, c.fault, backend);
    expect(&format!("status {}", c.status), r.status == c.status, format!("{r:?}"));
    expect(
        &format!("class {:?}", c.class),
        r.class.as_deref() == c.class,
        format!("{r:?}"),
    );
    expect(
        &format!("attempts {}", c.attempts),
        r.attempts == c.attempts,
        format!("{r:?}"),
    );
    let next_ok = match (c.next, r.next.as_deref()) {
        (Next::Null, None) => true,
        (Next::Backoff, Some(t)) => {
            let nominal = BASE_S << (r.attempts.max(1) - 1);
            let secs = (at(t) - at(NOW)).num_seconds();
            // sync-attendance counts from --now moved on by the run's own
            // duration (a timeout: seconds).
            (nominal * 9 / 10..=nominal * 11 / 10 + SLACK_S).contains(&secs)
        }
        (Next::RetryAfter(s), Some(t)) => {
            let secs = (at(t) - at(NOW)).num_seconds();
            (s..=s * 11 / 10 + SLACK_S).contains(&secs)
        }
        _ => false,
    };
    expect(&format!("next {:?}", c.next), next_ok, format!("{r:?}"));
    expect(
        &format!("error containing {:?}", c.error),
        r.error.as_deref().unwrap_or("").contains(c.error),
        format!("{r:?}"),
    );
    expect(
        "an error on one line",
        !r.error.as_deref().unwrap_or("").contains(|ch: char| ch.is_control()),
        format!("{r:?}"),
    );
    let before = received(&servers, c.fault);
    let taken = match c.then {
        Then::SentOnce => 0,
        Then::Done | Then::Resent => 1,
        Then::NotRetried => before,
    };
    expect("taken by the server so far", before == taken, before.to_string());

    // The fault is gone: not a second before the next attempt, then once.
    heal(&mut servers, c.fault);
    // Retries go with `deliver`; attendance logs are their own ledger.
    let retry: &[&str] = if job[0] == "sync-attendance" { job } else { &["deliver"] };
    let later = |t: &str| env.run(retry, t).code;
    if let Some(next) = r.next.as_deref() {
        later(&plus(next, -1));
        expect(
            "not before next_attempt_at",
            received(&servers, c.fault) == before,
            format!("{}", received(&servers, c.fault)),
        );
    }
    let then = plus(r.next.as_deref().unwrap_or(NOW), 1);
    let code = later(&then);
    later(&plus(&then, 86_400));
    let after = received(&servers, c.fault);
    match c.then {
        Then::SentOnce => {
            expect("exit 0 once healed", code == 0, code.to_string());
            expect("sent exactly once once healed", after == 1, after.to_string());
            expect(
                "status sent",
                row(&env, c.fault, backend).status == "sent",
                format!("{:?}", row(&env, c.fault, backend)),
            );
        }
        Then::NotRetried => expect("never retried", after == before, after.to_string()),
        Then::Done => expect("nothing more sent", after == before, after.to_string()),
        Then::Resent => {
            expect("sent again once", after == 2, after.to_string());
            expect(
                "status sent",
                row(&env, c.fault, backend).status == "sent",
                format!("{:?}", row(&env, c.fault, backend)),
            );
            if let Servers::Other { hr, .. } = &servers
                && let [first, .., last] = hr.posts().as_slice()
            {
                expect(
                    "the retry carries the same Idempotency-Key",
                    first.idempotency_key == last.idempotency_key,
                    format!("{:?} then {:?}", first.idempotency_key, last.idempotency_key),
                );
            }
        }
    }
    wrong
}

/// Runs `cases` four threads at a time; the differences from the table.
fn run_matrix(cases: &[&Case], backend: Backend) -> Vec<String> {
    std::thread::scope(|s| {
        let handles: Vec<_> = cases
            .chunks(cases.len().div_ceil(4))
            .map(|chunk| s.spawn(move || chunk.iter().flat_map(|c| check(c, backend)).collect::<Vec<_>>()))
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn every_fault_gives_the_status_attempts_next_try_and_exit_of_design() {
    let wrong = run_matrix(&MATRIX.iter().collect::<Vec<_>>(), Backend::SQLITE);
    assert!(wrong.is_empty(), "{} differences:\n{}", wrong.len(), wrong.join("\n"));
}

/// The same faults when the alerts, reminders and punches come from the
/// host's own tables (`[sources]`): the state rappel keeps, the retries and
/// the exit codes do not depend on where the rows are read from.
#[test]
fn every_fault_gives_the_same_outcome_on_the_hosts_own_tables() {
    let wrong = run_matrix(&MATRIX.iter().collect::<Vec<_>>(), Backend::MAPPED);
    assert!(wrong.is_empty(), "{} differences:\n{}", wrong.len(), wrong.join("\n"));
}

/// The same faults on a PostgreSQL database, on the contract's tables and
/// on the host's own: the outcomes are the backend's no more than the
/// tables'.
#[test]
fn every_fault_gives_the_same_outcome_on_postgresql() {
    if support::pg::server("every_fault_gives_the_same_outcome_on_postgresql").is_none() {
        return;
    }
    let cases: Vec<_> = MATRIX.iter().collect();
    let mut wrong = run_matrix(&cases, Backend::POSTGRES);
    wrong.extend(run_matrix(&cases, Backend::POSTGRES_MAPPED));
    assert!(wrong.is_empty(), "{} differences:\n{}", wrong.len(), wrong.join("\n"));
}
