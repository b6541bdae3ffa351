//! The long-tail trainer (SGD with momentum, SAM, DRW, LR schedules) and its checkpoints.
//!
//! A run is a [`TrainConfig`] (usually from a [`preset`]) executed by a [`Trainer`] in a run
//! directory: `log.jsonl` (one [`EpochRecord`] per epoch), `last.safetensors`,
//! `best.safetensors`, `epoch-NNNN.safetensors` (checkpoints with [`CheckpointMeta`] in their
//! header) and `resume.safetensors` (everything [`Trainer::resume`] needs to continue with
//! bit-identical results).
#![deny(missing_docs)]

mod checkpoint;
mod config;
mod error;
pub mod io;
mod log;
mod metrics;
mod presets;
mod sam;
mod schedule;
mod sgd;
mod trainer;

pub use checkpoint::{
    load_checkpoint, read_safetensors, save_checkpoint, write_safetensors, CheckpointMeta,
    LoadedCheckpoint, SafetensorsFile, FORMAT_VERSION, METADATA_KEY,
};
pub use config::{parse_dtype, Reweighting, SamConfig, TrainConfig};
pub use error::{Error, Param};
pub use log::{append_record, read_log, EpochRecord, EvalMetrics, GroupAccuracy};
pub use metrics::evaluate;
pub use presets::{preset, PRESET_NAMES};
pub use sam::{global_norm, perturbation};
pub use schedule::{scaled_epoch, LrSchedule};
pub use sgd::{Sgd, SgdParams};
pub use trainer::{RunDir, RunOutcome, Silent, TrainObserver, Trainer, RESUME_FILE};
