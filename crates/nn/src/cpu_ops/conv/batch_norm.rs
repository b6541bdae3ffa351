//! A convolution followed by train-mode batch normalization and its epilogue (ReLU, ReLU
//! and 2×2 average pooling, or a residual sum and ReLU) as one CPU op: every
//! `conv → BN → …` of the models during training.
//!
//! Composed from candle ops the batch norm alone was ~15 ops whose backward reduced over
//! the non-contiguous axes `(0, 2, 3)` several times (~60% of a CNN training step), and
//! every separate op between the convolution and the next layer costs passes of its own
//! plus candle's gradient accumulation (a zero tensor and a sum per gradient). Here the
//! convolution's output `y` never becomes a tensor of the graph: the op keeps it for its
//! backward pass, which goes from the output gradient through the epilogue and the batch
//! norm ([`batch_norm`](crate::cpu_ops::batch_norm)) to `∂y`, then to the convolution's
//! input and kernel gradients in the same call.
//!
//! Arguments: `(x, [K, γ, β])` (kernel and affine parameters flattened into one tensor,
//! as candle's custom ops take at most three), plus the residual `skip` for the residual
//! epilogue. The forward pass keeps `y` and the batch statistics (also for the caller's
//! running-statistics update). The backward is a first-order op that nothing
//! differentiates again: callers that need second derivatives compose the layer instead
//! (see `ops::conv_batch_norm_train`).

use std::sync::{Arc, OnceLock};

use candle_core::{bail, CpuStorage, Device, Error, Result, Shape, Tensor, WithDType};

use super::kernels::{self, Geometry, Input};
use super::Conv;
use crate::cpu_ops::batch_norm::{self as bn, Act, Dims, Stats};
use crate::cpu_ops::custom::{apply2, apply3, grad_if, Arg, Cpu, CpuOp};

/// What follows the batch norm inside the fused op.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Epilogue<'a> {
    /// The normalized values `z` themselves.
    Identity,
    /// `relu(z)`.
    Relu,
    /// `avg_pool2(relu(z))`: 2×2 windows, stride 2, odd last rows and columns dropped.
    ReluPool2,
    /// `relu(z + skip)`, `skip` of the convolution output's shape (a residual block's end).
    AddRelu(&'a Tensor),
}

/// `epilogue(BN(conv(x, k)))` with batch statistics (padding and stride of the
/// convolution as given, `eps` of the batch norm), and those statistics: the per-channel
/// mean and biased variance `(C_out,)` in `x`'s dtype, for the running-statistics update
/// (they carry no gradient). CPU, f32 or f64.
pub(crate) fn conv_batch_norm_train(
    (x, k): (&Tensor, &Tensor),
    (padding, stride): (usize, usize),
    (gamma, beta): (&Tensor, &Tensor),
    eps: f64,
    epilogue: Epilogue,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (c_out, c_in, kh, kw) = k.dims4()?;
    if gamma.dims() != [c_out] || beta.dims() != [c_out] {
        bail!(
            "batch norm: affine parameters of shapes {:?} and {:?} after a convolution with {c_out} outputs",
            gamma.dims(),
            beta.dims()
        )
    }
    let params = Tensor::cat(&[&k.flatten_all()?, gamma, beta], 0)?;
    let saved = Arc::new(OnceLock::new());
    let op = |act| ConvBatchNorm {
        conv: Conv { padding, stride },
        kernel: [c_out, c_in, kh, kw],
        eps,
        act,
        saved: Arc::clone(&saved),
    };
    let out = match epilogue {
        Epilogue::Identity => apply2(op(Act::Identity), x, &params)?,
        Epilogue::Relu => apply2(op(Act::Relu), x, &params)?,
        Epilogue::ReluPool2 => apply2(op(Act::ReluPool2), x, &params)?,
        Epilogue::AddRelu(skip) => apply3(op(Act::AddRelu), x, &params, skip)?,
    };
    let saved = forward_state(&saved)?;
    let channel =
        |values: &[f64]| Tensor::from_slice(values, values.len(), x.device())?.to_dtype(x.dtype());
    Ok((out, channel(&saved.stats.mean)?, channel(&saved.stats.var)?))
}

