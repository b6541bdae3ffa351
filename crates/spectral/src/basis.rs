//! Storage of a Krylov basis and the Gram-Schmidt kernels that run over it.
//!
//! The basis is kept piece-major: the vectors are cut into [`CHUNK`]-element pieces and the
//! pieces of all vectors covering the same index range lie together. A reorthogonalization
//! pass then streams one contiguous block per piece, each piece works on its own slice of
//! the vector being orthogonalized, and pieces run in parallel with rayon when the
//! dimension is large; reductions add per-piece partial sums in piece order, so results are
//! bit-identical whatever the thread count.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::kernels::{dot_piece, Scalar, CHUNK, PAR_MIN};

/// The Daniel–Gragg–Kaufman–Stewart reorthogonalization threshold η = 1/√2 (Daniel, Gragg,
/// Kaufman & Stewart 1976, "Reorthogonalization and stable algorithms for updating the
/// Gram-Schmidt QR factorization", Math. Comp. 30; ARPACK uses 0.717).
///
/// One classical Gram-Schmidt round `w' = w − V Vᵀ w` leaves in `w'` components along V of
/// order `ε ‖w‖` (rounding) plus `δ ‖Vᵀw‖` (V orthonormal only to δ). As long as it cancels
/// little, `‖w'‖ ≥ η ‖w‖`, those are of order `√2 (ε + δ)` relative to `‖w'‖`: `w'` is as
/// orthogonal as V itself, and a second round would change nothing that matters. When it
/// cancels more, the same absolute errors become large relative to the small `‖w'‖`, and
/// one more round brings them back to rounding level; by "twice is enough" (Kahan, in
/// Parlett, The Symmetric Eigenvalue Problem; Giraud, Langou & Rozložník 2005) two rounds
/// always do, so there is never a third. In Lanczos the test almost always passes:
/// the three-term recurrence has already removed the large components, so a typical step
/// costs two passes over the basis instead of the three of unconditional CGS2.
pub(crate) const DGKS_ETA: f64 = std::f64::consts::FRAC_1_SQRT_2;

/// The outcome of [`Basis::orthogonalize`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Orthogonalized {
    /// ‖w‖ after orthogonalization.
    pub(crate) norm: f64,
    /// Whether the DGKS test failed and a second Gram-Schmidt round ran.
    pub(crate) second_round: bool,
}

/// How the Lanczos basis vectors are stored. Arithmetic is f64 either way.
///
/// Memory for a basis of `k` vectors of dimension `n` is `k * n * bytes`: for ResNet-32
/// (n ≈ 0.46 M parameters) and 100 steps, 370 MB in f64 and 185 MB in f32. f32 storage
/// limits orthogonality, and with it the accuracy of Ritz values and vectors, to about
/// 1e-7 relative: fine for densities, not for eigenvalues to 1e-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BasisPrecision {
    /// 8 bytes per entry.
    #[default]
    F64,
    /// 4 bytes per entry.
    F32,
}

impl BasisPrecision {
    /// Bytes per stored entry.
    pub fn bytes(self) -> usize {
        match self {
            BasisPrecision::F64 => 8,
            BasisPrecision::F32 => 4,
        }
    }

    /// The unit roundoff of the storage: orthogonality, and so the Ritz values, are good
    /// to about this relative accuracy.
    pub fn unit_roundoff(self) -> f64 {
        match self {
            BasisPrecision::F64 => f64::EPSILON,
            BasisPrecision::F32 => f64::from(f32::EPSILON),
        }
    }

    /// Memory of `vectors` basis vectors of dimension `n`: `vectors * n * bytes`.
    pub fn memory(self, n: usize, vectors: usize) -> usize {
        n.saturating_mul(vectors).saturating_mul(self.bytes())
    }
}

#[derive(Debug, Clone)]
enum Store {
    F64(Vec<Vec<f64>>),
    F32(Vec<Vec<f32>>),
}

/// Runs `$body` with `$b` bound to the blocks of either precision.
macro_rules! dispatch {
    ($store:expr, $b:ident => $body:expr) => {
        match $store {
            Store::F64($b) => $body,
            Store::F32($b) => $body,
        }
    };
}

/// An orthonormal set of vectors (a Lanczos basis), stored in f64 or f32.
#[derive(Debug, Clone)]
pub struct Basis {
    dim: usize,
    len: usize,
    store: Store,
}

