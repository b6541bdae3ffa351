//! The training recipe: every setting of a run, validated before the run starts, stored in
//! every checkpoint and in the resume state.

use candle_core::DType;
use saddlescope_data::{DatasetSpec, GroupRule, Imbalance, LongTailConfig};
use saddlescope_nn::{LossSpec, ModelSpec};
use serde::{Deserialize, Serialize};

use crate::error::Param;
use crate::schedule::{scaled_epoch, LrSchedule};
use crate::sgd::SgdParams;
use crate::Error;

/// When the deferred re-weighting (DRW) class weights are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reweighting {
    /// Never: every sample weighs the same.
    Off,
    /// DRW (Cao et al. 2019): from this 1-based epoch on (160 of 200 in the reference code).
    FromEpoch(usize),
    /// From the first epoch (plain re-weighting).
    Always,
}

impl std::fmt::Display for Reweighting {
    /// `off`, `DRW from epoch 25`, `from the first epoch`: as a report says it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reweighting::Off => f.write_str("off"),
            Reweighting::FromEpoch(start) => write!(f, "DRW from epoch {start}"),
            Reweighting::Always => f.write_str("from the first epoch"),
        }
    }
}

/// Sharpness-Aware Minimization settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamConfig {
    /// Radius ρ of the ascent step.
    pub rho: f64,
    /// First 1-based epoch that uses SAM (1 = from the start).
    pub from_epoch: usize,
    /// Optional step schedule `(epoch, ρ)`: from each listed epoch on, that ρ (overrides
    /// `rho` from the first listed epoch).
    pub schedule: Vec<(usize, f64)>,
    /// Adaptive SAM (ASAM, Kwon et al. 2021): the ascent step scaled by |w|.
    pub adaptive: bool,
    /// Update BN running statistics in the second (perturbed) pass too, as the reference
    /// code does; by default they are updated once per step, at the unperturbed weights.
    pub bn_double: bool,
}

impl SamConfig {
    /// ρ in force at 1-based `epoch` (0 before `from_epoch`).
    pub fn rho_at(&self, epoch: usize) -> f64 {
        if epoch < self.from_epoch {
            return 0.0;
        }
        self.schedule
            .iter()
            .rev()
            .find(|(start, _)| epoch >= *start)
            .map_or(self.rho, |(_, rho)| *rho)
    }
}

/// Every setting of a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Data-set spec (`mnist10k`, `cifar10:DIR`, ...).
    pub dataset: DatasetSpec,
    /// Imbalance profile of the training split.
    pub imbalance: Imbalance,
    /// Imbalance ratio n_max / n_min.
    pub ratio: f64,
    /// Largest class size; `None` = the smallest class of the source split.
    pub n_max: Option<usize>,
    /// Head/medium/tail rule.
    pub groups: GroupRule,
    /// Architecture.
    pub model: ModelSpec,
    /// Training loss.
    pub loss: LossSpec,
    /// Class re-weighting.
    pub reweighting: Reweighting,
    /// SAM, if used.
    pub sam: Option<SamConfig>,
    /// Number of epochs.
    pub epochs: usize,
    /// The run length the learning-rate schedule is laid out for (its warm-up and decay
    /// epochs scale with it), when it differs from `epochs`: a resumed run whose number of
    /// epochs changed keeps the schedule it started with ([`TrainConfig::replanned`]).
    /// `None` (and absent from the JSON): `epochs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_epochs: Option<usize>,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Base learning rate.
    pub lr: f64,
    /// Learning-rate schedule.
    pub schedule: LrSchedule,
    /// Momentum μ.
    pub momentum: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// Seed of everything random: initial weights, imbalance selection, shuffles, crops.
    pub seed: u64,
    /// Write `epoch-NNNN.safetensors` every this many epochs (0: only `last` and `best`).
    pub save_every: usize,
    /// Element type of weights and batches (`"f32"` or `"f64"`).
    pub dtype: String,
}

/// `"f32"`/`"f64"` to a candle dtype.
pub fn parse_dtype(text: &str) -> Result<DType, String> {
    match text {
        "f32" => Ok(DType::F32),
        "f64" => Ok(DType::F64),
        other => Err(format!("unsupported dtype {other:?}, expected f32 or f64")),
    }
}

fn invalid(param: Param, reason: String) -> Error {
    Error::Invalid { param, reason }
}

