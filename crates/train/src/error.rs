//! The error type of the `train` crate. Settings are named as [`crate::TrainConfig`] names
//! them ([`Param`]); a front end maps them to its own names (the CLI to its flags).

use std::path::{Path, PathBuf};

/// A setting of a run, as [`Error::Invalid`] names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Param {
    /// [`crate::TrainConfig::dataset`].
    Dataset,
    /// [`crate::TrainConfig::ratio`].
    Ratio,
    /// [`crate::TrainConfig::epochs`] (also the extension asked of a resumed run).
    Epochs,
    /// [`crate::TrainConfig::batch_size`].
    BatchSize,
    /// [`crate::TrainConfig::lr`].
    Lr,
    /// [`crate::TrainConfig::momentum`].
    Momentum,
    /// [`crate::TrainConfig::weight_decay`].
    WeightDecay,
    /// The DRW start epoch of [`crate::TrainConfig::reweighting`].
    DrwEpoch,
    /// [`crate::SamConfig::rho`].
    SamRho,
    /// [`crate::SamConfig::from_epoch`].
    SamFrom,
    /// [`crate::SamConfig::schedule`].
    SamSchedule,
    /// [`crate::TrainConfig::dtype`].
    Dtype,
}

impl Param {
    /// The setting's name in [`crate::TrainConfig`].
    pub fn name(self) -> &'static str {
        match self {
            Param::Dataset => "dataset",
            Param::Ratio => "ratio",
            Param::Epochs => "epochs",
            Param::BatchSize => "batch_size",
            Param::Lr => "lr",
            Param::Momentum => "momentum",
            Param::WeightDecay => "weight_decay",
            Param::DrwEpoch => "reweighting",
            Param::SamRho => "sam.rho",
            Param::SamFrom => "sam.from_epoch",
            Param::SamSchedule => "sam.schedule",
            Param::Dtype => "dtype",
        }
    }
}

impl std::fmt::Display for Param {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything that can go wrong while training or reading and writing checkpoints.
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
    /// A file exists but its content is not what saddlescope wrote.
    #[error("{}: {detail}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// A setting is out of range or inconsistent.
    #[error("{param}: {reason}")]
    Invalid {
        /// The setting to fix.
        param: Param,
        /// What is wrong.
        reason: String,
    },
    /// A fresh run was asked for in a directory that already holds one.
    #[error("{} already holds a run; resume it or pick another directory", dir.display())]
    RunExists {
        /// The run directory.
        dir: PathBuf,
    },
    /// A run was to be resumed from a directory that holds none.
    #[error("{} holds no run to resume (no {})", dir.display(), crate::RESUME_FILE)]
    NothingToResume {
        /// The directory.
        dir: PathBuf,
    },
    /// The training loss became NaN or infinite; the last completed epoch's checkpoints stay.
    #[error("training diverged in epoch {epoch}, step {step}: loss {loss}; {} (try a smaller learning rate)", kept_after(.epoch))]
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
    /// A data error (names the file or parameter).
    #[error(transparent)]
    Data(#[from] saddlescope_data::Error),
    /// A tensor operation failed.
    #[error("tensor operation failed")]
    Candle(#[from] candle_core::Error),
    /// An internal invariant broke: a bug in saddlescope, please report it.
    #[error("internal error (please report): {0}")]
    Bug(String),
}

/// What a run that diverged in 1-based `epoch` keeps.
fn kept_after(epoch: &usize) -> String {
    match epoch - 1 {
        0 => "no epoch was complete, so there is nothing to keep".into(),
        done => format!("the checkpoints of epoch {done}, the last complete one, are kept"),
    }
}

impl Error {
    /// Whether this error is a bad setting or run directory (exit status 2 in the CLI)
    /// rather than a failure of the run or its files.
    pub fn is_usage(&self) -> bool {
        match self {
            Error::Invalid { .. } | Error::RunExists { .. } | Error::NothingToResume { .. } => true,
            Error::Data(e) => e.is_usage(),
            _ => false,
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
