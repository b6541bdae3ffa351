//! The convolutions of a linearized HVP.
//!
//! For `y = conv(x, k) + s` (padding `p`, stride `σ`) an HVP needs, per direction,
//! - forward: `ẏ = conv(ẋ, k) + conv(x, k̇) + ṡ`;
//! - reverse: `u_k = corr(x, u_y) + corr(ẋ, ȳ)`, `u_x = convᵀ(u_y, k) + convᵀ(ȳ, k̇)`,
//!   `u_s = Σ_{n,h,w} u_y`.
//!
//! Each two-term sum is one GEMM over stacked operands: `[k | k̇]·[patches(ẋ); patches(x)]`,
//! `[u_y | ȳ]·[patches(x) | patches(ẋ)]ᵀ`, and for the input adjoint of a stride-1
//! convolution (a forward convolution of the output adjoint by the flipped, channel-swapped
//! kernel `k'[c, o, i, j] = k[o, c, kh−1−i, kw−1−j]`, padding `kh−1−p`)
//! `[k' | k̇']·[patches(u_y); patches(ȳ)]`; other strides take `col2im([k; k̇]ᵀ·[u_y; ȳ])`.
//! The primal operands `x`, `ȳ` and the kernel are the [`ConvPlan`]'s, fixed for all HVPs.
//!
//! The two forward-shaped products (`ẏ` and the stride-1 input adjoint) are convolutions of
//! a channel-stacked input and run on the training ops' kernel (`cpu_ops::conv::kernels`,
//! im2col or the row expansion). Patch matrices are built per chunk of samples (at least
//! 512 GEMM columns) in a per-thread scratch buffer that stays in cache, rather than
//! cached whole: rebuilding them from the activations measured faster than streaming
//! cached ones from memory. Chunks run in parallel on rayon's pool, each GEMM on one
//! thread, and the kernel adjoint's per-chunk parts are added in chunk order, so results do
//! not depend on the thread count.

use candle_core::{bail, DType, Device, Result, Storage, Tensor, WithDType};
use rayon::prelude::*;

use crate::cpu_ops::channel_sum::channel_sums;
use crate::cpu_ops::conv::kernels::{
    self, col2im, concat_blocks, im2col, interleave, Geometry, Input,
};
use crate::cpu_ops::custom::dense;
use crate::cpu_ops::gemm::{matmul, Mat, Threads};

/// Runs `$body` with `$t` the element type of `$dtype` (f32 or f64).
macro_rules! by_dtype {
    ($dtype:expr, $t:ident => $body:expr) => {
        match $dtype {
            DType::F32 => {
                type $t = f32;
                $body
            }
            DType::F64 => {
                type $t = f64;
                $body
            }
            other => bail!("linearized HVP: convolution in {other:?}, expected f32 or f64"),
        }
    };
}

/// What the HVPs of one convolution share.
#[derive(Debug)]
pub(crate) struct ConvPlan {
    g: Geometry,
    dtype: DType,
    /// The stride-1 input adjoint as a forward convolution of `(N, C_out, Ho, Wo)`.
    flipped: Option<Geometry>,
    /// The kernel, when the input is recorded (its tangent meets it).
    kernel: Option<Tensor>,
    /// The primal input, when the kernel is recorded.
    x: Option<Tensor>,
    /// The primal output adjoint, when both are (the second-order terms read it).
    ybar: Option<Tensor>,
}

impl ConvPlan {
    /// The plan of `y = conv(x, k)` whose input (`x_recorded`) and kernel (`k_recorded`)
    /// may depend on the Hessian's parameters.
    pub(crate) fn new(
        x: &Tensor,
        k: &Tensor,
        (x_recorded, k_recorded): (bool, bool),
        padding: usize,
        stride: usize,
    ) -> Result<Self> {
        let (n, c_in, h, w) = x.dims4()?;
        let (c_out, k_in, kh, kw) = k.dims4()?;
        let g = Geometry::new([n, c_in, h, w], [c_out, k_in, kh, kw], padding, stride)?;
        let flipped = (stride == 1 && kh == kw && padding < kh)
            .then(|| Geometry::new(g.y_dims(), [c_in, c_out, kh, kw], kh - 1 - padding, 1))
            .transpose()?;
        Ok(Self {
            g,
            dtype: x.dtype(),
            flipped,
            kernel: x_recorded.then(|| k.clone()),
            x: k_recorded.then(|| x.clone()),
            ybar: None,
        })
    }

