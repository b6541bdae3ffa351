//! Batch normalization over channels, PyTorch `nn.BatchNorm2d(C)` (`eps = 1e-5`,
//! `momentum = 0.1`).
//!
//! `x: (N, C, H, W)`, per channel `c`: `y = γ_c (x − μ_c)/√(σ²_c + eps) + β_c` with
//! `γ` = `weight`, `β` = `bias`, and buffers `running_mean`, `running_var` (all `(C,)`).
//!
//! - Eval: `μ, σ²` are the running statistics, constants, so the layer is the affine map
//!   `y = x·a + (β − μ·a)` with `a = γ/√(σ² + eps)`. It always follows a convolution
//!   `x = conv(z, K)` here and is folded into it: `y = conv(z, a·K) + (β − μ·a)`; tangent
//!   `ẏ = conv(ż, a·K) + conv(z, ȧ·K + a·K̇) + β̇ − μ·ȧ`, `ȧ = γ̇/√(σ² + eps)`.
//! - Batch statistics: `μ = mean(x)`, `d = x − μ`, `σ² = mean(d²)` (biased) over
//!   `N, H, W`; `y = d·r·γ + β` with `r = (σ² + eps)^(−1/2)`. Tangents:
//!   `μ̇ = mean(ẋ)`, `ḋ = ẋ − μ̇`, `σ̇² = mean(2 d ḋ)`, `ṙ = −½ r³ σ̇²`, then the product
//!   rule. Training (`momentum` set) also updates
//!   `running ← (1 − m)·running + m·batch` with the unbiased variance `σ²·n/(n − 1)`,
//!   `n = N·H·W`, from the detached primal, exactly as PyTorch; the Hessian passes use
//!   batch statistics without touching the buffers.
//!
//! What follows the layer in the models (ReLU; ReLU and 2×2 average pooling; a residual
//! sum and ReLU: [`Then`]) is part of its forward pass, so that with batch statistics on
//! plain tensors (training, gradients) the convolution, the layer and the epilogue run as
//! one fused op (`ops::conv_batch_norm_train`); dual values, and eval mode, compose them.
//!
//! Init as PyTorch: `γ = 1`, `β = 0`, running mean 0, running variance 1. PyTorch's
//! `num_batches_tracked` is not kept (it only matters for `momentum=None`).

use candle_core::Tensor;

use crate::error::{Error, Result};
use crate::layers::{avg_pool2, Conv2d};
use crate::ops;
use crate::store::{BnRun, BufferId, Builder, Ctx, ParamId};
use crate::value::Value;

/// `eps` of PyTorch's `BatchNorm2d`.
const EPS: f64 = 1e-5;

/// What a model applies to a batch norm's output, part of the layer's forward pass so that
/// training can fuse it ([`BatchNorm2d::forward_conv`]).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Then<'a, V> {
    /// The normalized values themselves.
    Nothing,
    /// `relu(·)`.
    Relu,
    /// `avg_pool2(relu(·))`, a CNN stage's end.
    ReluPool2,
    /// `relu(· + skip)`, a residual block's end.
    AddRelu(&'a V),
}

impl<V: Value> Then<'_, V> {
    /// Applies the epilogue to `z` (composed from the layers' primitives; pooling a plain
    /// tensor's ReLU in the same pass).
    fn apply(&self, z: &V) -> Result<V> {
        match self {
            Then::Nothing => Ok(z.clone()),
            Then::Relu => z.relu(),
            Then::ReluPool2 => match z.as_plain() {
                Some(z) => Ok(V::constant(ops::relu_avg_pool2(z)?)),
                None => avg_pool2(&z.relu()?),
            },
            Then::AddRelu(skip) => z.add_relu(skip),
        }
    }
}

/// One residual block's `[(conv₁, BN₁), (conv₂, BN₂)]` and its option-A shortcut padding
/// (`None`: the identity shortcut), as [`BatchNorm2d::forward_residual_blocks`] takes it.
pub(crate) type ResidualLayers<'a> = ([(&'a Conv2d, &'a BatchNorm2d); 2], Option<usize>);

/// `nn.BatchNorm2d`; parameters `{name}.weight`, `{name}.bias`, buffers
/// `{name}.running_mean`, `{name}.running_var`.
#[derive(Clone, Debug)]
pub(crate) struct BatchNorm2d {
    name: String,
    channels: usize,
    weight: ParamId,
    bias: ParamId,
    running_mean: BufferId,
    running_var: BufferId,
}

