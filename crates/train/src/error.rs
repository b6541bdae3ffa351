//! The error type of the `train` crate.

use std::path::{Path, PathBuf};

/// Everything that can go wrong while training or reading and writing checkpoints.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating-system error.
        source: std::io::Error,
    },
    /// A file exists but its content is not what saddlescope wrote.
    #[error("{}: {detail}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// A setting is out of range or inconsistent; `flag` names the command-line flag.
    #[error("{flag}: {reason}")]
    Invalid {
        /// The flag to fix.
        flag: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The training loss became NaN or infinite; the last completed epoch's checkpoints stay.
    #[error("training diverged in epoch {epoch}, step {step}: loss {loss}; the checkpoints of the last completed epoch are kept (try a smaller --lr)")]
    Diverged {
        /// 1-based epoch.
        epoch: usize,
        /// 1-based step within the epoch.
        step: usize,
        /// The non-finite loss value.
        loss: f64,
    },
    /// A result file (log, checkpoint metadata) could not be read or written.
    #[error(transparent)]
    Results(#[from] saddlescope_results::Error),
    /// A model or loss error.
    #[error(transparent)]
    Nn(#[from] saddlescope_nn::Error),
    /// A data error (names the file or flag).
    #[error(transparent)]
    Data(#[from] saddlescope_data::Error),
    /// A tensor operation failed.
    #[error("tensor operation failed: {0}")]
    Candle(#[from] candle_core::Error),
    /// An internal invariant broke: a bug in saddlescope, please report it.
    #[error("internal error (please report): {0}")]
    Bug(String),
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
