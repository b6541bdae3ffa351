//! The Lanczos process with full reorthogonalization, and the Krylov state it shares with
//! the thick-restart extreme-eigenvalue solver.

use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

use crate::basis::{Basis, BasisPrecision};
use crate::eigen::{symmetric_eigen, Eigen};
use crate::error::Error;
use crate::kernels::{axpy, dot, norm, scale};
use crate::operator::{apply, apply_block, check_operator, LinearOperator};

/// Default relative breakdown tolerance: a step whose new β is below
/// `1e-10 · max(|α_i|, β_i)` is treated as having found an invariant subspace. With full
/// reorthogonalization the β of an exhausted Krylov space is rounding noise, ~1e-15 ‖A‖,
/// far below it, while a genuine β this small moves Ritz values by at most 1e-10 ‖A‖.
pub const DEFAULT_BREAKDOWN_TOL: f64 = 1e-10;

/// Parameters of [`lanczos`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LanczosParams {
    /// Number of steps (= operator applications); capped at the dimension n. Default 100,
    /// the `iter` default of PyHessian's `density()` (Yao et al. 2020).
    pub steps: usize,
    /// Storage of the basis vectors (memory steps · n · bytes).
    pub basis: BasisPrecision,
    /// Return the basis (it is built either way, for the reorthogonalization).
    pub keep_basis: bool,
    /// Relative breakdown tolerance, see [`DEFAULT_BREAKDOWN_TOL`].
    pub breakdown_tol: f64,
}

impl Default for LanczosParams {
    fn default() -> Self {
        Self {
            steps: 100,
            basis: BasisPrecision::F64,
            keep_basis: false,
            breakdown_tol: DEFAULT_BREAKDOWN_TOL,
        }
    }
}

/// What a Lanczos run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LanczosInfo {
    /// Steps taken (the size of T).
    pub steps: usize,
    /// Whether the run stopped at an invariant subspace (β below the breakdown tolerance,
    /// or the whole space spanned): the Ritz values are then exact eigenvalues.
    pub breakdown: bool,
    /// Operator applications made (equal to `steps`).
    pub applications: usize,
    /// Steps whose reorthogonalization failed the DGKS test and ran a second Gram-Schmidt
    /// round (four passes over the basis instead of two): a measure of the bookkeeping
    /// cost, usually 0. Absent from older JSON, read as 0.
    #[serde(default)]
    pub second_passes: usize,
}

/// The result of [`lanczos`] after `s` steps: `A V = V T + β_s v_{s+1} e_sᵀ` with T
/// tridiagonal.
#[derive(Debug, Clone)]
pub struct Lanczos {
    /// Diagonal of T, α_1..α_m.
    pub alphas: Vec<f64>,
    /// β_1..β_s, same length as `alphas`: `betas[..s-1]` is the off-diagonal of T and the
    /// last one is the residual norm β_s behind the Ritz bounds |β_s y_{s,i}| (below the
    /// breakdown tolerance, or 0, after a breakdown).
    pub betas: Vec<f64>,
    /// The orthonormal basis V (one vector per step), if [`LanczosParams::keep_basis`].
    pub basis: Option<Basis>,
    /// Steps, breakdown flag, applications.
    pub info: LanczosInfo,
}

