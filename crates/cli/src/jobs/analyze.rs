//! A class-wise analysis of a checkpoint with progress on stderr and the per-class table on
//! stdout, with every verdict and its reason; optionally the landscapes of the classes with
//! significant negative curvature. Ctrl-C stops it between two Hessians (exit 130); the same
//! command again reuses what is complete.

use std::path::PathBuf;
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use saddlescope_analysis::{
    analyze as analyze_subject, describe, AnalysisObserver, AnalysisOutcome, AnalyzeParams, Subject,
};
use saddlescope_results::{AnalysisReport, ClassSpectrum};
use serde_json::json;

use crate::bounds;
use crate::checkpoint_args::CheckpointSource;
use crate::error::ResultExt;
use crate::jobs::landscape::analysis_landscapes;
use crate::out_dir::{outputs, OutDir, Prior};
use crate::verdict_text::verdict_lines;

/// An analysis, ready to go.
#[derive(Debug)]
pub struct AnalyzeJob {
    /// The checkpoint and its data.
    pub source: CheckpointSource,
    /// The analysis settings, validated.
    pub params: AnalyzeParams,
    /// The output directory.
    pub out: PathBuf,
    /// Also draw the landscapes of the classes with significant negative curvature and the
    /// sharpest head class.
    pub landscape: bool,
    /// No progress bars and no table.
    pub quiet: bool,
    /// A line printed above the table (`demo` names its arm).
    pub label: Option<String>,
    /// Replace an analysis of other settings in `out` (and take over another host's lock).
    pub force: bool,
}

/// Why an estimate from one probe vector has no standard errors (a note where it applies).
pub const ONE_PROBE: &str = "--probes 1: the trace and negative mass get no standard error (trace_stderr and negative_mass_stderr are null: a spread needs 2 or more probes)";

/// What identifies an analysis in its directory's record: the checkpoint (by hash), the
/// data, the split, the estimator settings that shape the results, and the Hessians asked
/// for, and the shard. Batch size and threads are not in it: they change memory and time, not results.
pub fn settings(subject: &Subject<'_>, params: &AnalyzeParams) -> serde_json::Value {
    let classes: Vec<usize> = params
        .class_ids
        .clone()
        .unwrap_or_else(|| (0..subject.model.classes()).collect());
    json!({
        "checkpoint_sha256": subject.checkpoint.sha256,
        "dataset": subject.dataset,
        "split": subject.split_name,
        "params": describe(params),
        "max_applications": params.spectrum.max_applications,
        "class_ids": classes,
        "all_classes_hessian": params.include_all,
        "shard": params.shard.map(|s| s.to_string()),
    })
}

