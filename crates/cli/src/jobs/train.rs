//! A training run with progress on stderr: fresh from a recipe, or resumed from its run
//! directory; Ctrl-C stops it at the end of a step (exit 130).

use std::path::PathBuf;
use std::process::ExitCode;

use candle_core::Device;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use saddlescope_results::EpochRecord;
use saddlescope_train::{Reweighting, RunOutcome, TrainConfig, TrainObserver, Trainer};

use crate::error::ResultExt;

/// How a run starts.
#[derive(Debug)]
pub enum TrainStart {
    /// A new run of `config` in the directory `out` (refused if it holds a run).
    Fresh {
        /// The recipe, validated.
        config: Box<TrainConfig>,
        /// The run directory to create.
        out: PathBuf,
    },
    /// The run in `dir`, continued; `epochs` extends its plan.
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
}

/// Sets the number of epochs of `config`; a preset's DRW start moves with it (160/200 of the
/// run, +1), as the reference recipe scales it.
pub fn set_epochs(config: &mut TrainConfig, epochs: usize) {
    config.epochs = epochs;
    if let Reweighting::FromEpoch(_) = config.reweighting {
        config.reweighting = Reweighting::FromEpoch(TrainConfig::default_drw_epoch(epochs));
    }
}

/// Runs `job`: exit 0 when every epoch is done, 130 when interrupted (the complete epochs
/// are kept and the message says how to resume).
///
/// # Errors
/// Usage errors naming the flag (`--out` holding a run, `--resume` without one); training,
/// data and file errors.
pub fn train(job: &TrainJob) -> anyhow::Result<ExitCode> {
    let (mut trainer, run_dir) = match &job.start {
        TrainStart::Resume { dir, epochs } => {
            (Trainer::resume(dir, &job.device, *epochs).cli()?, dir)
        }
        TrainStart::Fresh { config, out } => (
            Trainer::new(config.as_ref().clone(), out, &job.device).cli()?,
            out,
        ),
    };
    let stop = crate::interrupt::stop_flag();
    let progress = Progress::new(trainer.config().epochs, job.quiet);
    let outcome = trainer.run(&progress, stop).cli()?;
    progress.bar.finish_and_clear();
    match outcome {
        RunOutcome::Finished => {
            if !job.quiet {
                eprintln!(
                    "done: {} epochs in {}",
                    trainer.epochs_done(),
                    run_dir.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        RunOutcome::Interrupted { epochs_done } => {
            eprintln!(
                "interrupted: {epochs_done} epochs are complete in {0}; continue with `saddlescope train --resume {0}`",
                run_dir.display()
            );
            Ok(ExitCode::from(130))
        }
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
