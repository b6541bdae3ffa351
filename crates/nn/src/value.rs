//! The value trait every layer, model and loss is written over.
//!
//! A [`Value`] is a tensor that may carry a forward-mode tangent. Two implementations exist:
//! a plain [`Tensor`] (no tangent: the ordinary forward pass used for training and
//! gradients) and [`Dual`](crate::Dual) (primal and tangent: Pearlmutter's R-operator).
//! A model written once over `V: Value` thus computes both the loss `L(w)` and, with dual
//! parameters `(w, v)`, its directional derivative `s(w) = ∇L(w)·v` as an ordinary tracked
//! candle graph; candle's first-order `backward()` of `s` is then exactly `H·v`
//! (reverse-over-forward, see [`hessian`](crate::hessian)).
//!
//! Five primitives carry all the differentiation rules:
//! - [`Value::constant`]: a tensor with zero tangent (inputs, running statistics);
//! - [`Value::unary`]: `y = f(x)` with a tangent rule `jvp(x, y, t)` written in tracked ops
//!   of the primal, so that its own derivative (the Hessian term) is kept;
//! - [`Value::bilinear`]: `f(a, b)` with tangent `f(ta, b) + f(a, tb)` (products, matmul,
//!   convolution);
//! - [`Value::add`]: broadcast sum, tangent `ta + tb`;
//! - [`Value::relu`]: tangent `1[x ≥ 0]·t` with the mask taken from the detached primal,
//!   matching candle's own ReLU gradient (its derivative is zero almost everywhere).
//!
//! Everything else (linear maps, `tanh`, `log_softmax`, normalization, pooling, batch
//! statistics) is composed from them in provided methods below; `conv2d_bias` and
//! `linear_layer` are also overridden by both implementations, which fuse them for speed.
//! Linear maps of activations are named ([`Value::map`] with a [`LinearOp`]) rather than
//! passed as closures, so the linearized HVP ([`linearized`](crate::linearized)), a third
//! implementation that records the pass once and replays only its tangents, knows their
//! transposes; it overrides every provided method the models use.
//!
//! Tangent rules put the tangent first in every op that mixes it with primal values
//! (`t.mul(y)`, not `y.mul(t)`): candle's backward visits an op's arguments in order, and
//! tangent-first graphs are walked layer by layer, so the HVP's backward never holds every
//! layer's primal gradient at once (`tests/hvp_memory.rs`).

use candle_core::{shape::Dims, Result as CResult, Tensor};

use crate::error::Result;
use crate::linear_op::LinearOp;
use crate::ops;

/// A tensor-like value that may carry a forward-mode tangent.
///
/// Implemented by [`Tensor`] (plain forward) and [`Dual`](crate::Dual) (forward with
/// tangent). Closures passed to the primitives are written in candle ops on the primal and
/// must stay tracked (no `detach`) so that second-order terms survive.
pub trait Value: Clone + Send + Sync + Sized {
    /// The primal tensor.
    fn primal(&self) -> &Tensor;

    /// A value whose tangent is zero.
    fn constant(primal: Tensor) -> Self;

    /// The tensor itself for a plain [`Tensor`], `None` for a value that may carry a
    /// tangent: a layer may run a fused op on plain values (train-mode batch norm) and keep
    /// its composed rule, whose tangent follows from the primitives, for the others.
    fn as_plain(&self) -> Option<&Tensor> {
        None
    }

    /// `y = f(x)`, with tangent `jvp(x, y, t)` for a nonzero input tangent `t`.
    fn unary<F, J>(&self, f: F, jvp: J) -> Result<Self>
    where
        F: FnOnce(&Tensor) -> CResult<Tensor>,
        J: FnOnce(&Tensor, &Tensor, &Tensor) -> CResult<Tensor>;

    /// `f(a, b)` for `f` bilinear, with tangent `f(ta, b) + f(a, tb)`.
    fn bilinear<F>(&self, rhs: &Self, f: F) -> Result<Self>
    where
        F: Fn(&Tensor, &Tensor) -> CResult<Tensor>;

    /// Broadcast sum `a + b`, with tangent `ta + tb` (broadcast to the result's shape).
    fn add(&self, rhs: &Self) -> Result<Self>;

