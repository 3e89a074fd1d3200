//! Jobs on a host application's own tables, mapped in `[sources.*]`: a
//! Django-shaped database (its app tables, `YYYY-MM-DD HH:MM:SS[.ffffff]`
//! instants, 0/1 booleans), read through the configuration alone. The
//! time clock's punches: `punches`.

mod punches;

use crate::support;

use support::{SmtpServer, TestEnv};

/// A repair tracker and an equipment-lending app as Django leaves them on
/// SQLite (`manage.py migrate`, USE_TZ = True).
const DJANGO: &str = "
CREATE TABLE auth_user (id integer PRIMARY KEY AUTOINCREMENT, username varchar(150) NOT NULL UNIQUE,
  first_name varchar(150) NOT NULL, last_name varchar(150) NOT NULL, email varchar(254) NOT NULL,
  is_active bool NOT NULL);
CREATE TABLE repairs_ticket (id integer PRIMARY KEY AUTOINCREMENT, numero varchar(20) NOT NULL UNIQUE,
  modele varchar(100) NOT NULL, client_nom varchar(100) NOT NULL, statut varchar(30) NOT NULL,
  cree_le datetime NOT NULL, cloture_le datetime NULL);
CREATE TABLE repairs_ticketevent (id integer PRIMARY KEY AUTOINCREMENT,
  ticket_id bigint NOT NULL REFERENCES repairs_ticket(id), etape varchar(30) NOT NULL, date datetime NOT NULL);
CREATE TABLE repairs_alertconfig (id integer PRIMARY KEY AUTOINCREMENT, user_id integer NOT NULL REFERENCES auth_user(id),
  actif bool NOT NULL, etapes varchar(200) NOT NULL DEFAULT '');
CREATE TABLE assets_client (id integer PRIMARY KEY AUTOINCREMENT, nom varchar(100) NOT NULL, email varchar(254) NULL);
CREATE TABLE assets_materiel (id integer PRIMARY KEY AUTOINCREMENT, nom varchar(100) NOT NULL);
CREATE TABLE assets_attribution (id integer PRIMARY KEY AUTOINCREMENT, materiel_id bigint NOT NULL REFERENCES assets_materiel(id),
  client_id bigint NOT NULL REFERENCES assets_client(id), type_emprunt varchar(10) NOT NULL,
  date_attribution datetime NOT NULL, date_retour_prevue datetime NOT NULL, date_retour_effective date NULL);

CREATE TABLE reports_scheduledreport (id integer PRIMARY KEY AUTOINCREMENT, titre varchar(200) NOT NULL,
  destinataires text NOT NULL, scheduled_at datetime NOT NULL, pdf_file varchar(100) NULL,
  sent bool NOT NULL, sent_at datetime NULL, erreur text NULL);

INSERT INTO auth_user VALUES (1,'chef','Awa','Mba','awa.mba@example.com',1), (2,'tech','Jean','Obiang','jean.obiang@example.com',1),
  (3,'ancien','Paul','Ndong','paul.ndong@example.com',0);
INSERT INTO repairs_ticket VALUES
 (1,'R-1001','iPhone 13','Marie Ndong','attente_piece','2026-02-10 09:12:00.123456',NULL),
 (2,'R-1002','Galaxy S22','Paul Mba','reparation','2026-02-20 14:00:00',NULL),
 (3,'R-1003','Pixel 7','Lina Ella','livre','2026-02-01 10:00:00','2026-03-01 17:00:00');
INSERT INTO repairs_ticketevent VALUES
 (1,1,'reception','2026-02-10 09:12:00.123456'),(2,1,'attente_piece','2026-02-12 11:00:00'),
 (3,2,'reception','2026-02-20 14:00:00'),(4,2,'reparation','2026-03-01 08:30:00'),
 (5,3,'reception','2026-02-01 10:00:00'),(6,3,'livre','2026-03-01 17:00:00');
INSERT INTO repairs_alertconfig VALUES (1,1,1,''),(2,2,1,'attente_piece'),(3,3,1,'');
INSERT INTO assets_client VALUES (1,'Léa Essono','lea.essono@example.com'), (2,'Sam Carter','sam.carter@example.com');
INSERT INTO assets_materiel VALUES (1,'Projecteur Epson'),(2,'Laptop Dell');
INSERT INTO reports_scheduledreport VALUES
 (1,'Tickets de la semaine','awa.mba@example.com; jean.obiang@example.com','2026-03-20 07:00:00','reports/hebdo.pdf',0,NULL,NULL),
 (2,'Rapport mensuel','awa.mba@example.com','2026-04-01 07:00:00','reports/mensuel.pdf',0,NULL,NULL),
 (3,'Bilan de février','awa.mba@example.com','2026-03-01 07:00:00','reports/fevrier.pdf',1,'2026-03-01 07:00:04',NULL),
 (4,'Stock','jean.obiang@example.com','2026-03-19 07:00:00','reports/stock.pdf',0,NULL,NULL);
INSERT INTO assets_attribution VALUES
 (1,1,1,'LONG','2026-03-16 10:00:00','2026-03-22 16:00:00',NULL),
 (2,2,2,'COURT','2026-03-20 08:00:00','2026-03-20 11:00:00',NULL);

