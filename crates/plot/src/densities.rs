//! The eigen-density figures: one class, all classes in a grid, head vs tail, and two
//! analyses compared class by class.

use std::path::Path;

use plotters::style::RGBColor;
use saddlescope_results::{AnalysisReport, ClassSpectrum, Group, VerdictKind};
use saddlescope_spectral::{density, Density, RitzMeasure};

use crate::axis::{format_number, Axis, Scale, XScale};
use crate::density_figure::{Curve, DensityFigure, DensityPanel, Marker};
use crate::error::Error;
use crate::input::{
    check_class, check_size, class_label, context, count_and_group, head_to_tail, invalid_option,
    labeled_context, matched_classes, ordered_classes, spread, value_with_bound, Labeled,
};
use crate::output::render;
use crate::style::{
    group_color, group_legend, run_color, Header, LegendItem, Span, Swatch, TextSizes, LAMBDA_MAX,
    LAMBDA_MIN, MUTED, SADDLE,
};

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

/// Figure 1: the eigen-density of one class's Hessian on a log axis (floored), with dashed
/// markers at λ_min and λ_max whose values and residual bounds are in the legend. The title
/// names the class, its train count and group, and its verdict unless minimum-like
/// (`SADDLE`, `NOT STATIONARY`, `UNDETERMINED`).
///
/// # Errors
/// [`Error::InvalidOption`], [`Error::InvalidData`] for non-finite values or an all-zero
/// density, then rendering errors; every error names `path`.
pub fn class_density(
    class: &ClassSpectrum,
    path: &Path,
    options: &DensityOptions,
) -> Result<(), Error> {
    check_density_options(options, path)?;
    check_class(class, path)?;
    let e = &class.estimate;
    let (x, y, floor) = axes(&[class], options.xscale, options.linthresh, options.floor);
    let curve = Curve::new(
        group_color(class.group),
        &e.density.grid,
        &e.density.values,
        floor,
        &x,
        2 * options.width as usize,
    );
    let flag = verdict_flag(class).map_or(String::new(), |(flag, _)| format!(" · {flag}"));
    let mut subtitle: Vec<String> = options.subtitle.iter().cloned().collect();
    subtitle.push(format!(
        "λ_min/λ_max = {} · negative mass {} · {} probes × {} Lanczos steps · dimension {}",
        class
            .ratio_min_max
            .map_or_else(|| "undefined (λ_max ≤ 0)".into(), |r| format_number(r, 3)),
        format_number(e.negative_mass, 3),
        e.ritz.len(),
        e.params.slq.steps,
        e.dim
    ));
    let header = Header {
        title: format!(
            "Hessian eigen-density of {} ({}){flag}",
            class_label(class),
            count_and_group(class)
        ),
        subtitle,
        legend: vec![
            LegendItem::new(
                Swatch::Line(group_color(class.group)),
                "density (log, floored)",
            ),
            LegendItem::new(
                Swatch::Dashed(LAMBDA_MIN),
                value_with_bound("λ_min", e.lambda_min, e.lambda_min_bound),
            ),
            LegendItem::new(
                Swatch::Dashed(LAMBDA_MAX),
                value_with_bound("λ_max", e.lambda_max, e.lambda_max_bound),
            ),
        ],
    };
    let panel = DensityPanel {
        heading: Vec::new(),
        curves: vec![curve],
        markers: extreme_markers(class),
    };
    let figure = single_figure(header, panel, options, x, y);
    render(&figure, path)
}

