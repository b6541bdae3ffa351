//! The error type of the `analysis` crate.

use std::path::{Path, PathBuf};

/// Everything that can go wrong in a class-wise analysis.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A flag value is missing, out of range or inconsistent with the checkpoint or data.
    #[error("{flag}: {reason}")]
    Usage {
        /// The flag to fix.
        flag: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The checkpoint cannot be used (unreadable, wrong architecture, non-finite weights).
    #[error("{}: {detail}", path.display())]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating-system error.
        source: std::io::Error,
    },
    /// A result file exists but cannot be parsed.
    #[error("{}: {detail}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parse error.
        detail: String,
    },
    /// A spectral estimator failed.
    #[error("class {class}: {source}")]
    Spectral {
        /// Which Hessian (`"3"`, `"all"`).
        class: String,
        /// The estimator's error.
        source: saddlescope_spectral::Error,
    },
    /// A result file could not be read or written.
    #[error(transparent)]
    Results(#[from] saddlescope_results::Error),
    /// A model, loss or HVP error.
    #[error(transparent)]
    Nn(#[from] saddlescope_nn::Error),
    /// A data error (names the file or flag).
    #[error(transparent)]
    Data(#[from] saddlescope_data::Error),
    /// A checkpoint reading error.
    #[error(transparent)]
    Train(#[from] saddlescope_train::Error),
    /// A tensor operation failed.
    #[error("tensor operation failed: {0}")]
    Candle(#[from] candle_core::Error),
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
