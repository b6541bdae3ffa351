//! Opening a checkpoint to analyse: ours (safetensors with saddlescope metadata), a
//! safetensors file without it (e.g. written by PyTorch with the reference code's names), or a
//! PyTorch `.pth`/`.pth.tar` (zip format) holding a bare state_dict or a dict with a
//! `state_dict` entry, keys possibly prefixed `module.` (DataParallel).

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use saddlescope_nn::{Model, ModelSpec};
use saddlescope_train::{read_safetensors, CheckpointMeta};
use sha2::{Digest, Sha256};

use crate::{Error, Param};

/// What the file format could not say and the command line must (for foreign checkpoints).
#[derive(Debug, Clone, Default)]
pub struct ArchHints {
    /// Architecture (`--arch`).
    pub arch: Option<ModelSpec>,
    /// Number of classes (`--classes`).
    pub classes: Option<usize>,
}

/// The file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    /// A saddlescope checkpoint (safetensors + metadata).
    Saddlescope,
    /// A safetensors file without saddlescope metadata.
    Safetensors,
    /// A PyTorch pickle checkpoint.
    Pytorch,
}

/// The raw content of a checkpoint file, before a model is built from it.
pub struct CheckpointFile {
    /// Format detected from the file's first bytes.
    pub format: SourceFormat,
    /// Tensors by name (`module.` stripped).
    pub tensors: HashMap<String, Tensor>,
    /// Our metadata, when present.
    pub meta: Option<CheckpointMeta>,
    /// SHA-256 of the file, hex.
    pub sha256: String,
}

/// SHA-256 of a file, hex, streaming.
pub fn sha256_file(path: &Path) -> Result<String, Error> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buffer).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Reads a checkpoint file of any supported format, naming it in every error.
pub fn read_checkpoint(path: &Path) -> Result<CheckpointFile, Error> {
    let corrupt = |detail: String| Error::Checkpoint {
        path: path.to_path_buf(),
        detail,
    };
    let mut head = [0u8; 4];
    {
        let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let n = file.read(&mut head).map_err(|e| Error::io(path, e))?;
        if n < 4 {
            return Err(corrupt(format!("only {n} bytes: truncated or empty")));
        }
    }
    let sha256 = sha256_file(path)?;
    // PyTorch's zip format starts with a local-file header; a legacy pickle with 0x80.
    if head == [b'P', b'K', 3, 4] {
        let tensors = read_pytorch(path)?;
        return Ok(CheckpointFile {
            format: SourceFormat::Pytorch,
            tensors,
            meta: None,
            sha256,
        });
    }
    if head[0] == 0x80 {
        return Err(corrupt(
            "a legacy (non-zip) PyTorch pickle; re-save it with torch.save(..., _use_new_zipfile_serialization=True)".into(),
        ));
    }
    let file = read_safetensors(path, &Device::Cpu).map_err(|e| match e {
        saddlescope_train::Error::Corrupt { detail, .. } => corrupt(format!(
            "{detail} (expected a .safetensors checkpoint or a zip-format PyTorch .pth)"
        )),
        other => Error::Train(other),
    })?;
    let meta = CheckpointMeta::from_header(path, &file.metadata)?;
    let format = if meta.is_some() {
        SourceFormat::Saddlescope
    } else {
        SourceFormat::Safetensors
    };
    Ok(CheckpointFile {
        format,
        tensors: strip_module(file.tensors),
        meta,
        sha256,
    })
}

/// `module.x` → `x` (DataParallel checkpoints).
fn strip_module(tensors: HashMap<String, Tensor>) -> HashMap<String, Tensor> {
    tensors
        .into_iter()
        .map(|(name, t)| match name.strip_prefix("module.") {
            Some(stripped) => (stripped.to_string(), t),
            None => (name, t),
        })
        .collect()
}

fn read_pytorch(path: &Path) -> Result<HashMap<String, Tensor>, Error> {
    let corrupt = |detail: String| Error::Checkpoint {
        path: path.to_path_buf(),
        detail,
    };
    // A dict checkpoint keeps its weights under `state_dict`; `read_all` without the key
    // silently returns nothing for it, so try the key first.
    let mut tensors =
        candle_core::pickle::read_all_with_key(path, Some("state_dict")).unwrap_or_default();
    if tensors.is_empty() {
        tensors = candle_core::pickle::read_all(path)
            .map_err(|e| corrupt(format!("unreadable PyTorch checkpoint ({e})")))?;
    }
    if tensors.is_empty() {
        return Err(corrupt(
            "no tensors found (neither a state_dict nor a dict with a `state_dict` entry)".into(),
        ));
    }
    Ok(strip_module(tensors.into_iter().collect()))
}

/// Builds the model a checkpoint holds, in `dtype` on `device`: architecture and classes from
/// our metadata or from `hints`, the input shape from the data set. Fails naming missing,
/// unexpected or mis-shaped tensors, and the first non-finite one.
pub fn build_model(
    path: &Path,
    file: CheckpointFile,
    hints: &ArchHints,
    input: [usize; 3],
    dtype: DType,
    device: &Device,
) -> Result<Model, Error> {
    let corrupt = |detail: String| Error::Checkpoint {
        path: path.to_path_buf(),
        detail,
    };
    let (spec, classes) = match &file.meta {
        Some(meta) => (
            hints.arch.clone().unwrap_or_else(|| meta.model.clone()),
            hints.classes.unwrap_or(meta.classes),
        ),
        None => {
            let arch = hints.arch.clone().ok_or_else(|| Error::Invalid {
                param: Param::Arch,
                reason: format!(
                    "{} has no saddlescope metadata: say which architecture it holds (e.g. resnet32)",
                    path.display()
                ),
            })?;
            let classes = match hints.classes {
                Some(c) => c,
                None => infer_classes(&file.tensors).ok_or_else(|| Error::Invalid {
                    param: Param::Classes,
                    reason: format!(
                        "cannot tell the class count of {} from its classifier: give it",
                        path.display()
                    ),
                })?,
            };
            (arch, classes)
        }
    };
    let mut model = Model::new(&spec, classes, input, dtype, device, 0)?;
    model
        .load_state(file.tensors)
        .map_err(|e| corrupt(e.to_string()))?;
    model.check_finite().map_err(|e| corrupt(e.to_string()))?;
    Ok(model)
}

/// The class count from the classifier's bias (`linear.bias`, Linear head) or weight
/// (`linear.weight` of a NormedLinear head is (in, out)).
fn infer_classes(tensors: &HashMap<String, Tensor>) -> Option<usize> {
    if let Some(bias) = tensors.get("linear.bias") {
        return bias.dims().first().copied();
    }
    tensors
        .get("linear.weight")
        .and_then(|w| w.dims().get(1).copied())
}
