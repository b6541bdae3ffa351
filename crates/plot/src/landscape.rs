//! Loss landscapes of one class ([`LandscapeReport`], `landscape.json`): the loss along
//! u_max, u_min and a random direction with the second-order model overlaid, and the loss
//! on the (u_max, u_min) plane as a heat map. At a saddle the u_min curve bends down and
//! the plane shows the saddle's cross: up along u_max, down along u_min.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use saddlescope_results::{DirectionCurve, DirectionKind, LandscapeReport, Plane};

use crate::axis::{format_number, Axis, Scale};
use crate::error::Error;
use crate::input::{check_size, invalid_data, value_with_bound};
use crate::line_figure::{Line, LineFigure, LinePanel};
use crate::output::{render, DrawError, Figure};
use crate::style::{
    text, Header, LegendItem, Swatch, TextSizes, LAMBDA_MAX, LAMBDA_MIN, MUTED, TOP_CENTRE,
};

/// Options of [`landscape_curves`]: `width` × `height` pixels (default 1500 × 620), the
/// three directions side by side.
#[derive(Debug, Clone, PartialEq)]
pub struct LandscapeOptions {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// An extra grey line under the title (e.g. class name, group, checkpoint).
    pub subtitle: Option<String>,
}

impl Default for LandscapeOptions {
    fn default() -> Self {
        Self {
            width: 1500,
            height: 620,
            subtitle: None,
        }
    }
}

/// Options of [`landscape_plane`]: `width` × `height` pixels (default 1000 × 850).
#[derive(Debug, Clone, PartialEq)]
pub struct PlaneOptions {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// An extra grey line under the title.
    pub subtitle: Option<String>,
}

impl Default for PlaneOptions {
    fn default() -> Self {
        Self {
            width: 1000,
            height: 850,
            subtitle: None,
        }
    }
}

/// The second-order model's colour (every panel).
const MODEL: RGBColor = RGBColor(40, 40, 40);

/// Colour and heading of a direction's curve: `u_min · λ_min = -1.68 ± 9e-5`.
fn describe(d: &DirectionCurve) -> (RGBColor, String) {
    match d.name {
        DirectionKind::Max => (
            LAMBDA_MAX,
            format!(
                "u_max · {}",
                value_with_bound("λ_max", d.eigenvalue, d.bound)
            ),
        ),
        DirectionKind::Min => (
            LAMBDA_MIN,
            format!(
                "u_min · {}",
                value_with_bound("λ_min", d.eigenvalue, d.bound)
            ),
        ),
        DirectionKind::Random => (
            MUTED,
            format!("random u · uᵀHu = {}", format_number(d.eigenvalue, 4)),
        ),
    }
}

/// `L(w) = 0.812 · lowest along u_min: 0.51 at t = 0.84 (-0.3)`.
fn summary(report: &LandscapeReport) -> String {
    let mut line = format!("L(w) = {}", format_number(report.loss0, 4));
    if let Some(min) = report.direction(DirectionKind::Min) {
        let (t, lowest) = min.lowest();
        line.push_str(&format!(
            " · lowest along u_min: {} at t = {} ({})",
            format_number(lowest, 4),
            format_number(t, 3),
            format_number(lowest - report.loss0, 3)
        ));
    }
    line
}

