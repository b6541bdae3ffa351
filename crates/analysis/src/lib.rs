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
#![deny(missing_docs)]

mod analyze;
mod error;
mod operator;
mod report;
mod source;
mod verdict;

#[cfg(test)]
mod tests;

pub use analyze::{
    analyze, describe, read_report, summary_csv, write_report, AnalysisDir, AnalysisObserver,
    AnalysisOutcome, AnalyzeParams, HessianLoss, Quiet, Subject,
};
pub use error::Error;
pub use operator::ClassHessian;
pub use report::{
    AnalysisParams, AnalysisReport, CheckpointInfo, ClassSpectrum, SkippedClass, TraceIdentity,
};
pub use source::{
    build_model, read_checkpoint, sha256_file, ArchHints, CheckpointFile, SourceFormat,
};
pub use verdict::{SaddleRule, DEFAULT_SADDLE_RATIO};