CREATE TABLE devices_terminal (id integer PRIMARY KEY AUTOINCREMENT, sn varchar(50) NOT NULL UNIQUE, nom varchar(100) NOT NULL);
CREATE TABLE devices_attendancelog (id integer PRIMARY KEY AUTOINCREMENT, terminal_id bigint NOT NULL REFERENCES devices_terminal(id),
  enrollid integer NOT NULL, user_name varchar(100) NOT NULL, \"time\" datetime NOT NULL, mode integer NOT NULL,
  \"inout\" integer NOT NULL, event integer NOT NULL, temperature decimal NULL, access_granted bool NOT NULL,
  sync_status varchar(10) NOT NULL DEFAULT 'pending', sync_attempts integer NOT NULL DEFAULT 0,
  synced_at datetime NULL, sync_error text NULL);
INSERT INTO devices_terminal VALUES (1,'TM20-001','Entrée'),(2,'TM20-002','Atelier');
INSERT INTO devices_attendancelog (terminal_id,enrollid,user_name,\"time\",mode,\"inout\",event,temperature,access_granted,
                                   sync_status,sync_attempts,synced_at) VALUES
 (1,103,'Paul Ndong','2026-03-19 17:00:00',1,1,0,NULL,1,'sent',1,'2026-03-19 17:00:05'),
 (1,101,'Awa Mba','2026-03-20 06:58:12',1,0,0,36.5,1,'pending',0,NULL),
 (1,102,'Jean Obiang','2026-03-20 07:02:40',1,0,0,NULL,1,'pending',0,NULL),
 (2,101,'Awa Mba','2026-03-20 08:30:00',1,1,0,36.6,1,'pending',0,NULL);
";

/// The mapping README shows: staff (auth_user) and clients (assets_client,
/// ids offset by a million) as contacts; tickets closed when delivered; the
/// status history as stage events; alert settings as recipients; loans;
/// terminals and their punches.
const EXAMPLE: &str = include_str!("../examples/django.toml");

const NOW: &str = "2026-03-20T09:00:00Z";

/// The example's HR service, as `django` replaces it: punches go to files
/// (`outbox/attendance/rh/`), no server needed.
const HR_SERVICE: &str = "base_url = \"https://rh.example.com\"\nusers_endpoint = \"/api/v1/employees\"\n\
                          attendance_endpoint = \"/api/v1/attendance\"\ntoken_env = \"HR_API_TOKEN\"";
const HR_FILES: &str = "transport = \"file\"";

/// A folder with the Django database and a config mapping it (its HR
/// service writing files: `HR_FILES`); nothing migrated yet.
fn django(smtp: &SmtpServer, extra: &str) -> TestEnv {
    let env = TestEnv::empty();
    env.db().execute_batch(DJANGO).unwrap();
    let mut config = EXAMPLE.to_string();
    for (from, to) in [
        ("database = \"db.sqlite3\"", "database = \"rappel.db\"".to_string()),
        ("locale = \"fr\"", "locale = \"en\"".to_string()),
        (
            "host = \"smtp.example.com\"\nusername = \"atelier@example.com\"\npassword_env = \"RAPPEL_SMTP_PASSWORD\"",
            format!(
                "host = \"127.0.0.1\"\nport = {}\nsecurity = \"none\"\ntimeout_s = 2",
                smtp.port
            ),
        ),
        (HR_SERVICE, HR_FILES.to_string()),
    ] {
        assert!(config.contains(from), "examples/django.toml has {from}");
        config = config.replace(from, &to);
    }
    env.write_config(&format!("{config}\n{extra}"));
    env
}

/// Each mail's recipients and its kind (`X-Rappel-Kind`), in the order
/// received.
pub(crate) fn kinds(mails: &[support::Mail]) -> Vec<(String, String)> {
    mails
        .iter()
        .map(|m| (m.to.join(","), m.header("X-Rappel-Kind").unwrap_or_default()))
        .collect()
}

/// Each delay alert's recipients and the Django tickets it names (of
/// R-1001, R-1002 and R-1003, in that order), in the order received.
pub(crate) fn alerted(mails: &[support::Mail]) -> Vec<(String, String)> {
    mails
        .iter()
        .map(|m| {
            let body = m.decoded();
            let refs: Vec<&str> = ["R-1001", "R-1002", "R-1003"]
                .into_iter()
                .filter(|r| body.contains(r))
                .collect();
            (m.to.join(","), refs.join(" "))
        })
        .collect()
}

fn objects(env: &TestEnv) -> Vec<String> {
    env.rows(
        "SELECT type || ' ' || name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY 1",
        |r| r.get(0),
    )
}

