//! A chain of residual BasicBlocks during training, each
//! `relu(BN₂(conv₂(relu(BN₁(conv₁(x))))) + skip(x))` with batch statistics, as one CPU op.
//!
//! As separate ops (two `conv_batch_norm_train` per block, then one op per block) every
//! activation received its gradient through candle's gradient store, which starts each
//! gradient as a zero tensor and adds each contribution as a new tensor, on the calling
//! thread (candle's elementwise ops run single-threaded here, see the CLI's runtime) while
//! rayon's threads wait. With one op per block that was still a zero fill and a sum of
//! activation size per block: 7% of a ResNet-32 train step's wall time. Here the
//! gradients between blocks never leave the op, and within a block the input's two
//! contributions (through `conv₁` and through the shortcut) are summed in place (the
//! identity shortcut's added to each chunk of `conv₁`'s input gradient while it is in
//! cache), so candle sees one gradient per chain. The kernels are those of the two-op form ([`kernels`],
//! [`batch_norm`](crate::cpu_ops::batch_norm)), run in the same order, so values and
//! gradients are the same up to the order of that last sum, and a chain gives the bits of
//! its blocks applied one by one.
//!
//! `skip` is the identity or ResNet's option-A shortcut (`x[:, :, ::2, ::2]` padded with
//! `pad` zero channels on each side). Arguments: `(x, params)`, `params` the blocks'
//! `[K₁, γ₁, β₁, K₂, γ₂, β₂]` one after the other. The backward is first-order, like the
//! two-op form's.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use candle_core::{bail, CpuStorage, Device, Error, Result, Shape, Tensor, WithDType};

use super::kernels::{self, Geometry, Input};
use super::Conv;
use crate::cpu_ops::batch_norm::{self as bn, Act, Dims, Normalize, Stats};
use rayon::prelude::*;

use crate::cpu_ops::custom::{apply2, grad_if, Arg, Cpu, CpuOp};

/// One convolution of a block with its batch norm: kernel, `γ`, `β` and geometry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConvBn<'a> {
    pub kernel: &'a Tensor,
    pub gamma: &'a Tensor,
    pub beta: &'a Tensor,
    /// `(padding, stride)` of the convolution.
    pub conv: (usize, usize),
}

/// One block of a chain: its two convolutions with their batch norms, and its shortcut.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Block<'a> {
    pub layers: [ConvBn<'a>; 2],
    /// `None` for the identity shortcut, `Some(p)` for option A with `p` zero channels on
    /// each side.
    pub shortcut_pad: Option<usize>,
}

/// Each batch norm's batch mean and biased variance `(C,)` of one block (for the
/// running-statistics update; they carry no gradient).
pub(crate) type BlockStats = [(Tensor, Tensor); 2];

