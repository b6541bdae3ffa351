//! `saddlescope train`: trains a long-tailed classifier with the paper's recipe (CE, LDAM,
//! VS, focal; DRW; SAM) and writes checkpoints and a per-epoch log to a run directory.

use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;

use clap::builder::PossibleValuesParser;
use clap::{Args, Parser};
use saddlescope_data::{DatasetSpec, GroupRule};
use saddlescope_nn::{LossSpec, ModelSpec};
use saddlescope_train::{preset, LrSchedule, Reweighting, SamConfig, TrainConfig, PRESET_NAMES};

use crate::error::{usage, ResultExt};
use crate::jobs::train::{set_epochs, train, TrainJob, TrainStart};
use crate::values::{DeviceArg, FloatArg, ImbalanceArg};

/// Flags of `saddlescope train`.
#[derive(Debug, Args)]
#[command(
    after_help = "Checkpoints: RUN_DIR/last.safetensors after every epoch, best.safetensors \
(highest test accuracy, as the reference code selects it), epoch-NNNN.safetensors every --save-every \
epochs, resume.safetensors (weights + momentum) for --resume. SAM updates BN running statistics once \
per step, at the unperturbed weights (--sam-bn-double: also in the perturbed pass, as the reference code). \
The same command again continues the run where it stopped; other settings in the same --out are \
refused unless --force. One process at a time writes a directory (RUN_DIR/.saddlescope.lock)."
)]
pub struct TrainArgs {
    // The recipe: every flag of it is optional, unset ones come from --preset.
    #[command(flatten)]
    recipe: RecipeArgs,
    /// Number of epochs (with --resume: extends the run)
    #[arg(long, value_name = "N")]
    epochs: Option<usize>,
    /// Run directory: created, or continued when it holds a run of the same settings
    #[arg(long, value_name = "RUN_DIR", required_unless_present = "resume")]
    out: Option<PathBuf>,
    /// Continue the run in RUN_DIR (its settings are read from it; --epochs may change its
    /// length, never its learning-rate schedule or DRW start)
    #[arg(long, value_name = "RUN_DIR", conflicts_with = "out")]
    resume: Option<PathBuf>,
    /// Replace a run of other settings in --out (its checkpoints and log are removed), and
    /// take over a lock another host left on the directory
    #[arg(long)]
    force: bool,
    /// Where tensors live (cuda needs a build with --features cuda)
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    device: DeviceArg,
    /// No progress bar or per-epoch lines
    #[arg(long)]
    quiet: bool,
}

/// The recipe flags: a preset and overrides of its settings. `--resume` conflicts with all
/// of them (a resumed run keeps its recipe).
#[derive(Debug, Args)]
#[group(id = "recipe", multiple = true, conflicts_with = "resume")]
struct RecipeArgs {
    /// Recipe to start from; any flag below overrides it [default: mnist-lt-ce]
    #[arg(long, value_name = "NAME", value_parser = PossibleValuesParser::new(PRESET_NAMES))]
    preset: Option<String>,
    /// Data set: mnist10k (embedded), mnist:DIR, cifar10:DIR, cifar100:DIR, synthetic:...
    #[arg(long, value_name = "SPEC")]
    dataset: Option<DatasetSpec>,
    /// Long-tail profile
    #[arg(long, value_enum)]
    imbalance: Option<ImbalanceArg>,
    /// Imbalance ratio n_max / n_min (at least 1)
    #[arg(long, value_name = "R", allow_negative_numbers = true)]
    ratio: Option<f64>,
    /// Head-class train count [default: smallest per-class count of the data set]
    #[arg(long, value_name = "N")]
    n_max: Option<usize>,
    /// Head/medium/tail groups: thirds or counts:MANY,FEW
    #[arg(long, value_name = "RULE")]
    groups: Option<GroupRule>,
    /// Architecture: mlp:W1,W2,..., mlp-tanh:..., cnn or cnn:W1,W2, resnet32, resnet32-normed
    #[arg(long, value_name = "SPEC")]
    model: Option<ModelSpec>,
    /// Loss: ce, ldam[:max_m=0.5,s=30], vs[:gamma=0.3,tau=1], la[:tau=1], focal[:gamma=1]
    #[arg(long, value_name = "SPEC")]
    loss: Option<LossSpec>,
    /// Deferred re-weighting: DRW class weights from --drw-epoch on
    #[arg(long, conflicts_with = "reweight")]
    drw: bool,
    /// First epoch with DRW weights, with --drw or a -drw preset [default: 160/200 of the
    /// run, +1, at most its last epoch]
    #[arg(long, value_name = "EPOCH")]
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
    sam_schedule: Option<SamSchedule>,
    /// Adaptive SAM (ASAM): ascent step scaled by |w|
    #[arg(long)]
    asam: bool,
    /// Update BN running stats in SAM's perturbed pass too (the reference code's behaviour)
    #[arg(long)]
    sam_bn_double: bool,
    /// Mini-batch size
    #[arg(long, value_name = "N")]
    batch_size: Option<usize>,
    /// Base learning rate
    #[arg(long, value_name = "LR", allow_negative_numbers = true)]
    lr: Option<f64>,
    /// Learning-rate schedule: step (warm-up 5/200, x0.01 after 160/200, x1e-4 after 180/200) or cosine
    #[arg(long, value_name = "step|cosine")]
    schedule: Option<LrSchedule>,
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
    /// Element type of weights
    #[arg(long, value_enum)]
    dtype: Option<FloatArg>,
}

