//! Where the configuration file is looked for: `--config`, `RAPPEL_CONFIG`
//! (both arrive here as `explicit`), `./rappel.toml`, the user config dir, then
//! the system one.

use std::path::{Path, PathBuf};

/// The candidate paths in order, for the lookup and for the error that lists them.
pub fn candidates() -> Vec<PathBuf> {
    let mut paths = vec![PathBuf::from("rappel.toml")];
    if let Some(dir) = user_config_dir() {
        paths.push(dir.join("rappel").join("rappel.toml"));
    }
    paths.push(system_config_dir().join("rappel.toml"));
    paths
}

/// The file to load, or the list of paths tried.
pub fn find(explicit: Option<&Path>) -> Result<PathBuf, Vec<PathBuf>> {
    if let Some(path) = explicit {
        return if path.is_file() {
            Ok(path.to_path_buf())
        } else {
            Err(vec![path.to_path_buf()])
        };
    }
    let tried = candidates();
    tried.iter().find(|p| p.is_file()).cloned().ok_or(tried)
}

fn user_config_dir() -> Option<PathBuf> {
    if cfg!(windows) {
        return std::env::var_os("APPDATA").map(PathBuf::from);
    }
    match std::env::var_os("XDG_CONFIG_HOME") {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")),
    }
}

fn system_config_dir() -> PathBuf {
    if cfg!(windows) {
        let base = std::env::var_os("ProgramData").unwrap_or_else(|| "C:\\ProgramData".into());
        PathBuf::from(base).join("rappel")
    } else {
        PathBuf::from("/etc/rappel")
    }
}
