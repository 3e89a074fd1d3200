//! sync-attendance end to end: the real binary, real SQLite files and HTTP
//! servers on 127.0.0.1 standing in for the HR APIs. Users pull, batches and
//! their exact JSON, every class of answer, two services, dry runs, overlapping
//! runs and a run killed between batches.

use crate::support;

use std::time::Duration;

use sha2::{Digest, Sha256};
use support::hr::FakeHr;
use support::{TestEnv, free_port};

const NOW: &str = "2026-03-10T09:00:00Z";
const TOKEN: &str = "hr-s3cret-token-7781";

/// A `[attendance.services.<name>]` section sending to `hr` (token from a file).
pub(crate) fn service(name: &str, hr: &FakeHr, terminals: &[&str]) -> String {
    let list: Vec<String> = terminals.iter().map(|t| format!("{t:?}")).collect();
    format!(
        r#"[attendance.services.{name}]
base_url = "{}"
users_endpoint = "/api/v1/employees"
attendance_endpoint = "/api/v1/attendance"
auth = "bearer"
token_file = "hr-token"
timeout_s = 1
terminals = [{}]
"#,
        hr.base_url(),
        list.join(", ")
    )
}

/// A database and a config with these `[attendance.services]` sections.
fn setup(services: &str) -> TestEnv {
    let env = TestEnv::builder().build();
    std::fs::write(env.dir.path().join("hr-token"), format!("{TOKEN}\n")).unwrap();
    write(&env, services);
    env
}

/// The config: `lease_s` is more than 4 x every service's `timeout_s`.
fn write(env: &TestEnv, services: &str) {
    env.write_config(&format!(
        r#"database = "rappel.db"
timezone = "Europe/Paris"

[delivery]
lease_s = 5
retry_base_s = 60

[attendance]
max_attempts = 4

{services}"#
    ));
}

fn terminal(env: &TestEnv, serial: &str) -> i64 {
    let db = env.db();
    db.execute("INSERT INTO terminals (serial, name) VALUES (?1, ?1)", [serial])
        .unwrap();
    db.last_insert_rowid()
}

/// `n` more punches on `terminal`, a minute apart from 07:00Z on 9 March; their ids.
fn punches(env: &TestEnv, terminal: i64, n: usize) -> Vec<i64> {
    let mut db = env.db();
    let tx = db.transaction().unwrap();
    let before: usize = tx
        .query_row(
            "SELECT count(*) FROM attendance_logs WHERE terminal_id = ?1",
            [terminal],
            |r| r.get::<_, i64>(0),
        )
        .unwrap() as usize;
    let mut ids = Vec::new();
    for i in before..before + n {
        tx.execute(
            "INSERT INTO attendance_logs (terminal_id, enroll_id, user_name, punched_at, mode, inout)
             VALUES (?1, ?2, ?3, ?4, 1, ?5)",
            rusqlite::params![
                terminal,
                100 + i as i64 % 7,
                format!("User {}", i % 7),
                format!("2026-03-09T{:02}:{:02}:00Z", 7 + i / 60 % 17, i % 60),
                (i % 2) as i64
            ],
        )
        .unwrap();
        ids.push(tx.last_insert_rowid());
    }
    tx.commit().unwrap();
    ids
}

/// (status, attempts, next_attempt_at, sync_error) of one log.
type LogState = (String, i64, Option<String>, Option<String>);

