//! A residual BasicBlock during training, `relu(BN₂(conv₂(relu(BN₁(conv₁(x))))) + skip(x))`
//! with batch statistics, as one CPU op.
//!
//! As two [`conv_batch_norm_train`](super::conv_batch_norm_train) ops the block's inner
//! activation and its input each received their gradients through candle's gradient
//! store, which starts every gradient as a zero tensor and adds each contribution as a
//! new tensor: per block two zero fills and three sums of activation size, on the
//! calling thread (candle's elementwise ops run single-threaded here, see the CLI's
//! runtime), while rayon's threads wait. Here the inner gradient never leaves the op and
//! the input's two contributions (through `conv₁` and through the shortcut) are summed in
//! place, so candle sees one gradient per block. The kernels are those of the two-op
//! form ([`kernels`], [`batch_norm`](crate::cpu_ops::batch_norm)), run in the same order,
//! so values and gradients are the same up to the order of that last sum.
//!
//! `skip` is the identity or ResNet's option-A shortcut (`x[:, :, ::2, ::2]` padded with
//! `pad` zero channels on each side). Arguments: `(x, [K₁, γ₁, β₁, K₂, γ₂, β₂])`. The
//! backward is first-order, like the two-op form's.

use std::sync::{Arc, OnceLock};

use candle_core::{bail, CpuStorage, Device, Error, Result, Shape, Tensor, WithDType};

use super::kernels::{self, Geometry, Input};
use super::Conv;
use crate::cpu_ops::batch_norm::{self as bn, Act, Dims, Stats};
use rayon::prelude::*;

use crate::cpu_ops::custom::{apply2, grad_if, Arg, Cpu, CpuOp, PIECE_VALUES};

/// One convolution of the block with its batch norm: kernel, `γ`, `β` and geometry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConvBn<'a> {
    pub kernel: &'a Tensor,
    pub gamma: &'a Tensor,
    pub beta: &'a Tensor,
    /// `(padding, stride)` of the convolution.
    pub conv: (usize, usize),
}

/// A block's output and each batch norm's batch mean and biased variance `(C,)` (for the
/// running-statistics update; they carry no gradient).
pub(crate) type BlockOutput = (Tensor, [(Tensor, Tensor); 2]);

/// The block on `x` ([`BlockOutput`]). `shortcut_pad`: `None` for the identity shortcut,
/// `Some(p)` for option A. CPU, f32 or f64.
pub(crate) fn residual_block_train(
    x: &Tensor,
    [first, second]: [ConvBn; 2],
    shortcut_pad: Option<usize>,
    eps: f64,
) -> Result<BlockOutput> {
    let mut pieces = Vec::with_capacity(6);
    let mut kernels = [[0; 4]; 2];
    for (layer, shape) in [first, second].iter().zip(&mut kernels) {
        *shape = layer.kernel.dims4()?.into();
        if layer.gamma.dims() != [shape[0]] || layer.beta.dims() != [shape[0]] {
            bail!(
                "residual block: affine parameters of shapes {:?} and {:?} after a convolution with {} outputs",
                layer.gamma.dims(),
                layer.beta.dims(),
                shape[0]
            )
        }
        pieces.extend([
            layer.kernel.flatten_all()?,
            layer.gamma.clone(),
            layer.beta.clone(),
        ]);
    }
    let params = Tensor::cat(&pieces, 0)?;
    let conv = |(padding, stride)| Conv { padding, stride };
    let saved = Arc::new(OnceLock::new());
    let op = ResidualBlock {
        convs: [conv(first.conv), conv(second.conv)],
        kernels,
        shortcut_pad,
        eps,
        saved: Arc::clone(&saved),
    };
    let out = apply2(op, x, &params)?;
    let saved = forward_state(&saved)?;
    let channel =
        |values: &[f64]| Tensor::from_slice(values, values.len(), x.device())?.to_dtype(x.dtype());
    let stats =
        |s: &Stats| -> Result<(Tensor, Tensor)> { Ok((channel(&s.mean)?, channel(&s.var)?)) };
    Ok((out, [stats(&saved.stats[0])?, stats(&saved.stats[1])?]))
}

/// What the forward pass keeps: each convolution's output `y`, the inner activation `h`
/// (the second convolution's input) and the batch statistics.
struct Saved {
    y: [CpuStorage; 2],
    inner: CpuStorage,
    dims: [Dims; 2],
    stats: [Stats; 2],
}

fn forward_state(saved: &OnceLock<Saved>) -> Result<&Saved> {
    saved
        .get()
        .ok_or_else(|| Error::Msg("residual block: backward pass before the forward pass".into()))
}

/// The op: see the module doc.
struct ResidualBlock {
    convs: [Conv; 2],
    kernels: [[usize; 4]; 2],
    shortcut_pad: Option<usize>,
    eps: f64,
    saved: Arc<OnceLock<Saved>>,
}

/// `(K, [γ, β])` of each convolution within the flattened parameters.
type Split<'a, T> = [(&'a [T], &'a [T]); 2];

