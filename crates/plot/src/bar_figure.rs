//! Drawing bar panels over classes: one slot per class in head → tail order, bars with
//! error bars, the head/medium/tail regions tinted behind them, class names as ticks.

use plotters::coord::Shift;
use plotters::prelude::*;
use saddlescope_results::Group;

use crate::axis::{Axis, Scale};
use crate::output::{DrawError, Figure};
use crate::style::{
    group_color, shade, text, Header, TextSizes, GRID_BOLD, GRID_LIGHT, TOP_CENTRE,
};

/// One bar.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bar {
    /// Slot (class position) it belongs to.
    pub slot: usize,
    /// Centre offset from the slot centre, in slot widths.
    pub offset: f64,
    /// Width in slot widths.
    pub width: f64,
    /// Height (may be negative).
    pub value: f64,
    /// Ends of the error bar, below and above the value (drawn when at least 2 px long;
    /// equal to the value for none).
    pub whisker: (f64, f64),
    /// Fill colour.
    pub color: RGBColor,
}

/// One panel of bars sharing the slots.
#[derive(Debug, Clone)]
pub(crate) struct BarPanel {
    /// Description of the y axis.
    pub y_desc: String,
    /// The bars.
    pub bars: Vec<Bar>,
}

impl Bar {
    /// The ends of a symmetric error bar of half-length `error` around `value`.
    pub fn symmetric(value: f64, error: f64) -> (f64, f64) {
        (value - error, value + error)
    }
}

impl BarPanel {
    /// A linear y axis covering zero, every bar and error bar, with 14% headroom above for
    /// the group names.
    fn y_axis(&self) -> Axis {
        let (lo, hi) = self.bars.iter().fold((0.0f64, 0.0f64), |(lo, hi), b| {
            (lo.min(b.whisker.0), hi.max(b.whisker.1))
        });
        let span = if hi > lo { hi - lo } else { 1.0 };
        let lo = if lo < 0.0 { lo - 0.04 * span } else { lo };
        Axis::new(lo, hi + 0.14 * span, Scale::Linear)
    }
}

/// Panels of bars stacked vertically over the same class slots.
#[derive(Debug, Clone)]
pub(crate) struct BarFigure {
    /// Width and height in pixels.
    pub size: (u32, u32),
    /// Title, subtitle lines, legend.
    pub header: Header,
    /// Tick label of every slot (class names).
    pub names: Vec<String>,
    /// Group of every slot, for the tinted regions.
    pub groups: Vec<Option<Group>>,
    /// Description of the x axis.
    pub x_desc: String,
    /// Panels, top to bottom.
    pub panels: Vec<BarPanel>,
}

const SIZES: TextSizes = TextSizes::LARGE;

impl Figure for BarFigure {
    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawError<DB>> {
        let body = self.header.draw(root, &SIZES)?;
        let cells = body.split_evenly((self.panels.len().max(1), 1));
        for (i, (cell, panel)) in cells.iter().zip(&self.panels).enumerate() {
            self.draw_panel(cell, panel, i == 0, i + 1 == self.panels.len())?;
        }
        Ok(())
    }
}