fn log_state(env: &TestEnv, id: i64) -> LogState {
    env.db()
        .query_row(
            "SELECT sync_status, sync_attempts, next_attempt_at, sync_error FROM attendance_logs WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap()
}

fn count(env: &TestEnv, status: &str) -> i64 {
    env.db()
        .query_row(
            "SELECT count(*) FROM attendance_logs WHERE sync_status = ?1",
            [status],
            |r| r.get(0),
        )
        .unwrap()
}

/// Every column of attendance_logs, as text, to compare before and after.
fn logs_dump(env: &TestEnv) -> String {
    let db = env.db();
    let mut stmt = db.prepare("SELECT * FROM attendance_logs ORDER BY id").unwrap();
    let n = stmt.column_count();
    stmt.query_map([], |r| {
        Ok((0..n)
            .map(|i| match r.get_ref(i).unwrap() {
                rusqlite::types::ValueRef::Text(t) => format!("{:?}", String::from_utf8_lossy(t)),
                other => format!("{other:?}"),
            })
            .collect::<Vec<_>>()
            .join("|"))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect::<Vec<_>>()
    .join("\n")
}

fn key(service: &str, ids: &[i64]) -> String {
    let mut ids = ids.to_vec();
    ids.sort();
    let joined: Vec<String> = ids.iter().map(i64::to_string).collect();
    format!("rappel-{service}-{:x}", Sha256::digest(joined.join(",").as_bytes()))
}

fn at(offset_s: i64) -> String {
    support::plus(NOW, offset_s)
}

#[test]
fn users_are_pulled_and_a_malformed_entry_is_named_and_skipped() {
    let hr = FakeHr::start();
    let env = setup(&service("rh", &hr, &["TM20-001"]));
    let t = terminal(&env, "TM20-001");
    hr.set_users(
        r#"{"users":[
            {"enrollid":123,"name":"Awa Ndong","admin":0,"is_enabled":true,"weekzone":1,"group":0,"badge":"x"},
            {"enrollid":"oops","name":"Broken"},
            {"enrollid":124,"name":"Paul Mba","admin":1,"is_enabled":false,"weekzone":2,"group":3}
        ]}"#,
    );
    let out = env.run(&["sync-attendance"], NOW).code(65);
    assert!(
        out.stderr.contains("users[1]") && out.stderr.contains("oops"),
        "{}",
        out.stderr
    );
    let get = hr.requests().into_iter().find(|r| r.method == "GET").unwrap();
    assert_eq!(get.url, "/api/v1/employees");
    assert_eq!(get.authorization.as_deref(), Some(format!("Bearer {TOKEN}").as_str()));

    type Row = (String, i64, String, i64, i64, Option<i64>, Option<i64>, String);
    let users = |env: &TestEnv| -> Vec<Row> {
        let db = env.db();
        let mut stmt = db
            .prepare("SELECT service, enroll_id, name, admin, enabled, weekzone, grp, synced_at FROM rappel_attendance_users ORDER BY enroll_id")
            .unwrap();
        stmt.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    };
    assert_eq!(
        users(&env),
        vec![
            ("rh".into(), 123, "Awa Ndong".into(), 0, 1, Some(1), Some(0), NOW.into()),
            ("rh".into(), 124, "Paul Mba".into(), 1, 0, Some(2), Some(3), NOW.into()),
        ]
    );
    let last: Option<String> = env
        .db()
        .query_row(
            "SELECT last_users_sync FROM rappel_terminal_sync_state WHERE terminal_id = ?1 AND service = 'rh'",
            [t],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(last.as_deref(), Some(NOW));

    // The next pull updates in place.
    hr.set_users(r#"{"users":[{"enrollid":123,"name":"Awa Ndong-Obame","is_enabled":false}]}"#);
    env.run(&["sync-attendance"], &at(900)).success();
    let now = users(&env);
    assert_eq!(now.len(), 2, "users no longer listed are kept");
    assert_eq!(
        (now[0].2.as_str(), now[0].4, now[0].7.as_str()),
        ("Awa Ndong-Obame", 0, at(900).as_str())
    );

    // A body that is not a users list is an error for the pull; logs still go.
    punches(&env, t, 2);
    hr.set_users("<html>Please log in</html>");
    let out = env.run(&["sync-attendance"], &at(1800)).code(65);
    assert!(out.stderr.contains("users not updated"), "{}", out.stderr);
    assert_eq!(count(&env, "sent"), 2);
    assert_eq!(users(&env).len(), 2);
}

#[test]
fn two_hundred_fifty_logs_go_in_three_batches_of_exact_json() {
    let hr = FakeHr::start();
    let env = setup(&service("rh", &hr, &["TM20-001"]));
    let t = terminal(&env, "TM20-001");
    let ids = punches(&env, t, 250);
    // An older punch written later (a terminal that was offline) goes first.
    let late: i64 = {
        let db = env.db();
        db.execute(
            "INSERT INTO attendance_logs (terminal_id, enroll_id, user_name, punched_at, mode, inout, event, temperature, access_granted)
             VALUES (?1, 7, 'Élodie \"Lo\" Nze', '2026-03-08 23:59:30', 15, 1, 2, 36.6, 0)",
            [t],
        )
        .unwrap();
        db.last_insert_rowid()
    };

    let out = env.run(&["sync-attendance"], NOW).success();
    assert!(out.stdout.contains("251 sent"), "{}", out.stdout);
    let posts = hr.posts();
    assert_eq!(posts.len(), 3);
    assert_eq!(
        posts.iter().map(|p| p.log_ids().len()).collect::<Vec<_>>(),
        vec![100, 100, 51]
    );
    let first = &posts[0];
    assert_eq!(first.url, "/api/v1/attendance");
    assert_eq!(first.content_type.as_deref(), Some("application/json"));
    assert_eq!(first.authorization.as_deref(), Some(format!("Bearer {TOKEN}").as_str()));
    let mut expected_first: Vec<i64> = vec![late];
    expected_first.extend(&ids[..99]);
    assert_eq!(first.log_ids(), expected_first, "oldest punch first");
    assert_eq!(
        first.idempotency_key.as_deref(),
        Some(key("rh", &expected_first).as_str())
    );
    assert!(
        first.body.starts_with(&format!(
            r#"{{"attendance":[{{"terminal_sn":"TM20-001","enrollid":7,"user_name":"Élodie \"Lo\" Nze","time":"2026-03-08T23:59:30Z","mode":15,"inout":1,"event":2,"temperature":36.6,"access_granted":false,"log_id":{late}}},{{"#
        )),
        "exact fields, in the documented order: {}",
        &first.body[..300]
    );
    let body: serde_json::Value = serde_json::from_str(&first.body).unwrap();
    assert_eq!(body["attendance"][1]["temperature"], serde_json::Value::Null);
    assert_eq!(body["attendance"][1]["access_granted"], true);
    assert_eq!(body["attendance"][1]["time"], "2026-03-09T07:00:00Z");
    let all: Vec<i64> = posts.iter().flat_map(|p| p.log_ids()).collect();
    assert_eq!(all.len(), 251);

    assert_eq!(count(&env, "sent"), 251);
    let (synced_at, error): (Option<String>, Option<String>) = env
        .db()
        .query_row(
            "SELECT synced_at, sync_error FROM attendance_logs WHERE id = ?1",
            [ids[0]],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((synced_at.as_deref(), error), (Some(NOW), None));
    let last: String = env
        .db()
        .query_row(
            "SELECT last_attendance_sync FROM rappel_terminal_sync_state WHERE terminal_id = ?1 AND service = 'rh'",
            [t],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(last, NOW);

    // Nothing is due any more: a second run posts nothing and prints nothing.
    let again = env.run(&["sync-attendance"], &at(60)).success();
    assert_eq!(hr.posts().len(), 3);
    assert_eq!(again.stdout, "");
}

#[test]
fn per_item_results_send_created_and_duplicate_and_fail_the_rejected() {
    let hr = FakeHr::start();
    let env = setup(&service("rh", &hr, &["TM20-001"]));
    let t = terminal(&env, "TM20-001");
    let ids = punches(&env, t, 4);
    hr.answer_next(
        207,
        &format!(
            r#"{{"results":[{{"log_id":{},"status":"created"}},{{"log_id":{},"status":"duplicate"}},
                {{"log_id":{},"status":"rejected","error":"unknown enrollid 102 (token {TOKEN})"}}]}}"#,
            ids[0], ids[1], ids[2]
        ),
        &[],
    );
    // A rejected log (65) outranks one to try again (75).
    let out = env.run(&["sync-attendance"], NOW).code(65);
    assert!(out.stderr.contains("unknown enrollid 102"), "{}", out.stderr);
    assert_eq!(log_state(&env, ids[0]).0, "sent");
    assert_eq!(log_state(&env, ids[1]).0, "sent");
    let rejected = log_state(&env, ids[2]);
    assert_eq!(
        (rejected.0.as_str(), rejected.2.as_deref()),
        ("failed", None),
        "rejected for good"
    );
    let why = rejected.3.unwrap();
    assert!(why.contains("unknown enrollid 102 (token ***)"), "{why}");
    assert!(!out.stderr.contains(TOKEN), "{}", out.stderr);
    let unclear = log_state(&env, ids[3]);
    assert_eq!(
        (unclear.0.as_str(), unclear.1),
        ("failed", 1),
        "no result: tried again later"
    );
    assert!(unclear.2.is_some());

    // Only the unclear one goes again, alone, once its time comes.
    env.run(&["sync-attendance"], &at(3600)).success();
    let posts = hr.posts();
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[1].log_ids(), vec![ids[3]]);
    assert_eq!(log_state(&env, ids[3]).0, "sent");
    assert_eq!(
        log_state(&env, ids[2]).0,
        "failed",
        "a rejected log is not posted again"
    );
}

#[test]
fn a_400_fails_the_batch_for_good_without_showing_the_token() {
    let hr = FakeHr::start();
    let env = setup(&service("rh", &hr, &["TM20-001"]));
    let t = terminal(&env, "TM20-001");
    let ids = punches(&env, t, 3);
    let echo = format!(
        r#"{{"error":"invalid payload","echo":"Authorization: Bearer {TOKEN}","detail":"{}"}}"#,
        "x".repeat(2_000)
    );
    hr.answer_next(400, &echo, &[]);
    let out = env.run(&["sync-attendance"], NOW).code(65);
    assert!(!out.stderr.contains(TOKEN), "{}", out.stderr);
    for id in &ids {
        let (status, attempts, next, error) = log_state(&env, *id);
        assert_eq!((status.as_str(), attempts, next), ("failed", 1, None));
        let error = error.unwrap();
        assert!(
            error.contains("HTTP 400") && error.contains("invalid payload"),
            "{error}"
        );
        assert!(!error.contains(TOKEN) && error.contains("***"), "{error}");
        assert!(error.len() < 600, "a bounded excerpt: {} bytes", error.len());
    }
    env.run(&["sync-attendance"], &at(86_400)).success();
    assert_eq!(hr.posts().len(), 1, "a permanent failure is not retried");
    let everything = format!("{}{}", logs_dump(&env), env.dump());
    assert!(!everything.contains(TOKEN));
}

#[test]
fn a_500_is_retried_after_backoff_with_the_same_idempotency_key() {
    let hr = FakeHr::start();
    let env = setup(&service("rh", &hr, &["TM20-001"]));
    let t = terminal(&env, "TM20-001");
    let mut ids = punches(&env, t, 30);
    // A punch written late but older than the rest: first in the batch.
    env.db()
        .execute(
            "INSERT INTO attendance_logs (terminal_id, enroll_id, punched_at) VALUES (?1, 1, '2026-03-09T06:00:00Z')",
            [t],
        )
        .unwrap();
    ids.insert(
        0,
        env.db()
            .query_row("SELECT max(id) FROM attendance_logs", [], |r| r.get(0))
            .unwrap(),
    );
    hr.answer_next(500, "upstream exploded", &[]);
    let out = env.run(&["sync-attendance"], NOW).code(75);
    assert!(out.stderr.contains("HTTP 500"), "{}", out.stderr);
    let (status, attempts, next, error) = log_state(&env, ids[0]);
    assert_eq!((status.as_str(), attempts), ("failed", 1));
    assert!(error.unwrap().contains("upstream exploded"));
    let next = next.unwrap();
    assert!(
        next.as_str() >= at(54).as_str() && next.as_str() <= at(66).as_str(),
        "60 s +-10 %: {next}"
    );

    // New punches arrive meanwhile; they do not join the batch being retried.
    let newer = punches(&env, t, 5);
    env.run(&["sync-attendance"], &at(30)).success();
    assert_eq!(hr.posts().len(), 2, "not before its time: only the new punches went");
    assert_eq!(hr.posts()[1].log_ids(), newer);

    env.run(&["sync-attendance"], &at(120)).success();
    let posts = hr.posts();
    assert_eq!(posts.len(), 3);
    assert_eq!(posts[2].log_ids(), ids);
    assert_eq!(
        posts[2].idempotency_key, posts[0].idempotency_key,
        "the same batch, the same key"
    );
    assert_eq!(posts[0].idempotency_key.as_deref(), Some(key("rh", &ids).as_str()));
    assert_eq!(log_state(&env, ids[0]), ("sent".into(), 2, None, None));
}

#[test]
fn a_429_waits_for_its_retry_after() {
    let hr = FakeHr::start();
    let env = setup(&service("rh", &hr, &["TM20-001"]));
    let t = terminal(&env, "TM20-001");
    let ids = punches(&env, t, 150);
    hr.answer_next(429, r#"{"error":"slow down"}"#, &[("Retry-After", "120")]);
    env.run(&["sync-attendance"], NOW).code(75);
    assert_eq!(hr.posts().len(), 1, "no more batches to a service that said 429");
    assert_eq!(log_state(&env, ids[0]).2.as_deref(), Some(at(120).as_str()));
    assert_eq!(log_state(&env, ids[120]).0, "pending", "the second batch was not tried");

    // At +119 s only the untried batch goes; at +120 s the first follows.
    env.run(&["sync-attendance"], &at(119)).success();
    assert_eq!(hr.posts().len(), 2);
    assert_eq!(hr.posts()[1].log_ids(), ids[100..].to_vec());
    assert_eq!(log_state(&env, ids[0]).0, "failed");
    env.run(&["sync-attendance"], &at(120)).success();
    assert_eq!(hr.posts().len(), 3);
    assert_eq!(hr.posts()[2].log_ids(), ids[..100].to_vec());
    assert_eq!(count(&env, "sent"), 150);
}

#[test]
fn a_401_stops_the_service_with_exit_78_and_changes_nothing() {
    let hr = FakeHr::start();
    let other = FakeHr::start();
    let env = setup(&format!(
        "{}\n{}",
        service("rh", &hr, &["TM20-001"]),
        service("paie", &other, &["TM20-002"])
    ));
    let t1 = terminal(&env, "TM20-001");
    let t2 = terminal(&env, "TM20-002");
    punches(&env, t1, 150);
    let theirs = punches(&env, t2, 3);
    // Logs already failing once keep their attempts.
    env.db()
        .execute(
            "UPDATE attendance_logs SET sync_status = 'failed', sync_attempts = 2, next_attempt_at = ?1,
                    sync_error = 'HTTP 503' WHERE id % 10 = 0 AND terminal_id = ?2",
            rusqlite::params![at(-60), t1],
        )
        .unwrap();
    hr.set_users("{\"users\":[]}");
    // The users pull passes; the push is refused.
    let before = logs_dump(&env);
    hr.answer_next(401, r#"{"error":"token expired"}"#, &[]);
    let out = env.run(&["sync-attendance"], NOW).code(78);
    assert!(out.stderr.contains("HTTP 401"), "{}", out.stderr);
    assert!(!out.stderr.contains(TOKEN));
    assert_eq!(hr.posts().len(), 1, "no second batch after a 401");
    let after = logs_dump(&env);
    let rh_rows = |dump: &str| -> Vec<String> {
        dump.lines()
            .filter(|l| l.split('|').nth(1) == Some(&format!("Integer({t1})")))
            .map(str::to_string)
            .collect()
    };
    let (before, after) = (rh_rows(&before), rh_rows(&after));
    let changed: Vec<(&String, &String)> = before.iter().zip(&after).filter(|(b, a)| b != a).collect();
    assert!(
        changed.is_empty(),
        "attempts, errors and times untouched: {:?}",
        changed.first()
    );
    assert_eq!(before.len(), after.len());
    // The other service went on.
    assert_eq!(other.posts().len(), 1);
    assert!(theirs.iter().all(|id| log_state(&env, *id).0 == "sent"));
}

#[test]
fn plain_http_to_another_host_and_a_terminal_in_two_services_are_config_errors() {
    let hr = FakeHr::start();
    let env = setup(&service("rh", &hr, &["TM20-001"]));
    write(
        &env,
        &service("rh", &hr, &["TM20-001"]).replace(&hr.base_url(), "http://hr.example.com"),
    );
    let out = env.run(&["sync-attendance"], NOW).code(78);
    assert!(
        out.stderr.contains("attendance.services.rh.base_url") && out.stderr.contains("https"),
        "{}",
        out.stderr
    );
    write(
        &env,
        &format!(
            "{}\n{}",
            service("rh", &hr, &["TM20-001"]),
            service("paie", &hr, &["TM20-002", "TM20-001"])
        ),
    );
    let out = env.run(&["sync-attendance"], NOW).code(78);
    assert!(
        out.stderr.contains("\"TM20-001\"") && out.stderr.contains("one service"),
        "{}",
        out.stderr
    );
    write(
        &env,
        &service("rh", &hr, &["TM20-001"]).replace("token_file = \"hr-token\"\n", ""),
    );
    let out = env.run(&["sync-attendance"], NOW).code(78);
    assert!(out.stderr.contains("token_env"), "{}", out.stderr);
    assert!(hr.requests().is_empty());
}

#[test]
fn two_services_push_their_own_terminals() {
    let rh = FakeHr::start();
    let paie = FakeHr::start();
    let env = setup(&format!(
        "{}\n{}",
        service("rh", &rh, &["TM20-001"]),
        // Names no terminal: every terminal rh does not take.
        service("paie", &paie, &[])
    ));
    let t1 = terminal(&env, "TM20-001");
    let t2 = terminal(&env, "TM20-002");
    let t3 = terminal(&env, "TM20-003");
    let a = punches(&env, t1, 3);
    let b = punches(&env, t2, 2);
    let c = punches(&env, t3, 2);
    env.run(&["sync-attendance"], NOW).success();
    assert_eq!(rh.posts().len(), 1);
    assert_eq!(rh.posts()[0].log_ids(), a);
    assert_eq!(paie.posts().len(), 1);
    let mut theirs = paie.posts()[0].log_ids();
    theirs.sort();
    assert_eq!(theirs, [b, c].concat());
    assert!(
        paie.posts()[0]
            .idempotency_key
            .as_deref()
            .unwrap()
            .starts_with("rappel-paie-")
    );

    // With rh alone, punches of the other terminals are pointed out, not lost.
    write(&env, &service("rh", &rh, &["TM20-001"]));
    let stray = punches(&env, t2, 1);
    let out = env.run(&["sync-attendance"], &at(30)).success();
    assert!(
        out.stderr.contains("no [attendance.services] entry takes") && out.stderr.contains("TM20-002 (1)"),
        "{}",
        out.stderr
    );
    write(
        &env,
        &format!("{}\n{}", service("rh", &rh, &["TM20-001"]), service("paie", &paie, &[])),
    );
    env.run(&["sync-attendance"], &at(30)).success();
    assert_eq!(paie.posts()[1].log_ids(), stray);

    // --service runs one of them.
    let more_a = punches(&env, t1, 1);
    let more_b = punches(&env, t2, 1);
    env.run(&["sync-attendance", "--service", "paie"], &at(60)).success();
    assert_eq!(rh.posts().len(), 1);
    assert_eq!(paie.posts()[2].log_ids(), more_b);
    assert_eq!(log_state(&env, more_a[0]).0, "pending");
    env.run(&["sync-attendance", "--service", "nope"], NOW).code(64);
}

#[test]
fn dry_run_prints_counts_and_the_first_batch_and_writes_nothing() {
    let hr = FakeHr::start();
    let env = setup(&format!(
        "{}batch_size = 40\n",
        service("rh", &hr, &["TM20-001", "TM20-002"])
    ));
    let t1 = terminal(&env, "TM20-001");
    let t2 = terminal(&env, "TM20-002");
    punches(&env, t1, 70);
    punches(&env, t2, 5);
    let first: Vec<i64> = {
        let db = env.db();
        let mut stmt = db
            .prepare("SELECT id FROM attendance_logs ORDER BY punched_at, id LIMIT 40")
            .unwrap();
        stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    };
    let before = format!("{}{}", logs_dump(&env), env.dump());
    let out = env.run(&["sync-attendance", "--dry-run"], NOW).success();
    assert!(
        out.stdout.contains("would push 75 log(s) in 2 batch(es)"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("TM20-001: 70 log(s)"), "{}", out.stdout);
    assert!(out.stdout.contains("TM20-002: 5 log(s)"), "{}", out.stdout);
    assert!(out.stdout.contains(&key("rh", &first)), "{}", out.stdout);
    assert!(out.stdout.contains("\"terminal_sn\": \"TM20-001\""), "{}", out.stdout);
    assert!(out.stdout.contains("would pull users from"), "{}", out.stdout);
    let json = env.run(&["--json", "sync-attendance", "--dry-run"], NOW).success();
    let summary: serde_json::Value = serde_json::from_str(json.stdout.trim()).unwrap();
    assert_eq!(
        (summary["planned"].as_u64(), summary["dry_run"].as_bool()),
        (Some(75), Some(true))
    );
    assert!(hr.requests().is_empty(), "a dry run neither pulls nor pushes");
    assert_eq!(format!("{}{}", logs_dump(&env), env.dump()), before);
}

/// The per-service lock makes a second run leave a busy service alone; the
/// claims under it (a leased batch is never taken) are tested with a killed
/// run below and, with several writers at once, in `ledger`'s unit tests.
#[test]
fn overlapping_runs_post_each_log_once() {
    let hr = FakeHr::start();
    let env = setup(&format!("{}batch_size = 10\n", service("rh", &hr, &["TM20-001"])));
    let t = terminal(&env, "TM20-001");
    punches(&env, t, 120);
    hr.set_delay(Duration::from_millis(50));
    let first = env.command(&["sync-attendance"], NOW).spawn().unwrap();
    assert!(hr.wait_posts(1, Duration::from_secs(10)));
    let second = env.run(&["sync-attendance", "--service", "rh"], NOW).success();
    assert!(
        second.stderr.contains("holds the lock of service rh"),
        "{}",
        second.stderr
    );
    env.run_concurrently(4, &["sync-attendance"], &["sync-attendance", "--service", "rh"], NOW);
    assert!(first.wait_with_output().unwrap().status.success());
    env.run(&["sync-attendance"], NOW).success();
    let mut posted: Vec<i64> = hr.posts().iter().flat_map(|p| p.log_ids()).collect();
    posted.sort();
    let before = posted.len();
    posted.dedup();
    assert_eq!(before, posted.len(), "a log posted twice");
    assert_eq!(posted.len(), 120);
    assert_eq!(count(&env, "sent"), 120);
}

#[test]
fn a_run_killed_between_batches_loses_nothing_and_reposts_one_batch_with_its_key() {
    let hr = FakeHr::start();
    let env = setup(&format!("{}batch_size = 10\n", service("rh", &hr, &["TM20-001"])));
    let t = terminal(&env, "TM20-001");
    let ids = punches(&env, t, 30);
    hr.hold(2);
    let mut child = env.command(&["sync-attendance"], NOW).spawn().unwrap();
    assert!(
        hr.wait_posts(2, Duration::from_secs(10)),
        "the run reached its second batch"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    hr.release();
    assert_eq!(count(&env, "sent"), 10, "the first batch's outcome was committed");
    assert_eq!(count(&env, "sending"), 10);

    // At once: the held batch is still leased, the third goes.
    env.run(&["sync-attendance"], NOW).success();
    assert_eq!(hr.posts().len(), 3);
    assert_eq!(hr.posts()[2].log_ids(), ids[20..].to_vec());

    // After the lease (5 s of wall time, to the second), the held batch goes
    // again, whole.
    std::thread::sleep(Duration::from_millis(6_200));
    let out = env.run(&["sync-attendance"], NOW).success();
    assert!(out.stderr.contains("pending again"), "{}", out.stderr);
    let posts = hr.posts();
    assert_eq!(posts.len(), 4);
    assert_eq!(posts[3].log_ids(), ids[10..20].to_vec());
    assert_eq!(posts[3].idempotency_key, posts[1].idempotency_key);
    assert_eq!(count(&env, "sent"), 30);
}

#[test]
fn force_retries_exhausted_logs_but_not_rejected_ones() {
    let hr = FakeHr::start();
    let env = setup(&service("rh", &hr, &["TM20-001"]));
    let t = terminal(&env, "TM20-001");
    let ids = punches(&env, t, 3);
    let db = env.db();
    db.execute(
        "UPDATE attendance_logs SET sync_status = 'failed', sync_attempts = 4, next_attempt_at = ?1 WHERE id = ?2",
        rusqlite::params![at(-3600), ids[0]],
    )
    .unwrap();
    db.execute(
        "UPDATE attendance_logs SET sync_status = 'failed', sync_attempts = 1, next_attempt_at = ?1 WHERE id = ?2",
        rusqlite::params![at(3600), ids[1]],
    )
    .unwrap();
    db.execute(
        "UPDATE attendance_logs SET sync_status = 'failed', sync_attempts = 1, sync_error = 'HTTP 400' WHERE id = ?1",
        [ids[2]],
    )
    .unwrap();
    env.run(&["sync-attendance"], NOW).success();
    assert!(hr.posts().is_empty(), "used up, not yet due, failed for good");
    env.run(&["sync-attendance", "--force"], NOW).success();
    assert_eq!(hr.posts()[0].log_ids(), ids[..2].to_vec());
    assert_eq!(log_state(&env, ids[2]).0, "failed");
}

#[test]
fn an_unreadable_row_fails_alone_and_timeouts_and_refusals_are_temporary() {
    let hr = FakeHr::start();
    let env = setup(&service("rh", &hr, &["TM20-001"]));
    let t = terminal(&env, "TM20-001");
    let ids = punches(&env, t, 3);
    env.db()
        .execute(
            "UPDATE attendance_logs SET punched_at = 'yesterday' WHERE id = ?1",
            [ids[1]],
        )
        .unwrap();
    env.db()
        .execute(
            "UPDATE attendance_logs SET temperature = 'warm' WHERE id = ?1",
            [ids[2]],
        )
        .unwrap();
    let out = env.run(&["sync-attendance"], NOW).code(65);
    assert!(out.stderr.contains("punched_at \"yesterday\""), "{}", out.stderr);
    assert_eq!(hr.posts()[0].log_ids(), vec![ids[0]]);
    let bad = log_state(&env, ids[1]);
    assert_eq!((bad.0.as_str(), bad.2), ("failed", None));
    assert!(bad.3.unwrap().contains("yesterday"));
    assert!(log_state(&env, ids[2]).3.unwrap().contains("temperature"));

    // A server slower than timeout_s (1 s): temporary.
    let more = punches(&env, t, 1);
    hr.set_delay(Duration::from_millis(2_500));
    let out = env.run(&["sync-attendance"], &at(60)).code(75);
    assert!(out.stderr.contains("rh:"), "{}", out.stderr);
    assert_eq!(log_state(&env, more[0]).1, 1);
    assert_eq!(log_state(&env, more[0]).0, "failed");

    // Nobody listening: temporary too.
    let port = free_port();
    write(
        &env,
        &service("rh", &hr, &["TM20-001"]).replace(&hr.base_url(), &format!("http://127.0.0.1:{port}")),
    );
    let out = env.run(&["sync-attendance", "--force"], &at(120)).code(75);
    assert!(out.stderr.contains("users not updated"), "{}", out.stderr);
    let (status, attempts, next, _) = log_state(&env, more[0]);
    assert_eq!((status.as_str(), attempts), ("failed", 2));
    assert!(next.is_some());
}

#[test]
fn config_check_connect_reads_each_users_list() {
    let hr = FakeHr::start();
    let env = setup(&service("rh", &hr, &["TM20-001"]));
    hr.set_users(r#"{"users":[{"enrollid":1,"name":"A"},{"enrollid":2,"name":"B"}]}"#);
    let out = env.run(&["config", "check", "--connect"], NOW).success();
    assert!(
        out.stdout
            .contains("attendance.services.rh: ok (connected, 2 user(s) listed)"),
        "{}",
        out.stdout
    );
    assert_eq!(
        hr.requests()[0].authorization.as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    let count: i64 = env
        .db()
        .query_row("SELECT count(*) FROM rappel_attendance_users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 0, "a check stores nothing");

    write(
        &env,
        &service("rh", &hr, &["TM20-001"]).replace(&hr.base_url(), &format!("http://127.0.0.1:{}", free_port())),
    );
    let out = env.run(&["config", "check", "--connect"], NOW).code(78);
    assert!(out.stdout.contains("attendance.services.rh: failed:"), "{}", out.stdout);
    env.run(&["config", "check"], NOW).success();
}

#[test]
fn an_endpoint_that_is_not_there_fails_one_batch_not_the_backlog() {
    let hr = FakeHr::start();
    let env = setup(&service("rh", &hr, &["TM20-001"]));
    let t = terminal(&env, "TM20-001");
    let ids = punches(&env, t, 250);
    hr.answer_next(404, "<h1>Not Found</h1>", &[]);
    let out = env.run(&["sync-attendance"], NOW).code(65);
    assert!(out.stderr.contains("check attendance_endpoint"), "{}", out.stderr);
    assert_eq!(hr.posts().len(), 1);
    let (status, _, next, error) = log_state(&env, ids[0]);
    assert_eq!((status.as_str(), next), ("failed", None));
    assert!(error.unwrap().contains("HTTP 404"));
    assert_eq!(count(&env, "pending"), 150);
}

/// Punches written in mixed forms (Django's space, `T...Z`, an offset,
/// fractions) go oldest first, across and within batches: compared as
/// instants, never as text.
#[test]
fn punches_in_mixed_forms_go_oldest_first() {
    let hr = FakeHr::start();
    let env = setup(&service("rh", &hr, &[]).replace("timeout_s = 1", "timeout_s = 1\nbatch_size = 2"));
    let t = terminal(&env, "GATE-01");
    // As text: 3 < 4 < 1 < 2 < 5; as instants: 1 < 2 < 3 < 4 < 5.
    for (id, at) in [
        (1, "2026-03-09T07:58:00Z"),
        (2, "2026-03-09T10:01:00.250+02:00"),
        (3, "2026-03-09 12:01:00"),
        (4, "2026-03-09 17:30:00+00:00"),
        (5, "2026-03-09T19:00:00.5+01:00"),
    ] {
        env.db()
            .execute(
                "INSERT INTO attendance_logs (id, terminal_id, enroll_id, punched_at) VALUES (?1, ?2, 42, ?3)",
                rusqlite::params![id, t, at],
            )
            .unwrap();
    }
    env.run(&["sync-attendance"], NOW).success();
    let batches: Vec<Vec<i64>> = hr.posts().iter().map(|p| p.log_ids()).collect();
    assert_eq!(batches, [vec![1, 2], vec![3, 4], vec![5]]);
}