impl ResidualBlock {
    fn split<'a, T>(&self, params: &'a [T]) -> Result<Split<'a, T>> {
        let sizes = self.kernels.map(|k| k.iter().product::<usize>());
        let expected: usize = sizes
            .iter()
            .zip(&self.kernels)
            .map(|(s, k)| s + 2 * k[0])
            .sum();
        if params.len() != expected {
            bail!(
                "residual block: {} parameters for kernels of shapes {:?}",
                params.len(),
                self.kernels
            )
        }
        let (first, second) = params.split_at(sizes[0] + 2 * self.kernels[0][0]);
        Ok([first.split_at(sizes[0]), second.split_at(sizes[1])])
    }

    fn geometries(&self, x_dims: &[usize]) -> Result<[Geometry; 2]> {
        let first = self.convs[0].geometry(x_dims, &self.kernels[0])?;
        let second = self.convs[1].geometry(&first.y_dims(), &self.kernels[1])?;
        Ok([first, second])
    }

    /// The shortcut of `x` (of dims `x_dims`), shaped like the block's output `out_dims`.
    fn skip<'a, T: WithDType>(
        &self,
        x: &'a [T],
        x_dims: [usize; 4],
        out_dims: [usize; 4],
    ) -> Result<std::borrow::Cow<'a, [T]>> {
        let expected = match self.shortcut_pad {
            None => x_dims,
            Some(pad) => {
                let [n, c, h, w] = x_dims;
                [n, c + 2 * pad, h.div_ceil(2), w.div_ceil(2)]
            }
        };
        if expected != out_dims {
            bail!("residual block: shortcut of shape {expected:?} for an output of shape {out_dims:?}")
        }
        Ok(match self.shortcut_pad {
            None => x.into(),
            Some(pad) => shortcut_a(x, x_dims, pad).into(),
        })
    }
}

/// Option A: `s[n, p + c, i, j] = x[n, c, 2i, 2j]`, zero in the `p` channels on each side.
fn shortcut_a<T: WithDType>(x: &[T], [n, c, h, w]: [usize; 4], pad: usize) -> Vec<T> {
    let (ho, wo) = (h.div_ceil(2), w.div_ceil(2));
    let mut s = vec![T::zero(); n * (c + 2 * pad) * ho * wo];
    for (i, sample) in s.chunks_exact_mut((c + 2 * pad) * ho * wo).enumerate() {
        for ch in 0..c {
            let plane = &x[(i * c + ch) * h * w..][..h * w];
            let out = &mut sample[(pad + ch) * ho * wo..][..ho * wo];
            for (row, dst) in plane
                .chunks_exact(w)
                .step_by(2)
                .zip(out.chunks_exact_mut(wo))
            {
                for (d, v) in dst.iter_mut().zip(row.iter().step_by(2)) {
                    *d = *v;
                }
            }
        }
    }
    s
}

/// The adjoint of [`shortcut_a`] added onto `dx`: `dx[n, c, 2i, 2j] += g[n, p + c, i, j]`.
fn add_shortcut_a_adjoint<T: WithDType>(
    dx: &mut [T],
    g: &[T],
    [n, c, h, w]: [usize; 4],
    pad: usize,
) {
    let (ho, wo) = (h.div_ceil(2), w.div_ceil(2));
    for i in 0..n {
        for ch in 0..c {
            let plane = &mut dx[(i * c + ch) * h * w..][..h * w];
            let src = &g[((i * (c + 2 * pad)) + pad + ch) * ho * wo..][..ho * wo];
            for (row, values) in plane
                .chunks_exact_mut(w)
                .step_by(2)
                .zip(src.chunks_exact(wo))
            {
                for (d, v) in row.iter_mut().step_by(2).zip(values) {
                    *d += *v;
                }
            }
        }
    }
}

impl CpuOp<2> for ResidualBlock {
    const NAME: &'static str = "saddlescope-residual-block-train";

