//! `saddlescope analyze`: class-wise Hessian spectra of a checkpoint (SLQ density, extreme
//! eigenvalues with bounds, trace, negative mass) and a saddle verdict per class.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use saddlescope_analysis::{AnalyzeParams, SaddleRule, DEFAULT_SADDLE_RATIO};
use saddlescope_results::Shard;

use crate::checkpoint_args::{CheckpointArgs, SolverArgs};
use crate::error::{usage, ResultExt};
use crate::jobs::analyze::{analyze, AnalyzeJob};
use crate::values::{DeviceArg, FloatArg, HessianLossArg};

/// Flags of `saddlescope analyze`.
#[derive(Debug, Args)]
#[command(
    after_help = "A saddle: lambda_min < 0 by more than its residual bound and \
|lambda_min|/lambda_max >= --saddle-ratio. Outputs: OUT/spectrum.json (every estimate per class \
and for all classes), OUT/summary.csv, OUT/classes/*.json (per-class results, reused by --resume); \
with --landscape, OUT/landscape/class-NNNN/{landscape.json,landscape.png}. With --shard I/N: \
OUT/classes/*.json of the shard's Hessians and OUT/shard.json; `saddlescope merge` writes the \
report of all N shards."
)]
pub struct AnalyzeArgs {
    /// Output directory
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Loss whose Hessian is analysed: ce (plain cross-entropy, as the paper) or train (the
    /// checkpoint's training loss with its DRW weights / LDAM margins / VS adjustments)
    #[arg(long, value_enum, default_value_t = HessianLossArg::Ce)]
    loss: HessianLossArg,
    /// Restrict the per-class part to these classes, e.g. 0,7
    #[arg(long, value_name = "C,...", value_delimiter = ',')]
    class_ids: Option<Vec<usize>>,
    /// Skip the all-classes Hessian
    #[arg(long)]
    no_all: bool,
    #[command(flatten)]
    solver: SolverArgs,
    /// SLQ probe vectors per Hessian
    #[arg(long, value_name = "K", default_value_t = 4)]
    probes: usize,
    /// Number of top eigenvalues reported
    #[arg(long, value_name = "K", default_value_t = 5)]
    top_k: usize,
    /// |lambda_min|/lambda_max from which a certainly negative lambda_min is a saddle
    #[arg(long, value_name = "R", default_value_t = DEFAULT_SADDLE_RATIO, allow_negative_numbers = true)]
    saddle_ratio: f64,
    /// Restrict the Hessian to parameters whose names start with these prefixes (e.g. linear.)
    #[arg(long, value_name = "PREFIX,...", value_delimiter = ',')]
    param_filter: Vec<String>,
    /// Element type of the HVPs: f64 (certified bounds) or f32 (faster)
    #[arg(long, value_enum, default_value_t = FloatArg::F64)]
    dtype: FloatArg,
    /// Samples per HVP batch (memory only)
    #[arg(long, value_name = "N", default_value_t = 256)]
    batch_size: usize,
    /// Reuse the per-class results already in OUT that have the same settings
    #[arg(long)]
    resume: bool,
    /// Estimate only shard I of N (1 <= I <= N, e.g. $SLURM_ARRAY_TASK_ID/N): the Hessians
    /// (the classes and all) split into N parts of about equal sample count. Give each shard
    /// its own --out; `saddlescope merge` writes the report (see `saddlescope slurm`)
    #[arg(long, value_name = "I/N", conflicts_with = "landscape")]
    shard: Option<Shard>,
    /// Also draw the loss landscape (1-D curves along u_max, u_min and a random direction) of
    /// every class flagged as a saddle and of the head class with the largest lambda_max,
    /// into OUT/landscape/class-NNNN/
    #[arg(long)]
    landscape: bool,
    /// Worker threads [default: all cores]
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// No progress bars and no table
    #[arg(long)]
    quiet: bool,
    // Last: its foreign-checkpoint help heading covers the flags after it.
    #[command(flatten)]
    source: CheckpointArgs,
}

impl AnalyzeArgs {
    /// The analysis these flags ask for, every flag checked; reads nothing.
    ///
    /// # Errors
    /// Usage errors naming the flag.
    fn validate(&self) -> anyhow::Result<AnalyzeJob> {
        Ok(AnalyzeJob {
            params: self.params()?,
            source: self.source.validate()?,
            out: self.out.clone(),
            resume: self.resume,
            landscape: self.landscape,
            quiet: self.quiet,
        })
    }

    /// The analysis settings, checked; neither the device nor any file is opened (so that
    /// `saddlescope slurm` can check a GPU job's flags on a machine without a GPU).
    ///
    /// # Errors
    /// Usage errors naming the flag.
    pub fn params(&self) -> anyhow::Result<AnalyzeParams> {
        if self.threads == Some(0) {
            return Err(usage("--threads 0: need at least 1"));
        }
        let mut spectrum = self.solver.spectrum();
        spectrum.slq.probes = self.probes;
        spectrum.top_k = self.top_k;
        let params = AnalyzeParams {
            spectrum,
            samples_per_class: self.source.samples_per_class,
            loss: self.loss.into(),
            class_ids: self.class_ids.clone(),
            include_all: !self.no_all,
            saddle: SaddleRule {
                min_ratio: self.saddle_ratio,
            },
            param_filter: self.param_filter.clone(),
            batch_size: self.batch_size,
            dtype: self.dtype.dtype(),
            shard: self.shard,
        };
        params.validate().cli()?;
        Ok(params)
    }

    /// Whether the analysis runs on a GPU (`--device cuda`).
    pub fn uses_gpu(&self) -> bool {
        self.source.device == DeviceArg::Cuda
    }
}

/// Runs `saddlescope analyze`.
pub fn run(args: AnalyzeArgs) -> anyhow::Result<ExitCode> {
    let job = args.validate()?;
    if let Some(threads) = args.threads {
        // Only fails if a pool already exists, which cannot happen before this point.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global();
    }
    analyze(&job)
}