/// The 1-D landscape: one panel per direction (`max`, `min`, `random`, as stored), the
/// class loss `L(w + t·u)` as a solid line in the direction's colour and the second-order
/// model `L(w) + t·g·u + ½λt²` dashed; each panel is headed by its eigenvalue and residual
/// bound (the Rayleigh quotient for the random direction) and has its own t axis, since
/// every direction has its own range.
///
/// # Errors
/// [`Error::InvalidOption`], [`Error::Empty`] without directions, [`Error::InvalidData`]
/// for a curve with mismatched lengths, fewer than 2 points or a non-finite value, then
/// rendering errors; every error names `path`.
pub fn landscape_curves(
    report: &LandscapeReport,
    path: &Path,
    options: &LandscapeOptions,
) -> Result<(), Error> {
    check_size(path, "width", options.width)?;
    check_size(path, "height", options.height)?;
    if report.directions.is_empty() {
        return Err(Error::Empty {
            path: path.to_path_buf(),
            what: format!("the landscape of class {} has no directions", report.class),
        });
    }
    report
        .directions
        .iter()
        .try_for_each(|d| check_curve(d, path))?;
    let panels = report
        .directions
        .iter()
        .map(|d| {
            let (color, heading) = describe(d);
            let (lo, hi) = extent(d.loss.iter().chain(&d.quadratic));
            let points = |values: &[f64]| d.t.iter().copied().zip(values.iter().copied()).collect();
            let x = Axis::new(d.t[0], d.t[d.t.len() - 1], Scale::Linear).padded(0.02);
            LinePanel {
                heading,
                y: Axis::new(lo, hi, Scale::Linear).padded(0.06),
                y_desc: "class loss".into(),
                // The thin dashed model over the wide curve, so both show where they agree.
                lines: vec![
                    Line {
                        color,
                        width: 4,
                        segments: vec![points(&d.loss)],
                        end_label: None,
                        dashed: false,
                    },
                    Line {
                        color: MODEL,
                        width: 2,
                        segments: vec![points(&d.quadratic)],
                        end_label: None,
                        dashed: true,
                    },
                ],
                zero_line: false,
                x: Some((x, format!("t (distance along u_{})", d.name.as_str()))),
            }
        })
        .collect::<Vec<_>>();
    let mut subtitle: Vec<String> = options.subtitle.iter().cloned().collect();
    subtitle.push(summary(report));
    let mut legend: Vec<LegendItem> = report
        .directions
        .iter()
        .map(|d| {
            let label = match d.name {
                DirectionKind::Random => "L(w + t·u), u random".to_string(),
                kind => format!("L(w + t·u_{})", kind.as_str()),
            };
            LegendItem::new(Swatch::Line(describe(d).0), label)
        })
        .collect();
    legend.push(LegendItem::new(
        Swatch::Dashed(MODEL),
        "second-order model L(w) + t·g·u + ½λt²",
    ));
    let figure = LineFigure {
        size: (options.width, options.height),
        header: Header {
            title: format!(
                "Loss of class {} along the extreme Hessian eigenvectors",
                report.class
            ),
            subtitle,
            legend,
        },
        columns: panels.len(),
        panels,
        x: Axis::new(-1.0, 1.0, Scale::Linear),
        x_desc: String::new(),
        dots: false,
    };
    render(&figure, path)
}

/// The 2-D landscape: `L(w + s·u_max + t·u_min)` as a heat map on a diverging scale
/// centred at `L(w)` (white; blue below, red above, equal colour steps per loss unit on
/// both sides), the axes labelled with
/// λ_max and λ_min and their bounds, w marked with a cross, a colour bar on the right.
///
/// # Errors
/// [`Error::Empty`] when the report has no plane or lacks the `max` or `min` direction,
/// [`Error::InvalidData`] for a ragged, too small or non-finite plane, otherwise as
/// [`landscape_curves`].
pub fn landscape_plane(
    report: &LandscapeReport,
    path: &Path,
    options: &PlaneOptions,
) -> Result<(), Error> {
    check_size(path, "width", options.width)?;
    check_size(path, "height", options.height)?;
    let empty = |what: &str| Error::Empty {
        path: path.to_path_buf(),
        what: format!("the landscape of class {} has no {what}", report.class),
    };
    let plane = report.plane.as_ref().ok_or_else(|| empty("plane"))?;
    let max = report
        .direction(DirectionKind::Max)
        .ok_or_else(|| empty("u_max direction"))?;
    let min = report
        .direction(DirectionKind::Min)
        .ok_or_else(|| empty("u_min direction"))?;
    check_plane(plane, path)?;
    let (lo, hi) = extent(plane.loss.iter().flatten());
    let spread = (hi - report.loss0)
        .abs()
        .max((report.loss0 - lo).abs())
        .max(f64::MIN_POSITIVE);
    let mut subtitle: Vec<String> = options.subtitle.iter().cloned().collect();
    subtitle.push(format!(
        "L(w) = {} (white) · plane range {} to {}",
        format_number(report.loss0, 4),
        format_number(lo, 4),
        format_number(hi, 4)
    ));
    let figure = PlaneFigure {
        size: (options.width, options.height),
        header: Header {
            title: format!(
                "Loss of class {} on the plane of u_max and u_min",
                report.class
            ),
            subtitle,
            legend: vec![
                LegendItem::new(Swatch::Block(diverging(-1.0)), "below L(w)"),
                LegendItem::new(Swatch::Block(diverging(1.0)), "above L(w)"),
                LegendItem::new(Swatch::Note, "+ : the checkpoint w"),
            ],
        },
        plane: plane.clone(),
        center: report.loss0,
        spread,
        range: (lo.min(report.loss0), hi.max(report.loss0)),
        x_desc: format!(
            "s along u_max ({})",
            value_with_bound("λ_max", max.eigenvalue, max.bound)
        ),
        y_desc: format!(
            "t along u_min ({})",
            value_with_bound("λ_min", min.eigenvalue, min.bound)
        ),
    };
    render(&figure, path)
}

