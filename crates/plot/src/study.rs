//! The figures of a study: per arm, the mean over seeds with its bootstrap interval as the
//! error bar, of λ_min per class (head → tail) and of the test accuracy per group.

use std::path::Path;

use saddlescope_results::{Interval, StudyReport};

use crate::bar_figure::{Bar, BarFigure, BarPanel};
use crate::bars::BarOptions;
use crate::error::Error;
use crate::input::{check_size, invalid_data};
use crate::output::render;
use crate::style::{run_color, Header, LegendItem, Swatch};

/// The bars of every arm in one slot per item, side by side: arm `k` of `arms` at its
/// offset, its value the interval's mean and its whisker the interval; an item without a
/// value gets no bar.
fn side_by_side(
    intervals: &[Vec<Option<Interval>>],
    path: &Path,
    what: &str,
) -> Result<Vec<Bar>, Error> {
    let arms = intervals.len();
    let width = 0.8 / arms.max(1) as f64;
    let mut bars = Vec::new();
    for (k, slots) in intervals.iter().enumerate() {
        for (slot, interval) in slots.iter().enumerate() {
            let Some(i) = interval else { continue };
            if ![i.mean, i.low, i.high].iter().all(|x| x.is_finite()) {
                return Err(invalid_data(
                    path,
                    format!("{what} of slot {slot} is not finite"),
                ));
            }
            bars.push(Bar {
                slot,
                offset: (k as f64 + 0.5) * width - 0.4,
                width: width * 0.9,
                value: i.mean,
                whisker: (i.low, i.high),
                color: run_color(k),
            });
        }
    }
    Ok(bars)
}

/// The header shared by both figures: title, the design in a line, one legend entry per
/// arm and a note on the error bars.
fn header(report: &StudyReport, title: String) -> Header {
    let seeds: Vec<String> = report.design.seeds.iter().map(|s| s.to_string()).collect();
    let mut legend: Vec<LegendItem> = report
        .design
        .arms
        .iter()
        .enumerate()
        .map(|(k, arm)| LegendItem::new(Swatch::Block(run_color(k)), arm.name.clone()))
        .collect();
    legend.push(LegendItem::new(
        Swatch::Note,
        format!(
            "bars: mean over seeds; error bars: {}% bootstrap interval (shown from 2 px)",
            (report.bootstrap.level * 100.0).round()
        ),
    ));
    Header {
        title,
        subtitle: vec![format!("seeds {}", seeds.join(", "))],
        legend,
    }
}

/// λ_min per class, head → tail, every arm side by side: the mean over seeds and its
/// bootstrap interval.
///
/// # Errors
/// [`Error::InvalidOption`], [`Error::Empty`] without arms or classes,
/// [`Error::InvalidData`] for a non-finite value, then rendering errors; every error names
/// `path`.
pub fn study_lambda_min(
    report: &StudyReport,
    path: &Path,
    options: &BarOptions,
) -> Result<(), Error> {
    check_size(path, "width", options.width)?;
    check_size(path, "height", options.height)?;
    let Some(first) = report.arms.first().filter(|a| !a.classes.is_empty()) else {
        return Err(Error::Empty {
            path: path.to_path_buf(),
            what: "the study has no arm with classes".into(),
        });
    };
    let intervals: Vec<Vec<Option<Interval>>> = report
        .arms
        .iter()
        .map(|arm| arm.classes.iter().map(|c| c.metrics.lambda_min).collect())
        .collect();
    let figure = BarFigure {
        size: (options.width, options.height),
        header: header(report, "λ_min per class over seeds, head → tail".into()),
        names: first.classes.iter().map(|c| c.name.clone()).collect(),
        groups: first.classes.iter().map(|c| c.group).collect(),
        x_desc: "class (ordered by train count, head → tail)".into(),
        panels: vec![BarPanel {
            y_desc: "λ_min (negative: a descent direction)".into(),
            bars: side_by_side(&intervals, path, "λ_min")?,
        }],
    };
    render(&figure, path)
}

/// Test accuracy per group (head, medium, tail), every arm side by side: the mean over
/// seeds and its bootstrap interval.
///
/// # Errors
/// As [`study_lambda_min`].
pub fn study_group_accuracy(
    report: &StudyReport,
    path: &Path,
    options: &BarOptions,
) -> Result<(), Error> {
    check_size(path, "width", options.width)?;
    check_size(path, "height", options.height)?;
    let Some(first) = report.arms.first().filter(|a| !a.groups.is_empty()) else {
        return Err(Error::Empty {
            path: path.to_path_buf(),
            what: "the study has no arm with groups".into(),
        });
    };
    let intervals: Vec<Vec<Option<Interval>>> = report
        .arms
        .iter()
        .map(|arm| arm.groups.iter().map(|g| g.metrics.test_accuracy).collect())
        .collect();
    let figure = BarFigure {
        size: (options.width, options.height),
        header: header(report, "Test accuracy per group over seeds".into()),
        names: first.groups.iter().map(|g| g.group.to_string()).collect(),
        groups: first.groups.iter().map(|g| Some(g.group)).collect(),
        x_desc: "group".into(),
        panels: vec![BarPanel {
            y_desc: "test accuracy".into(),
            bars: side_by_side(&intervals, path, "test accuracy")?,
        }],
    };
    render(&figure, path)
}
