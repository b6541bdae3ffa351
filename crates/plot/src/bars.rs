//! The eigenvalue bar figures: λ_max and λ_min per class, and λ_min of two analyses side
//! by side.

use std::path::Path;

use saddlescope_results::{AnalysisReport, ClassSpectrum};

use crate::bar_figure::{Bar, BarFigure, BarPanel};
use crate::error::Error;
use crate::input::{
    check_extremes, check_size, context, labeled_context, matched_classes, ordered_classes, Labeled,
};
use crate::output::render;
use crate::style::{group_color, group_legend, run_color, Header, LegendItem, Swatch};

/// Options of [`eigen_bars`] and [`compare_lambda_min`]: `width` × `height` pixels
/// (default 1200 × 800) whatever the number of classes; class names are thinned to fit.
#[derive(Debug, Clone, PartialEq)]
pub struct BarOptions {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl Default for BarOptions {
    fn default() -> Self {
        Self {
            width: 1200,
            height: 800,
        }
    }
}

/// Figure 4: bars of λ_max (top panel) and λ_min (bottom panel) per class, ordered head →
/// tail by train count and coloured by group, with the residual bounds ‖Hy − θy‖ as error
/// bars where they reach 2 px (usually they are far below a pixel: the extremes converge).
///
/// # Errors
/// [`Error::InvalidOption`], [`Error::Empty`] without classes, [`Error::InvalidData`] for a
/// non-finite value, then rendering errors; every error names `path`.
pub fn eigen_bars(report: &AnalysisReport, path: &Path, options: &BarOptions) -> Result<(), Error> {
    check_options(options, path)?;
    let ordered = ordered_classes(report, path)?;
    ordered.iter().try_for_each(|c| check_extremes(c, path))?;
    let bars = |value: fn(&ClassSpectrum) -> (f64, f64)| -> Vec<Bar> {
        ordered
            .iter()
            .enumerate()
            .map(|(slot, c)| {
                let (value, error) = value(c);
                Bar {
                    slot,
                    offset: 0.0,
                    width: 0.7,
                    value,
                    whisker: Bar::symmetric(value, error),
                    color: group_color(c.group),
                }
            })
            .collect()
    };
    let mut legend = group_legend(&ordered, Swatch::Block);
    legend.push(LegendItem::new(
        Swatch::Note,
        "error bars: residual bound ‖Hy − θy‖ (shown from 2 px)",
    ));
    let figure = BarFigure {
        size: (options.width, options.height),
        header: Header {
            title: "Extreme Hessian eigenvalues per class, head → tail".into(),
            subtitle: vec![context(report)],
            legend,
        },
        names: ordered.iter().map(|c| c.name.clone()).collect(),
        groups: ordered.iter().map(|c| c.group).collect(),
        x_desc: "class (ordered by train count, head → tail)".into(),
        panels: vec![
            BarPanel {
                y_desc: "λ_max".into(),
                bars: bars(|c| (c.estimate.lambda_max, c.estimate.lambda_max_bound)),
            },
            BarPanel {
                y_desc: "λ_min".into(),
                bars: bars(|c| (c.estimate.lambda_min, c.estimate.lambda_min_bound)),
            },
        ],
    };
    render(&figure, path)
}

/// Figure 5, bars: λ_min per class for two analyses side by side (`a` left, `b` right in
/// each slot), for the classes in both (matched by class index, head → tail by `a`'s
/// train counts), with residual bounds as error bars and the groups tinted behind.
///
/// # Errors
/// [`Error::Empty`] when no class is in both, otherwise as [`eigen_bars`].
pub fn compare_lambda_min(
    a: Labeled<'_, AnalysisReport>,
    b: Labeled<'_, AnalysisReport>,
    path: &Path,
    options: &BarOptions,
) -> Result<(), Error> {
    check_options(options, path)?;
    let pairs = matched_classes(a, b, path)?;
    let firsts: Vec<&ClassSpectrum> = pairs.iter().map(|p| p.0).collect();
    let seconds: Vec<&ClassSpectrum> = pairs.iter().map(|p| p.1).collect();
    firsts
        .iter()
        .chain(&seconds)
        .try_for_each(|c| check_extremes(c, path))?;
    let side = |classes: &[&ClassSpectrum], offset: f64, run: usize| -> Vec<Bar> {
        classes
            .iter()
            .enumerate()
            .map(|(slot, c)| Bar {
                slot,
                offset,
                width: 0.38,
                value: c.estimate.lambda_min,
                whisker: Bar::symmetric(c.estimate.lambda_min, c.estimate.lambda_min_bound),
                color: run_color(run),
            })
            .collect()
    };
    let mut bars = side(&firsts, -0.2, 0);
    bars.extend(side(&seconds, 0.2, 1));
    let figure = BarFigure {
        size: (options.width, options.height),
        header: Header {
            title: format!("λ_min per class: {} vs {}", a.label, b.label),
            subtitle: vec![labeled_context(a), labeled_context(b)],
            legend: vec![
                LegendItem::new(Swatch::Block(run_color(0)), a.label),
                LegendItem::new(Swatch::Block(run_color(1)), b.label),
                LegendItem::new(Swatch::Note, "background: head / medium / tail; error bars: residual bounds (shown from 2 px)"),
            ],
        },
        names: firsts.iter().map(|c| c.name.clone()).collect(),
        groups: firsts.iter().map(|c| c.group).collect(),
        x_desc: "class (ordered by train count, head → tail)".into(),
        panels: vec![BarPanel { y_desc: "λ_min (negative: saddle direction)".into(), bars }],
    };
    render(&figure, path)
}

fn check_options(options: &BarOptions, path: &Path) -> Result<(), Error> {
    check_size(path, "width", options.width)?;
    check_size(path, "height", options.height)
}
