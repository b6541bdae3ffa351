//! Batch normalization with batch statistics (train mode) and what follows it (ReLU,
//! ReLU and 2×2 average pooling, or a residual sum and ReLU) on contiguous values: the
//! kernels of the fused convolution op ([`conv_bn`](super::conv_bn)); the forward pass
//! is one pass over the activation, the backward two.
//!
//! For `y: (N, C, H, W)` and per channel `c` over its `n = N·H·W` values:
//! `μ = mean(y)`, `σ² = mean((y − μ)²)` (biased), `r = (σ² + eps)^(−1/2)`,
//! `z = (y − μ)·r·γ + β`, then the epilogue: `z`, `relu(z)`, `avg_pool2(relu(z))` or
//! `relu(z + skip)`. With `h = ∂L/∂z` (the output gradient through the epilogue, ReLU's
//! mask `1[· ≥ 0]` as candle's) and `x̂ = (y − μ)·r`: `∂β = Σ h`, `∂γ = Σ h·x̂`,
//! `∂y = γ·r·(h − Σh/n − x̂·Σ(h·x̂)/n)` (the batch statistics' own dependence on `y`
//! included), and `∂skip = h`.
//!
//! The statistics arrive as per-channel [`Moments`] taken by the convolution that produced
//! `y`, chunk by chunk while each chunk was in cache, and merged in chunk order; the
//! backward pass's channel sums are accumulated in f64 per channel (channels in parallel).
//! Every sum has a fixed order, so results are bit-identical for any thread count. The
//! elementwise passes run over `(sample, channel)` planes in parallel and recompute `z`
//! (and ReLU's mask) in the backward pass instead of keeping it.

use candle_core::{bail, Result, WithDType};
use multiversion::multiversion;
use rayon::prelude::*;

use super::custom::{par_collect, Slots};

/// What follows the normalization.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Act {
    /// `z` itself.
    Identity,
    /// `relu(z)`.
    Relu,
    /// `avg_pool2(relu(z))`: 2×2 windows, stride 2, odd last rows and columns dropped.
    ReluPool2,
    /// `relu(z + skip)`, `skip` of `y`'s shape (the end of a residual block).
    AddRelu,
}

/// Per-channel statistics of one batch and the affine parameters they were used with, in
/// f64.
#[derive(Debug)]
pub(crate) struct Stats {
    pub mean: Vec<f64>,
    pub var: Vec<f64>,
    inv_std: Vec<f64>,
    gamma: Vec<f64>,
    beta: Vec<f64>,
}

/// `z = (y − μ)·a + β` of one channel, `a = γ·r`, in the element type: the forward and
/// backward passes evaluate it alike, so ReLU's mask is the same in both (and a
/// convolution that reads `relu(z)` straight from `y` sees the values of [`forward`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Normalize<T> {
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

    /// Every channel's normalization.
    pub fn all(stats: &Stats) -> Vec<Self> {
        (0..stats.mean.len())
            .map(|ch| Self::of(stats, ch))
            .collect()
    }

    #[inline]
    fn apply(self, v: T) -> T {
        (v - self.mean) * self.scale + self.shift
    }

    /// `relu(z)` of one value, as [`forward`] computes it for [`Act::Relu`].
    #[inline]
    pub fn relu_of(self, v: T) -> T {
        relu(self.apply(v))
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

/// The shape of a normalized activation `(N, C, H, W)` and of its output, checked.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dims {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    act: Act,
}

impl Dims {
    /// Checks that `(n, c, h, w)` has values in every channel and, for pooling, at least
    /// 2x2 of them.
    pub fn new(act: Act, [n, c, h, w]: [usize; 4]) -> Result<Self> {
        if n * h * w == 0 {
            bail!(
                "batch norm: activation of shape {:?} has no values per channel",
                [n, c, h, w]
            )
        }
        if act == Act::ReluPool2 && (h < 2 || w < 2) {
            bail!(
                "batch norm: activation of shape {:?} is too small to pool 2x2",
                [n, c, h, w]
            )
        }
        Ok(Self { n, c, h, w, act })
    }

