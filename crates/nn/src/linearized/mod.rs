//! Hessian-vector products linearized once per Hessian: the network's pass is recorded at
//! fixed weights and batch, and each HVP runs only tangent passes over the record
//! (forward-over-reverse with everything `v`-independent cached).
//!
//! # Why
//! The plain HVP ([`hessian`](crate::hessian)) runs the model on dual numbers and calls
//! candle's backward on the tangent `s = ∇L·v`: per HVP it recomputes the primal forward,
//! and the backward of the tangent chain recomputes the primal gradient's adjoints (the
//! adjoint of `ẋ_l` is the primal adjoint `x̄_l`), through candle's generic backward
//! (gradient sums, broadcast reductions, fresh zero buffers). For a Hessian all HVPs share
//! the weights and the batch, so all of that is the same every time.
//!
//! # How
//! `Linearization::new` runs the model once over `Traced` values, which
//! record the named operations that depend on the selected parameters (`tape`), computes
//! the loss's gradient and per-sample Hessian blocks in logit space (`logits`), and runs
//! one reverse sweep for the primal adjoints `ȳ` of every recorded value. It keeps what the
//! rules below read: activations, ReLU inputs (their masks), batch statistics, the primal
//! adjoints of bilinear operations, `g'` and `g''·ȳ` of the smooth nonlinearities.
//!
//! An HVP of `k` directions then makes two sweeps (`rules`):
//! - forward: every recorded value's tangent `ẏ` (for `y = B(a, b)` bilinear,
//!   `ẏ = B(ȧ, b) + B(a, ḃ)`; `ẏ = g'(x)·ẋ`; `ẏ = M ẋ` for linear maps);
//! - reverse, from `ż̄ = ∇²_z L · ż`: the tangent of every adjoint, `ẋ̄`
//!   (`ǡ = ∂_aB(ẏ̄, b) + ∂_aB(ȳ, ḃ)`, `ẋ̄ = g'·ẏ̄ + g''·ȳ·ẋ`, `ẋ̄ = Mᵀ ẏ̄`); at a selected
//!   parameter it is `H·v`.
//!
//! Convolutions, the dominant cost, take six products per HVP (two forward, two for the
//! input adjoint, two for the kernel adjoint), each pair as one GEMM where the geometry
//! allows (`conv`); the plain path takes eight and recomputes the primal.
//!
//! The results equal the plain path's up to rounding (tests: 1e-12 in f64 on every model,
//! loss and batch-norm mode) and are bit-identical for any thread count. Directions are
//! stacked on a leading axis: operations on activations run once over all `k·N` samples,
//! products with a per-direction operand run once per direction.
//!
//! Only CPU tensors in f32 or f64 are supported; a model whose pass uses an operation given
//! only as a closure, or another device, is reported as unsupported (`Ok(None)`) and the
//! operator uses the plain path.

mod budget;
mod conv;
mod logits;
pub(crate) mod pool;
mod rules;
mod tape;

use candle_core::Tensor;

use crate::error::Result;
use crate::hessian::Batch;
use crate::linear_op::LinearOp;
use crate::loss::Loss;
use crate::model::{BnMode, Model};
use crate::selection::ParamSelection;
use crate::value::Value;

pub use budget::{default_memory_budget, DEFAULT_BUDGET_SHARE};
use conv::ConvPlan;
use logits::LogitCurvature;
use tape::{Node, NodeId, Op, Tape, Traced, Unary};

/// A recorded node with what the sweeps read of it.
#[derive(Debug)]
struct Entry {
    op: Op,
    /// The primal output's shape.
    shape: Vec<usize>,
    /// The primal output, kept when a consumer's rule reads it.
    value: Option<Tensor>,
    /// The primal adjoint `ȳ`, kept when this node's own rule reads it (products of two
    /// recorded operands).
    adjoint: Option<Tensor>,
    /// `g'(x)` of a smooth nonlinearity.
    slope: Option<Tensor>,
    /// `g''(x)·ȳ` of a smooth nonlinearity.
    curvature: Option<Tensor>,
    /// A convolution's cached operands.
    conv: Option<ConvPlan>,
    /// For a 2×2 average pooling of a ReLU that feeds only it: the ReLU's input, whose mask
    /// the pooling applies in the same pass (the ReLU itself is then skipped).
    masked_by: Option<NodeId>,
    /// A ReLU whose mask its pooling applies.
    fused: bool,
}

