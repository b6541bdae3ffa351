//! A class-wise analysis of a checkpoint with progress on stderr and the per-class table on
//! stdout; optionally the landscapes of its saddle classes. Ctrl-C stops it between two
//! Hessians (exit 130); a rerun with `resume` reuses what is complete.

use std::path::PathBuf;
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use saddlescope_analysis::{
    analyze as analyze_subject, AnalysisObserver, AnalysisOutcome, AnalyzeParams,
};
use saddlescope_results::{AnalysisReport, ClassSpectrum};

use crate::checkpoint_args::CheckpointSource;
use crate::error::ResultExt;
use crate::jobs::landscape::analysis_landscapes;

/// An analysis, ready to go.
#[derive(Debug)]
pub struct AnalyzeJob {
    /// The checkpoint and its data.
    pub source: CheckpointSource,
    /// The analysis settings, validated.
    pub params: AnalyzeParams,
    /// The output directory.
    pub out: PathBuf,
    /// Reuse the per-class results already in `out` that have the same settings.
    pub resume: bool,
    /// Also draw the landscapes of the saddle classes and the sharpest head class.
    pub landscape: bool,
    /// No progress bars and no table.
    pub quiet: bool,
}

/// Runs `job`: exit 0 when every Hessian (and landscape) is done, 130 when interrupted.
///
/// # Errors
/// Usage errors naming the flag; checkpoint, data, numerical and file errors.
pub fn analyze(job: &AnalyzeJob) -> anyhow::Result<ExitCode> {
    let loaded = job.source.load()?;
    let subject = loaded.subject();
    let bar = if job.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr())
    };
    bar.set_style(
        ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} HVPs (ETA {eta})")
            .expect("static template")
            .progress_chars("=> "),
    );
    let progress = Progress {
        bar,
        quiet: job.quiet,
    };
    let stop = crate::interrupt::stop_flag();
    let outcome =
        analyze_subject(&subject, &job.params, &job.out, job.resume, &progress, stop).cli()?;
    progress.bar.finish_and_clear();
    match outcome {
        AnalysisOutcome::Finished(report) => {
            if !job.quiet {
                print!("{}", table(&report));
                eprintln!("wrote {}", job.out.join("spectrum.json").display());
            }
            if job.landscape {
                return analysis_landscapes(&subject, &job.params, &report, &job.out, job.quiet);
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
                "interrupted: {done} Hessians are complete in {0}; continue with the same command plus --resume",
                job.out.display()
            );
            Ok(ExitCode::from(130))
        }
    }
}

/// A bar per Hessian on a terminal; notices on stderr.
struct Progress {
    bar: ProgressBar,
    quiet: bool,
}

impl AnalysisObserver for Progress {
    fn hessian_started(&self, name: &str, applications: usize) {
        self.bar.set_length(applications as u64);
        self.bar.set_position(0);
        self.bar.set_prefix(format!("class {name}"));
    }
    fn applications_done(&self, done: usize) {
        self.bar.set_position(done as u64);
    }
    fn hessian_done(&self, r: &ClassSpectrum, reused: bool) {
        if !self.quiet && self.bar.is_hidden() {
            let how = if reused { " (reused)" } else { "" };
            eprintln!(
                "class {}: lambda_min {:.4e} lambda_max {:.4e}{how}",
                r.name, r.estimate.lambda_min, r.estimate.lambda_max
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
        "{:>5} {:<10} {:<6} {:>6} {:>22} {:>22} {:>9} {:>11} {:>6}\n",
        "class",
        "name",
        "group",
        "n",
        "lambda_min (bound)",
        "lambda_max (bound)",
        "min/max",
        "trace",
        "saddle"
    );
    for r in report.classes.iter().chain(&report.all) {
        let e = &r.estimate;
        out.push_str(&format!(
            "{:>5} {:<10} {:<6} {:>6} {:>11.4e} ({:>8.1e}) {:>11.4e} ({:>8.1e}) {:>9} {:>11.4e} {:>6}\n",
            r.class.map_or("all".to_string(), |c| c.to_string()),
            r.name,
            r.group.map_or("-".to_string(), |g| format!("{g:?}").to_lowercase()),
            r.samples,
            e.lambda_min,
            e.lambda_min_bound,
            e.lambda_max,
            e.lambda_max_bound,
            r.ratio_min_max.map_or("-".to_string(), |x| format!("{x:.4}")),
            e.trace,
            if r.saddle { "SADDLE" } else { "" },
        ));
    }
    if let Some(t) = &report.trace_identity {
        out.push_str(&format!(
            "trace identity: tr H_all {:.6e} vs sum_c pi_c tr H_c {:.6e} (relative residual {:.1e})\n",
            t.all, t.weighted_sum, t.relative_residual
        ));
    }
    out
}
