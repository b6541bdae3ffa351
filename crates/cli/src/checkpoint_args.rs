//! The flags shared by the commands that take a checkpoint apart class by class (`analyze`,
//! `landscape`): which checkpoint, which data and samples ([`CheckpointArgs`], validated into
//! a [`CheckpointSource`] before anything is read), and the extreme-eigenvalue solver's
//! settings ([`SolverArgs`]); and loading a source into a model and its long-tailed data
//! ([`Loaded`], whose [`Loaded::subject`] is what the analysis crate takes).

use std::path::PathBuf;

use candle_core::{DType, Device};
use clap::Args;
use saddlescope_analysis::{build_model, read_checkpoint, ArchHints, Subject};
use saddlescope_data::{Dataset, DatasetSpec, GroupRule, Imbalance, LongTailConfig, LongTailed};
use saddlescope_nn::{drw_weights, Loss, Model, ModelSpec, DRW_BETA};
use saddlescope_results::{CheckpointInfo, CheckpointOrigin, ForeignCheckpoint};
use saddlescope_spectral::SpectrumParams;

use crate::dataset_args::with_dataset_hint;
use crate::error::{usage, ResultExt};
use crate::values::{BasisArg, DeviceArg, ImbalanceArg, Spelled, SplitArg};

/// A checkpoint, the data it was trained on, and which of its samples define the class
/// losses.
#[derive(Debug, Args)]
pub struct CheckpointArgs {
    /// Checkpoint: a saddlescope .safetensors, a safetensors file with PyTorch names, or a
    /// PyTorch .pth/.pth.tar (zip format; state_dict or {"state_dict": ...}; `module.` stripped)
    #[arg(value_name = "CHECKPOINT")]
    pub checkpoint: PathBuf,
    /// Data set [default: the checkpoint's; required for foreign checkpoints]
    #[arg(long, value_name = "SPEC")]
    pub dataset: Option<DatasetSpec>,
    /// Which samples: train (the long-tailed subset the model was trained on) or test
    /// [default: train for saddlescope checkpoints; foreign ones need the choice]
    #[arg(long, value_enum)]
    pub split: Option<SplitArg>,
    /// Only the first N samples of each class (in data-set order) [default: all]
    #[arg(long, value_name = "N")]
    pub samples_per_class: Option<usize>,
    /// Where tensors live (cuda needs a build with --features cuda)
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    pub device: DeviceArg,
    /// Architecture of a foreign checkpoint: resnet32, resnet32-normed, mlp:..., cnn
    #[arg(long, value_name = "SPEC", help_heading = FOREIGN)]
    pub arch: Option<Spelled<ModelSpec>>,
    /// Class count of a foreign checkpoint [default: from its classifier]
    #[arg(long, value_name = "C", help_heading = FOREIGN)]
    pub classes: Option<usize>,
    /// Seed of the long-tailed subset selection of a foreign checkpoint
    #[arg(long, value_name = "S", default_value_t = 0, help_heading = FOREIGN)]
    pub data_seed: u64,
    #[command(flatten, next_help_heading = FOREIGN)]
    pub profile: ForeignProfileArgs,
}

/// The long-tail profile of a foreign checkpoint's training data: what `--split train`
/// rebuilds, and what defines its train counts and groups.
#[derive(Debug, Args)]
pub struct ForeignProfileArgs {
    /// Long-tail profile of its training data: exp, step or none [default: exp with --split
    /// train; with --split test and no --ratio, none: classes grouped by index]
    #[arg(long, value_enum)]
    pub imbalance: Option<ImbalanceArg>,
    /// Imbalance ratio n_max / n_min of its training data, at least 1 [default: 100]
    #[arg(long, value_name = "R", allow_negative_numbers = true)]
    pub ratio: Option<f64>,
}

/// Help heading of the flags that only a foreign checkpoint needs: ours record their data.
const FOREIGN: &str = "Foreign checkpoints (ours record their training data)";

/// The extreme-eigenvalue solver's flags.
#[derive(Debug, Args)]
pub struct SolverArgs {
    /// Lanczos steps per probe (m), also the extreme solver's basis size
    #[arg(long, value_name = "M", default_value_t = 100)]
    pub lanczos_steps: usize,
    /// Seed of the probe vectors (the same probes for every class) and of the landscapes'
    /// random direction
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// Relative tolerance of the extreme eigenvalues (residual bound <= tol * |lambda|)
    #[arg(
        long,
        value_name = "T",
        default_value_t = 1e-6,
        allow_negative_numbers = true
    )]
    pub tol: f64,
    /// HVP budget of the extreme-eigenvalue solver per Hessian
    #[arg(long, value_name = "N", default_value_t = 500)]
    pub max_applications: usize,
    /// Storage of the Lanczos basis vectors: f64, or f32 for half the memory (m*n*4 instead
    /// of m*n*8 bytes per running probe) and half the reorthogonalization's memory traffic.
    /// f32 limits orthogonality, and with it the accuracy of Ritz values, to ~1e-7 relative:
    /// fine for densities; use f64 for certified extreme eigenvalues
    #[arg(long, value_enum, default_value_t = BasisArg::F64)]
    pub basis: BasisArg,
}

