//! Drawing density panels: one large panel (a class, the head/tail overlay) or a grid of
//! small ones with shared axes (all classes, two analyses compared). A log density axis
//! with the values floored, an eigenvalue axis linear or symlog, dashed λ markers.

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::axis::{format_number, Axis};
use crate::output::{DrawError, Figure};
use crate::style::{
    draw_span_lines, span_lines_height, text, Header, Span, TextSizes, GRID_BOLD, GRID_LIGHT,
    HEADING_GAP,
};

/// A density curve ready to draw: points already floored and thinned to the pixel columns.
#[derive(Debug, Clone)]
pub(crate) struct Curve {
    /// Line colour.
    pub color: RGBColor,
    /// Line width in pixels.
    pub width: u32,
    /// Points (λ, density ≥ floor), ascending in λ.
    pub points: Vec<(f64, f64)>,
}

impl Curve {
    /// The curve of a density sampled on `grid`, floored at `floor` and thinned to its
    /// maximum per pixel column of `x` (`columns` columns across the axis), so that narrow
    /// outlier peaks survive and a 10,000-point density does not bloat an SVG. Outside the
    /// grid the density is zero, drawn at the floor.
    pub(crate) fn new(
        color: RGBColor,
        grid: &[f64],
        values: &[f64],
        floor: f64,
        x: &Axis,
        columns: usize,
    ) -> Self {
        Self::with_width(color, 2, grid, values, floor, x, columns)
    }

    /// [`Curve::new`] with a line `width` other than 2 px.
    pub(crate) fn with_width(
        color: RGBColor,
        width: u32,
        grid: &[f64],
        values: &[f64],
        floor: f64,
        x: &Axis,
        columns: usize,
    ) -> Self {
        let mut points: Vec<(f64, f64)> = Vec::with_capacity(2 * columns + 4);
        let mut column_of_last = None;
        for (&g, &v) in grid.iter().zip(values) {
            let column = (x.fraction(g) * columns as f64).floor() as i64;
            let v = v.max(floor);
            match points.last_mut() {
                Some(last) if column_of_last == Some(column) => {
                    if v > last.1 {
                        *last = (g, v);
                    }
                }
                _ => points.push((g, v)),
            }
            column_of_last = Some(column);
        }
        if let (Some(&first), Some(&last)) = (grid.first(), grid.last()) {
            if first > x.lo() {
                points.splice(0..0, [(x.lo(), floor), (first, floor)]);
            }
            if last < x.hi() {
                points.extend([(last, floor), (x.hi(), floor)]);
            }
        }
        Self {
            color,
            width,
            points,
        }
    }
}

/// A vertical dashed line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Marker {
    /// Its λ.
    pub x: f64,
    /// Its colour.
    pub color: RGBColor,
}

/// One panel: heading lines, curves, markers.
#[derive(Debug, Clone)]
pub(crate) struct DensityPanel {
    /// Lines of coloured text above the plot (empty for a single-panel figure).
    pub heading: Vec<Vec<Span>>,
    /// Curves, drawn in order.
    pub curves: Vec<Curve>,
    /// Markers, drawn under the curves (a peak at λ_max stays visible).
    pub markers: Vec<Marker>,
}

/// A figure of density panels in a grid with shared axes.
#[derive(Debug, Clone)]
pub(crate) struct DensityFigure {
    /// Width and height in pixels.
    pub size: (u32, u32),
    /// Title, subtitle lines, legend.
    pub header: Header,
    /// Panels, row by row.
    pub panels: Vec<DensityPanel>,
    /// Panels per row.
    pub columns: usize,
    /// The shared eigenvalue axis.
    pub x: Axis,
    /// The shared log density axis.
    pub y: Axis,
    /// Description of the x axis (bottom panels).
    pub x_desc: String,
    /// Description of the y axis (left panels).
    pub y_desc: String,
    /// Text sizes.
    pub sizes: TextSizes,
}

impl Figure for DensityFigure {
    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawError<DB>> {
        let body = self.header.draw(root, &self.sizes)?;
        let columns = self.columns.max(1);
        let rows = self.panels.len().div_ceil(columns);
        let cells = body.split_evenly((rows, columns));
        for (i, (cell, panel)) in cells.iter().zip(&self.panels).enumerate() {
            let bottom = i + columns >= self.panels.len();
            let left = i.is_multiple_of(columns);
            self.draw_panel(cell, panel, bottom, left)?;
        }
        Ok(())
    }
}

