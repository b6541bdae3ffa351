//! Figure 1: the eigen-density of one class.

use std::path::Path;

use saddlescope_results::ClassSpectrum;

use super::{
    axes, check_density_options, extreme_markers, single_figure, verdict_flag, DensityOptions,
};
use crate::axis::format_number;
use crate::density_figure::{Curve, DensityPanel};
use crate::error::Error;
use crate::input::{check_class, class_label, count_and_group, value_with_bound};
use crate::output::render;
use crate::style::{group_color, Header, LegendItem, Swatch, LAMBDA_MAX, LAMBDA_MIN};

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
