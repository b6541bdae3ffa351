//! CPU convolution as candle custom ops with exact derivatives of every order.
//!
//! candle's CPU `conv_transpose2d` (the input gradient) has no GEMM path and its weight
//! gradient is a convolution with a huge inner dimension and nine outputs; together they
//! made ~70% of a ResNet-32 gradient. Here all three maps are im2col/col2im around a GEMM
//! (the `gemm` crate candle itself uses), samples in parallel with rayon
//! ([`kernels`]). The input gradient of a stride-1 convolution is a forward convolution
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
//! is `Conv` plus an addend that starts the GEMM (a per-channel shift `(C_out,)`, i.e. an
//! eval-mode batch norm's, or a tensor of the output's shape, i.e. the other term of a
//! bilinear tangent); its addend's gradient is `g` itself or `ChannelSum(g)`, whose own
//! gradient is a broadcast. A gradient is only
//! computed for an argument that is tracked (`Tensor::track_op`): the input images and the
//! constant directions of an HVP cost nothing. Only `cpu_fwd` exists; other devices use
//! candle's convolution (`ops`). Arguments of any layout are accepted.

mod kernels;
#[cfg(test)]
mod tests;

use std::borrow::Cow;

use candle_core::backend::BackendStorage;
use candle_core::{
    bail, CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, WithDType,
};

use kernels::{Addend, Geometry};

/// `y = conv2d(x, k)` with the custom op (CPU, f32 or f64).
pub(crate) fn conv2d(x: &Tensor, k: &Tensor, padding: usize, stride: usize) -> Result<Tensor> {
    x.apply_op2(k, Conv { padding, stride })
}

/// `y = conv2d(x, k) + z`, the addend `z` a per-output-channel shift `(C_out,)` or a tensor
/// of the output's shape, added inside the GEMM (CPU, f32 or f64).
pub(crate) fn conv2d_add(
    x: &Tensor,
    k: &Tensor,
    z: &Tensor,
    padding: usize,
    stride: usize,
) -> Result<Tensor> {
    x.apply_op3(k, z, ConvAdd { padding, stride })
}

