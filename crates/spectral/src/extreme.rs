//! Extreme eigenvalues (algebraic λ_max, λ_min and the top k) by thick-restart Lanczos, with
//! residual bounds and optional Ritz vectors.

use serde::{Deserialize, Serialize};

use crate::basis::BasisPrecision;
use crate::eigen::Eigen;
use crate::error::Error;
use crate::kernels::{norm, scale};
use crate::lanczos::{
    check_breakdown_tol, step_block, Krylov, LanczosInfo, LanczosRun, DEFAULT_BREAKDOWN_TOL,
};
use crate::operator::{check_operator, LinearOperator};
use crate::probe::{probe, ProbeDistribution};

/// Parameters of [`extreme_eigenvalues`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtremeParams {
    /// How many of the largest eigenvalues to report and converge (λ_max is always
    /// converged, so 0 behaves as 1 for convergence). Default 5.
    pub top_k: usize,
    /// Relative tolerance: a wanted Ritz value θ is converged when its residual bound
    /// `|β s_last|` is at most `tol · |θ|` (or below the breakdown tolerance times ‖A‖, for
    /// θ ≈ 0, or within twice the rounding allowance, which no more steps can beat: for an
    /// f32 operator or basis that floor is near 1e-5 ‖A‖). Default 1e-6, i.e. an eigenvalue
    /// error ≲ tol²‖A‖²/gap, far below 1e-6.
    pub tol: f64,
    /// Budget of operator applications, counting the first cycle. Default 500 (5 × the
    /// default basis): an interior λ_min inside a dense Hessian bulk may never reach 1e-6,
    /// and each application is a pass over a data set; check `converged`.
    pub max_applications: usize,
    /// Largest basis (memory `basis_size · n · bytes`); a thick restart then keeps about a
    /// quarter of it at each end. Default 100. Must be at least `max(top_k, 1) + 4`.
    pub basis_size: usize,
    /// Seed of the start vector (probe 0 of `stream`, see [`crate::probe_vector`]).
    pub seed: u64,
    /// Stream of the start vector.
    pub stream: u64,
    /// Distribution of the start vector. Default Gaussian: unlike a ±1 vector it cannot be
    /// orthogonal by structure to an eigenvector such as (e_1 − e_2)/√2.
    pub distribution: ProbeDistribution,
    /// Basis storage precision (f32 caps accuracy near 1e-7 relative).
    pub basis: BasisPrecision,
    /// Relative breakdown tolerance, see [`DEFAULT_BREAKDOWN_TOL`].
    pub breakdown_tol: f64,
    /// Return unit Ritz vectors for λ_max and λ_min.
    pub ritz_vectors: bool,
}

impl Default for ExtremeParams {
    fn default() -> Self {
        Self {
            top_k: 5,
            tol: 1e-6,
            max_applications: 500,
            basis_size: 100,
            seed: 0,
            stream: 0,
            distribution: ProbeDistribution::Gaussian,
            basis: BasisPrecision::F64,
            breakdown_tol: DEFAULT_BREAKDOWN_TOL,
            ritz_vectors: false,
        }
    }
}

impl ExtremeParams {
    /// Checks the ranges (see the field docs).
    ///
    /// # Errors
    /// [`Error::InvalidParam`] naming `tol`, `max_applications`, `basis_size` or
    /// `breakdown_tol`.
    pub fn validate(&self) -> Result<(), Error> {
        if !(self.tol.is_finite() && self.tol > 0.0) {
            return Err(Error::param("tol", self.tol, "a finite number > 0"));
        }
        if self.max_applications == 0 {
            return Err(Error::param(
                "max_applications",
                self.max_applications,
                "at least 1",
            ));
        }
        let least = self.top_k.max(1) + 4;
        if self.basis_size < least {
            return Err(Error::param(
                "basis_size",
                self.basis_size,
                format!("at least top_k + 4 = {least}"),
            ));
        }
        check_breakdown_tol(self.breakdown_tol)
    }
}

/// A Ritz value and its residual bound: some eigenvalue of A lies within `bound` of
/// `value` (for the extreme Ritz values, in practice the extreme eigenvalue itself).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RitzValue {
    /// The Ritz value θ.
    pub value: f64,
    /// `‖A y − θ y‖ = |β s_last|` for its unit Ritz vector y, plus a rounding allowance of
    /// `j u max(|α|, β)` (j = basis size, u the coarser unit roundoff of the operator,
    /// [`LinearOperator::unit_roundoff`], and of the basis storage).
    pub bound: f64,
}

/// λ_max and λ_min estimates after one Lanczos step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ExtremeStep {
    /// Applications made so far.
    pub applications: usize,
    /// Largest Ritz value.
    pub lambda_max: f64,
    /// Its residual bound.
    pub lambda_max_bound: f64,
    /// Smallest Ritz value.
    pub lambda_min: f64,
    /// Its residual bound.
    pub lambda_min_bound: f64,
}

