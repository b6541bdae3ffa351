//! A training run with progress on stderr: fresh from a recipe (resumed when its directory
//! holds the same run), or resumed from its run directory; Ctrl-C stops it at the end of a
//! step (exit 130).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use candle_core::Device;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use saddlescope_results::EpochRecord;
use saddlescope_train::{
    Reweighting, RunOutcome, TrainConfig, TrainObserver, Trainer, RESUME_FILE,
};

use crate::dataset_args::with_dataset_hint;
use crate::error::{cli_error, ResultExt};
use crate::out_dir::{outputs, OutDir, Prior};

/// How a run starts.
#[derive(Debug)]
pub enum TrainStart {
    /// A run of `config` in the directory `out`: continued when `out` holds the same run,
    /// refused when it holds another one (unless forced).
    Fresh {
        /// The recipe, validated.
        config: Box<TrainConfig>,
        /// The run directory.
        out: PathBuf,
    },
    /// The run in `dir`, continued; `epochs` changes its number of epochs (the rest of its
    /// plan stays).
    Resume {
        /// The run directory.
        dir: PathBuf,
        /// The new number of epochs, if it changes.
        epochs: Option<usize>,
    },
}

/// A training run, ready to go.
#[derive(Debug)]
pub struct TrainJob {
    /// Fresh or resumed.
    pub start: TrainStart,
    /// Where tensors live.
    pub device: Device,
    /// No progress bar or per-epoch lines.
    pub quiet: bool,
    /// Replace a run of other settings in the directory (and take over another host's lock).
    pub force: bool,
}

/// Sets the number of epochs of `config`; a preset's DRW start moves with it (160/200 of the
/// run, +1, at most its last epoch), as the reference recipe scales it.
pub fn set_epochs(config: &mut TrainConfig, epochs: usize) {
    config.epochs = epochs;
    if let Reweighting::FromEpoch(_) = config.reweighting {
        config.reweighting = Reweighting::FromEpoch(TrainConfig::default_drw_epoch(epochs));
    }
}

/// What identifies a run in its directory's record: its whole recipe.
fn settings(config: &TrainConfig) -> anyhow::Result<serde_json::Value> {
    Ok(serde_json::to_value(config)?)
}

/// Runs `job`: exit 0 when every epoch is done, 130 when interrupted (the complete epochs
/// are kept and the message says how to resume).
///
/// # Errors
/// Usage errors naming the flag (`--out` holding another run, `--resume` without one);
/// the directory in use by another process; training, data and file errors.
pub fn train(job: &TrainJob) -> anyhow::Result<ExitCode> {
    let (out, mut trainer) = match &job.start {
        TrainStart::Resume { dir, epochs } => {
            let mut out = OutDir::lock(dir, job.force, job.quiet)?;
            let trainer = Trainer::resume(dir, &job.device, *epochs).cli()?;
            out.record(&outputs::TRAIN, &settings(trainer.config())?)?;
            (out, trainer)
        }
        TrainStart::Fresh { config, out: dir } => {
            let mut out = OutDir::lock(dir, job.force, job.quiet)?;
            let prior = out.claim(&outputs::TRAIN, &settings(config)?, job.force)?;
            let trainer = if prior == Prior::Same && dir.join(RESUME_FILE).exists() {
                Trainer::resume(dir, &job.device, None).cli()?
            } else {
                Trainer::new(config.as_ref().clone(), dir, &job.device)
                    .map_err(|e| with_data_hint(e, config))?
            };
            (out, trainer)
        }
    };
    let run_dir = out.path().to_path_buf();
    let done_before = trainer.epochs_done();
    if (1..trainer.config().epochs).contains(&done_before) && !job.quiet {
        eprintln!(
            "resuming the run in {} after epoch {done_before} of {}",
            run_dir.display(),
            trainer.config().epochs
        );
    }
    let graceful = crate::interrupt::Graceful::begin();
    let progress = Progress::new(trainer.config().epochs, job.quiet);
    let outcome = trainer.run(&progress, graceful.stop()).cli()?;
    progress.bar.finish_and_clear();
    drop(graceful);
    let code = report_outcome(outcome, &trainer, &run_dir, done_before, job.quiet);
    drop(out);
    Ok(code)
}

/// The closing line of a run, and its exit status.
fn report_outcome(
    outcome: RunOutcome,
    trainer: &Trainer,
    run_dir: &Path,
    done_before: usize,
    quiet: bool,
) -> ExitCode {
    match outcome {
        RunOutcome::Finished => {
            if !quiet {
                let done = trainer.epochs_done();
                if done == done_before {
                    eprintln!(
                        "nothing to do: {} holds all {done} epochs of this run",
                        run_dir.display()
                    );
                } else {
                    eprintln!("done: {done} epochs in {}", run_dir.display());
                }
            }
            ExitCode::SUCCESS
        }
        RunOutcome::Interrupted { epochs_done } => {
            eprintln!(
                "interrupted: {epochs_done} epochs are complete in {0}; continue with `saddlescope train --resume {0}`",
                run_dir.display()
            );
            ExitCode::from(130)
        }
    }
}

/// A training error as the command line reports it, a missing data directory named with
/// `--dataset`.
fn with_data_hint(err: saddlescope_train::Error, config: &TrainConfig) -> anyhow::Error {
    match err {
        saddlescope_train::Error::Data(e) => with_dataset_hint(e, &config.dataset),
        other => cli_error(other),
    }
}

/// Draws a bar per epoch on a terminal, or prints a line per epoch elsewhere.
struct Progress {
    bar: ProgressBar,
    epochs: usize,
    quiet: bool,
}

impl Progress {
    fn new(epochs: usize, quiet: bool) -> Self {
        let bar = if quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(0)
        };
        if !quiet {
            bar.set_draw_target(ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "epoch {prefix} [{bar:30}] {pos}/{len} {msg} (ETA {eta})",
                )
                .expect("static template")
                .progress_chars("=> "),
            );
        }
        Self { bar, epochs, quiet }
    }
}

impl TrainObserver for Progress {
    fn epoch_started(&self, epoch: usize, steps: usize) {
        self.bar.set_prefix(format!("{epoch}/{}", self.epochs));
        self.bar.set_length(steps as u64);
        self.bar.set_position(0);
    }

    fn step_done(&self, _epoch: usize, step: usize, loss: f64, accuracy: f64) {
        self.bar.set_position(step as u64);
        self.bar
            .set_message(format!("loss {loss:.4} acc {accuracy:.3}"));
    }

    fn epoch_done(&self, r: &EpochRecord) {
        if self.quiet {
            return;
        }
        let g = &r.test.group_accuracy;
        let group = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
        let line = format!(
            "epoch {}/{}: lr {:.2e} train loss {:.4} | test acc {:.4} (head {}, medium {}, tail {}) | {:.1}s",
            r.epoch,
            self.epochs,
            r.lr,
            r.train_loss,
            r.test.accuracy,
            group(g.head),
            group(g.medium),
            group(g.tail),
            r.seconds
        );
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
    }
}