/// Figure 2: every class's eigen-density in a grid with shared axes, ordered head → tail
/// by train count, each panel titled with the class, its count and group, λ_min/λ_max and
/// its verdict unless minimum-like (`SADDLE`, `NOT STATIONARY`, `UNDETERMINED`). Densities
/// are drawn as stored (each on its own grid, zero beyond).
///
/// # Errors
/// [`Error::Empty`] without classes, otherwise as [`class_density`].
pub fn class_grid(
    report: &AnalysisReport,
    path: &Path,
    options: &GridOptions,
) -> Result<(), Error> {
    check_grid_options(options, path)?;
    let ordered = ordered_classes(report, path)?;
    let shown = spread(&ordered, options.max_panels);
    for class in &shown {
        check_class(class, path)?;
    }
    let (x, y, floor) = axes(&shown, options.xscale, options.linthresh, options.floor);
    let columns_px = 2 * options.panel_width as usize;
    let panels = shown
        .iter()
        .map(|c| {
            let e = &c.estimate;
            let mut line1: Vec<Span> = vec![
                (class_label(c), group_color(c.group)),
                (format!(" · {}", count_and_group(c)), MUTED),
            ];
            if let Some((flag, color)) = verdict_flag(c) {
                line1.push((format!(" · {flag}"), color));
            }
            let line2: Vec<Span> = vec![
                (
                    format!("λ_min {}", format_number(e.lambda_min, 3)),
                    LAMBDA_MIN,
                ),
                ("  ·  ".into(), MUTED),
                (
                    format!("λ_max {}", format_number(e.lambda_max, 3)),
                    shade_text(LAMBDA_MAX),
                ),
            ];
            DensityPanel {
                heading: vec![line1, line2],
                curves: vec![Curve::new(
                    group_color(c.group),
                    &e.density.grid,
                    &e.density.values,
                    floor,
                    &x,
                    columns_px,
                )],
                markers: extreme_markers(c),
            }
        })
        .collect();
    let mut legend = group_legend(&shown, Swatch::Line);
    legend.push(LegendItem::new(Swatch::Dashed(LAMBDA_MIN), "λ_min"));
    legend.push(LegendItem::new(Swatch::Dashed(LAMBDA_MAX), "λ_max"));
    let mut subtitle = vec![
        context(report),
        shared_axes_note(options.floor, shown.len(), ordered.len()),
    ];
    subtitle.retain(|s| !s.is_empty());
    let header = Header {
        title: "Class-wise Hessian eigen-densities, head → tail".into(),
        subtitle,
        legend,
    };
    let figure = grid_figure(header, panels, options, x, y);
    render(&figure, path)
}

/// Figure 3: the mean eigen-density of the head classes against that of the tail classes,
/// on one log axis. Each group's density is the spectral crate's [`density`] of all its
/// classes' Ritz measures together, smoothed on one grid spanning both groups with the
/// analysis's own kernel settings: the mean of the class densities when, as within one
/// analysis, every class has the same number of probes.
///
/// # Errors
/// [`Error::Empty`] when the head or the tail group has no class, [`Error::Density`] if
/// smoothing fails, otherwise as [`class_density`].
pub fn head_tail(
    report: &AnalysisReport,
    path: &Path,
    options: &DensityOptions,
) -> Result<(), Error> {
    check_density_options(options, path)?;
    let ordered = head_to_tail(&report.classes);
    let members = |g: Group| -> Vec<&ClassSpectrum> {
        ordered
            .iter()
            .copied()
            .filter(|c| c.group == Some(g))
            .collect()
    };
    let (head, tail) = (members(Group::Head), members(Group::Tail));
    for (name, group) in [("head", &head), ("tail", &tail)] {
        if group.is_empty() {
            return Err(Error::Empty {
                path: path.to_path_buf(),
                what: format!("the {name} group has no class"),
            });
        }
    }
    for class in head.iter().chain(&tail) {
        check_class(class, path)?;
    }
    let nodes = head
        .iter()
        .chain(&tail)
        .flat_map(|c| c.estimate.ritz.iter().flat_map(|m| m.nodes.iter().copied()));
    let (lo, hi) = nodes.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !(lo.is_finite() && hi.is_finite()) {
        return Err(Error::InvalidData {
            path: path.to_path_buf(),
            detail: "the head and tail classes hold no Ritz nodes".into(),
        });
    }
    let head_density = group_density(&head, "head", lo, hi, path)?;
    let tail_density = group_density(&tail, "tail", lo, hi, path)?;
    let peak = head_density
        .values
        .iter()
        .chain(&tail_density.values)
        .fold(0.0f64, |m, &v| m.max(v));
    let grid = &head_density.grid;
    let x = Axis::eigen(
        grid[0],
        grid[grid.len() - 1],
        options.xscale,
        options.linthresh,
    );
    let floor = peak * options.floor;
    let y = Axis::new(floor / 2.0, peak * 2.0, Scale::Log);
    let columns = 2 * options.width as usize;
    let curves = vec![
        Curve::new(
            group_color(Some(Group::Head)),
            &head_density.grid,
            &head_density.values,
            floor,
            &x,
            columns,
        ),
        Curve::new(
            group_color(Some(Group::Tail)),
            &tail_density.grid,
            &tail_density.values,
            floor,
            &x,
            columns,
        ),
    ];
    let legend = vec![
        LegendItem::new(
            Swatch::Line(group_color(Some(Group::Head))),
            format!("head: {}", members_label(&head)),
        ),
        LegendItem::new(
            Swatch::Line(group_color(Some(Group::Tail))),
            format!("tail: {}", members_label(&tail)),
        ),
    ];
    let mut subtitle: Vec<String> = options.subtitle.iter().cloned().collect();
    subtitle.push(context(report));
    subtitle.push(
        "each curve: the group's Ritz measures smoothed together on one grid (the mean class density)"
            .into(),
    );
    let header = Header {
        title: "Mean Hessian eigen-density: head vs tail classes".into(),
        subtitle,
        legend,
    };
    let panel = DensityPanel {
        heading: Vec::new(),
        curves,
        markers: Vec::new(),
    };
    let figure = single_figure(header, panel, options, x, y);
    render(&figure, path)
}

