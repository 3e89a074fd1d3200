//! The test harness: a temp folder with a config and database, the real rappel
//! binary with a fixed `--now`, and a real SMTP server on 127.0.0.1 that records
//! what it receives and can be told to refuse, defer or hang.
#![allow(clippy::disallowed_methods, reason = "test set-up writes host data directly")]

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mailin_embedded::response::{self, Response};
use mailin_embedded::{Handler, Server, SslConfig};
use rusqlite::{Connection, params};

pub mod faulty_smtp;
pub mod host;
pub mod hr;
pub mod pg;
pub mod twilio;

/// An HTTP stand-in's answer: status, JSON body and extra headers.
pub type Answer = (u16, String, Vec<(String, String)>);

/// The answer a test queues, as the stand-ins store it.
pub fn answer(status: u16, body: &str, headers: &[(&str, &str)]) -> Answer {
    let headers = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    (status, body.to_string(), headers)
}

/// Sends `answer` as a JSON response to `req`.
pub fn respond(req: tiny_http::Request, (status, body, headers): Answer) {
    let mut response = tiny_http::Response::from_string(body).with_status_code(status);
    response.add_header(tiny_http::Header::from_bytes("Content-Type", "application/json").unwrap());
    for (k, v) in headers {
        response.add_header(tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()).unwrap());
    }
    let _ = req.respond(response);
}

pub const BIN: &str = env!("CARGO_BIN_EXE_rappel");

/// How the SMTP server answers.
#[derive(Clone, Debug, PartialEq)]
pub enum Mode {
    Accept,
    /// 550 for recipients containing this text; others accepted.
    RejectRcpt(String),
    /// 451 at end of data.
    Defer,
    /// 535 to MAIL FROM: credentials rejected.
    BadCredentials,
    /// Never answers the end of data (until this many seconds pass).
    Hang(u64),
}

#[derive(Clone, Debug)]
pub struct Mail {
    pub to: Vec<String>,
    pub data: String,
}

impl Mail {
    /// The message with quoted-printable soft breaks and escapes decoded.
    pub fn decoded(&self) -> String {
        let joined = self.data.replace("=\r\n", "").replace("=\n", "");
        let bytes = joined.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'='
                && i + 2 < bytes.len()
                && let Ok(b) = u8::from_str_radix(&joined[i + 1..i + 3], 16)
            {
                out.push(b);
                i += 3;
                continue;
            }
            out.push(bytes[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The bytes of the attached file named `name`.
    pub fn attachment(&self, name: &str) -> Option<Vec<u8>> {
        let parsed = mailparse::parse_mail(self.data.as_bytes()).expect("a MIME message");
        parsed.parts().find_map(|p| {
            let disposition = p.get_content_disposition();
            (disposition.params.get("filename").map(String::as_str) == Some(name)).then(|| p.get_body_raw().unwrap())
        })
    }

    /// The decoded text of the first part of this MIME type.
    pub fn part(&self, mime: &str) -> Option<String> {
        let parsed = mailparse::parse_mail(self.data.as_bytes()).expect("a MIME message");
        parsed
            .parts()
            .find(|p| p.ctype.mimetype == mime)
            .map(|p| p.get_body().unwrap())
    }

    /// The Subject header, decoded.
    pub fn subject(&self) -> String {
        use mailparse::MailHeaderMap;
        let parsed = mailparse::parse_mail(self.data.as_bytes()).expect("a MIME message");
        parsed.headers.get_first_value("Subject").unwrap_or_default()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        let prefix = format!("{name}: ");
        self.data
            .lines()
            .find_map(|l| l.strip_prefix(&prefix).map(|v| v.trim().to_string()))
    }
}

#[derive(Default)]
struct State {
    mails: Vec<Mail>,
    data_started: usize,
}

#[derive(Clone)]
struct Recorder {
    state: Arc<Mutex<State>>,
    mode: Arc<Mutex<Mode>>,
    to: Vec<String>,
    buf: Vec<u8>,
}

impl Handler for Recorder {
    fn mail(&mut self, _ip: std::net::IpAddr, _domain: &str, _from: &str) -> Response {
        if *self.mode.lock().unwrap() == Mode::BadCredentials {
            return response::INVALID_CREDENTIALS;
        }
        response::OK
    }

    fn rcpt(&mut self, to: &str) -> Response {
        if let Mode::RejectRcpt(pattern) = &*self.mode.lock().unwrap()
            && to.contains(pattern.as_str())
        {
            return response::NO_MAILBOX;
        }
        response::OK
    }

    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.to = to.to_vec();
        self.buf.clear();
        self.state.lock().unwrap().data_started += 1;
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.buf.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let mode = self.mode.lock().unwrap().clone();
        match mode {
            Mode::Defer => return response::INTERNAL_ERROR,
            Mode::Hang(secs) => {
                std::thread::sleep(Duration::from_secs(secs));
                return response::INTERNAL_ERROR;
            }
            _ => {}
        }
        let mail = Mail {
            to: std::mem::take(&mut self.to),
            data: String::from_utf8_lossy(&self.buf).into_owned(),
        };
        self.state.lock().unwrap().mails.push(mail);
        response::OK
    }
}

/// A real SMTP server on 127.0.0.1, living as long as the test process.
pub struct SmtpServer {
    pub port: u16,
    state: Arc<Mutex<State>>,
    mode: Arc<Mutex<Mode>>,
}

impl SmtpServer {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        Self::serve(listener, SslConfig::None)
    }

    /// A server offering STARTTLS with the certificate of [`TlsFiles`].
    pub fn start_starttls(tls: &TlsFiles) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        Self::serve(
            listener,
            SslConfig::SelfSigned {
                cert_path: tls.cert.to_string_lossy().into_owned(),
                key_path: tls.key.to_string_lossy().into_owned(),
            },
        )
    }