/// Lanczos tridiagonalization of a symmetric operator from `start`, with full
/// reorthogonalization (classical Gram-Schmidt against all previous vectors, repeated once
/// when the Daniel–Gragg–Kaufman–Stewart test asks for it, f64 arithmetic), so the Ritz
/// values carry no spurious copies (Paige 1971) and breakdown is detected reliably.
///
/// Each step: `w = A v_j`, `α_j = v_jᵀ w`, `w −= α_j v_j + β_{j−1} v_{j−1}` (in f64), then
/// `w ← (I − V Vᵀ) w`, once more if that left less than 1/√2 of ‖w‖, and
/// `β_j = ‖w‖`. A step with `β_j ≤ breakdown_tol · max_i(|α_i|, β_i)` ends the run: the
/// Krylov space is invariant and the eigenvalues of T are exact eigenvalues of A. Costs `steps`
/// applications, 2 passes over the basis per step (4 in the rare steps counted by
/// [`LanczosInfo::second_passes`]; parallel over pieces of the dimension when n ≥ 16384)
/// and steps · n · bytes of basis memory.
///
/// # Errors
/// [`Error::NotSymmetricOperator`], [`Error::EmptyOperator`], [`Error::InvalidParam`]
/// (`steps` 0, `breakdown_tol` outside [0, 1)), [`Error::DimensionMismatch`],
/// [`Error::BadStartVector`], [`Error::Operator`], [`Error::NonFinite`].
///
/// ```
/// use saddlescope_spectral::{lanczos, DenseSymmetric, LanczosParams};
/// let a = DenseSymmetric::from_row_major(3, 3, &[1.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 3.0]).unwrap();
/// let run = lanczos(&a, &[1.0, 1.0, 1.0], &LanczosParams::default()).unwrap();
/// assert!(run.info.breakdown && run.info.steps == 3); // the whole space is invariant
/// assert!((run.alphas[0] - 2.0).abs() < 1e-15); // α_1 = zᵀAz/zᵀz
/// ```
pub fn lanczos<O: LinearOperator + ?Sized>(
    op: &O,
    start: &[f64],
    params: &LanczosParams,
) -> Result<Lanczos, Error> {
    check_operator(op)?;
    let mut run = LanczosRun::new(op, start, params)?;
    while run.active() {
        let breakdown = run.krylov().step(op)?;
        run.after_step(breakdown);
    }
    Ok(run.finish(params.keep_basis))
}

/// One Lanczos run of a fixed number of steps, advanced step by step from outside: alone
/// ([`lanczos`]) or in lockstep with others ([`lockstep`]).
pub(crate) struct LanczosRun {
    kr: Krylov,
    steps: usize,
    breakdown: bool,
    finished: bool,
}

impl LanczosRun {
    /// A run of `params.steps` steps (at most the dimension) from `start`.
    pub(crate) fn new<O: LinearOperator + ?Sized>(
        op: &O,
        start: &[f64],
        params: &LanczosParams,
    ) -> Result<Self, Error> {
        if params.steps == 0 {
            return Err(Error::param("steps", params.steps, "at least 1"));
        }
        check_breakdown_tol(params.breakdown_tol)?;
        let steps = params.steps.min(op.dim());
        Ok(Self {
            kr: Krylov::new(op, start, params.basis, params.breakdown_tol, steps)?,
            steps,
            breakdown: false,
            finished: false,
        })
    }

    /// Applications made so far.
    pub(crate) fn applications(&self) -> usize {
        self.kr.applications
    }

    /// Whether another step is due.
    pub(crate) fn active(&self) -> bool {
        !self.finished
    }

    /// The Krylov state whose next step is due.
    pub(crate) fn krylov(&mut self) -> &mut Krylov {
        &mut self.kr
    }

    /// Records a step's outcome: the run ends at a breakdown or after its last step, and
    /// otherwise moves on to the next basis vector.
    pub(crate) fn after_step(&mut self, breakdown: bool) {
        self.breakdown = breakdown;
        if breakdown || self.kr.alphas.len() == self.steps {
            self.finished = true;
        } else {
            self.kr.advance();
        }
    }

    /// The run's result.
    pub(crate) fn finish(self, keep_basis: bool) -> Lanczos {
        let info = LanczosInfo {
            steps: self.kr.alphas.len(),
            breakdown: self.breakdown,
            applications: self.kr.applications,
            second_passes: self.kr.second_passes,
        };
        Lanczos {
            alphas: self.kr.alphas,
            betas: self.kr.betas,
            basis: keep_basis.then_some(self.kr.basis),
            info,
        }
    }
}