/// One batch's Hessian, linearized: everything its HVPs share.
#[derive(Debug)]
pub(crate) struct Linearization {
    entries: Vec<Entry>,
    /// The logits' node (`None`: the logits do not depend on the block; `H = 0`).
    output: Option<NodeId>,
    logits: LogitCurvature,
    /// Each selected parameter's node, in selection order.
    params: Vec<NodeId>,
    bytes: usize,
}

impl Linearization {
    /// Records `model` on `batch` at its current weights for the block `selection`, with
    /// `loss` and batch norm `bn` (`Eval` or `BatchStats`). `Ok(None)` when the pass cannot
    /// be linearized (not on the CPU in f32/f64, or an operation without a named rule).
    pub(crate) fn new(
        model: &Model,
        selection: &ParamSelection,
        batch: &Batch,
        loss: &Loss,
        bn: BnMode,
    ) -> Result<Option<Self>> {
        if !crate::ops::cpu_kernels_apply(model.device().location(), model.dtype()) {
            return Ok(None);
        }
        let tape = Tape::default();
        let mut params: Vec<Traced> = model
            .trainable()
            .iter()
            .map(|(_, var)| Traced::constant(var.as_detached_tensor()))
            .collect();
        for e in selection.entries() {
            params[e.index] =
                tape.param(e.index, model.trainable()[e.index].1.as_detached_tensor());
        }
        let logits = model.forward_with(&params, &Traced::constant(batch.x().clone()), bn)?;
        let Ok(nodes) = tape.finish() else {
            return Ok(None);
        };
        let output = logits.node();
        let curvature = LogitCurvature::new(loss, logits.primal(), batch.labels())?;
        let mut params = vec![usize::MAX; selection.entries().len()];
        for (id, node) in nodes.iter().enumerate() {
            if let Op::Param { index } = node.op {
                if let Some(slot) = selection.entries().iter().position(|e| e.index == index) {
                    params[slot] = id;
                }
            }
        }
        let mut lin = Self {
            entries: nodes.into_iter().map(Entry::from).collect(),
            output,
            logits: curvature,
            params,
            bytes: 0,
        };
        lin.prepare()?;
        Ok(Some(lin))
    }

    /// Derivatives of the nonlinearities, the primal adjoints, then drops every value no
    /// rule reads.
    fn prepare(&mut self) -> Result<()> {
        let count = self.entries.len();
        let mut reads = vec![false; count];
        for entry in &self.entries {
            for id in rules::values_read(&entry.op) {
                reads[id] = true;
            }
        }
        for id in 0..count {
            match &self.entries[id].op {
                Op::Unary(x, kind) => {
                    let slope = rules::slope(*kind, self.node_value(*x)?, self.node_value(id)?)?;
                    self.entries[id].slope = slope;
                }
                Op::Conv {
                    x,
                    k,
                    padding,
                    stride,
                    ..
                } => {
                    let recorded = (x.node().is_some(), k.node().is_some());
                    let plan =
                        ConvPlan::new(self.value(x)?, self.value(k)?, recorded, *padding, *stride)?;
                    self.entries[id].conv = Some(plan);
                }
                _ => {}
            }
        }
        // Smooth nonlinearities read their adjoint once, for `g''·ȳ`; convolutions of two
        // recorded operands cache its patches.
        let keep: Vec<bool> = self
            .entries
            .iter()
            .map(|e| rules::keeps_adjoint(&e.op) || is_smooth(&e.op) || is_bilinear_conv(&e.op))
            .collect();
        if let Some(out) = self.output {
            let seed = self.logits.grad.unsqueeze(0)?;
            let adjoints = self.reverse(out, seed, None, &keep)?;
            for (id, adjoint) in adjoints.into_iter().enumerate() {
                if keep[id] {
                    self.entries[id].adjoint = adjoint.map(|a| a.squeeze(0)).transpose()?;
                }
            }
        }
        for id in 0..count {
            let Some(adjoint) = self.entries[id].adjoint.clone() else {
                continue;
            };
            if let Op::Unary(x, kind) = self.entries[id].op {
                let curvature =
                    rules::curvature(kind, self.node_value(x)?, self.node_value(id)?, &adjoint)?;
                self.entries[id].curvature = curvature;
            }
            if let Some(plan) = self.entries[id].conv.as_mut() {
                plan.set_adjoint(&adjoint);
            }
        }
        for (entry, read) in self.entries.iter_mut().zip(reads) {
            if !rules::keeps_adjoint(&entry.op) {
                entry.adjoint = None;
            }
            if !read {
                entry.value = None;
            }
        }
        self.fuse_relu_pools();
        self.bytes = self.held_bytes();
        Ok(())
    }

