//! Every class's eigen-density in one grid of panels.

use std::path::Path;

use saddlescope_results::AnalysisReport;

use super::{
    axes, check_grid_options, extreme_markers, grid_figure, shade_text, shared_axes_note,
    verdict_flag, GridOptions,
};
use crate::axis::format_number;
use crate::density_figure::{Curve, DensityPanel};
use crate::error::Error;
use crate::input::{check_class, class_label, context, count_and_group, ordered_classes, spread};
use crate::output::render;
use crate::style::{
    group_color, group_legend, Header, LegendItem, Span, Swatch, LAMBDA_MAX, LAMBDA_MIN, MUTED,
};

/// Figure 2: every class's eigen-density in a grid with shared axes, ordered head → tail
/// by train count, each panel titled with the class, its count and group, λ_min/λ_max and
/// its verdict unless minimum-like (`SADDLE`, `NOT STATIONARY`, `UNDETERMINED`). Densities
/// are drawn as stored (each on its own grid, zero beyond).
///
/// # Errors
/// [`Error::Empty`] without classes, otherwise as [`class_density`](super::class_density).
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