/// The input gradient `∂⟨g, conv(x, k)⟩/∂x` for inputs of side lengths `(h, w)`.
fn input_grad(
    g: &Tensor,
    k: &Tensor,
    padding: usize,
    stride: usize,
    (h, w): (usize, usize),
) -> Result<Tensor> {
    g.apply_op2(
        k,
        InputGrad {
            padding,
            stride,
            h,
            w,
        },
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
    x.apply_op2(
        g,
        WeightGrad {
            padding,
            stride,
            kh,
            kw,
        },
    )
}

fn dims4(what: &str, layout: &Layout) -> Result<[usize; 4]> {
    match *layout.dims() {
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

/// The values of a tensor in row-major order: borrowed when contiguous, else gathered
/// through its strides (broadcasts, transposes).
pub(crate) fn dense<'a, T: WithDType>(
    storage: &'a CpuStorage,
    layout: &Layout,
) -> Result<Cow<'a, [T]>> {
    let data = storage.as_slice::<T>()?;
    if let Some((start, end)) = layout.contiguous_offsets() {
        return match data.get(start..end) {
            Some(slice) => Ok(Cow::Borrowed(slice)),
            None => bail!("conv2d: layout {layout:?} exceeds its storage"),
        };
    }
    let (dims, stride) = (layout.dims(), layout.stride());
    let count: usize = dims.iter().product();
    if count == 0 {
        return Ok(Cow::Owned(Vec::new()));
    }
    let last = layout.start_offset()
        + dims
            .iter()
            .zip(stride)
            .map(|(d, s)| (d - 1) * s)
            .sum::<usize>();
    if last >= data.len() {
        bail!("conv2d: layout {layout:?} exceeds its storage")
    }
    let mut index = vec![0; dims.len()];
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let offset: usize = index.iter().zip(stride).map(|(i, s)| i * s).sum();
        out.push(data[layout.start_offset() + offset]);
        for axis in (0..dims.len()).rev() {
            index[axis] += 1;
            if index[axis] < dims[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    Ok(Cow::Owned(out))
}

/// Runs a kernel on two f32 or two f64 arguments.
fn dispatch(
    name: &str,
    (s1, l1): (&CpuStorage, &Layout),
    (s2, l2): (&CpuStorage, &Layout),
    shape: [usize; 4],
    f32_kernel: impl FnOnce(&[f32], &[f32]) -> Result<Vec<f32>>,
    f64_kernel: impl FnOnce(&[f64], &[f64]) -> Result<Vec<f64>>,
) -> Result<(CpuStorage, Shape)> {
    let storage = match (s1, s2) {
        (CpuStorage::F32(_), CpuStorage::F32(_)) => {
            CpuStorage::F32(f32_kernel(&dense(s1, l1)?, &dense(s2, l2)?)?)
        }
        (CpuStorage::F64(_), CpuStorage::F64(_)) => {
            CpuStorage::F64(f64_kernel(&dense(s1, l1)?, &dense(s2, l2)?)?)
        }
        _ => bail!(
            "{name}: arguments of dtype {:?} and {:?}, expected both f32 or both f64",
            s1.dtype(),
            s2.dtype()
        ),
    };
    Ok((storage, Shape::from(shape.to_vec())))
}

/// `y = conv(x, k)`: arguments `(x, k)`.
struct Conv {
    padding: usize,
    stride: usize,
}

impl CustomOp2 for Conv {
    fn name(&self) -> &'static str {
        "saddlescope-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = Geometry::new(
            dims4("input", l1)?,
            dims4("kernel", l2)?,
            self.padding,
            self.stride,
        )?;
        dispatch(
            self.name(),
            (s1, l1),
            (s2, l2),
            g.y_dims(),
            |x, k| kernels::forward(&g, x, k, Addend::None),
            |x, k| kernels::forward(&g, x, k, Addend::None),
        )
    }

    fn bwd(
        &self,
        x: &Tensor,
        k: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (_, _, h, w) = x.dims4()?;
        let (_, _, kh, kw) = k.dims4()?;
        let (p, s) = (self.padding, self.stride);
        let dx = if x.track_op() {
            Some(input_grad(grad, k, p, s, (h, w))?)
        } else {
            None
        };
        let dk = if k.track_op() {
            Some(weight_grad(x, grad, p, s, (kh, kw))?)
        } else {
            None
        };
        Ok((dx, dk))
    }
}

/// `y = conv(x, k) + z`: arguments `(x, k, z)`, `z` of shape `(C_out,)` (a per-channel
/// shift) or of the output's shape. Gradients: those of [`Conv`], and `dz = g` or
/// `dz = Σ_{n, h, w} g` ([`ChannelSum`]).
struct ConvAdd {
    padding: usize,
    stride: usize,
}

impl CustomOp3 for ConvAdd {
    fn name(&self) -> &'static str {
        "saddlescope-conv2d-add"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = Geometry::new(
            dims4("input", l1)?,
            dims4("kernel", l2)?,
            self.padding,
            self.stride,
        )?;
        let channel = l3.dims() == [g.c_out];
        if !channel && l3.dims() != g.y_dims() {
            bail!(
                "conv2d: addend has shape {:?}, expected [{}] or {:?}",
                l3.dims(),
                g.c_out,
                g.y_dims()
            )
        }
        let storage = match (s1, s2, s3) {
            (CpuStorage::F32(_), CpuStorage::F32(_), CpuStorage::F32(_)) => {
                let (x, k, z) = (dense(s1, l1)?, dense(s2, l2)?, dense::<f32>(s3, l3)?);
                CpuStorage::F32(kernels::forward(&g, &x, &k, Addend::of(&z, channel))?)
            }
            (CpuStorage::F64(_), CpuStorage::F64(_), CpuStorage::F64(_)) => {
                let (x, k, z) = (dense(s1, l1)?, dense(s2, l2)?, dense::<f64>(s3, l3)?);
                CpuStorage::F64(kernels::forward(&g, &x, &k, Addend::of(&z, channel))?)
            }
            _ => bail!(
                "{}: arguments of dtype {:?}, {:?} and {:?}, expected all f32 or all f64",
                self.name(),
                s1.dtype(),
                s2.dtype(),
                s3.dtype()
            ),
        };
        Ok((storage, Shape::from(g.y_dims().to_vec())))
    }

    fn bwd(
        &self,
        x: &Tensor,
        k: &Tensor,
        z: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let conv = Conv {
            padding: self.padding,
            stride: self.stride,
        };
        let (dx, dk) = conv.bwd(x, k, y, grad)?;
        let dz = match (z.track_op(), z.rank()) {
            (false, _) => None,
            (true, 1) => Some(grad.apply_op1(ChannelSum)?),
            (true, _) => Some(grad.clone()),
        };
        Ok((dx, dk, dz))
    }
}

