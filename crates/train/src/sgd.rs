//! Stochastic gradient descent with momentum and weight decay, with PyTorch's semantics.
//!
//! For each parameter `p` with gradient `g` (`torch.optim.SGD`, dampening 0, no Nesterov):
//! `d = g + wd·p`; `buf = d` on the first step, else `buf = μ·buf + d`; `p ← p − lr·buf`.
//! candle-nn's `SGD` has neither momentum nor weight decay, and the reference recipe needs
//! both (μ = 0.9, wd = 2e-4 on CIFAR).

use candle_core::{Tensor, Var};

use crate::Error;

/// Hyper-parameters of [`Sgd`] that stay fixed over a run (the learning rate is per step).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdParams {
    /// Momentum μ (0.9 in the reference recipe).
    pub momentum: f64,
    /// L2 weight decay added to the gradient before momentum (2e-4 in the CIFAR recipe).
    pub weight_decay: f64,
}

impl Default for SgdParams {
    /// μ = 0.9 and wd = 2e-4, the long-tail CIFAR recipe (LDAM-DRW, Cao et al. 2019).
    fn default() -> Self {
        Self {
            momentum: 0.9,
            weight_decay: 2e-4,
        }
    }
}

/// SGD state: one momentum buffer per trainable parameter, created on its first step.
#[derive(Debug, Clone)]
pub struct Sgd {
    params: SgdParams,
    buffers: Vec<Option<Tensor>>,
}

impl Sgd {
    /// A fresh optimizer for `count` parameters.
    pub fn new(params: SgdParams, count: usize) -> Self {
        Self {
            params,
            buffers: vec![None; count],
        }
    }

    /// Rebuilds an optimizer from saved momentum buffers (see [`Sgd::buffers`]).
    pub fn from_buffers(params: SgdParams, buffers: Vec<Option<Tensor>>) -> Self {
        Self { params, buffers }
    }

    /// The momentum buffers, in parameter order (`None` before a parameter's first step).
    pub fn buffers(&self) -> &[Option<Tensor>] {
        &self.buffers
    }

    /// One update of `vars` with `grads` (aligned with `vars`; `None` skips that parameter,
    /// as PyTorch skips parameters without a gradient).
    pub fn step(&mut self, vars: &[&Var], grads: &[Option<Tensor>], lr: f64) -> Result<(), Error> {
        if vars.len() != self.buffers.len() || grads.len() != vars.len() {
            return Err(Error::Bug(format!(
                "sgd step with {} parameters, {} gradients and {} momentum buffers",
                vars.len(),
                grads.len(),
                self.buffers.len()
            )));
        }
        for ((var, grad), buffer) in vars.iter().zip(grads).zip(self.buffers.iter_mut()) {
            let Some(grad) = grad else { continue };
            // Detached: a buffer holding an autograd graph would grow it step after step.
            let weights = var.as_tensor().detach();
            let mut direction = grad.detach();
            if self.params.weight_decay != 0.0 {
                direction = (direction + (&weights * self.params.weight_decay)?)?;
            }
            if self.params.momentum != 0.0 {
                let next = match buffer.take() {
                    None => direction,
                    Some(previous) => ((previous * self.params.momentum)? + direction)?,
                };
                direction = next.clone();
                *buffer = Some(next);
            }
            var.set(&(weights - (direction * lr)?)?)?;
        }
        Ok(())
    }
}
