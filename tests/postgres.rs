//! `database = "postgres://…"` against a real PostgreSQL server: the one
//! `RAPPEL_TEST_POSTGRES` names (a URL without a password, the server
//! requiring one: `RAPPEL_TEST_POSTGRES_PASSWORD`; its TLS certificate's CA
//! in `RAPPEL_TEST_POSTGRES_CA`). `.ci/run` starts one; without it these
//! tests say they were skipped and pass.

use crate::support::pg::{client, fresh_schema, server, with};
use crate::support::{TestEnv, free_port};

mod sources;

/// A folder whose config points `database` at `database` (a TOML value or
/// table body) with a file email transport.
fn env_with(database: &str) -> TestEnv {
    let env = TestEnv::new(free_port(), "");
    env.write_config(&format!(
        "{database}\n[email]\nfrom = \"rappel@example.com\"\ntransport = \"file\"\n"
    ));
    env
}

#[test]
fn config_check_connects_with_the_password_from_a_file_and_says_how() {
    let Some((url, password, ca)) = server("config_check_connects_with_the_password_from_a_file_and_says_how") else {
        return;
    };
    let url = with(&url, &format!("sslrootcert={ca}"));
    let env = env_with(&format!(
        "[database]\nurl = \"{url}\"\npassword_file = \"db-pass\"\nschema = \"rappel_test\"\n"
    ));
    std::fs::write(env.dir.path().join("db-pass"), format!("{password}\n")).unwrap();
    let out = env
        .run(&["config", "check", "--connect"], "2026-03-10T07:00:00Z")
        .success();
    assert!(
        out.stdout.contains("database: ok (") && out.stdout.contains("over TLS (certificate and name checked)"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("schema rappel_test absent"), "{}", out.stdout);
    // The report queries wait for the schema, as on SQLite, and say so
    // (not that the database cannot be read: it was).
    assert!(
        out.stdout.contains("report queries not checked: ")
            && out.stdout.contains("has no rappel schema \"rappel_test\"")
            && out.stdout.contains("`rappel db migrate`")
            && !out.stdout.contains("cannot be read"),
        "{}",
        out.stdout
    );

    // A wrong password: the server's refusal, exit 78, the password nowhere.
    std::fs::write(env.dir.path().join("db-pass"), "not-the-password-xq7\n").unwrap();
    let out = env
        .run(&["config", "check", "--connect"], "2026-03-10T07:00:00Z")
        .code(78);
    assert!(
        out.stdout.contains("database: failed: cannot connect to"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("password authentication failed"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("report queries not checked: the database cannot be read (see database: below)"),
        "{}",
        out.stdout
    );
    for text in [&out.stdout, &out.stderr] {
        assert!(!text.contains("not-the-password-xq7"), "secret printed: {text}");
    }
}

#[test]
fn the_certificate_is_checked_unless_the_url_says_otherwise() {
    let Some((url, password, ca)) = server("the_certificate_is_checked_unless_the_url_says_otherwise") else {
        return;
    };
    let check = |url: &str| {
        let env = env_with(&format!("database = \"{url}\""));
        env.command(&["config", "check", "--connect"], "2026-03-10T07:00:00Z")
            .env("PGPASSWORD", &password)
            .output()
            .unwrap()
    };
    // The system's roots do not know the test CA: refused.
    let out = check(&url);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(78), "{stdout}");
    assert!(
        stdout.contains("UnknownIssuer") && stdout.contains("sslrootcert=/path/to/ca.pem"),
        "{stdout}"
    );
    // Its certificate is for 127.0.0.1, not localhost: verify-full refuses
    // the name, require takes it.
    let by_name = url.replacen("127.0.0.1", "localhost", 1);
    let out = check(&with(&by_name, &format!("sslrootcert={ca}")));
    assert_eq!(out.status.code(), Some(78), "{}", String::from_utf8_lossy(&out.stdout));
    let out = check(&with(&by_name, &format!("sslmode=require&sslrootcert={ca}")));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("certificate checked, not its name"), "{stdout}");
    // Without TLS, to a loopback host only.
    let out = check(&with(&url, "sslmode=disable"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("without TLS (loopback)"), "{stdout}");
}

/// A rappel whose rappel tables are in `schema` on the server at `url`
/// (its certificate checked against `ca`), the password from
/// `RAPPEL_TEST_PG_PASSWORD`.
fn schema_env(url: &str, ca: &str, schema: &str) -> TestEnv {
    env_with(&format!(
        "[database]\nurl = \"{}\"\npassword_env = \"RAPPEL_TEST_PG_PASSWORD\"\nschema = \"{schema}\"\n",
        with(url, &format!("sslrootcert={ca}"))
    ))
}

/// Runs `args` in `env` with `password` in `RAPPEL_TEST_PG_PASSWORD`: the
/// exit code and stdout.
fn run_with_password(env: &TestEnv, password: &str, args: &[&str]) -> (Option<i32>, String) {
    let out = env
        .command(args, "2026-03-10T07:00:00Z")
        .env("RAPPEL_TEST_PG_PASSWORD", password)
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn db_migrate_makes_rappels_schema_once_even_from_two_machines_at_once() {
    let Some((url, password, ca)) = server("db_migrate_makes_rappels_schema_once_even_from_two_machines_at_once")
    else {
        return;
    };
    let schema = fresh_schema("migrate");
    let env = schema_env(&url, &ca, &schema);
    let run = |args: &[&str]| run_with_password(&env, &password, args);
    let (code, out) = run(&["db", "status"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(&format!("schema:   {schema} at version 0")), "{out}");
    assert!(out.contains("migration(s) pending"), "{out}");
    // Two machines' crons at once: both succeed, each file applied once.
    let both: Vec<_> = (0..2)
        .map(|_| {
            env.command(&["db", "migrate"], "2026-03-10T07:00:00Z")
                .env("RAPPEL_TEST_PG_PASSWORD", &password)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<String> = both
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert_eq!(out.status.code(), Some(0));
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
        .collect();
    let applied = outs
        .iter()
        .filter(|o| o.contains("applied postgres/0007_schema.sql"))
        .count();
    assert_eq!(applied, 1, "{outs:?}");
    assert!(outs.iter().any(|o| o.contains("schema 0 -> 13")), "{outs:?}");
    assert!(outs.iter().any(|o| o.contains("schema 13, up to date")), "{outs:?}");
    let (code, out) = run(&["db", "status"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("at version 13 (this rappel: 13)") && out.contains("up to date"),
        "{out}"
    );

    let mut db = client(&url, &password);
    let tables: Vec<String> = db
        .query(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1",
            &[&schema],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for t in [
        "rappel_deliveries",
        "rappel_job_runs",
        "rappel_punch_state",
        "contacts",
        "attendance_logs",
    ] {
        assert!(tables.iter().any(|x| x == t), "{t} missing: {tables:?}");
    }
    // The delay-alert scan's index holds the event id (schema 12): the scan
    // reads the index alone.
    let cover: Vec<String> = db
        .query(
            "SELECT indexname::text || ' ' || indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = 'ticket_events'
             AND indexname LIKE 'rappel_%'",
            &[&schema],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        cover.len() == 1 && cover[0].starts_with("rappel_ticket_events_cover ") && cover[0].contains("INCLUDE (id)"),
        "{cover:?}"
    );
    // Deliveries' pages are filled to half (schema 13), for each row's next
    // versions.
    let options: Option<Vec<String>> = db
        .query_one(
            "SELECT c.reloptions FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND c.relname = 'rappel_deliveries'",
            &[&schema],
        )
        .unwrap()
        .get(0);
    assert_eq!(options, Some(vec!["fillfactor=50".to_string()]));
    // `rappel_instant` runs in a query the planner makes parallel (costs of
    // parallelism set to nothing): before migration 11 it failed there.
    let parallel = format!(
        "SET search_path TO \"{schema}\"; SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0;
         SET min_parallel_table_scan_size = 0; SET max_parallel_workers_per_gather = 2;
         CREATE TABLE punches AS SELECT '2026-03-10T07:00:00Z' || g AS at FROM generate_series(1, 50) g;
         SELECT count(*) FROM punches WHERE rappel_instant(at) IS NULL;
         DROP TABLE punches;"
    );
    db.batch_execute(&parallel)
        .unwrap_or_else(|e| panic!("rappel_instant in a parallel query: {e:?}"));
    // An application's table without a column rappel reads: named, exit 74.
    db.batch_execute(&format!("ALTER TABLE \"{schema}\".tickets DROP COLUMN closed_at"))
        .unwrap();
    let (code, out) = run(&["db", "status"]);
    assert_eq!(code, Some(74), "{out}");
    assert!(
        out.contains("problem:  table tickets exists without column closed_at (needed by check-delay-alerts"),
        "{out}"
    );
    // A schema newer than this rappel: said, exit 74, nothing changed.
    db.execute(&format!("UPDATE \"{schema}\".rappel_meta SET value = '99'"), &[])
        .unwrap();
    let (code, out) = run(&["db", "migrate"]);
    assert_eq!(code, Some(74), "{out}");
    let (code, out) = run(&["db", "status"]);
    assert_eq!(code, Some(74), "{out}");
    assert!(out.contains("newer than this rappel"), "{out}");
    // config check says so too, and fails: every job would stop.
    let (code, out) = run(&["config", "check", "--connect"]);
    assert_ne!(code, Some(0), "{out}");
    assert!(
        out.contains("database: failed: ")
            && out.contains("newer than this rappel understands (13); upgrade rappel")
            && out.contains("report queries not checked: the database cannot be read (see database: below)"),
        "{out}"
    );
    db.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).unwrap();
}

/// An application that made one of the contract's tables itself in
/// rappel's schema, without a column rappel reads (or a view in a table's
/// place), still gets rappel's schema, as on SQLite: the index that column
/// would serve is not made, and `db status` names the column.
#[test]
fn an_applications_own_table_without_a_column_rappel_reads_does_not_stop_db_migrate() {
    let Some((url, password, ca)) =
        server("an_applications_own_table_without_a_column_rappel_reads_does_not_stop_db_migrate")
    else {
        return;
    };
    let schema = fresh_schema("own_tables");
    let mut db = client(&url, &password);
    db.batch_execute(&format!(
        "CREATE SCHEMA \"{schema}\";
         CREATE TABLE \"{schema}\".ticket_events (id bigint PRIMARY KEY, ticket_id bigint, entered_at text);
         CREATE VIEW \"{schema}\".alert_recipients AS SELECT CAST(1 AS bigint) AS id, CAST(1 AS bigint) AS contact_id"
    ))
    .unwrap();
    let env = schema_env(&url, &ca, &schema);
    let run = |args: &[&str]| run_with_password(&env, &password, args);
    let (code, out) = run(&["db", "migrate"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("schema 0 -> 13"), "{out}");
    let (code, out) = run(&["db", "status"]);
    assert_eq!(code, Some(74), "{out}");
    assert!(
        out.contains("problem:  table ticket_events exists without column stage (needed by check-delay-alerts"),
        "{out}"
    );
    db.batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE")).unwrap();
}

/// A `contacts` view over an application's `app_people (pk, full_name,
/// mail)`, `extra` appended to its query (a `UNION ALL`).
fn contacts_view(extra: &str) -> String {
    format!(
        "CREATE OR REPLACE VIEW contacts AS SELECT pk AS id, full_name AS name, mail AS email, NULL::text AS phone,
             NULL::text AS locale, NULL::text AS timezone, 1 AS email_enabled, 0 AS whatsapp_enabled,
             0 AS sms_enabled, ''::text AS muted_kinds FROM app_people {extra};"
    )
}

/// An application that made `contacts`, `students` and `terminals` as views
/// over its own tables, and `tickets` keyed by its reference: `db migrate`
/// makes rappel's tables without a foreign key to them (a view holds none,
/// nor a table without a unique `id`), as SQLite migrates them, and `db
/// status` names what a job would lack; on a schema of rappel's own making
/// every key is there.
#[test]
fn an_applications_views_and_a_table_without_an_id_do_not_stop_db_migrate() {
    let Some(App { url, password, ca, schema, mut db }) = app_schema(
        "an_applications_views_and_a_table_without_an_id",
        "own_views",
        &format!(
            "CREATE TABLE app_people (pk bigint PRIMARY KEY, full_name text, mail text);
             {}
             CREATE VIEW students AS SELECT pk AS id, pk AS contact_id, NULL::bigint AS parent_contact_id,
                 1 AS subscription_active, NULL::text AS subscribed_at, NULL::text AS last_active_at FROM app_people;
             CREATE VIEW terminals AS SELECT 1::bigint AS id, 'TM20-001'::text AS serial, 'Entrance'::text AS name,
                 NULL::text AS timezone;
             CREATE TABLE tickets (reference text PRIMARY KEY, device text, customer text, created_at text, closed_at text);",
            contacts_view("")
        ),
    ) else {
        return;
    };
    let keys = |db: &mut postgres::Client, schema: &str| -> Vec<String> {
        db.query(
            "SELECT conname::text FROM pg_constraint WHERE contype = 'f' AND connamespace = $1::text::regnamespace
             ORDER BY 1",
            &[&schema],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
    };
    let env = schema_env(&url, &ca, &schema);
    let run = |args: &[&str]| run_with_password(&env, &password, args);
    let (code, out) = run(&["db", "migrate"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("schema 0 -> 13"), "{out}");
    assert_eq!(
        keys(&mut db, &schema),
        ["rappel_delay_alert_log_delivery_id_fkey"],
        "no key to a view or to a table without an id"
    );
    let unkeyed: String = db
        .query_one(
            &format!("SELECT value FROM \"{schema}\".rappel_meta WHERE key = 'unkeyed_tables'"),
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(unkeyed, "contacts,students,terminals", "the jobs check these ids");
    let (code, out) = run(&["db", "status"]);
    assert_eq!(code, Some(74), "{out}");
    assert!(
        out.contains("problem:  table tickets exists without column id (needed by check-delay-alerts"),
        "{out}"
    );
    db.batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE")).unwrap();

    // rappel's own schema: every key, as before.
    let own = fresh_schema("own_keys");
    let env = schema_env(&url, &ca, &own);
    let (code, out) = run_with_password(&env, &password, &["db", "migrate"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        keys(&mut db, &own),
        [
            "alert_recipients_contact_id_fkey",
            "attendance_logs_terminal_id_fkey",
            "loans_contact_id_fkey",
            "manual_reminders_author_contact_id_fkey",
            "manual_reminders_student_id_fkey",
            "rappel_delay_alert_log_delivery_id_fkey",
            "revision_sessions_student_id_fkey",
            "students_contact_id_fkey",
            "students_parent_contact_id_fkey",
            "ticket_events_ticket_id_fkey"
        ]
    );
    db.batch_execute(&format!("DROP SCHEMA \"{own}\" CASCADE")).unwrap();
}

/// A `contacts` view the application made in rappel's schema, one id on two
/// of its rows: the jobs that read contacts stop (78) rather than send one
/// person's messages to another, as for a mapped source; with unique ids
/// they run.
#[test]
fn a_contacts_view_with_a_repeated_id_stops_the_jobs_that_read_it() {
    let smtp = crate::support::SmtpServer::start();
    let Some(App {
        url,
        password,
        ca,
        schema,
        mut db,
    }) = app_schema(
        "a_contacts_view_with_a_repeated_id",
        "view_ids",
        &format!(
            "CREATE TABLE app_people (pk bigint PRIMARY KEY, full_name text, mail text);
             INSERT INTO app_people VALUES (1, 'Awa', 'awa@example.com');
             {}",
            contacts_view("")
        ),
    )
    else {
        return;
    };
    let env = machine(&url, &ca, &schema, smtp.port, 2);
    run_pg(&env, &password, &["db", "migrate"], "2026-11-21T07:00:00Z").success();
    db.batch_execute(
        "INSERT INTO loans (contact_id, item, lent_at, due_at) VALUES (1, 'Drill', '2026-11-21T06:30:00Z', '2026-11-28T17:00:00Z');",
    )
    .unwrap();
    run_pg(
        &env,
        &password,
        &["send-reminders", "--dry-run"],
        "2026-11-21T07:00:00Z",
    )
    .success();
    db.batch_execute(&contacts_view(
        "UNION ALL SELECT 1, 'Mallory', 'mallory@example.com', NULL, NULL, NULL, 1, 0, 0, ''",
    ))
    .unwrap();
    for job in ["send-reminders", "check-delay-alerts"] {
        let out = run_pg(&env, &password, &[job], "2026-11-21T07:00:00Z").code(78);
        assert!(
            out.stderr
                .contains("table contacts: id 1 is on 2 rows; ids must be unique"),
            "{job}: {}",
            out.stderr
        );
    }
    assert!(smtp.mails().is_empty(), "nobody gets another's messages");
    // `db status` says so before a cron does.
    let out = run_pg(&env, &password, &["db", "status"], "2026-11-21T07:00:00Z").code(74);
    assert!(
        out.stdout.contains(
            "problem:  table contacts: id 1 is on 2 rows; ids must be unique (it is a view, or a table without a \
             unique key on id): the jobs that read it stop"
        ),
        "{}",
        out.stdout
    );
    db.batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE")).unwrap();
}

/// What counts as a key on `id` when `db migrate` records the tables whose
/// ids the jobs check: not a unique index left invalid (a `CREATE UNIQUE
/// INDEX CONCURRENTLY` that failed on a repeated id), nor a primary key
/// whose table has a child (`INHERITS`), whose rows it does not cover.
#[test]
fn an_invalid_unique_index_or_a_child_table_is_no_key_on_id() {
    let Some(App {
        url,
        password,
        ca,
        schema,
        mut db,
    }) = app_schema(
        "an_invalid_unique_index_or_a_child_table",
        "no_key",
        "CREATE TABLE app_people (pk bigint, full_name text, mail text);
         INSERT INTO app_people VALUES (1, 'Alice', 'alice@example.com'), (1, 'Mallory', 'mallory@example.com');
         CREATE TABLE contacts AS SELECT pk AS id, full_name AS name, mail AS email, NULL::text AS phone,
             NULL::text AS locale, NULL::text AS timezone, 1 AS email_enabled, 0 AS whatsapp_enabled,
             0 AS sms_enabled, ''::text AS muted_kinds FROM app_people;
         CREATE TABLE terminals (id bigint PRIMARY KEY, serial text NOT NULL, name text, timezone text);
         CREATE TABLE more_terminals () INHERITS (terminals);",
    )
    else {
        return;
    };
    // Left invalid by the repeated id, as a concurrent build leaves it.
    let invalid = db.batch_execute(&format!(
        "CREATE UNIQUE INDEX CONCURRENTLY contacts_id ON \"{schema}\".contacts (id)"
    ));
    assert!(invalid.is_err());
    let env = schema_env(&url, &ca, &schema);
    let (code, out) = run_with_password(&env, &password, &["db", "migrate"]);
    assert_eq!(code, Some(0), "{out}");
    let unkeyed: String = db
        .query_one(
            &format!("SELECT value FROM \"{schema}\".rappel_meta WHERE key = 'unkeyed_tables'"),
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(unkeyed, "contacts,terminals");
    let (code, out) = run_with_password(&env, &password, &["db", "status"]);
    assert_eq!(code, Some(74), "{out}");
    assert!(out.contains("table contacts: id 1 is on 2 rows"), "{out}");
    assert!(!out.contains("run `rappel db migrate` so the jobs"), "{out}");
    // A view made after `db migrate`: `db status` looks now, and says to
    // record it for the jobs.
    db.batch_execute(&format!(
        "SET search_path TO \"{schema}\";
         DROP TABLE students CASCADE;
         CREATE VIEW students AS SELECT 1::bigint AS id, 1::bigint AS contact_id, NULL::bigint AS parent_contact_id,
             1 AS subscription_active, NULL::text AS subscribed_at, NULL::text AS last_active_at;"
    ))
    .unwrap();
    let (code, out) = run_with_password(&env, &password, &["db", "status"]);
    assert_eq!(code, Some(74), "{out}");
    assert!(
        out.contains(
            "problem:  the input tables without a unique key on id are now: contacts,students,terminals; \
             run `rappel db migrate` so the jobs check their ids"
        ),
        "{out}"
    );
    db.batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE")).unwrap();
}

/// Columns of types an index cannot take as rappel's indexes name them (a
/// `json` stage: no ordering; an enum status without a label a partial
/// index names) leave those indexes out; `db migrate` goes on, as on
/// SQLite, where any column takes any value.
#[test]
fn columns_of_types_rappels_indexes_cannot_take_do_not_stop_db_migrate() {
    let Some(App {
        url,
        password,
        ca,
        schema,
        mut db,
    }) = app_schema(
        "columns_of_types_rappels_indexes_cannot_take",
        "odd_types",
        "CREATE TABLE tickets (id bigserial PRIMARY KEY, reference text NOT NULL, created_at text NOT NULL,
             closed_at text);
         CREATE TABLE ticket_events (id bigserial PRIMARY KEY, ticket_id bigint NOT NULL, stage json NOT NULL,
             entered_at text NOT NULL);
         CREATE TYPE report_state AS ENUM ('queued', 'done');
         CREATE TABLE scheduled_reports (id bigserial PRIMARY KEY, title text NOT NULL, recipients text NOT NULL,
             scheduled_at text NOT NULL, status report_state NOT NULL DEFAULT 'queued');
         CREATE TYPE punch_state AS ENUM ('pending', 'sending', 'sent', 'failed');
         CREATE TABLE attendance_logs (id bigserial PRIMARY KEY, terminal_id bigint NOT NULL, enroll_id bigint NOT NULL,
             user_name text NOT NULL DEFAULT '', punched_at text NOT NULL, mode integer NOT NULL DEFAULT 0,
             inout integer NOT NULL DEFAULT 0, event integer NOT NULL DEFAULT 0, temperature double precision,
             access_granted integer NOT NULL DEFAULT 1, sync_status punch_state NOT NULL DEFAULT 'pending',
             sync_attempts integer NOT NULL DEFAULT 0, next_attempt_at text, sync_lease_until text, synced_at text,
             sync_error text);",
    )
    else {
        return;
    };
    let env = schema_env(&url, &ca, &schema);
    let (code, out) = run_with_password(&env, &password, &["db", "migrate"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("schema 0 -> 13"), "{out}");
    // An enum where rappel writes a punch's status as text: named before a
    // run stops on it.
    let (code, out) = run_with_password(&env, &password, &["db", "status"]);
    assert_eq!(code, Some(74), "{out}");
    assert!(
        out.contains(
            "problem:  column attendance_logs.sync_status is of type punch_state: rappel writes a status there as \
             text (make it text or varchar); sync-attendance stops"
        ),
        "{out}"
    );
    let indexes: Vec<String> = db
        .query(
            "SELECT indexname::text FROM pg_indexes WHERE schemaname = $1 AND tablename IN ('ticket_events', 'scheduled_reports')
               AND indexname LIKE 'rappel%' ORDER BY 1",
            &[&schema],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(indexes.is_empty(), "{indexes:?}");
    db.batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE")).unwrap();
}

/// What the server refuses says why, with the exit a script can act on: 78
/// for the role or its password (the configuration must change), 74 for a
/// server that cannot be reached; an unreadable password is named by
/// `config check` itself.
#[test]
fn a_refused_password_is_a_configuration_error_and_an_unreachable_server_is_not() {
    let Some((url, password, _)) =
        server("a_refused_password_is_a_configuration_error_and_an_unreachable_server_is_not")
    else {
        return;
    };
    let status = |database: &str, pgpassword: &str| {
        let env = env_with(database);
        let out = env
            .command(&["db", "status"], "2026-03-10T07:00:00Z")
            .env("PGPASSWORD", pgpassword)
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let plain = with(&url, "sslmode=disable");
    let (code, err) = status(&format!("database = \"{plain}\""), "not-it-zq9");
    assert_eq!(code, Some(78), "{err}");
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(!err.contains("not-it-zq9"), "{err}");
    let (code, err) = status(&format!("database = \"{plain}\""), &password);
    assert_eq!(code, Some(0), "{err}");
    let port = free_port();
    let unreachable = plain.replacen(":55432", &format!(":{port}"), 1);
    if unreachable != plain {
        let (code, err) = status(&format!("database = \"{unreachable}\""), &password);
        assert_eq!(code, Some(74), "{err}");
        assert!(err.contains("cannot connect to"), "{err}");
    }
    let env = env_with(&format!(
        "[database]\nurl = \"{plain}\"\npassword_env = \"RAPPEL_TEST_PG_UNSET_VAR\"\n"
    ));
    let out = env.run(&["config", "check"], "2026-03-10T07:00:00Z").code(78);
    assert!(out.stderr.contains("RAPPEL_TEST_PG_UNSET_VAR"), "{}", out.stderr);
}

/// Needs no server: `init --database postgres://...` writes the URL as it
/// is and creates no file; another scheme is refused without being
/// repeated, nothing written.
#[test]
fn init_writes_a_server_url_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let url = "postgres://clock@db.example.com:5432/pointage";
    let out = crate::support::rappel_in(dir.path(), &["init", "etc", "--database", url]).success();
    assert!(out.stdout.contains("rappel db migrate"), "{}", out.stdout);
    let config = std::fs::read_to_string(dir.path().join("etc/rappel.toml")).unwrap();
    let table: toml::Table = config.parse().unwrap();
    assert_eq!(table["database"].as_str(), Some(url));
    let made: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(made, ["etc"], "no SQLite file anywhere");
    let out = crate::support::rappel_in(dir.path(), &["init", "other", "--database", "mysql://u:pw7Q@h/x"]).code(64);
    assert!(out.stderr.contains("postgres://"), "{}", out.stderr);
    assert!(!out.stderr.contains("pw7Q"), "{}", out.stderr);
    assert!(!dir.path().join("other/rappel.toml").exists());
}

/// Needs no server: a demo whose server does not answer leaves no folder
/// behind (its config would name that server), an empty folder given to it
/// stays, empty, and an earlier demo in the folder is kept.
#[test]
fn a_demo_whose_server_does_not_answer_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let nobody = format!(
        "postgres://demo@127.0.0.1:{}/x?sslmode=disable",
        crate::support::free_port()
    );
    let out = crate::support::rappel_in(dir.path(), &["demo", "--dir", "d", "--database", &nobody]);
    assert_ne!(out.code, 0, "{}", out.stderr);
    assert!(!dir.path().join("d").exists(), "{}", out.stderr);
    std::fs::create_dir(dir.path().join("e")).unwrap();
    let out = crate::support::rappel_in(dir.path(), &["demo", "--dir", "e", "--database", &nobody]);
    assert_ne!(out.code, 0, "{}", out.stderr);
    assert_eq!(std::fs::read_dir(dir.path().join("e")).unwrap().count(), 0);
    // An earlier demo in the folder is kept whole.
    crate::support::rappel_in(dir.path(), &["demo", "--dir", "f", "--no-run"]).success();
    let before = std::fs::read(dir.path().join("f/rappel.toml")).unwrap();
    let out = crate::support::rappel_in(dir.path(), &["demo", "--dir", "f", "--database", &nobody]);
    assert_ne!(out.code, 0, "{}", out.stderr);
    assert_eq!(std::fs::read(dir.path().join("f/rappel.toml")).unwrap(), before);
    assert!(dir.path().join("f/rappel.db").exists());
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 2, "nothing set aside left behind: {left:?}");
    // Built again: the earlier one replaced, nothing beside it.
    crate::support::rappel_in(dir.path(), &["demo", "--dir", "f", "--no-run"]).success();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
}

/// Needs no server: a password written in the URL is refused unrepeated.
#[test]
fn a_password_in_the_database_url_is_refused_without_being_repeated() {
    let env = env_with("database = \"postgres://clock:hunter2x@db.example.com/pointage\"");
    let out = env.run(&["config", "check"], "2026-03-10T07:00:00Z").code(78);
    assert!(out.stderr.contains("password_env"), "{}", out.stderr);
    assert!(!out.stderr.contains("hunter2x"), "{}", out.stderr);
}

/// A folder whose config points at `schema` on the test server (over TLS,
/// the password from the environment) and sends email over SMTP to
/// 127.0.0.1:`smtp`, with delay alerts after 14 days.
fn machine(url: &str, ca: &str, schema: &str, smtp: u16, connections: u32) -> TestEnv {
    machine_with(url, ca, schema, smtp, connections, "")
}

/// `machine`, with `extra` TOML appended to its configuration.
fn machine_with(url: &str, ca: &str, schema: &str, smtp: u16, connections: u32, extra: &str) -> TestEnv {
    let env = TestEnv::empty();
    env.write_config(&format!(
        r#"timezone = "Europe/Paris"
locale = "en"

[database]
url = "{}"
password_env = "RAPPEL_TEST_PG_PASSWORD"
schema = "{schema}"

[email]
from = "Rappel Test <rappel@example.com>"
transport = "smtp"

[email.smtp]
host = "127.0.0.1"
port = {smtp}
security = "none"
timeout_s = 2
connections = {connections}

[delivery]
lease_s = 10
retry_base_s = 60
max_attempts = 3

[delay_alerts]
threshold_days = 14
{extra}"#,
        with(url, &format!("sslrootcert={ca}"))
    ));
    env
}

/// Runs `args` in `env` with the test server's password in the environment.
fn run_pg(env: &TestEnv, password: &str, args: &[&str], now: &str) -> crate::support::Output {
    let mut cmd = env.command(args, now);
    cmd.env(crate::support::pg::PASSWORD_ENV, password);
    crate::support::Output::of(cmd)
}

/// Fills `schema` with `n` alert recipients and one ticket stuck in
/// "Diagnostic" since 2026-02-01 (alerts are due on 2026-03-10).
fn fill_alerts(client: &mut postgres::Client, schema: &str, n: i64) {
    client
        .batch_execute(&format!(
            "SET search_path TO \"{schema}\";
             INSERT INTO contacts (id, name, email)
                 SELECT i, 'Staff ' || i, 'staff' || i || '@example.com' FROM generate_series(1, {n}) i;
             INSERT INTO alert_recipients (contact_id) SELECT id FROM contacts;
             INSERT INTO tickets (id, reference, device, customer, created_at)
                 VALUES (1, 'T-1', 'Phone', 'Customer', '2026-02-01T08:00:00Z');
             INSERT INTO ticket_events (ticket_id, stage, entered_at) VALUES (1, 'Diagnostic', '2026-02-01T08:00:00Z');"
        ))
        .unwrap();
}

/// An application's own tables on the test server, as rappel finds them
/// before it migrates: a fresh schema (named from `prefix`), `ddl` run in
/// it (first on the search path); `None` (the test skipped) without a
/// server.
struct App {
    url: String,
    password: String,
    ca: String,
    schema: String,
    db: postgres::Client,
}

fn app_schema(test: &str, prefix: &str, ddl: &str) -> Option<App> {
    let (url, password, ca) = server(test)?;
    let schema = fresh_schema(prefix);
    let mut db = client(&url, &password);
    db.batch_execute(&format!(
        "CREATE SCHEMA \"{schema}\"; SET search_path TO \"{schema}\"; {ddl}"
    ))
    .unwrap();
    Some(App {
        url,
        password,
        ca,
        schema,
        db,
    })
}

/// A test's own schema on the server, migrated, with `recipients` alert
/// recipients and a ticket stuck since February (`fill_alerts`); one
/// machine's folder pointing at it, sending to 127.0.0.1:`smtp` over
/// `connections`; a direct connection for the test's own SQL. `None` (the
/// test skipped) without a server.
struct Alerts {
    env: TestEnv,
    url: String,
    password: String,
    db: postgres::Client,
    schema: String,
}

fn alerts_machine(test: &str, smtp: u16, connections: u32, recipients: i64) -> Option<Alerts> {
    let (url, password, ca) = server(test)?;
    let schema = fresh_schema(test.split('_').next().unwrap_or("t"));
    let env = machine(&url, &ca, &schema, smtp, connections);
    run_pg(&env, &password, &["db", "migrate"], "2026-03-10T07:00:00Z").success();
    let mut db = client(&url, &password);
    fill_alerts(&mut db, &schema, recipients);
    Some(Alerts {
        env,
        url,
        password,
        db,
        schema,
    })
}

/// `args` started in `env` with the test server's password, its output
/// left out.
fn spawn_pg(env: &TestEnv, password: &str, args: &[&str], now: &str) -> std::process::Child {
    let mut cmd = env.command(args, now);
    cmd.env(crate::support::pg::PASSWORD_ENV, password)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    cmd.spawn().unwrap()
}

#[test]
fn delay_alerts_go_out_once_from_a_postgresql_database() {
    let smtp = crate::support::SmtpServer::start();
    let Some(Alerts {
        env,
        password,
        mut db,
        schema,
        ..
    }) = alerts_machine("delay_alerts_go_out_once_from_a_postgresql_database", smtp.port, 2, 3)
    else {
        return;
    };

    // A dry run lists the digests and writes nothing.
    let out = run_pg(
        &env,
        &password,
        &["check-delay-alerts", "--dry-run"],
        "2026-03-10T07:00:00Z",
    )
    .success();
    assert!(out.stdout.contains("staff2@example.com"), "{}", out.stdout);
    let count = |db: &mut postgres::Client, sql: &str| -> i64 {
        db.query_one(&format!("SELECT count(*) FROM \"{schema}\".{sql}"), &[])
            .unwrap()
            .get(0)
    };
    assert_eq!(count(&mut db, "rappel_deliveries"), 0);

    let out = run_pg(&env, &password, &["check-delay-alerts"], "2026-03-10T07:00:00Z").success();
    assert!(out.stdout.contains("3 sent"), "{}", out.stdout);
    assert_eq!(
        smtp.recipients(),
        ["staff1@example.com", "staff2@example.com", "staff3@example.com"]
    );
    assert!(smtp.mail_to("staff1@example.com").decoded().contains("T-1"));
    assert_eq!(count(&mut db, "rappel_deliveries WHERE status = 'sent'"), 3);
    assert_eq!(count(&mut db, "rappel_delay_alert_log"), 3);
    assert_eq!(
        count(
            &mut db,
            "rappel_job_runs WHERE finished_at IS NOT NULL AND exit_code = 0 AND sent = 3"
        ),
        1
    );

    // The next run, a deliver and run-all send nothing more.
    run_pg(&env, &password, &["check-delay-alerts"], "2026-03-10T08:00:00Z").success();
    run_pg(&env, &password, &["deliver"], "2026-03-10T08:00:00Z").success();
    run_pg(&env, &password, &["run-all"], "2026-03-10T08:00:00Z").success();
    assert_eq!(smtp.recipients().len(), 3);

    // The operator's commands read and write the same rows.
    let out = run_pg(&env, &password, &["log", "--json"], "2026-03-10T08:00:00Z").success();
    let log: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(log.as_array().map(Vec::len), Some(3), "{}", out.stdout);
    assert!(
        log.as_array().unwrap().iter().all(|e| e["status"] == "sent"),
        "{}",
        out.stdout
    );
    let out = run_pg(&env, &password, &["show", "1"], "2026-03-10T08:00:00Z").success();
    assert!(out.stdout.contains("staff1@example.com"), "{}", out.stdout);
    let out = run_pg(&env, &password, &["stats", "--json"], "2026-03-10T08:00:00Z").success();
    let stats: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(stats["totals"]["sent"], 3, "{}", out.stdout);
    assert_eq!(stats["median_seconds_to_send"], 0.0, "{}", out.stdout);
    let out = run_pg(&env, &password, &["dashboard"], "2026-03-10T08:00:00Z").success();
    assert!(out.stdout.contains("<b>3</b><span>sent</span>"), "{}", out.stdout);
    assert!(out.stdout.contains("check-delay-alerts</td>"), "{}", out.stdout);
    let out = run_pg(&env, &password, &["metrics"], "2026-03-10T08:00:00Z").success();
    assert!(
        out.stdout
            .contains(r#"rappel_deliveries_total{status="sent",channel="email",kind="delay_alert"} 3"#),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(r#"rappel_job_last_run_exit_code{job="deliver"} 0"#),
        "{}",
        out.stdout
    );
    // A sent message is never retried by hand.
    run_pg(&env, &password, &["retry", "1"], "2026-03-10T08:00:00Z");
    run_pg(&env, &password, &["deliver"], "2026-03-10T08:00:00Z").success();
    assert_eq!(smtp.recipients().len(), 3);

    // A server refusing the message: retried with backoff, recorded in
    // PostgreSQL like in SQLite.
    db.batch_execute(&format!(
        "INSERT INTO \"{schema}\".tickets (id, reference, created_at) VALUES (2, 'T-2', '2026-02-01T08:00:00Z');
         INSERT INTO \"{schema}\".ticket_events (ticket_id, stage, entered_at) VALUES (2, 'Attente', '2026-02-02T08:00:00Z');"
    ))
    .unwrap();
    smtp.set_mode(crate::support::Mode::Defer);
    run_pg(&env, &password, &["check-delay-alerts"], "2026-03-11T07:00:00Z").code(75);
    assert_eq!(
        count(
            &mut db,
            "rappel_deliveries WHERE status = 'pending' AND attempts = 1 AND next_attempt_at IS NOT NULL"
        ),
        3
    );
    // The operator cancels one and retries the others by hand; they go once
    // the server takes them.
    run_pg(&env, &password, &["cancel", "4"], "2026-03-11T07:01:00Z").success();
    smtp.set_mode(crate::support::Mode::Accept);
    run_pg(&env, &password, &["retry", "5", "6"], "2026-03-11T07:01:00Z").success();
    run_pg(&env, &password, &["deliver"], "2026-03-11T07:02:00Z").success();
    assert_eq!(smtp.recipients().len(), 5);
    assert_eq!(
        count(&mut db, "rappel_deliveries WHERE status = 'cancelled' AND id = 4"),
        1
    );

    // What is coming, and a purge that keeps what re-arming counts from.
    run_pg(&env, &password, &["upcoming"], "2026-03-11T07:03:00Z").success();
    let out = run_pg(
        &env,
        &password,
        &["purge", "--older-than", "7d", "--vacuum"],
        "2026-04-20T07:00:00Z",
    )
    .success();
    assert!(out.stdout.contains("vacuumed"), "{}", out.stdout);
    assert_eq!(
        count(&mut db, "rappel_job_runs"),
        0,
        "finished runs older than a week go"
    );
    assert_eq!(
        count(&mut db, "rappel_delay_alert_log"),
        2,
        "each of the two events keeps its latest alert"
    );
}

#[test]
fn a_row_late_in_a_claim_gets_its_lease_renewed_on_postgresql() {
    // As tests/throttle.rs's test of the same name: five digests in one
    // claim, lease_s = 5, the first four accepted in 0.8 s each; the fifth
    // is sent, recorded once, its lease renewed on the server first.
    use crate::support::faulty_smtp::{Fault, FaultySmtp};
    let smtp = FaultySmtp::start(Fault::SlowEnd {
        each: std::time::Duration::from_millis(800),
        first: 4,
        then: std::time::Duration::from_millis(900),
    });
    let Some(Alerts {
        env,
        password,
        mut db,
        schema,
        ..
    }) = alerts_machine(
        "a_row_late_in_a_claim_gets_its_lease_renewed_on_postgresql",
        smtp.port,
        1,
        5,
    )
    else {
        return;
    };
    let config = std::fs::read_to_string(env.config_path()).unwrap();
    env.write_config(
        &config
            .replace("timeout_s = 2", "timeout_s = 1")
            .replace("lease_s = 10", "lease_s = 5"),
    );
    run_pg(&env, &password, &["check-delay-alerts"], "2026-03-10T07:00:00Z").success();
    assert_eq!(smtp.accepted().len(), 5);
    let sent: i64 = db
        .query_one(
            &format!("SELECT count(*) FROM \"{schema}\".rappel_deliveries WHERE status = 'sent' AND attempts = 1"),
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(sent, 5);
}

#[test]
fn several_machines_on_one_postgresql_database_send_each_message_once() {
    let Some((url, password, ca)) = server("several_machines_on_one_postgresql_database_send_each_message_once") else {
        return;
    };
    let schema = fresh_schema("machines");
    let smtp = crate::support::SmtpServer::start();
    // Three machines: three folders, one database.
    // Eight connections each: many claims at once, so two taking the same
    // rows would show.
    let machines: Vec<TestEnv> = (0..3).map(|_| machine(&url, &ca, &schema, smtp.port, 8)).collect();
    run_pg(&machines[0], &password, &["db", "migrate"], "2026-03-10T07:00:00Z").success();
    let mut db = client(&url, &password);
    fill_alerts(&mut db, &schema, 400);

    // Every machine runs the job and deliver at once, twice over.
    let children: Vec<_> = (0..12)
        .map(|i| {
            let env = &machines[i % 3];
            let args: &[&str] = if i % 2 == 0 {
                &["check-delay-alerts"]
            } else {
                &["deliver"]
            };
            let mut cmd = env.command(args, "2026-03-10T07:00:00Z");
            cmd.env("RAPPEL_TEST_PG_PASSWORD", &password)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped());
            cmd.spawn().unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    // What is left (a deliver that started before anything was planned).
    run_pg(&machines[1], &password, &["deliver"], "2026-03-10T07:00:00Z").success();

    let recipients = smtp.recipients();
    let mut unique = recipients.clone();
    unique.dedup();
    assert_eq!(unique.len(), 400, "every recipient got their digest");
    assert_eq!(recipients.len(), 400, "nobody got it twice");
    let sent: i64 = db
        .query_one(
            &format!("SELECT count(*) FROM \"{schema}\".rappel_deliveries WHERE status = 'sent' AND attempts = 1"),
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(sent, 400);
}

/// A queue planned since the server last analyzed `rappel_deliveries` is
/// analyzed before it is claimed: with statistics from when the table was
/// empty, every claim would read and sort the whole queue.
#[test]
fn a_large_queue_is_analyzed_before_it_is_claimed() {
    let smtp = crate::support::SmtpServer::start();
    let Some(mut a) = alerts_machine("a_large_queue_is_analyzed_before_it_is_claimed", smtp.port, 4, 300) else {
        return;
    };
    let tuples = |db: &mut postgres::Client| -> f32 {
        db.query_one(
            "SELECT reltuples FROM pg_class WHERE oid = to_regclass($1)",
            &[&format!("\"{}\".rappel_deliveries", a.schema)],
        )
        .unwrap()
        .get(0)
    };
    assert!(tuples(&mut a.db) < 0.0, "never analyzed yet");
    run_pg(&a.env, &a.password, &["check-delay-alerts"], "2026-03-10T07:00:00Z").success();
    assert_eq!(smtp.recipients().len(), 300);
    let analyzed = tuples(&mut a.db);
    assert!((250.0..=350.0).contains(&analyzed), "reltuples {analyzed}");
}

#[test]
fn a_claim_skips_the_rows_another_machine_holds_rather_than_waiting() {
    let smtp = crate::support::SmtpServer::start();
    let Some(Alerts {
        env,
        url,
        password,
        schema,
        ..
    }) = alerts_machine(
        "a_claim_skips_the_rows_another_machine_holds_rather_than_waiting",
        smtp.port,
        2,
        20,
    )
    else {
        return;
    };
    // Planned, not sent: no transport can be had yet.
    std::fs::write(
        env.config_path(),
        std::fs::read_to_string(env.config_path()).unwrap().replace(
            &format!("port = {}", smtp.port),
            "port = 1\nusername = \"u\"\npassword_env = \"RAPPEL_NO_SUCH_PW\"",
        ),
    )
    .unwrap();
    run_pg(&env, &password, &["check-delay-alerts"], "2026-03-10T07:00:00Z").code(78);
    std::fs::write(
        env.config_path(),
        std::fs::read_to_string(env.config_path()).unwrap().replace(
            "port = 1\nusername = \"u\"\npassword_env = \"RAPPEL_NO_SUCH_PW\"",
            &format!("port = {}", smtp.port),
        ),
    )
    .unwrap();

    // Another machine holds five of the twenty rows, mid-claim.
    let mut other = client(&url, &password);
    let mut held = other.transaction().unwrap();
    let ids: Vec<i64> = held
        .query(
            &format!("SELECT id FROM \"{schema}\".rappel_deliveries ORDER BY id LIMIT 5 FOR UPDATE"),
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids.len(), 5);

    // deliver takes the fifteen others and ends, without waiting.
    let mut child = spawn_pg(&env, &password, &["deliver"], "2026-03-10T07:00:00Z");
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > std::time::Duration::from_secs(20) {
            let _ = child.kill();
            panic!("deliver waited for the rows another session holds");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(status.success());
    assert_eq!(smtp.recipients().len(), 15);
    held.rollback().unwrap();

    // Once they are free, the next run sends them.
    run_pg(&env, &password, &["deliver"], "2026-03-10T07:01:00Z").success();
    let mut all = smtp.recipients();
    assert_eq!(all.len(), 20);
    all.dedup();
    assert_eq!(all.len(), 20);
}

#[test]
fn a_run_whose_sessions_the_server_ends_sends_nothing_more() {
    let smtp = crate::support::SmtpServer::start();
    let Some(Alerts {
        env,
        password,
        mut db,
        schema,
        ..
    }) = alerts_machine(
        "a_run_whose_sessions_the_server_ends_sends_nothing_more",
        smtp.port,
        1,
        6,
    )
    else {
        return;
    };
    // The first message held 6 s: the sessions end well within it, even on
    // a loaded machine (held 3 s, the run once went on to its second send
    // before they did, and recorded it).
    let mut child = hung_run(&smtp, &env, &password, &schema, 6);
    smtp.set_mode(crate::support::Mode::Accept);
    // As an administrator or a failover would: every session of the run
    // ends, while its first message is still held by the server. Each
    // termination is waited for (up to 5 s): a signalled backend may
    // otherwise answer one more statement before it exits, on a loaded
    // machine.
    let ended: i64 = db
        .query_one(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity
             WHERE application_name = $1) t",
            &[&schema],
        )
        .unwrap()
        .get(0);
    assert!(ended >= 2, "the worker's session and the writer's: {ended}");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(74), "the run says its database went away");
    // The other five were claimed, but none went: their outcome could not
    // have been recorded, and each would go again once its lease expired.
    assert!(smtp.recipients().is_empty(), "{:?}", smtp.recipients());

    std::thread::sleep(std::time::Duration::from_secs(11)); // lease_s = 10, in wall time
    run_pg(&env, &password, &["deliver"], "2026-03-10T07:00:00Z").success();
    let mut all = smtp.recipients();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 6, "each digest once");
    assert_eq!(smtp.recipients().len(), 6, "{:?}", smtp.recipients());
}

/// Names the sessions of `env`'s runs after `schema`, to find them, and
/// them alone, in `pg_stat_activity`.
fn name_sessions(env: &TestEnv, schema: &str) {
    let config = std::fs::read_to_string(env.config_path())
        .unwrap()
        .replace("sslrootcert=", &format!("application_name={schema}&sslrootcert="));
    env.write_config(&config);
}

/// `check-delay-alerts` started in `env`, its sessions named after
/// `schema` (to find them, and them alone, in `pg_stat_activity`), once it
/// is sending: each message held `secs` by `smtp`, then refused.
fn hung_run(
    smtp: &crate::support::SmtpServer,
    env: &TestEnv,
    password: &str,
    schema: &str,
    secs: u64,
) -> std::process::Child {
    name_sessions(env, schema);
    smtp.set_mode(crate::support::Mode::Hang(secs));
    let child = spawn_pg(env, password, &["check-delay-alerts"], "2026-03-10T07:00:00Z");
    assert!(
        smtp.wait_data_started(std::time::Duration::from_secs(20)),
        "the run reached its first send"
    );
    child
}

/// A run's workers share a few sessions on the server, taken for a claim
/// or a look and given back before each send: eight workers mid-send hold
/// at most four sessions (three shared, and the run's own, which writes
/// the outcomes), not one each and the writer's (ten).
#[test]
fn eight_workers_mid_send_share_a_few_sessions_on_the_server() {
    let smtp = crate::support::SmtpServer::start();
    let test = "eight_workers_mid_send_share_a_few_sessions_on_the_server";
    let Some(mut a) = alerts_machine(test, smtp.port, 8, 64) else {
        return;
    };
    let mut child = hung_run(&smtp, &a.env, &a.password, &a.schema, 3);
    // Every worker mid-send (64 digests, 8 a claim): the most sessions
    // seen over a second.
    let mut most = 0;
    for _ in 0..20 {
        let open: i64 =
            a.db.query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                &[&a.schema],
            )
            .unwrap()
            .get(0);
        most = most.max(open);
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        smtp.data_started() >= 8,
        "all eight workers sent: {}",
        smtp.data_started()
    );
    assert!((2..=4).contains(&most), "{most} sessions");
    let _ = child.kill();
    let _ = child.wait();
}

/// A shared session the server ends costs the worker that meets the loss:
/// the session is closed rather than given back, and the other workers go
/// on over new ones (given back, it would stop each worker that drew it in
/// turn, and the run with them).
#[test]
fn a_shared_session_the_server_ends_stops_one_worker_not_the_run() {
    let smtp = crate::support::SmtpServer::start();
    let test = "a_shared_session_the_server_ends_stops_one_worker_not_the_run";
    // Many claims of 128: the workers claim again after the loss.
    let Some(mut a) = alerts_machine(test, smtp.port, 8, 4000) else {
        return;
    };
    name_sessions(&a.env, &a.schema);
    let mut child = spawn_pg(&a.env, &a.password, &["check-delay-alerts"], "2026-03-10T07:00:00Z");
    let started = std::time::Instant::now();
    while smtp.recipients().len() < 300 {
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "the run sends");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // One session the workers share ends (not the run's own, which holds
    // the job's lock and writes the outcomes).
    let ended: i64 =
        a.db.query_one(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity a
             WHERE application_name = $1
               AND NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.locktype = 'advisory')
             LIMIT 1) t",
            &[&a.schema],
        )
        .unwrap()
        .get(0);
    assert_eq!(ended, 1);
    assert!(smtp.recipients().len() < 3000, "ended while the run still sends");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(74), "the lost session is said");
    let sent: i64 =
        a.db.query_one(
            &format!(
                "SELECT count(*) FROM \"{}\".rappel_deliveries WHERE status = 'sent'",
                a.schema
            ),
            &[],
        )
        .unwrap()
        .get(0);
    let mut received = smtp.recipients();
    let all = received.len();
    received.dedup();
    assert_eq!(received.len(), all, "none twice");
    // All but the claim of the worker that stopped (at most 128) and what
    // was on its way when it did.
    assert!(sent >= 4000 - 128 - 8, "{sent} sent");
}

#[test]
fn a_machine_killed_mid_send_loses_nothing_and_frees_its_lock() {
    let smtp = crate::support::SmtpServer::start();
    let Some(Alerts {
        env,
        url,
        password,
        mut db,
        schema,
    }) = alerts_machine(
        "a_machine_killed_mid_send_loses_nothing_and_frees_its_lock",
        smtp.port,
        1,
        3,
    )
    else {
        return;
    };
    smtp.set_mode(crate::support::Mode::Hang(30));

    let mut child = spawn_pg(&env, &password, &["check-delay-alerts"], "2026-03-10T07:00:00Z");
    assert!(
        smtp.wait_data_started(std::time::Duration::from_secs(20)),
        "the run reached the send"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let states = |db: &mut postgres::Client| -> Vec<(String, i32)> {
        db.query(
            &format!("SELECT status, attempts FROM \"{schema}\".rappel_deliveries ORDER BY id"),
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
    };
    let before = states(&mut db);
    assert_eq!(before.len(), 3, "every digest was planned before the kill");
    assert!(before.iter().any(|(s, _)| s == "sending"), "{before:?}");
    smtp.set_mode(crate::support::Mode::Accept);

    // The killed run's session, and its advisory lock, died with it: the
    // next run is not turned away, and leaves the leased message alone.
    let out = run_pg(&env, &password, &["check-delay-alerts"], "2026-03-10T07:00:00Z").success();
    assert!(!out.stderr.contains("holds its lock"), "{}", out.stderr);
    assert!(smtp.recipients().is_empty(), "the killed run's leases still hold");

    std::thread::sleep(std::time::Duration::from_secs(11)); // lease_s = 10, in wall time
    let out = run_pg(&env, &password, &["deliver"], "2026-03-10T07:00:00Z").success();
    assert!(out.stderr.contains("pending again"), "{}", out.stderr);
    let mut all = smtp.recipients();
    assert_eq!(all.len(), 3);
    all.dedup();
    assert_eq!(all.len(), 3, "nobody got theirs twice");
    assert!(states(&mut db).iter().all(|(s, _)| s == "sent"));

    // While another session holds the job's lock, a run says so and does nothing.
    let mut holder = client(&url, &password);
    let key = format!("rappel:{schema}:check-delay-alerts");
    let held: bool = holder
        .query_one("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", &[&key])
        .unwrap()
        .get(0);
    assert!(held);
    let out = run_pg(
        &env,
        &password,
        &["check-delay-alerts", "--force"],
        "2026-03-10T07:00:00Z",
    )
    .success();
    assert!(out.stderr.contains("holds its lock"), "{}", out.stderr);
}

#[test]
fn reports_go_out_from_a_postgresql_database_with_their_query_and_their_next_occurrence() {
    let Some((url, password, ca)) =
        server("reports_go_out_from_a_postgresql_database_with_their_query_and_their_next_occurrence")
    else {
        return;
    };
    let schema = fresh_schema("reports");
    let smtp = crate::support::SmtpServer::start();
    // COPY … TO PROGRAM runs a program as the server's user, even in a
    // read-only transaction: a report may not be one.
    let marker = std::env::temp_dir().join(format!("rappel-copy-{}-{schema}", std::process::id()));
    let env = machine_with(
        &url,
        &ca,
        &schema,
        smtp.port,
        2,
        &format!(
            r#"
[reports]
attachments_dir = "reports"
query_timeout_s = 1
[reports.definitions.open_tickets]
query = "SELECT reference, customer, 12.50::numeric AS amount FROM tickets WHERE closed_at IS NULL ORDER BY reference;"
[reports.definitions.writes]
query = "DELETE FROM tickets"
[reports.definitions.slow]
query = "SELECT pg_sleep(5)"
[reports.definitions.copy]
query = "COPY (SELECT 1) TO PROGRAM 'touch {}'"
[reports.definitions.nothing]
query = "SELECT FROM tickets"
[reports.definitions.untimed]
query = "SELECT v, set_config('statement_timeout', '0', true), pg_sleep(CASE WHEN v > 1000 THEN 4 ELSE 0 END)::text FROM generate_series(1, 1001) v"
"#,
            marker.display()
        ),
    );
    std::fs::create_dir_all(env.dir.path().join("reports")).unwrap();
    let pdf: Vec<u8> = (0..50_000).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(env.dir.path().join("reports/weekly.pdf"), &pdf).unwrap();
    run_pg(&env, &password, &["db", "migrate"], "2026-03-10T07:00:00Z").success();
    let mut db = client(&url, &password);
    db.batch_execute(&format!(
        "SET search_path TO \"{schema}\";
         INSERT INTO tickets (reference, customer, created_at) VALUES ('R-1', 'Marie <b>', '2026-03-01T00:00:00Z');
         INSERT INTO scheduled_reports (title, recipients, scheduled_at, attachment_path, report, recurrence, timezone)
             VALUES ('Weekly', 'a@example.com; b@example.com', '2026-03-10T06:30:00Z', 'weekly.pdf', 'open_tickets',
                     '30 7 * * 2', 'Europe/Paris'),
                    ('Open tickets', 'ops@example.com', '2026-03-10T06:30:00Z', NULL, 'open_tickets', NULL, NULL),
                    ('Writes', 'ops@example.com', '2026-03-10T06:30:00Z', NULL, 'writes', NULL, NULL),
                    ('Slow', 'ops@example.com', '2026-03-10T06:30:00Z', NULL, 'slow', NULL, NULL),
                    ('Copy', 'ops@example.com', '2026-03-10T06:30:00Z', NULL, 'copy', NULL, NULL),
                    ('Untimed', 'ops@example.com', '2026-03-10T06:30:00Z', NULL, 'untimed', NULL, NULL);
         -- Rows the application wrote with ids of its own (a data import): the
         -- identity sequence lags behind them.
         INSERT INTO scheduled_reports (id, title, recipients, scheduled_at, report, recurrence)
             VALUES (40, 'Imported', 'imp@example.com', '2026-03-10T06:30:00Z', 'open_tickets', '0 8 * * *'),
                    (41, 'Imported later', 'imp@example.com', '2026-04-10T06:30:00Z', 'open_tickets', NULL);"
    ))
    .unwrap();

    // `config check` connects to check the queries only when asked to;
    // then the one that writes and the one past its timeout are named.
    let out = run_pg(&env, &password, &["config", "check"], "2026-03-10T07:00:00Z").success();
    assert!(
        out.stdout.contains("`config check --connect` runs them"),
        "{}",
        out.stdout
    );
    let out = run_pg(
        &env,
        &password,
        &["config", "check", "--connect"],
        "2026-03-10T07:00:00Z",
    )
    .code(78);
    assert!(
        out.stderr.contains("reports.definitions.writes.query"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("reports.definitions.slow.query"), "{}", out.stderr);
    assert!(out.stderr.contains("reports.definitions.copy.query"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("reports.definitions.nothing.query: it returns no column"),
        "{}",
        out.stderr
    );
    assert!(!marker.exists(), "config check ran the COPY's program");
    assert!(!out.stderr.contains("open_tickets"), "{}", out.stderr);

    run_pg(&env, &password, &["send-reports"], "2026-03-10T07:00:00Z").code(65);
    for to in ["a@example.com", "b@example.com"] {
        assert_eq!(
            smtp.mail_to(to).attachment("weekly.pdf").as_deref(),
            Some(pdf.as_slice())
        );
    }
    let csv = String::from_utf8(
        smtp.mail_to("ops@example.com")
            .attachment("open_tickets-2026-03-10.csv")
            .expect("a CSV"),
    )
    .unwrap();
    assert_eq!(csv, "\u{feff}reference,customer,amount\r\nR-1,Marie <b>,12.50\r\n");
    let rows: Vec<(i64, String, Option<String>, String)> = db
        .query(
            &format!("SELECT id, status, last_error, scheduled_at FROM \"{schema}\".scheduled_reports ORDER BY id"),
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(rows[0].1, "sent");
    assert_eq!(rows[1].1, "sent");
    assert_eq!(rows[2].1, "failed");
    assert!(rows[2].2.as_deref().unwrap_or("").contains("only read"), "{rows:?}");
    assert_eq!(rows[3].1, "failed");
    assert!(
        rows[3].2.as_deref().unwrap_or("").contains("query_timeout_s"),
        "{rows:?}"
    );
    // Each recurring report's next occurrence, once, under an id after
    // every id the application wrote: the weekly one Tuesday 07:30 in Paris,
    // the imported one tomorrow 08:00.
    assert_eq!(rows[4].1, "failed");
    assert!(rows[4].2.as_deref().unwrap_or("").contains("only read"), "{rows:?}");
    assert!(!marker.exists(), "send-reports ran the COPY's program");
    // A query that lifts statement_timeout for the fetches after its first
    // 1,000 rows is stopped all the same.
    assert_eq!(rows[5].1, "failed");
    assert!(
        rows[5].2.as_deref().unwrap_or("").contains("query_timeout_s"),
        "{rows:?}"
    );
    assert_eq!(rows.len(), 10, "{rows:?}");
    assert_eq!((rows[6].0, rows[6].1.as_str()), (40, "sent"));
    assert_eq!(
        (rows[8].0, rows[8].1.as_str(), rows[8].3.as_str()),
        (42, "pending", "2026-03-17T06:30:00Z")
    );
    assert_eq!(
        (rows[9].0, rows[9].1.as_str(), rows[9].3.as_str()),
        (43, "pending", "2026-03-11T07:00:00Z")
    );
    let tickets: i64 = db
        .query_one(&format!("SELECT count(*) FROM \"{schema}\".tickets"), &[])
        .unwrap()
        .get(0);
    assert_eq!(tickets, 1, "the writing query wrote nothing");

    // A second run sends nothing; the next week's goes on its day.
    run_pg(&env, &password, &["send-reports"], "2026-03-10T08:00:00Z").success();
    assert_eq!(smtp.mails().len(), 4);
    // Without the file (not kept), from the definition.
    run_pg(&env, &password, &["send-reports"], "2026-03-17T06:31:00Z").success();
    let weekly: Vec<_> = smtp
        .mails()
        .into_iter()
        .filter(|m| m.to.iter().any(|t| t == "a@example.com"))
        .collect();
    assert_eq!(weekly.len(), 2);
    assert!(
        weekly[1].attachment("open_tickets-2026-03-17.csv").is_some(),
        "{:?}",
        weekly[1].subject()
    );
}

#[test]
fn reminders_go_out_from_a_postgresql_database_at_their_local_time_and_once() {
    let Some((url, password, ca)) = server("reminders_go_out_from_a_postgresql_database_at_their_local_time_and_once")
    else {
        return;
    };
    let schema = fresh_schema("reminders");
    let smtp = crate::support::SmtpServer::start();
    let env = machine_with(&url, &ca, &schema, smtp.port, 2, "");
    let config = std::fs::read_to_string(env.config_path()).unwrap();
    env.write_config(&config.replace("Europe/Paris", "Africa/Libreville"));
    run_pg(&env, &password, &["db", "migrate"], "2026-03-02T09:00:00Z").success();
    let mut db = client(&url, &password);
    db.batch_execute(&format!(
        "SET search_path TO \"{schema}\";
         INSERT INTO contacts (id, name, email) VALUES (1, 'Awa', 'awa@example.com'), (2, 'Lea', 'lea@example.com'),
             (3, 'Marie', 'marie@example.com');
         -- Lent Monday 2 March, due Friday 13 March 18:00 Libreville; and a loan whose due date is not one.
         INSERT INTO loans (contact_id, item, term, lent_at, due_at)
             VALUES (1, 'Drill', 'long', '2026-03-02T10:00:00Z', '2026-03-13T17:00:00Z'),
                    (1, 'Saw', 'long', '2026-03-02T10:00:00Z', 'next week');
         INSERT INTO students (id, contact_id, parent_contact_id, subscribed_at, last_active_at)
             VALUES (1, 2, 3, '2026-01-05 09:00:00', '2026-03-09 09:00:00');
         INSERT INTO manual_reminders (student_id, author_contact_id, message, created_at)
             VALUES (1, 3, 'Bring your <b>calculator</b>', '2026-03-10 18:00:00');"
    ))
    .unwrap();
    let kinds = |smtp: &crate::support::SmtpServer| -> Vec<String> {
        smtp.mails().iter().filter_map(|m| m.header("X-Rappel-Kind")).collect()
    };

    // The loan whose due date is not one is named, the others go.
    let out = run_pg(&env, &password, &["send-reminders"], "2026-03-02T10:00:00Z").code(65);
    assert!(out.stderr.contains("next week"), "{}", out.stderr);
    assert_eq!(kinds(&smtp), ["loan_created"]);
    for (at, kind) in [
        ("2026-03-11T08:00:00Z", "loan_d2"),
        ("2026-03-12T08:00:00Z", "loan_d1"),
        ("2026-03-13T07:00:00Z", "loan_due"),
    ] {
        run_pg(&env, &password, &["send-reminders", "--kind", kind], at).code(65);
        assert_eq!(kinds(&smtp).last().map(String::as_str), Some(kind), "{kind} at {at}");
    }
    let loans = kinds(&smtp).len();
    assert_eq!(loans, 4, "{:?}", kinds(&smtp));

    // The parent's message to the student, once, its sent_at kept.
    run_pg(
        &env,
        &password,
        &["send-reminders", "--kind", "manual"],
        "2026-03-10T18:02:00Z",
    )
    .success();
    let mail = smtp.mail_to("lea@example.com");
    assert_eq!(mail.subject(), "A message from your parent Marie");
    assert!(mail.part("text/html").unwrap().contains("&lt;b&gt;calculator"));
    run_pg(
        &env,
        &password,
        &["send-reminders", "--kind", "manual"],
        "2026-03-10T18:10:00Z",
    )
    .success();
    assert_eq!(kinds(&smtp).len(), loans + 1, "sent once");
    let sent_at: Option<String> = db
        .query_one(&format!("SELECT sent_at FROM \"{schema}\".manual_reminders"), &[])
        .unwrap()
        .get(0);
    assert_eq!(sent_at.as_deref(), Some("2026-03-10T18:02:00Z"));
}

#[test]
fn punches_are_pushed_once_from_a_postgresql_database_in_batches_and_retried() {
    let Some((url, password, ca)) = server("punches_are_pushed_once_from_a_postgresql_database_in_batches_and_retried")
    else {
        return;
    };
    let schema = fresh_schema("punches");
    let hr = crate::support::hr::FakeHr::start();
    let smtp = crate::support::SmtpServer::start();
    let env = machine_with(
        &url,
        &ca,
        &schema,
        smtp.port,
        2,
        &format!(
            "\n[attendance]\nmax_attempts = 4\n\n{}",
            crate::attendance::service("rh", &hr, &["TM20-001"])
        ),
    );
    std::fs::write(env.dir.path().join("hr-token"), "hr-token-9\n").unwrap();
    run_pg(&env, &password, &["db", "migrate"], "2026-03-10T09:00:00Z").success();
    let mut db = client(&url, &password);
    db.batch_execute(&format!(
        "SET search_path TO \"{schema}\";
         INSERT INTO terminals (id, serial, name) VALUES (1, 'TM20-001', 'Entrance'), (2, 'TM20-002', 'Back');
         -- 250 punches, the oldest written without an offset and one that is no instant.
         INSERT INTO attendance_logs (terminal_id, enroll_id, user_name, punched_at, mode, inout)
             SELECT 1, 100 + i % 7, 'User ' || i % 7,
                    CASE WHEN i = 1 THEN '2026-03-09 06:59:00' ELSE to_char(TIMESTAMP '2026-03-09 07:00:00'
                         + i * INTERVAL '1 minute', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') END,
                    1, i % 2
             FROM generate_series(1, 250) i;
         UPDATE attendance_logs SET punched_at = 'yesterday noon' WHERE id = 7;
         INSERT INTO attendance_logs (terminal_id, enroll_id, user_name, punched_at, mode, inout)
             VALUES (2, 5, 'Back door', '2026-03-09T08:00:00Z', 1, 0);"
    ))
    .unwrap();
    hr.set_users(r#"{"users":[{"enrollid":100,"name":"Awa","admin":0,"is_enabled":true}]}"#);
    // The first batch answered 500: it is retried, whole, under its key.
    hr.answer_next(500, "busy", &[]);

    let out = run_pg(&env, &password, &["sync-attendance"], "2026-03-10T09:00:00Z").code(65);
    assert!(out.stderr.contains("HTTP 500"), "{}", out.stderr);
    assert!(out.stderr.contains("yesterday noon"), "{}", out.stderr);
    let posts = hr.posts();
    assert_eq!(posts.len(), 1, "the service waits after a 500");
    let first = posts[0].log_ids();
    assert_eq!(first.len(), 99, "a batch of 100, less the punch that is no instant");
    assert_eq!(
        first[0], 1,
        "in punch order: the one without an offset (read in Paris) first"
    );
    let states = |db: &mut postgres::Client| -> Vec<(String, i64)> {
        db.query(
            &format!("SELECT sync_status, count(*) FROM \"{schema}\".attendance_logs GROUP BY 1 ORDER BY 1"),
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
    };
    assert_eq!(
        states(&mut db),
        [("failed".to_string(), 100), ("pending".into(), 151)],
        "the 500's batch waits for its retry, the unreadable punch failed for good"
    );
    let users: i64 = db
        .query_one(
            &format!("SELECT count(*) FROM \"{schema}\".rappel_attendance_users"),
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(users, 1);

    // After the backoff the same batch goes again, under the same key, then the rest.
    let out = run_pg(&env, &password, &["sync-attendance"], "2026-03-10T10:00:00Z").success();
    assert!(
        out.stderr.contains("TM20-002"),
        "the terminal no service takes is named: {}",
        out.stderr
    );
    let posts = hr.posts();
    assert_eq!(posts.len(), 4);
    assert_eq!(posts[1].log_ids(), first);
    assert_eq!(posts[1].idempotency_key, posts[0].idempotency_key);
    assert_eq!(
        states(&mut db),
        [("failed".to_string(), 1), ("pending".into(), 1), ("sent".into(), 249)]
    );
    run_pg(&env, &password, &["sync-attendance"], "2026-03-10T11:00:00Z").success();
    assert_eq!(hr.posts().len(), 4, "nothing pushed twice");
}

#[test]
fn the_demo_builds_on_a_postgresql_server_and_writes_what_it_writes_on_sqlite() {
    let Some((url, password, ca)) =
        server("the_demo_builds_on_a_postgresql_server_and_writes_what_it_writes_on_sqlite")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let demo = |args: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_rappel"));
        cmd.current_dir(dir.path())
            .env("PGPASSWORD", &password)
            .env_remove("RAPPEL_CONFIG")
            .args(["--now", "2026-03-10T07:00:00Z", "demo"])
            .args(args);
        crate::support::Output::of(cmd)
    };
    // Each outbox file's kind (its name without the hash), sorted.
    let kinds = |folder: &str| -> Vec<String> {
        let mut all = Vec::new();
        for sub in ["email", "whatsapp", "sms", "attendance/rh"] {
            if let Ok(entries) = std::fs::read_dir(dir.path().join(folder).join("outbox").join(sub)) {
                for e in entries.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    all.push(format!(
                        "{sub}/{}",
                        name.rsplit_once('-').map_or(name.as_str(), |(k, _)| k)
                    ));
                }
            }
        }
        all.sort();
        all
    };
    let mut admin = client(&url, &password);
    admin
        .batch_execute("DROP SCHEMA IF EXISTS rappel_demo CASCADE")
        .unwrap();
    let on_server = with(&url, &format!("sslrootcert={ca}"));
    let out = demo(&["--dir", "pg", "--database", &on_server]).success();
    assert!(out.stdout.contains("(schema rappel_demo)"), "{}", out.stdout);
    demo(&["--dir", "lite"]).success();
    assert!(kinds("pg").len() > 15, "{:?}", kinds("pg"));
    assert_eq!(kinds("pg"), kinds("lite"));
    assert!(
        !dir.path().join("pg/rappel.db").exists(),
        "no SQLite file for a server demo"
    );

    // Built again on the same server: refused, the earlier one kept.
    let out = demo(&["--dir", "pg", "--database", &on_server]).code(64);
    assert!(out.stderr.contains("DROP SCHEMA rappel_demo CASCADE"), "{}", out.stderr);
    let contacts: i64 = admin
        .query_one("SELECT count(*) FROM rappel_demo.contacts", &[])
        .unwrap()
        .get(0);
    assert!(contacts > 0);
    // New rows get fresh ids after the demo's own.
    admin
        .batch_execute("INSERT INTO rappel_demo.contacts (name) VALUES ('New')")
        .unwrap();

    // Generated tickets (benchmarks), the same as in SQLite.
    admin.batch_execute("DROP SCHEMA rappel_demo CASCADE").unwrap();
    demo(&["--dir", "pg", "--database", &on_server, "--scale", "2500", "--no-run"]).success();
    demo(&["--dir", "lite", "--scale", "2500", "--no-run"]).success();
    #[allow(
        clippy::disallowed_methods,
        reason = "the test reads the demo's SQLite file directly"
    )]
    let lite = rusqlite::Connection::open(dir.path().join("lite/rappel.db")).unwrap();
    for table in ["tickets", "ticket_events"] {
        let on_lite: (i64, String) = lite
            .query_row(
                &format!("SELECT count(*), CAST(max(id) AS TEXT) FROM {table}"),
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        let row = admin
            .query_one(&format!("SELECT count(*), max(id)::text FROM rappel_demo.{table}"), &[])
            .unwrap();
        assert_eq!((row.get::<_, i64>(0), row.get::<_, String>(1)), on_lite, "{table}");
    }
    let on_lite: String = lite
        .query_row(
            "SELECT group_concat(stage || entered_at, ',') FROM (SELECT * FROM ticket_events WHERE ticket_id <= 50 ORDER BY id)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let on_server: String = admin
        .query_one(
            "SELECT string_agg(stage || entered_at, ',' ORDER BY id) FROM rappel_demo.ticket_events WHERE ticket_id <= 50",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(on_server, on_lite);
}

#[test]
fn an_operators_mistakes_on_postgresql_fail_clearly_and_an_applications_tables_are_kept() {
    let Some((url, password, ca)) =
        server("an_operators_mistakes_on_postgresql_fail_clearly_and_an_applications_tables_are_kept")
    else {
        return;
    };
    let smtp = crate::support::SmtpServer::start();
    let mut admin = client(&url, &password);

    // A misspelt schema: the job says so (74) and makes nothing.
    let typo = fresh_schema("typo");
    let env = machine(&url, &ca, &typo, smtp.port, 2);
    let out = run_pg(&env, &password, &["check-delay-alerts"], "2026-03-10T07:00:00Z").code(74);
    assert!(
        out.stderr.contains("has no rappel schema") && out.stderr.contains("db migrate"),
        "{}",
        out.stderr
    );
    let made: bool = admin
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
            &[&typo],
        )
        .unwrap()
        .get(0);
    assert!(!made, "a job made no schema");

    // The application made some contract tables first, its own way
    // (timestamptz, boolean, extra columns): migrate keeps them and makes
    // the rest; PostgreSQL's own text for an instant reads as one.
    let schema = fresh_schema("app");
    admin
        .batch_execute(&format!(
            "CREATE SCHEMA \"{schema}\";
             CREATE TABLE \"{schema}\".contacts (id bigserial PRIMARY KEY, name text NOT NULL, email text, phone text,
                 locale text, timezone text, email_enabled boolean NOT NULL DEFAULT true,
                 whatsapp_enabled boolean NOT NULL DEFAULT false, sms_enabled boolean NOT NULL DEFAULT false,
                 muted_kinds text NOT NULL DEFAULT '', created timestamptz NOT NULL DEFAULT now());"
        ))
        .unwrap();
    let env = machine(&url, &ca, &schema, smtp.port, 2);
    run_pg(&env, &password, &["db", "migrate"], "2026-03-10T07:00:00Z").success();
    admin
        .batch_execute(&format!(
            "SET search_path TO \"{schema}\";
             INSERT INTO contacts (name, email) VALUES ('Ana', 'ana@example.com');
             INSERT INTO alert_recipients (contact_id) VALUES (1);
             INSERT INTO tickets (id, reference, created_at) VALUES (1, 'T-1', '2026-02-01 08:00:00+00');
             INSERT INTO ticket_events (ticket_id, stage, entered_at)
                 VALUES (1, 'Diagnostic', CAST(TIMESTAMPTZ '2026-02-01 08:00:00.12345+00' AS text));"
        ))
        .unwrap();
    run_pg(&env, &password, &["check-delay-alerts"], "2026-03-10T07:00:00Z").success();
    assert_eq!(smtp.recipients(), ["ana@example.com"]);

    // Another session holds a table rappel writes: the run gives up after
    // the busy timeout (74) rather than hang.
    let mut holder = client(&url, &password);
    let mut tx = holder.transaction().unwrap();
    tx.batch_execute(&format!(
        "LOCK TABLE \"{schema}\".rappel_job_runs IN ACCESS EXCLUSIVE MODE"
    ))
    .unwrap();
    let started = std::time::Instant::now();
    let out = run_pg(&env, &password, &["check-delay-alerts"], "2026-03-10T08:00:00Z").code(74);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert!(out.stderr.contains("lock timeout"), "{}", out.stderr);
    tx.rollback().unwrap();

    // A role given its schema, without the right to create one, migrates it.
    let role = format!("rappel_role_{}", std::process::id());
    let owned = fresh_schema("owned");
    admin
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN PASSWORD 'role-pw-5';
             CREATE SCHEMA \"{owned}\" AUTHORIZATION {role};"
        ))
        .unwrap();
    let env = machine(&url, &ca, &owned, smtp.port, 2);
    let config = std::fs::read_to_string(env.config_path()).unwrap();
    env.write_config(&config.replace("postgres://postgres@", &format!("postgres://{role}@")));
    let out = run_pg(&env, "role-pw-5", &["db", "migrate"], "2026-03-10T07:00:00Z").success();
    assert!(out.stdout.contains("schema 0 -> 13"), "{}", out.stdout);
    run_pg(&env, "role-pw-5", &["db", "migrate"], "2026-03-10T07:00:00Z").success();
    admin
        .batch_execute(&format!("DROP SCHEMA \"{owned}\" CASCADE; DROP ROLE {role};"))
        .unwrap();

    // A role that may only read rappel's tables: a job says what it lacks,
    // as a configuration error (78).
    let reader = format!("rappel_reader_{}", std::process::id());
    admin
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS {reader}; CREATE ROLE {reader} LOGIN PASSWORD 'reader-pw-3';
             GRANT USAGE ON SCHEMA \"{schema}\" TO {reader};
             GRANT SELECT ON ALL TABLES IN SCHEMA \"{schema}\" TO {reader};"
        ))
        .unwrap();
    let env = machine(&url, &ca, &schema, smtp.port, 2);
    let config = std::fs::read_to_string(env.config_path()).unwrap();
    env.write_config(&config.replace("postgres://postgres@", &format!("postgres://{reader}@")));
    let out = run_pg(&env, "reader-pw-3", &["check-delay-alerts"], "2026-03-10T09:00:00Z").code(78);
    assert!(
        out.stderr.contains("permission denied") && out.stderr.contains("needs SELECT, INSERT, UPDATE and DELETE"),
        "{}",
        out.stderr
    );
    run_pg(&env, "reader-pw-3", &["log"], "2026-03-10T09:00:00Z").success();
    admin
        .batch_execute(&format!(
            "REVOKE ALL ON ALL TABLES IN SCHEMA \"{schema}\" FROM {reader};
             REVOKE USAGE ON SCHEMA \"{schema}\" FROM {reader}; DROP ROLE {reader};"
        ))
        .unwrap();
}

/// More loans than one fetch of the read's cursor (1,000 rows): each is
/// planned once, an unreadable one among them is named and the rows after
/// it go on, and the run's cursor does not outlive the read.
#[test]
fn loans_beyond_one_fetch_are_each_planned_once_from_a_postgresql_cursor() {
    let Some((url, password, ca)) = server("loans_beyond_one_fetch_are_each_planned_once_from_a_postgresql_cursor")
    else {
        return;
    };
    let schema = fresh_schema("fetch");
    let smtp = crate::support::SmtpServer::start();
    let env = machine_with(&url, &ca, &schema, smtp.port, 4, "");
    run_pg(&env, &password, &["db", "migrate"], "2026-03-02T09:00:00Z").success();
    let mut db = client(&url, &password);
    db.batch_execute(&format!(
        "SET search_path TO \"{schema}\";
         INSERT INTO contacts (id, name, email)
             SELECT i, 'Borrower ' || i, 'b' || i || '@example.com' FROM generate_series(1, 2345) i;
         INSERT INTO loans (id, contact_id, item, term, lent_at, due_at)
             SELECT i, i, 'Item ' || i, 'long', '2026-03-02T10:00:00Z',
                    CASE WHEN i = 1500 THEN 'next week' ELSE '2026-03-20T17:00:00Z' END
             FROM generate_series(1, 2345) i;"
    ))
    .unwrap();
    let out = run_pg(
        &env,
        &password,
        &["send-reminders", "--kind", "loan_created"],
        "2026-03-02T10:00:00Z",
    )
    .code(65);
    assert!(out.stderr.contains("next week"), "{}", out.stderr);
    let mut to: Vec<String> = smtp.mails().iter().map(|m| m.to.join(",")).collect();
    assert_eq!(to.len(), 2344, "every readable loan once");
    to.sort();
    to.dedup();
    assert_eq!(to.len(), 2344, "none twice");
    assert!(
        to.contains(&"b2345@example.com".to_string()),
        "the last fetch's rows too"
    );
    assert!(!to.contains(&"b1500@example.com".to_string()));
    run_pg(
        &env,
        &password,
        &["send-reminders", "--kind", "loan_created"],
        "2026-03-02T10:10:00Z",
    )
    .code(65);
    assert_eq!(smtp.mails().len(), 2344, "nothing twice on the next run");
}

#[test]
fn a_mapped_source_on_the_server_is_checked_as_on_sqlite() {
    let Some((url, password, ca)) = server("a_mapped_source_on_the_server_is_checked_as_on_sqlite") else {
        return;
    };
    let smtp = crate::support::SmtpServer::start();
    let mut admin = client(&url, &password);
    // The application's people, two under one id.
    let schema = fresh_schema("mapped");
    admin
        .batch_execute(&format!(
            "CREATE SCHEMA \"{schema}\";
             CREATE TABLE \"{schema}\".app_people (id bigint, name text, email text);
             INSERT INTO \"{schema}\".app_people VALUES (1, 'Ana', 'ana@example.com'), (1, 'Bob', 'bob@example.com');"
        ))
        .unwrap();
    let env = machine_with(
        &url,
        &ca,
        &schema,
        smtp.port,
        2,
        &format!("\n[sources.contacts]\ntable = \"{schema}.app_people\"\n"),
    );
    run_pg(&env, &password, &["db", "migrate"], "2026-03-10T07:00:00Z").success();
    let out = run_pg(&env, &password, &["check-delay-alerts"], "2026-03-10T07:00:00Z").code(78);
    assert!(
        out.stderr
            .contains("[sources.contacts]: id 1 is on 2 rows; ids must be unique within a source"),
        "{}",
        out.stderr
    );
    // One without an id instead: left out, and said so.
    admin
        .batch_execute(&format!(
            "UPDATE \"{schema}\".app_people SET id = NULL WHERE name = 'Bob'"
        ))
        .unwrap();
    let out = run_pg(&env, &password, &["check-delay-alerts"], "2026-03-10T07:00:00Z");
    assert!(
        out.stderr.contains(
            "[sources.contacts]: 1 row(s) of yours left out: no integer id, or an empty column check-delay-alerts needs"
        ),
        "{}",
        out.stderr
    );
    assert!(smtp.mails().is_empty());
}

/// A time clock made by a Django application with `USE_TZ = False`: its
/// instants are `timestamp` columns. `db migrate` makes the punch index on
/// them (schema 9's `rappel_instant(timestamp)`), and punches go once, in
/// their order, rappel's outcome written into those columns.
#[test]
fn a_time_clock_whose_instants_are_timestamp_columns_migrates_and_pushes_once() {
    let hr = crate::support::hr::FakeHr::start();
    let smtp = crate::support::SmtpServer::start();
    let Some(App {
        url,
        password,
        ca,
        schema,
        mut db,
    }) = app_schema(
        "a_time_clock_whose_instants_are_timestamp_columns",
        "naive_clock",
        "CREATE TABLE terminals (id bigserial PRIMARY KEY, serial text NOT NULL UNIQUE, name text NOT NULL DEFAULT '',
             timezone text);
         CREATE TABLE attendance_logs (id bigserial PRIMARY KEY, terminal_id bigint NOT NULL REFERENCES terminals(id),
             enroll_id bigint NOT NULL, user_name text NOT NULL DEFAULT '', punched_at timestamp NOT NULL,
             mode integer NOT NULL DEFAULT 0, inout integer NOT NULL DEFAULT 0, event integer NOT NULL DEFAULT 0,
             temperature double precision, access_granted integer NOT NULL DEFAULT 1,
             sync_status varchar(10) NOT NULL DEFAULT 'pending', sync_attempts integer NOT NULL DEFAULT 0,
             next_attempt_at timestamp, sync_lease_until timestamp, synced_at timestamp, sync_error text);",
    )
    else {
        return;
    };
    let env = machine_with(
        &url,
        &ca,
        &schema,
        smtp.port,
        2,
        &format!("\n{}", crate::attendance::service("rh", &hr, &["TM20-001"])),
    );
    std::fs::write(env.dir.path().join("hr-token"), "hr-token-9\n").unwrap();
    let out = run_pg(&env, &password, &["db", "migrate"], "2026-03-10T09:00:00Z").success();
    assert!(out.stdout.contains("schema 0 -> 13"), "{}", out.stdout);
    let indexed: bool = db
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_indexes WHERE schemaname = $1 AND indexname = 'rappel_attendance_logs_unsent')",
            &[&schema],
        )
        .unwrap()
        .get(0);
    assert!(indexed, "the punch index is made on a timestamp column");
    db.batch_execute(
        "INSERT INTO terminals (serial, name) VALUES ('TM20-001', 'Entrance');
         -- Written out of order: the third punch is the earliest.
         INSERT INTO attendance_logs (terminal_id, enroll_id, punched_at) VALUES
             (1, 100, '2026-03-09 08:00:00'), (1, 101, '2026-03-09 08:05:00'), (1, 102, '2026-03-09 07:55:00');",
    )
    .unwrap();
    hr.set_users(r#"{"users":[]}"#);
    run_pg(&env, &password, &["sync-attendance"], "2026-03-10T09:00:00Z").success();
    run_pg(&env, &password, &["sync-attendance"], "2026-03-10T09:10:00Z").success();
    let posts = hr.posts();
    assert_eq!(posts.len(), 1, "one batch, once");
    assert_eq!(posts[0].log_ids(), [3, 1, 2], "in punch order");
    let rows: Vec<(String, bool)> = db
        .query(
            "SELECT sync_status::text, synced_at IS NOT NULL FROM attendance_logs ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(rows, vec![("sent".to_string(), true); 3]);
    db.batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE")).unwrap();
}