/// Figure 5, densities: for every class present in both analyses (matched by class index,
/// ordered head → tail by `a`'s train counts), the two eigen-densities overlaid in one
/// panel of a grid with shared axes, with dashed λ_min markers in each run's colour. Panel
/// headings give both λ_min, `*` marking a saddle and `†` a class that is not stationary.
///
/// # Errors
/// [`Error::Empty`] when no class is in both, otherwise as [`class_density`].
pub fn compare_densities(
    a: Labeled<'_, AnalysisReport>,
    b: Labeled<'_, AnalysisReport>,
    path: &Path,
    options: &GridOptions,
) -> Result<(), Error> {
    check_grid_options(options, path)?;
    let pairs = matched_classes(a, b, path)?;
    let shown = spread(&pairs, options.max_panels);
    let all: Vec<&ClassSpectrum> = shown.iter().flat_map(|&(ca, cb)| [ca, cb]).collect();
    for class in &all {
        check_class(class, path)?;
    }
    let (x, y, floor) = axes(&all, options.xscale, options.linthresh, options.floor);
    let columns_px = 2 * options.panel_width as usize;
    let (color_a, color_b) = (run_color(0), run_color(1));
    let star = |c: &ClassSpectrum| match c.verdict {
        VerdictKind::Saddle => "*",
        VerdictKind::NotStationary => "†",
        _ => "",
    };
    let panels = shown
        .iter()
        .map(|&(ca, cb)| {
            let line1: Vec<Span> = vec![
                (class_label(ca), group_color(ca.group)),
                (format!(" · {}", count_and_group(ca)), MUTED),
            ];
            let line2: Vec<Span> = vec![
                ("λ_min ".into(), MUTED),
                (
                    format!("{}{}", format_number(ca.estimate.lambda_min, 3), star(ca)),
                    color_a,
                ),
                (" vs ".into(), MUTED),
                (
                    format!("{}{}", format_number(cb.estimate.lambda_min, 3), star(cb)),
                    shade_text(color_b),
                ),
            ];
            // `a` wide under `b` thin: where the densities coincide both stay visible.
            let curve = |c: &ClassSpectrum, color, width| {
                let d = &c.estimate.density;
                Curve::with_width(color, width, &d.grid, &d.values, floor, &x, columns_px)
            };
            DensityPanel {
                heading: vec![line1, line2],
                curves: vec![curve(ca, color_a, 4), curve(cb, color_b, 2)],
                markers: vec![
                    Marker {
                        x: ca.estimate.lambda_min,
                        color: color_a,
                    },
                    Marker {
                        x: cb.estimate.lambda_min,
                        color: color_b,
                    },
                ],
            }
        })
        .collect();
    let legend = vec![
        LegendItem::new(Swatch::Line(color_a), a.label),
        LegendItem::new(Swatch::Line(color_b), b.label),
        LegendItem::new(Swatch::Dashed(color_a), format!("λ_min {}", a.label)),
        LegendItem::new(Swatch::Dashed(color_b), format!("λ_min {}", b.label)),
        LegendItem::new(Swatch::Note, "* saddle · † not stationary"),
    ];
    let subtitle = vec![
        labeled_context(a),
        labeled_context(b),
        shared_axes_note(options.floor, shown.len(), pairs.len()),
    ];
    let header = Header {
        title: format!("Eigen-densities per class: {} vs {}", a.label, b.label),
        subtitle,
        legend,
    };
    let figure = grid_figure(header, panels, options, x, y);
    render(&figure, path)
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
