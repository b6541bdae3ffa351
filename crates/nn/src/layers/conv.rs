//! 2-d convolution without bias, PyTorch `nn.Conv2d(.., bias=False)`.
//!
//! `y = conv(x, K)` with `x: (N, C_in, H, W)`, `K: (C_out, C_in, k, k)` (`weight`), zero
//! padding `p`, stride `s`; `y: (N, C_out, (H + 2p − k)/s + 1, (W + 2p − k)/s + 1)`.
//! Every convolution goes through the crate's single routine (`ops::conv2d`).
//!
//! Tangent: bilinear, `ẏ = conv(ẋ, K) + conv(x, K̇)` ([`Value::conv2d`]); the input batch
//! has no tangent, so the stem convolution pays only the second term.
//!
//! Init: Kaiming-normal, `N(0, 2/(C_in·k²))` (reference `_weights_init`).

use crate::error::Result;
use crate::init;
use crate::store::{Builder, Ctx, ParamId};
use crate::value::Value;

/// Square-kernel convolution without bias; parameter `{name}.weight`.
#[derive(Clone, Debug)]
pub(crate) struct Conv2d {
    weight: ParamId,
    kernel_side: usize,
    padding: usize,
    stride: usize,
}

impl Conv2d {
    /// Registers `{name}.weight (out, in, k, k)`.
    pub(crate) fn new(
        b: &mut Builder,
        name: &str,
        (inputs, outputs): (usize, usize),
        kernel: usize,
        padding: usize,
        stride: usize,
    ) -> Result<Self> {
        let fan_in = inputs * kernel * kernel;
        let w = init::kaiming_normal(b.rng(), outputs * fan_in, fan_in);
        let weight = b.param(
            format!("{name}.weight"),
            &[outputs, inputs, kernel, kernel],
            w,
        )?;
        Ok(Self {
            weight,
            kernel_side: kernel,
            padding,
            stride,
        })
    }

    /// The kernel's value in this pass.
    pub(crate) fn kernel<'a, V: Value>(&self, ctx: &'a Ctx<V>) -> &'a V {
        ctx.param(self.weight)
    }

    /// `(padding, stride)`.
    pub(crate) fn padding_stride(&self) -> (usize, usize) {
        (self.padding, self.stride)
    }

    /// The output's side lengths for inputs of side lengths `(h, w)`.
    pub(crate) fn output_sides(&self, (h, w): (usize, usize)) -> (usize, usize) {
        let side =
            |n: usize| (n + 2 * self.padding).saturating_sub(self.kernel_side) / self.stride + 1;
        (side(h), side(w))
    }

    /// The convolution of `x: (N, C_in, H, W)`.
    pub(crate) fn forward<V: Value>(&self, ctx: &Ctx<V>, x: &V) -> Result<V> {
        x.conv2d(ctx.param(self.weight), self.padding, self.stride)
    }

    /// `scale[o]·conv(x, K)[o] + shift[o]` for every output channel `o` (`scale`, `shift`:
    /// `(C_out,)`), computed as `conv(x, scale·K) + shift` with the shift inside the
    /// convolution: a product over the small kernel, not over the output (tangent
    /// `conv(ẋ, s·K) + conv(x, ṡ·K + s·K̇) + ḃ`).
    pub(crate) fn forward_affine<V: Value>(
        &self,
        ctx: &Ctx<V>,
        x: &V,
        scale: &V,
        shift: &V,
    ) -> Result<V> {
        let outputs = scale.primal().dim(0)?;
        let kernel = ctx
            .param(self.weight)
            .mul(&scale.reshape(&[outputs, 1, 1, 1])?)?;
        x.conv2d_bias(&kernel, shift, self.padding, self.stride)
    }
}
