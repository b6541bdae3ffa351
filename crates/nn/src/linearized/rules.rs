//! The two sweeps of a linearized HVP and the rule of every recorded operation.
//!
//! Tangents and tangent adjoints carry a leading direction axis: `(k, *shape)` for a value
//! of shape `shape`. Primal values and primal adjoints have none; they broadcast against
//! the `k` directions (right-aligned, as candle broadcasts).
//!
//! For `y = f(operands)` with primal adjoint `ȳ`, tangent `ẏ` and tangent adjoint `u_y`:
//!
//! | op | forward `ẏ` | reverse, to each recorded operand |
//! |---|---|---|
//! | `a + b` | `ȧ + ḃ` | `u_a = Σ_bcast u_y` |
//! | `s·x` | `s ẋ` | `u_x = s u_y` |
//! | `a ⊙ b` | `ȧ ⊙ b + a ⊙ ḃ` | `u_a = Σ_bcast (u_y ⊙ b + ȳ ⊙ ḃ)` |
//! | `M x` | `M ẋ` | `u_x = Mᵀ u_y` |
//! | `g(x)` | `g' ẋ` | `u_x = g' u_y + g'' ȳ ẋ` |
//! | `conv(x, k) + s` | `conv(ẋ, k) + conv(x, k̇) + ṡ` | `u_x = convᵀ(u_y, k) + convᵀ(ȳ, k̇)`, `u_k = corr(x, u_y) + corr(ẋ, ȳ)`, `u_s = Σ_{n,h,w} u_y` |
//! | `x wᵀ + b` | `ẋ wᵀ + x ẇᵀ + ḃ` | `u_x = u_y w + ȳ ẇ`, `u_w = u_yᵀ x + ȳᵀ ẋ`, `u_b = Σ_n u_y` |
//! | `a b` | `ȧ b + a ḃ` | `u_a = u_y bᵀ + ȳ ḃᵀ`, `u_b = aᵀ u_y + ȧᵀ ȳ` |
//!
//! The terms with `ȳ` are the second-order ones; they exist only when both operands are
//! recorded (or for the smooth nonlinearities). The primal adjoints themselves come from
//! the same reverse sweep run without tangents, seeded with `∂L/∂z`.

use candle_core::Tensor;

use crate::error::{Error, Result};
use crate::ops;

use super::conv::ConvPlan;
use super::pool;
use super::tape::{NodeId, Op, Operand, Unary};
use super::Linearization;

/// The forward sweep's result: every recorded value's tangent.
pub(super) struct Sweep {
    pub(super) tangents: Vec<Option<Tensor>>,
}

/// The recorded operands whose primal outputs the sweeps read once prepared: the other
/// factor of a product of two recorded operands, and a ReLU's input (its mask).
pub(super) fn values_read(op: &Op) -> Vec<NodeId> {
    match op {
        Op::Mul(a, b) | Op::MatMul(a, b) => {
            both_nodes(a, b).map_or(Vec::new(), |(a, b)| vec![a, b])
        }
        Op::Conv { x, k, .. } => both_nodes(x, k).map_or(Vec::new(), |(a, b)| vec![a, b]),
        Op::Linear { x, w, .. } => both_nodes(x, w).map_or(Vec::new(), |(a, b)| vec![a, b]),
        Op::Unary(x, Unary::Relu) => vec![*x],
        _ => Vec::new(),
    }
}

/// Whether the rule of `op` reads its own primal adjoint (a product of two recorded
/// operands; a convolution keeps its adjoint's patches in its plan instead).
pub(super) fn keeps_adjoint(op: &Op) -> bool {
    match op {
        Op::Mul(a, b) | Op::MatMul(a, b) => both_nodes(a, b).is_some(),
        Op::Linear { x, w, .. } => both_nodes(x, w).is_some(),
        _ => false,
    }
}

fn both_nodes(a: &Operand, b: &Operand) -> Option<(NodeId, NodeId)> {
    a.node().zip(b.node())
}

/// `g'(x)` of a smooth nonlinearity (`None` for ReLU, whose mask is read from `x`).
pub(super) fn slope(kind: Unary, x: &Tensor, y: &Tensor) -> Result<Option<Tensor>> {
    Ok(match kind {
        Unary::Relu => None,
        Unary::Tanh => Some(y.sqr()?.affine(-1.0, 1.0)?),
        Unary::Square => Some(x.affine(2.0, 0.0)?),
        Unary::Rsqrt { .. } => Some(y.powf(3.0)?.affine(-0.5, 0.0)?),
        Unary::ClampedRsqrt { floor } => {
            Some(y.powf(3.0)?.mul(&above(x, floor)?)?.affine(-0.5, 0.0)?)
        }
    })
}

