//! The eigenvalue timeline: λ_max and λ_min of every class across checkpoints of one run.

use std::collections::BTreeMap;
use std::path::Path;

use saddlescope_results::{AnalysisReport, ClassSpectrum};

use crate::axis::{Axis, Scale};
use crate::error::Error;
use crate::input::{check_extremes, check_size, head_to_tail};
use crate::line_figure::{Line, LineFigure, LinePanel};
use crate::output::render;
use crate::style::{group_color, group_legend, shade, Header, LegendItem, Swatch, MUTED};

/// Options of [`timeline`]: `width` × `height` pixels (default 1200 × 900), λ_max above
/// λ_min.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineOptions {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl Default for TimelineOptions {
    fn default() -> Self {
        Self {
            width: 1200,
            height: 900,
        }
    }
}

/// Classes are named at their line's end up to this many classes.
const MAX_END_LABELS: usize = 20;

/// Figure 7: λ_max (top) and λ_min (bottom) of each class against the epoch of each
/// analysed checkpoint (`(epoch, analysis)` pairs, in any order), one line per class
/// coloured by group (shades within a group) and named at its end; classes are matched by
/// index, ordered head → tail by the latest analysis that has them. A dashed line marks
/// λ = 0.
///
/// # Errors
/// [`Error::InvalidOption`], [`Error::Empty`] without checkpoints or classes,
/// [`Error::InvalidData`] for a non-finite value, then rendering errors; every error names
/// `path`.
pub fn timeline(
    checkpoints: &[(usize, &AnalysisReport)],
    path: &Path,
    options: &TimelineOptions,
) -> Result<(), Error> {
    check_size(path, "width", options.width)?;
    check_size(path, "height", options.height)?;
    let mut sorted: Vec<(usize, &AnalysisReport)> = checkpoints.to_vec();
    sorted.sort_by_key(|&(epoch, _)| epoch);
    // Per class index: its latest record (order, group, name) and its (epoch, class) points.
    let mut tracks: BTreeMap<usize, Track> = BTreeMap::new();
    for &(epoch, report) in &sorted {
        for c in &report.classes {
            check_extremes(c, path)?;
            if let Some(index) = c.class {
                let track = tracks.entry(index).or_insert(Track {
                    latest: c,
                    points: Vec::new(),
                });
                track.latest = c;
                track.points.push((epoch as f64, c));
            }
        }
    }
    if tracks.is_empty() {
        return Err(Error::Empty {
            path: path.to_path_buf(),
            what: "no checkpoint analysis holds a class".into(),
        });
    }
    let latest: Vec<ClassSpectrum> = tracks.values().map(|t| t.latest.clone()).collect();
    let ordered = head_to_tail(&latest);
    let named = ordered.len() <= MAX_END_LABELS;
    let panel = |name: &str, value: fn(&ClassSpectrum) -> f64, zero: bool| -> LinePanel {
        let lines: Vec<Line> = ordered
            .iter()
            .filter_map(|c| {
                let points = &tracks.get(&c.class?)?.points;
                Some(Line {
                    color: class_color(c, &ordered),
                    width: 2,
                    segments: vec![points.iter().map(|&(epoch, p)| (epoch, value(p))).collect()],
                    end_label: named.then(|| c.name.clone()),
                    dashed: false,
                })
            })
            .collect();
        let values = lines
            .iter()
            .flat_map(|l| l.segments.iter().flatten().map(|p| p.1));
        let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
        let (lo, hi) = if zero {
            (lo.min(0.0), hi.max(0.0))
        } else {
            (lo, hi)
        };
        LinePanel {
            heading: format!("{name} per class"),
            y: Axis::new(lo, hi, Scale::Linear).padded(0.06),
            y_desc: name.into(),
            lines,
            zero_line: zero,
            x: None,
        }
    };
    let panels = vec![
        panel("λ_max", |c| c.estimate.lambda_max, false),
        panel("λ_min", |c| c.estimate.lambda_min, true),
    ];
    let mut legend = group_legend(&ordered, Swatch::Line);
    legend.push(LegendItem::new(Swatch::Dashed(MUTED), "λ = 0"));
    let (first, last) = (sorted[0].0 as f64, sorted[sorted.len() - 1].0 as f64);
    let figure = LineFigure {
        size: (options.width, options.height),
        header: Header {
            title: "Extreme Hessian eigenvalues across checkpoints".into(),
            subtitle: vec![format!(
                "{} · {} split · {} checkpoints, epochs {}–{}",
                sorted[0].1.dataset,
                sorted[0].1.split,
                sorted.len(),
                sorted[0].0,
                sorted[sorted.len() - 1].0
            )],
            legend,
        },
        panels,
        columns: 1,
        x: Axis::new(first, last, Scale::Integer).padded(0.02),
        x_desc: "epoch".into(),
        dots: sorted.len() <= 40,
    };
    render(&figure, path)
}

/// One class across checkpoints.
struct Track<'a> {
    /// Its record in the latest analysis that has it (order, group, name).
    latest: &'a ClassSpectrum,
    /// (epoch, record) in epoch order.
    points: Vec<(f64, &'a ClassSpectrum)>,
}

/// The group colour, darker for the group's first classes and lighter for its last, so
/// lines of one group stay apart.
fn class_color(c: &ClassSpectrum, ordered: &[&ClassSpectrum]) -> plotters::style::RGBColor {
    let members: Vec<&&ClassSpectrum> = ordered.iter().filter(|o| o.group == c.group).collect();
    let rank = members.iter().position(|o| o.class == c.class).unwrap_or(0);
    let amount = if members.len() > 1 {
        -0.35 + 0.6 * rank as f64 / (members.len() - 1) as f64
    } else {
        0.0
    };
    shade(group_color(c.group), amount)
}