/// Advances every active run of `runs` to its end, one step of all of them per block
/// application ([`LinearOperator::apply_block`]): `k` runs of `steps` steps cost `steps`
/// block products of `k` vectors. `done` counts the applications made before (for errors).
pub(crate) fn lockstep<O: LinearOperator + ?Sized>(
    op: &O,
    runs: &mut [LanczosRun],
    mut done: usize,
) -> Result<(), Error> {
    loop {
        let mut active: Vec<&mut LanczosRun> = runs.iter_mut().filter(|r| r.active()).collect();
        if active.is_empty() {
            return Ok(());
        }
        let mut krylovs: Vec<&mut Krylov> = active.iter_mut().map(|r| r.krylov()).collect();
        let flags = step_block(op, &mut krylovs, done)?;
        done += flags.len();
        for (run, breakdown) in active.into_iter().zip(flags) {
            run.after_step(breakdown);
        }
    }
}

/// One step of each Krylov state of `krylovs` with a single block application; returns
/// their breakdown flags. `done` counts the applications made before (for errors).
pub(crate) fn step_block<O: LinearOperator + ?Sized>(
    op: &O,
    krylovs: &mut [&mut Krylov],
    done: usize,
) -> Result<Vec<bool>, Error> {
    {
        let (xs, mut ys): (Vec<&[f64]>, Vec<&mut [f64]>) =
            krylovs.iter_mut().map(|k| k.product_slots()).unzip();
        apply_block(op, &xs, &mut ys, done)?;
    }
    krylovs.iter_mut().map(|k| k.absorb()).collect()
}

/// Checks a relative breakdown tolerance.
pub(crate) fn check_breakdown_tol(tol: f64) -> Result<(), Error> {
    if (0.0..1.0).contains(&tol) {
        Ok(())
    } else {
        Err(Error::param("breakdown_tol", tol, "a number in [0, 1)"))
    }
}

/// A Krylov decomposition `A V = V H + β r e_lastᵀ` under construction.
///
/// H is `[[diag(locked), arrow, 0], [arrowᵀ, tridiag(alphas, betas)]]`: after a thick
/// restart the kept Ritz pairs are `locked`, coupled to the first new vector by `arrow`
/// (Wu & Simon 2000); plain Lanczos has no locked part. The current vector `cur` (the last
/// basis vector) and its predecessor are kept in f64 so the three-term step is exact f64
/// arithmetic even with an f32 basis.
pub(crate) struct Krylov {
    pub(crate) basis: Basis,
    cur: Vec<f64>,
    prev: Option<Vec<f64>>,
    locked: Vec<f64>,
    arrow: Vec<f64>,
    pub(crate) alphas: Vec<f64>,
    pub(crate) betas: Vec<f64>,
    residual: Vec<f64>,
    scale: f64,
    pub(crate) applications: usize,
    /// Steps whose reorthogonalization needed the second Gram-Schmidt round.
    pub(crate) second_passes: usize,
    breakdown_tol: f64,
    /// The larger of the operator's and the basis storage's unit roundoff.
    roundoff: f64,
}

impl Krylov {
    /// Starts from `start / ‖start‖`, reserving a basis of `capacity` vectors.
    pub(crate) fn new<O: LinearOperator + ?Sized>(
        op: &O,
        start: &[f64],
        precision: BasisPrecision,
        breakdown_tol: f64,
        capacity: usize,
    ) -> Result<Self, Error> {
        let n = op.dim();
        if start.len() != n {
            return Err(Error::DimensionMismatch {
                expected: n,
                got: start.len(),
            });
        }
        let nrm = norm(start);
        if !(nrm.is_finite() && nrm > 0.0) {
            return Err(Error::BadStartVector { norm: nrm });
        }
        let mut cur = start.to_vec();
        scale(1.0 / nrm, &mut cur);
        let mut basis = Basis::new(n, precision, capacity);
        basis.push(&cur);
        Ok(Self {
            basis,
            cur,
            prev: None,
            locked: Vec::new(),
            arrow: Vec::new(),
            alphas: Vec::new(),
            betas: Vec::new(),
            residual: vec![0.0; n],
            scale: 0.0,
            applications: 0,
            second_passes: 0,
            breakdown_tol,
            roundoff: op.unit_roundoff().max(precision.unit_roundoff()),
        })
    }

