//! The linear maps the models apply to activations and parameters, as named operations with
//! their transposes.
//!
//! A linear map `y = M x` has the tangent `ẏ = M ẋ` and the adjoint `x̄ = Mᵀ ȳ`. Written as a
//! closure (`Value::linear`) only the first is available; naming the map lets the
//! linearized HVP ([`linearized`](crate::linearized)) run it backwards too. Every map here
//! acts on one primal-shaped tensor ([`LinearOp::apply`]) or on a stack of `k` tangents or
//! adjoints with a leading direction axis, `(k, *shape)` ([`LinearOp::apply_directions`],
//! [`LinearOp::transpose_directions`]).

use candle_core::{Result as CResult, Tensor};

use crate::linearized::pool;
use crate::ops;

/// A named linear map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinearOp {
    /// Reshape to the given shape (same element count).
    Reshape(Vec<usize>),
    /// Sum over the given axes, keeping them as size 1.
    SumKeepdim(Vec<usize>),
    /// Mean over the given axes, keeping them as size 1.
    MeanKeepdim(Vec<usize>),
    /// 2×2 average pooling with stride 2 of `(N, C, H, W)`: `(N, C, ⌊H/2⌋, ⌊W/2⌋)`.
    AvgPool2,
    /// Mean over the spatial axes of `(N, C, H, W)`: `(N, C)`.
    SpatialMean,
    /// The option-A ResNet shortcut: every second row and column of `(N, C, H, W)`, then
    /// `pad` zero channels on each side: `(N, C + 2·pad, ⌈H/2⌉, ⌈W/2⌉)`.
    ShortcutA {
        /// Zero channels added on each side.
        pad: usize,
    },
}

impl LinearOp {
    /// `M x` for one tensor of the input shape.
    pub fn apply(&self, x: &Tensor) -> CResult<Tensor> {
        match self {
            LinearOp::Reshape(shape) => x.reshape(shape.as_slice()),
            LinearOp::SumKeepdim(dims) => x.sum_keepdim(dims.as_slice()),
            LinearOp::MeanKeepdim(dims) => x.mean_keepdim(dims.as_slice()),
            LinearOp::AvgPool2 => ops::avg_pool2(x),
            LinearOp::SpatialMean => x.mean((2, 3)),
            LinearOp::ShortcutA { pad } => subsample_pad(x, *pad),
        }
    }

    /// `M` applied to each of `k` stacked tensors `t: (k, *in_shape)`, giving
    /// `(k, *out_shape)`. The per-sample maps run once on the `k·N` samples.
    pub fn apply_directions(&self, t: &Tensor) -> CResult<Tensor> {
        let k = t.dim(0)?;
        match self {
            LinearOp::Reshape(shape) => t.reshape(with_leading(k, shape)),
            LinearOp::SumKeepdim(dims) => t.sum_keepdim(shifted(dims)),
            LinearOp::MeanKeepdim(dims) => t.mean_keepdim(shifted(dims)),
            LinearOp::AvgPool2 | LinearOp::SpatialMean | LinearOp::ShortcutA { .. } => {
                let y = self.apply(&merge_leading(t)?)?;
                let mut dims = vec![k, t.dim(1)?];
                dims.extend_from_slice(&y.dims()[1..]);
                y.reshape(dims)
            }
        }
    }

    /// `Mᵀ` applied to each of `k` stacked tensors `u: (k, *out_shape)`, for an input of
    /// shape `in_shape`, giving `(k, *in_shape)` (contiguous).
    pub fn transpose_directions(&self, u: &Tensor, in_shape: &[usize]) -> CResult<Tensor> {
        let k = u.dim(0)?;
        let full = with_leading(k, in_shape);
        match self {
            LinearOp::Reshape(_) => u.reshape(full),
            LinearOp::SumKeepdim(_) => u.broadcast_as(full)?.contiguous(),
            LinearOp::MeanKeepdim(dims) => {
                let count: usize = dims.iter().map(|&d| in_shape[d]).product();
                u.broadcast_as(full)?.affine(1.0 / count.max(1) as f64, 0.0)
            }
            LinearOp::SpatialMean => {
                let (h, w) = (in_shape[2], in_shape[3]);
                let mut keep = u.dims().to_vec();
                keep.extend([1, 1]);
                u.reshape(keep)?
                    .broadcast_as(full)?
                    .affine(1.0 / (h * w).max(1) as f64, 0.0)
            }
            LinearOp::AvgPool2 => {
                let merged = merge_leading(u)?;
                let (_, _, ho, wo) = merged.dims4()?;
                let (h, w) = (in_shape[2], in_shape[3]);
                if let Some(spread) = pool::avg_pool2_transpose(&merged, (h, w), None)? {
                    return spread.reshape(full);
                }
                let up = merged
                    .upsample_nearest2d(2 * ho, 2 * wo)?
                    .affine(0.25, 0.0)?
                    .pad_with_zeros(2, 0, h - 2 * ho)?
                    .pad_with_zeros(3, 0, w - 2 * wo)?;
                up.reshape(full)
            }
            LinearOp::ShortcutA { pad } => {
                let merged = merge_leading(u)?;
                let (n, _, ho, wo) = merged.dims4()?;
                let (c, h, w) = (in_shape[1], in_shape[2], in_shape[3]);
                merged
                    .narrow(1, *pad, c)?
                    .reshape((n * c, ho, 1, wo, 1))?
                    .pad_with_zeros(2, 0, 1)?
                    .pad_with_zeros(4, 0, 1)?
                    .reshape((n, c, 2 * ho, 2 * wo))?
                    .narrow(2, 0, h)?
                    .narrow(3, 0, w)?
                    .contiguous()?
                    .reshape(full)
            }
        }
    }
}

