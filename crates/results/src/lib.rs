//! What saddlescope finds and keeps, and the files that hold it. No deep-learning dependency:
//! like ripgrep's printer, which sees only the matcher and the searcher, everything that
//! reads results (the figures, the reports) depends on this crate and `spectral` alone.
//!
//! # Tour
//! - [`AnalysisReport`] (`spectrum.json`): per class a [`ClassSpectrum`] (the spectral
//!   estimate, its [`Group`], its [`FirstOrder`] context and [`VerdictKind`] with the
//!   reason), the model's [`ModelHealth`], the settings ([`AnalysisParams`], with the
//!   [`VerdictRule`]), the checkpoint ([`CheckpointInfo`], with its [`CheckpointOrigin`]) and
//!   the [`TraceIdentity`]; [`write_report`] also writes `summary.csv` ([`summary_csv`]), and
//!   [`AnalysisDir`] names every file of an analysis directory.
//! - [`AnalysisPlan`]: the Hessians of an analysis and their costs, fixed before any is
//!   estimated; each finished Hessian is a [`HessianPart`] (`classes/*.json`), and
//!   [`AnalysisPlan::report`] assembles them, in one run or from the shards of a job array.
//! - [`Shard`] (`--shard I/N`), the balanced [`partition`] of work items and
//!   [`check_coverage`] of a set of shard outputs: reusable by any sharded command;
//!   [`merge_shards`] checks and merges the [`ShardManifest`]s (`shard.json`) and per-Hessian
//!   files of a sharded analysis.
//! - [`StudyReport`] (`study.json`): a grid of recipes × seeds ([`StudyDesign`]), each cell
//!   a [`CellSummary`], [`aggregate`]d into means with [`bootstrap_mean`] intervals, paired
//!   [`Comparison`]s and the paper's two [`Claim`]s with their [`Conclusion`]s.
//! - [`LandscapeReport`] (`landscape.json`): a class's loss along [`DirectionCurve`]s and on
//!   a [`Plane`].
//! - [`EpochRecord`] (`log.jsonl`, one per epoch) with the test [`EvalMetrics`].
//! - [`CheckpointMeta`]: what a checkpoint says about itself, in its safetensors header.
//! - [`write_atomically`]: the one writer of results, checkpoints and figures (temporary
//!   file in the same directory, `sync_all`, rename).
//!
//! Field names are the JSON keys; every file reads back into the same value and writes back
//! byte for byte.
//!
//! # Example
//! ```
//! use saddlescope_results::{read_log, write_atomically, Group};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("log.jsonl");
//! write_atomically(&path, include_str!("../tests/fixtures/log.jsonl"))?;
//! let log = read_log(&path)?;
//! let last = &log[log.len() - 1];
//! assert_eq!(last.epoch, 4);
//! assert_eq!(last.test.group_accuracy.of(Group::Head), Some(0.9));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod analysis_dir;
mod analysis_plan;
mod analysis_report;
mod atomic;
mod checkpoint_meta;
mod error;
mod group;
mod hessian_part;
mod landscape;
mod merge;
mod shard;
mod study;
mod training_log;
mod verdict;

pub use analysis_dir::AnalysisDir;
pub use analysis_plan::{AnalysisPlan, PlannedHessian};
pub use analysis_report::{
    read_report, summary_csv, write_report, AnalysisParams, AnalysisReport, CheckpointInfo,
    ClassSpectrum, SkippedClass, TraceIdentity,
};
pub use atomic::{write_atomically, write_atomically_with};
pub use checkpoint_meta::{
    CheckpointMeta, CheckpointOrigin, ForeignCheckpoint, FORMAT_VERSION, METADATA_KEY,
};
pub use error::Error;
pub use group::Group;
pub use hessian_part::{read_part, write_part, HessianPart, PartKey};
pub use landscape::{
    read_landscape, read_landscapes, write_landscape, DirectionCurve, DirectionKind,
    LandscapeReport, Plane, LANDSCAPE_FILE,
};
pub use merge::{
    merge_shards, write_manifest, write_merged, MergeError, MergedAnalysis, ShardDifference,
    ShardManifest,
};
pub use shard::{check_coverage, partition, CoverageError, Shard, ShardSpecError};
pub use study::{
    aggregate, bootstrap_mean, cell_name, claim_a, claim_b, read_study, write_study, ArmSummary,
    BootstrapParams, CellClass, CellSummary, Claim, ClassMetric, ClassMetrics, ClassRow,
    Comparison, Conclusion, Evidence, GroupMetric, GroupMetrics, GroupRow, Interval, StudyArm,
    StudyDesign, StudyError, StudyReport, MIN_VALUES_TO_CONCLUDE,
};
pub use training_log::{
    append_record, log_text, read_log, EpochRecord, EvalMetrics, GroupAccuracy,
};
pub use verdict::{
    FirstOrder, HealthStatus, ModelHealth, VerdictKind, VerdictRule, DEFAULT_DIVERGED_LOSS_RATIO,
    DEFAULT_MAX_GRADIENT_RATIO, DEFAULT_MIN_SKILL,
};
