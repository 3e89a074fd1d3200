//! The time matrix: every reminder kind, a delay alert and a recurring report
//! in four zones, `run-all` driven with `--now` every 10 minutes through both
//! DST changes of 2026. Every slot is set to a local time that the change
//! skips or repeats, so each message must go exactly once, at its local time,
//! at the end of a spring-forward gap, or at the earlier of two instants.

use crate::support;

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use rusqlite::params;
use support::{Backend, TestEnv, free_port, instant as text};

/// A zone, the local date of a DST change (or, for a zone without DST, of
/// Paris's) and a local time that change skips or repeats.
struct Window {
    zone: Tz,
    day: NaiveDate,
    at: &'static str,
}

fn windows() -> Vec<Window> {
    let w = |zone, (y, m, d), at| Window {
        zone,
        day: NaiveDate::from_ymd_opt(y, m, d).unwrap(),
        at,
    };
    use chrono_tz::{Africa, America, Australia, Europe};
    vec![
        w(Europe::Paris, (2026, 3, 29), "02:30"),        // 02:00 -> 03:00
        w(Europe::Paris, (2026, 10, 25), "02:30"),       // 03:00 -> 02:00
        w(America::New_York, (2026, 3, 8), "02:30"),     // 02:00 -> 03:00
        w(America::New_York, (2026, 11, 1), "01:30"),    // 02:00 -> 01:00
        w(Australia::Lord_Howe, (2026, 4, 5), "01:45"),  // 02:00 -> 01:30
        w(Australia::Lord_Howe, (2026, 10, 4), "02:15"), // 02:00 -> 02:30
        w(Africa::Libreville, (2026, 3, 29), "02:30"),   // no DST
        w(Africa::Libreville, (2026, 10, 25), "02:30"),
    ]
}

/// A local wall time as an instant, by DESIGN's rule: inside a gap, the first
/// instant after it; when it happens twice, the earlier.
fn local(zone: Tz, day: NaiveDate, time: &str) -> DateTime<Utc> {
    let naive = NaiveDateTime::new(day, NaiveTime::parse_from_str(time, "%H:%M").unwrap());
    match zone.from_local_datetime(&naive) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.with_timezone(&Utc),
        LocalResult::None => (1..=180)
            .find_map(|m| zone.from_local_datetime(&(naive + Duration::minutes(m))).earliest())
            .expect("gaps last less than three hours")
            .with_timezone(&Utc),
    }
}

/// The matrix's configuration in `zone`, email to files, with `delivery`
/// added to `[delivery]`.
fn config(zone: Tz, delivery: &str) -> String {
    format!(
        r#"database = "rappel.db"
timezone = "{zone}"
locale = "en"

[email]
from = "Rappel <rappel@example.com>"
transport = "file"

[delivery]
lease_s = 10
{delivery}"#
    )
}

/// The first run at or after `at` of runs every 10 minutes from `start`.
fn first_run(start: DateTime<Utc>, at: DateTime<Utc>) -> DateTime<Utc> {
    let n = (at - start).num_seconds().max(0);
    start + Duration::seconds((n + 599) / 600 * 600)
}

/// A message as the matrix compares it: kind, source row (0 when the source
/// is re-created by rappel: recurring reports, alerts), and when it went.
type Sent = (String, i64, DateTime<Utc>);

