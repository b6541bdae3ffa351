//! The [`LinearOperator`] abstraction, a dense symmetric implementation for tests and the
//! CLI, and [`Counted`], a wrapper that counts applications and times them.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nalgebra::DMatrix;
use rayon::prelude::*;

use crate::error::{Error, OperatorError};
use crate::kernels::dot_piece;

/// A square linear map `x ↦ A x` on `f64` vectors, seen only through its products.
///
/// Applications are the cost unit of every estimator in this crate (for a Hessian they are
/// Hessian-vector products over a whole data set), so each estimator reports how many it
/// made. The output buffer is caller-owned, as in faer's `LinOp`, so Lanczos makes hundreds
/// of products without allocating. `Sync` lets probes run on several threads.
pub trait LinearOperator: Sync {
    /// The dimension `n` (A is n × n).
    fn dim(&self) -> usize;

    /// Writes `A x` into `y`. Both slices have length [`dim`](Self::dim); `y`'s previous
    /// content is irrelevant. Implementations must be deterministic (same `x` → same bits)
    /// for the estimators' results to be reproducible.
    fn apply(&self, x: &[f64], y: &mut [f64]) -> Result<(), OperatorError>;

    /// Writes `A xs[j]` into `ys[j]` for every `j` (a block of vectors of length
    /// [`dim`](Self::dim), `xs` and `ys` of one length): the product of several vectors in
    /// one sweep, for estimators that advance several Krylov runs in lockstep. The default
    /// applies them one by one; an operator that shares work between vectors (a network
    /// Hessian's forward pass) overrides it. Each `ys[j]` must equal what
    /// [`apply`](Self::apply) gives for `xs[j]`, bit for bit, for the estimators' results
    /// not to depend on how products are grouped.
    fn apply_block(&self, xs: &[&[f64]], ys: &mut [&mut [f64]]) -> Result<(), OperatorError> {
        if xs.len() != ys.len() {
            return Err(OperatorError::new(format!(
                "block of {} inputs and {} outputs",
                xs.len(),
                ys.len()
            )));
        }
        for (x, y) in xs.iter().zip(ys.iter_mut()) {
            self.apply(x, y)?;
        }
        Ok(())
    }

    /// Whether A is symmetric (self-adjoint), as curvlinops' `SELF_ADJOINT` flag. Every
    /// estimator here needs it and refuses an operator that says `false`.
    fn is_symmetric(&self) -> bool {
        true
    }

    /// The relative accuracy of one application, as a unit roundoff `u`: the computed
    /// `A x` is taken to be within a small multiple of `u ‖A‖ ‖x‖` of the exact product.
    /// Residual bounds widen by `j · u · ‖A‖` for a basis of `j` vectors, so an operator
    /// evaluated in f32 (an f32 network's HVP) must say so, or its bounds would claim f64
    /// accuracy. Defaults to f64's.
    fn unit_roundoff(&self) -> f64 {
        f64::EPSILON
    }
}

impl<O: LinearOperator + ?Sized> LinearOperator for &O {
    fn dim(&self) -> usize {
        (**self).dim()
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) -> Result<(), OperatorError> {
        (**self).apply(x, y)
    }
    fn apply_block(&self, xs: &[&[f64]], ys: &mut [&mut [f64]]) -> Result<(), OperatorError> {
        (**self).apply_block(xs, ys)
    }
    fn is_symmetric(&self) -> bool {
        (**self).is_symmetric()
    }
    fn unit_roundoff(&self) -> f64 {
        (**self).unit_roundoff()
    }
}

/// Checks that an operator can be handed to an estimator: non-empty and symmetric.
pub(crate) fn check_operator<O: LinearOperator + ?Sized>(op: &O) -> Result<usize, Error> {
    if !op.is_symmetric() {
        return Err(Error::NotSymmetricOperator);
    }
    match op.dim() {
        0 => Err(Error::EmptyOperator),
        n => Ok(n),
    }
}

/// Applies `op`, turning its failure into [`Error::Operator`] with the 1-based index of this
/// application (`done` = applications made before it).
pub(crate) fn apply<O: LinearOperator + ?Sized>(
    op: &O,
    x: &[f64],
    y: &mut [f64],
    done: usize,
) -> Result<(), Error> {
    op.apply(x, y).map_err(|source| Error::Operator {
        application: done + 1,
        source,
    })
}

/// Applies `op` to a block, turning its failure into [`Error::Operator`] with the 1-based
/// index of the block's first application (`done` = applications made before it).
pub(crate) fn apply_block<O: LinearOperator + ?Sized>(
    op: &O,
    xs: &[&[f64]],
    ys: &mut [&mut [f64]],
    done: usize,
) -> Result<(), Error> {
    op.apply_block(xs, ys).map_err(|source| Error::Operator {
        application: done + 1,
        source,
    })
}

