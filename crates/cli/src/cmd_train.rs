//! `saddlescope train`: trains a long-tailed classifier with the paper's recipe (CE, LDAM,
//! VS, focal; DRW; SAM) and writes checkpoints and a per-epoch log to a run directory.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use saddlescope_results::EpochRecord;
use saddlescope_train::{
    preset, LrSchedule, Reweighting, RunOutcome, SamConfig, TrainConfig, TrainObserver, Trainer,
    PRESET_NAMES,
};

use crate::dataset_args::data_error;
use crate::device::parse_device;
use crate::usage::usage;

/// Flags of `saddlescope train`. Every recipe flag is optional: unset ones come from
/// `--preset` (default `mnist-lt-ce`).
#[derive(Debug, Args)]
#[command(
    after_help = "Checkpoints: RUN_DIR/last.safetensors after every epoch, best.safetensors \
(highest test accuracy, as the reference code selects it), epoch-NNNN.safetensors every --save-every \
epochs, resume.safetensors (weights + momentum) for --resume. SAM updates BN running statistics once \
per step, at the unperturbed weights (--sam-bn-double: also in the perturbed pass, as the reference code)."
)]
pub struct TrainArgs {
    /// Recipe to start from; any flag below overrides it [default: mnist-lt-ce]
    #[arg(long, value_name = "NAME")]
    preset: Option<String>,
    /// Data set: mnist10k (embedded), mnist:DIR, cifar10:DIR, cifar100:DIR, synthetic:...
    #[arg(long, value_name = "SPEC")]
    dataset: Option<String>,
    /// Long-tail profile: exp, step or none
    #[arg(long, value_name = "exp|step|none")]
    imbalance: Option<String>,
    /// Imbalance ratio n_max / n_min (at least 1)
    #[arg(long, value_name = "R", allow_negative_numbers = true)]
    ratio: Option<f64>,
    /// Head-class train count [default: smallest per-class count of the data set]
    #[arg(long, value_name = "N")]
    n_max: Option<usize>,
    /// Head/medium/tail groups: thirds or counts:MANY,FEW
    #[arg(long, value_name = "RULE")]
    groups: Option<String>,
    /// Architecture: mlp:W1,W2,..., mlp-tanh:..., cnn or cnn:W1,W2, resnet32, resnet32-normed
    #[arg(long, value_name = "SPEC")]
    model: Option<String>,
    /// Loss: ce, ldam[:max_m=0.5,s=30], vs[:gamma=0.3,tau=1], la[:tau=1], focal[:gamma=1]
    #[arg(long, value_name = "SPEC")]
    loss: Option<String>,
    /// Deferred re-weighting: DRW class weights from --drw-epoch on
    #[arg(long, conflicts_with = "reweight")]
    drw: bool,
    /// First epoch with DRW weights [default: 160/200 of the run, +1]
    #[arg(long, value_name = "EPOCH", requires = "drw")]
    drw_epoch: Option<usize>,
    /// Use the DRW class weights from the first epoch
    #[arg(long)]
    reweight: bool,
    /// Turn SAM on with radius RHO (0 turns a preset's SAM off)
    #[arg(long, value_name = "RHO", allow_negative_numbers = true)]
    sam: Option<f64>,
    /// First epoch that uses SAM [default: 1]
    #[arg(long, value_name = "EPOCH")]
    sam_from: Option<usize>,
    /// Step schedule of rho: e1:r1,e2:r2,... (from epoch e_i on, rho r_i)
    #[arg(long, value_name = "E:R,...")]
    sam_schedule: Option<String>,
    /// Adaptive SAM (ASAM): ascent step scaled by |w|
    #[arg(long)]
    asam: bool,
    /// Update BN running stats in SAM's perturbed pass too (the reference code's behaviour)
    #[arg(long)]
    sam_bn_double: bool,
    /// Number of epochs
    #[arg(long, value_name = "N")]
    epochs: Option<usize>,
    /// Mini-batch size
    #[arg(long, value_name = "N")]
    batch_size: Option<usize>,
    /// Base learning rate
    #[arg(long, value_name = "LR", allow_negative_numbers = true)]
    lr: Option<f64>,
    /// Learning-rate schedule: step (warm-up 5/200, x0.01 after 160/200, x1e-4 after 180/200) or cosine
    #[arg(long, value_name = "step|cosine")]
    schedule: Option<String>,
    /// L2 weight decay
    #[arg(long, value_name = "WD", allow_negative_numbers = true)]
    weight_decay: Option<f64>,
    /// SGD momentum
    #[arg(long, value_name = "M", allow_negative_numbers = true)]
    momentum: Option<f64>,
    /// Seed of everything random (initial weights, subset selection, shuffles, crops)
    #[arg(long, value_name = "S")]
    seed: Option<u64>,
    /// Also write epoch-NNNN.safetensors every N epochs (0: only last and best)
    #[arg(long, value_name = "N")]
    save_every: Option<usize>,
    /// Element type of weights: f32 or f64
    #[arg(long, value_name = "f32|f64")]
    dtype: Option<String>,
    /// Run directory to create
    #[arg(long, value_name = "RUN_DIR", required_unless_present = "resume")]
    out: Option<PathBuf>,
    /// Continue the run in RUN_DIR (its settings are read from it; only --epochs may extend it)
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = [
        "preset", "dataset", "imbalance", "ratio", "n_max", "groups", "model", "loss", "drw",
        "drw_epoch", "reweight", "sam", "sam_from", "sam_schedule", "asam", "sam_bn_double",
        "batch_size", "lr", "schedule", "weight_decay", "momentum", "seed", "save_every", "dtype", "out",
    ])]
    resume: Option<PathBuf>,
    /// cpu or cuda (needs a build with --features cuda)
    #[arg(long, value_name = "cpu|cuda", default_value = "cpu")]
    device: String,
    /// No progress bar or per-epoch lines
    #[arg(long)]
    quiet: bool,
}