#[test]
fn delay_alerts_come_from_the_hosts_status_history_through_the_config_alone() {
    let smtp = SmtpServer::start();
    let env = django(&smtp, "");
    let host_before = env
        .db()
        .query_row("SELECT sql FROM sqlite_master WHERE name = 'repairs_ticket'", [], |r| {
            r.get::<_, String>(0)
        });
    env.run(&["db", "migrate"], NOW).success();
    let objects = objects(&env);
    for mapped in ["tickets", "ticket_events", "alert_recipients", "contacts", "loans"] {
        assert!(
            !objects.iter().any(|o| o.split(' ').nth(1) == Some(mapped)),
            "{mapped} created: {objects:?}"
        );
        assert!(
            !objects.iter().any(|o| o.contains(&format!(" ON {mapped} "))),
            "{objects:?}"
        );
    }
    assert!(
        objects.contains(&"table students".to_string()),
        "unmapped sources keep their table"
    );
    let host_after = env
        .db()
        .query_row("SELECT sql FROM sqlite_master WHERE name = 'repairs_ticket'", [], |r| {
            r.get::<_, String>(0)
        });
    assert_eq!(
        host_before.unwrap(),
        host_after.unwrap(),
        "the host's table is untouched"
    );

    let status = env.run(&["db", "status"], NOW).success();
    assert!(
        status
            .stdout
            .contains("sources:  alert_recipients <- repairs_alertconfig, attendance_logs <- devices_attendancelog, contacts <- query, ")
            && status
                .stdout
                .contains("tickets <- repairs_ticket (`rappel sources` shows what is read)"),
        "{}",
        status.stdout
    );
    env.run(&["check-delay-alerts"], NOW).success();
    let mut got = alerted(&smtp.mails());
    got.sort();
    // Awa gets every stage; Jean only `attente_piece`; Paul's account is
    // inactive; R-1003 was delivered (closed).
    assert_eq!(
        got,
        [
            ("awa.mba@example.com".to_string(), "R-1001 R-1002".to_string()),
            ("jean.obiang@example.com".to_string(), "R-1001".to_string()),
        ]
    );
    env.run(&["check-delay-alerts"], &support::plus(NOW, 3600)).success();
    assert_eq!(smtp.mails().len(), 2, "not again within rearm_hours");
    let unchanged: i64 = env
        .db()
        .query_row("SELECT count(*) FROM repairs_ticketevent", [], |r| r.get(0))
        .unwrap();
    assert_eq!(unchanged, 6);
}

#[test]
fn loan_reminders_come_from_the_hosts_loans_and_clients() {
    let smtp = SmtpServer::start();
    let env = django(&smtp, "");
    env.run(&["send-reminders"], "2026-03-20T08:00:00Z").success();
    first_loan_reminders(&smtp);
    // Returned in the host's app: the next reminder does not go.
    env.db()
        .execute(
            "UPDATE assets_attribution SET date_retour_effective = '2026-03-21' WHERE id = 1",
            [],
        )
        .unwrap();
    env.run(&["send-reminders"], "2026-03-21T08:00:00Z").success();
    let kinds: Vec<String> = smtp
        .mails()
        .iter()
        .skip(2)
        .map(|m| m.header("X-Rappel-Kind").unwrap_or_default())
        .collect();
    assert_eq!(kinds, ["loan_returned"], "its return is confirmed; no D-1 for it");
}

#[test]
fn a_mapping_that_does_not_read_is_a_config_error_naming_the_source_and_column() {
    let smtp = SmtpServer::start();
    let env = django(&smtp, "");
    let config = std::fs::read_to_string(env.config_path())
        .unwrap()
        .replace("entered_at = \"date\"", "entered_at = \"date_entree\"");
    env.write_config(&config);
    let out = env.run(&["check-delay-alerts"], NOW).code(78);
    assert!(
        out.stderr.contains("[sources.ticket_events]") && out.stderr.contains("date_entree"),
        "{}",
        out.stderr
    );
    let config = config
        .replace("entered_at = \"date_entree\"", "")
        .replace("stage = \"etape\"", "stage = \"etape\"\n");
    env.write_config(&config);
    let out = env.run(&["check-delay-alerts"], NOW).code(78);
    assert!(
        out.stderr
            .contains("`entered_at` is not in table \"repairs_ticketevent\""),
        "{}",
        out.stderr
    );
    assert!(smtp.mails().is_empty());
    let out = env.run(&["config", "check"], NOW);
    assert_ne!(out.code, 0, "config check says it too: {}", out.stdout);
}

/// The Django database's loan reminders at 08:00Z on Friday 20 March
/// (SQLite's or PostgreSQL's): Léa's projector is due Sunday 22 March 16:00
/// (Libreville, UTC+1), so two days before, at 09:00 local, comes its D-2
/// reminder; Sam borrowed the laptop at 08:00Z (a short loan, due 11:00Z).
pub(crate) fn first_loan_reminders(smtp: &SmtpServer) {
    let mut got = kinds(&smtp.mails());
    got.sort();
    assert_eq!(
        got,
        [
            ("lea.essono@example.com".to_string(), "loan_d2".to_string()),
            ("sam.carter@example.com".to_string(), "loan_created".to_string()),
        ]
    );
    let sam = smtp
        .mails()
        .into_iter()
        .find(|m| m.to.join(",").starts_with("sam"))
        .unwrap();
    let body = sam.decoded();
    assert!(body.contains("Laptop Dell") && body.contains("Sam Carter"), "{body}");
}