    /// `max(x, 0)`, with tangent `1[x ≥ 0]·t`; the mask is a constant taken from the
    /// detached primal (the convention of candle's ReLU gradient, so that `H·v` is the
    /// derivative of the very gradient candle computes).
    fn relu(&self) -> Result<Self> {
        self.unary(ops::relu, |x, _, t| ops::relu_tangent(t, x))
    }

    /// `relu(a + b)` (a residual connection), composed here from [`add`](Value::add) and
    /// [`relu`](Value::relu); [`Dual`](crate::Dual) overrides it to form the tangent
    /// `1[a + b ≥ 0]·(ȧ + ḃ)` in one pass.
    fn add_relu(&self, rhs: &Self) -> Result<Self> {
        self.add(rhs)?.relu()
    }

    /// A linear map applied to primal and tangent alike: `f(x)`, tangent `f(t)`.
    fn linear<F>(&self, f: F) -> Result<Self>
    where
        F: Fn(&Tensor) -> CResult<Tensor>,
    {
        self.unary(&f, |_, _, t| f(t))
    }

    /// A named linear map ([`LinearOp`]) applied to primal and tangent alike.
    fn map(&self, op: &LinearOp) -> Result<Self> {
        self.linear(|t| op.apply(t))
    }

    /// `k·x`.
    fn scale(&self, k: f64) -> Result<Self> {
        self.linear(|t| t.affine(k, 0.0))
    }

    /// Broadcast difference `a − b`.
    fn sub(&self, rhs: &Self) -> Result<Self> {
        self.add(&rhs.scale(-1.0)?)
    }

    /// Broadcast elementwise product `a ⊙ b`.
    fn mul(&self, rhs: &Self) -> Result<Self> {
        self.bilinear(rhs, |a, b| a.broadcast_mul(b))
    }

    /// Matrix product `a · b`.
    fn matmul(&self, rhs: &Self) -> Result<Self> {
        self.bilinear(rhs, ops::matmul)
    }

    /// 2-d convolution of `(N, C_in, H, W)` by a `(C_out, C_in, k, k)` kernel, through the
    /// crate's single convolution routine.
    fn conv2d(&self, kernel: &Self, padding: usize, stride: usize) -> Result<Self> {
        self.bilinear(kernel, |x, k| ops::conv2d(x, k, padding, stride))
    }

    /// `conv2d(x, k) + b` with a per-output-channel shift `b: (C_out,)`, tangent
    /// `conv(ẋ, k) + conv(x, k̇) + ḃ`. Composed here from [`conv2d`](Value::conv2d) and
    /// [`add`](Value::add); [`Tensor`] and [`Dual`](crate::Dual) override it to fuse the
    /// shift (and the tangent's shift) into a convolution's GEMM.
    fn conv2d_bias(
        &self,
        kernel: &Self,
        bias: &Self,
        padding: usize,
        stride: usize,
    ) -> Result<Self> {
        let channels = bias.primal().elem_count();
        self.conv2d(kernel, padding, stride)?
            .add(&bias.reshape(&[1, channels, 1, 1])?)
    }

    /// `x·Wᵀ + b` (a linear layer: `W: (out, in)`, `b: (out,)`), tangent
    /// `ẋ·Wᵀ + x·Ẇᵀ + ḃ`. Composed here from [`matmul`](Value::matmul) and
    /// [`add`](Value::add); [`Tensor`] and [`Dual`](crate::Dual) override it to fuse the
    /// bias into the product's GEMM and to read `W` in place.
    fn linear_layer(&self, weight: &Self, bias: &Self) -> Result<Self> {
        self.matmul(&weight.linear(|w| w.t())?)?.add(bias)
    }

    /// `x²` elementwise, tangent `2x·t`.
    fn square(&self) -> Result<Self> {
        self.unary(|x| x.sqr(), |x, _, t| t.mul(x)?.affine(2.0, 0.0))
    }

    /// `tanh(x)`, tangent `(1 − y²)·t`.
    fn tanh(&self) -> Result<Self> {
        self.unary(|x| x.tanh(), |_, y, t| t.mul(&y.sqr()?.affine(-1.0, 1.0)?))
    }

    /// `(x + eps)^(−1/2)`, tangent `−½ y³·t`.
    fn rsqrt(&self, eps: f64) -> Result<Self> {
        self.unary(
            |x| x.affine(1.0, eps)?.sqrt()?.recip(),
            |_, y, t| t.mul(&y.powf(3.0)?)?.affine(-0.5, 0.0),
        )
    }