/// What the forward pass keeps for the backward pass: the convolution's output and the
/// batch statistics.
struct Saved {
    y: CpuStorage,
    dims: Dims,
    stats: Stats,
}

/// The state a forward pass left, or an error if there was none.
fn forward_state(saved: &OnceLock<Saved>) -> Result<&Saved> {
    match saved.get() {
        Some(saved) => Ok(saved),
        None => bail!("batch norm: backward pass before the forward pass"),
    }
}

/// `epilogue(BN(conv(x, K)))`: arguments `(x, [K, γ, β])`, or `(x, [K, γ, β], skip)` for
/// [`Act::AddRelu`].
struct ConvBatchNorm {
    conv: Conv,
    kernel: [usize; 4],
    eps: f64,
    act: Act,
    /// Set by the forward pass.
    saved: Arc<OnceLock<Saved>>,
}

impl ConvBatchNorm {
    /// The kernel and `[γ, β]` within the flattened parameters.
    fn split<'a, T>(&self, params: &'a [T]) -> Result<(&'a [T], &'a [T])> {
        let len: usize = self.kernel.iter().product();
        if params.len() != len + 2 * self.kernel[0] {
            bail!(
                "conv2d + batch norm: {} parameters for a kernel of shape {:?}",
                params.len(),
                self.kernel
            )
        }
        Ok(params.split_at(len))
    }

    fn forward<T: WithDType>(
        &self,
        x: Arg<'_, T>,
        params: Arg<'_, T>,
        skip: Option<Arg<'_, T>>,
    ) -> Result<(Vec<T>, Shape)> {
        let g = self.conv.geometry(x.dims(), &self.kernel)?;
        let dims = Dims::new(self.act, g.y_dims())?;
        if let Some(skip) = skip {
            if skip.dims() != g.y_dims() {
                bail!(
                    "batch norm: residual of shape {:?} for an output of shape {:?}",
                    skip.dims(),
                    g.y_dims()
                )
            }
        }
        let params = params.dense()?;
        let (k, affine) = self.split(&params)?;
        let (y, moments) = kernels::forward_moments(&g, Input::single(&x.dense()?), k)?;
        let skip = skip.map(|s| s.dense()).transpose()?;
        let (out, stats) = bn::forward(&dims, (&y, &moments), affine, skip.as_deref(), self.eps)?;
        let saved = Saved {
            y: T::to_cpu_storage_owned(y),
            dims,
            stats,
        };
        self.saved
            .set(saved)
            .map_err(|_| Error::Msg("batch norm: forward pass run twice".into()))?;
        Ok((out, Shape::from(dims.out_dims())))
    }

    /// The gradients of `x` and `[K, γ, β]` from `h`, the output gradient through the
    /// epilogue's mask (for a residual epilogue; the output gradient itself otherwise).
    fn gradients(
        &self,
        x: &Tensor,
        params: &Tensor,
        h: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let param_grad = Arc::new(OnceLock::new());
        let op = Cpu(ConvBatchNormGrad {
            conv: self.conv,
            kernel: self.kernel,
            input_grad: x.track_op(),
            saved: Arc::clone(&self.saved),
            param_grad: Arc::clone(&param_grad),
        });
        let dx = h.apply_op3_no_bwd(x, params, &op)?;
        let dparams = param_grad
            .get()
            .cloned()
            .ok_or_else(|| Error::Msg("batch norm: the backward pass left no gradient".into()))?;
        Ok((
            grad_if(x, || dx.reshape(x.shape()))?,
            grad_if(params, || Ok(dparams))?,
        ))
    }
}

impl CpuOp<2> for ConvBatchNorm {
    const NAME: &'static str = "saddlescope-conv2d-batch-norm-train";

