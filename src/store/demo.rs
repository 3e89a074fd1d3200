//! The demo's data (`rappel demo`): a small sample of every job's host
//! tables, dated relative to `now`, or `n` generated tickets for benchmarks.
//! Written into an empty, migrated database.

use chrono::{DateTime, Duration, Utc};

use super::{Conn, Dialect, Param, Result, ToParam};
use crate::instant;
use crate::params;

const STAGES: [&str; 4] = ["Diagnostic", "Attente pièce", "Réparation", "Contrôle qualité"];
const DEVICES: [&str; 6] = [
    "iPhone 13",
    "Galaxy S22",
    "Redmi Note 12",
    "iPhone 11",
    "Pixel 7",
    "Tecno Spark 10",
];
const CUSTOMERS: [&str; 6] = [
    "Marie Ndong",
    "Paul Mba",
    "Aïcha Obame",
    "Jean Nzé",
    "Sarah Moussavou",
    "Éric Ondo",
];

/// Fills an empty database with the sample: tickets and their recipients,
/// report mailings (the first attaching `hebdo.pdf`, which the caller
/// writes), loans, students and their sessions, and attendance punches, all
/// dated relative to `now` (UTC). Errors: `StoreError`.
pub fn sample(conn: &mut Conn, now: DateTime<Utc>) -> Result<()> {
    sample_tickets(conn, now)?;
    sample_reports(conn, now)?;
    sample_loans(conn, now)?;
    sample_students(conn, now)?;
    sample_attendance(conn, now)?;
    follow_ids(conn)
}

/// PostgreSQL: each table's id sequence moved past the ids the demo wrote
/// itself, so the rows an application adds next get fresh ones.
fn follow_ids(conn: &Conn) -> Result<()> {
    if conn.dialect() == Dialect::Postgres {
        for table in ["contacts", "students", "terminals", "tickets"] {
            conn.execute_batch(&format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), coalesce(max(id), 0) + 1, false) FROM {table}"
            ))?;
        }
    }
    Ok(())
}

fn ago(now: DateTime<Utc>, days: i64, hours: i64) -> String {
    instant::format(now - Duration::days(days) - Duration::hours(hours))
}

