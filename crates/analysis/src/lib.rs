//! Class-wise Hessian spectra of a checkpoint over a data set: operators, saddle verdicts,
//! head/tail groups.
//!
//! - [`read_checkpoint`] / [`build_model`] open ours, plain safetensors and PyTorch `.pth`
//!   files (with or without `module.`) and build the model, naming bad tensors.
//! - [`ClassHessian`] is nn's exact HVP over a class's samples seen as a
//!   `saddlescope_spectral::LinearOperator`, so every spectral estimator runs on it.
//! - [`analyze`] estimates every class's Hessian (and the all-classes one) with shared probe
//!   vectors, measures the model's health on its training split and each class's
//!   first-order context (loss, gradient, slope along u_min), gives each a [`judge`]
//!   verdict (saddle, minimum-like, not stationary or undetermined, [`SaddleRule`] and
//!   [`VerdictRule`]) and writes `spectrum.json` (`saddlescope_results::AnalysisReport`)
//!   and `summary.csv`, resumably.
//! - [`class_landscape`] walks a class loss along its Hessian's extreme eigenvectors and a
//!   random direction (and on their plane) next to the quadratic model
//!   (`saddlescope_results::LandscapeReport`, `landscape.json`): the saddle seen, not just
//!   its eigenvalue.
//!
//! The results and their files are defined in `saddlescope-results`, which the figures and
//! reports read without this crate's candle dependency.
#![deny(missing_docs)]

mod analyze;
mod error;
mod first_order;
mod fit;
mod health;
mod landscape;
mod operator;
mod plan;
mod setup;
mod source;
mod verdict;

#[cfg(test)]
mod shard_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod verdict_tests;

pub use analyze::{
    analyze, describe, AnalysisObserver, AnalysisOutcome, AnalyzeParams, HessianLoss, Quiet,
    Subject,
};
pub use error::{Error, Param};
pub use landscape::{
    class_landscape, default_range, landscape, landscape_classes, LandscapeParams, LossSurface,
    DEFAULT_PLANE_POINTS, DEFAULT_POINTS, RANDOM_DIRECTION_STREAM, RANGE_FRACTION, RANGE_LIMITS,
    RANGE_LOSS_FLOOR,
};
pub use operator::{ClassHessian, HvpSettings};
pub use saddlescope_results::{
    VerdictKind, VerdictRule, DEFAULT_DIVERGED_LOSS_RATIO, DEFAULT_MAX_GRADIENT_RATIO,
    DEFAULT_MIN_SKILL,
};
pub use source::{
    build_model, read_checkpoint, sha256_file, ArchHints, CheckpointFile, SourceFormat,
};
pub use verdict::{check_verdict_rule, judge, SaddleRule, DEFAULT_SADDLE_RATIO};
