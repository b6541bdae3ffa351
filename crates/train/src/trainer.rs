//! The training loop: mini-batch SGD (optionally SAM) on the long-tailed split, DRW switched
//! on at its epoch, evaluation after every epoch, checkpoints, and an exact resume.
//!
//! Everything random is a function of `(seed, epoch)` (shuffle, crops) or of the seed (initial
//! weights, imbalance selection), and the resume state holds the weights, BN buffers and
//! momentum buffers of the last completed epoch in one atomically written file. So a run
//! interrupted at any point and resumed ends with the same bits as one that never stopped.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use candle_core::{DType, Device};
use saddlescope_data::{BatchSpec, Dataset, LongTailed};
use saddlescope_nn::{drw_weights, Loss, Model, DRW_BETA};
use saddlescope_results::{append_record, EpochRecord, EvalMetrics, FORMAT_VERSION};

use crate::checkpoint::{save_checkpoint, CheckpointMeta};
use crate::config::{parse_dtype, TrainConfig};
use crate::metrics::evaluate;
use crate::resume::{drop_uncommitted_epochs, read_resume, write_resume, ResumeState};
use crate::run_dir::RunDir;
use crate::sgd::Sgd;
use crate::step::{step_once, StepError, StepSettings};
use crate::{Error, Param};

/// Receives progress reports from a run (the CLI draws bars from them; tests ignore them).
pub trait TrainObserver {
    /// An epoch of `steps` mini-batches starts.
    fn epoch_started(&self, _epoch: usize, _steps: usize) {}
    /// A step ended with this batch loss and accuracy.
    fn step_done(&self, _epoch: usize, _step: usize, _loss: f64, _accuracy: f64) {}
    /// An epoch ended (after evaluation and checkpointing).
    fn epoch_done(&self, _record: &EpochRecord) {}
}

/// An observer that ignores everything.
pub struct Silent;
impl TrainObserver for Silent {}

/// How a call to [`Trainer::run`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// Every epoch is done.
    Finished,
    /// Stopped on request after this many completed epochs; `--resume` continues.
    Interrupted {
        /// Completed epochs.
        epochs_done: usize,
    },
}

/// A training run in progress.
pub struct Trainer {
    config: TrainConfig,
    run: RunDir,
    data: Dataset,
    long_tailed: LongTailed,
    model: Model,
    sgd: Sgd,
    epochs_done: usize,
    best: Option<(f64, usize)>,
}

impl Trainer {
    /// Starts a fresh run of `config` in `run_dir` (created; refused if it already holds a run).
    pub fn new(config: TrainConfig, run_dir: &Path, device: &Device) -> Result<Self, Error> {
        config.validate()?;
        let run = RunDir::new(run_dir);
        if run.resume().exists() {
            return Err(Error::RunExists {
                dir: run_dir.to_path_buf(),
            });
        }
        std::fs::create_dir_all(run_dir).map_err(|e| Error::io(run_dir, e))?;
        let (data, long_tailed) = load_data(&config)?;
        let dtype = parse_dtype(&config.dtype).map_err(|reason| Error::Invalid {
            param: Param::Dtype,
            reason,
        })?;
        let model = new_model(&config, &data, dtype, device)?;
        let sgd = Sgd::new(config.sgd(), model.trainable().len());
        // A stale log from an abandoned attempt must not mix with this run's records.
        let _ = std::fs::remove_file(run.log());
        Ok(Self {
            config,
            run,
            data,
            long_tailed,
            model,
            sgd,
            epochs_done: 0,
            best: None,
        })
    }