impl TrainConfig {
    /// The imbalance part, as the data crate takes it.
    pub fn long_tail(&self) -> LongTailConfig {
        LongTailConfig {
            imbalance: self.imbalance,
            ratio: self.ratio,
            n_max: self.n_max,
            seed: self.seed,
            groups: self.groups,
        }
    }

    /// Optimizer hyper-parameters.
    pub fn sgd(&self) -> SgdParams {
        SgdParams {
            momentum: self.momentum,
            weight_decay: self.weight_decay,
        }
    }

    /// Whether the DRW class weights are on in 1-based `epoch`.
    pub fn reweight_at(&self, epoch: usize) -> bool {
        match self.reweighting {
            Reweighting::Off => false,
            Reweighting::Always => true,
            Reweighting::FromEpoch(start) => epoch >= start,
        }
    }

    /// SAM's ρ in 1-based `epoch` (0 without SAM).
    pub fn rho_at(&self, epoch: usize) -> f64 {
        self.sam.as_ref().map_or(0.0, |sam| sam.rho_at(epoch))
    }

    /// The DRW start epoch of the reference recipe (160 of 200, +1: the first epoch after
    /// the learning rate's first decay) scaled to `epochs`, and at most `epochs`, so that a
    /// DRW recipe re-weights in at least its last epoch however short the run.
    pub fn default_drw_epoch(epochs: usize) -> usize {
        (scaled_epoch(160, epochs) + 1).min(epochs.max(1))
    }

    /// The run length the learning-rate schedule is laid out for.
    pub fn schedule_span(&self) -> usize {
        self.schedule_epochs.unwrap_or(self.epochs)
    }

    /// The learning rate of 1-based `epoch`.
    pub fn lr_at(&self, epoch: usize) -> f64 {
        self.schedule.lr_at(self.lr, epoch, self.schedule_span())
    }

    /// This run with `epochs` epochs instead, `done` of them complete: what `train --resume
    /// --epochs N` continues. The plan the run started with stays: the learning-rate
    /// schedule keeps its epochs (a step schedule goes on at its final rate after them), and
    /// so do the DRW start and SAM's epochs.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming [`Param::Epochs`] when `epochs` is below `done`, would
    /// extend a cosine schedule past its end (its rate is 0 there), or would end the run
    /// before its recorded DRW or SAM start.
    pub fn replanned(&self, epochs: usize, done: usize) -> Result<Self, Error> {
        let refuse = |reason: String| Err(invalid(Param::Epochs, format!("{epochs}: {reason}")));
        let span = self.schedule_span();
        if epochs < done {
            return refuse(format!("fewer than the {done} epochs already done"));
        }
        if epochs > span && self.schedule == LrSchedule::Cosine {
            return refuse(format!(
                "this run's cosine schedule anneals the learning rate to 0 at epoch {span}, so more epochs would not train; start a new run with --epochs {epochs}"
            ));
        }
        if let Reweighting::FromEpoch(start) = self.reweighting {
            if start > epochs {
                return refuse(format!(
                    "this run's plan turns DRW on at epoch {start}; keep at least {start} epochs"
                ));
            }
        }
        if let Some(sam) = self.sam.as_ref().filter(|sam| sam.from_epoch > epochs) {
            return refuse(format!(
                "this run's plan starts SAM at epoch {}; keep at least {} epochs",
                sam.from_epoch, sam.from_epoch
            ));
        }
        let mut config = self.clone();
        config.epochs = epochs;
        config.schedule_epochs = (epochs != span).then_some(span);
        config.validate()?;
        Ok(config)
    }