/// `rappel sources tickets` on the Django database (SQLite's or
/// PostgreSQL's): the mapped table, its first row as the jobs read it
/// (Django's microseconds read as UTC, shown in the configured zone), every
/// value read.
pub(crate) fn tickets_as_read(stdout: &str) {
    assert!(
        stdout.starts_with("tickets: table \"repairs_ticket\" ([sources.tickets]), 3 rows\n"),
        "{stdout}"
    );
    assert!(stdout.contains("  reference = numero\n"), "{stdout}");
    assert!(
        stdout.contains(
            "id 1, reference \"R-1001\", device \"iPhone 13\", customer \"Marie Ndong\", \
             created_at 2026-02-10T09:12:00Z (2026-02-10 10:12 Africa/Libreville), closed_at none"
        ),
        "{stdout}"
    );
    assert!(stdout.ends_with("  every value reads\n"), "{stdout}");
}

#[test]
fn sources_shows_each_table_as_read_and_counts_the_values_that_do_not_read() {
    let smtp = SmtpServer::start();
    let env = django(&smtp, "");
    env.run(&["db", "migrate"], NOW).success();
    let out = env.run(&["sources", "tickets"], NOW).success();
    tickets_as_read(&out.stdout);
    assert!(out.stdout.contains("closed_at 2026-03-01T17:00:00Z"), "{}", out.stdout);

    let db = env.db();
    db.execute_batch(
        "INSERT INTO repairs_ticketevent VALUES (7, 2, 'attente_piece', 'hier'), (8, 2, 'reparation', 'demain');
         INSERT INTO repairs_alertconfig VALUES (4, 2, 'peut-être', '');",
    )
    .unwrap();
    let out = env.run(&["sources", "--rows", "1"], NOW).code(65);
    assert!(
        out.stdout
            .contains("  entered_at: 2 of 8 rows not an instant, e.g. \"hier\"\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("  active: 1 of 4 rows not a boolean (0/1, true/false, yes/no), e.g. \"peut-être\"\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("students: table students (not mapped), 0 rows\n"),
        "{}",
        out.stdout
    );
    assert_eq!(
        out.stdout.matches("\n  id ").count(),
        8,
        "one row shown for each of the eight tables with rows: {}",
        out.stdout
    );
    env.run(&["sources", "ticket"], NOW).code(64);

    let out = env
        .run(&["--json", "sources", "ticket_events", "--rows", "1"], NOW)
        .code(65);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let t = &v["sources"][0];
    assert_eq!(t["table"], "ticket_events");
    assert_eq!(t["origin"], "table \"repairs_ticketevent\" ([sources.ticket_events])");
    assert_eq!(t["rows"], 8);
    assert_eq!(t["columns"]["stage"], "etape");
    assert_eq!(t["sample"][0]["stage"], "\"reception\"");
    assert_eq!(t["problems"][0]["column"], "entered_at");
    assert_eq!(t["problems"][0]["rows"], 2);
    assert_eq!(t["problems"][0]["example"], "\"hier\"");
}

#[test]
fn reports_come_from_the_hosts_model_and_its_sent_flag_is_kept_up_to_date() {
    let smtp = SmtpServer::start();
    let env = django(&smtp, "");
    let media = env.dir.path().join("media/reports");
    std::fs::create_dir_all(&media).unwrap();
    std::fs::write(media.join("hebdo.pdf"), b"%PDF-1.4 weekly").unwrap();
    env.run(&["db", "migrate"], NOW).success();
    // Stock's file is missing: that row fails, the others go on.
    env.run(&["send-reports"], NOW).code(65);
    let mut to: Vec<String> = smtp.mails().iter().map(|m| m.to.join(",")).collect();
    to.sort();
    assert_eq!(
        to,
        ["awa.mba@example.com", "jean.obiang@example.com"],
        "the weekly report only"
    );
    assert!(
        smtp.mails()
            .iter()
            .all(|m| m.subject().contains("Tickets de la semaine"))
    );
    let host = |id: i64| -> (i64, Option<String>, Option<String>) {
        env.db()
            .query_row(
                "SELECT sent, sent_at, erreur FROM reports_scheduledreport WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap()
    };
    // Kept up to date in the host's own form: 0/1, UTC without an offset.
    assert_eq!(host(1), (1, Some("2026-03-20 09:00:00".into()), None));
    let (sent, sent_at, erreur) = host(4);
    assert_eq!((sent, sent_at), (0, None));
    assert!(
        erreur.is_some_and(|e| e.contains("stock.pdf")),
        "the reason, in the host's column"
    );
    assert_eq!(host(2), (0, None, None), "April's is not due");
    assert_eq!(
        host(3),
        (1, Some("2026-03-01 07:00:04".into()), None),
        "sent before rappel: left alone"
    );
    let state = env.rows3("SELECT report_id, scheduled_at, status FROM rappel_report_state ORDER BY report_id");
    assert_eq!(
        state,
        [
            (1, "2026-03-20 07:00:00".to_string(), "sent".to_string()),
            (4, "2026-03-19 07:00:00".to_string(), "failed".to_string()),
        ]
    );
    env.run(&["send-reports"], &support::plus(NOW, 600)).success();
    assert_eq!(smtp.mails().len(), 2, "never twice");
    let tables: i64 = env
        .db()
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'scheduled_reports'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 0, "no contract table beside the host's");
}

#[test]
fn manual_messages_come_from_the_hosts_table_and_are_marked_sent_there() {
    let smtp = SmtpServer::start();
    let env = TestEnv::empty();
    env.db()
        .execute_batch(
            "CREATE TABLE tutorat_message (id integer PRIMARY KEY AUTOINCREMENT, eleve_id bigint NOT NULL,
               texte text NOT NULL, cree_le datetime NOT NULL, envoye bool NOT NULL DEFAULT 0, envoye_le datetime NULL);",
        )
        .unwrap();
    env.write_config(&format!(
        r#"database = "rappel.db"
timezone = "Europe/Paris"
naive_timezone = "Europe/Paris"
locale = "en"
[email]
from = "Rappel Test <rappel@example.com>"
[email.smtp]
host = "127.0.0.1"
port = {}
security = "none"
timeout_s = 2
[sources.manual_reminders]
table = "tutorat_message"
[sources.manual_reminders.columns]
student_id = "eleve_id"
message = "texte"
created_at = "cree_le"
sent_at = "envoye_le"
[sources.manual_reminders.update]
sent = "envoye"
sent_at = "envoye_le"
"#,
        smtp.port
    ));
    env.run(&["db", "migrate"], "2026-03-10T17:00:00Z").success();
    let db = env.db();
    db.execute_batch(
        "INSERT INTO contacts (id, name, email) VALUES (1, 'Lea', 'lea@example.com');
         INSERT INTO students (id, contact_id) VALUES (7, 1);
         INSERT INTO tutorat_message (eleve_id, texte, cree_le) VALUES (7, 'Bravo pour ce trimestre', '2026-03-10 19:00:00');
         INSERT INTO tutorat_message (eleve_id, texte, cree_le, envoye, envoye_le)
           VALUES (7, 'Déjà envoyé', '2026-03-01 10:00:00', 1, '2026-03-01 10:00:05');",
    )
    .unwrap();
    env.run(&["send-reminders", "--kind", "manual"], "2026-03-10T18:02:00Z")
        .success();
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1, "the new message only");
    assert!(mails[0].decoded().contains("Bravo pour ce trimestre"));
    let host: Vec<(i64, Option<String>)> = env.rows("SELECT envoye, envoye_le FROM tutorat_message ORDER BY id", |r| {
        Ok((r.get(0)?, r.get(1)?))
    });
    // Written back in UTC with its offset said (+00:00): naive_timezone is
    // not UTC, so a time without one would be read back as Paris time.
    assert_eq!(
        host,
        [
            (1, Some("2026-03-10 18:02:00+00:00".to_string())),
            (1, Some("2026-03-01 10:00:05".to_string()))
        ]
    );
    env.run(&["send-reminders"], "2026-03-10T18:30:00Z").success();
    assert_eq!(smtp.mails().len(), 1, "sent once");
}

