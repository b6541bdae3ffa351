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

/// How the Lanczos basis vectors are stored. Arithmetic is f64 either way.
///
/// Memory for a basis of `m` vectors of dimension `n` is `m * n * bytes`: for ResNet-32
/// (n ≈ 0.46 M parameters) and m = 100, 370 MB in f64 and 185 MB in f32. f32 storage
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

    /// Memory of `m` basis vectors of dimension `n`: `m * n * bytes`.
    pub fn memory(self, n: usize, m: usize) -> usize {
        n.saturating_mul(m).saturating_mul(self.bytes())
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

    /// Projections `h = Vᵀ w`.
    fn project(&self, w: &mut [f64]) -> Vec<f64> {
        let k = self.len;
        let partials = dispatch!(&self.store, b => zip_pieces(w, b, |wc, blk| piece_dots(wc, blk)));
        sum_partials(partials, k)
    }

    /// Classical Gram-Schmidt done twice ("twice is enough", Giraud et al. 2005):
    /// `w ← (I − V Vᵀ)² w`, and returns ‖w‖ afterwards. Three passes over the basis:
    /// project; subtract and project again (fused per piece, the piece stays in cache);
    /// subtract again and accumulate ‖w‖² (fused).
    pub(crate) fn orthogonalize(&self, w: &mut [f64]) -> f64 {
        let k = self.len;
        if k == 0 {
            return crate::kernels::norm(w);
        }
        let h1 = self.project(w);
        let partials = dispatch!(&self.store, b => zip_pieces(w, b, |wc, blk| {
            piece_subtract(wc, blk, &h1);
            piece_dots(wc, blk)
        }));
        let h2 = sum_partials(partials, k);
        let squares = dispatch!(&self.store, b => zip_pieces(w, b, |wc, blk| {
            piece_subtract(wc, blk, &h2);
            dot_piece(wc, wc)
        }));
        squares.into_iter().sum::<f64>().sqrt()
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
            let norm = basis.orthogonalize(&mut w);
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
}
