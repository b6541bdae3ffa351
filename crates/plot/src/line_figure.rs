//! Drawing line panels: training curves and eigenvalue timelines over epochs, loss
//! landscapes over distance. Lines may have gaps (a metric missing at some epoch), be dashed
//! (a model beside a measurement) and carry a label at their right end, pushed apart so
//! labels never overlap.

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::axis::Axis;
use crate::output::{DrawError, Figure};
use crate::style::{
    draw_span_lines, span_lines_height, text, Header, TextSizes, GRID_BOLD, GRID_LIGHT,
    HEADING_GAP, LEFT_MIDDLE, MUTED,
};

/// One line.
#[derive(Debug, Clone)]
pub(crate) struct Line {
    /// Colour.
    pub color: RGBColor,
    /// Width in pixels.
    pub width: u32,
    /// Connected pieces, each ascending in x.
    pub segments: Vec<Vec<(f64, f64)>>,
    /// Text drawn right of the last point.
    pub end_label: Option<String>,
    /// Drawn dashed, without dots.
    pub dashed: bool,
}

/// One panel.
#[derive(Debug, Clone)]
pub(crate) struct LinePanel {
    /// Heading above the plot.
    pub heading: String,
    /// Its y axis.
    pub y: Axis,
    /// Description of the y axis.
    pub y_desc: String,
    /// Lines, drawn in order.
    pub lines: Vec<Line>,
    /// Draw a dashed line at y = 0.
    pub zero_line: bool,
    /// The panel's own x axis and its description (always drawn), instead of the figure's
    /// shared one.
    pub x: Option<(Axis, String)>,
}

/// Panels in a grid over one shared x axis.
#[derive(Debug, Clone)]
pub(crate) struct LineFigure {
    /// Width and height in pixels.
    pub size: (u32, u32),
    /// Title, subtitle lines, legend.
    pub header: Header,
    /// Panels, row by row.
    pub panels: Vec<LinePanel>,
    /// Panels per row.
    pub columns: usize,
    /// The shared x axis.
    pub x: Axis,
    /// Description of the x axis.
    pub x_desc: String,
    /// Mark every point with a dot (few epochs).
    pub dots: bool,
}

const SIZES: TextSizes = TextSizes::LARGE;

impl Figure for LineFigure {
    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawError<DB>> {
        let body = self.header.draw(root, &SIZES)?;
        let columns = self.columns.max(1);
        let cells = body.split_evenly((self.panels.len().div_ceil(columns), columns));
        for (i, (cell, panel)) in cells.iter().zip(&self.panels).enumerate() {
            self.draw_panel(cell, panel, i + columns >= self.panels.len())?;
        }
        Ok(())
    }
}