    /// Marks every `relu → avg_pool2` whose ReLU feeds nothing else: the pooling applies the
    /// mask in its own pass ([`pool`]).
    fn fuse_relu_pools(&mut self) {
        let mut consumers = vec![0usize; self.entries.len()];
        for entry in &self.entries {
            for id in entry.op.inputs() {
                consumers[id] += 1;
            }
        }
        for id in 0..self.entries.len() {
            let Op::Map(r, LinearOp::AvgPool2) = self.entries[id].op else {
                continue;
            };
            if let Op::Unary(x, Unary::Relu) = self.entries[r].op {
                if consumers[r] == 1 && self.output != Some(r) {
                    self.entries[id].masked_by = Some(x);
                    self.entries[r].fused = true;
                }
            }
        }
    }

    fn node_value(&self, id: NodeId) -> Result<&Tensor> {
        self.entries[id]
            .value
            .as_ref()
            .ok_or_else(|| candle_core::Error::Msg("linearized HVP: value dropped".into()).into())
    }

    /// Bytes of every tensor held: kept values, adjoints and derivatives, constant operands
    /// (the batch, activations of a frozen trunk), the logit blocks.
    fn held_bytes(&self) -> usize {
        let size = |t: &Tensor| t.elem_count() * t.dtype().size_in_bytes();
        let own = self.entries.iter().flat_map(|e| {
            [&e.value, &e.adjoint, &e.slope, &e.curvature]
                .into_iter()
                .flatten()
        });
        let constants = self.entries.iter().flat_map(|e| e.op.constants());
        let plans = self.entries.iter().filter_map(|e| e.conv.as_ref());
        own.chain(constants).map(size).sum::<usize>()
            + plans.map(ConvPlan::bytes).sum::<usize>()
            + self.logits.bytes()
    }

    /// Bytes this linearization holds (activations, adjoints, derivatives, logit blocks).
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// `H·v` for `k` directions: `directions[i]` is the block of selected parameter `i`,
    /// shaped `(k, *shape_i)`; returns the blocks of `H·v` likewise.
    pub(crate) fn hvp(&self, directions: &[Tensor]) -> Result<Vec<Tensor>> {
        let Some(out) = self.output else {
            return directions.iter().map(|d| Ok(d.zeros_like()?)).collect();
        };
        let sweep = self.forward(directions)?;
        let z_dot = sweep.tangents[out].as_ref().ok_or_else(no_tangent)?;
        let seed = self.logits.apply(z_dot)?;
        let keep = vec![false; self.entries.len()];
        let adjoints = self.reverse(out, seed, Some(&sweep), &keep)?;
        self.params
            .iter()
            .zip(directions)
            .map(|(&id, d)| match adjoints.get(id).and_then(Option::as_ref) {
                Some(a) => Ok(a.clone()),
                None => Ok(d.zeros_like()?),
            })
            .collect()
    }
}

/// Whether `op` is a smooth nonlinearity (its second derivative enters the HVP).
fn is_smooth(op: &Op) -> bool {
    matches!(op, Op::Unary(_, kind) if *kind != Unary::Relu)
}

/// Whether `op` is a convolution of two recorded operands.
fn is_bilinear_conv(op: &Op) -> bool {
    matches!(op, Op::Conv { x, k, .. } if x.node().is_some() && k.node().is_some())
}

fn no_tangent() -> crate::error::Error {
    candle_core::Error::Msg("linearized HVP: the logits have no tangent".into()).into()
}

impl From<Node> for Entry {
    fn from(node: Node) -> Self {
        Self {
            shape: node.value.dims().to_vec(),
            op: node.op,
            value: Some(node.value),
            adjoint: None,
            slope: None,
            curvature: None,
            conv: None,
            masked_by: None,
            fused: false,
        }
    }
}
