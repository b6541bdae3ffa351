//! `saddlescope landscape`: the loss of one class along the extreme eigenvectors of its
//! Hessian (and a random direction), next to the quadratic model, optionally on the
//! (u_max, u_min) plane: the saddle seen, not just its eigenvalue. `analyze --landscape`
//! draws the same for the saddle classes through [`analysis_landscapes`].

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;

use candle_core::DType;
use clap::Args;
use saddlescope_analysis::{
    class_landscape, landscape_classes, write_landscape, AnalysisDir, AnalysisReport,
    AnalyzeParams, LandscapeParams, LandscapeReport, Subject, DEFAULT_PLANE_POINTS, DEFAULT_POINTS,
};
use saddlescope_plot::{landscape_curves, landscape_plane, LandscapeOptions, PlaneOptions};

use crate::checkpoint_args::{analysis_error, CheckpointArgs, SolverArgs};
use crate::usage::usage;

/// Flags of `saddlescope landscape`.
#[derive(Debug, Args)]
#[command(
    after_help = "Directions are unit vectors, each oriented so that the loss falls to first order for t > 0 (g.u <= 0). \
Default range R, per direction: 1/2 |lambda| R^2 = 0.5 max(L(w), 1e-3), clamped to [0.001, 1]. \
Outputs: DIR/landscape.json, DIR/landscape.png and, with --plane, DIR/plane.png."
)]
pub struct LandscapeArgs {
    /// Class whose loss is walked
    #[arg(long, value_name = "C")]
    class: usize,
    /// Grid [-R, R] of every curve and of both plane axes, as -R:R or R [default: per
    /// direction from its eigenvalue]
    #[arg(long, value_name = "-R:R", allow_hyphen_values = true)]
    range: Option<String>,
    /// Points per curve (odd: t = 0 is the middle one)
    #[arg(long, value_name = "K", default_value_t = DEFAULT_POINTS)]
    points: usize,
    /// Also the loss on the plane of u_max and u_min
    #[arg(long)]
    plane: bool,
    /// Points per axis of the plane (odd), with --plane
    #[arg(long, value_name = "K", default_value_t = DEFAULT_PLANE_POINTS)]
    plane_points: usize,
    #[command(flatten)]
    solver: SolverArgs,
    /// Output directory
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// No summary on stdout
    #[arg(long)]
    quiet: bool,
    // Last: its foreign-checkpoint help heading covers the flags after it.
    #[command(flatten)]
    source: CheckpointArgs,
}

/// `-R:R` or `R` as R.
fn parse_range(text: &str) -> anyhow::Result<f64> {
    let bad = || usage(format!("--range {text:?}: expected -R:R or R with R > 0"));
    let number = |s: &str| s.trim().parse::<f64>().map_err(|_| bad());
    let r = match text.split_once(':') {
        Some((lo, hi)) => {
            let (lo, hi) = (number(lo)?, number(hi)?);
            if lo != -hi {
                return Err(usage(format!(
                    "--range {text:?}: the grid is symmetric about the checkpoint, expected -R:R"
                )));
            }
            hi
        }
        None => number(text)?,
    };
    if !(r.is_finite() && r > 0.0) {
        return Err(bad());
    }
    Ok(r)
}

/// `mnist10k · train split · runs/x/last.safetensors · class 9 (tail, n = 6)`.
fn subtitle(subject: &Subject<'_>, class: usize) -> String {
    format!(
        "{} · {} split · {} · class {} ({}, n = {})",
        subject.dataset,
        subject.split_name,
        subject.checkpoint.path,
        subject.class_names[class],
        subject.groups[class],
        subject.train_counts[class]
    )
}

/// Writes `landscape.json`, `landscape.png` and, when the report has a plane, `plane.png`
/// into `dir`; returns their paths.
pub fn write_outputs(
    dir: &Path,
    report: &LandscapeReport,
    subtitle: &str,
) -> anyhow::Result<Vec<PathBuf>> {
    let json = write_landscape(dir, report)?;
    let curves = dir.join("landscape.png");
    landscape_curves(
        report,
        &curves,
        &LandscapeOptions {
            subtitle: Some(subtitle.to_string()),
            ..LandscapeOptions::default()
        },
    )?;
    let mut written = vec![json, curves];
    if report.plane.is_some() {
        let plane = dir.join("plane.png");
        landscape_plane(
            report,
            &plane,
            &PlaneOptions {
                subtitle: Some(subtitle.to_string()),
                ..PlaneOptions::default()
            },
        )?;
        written.push(plane);
    }
    Ok(written)
}

