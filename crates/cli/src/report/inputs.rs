//! What a report is made from: analysis directories (`spectrum.json`) and run directories
//! (`log.jsonl`, plus the recipe from `last.safetensors`), recognised by their files.

use std::path::{Path, PathBuf};

use anyhow::Context;
use saddlescope_results::{read_log, read_report, AnalysisReport, EpochRecord};
use saddlescope_train::{read_safetensors, CheckpointMeta};

/// A labelled input.
pub struct Named<T> {
    /// Label in tables and legends (the directory name unless given).
    pub label: String,
    /// The directory it came from.
    pub dir: PathBuf,
    /// The content.
    pub value: T,
}

/// A training run: its log and, when found, its last checkpoint's metadata.
pub struct Run {
    /// Per-epoch records.
    pub log: Vec<EpochRecord>,
    /// Metadata of `last.safetensors`.
    pub meta: Option<CheckpointMeta>,
}

/// Everything a report shows.
#[derive(Default)]
pub struct Inputs {
    /// Analyses, in command-line order.
    pub analyses: Vec<Named<AnalysisReport>>,
    /// Runs, in command-line order.
    pub runs: Vec<Named<Run>>,
}

fn label_of(dir: &Path) -> String {
    dir.file_name().map_or_else(
        || dir.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Reads every directory: an analysis if it holds `spectrum.json`, a run if it holds
/// `log.jsonl` (a directory may be both); `labels` rename them in order.
pub fn load_inputs(dirs: &[PathBuf], labels: &[String]) -> anyhow::Result<Inputs> {
    let mut inputs = Inputs::default();
    for (i, dir) in dirs.iter().enumerate() {
        let label = labels.get(i).cloned().unwrap_or_else(|| label_of(dir));
        let spectrum = dir.join("spectrum.json");
        let log = dir.join("log.jsonl");
        if !spectrum.exists() && !log.exists() {
            anyhow::bail!(
                "{}: neither an analysis (spectrum.json) nor a run (log.jsonl)",
                dir.display()
            );
        }
        if spectrum.exists() {
            let value = read_report(&spectrum)?;
            inputs.analyses.push(Named {
                label: label.clone(),
                dir: dir.clone(),
                value,
            });
        }
        if log.exists() {
            let records = read_log(&log)?;
            let last = dir.join("last.safetensors");
            let meta = if last.exists() {
                let file = read_safetensors(&last, &candle_core::Device::Cpu)?;
                CheckpointMeta::from_header(&last, &file.metadata)?
            } else {
                None
            };
            inputs.runs.push(Named {
                label,
                dir: dir.clone(),
                value: Run { log: records, meta },
            });
        }
    }
    if inputs.analyses.is_empty() && inputs.runs.is_empty() {
        anyhow::bail!("nothing to report");
    }
    inputs
        .analyses
        .iter()
        .try_for_each(|a| check_finite(&a.dir, &a.value))
        .context("report inputs")?;
    Ok(inputs)
}

/// Rejects analyses whose headline numbers are not finite (they cannot be plotted).
fn check_finite(dir: &Path, report: &AnalysisReport) -> anyhow::Result<()> {
    for c in report.classes.iter().chain(&report.all) {
        let e = &c.estimate;
        if ![e.lambda_min, e.lambda_max, e.trace]
            .iter()
            .all(|v| v.is_finite())
        {
            anyhow::bail!(
                "{}: class {} has non-finite eigenvalues or trace",
                dir.display(),
                c.name
            );
        }
    }
    Ok(())
}
