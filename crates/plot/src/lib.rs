//! Figures of class-wise Hessian spectra and training runs, drawn with plotters from the
//! result structs of `saddlescope-results`. Like ripgrep's printers, this crate computes
//! nothing and sees neither the models nor candle (it depends on `results` and `spectral`
//! only): figures redraw from `spectrum.json` and `log.jsonl` without retraining. (Its one smoothing, the head/tail mean density, calls
//! the spectral crate's own [`saddlescope_spectral::density`] on the stored Ritz measures.)
//!
//! # Tour
//! - [`class_density`]: one class's eigen-density, log density axis floored (as the
//!   paper's figures are), eigenvalue axis linear or symlog ([`XScale`]), λ_min and λ_max
//!   marked.
//! - [`class_grid`]: all classes, shared axes, head → tail, verdicts flagged.
//! - [`head_tail`]: the mean density of the head classes against the tail classes.
//! - [`eigen_bars`]: λ_max and λ_min per class with residual bounds, coloured by group.
//! - [`compare_densities`], [`compare_lambda_min`]: two analyses ([`Labeled`]) class by
//!   class.
//! - [`training_curves`]: overall and per-group test accuracy by epoch for several runs.
//! - [`timeline`]: λ_min and λ_max of each class across checkpoints of one run.
//! - [`landscape_curves`], [`landscape_plane`]: a class's loss along u_max, u_min and a
//!   random direction with the quadratic model, and on the (u_max, u_min) plane.
//! - [`study_lambda_min`], [`study_group_accuracy`]: a study's λ_min per class and test
//!   accuracy per group, every arm side by side, bootstrap intervals as error bars.
//! - [`write_all`]: the four figures of one analysis under fixed file names.
//!
//! Every figure has an options struct with `Default` and a fixed pixel size, picks PNG or
//! SVG by the path's extension ([`Format`]), is written atomically
//! (`saddlescope_results::write_atomically`), and fails with an [`Error`] naming the file.
//! Text uses Noto Sans compiled into the binary, so figures render on machines without
//! fonts.
//!
//! # Example
//! ```no_run
//! use std::path::Path;
//! use saddlescope_plot::{write_all, Format, XScale};
//! use saddlescope_results::read_report;
//!
//! let report = read_report(Path::new("analysis/spectrum.json"))?;
//! for path in write_all(&report, Path::new("analysis/figures"), Format::Png, XScale::Symlog)? {
//!     println!("{}", path.display());
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod axis;
mod bar_figure;
mod bars;
mod curves;
mod densities;
mod density_figure;
mod error;
mod input;
mod landscape;
mod line_figure;
mod output;
mod raster;
mod study;
mod style;
mod timeline;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use saddlescope_results::{AnalysisReport, Group};

pub use axis::XScale;
pub use bars::{compare_lambda_min, eigen_bars, BarOptions};
pub use curves::{training_curves, CurveOptions};
pub use densities::{
    class_density, class_grid, compare_densities, head_tail, DensityOptions, GridOptions,
};
pub use error::Error;
pub use input::Labeled;
pub use landscape::{landscape_curves, landscape_plane, LandscapeOptions, PlaneOptions};
pub use output::Format;
pub use study::{study_group_accuracy, study_lambda_min};
pub use timeline::{timeline, TimelineOptions};

/// Writes the figures of one analysis under `dir` with default options and returns their
/// paths, in this order (`EXT` is `format`'s extension):
/// - `density/class_NNN.EXT` for every class (index zero-padded to 3 digits) and
///   `density/all.EXT` for the all-classes Hessian when present ([`class_density`]);
/// - `density_grid.EXT` ([`class_grid`]);
/// - `head_tail.EXT` ([`head_tail`]), only when the head and the tail group both have a
///   class;
/// - `eigen_bars.EXT` ([`eigen_bars`]).
///
/// # Errors
/// The first figure's [`Error`]; figures written before it stay.
pub fn write_all(
    report: &AnalysisReport,
    dir: &Path,
    format: Format,
    xscale: XScale,
) -> Result<Vec<PathBuf>, Error> {
    let ext = format.extension();
    let file = |name: String| dir.join(format!("{name}.{ext}"));
    let density = DensityOptions {
        xscale,
        subtitle: Some(input::context(report)),
        ..DensityOptions::default()
    };
    let mut written = Vec::new();
    for class in report.classes.iter().chain(&report.all) {
        let name = class
            .class
            .map_or_else(|| "all".to_string(), |c| format!("class_{c:03}"));
        let path = file(format!("density/{name}"));
        class_density(class, &path, &density)?;
        written.push(path);
    }
    let path = file("density_grid".into());
    class_grid(
        report,
        &path,
        &GridOptions {
            xscale,
            ..GridOptions::default()
        },
    )?;
    written.push(path);
    if report.has_group(Group::Head) && report.has_group(Group::Tail) {
        let path = file("head_tail".into());
        head_tail(
            report,
            &path,
            &DensityOptions {
                subtitle: None,
                ..density
            },
        )?;
        written.push(path);
    }
    let path = file("eigen_bars".into());
    eigen_bars(report, &path, &BarOptions::default())?;
    written.push(path);
    Ok(written)
}
