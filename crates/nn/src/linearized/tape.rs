//! The recorded pass: [`Traced`], a [`Value`] whose operations append nodes to a tape.
//!
//! Running a model once over `Traced` parameters computes the ordinary primal values and
//! records, for every value that depends on a selected parameter, which named operation
//! produced it from which operands. Values that depend on no selected parameter (the input
//! batch, batch-norm buffers, unselected parameters and everything computed from them
//! alone) are plain constants and are not recorded, so the tape holds exactly the part of
//! the network an HVP differentiates.
//!
//! Operations given only as closures (`Value::unary`, `Value::bilinear`, `Value::linear`)
//! cannot be run backwards; meeting one on a recorded value marks the tape unsupported, and
//! the Hessian operator then takes the plain reverse-over-forward path for that batch.

use std::sync::{Arc, Mutex, MutexGuard};

use candle_core::{Result as CResult, Tensor};

use crate::error::Result;
use crate::linear_op::LinearOp;
use crate::ops;
use crate::value::Value;

/// Index of a node in its tape.
pub(crate) type NodeId = usize;

/// An operand of a recorded operation: a recorded node or a constant tensor.
#[derive(Clone, Debug)]
pub(crate) enum Operand {
    /// The output of an earlier node.
    Node(NodeId),
    /// A value that depends on no selected parameter.
    Const(Tensor),
}

impl Operand {
    /// The node, if this operand is one.
    pub(crate) fn node(&self) -> Option<NodeId> {
        match self {
            Operand::Node(id) => Some(*id),
            Operand::Const(_) => None,
        }
    }
}

/// An elementwise nonlinearity `y = g(x)` with its first and second derivatives known.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Unary {
    /// `max(x, 0)`: `g' = 1[x ≥ 0]` (candle's convention), `g'' = 0`.
    Relu,
    /// `tanh x`: `g' = 1 − y²`, `g'' = −2y(1 − y²)`.
    Tanh,
    /// `x²`: `g' = 2x`, `g'' = 2`.
    Square,
    /// `(x + eps)^(−1/2)`: `g' = −½ y³`, `g'' = ¾ y⁵`.
    Rsqrt {
        /// The shift inside the root.
        eps: f64,
    },
    /// `max(x, floor)^(−1/2)`: as `Rsqrt` where `x > floor`, 0 elsewhere.
    ClampedRsqrt {
        /// The floor.
        floor: f64,
    },
}

/// A recorded operation.
#[derive(Clone, Debug)]
pub(crate) enum Op {
    /// Trainable parameter `index` (in [`Model::trainable`](crate::Model::trainable)
    /// order), one of the selected block.
    Param {
        /// The parameter's position.
        index: usize,
    },
    /// Broadcast sum.
    Add(Operand, Operand),
    /// `k·x`.
    Scale(NodeId, f64),
    /// Broadcast elementwise product.
    Mul(Operand, Operand),
    /// A named linear map.
    Map(NodeId, LinearOp),
    /// An elementwise nonlinearity.
    Unary(NodeId, Unary),
    /// `conv2d(x, k) (+ shift)`, `shift: (C_out,)`.
    Conv {
        /// Input `(N, C_in, H, W)`.
        x: Operand,
        /// Kernel `(C_out, C_in, kh, kw)`.
        k: Operand,
        /// Per-output-channel shift.
        shift: Option<Operand>,
        /// Zero padding.
        padding: usize,
        /// Stride.
        stride: usize,
    },
    /// `x·wᵀ + b` (`w: (out, in)`, `b: (out,)`).
    Linear {
        /// Input `(N, in)`.
        x: Operand,
        /// Weight.
        w: Operand,
        /// Bias.
        b: Operand,
    },
    /// Matrix product `a·b` of 2-d operands.
    MatMul(Operand, Operand),
}

impl Op {
    /// The operands, recorded or constant (none for a single-input operation).
    fn operands(&self) -> Vec<&Operand> {
        match self {
            Op::Param { .. } | Op::Scale(..) | Op::Map(..) | Op::Unary(..) => Vec::new(),
            Op::Add(a, b) | Op::Mul(a, b) | Op::MatMul(a, b) => vec![a, b],
            Op::Conv { x, k, shift, .. } => [Some(x), Some(k), shift.as_ref()]
                .into_iter()
                .flatten()
                .collect(),
            Op::Linear { x, w, b } => vec![x, w, b],
        }
    }