/// `--sam-schedule e1:r1,e2:r2`.
#[derive(Debug, Clone)]
struct SamSchedule(Vec<(usize, f64)>);

impl FromStr for SamSchedule {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.split(',')
            .map(|item| {
                let bad = || format!("{item:?}: expected EPOCH:RHO");
                let (epoch, rho) = item.split_once(':').ok_or_else(bad)?;
                Ok((
                    epoch.parse().map_err(|_| bad())?,
                    rho.parse().map_err(|_| bad())?,
                ))
            })
            .collect::<Result<_, _>>()
            .map(SamSchedule)
    }
}

impl RecipeArgs {
    /// The recipe: the preset, overridden by every given flag, with `epochs` from
    /// `--epochs`; validated.
    fn config(&self, epochs: Option<usize>) -> anyhow::Result<TrainConfig> {
        let name = self.preset.as_deref().unwrap_or("mnist-lt-ce");
        let mut c = preset(name).ok_or_else(|| {
            usage(format!(
                "--preset {name:?}: unknown preset, expected one of {}",
                PRESET_NAMES.join(", ")
            ))
        })?;
        if let Some(v) = &self.dataset {
            c.dataset = v.clone();
        }
        if let Some(v) = self.imbalance {
            c.imbalance = v.into();
        }
        if let Some(v) = self.ratio {
            c.ratio = v;
        }
        if self.n_max.is_some() {
            c.n_max = self.n_max;
        }
        if let Some(v) = self.groups {
            c.groups = v;
        }
        if let Some(v) = &self.model {
            c.model = v.clone();
        }
        if let Some(v) = &self.loss {
            c.loss = v.clone();
        }
        if let Some(v) = epochs {
            set_epochs(&mut c, v);
        }
        if self.drw {
            c.reweighting = Reweighting::FromEpoch(TrainConfig::default_drw_epoch(c.epochs));
        }
        if self.reweight {
            c.reweighting = Reweighting::Always;
        }
        if let Some(start) = self.drw_epoch {
            c.reweighting = match c.reweighting {
                Reweighting::FromEpoch(_) => Reweighting::FromEpoch(start),
                Reweighting::Always => {
                    return Err(usage(
                        "--drw-epoch: --reweight uses the class weights from the first epoch; drop one of the two",
                    ))
                }
                Reweighting::Off => {
                    return Err(usage(format!(
                        "--drw-epoch needs DRW: add --drw (preset {name} does not use it)"
                    )))
                }
            };
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
                    sam.schedule = v.0.clone();
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
        if let Some(v) = self.schedule {
            c.schedule = v;
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
        if let Some(v) = self.dtype {
            c.dtype = v.as_str().to_string();
        }
        c.validate().cli()?;
        Ok(c)
    }
}

impl TrainArgs {
    /// The run these flags ask for, every flag checked; reads nothing.
    ///
    /// # Errors
    /// Usage errors naming the flag.
    fn validate(&self) -> anyhow::Result<TrainJob> {
        let device = self.device.open()?;
        let start = match (&self.resume, &self.out) {
            (Some(dir), _) => TrainStart::Resume {
                dir: dir.clone(),
                epochs: self.epochs,
            },
            (None, Some(out)) => TrainStart::Fresh {
                config: Box::new(self.recipe.config(self.epochs)?),
                out: out.clone(),
            },
            (None, None) => return Err(usage("--out: required without --resume")),
        };
        Ok(TrainJob {
            start,
            device,
            quiet: self.quiet,
            force: self.force,
        })
    }
}

/// The `train` flags as a command line of their own: what a study's `--arm` holds.
#[derive(Debug, Parser)]
#[command(name = "train", no_binary_name = true)]
pub struct TrainCommandLine {
    /// The flags.
    #[command(flatten)]
    pub args: TrainArgs,
}

impl TrainArgs {
    /// The recipe these flags ask for, for a run placed by a study: `model` and `epochs`
    /// apply where the flags set none. Reads nothing.
    ///
    /// # Errors
    /// Usage errors naming the flag.
    pub fn study_recipe(
        &self,
        model: &ModelSpec,
        epochs: Option<usize>,
    ) -> anyhow::Result<TrainConfig> {
        let mut config = self.recipe.config(self.epochs.or(epochs))?;
        if self.recipe.model.is_none() {
            config.model = model.clone();
            config.validate().cli()?;
        }
        Ok(config)
    }
}

/// Runs `saddlescope train`.
pub fn run(args: TrainArgs) -> anyhow::Result<ExitCode> {
    train(&args.validate()?)
}
