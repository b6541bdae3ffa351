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
//!
//! That is the plain path ([`HvpEngine::Plain`]). By default ([`HvpEngine::Linearized`])
//! the operator records each batch's pass once, at its first HVP, and every HVP then pays
//! only the tangent passes ([`linearized`](crate::linearized)); the same numbers up to
//! rounding, about twice as fast. What it keeps is bounded by a memory budget: batches
//! beyond it are linearized anew for every HVP (identical numbers, no speed-up).

use std::sync::{Arc, Mutex};

use candle_core::{DType, Tensor, Var};

use crate::direction_block::{join_block, split_block};
use crate::dual::Dual;
use crate::error::{Error, Result};
use crate::linearized::{default_memory_budget, Linearization};
use crate::loss::Loss;
use crate::model::{BnMode, Model};
use crate::selection::ParamSelection;
use crate::value::Value;

/// How a [`HessianOperator`] computes its products.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HvpEngine {
    /// Record each batch's pass once and replay only its tangents ([`linearized`](crate::linearized));
    /// falls back to [`Plain`](HvpEngine::Plain) for a batch whose pass cannot be recorded
    /// (a device other than the CPU).
    #[default]
    Linearized,
    /// Reverse-over-forward from scratch for every product: the model on dual numbers, then
    /// candle's backward of the tangent.
    Plain,
}

/// What an operator's linearized path holds ([`HessianOperator::linearization`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinearizationInfo {
    /// Batches whose linearization is kept.
    pub kept: usize,
    /// Batches linearized anew for every product (over the memory budget).
    pub recomputed: usize,
    /// Batches on the plain path (their pass cannot be linearized).
    pub plain: usize,
    /// Bytes the kept linearizations hold.
    pub bytes: usize,
    /// The memory budget they were kept under.
    pub budget: usize,
}