    /// Sum over `dims`, keeping them as size 1.
    fn sum_keepdim<D: Dims>(&self, dims: D) -> Result<Self> {
        let dims = dims.to_indexes(self.primal().shape(), "sum_keepdim")?;
        self.map(&LinearOp::SumKeepdim(dims))
    }

    /// Mean over `dims`, keeping them as size 1.
    fn mean_keepdim<D: Dims>(&self, dims: D) -> Result<Self> {
        let dims = dims.to_indexes(self.primal().shape(), "mean_keepdim")?;
        self.map(&LinearOp::MeanKeepdim(dims))
    }

    /// Reshape (a linear map).
    fn reshape(&self, shape: &[usize]) -> Result<Self> {
        self.map(&LinearOp::Reshape(shape.to_vec()))
    }

    /// `log_softmax` along `dim`: `y = x − logΣexp(x)`, tangent `t − Σ softmax(x)·t`.
    /// Built from candle-nn's composed (differentiable) `log_softmax`, never the fused
    /// `softmax_last_dim`, which has no backward and would silently drop Hessian terms.
    fn log_softmax(&self, dim: usize) -> Result<Self> {
        self.unary(
            |x| candle_nn::ops::log_softmax(x, dim),
            |_, y, t| t.broadcast_sub(&y.exp()?.mul(t)?.sum_keepdim(dim)?),
        )
    }

    /// `softmax` along `dim`, tangent `y ⊙ (t − Σ y·t)`.
    fn softmax(&self, dim: usize) -> Result<Self> {
        self.unary(
            |x| candle_nn::ops::softmax(x, dim),
            |_, y, t| t.broadcast_sub(&t.mul(y)?.sum_keepdim(dim)?)?.mul(y),
        )
    }

    /// `max(x, floor)^(−1/2)`, tangent `−½ y³·t` where `x > floor`, else 0 (the mask a
    /// constant from the detached primal).
    fn clamped_rsqrt(&self, floor: f64) -> Result<Self> {
        self.unary(
            |u| u.maximum(floor)?.sqrt()?.recip(),
            |u, y, t| {
                let above = u.detach().gt(floor)?.to_dtype(t.dtype())?;
                t.mul(&y.powf(3.0)?)?.mul(&above)?.affine(-0.5, 0.0)
            },
        )
    }

    /// `x / max(‖x‖₂, eps)` along `dim`, as PyTorch's `F.normalize` (`eps = 1e-12`).
    ///
    /// Composed as `x ⊙ r(Σ x²)` with `r(u) = max(u, eps²)^(−1/2)`
    /// ([`clamped_rsqrt`](Value::clamped_rsqrt)).
    fn normalize(&self, dim: usize, eps: f64) -> Result<Self> {
        let inv_norm = self.square()?.sum_keepdim(dim)?.clamped_rsqrt(eps * eps)?;
        self.mul(&inv_norm)
    }
}

impl Value for Tensor {
    fn primal(&self) -> &Tensor {
        self
    }

    fn constant(primal: Tensor) -> Self {
        primal
    }

    fn as_plain(&self) -> Option<&Tensor> {
        Some(self)
    }

    fn unary<F, J>(&self, f: F, _jvp: J) -> Result<Self>
    where
        F: FnOnce(&Tensor) -> CResult<Tensor>,
        J: FnOnce(&Tensor, &Tensor, &Tensor) -> CResult<Tensor>,
    {
        Ok(f(self)?)
    }

    fn bilinear<F>(&self, rhs: &Self, f: F) -> Result<Self>
    where
        F: Fn(&Tensor, &Tensor) -> CResult<Tensor>,
    {
        Ok(f(self, rhs)?)
    }

    fn add(&self, rhs: &Self) -> Result<Self> {
        Ok(self.broadcast_add(rhs)?)
    }

    fn conv2d_bias(
        &self,
        kernel: &Self,
        bias: &Self,
        padding: usize,
        stride: usize,
    ) -> Result<Self> {
        Ok(ops::conv2d_add(self, kernel, bias, padding, stride)?)
    }

    fn linear_layer(&self, weight: &Self, bias: &Self) -> Result<Self> {
        Ok(ops::matmul_t_add(self, weight, bias)?)
    }
}
