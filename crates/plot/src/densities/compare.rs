//! Two analyses compared class by class: their densities in one grid.

use std::path::Path;

use saddlescope_results::{AnalysisReport, ClassSpectrum, VerdictKind};

use super::{axes, check_grid_options, grid_figure, shade_text, shared_axes_note, GridOptions};
use crate::axis::format_number;
use crate::density_figure::{Curve, DensityPanel, Marker};
use crate::error::Error;
use crate::input::{
    check_class, class_label, count_and_group, labeled_context, matched_classes, spread, Labeled,
};
use crate::output::render;
use crate::style::{group_color, run_color, Header, LegendItem, Span, Swatch, MUTED};

/// Figure 5, densities: for every class present in both analyses (matched by class index,
/// ordered head → tail by `a`'s train counts), the two eigen-densities overlaid in one
/// panel of a grid with shared axes, with dashed λ_min markers in each run's colour. Panel
/// headings give both λ_min, `*` marking a saddle and `†` a class that is not stationary.
///
/// # Errors
/// [`Error::Empty`] when no class is in both, otherwise as [`class_density`](super::class_density).
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
