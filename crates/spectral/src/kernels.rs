//! Deterministic dense-vector kernels shared by Lanczos, the basis and the trace estimators.
//!
//! Every reduction (dot product, norm) splits the vector into fixed [`CHUNK`]-sized pieces,
//! sums each piece with eight interleaved accumulators, and adds the per-piece partial sums
//! in piece order. The arithmetic therefore never depends on how rayon schedules the pieces,
//! which is what makes results bit-identical for any `RAYON_NUM_THREADS`. Pieces run in
//! parallel only when the vector is long ([`PAR_MIN`]), where it pays.

use rayon::prelude::*;

/// Elements per piece. 1024 f64 values = 8 KiB per vector, so the piece of the vector being
/// orthogonalized stays in L1 cache while the pieces of all basis vectors (800 KiB for 100
/// vectors) stream past it.
pub(crate) const CHUNK: usize = 1024;

/// Vectors at least this long are processed piece-parallel.
pub(crate) const PAR_MIN: usize = 16 * CHUNK;

/// A value a basis can be stored in: `f64`, or `f32` to halve the memory.
pub(crate) trait Scalar: Copy + Send + Sync + 'static {
    /// Widens to f64 (all arithmetic is f64).
    fn get(self) -> f64;
    /// Rounds an f64 to the storage type.
    fn put(x: f64) -> Self;
}

impl Scalar for f64 {
    #[inline(always)]
    fn get(self) -> f64 {
        self
    }
    #[inline(always)]
    fn put(x: f64) -> Self {
        x
    }
}

impl Scalar for f32 {
    #[inline(always)]
    fn get(self) -> f64 {
        f64::from(self)
    }
    #[inline(always)]
    fn put(x: f64) -> Self {
        x as f32
    }
}

/// Dot product of two equal-length short slices with eight interleaved accumulators
/// (fixed order, so deterministic; interleaving lets the compiler vectorize).
#[inline]
pub(crate) fn dot_piece<T: Scalar>(a: &[T], b: &[f64]) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f64; 8];
    let mut ia = a.chunks_exact(8);
    let mut ib = b.chunks_exact(8);
    for (x, y) in (&mut ia).zip(&mut ib) {
        for k in 0..8 {
            acc[k] += x[k].get() * y[k];
        }
    }
    let mut tail = 0.0;
    for (x, y) in ia.remainder().iter().zip(ib.remainder()) {
        tail += x.get() * y;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// Maps every piece of `n` elements to a value with `f` (in parallel when `n` is large) and
/// returns the values in piece order.
pub(crate) fn map_pieces<R: Send>(
    n: usize,
    f: impl Fn(std::ops::Range<usize>) -> R + Sync,
) -> Vec<R> {
    let pieces = n.div_ceil(CHUNK);
    let range = |c: usize| c * CHUNK..((c + 1) * CHUNK).min(n);
    if n >= PAR_MIN {
        (0..pieces).into_par_iter().map(|c| f(range(c))).collect()
    } else {
        (0..pieces).map(|c| f(range(c))).collect()
    }
}

/// Deterministic dot product `aᵀb`.
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    map_pieces(a.len(), |r| dot_piece(&a[r.clone()], &b[r]))
        .into_iter()
        .sum()
}

/// Deterministic Euclidean norm.
pub(crate) fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

/// `y += alpha * x` (elementwise, so deterministic whatever the split).
pub(crate) fn axpy(alpha: f64, x: &[f64], y: &mut [f64]) {
    let body = |(yc, xc): (&mut [f64], &[f64])| {
        for (yi, xi) in yc.iter_mut().zip(xc) {
            *yi += alpha * xi;
        }
    };
    if y.len() >= PAR_MIN {
        y.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(body);
    } else {
        y.chunks_mut(CHUNK).zip(x.chunks(CHUNK)).for_each(body);
    }
}

/// `x *= alpha`.
pub(crate) fn scale(alpha: f64, x: &mut [f64]) {
    if x.len() >= PAR_MIN {
        x.par_iter_mut().for_each(|v| *v *= alpha);
    } else {
        x.iter_mut().for_each(|v| *v *= alpha);
    }
}

/// Mean and standard error (sample standard deviation / √K) of a list of samples, summed
/// in order. The standard error is `None` for fewer than two samples.
pub(crate) fn mean_stderr(samples: &[f64]) -> (f64, Option<f64>) {
    let k = samples.len() as f64;
    let mean = samples.iter().sum::<f64>() / k;
    if samples.len() < 2 {
        return (mean, None);
    }
    let var = samples.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (k - 1.0);
    (mean, Some((var / k).sqrt()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_naive_sum_and_is_split_independent() {
        let n = PAR_MIN + 777;
        let a: Vec<f64> = (0..n)
            .map(|i| ((i * 37 % 101) as f64 - 50.0) / 7.0)
            .collect();
        let b: Vec<f64> = (0..n)
            .map(|i| ((i * 13 % 53) as f64 - 26.0) / 3.0)
            .collect();
        let naive: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        // Relative 1e-13: the sums differ only by summation order.
        assert!((dot(&a, &b) - naive).abs() <= 1e-13 * naive.abs().max(1.0));
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let two = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        assert_eq!(
            one.install(|| dot(&a, &b)).to_bits(),
            two.install(|| dot(&a, &b)).to_bits()
        );
    }

    #[test]
    fn mean_stderr_matches_formula() {
        let (m, s) = mean_stderr(&[1.0, 2.0, 3.0, 6.0]);
        assert_eq!(m, 3.0);
        // sample variance = (4+1+0+9)/3 = 14/3, stderr = sqrt(14/3/4)
        assert!((s.unwrap() - (14.0f64 / 12.0).sqrt()).abs() < 1e-15);
        assert_eq!(mean_stderr(&[5.0]), (5.0, None));
    }
}
