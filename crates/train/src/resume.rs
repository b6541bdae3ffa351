//! The resume state of a run (`RUN_DIR/resume.safetensors`): the weights, BN buffers and
//! momentum buffers of the last completed epoch, with the settings and progress as JSON in
//! the header, written atomically as an epoch's commit point. Reading it back, and dropping
//! the log lines of an epoch that was logged but not committed, is all [`crate::Trainer`]
//! needs to continue with bit-identical results.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use saddlescope_data::LongTailed;
use saddlescope_nn::Model;
use saddlescope_results::{log_text, read_log, write_atomically, EpochRecord};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{read_safetensors, write_safetensors};
use crate::config::TrainConfig;
use crate::sgd::Sgd;
use crate::Error;

/// Header key of the resume state's JSON.
const RESUME_KEY: &str = "saddlescope-resume";
/// Prefix of momentum buffers in the resume file.
const MOMENTUM_PREFIX: &str = "momentum.";

/// The JSON part of the resume state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ResumeState {
    pub(crate) config: TrainConfig,
    pub(crate) data: LongTailed,
    pub(crate) epochs_done: usize,
    pub(crate) best: Option<(f64, usize)>,
}

/// A resume file read back.
pub(crate) struct ResumeFile {
    /// Settings and progress.
    pub(crate) state: ResumeState,
    /// The model's parameters and buffers, by name.
    pub(crate) weights: HashMap<String, Tensor>,
    /// Momentum buffers by parameter name (parameters that never stepped have none).
    pub(crate) momentum: HashMap<String, Tensor>,
}

/// Writes `model`'s weights, `sgd`'s momentum buffers and `state` to `path` atomically.
pub(crate) fn write_resume(
    path: &Path,
    model: &Model,
    sgd: &Sgd,
    state: &ResumeState,
) -> Result<(), Error> {
    let mut tensors = model.state()?;
    for ((name, _), buffer) in model.trainable().iter().zip(sgd.buffers()) {
        if let Some(buffer) = buffer {
            tensors.push((format!("{MOMENTUM_PREFIX}{name}"), buffer.clone()));
        }
    }
    let json = serde_json::to_string(state).map_err(|e| Error::Bug(e.to_string()))?;
    write_safetensors(
        path,
        &tensors,
        HashMap::from([(RESUME_KEY.to_string(), json)]),
    )
}

/// Reads the resume file at `path` onto `device`.
///
/// # Errors
/// [`Error::Corrupt`] naming the file when it holds no resume state or a bad one.
pub(crate) fn read_resume(path: &Path, device: &Device) -> Result<ResumeFile, Error> {
    let file = read_safetensors(path, device)?;
    let corrupt = |detail: String| Error::Corrupt {
        path: path.to_path_buf(),
        detail,
    };
    let json = file
        .metadata
        .get(RESUME_KEY)
        .ok_or_else(|| corrupt(format!("no `{RESUME_KEY}` metadata")))?;
    let state: ResumeState =
        serde_json::from_str(json).map_err(|e| corrupt(format!("bad resume state ({e})")))?;
    let mut weights = file.tensors;
    let mut momentum: HashMap<String, Tensor> = HashMap::new();
    weights.retain(|name, tensor| match name.strip_prefix(MOMENTUM_PREFIX) {
        Some(param) => {
            momentum.insert(param.to_string(), tensor.clone());
            false
        }
        None => true,
    });
    Ok(ResumeFile {
        state,
        weights,
        momentum,
    })
}

/// Drops the records of epochs after `epochs_done` from the log at `path` (an epoch that was
/// logged but not committed is redone), rewriting it atomically; no log, nothing to do.
pub(crate) fn drop_uncommitted_epochs(path: &Path, epochs_done: usize) -> Result<(), Error> {
    if !path.exists() {
        return Ok(());
    }
    let kept: Vec<EpochRecord> = read_log(path)?
        .into_iter()
        .filter(|r| r.epoch <= epochs_done)
        .collect();
    write_atomically(path, log_text(path, &kept)?).map_err(|e| Error::io(path, e))
}