/// Applies `f` to every (piece of `w`, block) pair, in parallel when `w` is long, and
/// returns the results in piece order.
fn zip_pieces<T: Scalar, R: Send>(
    w: &mut [f64],
    blocks: &[Vec<T>],
    f: impl Fn(&mut [f64], &[T]) -> R + Sync + Send,
) -> Vec<R> {
    if w.len() >= PAR_MIN {
        w.par_chunks_mut(CHUNK)
            .zip(blocks.par_iter())
            .map(|(wc, b)| f(wc, b))
            .collect()
    } else {
        w.chunks_mut(CHUNK)
            .zip(blocks.iter())
            .map(|(wc, b)| f(wc, b))
            .collect()
    }
}

/// Adds per-piece partial vectors in piece order.
fn sum_partials(partials: Vec<Vec<f64>>, k: usize) -> Vec<f64> {
    let mut total = vec![0.0; k];
    for part in partials {
        for (t, p) in total.iter_mut().zip(part) {
            *t += p;
        }
    }
    total
}

/// Partial projections `V_iᵀ w` of one piece.
fn piece_dots<T: Scalar>(wc: &[f64], block: &[T]) -> Vec<f64> {
    let l = wc.len();
    block.chunks_exact(l).map(|v| dot_piece(v, wc)).collect()
}

/// `w -= Σ_i h_i V_i` on one piece.
fn piece_subtract<T: Scalar>(wc: &mut [f64], block: &[T], h: &[f64]) {
    let l = wc.len();
    for (v, &hi) in block.chunks_exact(l).zip(h) {
        for (x, vi) in wc.iter_mut().zip(v) {
            *x -= hi * vi.get();
        }
    }
}

/// `out = Σ_i c_i V_i` on one piece.
fn piece_combine<T: Scalar>(out: &mut [f64], block: &[T], c: &[f64]) {
    out.fill(0.0);
    let l = out.len();
    for (v, &ci) in block.chunks_exact(l).zip(c) {
        for (x, vi) in out.iter_mut().zip(v) {
            *x += ci * vi.get();
        }
    }
}

impl Basis {
    /// An empty basis for vectors of dimension `dim`, with room for `capacity` vectors
    /// reserved up front (so memory is exactly `capacity · dim · bytes`, not a doubling
    /// overshoot).
    pub(crate) fn new(dim: usize, precision: BasisPrecision, capacity: usize) -> Self {
        fn blocks<T>(dim: usize, capacity: usize) -> Vec<Vec<T>> {
            (0..dim.div_ceil(CHUNK))
                .map(|c| Vec::with_capacity(capacity * (dim - c * CHUNK).min(CHUNK)))
                .collect()
        }
        let store = match precision {
            BasisPrecision::F64 => Store::F64(blocks(dim, capacity)),
            BasisPrecision::F32 => Store::F32(blocks(dim, capacity)),
        };
        Self { dim, len: 0, store }
    }

    /// Dimension of the vectors.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the basis holds no vector.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Storage precision.
    pub fn precision(&self) -> BasisPrecision {
        match self.store {
            Store::F64(_) => BasisPrecision::F64,
            Store::F32(_) => BasisPrecision::F32,
        }
    }

    /// Memory held by the vectors: `len * dim * bytes`.
    pub fn bytes(&self) -> usize {
        self.precision().memory(self.dim, self.len)
    }

    /// Vector `i` widened to f64, or `None` if `i >= len`.
    pub fn vector(&self, i: usize) -> Option<Vec<f64>> {
        (i < self.len).then(|| {
            let mut e = vec![0.0; self.len];
            e[i] = 1.0;
            self.combine(&e)
        })
    }