/// A PHP/MySQL lending app exported to SQLite, through `examples/php_mysql.toml`.
const PHP_EXAMPLE: &str = include_str!("../examples/php_mysql.toml");

#[test]
fn a_php_mysql_lending_app_through_its_example() {
    let smtp = SmtpServer::start();
    let env = TestEnv::empty();
    env.db()
        .execute_batch(
            "CREATE TABLE membres (id_membre INT PRIMARY KEY, nom VARCHAR(50), prenom VARCHAR(50),
               courriel VARCHAR(100), tel VARCHAR(20), actif CHAR(1) NOT NULL DEFAULT 'O');
             CREATE TABLE prets (id_pret INT PRIMARY KEY, id_membre INT, materiel VARCHAR(100),
               date_pret DATETIME, date_retour_prevue DATE, date_retour DATETIME NOT NULL DEFAULT '0000-00-00 00:00:00');
             INSERT INTO membres VALUES (1, 'Martin', 'Chloé', 'chloe@example.com', '', 'O'),
                                        (2, 'Durand', 'Hugo', 'hugo@example.com', '', 'N');
             -- Both due Thursday 12 March (a date alone: the end of that day in Paris).
             INSERT INTO prets VALUES (10, 1, 'Perceuse', '2026-03-02 14:30:00', '2026-03-12', '0000-00-00 00:00:00'),
                                      (11, 2, 'Scie', '2026-03-02 15:00:00', '2026-03-12', '0000-00-00 00:00:00');",
        )
        .unwrap();
    let mut config = PHP_EXAMPLE.to_string();
    for (from, to) in [
        ("database = \"pret.sqlite\"", "database = \"rappel.db\"".to_string()),
        ("locale = \"fr\"", "locale = \"en\"".to_string()),
        (
            "host = \"smtp.example.com\"\nusername = \"pret@example.com\"\npassword_env = \"RAPPEL_SMTP_PASSWORD\"",
            format!(
                "host = \"127.0.0.1\"\nport = {}\nsecurity = \"none\"\ntimeout_s = 2",
                smtp.port
            ),
        ),
    ] {
        assert!(config.contains(from), "examples/php_mysql.toml has {from}");
        config = config.replace(from, &to);
    }
    env.write_config(&config);
    env.run(&["db", "migrate"], "2026-03-11T07:00:00Z").success();
    let out = env.run(&["sources", "loans"], "2026-03-11T07:00:00Z").success();
    // 14:30 Paris is 13:30 UTC; no return yet, whatever MySQL wrote for it.
    assert!(
        out.stdout
            .contains("lent_at 2026-03-02T13:30:00Z (2026-03-02 14:30 Europe/Paris)")
            && out.stdout.contains("returned_at none"),
        "{}",
        out.stdout
    );
    // D-2 is Tuesday 10 March, 09:00 Paris (08:00 UTC), and not a minute before.
    env.run(&["send-reminders"], "2026-03-10T07:59:00Z").success();
    let early: Vec<String> = smtp
        .mails()
        .iter()
        .map(|m| format!("{:?} {:?}", m.to, m.header("X-Rappel-Kind")))
        .collect();
    assert!(early.is_empty(), "not before 09:00 Paris: {early:?}");
    env.run(&["send-reminders"], "2026-03-10T08:00:00Z").success();
    env.run(&["send-reminders"], "2026-03-11T08:00:00Z").success();
    let got = kinds(&smtp.mails());
    // Hugo's account is off ('N'): nothing for him.
    assert_eq!(
        got,
        [
            ("chloe@example.com".to_string(), "loan_d2".to_string()),
            ("chloe@example.com".to_string(), "loan_d1".to_string()),
        ]
    );
}

