//! Secrets named by `*_env` (an environment variable) or `*_file` (a file,
//! `$CREDENTIALS_DIRECTORY` expanded), or written in the file with a warning.
//! A secret never appears in Debug output, logs or errors. One that cannot
//! be had (variable unset, file unreadable) is not an error until a
//! transport that needs it is built: commands that send nothing (`log`,
//! `stats`, `db`, `purge`, dry runs) work without it (DESIGN §9).

use std::fmt;
use std::path::Path;

/// A credential, or why it cannot be had; prints as `***`.
#[derive(Clone)]
pub struct Secret(Result<String, String>);

impl Secret {
    /// A secret as read; registered with `mask`, so it is masked in every
    /// encoding wherever rappel prints or records a text.
    pub fn new(value: String) -> Self {
        crate::mask::register(&value);
        Secret(Ok(value))
    }

    /// A secret the configuration names but that cannot be read now.
    pub fn unavailable(why: String) -> Self {
        Secret(Err(why))
    }

    /// The value; `Err` says why it cannot be had (the configuration key and
    /// the variable or file), for the transport that needs it to report as a
    /// configuration error (exit 78).
    pub fn get(&self) -> Result<&str, &str> {
        match &self.0 {
            Ok(v) => Ok(v),
            Err(why) => Err(why),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where the configuration said a secret lives.
pub struct SecretSource<'a> {
    /// Key path without the suffix, e.g. `email.smtp.password`.
    pub key: &'a str,
    pub plain: Option<&'a str>,
    pub env: Option<&'a str>,
    pub file: Option<&'a str>,
}

/// Reads the secret. `Ok(None)` when none of the three keys is set.
/// `warnings` receives the notice for a plain secret in a file others can read.
pub fn read(
    src: &SecretSource<'_>,
    config_path: &Path,
    config_dir: &Path,
    warnings: &mut Vec<String>,
) -> Result<Option<Secret>, String> {
    let key = src.key;
    let set = [src.plain.is_some(), src.env.is_some(), src.file.is_some()];
    if set.iter().filter(|s| **s).count() > 1 {
        return Err(format!("{key}: set only one of `{key}`, `{key}_env` and `{key}_file`"));
    }
    if let Some(var) = src.env {
        return Ok(Some(match std::env::var(var) {
            Ok(v) if !v.is_empty() => Secret::new(v),
            Ok(_) => Secret::unavailable(format!(
                "{key}_env: environment variable {var} is empty (expected it to hold the secret)"
            )),
            Err(_) => Secret::unavailable(format!(
                "{key}_env: environment variable {var} is not set (expected it to hold the secret)"
            )),
        }));
    }
    if let Some(file) = src.file {
        let expanded = match expand_credentials_dir(file) {
            Ok(e) => e,
            Err(why) => return Ok(Some(Secret::unavailable(format!("{key}_file: {why}")))),
        };
        let path = config_dir.join(expanded);
        return Ok(Some(match std::fs::read_to_string(&path) {
            Ok(v) => {
                let v = v.trim_end_matches(['\r', '\n']).to_string();
                if v.is_empty() {
                    Secret::unavailable(format!("{key}_file: {} is empty", path.display()))
                } else {
                    Secret::new(v)
                }
            }
            Err(e) => Secret::unavailable(format!(
                "{key}_file: cannot read {} ({e}); expected a file holding the secret",
                path.display()
            )),
        }));
    }
    if let Some(v) = src.plain {
        if readable_by_others(config_path) {
            warnings.push(format!(
                "{}: `{key}` is written in a file other users can read; prefer `{key}_env` or `{key}_file`",
                config_path.display()
            ));
        }
        return Ok(Some(Secret::new(v.to_string())));
    }
    Ok(None)
}

fn expand_credentials_dir(value: &str) -> Result<String, String> {
    for pattern in ["${CREDENTIALS_DIRECTORY}", "$CREDENTIALS_DIRECTORY"] {
        if value.contains(pattern) {
            let dir = std::env::var("CREDENTIALS_DIRECTORY").map_err(|_| {
                format!("{value}: $CREDENTIALS_DIRECTORY is not set (systemd sets it with LoadCredential=)")
            })?;
            return Ok(value.replace(pattern, &dir));
        }
    }
    Ok(value.to_string())
}

#[cfg(unix)]
fn readable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o004 != 0)
        .unwrap_or(false)
}

#[cfg(not(unix))]
fn readable_by_others(_path: &Path) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        assert_eq!(format!("{:?}", Secret::new("hunter2".into())), "***");
    }

    #[test]
    fn file_secret_is_trimmed_and_relative_to_the_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "s3cret\n").unwrap();
        let src = SecretSource {
            key: "email.smtp.password",
            plain: None,
            env: None,
            file: Some("pw"),
        };
        let got = read(&src, &dir.path().join("rappel.toml"), dir.path(), &mut vec![]).unwrap();
        assert_eq!(got.unwrap().get(), Ok("s3cret"));
    }

    #[test]
    fn missing_env_names_the_key_and_variable_but_no_value() {
        let src = SecretSource {
            key: "email.smtp.password",
            plain: None,
            env: Some("RAPPEL_TEST_SURELY_UNSET_VAR"),
            file: None,
        };
        let secret = read(&src, Path::new("x"), Path::new("."), &mut vec![])
            .unwrap()
            .unwrap();
        let err = secret.get().unwrap_err();
        assert!(err.contains("email.smtp.password_env"), "{err}");
        assert!(err.contains("RAPPEL_TEST_SURELY_UNSET_VAR"), "{err}");
    }
}
