//! The crate's one error type, and the error an operator returns from `apply`.

use std::fmt;

/// A failure inside [`LinearOperator::apply`](crate::LinearOperator::apply), for example a
/// Hessian-vector product over a data set that hit a shape or device error.
///
/// It boxes the operator's own error so that operators from other crates (candle HVPs)
/// can fail cleanly without this crate knowing their error types; `source()` walks into
/// the boxed error.
#[derive(Debug)]
pub struct OperatorError(Box<dyn std::error::Error + Send + Sync>);

impl OperatorError {
    /// Wraps any error (or a message: `&str` and `String` convert too).
    pub fn new(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self(source.into())
    }

    /// The wrapped error.
    pub fn inner(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self.0.as_ref()
    }
}

impl fmt::Display for OperatorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for OperatorError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// Everything that can go wrong in this crate. Variants carry the numbers that explain the
/// failure, so callers can match on them or print them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The operator's `apply` failed; `application` is the 1-based index of the failing call
    /// within the estimator that made it.
    #[error("operator failed at application {application}")]
    Operator {
        /// 1-based index of the failing application.
        application: usize,
        /// The operator's own error.
        #[source]
        source: OperatorError,
    },
    /// The operator has dimension 0: there is no spectrum to estimate.
    #[error("operator has dimension 0")]
    EmptyOperator,
    /// The operator reports `is_symmetric() == false`; Lanczos needs a symmetric operator.
    #[error(
        "operator is not symmetric: lanczos and the trace estimators need a symmetric operator"
    )]
    NotSymmetricOperator,
    /// A vector's length differs from the operator dimension.
    #[error("vector has length {got}, expected the operator dimension {expected}")]
    DimensionMismatch {
        /// The operator dimension.
        expected: usize,
        /// The length that was passed.
        got: usize,
    },
    /// A parameter is out of its range; `name` is the field name (`m`, `probes`, `tol`, ...).
    #[error("invalid {name} {value}: expected {expected}")]
    InvalidParam {
        /// The parameter's field name.
        name: &'static str,
        /// The bad value, printed.
        value: String,
        /// What would have been accepted.
        expected: String,
    },
    /// The Lanczos start vector is zero or contains NaN or infinity.
    #[error("start vector is zero or not finite (norm {norm})")]
    BadStartVector {
        /// Its Euclidean norm.
        norm: f64,
    },
    /// The operator produced NaN or infinity (seen in a Lanczos coefficient or a probe's
    /// quadratic form).
    #[error("non-finite {what} {value} at step {step}")]
    NonFinite {
        /// Which quantity (`alpha`, `beta`, `quadratic form`).
        what: &'static str,
        /// The value.
        value: f64,
        /// 1-based Lanczos step or probe index.
        step: usize,
    },
    /// The dense symmetric eigensolver of a projected (tridiagonal or arrowhead) matrix did
    /// not converge; a sign of non-finite input.
    #[error("eigensolver did not converge on a {size}x{size} projected matrix")]
    EigenSolver {
        /// Size of the projected matrix.
        size: usize,
    },
    /// A dense matrix is not square.
    #[error("not square: shape ({rows}, {cols})")]
    NotSquare {
        /// Number of rows.
        rows: usize,
        /// Number of columns.
        cols: usize,
    },
    /// A dense matrix is not symmetric to the relative tolerance.
    #[error(
        "not symmetric: |a[{row},{col}] - a[{col},{row}]| = {diff:e} exceeds {tol:e} times the largest entry {scale:e}"
    )]
    NotSymmetric {
        /// Row of the worst pair.
        row: usize,
        /// Column of the worst pair.
        col: usize,
        /// The absolute asymmetry there.
        diff: f64,
        /// Largest absolute entry of the matrix.
        scale: f64,
        /// The relative tolerance.
        tol: f64,
    },
    /// A dense matrix holds NaN or infinity.
    #[error("non-finite entry {value} at ({row}, {col})")]
    NonFiniteEntry {
        /// Row.
        row: usize,
        /// Column.
        col: usize,
        /// The value.
        value: f64,
    },
    /// A row-major buffer's length does not match the stated shape.
    #[error("buffer holds {got} values, shape ({rows}, {cols}) needs {expected}")]
    BufferLength {
        /// Number of rows.
        rows: usize,
        /// Number of columns.
        cols: usize,
        /// rows * cols.
        expected: usize,
        /// The buffer length.
        got: usize,
    },
    /// Smoothing was asked for with no quadrature measure, or only empty ones.
    #[error("no ritz nodes to smooth")]
    EmptyMeasures,
    /// The smoothed density is zero (or not finite) on every grid point.
    #[error(
        "density vanishes on the grid: kernel sigma {sigma:e} is too narrow for bin width {bin_width:e} (widen the kernel or add bins)"
    )]
    DegenerateDensity {
        /// Kernel standard deviation.
        sigma: f64,
        /// Grid spacing.
        bin_width: f64,
    },
    /// An internal invariant was broken: a bug in this crate, reported instead of a panic.
    #[error("internal error (please report): {message}")]
    PotentialBug {
        /// What went wrong.
        message: &'static str,
    },
}

impl Error {
    /// Whether this error is a parameter out of its range (a caller's usage error) rather
    /// than a failure of the operator or the numerics.
    pub fn is_usage(&self) -> bool {
        matches!(self, Error::InvalidParam { .. })
    }

    /// Shorthand for [`Error::InvalidParam`].
    pub(crate) fn param(
        name: &'static str,
        value: impl fmt::Display,
        expected: impl fmt::Display,
    ) -> Self {
        Error::InvalidParam {
            name,
            value: value.to_string(),
            expected: expected.to_string(),
        }
    }
}
