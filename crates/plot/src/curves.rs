//! Training curves: test accuracy by epoch, overall and per group, for one or several runs.

use std::path::Path;

use saddlescope_results::EpochRecord;

use crate::axis::{format_number, Axis, Scale};
use crate::error::Error;
use crate::input::{check_size, Labeled};
use crate::line_figure::{Line, LineFigure, LinePanel};
use crate::output::render;
use crate::style::{run_color, Header, LegendItem, Swatch};

/// Options of [`training_curves`]: `width` × `height` pixels (default 1200 × 850), four
/// panels (overall, head, medium, tail) in two rows; a group no run reports is left out.
#[derive(Debug, Clone, PartialEq)]
pub struct CurveOptions {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl Default for CurveOptions {
    fn default() -> Self {
        Self {
            width: 1200,
            height: 850,
        }
    }
}

/// Dots mark the points up to this many epochs per run.
const MAX_DOTTED_EPOCHS: usize = 40;

/// One metric of an epoch record, `None` when not measured.
type Metric = fn(&EpochRecord) -> Option<f64>;

/// Figure 6: test accuracy (%) by epoch from each run's records (`log.jsonl`), one colour
/// per run: overall and the head, medium and tail group accuracies in separate panels with
/// the same axes. The legend gives each run's final overall and tail accuracy.
///
/// # Errors
/// [`Error::InvalidOption`], [`Error::Empty`] without runs or for a run without records,
/// [`Error::InvalidData`] for a non-finite accuracy, then rendering errors; every error
/// names `path`.
pub fn training_curves(
    runs: &[Labeled<'_, [EpochRecord]>],
    path: &Path,
    options: &CurveOptions,
) -> Result<(), Error> {
    check_size(path, "width", options.width)?;
    check_size(path, "height", options.height)?;
    if runs.is_empty() {
        return Err(Error::Empty {
            path: path.to_path_buf(),
            what: "no runs were given".into(),
        });
    }
    for run in runs {
        if run.value.is_empty() {
            return Err(Error::Empty {
                path: path.to_path_buf(),
                what: format!("run {} has no epoch records", run.label),
            });
        }
        check_accuracies(run, path)?;
    }
    let metrics: [(&str, Metric); 4] = [
        ("overall", |r| Some(r.test.accuracy)),
        ("head classes", |r| r.test.group_accuracy.head),
        ("medium classes", |r| r.test.group_accuracy.medium),
        ("tail classes", |r| r.test.group_accuracy.tail),
    ];
    let y = Axis::new(0.0, 100.0, Scale::Linear).padded(0.02);
    let panels: Vec<LinePanel> = metrics
        .iter()
        .filter(|(_, metric)| {
            runs.iter()
                .any(|run| run.value.iter().any(|r| metric(r).is_some()))
        })
        .map(|&(name, metric)| LinePanel {
            heading: format!("test accuracy: {name}"),
            y,
            y_desc: "accuracy (%)".into(),
            lines: runs
                .iter()
                .enumerate()
                .map(|(i, run)| Line {
                    color: run_color(i),
                    width: halo_width(i, runs.len()),
                    segments: segments(run.value, metric),
                    end_label: None,
                    dashed: false,
                })
                .collect(),
            zero_line: false,
            x: None,
        })
        .collect();
    let epochs = runs
        .iter()
        .flat_map(|run| run.value.iter().map(|r| r.epoch as f64));
    let (first, last) = epochs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), e| {
        (a.min(e), b.max(e))
    });
    let legend = runs
        .iter()
        .enumerate()
        .map(|(i, run)| LegendItem::new(Swatch::Line(run_color(i)), final_summary(run)))
        .collect();
    let figure = LineFigure {
        size: (options.width, options.height),
        header: Header {
            title: "Test accuracy by epoch".into(),
            subtitle: vec!["group accuracy = mean of the group's per-class accuracies".into()],
            legend,
        },
        columns: if panels.len() > 2 { 2 } else { panels.len() },
        panels,
        x: Axis::new(first, last, Scale::Integer).padded(0.02),
        x_desc: "epoch".into(),
        dots: runs.iter().all(|run| run.value.len() <= MAX_DOTTED_EPOCHS),
    };
    render(&figure, path)
}

/// Earlier runs are drawn wider (2 px more per later run, at most 6 px) under later ones,
/// so runs that coincide (head accuracy near 100%) all stay visible.
fn halo_width(run: usize, runs: usize) -> u32 {
    (2 + 2 * (runs - 1 - run) as u32).min(6)
}

/// The metric in percent, split where it is missing, in epoch order.
fn segments(records: &[EpochRecord], metric: Metric) -> Vec<Vec<(f64, f64)>> {
    let mut sorted: Vec<&EpochRecord> = records.iter().collect();
    sorted.sort_by_key(|r| r.epoch);
    let mut out = Vec::new();
    let mut current = Vec::new();
    for r in sorted {
        match metric(r) {
            Some(v) => current.push((r.epoch as f64, 100.0 * v)),
            None if !current.is_empty() => out.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// `CE+DRW: final 85.1% (tail 60.2%)` from the last epoch.
fn final_summary(run: &Labeled<'_, [EpochRecord]>) -> String {
    let Some(last) = run.value.iter().max_by_key(|r| r.epoch) else {
        return run.label.to_string();
    };
    let percent = |v: f64| format!("{}%", format_number(100.0 * v, 3));
    let mut text = format!("{}: final {}", run.label, percent(last.test.accuracy));
    if let Some(tail) = last.test.group_accuracy.tail {
        text.push_str(&format!(" (tail {})", percent(tail)));
    }
    text
}

/// Every accuracy finite and within [0, 1].
fn check_accuracies(run: &Labeled<'_, [EpochRecord]>, path: &Path) -> Result<(), Error> {
    for r in run.value {
        let g = &r.test.group_accuracy;
        let values = [Some(r.test.accuracy), g.head, g.medium, g.tail];
        if let Some(v) = values
            .into_iter()
            .flatten()
            .find(|v| !(0.0..=1.0).contains(v))
        {
            let detail = format!(
                "run {} epoch {} has accuracy {v} (expected a number in [0, 1])",
                run.label, r.epoch
            );
            return Err(Error::InvalidData {
                path: path.to_path_buf(),
                detail,
            });
        }
    }
    Ok(())
}
