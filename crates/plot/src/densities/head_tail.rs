//! Head against tail: the eigen-densities of two groups of classes in one plot.

use std::path::Path;

use saddlescope_results::{AnalysisReport, ClassSpectrum, Group};

use super::{check_density_options, group_density, members_label, single_figure, DensityOptions};
use crate::axis::{Axis, Scale};
use crate::density_figure::{Curve, DensityPanel};
use crate::error::Error;
use crate::input::{check_class, context, head_to_tail};
use crate::output::render;
use crate::style::{group_color, Header, LegendItem, Swatch};

/// Figure 3: the mean eigen-density of the head classes against that of the tail classes,
/// on one log axis. Each group's density is the spectral crate's [`density`](saddlescope_spectral::density) of all its
/// classes' Ritz measures together, smoothed on one grid spanning both groups with the
/// analysis's own kernel settings: the mean of the class densities when, as within one
/// analysis, every class has the same number of probes.
///
/// # Errors
/// [`Error::Empty`] when the head or the tail group has no class, [`Error::Density`] if
/// smoothing fails, otherwise as [`class_density`](super::class_density).
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
