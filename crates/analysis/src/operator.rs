//! The class-wise Hessian as a [`LinearOperator`]: nn's exact HVP over a sample set, seen by
//! the spectral estimators only through `dim`, `apply` and `apply_block` (as grep-searcher
//! sees matchers only through its trait), so every estimator runs unchanged on dense test
//! matrices and on networks.

use candle_core::DType;
use saddlescope_nn::{HessianOperator, HvpEngine};
use saddlescope_spectral::{LinearOperator, OperatorError};

/// How the class Hessians compute their products.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HvpSettings {
    /// Linearized once per Hessian (default) or plain reverse-over-forward per product.
    pub engine: HvpEngine,
    /// Bytes the linearizations of one Hessian may keep (`None`: half the memory available
    /// at its first product, `saddlescope_nn::linearized::default_memory_budget`); beyond
    /// it batches are linearized anew per product, with identical results.
    pub memory_budget: Option<usize>,
}

impl HvpSettings {
    /// `op` with these settings.
    pub fn apply<'a>(&self, op: HessianOperator<'a>) -> HessianOperator<'a> {
        let op = op.with_engine(self.engine);
        match self.memory_budget {
            Some(bytes) => op.with_memory_budget(bytes),
            None => op,
        }
    }
}

/// `H_c = ∇² (mean loss over the samples of class c)` on the selected parameter block.
pub struct ClassHessian<'a> {
    inner: HessianOperator<'a>,
}

impl<'a> ClassHessian<'a> {
    /// Wraps an HVP operator.
    pub fn new(inner: HessianOperator<'a>) -> Self {
        Self { inner }
    }

    /// The underlying HVP operator (for loss and gradient evaluations).
    pub fn hvp(&self) -> &HessianOperator<'a> {
        &self.inner
    }
}

impl LinearOperator for ClassHessian<'_> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }

    fn apply(&self, x: &[f64], y: &mut [f64]) -> Result<(), OperatorError> {
        self.inner.hvp_flat(x, y).map_err(OperatorError::new)
    }

    /// One sweep of the network for all of them ([`HessianOperator::hvp_block_flat`]),
    /// each product bit-identical to its own [`apply`](Self::apply).
    fn apply_block(&self, xs: &[&[f64]], ys: &mut [&mut [f64]]) -> Result<(), OperatorError> {
        self.inner
            .hvp_block_flat(xs, ys)
            .map_err(OperatorError::new)
    }

    /// f32's unit roundoff for an f32 network: its HVPs are good to about 1e-7 relative (the
    /// f32 and f64 HVPs of ResNet-32 differ by ~1e-6), and the residual bounds must say so.
    fn unit_roundoff(&self) -> f64 {
        match self.inner.model().dtype() {
            DType::F64 => f64::EPSILON,
            _ => f64::from(f32::EPSILON),
        }
    }
}
