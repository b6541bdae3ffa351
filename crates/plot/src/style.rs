//! The look shared by every figure: colours, text sizes, and the header (title, subtitle
//! lines, a legend row) drawn above the plots, so that legends never cover data.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use saddlescope_results::{ClassSpectrum, Group};

use crate::output::DrawError;

/// The one font family, registered with the embedded Noto Sans.
pub(crate) const FONT: &str = "sans-serif";

/// Head classes (matplotlib's tab10 blue).
pub(crate) const HEAD: RGBColor = RGBColor(31, 119, 180);
/// Medium classes (tab10 green).
pub(crate) const MEDIUM: RGBColor = RGBColor(44, 160, 44);
/// Tail classes (tab10 red).
pub(crate) const TAIL: RGBColor = RGBColor(214, 39, 40);
/// The all-classes Hessian (no group).
pub(crate) const UNGROUPED: RGBColor = RGBColor(70, 70, 70);
/// λ_min markers (tab10 purple).
pub(crate) const LAMBDA_MIN: RGBColor = RGBColor(148, 103, 189);
/// λ_max markers (tab10 orange).
pub(crate) const LAMBDA_MAX: RGBColor = RGBColor(255, 127, 14);
/// The SADDLE flag.
pub(crate) const SADDLE: RGBColor = RGBColor(190, 0, 0);
/// Secondary text.
pub(crate) const MUTED: RGBColor = RGBColor(90, 90, 90);
/// Grid lines at labelled ticks.
pub(crate) const GRID_BOLD: RGBColor = RGBColor(222, 222, 222);
/// Grid lines between labelled ticks.
pub(crate) const GRID_LIGHT: RGBColor = RGBColor(242, 242, 242);

/// Colours of labelled runs (tab10 order): A blue, B orange, then green, red, ...
pub(crate) const RUNS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Colour of run `i` (cycling after ten).
pub(crate) fn run_color(i: usize) -> RGBColor {
    RUNS[i % RUNS.len()]
}

/// Colour of a group.
pub(crate) fn group_color(group: Option<Group>) -> RGBColor {
    match group {
        Some(Group::Head) => HEAD,
        Some(Group::Medium) => MEDIUM,
        Some(Group::Tail) => TAIL,
        None => UNGROUPED,
    }
}

/// Legend entries of the groups present among `classes`, head first, drawn by `swatch`.
pub(crate) fn group_legend(
    classes: &[&ClassSpectrum],
    swatch: fn(RGBColor) -> Swatch,
) -> Vec<LegendItem> {
    Group::ALL
        .into_iter()
        .filter(|g| classes.iter().any(|c| c.group == Some(*g)))
        .map(|g| LegendItem::new(swatch(group_color(Some(g))), g.to_string()))
        .collect()
}

/// `color` moved towards white (`amount` > 0) or black (`amount` < 0), |amount| ≤ 1.
pub(crate) fn shade(color: RGBColor, amount: f64) -> RGBColor {
    let target = if amount > 0.0 { 255.0 } else { 0.0 };
    let a = amount.abs().min(1.0);
    let mix = |c: u8| (c as f64 + (target - c as f64) * a).round() as u8;
    RGBColor(mix(color.0), mix(color.1), mix(color.2))
}

/// A text style of the figures' font. (Built field by field: plotters' `TextStyle::color`
/// borrows the colour for the style's lifetime.)
pub(crate) fn text(size: f64, color: RGBColor) -> TextStyle<'static> {
    TextStyle {
        font: (FONT, size).into_font(),
        color: color.to_backend_color(),
        pos: Pos::default(),
    }
}

/// Text sizes (pixels) of one figure.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TextSizes {
    /// Figure title.
    pub title: f64,
    /// Subtitle lines and legend.
    pub subtitle: f64,
    /// Panel headings.
    pub heading: f64,
    /// Axis descriptions.
    pub desc: f64,
    /// Tick labels.
    pub tick: f64,
}

impl TextSizes {
    /// One large plot.
    pub(crate) const LARGE: TextSizes = TextSizes {
        title: 26.0,
        subtitle: 16.0,
        heading: 17.0,
        desc: 17.0,
        tick: 15.0,
    };
    /// A grid of small panels.
    pub(crate) const SMALL: TextSizes = TextSizes {
        title: 26.0,
        subtitle: 16.0,
        heading: 15.0,
        desc: 14.0,
        tick: 13.0,
    };
}