    /// Continues the run in `run_dir` from its last completed epoch; `epochs` changes its
    /// number of epochs, keeping the rest of its plan ([`TrainConfig::replanned`]).
    pub fn resume(run_dir: &Path, device: &Device, epochs: Option<usize>) -> Result<Self, Error> {
        let run = RunDir::new(run_dir);
        let path = run.resume();
        if !path.exists() {
            return Err(Error::NothingToResume {
                dir: run_dir.to_path_buf(),
            });
        }
        let file = read_resume(&path, device)?;
        let corrupt = |detail: String| Error::Corrupt {
            path: path.clone(),
            detail,
        };
        let state = file.state;
        let config = match epochs {
            Some(epochs) => state.config.replanned(epochs, state.epochs_done)?,
            None => state.config,
        };
        config.validate()?;
        let (data, long_tailed) = load_data(&config)?;
        if long_tailed != state.data {
            return Err(corrupt(
                "the data set no longer yields the long-tailed split this run was trained on"
                    .into(),
            ));
        }
        let dtype = parse_dtype(&config.dtype).map_err(corrupt)?;
        let mut model = new_model(&config, &data, dtype, device)?;
        let mut momentum = file.momentum;
        model
            .load_state(file.weights)
            .map_err(|e| corrupt(e.to_string()))?;
        let buffers = model
            .trainable()
            .iter()
            .map(|(name, _)| momentum.remove(name))
            .collect();
        let sgd = Sgd::from_buffers(config.sgd(), buffers);
        // Records of an epoch that was logged but not committed are dropped: it is redone.
        drop_uncommitted_epochs(&run.log(), state.epochs_done)?;
        Ok(Self {
            config,
            run,
            data,
            long_tailed,
            model,
            sgd,
            epochs_done: state.epochs_done,
            best: state.best,
        })
    }

    /// The run's settings.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The long-tailed training set (counts, groups).
    pub fn long_tailed(&self) -> &LongTailed {
        &self.long_tailed
    }

    /// The model being trained.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Completed epochs.
    pub fn epochs_done(&self) -> usize {
        self.epochs_done
    }

    /// Mini-batches per epoch.
    pub fn steps_per_epoch(&self) -> usize {
        self.data.train().len().div_ceil(self.config.batch_size)
    }

    /// Trains until the last epoch or until `stop` is set (checked after every step; an
    /// unfinished epoch is dropped and redone on resume).
    pub fn run(
        &mut self,
        observer: &dyn TrainObserver,
        stop: &AtomicBool,
    ) -> Result<RunOutcome, Error> {
        while self.epochs_done < self.config.epochs {
            let epoch = self.epochs_done + 1;
            let started = Instant::now();
            let Some(stats) = self.train_epoch(epoch, observer, stop)? else {
                return Ok(RunOutcome::Interrupted {
                    epochs_done: self.epochs_done,
                });
            };
            let test = evaluate(&self.model, self.data.test(), &self.long_tailed.groups)?;
            let record = EpochRecord {
                epoch,
                lr: self.config.lr_at(epoch),
                train_loss: stats.loss,
                train_accuracy: stats.accuracy,
                drw: self.config.reweight_at(epoch),
                sam_rho: self.config.rho_at(epoch),
                grad_norm: stats.grad_norm,
                sharpness: stats.sharpness,
                test,
                seconds: started.elapsed().as_secs_f64(),
            };
            self.commit_epoch(&record)?;
            observer.epoch_done(&record);
        }
        Ok(RunOutcome::Finished)
    }

    /// The loss of `epoch`: the configured one, with DRW weights when they are on.
    fn loss_for(&self, epoch: usize) -> Result<Loss, Error> {
        let counts = &self.long_tailed.train_counts;
        let weights = if self.config.reweight_at(epoch) {
            Some(drw_weights(counts, DRW_BETA)?)
        } else {
            None
        };
        Ok(self.config.loss.build(counts, weights.as_deref())?)
    }

