//! The loss in logit space: its gradient and its per-sample Hessian blocks at the recorded
//! logits, from the loss's own code (so every loss and class weighting is covered exactly
//! as in the plain path).
//!
//! Every loss here is a weighted sum of per-sample terms `ℓ_i(z_i)` (cross-entropy, LDAM,
//! VS and focal alike, see [`Loss`]), so its Hessian in the logits is block diagonal with
//! one `C × C` block per sample. Column `c` of every block comes from one reverse-over-
//! forward pass with the direction `e_c` in every row; an HVP then costs `N` products of
//! `C × C` by `C`.

use candle_core::{DType, Tensor, Var};

use crate::dual::Dual;
use crate::error::Result;
use crate::loss::Loss;

/// `∂L/∂z: (N, C)` and `∂²L/∂z_i² : (N, C, C)` at the logits `z`.
#[derive(Debug)]
pub(crate) struct LogitCurvature {
    /// The gradient, the seed of the primal reverse sweep.
    pub(crate) grad: Tensor,
    /// The Hessian blocks, `blocks[i, r, c] = ∂²L / ∂z_ir ∂z_ic`.
    pub(crate) blocks: Tensor,
}

impl LogitCurvature {
    /// Gradient and Hessian blocks of `loss` at `logits: (N, C)` for `labels`.
    pub(crate) fn new(loss: &Loss, logits: &Tensor, labels: &Tensor) -> Result<Self> {
        let z = Var::from_tensor(&logits.detach())?;
        let z = z.as_tensor();
        let grad = gradient(&loss.compute(z, labels)?, z)?;
        let (n, c) = logits.dims2()?;
        let columns = (0..c)
            .map(|col| {
                let direction = unit_column(n, c, col, logits.dtype(), logits.device())?;
                let s = loss.compute(&Dual::new(z.clone(), Some(direction)), labels)?;
                match s.tangent {
                    Some(s) => gradient(&s, z),
                    None => Ok(z.zeros_like()?),
                }
            })
            .collect::<Result<Vec<Tensor>>>()?;
        Ok(Self {
            grad,
            blocks: Tensor::stack(&columns, 2)?,
        })
    }

    /// `ż ↦ ∇²L ż` for `k` stacked logit tangents `ż: (k, N, C)`, one direction at a time
    /// (a batched product of `k` columns may round differently from `k` products of one).
    pub(crate) fn apply(&self, z_dot: &Tensor) -> Result<Tensor> {
        let (k, n, c) = z_dot.dims3()?;
        let parts = (0..k)
            .map(|j| {
                let column = z_dot.get(j)?.reshape((n, c, 1))?;
                Ok(self.blocks.matmul(&column)?.reshape((n, c))?)
            })
            .collect::<Result<Vec<Tensor>>>()?;
        Ok(Tensor::stack(&parts, 0)?)
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        (self.grad.elem_count() + self.blocks.elem_count()) * self.blocks.dtype().size_in_bytes()
    }
}

/// `∂ scalar / ∂ z` (zero where it does not depend on `z`).
fn gradient(scalar: &Tensor, z: &Tensor) -> Result<Tensor> {
    Ok(match scalar.backward()?.get(z) {
        Some(g) => g.clone(),
        None => z.zeros_like()?,
    })
}

/// The `(n, c)` matrix with ones in column `col`.
fn unit_column(
    n: usize,
    c: usize,
    col: usize,
    dtype: DType,
    device: &candle_core::Device,
) -> Result<Tensor> {
    let mut values = vec![0.0f64; n * c];
    for row in values.chunks_exact_mut(c) {
        row[col] = 1.0;
    }
    Ok(Tensor::from_vec(values, (n, c), device)?.to_dtype(dtype)?)
}
