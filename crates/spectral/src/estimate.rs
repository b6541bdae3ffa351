//! One entry point that runs every estimator on one operator and returns a serializable
//! record: what `saddlescope spectrum` writes and what the class-wise analysis stores per
//! class.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::density::{density, Density, DensityParams};
use crate::error::Error;
use crate::extreme::{solve, ExtremeParams, RitzValue};
use crate::kernels::dot;
use crate::lanczos::lockstep;
use crate::operator::{check_operator, Counted, LinearOperator};
use crate::slq::{finish_runs, run_probes, start_runs, ProbeRun, RitzMeasure, SlqParams};
use crate::trace::{hutch_plus_plus, negative_mass, slq_trace, HutchPlusPlusParams, Spread};

/// Which trace estimate [`SpectrumEstimate::trace`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceMethod {
    /// Hutchinson on the SLQ probes, `mean zᵀAz`: free, the probes' first Lanczos
    /// coefficient gives it (`zᵀAz = ‖z‖² α_1`).
    #[default]
    Probes,
    /// [`hutch_plus_plus`] with this many extra applications (seed and stream shared).
    HutchPlusPlus {
        /// Total Hutch++ applications (at least 3).
        applications: usize,
    },
}

/// Parameters of [`estimate_spectrum`]. Serialized flat: `steps`, `probes`, `seed`, `stream`,
/// `distribution`, `basis`, `breakdown_tol`, `top_k`, `tol`, `max_applications`,
/// `ritz_vectors`, `trace_method`, `density`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpectrumParams {
    /// SLQ settings (m, probes, seed, stream, distribution, basis, parallel).
    #[serde(flatten)]
    pub slq: SlqParams,
    /// Number of largest eigenvalues to report and converge. Default 5 (at most
    /// `steps − 4`).
    pub top_k: usize,
    /// Relative tolerance of the extreme eigenvalues (see [`ExtremeParams::tol`]); 1e-6.
    pub tol: f64,
    /// Application budget of the extreme-eigenvalue solver, including the SLQ probe it
    /// shares (see [`ExtremeParams::max_applications`]); 500.
    pub max_applications: usize,
    /// Compute unit Ritz vectors for λ_max and λ_min (kept in memory, never serialized).
    pub ritz_vectors: bool,
    /// Which estimate `trace` holds.
    pub trace_method: TraceMethod,
    /// Density grid and kernel.
    pub density: DensityParams,
}

impl Default for SpectrumParams {
    fn default() -> Self {
        let extreme = ExtremeParams::default();
        Self {
            slq: SlqParams::default(),
            top_k: extreme.top_k,
            tol: extreme.tol,
            max_applications: extreme.max_applications,
            ritz_vectors: false,
            trace_method: TraceMethod::Probes,
            density: DensityParams::default(),
        }
    }
}

impl SpectrumParams {
    /// Checks every field: as [`SlqParams::validate`], [`ExtremeParams::validate`] and
    /// [`DensityParams::validate`], with `steps ≥ 5` and `top_k ≤ steps − 4` (the extreme
    /// solver's basis is the SLQ basis).
    ///
    /// # Errors
    /// [`Error::InvalidParam`] naming the field (`steps`, `probes`, `top_k`, `tol`,
    /// `max_applications`, `trace_method`, `density.*`).
    pub fn validate(&self) -> Result<(), Error> {
        self.slq.validate()?;
        let steps = self.slq.steps;
        if steps < 5 {
            return Err(Error::param("steps", steps, "at least 5"));
        }
        if self.top_k + 4 > steps {
            return Err(Error::param(
                "top_k",
                self.top_k,
                format!("at most steps - 4 = {}", steps - 4),
            ));
        }
        self.extreme().validate()?;
        if let TraceMethod::HutchPlusPlus { applications } = self.trace_method {
            if applications < 3 {
                return Err(Error::param(
                    "trace_method",
                    applications,
                    "hutch++ with at least 3 applications",
                ));
            }
        }
        self.density.validate()
    }

    /// Applications the run makes at least, for a progress bar: `probes · min(steps, n)`, plus
    /// the Hutch++ budget. Restarts of the extreme solver add up to
    /// `max_applications − steps`.
    pub fn expected_applications(&self, dim: usize) -> usize {
        let hutch = match self.trace_method {
            TraceMethod::Probes => 0,
            TraceMethod::HutchPlusPlus { applications } => applications / 3 * 3,
        };
        self.slq.probes * self.slq.steps.min(dim) + hutch
    }

