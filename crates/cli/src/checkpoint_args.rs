//! The flags shared by the commands that take a checkpoint apart class by class (`analyze`,
//! `landscape`): which checkpoint, which data and samples ([`CheckpointArgs`]), and the
//! extreme-eigenvalue solver's settings ([`SolverArgs`]); and loading them into a model and
//! its long-tailed data ([`Loaded`], whose [`Loaded::subject`] is what the analysis crate
//! takes).

use std::path::PathBuf;

use candle_core::DType;
use clap::Args;
use saddlescope_analysis::{build_model, read_checkpoint, ArchHints, Subject};
use saddlescope_data::{Dataset, DatasetSpec, GroupRule, LongTailConfig, LongTailed};
use saddlescope_nn::{drw_weights, Loss, Model, DRW_BETA};
use saddlescope_results::{CheckpointInfo, CheckpointOrigin, ForeignCheckpoint};
use saddlescope_spectral::SpectrumParams;

use crate::basis_arg::BasisArg;
use crate::dataset_args::{data_error, ImbalanceArgs};
use crate::device::parse_device;
use crate::usage::usage;

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
    pub dataset: Option<String>,
    /// Which samples: train (the long-tailed subset the model was trained on) or test
    #[arg(long, value_name = "train|test", default_value = "train")]
    pub split: String,
    /// Only the first N samples of each class (in data-set order) [default: all]
    #[arg(long, value_name = "N")]
    pub samples_per_class: Option<usize>,
    /// cpu or cuda
    #[arg(long, value_name = "cpu|cuda", default_value = "cpu")]
    pub device: String,
    /// Architecture of a foreign checkpoint: resnet32, resnet32-normed, mlp:..., cnn
    #[arg(long, value_name = "SPEC", help_heading = FOREIGN)]
    pub arch: Option<String>,
    /// Class count of a foreign checkpoint [default: from its classifier]
    #[arg(long, value_name = "C", help_heading = FOREIGN)]
    pub classes: Option<usize>,
    /// Seed of the long-tailed subset selection of a foreign checkpoint
    #[arg(long, value_name = "S", default_value_t = 0, help_heading = FOREIGN)]
    pub data_seed: u64,
    #[command(flatten, next_help_heading = FOREIGN)]
    pub imbalance: ImbalanceArgs,
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
    /// `--basis`: storage of the Lanczos basis.
    #[command(flatten)]
    pub basis: BasisArg,
}

impl SolverArgs {
    /// Default spectral settings with these flags applied (the numbers are validated later,
    /// by the analysis, with errors naming the flag).
    ///
    /// # Errors
    /// A usage error for a bad `--basis`.
    pub fn spectrum(&self) -> anyhow::Result<SpectrumParams> {
        let mut spectrum = SpectrumParams::default();
        spectrum.slq.steps = self.lanczos_steps;
        spectrum.slq.seed = self.seed;
        spectrum.slq.basis = self.basis.precision()?;
        spectrum.tol = self.tol;
        spectrum.max_applications = self.max_applications;
        Ok(spectrum)
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
    /// `"train"` or `"test"`.
    pub split: String,
}

impl Loaded {
    /// What the analysis crate analyses: the model and the chosen split.
    pub fn subject(&self) -> Subject<'_> {
        Subject {
            model: &self.model,
            split: if self.split == "train" {
                self.data.train()
            } else {
                self.data.test()
            },
            train_split: self.data.train(),
            split_name: self.split.clone(),
            train_counts: &self.long_tailed.train_counts,
            groups: &self.long_tailed.groups,
            class_names: self.data.class_names(),
            training_loss: self.training_loss.clone(),
            checkpoint: self.checkpoint.clone(),
            dataset: self.long_tailed.dataset.to_string(),
        }
    }
}

/// An analysis-crate error as a usage error (exit 2) when it names a flag or is about the
/// data flags, else as is.
pub fn analysis_error(err: saddlescope_analysis::Error) -> anyhow::Error {
    match err {
        saddlescope_analysis::Error::Usage { .. } => usage(err.to_string()),
        saddlescope_analysis::Error::Data(e) => data_error(e),
        other => anyhow::Error::new(other),
    }
}

impl CheckpointArgs {
    /// Checks the flags, reads the checkpoint, rebuilds its long-tailed data (ours from the
    /// metadata, a foreign one from the flags) and builds the model.
    ///
    /// # Errors
    /// Usage errors naming the flag (`--split`, `--samples-per-class`, `--device`, `--arch`,
    /// `--dataset`, ...); checkpoint and data errors naming the file.
    pub fn load(&self) -> anyhow::Result<Loaded> {
        if !matches!(self.split.as_str(), "train" | "test") {
            return Err(usage(format!(
                "--split {:?}: expected train or test",
                self.split
            )));
        }
        if self.samples_per_class == Some(0) {
            return Err(usage("--samples-per-class 0: need at least 1"));
        }
        let device = parse_device(&self.device)?;
        let hints = ArchHints {
            arch: self
                .arch
                .as_deref()
                .map(|a| a.parse().map_err(|e| usage(format!("--arch {a:?}: {e}"))))
                .transpose()?,
            classes: self.classes,
        };
        let file = read_checkpoint(&self.checkpoint).map_err(analysis_error)?;
        let meta = file.meta.clone();
        let spec_override: Option<DatasetSpec> = self
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
                let (imbalance, ratio) = self.imbalance.validate()?;
                let full = Dataset::load(&spec).map_err(data_error)?;
                let config = LongTailConfig {
                    imbalance,
                    ratio,
                    n_max: None,
                    seed: self.data_seed,
                    groups: GroupRule::default(),
                };
                LongTailed::new(&full, &config).map_err(data_error)?
            }
            (None, None) => {
                return Err(usage(format!(
                    "--dataset: {} has no saddlescope metadata, say which data it was trained on (e.g. --dataset cifar10:DIR)",
                    self.checkpoint.display()
                )))
            }
        };
        let data = long_tailed.load().map_err(data_error)?;
        let shape = data.shape();
        let input = [shape.channels, shape.height, shape.width];
        let sha256 = file.sha256.clone();
        let model = build_model(&self.checkpoint, file, &hints, input, DType::F32, &device)
            .map_err(analysis_error)?;
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
                arch: self.arch.clone(),
                classes: model.classes(),
            }),
        };
        Ok(Loaded {
            model,
            data,
            long_tailed,
            training_loss,
            checkpoint: CheckpointInfo {
                path: self.checkpoint.display().to_string(),
                sha256,
                metadata,
            },
            split: self.split.clone(),
        })
    }
}