/// Runs one window; returns the differences, or nothing.
/// Runs window `w` on `backend`; mapped, every input table but the reports
/// is the host's, mapped in `[sources]` (a mapped report row does not recur).
fn run_window(w: &Window, backend: Backend) -> Vec<String> {
    let (z, d, t) = (w.zone, w.day, w.at);
    let day = |n: i64| d + Duration::days(n);
    // From noon the day before to noon the day after, every 10 minutes.
    let start = local(z, day(-1), "12:00");
    let end = local(z, day(1), "12:00");
    let step = |at: DateTime<Utc>| first_run(start, at);

    let mut env = TestEnv::new(free_port(), "");
    env.write_config(&format!(
        r#"{}
[delay_alerts]
threshold_days = 1

[reports.definitions.daily]
query = "SELECT 1 AS one"

[reminders]
loan_d2_at = "{t}"
loan_d1_at = "{t}"
loan_due_at = "{t}"
loan_overdue_at = "{t}"
session_eve_at = "{t}"
session_day_at = "{t}"
inactivity_at = "{t}"
weekly_digest_at = "sun {t}"
"#,
        config(z, "")
    ));
    let db = env.db();
    let contact = |name: &str| {
        db.execute(
            "INSERT INTO contacts (name, email) VALUES (?1, ?2)",
            params![name, format!("{}@example.com", name.to_lowercase())],
        )
        .unwrap();
        db.last_insert_rowid()
    };
    let mut expected: Vec<Sent> = Vec::new();
    let mut expect = |kind: &str, source: i64, at: DateTime<Utc>| expected.push((kind.into(), source, step(at)));
    let at_t = |n: i64| local(z, day(n), t);

    // Loans, all lent at the window's start: each gets loan_created then.
    let borrower = contact("Borrower");
    let loan = |term: &str, due: DateTime<Utc>| {
        db.execute(
            "INSERT INTO loans (contact_id, item, term, lent_at, due_at) VALUES (?1, 'Drill', ?2, ?3, ?4)",
            params![borrower, term, text(start), text(due)],
        )
        .unwrap();
        db.last_insert_rowid()
    };
    let l = loan("long", local(z, day(2), "18:00"));
    expect("loan_created", l, start);
    expect("loan_d2", l, at_t(0));
    expect("loan_d1", l, at_t(1));
    let l = loan("long", local(z, day(1), "18:00"));
    expect("loan_created", l, start);
    expect("loan_d1", l, at_t(0));
    expect("loan_due", l, at_t(1));
    let l = loan("long", local(z, day(0), "18:00"));
    expect("loan_created", l, start);
    expect("loan_due", l, at_t(0));
    expect("loan_overdue", l, at_t(1));
    // Due the evening before: its loan_due slot (that morning) is before
    // lent_at, so none; overdue on the day of the change and the next.
    let l = loan("long", local(z, day(-1), "20:00"));
    expect("loan_created", l, start);
    expect("loan_overdue", l, at_t(0));
    expect("loan_overdue", l, at_t(1));
    // Short notice: two hours of elapsed time before due_at, across the change.
    let due = local(z, day(0), "04:00");
    let l = loan("short", due);
    expect("loan_created", l, start);
    expect("loan_short_notice", l, due - Duration::hours(2));
    expect("loan_due", l, at_t(0));
    expect("loan_overdue", l, at_t(1));
    // Returned at the changed time: the host writes returned_at when it happens.
    let returned_loan = loan("long", local(z, day(10), "18:00"));
    let returned_at = at_t(0);
    expect("loan_created", returned_loan, start);
    expect("loan_returned", returned_loan, returned_at);

    // Students, subscribed long ago; all get the Sunday digest.
    let student = |name: &str, last_active: DateTime<Utc>| {
        let c = contact(name);
        db.execute(
            "INSERT INTO students (contact_id, subscribed_at, last_active_at) VALUES (?1, '2026-01-01T00:00:00Z', ?2)",
            params![c, text(last_active)],
        )
        .unwrap();
        db.last_insert_rowid()
    };
    let session = |student: i64, starts: DateTime<Utc>| {
        db.execute(
            "INSERT INTO revision_sessions (student_id, subject, starts_at) VALUES (?1, 'Maths', ?2)",
            params![student, text(starts)],
        )
        .unwrap();
        db.last_insert_rowid()
    };
    let s = student("Ada", start);
    expect("weekly_digest", s, at_t(0));
    let r = session(s, local(z, day(1), "10:00"));
    expect("session_eve", r, at_t(0));
    expect("session_day", r, at_t(1));
    let s = student("Ben", start);
    expect("weekly_digest", s, at_t(0));
    let r = session(s, local(z, day(0), "09:00"));
    // Its eve slot (the night before) is still valid at the first run.
    expect("session_eve", r, start);
    expect("session_day", r, at_t(0));
    // Inactive from the day of the change (3 local days after its last visit).
    let s = student("Cleo", local(z, day(-3), "12:00"));
    expect("weekly_digest", s, at_t(0));
    expect("inactivity", s, at_t(0));
    expect("inactivity", s, at_t(1));
    db.execute(
        "INSERT INTO manual_reminders (student_id, message, created_at) VALUES (?1, 'Bring the book', ?2)",
        params![s, text(at_t(0))],
    )
    .unwrap();
    expect("manual", db.last_insert_rowid(), at_t(0));

    // A stage entered 21 h 55 min before the window: overdue after 24 h, at
    // 14:05 local; alerted by the first run after, then the next day at the
    // same local time, whatever the change did to the clock in between.
    let c = contact("Workshop");
    env.recipient(c, None);
    env.ticket("T-1", &[("Diagnostic", &text(start - Duration::minutes(21 * 60 + 55)))]);
    expect("delay_alert", 0, local(z, day(-1), "14:05"));
    expect("delay_alert", 0, local(z, day(0), "14:05"));

    // A daily report at the changed time, from the day of the change.
    db.execute(
        "INSERT INTO scheduled_reports (title, recipients, scheduled_at, report, recurrence)
         VALUES ('Daily', 'boss@example.com', ?1, 'daily', ?2)",
        params![text(at_t(0)), format!("{} {} * * *", &t[3..5], &t[0..2])],
    )
    .unwrap();
    expect("report", 0, at_t(0));
    expect("report", 0, at_t(1));
    let tables = [
        "contacts",
        "loans",
        "students",
        "revision_sessions",
        "manual_reminders",
        "alert_recipients",
        "tickets",
        "ticket_events",
    ];
    backend.place(&mut env, &tables, "time");
    let loans = if backend.mapped {
        support::host::host_table("loans")
    } else {
        "loans".to_string()
    };

    let mut wrong = Vec::new();
    let mut now = start;
    while now <= end {
        if now >= returned_at {
            db.execute(
                &format!("UPDATE {loans} SET returned_at = ?1 WHERE id = ?2 AND returned_at IS NULL"),
                params![text(returned_at), returned_loan],
            )
            .unwrap();
        }
        let out = env.run(&["-q", "run-all"], &text(now));
        if out.code != 0 {
            wrong.push(format!(
                "{z} {d}: run at {} exited {}: {}",
                text(now),
                out.code,
                out.stderr
            ));
        }
        now += Duration::minutes(10);
    }

    let mut stmt = db
        .prepare("SELECT kind, coalesce(source_id, 0), status, sent_at FROM rappel_deliveries")
        .unwrap();
    let mut sent: Vec<Sent> = Vec::new();
    for row in stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
            ))
        })
        .unwrap()
    {
        let (kind, source, status, at) = row.unwrap();
        let Some(at) = at.filter(|_| status == "sent") else {
            wrong.push(format!("{z} {d}: {kind} of row {source} is {status}"));
            continue;
        };
        let source = if matches!(kind.as_str(), "delay_alert" | "report") {
            0
        } else {
            source
        };
        sent.push((kind, source, at.parse().unwrap()));
    }
    let count = |list: &[Sent]| {
        let mut m: BTreeMap<Sent, i64> = BTreeMap::new();
        for s in list {
            *m.entry(s.clone()).or_default() += 1;
        }
        m
    };
    let (want, got) = (count(&expected), count(&sent));
    let show = |(kind, source, at): &Sent| {
        format!(
            "{kind} of row {source} at {} ({})",
            text(*at),
            at.with_timezone(&z).format("%a %H:%M %Z")
        )
    };
    for (s, n) in &want {
        let g = got.get(s).copied().unwrap_or(0);
        if g != *n {
            wrong.push(format!("{z} {d}: expected {n} x {}, sent {g}", show(s)));
        }
    }
    for (s, g) in &got {
        if !want.contains_key(s) {
            wrong.push(format!("{z} {d}: unexpected: {g} x {}", show(s)));
        }
    }
    wrong
}

