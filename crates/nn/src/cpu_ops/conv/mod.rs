//! CPU convolution as candle custom ops with exact derivatives of every order.
//!
//! candle's CPU `conv_transpose2d` (the input gradient) has no GEMM path and its weight
//! gradient is a convolution with a huge inner dimension and nine outputs; together they
//! made ~70% of a ResNet-32 gradient. Here all three maps are im2col/col2im around a GEMM
//! (the `gemm` crate candle itself uses), samples in parallel with rayon
//! ([`kernels`]); stride-1 "same" convolutions of 8 or more input channels replace im2col
//! by a 3x smaller row expansion and one GEMM per kernel row ([`rows`]). The input gradient of a stride-1 convolution is a forward convolution
//! with the flipped kernel (a GEMM with inner dimension `C_out·k²` rather than `C_out`).
//!
//! With `y = conv(x, k)` (padding `p`, stride `s`) the three ops are bilinear and each
//! one's derivatives are the other two, so candle can differentiate any graph of them,
//! including the backward of a backward (the dual graph of an HVP holds convolutions of
//! tangents, whose backward is built from these ops as well):
//!
//! | op | value | ∂/∂(first argument)·m | ∂/∂(second argument)·m |
//! |---|---|---|---|
//! | `Conv(x, k)` | `y` | `InputGrad(m, k)` | `WeightGrad(x, m)` |
//! | `InputGrad(g, k)` | `∂⟨g, conv(x, k)⟩/∂x` | `Conv(m, k)` | `WeightGrad(m, g)` |
//! | `WeightGrad(x, g)` | `∂⟨g, conv(x, k)⟩/∂k` | `InputGrad(g, m)` | `Conv(x, m)` |
//!
//! (each row follows from `⟨g, conv(x, k)⟩` being one trilinear form). `ConvAdd(x, k, z)`
//! is `Conv` plus a per-channel shift `z: (C_out,)` that starts the GEMM (an eval-mode
//! batch norm's); its gradient is the channel sum of `g`, whose own gradient is a broadcast.
//! `ConvTangent(ẋ, x, [k, k̇, ż])` is a bilinear tangent `conv(ẋ, k) + conv(x, k̇) + ż` as one
//! stacked convolution whose stacked input `[ẋ, x]` is read in place, never built; its
//! gradients are once differentiable (the HVP's single reverse pass), the others' of every
//! order. A gradient is only
//! computed for an argument that is tracked (`Tensor::track_op`): the input images and the
//! constant directions of an HVP cost nothing. Only `cpu_fwd` exists; other devices use
//! candle's convolution (`ops`). Arguments of any layout are accepted.
//!
//! During training a convolution, its batch norm and what follows are one op
//! ([`conv_batch_norm_train`], first-order).

mod batch_norm;
mod block;
pub(crate) mod kernels;
mod rows;
#[cfg(test)]
mod tests;

use candle_core::{bail, Result, Shape, Tensor, WithDType};

use super::channel_sum::channel_sum;
use super::custom::{apply2, apply3, grad_if, Arg, Cpu, CpuOp};
pub(crate) use batch_norm::{conv_batch_norm_train, Epilogue};
pub(crate) use block::{residual_blocks_train, Block, BlockStats, ConvBn};
use kernels::{Geometry, Input};

/// `y = conv2d(x, k)` with the custom op (CPU, f32 or f64).
pub(crate) fn conv2d(x: &Tensor, k: &Tensor, padding: usize, stride: usize) -> Result<Tensor> {
    apply2(Conv { padding, stride }, x, k)
}

/// `y = conv2d(x, k) + z`, the shift `z: (C_out,)` (one per output channel) added inside the
/// GEMM (CPU, f32 or f64).
pub(crate) fn conv2d_add(
    x: &Tensor,
    k: &Tensor,
    z: &Tensor,
    padding: usize,
    stride: usize,
) -> Result<Tensor> {
    apply3(ConvAdd(Conv { padding, stride }), x, k, z)
}

