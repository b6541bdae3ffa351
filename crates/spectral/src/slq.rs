//! Stochastic Lanczos quadrature (SLQ): per-probe Ritz measures that approximate the
//! spectral density (Lin, Saad & Yang 2016; Ghorbani, Krishnan & Xiao 2019; PyHessian).

use std::ops::Range;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::basis::BasisPrecision;
use crate::eigen::{symmetric_eigen, tridiagonal};
use crate::error::Error;
use crate::kernels::dot;
use crate::lanczos::{
    check_breakdown_tol, lanczos, lockstep, LanczosInfo, LanczosParams, LanczosRun,
    DEFAULT_BREAKDOWN_TOL,
};
use crate::operator::{check_operator, LinearOperator};
use crate::probe::{probe, ProbeDistribution};

/// Nodes within `FLAT_BAND · max |θ|` of 0 count as flat, not negative, in
/// [`RitzMeasure::negative_mass`]: 1e-3 of the spectral radius, finer than SLQ resolves a
/// bulk at 0 with about 100 nodes (Lanczos steps).
pub const FLAT_BAND: f64 = 1e-3;

/// Parameters of [`slq`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlqParams {
    /// Lanczos steps per probe (capped at the dimension). Default 100, PyHessian's
    /// `density(iter=100)`. Read also from the key `m` of older JSON.
    #[serde(alias = "m")]
    pub steps: usize,
    /// Number of probe vectors n_v. Default 4: the density needs few probes when n is large
    /// (each probe's measure already averages over n eigenvalues, Ghorbani et al. 2019 use
    /// 1-10); the trace standard error shrinks as 1/√n_v.
    pub probes: usize,
    /// Seed of the counter-based probe RNG (see [`crate::probe_vector`]).
    pub seed: u64,
    /// Probe stream: runs with the same seed and stream see identical probes (the
    /// class-wise analysis uses one stream for all classes).
    pub stream: u64,
    /// Probe entry distribution (Rademacher by default).
    pub distribution: ProbeDistribution,
    /// Basis storage precision (memory steps · n · bytes per running probe).
    pub basis: BasisPrecision,
    /// Relative breakdown tolerance, see [`DEFAULT_BREAKDOWN_TOL`].
    pub breakdown_tol: f64,
    /// Run probes in parallel with rayon, each applying the operator to one vector at a
    /// time; otherwise they advance in lockstep, one block application
    /// ([`LinearOperator::apply_block`]) per step. Results are identical either way; memory
    /// is one basis per probe both ways. Not serialized: it cannot change any result.
    #[serde(skip)]
    pub parallel: bool,
}

impl Default for SlqParams {
    fn default() -> Self {
        Self {
            steps: 100,
            probes: 4,
            seed: 0,
            stream: 0,
            distribution: ProbeDistribution::Rademacher,
            basis: BasisPrecision::F64,
            breakdown_tol: DEFAULT_BREAKDOWN_TOL,
            parallel: false,
        }
    }
}

impl SlqParams {
    /// Checks the ranges: `steps ≥ 1`, `probes ≥ 1`, `breakdown_tol` in [0, 1).
    ///
    /// # Errors
    /// [`Error::InvalidParam`] naming the field (`steps`, `probes`, `breakdown_tol`).
    pub fn validate(&self) -> Result<(), Error> {
        if self.steps == 0 {
            return Err(Error::param("steps", self.steps, "at least 1"));
        }
        if self.probes == 0 {
            return Err(Error::param("probes", self.probes, "at least 1"));
        }
        check_breakdown_tol(self.breakdown_tol)
    }

    /// The Lanczos parameters of one probe.
    pub(crate) fn lanczos(&self, keep_basis: bool) -> LanczosParams {
        LanczosParams {
            steps: self.steps,
            basis: self.basis,
            keep_basis,
            breakdown_tol: self.breakdown_tol,
        }
    }

    /// Probe vector `index` of this seed, stream and distribution.
    pub(crate) fn probe(&self, index: u64, n: usize) -> Vec<f64> {
        probe(self.seed, self.stream, index, self.distribution, n)
    }
}

/// A Gauss quadrature measure from one probe: nodes are the eigenvalues θ_i of T (ascending)
/// and weights the squared first components of its unit eigenvectors (they sum to 1).
/// `Σ_i w_i f(θ_i) ≈ zᵀ f(A) z / zᵀz`, exact for polynomials of degree < 2m.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RitzMeasure {
    /// Ritz values θ_i, ascending.
    pub nodes: Vec<f64>,
    /// Weights w_i = s_{1,i}², summing to 1.
    pub weights: Vec<f64>,
}

impl RitzMeasure {
    /// The quadrature measure of the tridiagonal matrix with diagonal `alphas` and
    /// off-diagonal `betas[..alphas.len() - 1]` (a [`crate::Lanczos`] result fits as is).
    ///
    /// # Errors
    /// [`Error::EigenSolver`] on non-finite input.
    pub fn from_tridiagonal(alphas: &[f64], betas: &[f64]) -> Result<Self, Error> {
        let eig = symmetric_eigen(tridiagonal(alphas, betas))?;
        let weights = eig.vectors.row(0).iter().map(|s| s * s).collect();
        Ok(Self {
            nodes: eig.values,
            weights,
        })
    }

