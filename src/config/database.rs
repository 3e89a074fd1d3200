//! `database`: a SQLite file (a path, the default `rappel.db`) or a
//! PostgreSQL server (DESIGN §9), written `database = "postgres://…"` or as a
//! `[database]` table with `url`, the password (`password_env` or
//! `password_file`; without them libpq's `PGPASSWORD` and `~/.pgpass`) and
//! `schema`, where rappel keeps its own tables (default `rappel`).
//!
//! The connection is encrypted by default: `sslmode` in the URL may be
//! `verify-full` (the default: TLS, the server's certificate checked against
//! the system's roots, or `sslrootcert`, and its name), `require` (TLS, the
//! certificate checked, its name not) or `disable`, which only a loopback
//! host may use, like `email.smtp.security = "none"`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{is_loopback, secret};
pub use crate::db::postgres::{Server as Postgres, SslMode};

/// `database` as written: a path or URL, or a table.
#[derive(Debug)]
pub enum RawDatabase {
    Location(String),
    Table(RawDatabaseTable),
}

/// A string or a table, read as such (not as serde's untagged enum, whose
/// error says only that neither fits): a table's own error names the key
/// that is not its, such as a top-level key written after `[database]`.
impl<'de> Deserialize<'de> for RawDatabase {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Either;
        impl<'de> serde::de::Visitor<'de> for Either {
            type Value = RawDatabase;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a path or URL, or a [database] table")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawDatabase, E> {
                Ok(RawDatabase::Location(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<RawDatabase, A::Error> {
                RawDatabaseTable::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(RawDatabase::Table)
            }
        }
        deserializer.deserialize_any(Either)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDatabaseTable {
    pub url: String,
    pub password_env: Option<String>,
    pub password_file: Option<String>,
    pub schema: Option<String>,
}

/// Where rappel's data lives.
#[derive(Debug)]
pub enum Location {
    /// A SQLite file (absolute: relative paths are taken from the
    /// configuration file's folder).
    Sqlite(PathBuf),
    Postgres(Box<Postgres>),
}

/// Reads `database`. Errors name the key and the fix; a password the
/// configuration names but that cannot be had is not one (see
/// `secret::read`): it fails when the server is reached.
pub fn convert(
    raw: Option<RawDatabase>,
    config_path: &Path,
    dir: &Path,
    warnings: &mut Vec<String>,
) -> Result<Location, String> {
    let (url, table) = match raw {
        None => return Ok(Location::Sqlite(dir.join("rappel.db"))),
        Some(RawDatabase::Location(l)) => (l, None),
        Some(RawDatabase::Table(t)) => (t.url.clone(), Some(t)),
    };
    // `scheme://`: PostgreSQL's two, or an error that does not repeat the
    // rest (it may hold a password).
    let scheme = url.split_once("://").map(|(s, _)| s).filter(|s| {
        s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && s.chars().all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
    });
    let is_url = match scheme {
        Some(s) if s.eq_ignore_ascii_case("postgres") || s.eq_ignore_ascii_case("postgresql") => true,
        Some(s) => {
            return Err(format!(
                "database: a {s}:// URL; rappel reads a SQLite file (a path) or a PostgreSQL server \
                 (postgres:// or postgresql://)"
            ));
        }
        None => false,
    };
    if !is_url {
        if table.is_some() {
            return Err(format!(
                "database.url: {url:?} is not a postgres:// or postgresql:// URL (a SQLite file is written \
                 `database = \"path\"`)"
            ));
        }
        return Ok(Location::Sqlite(dir.join(url)));
    }
    let password = match &table {
        Some(t) => secret::read(
            &secret::SecretSource {
                key: "database.password",
                plain: None,
                env: t.password_env.as_deref(),
                file: t.password_file.as_deref(),
            },
            config_path,
            dir,
            warnings,
        )?,
        None => None,
    };
    postgres_at(&url, password, table.and_then(|t| t.schema), dir)
}

/// The server at `url`, checked: one host, no password in the URL, an
/// `sslmode` rappel knows (and `disable` only to a loopback host), a schema
/// name without quoting.
fn postgres_at(
    url: &str,
    password: Option<super::Secret>,
    schema: Option<String>,
    dir: &Path,
) -> Result<Location, String> {
    // Read by hand first: postgres::Config takes neither `verify-full` nor
    // `sslrootcert`, and would print the URL in its errors.
    let lower = match url.split_once("://") {
        Some((scheme, rest)) => format!("{}://{rest}", scheme.to_ascii_lowercase()),
        None => url.to_string(),
    };
    let (base, query) = lower.split_once('?').unwrap_or((&lower, ""));
    let mut ssl = SslMode::VerifyFull;
    let mut root_cert = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => {
                ssl = match value {
                    "disable" => SslMode::Disable,
                    "require" => SslMode::Require,
                    "verify-full" => SslMode::VerifyFull,
                    other => {
                        return Err(format!(
                            "database: sslmode={other:?} (expected \"verify-full\", the default, \"require\" or \
                             \"disable\"; \"prefer\" and \"allow\" would fall back to no encryption without a word)"
                        ));
                    }
                }
            }
            "sslrootcert" => root_cert = Some(dir.join(value)),
            "password" => return Err(no_password_in_url()),
            _ => kept.push(pair),
        }
    }
    let stripped = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let config: postgres::Config = stripped.parse().map_err(|e| {
        format!(
            "database: not a PostgreSQL URL rappel can read ({e}); expected postgres://user@host:5432/name, \
                 with sslmode, sslrootcert, connect_timeout or application_name after ?"
        )
    })?;
    if config.get_password().is_some() {
        return Err(no_password_in_url());
    }
    let hosts = config.get_hosts();
    let [postgres::config::Host::Tcp(host)] = hosts else {
        return Err("database: name one host, by name or address (postgres://user@host:5432/name)".into());
    };
    if ssl == SslMode::Disable && !is_loopback(host) {
        return Err(format!(
            "database: sslmode=disable is only allowed to a loopback host, not {host:?} (use verify-full, the \
             default, or require)"
        ));
    }
    let schema = schema.unwrap_or_else(|| "rappel".into());
    let plain = schema
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && schema.len() <= 63
        && schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !plain {
        return Err(format!(
            "database.schema: {schema:?} (expected a lower-case name of letters, digits and _, starting \
             with a letter or _, at most 63)"
        ));
    }
    if schema.starts_with("pg_") || schema == "information_schema" {
        return Err(format!(
            "database.schema: {schema:?} is PostgreSQL's own; name a schema for rappel's tables (the default \
             is \"rappel\")"
        ));
    }
    Ok(Location::Postgres(Box::new(Postgres {
        config,
        password: password.map(|p| p.get().map(str::to_string).map_err(str::to_string)),
        ssl,
        root_cert,
        schema,
        shown: url.to_string(),
    })))
}

fn no_password_in_url() -> String {
    "database: the URL holds a password; put it in [database] password_env or password_file (or PGPASSWORD, \
     ~/.pgpass) so it is not written in the configuration"
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Location, String> {
        #[derive(Deserialize)]
        struct Doc {
            database: Option<RawDatabase>,
        }
        let doc: Doc = toml::from_str(text).map_err(|e| e.to_string())?;
        convert(
            doc.database,
            Path::new("/srv/app/rappel.toml"),
            Path::new("/srv/app"),
            &mut Vec::new(),
        )
    }

    fn pg(text: &str) -> Postgres {
        match read(text) {
            Ok(Location::Postgres(p)) => *p,
            other => panic!("not PostgreSQL: {other:?}"),
        }
    }

    #[test]
    fn a_key_that_is_not_the_tables_is_named() {
        // A top-level key written after `[database]` lands in it.
        let err = read("[database]\nurl = \"postgres://rappel@db/app\"\ntimezone = \"UTC\"\n").unwrap_err();
        assert!(err.contains("unknown field `timezone`, expected one of `url`"), "{err}");
        let err = read("database = 42").unwrap_err();
        assert!(err.contains("expected a path or URL, or a [database] table"), "{err}");
    }

    #[test]
    fn a_path_is_a_sqlite_file_beside_the_configuration() {
        assert!(matches!(read("").unwrap(), Location::Sqlite(p) if p == Path::new("/srv/app/rappel.db")));
        assert!(
            matches!(read("database = \"data/r.db\"").unwrap(), Location::Sqlite(p) if p == Path::new("/srv/app/data/r.db"))
        );
    }

    #[test]
    fn a_url_is_a_server_checked_by_default() {
        let p = pg("database = \"postgres://clock@db.example.com:5433/pointage\"");
        assert_eq!(p.ssl, SslMode::VerifyFull);
        assert_eq!(p.schema, "rappel");
        assert_eq!(p.config.get_user(), Some("clock"));
        assert_eq!(p.config.get_dbname(), Some("pointage"));
        assert_eq!(p.config.get_ports(), [5433]);
        assert!(p.password.is_none(), "libpq's own sources then");
        let p = pg(
            "[database]\nurl = \"postgresql://clock@127.0.0.1/pointage?sslmode=disable&application_name=x\"\nschema = \"rappel_v2\"\n",
        );
        assert_eq!(p.ssl, SslMode::Disable);
        assert_eq!(p.schema, "rappel_v2");
        assert_eq!(p.config.get_application_name(), Some("x"));
        let p = pg("database = \"postgres://clock@db.example.com/p?sslmode=require&sslrootcert=ca.pem\"");
        assert_eq!(p.ssl, SslMode::Require);
        assert_eq!(p.root_cert.as_deref(), Some(Path::new("/srv/app/ca.pem")));
    }

    #[test]
    fn the_password_comes_from_the_environment_or_a_file_never_the_url() {
        let p = pg(
            "[database]\nurl = \"postgres://clock@127.0.0.1/p\"\npassword_env = \"RAPPEL_TEST_DB_PASSWORD_UNSET\"\n",
        );
        let why = p.password.clone().unwrap().unwrap_err();
        assert!(why.contains("RAPPEL_TEST_DB_PASSWORD_UNSET"), "{why}");
        for url in [
            "postgres://clock:s3cret@127.0.0.1/p",
            "postgres://clock@127.0.0.1/p?password=s3cret",
        ] {
            let e = read(&format!("database = \"{url}\"")).unwrap_err();
            assert!(e.contains("password_env"), "{e}");
            assert!(!e.contains("s3cret"), "the secret is not repeated: {e}");
        }
    }

    #[test]
    fn what_would_weaken_or_confuse_the_connection_is_refused() {
        let e = read("database = \"postgres://clock@db.example.com/p?sslmode=disable\"").unwrap_err();
        assert!(e.contains("loopback"), "{e}");
        let e = read("database = \"postgres://clock@db.example.com/p?sslmode=prefer\"").unwrap_err();
        assert!(e.contains("verify-full"), "{e}");
        let e = read("[database]\nurl = \"postgres://clock@127.0.0.1/p\"\nschema = \"Rappel; DROP\"\n").unwrap_err();
        assert!(e.contains("database.schema"), "{e}");
        let e = read("[database]\nurl = \"data/r.db\"\n").unwrap_err();
        assert!(e.contains("database.url"), "{e}");
        let e = read("database = \"postgres://clock@a,b/p\"").unwrap_err();
        assert!(e.contains("one host"), "{e}");
        for schema in ["pg_temp", "information_schema", "1abc"] {
            let e = read(&format!(
                "[database]\nurl = \"postgres://c@127.0.0.1/p\"\nschema = \"{schema}\"\n"
            ))
            .unwrap_err();
            assert!(e.contains("database.schema"), "{e}");
        }
        // Another scheme is not a file path, and its rest is not repeated.
        for url in ["postgis://rappel:S3CRETX@127.0.0.1/app", "mysql://u:S3CRETX@h/app"] {
            let e = read(&format!("database = \"{url}\"")).unwrap_err();
            assert!(e.contains("postgres://"), "{e}");
            assert!(!e.contains("S3CRETX"), "{e}");
        }
        assert!(matches!(
            read("database = \"Postgres://c@127.0.0.1/p?sslmode=disable\""),
            Ok(Location::Postgres(_))
        ));
    }
}