impl BarFigure {
    fn draw_panel<DB: DrawingBackend>(
        &self,
        cell: &DrawingArea<DB, Shift>,
        panel: &BarPanel,
        top: bool,
        bottom: bool,
    ) -> Result<(), DrawError<DB>> {
        let n = self.names.len();
        let x = Axis::new(-0.5, n as f64 - 0.5, Scale::Integer);
        let y = panel.y_axis();
        let x_area = SIZES.tick * 1.8 + if bottom { SIZES.desc * 1.6 } else { 0.0 };
        let y_area = SIZES.tick * 3.4 + SIZES.desc * 1.6;
        let mut chart = ChartBuilder::on(cell)
            .margin_top(6)
            .margin_right(20)
            .margin_left(8)
            .x_label_area_size(x_area as u32)
            .y_label_area_size(y_area as u32)
            .build_cartesian_2d(x, y)?;
        // As many class names as fit side by side with a gap of one character.
        let tick_style = text(SIZES.tick, BLACK);
        let widest = self.names.iter().try_fold(1u32, |w, name| {
            cell.estimate_text_size(name, &tick_style)
                .map(|(tw, _)| w.max(tw))
        })?;
        let plot_width = cell.dim_in_pixel().0 as f64 - y_area - 28.0;
        let x_labels = (plot_width / (widest as f64 + SIZES.tick)).clamp(1.0, n as f64) as usize;
        let name_of = |v: &f64| -> String {
            let i = v.round();
            if (v - i).abs() < 1e-6 && i >= 0.0 {
                self.names.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        };
        let plot_height = cell.dim_in_pixel().1 as f64 - x_area;
        // Regions first, then the grid, so the tint does not hide the grid lines.
        let regions = regions(&self.groups);
        chart.draw_series(regions.iter().map(|&(from, to, group)| {
            let corners = [(from as f64 - 0.5, y.lo()), (to as f64 + 0.5, y.hi())];
            Rectangle::new(corners, shade(group_color(group), 0.9).filled())
        }))?;
        let mut mesh = chart.configure_mesh();
        mesh.x_labels(x_labels)
            .x_label_formatter(&name_of)
            .y_labels((plot_height / 40.0).clamp(2.0, 10.0) as usize)
            .label_style(tick_style.clone())
            .axis_desc_style(text(SIZES.desc, BLACK))
            .disable_x_mesh()
            .bold_line_style(GRID_BOLD)
            .light_line_style(GRID_LIGHT)
            .max_light_lines(1)
            .y_desc(panel.y_desc.as_str());
        if bottom {
            mesh.x_desc(self.x_desc.as_str());
        }
        mesh.draw()?;
        if top {
            for &(from, to, group) in &regions {
                if let Some(g) = group {
                    let centre = (from + to) as f64 / 2.0;
                    let style = text(SIZES.desc, shade(group_color(group), -0.3)).pos(TOP_CENTRE);
                    chart.draw_series(std::iter::once(Text::new(
                        g.to_string(),
                        (centre, y.hi()),
                        style,
                    )))?;
                }
            }
        }
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(x.lo(), 0.0), (x.hi(), 0.0)],
            BLACK.stroke_width(1),
        )))?;
        chart.draw_series(panel.bars.iter().map(|b| {
            let centre = b.slot as f64 + b.offset;
            Rectangle::new(
                [
                    (centre - b.width / 2.0, 0.0),
                    (centre + b.width / 2.0, b.value),
                ],
                b.color.filled(),
            )
        }))?;
        // Error bars shorter than 2 px would only draw a black cap on the bar.
        let pixel_length = |b: &Bar| {
            (chart.backend_coord(&(0.0, b.whisker.0)).1
                - chart.backend_coord(&(0.0, b.whisker.1)).1)
                .abs()
        };
        let visible: Vec<&Bar> = panel.bars.iter().filter(|b| pixel_length(b) >= 2).collect();
        for b in visible {
            let centre = b.slot as f64 + b.offset;
            let cap = b.width / 4.0;
            let (lo, hi) = b.whisker;
            let whisker = [
                vec![(centre, lo), (centre, hi)],
                vec![(centre - cap, lo), (centre + cap, lo)],
                vec![(centre - cap, hi), (centre + cap, hi)],
            ];
            chart.draw_series(
                whisker
                    .into_iter()
                    .map(|p| PathElement::new(p, BLACK.stroke_width(1))),
            )?;
        }
        Ok(())
    }
}

/// Runs of consecutive slots with the same group: (first slot, last slot, group).
fn regions(groups: &[Option<Group>]) -> Vec<(usize, usize, Option<Group>)> {
    let mut out: Vec<(usize, usize, Option<Group>)> = Vec::new();
    for (i, &g) in groups.iter().enumerate() {
        match out.last_mut() {
            Some(last) if last.2 == g => last.1 = i,
            _ => out.push((i, i, g)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_runs_of_equal_groups() {
        let g = [
            Some(Group::Head),
            Some(Group::Head),
            Some(Group::Medium),
            Some(Group::Tail),
            Some(Group::Tail),
        ];
        assert_eq!(
            regions(&g),
            vec![
                (0, 1, Some(Group::Head)),
                (2, 2, Some(Group::Medium)),
                (3, 4, Some(Group::Tail))
            ]
        );
        let panel = BarPanel {
            y_desc: String::new(),
            bars: vec![Bar {
                slot: 0,
                offset: 0.0,
                width: 0.8,
                value: -2.0,
                whisker: (-2.5, -1.5),
                color: BLACK,
            }],
        };
        // Range [-2.5, 0] → padded to [-2.6, 0.35].
        let y = panel.y_axis();
        assert!((y.lo() + 2.6).abs() < 1e-12 && (y.hi() - 0.35).abs() < 1e-12);
    }
}