/// `g''(x)·ȳ` of a smooth nonlinearity with primal adjoint `adjoint` (`None` for ReLU).
pub(super) fn curvature(
    kind: Unary,
    x: &Tensor,
    y: &Tensor,
    adjoint: &Tensor,
) -> Result<Option<Tensor>> {
    let second = match kind {
        Unary::Relu => return Ok(None),
        Unary::Tanh => y.mul(&y.sqr()?.affine(-1.0, 1.0)?)?.affine(-2.0, 0.0)?,
        Unary::Square => y.ones_like()?.affine(2.0, 0.0)?,
        Unary::Rsqrt { .. } => y.powf(5.0)?.affine(0.75, 0.0)?,
        Unary::ClampedRsqrt { floor } => y.powf(5.0)?.mul(&above(x, floor)?)?.affine(0.75, 0.0)?,
    };
    Ok(Some(second.mul(adjoint)?))
}

/// `1[x > floor]` in `x`'s dtype.
fn above(x: &Tensor, floor: f64) -> Result<Tensor> {
    Ok(x.gt(floor)?.to_dtype(x.dtype())?)
}

fn internal(what: &str) -> Error {
    candle_core::Error::Msg(format!("linearized HVP: {what}")).into()
}

/// `(k, *s) → (k, 1, …, 1, *s)` with `rank` axes after the direction axis.
fn lift(t: &Tensor, rank: usize) -> Result<Tensor> {
    let dims = t.dims();
    if dims.len() > rank {
        return Ok(t.clone());
    }
    let mut lifted = vec![dims[0]];
    lifted.resize(1 + rank - (dims.len() - 1), 1);
    lifted.extend_from_slice(&dims[1..]);
    Ok(t.reshape(lifted)?)
}

/// The sum of `u: (k, *y)` over the axes along which `shape` was broadcast to `y`, shaped
/// `(k, *shape)`.
fn sum_to(u: &Tensor, shape: &[usize]) -> Result<Tensor> {
    let y = &u.dims()[1..];
    let pad = y.len() - shape.len().min(y.len());
    let axes: Vec<usize> = (0..y.len())
        .filter(|&d| y[d] != 1 && (d < pad || shape[d - pad] == 1))
        .map(|d| d + 1)
        .collect();
    let summed = if axes.is_empty() {
        u.clone()
    } else {
        u.sum_keepdim(axes)?
    };
    Ok(summed.reshape(with_leading(u.dim(0)?, shape))?)
}

fn with_leading(k: usize, shape: &[usize]) -> Vec<usize> {
    let mut dims = vec![k];
    dims.extend_from_slice(shape);
    dims
}

/// `f(j)` for each of `k` directions, stacked on a leading axis.
fn per_direction(k: usize, mut f: impl FnMut(usize) -> Result<Tensor>) -> Result<Tensor> {
    if k == 1 {
        return Ok(f(0)?.unsqueeze(0)?);
    }
    let parts = (0..k).map(&mut f).collect::<Result<Vec<_>>>()?;
    Ok(Tensor::stack(&parts, 0)?)
}

/// `slot += term`.
fn accumulate(slot: &mut Option<Tensor>, term: Tensor) -> Result<()> {
    *slot = Some(match slot.take() {
        Some(prev) => (prev + term)?,
        None => term,
    });
    Ok(())
}

/// The sum of the present terms (`None` if none is).
fn sum(terms: impl IntoIterator<Item = Option<Tensor>>) -> Result<Option<Tensor>> {
    let mut total = None;
    for term in terms.into_iter().flatten() {
        accumulate(&mut total, term)?;
    }
    Ok(total)
}

impl Linearization {
    /// A recorded operand's primal output or a constant's tensor.
    pub(super) fn value<'a>(&'a self, operand: &'a Operand) -> Result<&'a Tensor> {
        match operand {
            Operand::Const(t) => Ok(t),
            Operand::Node(id) => self.entries[*id]
                .value
                .as_ref()
                .ok_or_else(|| internal("a primal value was not kept")),
        }
    }

