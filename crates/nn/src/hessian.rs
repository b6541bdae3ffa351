//! Exact Hessian-vector products by reverse-over-forward differentiation.
//!
//! For parameters `w`, a direction `v` on a block `S` ([`ParamSelection`]) and a loss `L`:
//! 1. run the model and the loss on [`Dual`] parameters `(w_i, v_i)` (`i ∈ S`; the others
//!    are detached constants with no tangent): the loss comes out as `(L(w), s(w))` with
//!    `s(w) = d/dε L(w + εv)|₀ = ∇_S L(w)·v`, an ordinary tracked candle graph of `w`;
//! 2. candle's first-order `backward()` of `s` gives `∂s/∂w_S = H_SS·v` exactly.
//!
//! No double backward (candle detaches intermediate gradients unless the global
//! `CANDLE_GRAD_DO_NOT_DETACH` is set, at ~10× a gradient's cost) and no finite differences
//! (wrong by >40 % in f32 on ReLU nets). ReLU kinks contribute nothing, as in every autodiff
//! Hessian: `H` is the Hessian of the locally smooth piece that contains `w`.
//!
//! Over a sample set given as batches `b` the loss is the batch losses' weighted mean,
//! `L = Σ_b W_b L_b / Σ_b W_b` with `W_b` = [`Loss::batch_weight`] (`n_b` for unweighted
//! losses), which equals the loss of the union batch; likewise `H·v = Σ_b (W_b/W) H_b·v`.

use candle_core::{DType, Tensor, Var};

use crate::dual::Dual;
use crate::error::{Error, Result};
use crate::loss::Loss;
use crate::model::{BnMode, Model};
use crate::selection::ParamSelection;
use crate::value::Value;

/// Inputs `x: (N, C, H, W)` in the model's dtype and labels `y: (N,)` u32, `N ≥ 1`.
#[derive(Clone, Debug)]
pub struct Batch {
    x: Tensor,
    labels: Tensor,
}

impl Batch {
    /// Pairs inputs with labels; errors if labels are not u32 `(N,)` for `N = x.dim(0) ≥ 1`.
    pub fn new(x: Tensor, labels: Tensor) -> Result<Self> {
        if labels.dtype() != DType::U32 {
            return Err(Error::Dtype {
                what: "labels",
                expected: DType::U32,
                got: labels.dtype(),
            });
        }
        let n = x.dims().first().copied().unwrap_or(0);
        if n == 0 || labels.dims() != [n] {
            return Err(Error::Shape {
                what: "labels",
                expected: format!("({n},) with N >= 1 matching the inputs"),
                got: labels.dims().to_vec(),
            });
        }
        Ok(Self { x, labels })
    }

    /// The inputs.
    pub fn x(&self) -> &Tensor {
        &self.x
    }

    /// The labels.
    pub fn labels(&self) -> &Tensor {
        &self.labels
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.elem_count()
    }

    /// Always false: a batch holds at least one sample.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The Hessian of a loss's mean over a fixed sample set, restricted to a parameter block,
/// as a matrix-free operator on flat `f64` vectors of length [`dim`](Self::dim).
///
/// Methods take `&self`, never modify the model (perturbed evaluations pass explicit
/// parameter values to [`Model::forward_with`]; batch-norm running statistics are never
/// updated) and are fallible; the type is `Send + Sync`, so wrapping it in
/// `spectral::LinearOperator` is a one-line `apply` that calls [`hvp_flat`](Self::hvp_flat).
///
/// Batch norm: [`BnMode::Eval`] (default for Hessians, as PyHessian and the paper's code)
/// or batch statistics ([`BnMode::Train`] is treated as [`BnMode::BatchStats`]: the
/// running statistics stay bit-identical). With batch statistics the loss depends on
/// how the samples are batched.
pub struct HessianOperator<'a> {
    model: &'a Model,
    batches: Vec<Batch>,
    shares: Vec<f64>,
    loss: Loss,
    selection: ParamSelection,
    bn: BnMode,
}