/// `ẏ = conv(ẋ, k) + conv(x, k̇) + ż`, the tangent of a convolution whose input and kernel
/// both carry tangents, as one op (CPU, f32 or f64); `ż` an optional per-channel shift
/// `(C_out,)`.
///
/// It is the single convolution `conv([ẋ, x], [k, k̇]) + ż` with the two inputs and the two
/// kernels stacked along the input channels. Computed as two chained convolutions it would
/// keep the first term alive as the second one's addend until the backward pass ends (an
/// output-sized tensor per layer of an HVP graph) and would im2col `ẏ`'s gradient once per
/// term; here the stacked input exists only while the op runs.
pub(crate) fn conv2d_tangent(
    x: &Tensor,
    x_dot: &Tensor,
    k: &Tensor,
    k_dot: &Tensor,
    shift_dot: Option<&Tensor>,
    padding: usize,
    stride: usize,
) -> Result<Tensor> {
    let (c_out, c_in, kh, kw) = k.dims4()?;
    if k_dot.dims() != k.dims() || x_dot.dims() != x.dims() {
        bail!(
            "conv2d tangent: input {:?} with tangent {:?}, kernel {:?} with tangent {:?}",
            x.dims(),
            x_dot.dims(),
            k.dims(),
            k_dot.dims()
        )
    }
    let mut parts = vec![k.flatten_all()?, k_dot.flatten_all()?];
    if let Some(z) = shift_dot {
        parts.push(z.flatten_all()?);
    }
    let packed = Tensor::cat(&parts, 0)?;
    // The tangent goes first: candle's backward visits arguments in order, and taking
    // the tangent chain before the primal one makes it process the two chains layer by
    // layer, so a layer's primal gradient is not held until the whole tangent chain is done.
    apply3(
        ConvTangent {
            padding,
            stride,
            kernel: [c_out, c_in, kh, kw],
            shift: shift_dot.is_some(),
        },
        x_dot,
        x,
        &packed,
    )
}

/// The input gradient `∂⟨g, conv(x, k)⟩/∂x` for inputs of side lengths `(h, w)`.
fn input_grad(
    g: &Tensor,
    k: &Tensor,
    padding: usize,
    stride: usize,
    (h, w): (usize, usize),
) -> Result<Tensor> {
    apply2(
        InputGrad {
            padding,
            stride,
            h,
            w,
        },
        g,
        k,
    )
}

/// The weight gradient `∂⟨g, conv(x, k)⟩/∂k` for kernels of side lengths `(kh, kw)`.
fn weight_grad(
    x: &Tensor,
    g: &Tensor,
    padding: usize,
    stride: usize,
    (kh, kw): (usize, usize),
) -> Result<Tensor> {
    apply2(
        WeightGrad {
            padding,
            stride,
            kh,
            kw,
        },
        x,
        g,
    )
}

fn dims4(what: &str, dims: &[usize]) -> Result<[usize; 4]> {
    match *dims {
        [a, b, c, d] => Ok([a, b, c, d]),
        ref other => bail!("conv2d: {what} has shape {other:?}, expected 4 dimensions"),
    }
}

fn check_dims(what: &str, got: [usize; 4], expected: [usize; 4]) -> Result<()> {
    if got != expected {
        bail!("conv2d: {what} has shape {got:?}, expected {expected:?}")
    }
    Ok(())
}

fn shape(dims: [usize; 4]) -> Shape {
    Shape::from(dims.to_vec())
}

/// `y = conv(x, k)`: arguments `(x, k)`.
#[derive(Clone, Copy, Debug)]
struct Conv {
    padding: usize,
    stride: usize,
}

impl Conv {
    fn geometry(&self, x: &[usize], k: &[usize]) -> Result<Geometry> {
        Geometry::new(
            dims4("input", x)?,
            dims4("kernel", k)?,
            self.padding,
            self.stride,
        )
    }
}

impl CpuOp<2> for Conv {
    const NAME: &'static str = "saddlescope-conv2d";