/// The chain on `x`: its output and every block's [`BlockStats`], in order. CPU, f32 or
/// f64.
pub(crate) fn residual_blocks_train(
    x: &Tensor,
    blocks: &[Block],
    eps: f64,
) -> Result<(Tensor, Vec<BlockStats>)> {
    if blocks.is_empty() {
        bail!("residual blocks: an empty chain")
    }
    let mut pieces = Vec::with_capacity(6 * blocks.len());
    let mut shapes = Vec::with_capacity(blocks.len());
    for block in blocks {
        let mut kernels = [[0; 4]; 2];
        for (layer, shape) in block.layers.iter().zip(&mut kernels) {
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
        let conv = |layer: &ConvBn| Conv {
            padding: layer.conv.0,
            stride: layer.conv.1,
        };
        shapes.push(BlockShape {
            convs: [conv(&block.layers[0]), conv(&block.layers[1])],
            kernels,
            shortcut_pad: block.shortcut_pad,
        });
    }
    let params = Tensor::cat(&pieces, 0)?;
    let saved = Arc::new(OnceLock::new());
    let op = ResidualChain {
        blocks: shapes,
        eps,
        saved: Arc::clone(&saved),
    };
    let out = apply2(op, x, &params)?;
    let channel =
        |values: &[f64]| Tensor::from_slice(values, values.len(), x.device())?.to_dtype(x.dtype());
    let stats =
        |s: &Stats| -> Result<(Tensor, Tensor)> { Ok((channel(&s.mean)?, channel(&s.var)?)) };
    let stats = forward_state(&saved)?
        .iter()
        .map(|s| Ok([stats(&s.stats[0])?, stats(&s.stats[1])?]))
        .collect::<Result<_>>()?;
    Ok((out, stats))
}

/// What the forward pass keeps of one block: its input (unless it is the chain's, which
/// candle keeps) and the input's dims, each convolution's output `y` and the batch
/// statistics. The inner activation `relu(BN₁(y₁))` is never stored: the second
/// convolution reads it from `y₁` ([`Input::relu_normalized`]), forward and backward.
struct Saved {
    input: Option<CpuStorage>,
    x_dims: [usize; 4],
    y: [CpuStorage; 2],
    dims: [Dims; 2],
    stats: [Stats; 2],
}

fn forward_state(saved: &OnceLock<Vec<Saved>>) -> Result<&[Saved]> {
    saved
        .get()
        .map(Vec::as_slice)
        .ok_or_else(|| Error::Msg("residual blocks: backward pass before the forward pass".into()))
}

fn four_dims(dims: &[usize]) -> Result<[usize; 4]> {
    match dims {
        &[n, c, h, w] => Ok([n, c, h, w]),
        other => bail!("residual block: input of shape {other:?}, expected (N, C, H, W)"),
    }
}

/// A block's kernel shapes, convolution geometries and shortcut: what its kernels need
/// besides the values.
#[derive(Clone, Copy, Debug)]
struct BlockShape {
    convs: [Conv; 2],
    kernels: [[usize; 4]; 2],
    shortcut_pad: Option<usize>,
}

/// `(K, [γ, β])` of each convolution within a block's flattened parameters.
type Split<'a, T> = [(&'a [T], &'a [T]); 2];

/// A block's parameter gradients (in the order of its parameters) and, when asked for,
/// its input's gradient.
type BlockGrads<T> = (Vec<T>, Option<Vec<T>>);

impl BlockShape {
    /// The kernels' sizes and the length of the block's flattened parameters.
    fn sizes(&self) -> ([usize; 2], usize) {
        let sizes = self.kernels.map(|k| k.iter().product::<usize>());
        let len = sizes
            .iter()
            .zip(&self.kernels)
            .map(|(s, k)| s + 2 * k[0])
            .sum();
        (sizes, len)
    }

    fn split<'a, T>(&self, params: &'a [T]) -> Split<'a, T> {
        let (sizes, _) = self.sizes();
        let (first, second) = params.split_at(sizes[0] + 2 * self.kernels[0][0]);
        [first.split_at(sizes[0]), second.split_at(sizes[1])]
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
    ) -> Result<Cow<'a, [T]>> {
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

    /// The block's output on `x` and what its backward pass needs (`input` left empty).
    fn forward<T: WithDType>(
        &self,
        x: &[T],
        x_dims: [usize; 4],
        params: &[T],
        eps: f64,
    ) -> Result<(Vec<T>, Saved)> {
        let [g1, g2] = self.geometries(&x_dims)?;
        let dims = [
            Dims::new(Act::Relu, g1.y_dims())?,
            Dims::new(Act::AddRelu, g2.y_dims())?,
        ];
        let [(k1, affine1), (k2, affine2)] = self.split(params);
        let (y1, moments1) = kernels::forward_moments(&g1, Input::single(x), k1)?;
        let stats1 = bn::batch_statistics(&dims[0], &moments1, affine1, eps)?;
        let normalize1 = Normalize::all(&stats1);
        let inner = Input::relu_normalized(&y1, &normalize1);
        let (y2, moments2) = kernels::forward_moments(&g2, inner, k2)?;
        let skip = self.skip(x, x_dims, g2.y_dims())?;
        let (out, stats2) = bn::forward(&dims[1], (&y2, &moments2), affine2, Some(&skip), eps)?;
        let saved = Saved {
            input: None,
            x_dims,
            y: [T::to_cpu_storage_owned(y1), T::to_cpu_storage_owned(y2)],
            dims,
            stats: [stats1, stats2],
        };
        Ok((out, saved))
    }

    /// The block's gradients ([`BlockGrads`]) from its output's gradient `g`.
    fn backward<T: WithDType>(
        &self,
        saved: &Saved,
        (x, params): (&[T], &[T]),
        g: &[T],
        input_grad: bool,
    ) -> Result<BlockGrads<T>> {
        let x_dims = saved.x_dims;
        let [g1, g2] = self.geometries(&x_dims)?;
        let [y1, y2] = [&saved.y[0], &saved.y[1]].map(T::cpu_storage_as_slice);
        let (y1, y2) = (y1?, y2?);
        let normalize1 = Normalize::all(&saved.stats[0]);
        let inner = Input::relu_normalized(y1, &normalize1);
        let [(k1, _), (k2, _)] = self.split(params);
        let skip = self.skip(x, x_dims, g2.y_dims())?;
        // Through the residual's ReLU: the gradient of the shortcut and of BN₂'s output.
        let h = bn::residual_mask(&saved.dims[1], &saved.stats[1], (g, y2, &skip))?;
        let (dy2, daffine2) = bn::backward(&saved.dims[1], &saved.stats[1], &h, y2)?;
        let (dk2, Some(d_inner)) = kernels::gradients(&g2, inner, &dy2, k2, (true, None))? else {
            bail!("residual block: the inner activation got no gradient")
        };
        let (dy1, daffine1) = bn::backward(&saved.dims[0], &saved.stats[0], &d_inner, y1)?;
        // The identity shortcut's gradient `h` is added to `dx` chunk by chunk.
        let identity = self.shortcut_pad.is_none().then_some(&h[..]);
        let (dk1, dx) =
            kernels::gradients(&g1, Input::single(x), &dy1, k1, (input_grad, identity))?;
        let mut dparams = dk1;
        dparams.extend(daffine1);
        dparams.extend(dk2);
        dparams.extend(daffine2);
        let dx = dx.map(|mut dx| {
            if let Some(pad) = self.shortcut_pad {
                add_shortcut_a_adjoint(&mut dx, &h, x_dims, pad);
            }
            dx
        });
        Ok((dparams, dx))
    }
}

