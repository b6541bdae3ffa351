//! The layout of a run directory (`train --out DIR`): where each of its files lives.

use std::path::{Path, PathBuf};

/// File holding everything needed to continue a run after its last completed epoch.
pub const RESUME_FILE: &str = "resume.safetensors";

/// Paths of a run directory.
pub struct RunDir(PathBuf);

impl RunDir {
    /// The run directory at `path`.
    pub fn new(path: &Path) -> Self {
        Self(path.to_path_buf())
    }
    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.0
    }
    /// `log.jsonl`.
    pub fn log(&self) -> PathBuf {
        self.0.join("log.jsonl")
    }
    /// The resume state.
    pub fn resume(&self) -> PathBuf {
        self.0.join(RESUME_FILE)
    }
    /// Checkpoint after the last completed epoch.
    pub fn last(&self) -> PathBuf {
        self.0.join("last.safetensors")
    }
    /// Checkpoint with the best test accuracy so far.
    pub fn best(&self) -> PathBuf {
        self.0.join("best.safetensors")
    }
    /// Checkpoint of a given epoch.
    pub fn epoch(&self, epoch: usize) -> PathBuf {
        self.0.join(format!("epoch-{epoch:04}.safetensors"))
    }
}