/// Every window, each on its thread, on `backend`; the differences.
fn run_windows(backend: Backend) -> Vec<String> {
    let windows = windows();
    std::thread::scope(|s| {
        let handles: Vec<_> = windows
            .iter()
            .map(|w| s.spawn(move || run_window(w, backend)))
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn every_kind_goes_once_at_its_local_time_through_both_dst_changes_in_four_zones() {
    let wrong = run_windows(Backend::SQLITE);
    assert!(wrong.is_empty(), "{} differences:\n{}", wrong.len(), wrong.join("\n"));
}

/// The same on the host's own tables, their instants written as Django
/// writes them (naive UTC): what is due, when, and once, does not depend on
/// where the rows are read from.
#[test]
fn every_kind_goes_once_at_its_local_time_on_the_hosts_own_tables() {
    let wrong = run_windows(Backend::MAPPED);
    assert!(wrong.is_empty(), "{} differences:\n{}", wrong.len(), wrong.join("\n"));
}

/// The same on PostgreSQL through Lord Howe's half-hour changes: its gap
/// on the contract's tables, its repeated half hour on the host's own
/// (each window is 288 runs). Instants are text in UTC on both backends,
/// and what is due when does not depend on the backend.
#[test]
fn every_kind_goes_once_at_its_local_time_on_postgresql() {
    if support::pg::server("every_kind_goes_once_at_its_local_time_on_postgresql").is_none() {
        return;
    }
    let windows: Vec<Window> = windows()
        .into_iter()
        .filter(|w| w.zone == chrono_tz::Australia::Lord_Howe)
        .collect();
    let [gap, repeat] = windows.as_slice() else {
        panic!("two Lord Howe windows: {}", windows.len());
    };
    let wrong: Vec<String> = std::thread::scope(|s| {
        let handles = [
            s.spawn(|| run_window(gap, Backend::POSTGRES)),
            s.spawn(|| run_window(repeat, Backend::POSTGRES_MAPPED)),
        ];
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert!(wrong.is_empty(), "{} differences:\n{}", wrong.len(), wrong.join("\n"));
}

/// Quiet hours ending at each window's skipped or repeated local time
/// (`22:00-<at>`): a manual message and a loan's confirmation written at
/// night go once, at the first run at or after the end of the quiet hours
/// as DESIGN reads it (after a gap: its end; repeated: the earlier).
fn run_quiet_window(w: &Window) -> Vec<String> {
    let (z, d, t) = (w.zone, w.day, w.at);
    let day = |n: i64| d + Duration::days(n);
    let start = local(z, day(-1), "21:00");
    let end = local(z, d, "09:00");
    let env = TestEnv::new(free_port(), "");
    env.write_config(&config(z, &format!("quiet_hours = \"22:00-{t}\"\n")));
    let db = env.db();
    db.execute_batch(
        "INSERT INTO contacts (id, name, email) VALUES (1, 'Awa', 'awa@example.com');
         INSERT INTO students (id, contact_id, subscribed_at) VALUES (1, 1, '2026-01-05T09:00:00Z');",
    )
    .unwrap();
    db.execute(
        "INSERT INTO manual_reminders (student_id, message, created_at) VALUES (1, 'Hi', ?1)",
        [text(local(z, day(-1), "22:30"))],
    )
    .unwrap();
    db.execute(
        "INSERT INTO loans (contact_id, item, term, lent_at, due_at) VALUES (1, 'Drill', 'long', ?1, ?2)",
        params![text(local(z, day(-1), "23:00")), text(local(z, day(20), "12:00"))],
    )
    .unwrap();
    let mut at = start;
    while at <= end {
        env.run(
            &["send-reminders", "--kind", "manual", "--kind", "loan_created"],
            &text(at),
        )
        .success();
        at += Duration::minutes(10);
    }
    // The first run at or after the end of quiet hours.
    let expected = first_run(start, local(z, d, t));
    let mut stmt = db
        .prepare("SELECT kind, sent_at FROM rappel_deliveries WHERE status = 'sent' ORDER BY kind")
        .unwrap();
    let sent: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let want = vec![
        ("loan_created".to_string(), text(expected)),
        ("manual".to_string(), text(expected)),
    ];
    if sent == want {
        Vec::new()
    } else {
        vec![format!("{z} {d} quiet until {t}: sent {sent:?}, expected {want:?}")]
    }
}

#[test]
fn quiet_hours_end_once_at_their_local_time_through_both_dst_changes_in_four_zones() {
    let windows = windows();
    let wrong: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = windows.iter().map(|w| s.spawn(move || run_quiet_window(w))).collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert!(wrong.is_empty(), "{} differences:\n{}", wrong.len(), wrong.join("\n"));
}