/// What [`extreme_eigenvalues`] did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtremeInfo {
    /// Operator applications made.
    pub applications: usize,
    /// Thick restarts made.
    pub restarts: usize,
    /// Steps whose reorthogonalization ran a second Gram-Schmidt round, over all cycles
    /// (see [`LanczosInfo::second_passes`]). Absent from older JSON, read as 0.
    #[serde(default)]
    pub second_passes: usize,
    /// The extreme Ritz values and bounds after every step, for convergence plots.
    pub history: Vec<ExtremeStep>,
}

/// The result of [`extreme_eigenvalues`].
#[derive(Debug, Clone, PartialEq)]
pub struct Extremes {
    /// Largest (algebraic) Ritz value.
    pub max: RitzValue,
    /// Smallest (algebraic) Ritz value: negative at a saddle point.
    pub min: RitzValue,
    /// The `top_k` largest Ritz values, descending (fewer if the dimension is smaller).
    pub top_k: Vec<RitzValue>,
    /// Whether λ_max, λ_min and the top k all met `tol` (or Lanczos broke down: exact).
    pub converged: bool,
    /// The rounding allowance `j u max(|α|, β)` included in every bound above: when a
    /// bound is about this, the arithmetic, not the Lanczos residual, limits it.
    pub rounding: f64,
    /// Unit Ritz vector of `max`, if asked.
    pub max_vector: Option<Vec<f64>>,
    /// Unit Ritz vector of `min`, if asked.
    pub min_vector: Option<Vec<f64>>,
    /// Applications, restarts, history.
    pub info: ExtremeInfo,
}

/// λ_max, λ_min (algebraic, so a saddle shows a negative λ_min) and the top k eigenvalues
/// of a symmetric operator, by thick-restart Lanczos (Wu & Simon 2000) with full
/// reorthogonalization.
///
/// From the start vector (probe 0 of `seed`/`stream`), Lanczos grows the basis to
/// `basis_size`, checking after every step whether each wanted Ritz value θ (the top k,
/// λ_max and λ_min) has `|β s_last| ≤ tol · |θ|`; it stops as soon as they all do, so no
/// application is wasted. A full basis is restarted by keeping the Ritz vectors of about a
/// quarter of the basis at each end of the spectrum (at least top k + 2 at the top), which
/// keeps the convergence of both ends. Stops unconverged when `max_applications` is reached.
///
/// A breakdown (the Krylov space is invariant) ends the run as converged: the Ritz values
/// are then exact eigenvalues, and a random start vector has a component along every
/// eigenvector, so they include λ_max and λ_min. The same holds for clusters: one start
/// vector sees a repeated eigenvalue once, so `top_k` lists distinct values when the
/// spectrum has exact multiplicities (and a near-repeated pair splits only once the
/// iteration resolves it).
///
/// Each reported bound is ‖A y − θ y‖: an eigenvalue of A lies within it.
///
/// # Errors
/// As [`crate::lanczos`], plus [`Error::InvalidParam`] from [`ExtremeParams::validate`].
///
/// ```
/// use saddlescope_spectral::{extreme_eigenvalues, DenseSymmetric, ExtremeParams};
/// use nalgebra::{DMatrix, DVector};
/// let d = DVector::from_fn(50, |i, _| i as f64 - 10.0); // eigenvalues -10 ..= 39
/// let a = DenseSymmetric::new(DMatrix::from_diagonal(&d)).unwrap();
/// let e = extreme_eigenvalues(&a, &ExtremeParams { top_k: 2, ..Default::default() }).unwrap();
/// assert!(e.converged);
/// assert!((e.max.value - 39.0).abs() < 1e-8 && (e.min.value + 10.0).abs() < 1e-8);
/// assert!((e.top_k[1].value - 38.0).abs() < 1e-8);
/// ```
pub fn extreme_eigenvalues<O: LinearOperator + ?Sized>(
    op: &O,
    params: &ExtremeParams,
) -> Result<Extremes, Error> {
    params.validate()?;
    let n = check_operator(op)?;
    let start = probe(params.seed, params.stream, 0, params.distribution, n);
    solve(op, params, &start, None, &mut []).map(|(extremes, _)| extremes)
}

/// The tridiagonal matrix and info of the first Lanczos cycle, which is exactly a plain
/// Lanczos run of its length from the same start vector.
pub(crate) struct FirstCycle {
    pub(crate) alphas: Vec<f64>,
    pub(crate) betas: Vec<f64>,
    pub(crate) info: LanczosInfo,
}