    /// A server on a port chosen earlier (for "unreachable, then back").
    pub fn start_on(port: u16) -> Self {
        Self::serve(bind_on(port), SslConfig::None)
    }

    fn serve(listener: TcpListener, ssl: SslConfig) -> Self {
        // The test server's TLS uses ring, as rappel does.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let mode = Arc::new(Mutex::new(Mode::Accept));
        let handler = Recorder {
            state: state.clone(),
            mode: mode.clone(),
            to: vec![],
            buf: vec![],
        };
        let mut server = Server::new(handler);
        server
            .with_name("test.local")
            .with_ssl(ssl)
            .unwrap()
            .with_num_threads(16)
            .with_tcp_listener(listener);
        std::thread::spawn(move || {
            let _ = server.serve();
        });
        SmtpServer { port, state, mode }
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.state.lock().unwrap().mails.clone()
    }

    /// Messages received, by envelope recipient.
    pub fn recipients(&self) -> Vec<String> {
        let mut all: Vec<String> = self.mails().into_iter().flat_map(|m| m.to).collect();
        all.sort();
        all
    }

    pub fn mail_to(&self, addr: &str) -> Mail {
        let mails = self.mails();
        let found: Vec<_> = mails.iter().filter(|m| m.to.iter().any(|t| t == addr)).collect();
        assert_eq!(found.len(), 1, "expected one mail to {addr}, got {}", found.len());
        found[0].clone()
    }

    /// How many messages clients have started sending (`DATA`).
    pub fn data_started(&self) -> usize {
        self.state.lock().unwrap().data_started
    }

    /// Waits until a client has started sending data.
    pub fn wait_data_started(&self, timeout: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if self.state.lock().unwrap().data_started > 0 {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }
}

/// A private CA and a certificate it signed for `localhost`, as PEM files.
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    pub fn generate(dir: &std::path::Path) -> Self {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&key, &Issuer::from_params(&ca_params, &ca_key))
            .unwrap();
        let files = TlsFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        std::fs::write(&files.ca, ca_cert.pem()).unwrap();
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        files
    }
}

