//! One writer per output directory: `DIR/.saddlescope.lock`, held with an exclusive
//! `flock` for the writer's whole life and holding its pid, host, start time and command
//! line, so that a second writer fails at once and can say who holds the directory.
//!
//! The kernel releases a `flock` when its process dies, however it dies, so a lock file left
//! by a killed writer is free again and the next writer takes it over (and says so). The
//! file's contents only describe the holder; the `flock` decides. Two cases need more care:
//! - On a file system without `flock` (it fails with "unsupported"), the holder's pid
//!   decides: a holder on this host whose `/proc/<pid>` is gone is stale.
//! - A lock file written on another host (a shared file system on a cluster) that is no
//!   longer locked may mean a dead writer, or a file system that does not carry locks between
//!   hosts: saddlescope cannot check a process there, so it takes such a lock over only with
//!   `--force`.
//!
//! The file is removed when the lock is dropped (normal exit, error, or a graceful Ctrl-C);
//! a writer that opened the old file just before that notices that its file is no longer the
//! one at the path and starts over, so two writers never both hold the directory.

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Name of the lock file inside a locked directory.
pub const LOCK_FILE: &str = ".saddlescope.lock";

/// Who holds (or held) a directory: what the lock file says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// Process id.
    pub pid: u32,
    /// Host name.
    pub host: String,
    /// Start of the lock, in seconds since the Unix epoch.
    pub since: u64,
    /// The holder's command line.
    pub command: String,
}

impl Holder {
    /// This process, now.
    fn this_process() -> Self {
        Self {
            pid: std::process::id(),
            host: host_name(),
            since: now_seconds(),
            command: std::env::args().collect::<Vec<_>>().join(" "),
        }
    }

    /// `pid 123 on this host (saddlescope train ..., started 12 s ago)`.
    pub fn describe(&self) -> String {
        let place = if self.host == host_name() {
            "on this host".to_string()
        } else {
            format!("on host {}", self.host)
        };
        let mut command = self.command.clone();
        if command.chars().count() > 100 {
            command = command.chars().take(97).collect::<String>() + "...";
        }
        format!(
            "pid {} {place} (`{command}`, started {} ago)",
            self.pid,
            age(now_seconds().saturating_sub(self.since))
        )
    }
}

