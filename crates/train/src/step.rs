//! One optimizer step on one batch: the gradient, SGD's update and, with SAM, the ascent to
//! the perturbed weights and back.

use candle_core::{DType, Tensor, Var};
use saddlescope_nn::{BnMode, Loss, Model};

use crate::config::SamConfig;
use crate::sam::{global_norm, perturbation};
use crate::sgd::Sgd;
use crate::Error;

/// What every step of an epoch shares: the loss, the learning rate and SAM's radius.
pub(crate) struct StepSettings<'a> {
    /// The epoch's loss (DRW weights included when on).
    pub(crate) loss: &'a Loss,
    /// The epoch's learning rate.
    pub(crate) lr: f64,
    /// SAM's radius ρ in this epoch (0: a plain step).
    pub(crate) rho: f64,
    /// SAM's settings, if the run uses it.
    pub(crate) sam: Option<&'a SamConfig>,
}

/// Statistics of one optimizer step.
pub(crate) struct StepStats {
    pub(crate) loss: f64,
    pub(crate) correct: usize,
    pub(crate) grad_norm: f64,
    pub(crate) sharpness: f64,
}

/// Why a step failed: the loss left the finite numbers (the trainer names epoch and step),
/// or anything else.
pub(crate) enum StepError {
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

fn scalar(t: &Tensor) -> Result<f64, Error> {
    Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?)
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
pub(crate) fn step_once(
    model: &Model,
    sgd: &mut Sgd,
    settings: &StepSettings<'_>,
    images: &Tensor,
    labels: &Tensor,
) -> Result<StepStats, StepError> {
    let StepSettings { loss, lr, rho, sam } = *settings;
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
    use candle_core::Device;

    use super::*;

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
        let settings = StepSettings {
            loss: &loss,
            lr: 0.1,
            rho: 0.1,
            sam: Some(&sam),
        };
        let stats = step_once(&model, &mut sgd, &settings, &images, &labels)
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
