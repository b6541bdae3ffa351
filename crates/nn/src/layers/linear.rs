//! Fully connected layer, PyTorch `nn.Linear`.
//!
//! `y = x·Wᵀ + b` with `x: (N, in)`, `W: (out, in)` (`weight`), `b: (out,)` (`bias`),
//! `y: (N, out)`.
//!
//! Tangent: bilinear in `(x, W)` plus linear in `b`:
//! `ẏ = ẋ·Wᵀ + x·Ẇᵀ + ḃ` ([`Value::linear_layer`]).
//!
//! Init as PyTorch with the reference code's `_weights_init`: `W` Kaiming-normal
//! (`N(0, 2/in)`), `b ~ U(−1/√in, 1/√in)`.

use crate::error::Result;
use crate::init;
use crate::store::{Builder, Ctx, ParamId};
use crate::value::Value;

/// `nn.Linear(in, out)` with bias; parameters `{name}.weight`, `{name}.bias`.
#[derive(Clone, Debug)]
pub(crate) struct Linear {
    weight: ParamId,
    bias: ParamId,
}

impl Linear {
    /// Registers `{name}.weight (out, in)` and `{name}.bias (out,)`.
    pub(crate) fn new(b: &mut Builder, name: &str, inputs: usize, outputs: usize) -> Result<Self> {
        let w = init::kaiming_normal(b.rng(), outputs * inputs, inputs);
        let weight = b.param(format!("{name}.weight"), &[outputs, inputs], w)?;
        let bound = 1.0 / (inputs as f64).sqrt();
        let bias_values = init::uniform(b.rng(), outputs, bound);
        let bias = b.param(format!("{name}.bias"), &[outputs], bias_values)?;
        Ok(Self { weight, bias })
    }

    /// `x·Wᵀ + b` for `x: (N, in)`.
    pub(crate) fn forward<V: Value>(&self, ctx: &Ctx<V>, x: &V) -> Result<V> {
        x.linear_layer(ctx.param(self.weight), ctx.param(self.bias))
    }
}