    fn run<T: WithDType>(&self, [x, params]: [Arg<'_, T>; 2]) -> Result<(Vec<T>, Shape)> {
        self.forward(x, params, None)
    }

    fn backward(
        &self,
        [x, params]: [&Tensor; 2],
        _out: &Tensor,
        grad: &Tensor,
    ) -> Result<[Option<Tensor>; 2]> {
        let (dx, dparams) = self.gradients(x, params, grad)?;
        Ok([dx, dparams])
    }
}

impl CpuOp<3> for ConvBatchNorm {
    const NAME: &'static str = "saddlescope-conv2d-batch-norm-add-relu-train";

    fn run<T: WithDType>(&self, [x, params, skip]: [Arg<'_, T>; 3]) -> Result<(Vec<T>, Shape)> {
        self.forward(x, params, Some(skip))
    }

    /// `h = grad ⊙ 1[z + skip ≥ 0]` is the residual's gradient and goes on through the
    /// batch norm and the convolution.
    fn backward(
        &self,
        [x, params, skip]: [&Tensor; 3],
        _out: &Tensor,
        grad: &Tensor,
    ) -> Result<[Option<Tensor>; 3]> {
        let mask = Cpu(ResidualMask {
            saved: Arc::clone(&self.saved),
        });
        let h = grad.apply_op2_no_bwd(skip, &mask)?;
        let (dx, dparams) = self.gradients(x, params, &h)?;
        Ok([dx, dparams, grad_if(skip, || Ok(h))?])
    }
}

/// `h = g ⊙ 1[z + skip ≥ 0]` with the forward pass's `y` and statistics: arguments
/// `(g, skip)`. No gradient of its own (see the module doc).
struct ResidualMask {
    saved: Arc<OnceLock<Saved>>,
}

impl CpuOp<2> for ResidualMask {
    const NAME: &'static str = "saddlescope-batch-norm-residual-mask";

    fn run<T: WithDType>(&self, [g, skip]: [Arg<'_, T>; 2]) -> Result<(Vec<T>, Shape)> {
        let saved = forward_state(&self.saved)?;
        let y = T::cpu_storage_as_slice(&saved.y)?;
        let h = bn::residual_mask(&saved.dims, &saved.stats, (&g.dense()?, y, &skip.dense()?))?;
        Ok((h, Shape::from(g.dims())))
    }
}

/// The gradients of [`ConvBatchNorm`] from `h`: arguments `(h, x, [K, γ, β])`. Returns
/// `∂x` (empty unless `input_grad`) and leaves `∂[K, γ, β]` in `param_grad`. First order
/// only (see the module doc).
struct ConvBatchNormGrad {
    conv: Conv,
    kernel: [usize; 4],
    input_grad: bool,
    saved: Arc<OnceLock<Saved>>,
    param_grad: Arc<OnceLock<Tensor>>,
}

impl CpuOp<3> for ConvBatchNormGrad {
    const NAME: &'static str = "saddlescope-conv2d-batch-norm-train-grad";

    fn run<T: WithDType>(&self, [h, x, params]: [Arg<'_, T>; 3]) -> Result<(Vec<T>, Shape)> {
        let saved = forward_state(&self.saved)?;
        let g: Geometry = self.conv.geometry(x.dims(), &self.kernel)?;
        let y = T::cpu_storage_as_slice(&saved.y)?;
        let (dy, daffine) = bn::backward(&saved.dims, &saved.stats, &h.dense()?, y)?;
        let params = params.dense()?;
        let k = &params[..params.len() - daffine.len()];
        let x = x.dense()?;
        let (mut dparams, dx) =
            kernels::gradients(&g, Input::single(&x), &dy, k, (self.input_grad, None))?;
        dparams.extend_from_slice(&daffine);
        let len = dparams.len();
        self.param_grad
            .set(Tensor::from_vec(dparams, len, &Device::Cpu)?)
            .map_err(|_| Error::Msg("batch norm: backward pass run twice".into()))?;
        let Some(dx) = dx else {
            return Ok((Vec::new(), Shape::from(0)));
        };
        let len = dx.len();
        Ok((dx, Shape::from(len)))
    }
}

#[cfg(test)]
mod tests;
