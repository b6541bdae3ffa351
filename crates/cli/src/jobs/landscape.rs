//! A loss landscape of one class, its files and its summary; and `analyze --landscape`'s
//! loop over the classes a finished analysis picks ([`analysis_landscapes`]).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;

use saddlescope_analysis::{
    class_landscape, describe, landscape_classes, AnalyzeParams, LandscapeParams, Subject,
};
use saddlescope_plot::{landscape_curves, landscape_plane, LandscapeOptions, PlaneOptions};
use saddlescope_results::{write_landscape, AnalysisDir, AnalysisReport, LandscapeReport};

use serde_json::json;

use crate::checkpoint_args::CheckpointSource;
use crate::error::ResultExt;
use crate::interrupt::Graceful;
use crate::out_dir::{outputs, OutDir};

/// A landscape, ready to go.
#[derive(Debug)]
pub struct LandscapeJob {
    /// The checkpoint and its data.
    pub source: CheckpointSource,
    /// The Hessian's settings, validated.
    pub analysis: AnalyzeParams,
    /// The class whose loss is walked.
    pub class: usize,
    /// The grids, validated.
    pub params: LandscapeParams,
    /// The output directory.
    pub out: PathBuf,
    /// No summary on stdout.
    pub quiet: bool,
    /// Replace a landscape of other settings in `out` (and take over another host's lock).
    pub force: bool,
}

/// What identifies a landscape in its directory's record: the checkpoint (by hash), the
/// data, the class, the grids and the Hessian's settings.
fn settings(job: &LandscapeJob, subject: &Subject<'_>) -> serde_json::Value {
    json!({
        "checkpoint_sha256": subject.checkpoint.sha256,
        "dataset": subject.dataset,
        "split": subject.split_name,
        "class": job.class,
        "range": job.params.range,
        "points": job.params.points,
        "plane_points": job.params.plane_points,
        "hessian": describe(&job.analysis),
        "max_applications": job.analysis.spectrum.max_applications,
    })
}

/// Runs `job`: writes `landscape.json`, `landscape.png` (and `plane.png`) into its `out`.
///
/// # Errors
/// Usage errors naming the flag (`--class` out of range or without samples, `--out`
/// holding another landscape); the directory in use by another process; checkpoint, data,
/// numerical and file errors.
pub fn landscape(job: &LandscapeJob) -> anyhow::Result<ExitCode> {
    let mut out = OutDir::lock(&job.out, job.force, job.quiet)?;
    let loaded = job.source.load()?;
    let subject = loaded.subject();
    out.claim(&outputs::LANDSCAPE, &settings(job, &subject), job.force)?;
    if !job.quiet {
        for note in &loaded.notes {
            eprintln!("note: {note}");
        }
    }
    let report = class_landscape(&subject, &job.analysis, job.class, &job.params).cli()?;
    let written = write_outputs(&job.out, &report, &subtitle(&subject, job.class))?;
    if !job.quiet {
        print!("{}", summary(&report));
        for path in written {
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
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
fn write_outputs(
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

/// `analyze --landscape`: the 1-D landscape of every class [`landscape_classes`] picks from
/// a finished analysis, with the analysis's own Hessian settings, into
/// `OUT/landscape/class-NNNN/`. Stops between classes on Ctrl-C (exit 130) while
/// `graceful` lasts.
pub fn analysis_landscapes(
    subject: &Subject<'_>,
    params: &AnalyzeParams,
    report: &AnalysisReport,
    out: &Path,
    quiet: bool,
    graceful: &Graceful,
) -> anyhow::Result<ExitCode> {
    let classes = landscape_classes(report);
    let dir = AnalysisDir::new(out);
    let stop = graceful.stop();
    for (done, &class) in classes.iter().enumerate() {
        if stop.load(Ordering::SeqCst) {
            eprintln!(
                "interrupted: {done} of {} landscapes are in {}",
                classes.len(),
                dir.landscapes().display()
            );
            return Ok(ExitCode::from(130));
        }
        let landscape =
            class_landscape(subject, params, class, &LandscapeParams::default()).cli()?;
        let written = write_outputs(&dir.landscape(class), &landscape, &subtitle(subject, class))?;
        if !quiet {
            print!("{}", summary(&landscape));
            eprintln!("wrote {}", written[1].display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