    /// The measure's mean `Σ w_i θ_i` (≈ zᵀAz / zᵀz; exactly α_1 in exact arithmetic).
    pub fn mean(&self) -> f64 {
        self.nodes
            .iter()
            .zip(&self.weights)
            .map(|(t, w)| t * w)
            .sum()
    }

    /// The weight on clearly negative nodes, `Σ_{θ_i < −δ} w_i` with
    /// `δ = FLAT_BAND · max_i |θ_i|` ([`FLAT_BAND`] = 1e-3): the share of spectral mass below
    /// 0. A network Hessian's flat bulk sits at 0 and its node lands on either side of 0 by
    /// rounding; counted by sign alone, it made the share jump between ~0 and ~1 from one
    /// class to the next. Within δ of 0 a node counts as flat, not negative.
    pub fn negative_mass(&self) -> f64 {
        let scale = self.nodes.iter().fold(0.0f64, |m, t| m.max(t.abs()));
        let delta = FLAT_BAND * scale;
        self.nodes
            .iter()
            .zip(&self.weights)
            .filter(|(t, _)| **t < -delta)
            .map(|(_, w)| w)
            .sum()
    }
}

/// One probe's SLQ result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeRun {
    /// The probe's quadrature measure.
    pub measure: RitzMeasure,
    /// Hutchinson's sample `zᵀ A z = ‖z‖² α_1` (for a Rademacher probe ‖z‖² = n, so this is
    /// also the SLQ trace sample `n Σ w θ` up to rounding).
    pub quadratic_form: f64,
    /// Steps, breakdown, applications of its Lanczos run.
    pub info: LanczosInfo,
}

impl ProbeRun {
    /// Builds the result from a probe's Lanczos coefficients and its squared norm.
    pub(crate) fn new(
        alphas: &[f64],
        betas: &[f64],
        info: LanczosInfo,
        norm_sq: f64,
    ) -> Result<Self, Error> {
        let quadratic_form = norm_sq * alphas[0];
        Ok(Self {
            measure: RitzMeasure::from_tridiagonal(alphas, betas)?,
            quadratic_form,
            info,
        })
    }
}

/// Runs SLQ: for each probe `p` in `0..probes`, `steps` Lanczos steps from probe vector
/// `p`, giving its quadrature measure. Probes run in parallel when `params.parallel`,
/// otherwise in lockstep (one block application per step); the results are bit-identical
/// either way and for any thread count.
///
/// Cost: `probes · steps` applications; memory `steps · n · bytes` per probe.
///
/// # Errors
/// As [`lanczos`], plus [`Error::InvalidParam`] from [`SlqParams::validate`].
pub fn slq<O: LinearOperator + ?Sized>(op: &O, params: &SlqParams) -> Result<Vec<ProbeRun>, Error> {
    params.validate()?;
    check_operator(op)?;
    run_probes(op, params, 0..params.probes as u64)
}

/// Recomputes the SLQ result of probe `probe` alone: bit-identical to element `probe` of
/// [`slq`] with the same parameters.
///
/// # Errors
/// As [`slq`].
pub fn slq_probe<O: LinearOperator + ?Sized>(
    op: &O,
    params: &SlqParams,
    probe: u64,
) -> Result<ProbeRun, Error> {
    params.validate()?;
    let n = check_operator(op)?;
    let z = params.probe(probe, n);
    let run = lanczos(op, &z, &params.lanczos(false))?;
    ProbeRun::new(&run.alphas, &run.betas, run.info, dot(&z, &z))
}

/// Runs the probes in `range`, in parallel if asked and in lockstep otherwise, results in
/// index order.
pub(crate) fn run_probes<O: LinearOperator + ?Sized>(
    op: &O,
    params: &SlqParams,
    range: Range<u64>,
) -> Result<Vec<ProbeRun>, Error> {
    if params.parallel {
        return range
            .into_par_iter()
            .map(|p| slq_probe(op, params, p))
            .collect();
    }
    let mut runs = start_runs(op, params, range.clone())?;
    lockstep(op, &mut runs, 0)?;
    finish_runs(op, params, range, runs)
}

/// The Lanczos runs of the probes in `range`, not yet stepped.
pub(crate) fn start_runs<O: LinearOperator + ?Sized>(
    op: &O,
    params: &SlqParams,
    range: Range<u64>,
) -> Result<Vec<LanczosRun>, Error> {
    let n = op.dim();
    range
        .map(|p| LanczosRun::new(op, &params.probe(p, n), &params.lanczos(false)))
        .collect()
}

/// The SLQ results of finished runs of the probes in `range`.
pub(crate) fn finish_runs<O: LinearOperator + ?Sized>(
    op: &O,
    params: &SlqParams,
    range: Range<u64>,
    runs: Vec<LanczosRun>,
) -> Result<Vec<ProbeRun>, Error> {
    let n = op.dim();
    range
        .zip(runs)
        .map(|(p, run)| {
            let z = params.probe(p, n);
            let run = run.finish(false);
            ProbeRun::new(&run.alphas, &run.betas, run.info, dot(&z, &z))
        })
        .collect()
}
