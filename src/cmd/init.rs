//! `rappel init [DIR] [--database PATH]`: writes the commented example
//! configuration and creates the database; never overwrites a file.

use std::path::Path;

use anyhow::Context;

use crate::db::Database;
use crate::exit::{Exit, OrExit, fail};

pub const EXAMPLE_CONFIG: &str = include_str!("../../examples/rappel.toml");

/// Writes `dir/rappel.toml` and creates the database: `database` when given
/// (its folder made if missing, its absolute path written in the config),
/// else `dir/rappel.db`; a PostgreSQL URL is written as it is, nothing
/// created. Exit 64 when the config exists, `database` is a folder or a URL
/// rappel does not take; 74 when a file or folder cannot be written.
pub fn run(dir: &Path, database: Option<&Path>) -> anyhow::Result<Exit> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
        .or_exit(Exit::IoErr)?;
    let config = dir.join("rappel.toml");
    if config.exists() {
        return Err(fail(
            Exit::Usage,
            format!("{} already exists; init never overwrites a file", config.display()),
        ));
    }
    // A server, not a file: written as it is; its schema is made by
    // `db migrate` once its password is set.
    if let Some(url) = database.and_then(Path::to_str).filter(|d| d.contains("://")) {
        let raw = Some(crate::config::database::RawDatabase::Location(url.to_string()));
        match crate::config::database::convert(raw, &config, dir, &mut Vec::new()) {
            Err(why) => return Err(fail(Exit::Usage, format!("--database: {why}"))),
            Ok(_) => {
                let value = toml::Value::String(url.to_string());
                // The whole line: its comment is about a SQLite file.
                let line = EXAMPLE_CONFIG
                    .lines()
                    .find(|l| l.starts_with("database = \"rappel.db\""))
                    .unwrap_or("database = \"rappel.db\"");
                let text = EXAMPLE_CONFIG.replacen(line, &format!("database = {value}"), 1);
                std::fs::write(&config, text)
                    .with_context(|| format!("cannot write {}", config.display()))
                    .or_exit(Exit::IoErr)?;
                println!("wrote {}", config.display());
                println!(
                    "next: give the server's password (a [database] table with url and password_file, or \
                     PGPASSWORD, or ~/.pgpass), then run `rappel config check --connect` and `rappel db migrate`"
                );
                return Ok(Exit::Ok);
            }
        }
    }
    let database = match database {
        None => dir.join("rappel.db"),
        Some(path) => {
            let path = std::path::absolute(path)
                .with_context(|| format!("--database {}", path.display()))
                .or_exit(Exit::Usage)?;
            if let Some(folder) = path.parent() {
                std::fs::create_dir_all(folder)
                    .with_context(|| format!("cannot create {}", folder.display()))
                    .or_exit(Exit::IoErr)?;
            }
            path
        }
    };
    if database.exists() && !database.is_file() {
        return Err(fail(
            Exit::Usage,
            format!(
                "--database {} is not a file (a folder?); give the path of the database file, such as {}",
                database.display(),
                database.join("rappel.db").display()
            ),
        ));
    }
    let text = if database == dir.join("rappel.db") {
        EXAMPLE_CONFIG.to_string()
    } else {
        let value = toml::Value::String(database.to_string_lossy().into_owned());
        EXAMPLE_CONFIG.replacen("database = \"rappel.db\"", &format!("database = {value}"), 1)
    };
    std::fs::write(&config, text)
        .with_context(|| format!("cannot write {}", config.display()))
        .or_exit(Exit::IoErr)?;
    println!("wrote {}", config.display());
    if database.exists() {
        println!(
            "kept the existing database {} (`rappel db migrate` adds rappel's tables to it, if missing)",
            database.display()
        );
    } else {
        Database::new(database.clone(), false).creating().connect_current()?;
        println!("created {}", database.display());
    }
    println!(
        "next: edit {} (email.from, [email.smtp]), then run `rappel config check`",
        config.display()
    );
    Ok(Exit::Ok)
}