/// The solver. With `first_cycle = Some(steps)`, the first `steps` steps run to the end
/// even if the extremes converge earlier (and even beyond the budget), and their
/// tridiagonal matrix is returned: it is the SLQ run of the start vector, so SLQ and the
/// extremes share it. During that first cycle the active `companions` (the other SLQ
/// probes' runs) take their steps in lockstep with it, one block application per step;
/// those still active when it ends (after a breakdown) are left to the caller.
pub(crate) fn solve<O: LinearOperator + ?Sized>(
    op: &O,
    params: &ExtremeParams,
    start: &[f64],
    first_cycle: Option<usize>,
    companions: &mut [LanczosRun],
) -> Result<(Extremes, Option<FirstCycle>), Error> {
    let n = op.dim();
    let size = params.basis_size.min(n);
    let mut kr = Krylov::new(op, start, params.basis, params.breakdown_tol, size)?;
    let mut first = None;
    let mut info = ExtremeInfo {
        applications: 0,
        restarts: 0,
        second_passes: 0,
        history: Vec::new(),
    };
    loop {
        let breakdown = if first.is_none() && companions.iter().any(LanczosRun::active) {
            step_with(op, &mut kr, companions)?
        } else {
            kr.step(op)?
        };
        let (eig, bounds) = kr.ritz()?;
        let j = eig.values.len();
        info.applications = kr.applications;
        info.second_passes = kr.second_passes;
        info.history.push(ExtremeStep {
            applications: kr.applications,
            lambda_max: eig.values[j - 1],
            lambda_max_bound: bounds[j - 1],
            lambda_min: eig.values[0],
            lambda_min_bound: bounds[0],
        });
        if let Some(steps) = first_cycle {
            if first.is_none() && (breakdown || kr.alphas.len() == steps.min(n)) {
                let info = LanczosInfo {
                    steps: kr.alphas.len(),
                    breakdown,
                    applications: kr.applications,
                    second_passes: kr.second_passes,
                };
                first = Some(FirstCycle {
                    alphas: kr.alphas.clone(),
                    betas: kr.betas.clone(),
                    info,
                });
            }
        }
        let first_done = first_cycle.is_none() || first.is_some();
        let wanted = (j - params.top_k.max(1).min(j)..j).chain([0]);
        let converged = breakdown
            || wanted
                .into_iter()
                .all(|i| bounds[i] <= params.tol * eig.values[i].abs() || kr.negligible(bounds[i]));
        if breakdown || (first_done && (converged || kr.applications >= params.max_applications)) {
            return Ok((finish(&kr, params, &eig, &bounds, converged, info)?, first));
        }
        if kr.basis.len() >= size {
            kr.restart(&eig, &keep(j, size, params.top_k.max(1)));
            info.restarts += 1;
        } else {
            kr.advance();
        }
    }
}

/// One step of `kr` and of the active `companions` with one block application; returns
/// whether `kr`'s step broke down.
fn step_with<O: LinearOperator + ?Sized>(
    op: &O,
    kr: &mut Krylov,
    companions: &mut [LanczosRun],
) -> Result<bool, Error> {
    let done = kr.applications
        + companions
            .iter()
            .map(LanczosRun::applications)
            .sum::<usize>();
    let mut active: Vec<&mut LanczosRun> = companions.iter_mut().filter(|r| r.active()).collect();
    let flags = {
        let mut krylovs: Vec<&mut Krylov> = std::iter::once(kr)
            .chain(active.iter_mut().map(|r| r.krylov()))
            .collect();
        step_block(op, &mut krylovs, done)?
    };
    for (run, &breakdown) in active.into_iter().zip(&flags[1..]) {
        run.after_step(breakdown);
    }
    Ok(flags[0])
}

/// Indices (ascending) of the Ritz pairs a thick restart of a basis of `size` vectors keeps
/// out of `j`: about `size/4` at each end, at least `top + 2` at the top and 1 at the
/// bottom, and at most `size − 2` in all
/// so every cycle makes at least two new steps.
fn keep(j: usize, size: usize, top: usize) -> Vec<usize> {
    let room = size - 2;
    let mut n_top = (top + 2).max(size / 4);
    let mut n_bot = 3.max(size / 4);
    if n_top + n_bot > room {
        n_bot = 1.max(room.saturating_sub(n_top));
        n_top = n_top.min(room - n_bot);
    }
    (0..n_bot).chain(j - n_top..j).collect()
}

