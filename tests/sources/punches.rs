//! sync-attendance on a Django time-clock server's own tables
//! (`devices_terminal`, `devices_attendancelog`), mapped by
//! `examples/django.toml`: punches pushed to an HR API on 127.0.0.1, the
//! model's sync columns kept up to date, rappel's own record in
//! `rappel_punch_state`, retries, rejections, a reused id and a killed run.

use std::time::Duration;

use super::{HR_FILES, NOW, django, objects, remap};
use crate::support::hr::FakeHr;
use crate::support::{SmtpServer, TestEnv, plus};

/// The Django database and the example's mapping, its HR service posting
/// to `hr` (lease 9 s: more than 4 x the SMTP timeout); migrated.
fn django_hr(smtp: &SmtpServer, hr: &FakeHr, service_extra: &str) -> TestEnv {
    let env = django(smtp, "[delivery]\nlease_s = 9\nretry_base_s = 60\n");
    remap(
        &env,
        HR_FILES,
        &format!(
            "base_url = \"{}\"\nusers_endpoint = \"/api/v1/employees\"\nattendance_endpoint = \"/api/v1/attendance\"\n\
             auth = \"none\"\ntimeout_s = 1\n{service_extra}",
            hr.base_url()
        ),
    );
    env.run(&["db", "migrate"], NOW).success();
    env
}

