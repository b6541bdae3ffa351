//! The training loop: mini-batch SGD (optionally SAM) on the long-tailed split, DRW switched
//! on at its epoch, evaluation after every epoch, checkpoints, and an exact resume.
//!
//! Everything random is a function of `(seed, epoch)` (shuffle, crops) or of the seed (initial
//! weights, imbalance selection), and the resume state holds the weights, BN buffers and
//! momentum buffers of the last completed epoch in one atomically written file. So a run
//! interrupted at any point and resumed ends with the same bits as one that never stopped.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use saddlescope_data::{BatchSpec, Dataset, LongTailed};
use saddlescope_nn::{drw_weights, BnMode, Loss, Model, DRW_BETA};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{
    read_safetensors, save_checkpoint, write_safetensors, CheckpointMeta, FORMAT_VERSION,
};
use crate::config::{parse_dtype, TrainConfig};
use crate::io::write_atomic;
use crate::log::{append_record, read_log, EpochRecord, EvalMetrics};
use crate::metrics::evaluate;
use crate::sam::{global_norm, perturbation};
use crate::sgd::Sgd;
use crate::{Error, Param};

/// File holding everything needed to continue a run after its last completed epoch.
pub const RESUME_FILE: &str = "resume.safetensors";
/// Header key of the resume state's JSON.
const RESUME_KEY: &str = "saddlescope-resume";
/// Prefix of momentum buffers in the resume file.
const MOMENTUM_PREFIX: &str = "momentum.";

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

/// The JSON part of the resume state.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ResumeState {
    config: TrainConfig,
    data: LongTailed,
    epochs_done: usize,
    best: Option<(f64, usize)>,
}

/// Paths of a run directory.
pub struct RunDir(PathBuf);

impl RunDir {
    /// The run directory at `path`.
    pub fn new(path: &Path) -> Self {
        Self(path.to_path_buf())
    }
    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.0
    }
    /// `log.jsonl`.
    pub fn log(&self) -> PathBuf {
        self.0.join("log.jsonl")
    }
    /// The resume state.
    pub fn resume(&self) -> PathBuf {
        self.0.join(RESUME_FILE)
    }
    /// Checkpoint after the last completed epoch.
    pub fn last(&self) -> PathBuf {
        self.0.join("last.safetensors")
    }
    /// Checkpoint with the best test accuracy so far.
    pub fn best(&self) -> PathBuf {
        self.0.join("best.safetensors")
    }
    /// Checkpoint of a given epoch.
    pub fn epoch(&self, epoch: usize) -> PathBuf {
        self.0.join(format!("epoch-{epoch:04}.safetensors"))
    }
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

/// Statistics of one optimizer step.
struct StepStats {
    loss: f64,
    correct: usize,
    grad_norm: f64,
    sharpness: f64,
}