/// Builds the result from the final Ritz pairs.
fn finish(
    kr: &Krylov,
    params: &ExtremeParams,
    eig: &Eigen,
    bounds: &[f64],
    converged: bool,
    info: ExtremeInfo,
) -> Result<Extremes, Error> {
    let j = eig.values.len();
    let pair = |i: usize| RitzValue {
        value: eig.values[i],
        bound: bounds[i],
    };
    let vector = |i: usize| -> Result<Vec<f64>, Error> {
        let coeffs: Vec<f64> = eig.vectors.column(i).iter().copied().collect();
        let mut y = kr.basis.combination(&coeffs)?;
        scale(1.0 / norm(&y), &mut y);
        Ok(y)
    };
    let (max_vector, min_vector) = if params.ritz_vectors {
        (Some(vector(j - 1)?), Some(vector(0)?))
    } else {
        (None, None)
    };
    Ok(Extremes {
        max: pair(j - 1),
        min: pair(0),
        top_k: (0..params.top_k.min(j)).map(|r| pair(j - 1 - r)).collect(),
        converged,
        rounding: kr.rounding(),
        max_vector,
        min_vector,
        info,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{dense, orthogonal, orthonormality_error};

    #[test]
    fn keep_sets_fit_the_basis() {
        assert_eq!(
            keep(100, 100, 5),
            (0..25).chain(75..100).collect::<Vec<_>>()
        );
        // Small basis: the top wins, one vector stays at the bottom, two slots stay free.
        assert_eq!(keep(9, 9, 5), vec![0, 3, 4, 5, 6, 7, 8]);
    }

    /// Issue 16: the rounding allowance is reported, is part of every bound, and with an
    /// f32 basis it is what the converged bounds are made of (so a report can say so).
    #[test]
    fn the_rounding_allowance_is_reported_and_inside_every_bound() {
        let n = 200;
        let lambdas: Vec<f64> = (0..n).map(|i| i as f64 / 20.0 - 3.0).collect();
        let (op, _) = dense(&orthogonal(n, 4), &lambdas);
        let norm = 7.0; // max |λ|: -3 .. 6.95
        for (basis, unit) in [
            (BasisPrecision::F64, f64::EPSILON / 2.0),
            (BasisPrecision::F32, f32::EPSILON as f64 / 2.0),
        ] {
            let params = ExtremeParams {
                basis,
                top_k: 3,
                tol: 1e-12,
                max_applications: 2000,
                basis_size: 60,
                ..ExtremeParams::default()
            };
            let e = extreme_eigenvalues(&op, &params).unwrap();
            assert!(e.rounding > 0.0, "{basis:?}");
            // j u max(|α|, β) with j ≤ 60 and max(|α|, β) ≤ ‖A‖.
            assert!(
                e.rounding <= 60.0 * unit * norm,
                "{basis:?}: {}",
                e.rounding
            );
            for r in [e.max, e.min].iter().chain(&e.top_k) {
                assert!(r.bound >= e.rounding, "{basis:?}: {r:?} vs {}", e.rounding);
            }
            if basis == BasisPrecision::F32 {
                assert!(e.converged);
                assert!(
                    e.min.bound <= 2.0 * e.rounding,
                    "{:?} vs {}",
                    e.min,
                    e.rounding
                );
            }
        }
    }

    #[test]
    fn thick_restarts_keep_the_basis_orthonormal() {
        // A · (first vector after a restart) has components along the locked Ritz vectors
        // (the arrow of H) that the three-term recurrence does not remove, only the
        // reorthogonalization; the basis (locked Ritz vectors and new Lanczos vectors) must
        // stay orthonormal over restarts.
        let n = 300;
        let lambdas: Vec<f64> = (0..n)
            .map(|i| match i {
                0 => -7.0,
                1 => 25.0,
                2 => 12.0,
                _ => (i as f64 / 37.0).sin(),
            })
            .collect();
        let (op, _) = dense(&orthogonal(n, 9), &lambdas);
        let m = 40;
        let start = probe(0, 0, 0, ProbeDistribution::Gaussian, n);
        let mut kr =
            Krylov::new(&op, &start, BasisPrecision::F64, DEFAULT_BREAKDOWN_TOL, m).unwrap();
        let (mut restarts, mut worst) = (0, 0.0f64);
        while kr.applications < 150 {
            assert!(!kr.step(&op).unwrap());
            if kr.basis.len() < m {
                kr.advance();
                continue;
            }
            // A full basis, then right after the restart (locked Ritz vectors and the new
            // residual direction).
            let loss = orthonormality_error(&kr.basis);
            let (eig, _) = kr.ritz().unwrap();
            kr.restart(&eig, &keep(eig.values.len(), m, 3));
            restarts += 1;
            worst = worst.max(loss).max(orthonormality_error(&kr.basis));
            assert!(
                worst <= 1e-12,
                "restart {restarts}: ‖VᵀV − I‖_max = {worst:e}"
            );
        }
        eprintln!(
            "{restarts} restarts, ‖VᵀV − I‖_max ≤ {worst:.2e}, {} of {} steps needed a second \
             Gram-Schmidt round",
            kr.second_passes, kr.applications
        );
        assert!(restarts >= 4);
    }
}
