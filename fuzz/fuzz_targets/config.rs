//! Fuzz target: any configuration text gives a `Config` or an error, never a panic.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

/// One folder per fuzzing process, holding a secret file for `*_file` keys.
fn config_path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("rappel-fuzz-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temporary folder");
        std::fs::write(dir.join("secret"), "s3cret\n").expect("secret file");
        std::fs::write(dir.join("empty"), "").expect("empty file");
        dir.join("rappel.toml")
    })
}

/// Whether every `*_file` value is a bare name in the config's folder: others
/// could name `/dev/zero` or a FIFO, which a real deployment's operator
/// controls, and would only hang the fuzzer.
fn files_stay_home(value: &toml::Value) -> bool {
    match value {
        toml::Value::Table(t) => t.iter().all(|(key, v)| {
            let bare = |s: &str| {
                !s.is_empty()
                    && s != "."
                    && s != ".."
                    && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            };
            let ok_here = !key.ends_with("_file") || v.as_str().is_none_or(bare);
            ok_here && files_stay_home(v)
        }),
        toml::Value::Array(a) => a.iter().all(files_stay_home),
        _ => true,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(table) = text.parse::<toml::Table>()
        && !files_stay_home(&toml::Value::Table(table))
    {
        return;
    }
    match rappel::config::load_str(text, config_path()) {
        Ok(config) => {
            // A valid configuration is usable: its debug form (secrets hidden) prints.
            let shown = format!("{config:?}");
            assert!(
                text.contains("s3cret") || !shown.contains("s3cret"),
                "a secret read from a file is shown"
            );
        }
        Err(e) => {
            let message = format!("{e:#}");
            assert!(!message.is_empty());
        }
    }
});
