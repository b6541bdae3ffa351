//! The one atomic writer: every result, checkpoint and figure goes to a temporary file beside
//! its destination, is flushed to disk (`sync_all`) and renamed over it, so a reader (or a
//! run resumed after a crash) sees either the old file or the new one, never half of one.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes `contents` to `path` atomically: a temporary file in the same directory, written,
/// flushed with `sync_all`, then renamed over `path`. The directory must exist.
///
/// # Errors
/// The first I/O error; the temporary file is removed and an existing `path` is untouched.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("summary.csv");
/// saddlescope_results::write_atomically(&path, "class,trace\n")?;
/// assert_eq!(std::fs::read_to_string(&path)?, "class,trace\n");
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn write_atomically(path: &Path, contents: impl AsRef<[u8]>) -> io::Result<()> {
    write_atomically_with(path, |file| file.write_all(contents.as_ref()))
}

/// [`write_atomically`] with the content written by `write` (for output produced in
/// pieces): `write` fills the temporary file, which is then flushed and renamed over `path`.
///
/// # Errors
/// `write`'s error or the first I/O error; the temporary file is removed and an existing
/// `path` is untouched.
pub fn write_atomically_with(
    path: &Path,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    let temporary = temporary_path(path);
    let result = (|| {
        let mut file = File::create(&temporary)?;
        write(&mut file)?;
        file.sync_all()?;
        fs::rename(&temporary, path)
    })();
    if result.is_err() {
        // Best effort: the first error is what the caller needs to see.
        let _ = fs::remove_file(&temporary);
    }
    result
}

/// `DIR/.NAME.tmp.PID.N` for `DIR/NAME`: in the same directory, so the rename stays on one
/// file system; hidden; unique per process (PID) and per write within it (N), so two
/// processes or threads writing the same file never share a temporary file.
fn temporary_path(path: &Path) -> PathBuf {
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(format!(
        ".tmp.{}.{}",
        std::process::id(),
        WRITES.fetch_add(1, Ordering::Relaxed)
    ));
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn writes_the_content_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spectrum.json");
        write_atomically(&path, b"{\"a\": 1}\n").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"{\"a\": 1}\n");
        assert_eq!(names(dir.path()), ["spectrum.json"]);
    }

    /// An existing file is replaced whole (moved from `train`'s writer).
    #[test]
    fn replaces_content_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        write_atomically(&path, "a much longer old content\n".repeat(100)).unwrap();
        write_atomically(&path, "new\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new\n");
        assert_eq!(names(dir.path()), ["out.csv"]);
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("last.safetensors");
        write_atomically(&path, b"old").unwrap();
        let err = write_atomically_with(&path, |file| {
            file.write_all(b"half of the new con")?;
            Err(io::Error::other("disk full"))
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "disk full");
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(names(dir.path()), ["last.safetensors"]);
    }

    /// A missing directory fails and writes nothing (moved from `train`'s writer).
    #[test]
    fn failure_names_no_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("out.json");
        let err = write_atomically(&path, b"x").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(!path.exists());
        assert!(names(dir.path()).is_empty());
    }

    #[test]
    fn temporary_files_are_hidden_beside_the_target_and_unique() {
        let a = temporary_path(Path::new("run/last.safetensors"));
        let b = temporary_path(Path::new("run/last.safetensors"));
        assert_eq!(a.parent(), Some(Path::new("run")));
        let name = a.file_name().unwrap().to_string_lossy().into_owned();
        let prefix = format!(".last.safetensors.tmp.{}.", std::process::id());
        assert!(name.starts_with(&prefix), "{name}");
        assert_ne!(a, b);
    }
}