/// How many punches rappel's record says are sent.
fn recorded_sent(env: &TestEnv) -> i64 {
    env.db()
        .query_row(
            "SELECT count(*) FROM rappel_punch_state WHERE sync_status = 'sent'",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

/// (sync_status, sync_attempts, synced_at, sync_error) of host punch `id`.
type HostSync = (String, i64, Option<String>, Option<String>);

fn host(env: &TestEnv, id: i64) -> HostSync {
    env.db()
        .query_row(
            "SELECT sync_status, sync_attempts, synced_at, sync_error FROM devices_attendancelog WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap()
}

/// Every host punch's sync columns, to compare before and after.
fn host_sync(env: &TestEnv) -> Vec<HostSync> {
    env.rows(
        "SELECT sync_status, sync_attempts, synced_at, sync_error FROM devices_attendancelog ORDER BY id",
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )
}

fn sent(at: &str, attempts: i64) -> HostSync {
    ("sent".into(), attempts, Some(at.into()), None)
}

/// The log ids of every batch posted, in order.
fn posted(hr: &FakeHr) -> Vec<Vec<i64>> {
    hr.posts().iter().map(|p| p.log_ids()).collect()
}

/// `n` more pending punches on terminal 1, a minute apart from 10:00 on 20
/// March (Django's form); their ids.
fn punches(env: &TestEnv, n: usize) -> Vec<i64> {
    let mut db = env.db();
    let tx = db.transaction().unwrap();
    let mut ids = Vec::new();
    for i in 0..n {
        tx.execute(
            "INSERT INTO devices_attendancelog (terminal_id, enrollid, user_name, \"time\", mode, \"inout\", event, access_granted)
             VALUES (1, 200, 'Lina Ella', ?1, 1, ?2, 0, 1)",
            rusqlite::params![format!("2026-03-20 10:{:02}:00", i % 60), (i % 2) as i64],
        )
        .unwrap();
        ids.push(tx.last_insert_rowid());
    }
    tx.commit().unwrap();
    ids
}

#[test]
fn punches_are_pushed_from_the_hosts_table_and_its_sync_columns_kept_up_to_date() {
    let smtp = SmtpServer::start();
    let hr = FakeHr::start();
    let env = django_hr(&smtp, &hr, "");
    // A terminal with its own zone: its punches without an offset are read there.
    remap(
        &env,
        "name = \"nom\"",
        "name = \"nom\"\ntimezone = \"CASE sn WHEN 'TM20-002' THEN 'Europe/Paris' END\"",
    );
    let host_schema = |env: &TestEnv| -> String {
        env.db()
            .query_row(
                "SELECT group_concat(sql, ';') FROM sqlite_master WHERE tbl_name LIKE 'devices_%'",
                [],
                |r| r.get(0),
            )
            .unwrap()
    };
    let before = host_schema(&env);
    // A dry run reads the host's table whole and writes nothing.
    let records = |env: &TestEnv| -> i64 {
        env.db()
            .query_row("SELECT count(*) FROM rappel_punch_state", [], |r| r.get(0))
            .unwrap()
    };
    // A punch the host marks `sending` is a claim no run holds: pending.
    env.db()
        .execute(
            "UPDATE devices_attendancelog SET sync_status = 'sending' WHERE id = 2",
            [],
        )
        .unwrap();
    let unsynced = (host_sync(&env), records(&env));
    let out = env.run(&["sync-attendance", "--dry-run"], NOW).success();
    assert!(
        out.stdout.contains("rh: would push 3 log(s) in 1 batch(es)")
            && out.stdout.contains("TM20-001: 2 log(s)")
            && out.stdout.contains("TM20-002: 1 log(s)"),
        "{}",
        out.stdout
    );
    assert!(hr.requests().is_empty(), "a dry run neither pulls nor pushes");
    assert_eq!((host_sync(&env), records(&env)), unsynced);
    env.run(&["sync-attendance"], NOW).success();
    assert_eq!(host_schema(&env), before, "the host's tables are untouched");
    let objects = objects(&env);
    for mapped in ["table terminals", "table attendance_logs"] {
        assert!(!objects.iter().any(|o| o == mapped), "{mapped} created: {objects:?}");
    }
    let posts = hr.posts();
    assert_eq!(posts.len(), 1);
    let body: serde_json::Value = serde_json::from_str(&posts[0].body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"attendance": [
            {"terminal_sn": "TM20-001", "enrollid": 101, "user_name": "Awa Mba", "time": "2026-03-20T06:58:12Z",
             "mode": 1, "inout": 0, "event": 0, "temperature": 36.5, "access_granted": true, "log_id": 2},
            {"terminal_sn": "TM20-001", "enrollid": 102, "user_name": "Jean Obiang", "time": "2026-03-20T07:02:40Z",
             "mode": 1, "inout": 0, "event": 0, "temperature": null, "access_granted": true, "log_id": 3},
            // 08:30 in Paris (UTC+1) is 07:30 UTC: after the 07:02 punch.
            {"terminal_sn": "TM20-002", "enrollid": 101, "user_name": "Awa Mba", "time": "2026-03-20T07:30:00Z",
             "mode": 1, "inout": 1, "event": 0, "temperature": 36.6, "access_granted": true, "log_id": 4},
        ]}),
        "punch 1, sent by the host before rappel, does not go"
    );
    // The host's columns, in its forms: the contract's words, UTC without an offset.
    for id in 2..=4 {
        assert_eq!(host(&env, id), sent("2026-03-20 09:00:00", 1), "punch {id}");
    }
    assert_eq!(host(&env, 1), sent("2026-03-19 17:00:05", 1), "left as it was");
    let state = env.rows3("SELECT log_id, punched_at, sync_status FROM rappel_punch_state ORDER BY log_id");
    assert_eq!(
        state,
        [
            (2, "2026-03-20 06:58:12".to_string(), "sent".to_string()),
            (3, "2026-03-20 07:02:40".to_string(), "sent".to_string()),
            (4, "2026-03-20 08:30:00".to_string(), "sent".to_string()),
        ],
        "rappel's record, keyed by the punch's id and time as the host wrote it"
    );
    // A terminal's sync time is kept under the host's terminal id.
    let synced: Vec<(i64, String)> = env.rows(
        "SELECT terminal_id, last_attendance_sync FROM rappel_terminal_sync_state ORDER BY 1",
        |r| Ok((r.get(0)?, r.get(1)?)),
    );
    assert_eq!(
        synced,
        [(1, NOW.to_string()), (2, NOW.to_string())],
        "under the host's terminal ids"
    );
    env.run(&["sync-attendance"], &plus(NOW, 600)).success();
    assert_eq!(hr.posts().len(), 1, "nothing twice");
    // A new punch the host writes goes in the next run, alone.
    let new = punches(&env, 1);
    env.run(&["sync-attendance"], &plus(NOW, 900)).success();
    assert_eq!(posted(&hr), [vec![2, 3, 4], new]);
}

#[test]
fn punches_of_a_terminal_no_service_takes_are_pointed_out_not_lost() {
    let smtp = SmtpServer::start();
    let hr = FakeHr::start();
    let env = django_hr(&smtp, &hr, "terminals = [\"TM20-001\"]\n");
    // And a punch under a terminal id no terminal has (a host that does not
    // enforce its foreign keys).
    let db = env.db();
    db.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
    db.execute(
        "INSERT INTO devices_attendancelog (terminal_id, enrollid, user_name, \"time\", mode, \"inout\", event,
                                                access_granted)
             VALUES (9, 103, 'Lina', '2026-03-20 08:45:00', 1, 0, 0, 1)",
        [],
    )
    .unwrap();
    let out = env.run(&["sync-attendance"], NOW).success();
    assert!(
        out.stderr.contains("no [attendance.services] entry takes") && out.stderr.contains("TM20-002 (1)"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("terminal ids the terminals table does not have")
            && out.stderr.contains("terminal_id 9 (1)"),
        "{}",
        out.stderr
    );
    assert_eq!(posted(&hr), [vec![2, 3]]);
    assert_eq!(host(&env, 4).0, "pending");
    let out = env.run(&["sources", "attendance_logs"], NOW).code(65);
    assert!(
        out.stdout
            .contains("terminal_id: 1 row under a terminal id the terminals table does not have, e.g. 9"),
        "{}",
        out.stdout
    );
}

#[test]
fn punches_read_through_a_query_are_recorded_by_rappel_alone() {
    let smtp = SmtpServer::start();
    let hr = FakeHr::start();
    let env = django_hr(&smtp, &hr, "");
    let config = std::fs::read_to_string(env.config_path()).unwrap();
    let (from, to) = ("[sources.attendance_logs]", "sync_error = \"sync_error\"\n");
    let table = config
        .find(from)
        .and_then(|at| {
            config[at..]
                .find(to)
                .map(|len| config[at..at + len + to.len()].to_string())
        })
        .unwrap();
    // Only punches clocked in (inout 0), through a query: nothing of the
    // host's can be kept up to date, so no [update].
    remap(
        &env,
        &table,
        "[sources.attendance_logs]\nquery = \"\"\"\nSELECT id, terminal_id, enrollid AS enroll_id, user_name, \"time\" AS punched_at,
       mode, \"inout\" AS inout, event, temperature, access_granted, sync_status
FROM devices_attendancelog WHERE \"inout\" = 0\n\"\"\"\n",
    );
    let before = host_sync(&env);
    env.run(&["sync-attendance"], NOW).success();
    assert_eq!(
        posted(&hr),
        [vec![2, 3]],
        "punch 4 clocks out; punch 1 the host had sent"
    );
    assert_eq!(host_sync(&env), before, "nothing of the host's written");
    let recorded = recorded_sent(&env);
    assert_eq!(recorded, 2);
    env.run(&["sync-attendance"], &plus(NOW, 600)).success();
    assert_eq!(hr.posts().len(), 1, "sent once");
}

/// A punch in a state none of the four ('PENDING', 'synced') is never
/// pushed: every run says so (exit 65), and the others go.
#[test]
fn a_punch_in_a_state_rappel_does_not_know_is_named_on_every_run() {
    let smtp = SmtpServer::start();
    let hr = FakeHr::start();
    let env = django_hr(&smtp, &hr, "");
    env.db()
        .execute_batch(
            "UPDATE devices_attendancelog SET sync_status = 'PENDING' WHERE id = 2;
             UPDATE devices_attendancelog SET sync_status = 'synced' WHERE id = 3;",
        )
        .unwrap();
    let out = env.run(&["sync-attendance"], NOW).code(65);
    assert!(
        out.stderr
            .contains("[sources.attendance_logs]: 2 row(s) of yours left out")
            && out
                .stderr
                .contains("or a sync_status none of pending, sending, sent and failed"),
        "{}",
        out.stderr
    );
    assert_eq!(posted(&hr), [vec![4]], "punch 1 the host had sent");
}

/// A host punch the mapping cannot use (no time) is named by every run
/// (exit 65); the others go.
#[test]
fn a_punch_the_mapping_cannot_use_is_named_on_every_run() {
    let smtp = SmtpServer::start();
    let hr = FakeHr::start();
    let env = django_hr(&smtp, &hr, "");
    let config = std::fs::read_to_string(env.config_path()).unwrap();
    // The time read through an expression that gives nothing for punch 3.
    env.write_config(&config.replace(
        "punched_at = \"time\"",
        "punched_at = \"CASE WHEN id = 3 THEN NULL ELSE \\\"time\\\" END\"",
    ));
    let out = env.run(&["sync-attendance"], NOW).code(65);
    assert!(
        out.stderr
            .contains("[sources.attendance_logs]: 1 row(s) of yours left out"),
        "{}",
        out.stderr
    );
    assert_eq!(posted(&hr), [vec![2, 4]]);
    let out = env.run(&["sync-attendance", "--dry-run"], &plus(NOW, 60)).code(65);
    assert!(out.stderr.contains("1 row(s) of yours left out"), "{}", out.stderr);
}

/// Two host punches under one id (a query over the live table and its
/// archive): rappel would record the one it did not send as sent with the
/// other, so sync-attendance stops, naming the id, and nothing is posted.
#[test]
fn two_punches_under_one_id_stop_the_sync_and_name_the_id() {
    let smtp = SmtpServer::start();
    let hr = FakeHr::start();
    let env = django_hr(&smtp, &hr, "");
    env.db()
        .execute_batch(
            "CREATE TABLE devices_attendancelog_archive AS SELECT * FROM devices_attendancelog WHERE 0;
             INSERT INTO devices_attendancelog_archive
             VALUES (2, 2, 555, 'Archive', '2026-03-19 17:00:00', 1, 1, 0, NULL, 1, 'pending', 0, NULL, NULL);",
        )
        .unwrap();
    let config = std::fs::read_to_string(env.config_path()).unwrap();
    let (from, to) = ("[sources.attendance_logs]", "sync_error = \"sync_error\"\n");
    let at = config.find(from).unwrap();
    let len = config[at..].find(to).unwrap() + to.len();
    let columns = "id, terminal_id, enrollid AS enroll_id, user_name, \"time\" AS punched_at, mode, \"inout\" AS inout, \
                   event, temperature, access_granted, sync_status";
    remap(
        &env,
        &config[at..at + len],
        &format!(
            "[sources.attendance_logs]\nquery = \"\"\"\nSELECT {columns} FROM devices_attendancelog\n\
             UNION ALL SELECT {columns} FROM devices_attendancelog_archive\n\"\"\"\n"
        ),
    );
    let out = env.run(&["sync-attendance"], NOW).code(78);
    assert!(
        out.stderr.contains("[sources.attendance_logs]: id 2 is on 2 rows"),
        "{}",
        out.stderr
    );
    assert!(posted(&hr).is_empty(), "nothing posted: {:?}", posted(&hr));
    let recorded = recorded_sent(&env);
    assert_eq!(recorded, 0);
}

#[test]
fn a_failed_batch_is_retried_later_and_a_rejected_punch_fails_for_good_in_the_hosts_columns() {
    let smtp = SmtpServer::start();
    let hr = FakeHr::start();
    let env = django_hr(&smtp, &hr, "");
    hr.answer_next(500, "upstream exploded", &[]);
    let out = env.run(&["sync-attendance"], NOW).code(75);
    assert!(out.stderr.contains("HTTP 500"), "{}", out.stderr);
    let (status, attempts, synced_at, error) = host(&env, 2);
    assert_eq!((status.as_str(), attempts, synced_at), ("failed", 1, None));
    assert!(
        error.unwrap().contains("upstream exploded"),
        "the reason, in the host's column"
    );
    let next: String = env
        .db()
        .query_row(
            "SELECT next_attempt_at FROM rappel_punch_state WHERE log_id = 2",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        next.as_str() >= plus(NOW, 54).as_str() && next.as_str() <= plus(NOW, 66).as_str(),
        "{next}"
    );

    env.run(&["sync-attendance"], &plus(NOW, 30)).success();
    assert_eq!(hr.posts().len(), 1, "not before its time");
    // The next answer accepts two punches and rejects the third.
    hr.answer_next(
        200,
        r#"{"results":[{"log_id":2,"status":"created"},{"log_id":3,"status":"duplicate"},
                       {"log_id":4,"status":"rejected","error":"unknown enrollid 101 on TM20-002"}]}"#,
        &[],
    );
    env.run(&["sync-attendance"], &plus(NOW, 120)).code(65);
    let posts = hr.posts();
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[1].log_ids(), [2, 3, 4]);
    assert_eq!(
        posts[1].idempotency_key, posts[0].idempotency_key,
        "the same batch, the same key"
    );
    let at = plus(NOW, 120).replace('T', " ").replace('Z', "");
    assert_eq!(host(&env, 2), sent(&at, 2), "attempts counted in the host's column");
    assert_eq!(host(&env, 3), sent(&at, 2));
    assert_eq!(
        host(&env, 4),
        (
            "failed".into(),
            2,
            None,
            Some("rejected by the API: unknown enrollid 101 on TM20-002".into())
        )
    );
    env.run(&["sync-attendance"], &plus(NOW, 86_400)).success();
    assert_eq!(hr.posts().len(), 2, "a rejected punch is not tried again");
}