/// Runs `job`: exit 0 when every Hessian (and landscape) is done, 130 when interrupted.
///
/// # Errors
/// Usage errors naming the flag (`--out` holding another analysis); the directory in use by
/// another process; checkpoint, data, numerical and file errors.
pub fn analyze(job: &AnalyzeJob) -> anyhow::Result<ExitCode> {
    let mut out = OutDir::lock(&job.out, job.force, job.quiet)?;
    let loaded = job.source.load()?;
    let subject = loaded.subject();
    let prior = out.claim(
        &outputs::ANALYZE,
        &settings(&subject, &job.params),
        job.force,
    )?;
    if !job.quiet {
        for note in &loaded.notes {
            eprintln!("note: {note}");
        }
        if job.params.spectrum.slq.probes == 1 {
            eprintln!("note: {ONE_PROBE}");
        }
    }
    let bar = if job.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr())
    };
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} HVPs (ETA {eta})")
            .expect("static template")
            .progress_chars("=> "),
    );
    let total = job
        .params
        .class_ids
        .as_ref()
        .map_or(subject.model.classes(), Vec::len)
        + usize::from(job.params.include_all);
    let progress = Progress {
        bar,
        quiet: job.quiet,
        total,
        started: std::sync::atomic::AtomicUsize::new(0),
    };
    let graceful = crate::interrupt::Graceful::begin();
    let outcome = analyze_subject(
        &subject,
        &job.params,
        &job.out,
        prior == Prior::Same,
        &progress,
        graceful.stop(),
    )
    .cli()?;
    progress.bar.finish_and_clear();
    match outcome {
        AnalysisOutcome::Finished(report) => {
            if !job.quiet {
                if let Some(label) = &job.label {
                    println!("{label}");
                }
                print!("{}", table(&report));
                eprintln!("wrote {}", job.out.join("spectrum.json").display());
            }
            if job.landscape {
                return analysis_landscapes(
                    &subject,
                    &job.params,
                    &report,
                    &job.out,
                    job.quiet,
                    &graceful,
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        AnalysisOutcome::ShardFinished { shard, done } => {
            if !job.quiet {
                eprintln!(
                    "shard {shard}: {done} Hessians in {}; once all {} shards are done, `saddlescope merge` writes the report",
                    job.out.display(),
                    shard.count()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        AnalysisOutcome::Interrupted { done } => {
            eprintln!(
                "interrupted: {done} Hessians are complete in {0}; the same command again continues",
                job.out.display()
            );
            Ok(ExitCode::from(130))
        }
    }
}

/// A bar per Hessian on a terminal, `Hessian k of n` in front of it; notices on stderr.
struct Progress {
    bar: ProgressBar,
    quiet: bool,
    /// Hessians this analysis estimates.
    total: usize,
    /// Hessians started (or reused) so far.
    started: std::sync::atomic::AtomicUsize,
}

impl Progress {
    /// `Hessian k of n (class NAME)` for the next Hessian.
    fn next(&self, name: &str) -> String {
        let k = self
            .started
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let what = if name == "all" {
            "all classes".to_string()
        } else {
            format!("class {name}")
        };
        format!("Hessian {k} of {} ({what})", self.total)
    }
}

impl AnalysisObserver for Progress {
    fn hessian_started(&self, name: &str, applications: usize) {
        self.bar.set_length(applications as u64);
        self.bar.set_position(0);
        self.bar.set_prefix(self.next(name));
    }
    fn applications_done(&self, done: usize) {
        self.bar.set_position(done as u64);
    }
    fn hessian_done(&self, r: &ClassSpectrum, reused: bool) {
        let prefix = if reused {
            self.next(&r.name)
        } else {
            self.bar.prefix()
        };
        if !self.quiet && self.bar.is_hidden() {
            let how = if reused { " (reused)" } else { "" };
            eprintln!(
                "{prefix}: lambda_min {:.4e} lambda_max {:.4e}{how}",
                r.estimate.lambda_min, r.estimate.lambda_max
            );
        }
    }
    fn notice(&self, message: &str) {
        if !self.quiet {
            self.bar.suspend(|| eprintln!("note: {message}"));
        }
    }
}

/// The aligned per-class table printed at the end (of `analyze` and `merge`).
pub fn table(report: &AnalysisReport) -> String {
    let mut out = format!(
        "{:>5} {:<10} {:<6} {:>6} {:>23} {:>23} {:>9} {:>11} {:>10} {:>9} {:<14}\n",
        "class",
        "name",
        "group",
        "n",
        "lambda_min (bound)",
        "lambda_max (bound)",
        "min/max",
        "trace",
        "||g||",
        "g-ratio",
        "verdict"
    );
    for r in report.classes.iter().chain(&report.all) {
        let e = &r.estimate;
        out.push_str(&format!(
            "{:>5} {:<10} {:<6} {:>6} {:>11.4e} ({:>9}) {:>11.4e} ({:>9}) {:>9} {:>11.4e} {:>10} {:>9} {:<14}\n",
            r.class.map_or("all".to_string(), |c| c.to_string()),
            r.name,
            r.group.map_or("-".to_string(), |g| g.to_string()),
            r.samples,
            e.lambda_min,
            bounds::marked(e, e.lambda_min_bound),
            e.lambda_max,
            bounds::marked(e, e.lambda_max_bound),
            r.ratio_min_max
                .map_or("-".to_string(), |x| format!("{x:.4}")),
            e.trace,
            r.first_order
                .map_or("-".to_string(), |f| format!("{:.3e}", f.grad_norm)),
            r.first_order
                .map_or("-".to_string(), |f| format!("{:.3e}", f.gradient_ratio())),
            r.verdict.label(),
        ));
    }
    if let Some(line) = bounds::note(
        report
            .classes
            .iter()
            .chain(&report.all)
            .map(|r| &r.estimate),
    ) {
        out.push_str(&line);
        out.push('\n');
    }
    if let Some(t) = &report.trace_identity {
        out.push_str(&format!(
            "trace identity: tr H_all {:.6e} vs sum_c pi_c tr H_c {:.6e} (relative residual {:.1e})\n",
            t.all, t.weighted_sum, t.relative_residual
        ));
    }
    out.push_str(&verdict_lines(report));
    out
}