impl SolverArgs {
    /// Default spectral settings with these flags applied (the caller validates them, with
    /// the rest of its settings, through the analysis crate).
    pub fn spectrum(&self) -> SpectrumParams {
        let mut spectrum = SpectrumParams::default();
        spectrum.slq.steps = self.lanczos_steps;
        spectrum.slq.seed = self.seed;
        spectrum.slq.basis = self.basis.into();
        spectrum.tol = self.tol;
        spectrum.max_applications = self.max_applications;
        spectrum
    }
}

/// Where a subject comes from, every flag checked: the checkpoint file, the data it is
/// taken on, the split and the device. Reading happens in [`CheckpointSource::load`].
#[derive(Debug)]
pub struct CheckpointSource {
    /// The checkpoint file.
    pub checkpoint: PathBuf,
    /// A data set other than the one the checkpoint records (required for foreign ones).
    pub dataset: Option<DatasetSpec>,
    /// Which samples define the class losses (`None`: the train split of our checkpoints;
    /// a foreign one needs the choice).
    pub split: Option<SplitArg>,
    /// Where tensors live.
    pub device: Device,
    /// Architecture and class count of a foreign checkpoint.
    pub hints: ArchHints,
    /// The architecture as given, recorded in the outputs of a foreign checkpoint.
    pub arch_text: Option<String>,
    /// The long-tail profile given for a foreign checkpoint's data, if any (ours record
    /// theirs).
    pub foreign_profile: Option<(Imbalance, f64)>,
    /// Seed of a foreign checkpoint's train subset.
    pub data_seed: u64,
}

impl CheckpointSource {
    /// A saddlescope checkpoint on its own recorded data, train split, CPU.
    pub fn ours(checkpoint: PathBuf) -> Self {
        Self {
            checkpoint,
            dataset: None,
            split: Some(SplitArg::Train),
            device: Device::Cpu,
            hints: ArchHints::default(),
            arch_text: None,
            foreign_profile: None,
            data_seed: 0,
        }
    }
}

impl CheckpointArgs {
    /// Checks every flag (the device is opened, the ratio checked) without reading a file.
    ///
    /// # Errors
    /// Usage errors naming the flag.
    pub fn validate(&self) -> anyhow::Result<CheckpointSource> {
        if self.checkpoint.is_dir() {
            let last = self.checkpoint.join("last.safetensors");
            let example = if last.is_file() {
                last
            } else {
                self.checkpoint.join("CHECKPOINT.safetensors")
            };
            return Err(usage(format!(
                "CHECKPOINT {}: is a directory; pass a checkpoint file, e.g. {}",
                self.checkpoint.display(),
                example.display()
            )));
        }
        let profile = &self.profile;
        if let Some(ratio) = profile.ratio {
            saddlescope_data::check_ratio(ratio).cli()?;
        }
        let given = profile.imbalance.is_some() || profile.ratio.is_some();
        Ok(CheckpointSource {
            checkpoint: self.checkpoint.clone(),
            dataset: self.dataset.clone(),
            split: self.split,
            device: self.device.open()?,
            hints: ArchHints {
                arch: self.arch.as_ref().map(|a| a.value.clone()),
                classes: self.classes,
            },
            arch_text: self.arch.as_ref().map(|a| a.text.clone()),
            foreign_profile: given.then(|| {
                (
                    profile.imbalance.unwrap_or(ImbalanceArg::Exp).into(),
                    profile.ratio.unwrap_or(100.0),
                )
            }),
            data_seed: self.data_seed,
        })
    }
}

/// A loaded checkpoint with its data.
pub struct Loaded {
    /// The model, in f32 (the analysis converts it to its own dtype).
    pub model: Model,
    /// The data set, its train split the long-tailed subset.
    pub data: Dataset,
    /// The long-tailed setting (counts, groups).
    pub long_tailed: LongTailed,
    /// The checkpoint's training loss (ours only).
    pub training_loss: Option<Loss>,
    /// Path, hash and metadata, for the outputs.
    pub checkpoint: CheckpointInfo,
    /// Which samples define the class losses.
    pub split: SplitArg,
    /// What the user should know about how the data was rebuilt (printed unless quiet).
    pub notes: Vec<String>,
}