impl BatchNorm2d {
    /// Registers the affine parameters and the running statistics of `channels` channels.
    pub(crate) fn new(b: &mut Builder, name: &str, channels: usize) -> Result<Self> {
        Ok(Self {
            name: name.to_string(),
            channels,
            weight: b.param(format!("{name}.weight"), &[channels], vec![1.0; channels])?,
            bias: b.param(format!("{name}.bias"), &[channels], vec![0.0; channels])?,
            running_mean: b.buffer(format!("{name}.running_mean"), &[channels], 0.0)?,
            running_var: b.buffer(format!("{name}.running_var"), &[channels], 1.0)?,
        })
    }

    /// `then(BN(conv(x)))` for `x: (N, C_in, H, W)`, as `ctx.bn` says (BN always follows a
    /// convolution in these models).
    ///
    /// In eval mode BN is the per-channel affine map `y ↦ a·y + b`, so it is folded into
    /// the kernel, `conv(x, a·K) + b` with `b` added inside the convolution: the same
    /// function with no pass over the activation beyond the convolution itself.
    pub(crate) fn forward_conv<V: Value>(
        &self,
        ctx: &Ctx<V>,
        conv: &Conv2d,
        x: &V,
        then: Then<V>,
    ) -> Result<V> {
        match ctx.bn {
            BnRun::Eval => {
                let mean = ctx.buffer(self.running_mean);
                let inv_std = ctx
                    .buffer(self.running_var)
                    .affine(1.0, EPS)?
                    .sqrt()?
                    .recip()?;
                let a = ctx.param(self.weight).mul(&V::constant(inv_std))?;
                let shift = ctx.param(self.bias).sub(&a.mul(&V::constant(mean))?)?;
                then.apply(&conv.forward_affine(ctx, x, &a, &shift)?)
            }
            BnRun::Batch { momentum } => {
                let (n, _, h, w) = x.primal().dims4()?;
                let count = self.checked_count(conv, (n, h, w))?;
                let (gamma, beta) = (ctx.param(self.weight), ctx.param(self.bias));
                let (out, mean, var) = match Self::fused(ctx, conv, x, (gamma, beta), &then)? {
                    Some((out, mean, var)) => (V::constant(out), mean, var),
                    None => {
                        let y = conv.forward(ctx, x)?;
                        let (z, mean, var) = self.composed(&y, gamma, beta)?;
                        (then.apply(&z)?, mean, var)
                    }
                };
                if let Some(m) = momentum {
                    self.update_running(ctx, m, &mean, &var, count)?;
                }
                Ok(out)
            }
        }
    }

    /// The values per channel of `conv(x)` for `x` of `N` samples of sides `(H, W)`,
    /// `N·Ho·Wo`, of which batch statistics need at least two.
    fn checked_count(&self, conv: &Conv2d, (n, h, w): (usize, usize, usize)) -> Result<usize> {
        let (ho, wo) = conv.output_sides((h, w));
        let count = n * ho * wo;
        if count < 2 {
            return Err(Error::BatchTooSmall {
                layer: self.name.clone(),
                values: count,
            });
        }
        Ok(count)
    }