    fn train_epoch(
        &mut self,
        epoch: usize,
        observer: &dyn TrainObserver,
        stop: &AtomicBool,
    ) -> Result<Option<EpochStats>, Error> {
        let loss = self.loss_for(epoch)?;
        let lr = self.config.lr_at(epoch);
        let settings = StepSettings {
            loss: &loss,
            lr,
            rho: self.config.rho_at(epoch),
            sam: self.config.sam.as_ref(),
        };
        let mut spec = BatchSpec::new(self.config.batch_size, self.model.device().clone())
            .with_dtype(self.model.dtype())
            .shuffled(self.config.seed, epoch as u64);
        if self.config.dataset.augments() {
            spec = spec.augmented(self.config.seed, epoch as u64);
        }
        observer.epoch_started(epoch, self.steps_per_epoch());
        let mut totals = EpochStats::default();
        let mut seen = 0usize;
        let data = &self.data;
        for (step, batch) in data.train().batches(&spec)?.enumerate() {
            let (images, labels) = batch?;
            let n = labels.dim(0)?;
            let stats = step_once(&self.model, &mut self.sgd, &settings, &images, &labels)
                .map_err(|e| match e {
                    StepError::Diverged(value) => Error::Diverged {
                        epoch,
                        step: step + 1,
                        loss: value,
                    },
                    StepError::Other(e) => e,
                })?;
            seen += n;
            totals.loss += stats.loss * n as f64;
            totals.accuracy += stats.correct as f64;
            totals.grad_norm += stats.grad_norm;
            totals.sharpness += stats.sharpness;
            totals.steps += 1;
            observer.step_done(epoch, step + 1, stats.loss, stats.correct as f64 / n as f64);
            if stop.load(Ordering::SeqCst) {
                return Ok(None);
            }
        }
        let steps = totals.steps.max(1) as f64;
        Ok(Some(EpochStats {
            loss: totals.loss / seen.max(1) as f64,
            accuracy: totals.accuracy / seen.max(1) as f64,
            grad_norm: totals.grad_norm / steps,
            sharpness: totals.sharpness / steps,
            steps: totals.steps,
        }))
    }

    /// Writes the epoch's checkpoints, log line and, last, the resume state (the commit
    /// point: a crash before it redoes the epoch).
    fn commit_epoch(&mut self, record: &EpochRecord) -> Result<(), Error> {
        let epoch = record.epoch;
        let meta = self.meta(epoch, Some(record.test.clone()));
        if self.config.save_every > 0
            && (epoch.is_multiple_of(self.config.save_every) || epoch == self.config.epochs)
        {
            save_checkpoint(&self.run.epoch(epoch), &self.model, &meta)?;
        }
        save_checkpoint(&self.run.last(), &self.model, &meta)?;
        // "best" by test accuracy, as the reference code selects it.
        if self
            .best
            .is_none_or(|(accuracy, _)| record.test.accuracy > accuracy)
        {
            save_checkpoint(&self.run.best(), &self.model, &meta)?;
            self.best = Some((record.test.accuracy, epoch));
        }
        append_record(&self.run.log(), record)?;
        self.epochs_done = epoch;
        self.save_resume_state()
    }

    fn meta(&self, epoch: usize, test: Option<EvalMetrics>) -> CheckpointMeta {
        CheckpointMeta {
            format: FORMAT_VERSION,
            version: env!("CARGO_PKG_VERSION").to_string(),
            model: self.config.model.clone(),
            classes: self.model.classes(),
            input_shape: self.model.input_shape(),
            dtype: self.config.dtype.clone(),
            data: self.long_tailed.clone(),
            config: self.config.clone(),
            epoch,
            test,
        }
    }

    fn save_resume_state(&self) -> Result<(), Error> {
        let state = ResumeState {
            config: self.config.clone(),
            data: self.long_tailed.clone(),
            epochs_done: self.epochs_done,
            best: self.best,
        };
        write_resume(&self.run.resume(), &self.model, &self.sgd, &state)
    }
}

/// Sums over an epoch, then means.
#[derive(Default)]
struct EpochStats {
    loss: f64,
    accuracy: f64,
    grad_norm: f64,
    sharpness: f64,
    steps: usize,
}

/// The model of `config` for `data`'s classes and image shape, with its seeded initial weights.
fn new_model(
    config: &TrainConfig,
    data: &Dataset,
    dtype: DType,
    device: &Device,
) -> Result<Model, Error> {
    let shape = data.shape();
    let input = [shape.channels, shape.height, shape.width];
    Ok(Model::new(
        &config.model,
        data.classes(),
        input,
        dtype,
        device,
        config.seed,
    )?)
}

/// Loads the data set of `config` and applies its imbalance.
fn load_data(config: &TrainConfig) -> Result<(Dataset, LongTailed), Error> {
    let full = Dataset::load(&config.dataset)?;
    let long_tailed = LongTailed::new(&full, &config.long_tail())?;
    let data = long_tailed.apply(full)?;
    if let Some(class) = data.test().class_counts().iter().position(|&n| n == 0) {
        return Err(Error::Invalid {
            param: Param::Dataset,
            reason: format!(
                "{}: class {class} has no test samples, so its accuracy is undefined",
                config.dataset
            ),
        });
    }
    Ok((data, long_tailed))
}

#[cfg(test)]
mod tests;