    /// The recorded operands.
    pub(crate) fn inputs(&self) -> Vec<NodeId> {
        match self {
            Op::Scale(x, _) | Op::Map(x, _) | Op::Unary(x, _) => vec![*x],
            _ => self
                .operands()
                .into_iter()
                .filter_map(Operand::node)
                .collect(),
        }
    }

    /// The constant operands' tensors.
    pub(crate) fn constants(&self) -> Vec<&Tensor> {
        self.operands()
            .into_iter()
            .filter_map(|o| match o {
                Operand::Const(t) => Some(t),
                Operand::Node(_) => None,
            })
            .collect()
    }
}

/// A recorded node: its operation and primal output.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    /// What produced it.
    pub(crate) op: Op,
    /// The primal output.
    pub(crate) value: Tensor,
}

/// The nodes recorded so far, and the first operation that could not be recorded.
#[derive(Debug, Default)]
struct Recording {
    nodes: Vec<Node>,
    unsupported: Option<&'static str>,
}

/// The tape one recording pass writes to (shared by all of its values).
#[derive(Clone, Debug, Default)]
pub(crate) struct Tape(Arc<Mutex<Recording>>);

impl Tape {
    fn lock(&self) -> MutexGuard<'_, Recording> {
        // A panic while holding the lock leaves a tape that is never read again.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A selected parameter's value as a recorded leaf.
    pub(crate) fn param(&self, index: usize, value: Tensor) -> Traced {
        self.push(Op::Param { index }, value)
    }

    fn push(&self, op: Op, value: Tensor) -> Traced {
        let mut recording = self.lock();
        recording.nodes.push(Node {
            op,
            value: value.clone(),
        });
        Traced {
            primal: value,
            node: Some((recording.nodes.len() - 1, self.clone())),
        }
    }

    fn mark_unsupported(&self, what: &'static str) {
        self.lock().unsupported.get_or_insert(what);
    }

    /// The recorded nodes, or the name of the first operation that could not be recorded.
    pub(crate) fn finish(&self) -> std::result::Result<Vec<Node>, &'static str> {
        let mut recording = self.lock();
        match recording.unsupported {
            Some(what) => Err(what),
            None => Ok(std::mem::take(&mut recording.nodes)),
        }
    }
}

/// A value of the recording pass: the primal tensor and, when it depends on a selected
/// parameter, its node.
#[derive(Clone, Debug)]
pub(crate) struct Traced {
    primal: Tensor,
    node: Option<(NodeId, Tape)>,
}

impl Traced {
    /// The node this value was recorded as, if any.
    pub(crate) fn node(&self) -> Option<NodeId> {
        self.node.as_ref().map(|(id, _)| *id)
    }

    fn operand(&self) -> Operand {
        match &self.node {
            Some((id, _)) => Operand::Node(*id),
            None => Operand::Const(self.primal.clone()),
        }
    }

    /// Records `op(operands)` with output `value` on the tape of the first recorded
    /// operand; with none, the result is a constant (nothing to differentiate).
    fn record<const N: usize>(
        values: [&Traced; N],
        value: Tensor,
        op: impl FnOnce([Operand; N]) -> Op,
    ) -> Self {
        match values.iter().find_map(|v| v.node.as_ref()) {
            Some((_, tape)) => tape.clone().push(op(values.map(Traced::operand)), value),
            None => Self::constant(value),
        }
    }

    /// Records `op(node)` for an operation of this value alone.
    fn record_one(&self, value: Tensor, op: impl FnOnce(NodeId) -> Op) -> Self {
        match &self.node {
            Some((id, tape)) => tape.push(op(*id), value),
            None => Self::constant(value),
        }
    }

    fn unary_op(&self, kind: Unary, value: Tensor) -> Self {
        self.record_one(value, |x| Op::Unary(x, kind))
    }

    /// The primal of a closure-defined operation; recorded values lose their node and
    /// mark their tape unsupported.
    fn opaque(values: &[&Traced], what: &'static str, value: Tensor) -> Self {
        for (_, tape) in values.iter().filter_map(|v| v.node.as_ref()) {
            tape.mark_unsupported(what);
        }
        Self::constant(value)
    }
}