    fn shape(&self, id: NodeId) -> &[usize] {
        &self.entries[id].shape
    }

    /// The forward sweep: every recorded value's tangent, `(k, *shape)`.
    pub(super) fn forward(&self, directions: &[Tensor]) -> Result<Sweep> {
        let mut tangents: Vec<Option<Tensor>> = vec![None; self.entries.len()];
        for id in 0..self.entries.len() {
            let t = |o: &Operand| o.node().and_then(|n| tangents[n].as_ref());
            let ty = match &self.entries[id].op {
                Op::Param { .. } => {
                    let slot = self.params.iter().position(|&p| p == id);
                    slot.and_then(|s| directions.get(s)).cloned()
                }
                Op::Add(a, b) => self.forward_add(id, t(a), t(b))?,
                Op::Scale(x, s) => tangents[*x]
                    .as_ref()
                    .map(|t| t.affine(*s, 0.0))
                    .transpose()?,
                Op::Mul(a, b) => self.forward_mul(id, (a, t(a)), (b, t(b)))?,
                Op::Map(x, map) => match self.entries[id].masked_by {
                    Some(input) => match &tangents[input] {
                        Some(t) => Some(self.masked_pool(t, input)?),
                        None => None,
                    },
                    None => tangents[*x]
                        .as_ref()
                        .map(|t| map.apply_directions(t))
                        .transpose()?,
                },
                Op::Unary(_, _) if self.entries[id].fused => None,
                Op::Unary(x, kind) => match &tangents[*x] {
                    Some(tx) => Some(self.forward_unary(id, *x, *kind, tx)?),
                    None => None,
                },
                Op::Conv { x, k, shift, .. } => {
                    self.forward_conv(id, t(x), t(k), shift.as_ref().and_then(&t))?
                }
                Op::Linear { x, w, b } => self.forward_linear(id, (x, t(x)), (w, t(w)), t(b))?,
                Op::MatMul(a, b) => self.forward_matmul((a, t(a)), (b, t(b)))?,
            };
            tangents[id] = ty;
        }
        Ok(Sweep { tangents })
    }

    fn forward_add(
        &self,
        id: NodeId,
        ta: Option<&Tensor>,
        tb: Option<&Tensor>,
    ) -> Result<Option<Tensor>> {
        let rank = self.shape(id).len();
        let sum = match (ta, tb) {
            (Some(a), Some(b)) => lift(a, rank)?.broadcast_add(&lift(b, rank)?)?,
            (Some(t), None) | (None, Some(t)) => lift(t, rank)?,
            (None, None) => return Ok(None),
        };
        let full = with_leading(sum.dim(0)?, self.shape(id));
        Ok(Some(if sum.dims() == full {
            sum
        } else {
            sum.broadcast_as(full)?.contiguous()?
        }))
    }

    fn forward_mul(
        &self,
        id: NodeId,
        (a, ta): (&Operand, Option<&Tensor>),
        (b, tb): (&Operand, Option<&Tensor>),
    ) -> Result<Option<Tensor>> {
        let rank = self.shape(id).len();
        let left = ta
            .map(|t| -> Result<Tensor> { Ok(lift(t, rank)?.broadcast_mul(self.value(b)?)?) })
            .transpose()?;
        let right = tb
            .map(|t| -> Result<Tensor> { Ok(lift(t, rank)?.broadcast_mul(self.value(a)?)?) })
            .transpose()?;
        sum([left, right])
    }

    fn forward_unary(&self, id: NodeId, x: NodeId, kind: Unary, tx: &Tensor) -> Result<Tensor> {
        let entry = &self.entries[id];
        match (kind, &entry.slope) {
            (Unary::Relu, _) => {
                let mask = self.node_value(x)?;
                per_direction(tx.dim(0)?, |j| Ok(ops::relu_tangent(&tx.get(j)?, mask)?))
            }
            (_, Some(slope)) => Ok(tx.broadcast_mul(slope)?),
            (_, None) => Err(internal("a nonlinearity without its slope")),
        }
    }

