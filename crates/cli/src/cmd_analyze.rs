//! `saddlescope analyze`: class-wise Hessian spectra of a checkpoint (SLQ density, extreme
//! eigenvalues with bounds, trace, negative mass) and a saddle verdict per class.

use std::path::PathBuf;
use std::process::ExitCode;

use candle_core::DType;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use saddlescope_analysis::{
    analyze, AnalysisObserver, AnalysisOutcome, AnalysisReport, AnalyzeParams, ClassSpectrum,
    HessianLoss, HvpSettings, SaddleRule, DEFAULT_SADDLE_RATIO,
};

use crate::checkpoint_args::{analysis_error, CheckpointArgs, SolverArgs};
use crate::cmd_landscape::analysis_landscapes;
use crate::usage::usage;

/// Flags of `saddlescope analyze`.
#[derive(Debug, Args)]
#[command(
    after_help = "A saddle: lambda_min < 0 by more than its residual bound and \
|lambda_min|/lambda_max >= --saddle-ratio. Outputs: OUT/spectrum.json (every estimate per class \
and for all classes), OUT/summary.csv, OUT/classes/*.json (per-class results, reused by --resume); \
with --landscape, OUT/landscape/class-NNNN/{landscape.json,landscape.png}."
)]
pub struct AnalyzeArgs {
    /// Output directory
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Loss whose Hessian is analysed: ce (plain cross-entropy, as the paper) or train (the
    /// checkpoint's training loss with its DRW weights / LDAM margins / VS adjustments)
    #[arg(long, value_name = "ce|train", default_value = "ce")]
    loss: String,
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
    /// Element type of the HVPs: f32 (1.7x faster; Ritz values within ~1e-6 relative of
    /// f64's, bounds widened to f32's rounding, ~1e-5 of the spectral radius) or f64
    /// (certified bounds, ~1e-13 of it). The Lanczos basis stays f64 (see --basis)
    #[arg(long, value_name = "f32|f64", default_value = "f32")]
    dtype: String,
    /// Samples per HVP batch (memory only)
    #[arg(long, value_name = "N", default_value_t = 256)]
    batch_size: usize,
    /// Memory, in MB, the HVPs of one Hessian may keep between products (its pass recorded
    /// once; beyond this, batches are recomputed per HVP: same results, slower) [default:
    /// half the available memory]
    #[arg(long, value_name = "MB")]
    hvp_memory: Option<usize>,
    /// Reuse the per-class results already in OUT that have the same settings
    #[arg(long)]
    resume: bool,
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

/// A bar per Hessian on a terminal; notices on stderr.
struct Progress {
    bar: ProgressBar,
    quiet: bool,
}

impl AnalysisObserver for Progress {
    fn hessian_started(&self, name: &str, applications: usize) {
        self.bar.set_length(applications as u64);
        self.bar.set_position(0);
        self.bar.set_prefix(format!("class {name}"));
    }
    fn applications_done(&self, done: usize) {
        self.bar.set_position(done as u64);
    }
    fn hessian_done(&self, r: &ClassSpectrum, reused: bool) {
        if !self.quiet && self.bar.is_hidden() {
            let how = if reused { " (reused)" } else { "" };
            eprintln!(
                "class {}: lambda_min {:.4e} lambda_max {:.4e}{how}",
                r.name, r.estimate.lambda_min, r.estimate.lambda_max
            );
        }
    }
    fn notice(&self, message: &str) {
        if !self.quiet {
            self.bar.suspend(|| eprintln!("note: {message}"));
        }
    }
}

/// The aligned per-class table printed at the end.
pub fn table(report: &AnalysisReport) -> String {
    let mut out = format!(
        "{:>5} {:<10} {:<6} {:>6} {:>22} {:>22} {:>9} {:>11} {:>6}\n",
        "class",
        "name",
        "group",
        "n",
        "lambda_min (bound)",
        "lambda_max (bound)",
        "min/max",
        "trace",
        "saddle"
    );
    for r in report.classes.iter().chain(&report.all) {
        let e = &r.estimate;
        out.push_str(&format!(
            "{:>5} {:<10} {:<6} {:>6} {:>11.4e} ({:>8.1e}) {:>11.4e} ({:>8.1e}) {:>9} {:>11.4e} {:>6}\n",
            r.class.map_or("all".to_string(), |c| c.to_string()),
            r.name,
            r.group.map_or("-".to_string(), |g| format!("{g:?}").to_lowercase()),
            r.samples,
            e.lambda_min,
            e.lambda_min_bound,
            e.lambda_max,
            e.lambda_max_bound,
            r.ratio_min_max.map_or("-".to_string(), |x| format!("{x:.4}")),
            e.trace,
            if r.saddle { "SADDLE" } else { "" },
        ));
    }
    if let Some(t) = &report.trace_identity {
        out.push_str(&format!(
            "trace identity: tr H_all {:.6e} vs sum_c pi_c tr H_c {:.6e} (relative residual {:.1e})\n",
            t.all, t.weighted_sum, t.relative_residual
        ));
    }
    out
}

/// Runs `saddlescope analyze`.
pub fn run(args: AnalyzeArgs) -> anyhow::Result<ExitCode> {
    if let Some(threads) = args.threads {
        if threads == 0 {
            return Err(usage("--threads 0: need at least 1"));
        }
        // Only fails if a pool already exists, which cannot happen before this point.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global();
    }
    let dtype = match args.dtype.as_str() {
        "f32" => DType::F32,
        "f64" => DType::F64,
        other => return Err(usage(format!("--dtype {other:?}: expected f32 or f64"))),
    };
    let loss = match args.loss.as_str() {
        "ce" => HessianLoss::Ce,
        "train" => HessianLoss::Train,
        other => return Err(usage(format!("--loss {other:?}: expected ce or train"))),
    };
    let mut spectrum = args.solver.spectrum()?;
    let loaded = args.source.load()?;
    let subject = loaded.subject();
    spectrum.slq.probes = args.probes;
    spectrum.top_k = args.top_k;
    let params = AnalyzeParams {
        spectrum,
        samples_per_class: args.source.samples_per_class,
        loss,
        class_ids: args.class_ids.clone(),
        include_all: !args.no_all,
        saddle: SaddleRule {
            min_ratio: args.saddle_ratio,
        },
        param_filter: args.param_filter.clone(),
        batch_size: args.batch_size,
        dtype,
        hvp: HvpSettings {
            memory_budget: args.hvp_memory.map(|mb| mb.saturating_mul(1_000_000)),
            ..HvpSettings::default()
        },
    };
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr())
    };
    bar.set_style(
        ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} HVPs (ETA {eta})")
            .expect("static template")
            .progress_chars("=> "),
    );
    let progress = Progress {
        bar,
        quiet: args.quiet,
    };
    let stop = crate::interrupt::stop_flag();
    let outcome = analyze(&subject, &params, &args.out, args.resume, &progress, stop)
        .map_err(analysis_error)?;
    progress.bar.finish_and_clear();
    match outcome {
        AnalysisOutcome::Finished(report) => {
            if !args.quiet {
                print!("{}", table(&report));
                eprintln!("wrote {}", args.out.join("spectrum.json").display());
            }
            if args.landscape {
                return analysis_landscapes(&subject, &params, &report, &args.out, args.quiet);
            }
            Ok(ExitCode::SUCCESS)
        }
        AnalysisOutcome::Interrupted { done } => {
            eprintln!(
                "interrupted: {done} Hessians are complete in {0}; continue with the same command plus --resume",
                args.out.display()
            );
            Ok(ExitCode::from(130))
        }
    }
}
