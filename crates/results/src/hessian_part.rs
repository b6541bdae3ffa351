//! One finished Hessian of an analysis, as written to `OUT/classes/class-NNNN.json` (or
//! `all.json`) the moment it is done: the result and the settings it was computed with.
//! `analyze --resume` reuses a file whose settings match; `merge` takes the files of every
//! shard into one report.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{write_atomically, AnalysisParams, AnalysisReport, ClassSpectrum, Error};

/// What a per-Hessian file must match to be reused or merged: the checkpoint, the data and
/// every setting that can change a number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartKey {
    /// SHA-256 of the checkpoint file.
    pub sha256: String,
    /// Data-set spec string.
    pub dataset: String,
    /// `"train"` or `"test"`.
    pub split: String,
    /// The analysis settings.
    pub params: AnalysisParams,
}

impl PartKey {
    /// The key of the Hessians of the analysis `report` describes.
    pub fn of(report: &AnalysisReport) -> Self {
        Self {
            sha256: report.checkpoint.sha256.clone(),
            dataset: report.dataset.clone(),
            split: report.split.clone(),
            params: report.params.clone(),
        }
    }
}

/// The content of a per-Hessian file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HessianPart {
    /// What it was computed from.
    pub key: PartKey,
    /// The result.
    pub result: ClassSpectrum,
}

/// Writes `part` to `path` atomically (compact JSON).
///
/// # Errors
/// [`Error::Io`] or [`Error::Encode`] naming the file.
pub fn write_part(path: &Path, part: &HessianPart) -> Result<(), Error> {
    let json = serde_json::to_vec(part).map_err(|e| Error::encode(path, e))?;
    write_atomically(path, json).map_err(|e| Error::io(path, e))
}

/// Reads a per-Hessian file back.
///
/// # Errors
/// [`Error::Io`] or [`Error::Corrupt`] naming the file.
pub fn read_part(path: &Path) -> Result<HessianPart, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::corrupt(path, e))
}
