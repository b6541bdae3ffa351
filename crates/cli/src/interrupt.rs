//! Ctrl-C. While a command that has safe points runs (a training step, a Hessian: see
//! [`Graceful`]), the first Ctrl-C asks it to stop at the next one; it then keeps what is
//! complete, says how to resume and returns, releasing its output directories as usual.
//! Anywhere else, and on a second Ctrl-C, the process leaves at once (exit 130) after
//! removing the lock files of the directories it holds ([`release_on_interrupt`]), so no
//! lock outlives an interrupted command. One process-wide handler, so that `demo`, which
//! runs several commands, is covered by it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

static STOP: AtomicBool = AtomicBool::new(false);
static GRACEFUL: AtomicUsize = AtomicUsize::new(0);
static LOCK_FILES: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static INSTALLED: OnceLock<()> = OnceLock::new();

fn install() {
    INSTALLED.get_or_init(|| {
        // Failing to install (another handler exists) only loses the graceful stop and the
        // lock cleanup; the next writer takes a dead process's lock over anyway.
        let _ = ctrlc::set_handler(on_interrupt);
    });
}

fn on_interrupt() {
    if GRACEFUL.load(Ordering::SeqCst) > 0 && !STOP.swap(true, Ordering::SeqCst) {
        return;
    }
    let files = LOCK_FILES.lock().unwrap_or_else(|e| e.into_inner());
    for path in files.iter() {
        let _ = std::fs::remove_file(path);
    }
    std::process::exit(130);
}

/// A stretch of work that stops at safe points on Ctrl-C; ends when dropped.
pub struct Graceful(());

impl Graceful {
    /// Starts one (the handler is installed on first use).
    pub fn begin() -> Self {
        install();
        GRACEFUL.fetch_add(1, Ordering::SeqCst);
        Self(())
    }

    /// Set once Ctrl-C asked to stop: check it at every safe point.
    pub fn stop(&self) -> &'static AtomicBool {
        &STOP
    }
}

impl Drop for Graceful {
    fn drop(&mut self) {
        GRACEFUL.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Removes the lock file at `path` if the process is interrupted while holding it.
pub fn release_on_interrupt(path: &Path) {
    install();
    let mut files = LOCK_FILES.lock().unwrap_or_else(|e| e.into_inner());
    files.push(path.to_path_buf());
}

/// Forgets `path` again (its lock was released).
pub fn forget(path: &Path) {
    let mut files = LOCK_FILES.lock().unwrap_or_else(|e| e.into_inner());
    files.retain(|p| p != path);
}
