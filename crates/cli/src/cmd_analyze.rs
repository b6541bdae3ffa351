//! `saddlescope analyze`: class-wise Hessian spectra of a checkpoint (SLQ density, extreme
//! eigenvalues with bounds, trace, negative mass) and a saddle verdict per class.

use std::path::PathBuf;
use std::process::ExitCode;

use candle_core::DType;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use saddlescope_analysis::{
    analyze, build_model, read_checkpoint, AnalysisObserver, AnalysisOutcome, AnalysisReport,
    AnalyzeParams, ArchHints, CheckpointInfo, ClassSpectrum, HessianLoss, SaddleRule, Subject,
    DEFAULT_SADDLE_RATIO,
};
use saddlescope_data::{Dataset, DatasetSpec, GroupRule, Imbalance, LongTailConfig, LongTailed};
use saddlescope_nn::{drw_weights, DRW_BETA};
use saddlescope_spectral::SpectrumParams;

use crate::dataset_args::data_error;
use crate::device::parse_device;
use crate::usage::usage;

/// Flags of `saddlescope analyze`.
#[derive(Debug, Args)]
#[command(
    after_help = "A saddle: lambda_min < 0 by more than its residual bound and \
|lambda_min|/lambda_max >= --saddle-ratio. Outputs: OUT/spectrum.json (every estimate per class \
and for all classes), OUT/summary.csv, OUT/classes/*.json (per-class results, reused by --resume)."
)]
pub struct AnalyzeArgs {
    /// Checkpoint: a saddlescope .safetensors, a safetensors file with PyTorch names, or a
    /// PyTorch .pth/.pth.tar (zip format; state_dict or {"state_dict": ...}; `module.` stripped)
    #[arg(value_name = "CHECKPOINT")]
    checkpoint: PathBuf,
    /// Output directory
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Data set [default: the checkpoint's; required for foreign checkpoints]
    #[arg(long, value_name = "SPEC")]
    dataset: Option<String>,
    /// Architecture of a foreign checkpoint: resnet32, resnet32-normed, mlp:..., cnn
    #[arg(long, value_name = "SPEC")]
    arch: Option<String>,
    /// Class count of a foreign checkpoint [default: from its classifier]
    #[arg(long, value_name = "C")]
    classes: Option<usize>,
    /// Long-tail profile of a foreign checkpoint's training set (exp, step, none)
    #[arg(long, value_name = "exp|step|none", default_value = "exp")]
    imbalance: String,
    /// Imbalance ratio of a foreign checkpoint's training set
    #[arg(
        long,
        value_name = "R",
        default_value_t = 100.0,
        allow_negative_numbers = true
    )]
    ratio: f64,
    /// Seed of the long-tailed subset selection of a foreign checkpoint
    #[arg(long, value_name = "S", default_value_t = 0)]
    data_seed: u64,
    /// Which samples: train (the long-tailed subset the model was trained on) or test
    #[arg(long, value_name = "train|test", default_value = "train")]
    split: String,
    /// Only the first N samples of each class (in data-set order) [default: all]
    #[arg(long, value_name = "N")]
    samples_per_class: Option<usize>,
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
    /// Lanczos steps per probe (m)
    #[arg(long, value_name = "M", default_value_t = 100)]
    lanczos_steps: usize,
    /// SLQ probe vectors per Hessian
    #[arg(long, value_name = "K", default_value_t = 4)]
    probes: usize,
    /// Seed of the probe vectors (the same probes for every class)
    #[arg(long, value_name = "S", default_value_t = 0)]
    seed: u64,
    /// Number of top eigenvalues reported
    #[arg(long, value_name = "K", default_value_t = 5)]
    top_k: usize,
    /// Relative tolerance of the extreme eigenvalues (residual bound <= tol * |lambda|)
    #[arg(
        long,
        value_name = "T",
        default_value_t = 1e-6,
        allow_negative_numbers = true
    )]
    tol: f64,
    /// HVP budget of the extreme-eigenvalue solver per Hessian
    #[arg(long, value_name = "N", default_value_t = 500)]
    max_applications: usize,
    /// |lambda_min|/lambda_max from which a certainly negative lambda_min is a saddle
    #[arg(long, value_name = "R", default_value_t = DEFAULT_SADDLE_RATIO, allow_negative_numbers = true)]
    saddle_ratio: f64,
    /// Restrict the Hessian to parameters whose names start with these prefixes (e.g. linear.)
    #[arg(long, value_name = "PREFIX,...", value_delimiter = ',')]
    param_filter: Vec<String>,
    /// Element type of the HVPs: f64 (certified bounds) or f32 (faster)
    #[arg(long, value_name = "f32|f64", default_value = "f64")]
    dtype: String,
    /// Samples per HVP batch (memory only)
    #[arg(long, value_name = "N", default_value_t = 256)]
    batch_size: usize,
    /// Reuse the per-class results already in OUT that have the same settings
    #[arg(long)]
    resume: bool,
    /// Worker threads [default: all cores]
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// cpu or cuda
    #[arg(long, value_name = "cpu|cuda", default_value = "cpu")]
    device: String,
    /// No progress bars and no table
    #[arg(long)]
    quiet: bool,
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

