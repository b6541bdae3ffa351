//! The crate's one error type: every variant names the figure file it was writing.

use std::path::PathBuf;

/// Why a figure could not be written. Every variant carries the output path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The output path has no `.png` or `.svg` extension.
    #[error("cannot tell the figure format of {path}: expected a .png or .svg extension")]
    UnknownFormat {
        /// The output path.
        path: PathBuf,
    },
    /// An option is out of its range (a size, the density floor, the symlog threshold).
    #[error("invalid option {option} = {value} for {path}: expected {expected}")]
    InvalidOption {
        /// The output path.
        path: PathBuf,
        /// The option's field name.
        option: &'static str,
        /// The value given.
        value: f64,
        /// What it must be.
        expected: &'static str,
    },
    /// The input holds nothing this figure can show (no classes, an empty group, no epochs).
    #[error("nothing to draw in {path}: {what}")]
    Empty {
        /// The output path.
        path: PathBuf,
        /// What is missing.
        what: String,
    },
    /// The input holds a value that cannot be drawn (NaN, an all-zero density).
    #[error("cannot draw {path}: {detail}")]
    InvalidData {
        /// The output path.
        path: PathBuf,
        /// The offending value and where it is.
        detail: String,
    },
    /// Re-smoothing Ritz measures onto a common grid failed.
    #[error("cannot smooth the density of {what} for {path}")]
    Density {
        /// The output path.
        path: PathBuf,
        /// Which class or group.
        what: String,
        /// The spectral crate's error.
        source: saddlescope_spectral::Error,
    },
    /// The embedded Noto Sans font could not be registered with plotters.
    #[error("cannot register the embedded Noto Sans font for {path}")]
    Font {
        /// The output path.
        path: PathBuf,
    },
    /// plotters failed while drawing.
    #[error("cannot draw {path}: {message}")]
    Draw {
        /// The output path.
        path: PathBuf,
        /// plotters' message.
        message: String,
    },
    /// PNG encoding failed.
    #[error("cannot encode {path} as PNG")]
    Encode {
        /// The output path.
        path: PathBuf,
        /// The encoder's error.
        source: png::EncodingError,
    },
    /// Creating the directory or writing the figure failed.
    #[error("cannot write {path}")]
    Io {
        /// The figure that could not be written (or its directory).
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}