/// Why a directory could not be locked.
#[derive(Debug)]
pub enum LockError {
    /// A live process holds it.
    Busy {
        /// The locked directory.
        dir: PathBuf,
        /// Who holds it (`None` if its lock file could not be read yet).
        holder: Option<Holder>,
    },
    /// A lock from another host is still there; only `force` takes it over.
    OtherHost {
        /// The locked directory.
        dir: PathBuf,
        /// Who held it.
        holder: Holder,
    },
    /// The lock file could not be created, read or written.
    Io {
        /// The lock file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Busy { dir, holder } => {
                let who = holder
                    .as_ref()
                    .map_or("another process".to_string(), Holder::describe);
                write!(
                    f,
                    "{} is in use by {who}; wait for it to finish or choose another --out",
                    dir.display()
                )
            }
            LockError::OtherHost { dir, holder } => write!(
                f,
                "{} was locked by {}, and saddlescope cannot check a process on another host; if it has stopped, add --force to take the lock over",
                dir.display(),
                holder.describe()
            ),
            LockError::Io { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl std::error::Error for LockError {}

/// How a lock was obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    /// The directory was free.
    Free,
    /// A lock left by a process that is gone was taken over.
    TakenOver(Holder),
}

/// An exclusive lock on a directory, released (and its file removed) on drop.
#[derive(Debug)]
pub struct DirLock {
    path: PathBuf,
    file: Option<File>,
}

impl DirLock {
    /// Locks `dir` (which must exist) for this process.
    ///
    /// `force` takes over a lock file left on another host (see the module doc); it never
    /// takes a directory from a process that holds it.
    ///
    /// # Errors
    /// [`LockError::Busy`] naming the holder when a live process holds `dir`,
    /// [`LockError::OtherHost`] for another host's lock without `force`, [`LockError::Io`]
    /// when the lock file cannot be used.
    pub fn acquire(dir: &Path, force: bool) -> Result<(Self, Acquired), LockError> {
        let path = dir.join(LOCK_FILE);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        loop {
            let mut file = File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(io)?;
            let flock_works = match file.try_lock() {
                Ok(()) => true,
                Err(TryLockError::WouldBlock) => {
                    return Err(LockError::Busy {
                        dir: dir.to_path_buf(),
                        holder: await_holder(&mut file),
                    })
                }
                Err(TryLockError::Error(e)) if e.kind() == std::io::ErrorKind::Unsupported => false,
                Err(TryLockError::Error(e)) => return Err(io(e)),
            };
            // The holder before us may have removed the file between our open and our lock:
            // then ours is an orphan, and the lock must be taken on the file at the path.
            if !same_file(&file, &path) {
                continue;
            }
            let previous = read_holder(&mut file);
            let acquired = match previous {
                None => Acquired::Free,
                Some(old) if old.host != host_name() && !force => {
                    return Err(LockError::OtherHost {
                        dir: dir.to_path_buf(),
                        holder: old,
                    })
                }
                Some(old) if !flock_works && old.host == host_name() && alive(old.pid) => {
                    return Err(LockError::Busy {
                        dir: dir.to_path_buf(),
                        holder: Some(old),
                    })
                }
                Some(old) => Acquired::TakenOver(old),
            };
            let json =
                serde_json::to_string(&Holder::this_process()).expect("a holder always serializes");
            file.set_len(0).map_err(io)?;
            file.rewind().map_err(io)?;
            file.write_all(json.as_bytes()).map_err(io)?;
            file.sync_all().map_err(io)?;
            return Ok((
                Self {
                    path,
                    file: Some(file),
                },
                acquired,
            ));
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // Remove first, unlock second (closing the file): a writer waiting on this file then
        // sees that it is no longer the one at the path.
        let _ = std::fs::remove_file(&self.path);
        drop(self.file.take());
    }
}

/// The holder recorded in `file`, if it holds one.
fn read_holder(file: &mut File) -> Option<Holder> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

/// What a locked file says about its holder, waiting up to a second for a holder that has
/// taken the `flock` but not yet written itself into the file (it does so at once).
fn await_holder(file: &mut File) -> Option<Holder> {
    for _ in 0..100 {
        if let Some(holder) = read_holder(file) {
            return Some(holder);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    None
}

/// Whether `file` is the file now at `path`.
fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Whether process `pid` of this host runs; without `/proc` it is assumed to.
fn alive(pid: u32) -> bool {
    let proc = Path::new("/proc");
    !proc.is_dir() || proc.join(pid.to_string()).exists()
}

/// This machine's name, as `hostname` prints it.
pub fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".to_string())
}

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `12 s`, `5 min`, `3 h`, `2 days`.
fn age(seconds: u64) -> String {
    match seconds {
        s if s < 120 => format!("{s} s"),
        s if s < 2 * 3600 => format!("{} min", s / 60),
        s if s < 2 * 86400 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_holder(dir: &Path, holder: &Holder) {
        std::fs::write(dir.join(LOCK_FILE), serde_json::to_string(holder).unwrap()).unwrap();
    }

    #[test]
    fn a_second_lock_on_the_same_directory_is_refused_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let (first, how) = DirLock::acquire(dir.path(), false).unwrap();
        assert_eq!(how, Acquired::Free);
        let err = DirLock::acquire(dir.path(), true).unwrap_err();
        let LockError::Busy { holder, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(holder.as_ref().unwrap().pid, std::process::id());
        let text = err.to_string();
        assert!(
            text.contains(&format!("pid {} on this host", std::process::id())),
            "{text}"
        );
        assert!(text.contains("choose another --out"), "{text}");
        drop(first);
        assert!(!dir.path().join(LOCK_FILE).exists(), "removed on drop");
        let (again, how) = DirLock::acquire(dir.path(), false).unwrap();
        assert_eq!(how, Acquired::Free);
        drop(again);
    }

    #[test]
    fn a_lock_file_nobody_holds_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        // A dead writer of this host: its file stays, its flock went with it.
        let dead = Holder {
            pid: u32::MAX,
            host: host_name(),
            since: 0,
            command: "saddlescope train --out x".into(),
        };
        write_holder(dir.path(), &dead);
        let (lock, how) = DirLock::acquire(dir.path(), false).unwrap();
        assert_eq!(how, Acquired::TakenOver(dead));
        let now: Holder =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap())
                .unwrap();
        assert_eq!(now.pid, std::process::id());
        drop(lock);
    }

    #[test]
    fn another_hosts_lock_needs_force() {
        let dir = tempfile::tempdir().unwrap();
        let remote = Holder {
            pid: 42,
            host: format!("{}-elsewhere", host_name()),
            since: now_seconds() - 7200,
            command: "saddlescope analyze c --out x".into(),
        };
        write_holder(dir.path(), &remote);
        let err = DirLock::acquire(dir.path(), false).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, LockError::OtherHost { .. }), "{text}");
        assert!(
            text.contains("-elsewhere") && text.contains("2 h ago") && text.contains("--force"),
            "{text}"
        );
        let (lock, how) = DirLock::acquire(dir.path(), true).unwrap();
        assert_eq!(how, Acquired::TakenOver(remote));
        drop(lock);
    }

    #[test]
    fn ages_read_in_sensible_units() {
        assert_eq!(age(5), "5 s");
        assert_eq!(age(600), "10 min");
        assert_eq!(age(3 * 3600), "3 h");
        assert_eq!(age(3 * 86400), "3 days");
    }
}
