//! The per-epoch training log: one JSON object per line in `RUN_DIR/log.jsonl`, appended as
//! each epoch ends, read back by `report` and the training-curve figures.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::Error;

/// Test-set metrics of one evaluation: overall, per class and per group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalMetrics {
    /// Mean cross-entropy over the test split.
    pub loss: f64,
    /// Overall accuracy in [0, 1].
    pub accuracy: f64,
    /// Accuracy of each class, in class order.
    pub class_accuracy: Vec<f64>,
    /// Mean of the per-class accuracies of the head, medium and tail groups (balanced test
    /// split, so this equals the group's sample accuracy); `None` for an empty group.
    pub group_accuracy: GroupAccuracy,
}

/// Accuracy per head/medium/tail group.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GroupAccuracy {
    /// Head (most frequent) classes.
    pub head: Option<f64>,
    /// Medium classes.
    pub medium: Option<f64>,
    /// Tail (rarest) classes.
    pub tail: Option<f64>,
}

/// One line of `log.jsonl`: what happened in one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Learning rate used in this epoch.
    pub lr: f64,
    /// Mean training loss (the training objective, with DRW weights when active).
    pub train_loss: f64,
    /// Training accuracy on the (augmented) batches seen.
    pub train_accuracy: f64,
    /// Whether the DRW class weights were on.
    pub drw: bool,
    /// SAM radius ρ used (0 when SAM was off).
    pub sam_rho: f64,
    /// Mean global gradient norm ‖g‖ over the epoch's steps.
    pub grad_norm: f64,
    /// Mean SAM sharpness L(w+e) − L(w) over the epoch's steps (0 without SAM).
    pub sharpness: f64,
    /// Test metrics after the epoch.
    pub test: EvalMetrics,
    /// Wall time of the epoch (training plus evaluation), in seconds.
    pub seconds: f64,
}

/// Appends one record as a JSON line to `path` (created if missing).
pub fn append_record(path: &Path, record: &EpochRecord) -> Result<(), Error> {
    let mut line = serde_json::to_string(record).map_err(|e| Error::Bug(e.to_string()))?;
    line.push('\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    file.write_all(line.as_bytes())
        .map_err(|e| Error::io(path, e))?;
    file.sync_data().map_err(|e| Error::io(path, e))
}

/// Reads every record of a `log.jsonl`, in file order.
pub fn read_log(path: &Path) -> Result<Vec<EpochRecord>, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            serde_json::from_str(line).map_err(|e| Error::Corrupt {
                path: path.to_path_buf(),
                detail: format!("line {}: {e}", index + 1),
            })
        })
        .collect()
}
