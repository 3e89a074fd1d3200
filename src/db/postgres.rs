//! Connecting to PostgreSQL (DESIGN §9): the server `database` names, with
//! the password from the configuration, else `PGPASSWORD`, else the
//! password file (`PGPASSFILE`, default `~/.pgpass`) by libpq's rules; over
//! TLS unless `sslmode=disable` (a loopback host only), the server's
//! certificate checked against the system's roots or `sslrootcert`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

use crate::exit::{Exit, fail};

pub mod migrate;

/// A PostgreSQL server, as the configuration names it (`config::database`).
#[derive(Clone)]
pub struct Server {
    /// What `postgres::Config` parsed from the URL (host, port, user,
    /// database, options; never a password).
    pub config: postgres::Config,
    /// The password from `password_env` / `password_file`, or why it cannot
    /// be had (the key and the variable or file); `None`: libpq's
    /// `PGPASSWORD`, then the password file, then none. Never printed.
    pub password: Option<Result<String, String>>,
    pub ssl: SslMode,
    /// `sslrootcert`: a PEM file of the roots to trust instead of the
    /// system's.
    pub root_cert: Option<PathBuf>,
    /// The schema of rappel's own tables.
    pub schema: String,
    /// The URL as written (it holds no password): for messages.
    pub shown: String,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("url", &self.shown)
            .field("ssl", &self.ssl)
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

/// How the connection is protected (libpq's `sslmode`, of which rappel takes
/// the three that say what they do).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SslMode {
    /// No TLS: a loopback host only.
    Disable,
    /// TLS, the certificate checked against the roots, not its name.
    Require,
    /// TLS, the certificate and the host name checked.
    VerifyFull,
}

/// How long reaching the server may take before the attempt fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection to the server `pg` names. Errors: the password the
/// configuration names cannot be had, `sslrootcert` cannot be read (exit 78),
/// or the server cannot be reached, refuses TLS, its certificate, the user or
/// the password (the server's message, with the URL as written).
pub fn connect(pg: &Server) -> anyhow::Result<postgres::Client> {
    let mut config = pg.config.clone();
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if let Some(password) = password(pg)? {
        config.password(password);
    }
    let client = match pg.ssl {
        SslMode::Disable => {
            config.ssl_mode(postgres::config::SslMode::Disable);
            config.connect(postgres::NoTls)
        }
        SslMode::Require | SslMode::VerifyFull => {
            config.ssl_mode(postgres::config::SslMode::Require);
            config.connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls(pg)?))
        }
    };
    client.map_err(|e| refused(&e, &format!("cannot connect to {}", pg.shown)))
}

/// A session of its own holding `job`'s advisory lock on `server`, one key
/// per schema and job (two installations on one server do not lock each
/// other out); `None` when another session holds it. The lock lasts as long
/// as the session: closing it, or the process dying, releases it.
/// Errors: as `connect`, or the server refusing the call (`refused`).
pub fn try_advisory_lock(server: &Server, job: &str) -> anyhow::Result<Option<AdvisoryLock>> {
    let mut client = connect(server)?;
    let key = format!("rappel:{}:{job}", server.schema);
    let held: bool = client
        .query_one("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", &[&key])
        .map_err(|e| refused(&e, &format!("{}: cannot take the {job} lock", server.shown)))?
        .get(0);
    Ok(held.then(|| AdvisoryLock(Box::new(client))))
}

/// A job's advisory lock: the session holding it, closed when dropped.
pub struct AdvisoryLock(Box<postgres::Client>);

impl AdvisoryLock {
    /// The session holding the lock, to serve the run: the lock lasts as
    /// long as it is open.
    pub fn into_session(self) -> postgres::Client {
        *self.0
    }
}

/// `e` with `what` before it, and the exit it means: 78 when the server
/// refuses the role, its password or its rights (the configuration must
/// change), 74 otherwise (the server cannot be reached or used now).
pub fn refused(e: &postgres::Error, what: &str) -> anyhow::Error {
    use postgres::error::SqlState;
    let state = e.code();
    let config = [
        SqlState::INVALID_PASSWORD,
        SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
        SqlState::INSUFFICIENT_PRIVILEGE,
        SqlState::INVALID_CATALOG_NAME,
        SqlState::INVALID_SCHEMA_NAME,
    ];
    // The error and its causes ("db error: FATAL: password authentication
    // failed for user ..."), as anyhow would print them.
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    let hint = if text.contains("password missing") {
        " (set [database] password_env or password_file, or PGPASSWORD, or ~/.pgpass)"
    } else if text.contains("UnknownIssuer") {
        " (the server's certificate is signed by a CA this machine does not trust: name it with \
         sslrootcert=/path/to/ca.pem in the URL; rappel checks the certificate even with sslmode=require)"
    } else if state == Some(&SqlState::INSUFFICIENT_PRIVILEGE) {
        " (the role needs CREATE on the database to make rappel's schema, and rights on that schema)"
    } else {
        ""
    };
    let exit = if state.is_some_and(|s| config.contains(s)) || !hint.is_empty() {
        Exit::Config
    } else {
        Exit::IoErr
    };
    fail(exit, format!("{what}: {text}{hint}"))
}