fn parse<T: std::str::FromStr>(flag: &str, value: &str) -> anyhow::Result<T>
where
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|e| usage(format!("{flag} {value:?}: {e}")))
}

/// Parses `e1:r1,e2:r2`.
fn parse_sam_schedule(text: &str) -> anyhow::Result<Vec<(usize, f64)>> {
    text.split(',')
        .map(|item| {
            let (epoch, rho) = item
                .split_once(':')
                .ok_or_else(|| usage(format!("--sam-schedule {item:?}: expected EPOCH:RHO")))?;
            Ok((
                parse("--sam-schedule", epoch)?,
                parse("--sam-schedule", rho)?,
            ))
        })
        .collect()
}

impl TrainArgs {
    /// The recipe: the preset, overridden by every given flag.
    fn config(&self) -> anyhow::Result<TrainConfig> {
        let name = self.preset.as_deref().unwrap_or("mnist-lt-ce");
        let mut c = preset(name).ok_or_else(|| {
            usage(format!(
                "--preset {name:?}: unknown preset, expected one of {}",
                PRESET_NAMES.join(", ")
            ))
        })?;
        if let Some(v) = &self.dataset {
            c.dataset = v.parse().map_err(data_error)?;
        }
        if let Some(v) = &self.imbalance {
            c.imbalance = v.parse().map_err(data_error)?;
        }
        if let Some(v) = self.ratio {
            c.ratio = v;
        }
        if self.n_max.is_some() {
            c.n_max = self.n_max;
        }
        if let Some(v) = &self.groups {
            c.groups = v.parse().map_err(data_error)?;
        }
        if let Some(v) = &self.model {
            c.model = parse("--model", v)?;
        }
        if let Some(v) = &self.loss {
            c.loss = parse("--loss", v)?;
        }
        if let Some(v) = self.epochs {
            c.epochs = v;
            if let Reweighting::FromEpoch(_) = c.reweighting {
                c.reweighting = Reweighting::FromEpoch(TrainConfig::default_drw_epoch(v));
            }
        }
        if self.drw {
            c.reweighting = Reweighting::FromEpoch(
                self.drw_epoch
                    .unwrap_or(TrainConfig::default_drw_epoch(c.epochs)),
            );
        }
        if self.reweight {
            c.reweighting = Reweighting::Always;
        }
        if let Some(rho) = self.sam {
            c.sam = (rho != 0.0).then(|| SamConfig {
                rho,
                from_epoch: 1,
                schedule: Vec::new(),
                adaptive: false,
                bn_double: false,
            });
        }
        let sam_flags = self.sam_from.is_some()
            || self.sam_schedule.is_some()
            || self.asam
            || self.sam_bn_double;
        match c.sam.as_mut() {
            Some(sam) => {
                if let Some(v) = self.sam_from {
                    sam.from_epoch = v;
                }
                if let Some(v) = &self.sam_schedule {
                    sam.schedule = parse_sam_schedule(v)?;
                }
                sam.adaptive |= self.asam;
                sam.bn_double |= self.sam_bn_double;
            }
            None if sam_flags => {
                return Err(usage(
                    "--sam-from/--sam-schedule/--asam/--sam-bn-double need SAM: add --sam RHO",
                ))
            }
            None => {}
        }
        if let Some(v) = self.batch_size {
            c.batch_size = v;
        }
        if let Some(v) = self.lr {
            c.lr = v;
        }
        if let Some(v) = &self.schedule {
            c.schedule = parse::<LrSchedule>("--schedule", v)?;
        }
        if let Some(v) = self.weight_decay {
            c.weight_decay = v;
        }
        if let Some(v) = self.momentum {
            c.momentum = v;
        }
        if let Some(v) = self.seed {
            c.seed = v;
        }
        if let Some(v) = self.save_every {
            c.save_every = v;
        }
        if let Some(v) = &self.dtype {
            c.dtype = v.clone();
        }
        c.validate().map_err(train_error)?;
        Ok(c)
    }
}