fn analysis_error(err: saddlescope_analysis::Error) -> anyhow::Error {
    match err {
        saddlescope_analysis::Error::Usage { .. } => usage(err.to_string()),
        saddlescope_analysis::Error::Data(e) => data_error(e),
        other => anyhow::Error::new(other),
    }
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
    let device = parse_device(&args.device)?;
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
    if !matches!(args.split.as_str(), "train" | "test") {
        return Err(usage(format!(
            "--split {:?}: expected train or test",
            args.split
        )));
    }
    if args.samples_per_class == Some(0) {
        return Err(usage("--samples-per-class 0: need at least 1"));
    }
    let hints = ArchHints {
        arch: args
            .arch
            .as_deref()
            .map(|a| a.parse().map_err(|e| usage(format!("--arch {a:?}: {e}"))))
            .transpose()?,
        classes: args.classes,
    };
    let file = read_checkpoint(&args.checkpoint).map_err(analysis_error)?;
    let meta = file.meta.clone();
    let spec_override: Option<DatasetSpec> = args
        .dataset
        .as_deref()
        .map(|s| s.parse().map_err(data_error))
        .transpose()?;
    // The long-tailed setting: ours from the metadata, a foreign one from the flags.
    let long_tailed = match (&meta, spec_override) {
        (Some(meta), spec) => {
            let mut lt = meta.data.clone();
            if let Some(spec) = spec {
                lt.dataset = spec;
            }
            lt
        }
        (None, Some(spec)) => {
            let full = Dataset::load(&spec).map_err(data_error)?;
            let config = LongTailConfig {
                imbalance: args.imbalance.parse::<Imbalance>().map_err(data_error)?,
                ratio: args.ratio,
                n_max: None,
                seed: args.data_seed,
                groups: GroupRule::default(),
            };
            LongTailed::new(&full, &config).map_err(data_error)?
        }
        (None, None) => {
            return Err(usage(format!(
                "--dataset: {} has no saddlescope metadata, say which data it was trained on (e.g. --dataset cifar10:DIR)",
                args.checkpoint.display()
            )))
        }
    };
    let data = long_tailed.load().map_err(data_error)?;
    let shape = data.shape();
    let input = [shape.channels, shape.height, shape.width];
    let sha256 = file.sha256.clone();
    let model = build_model(&args.checkpoint, file, &hints, input, DType::F32, &device)
        .map_err(analysis_error)?;
    if model.classes() != data.classes() {
        return Err(usage(format!(
            "--dataset: {} has {} classes but {} has {}",
            long_tailed.dataset,
            data.classes(),
            args.checkpoint.display(),
            model.classes()
        )));
    }
    let training_loss = match &meta {
        Some(meta) => {
            let counts = &long_tailed.train_counts;
            let weights = if meta.config.reweight_at(meta.epoch) {
                Some(drw_weights(counts, DRW_BETA)?)
            } else {
                None
            };
            Some(meta.config.loss.build(counts, weights.as_deref())?)
        }
        None => None,
    };
    let metadata = match &meta {
        Some(meta) => serde_json::to_value(meta)?,
        None => {
            serde_json::json!({ "arch": args.arch, "classes": model.classes(), "format": "foreign" })
        }
    };
    let split = if args.split == "train" {
        data.train()
    } else {
        data.test()
    };
    let subject = Subject {
        model: &model,
        split,
        split_name: args.split.clone(),
        train_counts: &long_tailed.train_counts,
        groups: &long_tailed.groups,
        class_names: data.class_names(),
        training_loss,
        checkpoint: CheckpointInfo {
            path: args.checkpoint.display().to_string(),
            sha256,
            metadata,
        },
        dataset: long_tailed.dataset.to_string(),
    };
    let mut spectrum = SpectrumParams::default();
    spectrum.slq.steps = args.lanczos_steps;
    spectrum.slq.probes = args.probes;
    spectrum.slq.seed = args.seed;
    spectrum.top_k = args.top_k;
    spectrum.tol = args.tol;
    spectrum.max_applications = args.max_applications;
    let params = AnalyzeParams {
        spectrum,
        samples_per_class: args.samples_per_class,
        loss,
        class_ids: args.class_ids.clone(),
        include_all: !args.no_all,
        saddle: SaddleRule {
            min_ratio: args.saddle_ratio,
        },
        param_filter: args.param_filter.clone(),
        batch_size: args.batch_size,
        dtype,
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