#[test]
fn a_punch_under_a_reused_id_goes_as_a_new_punch() {
    let smtp = SmtpServer::start();
    let hr = FakeHr::start();
    let env = django_hr(&smtp, &hr, "");
    env.run(&["sync-attendance"], NOW).success();
    assert_eq!(posted(&hr), [vec![2, 3, 4]]);
    // The host deletes punch 3 and writes another under its id (an explicit
    // id, below the highest: out of id order too), and punch 9, which it
    // says it sent itself.
    env.db()
        .execute_batch(
            "DELETE FROM devices_attendancelog WHERE id = 3;
             INSERT INTO devices_attendancelog (id, terminal_id, enrollid, user_name, \"time\", mode, \"inout\", event, access_granted)
               VALUES (3, 1, 102, 'Jean Obiang', '2026-03-20 09:10:00', 1, 1, 0, 0);
             INSERT INTO devices_attendancelog (id, terminal_id, enrollid, user_name, \"time\", mode, \"inout\", event,
                                                access_granted, sync_status, sync_attempts, synced_at)
               VALUES (9, 1, 104, 'Sam Carter', '2026-03-20 09:11:00', 1, 0, 0, 1, 'sent', 1, '2026-03-20 09:11:01');",
        )
        .unwrap();
    env.run(&["sync-attendance"], &plus(NOW, 900)).success();
    let posts = hr.posts();
    assert_eq!(
        posts.len(),
        2,
        "the new punch 3 goes; punch 9, sent by the host, does not"
    );
    let item = &serde_json::from_str::<serde_json::Value>(&posts[1].body).unwrap()["attendance"];
    assert_eq!(item.as_array().map(Vec::len), Some(1));
    assert_eq!(item[0]["log_id"], 3);
    assert_eq!(item[0]["time"], "2026-03-20T09:10:00Z");
    assert_eq!(item[0]["access_granted"], false);
    let at = plus(NOW, 900).replace('T', " ").replace('Z', "");
    assert_eq!(host(&env, 3), sent(&at, 1), "a new punch, its first attempt");
    let records: i64 = env
        .db()
        .query_row("SELECT count(*) FROM rappel_punch_state WHERE log_id = 3", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(records, 2, "the deleted punch's record and the new one's, apart");
    env.run(&["sync-attendance"], &plus(NOW, 1800)).success();
    assert_eq!(hr.posts().len(), 2);
    // `purge --include-attendance` forgets the deleted punch's record only;
    // the host's punches are never deleted.
    let out = env
        .run(
            &["purge", "--older-than", "7d", "--include-attendance"],
            &plus(NOW, 8 * 86_400),
        )
        .success();
    assert!(
        out.stdout
            .contains("deleted 1 records of synced punches gone from the host's table"),
        "{}",
        out.stdout
    );
    let (records, host_rows): (i64, i64) = env
        .db()
        .query_row(
            "SELECT (SELECT count(*) FROM rappel_punch_state), (SELECT count(*) FROM devices_attendancelog)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((records, host_rows), (3, 5));
    env.run(&["sync-attendance"], &plus(NOW, 8 * 86_400)).success();
    assert_eq!(hr.posts().len(), 2, "nothing pushed again once purged");
}

#[test]
fn a_run_killed_mid_send_loses_nothing_and_sends_nothing_twice() {
    let smtp = SmtpServer::start();
    let hr = FakeHr::start();
    let env = django_hr(&smtp, &hr, "batch_size = 10\n");
    let ids = punches(&env, 27);
    let mut all = vec![2, 3, 4];
    all.extend(&ids);
    hr.hold(2);
    let mut child = env.command(&["sync-attendance"], NOW).spawn().unwrap();
    assert!(
        hr.wait_posts(2, Duration::from_secs(10)),
        "the run reached its second batch"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    hr.release();
    let statuses = |env: &TestEnv| -> Vec<String> {
        env.rows(
            "SELECT sync_status FROM devices_attendancelog WHERE id > 1 ORDER BY \"time\", id",
            |r| r.get(0),
        )
    };
    let s = statuses(&env);
    assert!(
        s[..10].iter().all(|s| s == "sent") && s[10..20].iter().all(|s| s == "sending"),
        "the first batch's outcome was committed; the held one is still claimed: {s:?}"
    );

    // At once: the held batch is still leased, the third goes.
    env.run(&["sync-attendance"], NOW).success();
    assert_eq!(hr.posts().len(), 3);
    assert_eq!(hr.posts()[2].log_ids(), all[20..].to_vec());
    // After the lease (9 s of wall time, to the second), the held batch
    // goes again, whole.
    std::thread::sleep(Duration::from_millis(10_500));
    let out = env.run(&["sync-attendance"], NOW).success();
    assert!(out.stderr.contains("pending again"), "{}", out.stderr);
    let posts = hr.posts();
    assert_eq!(posts.len(), 4);
    assert_eq!(posts[3].log_ids(), all[10..20].to_vec());
    assert_eq!(posts[3].idempotency_key, posts[1].idempotency_key);
    assert!(statuses(&env).iter().all(|s| s == "sent"));
    // Each punch posted once, but the batch in flight when the run was
    // killed, posted again under its key.
    let mut each: Vec<i64> = posts.iter().flat_map(|p| p.log_ids()).collect();
    each.sort();
    let mut expected: Vec<i64> = all.iter().chain(&all[10..20]).copied().collect();
    expected.sort();
    assert_eq!(each, expected);
    env.run(&["sync-attendance"], &plus(NOW, 60)).success();
    assert_eq!(hr.posts().len(), 4);
}

#[test]
fn sources_shows_the_time_clock_and_a_bad_mapping_is_named() {
    let smtp = SmtpServer::start();
    let env = django(&smtp, "");
    env.run(&["db", "migrate"], NOW).success();
    let out = env.run(&["sources", "attendance_logs", "--rows", "2"], NOW).success();
    assert!(
        out.stdout
            .starts_with("attendance_logs: table \"devices_attendancelog\" ([sources.attendance_logs]), 4 rows\n"),
        "{}",
        out.stdout
    );
    for line in [
        "  punched_at = time\n",
        "  kept up to date: sync_status <- sync_status\n",
        "  kept up to date: synced_at <- synced_at\n",
        "punched_at 2026-03-19T17:00:00Z (2026-03-19 18:00 Africa/Libreville)",
        "temperature 36.5, access_granted yes, sync_status \"pending\"",
        "  every value reads\n",
    ] {
        assert!(out.stdout.contains(line), "{line}: {}", out.stdout);
    }
    let out = env.run(&["sources", "terminals"], NOW).success();
    assert!(
        out.stdout
            .contains("terminals: table \"devices_terminal\" ([sources.terminals]), 2 rows\n")
            && out
                .stdout
                .contains("id 1, serial \"TM20-001\", name \"Entrée\", timezone none"),
        "{}",
        out.stdout
    );
    // A date alone where rappel writes when it sent (a `date` column under
    // `update`, as PostgreSQL keeps it): it reads; what is not even a date
    // is named.
    let synced = |value: &str| {
        env.db()
            .execute("UPDATE devices_attendancelog SET synced_at = ?1 WHERE id = 1", [value])
            .unwrap();
    };
    synced("2026-03-19");
    let out = env.run(&["sources", "attendance_logs", "--rows", "1"], NOW).success();
    assert!(
        out.stdout.contains("  every value reads\n") && out.stdout.contains("synced_at 2026-03-19 (a day, in "),
        "{}",
        out.stdout
    );
    synced("yesterday");
    let out = env.run(&["sources", "attendance_logs"], NOW).code(65);
    assert!(
        out.stdout
            .contains("  synced_at: 1 of 4 rows not an instant or a date, e.g. \"yesterday\""),
        "{}",
        out.stdout
    );
    synced("2026-03-19 17:00:05");

    // A status the contract does not know: such a punch is never pushed, and said so.
    env.db()
        .execute(
            "UPDATE devices_attendancelog SET sync_status = 'synced' WHERE id = 1",
            [],
        )
        .unwrap();
    let out = env.run(&["sources", "attendance_logs"], NOW).code(65);
    assert!(
        out.stdout.contains(
            "  sync_status: 1 of 4 rows not pending, sending, sent or failed: such a punch is never pushed, e.g. \"synced\""
        ),
        "{}",
        out.stdout
    );

    for (from, to, says) in [
        (
            "punched_at = \"time\"",
            "punched_at = \"heure\"",
            "[sources.attendance_logs]: no such column: heure",
        ),
        (
            "serial = \"sn\"\n",
            "",
            "[sources.terminals]: column `serial` is not in table \"devices_terminal\"; map it to a column or an SQL \
             expression over that table under [sources.terminals.columns] (serial = \"...\")",
        ),
        (
            "sync_error = \"sync_error\"",
            "sync_error = \"erreur\"",
            "[sources.attendance_logs.update]: sync_error = \"erreur\": no such column in table \"devices_attendancelog\"",
        ),
        (
            "sync_error = \"sync_error\"",
            "sync_error = \"user_name\"",
            "[sources.attendance_logs.update]: sync_error = \"user_name\": the column is NOT NULL",
        ),
        (
            "sync_error = \"sync_error\"",
            "sync_error = \"time\"",
            "[sources.attendance_logs.update]: sync_error = \"time\": that column names the row",
        ),
    ] {
        let original = std::fs::read_to_string(env.config_path()).unwrap();
        remap(&env, from, to);
        for args in [&["sync-attendance"][..], &["config", "check"]] {
            let out = env.run(args, NOW).code(78);
            assert!(out.stderr.contains(says), "{args:?}: {says}: {}", out.stderr);
        }
        env.write_config(&original);
    }
}

/// A database rappel 7 made with the contract's time-clock tables (its
/// terminals' sync state referring to `terminals`), then pointed at the
/// host's own: the upgrade keeps nothing referring to the contract table,
/// so the sync state takes the host's terminal ids with foreign keys on.
#[test]
fn an_upgraded_database_keeps_terminal_sync_state_for_the_hosts_terminals() {
    let smtp = SmtpServer::start();
    let hr = FakeHr::start();
    let env = django_hr(&smtp, &hr, "");
    env.db()
        .execute_batch(
            "DROP INDEX rappel_deliveries_replaces;
             ALTER TABLE rappel_deliveries DROP COLUMN replaces_id;
             DROP TABLE rappel_punch_state;
             DROP TABLE rappel_terminal_sync_state;
             CREATE TABLE terminals (id INTEGER PRIMARY KEY, serial TEXT NOT NULL UNIQUE, name TEXT, timezone TEXT);
             CREATE TABLE \"rappel_terminal_sync_state\" (terminal_id INTEGER NOT NULL REFERENCES terminals(id),
                 service TEXT NOT NULL, last_attendance_sync TEXT, last_users_sync TEXT, PRIMARY KEY (terminal_id, service));
             UPDATE rappel_meta SET value = '7' WHERE key = 'schema_version';",
        )
        .unwrap();
    env.run(&["sync-attendance"], NOW).success();
    assert_eq!(posted(&hr), [vec![2, 3, 4]]);
    let (version, sql, rows): (String, String, i64) = env
        .db()
        .query_row(
            "SELECT (SELECT value FROM rappel_meta WHERE key = 'schema_version'),
                    (SELECT sql FROM sqlite_master WHERE name = 'rappel_terminal_sync_state'),
                    (SELECT count(*) FROM rappel_terminal_sync_state)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(version, "9");
    assert!(!sql.contains("REFERENCES"), "{sql}");
    assert_eq!(rows, 2, "both host terminals' sync times");
}

/// A host trigger that refuses the punches' `sent` update: the batch was
/// posted, so rappel records it sent in its own record all the same (exit
/// 74 naming the update), and no later run posts it again.
#[test]
fn a_host_row_that_refuses_its_update_does_not_get_its_batch_posted_again() {
    let smtp = SmtpServer::start();
    let hr = FakeHr::start();
    let env = django_hr(&smtp, &hr, "");
    env.db()
        .execute_batch(
            "CREATE TRIGGER refuse BEFORE UPDATE OF sync_status ON devices_attendancelog
             WHEN NEW.sync_status = 'sent' BEGIN SELECT RAISE(ABORT, 'the host says no'); END;",
        )
        .unwrap();
    let out = env.run(&["sync-attendance"], NOW).code(74);
    assert!(
        out.stderr.contains("[sources.attendance_logs.update]") && out.stderr.contains("the host says no"),
        "{}",
        out.stderr
    );
    let first = posted(&hr);
    assert_eq!(first.len(), 1, "{first:?}");
    let sent = recorded_sent(&env);
    assert_eq!(sent, first[0].len() as i64, "recorded in rappel's own record");
    // Past the lease (9 s of wall time), twice: nothing posted again.
    std::thread::sleep(Duration::from_secs(10));
    env.run(&["sync-attendance"], &plus(NOW, 60)).success();
    env.run(&["sync-attendance"], &plus(NOW, 3600)).success();
    assert_eq!(posted(&hr), first, "never posted again");
}
