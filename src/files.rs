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
    // Created new (O_EXCL): nothing planted there in advance (a link to
    // another file) is ever written through.
    let tmp = temp_beside(path);
    let mut file = no_follow().write(true).create_new(true).open(&tmp)?;
    file.write_all(bytes)?;
    drop(file);
    std::fs::rename(&tmp, path)
}

/// `.<name>.<pid>.<random>.tmp` beside `path`: a name no one can guess,
/// within the file system's 255 bytes whatever `path`'s name (its first 80
/// characters).
fn temp_beside(path: &Path) -> std::path::PathBuf {
    path.with_file_name(format!(
        ".{}.{}.{:016x}.tmp",
        temp_stem(path),
        std::process::id(),
        random()
    ))
}

/// The part of `path`'s name its temporary files start with.
fn temp_stem(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().chars().take(80).collect())
        .unwrap_or_default()
}

/// Replaces the file at `path` with `bytes` whole, for files another
/// program reads while rappel rewrites them (the dashboard's page, the
/// metrics file), when `path` is not there or `is_ours(its first bytes)`
/// (up to 64): a command told to write its page over a database or a
/// configuration file refuses rather than destroy it. Written beside it
/// (`temp_beside`, created new, never through a link), synced, given the
/// mode and owner of the file it replaces, then renamed over it. What is at
/// `path` must be a regular file or nothing: a link, a device, a FIFO or a
/// folder there is refused, so that a page written as root never replaces
/// `/dev/null` nor lands where a link points. Temporary files of runs
/// killed before their rename (more than a minute old) are removed. The
/// folder must exist.
///
/// Errors: the folder is missing or not writable, `path` is not a regular
/// file, or not ours (`InvalidInput`, naming it).
pub fn replace_if(path: &Path, bytes: &[u8], is_ours: impl Fn(&[u8]) -> bool) -> std::io::Result<()> {
    use std::io::{Error, ErrorKind, Read};
    let existing = match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_file() => Some(meta),
        Ok(_) => {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "{} is not a regular file; rappel replaces only a regular file",
                    path.display()
                ),
            ));
        }
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    if existing.as_ref().is_some_and(|m| m.len() > 0) {
        let mut head = Vec::with_capacity(64);
        open_regular(no_follow().read(true), path)?
            .take(64)
            .read_to_end(&mut head)?;
        if !is_ours(&head) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "{} holds something else; rappel replaces only a file it wrote (remove it first)",
                    path.display()
                ),
            ));
        }
    }
    remove_stale(path);
    let tmp = temp_beside(path);
    let mut options = no_follow();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if let Some(meta) = &existing {
        // Created with the old file's mode (the umask may narrow it, never
        // widen it): its content is never readable by more than the page's.
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(meta.permissions().mode() & 0o777);
    }
    let mut file = options.open(&tmp)?;
    let written = (|| {
        file.write_all(bytes)?;
        if let Some(meta) = &existing {
            keep_owner(&file, meta, path);
            file.set_permissions(meta.permissions())?;
        }
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Gives `file` the owner and group of the file it replaces (`old`): root
/// may; anyone else keeps the group when they belong to it. A group that
/// cannot be kept is said (a web server reading the page by its group
/// would lose it).
fn keep_owner(file: &std::fs::File, old: &std::fs::Metadata, path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if std::os::unix::fs::fchown(file, Some(old.uid()), Some(old.gid())).is_ok() {
            return;
        }
        if let Err(e) = std::os::unix::fs::fchown(file, None, Some(old.gid())) {
            log::warn!(
                "{}: its group ({}) cannot be kept ({e}); the new file has this user's",
                path.display(),
                old.gid()
            );
        }
    }
    #[cfg(not(unix))]
    let _ = (file, old, path);
}

/// Removes `replace_if`'s temporary files for `name` in `path`'s folder that
/// are regular files over a minute old: what a run killed between its write
/// and its rename left (a hidden copy of a page a web server could serve).
fn remove_stale(path: &Path) {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let prefix = format!(".{}.", temp_stem(path));
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let file_name = file_name.to_string_lossy();
        if !(file_name.starts_with(&prefix) && file_name.ends_with(".tmp")) {
            continue;
        }
        let old = std::fs::symlink_metadata(entry.path()).is_ok_and(|m| {
            m.file_type().is_file()
                && m.modified()
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|a| a.as_secs() > 60)
        });
        if old {
            let _ = std::fs::remove_file(entry.path());
        }
    }
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

    /// A FIFO named `name` made in `dir`.
    fn fifo_in(dir: &Path, name: &str) -> std::path::PathBuf {
        let fifo = dir.join(name);
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        fifo
    }

    /// `replace_if` for any content already there.
    fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        replace_if(path, bytes, |_| true)
    }

    #[test]
    fn replace_refuses_what_is_not_a_regular_file_and_keeps_the_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("precious");
        std::fs::write(&target, "keep me").unwrap();
        let link = dir.path().join("page.html");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let refused = replace(&link, b"page").unwrap_err();
        assert!(refused.to_string().contains("not a regular file"), "{refused}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
        assert!(
            std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(),
            "the link stays"
        );
        let fifo = fifo_in(dir.path(), "fifo");
        assert!(replace(&fifo, b"page").is_err(), "a FIFO stays a FIFO");
        assert!(replace(dir.path(), b"page").is_err(), "a folder");

        let page = dir.path().join("index.html");
        std::fs::write(&page, "old").unwrap();
        std::fs::set_permissions(&page, std::fs::Permissions::from_mode(0o640)).unwrap();
        // A temporary file a killed run left long ago goes; a fresh one stays.
        let stale = dir.path().join(".index.html.1.00000000000000aa.tmp");
        std::fs::write(&stale, "old copy").unwrap();
        let long_ago = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        std::fs::File::options()
            .write(true)
            .open(&stale)
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
        let fresh = dir.path().join(".index.html.2.00000000000000bb.tmp");
        std::fs::write(&fresh, "another run's").unwrap();
        replace(&page, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&page).unwrap(), "new");
        assert_eq!(std::fs::metadata(&page).unwrap().permissions().mode() & 0o777, 0o640);
        assert!(!stale.exists() && fresh.exists());
        assert!(
            replace(&dir.path().join("missing/x.prom"), b"m").is_err(),
            "no folder is made"
        );
    }

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
        let fifo = fifo_in(dir.path(), "y.lock");
        let opened = open_regular(no_follow().read(true).write(true).create(true), &fifo);
        assert!(opened.is_err(), "a FIFO is refused, at once");
    }
}