    /// A convolution's tangent, per direction.
    fn forward_conv(
        &self,
        id: NodeId,
        tx: Option<&Tensor>,
        tk: Option<&Tensor>,
        ts: Option<&Tensor>,
    ) -> Result<Option<Tensor>> {
        let Some(dirs) = [tx, tk, ts].into_iter().flatten().next() else {
            return Ok(None);
        };
        let plan = self.plan(id)?;
        let y = self.shape(id).to_vec();
        let ty = per_direction(dirs.dim(0)?, |j| {
            let pick = |t: Option<&Tensor>| t.map(|t| t.get(j)).transpose();
            let (xj, kj, sj) = (pick(tx)?, pick(tk)?, pick(ts)?);
            if xj.is_none() && kj.is_none() {
                let s = sj.ok_or_else(|| internal("a convolution without tangents"))?;
                return Ok(s
                    .reshape((1, y[1], 1, 1))?
                    .broadcast_as(y.as_slice())?
                    .contiguous()?);
            }
            Ok(plan.forward(xj.as_ref(), kj.as_ref(), sj.as_ref())?)
        })?;
        Ok(Some(ty))
    }

    /// `avg_pool2(relu'(x)·ẋ)` for the tangents `t: (k, *x)` of a fused ReLU's input `x`.
    fn masked_pool(&self, t: &Tensor, x: NodeId) -> Result<Tensor> {
        let (k, shape) = (t.dim(0)?, self.shape(x));
        let merged = t.reshape((k * shape[0], shape[1], shape[2], shape[3]))?;
        let pooled = pool::avg_pool2(&merged, Some(self.node_value(x)?))?
            .ok_or_else(|| internal("a fused pooling off the CPU"))?;
        Ok(pooled.reshape((k, shape[0], shape[1], shape[2] / 2, shape[3] / 2))?)
    }

    /// `relu'(x)·avg_pool2ᵀ(u)` for the adjoints `u: (k, *pooled)`, shaped `(k, *x)`.
    fn masked_pool_transpose(&self, u: &Tensor, x: NodeId) -> Result<Tensor> {
        let shape = self.shape(x);
        let k = u.dim(0)?;
        let merged = u.reshape((k * shape[0], shape[1], shape[2] / 2, shape[3] / 2))?;
        let spread =
            pool::avg_pool2_transpose(&merged, (shape[2], shape[3]), Some(self.node_value(x)?))?
                .ok_or_else(|| internal("a fused pooling off the CPU"))?;
        Ok(spread.reshape(with_leading(k, shape))?)
    }

    fn plan(&self, id: NodeId) -> Result<&ConvPlan> {
        self.entries[id]
            .conv
            .as_ref()
            .ok_or_else(|| internal("a convolution without its plan"))
    }

    fn forward_linear(
        &self,
        id: NodeId,
        (x, tx): (&Operand, Option<&Tensor>),
        (w, tw): (&Operand, Option<&Tensor>),
        tb: Option<&Tensor>,
    ) -> Result<Option<Tensor>> {
        let Some(dirs) = [tx, tw, tb].into_iter().flatten().next() else {
            return Ok(None);
        };
        let y = self.shape(id).to_vec();
        let linear = |j: usize| -> Result<Tensor> {
            let mut acc = tb.map(|b| b.get(j)).transpose()?;
            let products = [
                tw.map(|tw| Ok::<_, Error>((self.value(x)?.clone(), tw.get(j)?))),
                tx.map(|tx| Ok((tx.get(j)?, self.value(w)?.clone()))),
            ];
            for product in products.into_iter().flatten() {
                let (lhs, rhs) = product?;
                acc = Some(match acc {
                    Some(z) => ops::matmul_t_add(&lhs, &rhs, &z)?,
                    None => ops::matmul_t(&lhs, &rhs)?,
                });
            }
            let out = acc.ok_or_else(|| internal("a linear layer without tangents"))?;
            Ok(if out.dims() == y.as_slice() {
                out
            } else {
                out.broadcast_as(y.as_slice())?.contiguous()?
            })
        };
        Ok(Some(per_direction(dirs.dim(0)?, linear)?))
    }

    fn forward_matmul(
        &self,
        (a, ta): (&Operand, Option<&Tensor>),
        (b, tb): (&Operand, Option<&Tensor>),
    ) -> Result<Option<Tensor>> {
        let Some(dirs) = [ta, tb].into_iter().flatten().next() else {
            return Ok(None);
        };
        let product = |j: usize| -> Result<Tensor> {
            let left = ta
                .map(|t| -> Result<Tensor> { Ok(ops::matmul(&t.get(j)?, self.value(b)?)?) })
                .transpose()?;
            let right = tb
                .map(|t| -> Result<Tensor> { Ok(ops::matmul(self.value(a)?, &t.get(j)?)?) })
                .transpose()?;
            sum([left, right])?.ok_or_else(|| internal("a product without tangents"))
        };
        Ok(Some(per_direction(dirs.dim(0)?, product)?))
    }

