//! Checkpoints: safetensors files holding every parameter and batch-norm buffer under its
//! PyTorch name, with saddlescope's metadata as JSON in the safetensors header (key
//! `saddlescope`), so that one file says what model, data, loss and recipe produced it.
//! Files are written atomically.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use saddlescope_data::LongTailed;
use saddlescope_nn::{Model, ModelSpec};
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::io::write_atomic;
use crate::log::EvalMetrics;
use crate::Error;

/// Header key under which [`CheckpointMeta`] is stored.
pub const METADATA_KEY: &str = "saddlescope";

/// Version of the checkpoint layout; bumped when a field changes meaning.
pub const FORMAT_VERSION: u32 = 1;

/// What a checkpoint says about itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// Layout version ([`FORMAT_VERSION`]).
    pub format: u32,
    /// saddlescope version that wrote the file.
    pub version: String,
    /// Architecture and its options.
    pub model: ModelSpec,
    /// Number of classes.
    pub classes: usize,
    /// Input shape `[C, H, W]`.
    pub input_shape: [usize; 3],
    /// Element type of the stored weights (`"f32"` or `"f64"`).
    pub dtype: String,
    /// The long-tailed training set: data-set spec, imbalance, ratio, n_max, seed, per-class
    /// counts and groups (enough to rebuild the exact subset).
    pub data: LongTailed,
    /// The full training recipe (loss, DRW, SAM, optimizer, schedule).
    pub config: TrainConfig,
    /// Epochs completed when the file was written.
    pub epoch: usize,
    /// Test metrics after that epoch.
    pub test: Option<EvalMetrics>,
}

/// The tensors and (if present) the metadata of a safetensors file.
pub struct SafetensorsFile {
    /// Tensors by name.
    pub tensors: HashMap<String, Tensor>,
    /// The header's free-form metadata.
    pub metadata: HashMap<String, String>,
}

/// Writes `tensors` with `metadata` to `path` atomically.
pub fn write_safetensors(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: HashMap<String, String>,
) -> Result<(), Error> {
    let bytes = safetensors::tensor::serialize(
        tensors.iter().map(|(n, t)| (n.as_str(), t)),
        Some(metadata),
    )
    .map_err(|e| Error::Bug(format!("serializing {}: {e}", path.display())))?;
    write_atomic(path, &bytes).map_err(|e| Error::io(path, e))
}

/// Reads every tensor and the metadata of a safetensors file, naming the file in errors.
pub fn read_safetensors(path: &Path, device: &Device) -> Result<SafetensorsFile, Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let corrupt = |detail: String| Error::Corrupt {
        path: path.to_path_buf(),
        detail,
    };
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| corrupt(format!("not a valid safetensors file ({e})")))?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let tensors = candle_core::safetensors::load_buffer(&bytes, device)
        .map_err(|e| corrupt(format!("unreadable tensors ({e})")))?;
    Ok(SafetensorsFile { tensors, metadata })
}

impl CheckpointMeta {
    /// The metadata map stored in a safetensors header.
    pub fn to_header(&self) -> Result<HashMap<String, String>, Error> {
        let json = serde_json::to_string(self).map_err(|e| Error::Bug(e.to_string()))?;
        Ok(HashMap::from([(METADATA_KEY.to_string(), json)]))
    }

    /// Parses the metadata of a safetensors header; `None` when it has no saddlescope key
    /// (e.g. a file written by PyTorch).
    pub fn from_header(
        path: &Path,
        header: &HashMap<String, String>,
    ) -> Result<Option<Self>, Error> {
        let Some(json) = header.get(METADATA_KEY) else {
            return Ok(None);
        };
        serde_json::from_str(json)
            .map(Some)
            .map_err(|e| Error::Corrupt {
                path: path.to_path_buf(),
                detail: format!("bad saddlescope metadata ({e})"),
            })
    }
}

/// Saves `model`'s parameters and buffers with `meta` to `path`, atomically.
pub fn save_checkpoint(path: &Path, model: &Model, meta: &CheckpointMeta) -> Result<(), Error> {
    write_safetensors(path, &model.state()?, meta.to_header()?)
}

/// A checkpoint read back: metadata and a model holding its weights.
pub struct LoadedCheckpoint {
    /// The metadata.
    pub meta: CheckpointMeta,
    /// The model, weights loaded and checked finite.
    pub model: Model,
}

/// Loads one of our checkpoints (with metadata) into a model on `device` in the stored dtype.
pub fn load_checkpoint(path: &Path, device: &Device) -> Result<LoadedCheckpoint, Error> {
    let file = read_safetensors(path, device)?;
    let meta =
        CheckpointMeta::from_header(path, &file.metadata)?.ok_or_else(|| Error::Corrupt {
            path: path.to_path_buf(),
            detail: format!("no `{METADATA_KEY}` metadata: not a saddlescope checkpoint"),
        })?;
    let dtype = crate::config::parse_dtype(&meta.dtype).map_err(|detail| Error::Corrupt {
        path: path.to_path_buf(),
        detail,
    })?;
    let mut model = Model::new(
        &meta.model,
        meta.classes,
        meta.input_shape,
        dtype,
        device,
        0,
    )?;
    let in_file = |e: saddlescope_nn::Error| Error::Corrupt {
        path: path.to_path_buf(),
        detail: e.to_string(),
    };
    model.load_state(file.tensors).map_err(in_file)?;
    model.check_finite().map_err(in_file)?;
    Ok(LoadedCheckpoint { meta, model })
}