/// A train-crate error as an exit-2 usage error when it names a flag.
pub fn train_error(err: saddlescope_train::Error) -> anyhow::Error {
    match err {
        saddlescope_train::Error::Invalid { .. } => usage(err.to_string()),
        saddlescope_train::Error::Data(e) => data_error(e),
        other => anyhow::Error::new(other),
    }
}

/// Draws a bar per epoch on a terminal, or prints a line per epoch elsewhere.
struct Progress {
    bar: ProgressBar,
    epochs: usize,
    quiet: bool,
}

impl Progress {
    fn new(epochs: usize, quiet: bool) -> Self {
        let bar = if quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(0)
        };
        if !quiet {
            bar.set_draw_target(ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "epoch {prefix} [{bar:30}] {pos}/{len} {msg} (ETA {eta})",
                )
                .expect("static template")
                .progress_chars("=> "),
            );
        }
        Self { bar, epochs, quiet }
    }
}

impl TrainObserver for Progress {
    fn epoch_started(&self, epoch: usize, steps: usize) {
        self.bar.set_prefix(format!("{epoch}/{}", self.epochs));
        self.bar.set_length(steps as u64);
        self.bar.set_position(0);
    }

    fn step_done(&self, _epoch: usize, step: usize, loss: f64, accuracy: f64) {
        self.bar.set_position(step as u64);
        self.bar
            .set_message(format!("loss {loss:.4} acc {accuracy:.3}"));
    }

    fn epoch_done(&self, r: &EpochRecord) {
        if self.quiet {
            return;
        }
        let g = &r.test.group_accuracy;
        let group = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
        let line = format!(
            "epoch {}/{}: lr {:.2e} train loss {:.4} | test acc {:.4} (head {}, medium {}, tail {}) | {:.1}s",
            r.epoch,
            self.epochs,
            r.lr,
            r.train_loss,
            r.test.accuracy,
            group(g.head),
            group(g.medium),
            group(g.tail),
            r.seconds
        );
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
    }
}

/// Runs `saddlescope train`.
pub fn run(args: TrainArgs) -> anyhow::Result<ExitCode> {
    let device = parse_device(&args.device)?;
    let (mut trainer, run_dir) = match &args.resume {
        Some(dir) => (
            Trainer::resume(dir, &device, args.epochs).map_err(train_error)?,
            dir.clone(),
        ),
        None => {
            let config = args.config()?;
            let dir = args
                .out
                .clone()
                .expect("clap requires --out without --resume");
            (
                Trainer::new(config, &dir, &device).map_err(train_error)?,
                dir,
            )
        }
    };
    let stop = crate::interrupt::stop_flag();
    let progress = Progress::new(trainer.config().epochs, args.quiet);
    let outcome = trainer.run(&progress, stop).map_err(train_error)?;
    progress.bar.finish_and_clear();
    match outcome {
        RunOutcome::Finished => {
            if !args.quiet {
                eprintln!(
                    "done: {} epochs in {}",
                    trainer.epochs_done(),
                    run_dir.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        RunOutcome::Interrupted { epochs_done } => {
            eprintln!(
                "interrupted: {epochs_done} epochs are complete in {0}; continue with `saddlescope train --resume {0}`",
                run_dir.display()
            );
            Ok(ExitCode::from(130))
        }
    }
}