    /// The linear combination `Σ_i c_i v_i` (a Ritz vector when `c` is an eigenvector of the
    /// projected matrix).
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] if `c.len() != len`.
    pub fn combination(&self, c: &[f64]) -> Result<Vec<f64>, Error> {
        if c.len() != self.len {
            return Err(Error::DimensionMismatch {
                expected: self.len,
                got: c.len(),
            });
        }
        Ok(self.combine(c))
    }

    fn combine(&self, c: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; self.dim];
        dispatch!(&self.store, b => zip_pieces(&mut out, b, |oc, blk| piece_combine(oc, blk, c)));
        out
    }

    /// Appends `v` (assumed orthonormal to the basis), rounded to the storage precision.
    pub(crate) fn push(&mut self, v: &[f64]) {
        fn go<T: Scalar>(blocks: &mut [Vec<T>], v: &[f64]) {
            let body = |(b, vc): (&mut Vec<T>, &[f64])| b.extend(vc.iter().map(|&x| T::put(x)));
            if v.len() >= PAR_MIN {
                blocks
                    .par_iter_mut()
                    .zip(v.par_chunks(CHUNK))
                    .for_each(body);
            } else {
                blocks.iter_mut().zip(v.chunks(CHUNK)).for_each(body);
            }
        }
        dispatch!(&mut self.store, b => go(b, v));
        self.len += 1;
    }

    /// Projections `h = Vᵀ w` and `‖w‖²`, in one pass over the basis.
    fn project_and_norm(&self, w: &mut [f64]) -> (Vec<f64>, f64) {
        let k = self.len;
        let partials = dispatch!(&self.store, b => zip_pieces(w, b, |wc, blk| {
            (piece_dots(wc, blk), dot_piece(wc, wc))
        }));
        let (dots, squares): (Vec<_>, Vec<_>) = partials.into_iter().unzip();
        (sum_partials(dots, k), squares.into_iter().sum())
    }

    /// `w −= V h` and returns the new `‖w‖`, in one pass over the basis.
    fn subtract_and_norm(&self, w: &mut [f64], h: &[f64]) -> f64 {
        let squares = dispatch!(&self.store, b => zip_pieces(w, b, |wc, blk| {
            piece_subtract(wc, blk, h);
            dot_piece(wc, wc)
        }));
        squares.into_iter().sum::<f64>().sqrt()
    }

    /// Orthogonalizes `w` against the basis, `w ← (I − V Vᵀ) w`, by classical Gram-Schmidt
    /// with the Daniel–Gragg–Kaufman–Stewart test (as ARPACK does): one round costs two
    /// passes over the basis (project and accumulate ‖w‖²; subtract and accumulate the new
    /// ‖w‖²), and a second round follows only when the first removed more than half of ‖w‖²,
    /// `‖w_after‖ < DGKS_ETA · ‖w_before‖` (see [`DGKS_ETA`] for why one round suffices
    /// otherwise). Returns the final ‖w‖ and whether the second round ran.
    pub(crate) fn orthogonalize(&self, w: &mut [f64]) -> Orthogonalized {
        if self.len == 0 {
            return Orthogonalized {
                norm: crate::kernels::norm(w),
                second_round: false,
            };
        }
        let (h, before_sq) = self.project_and_norm(w);
        let norm = self.subtract_and_norm(w, &h);
        // The DGKS test. A NaN passes it: no second round, the caller reports the NaN.
        if norm >= DGKS_ETA * before_sq.sqrt() || norm.is_nan() {
            return Orthogonalized {
                norm,
                second_round: false,
            };
        }
        let (h, _) = self.project_and_norm(w);
        Orthogonalized {
            norm: self.subtract_and_norm(w, &h),
            second_round: true,
        }
    }

    /// Replaces the basis by `p` combinations `u_k = Σ_i coeffs[k][i] v_i` (a thick restart),
    /// in place piece by piece, so no second basis is allocated.
    pub(crate) fn recombine(&mut self, coeffs: &[Vec<f64>]) {
        fn go<T: Scalar>(blocks: &mut [Vec<T>], len: usize, coeffs: &[Vec<f64>]) {
            let body = |b: &mut Vec<T>| {
                let l = b.len() / len;
                let mut piece = vec![0.0; l];
                // Keep the reserved capacity for the vectors appended after the restart.
                let mut out = Vec::with_capacity(b.capacity().max(coeffs.len() * l));
                for c in coeffs {
                    piece_combine(&mut piece, b, c);
                    out.extend(piece.iter().map(|&x| T::put(x)));
                }
                *b = out;
            };
            if blocks.len() * CHUNK >= PAR_MIN {
                blocks.par_iter_mut().for_each(body);
            } else {
                blocks.iter_mut().for_each(body);
            }
        }
        let len = self.len;
        dispatch!(&mut self.store, b => go(b, len, coeffs));
        self.len = coeffs.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(n: usize, i: usize) -> Vec<f64> {
        let mut e = vec![0.0; n];
        e[i] = 1.0;
        e
    }

    #[test]
    fn orthogonalize_removes_components_for_both_precisions() {
        let n = 2 * CHUNK + 5;
        for precision in [BasisPrecision::F64, BasisPrecision::F32] {
            let mut basis = Basis::new(n, precision, 2);
            basis.push(&unit(n, 0));
            basis.push(&unit(n, CHUNK + 3));
            let mut w: Vec<f64> = (0..n).map(|i| 1.0 + i as f64).collect();
            let expected = {
                let mut e = w.clone();
                e[0] = 0.0;
                e[CHUNK + 3] = 0.0;
                e
            };
            let Orthogonalized { norm, second_round } = basis.orthogonalize(&mut w);
            assert!(!second_round);
            assert_eq!(w, expected);
            assert!((norm - crate::kernels::norm(&expected)).abs() < 1e-12 * norm);
            assert_eq!(basis.bytes(), 2 * n * precision.bytes());
            assert_eq!(basis.vector(1).unwrap(), unit(n, CHUNK + 3));
            assert!(basis.vector(2).is_none());
        }
    }

    #[test]
    fn recombine_and_combination_agree() {
        let n = 3 * CHUNK;
        let mut basis = Basis::new(n, BasisPrecision::F64, 3);
        for i in 0..3 {
            basis.push(&unit(n, i * CHUNK + i));
        }
        let c = vec![0.6, 0.0, 0.8];
        let y = basis.combination(&c).unwrap();
        assert!(basis.combination(&[1.0]).is_err());
        basis.recombine(&[c, vec![0.0, 1.0, 0.0]]);
        assert_eq!(basis.len(), 2);
        assert_eq!(basis.vector(0).unwrap(), y);
        assert_eq!(basis.vector(1).unwrap(), unit(n, CHUNK + 1));
    }

    /// Three dense orthonormal vectors spanning several pieces: DCT-II basis vectors
    /// `√(2/n) cos(π (i + ½) k / n)` for k = 1, 2, 3 (orthonormal to rounding), so a projection
    /// is not exact as it is for unit vectors.
    fn dct_basis(n: usize) -> (Basis, Vec<Vec<f64>>) {
        let vectors: Vec<Vec<f64>> = (1..=3)
            .map(|k| {
                (0..n)
                    .map(|i| {
                        let angle = std::f64::consts::PI * (i as f64 + 0.5) * k as f64 / n as f64;
                        (2.0 / n as f64).sqrt() * angle.cos()
                    })
                    .collect()
            })
            .collect();
        let mut basis = Basis::new(n, BasisPrecision::F64, 3);
        for v in &vectors {
            basis.push(v);
        }
        (basis, vectors)
    }

    /// A fixed vector with components both in and out of the DCT basis's span.
    fn wiggle(n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| ((i * 7919 % 1013) as f64 / 1013.0 - 0.5) + (i as f64 * 0.01).sin())
            .collect()
    }

    /// `max_k |v_kᵀ w| / ‖w‖`.
    fn relative_overlap(vectors: &[Vec<f64>], w: &[f64]) -> f64 {
        let norm = crate::kernels::norm(w);
        vectors
            .iter()
            .map(|v| crate::kernels::dot(v, w).abs() / norm)
            .fold(0.0, f64::max)
    }

    #[test]
    fn second_round_runs_when_w_is_nearly_in_the_span() {
        let n = 2 * CHUNK + 5;
        let (basis, vectors) = dct_basis(n);
        // w = v_0 + 1e-10 e: one round cancels all but ~1e-10 of w, leaving rounding errors
        // of ~1e-16 along V, ~1e-6 relative to what remains.
        let e = wiggle(n);
        let mut w: Vec<f64> = vectors[0]
            .iter()
            .zip(&e)
            .map(|(v, e)| v + 1e-10 * e)
            .collect();
        let mut once = w.clone();
        let (h, _) = basis.project_and_norm(&mut once);
        basis.subtract_and_norm(&mut once, &h);
        let one_round = relative_overlap(&vectors, &once);
        assert!(one_round > 1e-10, "one round already gives {one_round:e}");
        let out = basis.orthogonalize(&mut w);
        assert!(out.second_round);
        let overlap = relative_overlap(&vectors, &w);
        assert!(overlap <= 1e-14, "{overlap:e} after the second round");
        // The returned norm is that of the final w, summed in piece order as `norm` does.
        assert_eq!(out.norm.to_bits(), crate::kernels::norm(&w).to_bits());
        // What remains is 1e-10 · (I − V Vᵀ) e.
        let mut expected: Vec<f64> = e.iter().map(|x| 1e-10 * x).collect();
        for v in &vectors {
            crate::kernels::axpy(-crate::kernels::dot(v, &expected), v, &mut expected);
        }
        let error = w
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(error <= 1e-6 * crate::kernels::norm(&expected), "{error:e}");
    }

    #[test]
    fn no_second_round_when_w_is_nearly_orthogonal() {
        let n = 2 * CHUNK + 5;
        let (basis, vectors) = dct_basis(n);
        let mut w = wiggle(n);
        // Make w nearly orthogonal to V: remove its projections, add back a little of v_1.
        for v in &vectors {
            crate::kernels::axpy(-crate::kernels::dot(v, &w), v, &mut w);
        }
        crate::kernels::axpy(1e-3, &vectors[1], &mut w);
        let before = crate::kernels::norm(&w);
        let out = basis.orthogonalize(&mut w);
        assert!(!out.second_round);
        assert!((out.norm / before - 1.0).abs() < 1e-6);
        let overlap = relative_overlap(&vectors, &w);
        assert!(overlap <= 1e-15, "{overlap:e} after one round");
    }
}