    /// Sets the primal output adjoint `ȳ` (for a convolution of two recorded operands).
    pub(crate) fn set_adjoint(&mut self, ybar: &Tensor) {
        self.ybar = Some(ybar.clone());
    }

    /// Bytes held (the kernel, input and adjoint it reads).
    pub(crate) fn bytes(&self) -> usize {
        [&self.kernel, &self.x, &self.ybar]
            .into_iter()
            .flatten()
            .map(|t| t.elem_count() * t.dtype().size_in_bytes())
            .sum()
    }

    /// `ẏ` for one direction: `ẋ: (N, C_in, H, W)`, `k̇` like the kernel, `ṡ: (C_out,)`,
    /// each when present.
    pub(crate) fn forward(
        &self,
        x_dot: Option<&Tensor>,
        k_dot: Option<&Tensor>,
        s_dot: Option<&Tensor>,
    ) -> Result<Tensor> {
        let terms = [x_dot.zip(self.kernel.as_ref()), self.x.as_ref().zip(k_dot)];
        let dims = self.g.y_dims();
        single(
            by_dtype!(self.dtype, T => run_pairs::<T>(&terms, s_dot, &[&dims], |v, s| {
                let inputs: Vec<&[T]> = v.iter().map(|(x, _)| *x).collect();
                let kernels: Vec<&[T]> = v.iter().map(|(_, k)| *k).collect();
                Ok(vec![stacked_forward(&self.g, &inputs, &kernels, s)?])
            }))?,
        )
    }

    /// `(u_x, u_k, u_s)` for one direction from the output's tangent adjoint `u_y`; with `ẋ`
    /// and `k̇` (an HVP's tangents) the second-order terms are added. `u_x` and `u_k` are
    /// `None` when their operand is not recorded; `u_s = Σ_{n,h,w} u_y`, the adjoint of a
    /// per-channel shift, is summed along with `u_k` when `shift` asks for it.
    pub(crate) fn reverse(
        &self,
        u_y: &Tensor,
        x_dot: Option<&Tensor>,
        k_dot: Option<&Tensor>,
        shift: bool,
    ) -> Result<[Option<Tensor>; 3]> {
        let ybar = self.ybar.as_ref();
        // The kernel's and the input's adjoints side by side (each is bit-identical for any
        // thread count; the last pieces of one overlap the other's).
        let kernel_side = || -> Result<(Option<Tensor>, Option<Tensor>)> {
            match &self.x {
                Some(x) => {
                    let terms = [Some((x, u_y)), x_dot.zip(ybar)];
                    let (dk, ds) = (self.g.k_dims(), [self.g.c_out]);
                    let dims: &[&[usize]] = if shift { &[&dk, &ds] } else { &[&dk] };
                    let mut out =
                        by_dtype!(self.dtype, T => run_pairs::<T>(&terms, None, dims, |v, _| {
                            let (dk, ds) = self.kernel_adjoint(v, shift)?;
                            Ok([Some(dk), ds].into_iter().flatten().collect())
                        }))?
                        .into_iter();
                    Ok((out.next(), out.next()))
                }
                None if shift => Ok((None, Some(channel_sum(u_y)?))),
                None => Ok((None, None)),
            }
        };
        let input_side = || -> Result<Option<Tensor>> {
            let Some(k) = &self.kernel else {
                return Ok(None);
            };
            let terms = [Some((u_y, k)), ybar.zip(k_dot)];
            let dims = self.g.x_dims();
            Ok(Some(single(
                by_dtype!(self.dtype, T => run_pairs::<T>(&terms, None, &[&dims], |v, _| {
                    Ok(vec![self.input_adjoint(v)?])
                }))?,
            )?))
        };
        let (kernel, input) = rayon::join(kernel_side, input_side);
        let ((u_k, u_s), u_x) = (kernel?, input?);
        Ok([u_x, u_k, u_s])
    }