    /// Checks every setting, naming the offending one ([`Error::Invalid`]).
    pub fn validate(&self) -> Result<(), Error> {
        if self.epochs == 0 || self.schedule_epochs == Some(0) {
            return Err(invalid(Param::Epochs, "must be at least 1".into()));
        }
        if self.batch_size == 0 {
            return Err(invalid(Param::BatchSize, "must be at least 1".into()));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(invalid(
                Param::Lr,
                format!("{} is not a positive number", self.lr),
            ));
        }
        if !(self.momentum.is_finite() && (0.0..1.0).contains(&self.momentum)) {
            return Err(invalid(
                Param::Momentum,
                format!("{} is not in [0, 1)", self.momentum),
            ));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(invalid(
                Param::WeightDecay,
                format!("{} is negative or not finite", self.weight_decay),
            ));
        }
        if !(self.ratio.is_finite() && self.ratio >= 1.0) {
            return Err(invalid(Param::Ratio, format!("{} is below 1", self.ratio)));
        }
        if let Reweighting::FromEpoch(start) = self.reweighting {
            if start == 0 || start > self.epochs {
                return Err(invalid(
                    Param::DrwEpoch,
                    format!("{start} is outside the run's epochs 1..={}", self.epochs),
                ));
            }
        }
        if let Some(sam) = &self.sam {
            let bad_rho = |r: f64| !(r.is_finite() && r >= 0.0);
            if bad_rho(sam.rho) {
                return Err(invalid(
                    Param::SamRho,
                    format!("rho {} is negative or not finite", sam.rho),
                ));
            }
            if let Some((_, bad)) = sam.schedule.iter().find(|(_, r)| bad_rho(*r)) {
                return Err(invalid(
                    Param::SamSchedule,
                    format!("rho {bad} is negative or not finite"),
                ));
            }
            if sam.from_epoch == 0 || sam.from_epoch > self.epochs {
                return Err(invalid(
                    Param::SamFrom,
                    format!(
                        "{} is outside the run's epochs 1..={}",
                        sam.from_epoch, self.epochs
                    ),
                ));
            }
            if sam.schedule.windows(2).any(|w| w[0].0 >= w[1].0) {
                return Err(invalid(Param::SamSchedule, "epochs must increase".into()));
            }
        }
        parse_dtype(&self.dtype).map_err(|reason| invalid(Param::Dtype, reason))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preset;

    /// Issue 16: every run length gets a DRW start inside the run.
    #[test]
    fn the_default_drw_epoch_is_inside_every_run() {
        assert_eq!(TrainConfig::default_drw_epoch(200), 161);
        assert_eq!(TrainConfig::default_drw_epoch(30), 25);
        assert_eq!(TrainConfig::default_drw_epoch(10), 9);
        assert_eq!(TrainConfig::default_drw_epoch(2), 2);
        assert_eq!(TrainConfig::default_drw_epoch(1), 1);
        for epochs in 1..=400 {
            let drw = TrainConfig::default_drw_epoch(epochs);
            assert!(
                (1..=epochs).contains(&drw),
                "{epochs} epochs: DRW from {drw}"
            );
        }
    }

    /// Issue 16: a resumed run with more epochs keeps its learning rates and DRW start.
    #[test]
    fn a_replanned_run_keeps_its_schedule() {
        let mut quick = preset("mnist-lt-ce-drw").unwrap();
        quick.epochs = 10;
        quick.reweighting = Reweighting::FromEpoch(TrainConfig::default_drw_epoch(10));
        let longer = quick.replanned(35, 10).unwrap();
        assert_eq!((longer.epochs, longer.schedule_epochs), (35, Some(10)));
        assert_eq!(longer.reweighting, Reweighting::FromEpoch(9));
        for epoch in 1..=10 {
            assert_eq!(longer.lr_at(epoch), quick.lr_at(epoch), "epoch {epoch}");
        }
        // After the plan, the step schedule's final rate (lr 0.05 x 1e-4).
        for epoch in 11..=35 {
            assert_eq!(longer.lr_at(epoch), quick.lr_at(10), "epoch {epoch}");
        }
        // Back to the recorded length: the plan as it started.
        assert_eq!(longer.replanned(10, 10).unwrap(), quick);
        let shorter = quick.replanned(9, 3).unwrap();
        assert_eq!(shorter.schedule_epochs, Some(10));
        let message = |err: Error| err.to_string();
        assert_eq!(
            message(quick.replanned(8, 3).unwrap_err()),
            "epochs: 8: this run's plan turns DRW on at epoch 9; keep at least 9 epochs"
        );
        assert_eq!(
            message(quick.replanned(5, 6).unwrap_err()),
            "epochs: 5: fewer than the 6 epochs already done"
        );
        quick.schedule = LrSchedule::Cosine;
        assert!(message(quick.replanned(11, 10).unwrap_err())
            .contains("cosine schedule anneals the learning rate to 0 at epoch 10"));
    }

    #[test]
    fn sam_schedule_switches_rho_at_listed_epochs() {
        let sam = SamConfig {
            rho: 0.05,
            from_epoch: 3,
            schedule: vec![(5, 0.1), (8, 0.5)],
            adaptive: false,
            bn_double: false,
        };
        let rhos: Vec<f64> = (1..=9).map(|e| sam.rho_at(e)).collect();
        assert_eq!(rhos, [0.0, 0.0, 0.05, 0.05, 0.1, 0.1, 0.1, 0.5, 0.5]);
    }
}