    /// The extreme solver's parameters: SLQ's basis, start vector probe 0. Passed to
    /// [`crate::extreme_eigenvalues`] they rerun the extremes alone (e.g. for Ritz vectors);
    /// that run may stop before `steps` steps, so its values agree with [`estimate_spectrum`]'s
    /// within their bounds.
    pub fn extreme(&self) -> ExtremeParams {
        ExtremeParams {
            top_k: self.top_k,
            tol: self.tol,
            max_applications: self.max_applications,
            basis_size: self.slq.steps,
            seed: self.slq.seed,
            stream: self.slq.stream,
            distribution: self.slq.distribution,
            basis: self.slq.basis,
            breakdown_tol: self.slq.breakdown_tol,
            ritz_vectors: self.ritz_vectors,
        }
    }
}

/// Wall time of [`estimate_spectrum`] and the part spent inside the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timing {
    /// Wall time of the whole call.
    pub wall: Duration,
    /// Time inside `apply`, summed over threads.
    pub in_operator: Duration,
}

impl Timing {
    /// Share of the wall time spent outside the operator (reorthogonalization, eigensolves,
    /// smoothing): `1 − in_operator / wall`. Meaningful for a sequential run
    /// (`parallel = false`); target ≤ 5% with a Hessian operator.
    pub fn bookkeeping_share(&self) -> f64 {
        1.0 - self.in_operator.as_secs_f64() / self.wall.as_secs_f64().max(f64::MIN_POSITIVE)
    }
}

/// Everything known about one operator's spectrum. The serialized keys are a stable
/// interface (the class-wise analysis `#[serde(flatten)]`s this record per class): the
/// Ritz vectors and timings are not serialized.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpectrumEstimate {
    /// Largest eigenvalue (algebraic).
    pub lambda_max: f64,
    /// Its residual bound ‖A y − θ y‖.
    pub lambda_max_bound: f64,
    /// Smallest eigenvalue (algebraic): negative at a saddle.
    pub lambda_min: f64,
    /// Its residual bound.
    pub lambda_min_bound: f64,
    /// The `top_k` largest eigenvalues, descending, each `{value, bound}`.
    pub top_k: Vec<RitzValue>,
    /// The rounding allowance included in every bound above ([`crate::Extremes::rounding`]): a
    /// bound about this size is set by the arithmetic (HVP dtype, basis precision), not by
    /// the Lanczos residual. Absent from files written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rounding_allowance: Option<f64>,
    /// Trace estimate ([`TraceMethod`]).
    pub trace: f64,
    /// Its standard error (`null` with one probe).
    pub trace_stderr: Option<f64>,
    /// SLQ trace `n Σ w θ` averaged over probes (equal to the probe Hutchinson estimate
    /// for Rademacher probes, up to rounding).
    pub trace_slq: f64,
    /// Share of spectral mass clearly below zero (below −1e-3 of the spectral radius;
    /// [`RitzMeasure::negative_mass`]), averaged over probes.
    pub negative_mass: f64,
    /// Its standard error across probes (`null` with one probe).
    pub negative_mass_stderr: Option<f64>,
    /// Whether λ_max, λ_min and the top k met `tol` within the budget.
    pub converged: bool,
    /// Operator applications made in total.
    pub applications: usize,
    /// Operator dimension n.
    pub dim: usize,
    /// The raw quadrature measure of every probe, `[{nodes, weights}]`, to re-smooth
    /// without new applications.
    pub ritz: Vec<RitzMeasure>,
    /// The smoothed density `{grid, values}`.
    pub density: Density,
    /// The parameters used.
    pub params: SpectrumParams,
    /// Unit Ritz vector of λ_max, if [`SpectrumParams::ritz_vectors`].
    #[serde(skip)]
    pub lambda_max_vector: Option<Vec<f64>>,
    /// Unit Ritz vector of λ_min, if [`SpectrumParams::ritz_vectors`].
    #[serde(skip)]
    pub lambda_min_vector: Option<Vec<f64>>,
    /// Wall and operator time (not serialized: it would break bit-identical output).
    #[serde(skip)]
    pub timing: Timing,
}

/// [`estimate_spectrum_with_progress`] without a progress callback.
///
/// # Errors
/// As [`estimate_spectrum_with_progress`].
///
/// ```
/// use saddlescope_spectral::{estimate_spectrum, DenseSymmetric, SpectrumParams};
/// use nalgebra::{DMatrix, DVector};
/// let d = DVector::from_fn(200, |i, _| if i < 3 { -1.0 - i as f64 } else { i as f64 / 200.0 });
/// let a = DenseSymmetric::new(DMatrix::from_diagonal(&d)).unwrap();
/// let est = estimate_spectrum(&a, &SpectrumParams::default()).unwrap();
/// assert!(est.converged && (est.lambda_min + 3.0).abs() < 1e-8);
/// let exact_trace = d.sum();
/// assert!((est.trace - exact_trace).abs() <= 3.0 * est.trace_stderr.unwrap());
/// ```
pub fn estimate_spectrum<O: LinearOperator + ?Sized>(
    op: &O,
    params: &SpectrumParams,
) -> Result<SpectrumEstimate, Error> {
    estimate_spectrum_with_progress(op, params, None)
}

