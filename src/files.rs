//! Files rappel writes (lock files beside the database, outbox messages,
//! generated reports) and attachments it reads, opened without following a
//! symbolic link: a link planted where rappel writes cannot point its writes
//! at another file (on Unix, `O_NOFOLLOW` on the last component).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

/// `OpenOptions` that refuse to open the path's last component when it is a
/// symbolic link (the open fails with `ELOOP`).
pub fn no_follow() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NOFOLLOW);
    options
}

/// Writes `bytes` to `path` whole: into a temporary file beside it (this
/// process's own, never through a link), then renamed over it, so a reader
/// never sees half a file. Creates the folder when missing.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let mut file = no_follow().write(true).create(true).truncate(true).open(&tmp)?;
    file.write_all(bytes)?;
    drop(file);
    std::fs::rename(&tmp, path)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_link_planted_where_rappel_writes_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("precious");
        std::fs::write(&target, "keep me").unwrap();
        let out = dir.path().join("out.json");
        let tmp = dir.path().join(format!(".out.json.{}.tmp", std::process::id()));
        std::os::unix::fs::symlink(&target, &tmp).unwrap();
        assert!(write_atomically(&out, b"new").is_err(), "the planted link is refused");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
        std::fs::remove_file(&tmp).unwrap();
        write_atomically(&out, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "new");
        let lock = dir.path().join("x.lock");
        std::os::unix::fs::symlink(&target, &lock).unwrap();
        assert!(no_follow().write(true).create(true).open(&lock).is_err());
    }
}