/// The password: the configuration's, `PGPASSWORD`, or the password file's
/// line for this host, port, database and user; `None` for none.
fn password(pg: &Server) -> anyhow::Result<Option<String>> {
    if let Some(secret) = &pg.password {
        return match secret {
            Ok(p) => Ok(Some(p.clone())),
            Err(why) => Err(fail(Exit::Config, why.clone())),
        };
    }
    if let Ok(p) = std::env::var("PGPASSWORD")
        && !p.is_empty()
    {
        crate::mask::register(&p);
        return Ok(Some(p));
    }
    let Some(file) = std::env::var_os("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".pgpass")))
    else {
        return Ok(None);
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // As libpq: a password file others may read is not used.
        if let Ok(meta) = std::fs::metadata(&file)
            && meta.permissions().mode() & 0o077 != 0
        {
            log::warn!(
                "password file {} has group or world access and is not used (chmod 600 it)",
                file.display()
            );
            return Ok(None);
        }
    }
    let Ok(text) = std::fs::read_to_string(&file) else {
        return Ok(None);
    };
    let host = match pg.config.get_hosts() {
        [postgres::config::Host::Tcp(h)] => h.as_str(),
        _ => "",
    };
    let port = pg.config.get_ports().first().copied().unwrap_or(5432).to_string();
    let user = pg.config.get_user().unwrap_or_default();
    let dbname = pg.config.get_dbname().unwrap_or(user);
    let found = pgpass_lookup(&text, [host, &port, dbname, user]);
    if let Some(p) = &found {
        crate::mask::register(p);
    }
    Ok(found)
}

/// The password of the first line of a libpq password file matching
/// `host:port:database:user` (`*` matches anything, `\` escapes `:` and `\`,
/// `#` starts a comment line).
fn pgpass_lookup(text: &str, wanted: [&str; 4]) -> Option<String> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let mut fields = Vec::with_capacity(5);
        let (mut field, mut escaped) = (String::new(), false);
        for c in line.chars() {
            match (escaped, c) {
                (true, c) => {
                    field.push(c);
                    escaped = false;
                }
                (false, '\\') => escaped = true,
                (false, ':') if fields.len() < 4 => fields.push(std::mem::take(&mut field)),
                (false, c) => field.push(c),
            }
        }
        fields.push(field);
        let [h, p, d, u, password] = <[String; 5]>::try_from(fields).ok()?;
        let matches = [h, p, d, u].iter().zip(wanted).all(|(f, w)| f == "*" || f == w);
        matches.then_some(password)
    })
}

/// The TLS client: the roots of `sslrootcert`, else the system's; with
/// `sslmode=require`, a certificate for another name is taken.
fn tls(pg: &Server) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    match &pg.root_cert {
        Some(file) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(file)
                .and_then(|certs| certs.collect())
                .map_err(|e| fail(Exit::Config, format!("database: sslrootcert {}: {e}", file.display())))?;
            roots.add_parsable_certificates(certs);
        }
        None => {
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        }
    }
    if roots.is_empty() {
        return Err(fail(
            Exit::Config,
            "database: no root certificate to check the server's with (set sslrootcert in the URL)",
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let config = match pg.ssl {
        SslMode::Require => {
            let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .context("TLS certificate verifier")?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyName(inner)))
                .with_no_client_auth()
        }
        _ => builder.with_root_certificates(roots).with_no_client_auth(),
    };
    Ok(config)
}