    /// Samples per chunk.
    fn nb(&self) -> usize {
        self.g.samples_per_gemm()
    }

    /// `u_k = Σ_i corr(a_i, b_i)` for the pairs `(x, u_y)` and `(ẋ, ȳ)`: per chunk, one
    /// GEMM `[b_1 | b_2]·[patches(a_1) | patches(a_2)]ᵀ`; chunk parts added in order. With
    /// `shift`, also the channel sums of `b_1 = u_y`, summed chunk by chunk likewise.
    fn kernel_adjoint<T: WithDType>(
        &self,
        pairs: &[(&[T], &[T])],
        shift: bool,
    ) -> Result<(Vec<T>, Option<Vec<T>>)> {
        let g = self.g;
        let (patch, pixels, size) = (g.patch(), g.pixels(), g.c_out * g.patch());
        let terms = pairs.len();
        let chunks = g.n.div_ceil(self.nb());
        let partials: Vec<(Vec<T>, Vec<T>)> = (0..chunks)
            .into_par_iter()
            .with_min_len(g.chunks_per_thread())
            .map_init(
                || {
                    (
                        vec![T::zero(); terms * patch * self.nb() * pixels],
                        vec![T::zero(); terms * self.nb() * g.y_len()],
                    )
                },
                |(col, wide), c| {
                    let m = self.nb().min(g.n - c * self.nb());
                    let cols = m * pixels;
                    let ld = terms * cols;
                    let mut sums = vec![T::zero(); if shift { g.c_out } else { 0 }];
                    for (i, (a, b)) in pairs.iter().enumerate() {
                        let input = Input::single(a);
                        for j in 0..m {
                            let at = i * cols + j * pixels;
                            im2col(&g, &input, c * self.nb() + j, &mut col[at..], ld);
                        }
                        let b_c = &b[c * self.nb() * g.y_len()..][..m * g.y_len()];
                        if i == 0 && shift {
                            for sample in b_c.chunks_exact(g.y_len()) {
                                for (s, row) in sums.iter_mut().zip(sample.chunks_exact(pixels)) {
                                    *s += row.iter().fold(T::zero(), |acc, &v| acc + v);
                                }
                            }
                        }
                        if terms == 1 && m == 1 {
                            continue;
                        }
                        let block = &mut wide[..g.c_out * ld];
                        for (j, sample) in b_c.chunks_exact(g.y_len()).enumerate() {
                            for (o, row) in sample.chunks_exact(pixels).enumerate() {
                                let at = o * ld + i * cols + j * pixels;
                                block[at..at + pixels].copy_from_slice(row);
                            }
                        }
                    }
                    // A lone sample of a lone term is already a (C_out, pixels) matrix.
                    let lhs = if terms == 1 && m == 1 {
                        &pairs[0].1[c * self.nb() * g.y_len()..][..g.y_len()]
                    } else {
                        &wide[..g.c_out * ld]
                    };
                    // Stored transposed (column-major dk), the orientation gemm writes
                    // fastest, as `cpu_ops::conv::kernels::weight_grad`.
                    let mut dk_t = vec![T::zero(); size];
                    let lhs = Mat::row_major(lhs, g.c_out, ld);
                    let rhs = Mat::row_major(&col[..patch * ld], patch, ld).t();
                    matmul(&mut dk_t, (1, g.c_out), lhs, rhs, false, Threads::One)?;
                    Ok((dk_t, sums))
                },
            )
            .collect::<Result<_>>()?;
        let mut total = vec![T::zero(); size];
        let mut sums = vec![T::zero(); if shift { g.c_out } else { 0 }];
        for (part, part_sums) in partials {
            for (t, p) in total.iter_mut().zip(part) {
                *t += p;
            }
            for (s, p) in sums.iter_mut().zip(part_sums) {
                *s += p;
            }
        }
        let mut dk = vec![T::zero(); size];
        interleave(&total, &mut dk, patch, 1, true);
        Ok((dk, shift.then_some(sums)))
    }