impl Value for Traced {
    fn primal(&self) -> &Tensor {
        &self.primal
    }

    fn constant(primal: Tensor) -> Self {
        Self { primal, node: None }
    }

    fn unary<F, J>(&self, f: F, _jvp: J) -> Result<Self>
    where
        F: FnOnce(&Tensor) -> CResult<Tensor>,
        J: FnOnce(&Tensor, &Tensor, &Tensor) -> CResult<Tensor>,
    {
        Ok(Self::opaque(
            &[self],
            "a closure-defined map",
            f(&self.primal)?,
        ))
    }

    fn bilinear<F>(&self, rhs: &Self, f: F) -> Result<Self>
    where
        F: Fn(&Tensor, &Tensor) -> CResult<Tensor>,
    {
        let value = f(&self.primal, &rhs.primal)?;
        Ok(Self::opaque(
            &[self, rhs],
            "a closure-defined product",
            value,
        ))
    }

    fn add(&self, rhs: &Self) -> Result<Self> {
        let value = self.primal.broadcast_add(&rhs.primal)?;
        Ok(Self::record([self, rhs], value, |[a, b]| Op::Add(a, b)))
    }

    fn relu(&self) -> Result<Self> {
        Ok(self.unary_op(Unary::Relu, ops::relu(&self.primal)?))
    }

    fn map(&self, op: &LinearOp) -> Result<Self> {
        let value = op.apply(&self.primal)?;
        Ok(self.record_one(value, |x| Op::Map(x, op.clone())))
    }

    fn scale(&self, k: f64) -> Result<Self> {
        let value = self.primal.affine(k, 0.0)?;
        Ok(self.record_one(value, |x| Op::Scale(x, k)))
    }

    fn mul(&self, rhs: &Self) -> Result<Self> {
        let value = self.primal.broadcast_mul(&rhs.primal)?;
        Ok(Self::record([self, rhs], value, |[a, b]| Op::Mul(a, b)))
    }

    fn matmul(&self, rhs: &Self) -> Result<Self> {
        let value = ops::matmul(&self.primal, &rhs.primal)?;
        Ok(Self::record([self, rhs], value, |[a, b]| Op::MatMul(a, b)))
    }

    fn conv2d(&self, kernel: &Self, padding: usize, stride: usize) -> Result<Self> {
        let value = ops::conv2d(&self.primal, &kernel.primal, padding, stride)?;
        Ok(Self::record([self, kernel], value, |[x, k]| Op::Conv {
            x,
            k,
            shift: None,
            padding,
            stride,
        }))
    }

    fn conv2d_bias(
        &self,
        kernel: &Self,
        bias: &Self,
        padding: usize,
        stride: usize,
    ) -> Result<Self> {
        let value = ops::conv2d_add(&self.primal, &kernel.primal, &bias.primal, padding, stride)?;
        Ok(Self::record([self, kernel, bias], value, |[x, k, shift]| {
            Op::Conv {
                x,
                k,
                shift: Some(shift),
                padding,
                stride,
            }
        }))
    }

    fn linear_layer(&self, weight: &Self, bias: &Self) -> Result<Self> {
        let value = ops::matmul_t_add(&self.primal, &weight.primal, &bias.primal)?;
        Ok(Self::record([self, weight, bias], value, |[x, w, b]| {
            Op::Linear { x, w, b }
        }))
    }

    fn square(&self) -> Result<Self> {
        Ok(self.unary_op(Unary::Square, self.primal.sqr()?))
    }

    fn tanh(&self) -> Result<Self> {
        Ok(self.unary_op(Unary::Tanh, self.primal.tanh()?))
    }

    fn rsqrt(&self, eps: f64) -> Result<Self> {
        let value = self.primal.affine(1.0, eps)?.sqrt()?.recip()?;
        Ok(self.unary_op(Unary::Rsqrt { eps }, value))
    }

    fn clamped_rsqrt(&self, floor: f64) -> Result<Self> {
        let value = self.primal.maximum(floor)?.sqrt()?.recip()?;
        Ok(self.unary_op(Unary::ClampedRsqrt { floor }, value))
    }
}