/// A legend sample.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Swatch {
    /// A solid line.
    Line(RGBColor),
    /// A dashed line.
    Dashed(RGBColor),
    /// A filled box.
    Block(RGBColor),
    /// No sample (a note such as `* saddle`).
    Note,
}

/// One legend entry.
#[derive(Debug, Clone)]
pub(crate) struct LegendItem {
    /// The sample.
    pub swatch: Swatch,
    /// Its label.
    pub label: String,
}

impl LegendItem {
    /// An entry.
    pub(crate) fn new(swatch: Swatch, label: impl Into<String>) -> Self {
        Self {
            swatch,
            label: label.into(),
        }
    }
}

/// A run of text in one colour; a line of spans is drawn centred.
pub(crate) type Span = (String, RGBColor);

/// What goes above the plots.
#[derive(Debug, Clone)]
pub(crate) struct Header {
    /// Title (one line).
    pub title: String,
    /// Grey lines under the title.
    pub subtitle: Vec<String>,
    /// Legend entries, in rows that wrap at the figure width.
    pub legend: Vec<LegendItem>,
}

const SWATCH_WIDTH: i32 = 30;
const SWATCH_GAP: i32 = 8;
const ITEM_GAP: i32 = 28;
const LINE_SPACING: f64 = 1.45;

impl Header {
    /// Height in pixels for a figure `width` wide. Legend rows are estimated from character
    /// counts (Noto Sans averages about 0.55 em per character; 0.6 is used to stay on the
    /// safe side), before any drawing area exists.
    pub(crate) fn height(&self, width: u32, sizes: &TextSizes) -> u32 {
        let widths: Vec<i32> = self
            .legend
            .iter()
            .map(|item| estimated_item_width(item, sizes.subtitle))
            .collect();
        let rows = wrap(&widths, width as i32 - 40).len();
        let lines = self.subtitle.len() as f64 * sizes.subtitle * LINE_SPACING
            + rows as f64 * sizes.subtitle * 1.8;
        (sizes.title * 2.0 + lines + 8.0).ceil() as u32
    }

    /// Draws the header at the top of `root` and returns the area below it.
    pub(crate) fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        sizes: &TextSizes,
    ) -> Result<DrawingArea<DB, Shift>, DrawError<DB>> {
        let (width, _) = root.dim_in_pixel();
        let (top, rest) = root.split_vertically(self.height(width, sizes));
        let centre = width as i32 / 2;
        let mut y = (sizes.title * 0.6) as i32;
        top.draw(&Text::new(
            self.title.clone(),
            (centre, y),
            text(sizes.title, BLACK).pos(TOP_CENTRE),
        ))?;
        y += (sizes.title * 1.4) as i32;
        for line in &self.subtitle {
            top.draw(&Text::new(
                line.clone(),
                (centre, y),
                text(sizes.subtitle, MUTED).pos(TOP_CENTRE),
            ))?;
            y += (sizes.subtitle * LINE_SPACING) as i32;
        }
        draw_legend(
            &top,
            &self.legend,
            sizes.subtitle,
            y + (sizes.subtitle * 0.3) as i32,
        )?;
        Ok(rest)
    }
}

/// Anchor: text hangs below and is centred on its position.
pub(crate) const TOP_CENTRE: Pos = Pos {
    h_pos: HPos::Center,
    v_pos: VPos::Top,
};
/// Anchor: text starts at its position, vertically centred.
pub(crate) const LEFT_MIDDLE: Pos = Pos {
    h_pos: HPos::Left,
    v_pos: VPos::Center,
};

fn estimated_item_width(item: &LegendItem, size: f64) -> i32 {
    let label = (item.label.chars().count() as f64 * size * 0.6) as i32;
    label + swatch_room(item.swatch)
}

fn swatch_room(swatch: Swatch) -> i32 {
    match swatch {
        Swatch::Note => 0,
        _ => SWATCH_WIDTH + SWATCH_GAP,
    }
}

/// Greedy rows of item indices whose widths (plus gaps) fit `available`.
fn wrap(widths: &[i32], available: i32) -> Vec<Vec<usize>> {
    let mut rows: Vec<Vec<usize>> = Vec::new();
    let mut used = 0;
    for (i, &w) in widths.iter().enumerate() {
        match rows.last_mut() {
            Some(row) if used + ITEM_GAP + w <= available => {
                row.push(i);
                used += ITEM_GAP + w;
            }
            _ => {
                rows.push(vec![i]);
                used = w;
            }
        }
    }
    rows
}