    /// Size of the projected matrix H.
    pub(crate) fn size(&self) -> usize {
        self.locked.len() + self.alphas.len()
    }

    /// One Lanczos step from the current vector; returns whether it broke down.
    pub(crate) fn step<O: LinearOperator + ?Sized>(&mut self, op: &O) -> Result<bool, Error> {
        apply(op, &self.cur, &mut self.residual, self.applications)?;
        self.absorb()
    }

    /// The current vector and the buffer its product goes to, for a block application.
    pub(crate) fn product_slots(&mut self) -> (&[f64], &mut [f64]) {
        (&self.cur, &mut self.residual)
    }

    /// Completes a step whose product `A·cur` has been written to the residual buffer
    /// ([`product_slots`](Self::product_slots)); returns whether it broke down.
    pub(crate) fn absorb(&mut self) -> Result<bool, Error> {
        self.applications += 1;
        let step = self.applications;
        let alpha = dot(&self.cur, &self.residual);
        if !alpha.is_finite() {
            return Err(Error::NonFinite {
                what: "alpha",
                value: alpha,
                step,
            });
        }
        axpy(-alpha, &self.cur, &mut self.residual);
        if let (Some(prev), Some(&beta_prev)) = (&self.prev, self.betas.last()) {
            axpy(-beta_prev, prev, &mut self.residual);
        }
        // With n basis vectors the space is exhausted: the residual is rounding noise.
        let beta = if self.basis.len() == self.basis.dim() {
            0.0
        } else {
            let out = self.basis.orthogonalize(&mut self.residual);
            self.second_passes += usize::from(out.second_round);
            out.norm
        };
        if !beta.is_finite() {
            return Err(Error::NonFinite {
                what: "beta",
                value: beta,
                step,
            });
        }
        self.scale = self.scale.max(alpha.abs()).max(beta);
        self.alphas.push(alpha);
        self.betas.push(beta);
        Ok(beta <= self.breakdown_tol * self.scale)
    }

    /// Makes the normalized residual the next basis vector (after a step without breakdown).
    pub(crate) fn advance(&mut self) {
        let beta = self.betas.last().copied().unwrap_or(1.0);
        let old = self.rotate_in_residual(beta);
        self.prev = Some(old);
    }

    /// Normalizes the residual by `beta`, appends it to the basis and makes it `cur`;
    /// returns the old `cur` buffer.
    fn rotate_in_residual(&mut self, beta: f64) -> Vec<f64> {
        scale(1.0 / beta, &mut self.residual);
        self.basis.push(&self.residual);
        let recycled = self
            .prev
            .take()
            .unwrap_or_else(|| vec![0.0; self.cur.len()]);
        let new_cur = std::mem::replace(&mut self.residual, recycled);
        std::mem::replace(&mut self.cur, new_cur)
    }

    /// Thick restart: keeps the Ritz pairs `keep` (indices into `eig`) and continues from
    /// the residual direction (Wu & Simon 2000).
    pub(crate) fn restart(&mut self, eig: &Eigen, keep: &[usize]) {
        let last = self.size() - 1;
        let beta = self.betas.last().copied().unwrap_or(0.0);
        let coeffs: Vec<Vec<f64>> = keep
            .iter()
            .map(|&k| eig.vectors.column(k).iter().copied().collect())
            .collect();
        self.basis.recombine(&coeffs);
        self.locked = keep.iter().map(|&k| eig.values[k]).collect();
        self.arrow = keep
            .iter()
            .map(|&k| beta * eig.vectors[(last, k)])
            .collect();
        self.alphas.clear();
        self.betas.clear();
        // The old current vector is not needed: the next step couples through `arrow`.
        self.rotate_in_residual(beta);
    }

    /// The projected matrix H.
    fn projected(&self) -> DMatrix<f64> {
        let p = self.locked.len();
        let mut h = DMatrix::zeros(self.size(), self.size());
        for (i, (&theta, &s)) in self.locked.iter().zip(&self.arrow).enumerate() {
            h[(i, i)] = theta;
            h[(i, p)] = s;
            h[(p, i)] = s;
        }
        let t = crate::eigen::tridiagonal(&self.alphas, &self.betas);
        h.view_mut((p, p), t.shape()).copy_from(&t);
        h
    }