fn scalar(t: &Tensor) -> Result<f64, Error> {
    Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?)
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

    /// Continues the run in `run_dir` from its last completed epoch; `epochs` extends (or
    /// keeps) the planned number of epochs.
    pub fn resume(run_dir: &Path, device: &Device, epochs: Option<usize>) -> Result<Self, Error> {
        let run = RunDir::new(run_dir);
        let path = run.resume();
        if !path.exists() {
            return Err(Error::NothingToResume {
                dir: run_dir.to_path_buf(),
            });
        }
        let file = read_safetensors(&path, device)?;
        let corrupt = |detail: String| Error::Corrupt {
            path: path.clone(),
            detail,
        };
        let json = file
            .metadata
            .get(RESUME_KEY)
            .ok_or_else(|| corrupt(format!("no `{RESUME_KEY}` metadata")))?;
        let state: ResumeState =
            serde_json::from_str(json).map_err(|e| corrupt(format!("bad resume state ({e})")))?;
        let mut config = state.config;
        if let Some(epochs) = epochs {
            if epochs < state.epochs_done {
                return Err(Error::Invalid {
                    param: Param::Epochs,
                    reason: format!(
                        "{epochs} is fewer than the {} epochs already done",
                        state.epochs_done
                    ),
                });
            }
            config.epochs = epochs;
        }
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
        let mut tensors = file.tensors;
        let mut momentum: HashMap<String, Tensor> = HashMap::new();
        tensors.retain(|name, tensor| match name.strip_prefix(MOMENTUM_PREFIX) {
            Some(param) => {
                momentum.insert(param.to_string(), tensor.clone());
                false
            }
            None => true,
        });
        model
            .load_state(tensors)
            .map_err(|e| corrupt(e.to_string()))?;
        let buffers = model
            .trainable()
            .iter()
            .map(|(name, _)| momentum.remove(name))
            .collect();
        let sgd = Sgd::from_buffers(config.sgd(), buffers);
        // Records of an epoch that was logged but not committed are dropped: it is redone.
        let log_path = run.log();
        if log_path.exists() {
            let kept: Vec<EpochRecord> = read_log(&log_path)?
                .into_iter()
                .filter(|r| r.epoch <= state.epochs_done)
                .collect();
            let text: String = kept
                .iter()
                .map(|r| serde_json::to_string(r).map(|s| s + "\n"))
                .collect::<Result<_, _>>()
                .map_err(|e| Error::Bug(e.to_string()))?;
            write_atomic(&log_path, text.as_bytes()).map_err(|e| Error::io(&log_path, e))?;
        }
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
                lr: self
                    .config
                    .schedule
                    .lr_at(self.config.lr, epoch, self.config.epochs),
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
        let lr = self
            .config
            .schedule
            .lr_at(self.config.lr, epoch, self.config.epochs);
        let rho = self.config.rho_at(epoch);
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
            let stats = step_once(
                &self.model,
                &mut self.sgd,
                &loss,
                &images,
                &labels,
                lr,
                rho,
                self.config.sam.as_ref(),
            )
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
        let mut tensors = self.model.state()?;
        for ((name, _), buffer) in self.model.trainable().iter().zip(self.sgd.buffers()) {
            if let Some(buffer) = buffer {
                tensors.push((format!("{MOMENTUM_PREFIX}{name}"), buffer.clone()));
            }
        }
        let state = ResumeState {
            config: self.config.clone(),
            data: self.long_tailed.clone(),
            epochs_done: self.epochs_done,
            best: self.best,
        };
        let json = serde_json::to_string(&state).map_err(|e| Error::Bug(e.to_string()))?;
        write_safetensors(
            &self.run.resume(),
            &tensors,
            HashMap::from([(RESUME_KEY.to_string(), json)]),
        )
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

enum StepError {
    Diverged(f64),
    Other(Error),
}

impl From<Error> for StepError {
    fn from(e: Error) -> Self {
        StepError::Other(e)
    }
}

impl From<candle_core::Error> for StepError {
    fn from(e: candle_core::Error) -> Self {
        StepError::Other(e.into())
    }
}

impl From<saddlescope_nn::Error> for StepError {
    fn from(e: saddlescope_nn::Error) -> Self {
        StepError::Other(e.into())
    }
}

/// Gradients of `loss` at the model's current weights, aligned with `vars`.
fn gradients(
    model: &Model,
    loss: &Loss,
    images: &Tensor,
    labels: &Tensor,
    bn: BnMode,
    vars: &[&Var],
) -> Result<(f64, Tensor, Vec<Option<Tensor>>), StepError> {
    let logits = model.forward(images, bn)?;
    let value = loss.compute(&logits, labels)?;
    let scalar_value = scalar(&value)?;
    if !scalar_value.is_finite() {
        return Err(StepError::Diverged(scalar_value));
    }
    let store = value.backward()?;
    let grads = vars
        .iter()
        .map(|v| store.get(v.as_tensor()).cloned())
        .collect();
    Ok((scalar_value, logits, grads))
}

/// One SGD (or SAM) step on one batch.
#[allow(clippy::too_many_arguments)]
fn step_once(
    model: &Model,
    sgd: &mut Sgd,
    loss: &Loss,
    images: &Tensor,
    labels: &Tensor,
    lr: f64,
    rho: f64,
    sam: Option<&crate::config::SamConfig>,
) -> Result<StepStats, StepError> {
    let vars: Vec<&Var> = model.trainable().iter().map(|(_, v)| v).collect();
    let (value, logits, grads) = gradients(model, loss, images, labels, BnMode::Train, &vars)?;
    let predicted: Vec<u32> = logits.argmax(1)?.to_vec1()?;
    let truth: Vec<u32> = labels.to_vec1()?;
    let correct = predicted.iter().zip(&truth).filter(|(p, y)| p == y).count();
    let adaptive = sam.is_some_and(|s| s.adaptive);
    let weights: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().detach()).collect();
    let grad_norm = global_norm(&weights, &grads, adaptive)?;
    let (update, sharpness) = match sam {
        Some(sam) if rho > 0.0 => {
            // SAM (Foret et al. 2021): ascend to w + e, e = ρ g/‖g‖ (ASAM: ρ w² g/‖|w| g‖),
            // take the gradient there, come back to exactly w, step with it.
            let saved: Vec<Tensor> = weights.iter().map(Tensor::copy).collect::<Result<_, _>>()?;
            let e = perturbation(&saved, &grads, grad_norm, rho, adaptive)?;
            for ((var, e), w) in vars.iter().zip(&e).zip(&saved) {
                if let Some(e) = e {
                    var.set(&(w + e)?)?;
                }
            }
            let bn = if sam.bn_double {
                BnMode::Train
            } else {
                BnMode::BatchStats
            };
            let perturbed = gradients(model, loss, images, labels, bn, &vars);
            for (var, w) in vars.iter().zip(&saved) {
                var.set(w)?;
            }
            let (perturbed_value, _, perturbed_grads) = perturbed?;
            (perturbed_grads, perturbed_value - value)
        }
        _ => (grads, 0.0),
    };
    sgd.step(&vars, &update, lr)?;
    Ok(StepStats {
        loss: value,
        correct,
        grad_norm,
        sharpness,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SamConfig;
    use crate::presets::preset;
    use std::cell::Cell;

    /// A small, fast run: 3-class synthetic mixture, tiny MLP, SAM and DRW both on, so that
    /// resume has momentum buffers, DRW switching and SAM to get right.
    fn tiny_config(epochs: usize) -> TrainConfig {
        let mut c = preset("mnist-lt-ce-drw").unwrap();
        c.dataset = "synthetic:classes=3,dim=6,n=40,test=10,seed=1"
            .parse()
            .unwrap();
        c.ratio = 10.0;
        c.model = "mlp:8".parse().unwrap();
        c.epochs = epochs;
        c.batch_size = 16;
        c.lr = 0.1;
        c.reweighting = crate::config::Reweighting::FromEpoch(3);
        c.sam = Some(SamConfig {
            rho: 0.05,
            from_epoch: 2,
            schedule: vec![],
            adaptive: false,
            bn_double: false,
        });
        c.save_every = 2;
        c
    }

    /// Stops the run once `after` epochs are done (mid-way through the next one).
    struct StopAfter<'a> {
        after: usize,
        stop: &'a AtomicBool,
        seen: Cell<usize>,
    }

    impl TrainObserver for StopAfter<'_> {
        fn step_done(&self, epoch: usize, _: usize, _: f64, _: f64) {
            self.seen.set(epoch);
            if epoch > self.after {
                self.stop.store(true, Ordering::SeqCst);
            }
        }
    }

    fn weights(path: &Path) -> Vec<(String, Vec<u8>)> {
        let file = read_safetensors(path, &Device::Cpu).unwrap();
        let mut named: Vec<(String, Vec<u8>)> = file
            .tensors
            .iter()
            .map(|(n, t)| {
                let values: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
                (
                    n.clone(),
                    values.iter().flat_map(|v| v.to_le_bytes()).collect(),
                )
            })
            .collect();
        named.sort();
        named
    }

    #[test]
    fn interrupted_and_resumed_run_is_bit_identical() {
        let dir = tempfile::tempdir().unwrap();
        let (straight, broken) = (dir.path().join("straight"), dir.path().join("broken"));
        let never = AtomicBool::new(false);
        let mut a = Trainer::new(tiny_config(5), &straight, &Device::Cpu).unwrap();
        assert_eq!(a.run(&Silent, &never).unwrap(), RunOutcome::Finished);

        let stop = AtomicBool::new(false);
        let mut b = Trainer::new(tiny_config(5), &broken, &Device::Cpu).unwrap();
        let observer = StopAfter {
            after: 2,
            stop: &stop,
            seen: Cell::new(0),
        };
        assert_eq!(
            b.run(&observer, &stop).unwrap(),
            RunOutcome::Interrupted { epochs_done: 2 }
        );
        assert_eq!(observer.seen.get(), 3, "stopped inside epoch 3");
        drop(b);
        let mut resumed = Trainer::resume(&broken, &Device::Cpu, None).unwrap();
        assert_eq!(resumed.epochs_done(), 2);
        assert_eq!(resumed.run(&Silent, &never).unwrap(), RunOutcome::Finished);

        let run_a = RunDir::new(&straight);
        let run_b = RunDir::new(&broken);
        assert_eq!(weights(&run_a.last()), weights(&run_b.last()));
        assert_eq!(
            weights(&run_a.resume()),
            weights(&run_b.resume()),
            "momentum buffers too"
        );
        let log_b = read_log(&run_b.log()).unwrap();
        assert_eq!(
            log_b.iter().map(|r| r.epoch).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        let log_a = read_log(&run_a.log()).unwrap();
        for (x, y) in log_a.iter().zip(&log_b) {
            assert_eq!(x.test, y.test);
            assert_eq!(x.train_loss, y.train_loss);
        }
        assert!(run_b.epoch(4).exists() && !run_b.epoch(3).exists());
    }

    #[test]
    fn training_lowers_the_loss_on_synthetic_data() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = tiny_config(6);
        config.sam = None;
        config.reweighting = crate::config::Reweighting::Off;
        let mut trainer = Trainer::new(config, dir.path(), &Device::Cpu).unwrap();
        trainer.run(&Silent, &AtomicBool::new(false)).unwrap();
        let log = read_log(&RunDir::new(dir.path()).log()).unwrap();
        let (first, last) = (&log[0], &log[log.len() - 1]);
        assert!(
            last.train_loss < 0.7 * first.train_loss,
            "{} -> {}",
            first.train_loss,
            last.train_loss
        );
        assert!(last.test.accuracy > 0.6, "{}", last.test.accuracy);
        let loaded =
            crate::checkpoint::load_checkpoint(&RunDir::new(dir.path()).last(), &Device::Cpu)
                .unwrap();
        assert_eq!(loaded.meta.epoch, 6);
        assert_eq!(loaded.meta.test.as_ref().unwrap(), &last.test);
    }

    #[test]
    fn a_second_run_in_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = Trainer::new(tiny_config(3), dir.path(), &Device::Cpu).unwrap();
        t.run(&Silent, &AtomicBool::new(false)).unwrap();
        let again = Trainer::new(tiny_config(3), dir.path(), &Device::Cpu);
        assert!(matches!(again, Err(Error::RunExists { .. })));
    }

    #[test]
    fn resnet32_sam_step_runs_on_cpu() {
        let model = Model::new(
            &"resnet32".parse().unwrap(),
            10,
            [3, 32, 32],
            DType::F32,
            &Device::Cpu,
            0,
        )
        .unwrap();
        let images = Tensor::randn(0f32, 1.0, (2, 3, 32, 32), &Device::Cpu).unwrap();
        let labels = Tensor::new(&[3u32, 7], &Device::Cpu).unwrap();
        let loss = saddlescope_nn::LossSpec::Ce.build(&[10; 10], None).unwrap();
        let mut sgd = Sgd::new(Default::default(), model.trainable().len());
        let before = model.trainable()[0].1.as_tensor().copy().unwrap();
        let sam = SamConfig {
            rho: 0.1,
            from_epoch: 1,
            schedule: vec![],
            adaptive: false,
            bn_double: false,
        };
        let stats = step_once(
            &model,
            &mut sgd,
            &loss,
            &images,
            &labels,
            0.1,
            0.1,
            Some(&sam),
        )
        .ok()
        .unwrap();
        assert!(stats.loss.is_finite() && stats.grad_norm > 0.0);
        let after = model.trainable()[0].1.as_tensor();
        let change: f32 = (after - &before)
            .unwrap()
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(change > 0.0);
        model.check_finite().unwrap();
    }
}
