//! The error type of the `analysis` crate. Settings are named as this crate's parameter
//! structs name them ([`Param`]); a front end maps them to its own names (the CLI to its
//! flags).

use std::path::{Path, PathBuf};

/// A setting of an analysis or landscape, as [`Error::Invalid`] names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Param {
    /// [`crate::AnalyzeParams::batch_size`].
    BatchSize,
    /// [`crate::AnalyzeParams::samples_per_class`].
    SamplesPerClass,
    /// [`crate::SaddleRule::min_ratio`].
    SaddleRatio,
    /// [`crate::VerdictRule::max_gradient_ratio`].
    MaxGradientRatio,
    /// [`crate::VerdictRule::min_skill`].
    MinSkill,
    /// [`crate::VerdictRule::diverged_loss_ratio`].
    DivergedLossRatio,
    /// [`crate::AnalyzeParams::class_ids`].
    ClassIds,
    /// [`crate::AnalyzeParams::loss`].
    Loss,
    /// The data set of the subject (its class count must match the model's).
    Dataset,
    /// The class of a landscape ([`crate::class_landscape`]).
    Class,
    /// [`crate::LandscapeParams::range`].
    Range,
    /// [`crate::LandscapeParams::points`].
    Points,
    /// [`crate::LandscapeParams::plane_points`].
    PlanePoints,
    /// [`crate::ArchHints::arch`].
    Arch,
    /// [`crate::ArchHints::classes`].
    Classes,
}

impl Param {
    /// The setting's name in this crate's parameter structs.
    pub fn name(self) -> &'static str {
        match self {
            Param::BatchSize => "batch_size",
            Param::SamplesPerClass => "samples_per_class",
            Param::SaddleRatio => "saddle.min_ratio",
            Param::MaxGradientRatio => "verdict.max_gradient_ratio",
            Param::MinSkill => "verdict.min_skill",
            Param::DivergedLossRatio => "verdict.diverged_loss_ratio",
            Param::ClassIds => "class_ids",
            Param::Loss => "loss",
            Param::Dataset => "dataset",
            Param::Class => "class",
            Param::Range => "range",
            Param::Points => "points",
            Param::PlanePoints => "plane_points",
            Param::Arch => "arch",
            Param::Classes => "classes",
        }
    }
}

impl std::fmt::Display for Param {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything that can go wrong in a class-wise analysis.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is missing, out of range or inconsistent with the checkpoint or data.
    #[error("{param}: {reason}")]
    Invalid {
        /// The setting to fix.
        param: Param,
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
    #[error("{}", path.display())]
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
    /// The estimator settings ([`crate::AnalyzeParams::spectrum`]) are out of range: the
    /// spectral crate's [`saddlescope_spectral::Error::InvalidParam`] names the field.
    #[error("invalid estimator settings")]
    Settings(#[source] saddlescope_spectral::Error),
    /// A spectral estimator failed.
    #[error("class {class}")]
    Spectral {
        /// Which Hessian (`"3"`, `"all"`).
        class: String,
        /// The estimator's error.
        source: saddlescope_spectral::Error,
    },
    /// The loss became NaN or infinite at a point of a landscape's grid: the walk left the
    /// region where the model computes.
    #[error("the loss of class {class} is {value} at {point}; try a smaller range")]
    NonFiniteLoss {
        /// The class whose loss was evaluated.
        class: usize,
        /// The non-finite value.
        value: f64,
        /// Where on the grid, e.g. `t = -1e200 along u_max`.
        point: String,
    },
    /// A result file could not be read or written.
    #[error(transparent)]
    Results(#[from] saddlescope_results::Error),
    /// A model, loss or HVP error.
    #[error(transparent)]
    Nn(#[from] saddlescope_nn::Error),
    /// A data error (names the file or parameter).
    #[error(transparent)]
    Data(#[from] saddlescope_data::Error),
    /// A checkpoint reading error.
    #[error(transparent)]
    Train(#[from] saddlescope_train::Error),
    /// A tensor operation failed.
    #[error("tensor operation failed")]
    Candle(#[from] candle_core::Error),
}

impl Error {
    /// Whether this error is a bad setting (exit status 2 in the CLI) rather than a failure
    /// of the checkpoint, the data or the numerics.
    pub fn is_usage(&self) -> bool {
        match self {
            Error::Invalid { .. } => true,
            Error::Settings(e) => e.is_usage(),
            Error::Data(e) => e.is_usage(),
            Error::Train(e) => e.is_usage(),
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