    fn run<T: WithDType>(&self, [x, params]: [Arg<'_, T>; 2]) -> Result<(Vec<T>, Shape)> {
        let x_dims: [usize; 4] = match x.dims() {
            &[n, c, h, w] => [n, c, h, w],
            other => bail!("residual block: input of shape {other:?}, expected (N, C, H, W)"),
        };
        let [g1, g2] = self.geometries(&x_dims)?;
        let dims = [
            Dims::new(Act::Relu, g1.y_dims())?,
            Dims::new(Act::AddRelu, g2.y_dims())?,
        ];
        let params = params.dense()?;
        let [(k1, affine1), (k2, affine2)] = self.split(&params)?;
        let x = x.dense()?;
        let (y1, moments1) = kernels::forward_moments(&g1, Input::single(&x), k1)?;
        let (inner, stats1) = bn::forward(&dims[0], (&y1, &moments1), affine1, None, self.eps)?;
        let (y2, moments2) = kernels::forward_moments(&g2, Input::single(&inner), k2)?;
        let skip = self.skip(&x, x_dims, g2.y_dims())?;
        let (out, stats2) =
            bn::forward(&dims[1], (&y2, &moments2), affine2, Some(&skip), self.eps)?;
        let saved = Saved {
            y: [T::to_cpu_storage_owned(y1), T::to_cpu_storage_owned(y2)],
            inner: T::to_cpu_storage_owned(inner),
            dims,
            stats: [stats1, stats2],
        };
        self.saved
            .set(saved)
            .map_err(|_| Error::Msg("residual block: forward pass run twice".into()))?;
        Ok((out, Shape::from(g2.y_dims().to_vec())))
    }

    fn backward(
        &self,
        [x, params]: [&Tensor; 2],
        _out: &Tensor,
        grad: &Tensor,
    ) -> Result<[Option<Tensor>; 2]> {
        let param_grad = Arc::new(OnceLock::new());
        let op = Cpu(ResidualBlockGrad {
            block: ResidualBlock {
                convs: self.convs,
                kernels: self.kernels,
                shortcut_pad: self.shortcut_pad,
                eps: self.eps,
                saved: Arc::clone(&self.saved),
            },
            input_grad: x.track_op(),
            param_grad: Arc::clone(&param_grad),
        });
        let dx = grad.apply_op3_no_bwd(x, params, &op)?;
        let dparams = param_grad.get().cloned().ok_or_else(|| {
            Error::Msg("residual block: the backward pass left no gradient".into())
        })?;
        Ok([
            grad_if(x, || dx.reshape(x.shape()))?,
            grad_if(params, || Ok(dparams))?,
        ])
    }
}

/// The gradients of [`ResidualBlock`] from the output gradient: arguments
/// `(g, x, params)`. Returns `∂x` (empty unless `input_grad`) and leaves `∂params` in
/// `param_grad`.
struct ResidualBlockGrad {
    block: ResidualBlock,
    input_grad: bool,
    param_grad: Arc<OnceLock<Tensor>>,
}

impl CpuOp<3> for ResidualBlockGrad {
    const NAME: &'static str = "saddlescope-residual-block-train-grad";

    fn run<T: WithDType>(&self, [g, x, params]: [Arg<'_, T>; 3]) -> Result<(Vec<T>, Shape)> {
        let block = &self.block;
        let saved = forward_state(&block.saved)?;
        let x_dims: [usize; 4] = match x.dims() {
            &[n, c, h, w] => [n, c, h, w],
            other => bail!("residual block: input of shape {other:?}, expected (N, C, H, W)"),
        };
        let [g1, g2] = block.geometries(&x_dims)?;
        let [y1, y2] = [&saved.y[0], &saved.y[1]].map(T::cpu_storage_as_slice);
        let (y1, y2, inner) = (y1?, y2?, T::cpu_storage_as_slice(&saved.inner)?);
        let params = params.dense()?;
        let [(k1, _), (k2, _)] = block.split(&params)?;
        let x = x.dense()?;
        let skip = block.skip(&x, x_dims, g2.y_dims())?;
        // Through the residual's ReLU: the gradient of the shortcut and of BN₂'s output.
        let h = bn::residual_mask(&saved.dims[1], &saved.stats[1], (&g.dense()?, y2, &skip))?;
        let (dy2, daffine2) = bn::backward(&saved.dims[1], &saved.stats[1], &h, y2)?;
        let (dk2, Some(d_inner)) = kernels::gradients(&g2, Input::single(inner), &dy2, k2, true)?
        else {
            bail!("residual block: the inner activation got no gradient")
        };
        let (dy1, daffine1) = bn::backward(&saved.dims[0], &saved.stats[0], &d_inner, y1)?;
        let (dk1, dx) = kernels::gradients(&g1, Input::single(&x), &dy1, k1, self.input_grad)?;
        let mut dparams = dk1;
        dparams.extend(daffine1);
        dparams.extend(dk2);
        dparams.extend(daffine2);
        let len = dparams.len();
        self.param_grad
            .set(Tensor::from_vec(dparams, len, &Device::Cpu)?)
            .map_err(|_| Error::Msg("residual block: backward pass run twice".into()))?;
        let Some(mut dx) = dx else {
            return Ok((Vec::new(), Shape::from(0)));
        };
        match block.shortcut_pad {
            None => add_in_place(&mut dx, &h),
            Some(pad) => add_shortcut_a_adjoint(&mut dx, &h, x_dims, pad),
        }
        let len = dx.len();
        Ok((dx, Shape::from(len)))
    }
}

/// `a += b`, in parallel pieces.
fn add_in_place<T: WithDType>(a: &mut [T], b: &[T]) {
    a.par_chunks_mut(PIECE_VALUES)
        .zip(b.par_chunks(PIECE_VALUES))
        .for_each(|(a, b)| {
            for (a, &b) in a.iter_mut().zip(b) {
                *a += b;
            }
        });
}

#[cfg(test)]
mod tests;