/// `s[c] = Σ_{n, h, w} g[n, c, h, w]`, the gradient of a per-channel shift; its own
/// gradient broadcasts back.
struct ChannelSum;

impl CustomOp1 for ChannelSum {
    fn name(&self) -> &'static str {
        "saddlescope-channel-sum"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let [n, c, h, w] = dims4("channel-sum input", layout)?;
        let out = match storage {
            CpuStorage::F32(_) => CpuStorage::F32(kernels::channel_sum(
                &dense(storage, layout)?,
                [n, c, h * w],
            )?),
            CpuStorage::F64(_) => CpuStorage::F64(kernels::channel_sum(
                &dense(storage, layout)?,
                [n, c, h * w],
            )?),
            other => bail!(
                "{}: dtype {:?}, expected f32 or f64",
                self.name(),
                other.dtype()
            ),
        };
        Ok((out, Shape::from(c)))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let c = grad.elem_count();
        Ok(Some(grad.reshape((1, c, 1, 1))?.broadcast_as(arg.shape())?))
    }
}

/// `dx = ∂⟨g, conv(x, k)⟩/∂x` for inputs of side lengths `(h, w)`: arguments `(g, k)`.
struct InputGrad {
    padding: usize,
    stride: usize,
    h: usize,
    w: usize,
}

impl CustomOp2 for InputGrad {
    fn name(&self) -> &'static str {
        "saddlescope-conv2d-input-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let [n, _, _, _] = dims4("output gradient", l1)?;
        let k = dims4("kernel", l2)?;
        let g = Geometry::new([n, k[1], self.h, self.w], k, self.padding, self.stride)?;
        check_dims("output gradient", dims4("output gradient", l1)?, g.y_dims())?;
        dispatch(
            self.name(),
            (s1, l1),
            (s2, l2),
            g.x_dims(),
            |dy, k| kernels::input_grad(&g, dy, k),
            |dy, k| kernels::input_grad(&g, dy, k),
        )
    }

    fn bwd(
        &self,
        g: &Tensor,
        k: &Tensor,
        _dx: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (_, _, kh, kw) = k.dims4()?;
        let (p, s) = (self.padding, self.stride);
        let dg = if g.track_op() {
            Some(conv2d(grad, k, p, s)?)
        } else {
            None
        };
        let dk = if k.track_op() {
            Some(weight_grad(grad, g, p, s, (kh, kw))?)
        } else {
            None
        };
        Ok((dg, dk))
    }
}

/// `dk = ∂⟨g, conv(x, k)⟩/∂k` for kernels of side lengths `(kh, kw)`: arguments `(x, g)`.
struct WeightGrad {
    padding: usize,
    stride: usize,
    kh: usize,
    kw: usize,
}

impl CustomOp2 for WeightGrad {
    fn name(&self) -> &'static str {
        "saddlescope-conv2d-weight-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = dims4("input", l1)?;
        let dy = dims4("output gradient", l2)?;
        let g = Geometry::new(
            x,
            [dy[1], x[1], self.kh, self.kw],
            self.padding,
            self.stride,
        )?;
        check_dims("output gradient", dy, g.y_dims())?;
        dispatch(
            self.name(),
            (s1, l1),
            (s2, l2),
            g.k_dims(),
            |x, dy| kernels::weight_grad(&g, x, dy),
            |x, dy| kernels::weight_grad(&g, x, dy),
        )
    }

    fn bwd(
        &self,
        x: &Tensor,
        g: &Tensor,
        _dk: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (_, _, h, w) = x.dims4()?;
        let (p, s) = (self.padding, self.stride);
        let dx = if x.track_op() {
            Some(input_grad(g, grad, p, s, (h, w))?)
        } else {
            None
        };
        let dg = if g.track_op() {
            Some(conv2d(x, grad, p, s)?)
        } else {
            None
        };
        Ok((dx, dg))
    }
}
