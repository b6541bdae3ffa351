//! Batch normalization with batch statistics (train mode) and what follows it (ReLU,
//! ReLU and 2×2 average pooling, or a residual sum and ReLU) as one CPU op; forward and
//! backward are each two passes over the activation.
//!
//! For `y: (N, C, H, W)` and per channel `c` over its `n = N·H·W` values:
//! `μ = mean(y)`, `σ² = mean((y − μ)²)` (biased), `r = (σ² + eps)^(−1/2)`,
//! `z = (y − μ)·r·γ + β`, then the epilogue: `z`, `relu(z)`, `avg_pool2(relu(z))` or
//! `relu(z + skip)`. With `h = ∂L/∂z` (the output gradient through the epilogue, ReLU's
//! mask `1[· ≥ 0]` as candle's) and `x̂ = (y − μ)·r`: `∂β = Σ h`, `∂γ = Σ h·x̂`,
//! `∂y = γ·r·(h − Σh/n − x̂·Σ(h·x̂)/n)` (the batch statistics' own dependence on `y`
//! included), and `∂skip = h` (for the residual epilogue `h` is its own op, so that every
//! op writes one output).
//!
//! Composed from candle ops the layer was ~15 ops whose backward reduced over the
//! non-contiguous axes `(0, 2, 3)` several times: ~60% of a CNN training step; each
//! separate ReLU, pooling or residual sum costs further passes and candle's gradient
//! accumulation. Here the statistics and the channel sums are accumulated in f64 per
//! channel (channels in parallel, each summed in a fixed order, so results are
//! bit-identical for any thread count), and the elementwise passes run over `(sample,
//! channel)` planes in parallel, recomputing `z` (and ReLU's mask) in the backward pass
//! instead of keeping it.
//!
//! `γ` and `β` enter as one argument `[γ, β]` (candle's custom ops take at most three).
//! The forward pass keeps the statistics it normalized with, for the backward pass and
//! for the caller's running-statistics update. The backward is one op that nothing
//! differentiates again: callers that need second derivatives (a double backward) compose
//! the layer instead (see `ops::batch_norm_train`).

use std::sync::{Arc, OnceLock};

use candle_core::{bail, Error, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;

use super::custom::{apply2, apply3, grad_if, par_collect, Arg, Cpu, CpuOp};

/// What the fused op applies to the normalized values `z`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Epilogue<'a> {
    /// `z` itself.
    Identity,
    /// `relu(z)`.
    Relu,
    /// `avg_pool2(relu(z))`: 2×2 windows, stride 2, odd last rows and columns dropped.
    ReluPool2,
    /// `relu(z + skip)`, `skip` of `y`'s shape (the end of a residual block).
    AddRelu(&'a Tensor),
}

/// The epilogue without its operand, as the ops keep it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Act {
    Identity,
    Relu,
    ReluPool2,
    AddRelu,
}

/// `epilogue(BN(y; γ, β))` with batch statistics, and those statistics: the per-channel
/// mean and biased variance `(C,)` in `y`'s dtype, for the running-statistics update (they
/// carry no gradient). `y: (N, C, H, W)` with `N·H·W ≥ 1` (and `H, W ≥ 2` to pool),
/// `γ, β: (C,)`; CPU, f32 or f64.
pub(crate) fn batch_norm_train(
    y: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    epilogue: Epilogue,
) -> Result<(Tensor, Tensor, Tensor)> {
    let stats = Arc::new(OnceLock::new());
    let affine = Tensor::cat(&[gamma, beta], 0)?;
    let op = |act| BatchNorm {
        eps,
        act,
        stats: Arc::clone(&stats),
    };
    let out = match epilogue {
        Epilogue::Identity => apply2(op(Act::Identity), y, &affine)?,
        Epilogue::Relu => apply2(op(Act::Relu), y, &affine)?,
        Epilogue::ReluPool2 => apply2(op(Act::ReluPool2), y, &affine)?,
        Epilogue::AddRelu(skip) => apply3(op(Act::AddRelu), y, &affine, skip)?,
    };
    let stats = stats
        .get()
        .ok_or_else(|| Error::Msg("batch norm: the forward pass left no statistics".into()))?;
    let channel =
        |values: &[f64]| Tensor::from_slice(values, values.len(), y.device())?.to_dtype(y.dtype());
    Ok((out, channel(&stats.mean)?, channel(&stats.var)?))
}

