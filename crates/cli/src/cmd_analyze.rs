//! `saddlescope analyze`: class-wise Hessian spectra of a checkpoint (SLQ density, extreme
//! eigenvalues with bounds, trace, negative mass), each class's first-order context and a
//! verdict per class (saddle, minimum-like, not stationary, undetermined).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser};
use saddlescope_analysis::{
    AnalyzeParams, HvpSettings, SaddleRule, VerdictRule, DEFAULT_DIVERGED_LOSS_RATIO,
    DEFAULT_MAX_GRADIENT_RATIO, DEFAULT_MIN_SKILL, DEFAULT_SADDLE_RATIO,
};
use saddlescope_results::Shard;

use crate::checkpoint_args::{CheckpointArgs, SolverArgs};
use crate::error::{usage, ResultExt};
use crate::jobs::analyze::{analyze, AnalyzeJob};
use crate::values::{DeviceArg, FloatArg, HessianLossArg};

/// Flags of `saddlescope analyze`.
#[derive(Debug, Args)]
#[command(
    after_help = "Verdicts: undetermined when the model is untrained or diverged on its training \
split (--min-skill, --diverged-loss-ratio); minimum-like without significant negative curvature \
(lambda_min < 0 by more than its residual bound and |lambda_min|/lambda_max >= --saddle-ratio); \
else a saddle when, at the landscape's radius r along u_min, the curvature term \
|lambda_min|*r^2/2 outweighs both what the gradient lowers the quadratic model by and the slope \
term |g.u_min|*r (--max-gradient-ratio), not stationary when it does not. Outputs: OUT/spectrum.json (every estimate per class \
and for all classes), OUT/summary.csv, OUT/classes/*.json (per-class results); \
with --landscape, OUT/landscape/class-NNNN/{landscape.json,landscape.png}. The same command again reuses \
the Hessians already done (an interrupted analysis continues); other settings in the same OUT are \
refused unless --force. One process at a time writes a directory (OUT/.saddlescope.lock). \
With --shard I/N: OUT/classes/*.json of the shard's Hessians and OUT/shard.json; `saddlescope merge` \
writes the report of all N shards."
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
    /// Largest ratio of the first-order effects (the gradient step's decrease of the quadratic
    /// model and the slope term |g.u_min|*r) to the curvature term |lambda_min|*r^2/2, at the
    /// landscape's radius r along u_min, at which negative curvature still makes a saddle;
    /// above it the class is not stationary
    #[arg(long, value_name = "K", default_value_t = DEFAULT_MAX_GRADIENT_RATIO, allow_negative_numbers = true)]
    max_gradient_ratio: f64,
    /// Least skill over a predictor that learnt nothing, in balanced train accuracy
    /// ((a - 1/C)/(1 - 1/C)) and loss (1 - L/ln C), for the model to count as trained; an
    /// untrained model's verdicts are undetermined
    #[arg(long, value_name = "S", default_value_t = DEFAULT_MIN_SKILL, allow_negative_numbers = true)]
    min_skill: f64,
    /// Balanced train loss, in multiples of ln C (a uniform predictor's), above which the model
    /// counts as diverged and its verdicts are undetermined
    #[arg(long, value_name = "R", default_value_t = DEFAULT_DIVERGED_LOSS_RATIO, allow_negative_numbers = true)]
    diverged_loss_ratio: f64,
    /// Restrict the Hessian to parameters whose names start with these prefixes (e.g. linear.)
    #[arg(long, value_name = "PREFIX,...", value_delimiter = ',')]
    param_filter: Vec<String>,
    /// Element type of the HVPs: f32 (1.7x faster; Ritz values within ~1e-6 relative of
    /// f64's, bounds widened to f32's rounding, ~1e-5 of the spectral radius) or f64
    /// (certified bounds, ~1e-13 of it). The Lanczos basis stays f64 (see --basis)
    #[arg(long, value_enum, default_value_t = FloatArg::F32)]
    dtype: FloatArg,
    /// Samples per HVP batch (memory only)
    #[arg(long, value_name = "N", default_value_t = 256)]
    batch_size: usize,
    /// Memory, in MB, the HVPs of one Hessian may keep between products (its pass recorded
    /// once; beyond this, batches are recomputed per HVP: same results, slower) [default:
    /// half the available memory, the least of the system's and what this process's cgroup,
    /// e.g. a Slurm job's --mem, leaves]
    #[arg(long, value_name = "MB")]
    hvp_memory: Option<usize>,
    /// Accepted for scripts written before an analysis resumed by itself: the same command
    /// again always reuses the Hessians already done
    #[arg(long = "resume", hide = true)]
    _resume: bool,
    /// Replace an analysis of other settings in OUT (its results are removed), and take over
    /// a lock another host left on the directory
    #[arg(long)]
    force: bool,
    /// Estimate only shard I of N (1 <= I <= N, e.g. $SLURM_ARRAY_TASK_ID/N): the Hessians
    /// (the classes and all) split into N parts of about equal sample count. Give each shard
    /// its own --out; `saddlescope merge` writes the report (see `saddlescope slurm`)
    #[arg(long, value_name = "I/N", conflicts_with = "landscape")]
    shard: Option<Shard>,
    /// Also draw the loss landscape (1-D curves along u_max, u_min and a random direction) of
    /// every class with significant negative curvature (saddle or not stationary) and of the
    /// head class with the largest lambda_max, into OUT/landscape/class-NNNN/
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
            landscape: self.landscape,
            quiet: self.quiet,
            label: None,
            force: self.force,
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
            verdict: VerdictRule {
                max_gradient_ratio: self.max_gradient_ratio,
                min_skill: self.min_skill,
                diverged_loss_ratio: self.diverged_loss_ratio,
            },
            param_filter: self.param_filter.clone(),
            batch_size: self.batch_size,
            dtype: self.dtype.dtype(),
            hvp: HvpSettings {
                memory_budget: self.hvp_memory.map(|mb| mb.saturating_mul(1_000_000)),
                ..HvpSettings::default()
            },
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

/// The analyze arguments as a command line of their own (what `slurm analyze` and a study's
/// `--analyze-args` hold).
#[derive(Debug, Parser)]
#[command(name = "analyze", no_binary_name = true)]
pub struct AnalyzeCommandLine {
    /// The flags.
    #[command(flatten)]
    pub args: AnalyzeArgs,
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
