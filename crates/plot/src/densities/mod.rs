//! The eigen-density figures: one class, all classes in a grid, head vs tail, and two
//! analyses compared class by class, a file each; the options and the drawing they share here.

mod class;
mod compare;
mod grid;
mod head_tail;

pub use class::class_density;
pub use compare::compare_densities;
pub use grid::class_grid;
pub use head_tail::head_tail;

use std::path::Path;

use plotters::style::RGBColor;
use saddlescope_results::{ClassSpectrum, VerdictKind};
use saddlescope_spectral::{density, Density, RitzMeasure};

use crate::axis::{format_number, Axis, Scale, XScale};
use crate::density_figure::{DensityFigure, DensityPanel, Marker};
use crate::error::Error;
use crate::input::{check_size, invalid_option};
use crate::style::{Header, TextSizes, LAMBDA_MAX, LAMBDA_MIN, MUTED, SADDLE};

/// Options of [`class_density`] and [`head_tail`]: one plot of `width` × `height` pixels
/// (default 1200 × 700).
#[derive(Debug, Clone, PartialEq)]
pub struct DensityOptions {
    /// Eigenvalue axis scale.
    pub xscale: XScale,
    /// Symlog threshold c (linear within ±c); `None`: the power of ten at or below 1/1000
    /// of the largest |λ| on the axis.
    pub linthresh: Option<f64>,
    /// Density floor relative to the highest peak drawn (default 1e-8): a log axis cannot
    /// show the zeros between Ritz nodes, so values are clipped there, as the paper's
    /// (and PyHessian's) figures do.
    pub floor: f64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// An extra grey line under the title (e.g. data set and checkpoint).
    pub subtitle: Option<String>,
}

impl Default for DensityOptions {
    fn default() -> Self {
        Self {
            xscale: XScale::Linear,
            linthresh: None,
            floor: 1e-8,
            width: 1200,
            height: 700,
            subtitle: None,
        }
    }
}

/// Options of [`class_grid`] and [`compare_densities`]: panels of `panel_width` ×
/// `panel_height` pixels (default 380 × 300), `columns` per row, under a header; the
/// figure is `columns × panel_width` wide and `header + rows × panel_height` tall (C = 10:
/// 5 × 2 panels, 1900 × about 750).
#[derive(Debug, Clone, PartialEq)]
pub struct GridOptions {
    /// Eigenvalue axis scale (shared by all panels).
    pub xscale: XScale,
    /// Symlog threshold; `None`: automatic, as in [`DensityOptions::linthresh`].
    pub linthresh: Option<f64>,
    /// Density floor relative to the highest peak of all panels (default 1e-8).
    pub floor: f64,
    /// Panel width in pixels.
    pub panel_width: u32,
    /// Panel height in pixels (heading included).
    pub panel_height: u32,
    /// Panels per row; `None`: all in one row up to 5, then 5 up to 10 panels, then about
    /// √(1.5 n), at most 10.
    pub columns: Option<usize>,
    /// At most this many panels (default 50); with more classes, evenly spaced classes in
    /// head → tail order are shown and the subtitle says so.
    pub max_panels: usize,
}

impl Default for GridOptions {
    fn default() -> Self {
        Self {
            xscale: XScale::Linear,
            linthresh: None,
            floor: 1e-8,
            panel_width: 380,
            panel_height: 300,
            columns: None,
            max_panels: 50,
        }
    }
}

/// A class's verdict as its figures flag it, upper case with its colour: `SADDLE` in the
/// saddle red, `NOT STATIONARY` and `UNDETERMINED` muted; `None` for minimum-like, the
/// common case, so that flags stand out.
fn verdict_flag(class: &ClassSpectrum) -> Option<(String, RGBColor)> {
    let color = match class.verdict {
        VerdictKind::MinimumLike => return None,
        VerdictKind::Saddle => SADDLE,
        VerdictKind::NotStationary | VerdictKind::Undetermined => MUTED,
    };
    Some((class.verdict.label().to_uppercase(), color))
}

/// The shared axes of `classes`: x spans every density grid and every λ_min/λ_max, y runs
/// from half the floor to twice the highest peak. Returns the absolute floor too.
fn axes(
    classes: &[&ClassSpectrum],
    xscale: XScale,
    linthresh: Option<f64>,
    floor: f64,
) -> (Axis, Axis, f64) {
    let (mut lo, mut hi, mut peak) = (f64::INFINITY, f64::NEG_INFINITY, 0.0f64);
    for c in classes {
        let e = &c.estimate;
        let grid = &e.density.grid;
        lo = lo.min(grid[0]).min(e.lambda_min);
        hi = hi.max(grid[grid.len() - 1]).max(e.lambda_max);
        peak = e.density.values.iter().fold(peak, |m, &v| m.max(v));
    }
    let floor = peak * floor;
    (
        Axis::eigen(lo, hi, xscale, linthresh),
        Axis::new(floor / 2.0, peak * 2.0, Scale::Log),
        floor,
    )
}