/// `env`'s config with `from` replaced by `to` (which must be there).
fn remap(env: &TestEnv, from: &str, to: &str) {
    let config = std::fs::read_to_string(env.config_path()).unwrap();
    assert!(config.contains(from), "{from}");
    env.write_config(&config.replacen(from, to, 1));
}

#[test]
fn two_people_under_one_contact_id_stop_the_jobs_that_would_mix_them_up() {
    let smtp = SmtpServer::start();
    let env = django(&smtp, "");
    // Clients without their offset: client 1 and staff 1 share id 1.
    remap(
        &env,
        "SELECT 1000000 + id, nom, email, 1 FROM assets_client",
        "SELECT id, nom, email, 1 FROM assets_client",
    );
    env.run(&["db", "migrate"], NOW).success();
    for job in ["check-delay-alerts", "send-reminders"] {
        let out = env.run(&[job], NOW).code(78);
        assert!(
            out.stderr
                .contains("[sources.contacts]: id 1 is on 2 rows; ids must be unique within a source"),
            "{job}: {}",
            out.stderr
        );
    }
    assert!(smtp.mails().is_empty(), "nobody gets another's messages");
    let out = env.run(&["sources", "contacts"], NOW).code(65);
    assert!(
        out.stdout
            .contains("  id: 2 ids on more than one row, e.g. 1 (2 rows): ids must be unique within a source"),
        "{}",
        out.stdout
    );
}

