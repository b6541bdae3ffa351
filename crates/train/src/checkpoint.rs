//! Checkpoints: safetensors files holding every parameter and batch-norm buffer under its
//! PyTorch name, with saddlescope's metadata as JSON in the safetensors header (key
//! `saddlescope`), so that one file says what model, data, loss and recipe produced it.
//! Files are written atomically.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use saddlescope_data::LongTailed;
use saddlescope_nn::{Model, ModelSpec};
use saddlescope_results::{write_atomically, METADATA_KEY};

use crate::config::TrainConfig;
use crate::Error;

/// What a checkpoint says about itself, with the typed recipe this crate trains from: the
/// architecture ([`ModelSpec`]), the long-tailed training set ([`LongTailed`]) and the
/// settings ([`TrainConfig`]). Stored as JSON under
/// [`METADATA_KEY`](saddlescope_results::METADATA_KEY) of the safetensors header.
pub type CheckpointMeta = saddlescope_results::CheckpointMeta<ModelSpec, LongTailed, TrainConfig>;

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
    write_atomically(path, bytes).map_err(|e| Error::io(path, e))
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

/// Saves `model`'s parameters and buffers with `meta` to `path`, atomically.
pub fn save_checkpoint(path: &Path, model: &Model, meta: &CheckpointMeta) -> Result<(), Error> {
    let header = meta.to_header().map_err(|e| Error::Bug(e.to_string()))?;
    write_safetensors(path, &model.state()?, header)
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

#[cfg(test)]
mod tests {
    use saddlescope_data::Dataset;
    use saddlescope_results::EvalMetrics;

    use super::*;
    use crate::presets::preset;

    /// The metadata of a checkpoint written by `saddlescope train` (the results crate's
    /// fixture, byte for byte).
    const COMMITTED: &str = include_str!("../../results/tests/fixtures/checkpoint_meta.json");

    #[test]
    fn committed_metadata_reads_into_the_typed_recipe_and_writes_back_unchanged() {
        let header = HashMap::from([(METADATA_KEY.to_string(), COMMITTED.trim_end().to_string())]);
        let meta = CheckpointMeta::from_header(Path::new("last.safetensors"), &header)
            .unwrap()
            .unwrap();
        assert_eq!(meta.model, "mlp:8".parse::<ModelSpec>().unwrap());
        assert_eq!(meta.data.train_counts, [40, 12, 4]);
        assert_eq!(meta.config.sam.as_ref().unwrap().rho, 0.05);
        assert_eq!(meta.to_header().unwrap(), header);
    }

    #[test]
    fn a_fresh_checkpoint_keeps_its_metadata_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("last.safetensors");
        let mut config = preset("mnist-lt-ce-drw").unwrap();
        config.dataset = "synthetic:classes=3,dim=6,n=40,test=10,seed=1"
            .parse()
            .unwrap();
        config.model = "mlp:8".parse().unwrap();
        config.ratio = 10.0;
        let full = Dataset::load(&config.dataset).unwrap();
        let data = LongTailed::new(&full, &config.long_tail()).unwrap();
        let model = Model::new(
            &config.model,
            3,
            [1, 1, 6],
            candle_core::DType::F32,
            &Device::Cpu,
            0,
        )
        .unwrap();
        let meta = CheckpointMeta {
            format: saddlescope_results::FORMAT_VERSION,
            version: "0.1.0".into(),
            model: config.model.clone(),
            classes: 3,
            input_shape: [1, 1, 6],
            dtype: "f32".into(),
            data,
            config,
            epoch: 2,
            test: Some(EvalMetrics {
                loss: 0.5,
                accuracy: 0.75,
                class_accuracy: vec![1.0, 0.75, 0.5],
                group_accuracy: saddlescope_results::GroupAccuracy {
                    head: Some(1.0),
                    medium: Some(0.75),
                    tail: Some(0.5),
                },
            }),
        };
        save_checkpoint(&path, &model, &meta).unwrap();
        let file = read_safetensors(&path, &Device::Cpu).unwrap();
        assert_eq!(file.metadata, meta.to_header().unwrap());
        let typed = CheckpointMeta::from_header(&path, &file.metadata)
            .unwrap()
            .unwrap();
        assert_eq!(typed, meta);
        let recorded =
            saddlescope_results::CheckpointMeta::<String>::from_header(&path, &file.metadata)
                .unwrap()
                .unwrap();
        assert_eq!(recorded, meta.recorded().unwrap());
        assert_eq!(recorded.model, "mlp:8");
        assert_eq!(load_checkpoint(&path, &Device::Cpu).unwrap().meta, meta);
    }
}