/// `sslmode=require`: the certificate must chain to the roots, whatever
/// name it is for (libpq checks nothing then; rappel checks the chain).
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// What `config check --connect` reports of the server: the user, the
/// server's version, whether TLS is on, and whether rappel's schema exists.
/// Errors: as [`connect`], the server refuses the query, or rappel's schema
/// there is newer than this rappel understands.
pub fn describe(pg: &Server) -> anyhow::Result<String> {
    let mut client = connect(pg)?;
    let row = client
        .query_one(
            "SELECT current_user::text, current_setting('server_version'),
                    EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
            &[&pg.schema],
        )
        .map_err(|e| refused(&e, "reading the server's version"))?;
    let (user, version, schema): (String, String, bool) = (row.get(0), row.get(1), row.get(2));
    let tls = match pg.ssl {
        SslMode::Disable => "without TLS (loopback)",
        SslMode::Require => "over TLS (certificate checked, not its name)",
        SslMode::VerifyFull => "over TLS (certificate and name checked)",
    };
    if schema {
        let version = migrate::version(&mut client, &pg.schema)?;
        if version > migrate::LATEST {
            return Err(super::server_newer(pg, version));
        }
    }
    let schema = if schema { "present" } else { "absent" };
    Ok(format!(
        "{}: connected as {user} {tls}, PostgreSQL {version}, schema {} {schema}",
        pg.shown, pg.schema
    ))
}

/// The columns of `table` in rappel's schema on `server` (none when the
/// table is not there), for `db status`. Errors: the server's, said as
/// `refused` says them.
pub fn columns(client: &mut postgres::Client, server: &Server, table: &str) -> anyhow::Result<Vec<String>> {
    Ok(client
        .query(
            "SELECT column_name::text FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2",
            &[&server.schema, &table],
        )
        .map_err(|e| refused(&e, &format!("{}: cannot read the tables' columns", server.shown)))?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// For `db status`: the columns rappel writes its status into as text
/// (`attendance_logs.sync_status`) that the application typed otherwise,
/// an enum: each job that writes it would stop with the server's
/// refusal. One line each. Errors: the server's.
pub fn status_columns_not_text(client: &mut postgres::Client, server: &Server) -> anyhow::Result<Vec<String>> {
    Ok(client
        .query(
            "SELECT table_name::text, column_name::text, udt_name::text FROM information_schema.columns
             WHERE table_schema = $1 AND table_name = 'attendance_logs' AND column_name = 'sync_status'
               AND data_type = 'USER-DEFINED'",
            &[&server.schema],
        )
        .map_err(|e| refused(&e, &format!("{}: cannot read the tables' columns", server.shown)))?
        .iter()
        .map(|r| {
            let (table, column, ty): (String, String, String) = (r.get(0), r.get(1), r.get(2));
            format!(
                "column {table}.{column} is of type {ty}: rappel writes a status there as text \
                 (make it text or varchar); sync-attendance stops"
            )
        })
        .collect())
}

/// For `db status`, on `client`, a session on `server` (rappel's schema put
/// first on its search path): the input tables without a key on `id` as
/// they are now (`migrate::unkeyed_query`), each whose ids repeat
/// (`db::host::repeated_ids_in`), and a line when they differ from what
/// `db migrate` recorded for the jobs. Errors: the server's.
pub fn repeated_ids(mut client: postgres::Client, server: &Server) -> anyhow::Result<Vec<String>> {
    client
        .batch_execute(&format!(
            "SET search_path TO \"{}\"",
            server.schema.replace('"', "\"\"")
        ))
        .map_err(|e| refused(&e, &format!("{}: cannot use the schema", server.shown)))?;
    let conn = super::conn::Conn::postgres(client, false);
    let now: String = conn.query_row(&migrate::unkeyed_query(), crate::params![], |r| r.get(0))?;
    let recorded = super::host::recorded_unkeyed(&conn)?;
    let names: Vec<String> = now.split(',').filter(|t| !t.is_empty()).map(str::to_string).collect();
    let mut lines = super::host::repeated_ids_in(&conn, &names)?;
    if recorded.as_deref().unwrap_or_default() != now {
        lines.push(format!(
            "the input tables without a unique key on id are now: {}; run `rappel db migrate` so the jobs \
             check their ids",
            if now.is_empty() { "none" } else { now.as_str() }
        ));
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_file_is_read_as_libpq_reads_it() {
        let text = "# comment\n\
                    other:5432:*:clock:no\n\
                    db.example.com:5432:pointage:clock:s3cr\\:et\n\
                    *:*:*:*:fallback\n";
        let want = |host, db, user| pgpass_lookup(text, [host, "5432", db, user]);
        assert_eq!(want("db.example.com", "pointage", "clock").as_deref(), Some("s3cr:et"));
        assert_eq!(want("db.example.com", "other", "clock").as_deref(), Some("fallback"));
        assert_eq!(
            pgpass_lookup("a:b:c\n", ["a", "b", "c", "d"]),
            None,
            "a short line is no entry"
        );
    }
}