/// One line per direction: curvature, range and the lowest point of the curve.
fn summary(report: &LandscapeReport) -> String {
    let mut out = format!("class {}: L(w) = {:.6e}\n", report.class, report.loss0);
    out.push_str(&format!(
        "{:<7} {:>11} {:>9} {:>9} {:>12} {:>10} {:>11}\n",
        "u", "curvature", "bound", "R", "lowest loss", "at t", "change"
    ));
    for d in &report.directions {
        let (t, lowest) = d.lowest();
        out.push_str(&format!(
            "{:<7} {:>11.4e} {:>9.1e} {:>9.3e} {:>12.6e} {:>10.3e} {:>11.4e}\n",
            d.name.as_str(),
            d.eigenvalue,
            d.bound,
            d.t.last().copied().unwrap_or(0.0),
            lowest,
            t,
            lowest - report.loss0
        ));
    }
    out
}

/// Runs `saddlescope landscape`.
pub fn run(args: LandscapeArgs) -> anyhow::Result<ExitCode> {
    let params = LandscapeParams {
        range: args.range.as_deref().map(parse_range).transpose()?,
        points: args.points,
        plane_points: args.plane.then_some(args.plane_points),
    };
    params.validate().map_err(analysis_error)?;
    let spectrum = args.solver.spectrum()?;
    let loaded = args.source.load()?;
    let subject = loaded.subject();
    let analysis = AnalyzeParams {
        spectrum,
        samples_per_class: args.source.samples_per_class,
        // A landscape checks the loss against its quadratic model to 1e-12: f64 HVPs.
        dtype: DType::F64,
        ..AnalyzeParams::default()
    };
    let report =
        class_landscape(&subject, &analysis, args.class, &params).map_err(analysis_error)?;
    let written = write_outputs(&args.out, &report, &subtitle(&subject, args.class))?;
    if !args.quiet {
        print!("{}", summary(&report));
        for path in written {
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `analyze --landscape`: the 1-D landscape of every class [`landscape_classes`] picks from
/// a finished analysis, with the analysis's own Hessian settings, into
/// `OUT/landscape/class-NNNN/`. Stops between classes on Ctrl-C (exit 130).
pub fn analysis_landscapes(
    subject: &Subject<'_>,
    params: &AnalyzeParams,
    report: &AnalysisReport,
    out: &Path,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    let classes = landscape_classes(report);
    let dir = AnalysisDir::new(out);
    let stop = crate::interrupt::stop_flag();
    for (done, &class) in classes.iter().enumerate() {
        if stop.load(Ordering::SeqCst) {
            eprintln!(
                "interrupted: {done} of {} landscapes are in {}",
                classes.len(),
                dir.landscapes().display()
            );
            return Ok(ExitCode::from(130));
        }
        let landscape = class_landscape(subject, params, class, &LandscapeParams::default())
            .map_err(analysis_error)?;
        let written = write_outputs(&dir.landscape(class), &landscape, &subtitle(subject, class))?;
        if !quiet {
            print!("{}", summary(&landscape));
            eprintln!("wrote {}", written[1].display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::UsageError;

    #[test]
    fn ranges_parse_symmetric_only() {
        assert_eq!(parse_range("-0.5:0.5").unwrap(), 0.5);
        assert_eq!(parse_range("2").unwrap(), 2.0);
        for (text, needle) in [
            ("-0.5:1", "expected -R:R"),
            ("0", "expected -R:R or R with R > 0"),
            ("-1", "with R > 0"),
            ("a:b", "expected -R:R or R"),
            ("inf", "with R > 0"),
        ] {
            let err = parse_range(text).unwrap_err();
            assert!(err.downcast_ref::<UsageError>().is_some());
            assert!(err.to_string().starts_with("--range"), "{err}");
            assert!(err.to_string().contains(needle), "{text}: {err}");
        }
    }
}