impl<'a> HessianOperator<'a> {
    /// An operator for `loss` over `batches` (at least one) on the block `selection` of
    /// `model`.
    ///
    /// Memory of an HVP is that of one batch's dual graph (about 4× a gradient's), so split
    /// large sample sets into batches of ~32–128 images.
    ///
    /// Errors: no batches, a selection built for another model, a batch whose inputs the
    /// model or whose labels the loss rejects.
    pub fn new(
        model: &'a Model,
        batches: Vec<Batch>,
        loss: Loss,
        selection: ParamSelection,
        bn: BnMode,
    ) -> Result<Self> {
        if batches.is_empty() {
            return Err(Error::EmptySampleSet);
        }
        selection.check_model(model)?;
        for b in &batches {
            model.check_input(&b.x)?;
        }
        let weights = batches
            .iter()
            .map(|b| loss.batch_weight(&b.labels))
            .collect::<Result<Vec<f64>>>()?;
        let total: f64 = weights.iter().sum();
        let bn = if bn == BnMode::Train {
            BnMode::BatchStats
        } else {
            bn
        };
        Ok(Self {
            model,
            batches,
            shares: weights.iter().map(|w| w / total).collect(),
            loss,
            selection,
            bn,
        })
    }

    /// The dimension `n` of the Hessian block (number of selected scalars).
    pub fn dim(&self) -> usize {
        self.selection.dim()
    }

    /// The parameter block.
    pub fn selection(&self) -> &ParamSelection {
        &self.selection
    }

    /// The model.
    pub fn model(&self) -> &Model {
        self.model
    }

    /// The batch-norm mode (`Eval` or `BatchStats`).
    pub fn bn_mode(&self) -> BnMode {
        self.bn
    }

    /// The sample set.
    pub fn batches(&self) -> &[Batch] {
        &self.batches
    }

    /// Total number of samples.
    pub fn samples(&self) -> usize {
        self.batches.iter().map(Batch::len).sum()
    }

    fn check_out(&self, len: usize) -> Result<()> {
        if len != self.dim() {
            return Err(Error::FlatLength {
                expected: self.dim(),
                got: len,
            });
        }
        Ok(())
    }

    /// `out = H·v`, the Hessian of the sample-set loss at the model's weights on the
    /// selected block, exact up to floating-point rounding (one forward with tangents and
    /// one backward per batch).
    pub fn hvp_flat(&self, v: &[f64], out: &mut [f64]) -> Result<()> {
        self.check_out(out.len())?;
        on_pool(|| self.hvp_into(v, out))
    }

    fn hvp_into(&self, v: &[f64], out: &mut [f64]) -> Result<()> {
        let directions = self
            .selection
            .split(v, self.model.dtype(), self.model.device())?;
        let mut params: Vec<Dual> = self
            .model
            .trainable()
            .iter()
            .map(|(_, var)| Dual::constant(var.as_detached_tensor()))
            .collect();
        for (e, d) in self.selection.entries().iter().zip(directions) {
            params[e.index] = Dual::new(
                self.model.trainable()[e.index].1.as_tensor().clone(),
                Some(d),
            );
        }
        let tracked: Vec<Tensor> = self.selected(&params, |d| d.primal.clone());
        out.fill(0.0);
        for (batch, share) in self.batches.iter().zip(&self.shares) {
            let x = Dual::constant(batch.x.clone());
            let logits = self.model.forward_with(&params, &x, self.bn)?;
            let loss = self.loss.compute(&logits, &batch.labels)?;
            if let Some(s) = loss.tangent {
                let hv = self.flat_grad(&s, &tracked)?;
                for (o, h) in out.iter_mut().zip(hv) {
                    *o += share * h;
                }
            }
        }
        Ok(())
    }

    /// The sample-set loss at the model's weights.
    pub fn loss(&self) -> Result<f64> {
        self.loss_at(&vec![0.0; self.dim()])
    }

    /// The sample-set loss and its gradient on the selected block.
    pub fn loss_and_grad_flat(&self) -> Result<(f64, Vec<f64>)> {
        // The model's own variables for the block (no perturbed copies), detached values
        // elsewhere.
        let mut params: Vec<Tensor> = self
            .model
            .trainable()
            .iter()
            .map(|(_, var)| var.as_detached_tensor())
            .collect();
        for e in self.selection.entries() {
            params[e.index] = self.model.trainable()[e.index].1.as_tensor().clone();
        }
        self.loss_and_grad_of(&params)
    }

