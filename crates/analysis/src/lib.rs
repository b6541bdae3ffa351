//! Class-wise Hessian spectra of a checkpoint over a data set: operators, saddle verdicts,
//! head/tail groups.
//!
//! - [`read_checkpoint`] / [`build_model`] open ours, plain safetensors and PyTorch `.pth`
//!   files (with or without `module.`) and build the model, naming bad tensors.
//! - [`ClassHessian`] is nn's exact HVP over a class's samples seen as a
//!   `saddlescope_spectral::LinearOperator`, so every spectral estimator runs on it.
//! - [`analyze`] estimates every class's Hessian (and the all-classes one) with shared probe
//!   vectors, gives each a [`SaddleRule`] verdict and writes `spectrum.json`
//!   ([`AnalysisReport`]) and `summary.csv`, resumably.
//! - [`class_landscape`] walks a class loss along its Hessian's extreme eigenvectors and a
//!   random direction (and on their plane) next to the quadratic model
//!   ([`LandscapeReport`], `landscape.json`): the saddle seen, not just its eigenvalue.
#![deny(missing_docs)]

mod analyze;
mod error;
mod landscape;
mod operator;
mod report;
mod setup;
mod source;
mod verdict;

#[cfg(test)]
mod tests;

pub use analyze::{
    analyze, describe, read_report, summary_csv, write_report, AnalysisDir, AnalysisObserver,
    AnalysisOutcome, AnalyzeParams, HessianLoss, Quiet, Subject,
};
pub use error::Error;
pub use landscape::{
    class_landscape, default_range, landscape, landscape_classes, read_landscape, read_landscapes,
    write_landscape, DirectionCurve, DirectionKind, LandscapeParams, LandscapeReport, LossSurface,
    Plane, DEFAULT_PLANE_POINTS, DEFAULT_POINTS, LANDSCAPE_FILE, RANDOM_DIRECTION_STREAM,
    RANGE_FRACTION, RANGE_LIMITS, RANGE_LOSS_FLOOR,
};
pub use operator::{ClassHessian, HvpSettings};
pub use report::{
    AnalysisParams, AnalysisReport, CheckpointInfo, ClassSpectrum, SkippedClass, TraceIdentity,
};
pub use source::{
    build_model, read_checkpoint, sha256_file, ArchHints, CheckpointFile, SourceFormat,
};
pub use verdict::{SaddleRule, DEFAULT_SADDLE_RATIO};