/// A dense symmetric matrix as a [`LinearOperator`]: the exact reference for tests and the
/// operator behind `saddlescope spectrum --matrix`.
///
/// The constructor checks squareness, finiteness and symmetry to [`Self::SYMMETRY_TOL`]
/// relative to the largest entry, then stores the exactly symmetric part (A + Aᵀ)/2 so
/// that Lanczos sees a truly symmetric operator. `apply` computes each `y_i` as one
/// sequential dot product (rows in parallel), so it is deterministic.
#[derive(Debug, Clone)]
pub struct DenseSymmetric {
    matrix: DMatrix<f64>,
}

impl DenseSymmetric {
    /// Largest accepted asymmetry `max |a_ij − a_ji|`, relative to `max |a_ij|`.
    pub const SYMMETRY_TOL: f64 = 1e-8;

    /// Wraps a square, finite matrix that is symmetric to [`Self::SYMMETRY_TOL`].
    ///
    /// # Errors
    /// [`Error::NotSquare`], [`Error::NonFiniteEntry`], [`Error::NotSymmetric`] (with the
    /// worst pair), [`Error::EmptyOperator`] for a 0 × 0 matrix.
    pub fn new(matrix: DMatrix<f64>) -> Result<Self, Error> {
        let (rows, cols) = matrix.shape();
        if rows != cols {
            return Err(Error::NotSquare { rows, cols });
        }
        if rows == 0 {
            return Err(Error::EmptyOperator);
        }
        let mut scale = 0.0f64;
        for j in 0..cols {
            for i in 0..rows {
                let value = matrix[(i, j)];
                if !value.is_finite() {
                    return Err(Error::NonFiniteEntry {
                        row: i,
                        col: j,
                        value,
                    });
                }
                scale = scale.max(value.abs());
            }
        }
        let mut worst = (0, 0, 0.0f64);
        for j in 0..cols {
            for i in j + 1..rows {
                let diff = (matrix[(i, j)] - matrix[(j, i)]).abs();
                if diff > worst.2 {
                    worst = (i, j, diff);
                }
            }
        }
        if worst.2 > Self::SYMMETRY_TOL * scale {
            let (row, col, diff) = worst;
            return Err(Error::NotSymmetric {
                row,
                col,
                diff,
                scale,
                tol: Self::SYMMETRY_TOL,
            });
        }
        let transposed = matrix.transpose();
        Ok(Self {
            matrix: (matrix + transposed) * 0.5,
        })
    }

    /// Same as [`new`](Self::new) from a row-major buffer of `rows * cols` values (what a
    /// C-order `.npy` file holds).
    ///
    /// # Errors
    /// [`Error::BufferLength`] if `data.len() != rows * cols`, then as [`new`](Self::new).
    pub fn from_row_major(rows: usize, cols: usize, data: &[f64]) -> Result<Self, Error> {
        let expected = rows.saturating_mul(cols);
        if data.len() != expected {
            return Err(Error::BufferLength {
                rows,
                cols,
                expected,
                got: data.len(),
            });
        }
        Self::new(DMatrix::from_row_slice(rows, cols, data))
    }

    /// The stored (symmetrized) matrix.
    pub fn matrix(&self) -> &DMatrix<f64> {
        &self.matrix
    }
}

impl LinearOperator for DenseSymmetric {
    fn dim(&self) -> usize {
        self.matrix.nrows()
    }

    fn apply(&self, x: &[f64], y: &mut [f64]) -> Result<(), OperatorError> {
        let n = self.dim();
        if x.len() != n || y.len() != n {
            return Err(OperatorError::new(format!(
                "dense operator of dimension {n} got input length {} and output length {}",
                x.len(),
                y.len()
            )));
        }
        // Column i of a symmetric matrix is row i, and columns are contiguous.
        let row = |(i, yi): (usize, &mut f64)| *yi = dot_piece(self.matrix.column(i).as_slice(), x);
        if n >= 256 {
            y.par_iter_mut().enumerate().for_each(row);
        } else {
            y.iter_mut().enumerate().for_each(row);
        }
        Ok(())
    }
}

/// Wraps an operator to count its applications, time them, and report progress.
///
/// Applications are the cost unit (argmin's `Problem::counts`). The time spent inside
/// `apply`, compared with an estimator's wall time, gives the share of time spent on
/// bookkeeping (reorthogonalization, eigensolves) outside the operator. When several
/// threads apply concurrently the times add up, so the share is only meaningful for a
/// sequential run. The optional progress callback receives the running count after each
/// application, from whichever thread made it.
pub struct Counted<'a, O: ?Sized> {
    op: &'a O,
    applications: AtomicUsize,
    nanos: AtomicU64,
    progress: Option<&'a (dyn Fn(usize) + Sync)>,
}

