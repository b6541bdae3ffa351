//! The convolution adjoints of the reverse sweep, each a sum of two terms computed as one
//! GEMM where the geometry allows, on the CPU custom ops' kernels (`conv_cpu::kernels`:
//! im2col/col2im around single-threaded GEMMs, samples in parallel, sums in an order fixed
//! by the geometry, so results are bit-identical for any thread count).
//!
//! With `y = conv(x, k)` (padding `p`, stride `s`) the tangent of the input adjoint is
//! `convᵀ(ẏ̄, k) + convᵀ(ȳ, k̇)` and that of the kernel adjoint `corr(ẋ, ȳ) + corr(x, ẏ̄)`.
//! For stride 1 the input adjoint is a forward convolution of the output adjoint by the
//! flipped, channel-swapped kernel; both terms then become one convolution of the stacked
//! adjoints `[ẏ̄, ȳ]` by the stacked flipped kernels, read in place.

use std::borrow::Cow;

use candle_core::{bail, DType, Device, Result, Storage, Tensor, WithDType};

use crate::conv_cpu::dense;
use crate::conv_cpu::kernels::{self, Geometry, Input};

/// Runs `f` on the row-major values of every tensor of `ts` (borrowed when contiguous).
fn with_all<T: WithDType, R>(ts: &[&Tensor], f: impl FnOnce(&[&[T]]) -> Result<R>) -> Result<R> {
    let guards: Vec<_> = ts.iter().map(|t| t.storage_and_layout()).collect();
    let values = guards
        .iter()
        .map(|(storage, layout)| match &**storage {
            Storage::Cpu(cpu) => dense::<T>(cpu, layout),
            _ => bail!("linearized HVP: a tensor off the CPU"),
        })
        .collect::<Result<Vec<Cow<[T]>>>>()?;
    let slices: Vec<&[T]> = values.iter().map(|v| &v[..]).collect();
    f(&slices)
}

/// Runs the f32 or f64 version of a kernel on `ts` and wraps its output as a CPU tensor
/// of shape `dims`.
fn dispatch(
    ts: &[&Tensor],
    dims: &[usize],
    f32_kernel: impl FnOnce(&[&[f32]]) -> Result<Vec<f32>>,
    f64_kernel: impl FnOnce(&[&[f64]]) -> Result<Vec<f64>>,
) -> Result<Tensor> {
    let dtype = ts.first().map_or(DType::F32, |t| t.dtype());
    if ts.iter().any(|t| t.dtype() != dtype) {
        bail!("linearized HVP: convolution operands of mixed dtypes")
    }
    match dtype {
        DType::F32 => Tensor::from_vec(with_all(ts, f32_kernel)?, dims, &Device::Cpu),
        DType::F64 => Tensor::from_vec(with_all(ts, f64_kernel)?, dims, &Device::Cpu),
        other => bail!("linearized HVP: dtype {other:?}, expected f32 or f64"),
    }
}

fn dims4(t: &Tensor) -> Result<[usize; 4]> {
    let (a, b, c, d) = t.dims4()?;
    Ok([a, b, c, d])
}

/// `Σ_i convᵀ(dy_i, k_i)`: the input adjoint of `y = conv(x, k)` for output adjoints
/// `dy_i: (N, C_out, Ho, Wo)` and kernels `k_i: (C_out, C_in, kh, kw)` (one or two
/// terms), for inputs of side lengths `(h, w)`.
pub(crate) fn conv_transpose_sum(
    terms: &[(&Tensor, &Tensor)],
    padding: usize,
    stride: usize,
    (h, w): (usize, usize),
) -> Result<Tensor> {
    let Some(&(dy0, k0)) = terms.first() else {
        bail!("linearized HVP: an empty sum of transposed convolutions")
    };
    let [n, c_out, _, _] = dims4(dy0)?;
    let [_, c_in, kh, kw] = dims4(k0)?;
    let g = Geometry::new([n, c_in, h, w], [c_out, c_in, kh, kw], padding, stride)?;
    for &(dy, k) in terms {
        if dims4(dy)? != g.y_dims() || dims4(k)? != g.k_dims() {
            bail!(
                "linearized HVP: transposed convolution of {:?} by {:?}, expected {:?} by {:?}",
                dy.dims(),
                k.dims(),
                g.y_dims(),
                g.k_dims()
            )
        }
    }
    let stacked = terms.len() == 2 && stride == 1 && kh == kw && padding < kh;
    let tensors: Vec<&Tensor> = terms.iter().flat_map(|(dy, k)| [*dy, *k]).collect();
    let x_dims = g.x_dims();
    if stacked {
        return dispatch(
            &tensors,
            &x_dims,
            |v| stacked_transpose(&g, v),
            |v| stacked_transpose(&g, v),
        );
    }
    dispatch(
        &tensors,
        &x_dims,
        |v| sum_of(v, |dy, k| kernels::input_grad(&g, dy, k)),
        |v| sum_of(v, |dy, k| kernels::input_grad(&g, dy, k)),
    )
}