/// Option A: `s[n, p + c, i, j] = x[n, c, 2i, 2j]`, zero in the `p` channels on each side;
/// in parallel over samples.
fn shortcut_a<T: WithDType>(x: &[T], [n, c, h, w]: [usize; 4], pad: usize) -> Vec<T> {
    let (ho, wo) = (h.div_ceil(2), w.div_ceil(2));
    let mut s = vec![T::zero(); n * (c + 2 * pad) * ho * wo];
    s.par_chunks_exact_mut((c + 2 * pad) * ho * wo)
        .zip(x.par_chunks_exact(c * h * w))
        .for_each(|(sample, x)| {
            let planes = x.chunks_exact(h * w);
            for (plane, out) in planes.zip(sample[pad * ho * wo..].chunks_exact_mut(ho * wo)) {
                for (i, dst) in out.chunks_exact_mut(wo).enumerate() {
                    let row = &plane[2 * i * w..][..w];
                    for (j, d) in dst.iter_mut().enumerate() {
                        *d = row[2 * j];
                    }
                }
            }
        });
    s
}

/// The adjoint of [`shortcut_a`] added onto `dx`: `dx[n, c, 2i, 2j] += g[n, p + c, i, j]`;
/// in parallel over samples.
fn add_shortcut_a_adjoint<T: WithDType>(
    dx: &mut [T],
    g: &[T],
    [_, c, h, w]: [usize; 4],
    pad: usize,
) {
    let (ho, wo) = (h.div_ceil(2), w.div_ceil(2));
    dx.par_chunks_exact_mut(c * h * w)
        .zip(g.par_chunks_exact((c + 2 * pad) * ho * wo))
        .for_each(|(dx, g)| {
            let sources = g[pad * ho * wo..].chunks_exact(ho * wo);
            for (plane, src) in dx.chunks_exact_mut(h * w).zip(sources) {
                for (i, values) in src.chunks_exact(wo).enumerate() {
                    let row = &mut plane[2 * i * w..][..w];
                    for (j, v) in values.iter().enumerate() {
                        row[2 * j] += *v;
                    }
                }
            }
        });
}

/// The op: see the module doc.
struct ResidualChain {
    blocks: Vec<BlockShape>,
    eps: f64,
    saved: Arc<OnceLock<Vec<Saved>>>,
}

