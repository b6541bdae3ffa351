//! The PNG backend: plotters' bitmap backend with two fixes.
//! - Text: plotters 0.3.7's `ab_glyph` path drops each glyph's left side bearing, so
//!   letters drift ("eigenv alue", "0.01 67"); here every glyph is rasterized at its pen
//!   position plus its bearing, with the font's kerning, and the text box and anchors stay
//!   plotters' own (so layouts measured with `estimate_text_size` still fit).
//! - Wide lines: drawn segment by segment with round joints instead of one polygon with
//!   unlimited miters.

use std::sync::OnceLock;

use ab_glyph::{point, Font, FontRef, ScaleFont};
use plotters::prelude::*;
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingErrorKind,
};

/// The embedded Noto Sans Regular, parsed once (`None` if it does not parse).
pub(crate) fn font() -> Option<&'static FontRef<'static>> {
    static FONT: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    FONT.get_or_init(|| FontRef::try_from_slice(ttf_noto_sans::REGULAR).ok())
        .as_ref()
}

/// A [`BitMapBackend`] whose text is drawn with correct glyph placement.
pub(crate) struct Bitmap<'a> {
    inner: BitMapBackend<'a>,
    font: &'static FontRef<'static>,
}

impl<'a> Bitmap<'a> {
    /// Draws into `rgb` (`width · height · 3` bytes) with `font` for all text.
    pub(crate) fn new(
        rgb: &'a mut [u8],
        size: (u32, u32),
        font: &'static FontRef<'static>,
    ) -> Self {
        Self {
            inner: BitMapBackend::with_buffer(rgb, size),
            font,
        }
    }
}

type BitmapError = <BitMapBackend<'static> as DrawingBackend>::ErrorType;
type Result<T = ()> = std::result::Result<T, DrawingErrorKind<BitmapError>>;

impl DrawingBackend for Bitmap<'_> {
    type ErrorType = BitmapError;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }

    fn ensure_prepared(&mut self) -> Result {
        self.inner.ensure_prepared()
    }

    fn present(&mut self) -> Result {
        self.inner.present()
    }

    fn draw_pixel(&mut self, point: BackendCoord, color: BackendColor) -> Result {
        self.inner.draw_pixel(point, color)
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result {
        self.inner.draw_line(from, to, style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result {
        self.inner.draw_rect(upper_left, bottom_right, style, fill)
    }

    /// Wide paths segment by segment with round joints: plotters polygonizes a whole path
    /// with unlimited miter joins, so a density spike (up one pixel column, down the next)
    /// shoots a miter far past the plot.
    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result {
        let width = style.stroke_width();
        if width <= 1 {
            return self.inner.draw_path(path, style);
        }
        let points: Vec<BackendCoord> = path.into_iter().collect();
        for pair in points.windows(2) {
            self.inner.draw_path(pair.iter().copied(), style)?;
        }
        let inner_points = points.get(1..points.len().saturating_sub(1)).unwrap_or(&[]);
        for &joint in inner_points {
            self.inner
                .draw_circle(joint, width / 2, &style.color(), true)?;
        }
        Ok(())
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result {
        self.inner.draw_circle(center, radius, style, fill)
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result {
        self.inner.fill_polygon(vert, style)
    }

    fn blit_bitmap(&mut self, pos: BackendCoord, size: (u32, u32), src: &[u8]) -> Result {
        self.inner.blit_bitmap(pos, size, src)
    }

    /// plotters' anchoring on plotters' text box (width: advances with kerning; height:
    /// size / 1.24; baseline size / 2 below the box top), glyphs placed at their bearings.
    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> Result {
        let color = style.color();
        if color.alpha == 0.0 {
            return Ok(());
        }
        let ((min_x, min_y), (max_x, max_y)) = style
            .layout_box(text)
            .map_err(|e| DrawingErrorKind::FontError(Box::new(e)))?;
        let (width, height) = (max_x - min_x, max_y - min_y);
        let dx = match style.anchor().h_pos {
            HPos::Left => 0,
            HPos::Right => -width,
            HPos::Center => -width / 2,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0,
            VPos::Center => -height / 2,
            VPos::Bottom => -height,
        };
        let transform = style.transform();
        let size = style.size() as f32;
        let scaled = self.font.as_scaled(size);
        let baseline = size / 2.0;
        let mut pen = 0.0f32;
        let mut previous = None;
        for c in text.chars() {
            let id = scaled.glyph_id(c);
            if let Some(p) = previous {
                pen += scaled.kern(p, id);
            }
            previous = Some(id);
            let glyph = id.with_scale_and_position(size, point(pen, baseline));
            pen += scaled.h_advance(id);
            let Some(outline) = self.font.outline_glyph(glyph) else {
                continue;
            };
            let bounds = outline.px_bounds();
            let mut pixels = Vec::new();
            outline.draw(|x, y, coverage| {
                pixels.push((
                    x as i32 + bounds.min.x as i32,
                    y as i32 + bounds.min.y as i32,
                    coverage,
                ))
            });
            for (x, y, coverage) in pixels {
                let (x, y) = transform.transform(x + dx - min_x, y + dy - min_y);
                let alpha = color.alpha * f64::from(coverage.clamp(0.0, 1.0));
                self.inner.draw_pixel(
                    (pos.0 + x, pos.1 + y),
                    BackendColor {
                        alpha,
                        rgb: color.rgb,
                    },
                )?;
            }
        }
        Ok(())
    }
}