    /// `u_x = Σ_i convᵀ(b_i, k_i)` for the pairs `(u_y, k)` and `(ȳ, k̇)`.
    fn input_adjoint<T: WithDType>(&self, pairs: &[(&[T], &[T])]) -> Result<Vec<T>> {
        match self.flipped {
            Some(f) => {
                let flipped: Vec<Vec<T>> = pairs.iter().map(|(_, k)| flip(&self.g, k)).collect();
                let kernels: Vec<&[T]> = flipped.iter().map(Vec::as_slice).collect();
                let inputs: Vec<&[T]> = pairs.iter().map(|(b, _)| *b).collect();
                stacked_forward(&f, &inputs, &kernels, None)
            }
            None => self.col2im_adjoint(pairs),
        }
    }

    /// The input adjoint of any stride: `col2im([k_1; k_2]ᵀ·[b_1; b_2])` per chunk.
    fn col2im_adjoint<T: WithDType>(&self, pairs: &[(&[T], &[T])]) -> Result<Vec<T>> {
        let g = self.g;
        let (patch, pixels) = (g.patch(), g.pixels());
        let rows = pairs.len() * g.c_out;
        let kernel: Vec<T> = pairs.iter().flat_map(|(_, k)| k.iter().copied()).collect();
        let mut u_x = vec![T::zero(); g.n * g.x_len()];
        u_x.par_chunks_mut(self.nb() * g.x_len())
            .enumerate()
            .with_min_len(g.chunks_per_thread())
            .try_for_each_init(
                || {
                    (
                        vec![T::zero(); patch * self.nb() * pixels],
                        vec![T::zero(); rows * self.nb() * pixels],
                    )
                },
                |(col, wide), (c, ux_c)| {
                    let m = ux_c.len() / g.x_len();
                    let cols = m * pixels;
                    for (i, (b, _)) in pairs.iter().enumerate() {
                        let b_c = &b[c * self.nb() * g.y_len()..][..m * g.y_len()];
                        let dst = &mut wide[i * g.c_out * cols..(i + 1) * g.c_out * cols];
                        interleave(b_c, dst, g.c_out, pixels, false);
                    }
                    let col = &mut col[..patch * cols];
                    let lhs = Mat::row_major(&kernel, rows, patch).t();
                    let rhs = Mat::row_major(&wide[..rows * cols], rows, cols);
                    matmul(col, (cols, 1), lhs, rhs, false, Threads::One)?;
                    for (j, ux) in ux_c.chunks_exact_mut(g.x_len()).enumerate() {
                        col2im(&g, &col[j * pixels..], cols, ux);
                    }
                    Ok::<(), candle_core::Error>(())
                },
            )?;
        Ok(u_x)
    }
}

/// `Σ_i conv(x_i, k_i) (+ s)` for one geometry `g` of each term, as one convolution of the
/// inputs stacked along the channels by the kernels stacked likewise,
/// `[k_1 | k_2]·[patches(x_1); patches(x_2)]` (the stacked input is read in place): the
/// training ops' kernel ([`kernels::forward`]), so the HVPs take the same path (im2col, or
/// the row expansion of stride-1 "same" convolutions) as the gradients they differentiate.
fn stacked_forward<T: WithDType>(
    g: &Geometry,
    inputs: &[&[T]],
    kernels: &[&[T]],
    shift: Option<&[T]>,
) -> Result<Vec<T>> {
    match (inputs, kernels) {
        ([x], [k]) => kernels::forward(g, Input::single(x), k, shift),
        ([a, b], [ka, kb]) => {
            let wide = Geometry::new(
                [g.n, 2 * g.c_in, g.h, g.w],
                [g.c_out, 2 * g.c_in, g.kh, g.kw],
                g.padding,
                g.stride,
            )?;
            let kernel = concat_blocks(ka, kb, g.c_out);
            kernels::forward(&wide, Input::stacked(a, b, g.c_in), &kernel, shift)
        }
        _ => bail!(
            "linearized HVP: {} stacked convolution inputs and {} kernels",
            inputs.len(),
            kernels.len()
        ),
    }
}