/// Runs SLQ, the extreme eigenvalues, the trace and the density on one operator.
///
/// The extreme-eigenvalue solver starts from SLQ's probe 0 and its first Lanczos cycle *is*
/// that probe's SLQ run (bit-identical to [`crate::slq_probe`] for probe 0), so the
/// extremes cost only their restarts beyond `probes · steps` applications; with 100 steps a
/// Hessian's outliers have usually converged by then. Probes 1.. run meanwhile: in lockstep
/// with that first cycle, one block application ([`LinearOperator::apply_block`]) per step,
/// or in parallel with rayon when `slq.parallel`; results are bit-identical either way and
/// for any thread count.
/// `progress`, if given, is called with the running application count after every
/// application (from any thread). The library prints nothing.
///
/// # Errors
/// [`Error::InvalidParam`] from [`SpectrumParams::validate`], then any estimator error.
pub fn estimate_spectrum_with_progress<O: LinearOperator + ?Sized>(
    op: &O,
    params: &SpectrumParams,
    progress: Option<&(dyn Fn(usize) + Sync)>,
) -> Result<SpectrumEstimate, Error> {
    params.validate()?;
    let n = check_operator(op)?;
    let wall = Instant::now();
    let counted = match progress {
        Some(callback) => Counted::with_progress(op, callback),
        None => Counted::new(op),
    };
    let z0 = params.slq.probe(0, n);
    let extreme = params.extreme();
    let others_range = 1..params.slq.probes as u64;
    let (extremes, others) = if params.slq.parallel {
        rayon::join(
            || solve(&counted, &extreme, &z0, Some(params.slq.steps), &mut []),
            || run_probes(&counted, &params.slq, others_range.clone()),
        )
    } else {
        // Probes 1.. step in lockstep with the extreme solver's first cycle (probe 0).
        let mut runs = start_runs(&counted, &params.slq, others_range.clone())?;
        let extremes = solve(&counted, &extreme, &z0, Some(params.slq.steps), &mut runs);
        let others = match &extremes {
            Ok(_) => lockstep(&counted, &mut runs, counted.applications())
                .and_then(|()| finish_runs(&counted, &params.slq, others_range, runs)),
            Err(_) => Ok(Vec::new()),
        };
        (extremes, others)
    };
    let (extremes, first) = extremes?;
    let first = first.ok_or(Error::PotentialBug {
        message: "extreme solver returned no first cycle",
    })?;
    let mut runs = vec![ProbeRun::new(
        &first.alphas,
        &first.betas,
        first.info,
        dot(&z0, &z0),
    )?];
    runs.extend(others?);
    let ritz: Vec<RitzMeasure> = runs.iter().map(|r| r.measure.clone()).collect();
    let (trace, trace_stderr) = match params.trace_method {
        TraceMethod::Probes => {
            let s = Spread::of(&runs.iter().map(|r| r.quadratic_form).collect::<Vec<_>>());
            (s.mean, s.stderr)
        }
        TraceMethod::HutchPlusPlus { applications } => {
            let hpp = HutchPlusPlusParams {
                applications,
                seed: params.slq.seed,
                stream: params.slq.stream,
            };
            let t = hutch_plus_plus(&counted, &hpp)?;
            (t.trace, t.stderr)
        }
    };
    let negative = negative_mass(&ritz);
    let density = density(&ritz, &params.density)?;
    Ok(SpectrumEstimate {
        lambda_max: extremes.max.value,
        lambda_max_bound: extremes.max.bound,
        lambda_min: extremes.min.value,
        lambda_min_bound: extremes.min.bound,
        top_k: extremes.top_k,
        rounding_allowance: Some(extremes.rounding),
        trace,
        trace_stderr,
        trace_slq: slq_trace(n, &ritz).mean,
        negative_mass: negative.mean,
        negative_mass_stderr: negative.stderr,
        converged: extremes.converged,
        applications: counted.applications(),
        dim: n,
        ritz,
        density,
        params: params.clone(),
        lambda_max_vector: extremes.max_vector,
        lambda_min_vector: extremes.min_vector,
        timing: Timing {
            wall: wall.elapsed(),
            in_operator: counted.time_in_operator(),
        },
    })
}