/// Lowest and highest of `values`.
fn extent<'a>(values: impl Iterator<Item = &'a f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
        (a.min(v), b.max(v))
    })
}

/// Equal lengths, at least 2 points, ascending t, finite values.
fn check_curve(d: &DirectionCurve, path: &Path) -> Result<(), Error> {
    let name = d.name.as_str();
    let k = d.t.len();
    if k < 2 || d.loss.len() != k || d.quadratic.len() != k {
        return Err(invalid_data(
            path,
            format!(
                "curve u_{name} has {k} t, {} loss and {} quadratic values (expected equal, at least 2)",
                d.loss.len(),
                d.quadratic.len()
            ),
        ));
    }
    let values = d.t.iter().chain(&d.loss).chain(&d.quadratic);
    if let Some(v) = values
        .chain([&d.eigenvalue, &d.bound])
        .find(|v| !v.is_finite())
    {
        return Err(invalid_data(path, format!("curve u_{name} holds {v}")));
    }
    if d.t.windows(2).any(|w| w[1] <= w[0]) {
        return Err(invalid_data(
            path,
            format!("t of curve u_{name} is not ascending"),
        ));
    }
    Ok(())
}

/// A loss row per s, each as long as t, at least 2 × 2, ascending grids, finite values.
fn check_plane(plane: &Plane, path: &Path) -> Result<(), Error> {
    let (ks, kt) = (plane.s.len(), plane.t.len());
    if ks < 2 || kt < 2 || plane.loss.len() != ks || plane.loss.iter().any(|r| r.len() != kt) {
        return Err(invalid_data(
            path,
            format!("the plane has {ks} s and {kt} t values but a loss table of other shape (expected {ks} rows of {kt}, at least 2 × 2)"),
        ));
    }
    let ascending = |g: &[f64]| g.windows(2).all(|w| w[1] > w[0]);
    if !ascending(&plane.s) || !ascending(&plane.t) {
        return Err(invalid_data(
            path,
            "the plane's grids are not ascending".into(),
        ));
    }
    let values = plane
        .s
        .iter()
        .chain(&plane.t)
        .chain(plane.loss.iter().flatten());
    if let Some(v) = values.into_iter().find(|v| !v.is_finite()) {
        return Err(invalid_data(path, format!("the plane holds {v}")));
    }
    Ok(())
}

/// A diverging scale for `f` in [-1, 1]: blue (-1), white (0), red (1), after ColorBrewer's
/// RdBu end points.
fn diverging(f: f64) -> RGBColor {
    const BLUE: (f64, f64, f64) = (33.0, 102.0, 172.0);
    const WHITE: (f64, f64, f64) = (247.0, 247.0, 247.0);
    const RED: (f64, f64, f64) = (178.0, 24.0, 43.0);
    let f = f.clamp(-1.0, 1.0);
    let (end, a) = if f < 0.0 { (BLUE, -f) } else { (RED, f) };
    let mix = |w: f64, e: f64| (w + (e - w) * a).round() as u8;
    RGBColor(
        mix(WHITE.0, end.0),
        mix(WHITE.1, end.1),
        mix(WHITE.2, end.2),
    )
}

/// Cell edges of an ascending grid: midpoints, and half a step beyond each end.
fn edges(grid: &[f64]) -> Vec<f64> {
    let k = grid.len();
    let mut e = Vec::with_capacity(k + 1);
    e.push(grid[0] - (grid[1] - grid[0]) / 2.0);
    e.extend(grid.windows(2).map(|w| (w[0] + w[1]) / 2.0));
    e.push(grid[k - 1] + (grid[k - 1] - grid[k - 2]) / 2.0);
    e
}