    /// Ritz pairs of H (ascending) and their residual bounds: `|β · s_{last,i}|`, the norm of
    /// `A y_i − θ_i y_i` for the Ritz vector `y_i = V s_i` in exact arithmetic, plus the
    /// [`rounding`](Self::rounding) allowance, so that a converged bound never claims more
    /// accuracy than the arithmetic delivers.
    pub(crate) fn ritz(&self) -> Result<(Eigen, Vec<f64>), Error> {
        let eig = symmetric_eigen(self.projected())?;
        let last = self.size() - 1;
        let beta = self.betas.last().copied().unwrap_or(0.0);
        let rounding = self.rounding();
        let bounds = (0..=last)
            .map(|k| (beta * eig.vectors[(last, k)]).abs() + rounding)
            .collect();
        Ok((eig, bounds))
    }

    /// The rounding allowance `j · u · max(|α|, β)` of a basis of j vectors: with full
    /// reorthogonalization the Ritz values carry errors of order u‖A‖ (Paige 1971), `u` the
    /// unit roundoff of the operator's applications or of the basis storage, whichever is
    /// coarser (f64's, or f32's for an f32 network or `--basis f32`).
    pub(crate) fn rounding(&self) -> f64 {
        self.size() as f64 * self.roundoff * self.scale
    }

    /// Whether a bound is as small as it can get: below the breakdown tolerance times the
    /// scale, or at most twice the rounding allowance (the residual itself is then below
    /// the arithmetic's accuracy, and more steps cannot tighten the bound).
    pub(crate) fn negligible(&self, bound: f64) -> bool {
        bound <= self.breakdown_tol * self.scale || bound <= 2.0 * self.rounding()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{dense, orthogonal};

    #[test]
    fn basis_is_orthonormal_and_reproduces_t() {
        // A V = V T + β v e_mᵀ and VᵀV = I to 1e-13, on a random 300 x 300 matrix.
        let n = 300;
        let lambdas: Vec<f64> = (0..n).map(|i| (i as f64 / 10.0).sin() * 3.0).collect();
        let (op, _) = dense(&orthogonal(n, 1), &lambdas);
        let start: Vec<f64> = (0..n).map(|i| 1.0 + (i % 7) as f64).collect();
        let params = LanczosParams {
            steps: 40,
            keep_basis: true,
            ..Default::default()
        };
        let run = lanczos(&op, &start, &params).unwrap();
        let basis = run.basis.unwrap();
        let m = run.info.steps;
        assert_eq!(
            (m, run.info.applications, run.info.breakdown),
            (40, 40, false)
        );
        let v = DMatrix::from_fn(n, m, |i, j| basis.vector(j).unwrap()[i]);
        assert!((v.transpose() * &v - DMatrix::identity(m, m)).amax() < 1e-13);
        let t = crate::eigen::tridiagonal(&run.alphas, &run.betas);
        let vt_av = v.transpose() * op.matrix() * &v;
        assert!((vt_av - t).amax() < 1e-12);
    }

    #[test]
    fn rejects_bad_inputs() {
        let (op, _) = dense(&orthogonal(5, 0), &[1.0, 2.0, 3.0, 4.0, 5.0]);
        let p = LanczosParams::default();
        assert!(matches!(
            lanczos(&op, &[0.0; 5], &p),
            Err(Error::BadStartVector { .. })
        ));
        assert!(matches!(
            lanczos(&op, &[1.0; 4], &p),
            Err(Error::DimensionMismatch {
                expected: 5,
                got: 4
            })
        ));
        let zero = LanczosParams {
            steps: 0,
            ..Default::default()
        };
        assert!(matches!(
            lanczos(&op, &[1.0; 5], &zero),
            Err(Error::InvalidParam { name: "steps", .. })
        ));
    }
}
