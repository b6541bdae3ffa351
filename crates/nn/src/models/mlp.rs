//! Multilayer perceptron: `linear(act(fc_k(… act(fc1(flatten x)))))`.
//!
//! Input `(N, C, H, W)` or `(N, C·H·W)`, flattened; hidden layers `fc1 … fcK`
//! ([`Linear`]), then the classifier `linear`, so that the prefix `linear.` selects the
//! head of every model. With no hidden layer it is softmax regression.

use crate::error::Result;
use crate::layers::{Activation, Linear};
use crate::store::{Builder, Ctx};
use crate::value::Value;

/// MLP with parameters `fc{i}.{weight,bias}` (i = 1..K) and `linear.{weight,bias}`.
#[derive(Clone, Debug)]
pub(crate) struct Mlp {
    inputs: usize,
    hidden: Vec<Linear>,
    head: Linear,
    activation: Activation,
}

impl Mlp {
    /// Registers the layers for `inputs` features, the given hidden widths and `classes`.
    pub(crate) fn new(
        b: &mut Builder,
        inputs: usize,
        widths: &[usize],
        classes: usize,
        activation: Activation,
    ) -> Result<Self> {
        let mut hidden = Vec::with_capacity(widths.len());
        let mut prev = inputs;
        for (i, &width) in widths.iter().enumerate() {
            hidden.push(Linear::new(b, &format!("fc{}", i + 1), prev, width)?);
            prev = width;
        }
        let head = Linear::new(b, "linear", prev, classes)?;
        Ok(Self {
            inputs,
            hidden,
            head,
            activation,
        })
    }

    /// Logits `(N, classes)`.
    pub(crate) fn forward<V: Value>(&self, ctx: &Ctx<V>, x: &V) -> Result<V> {
        let n = x.primal().dim(0)?;
        let mut h = x.reshape(&[n, self.inputs])?;
        for layer in &self.hidden {
            h = self.activation.apply(&layer.forward(ctx, &h)?)?;
        }
        self.head.forward(ctx, &h)
    }
}
