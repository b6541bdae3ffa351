//! Matrix-free spectral estimators over any symmetric linear operator, with no
//! deep-learning dependency: every estimator is tested on matrices whose spectrum is known.
//!
//! # Tour
//! - [`LinearOperator`]: `dim` and `apply(x, y)` into a caller-owned buffer; an operator may
//!   be expensive (a Hessian-vector product over a data set), so applications are the cost
//!   unit and every estimator reports them. [`DenseSymmetric`] is the exact reference;
//!   [`Counted`] counts and times applications and drives progress bars.
//! - [`probe_vector`]: Rademacher or Gaussian probes from a counter-based RNG keyed on
//!   (seed, stream, probe index), so results are bit-identical for any thread count and any
//!   probe can be regenerated alone.
//! - [`lanczos`]: Lanczos with full reorthogonalization in f64 (basis stored in f64 or f32,
//!   [`BasisPrecision`]), ending cleanly at an invariant subspace.
//! - [`slq`]: stochastic Lanczos quadrature, one raw [`RitzMeasure`] per probe;
//!   [`density`] / [`log_abs_density`] smooth them (PyHessian-compatible defaults).
//! - [`extreme_eigenvalues`]: algebraic λ_max, λ_min and the top k with residual bounds by
//!   thick-restart Lanczos, optionally with Ritz vectors.
//! - [`hutchinson`], [`hutch_plus_plus`], [`slq_trace`], [`negative_mass`].
//! - [`estimate_spectrum`]: all of the above for one operator, sharing SLQ's first probe
//!   with the extreme solver, as one serializable [`SpectrumEstimate`].
//!
//! # Example
//! ```
//! use nalgebra::{DMatrix, DVector};
//! use saddlescope_spectral::{estimate_spectrum, DenseSymmetric, SpectrumParams};
//!
//! // A saddle: eigenvalues -2, then 0.01 .. 0.99, then 50.
//! let d = DVector::from_fn(101, |i, _| match i { 0 => -2.0, 100 => 50.0, _ => i as f64 / 100.0 });
//! let a = DenseSymmetric::new(DMatrix::from_diagonal(&d)).unwrap();
//! let est = estimate_spectrum(&a, &SpectrumParams::default()).unwrap();
//! assert!(est.converged);
//! assert!((est.lambda_max - 50.0).abs() < 1e-8 && (est.lambda_min + 2.0).abs() < 1e-8);
//! assert!(est.negative_mass > 0.0); // the quadrature puts weight on -2
//! let json = serde_json::to_string(&est).unwrap();
//! assert!(json.contains("\"lambda_min_bound\"") && json.contains("\"ritz\""));
//! ```
#![deny(missing_docs)]

mod basis;
mod density;
mod eigen;
mod error;
mod estimate;
mod extreme;
mod kernels;
mod lanczos;
mod operator;
mod probe;
mod slq;
mod trace;

#[cfg(test)]
mod test_util;
#[cfg(test)]
mod tests;

pub use basis::{Basis, BasisPrecision};
pub use density::{density, log_abs_density, Density, DensityParams, KernelWidth};
pub use error::{Error, OperatorError};
pub use estimate::{
    estimate_spectrum, estimate_spectrum_with_progress, SpectrumEstimate, SpectrumParams, Timing,
    TraceMethod,
};
pub use extreme::{
    extreme_eigenvalues, ExtremeInfo, ExtremeParams, ExtremeStep, Extremes, RitzValue,
};
pub use lanczos::{lanczos, Lanczos, LanczosInfo, LanczosParams, DEFAULT_BREAKDOWN_TOL};
pub use operator::{Counted, DenseSymmetric, LinearOperator};
pub use probe::{probe_vector, ProbeDistribution};
pub use slq::{slq, slq_probe, ProbeRun, RitzMeasure, SlqParams, FLAT_BAND};
pub use trace::{
    hutch_plus_plus, hutchinson, negative_mass, slq_trace, HutchPlusPlusParams, HutchinsonParams,
    Spread, TraceEstimate,
};