/// `convᵀ(dy_a, k_a) + convᵀ(dy_b, k_b)` for stride 1 as the forward convolution of
/// `[dy_a, dy_b]` (stacked along channels, read in place) by the flipped, channel-swapped
/// kernels `k'[c, o, i, j] = k[o, c, kh−1−i, kw−1−j]`, stacked likewise: one GEMM with
/// inner dimension `2·C_out·kh·kw`.
fn stacked_transpose<T: WithDType>(g: &Geometry, v: &[&[T]]) -> Result<Vec<T>> {
    let [dy_a, k_a, dy_b, k_b] = v else {
        bail!("linearized HVP: stacked transposed convolution needs two terms")
    };
    let taps = g.kh * g.kw;
    let mut flipped = Vec::with_capacity(2 * k_a.len());
    for c in 0..g.c_in {
        for k in [k_a, k_b] {
            for o in 0..g.c_out {
                let base = (o * g.c_in + c) * taps;
                flipped.extend(k[base..base + taps].iter().rev());
            }
        }
    }
    let geometry = Geometry::new(
        [g.n, 2 * g.c_out, g.ho, g.wo],
        [g.c_in, 2 * g.c_out, g.kh, g.kw],
        g.kh - 1 - g.padding,
        1,
    )?;
    kernels::forward(
        &geometry,
        Input::stacked(dy_a, dy_b, g.c_out),
        &flipped,
        None,
    )
}

/// `Σ_i corr(x_i, dy_i)`: the kernel adjoint of `y = conv(x, k)` for inputs
/// `x_i: (N, C_in, H, W)` and output adjoints `dy_i`, kernels of side `(kh, kw)`.
pub(crate) fn correlate_sum(
    terms: &[(&Tensor, &Tensor)],
    padding: usize,
    stride: usize,
    (kh, kw): (usize, usize),
) -> Result<Tensor> {
    let Some(&(x0, dy0)) = terms.first() else {
        bail!("linearized HVP: an empty sum of kernel adjoints")
    };
    let x = dims4(x0)?;
    let c_out = dy0.dim(1)?;
    let g = Geometry::new(x, [c_out, x[1], kh, kw], padding, stride)?;
    for &(x, dy) in terms {
        if dims4(x)? != g.x_dims() || dims4(dy)? != g.y_dims() {
            bail!(
                "linearized HVP: kernel adjoint of {:?} and {:?}, expected {:?} and {:?}",
                x.dims(),
                dy.dims(),
                g.x_dims(),
                g.y_dims()
            )
        }
    }
    let tensors: Vec<&Tensor> = terms.iter().flat_map(|(x, dy)| [*x, *dy]).collect();
    dispatch(
        &tensors,
        &g.k_dims(),
        |v| sum_of(v, |x, dy| kernels::weight_grad(&g, Input::single(x), dy)),
        |v| sum_of(v, |x, dy| kernels::weight_grad(&g, Input::single(x), dy)),
    )
}

/// `Σ_i f(v[2i], v[2i + 1])`, added in order.
fn sum_of<T: WithDType>(v: &[&[T]], f: impl Fn(&[T], &[T]) -> Result<Vec<T>>) -> Result<Vec<T>> {
    let mut pairs = v.chunks_exact(2);
    let Some(first) = pairs.next() else {
        bail!("linearized HVP: an empty sum")
    };
    let mut total = f(first[0], first[1])?;
    for pair in pairs {
        for (t, x) in total.iter_mut().zip(f(pair[0], pair[1])?) {
            *t += x;
        }
    }
    Ok(total)
}

/// `Σ_{n, h, w} dy[n, c, h, w]` for `dy: (N, C, H, W)`: the adjoint of a per-channel shift.
pub(crate) fn channel_sum(dy: &Tensor) -> Result<Tensor> {
    let [n, c, h, w] = dims4(dy)?;
    dispatch(
        &[dy],
        &[c],
        |v| kernels::channel_sum(v[0], [n, c, h * w]),
        |v| kernels::channel_sum(v[0], [n, c, h * w]),
    )
}