/// Two time clocks at the entrance and the workshop, and the last day's punches
/// of five employees (in and out, one reading without a temperature).
fn sample_attendance(conn: &mut Conn, now: DateTime<Utc>) -> Result<()> {
    let tx = super::begin(conn)?;
    tx.execute_batch(
        "INSERT INTO terminals (id, serial, name, timezone) VALUES
           (1, 'TM20-001', 'Entrée', 'Africa/Libreville'),
           (2, 'TM20-002', 'Atelier', 'Africa/Libreville');",
    )?;
    {
        const PUNCH: &str =
            "INSERT INTO attendance_logs (terminal_id, enroll_id, user_name, punched_at, mode, inout, temperature)
             VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6)";
        for (i, name) in CUSTOMERS.iter().take(5).enumerate() {
            let i = i as i64;
            let terminal = 1 + i % 2;
            let arrival = now - Duration::hours(10) + Duration::minutes(7 * i);
            let departure = arrival + Duration::hours(8) + Duration::minutes(13 * i);
            let temperature = (i != 3).then_some(36.4 + 0.1 * i as f64);
            tx.execute(PUNCH, params![terminal, 100 + i, name, arrival, 0, temperature])?;
            tx.execute(PUNCH, params![terminal, 100 + i, name, departure, 1, temperature])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// A handful of tickets in several stages, some overdue, and their recipients.
fn sample_tickets(conn: &mut Conn, now: DateTime<Utc>) -> Result<()> {
    let tx = super::begin(conn)?;
    tx.execute_batch(
        "INSERT INTO contacts (id, name, email, locale) VALUES
           (1, 'Awa Mba', 'awa.mba@example.com', 'fr'),
           (2, 'Jean Obiang', 'jean.obiang@example.com', 'fr'),
           (3, 'Sam Carter', 'sam.carter@example.com', 'en');
         INSERT INTO alert_recipients (contact_id, stages) VALUES
           (1, NULL),
           (2, 'Réparation,Contrôle qualité'),
           (3, 'Attente pièce');",
    )?;
    // (reference, device, customer, [(stage, days ago)], closed)
    type SampleTicket<'a> = (&'a str, &'a str, &'a str, &'a [(&'a str, i64)], bool);
    let tickets: [SampleTicket<'_>; 8] = [
        (
            "R-1001",
            "iPhone 13",
            "Marie Ndong",
            &[("Diagnostic", 40), ("Attente pièce", 30)],
            false,
        ),
        (
            "R-1002",
            "Galaxy S22",
            "Paul Mba",
            &[("Diagnostic", 25), ("Réparation", 18)],
            false,
        ),
        ("R-1003", "Pixel 7", "Aïcha Obame", &[("Diagnostic", 3)], false),
        (
            "R-1004",
            "iPhone 11",
            "Jean Nzé",
            &[("Diagnostic", 20), ("Attente pièce", 16)],
            false,
        ),
        (
            "R-1005",
            "Redmi Note 12",
            "Sarah <Moussavou>",
            &[("Diagnostic", 22), ("Contrôle qualité", 15)],
            false,
        ),
        ("R-1006", "Tecno Spark 10", "Éric Ondo", &[("Diagnostic", 60)], true),
        (
            "R-1007",
            "iPhone 13",
            "Léa Essono",
            &[("Réparation", 30), ("Diagnostic", 2)],
            false,
        ),
        ("R-1008", "Galaxy A54", "Yann Bivigou", &[("Diagnostic", 17)], false),
    ];
    for (reference, device, customer, events, closed) in tickets {
        let first = events.first().map_or(0, |e| e.1);
        let ticket_id: i64 = tx.query_row(
            "INSERT INTO tickets (reference, device, customer, created_at, closed_at) VALUES (?1, ?2, ?3, ?4, ?5)
             RETURNING id",
            params![
                reference,
                device,
                customer,
                ago(now, first, 1),
                closed.then(|| ago(now, 1, 0))
            ],
            |r| r.get(0),
        )?;
        for (stage, days) in events {
            tx.execute(
                "INSERT INTO ticket_events (ticket_id, stage, entered_at) VALUES (?1, ?2, ?3)",
                params![ticket_id, stage, ago(now, *days, 0)],
            )?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Three report mailings: a stored PDF (weekly, recurring), a report generated
/// from its definition, and one not due yet.
fn sample_reports(conn: &Conn, now: DateTime<Utc>) -> Result<()> {
    conn.execute(
        "INSERT INTO scheduled_reports (title, recipients, scheduled_at, attachment_path, report, recurrence) VALUES
           ('Rapport hebdomadaire', 'direction@example.com; atelier@example.com', ?1, 'hebdo.pdf', NULL, '0 8 * * 1'),
           ('Tickets ouverts', 'atelier@example.com', ?2, NULL, 'open_tickets', NULL),
           ('Bilan mensuel', 'direction@example.com', ?3, 'mensuel.pdf', NULL, NULL)",
        params![ago(now, 0, 1), ago(now, 0, 0), now + Duration::days(1)],
    )?;
    Ok(())
}

/// Loans around now, so reminders are always due: one just lent, one due
/// within the hour (short notice), one two days late, one just returned.
fn sample_loans(conn: &Conn, now: DateTime<Utc>) -> Result<()> {
    conn.execute_batch(
        "INSERT INTO contacts (id, name, email, phone, locale, whatsapp_enabled, sms_enabled) VALUES
           (10, 'Léa Essono', 'lea.essono@example.com', '+24107123456', 'fr', 1, 0),
           (11, 'Yann Bivigou', 'yann.bivigou@example.com', '+24106654321', 'fr', 0, 1),
           (12, 'Sam Carter', 'sam.carter@example.com', NULL, 'en', 0, 0);",
    )?;
    let at = |minutes: i64| instant::format(now + Duration::minutes(minutes));
    let insert = |values: &[&dyn ToParam]| {
        conn.execute(
            "INSERT INTO loans (contact_id, item, term, lent_at, due_at, returned_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            values,
        )
    };
    insert(params![
        10,
        "Perceuse Bosch",
        "long",
        at(-30),
        at(6 * 24 * 60),
        None::<String>
    ])?;
    insert(params![
        11,
        "Vidéoprojecteur",
        "short",
        at(-5 * 60),
        at(60),
        None::<String>
    ])?;
    insert(params![
        12,
        "Ladder",
        "long",
        at(-20 * 24 * 60),
        at(-2 * 24 * 60 - 120),
        None::<String>
    ])?;
    insert(params![
        10,
        "Scie sauteuse",
        "long",
        at(-4 * 24 * 60),
        at(24 * 60),
        Some(at(-60))
    ])?;
    Ok(())
}

/// Students around now: a parent's message (always due), a session in two
/// hours (its morning reminder is due once `session_day_at` has passed), one
/// tomorrow (its eve reminder after `session_eve_at`), and a student away
/// for five days (after `inactivity_at`).
fn sample_students(conn: &Conn, now: DateTime<Utc>) -> Result<()> {
    conn.execute_batch(
        "INSERT INTO contacts (id, name, email, phone, locale, whatsapp_enabled, sms_enabled) VALUES
           (20, 'Inès Moussavou', 'ines.moussavou@example.com', '+24107111222', 'fr', 1, 0),
           (21, 'Marie Moussavou', 'marie.moussavou@example.com', NULL, 'fr', 0, 0),
           (22, 'Tom Reed', 'tom.reed@example.com', NULL, 'en', 0, 0);",
    )?;
    let at = |minutes: i64| instant::format(now + Duration::minutes(minutes));
    conn.execute(
        "INSERT INTO students (id, contact_id, parent_contact_id, subscribed_at, last_active_at) VALUES
           (1, 20, 21, ?1, ?2), (2, 22, NULL, ?1, ?3)",
        params![at(-90 * 24 * 60), at(-60), at(-5 * 24 * 60)],
    )?;
    let session = |values: &[&dyn ToParam]| {
        conn.execute(
            "INSERT INTO revision_sessions (student_id, subject, starts_at, objective, link, completed_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            values,
        )
    };
    session(params![
        1,
        "Mathématiques",
        at(120),
        "Fractions : exercices 4 à 9",
        "sessions/1",
        None::<String>
    ])?;
    session(params![
        1,
        "Physique",
        at(26 * 60),
        "Optique",
        "sessions/2",
        None::<String>
    ])?;
    session(params![
        2,
        "History",
        at(-3 * 24 * 60),
        "",
        None::<String>,
        Some(at(-3 * 24 * 60 + 60))
    ])?;
    session(params![
        2,
        "English",
        at(2 * 24 * 60),
        "Essay plan",
        "https://meet.example.com/tom",
        None::<String>
    ])?;
    conn.execute(
        "INSERT INTO manual_reminders (student_id, author_contact_id, message, created_at) VALUES (1, 21, ?1, ?2)",
        params![
            "N'oublie pas ta calculatrice pour la séance de maths. Bon courage !",
            at(-5)
        ],
    )?;
    Ok(())
}

/// Fills an empty database with `n` tickets for benchmarks, with one to four events each: 95 % closed, the open ones in
/// their current stage for up to 20 days, so a few percent are overdue.
pub fn generate(conn: &mut Conn, n: u64, now: DateTime<Utc>) -> Result<()> {
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let tx = super::begin(conn)?;
    tx.execute_batch(
        "INSERT INTO contacts (id, name, email, locale) VALUES (1, 'Awa Mba', 'awa.mba@example.com', 'fr'),
                                                              (2, 'Jean Obiang', 'jean.obiang@example.com', 'fr');
         INSERT INTO alert_recipients (contact_id, stages) VALUES (1, NULL), (2, 'Réparation');",
    )?;
    let mut tickets = Batch::new("tickets (id, reference, device, customer, created_at, closed_at)", 6);
    let mut events = Batch::new("ticket_events (ticket_id, stage, entered_at)", 3);
    for id in 1..=i64::try_from(n).unwrap_or(i64::MAX) {
        let r = next();
        let active = r % 100 < 5;
        let count = 1 + (r >> 8) % 4;
        // Minutes before now at which the latest event happened.
        let latest = if active {
            (r >> 16) % (20 * 24 * 60)
        } else {
            20 * 24 * 60 + (r >> 16) % (300 * 24 * 60)
        } as i64;
        let mut at = now - Duration::minutes(latest + (count as i64) * 3 * 24 * 60);
        let created = instant::format(at - Duration::hours(2));
        let closed = (!active).then(|| instant::format(now - Duration::minutes(latest / 2)));
        tickets.push(vec![
            Param::Int(id),
            Param::Text(format!("T{id:07}").into()),
            Param::Text(DEVICES[(r >> 24) as usize % DEVICES.len()].into()),
            Param::Text(CUSTOMERS[(r >> 32) as usize % CUSTOMERS.len()].into()),
            Param::Text(created.into()),
            closed.map_or(Param::Null, |c| Param::Text(c.into())),
        ]);
        for k in 0..count {
            at = if k + 1 == count {
                now - Duration::minutes(latest)
            } else {
                at + Duration::days(3)
            };
            let stage = STAGES[((r >> 40) + k) as usize % STAGES.len()];
            events.push(vec![
                Param::Int(id),
                Param::Text(stage.into()),
                Param::Text(instant::format(at).into()),
            ]);
        }
        // The tickets first: their events point at them.
        if tx.dialect() == Dialect::Sqlite || events.full() {
            tickets.flush(&tx)?;
            events.flush(&tx)?;
        }
    }
    tickets.flush(&tx)?;
    events.flush(&tx)?;
    tx.commit()?;
    follow_ids(conn)?;
    // PostgreSQL: VACUUM as well, so the first scan of freshly loaded rows
    // does not also write their visibility hints, and twice: each ticket
    // was locked by its events' foreign-key checks as they were loaded,
    // and the first pass leaves its pages not all-visible, which an
    // index-only scan of them then visits one by one (a table autovacuum
    // has been through is so).
    conn.execute_batch(match conn.dialect() {
        Dialect::Sqlite => "ANALYZE",
        Dialect::Postgres => "VACUUM ANALYZE",
    })?;
    if conn.dialect() == Dialect::Postgres {
        conn.execute_batch("VACUUM tickets")?;
    }
    Ok(())
}

/// Rows waiting to go into one table: on SQLite each ticket's rows as they
/// come (a prepared statement in a transaction is its fastest), on
/// PostgreSQL a thousand rows per `INSERT` (one round trip each).
struct Batch {
    into: &'static str,
    columns: usize,
    rows: Vec<Vec<Param<'static>>>,
}

impl Batch {
    /// Rows per statement on PostgreSQL (under its 65,535 parameters).
    const ROWS: usize = 1000;

    fn new(into: &'static str, columns: usize) -> Self {
        Batch {
            into,
            columns,
            rows: Vec::new(),
        }
    }

    fn push(&mut self, row: Vec<Param<'static>>) {
        self.rows.push(row);
    }

    /// Whether a PostgreSQL statement's worth of rows is waiting.
    fn full(&self) -> bool {
        self.rows.len() >= Self::ROWS
    }

    fn flush(&mut self, conn: &Conn) -> Result<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let groups: Vec<String> = (0..self.rows.len())
            .map(|r| {
                let marks: Vec<String> = (1..=self.columns)
                    .map(|c| format!("?{}", r * self.columns + c))
                    .collect();
                format!("({})", marks.join(", "))
            })
            .collect();
        let values: Vec<&dyn ToParam> = self.rows.iter().flatten().map(|p| p as &dyn ToParam).collect();
        conn.execute(
            &format!("INSERT INTO {} VALUES {}", self.into, groups.join(", ")),
            &values,
        )?;
        self.rows.clear();
        Ok(())
    }
}