impl ResidualChain {
    /// Each block's slice of the chain's flattened parameters.
    fn split_blocks<'a, T>(&self, params: &'a [T]) -> Result<Vec<&'a [T]>> {
        let expected: usize = self.blocks.iter().map(|b| b.sizes().1).sum();
        if params.len() != expected {
            let kernels: Vec<_> = self.blocks.iter().map(|b| b.kernels).collect();
            bail!(
                "residual blocks: {} parameters for kernels of shapes {kernels:?}",
                params.len()
            )
        }
        let mut rest = params;
        Ok(self
            .blocks
            .iter()
            .map(|b| {
                let (mine, after) = rest.split_at(b.sizes().1);
                rest = after;
                mine
            })
            .collect())
    }
}

impl CpuOp<2> for ResidualChain {
    const NAME: &'static str = "saddlescope-residual-blocks-train";

    fn run<T: WithDType>(&self, [x, params]: [Arg<'_, T>; 2]) -> Result<(Vec<T>, Shape)> {
        let mut dims = four_dims(x.dims())?;
        let params = params.dense()?;
        let params = self.split_blocks(&params)?;
        let first = x.dense()?;
        let mut input: Option<Vec<T>> = None;
        let mut saved = Vec::with_capacity(self.blocks.len());
        for (block, params) in self.blocks.iter().zip(params) {
            let x = input.as_deref().unwrap_or(&first);
            let (out, mut state) = block.forward(x, dims, params, self.eps)?;
            let d = state.dims[1];
            dims = [d.n, d.c, d.h, d.w];
            state.input = input.take().map(T::to_cpu_storage_owned);
            saved.push(state);
            input = Some(out);
        }
        self.saved
            .set(saved)
            .map_err(|_| Error::Msg("residual blocks: forward pass run twice".into()))?;
        let out = input.unwrap_or_default();
        Ok((out, Shape::from(dims.to_vec())))
    }

    fn backward(
        &self,
        [x, params]: [&Tensor; 2],
        _out: &Tensor,
        grad: &Tensor,
    ) -> Result<[Option<Tensor>; 2]> {
        let param_grad = Arc::new(OnceLock::new());
        let op = Cpu(ResidualChainGrad {
            chain: ResidualChain {
                blocks: self.blocks.clone(),
                eps: self.eps,
                saved: Arc::clone(&self.saved),
            },
            input_grad: x.track_op(),
            param_grad: Arc::clone(&param_grad),
        });
        let dx = grad.apply_op3_no_bwd(x, params, &op)?;
        let dparams = param_grad.get().cloned().ok_or_else(|| {
            Error::Msg("residual blocks: the backward pass left no gradient".into())
        })?;
        Ok([
            grad_if(x, || dx.reshape(x.shape()))?,
            grad_if(params, || Ok(dparams))?,
        ])
    }
}

/// The gradients of [`ResidualChain`] from the output gradient: arguments
/// `(g, x, params)`. Returns `∂x` (empty unless `input_grad`) and leaves `∂params` in
/// `param_grad`.
struct ResidualChainGrad {
    chain: ResidualChain,
    input_grad: bool,
    param_grad: Arc<OnceLock<Tensor>>,
}

impl CpuOp<3> for ResidualChainGrad {
    const NAME: &'static str = "saddlescope-residual-blocks-train-grad";

    fn run<T: WithDType>(&self, [g, x, params]: [Arg<'_, T>; 3]) -> Result<(Vec<T>, Shape)> {
        let chain = &self.chain;
        let saved = forward_state(&chain.saved)?;
        let params = params.dense()?;
        let params = chain.split_blocks(&params)?;
        let first = x.dense()?;
        let mut grad = g.dense()?;
        let mut block_grads = vec![Vec::new(); chain.blocks.len()];
        for (i, (block, state)) in chain.blocks.iter().zip(saved).enumerate().rev() {
            let x = match &state.input {
                Some(input) => T::cpu_storage_as_slice(input)?,
                None => &first,
            };
            let input_grad = i > 0 || self.input_grad;
            let (dparams, dx) = block.backward(state, (x, params[i]), &grad, input_grad)?;
            block_grads[i] = dparams;
            if let Some(dx) = dx {
                grad = dx.into();
            }
        }
        let dparams = block_grads.concat();
        let len = dparams.len();
        self.param_grad
            .set(Tensor::from_vec(dparams, len, &Device::Cpu)?)
            .map_err(|_| Error::Msg("residual blocks: backward pass run twice".into()))?;
        if !self.input_grad {
            return Ok((Vec::new(), Shape::from(0)));
        }
        let dx = grad.into_owned();
        let len = dx.len();
        Ok((dx, Shape::from(len)))
    }
}

#[cfg(test)]
mod tests;