/// The flipped, channel-swapped kernel `k'[c, o, i, j] = k[o, c, kh−1−i, kw−1−j]`.
fn flip<T: WithDType>(g: &Geometry, k: &[T]) -> Vec<T> {
    let taps = g.kh * g.kw;
    let mut flipped = Vec::with_capacity(k.len());
    for c in 0..g.c_in {
        for o in 0..g.c_out {
            let base = (o * g.c_in + c) * taps;
            flipped.extend(k[base..base + taps].iter().rev());
        }
    }
    flipped
}

/// Runs `kernel` on the values of the present `(a, b)` pairs of `terms` and of `extra`
/// (CPU tensors, read in place when contiguous), giving tensors of the shapes `dims`, one
/// per output of the kernel.
fn run_pairs<T: WithDType>(
    terms: &[Option<(&Tensor, &Tensor)>],
    extra: Option<&Tensor>,
    dims: &[&[usize]],
    kernel: impl FnOnce(&[(&[T], &[T])], Option<&[T]>) -> Result<Vec<Vec<T>>>,
) -> Result<Vec<Tensor>> {
    let mut tensors: Vec<&Tensor> = terms.iter().flatten().flat_map(|(a, b)| [*a, *b]).collect();
    tensors.extend(extra);
    with_values::<T, _>(&tensors, |v| {
        let pairs: Vec<(&[T], &[T])> = v.chunks_exact(2).map(|p| (p[0], p[1])).collect();
        let extra = extra.map(|_| v[v.len() - 1]);
        let outputs = kernel(&pairs, extra)?;
        if outputs.len() != dims.len() {
            bail!(
                "linearized HVP: {} convolution outputs for {} shapes",
                outputs.len(),
                dims.len()
            )
        }
        outputs
            .into_iter()
            .zip(dims)
            .map(|(o, d)| tensor(o, d))
            .collect()
    })
}

/// The single output of a [`run_pairs`] call.
fn single(mut outputs: Vec<Tensor>) -> Result<Tensor> {
    match outputs.pop() {
        Some(t) if outputs.is_empty() => Ok(t),
        _ => bail!("linearized HVP: expected one convolution output"),
    }
}

/// `Σ_{n, h, w} u[n, c, h, w]` for `u: (N, C, H, W)`: the adjoint of a per-channel shift.
pub(crate) fn channel_sum(u: &Tensor) -> Result<Tensor> {
    let (n, c, h, w) = u.dims4()?;
    by_dtype!(u.dtype(), T => with_values::<T, _>(&[u], |v| {
        tensor(channel_sums(v[0], [n, c, h * w])?, &[c])
    }))
}

/// Runs `f` on the row-major values of the CPU tensors `ts` (borrowed when contiguous).
fn with_values<T: WithDType, R>(ts: &[&Tensor], f: impl FnOnce(&[&[T]]) -> Result<R>) -> Result<R> {
    let guards: Vec<_> = ts.iter().map(|t| t.storage_and_layout()).collect();
    let values = guards
        .iter()
        .map(|(storage, layout)| match &**storage {
            Storage::Cpu(cpu) => dense::<T>(cpu, layout),
            _ => bail!("linearized HVP: a convolution operand off the CPU"),
        })
        .collect::<Result<Vec<_>>>()?;
    let slices: Vec<&[T]> = values.iter().map(|v| &v[..]).collect();
    f(&slices)
}

fn tensor<T: WithDType>(values: Vec<T>, dims: &[usize]) -> Result<Tensor> {
    Tensor::from_vec(values, dims, &Device::Cpu)
}