/// One batch's state on the linearized path.
enum Prepared {
    Kept(Linearization),
    Recompute,
    Plain,
}

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
    engine: HvpEngine,
    memory_budget: Option<usize>,
    /// The batches' linearizations, built at the first product.
    prepared: Mutex<Option<Arc<Vec<Prepared>>>>,
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
            engine: HvpEngine::default(),
            memory_budget: None,
            prepared: Mutex::new(None),
        })
    }

    /// The same operator computing its products with `engine`.
    pub fn with_engine(self, engine: HvpEngine) -> Self {
        Self { engine, ..self }
    }

    /// The same operator keeping at most `bytes` of linearizations (default: half the
    /// memory available when the first product runs, [`default_memory_budget`]); batches
    /// beyond it are linearized anew for every product, with identical results.
    pub fn with_memory_budget(self, bytes: usize) -> Self {
        Self {
            memory_budget: Some(bytes),
            ..self
        }
    }

    /// The engine in use.
    pub fn engine(&self) -> HvpEngine {
        self.engine
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
    /// selected block, exact up to floating-point rounding.
    ///
    /// The linearized engine records each batch at the first product and keeps the record:
    /// later changes to the model's variables are not seen by this operator.
    pub fn hvp_flat(&self, v: &[f64], out: &mut [f64]) -> Result<()> {
        self.hvp_block_flat(&[v], &mut [out])
    }

    /// `outs[j] = H·vs[j]` for `k` directions in one sweep: the linearized engine runs every
    /// operation on activations once for all `k` (products with a per-direction operand run
    /// once per direction); each result equals [`hvp_flat`](Self::hvp_flat) of its
    /// direction up to rounding.
    pub fn hvp_block_flat(&self, vs: &[&[f64]], outs: &mut [&mut [f64]]) -> Result<()> {
        if vs.len() != outs.len() {
            return Err(Error::Shape {
                what: "HVP outputs",
                expected: format!("{} outputs, one per direction", vs.len()),
                got: vec![outs.len()],
            });
        }
        for (v, out) in vs.iter().zip(outs.iter()) {
            self.check_out(v.len())?;
            self.check_out(out.len())?;
        }
        if vs.is_empty() {
            return Ok(());
        }
        on_pool(|| self.hvp_block_into(vs, outs))
    }

    fn hvp_block_into(&self, vs: &[&[f64]], outs: &mut [&mut [f64]]) -> Result<()> {
        for out in outs.iter_mut() {
            out.fill(0.0);
        }
        let prepared = match self.engine {
            HvpEngine::Plain => None,
            HvpEngine::Linearized => Some(self.prepared()?),
        };
        let directions = split_block(&self.selection, vs, self.model.dtype(), self.model.device())?;
        for (b, (batch, share)) in self.batches.iter().zip(&self.shares).enumerate() {
            let state = prepared.as_ref().map(|p| &p[b]);
            let blocks = match state {
                Some(Prepared::Kept(lin)) => lin.hvp(&directions)?,
                Some(Prepared::Recompute) => match self.linearize(batch)? {
                    Some(lin) => lin.hvp(&directions)?,
                    None => self.plain_block(batch, vs)?,
                },
                Some(Prepared::Plain) | None => self.plain_block(batch, vs)?,
            };
            join_block(&self.selection, &blocks, *share, outs)?;
        }
        Ok(())
    }

    /// The plain path's `H_b·v` for each direction, stacked as the linearized path's blocks.
    fn plain_block(&self, batch: &Batch, vs: &[&[f64]]) -> Result<Vec<Tensor>> {
        let per_direction = vs
            .iter()
            .map(|v| self.plain_batch(batch, v))
            .collect::<Result<Vec<Vec<Tensor>>>>()?;
        (0..self.selection.entries().len())
            .map(|i| {
                let parts: Vec<&Tensor> = per_direction.iter().map(|p| &p[i]).collect();
                Ok(Tensor::stack(&parts, 0)?)
            })
            .collect()
    }

    /// One batch's `H_b·v` by reverse-over-forward from scratch, one tensor per selected
    /// parameter.
    fn plain_batch(&self, batch: &Batch, v: &[f64]) -> Result<Vec<Tensor>> {
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
        let x = Dual::constant(batch.x.clone());
        let logits = self.model.forward_with(&params, &x, self.bn)?;
        let loss = self.loss.compute(&logits, &batch.labels)?;
        match loss.tangent {
            Some(s) => self.grads(&s, &tracked),
            None => tracked.iter().map(|t| Ok(t.zeros_like()?)).collect(),
        }
    }

    /// The linearization of `batch` at the model's weights (`None`: not linearizable).
    fn linearize(&self, batch: &Batch) -> Result<Option<Linearization>> {
        Linearization::new(self.model, &self.selection, batch, &self.loss, self.bn)
    }

    /// Every batch's linearized state, built at the first call: linearizations are kept in
    /// batch order while their bytes fit the memory budget; from the first that does not,
    /// the remaining batches are recomputed at every product.
    fn prepared(&self) -> Result<Arc<Vec<Prepared>>> {
        let mut slot = self.prepared.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(prepared) = slot.as_ref() {
            return Ok(prepared.clone());
        }
        let budget = self.budget();
        let mut used = 0usize;
        let mut full = false;
        let mut states = Vec::with_capacity(self.batches.len());
        for batch in &self.batches {
            if full {
                states.push(Prepared::Recompute);
                continue;
            }
            states.push(match self.linearize(batch)? {
                None => Prepared::Plain,
                Some(lin) if used + lin.bytes() <= budget => {
                    used += lin.bytes();
                    Prepared::Kept(lin)
                }
                Some(_) => {
                    full = true;
                    Prepared::Recompute
                }
            });
        }
        let prepared = Arc::new(states);
        *slot = Some(prepared.clone());
        Ok(prepared)
    }

    fn budget(&self) -> usize {
        self.memory_budget.unwrap_or_else(default_memory_budget)
    }

    /// What the linearized engine holds, linearizing the batches if no product has yet
    /// (zero batches kept with the plain engine).
    pub fn linearization(&self) -> Result<LinearizationInfo> {
        let mut info = LinearizationInfo {
            budget: self.budget(),
            ..LinearizationInfo::default()
        };
        if self.engine == HvpEngine::Plain {
            info.plain = self.batches.len();
            return Ok(info);
        }
        for state in self.prepared()?.iter() {
            match state {
                Prepared::Kept(lin) => {
                    info.kept += 1;
                    info.bytes += lin.bytes();
                }
                Prepared::Recompute => info.recomputed += 1,
                Prepared::Plain => info.plain += 1,
            }
        }
        Ok(info)
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

    /// `∂ scalar / ∂ tracked`, one tensor per tracked parameter (zero where it does not
    /// depend).
    fn grads(&self, scalar: &Tensor, tracked: &[Tensor]) -> Result<Vec<Tensor>> {
        let grads = scalar.backward()?;
        tracked
            .iter()
            .map(|t| match grads.get(t) {
                Some(g) => Ok(g.clone()),
                None => Ok(t.zeros_like()?),
            })
            .collect()
    }

    /// [`grads`](Self::grads) flattened in selection order.
    fn flat_grad(&self, scalar: &Tensor, tracked: &[Tensor]) -> Result<Vec<f64>> {
        self.selection.join(&self.grads(scalar, tracked)?)
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
