//! Files rappel writes (lock files beside the database, outbox messages,
//! generated reports) and attachments it reads, opened without following a
//! symbolic link and without blocking: a link, a hard link or a FIFO planted
//! where rappel works can neither point its writes at another file nor hang
//! it (on Unix, `O_NOFOLLOW | O_NONBLOCK`, `O_EXCL` for new files, and only
//! a regular file is used).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

/// `OpenOptions` that refuse to open the path's last component when it is a
/// symbolic link (the open fails with `ELOOP`), and never wait on a FIFO.
pub fn no_follow() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NOFOLLOW | libc::O_NONBLOCK);
    options
}

/// Opens `path` with `options`, and keeps it only if it is a regular file
/// (not a FIFO, a device or a folder planted there).
pub fn open_regular(options: &OpenOptions, path: &Path) -> std::io::Result<std::fs::File> {
    let file = options.open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", path.display()),
        ));
    }
    Ok(file)
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
    // A name no one can guess, created new (O_EXCL): nothing planted there
    // in advance (a link to another file) is ever written through.
    let tmp = path.with_file_name(format!(".{name}.{}.{:016x}.tmp", std::process::id(), random()));
    let mut file = no_follow().write(true).create_new(true).open(&tmp)?;
    file.write_all(bytes)?;
    drop(file);
    std::fs::rename(&tmp, path)
}

fn random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish()
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn what_is_planted_where_rappel_writes_is_never_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("precious");
        std::fs::write(&target, "keep me").unwrap();
        let out = dir.path().join("out.json");
        write_atomically(&out, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "new");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 2, "no temporary left: {names:?}");
        let lock = dir.path().join("x.lock");
        std::os::unix::fs::symlink(&target, &lock).unwrap();
        assert!(no_follow().write(true).create(true).open(&lock).is_err(), "a link");
        let fifo = dir.path().join("y.lock");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let opened = open_regular(no_follow().read(true).write(true).create(true), &fifo);
        assert!(opened.is_err(), "a FIFO is refused, at once");
    }
}
