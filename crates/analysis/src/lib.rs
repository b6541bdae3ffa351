//! Class-wise Hessian spectra of a checkpoint over a data set: operators, saddle verdicts,
//! head/tail groups.
#![deny(missing_docs)]

mod report;

pub use report::{
    AnalysisParams, AnalysisReport, CheckpointInfo, ClassSpectrum, SkippedClass, TraceIdentity,
};