/// The density of all Ritz measures of `classes`, on the grid spanning [lo, hi] plus the
/// analysis's margin, with the first class's density parameters. Zero-weight nodes at lo
/// and hi pin the grid: [`density`] spans all nodes and a weight of zero adds no mass.
fn group_density(
    classes: &[&ClassSpectrum],
    name: &str,
    lo: f64,
    hi: f64,
    path: &Path,
) -> Result<Density, Error> {
    let params = &classes[0].estimate.params.density;
    let mut measures: Vec<RitzMeasure> = classes
        .iter()
        .flat_map(|c| c.estimate.ritz.iter().cloned())
        .collect();
    // Pinning measure: weights zero, so only the grid changes; the normalization of
    // `density` (Riemann sum 1) undoes the 1/(count + 1) probe averaging.
    measures.push(RitzMeasure {
        nodes: vec![lo, hi],
        weights: vec![0.0, 0.0],
    });
    density(&measures, params).map_err(|source| Error::Density {
        path: path.to_path_buf(),
        what: format!("the {name} group"),
        source,
    })
}

/// `mean of 4 classes (0, 1, 2, 3)`, names listed up to 6 classes.
fn members_label(classes: &[&ClassSpectrum]) -> String {
    let n = classes.len();
    let noun = if n == 1 { "class" } else { "classes" };
    if n <= 6 {
        let names: Vec<&str> = classes.iter().map(|c| c.name.as_str()).collect();
        format!("mean of {n} {noun} ({})", names.join(", "))
    } else {
        format!("mean of {n} {noun}")
    }
}

/// `shared axes; density floored at 1e-8 × the highest peak`, plus `showing k of n classes`.
fn shared_axes_note(floor: f64, shown: usize, total: usize) -> String {
    let mut note = format!(
        "shared axes; density floored at {} × the highest peak",
        format_number(floor, 1)
    );
    if shown < total {
        note.push_str(&format!(
            "; showing {shown} of {total} classes, evenly spaced head → tail"
        ));
    }
    note
}

/// Dashed λ_min and λ_max markers of a class.
fn extreme_markers(c: &ClassSpectrum) -> Vec<Marker> {
    vec![
        Marker {
            x: c.estimate.lambda_min,
            color: LAMBDA_MIN,
        },
        Marker {
            x: c.estimate.lambda_max,
            color: LAMBDA_MAX,
        },
    ]
}

/// A one-panel figure of `options`' size.
fn single_figure(
    header: Header,
    panel: DensityPanel,
    options: &DensityOptions,
    x: Axis,
    y: Axis,
) -> DensityFigure {
    DensityFigure {
        size: (options.width, options.height),
        header,
        panels: vec![panel],
        columns: 1,
        x,
        y,
        x_desc: format!("eigenvalue λ{}", x.note()),
        y_desc: format!("density (floor {} × peak)", format_number(options.floor, 1)),
        sizes: TextSizes::LARGE,
    }
}

/// A grid figure of `panels` laid out by `options`.
fn grid_figure(
    header: Header,
    panels: Vec<DensityPanel>,
    options: &GridOptions,
    x: Axis,
    y: Axis,
) -> DensityFigure {
    let columns = options
        .columns
        .unwrap_or_else(|| auto_columns(panels.len()))
        .clamp(1, panels.len().max(1));
    let rows = panels.len().div_ceil(columns) as u32;
    let width = columns as u32 * options.panel_width;
    let sizes = TextSizes::SMALL;
    let height = header.height(width, &sizes) + rows * options.panel_height;
    DensityFigure {
        size: (width, height),
        header,
        panels,
        columns,
        x,
        y,
        x_desc: format!("eigenvalue λ{}", x.note()),
        y_desc: "density (log)".into(),
        sizes,
    }
}

/// Panels per row for `n` panels (see [`GridOptions::columns`]).
fn auto_columns(n: usize) -> usize {
    match n {
        0..=5 => n.max(1),
        6..=10 => 5,
        _ => ((1.5 * n as f64).sqrt().ceil() as usize).min(10),
    }
}

/// Orange text is hard to read on white: darker for text only.
fn shade_text(color: RGBColor) -> RGBColor {
    crate::style::shade(color, -0.25)
}

/// The floor in (0, 1) and the symlog threshold, when given, finite and positive.
fn check_scale(path: &Path, floor: f64, linthresh: Option<f64>) -> Result<(), Error> {
    if !(floor > 0.0 && floor < 1.0) {
        return Err(invalid_option(path, "floor", floor, "a number in (0, 1)"));
    }
    if let Some(c) = linthresh.filter(|c| !(c.is_finite() && *c > 0.0)) {
        return Err(invalid_option(path, "linthresh", c, "a finite number > 0"));
    }
    Ok(())
}

fn check_density_options(options: &DensityOptions, path: &Path) -> Result<(), Error> {
    check_size(path, "width", options.width)?;
    check_size(path, "height", options.height)?;
    check_scale(path, options.floor, options.linthresh)
}

fn check_grid_options(options: &GridOptions, path: &Path) -> Result<(), Error> {
    check_size(path, "panel_width", options.panel_width)?;
    check_size(path, "panel_height", options.panel_height)?;
    check_scale(path, options.floor, options.linthresh)?;
    if options.max_panels == 0 {
        return Err(invalid_option(path, "max_panels", 0.0, "at least 1"));
    }
    Ok(())
}