    /// The reverse sweep from `seed: (k, *logits)` at node `out`: with `tangents`, the
    /// tangent adjoints (the HVP); without, the primal adjoints. Returns the adjoints of the
    /// parameters and of the nodes marked in `keep`.
    pub(super) fn reverse(
        &self,
        out: NodeId,
        seed: Tensor,
        sweep: Option<&Sweep>,
        keep: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let mut u: Vec<Option<Tensor>> = vec![None; self.entries.len()];
        u[out] = Some(seed);
        let t = |o: &Operand| -> Option<&Tensor> {
            let id = o.node()?;
            sweep?.tangents.get(id)?.as_ref()
        };
        for id in (0..=out).rev() {
            let Some(uy) = u[id].take() else { continue };
            let entry = &self.entries[id];
            let ybar = entry.adjoint.as_ref();
            match &entry.op {
                Op::Param { .. } => {
                    u[id] = Some(uy);
                    continue;
                }
                Op::Add(a, b) => {
                    for o in [a, b] {
                        if let Some(n) = o.node() {
                            accumulate(&mut u[n], sum_to(&uy, self.shape(n))?)?;
                        }
                    }
                }
                Op::Scale(x, s) => accumulate(&mut u[*x], uy.affine(*s, 0.0)?)?,
                Op::Map(x, map) => match entry.masked_by {
                    Some(input) => {
                        let back = self.masked_pool_transpose(&uy, input)?;
                        accumulate(&mut u[input], back)?
                    }
                    None => {
                        let back = map.transpose_directions(&uy, self.shape(*x))?;
                        accumulate(&mut u[*x], back)?
                    }
                },
                Op::Unary(x, kind) => {
                    let tx = t(&Operand::Node(*x));
                    let back = self.reverse_unary(entry, *x, *kind, &uy, tx)?;
                    accumulate(&mut u[*x], back)?
                }
                Op::Mul(a, b) => {
                    for (this, other) in [(a, b), (b, a)] {
                        let Some(n) = this.node() else { continue };
                        let rank = entry.shape.len();
                        let mut term = uy.broadcast_mul(self.value(other)?)?;
                        if let (Some(ybar), Some(to)) = (ybar, t(other)) {
                            term = (term + lift(to, rank)?.broadcast_mul(ybar)?)?;
                        }
                        accumulate(&mut u[n], sum_to(&term, self.shape(n))?)?;
                    }
                }
                Op::Conv { x, k, shift, .. } => {
                    let shift = shift.as_ref().and_then(Operand::node);
                    let terms = self.reverse_conv(id, &uy, t(x), t(k), shift.is_some())?;
                    for (o, term) in [x.node(), k.node(), shift].into_iter().zip(terms) {
                        if let (Some(n), Some(term)) = (o, term) {
                            accumulate(&mut u[n], term)?;
                        }
                    }
                }
                Op::Linear { x, w, b } => {
                    let [ux, uw] = self.reverse_product(&uy, ybar, (x, t(x)), (w, t(w)), true)?;
                    for (o, term) in [(x, ux), (w, uw)] {
                        if let (Some(n), Some(term)) = (o.node(), term) {
                            accumulate(&mut u[n], term)?;
                        }
                    }
                    if let Some(n) = b.node() {
                        accumulate(&mut u[n], sum_to(&uy, self.shape(n))?)?;
                    }
                }
                Op::MatMul(a, b) => {
                    let [ua, ub] = self.reverse_product(&uy, ybar, (a, t(a)), (b, t(b)), false)?;
                    for (o, term) in [(a, ua), (b, ub)] {
                        if let (Some(n), Some(term)) = (o.node(), term) {
                            accumulate(&mut u[n], term)?;
                        }
                    }
                }
            }
            if keep[id] {
                u[id] = Some(uy);
            }
        }
        Ok(u)
    }