/// Per-channel statistics of one batch and the affine parameters they were used with, in
/// f64.
#[derive(Debug)]
struct Stats {
    mean: Vec<f64>,
    var: Vec<f64>,
    inv_std: Vec<f64>,
    gamma: Vec<f64>,
    beta: Vec<f64>,
}

/// `z = (y − μ)·a + β` of one channel, `a = γ·r`, in the element type: the forward and
/// backward passes evaluate it alike, so ReLU's mask is the same in both.
#[derive(Clone, Copy, Debug)]
struct Normalize<T> {
    mean: T,
    scale: T,
    shift: T,
}

impl<T: WithDType> Normalize<T> {
    fn of(stats: &Stats, ch: usize) -> Self {
        Self {
            mean: T::from_f64(stats.mean[ch]),
            scale: T::from_f64(stats.inv_std[ch] * stats.gamma[ch]),
            shift: T::from_f64(stats.beta[ch]),
        }
    }

    #[inline]
    fn apply(self, v: T) -> T {
        (v - self.mean) * self.scale + self.shift
    }
}

#[inline]
fn relu<T: WithDType>(v: T) -> T {
    let zero = T::from_f64(0.0);
    if v > zero {
        v
    } else {
        zero
    }
}

/// The epilogue with its operand's values, as the kernels use it.
#[derive(Clone, Copy)]
enum Epi<'a, T> {
    Identity,
    Relu,
    ReluPool2,
    AddRelu(&'a [T]),
}

impl<'a, T> Epi<'a, T> {
    /// `act` with the residual `skip`, which it has exactly when it is [`Act::AddRelu`].
    fn new(act: Act, skip: Option<&'a [T]>) -> Result<Self> {
        Ok(match (act, skip) {
            (Act::Identity, None) => Epi::Identity,
            (Act::Relu, None) => Epi::Relu,
            (Act::ReluPool2, None) => Epi::ReluPool2,
            (Act::AddRelu, Some(skip)) => Epi::AddRelu(skip),
            (act, skip) => bail!(
                "batch norm: epilogue {act:?} with {} residual",
                if skip.is_some() { "a" } else { "no" }
            ),
        })
    }
}

/// The shape of an activation and its output, checked.
#[derive(Clone, Copy, Debug)]
struct Dims {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    act: Act,
}

impl Dims {
    fn new(act: Act, y: &[usize], affine: &[usize], skip: Option<&[usize]>) -> Result<Self> {
        let &[n, c, h, w] = y else {
            bail!("batch norm: input of shape {y:?}, expected 4 dimensions")
        };
        if affine != [2 * c] {
            bail!(
                "batch norm: affine parameters of shape {affine:?}, expected [{}]",
                2 * c
            )
        }
        if n * h * w == 0 {
            bail!("batch norm: input of shape {y:?} has no values per channel")
        }
        if act == Act::ReluPool2 && (h < 2 || w < 2) {
            bail!("batch norm: input of shape {y:?} is too small to pool 2x2")
        }
        if let Some(skip) = skip {
            if skip != y {
                bail!("batch norm: residual of shape {skip:?} for an input of shape {y:?}")
            }
        }
        Ok(Self { n, c, h, w, act })
    }

    fn plane(&self) -> usize {
        self.h * self.w
    }

    fn pooled(&self) -> (usize, usize) {
        (self.h / 2, self.w / 2)
    }

    /// Values per plane of the output.
    fn out_plane(&self) -> usize {
        match self.act {
            Act::ReluPool2 => self.pooled().0 * self.pooled().1,
            _ => self.plane(),
        }
    }

    fn out_dims(&self) -> Vec<usize> {
        match self.act {
            Act::ReluPool2 => vec![self.n, self.c, self.pooled().0, self.pooled().1],
            _ => vec![self.n, self.c, self.h, self.w],
        }
    }
}