/// `t` as rappel writes instants: `YYYY-MM-DDTHH:MM:SSZ`.
pub fn instant(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The instant `secs` seconds after `t`, both written as rappel writes them.
pub fn plus(t: &str, secs: i64) -> String {
    let t: chrono::DateTime<chrono::Utc> = t.parse().unwrap();
    instant(t + chrono::Duration::seconds(secs))
}

/// A port nothing listens on.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A listener on 127.0.0.1:`port` (0: any). A port chosen earlier by
/// `free_port` may be held a moment by another test's short-lived
/// connection: it is tried again for up to 5 s.
pub fn bind_on(port: u16) -> TcpListener {
    let mut tries = 0;
    loop {
        match TcpListener::bind(("127.0.0.1", port)) {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && port != 0 && tries < 50 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            bound => return bound.unwrap(),
        }
    }
}

/// Where a scenario's rows are: the contract's tables or the host's own
/// (`host::rehost`), in the SQLite file or on the PostgreSQL test server
/// (`pg::Mirror`). One scenario's code runs on each.
#[derive(Clone, Copy, Debug)]
pub struct Backend {
    pub mapped: bool,
    pub postgres: bool,
}

impl Backend {
    pub const SQLITE: Backend = Backend {
        mapped: false,
        postgres: false,
    };
    pub const MAPPED: Backend = Backend {
        mapped: true,
        postgres: false,
    };
    pub const POSTGRES: Backend = Backend {
        mapped: false,
        postgres: true,
    };
    pub const POSTGRES_MAPPED: Backend = Backend {
        mapped: true,
        postgres: true,
    };

    /// SQLite, and PostgreSQL when the environment names a test server
    /// (`pg::server`, which says on stderr that `test` skipped it
    /// otherwise): the backends a scenario on the contract's tables runs on.
    pub fn sqlite_and_postgres(test: &str) -> Vec<Backend> {
        let mut backends = vec![Backend::SQLITE];
        if pg::server(test).is_some() {
            backends.push(Backend::POSTGRES);
        }
        backends
    }

    /// Moves `env`'s rows where this backend keeps them: `tables` to the
    /// host's (mapped), then everything to the server (PostgreSQL, under a
    /// schema named after `test`). Panics without a server: a PostgreSQL
    /// test checks [`pg::server`] first and is skipped without one.
    pub fn place(self, env: &mut TestEnv, tables: &[&str], test: &str) {
        if self.mapped {
            host::rehost(env, tables);
        }
        if self.postgres {
            pg::Mirror::attach(env, test).expect("a PostgreSQL test server");
        }
    }
}

/// A temp folder with `rappel.toml` and `rappel.db`; with `pg`, the file
/// stands for a schema on the PostgreSQL test server (`pg::Mirror`).
pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub pg: Option<pg::Mirror>,
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// How a [`TestEnv`] is made: `TestEnv::builder().smtp(port).config(extra).build()`.
/// Without `.smtp`, the config has no `[email]` section at all.
#[derive(Default)]
pub struct Builder {
    smtp: Option<u16>,
    extra: String,
}

impl Builder {
    /// Email over SMTP to 127.0.0.1:`port` (no TLS, 2 s timeout, 2 connections).
    pub fn smtp(mut self, port: u16) -> Self {
        self.smtp = Some(port);
        self
    }

    /// TOML appended to the config (after `[delivery]`).
    pub fn config(mut self, extra: &str) -> Self {
        self.extra.push_str(extra);
        self
    }

    /// Writes the config and migrates the database (`db migrate`).
    pub fn build(self) -> TestEnv {
        let env = TestEnv::empty();
        let email = match self.smtp {
            Some(port) => format!(
                r#"
[email]
from = "Rappel Test <rappel@example.com>"
transport = "smtp"

[email.smtp]
host = "127.0.0.1"
port = {port}
security = "none"
timeout_s = 2
connections = 2
"#
            ),
            None => String::new(),
        };
        env.write_config(&format!(
            r#"database = "rappel.db"
timezone = "Europe/Paris"
locale = "en"
{email}
[delivery]
lease_s = 10
retry_base_s = 60
max_attempts = 3
{}"#,
            self.extra
        ));
        env.run(&["db", "migrate"], "2026-03-10T07:00:00Z").success();
        env
    }
}

impl TestEnv {
    /// Email over SMTP to 127.0.0.1:`port`; `extra` is appended to the config.
    pub fn new(port: u16, extra: &str) -> Self {
        Self::builder().smtp(port).config(extra).build()
    }

    pub fn builder() -> Builder {
        Builder::default()
    }

    /// A new temp folder, with neither config nor database yet.
    pub fn empty() -> Self {
        TestEnv {
            dir: tempfile::tempdir().unwrap(),
            pg: None,
        }
    }

    pub fn write_config(&self, text: &str) {
        std::fs::write(self.config_path(), text).unwrap();
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("rappel.toml")
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("rappel.db")
    }

    pub fn db(&self) -> Connection {
        let conn = Connection::open(self.db_path()).unwrap();
        conn.busy_timeout(Duration::from_secs(10)).unwrap();
        conn
    }

    pub fn command(&self, args: &[&str], now: &str) -> std::process::Command {
        let mut cmd = std::process::Command::new(BIN);
        cmd.arg("--config")
            .arg(self.config_path())
            .arg("--now")
            .arg(now)
            .args(args);
        cmd.env_remove("RAPPEL_CONFIG")
            .env_remove("RAPPEL_NOW")
            .current_dir(self.dir.path());
        if let Some(pg) = &self.pg {
            cmd.env(pg::PASSWORD_ENV, &pg.password);
        }
        cmd
    }

    /// On PostgreSQL, copies the file's rows to the server: before
    /// commands started with [`TestEnv::command`].
    pub fn push(&self) {
        if let Some(pg) = &self.pg {
            pg.push(self);
        }
    }

    /// On PostgreSQL, copies the server's rows back to the file: after
    /// commands started with [`TestEnv::command`] have ended.
    pub fn pull(&self) {
        if let Some(pg) = &self.pg {
            pg.pull(self);
        }
    }

    /// Starts `n` runs at once, alternating between the two commands, and
    /// checks that each exits 0.
    pub fn run_concurrently(&self, n: usize, a: &[&str], b: &[&str], now: &str) {
        self.push();
        let children: Vec<_> = (0..n)
            .map(|i| {
                let args = if i % 2 == 0 { a } else { b };
                self.command(args, now)
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut child in children {
            assert!(child.wait().unwrap().success());
        }
        self.pull();
    }

    /// Runs `args` at `now` and waits for it (on PostgreSQL, with the
    /// file's rows pushed before and the server's pulled after).
    pub fn run(&self, args: &[&str], now: &str) -> Output {
        self.push();
        let out = Output::of(self.command(args, now));
        self.pull();
        out
    }

    pub fn contact(&self, name: &str, email: &str) -> i64 {
        let db = self.db();
        db.execute(
            "INSERT INTO contacts (name, email) VALUES (?1, ?2)",
            params![name, email],
        )
        .unwrap();
        db.last_insert_rowid()
    }

    pub fn recipient(&self, contact_id: i64, stages: Option<&str>) {
        self.db()
            .execute(
                "INSERT INTO alert_recipients (contact_id, stages) VALUES (?1, ?2)",
                params![contact_id, stages],
            )
            .unwrap();
    }

    /// A ticket and its events `(stage, entered_at)` in order.
    pub fn ticket(&self, reference: &str, events: &[(&str, &str)]) -> i64 {
        let db = self.db();
        db.execute(
            "INSERT INTO tickets (reference, device, customer, created_at) VALUES (?1, 'Phone', 'Customer', '2026-01-01T00:00:00Z')",
            [reference],
        )
        .unwrap();
        let id = db.last_insert_rowid();
        for (stage, at) in events {
            self.event(id, stage, at);
        }
        id
    }

    pub fn event(&self, ticket_id: i64, stage: &str, at: &str) {
        self.db()
            .execute(
                "INSERT INTO ticket_events (ticket_id, stage, entered_at) VALUES (?1, ?2, ?3)",
                params![ticket_id, stage, at],
            )
            .unwrap();
    }

    /// A `scheduled_reports` row; returns its id.
    pub fn report(
        &self,
        title: &str,
        recipients: &str,
        scheduled_at: &str,
        attachment: Option<&str>,
        report: Option<&str>,
    ) -> i64 {
        let db = self.db();
        db.execute(
            "INSERT INTO scheduled_reports (title, recipients, scheduled_at, attachment_path, report) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![title, recipients, scheduled_at, attachment, report],
        )
        .unwrap();
        db.last_insert_rowid()
    }

    /// `(status, attempts, last_error)` of a report row.
    pub fn report_status(&self, id: i64) -> (String, i64, Option<String>) {
        self.db()
            .query_row(
                "SELECT status, attempts, last_error FROM scheduled_reports WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap()
    }

    /// The rows `sql` selects, each as `read` reads it.
    pub fn rows<T>(&self, sql: &str, read: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>) -> Vec<T> {
        let db = self.db();
        let mut stmt = db.prepare(sql).unwrap();
        stmt.query_map([], read).unwrap().map(Result::unwrap).collect()
    }

    /// The rows `sql` selects, each as three values (an id and two texts:
    /// a state table's key, instant and status).
    pub fn rows3(&self, sql: &str) -> Vec<(i64, String, String)> {
        self.rows(sql, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
    }

    /// `(recipient, status, attempts)` of every delivery, by id.
    pub fn deliveries(&self) -> Vec<(String, String, i64)> {
        self.rows(
            "SELECT recipient, status, attempts FROM rappel_deliveries ORDER BY id",
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
    }

    /// Every row of the tables rappel writes, as text, to compare before/after.
    pub fn dump(&self) -> String {
        let db = self.db();
        let mut out = String::new();
        for table in [
            "rappel_deliveries",
            "rappel_delay_alert_log",
            "rappel_job_runs",
            "rappel_meta",
            "tickets",
            "ticket_events",
        ] {
            let mut stmt = db.prepare(&format!("SELECT * FROM {table} ORDER BY 1")).unwrap();
            let n = stmt.column_count();
            let rows = stmt
                .query_map([], |r| {
                    let mut line = String::new();
                    for i in 0..n {
                        line.push_str(&format!("{:?}|", r.get_ref(i)?));
                    }
                    Ok(line)
                })
                .unwrap();
            for row in rows {
                out.push_str(&format!("{table}: {}\n", row.unwrap()));
            }
        }
        out
    }
}

/// Every transport at once: email to a real SMTP server, WhatsApp and SMS to
/// the Twilio stand-in, an HR service `rh` (every terminal) on the HR
/// stand-in, and a report definition `open`. `rh_extra` ends the `rh` section.
pub fn every_transport(rh_extra: &str) -> (SmtpServer, twilio::FakeTwilio, hr::FakeHr, TestEnv) {
    let smtp = SmtpServer::start();
    let twilio = twilio::FakeTwilio::start();
    let hr = hr::FakeHr::start();
    let env = TestEnv::new(smtp.port, "");
    std::fs::write(env.dir.path().join("hr-token"), "tok\n").unwrap();
    let base = std::fs::read_to_string(env.config_path()).unwrap();
    env.write_config(&format!(
        r#"{base}
[reports.definitions.open]
query = "SELECT 1 AS one"

{}
[attendance.services.rh]
base_url = "{}"
attendance_endpoint = "/att"
token_file = "hr-token"
timeout_s = 2
{rh_extra}
"#,
        twilio.config(env.dir.path()),
        hr.base_url()
    ));
    (smtp, twilio, hr, env)
}

/// Runs rappel in `dir` with no configuration from the environment.
pub fn rappel_in(dir: &std::path::Path, args: &[&str]) -> Output {
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(args)
        .current_dir(dir)
        .env_remove("RAPPEL_CONFIG")
        .env_remove("RAPPEL_NOW")
        .env("XDG_CONFIG_HOME", dir.join("no-such-xdg"));
    Output::of(cmd)
}

impl Output {
    pub fn of(mut cmd: std::process::Command) -> Self {
        let out = cmd.output().unwrap();
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn success(self) -> Self {
        assert_eq!(self.code, 0, "stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }

    pub fn code(self, code: i32) -> Self {
        assert_eq!(self.code, code, "stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }
}