    /// Values of the activation.
    pub fn len(&self) -> usize {
        self.n * self.c * self.plane()
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

    /// The output's shape.
    pub fn out_dims(&self) -> Vec<usize> {
        match self.act {
            Act::ReluPool2 => vec![self.n, self.c, self.pooled().0, self.pooled().1],
            _ => vec![self.n, self.c, self.h, self.w],
        }
    }
}

// The per-plane loops below are compiled for several instruction sets (AVX-512, AVX2, …)
// and the best one the CPU has is chosen at run time: the portable x86-64 baseline (SSE2)
// handles two f64 lanes at a time, AVX-512 eight. The loops fix their own order of
// operations (eight explicit f64 lanes, no fused multiply-adds), so every clone gives the
// same bits.

/// `Σ f(a_i)` in f64 over 8 interleaved partial sums (vectorizable, fixed order).
#[multiversion(targets = "simd")]
fn lane_sum<T: WithDType, F: Fn(f64) -> f64>(a: &[T], f: F) -> f64 {
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
#[multiversion(targets = "simd")]
fn lane_sum2<T: WithDType, F: Fn(f64, f64) -> f64>(a: &[T], b: &[T], f: F) -> f64 {
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

/// Count, mean and summed squared deviation (`M2`) of one channel's values, in f64: what
/// the batch statistics need, computed where the values are still in cache (a chunk of a
/// convolution's output, right after its GEMM) and merged chunk by chunk in a fixed order
/// by Chan, Golub and LeVeque's pairwise update, which stays accurate where
/// `Σy² − n·μ²` would cancel. Reading the activation again from memory for the statistics
/// was ~5% of a ResNet-32 training step.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Moments {
    count: f64,
    mean: f64,
    m2: f64,
}

impl Moments {
    /// The moments of each of the `c` channels of `y: (m, c, pixels)`, two passes over
    /// each channel's planes (the mean, then the squared deviations from it).
    pub fn per_channel<T: WithDType>(y: &[T], c: usize, pixels: usize) -> Vec<Self> {
        let planes = |ch: usize| y.chunks_exact(pixels).skip(ch).step_by(c.max(1));
        (0..c)
            .map(|ch| {
                let count = (planes(ch).count() * pixels) as f64;
                if count == 0.0 {
                    return Self::default();
                }
                let mean = planes(ch).fold(0.0, |s, p| s + lane_sum(p, |v| v)) / count;
                let m2 = planes(ch).fold(0.0, |s, p| s + lane_sum(p, |v| (v - mean) * (v - mean)));
                Self { count, mean, m2 }
            })
            .collect()
    }

    /// The moments of both sets of values together.
    pub fn merge(self, other: Self) -> Self {
        if other.count == 0.0 {
            return self;
        }
        if self.count == 0.0 {
            return other;
        }
        let count = self.count + other.count;
        let delta = other.mean - self.mean;
        Self {
            count,
            mean: self.mean + delta * (other.count / count),
            m2: self.m2 + other.m2 + delta * delta * (self.count * other.count / count),
        }
    }

    /// Per channel, the moments of every part in order (`parts[i][ch]`).
    pub fn merge_all(parts: &[Vec<Self>], c: usize) -> Vec<Self> {
        (0..c)
            .map(|ch| {
                parts
                    .iter()
                    .fold(Self::default(), |total, part| total.merge(part[ch]))
            })
            .collect()
    }
}

/// The batch statistics from each channel's moments (mean and biased variance), with `γ`,
/// `β` (`affine = [γ, β]`).
fn statistics<T: WithDType>(moments: &[Moments], affine: &[T], eps: f64) -> Stats {
    let mean: Vec<f64> = moments.iter().map(|m| m.mean).collect();
    let var: Vec<f64> = moments.iter().map(|m| m.m2 / m.count).collect();
    let inv_std = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    let (gamma, beta) = affine.split_at(moments.len());
    Stats {
        mean,
        var,
        inv_std,
        gamma: gamma.iter().map(|v| v.to_f64()).collect(),
        beta: beta.iter().map(|v| v.to_f64()).collect(),
    }
}

/// The batch statistics of an activation of `dims` from its channels' [`Moments`], with
/// `affine = [γ, β]` (`2C` values): what [`forward`] normalizes with, for a consumer that
/// applies the normalization itself.
pub(crate) fn batch_statistics<T: WithDType>(
    dims: &Dims,
    moments: &[Moments],
    affine: &[T],
    eps: f64,
) -> Result<Stats> {
    let count = (dims.n * dims.plane()) as f64;
    if moments.len() != dims.c || moments.iter().any(|m| m.count != count) {
        bail!("batch norm: statistics of another activation than {dims:?}")
    }
    if affine.len() != 2 * dims.c {
        bail!(
            "batch norm: {} affine parameters for an activation of {dims:?}",
            affine.len()
        )
    }
    Ok(statistics(moments, affine, eps))
}

/// `epilogue(BN(y; γ, β))` with batch statistics, and the statistics: `y` contiguous of
/// `dims` with the [`Moments`] of each channel, `affine = [γ, β]` (`2C` values), `skip`
/// (of `y`'s shape) exactly for [`Act::AddRelu`].
pub(crate) fn forward<T: WithDType>(
    dims: &Dims,
    (y, moments): (&[T], &[Moments]),
    affine: &[T],
    skip: Option<&[T]>,
    eps: f64,
) -> Result<(Vec<T>, Stats)> {
    if y.len() != dims.len() {
        bail!(
            "batch norm: {} values for an activation of {dims:?}",
            y.len()
        )
    }
    let stats = batch_statistics(dims, moments, affine, eps)?;
    let skip = match (dims.act, skip) {
        (Act::AddRelu, Some(skip)) if skip.len() == y.len() => skip,
        (Act::AddRelu, _) => bail!("batch norm: a residual epilogue without a matching residual"),
        (_, None) => &[],
        (_, Some(_)) => bail!("batch norm: a residual for an epilogue without one"),
    };
    let normalize = Normalize::all(&stats);
    let (plane, out_plane, c) = (dims.plane(), dims.out_plane(), dims.c);
    let rows = || vec![T::from_f64(0.0); 2 * dims.w];
    let out = par_collect(
        (dims.n * c * out_plane, out_plane),
        &[],
        rows,
        |p, out, rows| {
            let at = p * plane..(p + 1) * plane;
            let skip = skip.get(at.clone()).unwrap_or(&[]);
            forward_plane(dims, normalize[p % c], (&y[at], skip), out, rows);
        },
    )?;
    Ok((out, stats))
}

/// The output plane of one `(sample, channel)` plane `src` (and its `skip` plane, empty
/// unless [`Act::AddRelu`]); `rows` is scratch of two input rows.
#[multiversion(targets = "simd")]
fn forward_plane<T: WithDType>(
    dims: &Dims,
    k: Normalize<T>,
    (src, skip): (&[T], &[T]),
    out: &mut Slots<'_, T>,
    rows: &mut [T],
) {
    match dims.act {
        Act::Identity => out.extend(src.iter().map(|&v| k.apply(v))),
        Act::Relu => out.extend(src.iter().map(|&v| relu(k.apply(v)))),
        Act::AddRelu => {
            let values = src.iter().zip(skip);
            out.extend(values.map(|(&v, &s)| relu(k.apply(v) + s)));
        }
        // Two input rows at a time: normalized and rectified (vectorized), then each
        // window summed in candle's `avg_pool2d` order, so the pooling rounds as the
        // composed layer's does.
        Act::ReluPool2 => {
            let (w, (ho, _)) = (dims.w, dims.pooled());
            let quarter = T::from_f64(0.25);
            for pair in src.chunks_exact(2 * w).take(ho) {
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
}

/// `h = g ⊙ 1[BN(y) + skip ≥ 0]`, the output gradient `g` through a residual epilogue
/// (the residual's own gradient), with the forward pass's statistics.
pub(crate) fn residual_mask<T: WithDType>(
    dims: &Dims,
    stats: &Stats,
    (g, y, skip): (&[T], &[T], &[T]),
) -> Result<Vec<T>> {
    if [g.len(), skip.len()] != [y.len(); 2] || y.len() != dims.len() {
        bail!("batch norm: residual gradient of mismatched lengths for {dims:?}")
    }
    let normalize = Normalize::all(stats);
    let (plane, c) = (dims.plane(), dims.c);
    par_collect(
        (y.len(), plane),
        &[],
        || (),
        |p, out, _| {
            let at = p * plane..(p + 1) * plane;
            let planes = (&g[at.clone()], &y[at.clone()], &skip[at]);
            residual_mask_plane(normalize[p % c], planes, out);
        },
    )
}

/// [`residual_mask`] of one plane.
#[multiversion(targets = "simd")]
fn residual_mask_plane<T: WithDType>(
    k: Normalize<T>,
    (g, y, skip): (&[T], &[T], &[T]),
    out: &mut Slots<'_, T>,
) {
    let zero = T::from_f64(0.0);
    let values = y.iter().zip(skip).zip(g);
    out.extend(values.map(|((&v, &s), &g)| if k.apply(v) + s >= zero { g } else { zero }));
}

/// `h = ∂L/∂z` of plane `p`, from the output gradient `g` through the epilogue: written
/// into the scratch `h` for a ReLU, `g`'s own plane for none ([`Act::Identity`], and
/// [`Act::AddRelu`], whose `g` is [`residual_mask`]'s `h`); `spread` is scratch of one
/// row (`w` values).
#[multiversion(targets = "simd")]
fn plane_grad<'a, T: WithDType>(
    dims: &Dims,
    (k, p): (Normalize<T>, usize),
    (g, y): (&'a [T], &[T]),
    (h, spread): (&'a mut [T], &mut [T]),
) -> &'a [T] {
    let zero = T::from_f64(0.0);
    let (plane, out_plane) = (dims.plane(), dims.out_plane());
    let y = &y[p * plane..(p + 1) * plane];
    let g = &g[p * out_plane..(p + 1) * out_plane];
    let masked = |z: T, g: T| if z >= zero { g } else { zero };
    match dims.act {
        Act::Relu => {
            for ((h, &v), &g) in h.iter_mut().zip(y).zip(g) {
                *h = masked(k.apply(v), g);
            }
        }
        Act::ReluPool2 => {
            // Row pair by row pair: the pooled gradient spread over its windows (one row
            // of `w` values, zero past the last whole window), then masked.
            let (w, (ho, wo)) = (dims.w, dims.pooled());
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
        Act::Identity | Act::AddRelu => return g,
    }
    h
}

/// `(∂y, [∂γ, ∂β])` of `⟨g, epilogue(BN(y))⟩` with the forward pass's statistics (for
/// [`Act::AddRelu`], `g` is [`residual_mask`]'s `h`).
pub(crate) fn backward<T: WithDType>(
    dims: &Dims,
    stats: &Stats,
    g: &[T],
    y: &[T],
) -> Result<(Vec<T>, Vec<T>)> {
    let (n, c, plane) = (dims.n, dims.c, dims.plane());
    if y.len() != dims.len() || g.len() != n * c * dims.out_plane() || stats.mean.len() != c {
        bail!(
            "batch norm: gradient of {} values for an activation of {dims:?} with {} values",
            g.len(),
            y.len()
        )
    }
    let count = (n * plane) as f64;
    let zero = T::from_f64(0.0);
    let normalize = Normalize::all(stats);
    let scratch = || (vec![zero; plane], vec![zero; dims.w]);
    // Σ h and Σ h·(y − μ) per channel.
    let sums: Vec<(f64, f64)> = (0..c)
        .into_par_iter()
        .map_init(scratch, |(h, spread), ch| {
            let m = stats.mean[ch];
            (0..n).fold((0.0, 0.0), |(sh, shd), i| {
                let p = i * c + ch;
                let h = plane_grad(dims, (normalize[ch], p), (g, y), (h, spread));
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
    let dy = par_collect((y.len(), plane), &[], scratch, |p, out, (h, spread)| {
        let ch = p % c;
        let (k, [scale, slope, shift]) = (normalize[ch], coefficients[ch]);
        let h = plane_grad(dims, (k, p), (g, y), (h, spread));
        let values = &y[p * plane..(p + 1) * plane];
        input_grad_plane(k.mean, [scale, slope, shift], (h, values), out);
    })?;
    let daffine = (0..2 * c)
        .map(|i| match i.checked_sub(c) {
            None => T::from_f64(sums[i].1 * stats.inv_std[i]),
            Some(ch) => T::from_f64(sums[ch].0),
        })
        .collect();
    Ok((dy, daffine))
}

/// `∂y = h·scale − (y − μ)·slope − shift` of one plane (see [`backward`]).
#[multiversion(targets = "simd")]
fn input_grad_plane<T: WithDType>(
    mean: T,
    [scale, slope, shift]: [T; 3],
    (h, y): (&[T], &[T]),
    out: &mut Slots<'_, T>,
) {
    out.extend(
        h.iter()
            .zip(y)
            .map(|(&h, &v)| h * scale - (v - mean) * slope - shift),
    );
}

#[cfg(test)]
mod tests {
    use super::Moments;

    /// `(mean, biased variance)` by two plain passes in f64.
    fn reference(values: &[f64]) -> (f64, f64) {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        (
            mean,
            values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n,
        )
    }

    /// Deterministic values around `offset`, spread about ±1.
    fn values(len: usize, offset: f64) -> Vec<f64> {
        (0..len)
            .map(|i| offset + ((i * 7919 % 1000) as f64 / 500.0 - 1.0))
            .collect()
    }

    /// Moments of uneven chunks (an empty one among them) merged in order equal those of
    /// all values at once, channel by channel: 1e-12 relative, plus `8ε·|μ|/σ` for values
    /// far from 0 (the variance's own condition: rounding the values alone moves it that
    /// much). Around 1e8, where that allowance is ~3e-7, `Σy²/n − μ²` is off by half the
    /// variance or more (here it gives 0).
    #[test]
    fn merged_chunks_equal_the_whole() {
        for offset in [0.0, 1e8] {
            // Two channels, planes of 5 values, (m, c, pixels) chunks of 3, 0 and 4 samples.
            let (c, pixels, samples) = (2, 5, 7);
            let all = values(samples * c * pixels, offset);
            let parts: Vec<Vec<Moments>> = [0..3, 3..3, 3..7]
                .into_iter()
                .map(|r| {
                    Moments::per_channel(&all[r.start * c * pixels..r.end * c * pixels], c, pixels)
                })
                .collect();
            let merged = Moments::merge_all(&parts, c);
            for (ch, m) in merged.iter().enumerate() {
                let channel: Vec<f64> = all
                    .chunks_exact(pixels)
                    .skip(ch)
                    .step_by(c)
                    .flatten()
                    .copied()
                    .collect();
                let (mean, var) = reference(&channel);
                assert_eq!(m.count, (samples * pixels) as f64);
                assert!(
                    (m.mean - mean).abs() <= 1e-12 * mean.abs().max(1.0),
                    "{offset} {ch}"
                );
                let ours = m.m2 / m.count;
                let tol = 1e-12 + 8.0 * f64::EPSILON * mean.abs() / var.sqrt();
                assert!(
                    (ours - var).abs() <= tol * var,
                    "{offset} {ch}: {ours} vs {var}"
                );
                if offset > 0.0 {
                    let naive = channel.iter().map(|v| v * v).sum::<f64>() / m.count - mean * mean;
                    assert!(
                        (naive - var).abs() >= 0.5 * var,
                        "the offset does not bite: {naive}"
                    );
                }
            }
        }
    }
}