impl LineFigure {
    /// Draws one panel; only `bottom` panels (none below them) describe the shared x axis,
    /// every panel its own.
    fn draw_panel<DB: DrawingBackend>(
        &self,
        cell: &DrawingArea<DB, Shift>,
        panel: &LinePanel,
        bottom: bool,
    ) -> Result<(), DrawError<DB>> {
        let (heading, plot_area) =
            cell.split_vertically(span_lines_height(1, SIZES.heading) + HEADING_GAP);
        draw_span_lines(
            &heading,
            &[vec![(panel.heading.clone(), BLACK)]],
            SIZES.heading,
            HEADING_GAP as i32,
        )?;
        let label_style = text(SIZES.tick, BLACK);
        let mut label_width = 0;
        for label in panel.lines.iter().filter_map(|l| l.end_label.as_ref()) {
            label_width = label_width.max(plot_area.estimate_text_size(label, &label_style)?.0);
        }
        let (x, x_desc, describe_x) = match &panel.x {
            Some((axis, desc)) => (*axis, desc.as_str(), true),
            None => (self.x, self.x_desc.as_str(), bottom),
        };
        let x_area = SIZES.tick * 1.8 + if describe_x { SIZES.desc * 1.6 } else { 0.0 };
        let y_area = SIZES.tick * 3.6 + SIZES.desc * 1.6;
        let mut chart = ChartBuilder::on(&plot_area)
            .margin_top(6)
            .margin_bottom(4)
            .margin_left(8)
            .margin_right(16 + label_width + if label_width > 0 { 8 } else { 0 })
            .x_label_area_size(x_area as u32)
            .y_label_area_size(y_area as u32)
            .build_cartesian_2d(x, panel.y)?;
        let (width, height) = plot_area.dim_in_pixel();
        let mut mesh = chart.configure_mesh();
        mesh.x_labels(((width as f64 - y_area) / 70.0).clamp(2.0, 15.0) as usize)
            .y_labels(((height as f64 - x_area) / 40.0).clamp(2.0, 10.0) as usize)
            .label_style(label_style.clone())
            .axis_desc_style(text(SIZES.desc, BLACK))
            .bold_line_style(GRID_BOLD)
            .light_line_style(GRID_LIGHT)
            .max_light_lines(1)
            .y_desc(panel.y_desc.as_str());
        if describe_x {
            mesh.x_desc(x_desc);
        }
        mesh.draw()?;
        if panel.zero_line {
            let ends = [(x.lo(), 0.0), (x.hi(), 0.0)];
            chart.draw_series(DashedLineSeries::new(ends, 6, 4, MUTED.stroke_width(1)))?;
        }
        for line in &panel.lines {
            for segment in &line.segments {
                let style = line.color.stroke_width(line.width);
                if line.dashed {
                    chart.draw_series(DashedLineSeries::new(
                        segment.iter().copied(),
                        8,
                        6,
                        style,
                    ))?;
                    continue;
                }
                chart.draw_series(LineSeries::new(segment.iter().copied(), style))?;
                if self.dots {
                    let radius = line.width / 2 + 2;
                    chart.draw_series(
                        segment
                            .iter()
                            .map(|&p| Circle::new(p, radius, line.color.filled())),
                    )?;
                }
            }
        }
        // End labels: at their line's last point, pushed apart vertically.
        let base = plot_area.get_base_pixel();
        let mut labels: Vec<(i32, i32, &str, RGBColor)> = panel
            .lines
            .iter()
            .filter_map(|l| {
                let last = l.segments.iter().rev().find_map(|s| s.last())?;
                let (px, py) = chart.backend_coord(last);
                Some((
                    px - base.0 + 8,
                    py - base.1,
                    l.end_label.as_deref()?,
                    l.color,
                ))
            })
            .collect();
        let spacing = (SIZES.tick * 1.15).ceil() as i32;
        let y_pixels = chart.plotting_area().get_pixel_range().1;
        spread_apart(
            &mut labels,
            spacing,
            (y_pixels.start - base.1, y_pixels.end - base.1),
        );
        for (x, y, label, color) in labels {
            plot_area.draw(&Text::new(
                label.to_string(),
                (x, y),
                text(SIZES.tick, color).pos(LEFT_MIDDLE),
            ))?;
        }
        Ok(())
    }
}

/// Moves label heights (`.1`) apart by at least `spacing`, staying within `range`, keeping
/// their order: a downward pass, then an upward one from the bottom limit.
fn spread_apart<T>(labels: &mut [(i32, i32, T, RGBColor)], spacing: i32, range: (i32, i32)) {
    labels.sort_by_key(|l| l.1);
    let mut floor = range.0 + spacing / 2;
    for label in labels.iter_mut() {
        label.1 = label.1.max(floor);
        floor = label.1 + spacing;
    }
    let mut ceiling = range.1 - spacing / 2;
    for label in labels.iter_mut().rev() {
        label.1 = label.1.min(ceiling);
        ceiling = label.1 - spacing;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_labels_are_pushed_apart_within_the_range() {
        let mut labels = vec![
            (0, 50, "a", BLACK),
            (0, 52, "b", BLACK),
            (0, 99, "c", BLACK),
            (0, 51, "d", BLACK),
        ];
        spread_apart(&mut labels, 10, (0, 100));
        let heights: Vec<i32> = labels.iter().map(|l| l.1).collect();
        assert_eq!(heights, vec![50, 60, 70, 95]);
        assert_eq!(labels[1].2, "d");
        // Crowded at the bottom: the upward pass stacks them up from the limit.
        let mut crowded: Vec<_> = (0..5).map(|i| (0, 90 + i, i, BLACK)).collect();
        spread_apart(&mut crowded, 10, (0, 100));
        assert_eq!(
            crowded.iter().map(|l| l.1).collect::<Vec<_>>(),
            vec![55, 65, 75, 85, 95]
        );
    }
}
