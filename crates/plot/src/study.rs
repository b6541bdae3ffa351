//! The figures of a study: per arm, the mean over seeds with its bootstrap interval as the
//! error bar, of λ_min per class (head → tail) and of the test accuracy per group.

use std::path::Path;

use saddlescope_results::{Group, Interval, StudyReport};

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
        subtitle: vec![format!(
            "{} {}",
            if seeds.len() == 1 { "seed" } else { "seeds" },
            seeds.join(", ")
        )],
        legend,
    }
}

/// What one study figure shows: a slot per item (class or group), each arm's interval in
/// every slot, and the words around them.
struct StudyBars {
    title: &'static str,
    x_desc: &'static str,
    y_desc: &'static str,
    /// What a value is, for errors.
    what: &'static str,
    names: Vec<String>,
    groups: Vec<Option<Group>>,
    /// Per arm, per slot.
    intervals: Vec<Vec<Option<Interval>>>,
}

impl StudyBars {
    fn render(self, report: &StudyReport, path: &Path, options: &BarOptions) -> Result<(), Error> {
        check_size(path, "width", options.width)?;
        check_size(path, "height", options.height)?;
        if self.names.is_empty() {
            return Err(Error::Empty {
                path: path.to_path_buf(),
                what: format!("the study has no {}", self.x_desc),
            });
        }
        let figure = BarFigure {
            size: (options.width, options.height),
            header: header(report, self.title.into()),
            panels: vec![BarPanel {
                y_desc: self.y_desc.into(),
                bars: side_by_side(&self.intervals, path, self.what)?,
            }],
            names: self.names,
            groups: self.groups,
            x_desc: self.x_desc.into(),
        };
        render(&figure, path)
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
    let classes = report.arms.first().map_or(&[][..], |a| &a.classes[..]);
    StudyBars {
        title: "λ_min per class over seeds, head → tail",
        x_desc: "class (ordered by train count, head → tail)",
        y_desc: "λ_min (negative: a descent direction)",
        what: "λ_min",
        names: classes.iter().map(|c| c.name.clone()).collect(),
        groups: classes.iter().map(|c| c.group).collect(),
        intervals: report
            .arms
            .iter()
            .map(|arm| arm.classes.iter().map(|c| c.metrics.lambda_min).collect())
            .collect(),
    }
    .render(report, path, options)
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
    let groups = report.arms.first().map_or(&[][..], |a| &a.groups[..]);
    StudyBars {
        title: "Test accuracy per group over seeds",
        x_desc: "group",
        y_desc: "test accuracy",
        what: "test accuracy",
        names: groups.iter().map(|g| g.group.to_string()).collect(),
        groups: groups.iter().map(|g| Some(g.group)).collect(),
        intervals: report
            .arms
            .iter()
            .map(|arm| arm.groups.iter().map(|g| g.metrics.test_accuracy).collect())
            .collect(),
    }
    .render(report, path, options)
}