#[test]
fn host_rows_without_an_id_or_a_needed_value_are_left_out_and_named() {
    let smtp = SmtpServer::start();
    let env = django(&smtp, "");
    // A loans query whose last line is a comment; the host's odd rows.
    remap(
        &env,
        "FROM assets_attribution a JOIN assets_materiel m ON m.id = a.materiel_id\n",
        "FROM assets_attribution a JOIN assets_materiel m ON m.id = a.materiel_id\n\
         UNION ALL SELECT NULL, 1000001, 'Sans id', 'short', '2026-03-20 08:00:00', '2026-03-20 11:00:00', NULL\n\
         UNION ALL SELECT 'cent', 1000001, 'Id en texte', 'short', '2026-03-20 08:00:00', '2026-03-20 11:00:00', NULL\n\
         UNION ALL SELECT 99, 1000001, NULL, 'short', '2026-03-20 08:00:00', '2026-03-20 11:00:00', NULL\n\
         -- the host's odd rows\n",
    );
    env.run(&["db", "migrate"], NOW).success();
    let out = env.run(&["sources", "loans"], NOW).code(65);
    assert!(
        out.stdout
            .contains("  id: 2 of 5 rows not an integer id: the jobs leave these rows out, e.g. NULL\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("  item: 1 of 5 rows empty: the jobs leave these rows out, e.g. NULL\n"),
        "{}",
        out.stdout
    );
    // The job says so on every run (exit 65), and the others go.
    let out = env.run(&["send-reminders"], "2026-03-20T08:00:00Z").code(65);
    assert!(
        out.stderr.contains("[sources.loans]: 3 row(s) of yours left out")
            && out.stderr.contains("`rappel sources loans` names them"),
        "{}",
        out.stderr
    );
    let mut got: Vec<String> = smtp.mails().iter().map(|m| m.decoded()).collect();
    got.sort();
    assert_eq!(got.len(), 2, "Léa's D-2 and Sam's loan, nothing for the odd rows");
    assert!(got.iter().all(|m| !m.contains("Sans id") && !m.contains("Id en texte")));
}

#[test]
fn what_a_mapping_may_not_do_is_refused_with_its_key() {
    let smtp = SmtpServer::start();
    let env = django(&smtp, "");
    for (from, to, says) in [
        (
            "[sources.scheduled_reports.update]\nsent = \"sent\"",
            "[sources.scheduled_reports.update]\nsent = \"id\"",
            "[sources.scheduled_reports.update]: sent = \"id\": that column names the row",
        ),
        (
            "sent_at = \"sent_at\"\nlast_error",
            "sent_at = \"scheduled_at\"\nlast_error",
            "sent_at = \"scheduled_at\": that column names the row",
        ),
        (
            "last_error = \"erreur\"\n\n[sources.loans]",
            "last_error = \"erreur\"\nstatus = \"erreur\"\n\n[sources.loans]",
            "column \"erreur\" is named twice",
        ),
    ] {
        let original = std::fs::read_to_string(env.config_path()).unwrap();
        remap(&env, from, to);
        let out = env.run(&["db", "migrate"], NOW).code(78);
        assert!(out.stderr.contains(says), "{says}: {}", out.stderr);
        env.write_config(&original);
    }
    // Two mistakes at once: both said in one run.
    remap(&env, "reference = \"numero\"", "reference = \"numro\"");
    remap(&env, "stage = \"etape\"", "stage = \"etap\"");
    let out = env.run(&["config", "check"], NOW).code(78);
    assert!(
        out.stderr.contains("[sources.tickets]: no such column: numro")
            && out.stderr.contains("[sources.ticket_events]: no such column: etap"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("2 error(s) in templates"),
        "one each: {}",
        out.stderr
    );
    // With --connect, the connections are still tried and said (without
    // naive_timezone too, whose check reads the database).
    let text = std::fs::read_to_string(env.config_path()).unwrap();
    assert!(text.contains("naive_timezone = \"UTC\"\n"));
    env.write_config(&text.replace("naive_timezone = \"UTC\"\n", ""));
    let out = env.run(&["config", "check", "--connect"], NOW).code(78);
    assert!(out.stdout.contains("email: ok ("), "{}", out.stdout);
    assert!(out.stderr.contains("2 error(s) in templates"), "{}", out.stderr);
}

#[test]
fn an_expression_failing_on_a_row_is_named_by_rappel_sources() {
    let smtp = SmtpServer::start();
    let env = django(&smtp, "");
    remap(
        &env,
        "customer = \"client_nom\"",
        "customer = \"json_extract(client_nom, '$.x')\"",
    );
    env.run(&["db", "migrate"], NOW).success();
    let out = env.run(&["sources", "tickets"], NOW).code(78);
    assert!(
        out.stderr.contains("[sources.tickets]: a row does not read") && out.stderr.contains("malformed JSON"),
        "{}",
        out.stderr
    );
    // The job stops on it too, and says where to look.
    let out = env.run(&["check-delay-alerts"], NOW).code(74);
    assert!(
        out.stderr
            .contains("`rappel sources` names a [sources] mapping that fails on a row")
            && out.stderr.contains("malformed JSON"),
        "{}",
        out.stderr
    );
}

#[test]
fn contract_tables_made_beside_mapped_ones_refer_to_nothing_missing() {
    let smtp = SmtpServer::start();
    let env = django(&smtp, "");
    // A host column named like a contract one that a mapped report never reads.
    env.db()
        .execute_batch("ALTER TABLE reports_scheduledreport ADD COLUMN recurrence TEXT DEFAULT '0 8 * * 1'")
        .unwrap();
    env.run(&["db", "migrate"], NOW).success();
    let db = env.db();
    db.execute_batch("PRAGMA foreign_keys = ON").unwrap();
    // contacts is mapped: the contract's students table does not refer to it.
    db.execute("INSERT INTO students (id, contact_id) VALUES (1, 1)", [])
        .unwrap();
    let recurrence: Option<String> = {
        let out = env.run(&["sources", "scheduled_reports", "--rows", "1"], NOW);
        out.stdout.lines().find(|l| l.contains("recurrence")).map(|l| {
            l.split("recurrence ")
                .nth(1)
                .unwrap_or("")
                .split(',')
                .next()
                .unwrap_or("")
                .to_string()
        })
    };
    assert_eq!(recurrence.as_deref(), Some("none"), "a mapped report never recurs");
}

#[test]
fn a_first_alert_in_the_morning_is_not_repeated_the_same_day_the_next_comes_at_the_entrys_slot() {
    let smtp = SmtpServer::start();
    let env = django(&smtp, "");
    env.run(&["db", "migrate"], NOW).success();
    // 09:00: the first run catches up on R-1001's slot of yesterday 11:00
    // UTC; R-1002 became overdue at 08:30 today.
    env.run(&["check-delay-alerts"], NOW).success();
    assert_eq!(
        alerted(&smtp.mails()),
        [
            ("awa.mba@example.com".to_string(), "R-1001 R-1002".to_string()),
            ("jean.obiang@example.com".to_string(), "R-1001".to_string())
        ]
    );
    // An hourly cron: today's 11:00 slot of R-1001 has come, and the 09:00
    // alert answers it for the rest of the day, not only while it is recent.
    let hourly = |day: u32, hours: std::ops::Range<u32>| hours.map(move |h| format!("2026-03-{day}T{h:02}:00:00Z"));
    for at in hourly(20, 10..24).chain(hourly(21, 0..9)) {
        env.run(&["check-delay-alerts"], &at).success();
        assert_eq!(smtp.mails().len(), 2, "nothing more at {at}: not twice in one day");
    }
    // The next day, each entry at its own slot: R-1002 at 08:30 (the 09:00
    // run), R-1001 at 11:00.
    env.run(&["check-delay-alerts"], "2026-03-21T09:00:00Z").success();
    assert_eq!(
        alerted(&smtp.mails()[2..]),
        [("awa.mba@example.com".to_string(), "R-1002".to_string())]
    );
    for at in hourly(21, 10..12) {
        env.run(&["check-delay-alerts"], &at).success();
    }
    let mut at_eleven = alerted(&smtp.mails()[3..]);
    at_eleven.sort();
    assert_eq!(
        at_eleven,
        [
            ("awa.mba@example.com".to_string(), "R-1001".to_string()),
            ("jean.obiang@example.com".to_string(), "R-1001".to_string())
        ]
    );
}

/// The Django database with 150 more loans lent at 08:30 and 10 more
/// reports due, each with its file and two recipients; migrated.
fn busy_django(smtp: &SmtpServer) -> TestEnv {
    // A short lease: a killed run's messages go again after it (wall clock).
    let env = django(smtp, "[delivery]\nlease_s = 9\n");
    let media = env.dir.path().join("media/reports");
    std::fs::create_dir_all(&media).unwrap();
    let db = env.db();
    for i in 0..150 {
        db.execute(
            "INSERT INTO assets_client (id, nom, email) VALUES (?1, ?2, ?3)",
            rusqlite::params![100 + i, format!("Client {i}"), format!("client{i}@example.com")],
        )
        .unwrap();
        db.execute(
            "INSERT INTO assets_attribution (materiel_id, client_id, type_emprunt, date_attribution, date_retour_prevue)
             VALUES (1, ?1, 'LONG', '2026-03-20 08:30:00', '2026-04-20 16:00:00')",
            [100 + i],
        )
        .unwrap();
    }
    for i in 0..10 {
        std::fs::write(media.join(format!("r{i}.pdf")), b"%PDF-1.4").unwrap();
        db.execute(
            "INSERT INTO reports_scheduledreport (titre, destinataires, scheduled_at, pdf_file, sent)
             VALUES (?1, ?2, '2026-03-20 08:00:00', ?3, 0)",
            rusqlite::params![
                format!("Report {i}"),
                format!("a{i}@example.com; b{i}@example.com"),
                format!("reports/r{i}.pdf")
            ],
        )
        .unwrap();
    }
    drop(db);
    env.run(&["db", "migrate"], NOW).success();
    env
}

/// Checks that every message went, at most `twice` of them twice: 151 loan
/// confirmations (Sam's and the 150), 20 report mails, 2 staff digests,
/// each report row marked sent in the host's table.
fn each_once(env: &TestEnv, smtp: &SmtpServer, twice: usize) {
    let mut keys: Vec<(String, String)> = smtp
        .mails()
        .iter()
        .map(|m| {
            (
                m.to.join(","),
                m.header("X-Rappel-Kind").unwrap_or_default() + &m.subject(),
            )
        })
        .collect();
    keys.sort();
    let total = keys.len();
    keys.dedup();
    assert!(total - keys.len() <= twice, "{} sent twice", total - keys.len());
    let count = |kind: &str| keys.iter().filter(|(_, k)| k.starts_with(kind)).count();
    assert_eq!(count("loan_created"), 150 + 1, "every new loan once (and Sam's laptop)");
    assert_eq!(
        count("report"),
        20,
        "every report recipient once (the Django rows have no file here)"
    );
    assert_eq!(count("delay_alert"), 2, "one digest per staff recipient");
    let sent: i64 = env
        .db()
        .query_row(
            "SELECT count(*) FROM reports_scheduledreport WHERE titre LIKE 'Report %' AND sent = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(sent, 10, "each host row marked sent");
}

#[test]
fn every_job_at_once_on_a_mapped_database_sends_each_message_once() {
    let smtp = SmtpServer::start();
    let env = busy_django(&smtp);
    let children: Vec<_> = (0..4)
        .flat_map(|_| ["check-delay-alerts", "send-reports", "send-reminders", "deliver"])
        .map(|job| {
            env.command(&[job], NOW)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        // The Django rows have no file: 65 is their failure.
        assert!(
            matches!(out.status.code(), Some(0 | 65)),
            "{:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    env.run(&["deliver"], &support::plus(NOW, 60)).code(0);
    each_once(&env, &smtp, 0);
}

#[test]
fn run_all_killed_on_a_mapped_database_loses_nothing() {
    let smtp = SmtpServer::start();
    let env = busy_django(&smtp);
    for i in 0..20u64 {
        let mut child = env
            .command(&["run-all"], NOW)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5 + (i * 7) % 40));
        let _ = child.kill();
        let _ = child.wait();
    }
    // Past the lease (wall clock): what a killed run held goes again, once.
    std::thread::sleep(std::time::Duration::from_secs(10));
    let out = env.run(&["run-all"], &support::plus(NOW, 60));
    assert!(matches!(out.code, 0 | 65), "{}{}", out.stdout, out.stderr);
    // Nothing lost. A message sent but not yet recorded when its run was
    // killed goes again (docs/guarantees.md: at most 128 + the connections
    // at each kill).
    each_once(&env, &smtp, 20 * (128 + 2));
}