impl Loaded {
    /// What the analysis crate analyses: the model and the chosen split.
    pub fn subject(&self) -> Subject<'_> {
        Subject {
            model: &self.model,
            split: match self.split {
                SplitArg::Train => self.data.train(),
                SplitArg::Test => self.data.test(),
            },
            train_split: self.data.train(),
            split_name: self.split.as_str().to_string(),
            train_counts: &self.long_tailed.train_counts,
            groups: &self.long_tailed.groups,
            class_names: self.data.class_names(),
            training_loss: self.training_loss.clone(),
            checkpoint: self.checkpoint.clone(),
            dataset: self.long_tailed.dataset.to_string(),
        }
    }
}

impl CheckpointSource {
    /// Reads the checkpoint, rebuilds its long-tailed data (ours from the metadata, a foreign
    /// one from the flags) and builds the model.
    ///
    /// # Errors
    /// Usage errors naming `--dataset`, `--arch` or `--classes` when the checkpoint needs
    /// them; checkpoint and data errors naming the file.
    pub fn load(&self) -> anyhow::Result<Loaded> {
        let file = read_checkpoint(&self.checkpoint).cli()?;
        let meta = file.meta.clone();
        let mut notes = Vec::new();
        // The long-tailed setting: ours from the metadata, a foreign one from the flags.
        let (long_tailed, split) = match (&meta, &self.dataset) {
            (Some(meta), spec) => {
                let mut lt = meta.data.clone();
                if let Some(spec) = spec {
                    lt.dataset = spec.clone();
                }
                (lt, self.split.unwrap_or(SplitArg::Train))
            }
            (None, Some(spec)) => {
                let split = self.foreign_split()?;
                let full = Dataset::load(spec).map_err(|e| with_dataset_hint(e, spec))?;
                let config = self.foreign_long_tail(split, &mut notes);
                (LongTailed::new(&full, &config).cli()?, split)
            }
            (None, None) => {
                return Err(usage(format!(
                    "--dataset: {} has no saddlescope metadata, say which data it was trained on (e.g. --dataset cifar10:DIR)",
                    self.checkpoint.display()
                )))
            }
        };
        let data = long_tailed
            .load()
            .map_err(|e| with_dataset_hint(e, &long_tailed.dataset))?;
        let shape = data.shape();
        let input = [shape.channels, shape.height, shape.width];
        let sha256 = file.sha256.clone();
        let model = build_model(
            &self.checkpoint,
            file,
            &self.hints,
            input,
            DType::F32,
            &self.device,
        )
        .cli()?;
        if model.classes() != data.classes() {
            return Err(usage(format!(
                "--dataset: {} has {} classes but {} has {}",
                long_tailed.dataset,
                data.classes(),
                self.checkpoint.display(),
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
            Some(meta) => CheckpointOrigin::Saddlescope(Box::new(meta.recorded()?)),
            None => CheckpointOrigin::Foreign(ForeignCheckpoint {
                arch: self.arch_text.clone(),
                classes: model.classes(),
            }),
        };
        Ok(Loaded {
            notes,
            model,
            data,
            long_tailed,
            training_loss,
            checkpoint: CheckpointInfo {
                path: self.checkpoint.display().to_string(),
                sha256,
                metadata,
            },
            split,
        })
    }

    /// The split of a foreign checkpoint: it records no training subset, so the user
    /// chooses.
    fn foreign_split(&self) -> anyhow::Result<SplitArg> {
        self.split.ok_or_else(|| {
            usage(format!(
                "--split: {} has no saddlescope metadata, so which training images it saw is unknown; \
                 choose --split test (the test split), or --split train (saddlescope's own seeded \
                 long-tailed subset of the train split: --imbalance, --ratio, --data-seed)",
                self.checkpoint.display()
            ))
        })
    }

    /// The long-tail profile of a foreign checkpoint's data: as given; on the train split
    /// exp at ratio 100 by default; on the test split none by default (the test split needs
    /// no training subset: the profile only sets the train counts and groups). Adds what the
    /// user should know to `notes`.
    fn foreign_long_tail(&self, split: SplitArg, notes: &mut Vec<String>) -> LongTailConfig {
        let (imbalance, ratio) = match (self.foreign_profile, split) {
            (Some(profile), _) => profile,
            (None, SplitArg::Test) => {
                notes.push(
                    "--split test without --imbalance or --ratio: no training profile, so every class counts the same and the head/medium/tail groups go by class index"
                        .to_string(),
                );
                (Imbalance::None, 1.0)
            }
            (None, SplitArg::Train) => (Imbalance::Exp, 100.0),
        };
        if split == SplitArg::Train {
            notes.push(format!(
                "{} records no training subset: the train split here is saddlescope's own seeded long-tailed subset ({imbalance} profile, ratio {ratio}, --data-seed {}), not necessarily the images the model saw",
                self.checkpoint.display(),
                self.data_seed
            ));
        }
        LongTailConfig {
            imbalance,
            ratio,
            n_max: None,
            seed: self.data_seed,
            groups: GroupRule::default(),
        }
    }
}