    /// The sample-set loss at `w + δ`, `δ` a flat vector on the selected block (e.g. `t·u`
    /// for loss-landscape slices). The model's weights are not touched: the perturbed
    /// values are passed to the forward pass, so nothing needs restoring.
    pub fn loss_at(&self, delta: &[f64]) -> Result<f64> {
        on_pool(|| self.loss_at_on_pool(delta))
    }

    fn loss_at_on_pool(&self, delta: &[f64]) -> Result<f64> {
        let params = self.perturbed(delta)?;
        let mut total = 0.0;
        for (batch, share) in self.batches.iter().zip(&self.shares) {
            let logits = self.model.forward_with(&params, &batch.x, self.bn)?;
            let loss = self.loss.compute(&logits, &batch.labels)?;
            total += share * loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        }
        Ok(total)
    }

    /// The sample-set loss and its gradient on the selected block at `w + δ` (the model's
    /// weights are not touched).
    pub fn loss_and_grad_at(&self, delta: &[f64]) -> Result<(f64, Vec<f64>)> {
        let mut params = self.perturbed(delta)?;
        for e in self.selection.entries() {
            params[e.index] = Var::from_tensor(&params[e.index])?.into_inner();
        }
        self.loss_and_grad_of(&params)
    }

    /// Loss and gradient on the selected block at `params` (the selected ones tracked).
    fn loss_and_grad_of(&self, params: &[Tensor]) -> Result<(f64, Vec<f64>)> {
        on_pool(|| self.loss_and_grad_on_pool(params))
    }

    fn loss_and_grad_on_pool(&self, params: &[Tensor]) -> Result<(f64, Vec<f64>)> {
        let tracked = self.selected(params, Tensor::clone);
        let mut total = 0.0;
        let mut grad = vec![0.0; self.dim()];
        for (batch, share) in self.batches.iter().zip(&self.shares) {
            let logits = self.model.forward_with(params, &batch.x, self.bn)?;
            let loss = self.loss.compute(&logits, &batch.labels)?;
            total += share * loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            for (g, d) in grad.iter_mut().zip(self.flat_grad(&loss, &tracked)?) {
                *g += share * d;
            }
        }
        Ok((total, grad))
    }

    /// Parameter values with `δ` added to the selected block, all detached.
    fn perturbed(&self, delta: &[f64]) -> Result<Vec<Tensor>> {
        let pieces = self
            .selection
            .split(delta, self.model.dtype(), self.model.device())?;
        let mut params: Vec<Tensor> = self
            .model
            .trainable()
            .iter()
            .map(|(_, var)| var.as_detached_tensor())
            .collect();
        for (e, d) in self.selection.entries().iter().zip(pieces) {
            params[e.index] = params[e.index].add(&d)?;
        }
        Ok(params)
    }

    fn selected<T, U>(&self, params: &[T], f: impl Fn(&T) -> U) -> Vec<U> {
        self.selection
            .entries()
            .iter()
            .map(|e| f(&params[e.index]))
            .collect()
    }

    /// `∂ scalar / ∂ tracked` flattened in selection order (zero where it does not depend).
    fn flat_grad(&self, scalar: &Tensor, tracked: &[Tensor]) -> Result<Vec<f64>> {
        let grads = scalar.backward()?;
        let pieces = tracked
            .iter()
            .map(|t| match grads.get(t) {
                Some(g) => Ok(g.clone()),
                None => Ok(t.zeros_like()?),
            })
            .collect::<Result<Vec<Tensor>>>()?;
        self.selection.join(&pieces)
    }
}

/// Runs `f` on a worker thread of rayon's pool and waits for it. Every product,
/// convolution and elementwise op of a forward or backward pass forks on that pool; from a
/// thread outside it (the CLI's main thread) each fork is injected into the pool and
/// waited for, a futex round trip per op, while from a worker it is plain work stealing
/// (measured: 10% of an MLP HVP). Called from a worker, `f` simply runs.
fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| f())
}
