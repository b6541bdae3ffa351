//! The per-epoch training log: one JSON object per line in `RUN_DIR/log.jsonl`, appended as
//! each epoch ends, read back by `report` and the training-curve figures.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Error, Group};

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

impl GroupAccuracy {
    /// The accuracy of `group` (`None` when it has no class).
    pub fn of(&self, group: Group) -> Option<f64> {
        match group {
            Group::Head => self.head,
            Group::Medium => self.medium,
            Group::Tail => self.tail,
        }
    }
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

/// `records` as `log.jsonl` text: one JSON object per line.
///
/// # Errors
/// [`Error::Encode`] naming `path` (the file the text is meant for).
pub fn log_text(path: &Path, records: &[EpochRecord]) -> Result<String, Error> {
    records
        .iter()
        .map(|r| serde_json::to_string(r).map(|line| line + "\n"))
        .collect::<Result<_, _>>()
        .map_err(|e| Error::encode(path, e))
}

/// Appends one record as a JSON line to `path` (created if missing) and flushes it to disk.
/// An appended line is the one output that is not rewritten whole: a crash can leave a
/// partial last line, which the resumed run drops with the unfinished epoch.
///
/// # Errors
/// [`Error::Io`] or [`Error::Encode`] naming the file.
pub fn append_record(path: &Path, record: &EpochRecord) -> Result<(), Error> {
    let line = log_text(path, std::slice::from_ref(record))?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    file.write_all(line.as_bytes())
        .map_err(|e| Error::io(path, e))?;
    file.sync_data().map_err(|e| Error::io(path, e))
}

/// Reads every record of a `log.jsonl`, in file order (blank lines skipped).
///
/// # Errors
/// [`Error::Io`], or [`Error::Corrupt`] naming the file and the line.
pub fn read_log(path: &Path) -> Result<Vec<EpochRecord>, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            serde_json::from_str(line)
                .map_err(|e| Error::corrupt(path, format!("line {}: {e}", index + 1)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `log.jsonl` written by `saddlescope train` (4 epochs of the tiny synthetic run of
    /// the CLI tests, with SAM and DRW).
    const LOG: &str = include_str!("../tests/fixtures/log.jsonl");

    #[test]
    fn a_written_log_reads_back_and_rewrites_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        std::fs::write(&path, LOG).unwrap();
        let records = read_log(&path).unwrap();
        assert_eq!(
            records.iter().map(|r| r.epoch).collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
        assert_eq!(log_text(&path, &records).unwrap(), LOG);
        let last = &records[3];
        assert!(last.drw && last.sam_rho == 0.05);
        assert_eq!(last.test.class_accuracy.len(), 3);
        assert_eq!(
            last.test.group_accuracy.of(Group::Tail),
            last.test.group_accuracy.tail
        );

        let appended = dir.path().join("appended.jsonl");
        for record in &records {
            append_record(&appended, record).unwrap();
        }
        assert_eq!(std::fs::read_to_string(&appended).unwrap(), LOG);
    }

    #[test]
    fn a_bad_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        let first = LOG.lines().next().unwrap();
        std::fs::write(&path, format!("{first}\n\n{{\"epoch\": 2}}\n")).unwrap();
        let err = read_log(&path).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{}: line 3: missing field", path.display())),
            "{err}"
        );
    }
}