impl DensityFigure {
    fn draw_panel<DB: DrawingBackend>(
        &self,
        cell: &DrawingArea<DB, Shift>,
        panel: &DensityPanel,
        bottom: bool,
        left: bool,
    ) -> Result<(), DrawError<DB>> {
        let s = &self.sizes;
        let plot_area = if panel.heading.is_empty() {
            cell.clone()
        } else {
            let (heading, rest) = cell
                .split_vertically(span_lines_height(panel.heading.len(), s.heading) + HEADING_GAP);
            draw_span_lines(&heading, &panel.heading, s.heading, HEADING_GAP as i32)?;
            rest
        };
        let (width, height) = plot_area.dim_in_pixel();
        let x_area = s.tick * 1.7 + if bottom { s.desc * 1.6 } else { 0.0 };
        let y_area = s.tick * 3.2 + if left { s.desc * 1.6 } else { 0.0 };
        let mut chart = ChartBuilder::on(&plot_area)
            .margin_top(6)
            .margin_bottom(4)
            .margin_right(16)
            .margin_left(4)
            .x_label_area_size(x_area as u32)
            .y_label_area_size(y_area as u32)
            .build_cartesian_2d(self.x, self.y)?;
        // As many x tick labels as fit with a gap of one character between neighbours
        // (measured, so every decade of a symlog axis shows when there is room), and labels
        // about every 35 px up.
        let x_labels = fitting_x_labels(&plot_area, &self.x, width as f64 - y_area - 20.0, s.tick)?;
        let y_labels = ((height as f64 - x_area) / 35.0).clamp(2.0, 10.0) as usize;
        let mut mesh = chart.configure_mesh();
        mesh.x_labels(x_labels)
            .y_labels(y_labels)
            .label_style(text(s.tick, BLACK))
            .axis_desc_style(text(s.desc, BLACK))
            .bold_line_style(GRID_BOLD)
            .light_line_style(GRID_LIGHT)
            .max_light_lines(1);
        if bottom {
            mesh.x_desc(self.x_desc.as_str());
        }
        if left {
            mesh.y_desc(self.y_desc.as_str());
        }
        mesh.draw()?;
        for marker in &panel.markers {
            let ends = [(marker.x, self.y.lo()), (marker.x, self.y.hi())];
            chart.draw_series(DashedLineSeries::new(
                ends,
                7,
                5,
                marker.color.stroke_width(2),
            ))?;
        }
        for curve in &panel.curves {
            chart.draw_series(LineSeries::new(
                curve.points.iter().copied(),
                curve.color.stroke_width(curve.width),
            ))?;
        }
        Ok(())
    }
}

/// The largest tick count (2 to 12) whose labels on `axis`, drawn `plot_width` pixels wide in
/// tick text of `size`, keep at least one character's gap between neighbours.
fn fitting_x_labels<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    axis: &Axis,
    plot_width: f64,
    size: f64,
) -> Result<usize, DrawError<DB>> {
    let style = text(size, BLACK);
    for max in (3..=12).rev() {
        let ticks = axis.ticks(max);
        let mut placed = Vec::with_capacity(ticks.len());
        for v in &ticks {
            let width = area.estimate_text_size(&format_number(*v, 3), &style)?.0 as f64;
            placed.push((axis.fraction(*v) * plot_width, width));
        }
        let fits = placed
            .windows(2)
            .all(|w| w[1].0 - w[0].0 >= (w[0].1 + w[1].1) / 2.0 + size);
        if fits {
            return Ok(max);
        }
    }
    Ok(2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::axis::Scale;

    #[test]
    fn curve_keeps_the_peak_of_each_column_and_floors_the_rest() {
        let x = Axis::new(-1.0, 2.0, Scale::Linear);
        let grid: Vec<f64> = (0..1001).map(|i| i as f64 / 1000.0).collect();
        let mut values = vec![0.0; 1001];
        values[437] = 5.0;
        let curve = Curve::new(RGBColor(0, 0, 0), &grid, &values, 1e-8, &x, 30);
        // Grid [0, 1] covers 10 of the 30 columns; plus 2 floor points on each side.
        assert_eq!(curve.points.len(), 10 + 1 + 4);
        assert!(curve.points.contains(&(0.437, 5.0)));
        assert!(curve.points.iter().all(|p| p.1 >= 1e-8));
        assert_eq!(curve.points[0], (-1.0, 1e-8));
        assert_eq!(*curve.points.last().unwrap(), (2.0, 1e-8));
    }
}
