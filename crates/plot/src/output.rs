//! Rendering a figure to a PNG or SVG file: the embedded font, the backends, and an atomic
//! write (`saddlescope_results::write_atomically`), so that a reader never sees half a
//! figure.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};
use saddlescope_results::write_atomically;

use crate::error::Error;
use crate::raster::{self, Bitmap};
use crate::style::FONT;

/// Output file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// 8-bit RGB PNG.
    #[default]
    Png,
    /// SVG 1.1 text (font family `sans-serif`; the viewer picks the face).
    Svg,
}

impl Format {
    /// The format named by the path's extension (`png` or `svg`, any case).
    ///
    /// # Errors
    /// [`Error::UnknownFormat`] for any other extension.
    pub fn from_path(path: &Path) -> Result<Self, Error> {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        ext.parse().map_err(|_| Error::UnknownFormat {
            path: path.to_path_buf(),
        })
    }

    /// The file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Png => "png",
            Format::Svg => "svg",
        }
    }
}

impl FromStr for Format {
    type Err = String;

    /// `png` or `svg`, any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "png" => Ok(Format::Png),
            "svg" => Ok(Format::Svg),
            _ => Err(format!("unknown figure format {s:?}: expected png or svg")),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.extension())
    }
}

/// plotters' error for a backend.
pub(crate) type DrawError<DB> = DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>;

/// A prepared figure: its pixel size and how to draw it on any backend. Everything that can
/// fail on bad input happens before (when the figure is built), so drawing only fails in
/// plotters.
pub(crate) trait Figure {
    /// Width and height in pixels.
    fn size(&self) -> (u32, u32);
    /// Draws on a white canvas of [`Figure::size`].
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawError<DB>>;
}

/// Draws `figure` and writes it to `path` in the format of its extension.
pub(crate) fn render(figure: &impl Figure, path: &Path) -> Result<(), Error> {
    let format = Format::from_path(path)?;
    let font = match (register_fonts(), raster::font()) {
        (true, Some(font)) => font,
        _ => {
            return Err(Error::Font {
                path: path.to_path_buf(),
            })
        }
    };
    let draw_error = |e: &dyn fmt::Display| Error::Draw {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let (width, height) = figure.size();
    let bytes = match format {
        Format::Png => {
            let mut rgb = vec![255u8; width as usize * height as usize * 3];
            {
                let root = Bitmap::new(&mut rgb, (width, height), font).into_drawing_area();
                paint(figure, &root).map_err(|e| draw_error(&e))?;
            }
            encode_png(&rgb, width, height).map_err(|source| Error::Encode {
                path: path.to_path_buf(),
                source,
            })?
        }
        Format::Svg => {
            let mut svg = String::new();
            {
                let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
                paint(figure, &root).map_err(|e| draw_error(&e))?;
            }
            svg.into_bytes()
        }
    };
    write_figure(path, &bytes)
}

/// White background, the figure, then flush.
fn paint<DB: DrawingBackend>(
    figure: &impl Figure,
    root: &DrawingArea<DB, Shift>,
) -> Result<(), DrawError<DB>> {
    root.fill(&WHITE)?;
    figure.draw(root)?;
    root.present()
}

/// Registers Noto Sans Regular (shipped inside the `ttf-noto-sans` crate) for every style of
/// the one family the figures use, once per process. plotters' `ab_glyph` path has no
/// system-font lookup: an unregistered family or style fails at draw time. Returns whether
/// every registration succeeded.
fn register_fonts() -> bool {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    *REGISTERED.get_or_init(|| {
        [
            FontStyle::Normal,
            FontStyle::Bold,
            FontStyle::Italic,
            FontStyle::Oblique,
        ]
        .into_iter()
        .all(|style| register_font(FONT, style, ttf_noto_sans::REGULAR).is_ok())
    })
}

/// PNG bytes of an RGB8 buffer.
fn encode_png(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>, png::EncodingError> {
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(bytes)
}

/// Writes `bytes` to `path` atomically, creating its directory.
fn write_figure(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |source| Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    write_atomically(path, bytes).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_follows_the_extension() {
        assert_eq!(
            Format::from_path(Path::new("a/b.PNG")).unwrap(),
            Format::Png
        );
        assert_eq!(Format::from_path(Path::new("b.svg")).unwrap(), Format::Svg);
        let err = Format::from_path(Path::new("out/b.pdf")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot tell the figure format of out/b.pdf: expected a .png or .svg extension"
        );
        assert!(Format::from_path(Path::new("noext")).is_err());
    }
}