    fn run<T: WithDType>(&self, [x, k]: [Arg<'_, T>; 2]) -> Result<(Vec<T>, Shape)> {
        let g = self.geometry(x.dims(), k.dims())?;
        let y = kernels::forward(&g, Input::single(&x.dense()?), &k.dense()?, None)?;
        Ok((y, shape(g.y_dims())))
    }

    fn backward(
        &self,
        [x, k]: [&Tensor; 2],
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<[Option<Tensor>; 2]> {
        let (_, _, h, w) = x.dims4()?;
        let (_, _, kh, kw) = k.dims4()?;
        let (p, s) = (self.padding, self.stride);
        Ok([
            grad_if(x, || input_grad(grad, k, p, s, (h, w)))?,
            grad_if(k, || weight_grad(x, grad, p, s, (kh, kw)))?,
        ])
    }
}

/// `y = conv(x, k) + z`: arguments `(x, k, z)`, `z` a per-channel shift of shape
/// `(C_out,)`. Gradients: those of [`Conv`], and `dz = Σ_{n, h, w} g` (a channel sum).
struct ConvAdd(Conv);

impl CpuOp<3> for ConvAdd {
    const NAME: &'static str = "saddlescope-conv2d-add";

    fn run<T: WithDType>(&self, [x, k, z]: [Arg<'_, T>; 3]) -> Result<(Vec<T>, Shape)> {
        let g = self.0.geometry(x.dims(), k.dims())?;
        if z.dims() != [g.c_out] {
            bail!(
                "conv2d: shift has shape {:?}, expected [{}]",
                z.dims(),
                g.c_out
            )
        }
        let (x, k, z) = (x.dense()?, k.dense()?, z.dense()?);
        let y = kernels::forward(&g, Input::single(&x), &k, Some(&z))?;
        Ok((y, shape(g.y_dims())))
    }

    fn backward(
        &self,
        [x, k, z]: [&Tensor; 3],
        y: &Tensor,
        grad: &Tensor,
    ) -> Result<[Option<Tensor>; 3]> {
        let [dx, dk] = self.0.backward([x, k], y, grad)?;
        Ok([dx, dk, grad_if(z, || channel_sum(grad))?])
    }
}

/// `dx = ∂⟨g, conv(x, k)⟩/∂x` for inputs of side lengths `(h, w)`: arguments `(g, k)`.
struct InputGrad {
    padding: usize,
    stride: usize,
    h: usize,
    w: usize,
}

impl CpuOp<2> for InputGrad {
    const NAME: &'static str = "saddlescope-conv2d-input-grad";

    fn run<T: WithDType>(&self, [dy, k]: [Arg<'_, T>; 2]) -> Result<(Vec<T>, Shape)> {
        let dy_dims = dims4("output gradient", dy.dims())?;
        let k_dims = dims4("kernel", k.dims())?;
        let g = Geometry::new(
            [dy_dims[0], k_dims[1], self.h, self.w],
            k_dims,
            self.padding,
            self.stride,
        )?;
        check_dims("output gradient", dy_dims, g.y_dims())?;
        let dx = kernels::input_grad(&g, &dy.dense()?, &k.dense()?)?;
        Ok((dx, shape(g.x_dims())))
    }

    fn backward(
        &self,
        [g, k]: [&Tensor; 2],
        _dx: &Tensor,
        grad: &Tensor,
    ) -> Result<[Option<Tensor>; 2]> {
        let (_, _, kh, kw) = k.dims4()?;
        let (p, s) = (self.padding, self.stride);
        Ok([
            grad_if(g, || conv2d(grad, k, p, s))?,
            grad_if(k, || weight_grad(grad, g, p, s, (kh, kw)))?,
        ])
    }
}

/// `dk = ∂⟨g, conv(x, k)⟩/∂k` for kernels of side lengths `(kh, kw)`: arguments `(x, g)`.
struct WeightGrad {
    padding: usize,
    stride: usize,
    kh: usize,
    kw: usize,
}

impl WeightGrad {
    /// The geometry of the convolution whose kernel gradient this is, for an input of
    /// dims `x` and an output gradient of dims `dy`.
    fn geometry(&self, x: [usize; 4], dy: [usize; 4]) -> Result<Geometry> {
        let g = Geometry::new(
            x,
            [dy[1], x[1], self.kh, self.kw],
            self.padding,
            self.stride,
        )?;
        check_dims("output gradient", dy, g.y_dims())?;
        Ok(g)
    }
}

impl CpuOp<2> for WeightGrad {
    const NAME: &'static str = "saddlescope-conv2d-weight-grad";

    fn run<T: WithDType>(&self, [x, dy]: [Arg<'_, T>; 2]) -> Result<(Vec<T>, Shape)> {
        let g = self.geometry(
            dims4("input", x.dims())?,
            dims4("output gradient", dy.dims())?,
        )?;
        let dk = kernels::weight_grad(&g, Input::single(&x.dense()?), &dy.dense()?)?;
        Ok((dk, shape(g.k_dims())))
    }

    fn backward(
        &self,
        [x, g]: [&Tensor; 2],
        _dk: &Tensor,
        grad: &Tensor,
    ) -> Result<[Option<Tensor>; 2]> {
        let (_, _, h, w) = x.dims4()?;
        let (p, s) = (self.padding, self.stride);
        Ok([
            grad_if(x, || input_grad(g, grad, p, s, (h, w)))?,
            grad_if(g, || conv2d(x, grad, p, s))?,
        ])
    }
}

/// `ẏ = conv(ẋ, k) + conv(x, k̇) + ż` ([`conv2d_tangent`]): arguments `(ẋ, x, packed)`,
/// `packed = [k, k̇, ż]` flattened (`ż` only when `shift`). Gradients: the stacked
/// convolution's, split back ([`InputGrad`] of `[k, k̇]`, [`StackedWeightGrad`] of `[ẋ, x]`,
/// a channel sum for `ż`). An HVP differentiates its graph once, so the kernel gradient
/// is first-order only.
struct ConvTangent {
    padding: usize,
    stride: usize,
    kernel: [usize; 4],
    shift: bool,
}

impl ConvTangent {
    /// Entries of one kernel.
    fn kernel_len(&self) -> usize {
        self.kernel.iter().product()
    }

    /// The stacked convolution's geometry for an input of dims `x`.
    fn stacked(&self, [n, c_in, h, w]: [usize; 4]) -> Result<Geometry> {
        let [c_out, k_in, kh, kw] = self.kernel;
        if k_in != c_in {
            bail!("conv2d: kernel has {k_in} input channels, the input has {c_in}")
        }
        Geometry::new(
            [n, 2 * c_in, h, w],
            [c_out, 2 * c_in, kh, kw],
            self.padding,
            self.stride,
        )
    }
}

impl CpuOp<3> for ConvTangent {
    const NAME: &'static str = "saddlescope-conv2d-tangent";

    /// `conv([ẋ, x], [k, k̇]) + ż`.
    fn run<T: WithDType>(&self, [x_dot, x, packed]: [Arg<'_, T>; 3]) -> Result<(Vec<T>, Shape)> {
        let x_dims = dims4("input", x.dims())?;
        check_dims(
            "input tangent",
            dims4("input tangent", x_dot.dims())?,
            x_dims,
        )?;
        let g = self.stacked(x_dims)?;
        let packed = packed.dense()?;
        let len = self.kernel_len();
        let expected = 2 * len + if self.shift { g.c_out } else { 0 };
        if packed.len() != expected {
            bail!(
                "conv2d tangent: {} packed kernel values, expected {expected}",
                packed.len()
            )
        }
        let kernel = kernels::concat_blocks(&packed[..len], &packed[len..2 * len], g.c_out);
        let shift = self.shift.then(|| &packed[2 * len..]);
        let (x_dot, x) = (x_dot.dense()?, x.dense()?);
        let input = Input::stacked(&x_dot, &x, g.c_in / 2);
        let y = kernels::forward(&g, input, &kernel, shift)?;
        Ok((y, shape(g.y_dims())))
    }

    fn backward(
        &self,
        [x_dot, x, packed]: [&Tensor; 3],
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<[Option<Tensor>; 3]> {
        let [_, c_in, kh, kw] = self.kernel;
        let len = self.kernel_len();
        let (p, s) = (self.padding, self.stride);
        let (_, _, h, w) = x.dims4()?;
        let dpacked = grad_if(packed, || {
            let dk = x_dot.apply_op3_no_bwd(
                x,
                grad,
                &Cpu(StackedWeightGrad(WeightGrad {
                    padding: p,
                    stride: s,
                    kh,
                    kw,
                })),
            )?;
            let mut parts = vec![
                dk.narrow(1, 0, c_in)?.flatten_all()?,
                dk.narrow(1, c_in, c_in)?.flatten_all()?,
            ];
            if self.shift {
                parts.push(channel_sum(grad)?);
            }
            Tensor::cat(&parts, 0)
        })?;
        let (mut dx, mut dx_dot) = (None, None);
        if x.track_op() || x_dot.track_op() {
            let k = packed.narrow(0, 0, len)?.reshape(&self.kernel[..])?;
            let k_dot = packed.narrow(0, len, len)?.reshape(&self.kernel[..])?;
            let stacked = input_grad(grad, &Tensor::cat(&[&k, &k_dot], 1)?, p, s, (h, w))?;
            dx = grad_if(x, || stacked.narrow(1, c_in, c_in))?;
            dx_dot = grad_if(x_dot, || stacked.narrow(1, 0, c_in))?;
        }
        Ok([dx_dot, dx, dpacked])
    }
}

/// `dk = ∂⟨g, conv([ẋ, x], k)⟩/∂k` for the stacked input of [`ConvTangent`], read in place:
/// arguments `(ẋ, x, g)`, kernels `(C_out, 2·C_in, kh, kw)`. Used only inside
/// `ConvTangent`'s backward pass, which is as far as an HVP differentiates, so it has no
/// gradient of its own.
struct StackedWeightGrad(WeightGrad);

impl CpuOp<3> for StackedWeightGrad {
    const NAME: &'static str = "saddlescope-conv2d-stacked-weight-grad";

    fn run<T: WithDType>(&self, [a, b, dy]: [Arg<'_, T>; 3]) -> Result<(Vec<T>, Shape)> {
        let [n, c_in, h, w] = dims4("input", b.dims())?;
        check_dims(
            "input tangent",
            dims4("input tangent", a.dims())?,
            [n, c_in, h, w],
        )?;
        let dy_dims = dims4("output gradient", dy.dims())?;
        let g = self.0.geometry([n, 2 * c_in, h, w], dy_dims)?;
        let (a, b) = (a.dense()?, b.dense()?);
        let dk = kernels::weight_grad(&g, Input::stacked(&a, &b, c_in), &dy.dense()?)?;
        Ok((dk, shape(g.k_dims())))
    }
}