/// Legend rows centred in `area` from height `y` down.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    items: &[LegendItem],
    size: f64,
    mut y: i32,
) -> Result<(), DrawError<DB>> {
    let (width, _) = area.dim_in_pixel();
    let style = text(size, BLACK);
    let mut widths = Vec::with_capacity(items.len());
    for item in items {
        let (w, _) = area.estimate_text_size(&item.label, &style)?;
        widths.push(w as i32 + swatch_room(item.swatch));
    }
    let row_height = (size * 1.8) as i32;
    for row in wrap(&widths, width as i32 - 40) {
        let total: i32 =
            row.iter().map(|&i| widths[i]).sum::<i32>() + ITEM_GAP * (row.len() as i32 - 1);
        let mut x = (width as i32 - total) / 2;
        let middle = y + row_height / 2;
        for &i in &row {
            let item = &items[i];
            draw_swatch(area, item.swatch, x, middle)?;
            let label_x = x + swatch_room(item.swatch);
            area.draw(&Text::new(
                item.label.clone(),
                (label_x, middle),
                style.pos(LEFT_MIDDLE),
            ))?;
            x += widths[i] + ITEM_GAP;
        }
        y += row_height;
    }
    Ok(())
}

fn draw_swatch<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    swatch: Swatch,
    x: i32,
    y: i32,
) -> Result<(), DrawError<DB>> {
    match swatch {
        Swatch::Line(color) => area.draw(&PathElement::new(
            vec![(x, y), (x + SWATCH_WIDTH, y)],
            color.stroke_width(3),
        )),
        Swatch::Dashed(color) => {
            for start in (x..x + SWATCH_WIDTH).step_by(10) {
                area.draw(&PathElement::new(
                    vec![(start, y), (start + 6, y)],
                    color.stroke_width(2),
                ))?;
            }
            Ok(())
        }
        Swatch::Block(color) => area.draw(&Rectangle::new(
            [(x + 4, y - 8), (x + SWATCH_WIDTH - 4, y + 8)],
            color.filled(),
        )),
        Swatch::Note => Ok(()),
    }
}

/// Lines of coloured spans, each line centred in `area`, starting at height `y`.
///
/// Each span is centred on its place and spans keep a quarter em apart: an SVG viewer draws
/// them in its own sans-serif font, wider or narrower than the Noto Sans they were measured
/// with, and a span anchored at its left end would then run into the next one.
pub(crate) fn draw_span_lines<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    lines: &[Vec<Span>],
    size: f64,
    mut y: i32,
) -> Result<(), DrawError<DB>> {
    let (width, _) = area.dim_in_pixel();
    let gap = (size * 0.25).round() as i32;
    for line in lines {
        let mut widths = Vec::with_capacity(line.len());
        for (part, color) in line {
            widths.push(area.estimate_text_size(part, &text(size, *color))?.0 as i32);
        }
        let total = widths.iter().sum::<i32>() + gap * (widths.len() as i32 - 1).max(0);
        let mut x = (width as i32 - total) / 2;
        for ((part, color), w) in line.iter().zip(widths) {
            let style = text(size, *color).pos(Pos {
                h_pos: HPos::Center,
                v_pos: VPos::Top,
            });
            area.draw(&Text::new(part.clone(), (x + w / 2, y), style))?;
            x += w + gap;
        }
        y += (size * LINE_SPACING) as i32;
    }
    Ok(())
}

/// Space above a panel heading, apart from the panel above.
pub(crate) const HEADING_GAP: u32 = 12;

/// Height of `lines` lines of span text.
pub(crate) fn span_lines_height(lines: usize, size: f64) -> u32 {
    (lines as f64 * size * LINE_SPACING + 6.0).ceil() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legend_rows_wrap_at_the_width() {
        assert_eq!(wrap(&[100, 100, 100], 400), vec![vec![0, 1, 2]]);
        assert_eq!(wrap(&[100, 100, 100], 250), vec![vec![0, 1], vec![2]]);
        assert_eq!(wrap(&[500, 10], 250), vec![vec![0], vec![1]]);
        assert_eq!(shade(RGBColor(100, 0, 200), 0.5), RGBColor(178, 128, 228));
        assert_eq!(shade(RGBColor(100, 0, 200), -0.5), RGBColor(50, 0, 100));
    }
}