/// The heat map, ready to draw.
struct PlaneFigure {
    size: (u32, u32),
    header: Header,
    plane: Plane,
    center: f64,
    spread: f64,
    /// Loss range of the colour bar: the plane's values and `center`.
    range: (f64, f64),
    x_desc: String,
    y_desc: String,
}

const SIZES: TextSizes = TextSizes::LARGE;

/// Width of the colour bar's area, labels included.
const BAR_AREA: u32 = 170;

impl Figure for PlaneFigure {
    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawError<DB>> {
        let body = self.header.draw(root, &SIZES)?;
        let (width, _) = body.dim_in_pixel();
        let (map_area, bar_area) = body.split_horizontally(width.saturating_sub(BAR_AREA));
        let (se, te) = (edges(&self.plane.s), edges(&self.plane.t));
        let x = Axis::new(se[0], se[se.len() - 1], Scale::Linear);
        let y = Axis::new(te[0], te[te.len() - 1], Scale::Linear);
        let x_area = SIZES.tick * 1.8 + SIZES.desc * 1.6;
        let y_area = SIZES.tick * 3.6 + SIZES.desc * 1.6;
        let mut chart = ChartBuilder::on(&map_area)
            .margin(12)
            .x_label_area_size(x_area as u32)
            .y_label_area_size(y_area as u32)
            .build_cartesian_2d(x, y)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(8)
            .y_labels(8)
            .label_style(text(SIZES.tick, BLACK))
            .axis_desc_style(text(SIZES.desc, BLACK))
            .x_desc(self.x_desc.as_str())
            .y_desc(self.y_desc.as_str())
            .draw()?;
        let cells = self
            .plane
            .loss
            .iter()
            .enumerate()
            .flat_map(|(i, row)| row.iter().enumerate().map(move |(j, &l)| (i, j, l)));
        chart.draw_series(cells.map(|(i, j, l)| {
            let color = diverging((l - self.center) / self.spread);
            Rectangle::new([(se[i], te[j]), (se[i + 1], te[j + 1])], color.filled())
        }))?;
        // The checkpoint: a cross at the origin.
        let (dx, dy) = ((x.hi() - x.lo()) / 40.0, (y.hi() - y.lo()) / 40.0);
        for ends in [[(-dx, 0.0), (dx, 0.0)], [(0.0, -dy), (0.0, dy)]] {
            chart.draw_series(LineSeries::new(ends, BLACK.stroke_width(2)))?;
        }
        self.draw_bar(&bar_area)
    }
}

impl PlaneFigure {
    /// The colour bar: the diverging scale over the plane's loss range, labelled in loss
    /// units.
    fn draw_bar<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> Result<(), DrawError<DB>> {
        let (lo, hi) = self.range;
        let y = Axis::new(lo, hi, Scale::Linear);
        let mut chart = ChartBuilder::on(area)
            .margin_top(12)
            .margin_bottom(12 + (SIZES.tick * 1.8 + SIZES.desc * 1.6) as u32)
            .margin_right(12)
            .y_label_area_size((SIZES.tick * 3.6 + SIZES.desc * 1.6) as u32)
            .build_cartesian_2d(Axis::new(0.0, 1.0, Scale::Linear), y)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .disable_x_axis()
            .y_labels(8)
            .label_style(text(SIZES.tick, BLACK))
            .axis_desc_style(text(SIZES.desc, BLACK))
            .y_desc("class loss")
            .draw()?;
        let steps = 120;
        let step = (hi - lo) / steps as f64;
        chart.draw_series((0..steps).map(|k| {
            let from = lo + k as f64 * step;
            let color = diverging((from + step / 2.0 - self.center) / self.spread);
            Rectangle::new([(0.0, from), (1.0, from + step)], color.filled())
        }))?;
        chart.draw_series(std::iter::once(Text::new(
            "L(w)".to_string(),
            (0.5, self.center),
            text(SIZES.tick, BLACK).pos(TOP_CENTRE),
        )))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diverging_scale_and_cell_edges() {
        assert_eq!(diverging(0.0), RGBColor(247, 247, 247));
        assert_eq!(diverging(-1.0), RGBColor(33, 102, 172));
        assert_eq!(diverging(7.0), RGBColor(178, 24, 43));
        assert_eq!(diverging(0.5), RGBColor(213, 136, 145));
        assert_eq!(edges(&[-1.0, 0.0, 1.0]), vec![-1.5, -0.5, 0.5, 1.5]);
    }
}
