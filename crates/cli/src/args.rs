//! The top-level command line: global flags and the list of subcommands. Each subcommand's
//! own flags live beside its implementation (`cmd_*.rs`).

use clap::{Parser, Subcommand};

/// Class-wise Hessian spectra of neural networks trained on long-tailed data.
#[derive(Debug, Parser)]
#[command(name = "saddlescope", version, about, propagate_version = true)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Every `saddlescope` subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inspect long-tailed profiles and data sets (per-class counts, groups)
    Data(crate::cmd_data::DataArgs),
    /// Train a long-tailed classifier (CE, LDAM, VS, focal; DRW; SAM) and write checkpoints
    Train(crate::cmd_train::TrainArgs),
    /// Class-wise Hessian spectra of a checkpoint, with a saddle verdict per class
    Analyze(crate::cmd_analyze::AnalyzeArgs),
    /// Redraw the figures of an analysis (densities, grid, head vs tail, eigenvalue bars)
    Plot(crate::cmd_plot::PlotArgs),
    /// Compare two analyses class by class (figures, deltas table, report)
    Compare(crate::cmd_compare::CompareArgs),
    /// Write a Markdown and HTML report of runs and analyses
    Report(crate::cmd_report::ReportArgs),
    /// Train CE+DRW and CE+DRW+SAM on the embedded MNIST-LT, analyze both, write the report
    Demo(crate::cmd_demo::DemoArgs),
    /// The paper's experiment over recipes x seeds: train and analyze every cell, aggregate with bootstrap intervals, judge its claims
    Study(crate::cmd_study::StudyArgs),
    /// SLQ density, extreme eigenvalues and trace of a dense symmetric matrix (.npy), as JSON
    Spectrum(crate::cmd_spectrum::SpectrumArgs),
    /// Time and peak memory of a forward pass, a gradient and an HVP (bench slq: SLQ bookkeeping share)
    Bench(crate::cmd_bench::BenchArgs),
    /// Merge the shards of a sharded analysis or study (--shard I/N) into its results
    Merge(crate::cmd_merge::MergeArgs),
    /// Write Slurm scripts: a job array of shards and the merge as a dependent job
    Slurm(crate::cmd_slurm::SlurmArgs),
    /// Loss of one class along its Hessian's extreme eigenvectors (and their plane), with the quadratic model
    Landscape(crate::cmd_landscape::LandscapeArgs),
}
