//! The error type of the `results` crate: every variant names its file.

use std::path::{Path, PathBuf};

/// Why a result file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating-system error.
        source: std::io::Error,
    },
    /// A result could not be encoded as JSON (a bug in saddlescope: its results always can).
    #[error("{}: cannot encode as JSON", path.display())]
    Encode {
        /// The file it was meant for.
        path: PathBuf,
        /// serde_json's error.
        source: serde_json::Error,
    },
    /// A file exists but its content is not what saddlescope writes.
    #[error("{}: {detail}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// An [`Error::Encode`] for `path`.
    pub fn encode(path: &Path, source: serde_json::Error) -> Self {
        Self::Encode {
            path: path.to_path_buf(),
            source,
        }
    }

    /// A [`Error::Corrupt`] on `path`.
    pub fn corrupt(path: &Path, detail: impl std::fmt::Display) -> Self {
        Self::Corrupt {
            path: path.to_path_buf(),
            detail: detail.to_string(),
        }
    }
}