    fn reverse_unary(
        &self,
        entry: &super::Entry,
        x: NodeId,
        kind: Unary,
        uy: &Tensor,
        tx: Option<&Tensor>,
    ) -> Result<Tensor> {
        if kind == Unary::Relu {
            let mask = self.node_value(x)?;
            return per_direction(uy.dim(0)?, |j| Ok(ops::relu_tangent(&uy.get(j)?, mask)?));
        }
        let slope = entry
            .slope
            .as_ref()
            .ok_or_else(|| internal("a nonlinearity without its slope"))?;
        let first = uy.broadcast_mul(slope)?;
        Ok(match (&entry.curvature, tx) {
            (Some(c), Some(tx)) => (first + tx.broadcast_mul(c)?)?,
            _ => first,
        })
    }

    /// `[u_x, u_k, u_s]` of a convolution (`None` for an operand not recorded), with the
    /// second-order terms when an HVP gives the tangents of the input and kernel.
    fn reverse_conv(
        &self,
        id: NodeId,
        uy: &Tensor,
        tx: Option<&Tensor>,
        tk: Option<&Tensor>,
        shift: bool,
    ) -> Result<[Option<Tensor>; 3]> {
        let plan = self.plan(id)?;
        let dirs = uy.dim(0)?;
        let mut parts: [Vec<Tensor>; 3] = Default::default();
        for j in 0..dirs {
            let pick = |t: Option<&Tensor>| t.map(|t| t.get(j)).transpose();
            let (xj, kj) = (pick(tx)?, pick(tk)?);
            let terms = plan.reverse(&uy.get(j)?, xj.as_ref(), kj.as_ref(), shift)?;
            for (part, term) in parts.iter_mut().zip(terms) {
                part.extend(term);
            }
        }
        let stack = |p: &[Tensor]| -> Result<Option<Tensor>> {
            Ok(match p {
                [] => None,
                [one] => Some(one.unsqueeze(0)?),
                _ => Some(Tensor::stack(p, 0)?),
            })
        };
        let [ux, uk, us] = &parts;
        Ok([stack(ux)?, stack(uk)?, stack(us)?])
    }

    /// `[u_a, u_b]` of `y = a·op(b)`, `op` the transpose for a linear layer
    /// (`transposed`: `y = x wᵀ`) and the identity for a matrix product.
    fn reverse_product(
        &self,
        uy: &Tensor,
        ybar: Option<&Tensor>,
        (a, ta): (&Operand, Option<&Tensor>),
        (b, tb): (&Operand, Option<&Tensor>),
        transposed: bool,
    ) -> Result<[Option<Tensor>; 2]> {
        let dirs = uy.dim(0)?;
        // `op(m)` as the second factor of `y = a·op(b)`, and back.
        let op = |m: &Tensor| -> Result<Tensor> { Ok(if transposed { m.clone() } else { m.t()? }) };
        let ua = match a.node() {
            Some(_) => {
                let bv = self.value(b)?;
                Some(per_direction(dirs, |j| {
                    // u_a = u_y·op(b)ᵀ (+ ȳ·op(ḃ)ᵀ); for y = x wᵀ, op(b)ᵀ = w.
                    let first = ops::matmul(&uy.get(j)?, &op(bv)?)?;
                    let second = match (ybar, tb) {
                        (Some(ybar), Some(tb)) => Some(ops::matmul(ybar, &op(&tb.get(j)?)?)?),
                        _ => None,
                    };
                    sum([Some(first), second])?.ok_or_else(|| internal("an empty product"))
                })?)
            }
            None => None,
        };
        let ub = match b.node() {
            Some(_) => {
                let av = self.value(a)?;
                Some(per_direction(dirs, |j| {
                    // u_b: aᵀ·u_y for y = a b; u_yᵀ·x for y = x wᵀ (and likewise with ȧ, ȳ).
                    let pair = |lhs: &Tensor, rhs: &Tensor| -> Result<Tensor> {
                        Ok(if transposed {
                            ops::matmul(&rhs.t()?, lhs)?
                        } else {
                            ops::matmul(&lhs.t()?, rhs)?
                        })
                    };
                    let first = pair(av, &uy.get(j)?)?;
                    let second = match (ybar, ta) {
                        (Some(ybar), Some(ta)) => Some(pair(&ta.get(j)?, ybar)?),
                        _ => None,
                    };
                    sum([Some(first), second])?.ok_or_else(|| internal("an empty product"))
                })?)
            }
            None => None,
        };
        Ok([ua, ub])
    }
}