    /// A chain of residual blocks, each `relu(BN₂(conv₂(relu(BN₁(conv₁(x))))) + skip(x))`
    /// with batch statistics, as one fused op (`ops::residual_blocks_train`: the gradients
    /// between and within the blocks never go through candle's gradient store), running
    /// statistics updated when training; `None` where it does not fuse (dual values, eval
    /// mode, other devices): the caller composes the blocks from
    /// [`forward_conv`](Self::forward_conv). A block's shortcut: `None` for the identity,
    /// `Some(p)` for option A.
    pub(crate) fn forward_residual_blocks<V: Value>(
        ctx: &Ctx<V>,
        blocks: &[ResidualLayers],
        x: &V,
    ) -> Result<Option<V>> {
        let (BnRun::Batch { momentum }, Some(x)) = (ctx.bn, x.as_plain()) else {
            return Ok(None);
        };
        let mut fused = Vec::with_capacity(blocks.len());
        let mut counts = Vec::with_capacity(blocks.len());
        let (n, _, mut h, mut w) = x.dims4()?;
        for (layers, shortcut_pad) in blocks {
            let mut pair = Vec::with_capacity(2);
            for (conv, bn) in layers {
                let plain = (
                    conv.kernel(ctx).as_plain(),
                    ctx.param(bn.weight).as_plain(),
                    ctx.param(bn.bias).as_plain(),
                );
                let (Some(kernel), Some(gamma), Some(beta)) = plain else {
                    return Ok(None);
                };
                counts.push(bn.checked_count(conv, (n, h, w))?);
                (h, w) = conv.output_sides((h, w));
                pair.push(ops::ConvBn {
                    kernel,
                    gamma,
                    beta,
                    conv: conv.padding_stride(),
                });
            }
            fused.push(ops::Block {
                layers: [pair[0], pair[1]],
                shortcut_pad: *shortcut_pad,
            });
        }
        let Some((out, stats)) = ops::residual_blocks_train(x, &fused, EPS)? else {
            return Ok(None);
        };
        if let Some(m) = momentum {
            let layers = blocks.iter().flat_map(|(layers, _)| layers);
            let stats = stats.iter().flatten();
            for (((_, bn), (mean, var)), &count) in layers.zip(stats).zip(&counts) {
                bn.update_running(ctx, m, mean, var, count)?;
            }
        }
        Ok(Some(V::constant(out)))
    }

    /// `then(BN(conv(x)))` with batch statistics as one fused op, with `(μ, σ²)`, when
    /// every operand is a plain tensor and the op runs here (`None`: compose it).
    fn fused<V: Value>(
        ctx: &Ctx<V>,
        conv: &Conv2d,
        x: &V,
        (gamma, beta): (&V, &V),
        then: &Then<V>,
    ) -> Result<Option<(Tensor, Tensor, Tensor)>> {
        let plain = (
            x.as_plain(),
            conv.kernel(ctx).as_plain(),
            gamma.as_plain(),
            beta.as_plain(),
        );
        let (Some(x), Some(kernel), Some(gamma), Some(beta)) = plain else {
            return Ok(None);
        };
        let epilogue = match then {
            Then::Nothing => ops::Epilogue::Identity,
            Then::Relu => ops::Epilogue::Relu,
            Then::ReluPool2 => ops::Epilogue::ReluPool2,
            Then::AddRelu(skip) => match skip.as_plain() {
                Some(skip) => ops::Epilogue::AddRelu(skip),
                None => return Ok(None),
            },
        };
        Ok(ops::conv_batch_norm_train(
            (x, kernel),
            conv.padding_stride(),
            (gamma, beta),
            EPS,
            epilogue,
        )?)
    }

    /// Batch-statistics BN composed from [`Value`] primitives (tangents included):
    /// `(BN(y), μ, σ²)`, the statistics as primal tensors.
    fn composed<V: Value>(&self, y: &V, gamma: &V, beta: &V) -> Result<(V, Tensor, Tensor)> {
        let channel = [1, self.channels, 1, 1];
        let mean = y.mean_keepdim((0, 2, 3))?;
        let centered = y.sub(&mean)?;
        let var = centered.square()?.mean_keepdim((0, 2, 3))?;
        let scale = var.rsqrt(EPS)?.mul(&gamma.reshape(&channel)?)?;
        let out = centered.mul(&scale)?.add(&beta.reshape(&channel)?)?;
        Ok((out, mean.primal().clone(), var.primal().clone()))
    }

    fn update_running<V: Value>(
        &self,
        ctx: &Ctx<V>,
        momentum: f64,
        mean: &Tensor,
        var: &Tensor,
        count: usize,
    ) -> Result<()> {
        let unbiased = count as f64 / (count as f64 - 1.0);
        let blend = |old: Tensor, batch: &Tensor, factor: f64| -> Result<Tensor> {
            let batch = batch
                .detach()
                .flatten_all()?
                .affine(momentum * factor, 0.0)?;
            Ok(old.affine(1.0 - momentum, 0.0)?.add(&batch)?)
        };
        let new_mean = blend(ctx.buffer(self.running_mean), mean, 1.0)?;
        let new_var = blend(ctx.buffer(self.running_var), var, unbiased)?;
        ctx.set_buffer(self.running_mean, &new_mean)?;
        ctx.set_buffer(self.running_var, &new_var)
    }
}
