//! `rappel init [DIR]`: writes the commented example configuration and creates
//! the database; never overwrites a file.

use std::path::Path;

use anyhow::Context;

use crate::db::Database;
use crate::exit::{Exit, OrExit, fail};

pub const EXAMPLE_CONFIG: &str = include_str!("../../examples/rappel.toml");

pub fn run(dir: &Path) -> anyhow::Result<Exit> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
        .or_exit(Exit::Usage)?;
    let config = dir.join("rappel.toml");
    if config.exists() {
        return Err(fail(
            Exit::Usage,
            format!("{} already exists; init never overwrites a file", config.display()),
        ));
    }
    std::fs::write(&config, EXAMPLE_CONFIG)
        .with_context(|| format!("cannot write {}", config.display()))
        .or_exit(Exit::Usage)?;
    println!("wrote {}", config.display());
    let database = dir.join("rappel.db");
    if database.exists() {
        println!("kept the existing database {}", database.display());
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