/// `Σ f(a_i)` in f64 over 8 interleaved partial sums (vectorizable, fixed order).
fn lane_sum<T: WithDType>(a: &[T], f: impl Fn(f64) -> f64) -> f64 {
    let mut acc = [0f64; 8];
    let chunks = a.chunks_exact(8);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (s, &v) in acc.iter_mut().zip(chunk) {
            *s += f(v.to_f64());
        }
    }
    let head = acc.iter().fold(0.0, |s, &v| s + v);
    tail.iter().fold(head, |s, &v| s + f(v.to_f64()))
}

/// `Σ f(a_i, b_i)` in f64 over 8 interleaved partial sums (vectorizable, fixed order).
fn lane_sum2<T: WithDType>(a: &[T], b: &[T], f: impl Fn(f64, f64) -> f64) -> f64 {
    let mut acc = [0f64; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (xa, xb) in ca.zip(cb) {
        for ((s, &u), &v) in acc.iter_mut().zip(xa).zip(xb) {
            *s += f(u.to_f64(), v.to_f64());
        }
    }
    let head = acc.iter().fold(0.0, |s, &v| s + v);
    ta.iter()
        .zip(tb)
        .fold(head, |s, (&u, &v)| s + f(u.to_f64(), v.to_f64()))
}

/// `epilogue(BN(y; γ, β))`: arguments `(y, [γ, β])`, or `(y, [γ, β], skip)` for
/// [`Act::AddRelu`].
struct BatchNorm {
    eps: f64,
    act: Act,
    /// Set by the forward pass.
    stats: Arc<OnceLock<Stats>>,
}

impl BatchNorm {
    fn forward<T: WithDType>(
        &self,
        y: Arg<'_, T>,
        affine: Arg<'_, T>,
        skip: Option<Arg<'_, T>>,
    ) -> Result<(Vec<T>, Shape)> {
        let shape = Dims::new(self.act, y.dims(), affine.dims(), skip.map(|s| s.dims()))?;
        let (y, affine) = (y.dense()?, affine.dense()?);
        let skip = skip.map(|s| s.dense()).transpose()?;
        let stats = self.statistics(&shape, &y, &affine);
        let normalize: Vec<Normalize<T>> =
            (0..shape.c).map(|ch| Normalize::of(&stats, ch)).collect();
        let (plane, out_plane, c) = (shape.plane(), shape.out_plane(), shape.c);
        let (w, wo) = (shape.w, shape.pooled().1);
        let quarter = T::from_f64(0.25);
        let epilogue = Epi::new(self.act, skip.as_deref())?;
        let rows = || vec![T::from_f64(0.0); 2 * w];
        let out = par_collect(
            (shape.n * c * out_plane, out_plane),
            &[],
            rows,
            |p, out, rows| {
                let (k, src) = (normalize[p % c], &y[p * plane..(p + 1) * plane]);
                match epilogue {
                    Epi::Identity => out.extend(src.iter().map(|&v| k.apply(v))),
                    Epi::Relu => out.extend(src.iter().map(|&v| relu(k.apply(v)))),
                    Epi::AddRelu(skip) => {
                        let s = &skip[p * plane..(p + 1) * plane];
                        out.extend(src.iter().zip(s).map(|(&v, &s)| relu(k.apply(v) + s)));
                    }
                    // Two input rows at a time: normalized and rectified (vectorized), then
                    // each window summed in candle's `avg_pool2d` order, so the pooling rounds
                    // as the composed layer's does.
                    Epi::ReluPool2 => {
                        for pair in src.chunks_exact(2 * w).take(out_plane / wo.max(1)) {
                            for (r, &v) in rows.iter_mut().zip(pair) {
                                *r = relu(k.apply(v));
                            }
                            let (top, bottom) = rows.split_at(w);
                            let windows = top.chunks_exact(2).zip(bottom.chunks_exact(2));
                            out.extend(windows.map(|(t, b)| {
                                let mut sum = T::from_f64(0.0);
                                sum += t[0];
                                sum += t[1];
                                sum += b[0];
                                sum += b[1];
                                sum * quarter
                            }));
                        }
                    }
                }
            },
        )?;
        self.stats
            .set(stats)
            .map_err(|_| Error::Msg("batch norm: forward pass run twice".into()))?;
        Ok((out, Shape::from(shape.out_dims())))
    }

    /// Mean and biased variance per channel (two passes, f64), with `γ`, `β`.
    fn statistics<T: WithDType>(&self, shape: &Dims, y: &[T], affine: &[T]) -> Stats {
        let (n, c, plane) = (shape.n, shape.c, shape.plane());
        let count = (n * plane) as f64;
        let per_channel = |sum: &(dyn Fn(usize, &[T]) -> f64 + Sync)| -> Vec<f64> {
            (0..c)
                .into_par_iter()
                .map(|ch| {
                    (0..n).fold(0.0, |s, i| {
                        let at = (i * c + ch) * plane;
                        s + sum(ch, &y[at..at + plane])
                    }) / count
                })
                .collect()
        };
        let mean = per_channel(&|_, values| lane_sum(values, |v| v));
        let var = per_channel(&|ch, values| {
            let m = mean[ch];
            lane_sum(values, |v| (v - m) * (v - m))
        });
        let inv_std = var.iter().map(|v| 1.0 / (v + self.eps).sqrt()).collect();
        let (gamma, beta) = affine.split_at(c);
        Stats {
            mean,
            var,
            inv_std,
            gamma: gamma.iter().map(|v| v.to_f64()).collect(),
            beta: beta.iter().map(|v| v.to_f64()).collect(),
        }
    }

    /// `[∂y, ∂[γ, β]]` of `⟨grad, BN(y)⟩` for an epilogue without a residual (`h` being
    /// `grad` through it), or `h` itself for [`Act::Identity`].
    fn gradients(&self, act: Act, h: &Tensor, y: &Tensor) -> Result<[Tensor; 2]> {
        let op = Cpu(BatchNormGrad {
            act,
            stats: Arc::clone(&self.stats),
        });
        let packed = h.apply_op2_no_bwd(y, &op)?;
        let len = y.elem_count();
        let c2 = packed.elem_count() - len;
        Ok([
            packed.narrow(0, 0, len)?.reshape(y.shape())?,
            packed.narrow(0, len, c2)?,
        ])
    }
}

impl CpuOp<2> for BatchNorm {
    const NAME: &'static str = "saddlescope-batch-norm-train";

    fn run<T: WithDType>(&self, [y, affine]: [Arg<'_, T>; 2]) -> Result<(Vec<T>, Shape)> {
        self.forward(y, affine, None)
    }

    fn backward(
        &self,
        [y, affine]: [&Tensor; 2],
        _out: &Tensor,
        grad: &Tensor,
    ) -> Result<[Option<Tensor>; 2]> {
        let [dy, daffine] = self.gradients(self.act, grad, y)?;
        Ok([grad_if(y, || Ok(dy))?, grad_if(affine, || Ok(daffine))?])
    }
}

impl CpuOp<3> for BatchNorm {
    const NAME: &'static str = "saddlescope-batch-norm-add-relu-train";

    fn run<T: WithDType>(&self, [y, affine, skip]: [Arg<'_, T>; 3]) -> Result<(Vec<T>, Shape)> {
        self.forward(y, affine, Some(skip))
    }

    /// `h = grad ⊙ 1[z + skip ≥ 0]` is the residual's gradient, then BN's gradients of `h`.
    fn backward(
        &self,
        [y, affine, skip]: [&Tensor; 3],
        _out: &Tensor,
        grad: &Tensor,
    ) -> Result<[Option<Tensor>; 3]> {
        let mask = Cpu(ResidualMask {
            stats: Arc::clone(&self.stats),
        });
        let h = grad.apply_op3_no_bwd(y, skip, &mask)?;
        let [dy, daffine] = self.gradients(Act::Identity, &h, y)?;
        Ok([
            grad_if(y, || Ok(dy))?,
            grad_if(affine, || Ok(daffine))?,
            grad_if(skip, || Ok(h))?,
        ])
    }
}

/// `h = g ⊙ 1[BN(y) + skip ≥ 0]` with the forward pass's statistics: arguments
/// `(g, y, skip)`. No gradient of its own (see the module doc).
struct ResidualMask {
    stats: Arc<OnceLock<Stats>>,
}

impl CpuOp<3> for ResidualMask {
    const NAME: &'static str = "saddlescope-batch-norm-residual-mask";

    fn run<T: WithDType>(&self, [g, y, skip]: [Arg<'_, T>; 3]) -> Result<(Vec<T>, Shape)> {
        let stats = forward_stats(&self.stats)?;
        let c = stats.mean.len();
        let shape = Dims::new(Act::AddRelu, y.dims(), &[2 * c], Some(skip.dims()))?;
        if g.dims() != y.dims() {
            bail!(
                "batch norm: gradient of shape {:?} for an output of shape {:?}",
                g.dims(),
                y.dims()
            )
        }
        let (g, y, skip) = (g.dense()?, y.dense()?, skip.dense()?);
        let normalize: Vec<Normalize<T>> = (0..c).map(|ch| Normalize::of(stats, ch)).collect();
        let (zero, plane) = (T::from_f64(0.0), shape.plane());
        let h = par_collect(
            (y.len(), plane),
            &[],
            || (),
            |p, out, _| {
                let k = normalize[p % c];
                let at = p * plane..(p + 1) * plane;
                let values = y[at.clone()].iter().zip(&skip[at.clone()]).zip(&g[at]);
                out.extend(
                    values.map(|((&v, &s), &g)| if k.apply(v) + s >= zero { g } else { zero }),
                );
            },
        )?;
        Ok((h, Shape::from(y_dims(&shape))))
    }
}

fn y_dims(shape: &Dims) -> Vec<usize> {
    vec![shape.n, shape.c, shape.h, shape.w]
}

/// The statistics a forward pass left, or an error if there was none.
fn forward_stats(stats: &OnceLock<Stats>) -> Result<&Stats> {
    match stats.get() {
        Some(stats) => Ok(stats),
        None => bail!("batch norm: backward pass before the forward pass"),
    }
}

/// The gradients of [`BatchNorm`] without a residual, packed `[∂y (row-major), ∂γ, ∂β]`
/// in one flat tensor: arguments `(g, y)`. First order only (see the module doc).
struct BatchNormGrad {
    act: Act,
    stats: Arc<OnceLock<Stats>>,
}

impl BatchNormGrad {
    /// `h = ∂L/∂z` of plane `p` (normalized by `k`) into `h`, from the output gradient
    /// `g`; `spread` is scratch of one row (`w` values).
    fn plane_grad<T: WithDType>(
        &self,
        shape: &Dims,
        (k, p): (Normalize<T>, usize),
        (g, y): (&[T], &[T]),
        (h, spread): (&mut [T], &mut [T]),
    ) {
        let zero = T::from_f64(0.0);
        let (plane, out_plane) = (shape.plane(), shape.out_plane());
        let y = &y[p * plane..(p + 1) * plane];
        let g = &g[p * out_plane..(p + 1) * out_plane];
        let masked = |z: T, g: T| if z >= zero { g } else { zero };
        match self.act {
            Act::Relu => {
                for ((h, &v), &g) in h.iter_mut().zip(y).zip(g) {
                    *h = masked(k.apply(v), g);
                }
            }
            Act::ReluPool2 => {
                // Row pair by row pair: the pooled gradient spread over its windows (one
                // row of `w` values, zero past the last whole window), then masked.
                let (w, (ho, wo)) = (shape.w, shape.pooled());
                let quarter = T::from_f64(0.25);
                let (pairs, rest) = h.split_at_mut(2 * ho * w);
                rest.fill(zero);
                let rows = pairs.chunks_exact_mut(2 * w).zip(y.chunks_exact(2 * w));
                for ((h_pair, y_pair), g_row) in rows.zip(g.chunks_exact(wo)) {
                    for (two, &g) in spread.chunks_exact_mut(2).zip(g_row) {
                        two.fill(g * quarter);
                    }
                    spread[2 * wo..].fill(zero);
                    for (h_row, y_row) in h_pair.chunks_exact_mut(w).zip(y_pair.chunks_exact(w)) {
                        for ((h, &v), &g) in h_row.iter_mut().zip(y_row).zip(&*spread) {
                            *h = masked(k.apply(v), g);
                        }
                    }
                }
            }
            // A residual epilogue's mask is its own op (`ResidualMask`), whose output comes
            // here as `g`.
            Act::Identity | Act::AddRelu => h.copy_from_slice(g),
        }
    }

    fn gradients<T: WithDType>(&self, g: Arg<'_, T>, y: Arg<'_, T>) -> Result<(Vec<T>, Shape)> {
        let stats = forward_stats(&self.stats)?;
        let c = stats.mean.len();
        let shape = Dims::new(self.act, y.dims(), &[2 * c], None)?;
        if g.dims() != shape.out_dims() {
            bail!(
                "batch norm: gradient of shape {:?} for an output of shape {:?}",
                g.dims(),
                shape.out_dims()
            )
        }
        let (g, y) = (g.dense()?, y.dense()?);
        let (g, y): (&[T], &[T]) = (&g, &y);
        let (n, plane) = (shape.n, shape.plane());
        let count = (n * plane) as f64;
        let zero = T::from_f64(0.0);
        let normalize: Vec<Normalize<T>> = (0..c).map(|ch| Normalize::of(stats, ch)).collect();
        let scratch = || (vec![zero; plane], vec![zero; shape.w]);
        // Σ h and Σ h·(y − μ) per channel.
        let sums: Vec<(f64, f64)> = (0..c)
            .into_par_iter()
            .map_init(scratch, |(h, spread), ch| {
                let m = stats.mean[ch];
                (0..n).fold((0.0, 0.0), |(sh, shd), i| {
                    let p = i * c + ch;
                    self.plane_grad(&shape, (normalize[ch], p), (g, y), (h, spread));
                    let values = &y[p * plane..(p + 1) * plane];
                    (
                        sh + lane_sum(h, |v| v),
                        shd + lane_sum2(h, values, |u, v| u * (v - m)),
                    )
                })
            })
            .collect();
        // ∂y = k·h − (y − μ)·k·r²·Σ(h(y − μ))/n − k·Σh/n with k = γ·r.
        let coefficients: Vec<[T; 3]> = (0..c)
            .map(|ch| {
                let r = stats.inv_std[ch];
                let k = stats.gamma[ch] * r;
                let (sh, shd) = sums[ch];
                [
                    T::from_f64(k),
                    T::from_f64(k * r * r * shd / count),
                    T::from_f64(k * sh / count),
                ]
            })
            .collect();
        let daffine: Vec<T> = (0..2 * c)
            .map(|i| match i.checked_sub(c) {
                None => T::from_f64(sums[i].1 * stats.inv_std[i]),
                Some(ch) => T::from_f64(sums[ch].0),
            })
            .collect();
        let out = par_collect(
            (y.len(), plane),
            &daffine,
            scratch,
            |p, out, (h, spread)| {
                let ch = p % c;
                let (k, [scale, slope, shift]) = (normalize[ch], coefficients[ch]);
                self.plane_grad(&shape, (k, p), (g, y), (h, spread));
                let values = &y[p * plane..(p + 1) * plane];
                out.extend(
                    h.iter()
                        .zip(values)
                        .map(|(&h, &v)| h * scale - (v - k.mean) * slope - shift),
                );
            },
        )?;
        let total = out.len();
        Ok((out, Shape::from(total)))
    }
}

impl CpuOp<2> for BatchNormGrad {
    const NAME: &'static str = "saddlescope-batch-norm-train-grad";

    fn run<T: WithDType>(&self, [g, y]: [Arg<'_, T>; 2]) -> Result<(Vec<T>, Shape)> {
        self.gradients(g, y)
    }
}

#[cfg(test)]
mod tests;
