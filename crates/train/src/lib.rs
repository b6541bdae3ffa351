//! The long-tail trainer (SGD with momentum, SAM, DRW, LR schedules) and its checkpoints.
//!
//! A run is a [`TrainConfig`] (usually from a [`preset`]) executed by a [`Trainer`] in a run
//! directory ([`RunDir`]): `log.jsonl` (one [`EpochRecord`] per epoch), `last.safetensors`,
//! `best.safetensors`, `epoch-NNNN.safetensors` (checkpoints with [`CheckpointMeta`] in their
//! header) and `resume.safetensors` (everything [`Trainer::resume`] needs to continue with
//! bit-identical results). The records and the metadata's layout are results, defined in
//! `saddlescope-results`; every file goes through its atomic writer.
//!
//! [`EpochRecord`]: saddlescope_results::EpochRecord
#![deny(missing_docs)]

mod checkpoint;
mod config;
mod error;
mod metrics;
mod presets;
mod resume;
mod run_dir;
mod sam;
mod schedule;
mod sgd;
mod step;
mod trainer;

pub use checkpoint::{
    load_checkpoint, read_safetensors, save_checkpoint, write_safetensors, CheckpointMeta,
    LoadedCheckpoint, SafetensorsFile,
};
pub use config::{parse_dtype, Reweighting, SamConfig, TrainConfig};
pub use error::{Error, Param};
pub use metrics::evaluate;
pub use presets::{preset, PRESET_NAMES};
pub use run_dir::{RunDir, RESUME_FILE};
pub use sam::{global_norm, perturbation};
pub use schedule::{scaled_epoch, LrSchedule};
pub use sgd::{Sgd, SgdParams};
pub use trainer::{RunOutcome, Silent, TrainObserver, Trainer};
