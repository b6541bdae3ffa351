//! Small CNN for MNIST-sized inputs: stages of `conv3×3 (no bias) → BN → act → avgpool 2`,
//! then flatten and the classifier `linear`.
//!
//! The default `cnn` (widths 16, 32) on `(1, 28, 28)` has 20.5 k parameters:
//! `28 → 14 → 7`, head `Linear(32·7·7, C)`. Average rather than max pooling keeps the
//! network piecewise quadratic in its weights away from ReLU kinks and needs no argmax
//! tangent.

use crate::error::Result;
use crate::layers::{avg_pool2, Activation, BatchNorm2d, Conv2d, Linear, Then};
use crate::store::{Builder, Ctx};
use crate::value::Value;

/// CNN with parameters `conv{i}.weight`, `bn{i}.{weight,bias}` (buffers
/// `bn{i}.running_{mean,var}`), i = 1..K, and `linear.{weight,bias}`.
#[derive(Clone, Debug)]
pub(crate) struct Cnn {
    stages: Vec<(Conv2d, BatchNorm2d)>,
    head: Linear,
    head_inputs: usize,
    activation: Activation,
}

impl Cnn {
    /// Registers the stages for inputs of shape `(c, h, w)`; the caller has checked that
    /// every stage leaves at least one pixel.
    pub(crate) fn new(
        b: &mut Builder,
        [c, mut h, mut w]: [usize; 3],
        widths: &[usize],
        classes: usize,
        activation: Activation,
    ) -> Result<Self> {
        let mut stages = Vec::with_capacity(widths.len());
        let mut prev = c;
        for (i, &width) in widths.iter().enumerate() {
            let conv = Conv2d::new(b, &format!("conv{}", i + 1), (prev, width), 3, 1, 1)?;
            let bn = BatchNorm2d::new(b, &format!("bn{}", i + 1), width)?;
            stages.push((conv, bn));
            prev = width;
            h /= 2;
            w /= 2;
        }
        let head_inputs = prev * h * w;
        let head = Linear::new(b, "linear", head_inputs, classes)?;
        Ok(Self {
            stages,
            head,
            head_inputs,
            activation,
        })
    }

    /// Logits `(N, classes)` of `x: (N, C, H, W)`.
    pub(crate) fn forward<V: Value>(&self, ctx: &Ctx<V>, x: &V) -> Result<V> {
        let mut h = x.clone();
        for (conv, bn) in &self.stages {
            h = match self.activation {
                Activation::Relu => bn.forward_conv(ctx, conv, &h, Then::ReluPool2)?,
                act => avg_pool2(&act.apply(&bn.forward_conv(ctx, conv, &h, Then::Nothing)?)?)?,
            };
        }
        let n = h.primal().dim(0)?;
        self.head.forward(ctx, &h.reshape(&[n, self.head_inputs])?)
    }
}