impl<'a, O: LinearOperator + ?Sized> Counted<'a, O> {
    /// Wraps `op` with zero counts.
    pub fn new(op: &'a O) -> Self {
        Self {
            op,
            applications: AtomicUsize::new(0),
            nanos: AtomicU64::new(0),
            progress: None,
        }
    }

    /// Wraps `op` and calls `progress(applications so far)` after every application.
    pub fn with_progress(op: &'a O, progress: &'a (dyn Fn(usize) + Sync)) -> Self {
        Self {
            progress: Some(progress),
            ..Self::new(op)
        }
    }

    /// Applications made so far.
    pub fn applications(&self) -> usize {
        self.applications.load(Ordering::Relaxed)
    }

    /// Total time spent inside the wrapped `apply` (summed over threads).
    pub fn time_in_operator(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Relaxed))
    }
}

impl<O: LinearOperator + ?Sized> Counted<'_, O> {
    /// Runs `product` (`count` applications), adding its time and count and reporting
    /// progress.
    fn counted(
        &self,
        count: usize,
        product: impl FnOnce() -> Result<(), OperatorError>,
    ) -> Result<(), OperatorError> {
        let start = Instant::now();
        let result = product();
        let nanos = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_add(nanos, Ordering::Relaxed);
        let done = self.applications.fetch_add(count, Ordering::Relaxed) + count;
        if let Some(progress) = self.progress {
            progress(done);
        }
        result
    }
}

impl<O: LinearOperator + ?Sized> LinearOperator for Counted<'_, O> {
    fn dim(&self) -> usize {
        self.op.dim()
    }

    fn apply(&self, x: &[f64], y: &mut [f64]) -> Result<(), OperatorError> {
        self.counted(1, || self.op.apply(x, y))
    }

    fn apply_block(&self, xs: &[&[f64]], ys: &mut [&mut [f64]]) -> Result<(), OperatorError> {
        self.counted(xs.len(), || self.op.apply_block(xs, ys))
    }

    fn is_symmetric(&self) -> bool {
        self.op.is_symmetric()
    }

    fn unit_roundoff(&self) -> f64 {
        self.op.unit_roundoff()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_apply_matches_matrix_vector_product() {
        let a = DMatrix::from_row_slice(3, 3, &[2.0, -1.0, 0.5, -1.0, 3.0, 0.0, 0.5, 0.0, -4.0]);
        let op = DenseSymmetric::new(a.clone()).unwrap();
        let x = [1.0, 2.0, -3.0];
        let mut y = [0.0; 3];
        op.apply(&x, &mut y).unwrap();
        let expected = &a * nalgebra::DVector::from_column_slice(&x);
        // Exact: three-term sums of small integers and halves.
        assert_eq!(y.as_slice(), expected.as_slice());
        assert!(op.apply(&x[..2], &mut y).is_err());
    }

    #[test]
    fn dense_constructor_rejects_bad_matrices() {
        let err = DenseSymmetric::from_row_major(3, 4, &[0.0; 12]).unwrap_err();
        assert_eq!(err.to_string(), "not square: shape (3, 4)");
        let err = DenseSymmetric::from_row_major(2, 2, &[1.0, 2.0, 2.0 + 1e-6, 1.0]).unwrap_err();
        assert!(
            matches!(err, Error::NotSymmetric { row: 1, col: 0, .. }),
            "{err}"
        );
        let err =
            DenseSymmetric::from_row_major(2, 2, &[1.0, f64::NAN, f64::NAN, 1.0]).unwrap_err();
        assert!(
            matches!(err, Error::NonFiniteEntry { row: 1, col: 0, .. }),
            "{err}"
        );
        assert!(matches!(
            DenseSymmetric::from_row_major(2, 2, &[1.0; 3]),
            Err(Error::BufferLength {
                expected: 4,
                got: 3,
                ..
            })
        ));
        // Asymmetry below 1e-8 relative is accepted and symmetrized exactly.
        let op = DenseSymmetric::from_row_major(2, 2, &[1.0, 2.0, 2.0 + 1e-9, 1.0]).unwrap();
        assert_eq!(op.matrix()[(0, 1)], op.matrix()[(1, 0)]);
    }

    #[test]
    fn counted_counts_and_reports_progress() {
        let op = DenseSymmetric::new(DMatrix::identity(4, 4)).unwrap();
        let seen = std::sync::Mutex::new(Vec::new());
        let progress = |k: usize| seen.lock().unwrap().push(k);
        let counted = Counted::with_progress(&op, &progress);
        let mut y = [0.0; 4];
        for _ in 0..3 {
            counted.apply(&[1.0; 4], &mut y).unwrap();
        }
        assert_eq!(counted.applications(), 3);
        assert_eq!(*seen.lock().unwrap(), vec![1, 2, 3]);
    }
}