/// `[k, *shape]`.
fn with_leading(k: usize, shape: &[usize]) -> Vec<usize> {
    let mut dims = Vec::with_capacity(shape.len() + 1);
    dims.push(k);
    dims.extend_from_slice(shape);
    dims
}

/// The axes `dims` of a tensor seen behind a leading direction axis.
fn shifted(dims: &[usize]) -> Vec<usize> {
    dims.iter().map(|d| d + 1).collect()
}

/// `(k, N, …) → (k·N, …)`.
fn merge_leading(t: &Tensor) -> CResult<Tensor> {
    let dims = t.dims();
    let mut merged = vec![dims[0] * dims[1]];
    merged.extend_from_slice(&dims[2..]);
    t.reshape(merged)
}

/// `F.pad(t[:, :, ::2, ::2], (0, 0, 0, 0, pad, pad))`. Strided slicing has no candle op: an
/// odd side is zero-padded to even, then `reshape (N, C, H/2, 2, W/2, 2)` and `narrow`
/// index 0 of the two inner axes (both differentiable).
fn subsample_pad(t: &Tensor, pad: usize) -> CResult<Tensor> {
    let (_, _, h, w) = t.dims4()?;
    let t = t.pad_with_zeros(2, 0, h % 2)?.pad_with_zeros(3, 0, w % 2)?;
    let (n, c, h, w) = t.dims4()?;
    t.reshape((n, c, h / 2, 2, w / 2, 2))?
        .narrow(3, 0, 1)?
        .narrow(5, 0, 1)?
        .reshape((n, c, h / 2, w / 2))?
        .pad_with_zeros(1, pad, pad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu_ops::test_util::{bits, dot, seeded};
    use candle_core::DType;

    /// For every map: the batched application equals the single one per direction, and
    /// `⟨M x, u⟩ = ⟨x, Mᵀ u⟩` to f64 rounding, odd sides included.
    #[test]
    fn transposes_are_adjoint_and_directions_are_independent() {
        let cases = [
            (LinearOp::Reshape(vec![3, 2, 35]), vec![2, 3, 5, 7]),
            (LinearOp::SumKeepdim(vec![0, 2, 3]), vec![2, 3, 5, 7]),
            (LinearOp::MeanKeepdim(vec![0, 2, 3]), vec![2, 3, 5, 7]),
            (LinearOp::AvgPool2, vec![2, 3, 5, 7]),
            (LinearOp::AvgPool2, vec![2, 3, 4, 6]),
            (LinearOp::SpatialMean, vec![2, 3, 5, 7]),
            (LinearOp::ShortcutA { pad: 2 }, vec![2, 3, 5, 7]),
            (LinearOp::ShortcutA { pad: 1 }, vec![2, 3, 4, 4]),
        ];
        for (op, shape) in cases {
            let k = 3;
            let x = seeded(&with_leading(k, &shape), 1, DType::F64);
            let y = op.apply_directions(&x).unwrap();
            for j in 0..k {
                let single = op.apply(&x.get(j).unwrap()).unwrap();
                assert_eq!(
                    bits(&y.get(j).unwrap()),
                    bits(&single),
                    "{op:?} direction {j}"
                );
            }
            let u = seeded(y.dims(), 2, DType::F64);
            let back = op.transpose_directions(&u, &shape).unwrap();
            assert_eq!(back.dims(), x.dims(), "{op:?}");
            let (lhs, rhs) = (dot(&y, &u), dot(&x, &back));
            assert!(
                (lhs - rhs).abs() <= 1e-12 * lhs.abs().max(1.0),
                "{op:?}: <Mx, u> = {lhs}, <x, M^T u> = {rhs}"
            );
        }
    }
}
