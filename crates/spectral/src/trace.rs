//! Trace estimators (Hutchinson, Hutch++, SLQ) and the negative spectral mass.

use serde::{Deserialize, Serialize};

use crate::basis::{Basis, BasisPrecision};
use crate::error::Error;
use crate::kernels::{dot, mean_stderr, norm, scale};
use crate::operator::{apply_block, check_operator, LinearOperator};

/// Probe vectors applied together in one block ([`LinearOperator::apply_block`]): the
/// memory of `2·BLOCK` vectors for one sweep per block.
const BLOCK: usize = 8;

/// `A v` for every vector of `vs`, in blocks of [`BLOCK`]; `done` counts the applications
/// made before (for errors).
fn apply_all<O: LinearOperator + ?Sized>(
    op: &O,
    vs: &[Vec<f64>],
    done: usize,
) -> Result<Vec<Vec<f64>>, Error> {
    let n = op.dim();
    let mut out = vec![vec![0.0; n]; vs.len()];
    for (i, (xs, ys)) in vs.chunks(BLOCK).zip(out.chunks_mut(BLOCK)).enumerate() {
        let xs: Vec<&[f64]> = xs.iter().map(Vec::as_slice).collect();
        let mut ys: Vec<&mut [f64]> = ys.iter_mut().map(Vec::as_mut_slice).collect();
        apply_block(op, &xs, &mut ys, done + i * BLOCK)?;
    }
    Ok(out)
}
use crate::probe::{probe, ProbeDistribution};
use crate::slq::RitzMeasure;

/// A mean over probes and its standard error (sample standard deviation / √K; `None` for a
/// single probe).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Mean over probes.
    pub mean: f64,
    /// Standard error of the mean.
    pub stderr: Option<f64>,
}

impl Spread {
    /// Mean and standard error of `samples`, summed in order (deterministic).
    pub fn of(samples: &[f64]) -> Self {
        let (mean, stderr) = mean_stderr(samples);
        Self { mean, stderr }
    }
}

/// A stochastic trace estimate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceEstimate {
    /// The estimate of tr A.
    pub trace: f64,
    /// Its standard error from the spread of the random samples (`None` with one sample;
    /// `Some(0.0)` when Hutch++ captured the whole range).
    pub stderr: Option<f64>,
    /// The random samples (Hutchinson: `zᵀAz`; Hutch++: the residual part's samples).
    pub samples: Vec<f64>,
    /// Operator applications made.
    pub applications: usize,
}

/// Parameters of [`hutchinson`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HutchinsonParams {
    /// Number of probe vectors. Default 10.
    pub probes: usize,
    /// Probe seed (probes `0..probes` of `stream`, as SLQ draws them).
    pub seed: u64,
    /// Probe stream.
    pub stream: u64,
    /// Probe distribution; Rademacher (default) has the lowest variance (Hutchinson 1989).
    pub distribution: ProbeDistribution,
}

impl Default for HutchinsonParams {
    fn default() -> Self {
        Self {
            probes: 10,
            seed: 0,
            stream: 0,
            distribution: ProbeDistribution::Rademacher,
        }
    }
}

/// Hutchinson's estimator `tr A ≈ (1/K) Σ_k z_kᵀ A z_k` (Hutchinson 1989; curvlinops
/// `HutchinsonTraceEstimator`), with its standard error. For a Rademacher probe the
/// variance of one sample is `2 Σ_{i≠j} a_ij²`. Its probes are SLQ's probes `0..K` for
/// the same seed and stream, so each sample equals that probe's SLQ trace sample
/// `n Σ w θ` to rounding. Costs K applications, made in blocks of 8 vectors
/// ([`LinearOperator::apply_block`]).
///
/// # Errors
/// [`Error::InvalidParam`] (`probes` 0), [`Error::Operator`], [`Error::NonFinite`] and the
/// operator checks of [`crate::lanczos`].
pub fn hutchinson<O: LinearOperator + ?Sized>(
    op: &O,
    params: &HutchinsonParams,
) -> Result<TraceEstimate, Error> {
    let n = check_operator(op)?;
    if params.probes == 0 {
        return Err(Error::param("probes", params.probes, "at least 1"));
    }
    let probes: Vec<Vec<f64>> = (0..params.probes)
        .map(|k| probe(params.seed, params.stream, k as u64, params.distribution, n))
        .collect();
    let products = apply_all(op, &probes, 0)?;
    let samples = probes
        .iter()
        .zip(&products)
        .enumerate()
        .map(|(k, (z, y))| finite_sample(dot(z, y), k))
        .collect::<Result<Vec<f64>, Error>>()?;
    let spread = Spread::of(&samples);
    Ok(TraceEstimate {
        trace: spread.mean,
        stderr: spread.stderr,
        samples,
        applications: params.probes,
    })
}

/// Parameters of [`hutch_plus_plus`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HutchPlusPlusParams {
    /// Total applications, split in three equal parts (rounded down to a multiple of 3,
    /// at least 3). Default 30.
    pub applications: usize,
    /// Probe seed.
    pub seed: u64,
    /// Probe stream.
    pub stream: u64,
}

impl Default for HutchPlusPlusParams {
    fn default() -> Self {
        Self {
            applications: 30,
            seed: 0,
            stream: 0,
        }
    }
}

/// Hutch++ (Meyer, Musco, Musco & Woodruff 2021): with s = applications/3 Rademacher
/// sketch vectors S (probes `0..s`) and s more G (probes `s..2s`), Q = orth(A S) and
/// `tr A ≈ tr(Qᵀ A Q) + (1/s) Σ_k g_kᵀ (I − QQᵀ) A (I − QQᵀ) g_k`. The first term is
/// exact; the standard error comes from the second term's samples. Far more accurate than
/// Hutchinson when a few eigenvalues dominate (a Hessian's outliers): exact once rank A ≤ s.
/// Columns of A S that are numerically dependent (relative norm below 1e-10 after
/// orthogonalization) are dropped, saving their application in `Qᵀ A Q`. Each of the three
/// parts is applied in blocks of 8 vectors ([`LinearOperator::apply_block`]).
///
/// # Errors
/// [`Error::InvalidParam`] (`applications` below 3), then as [`hutchinson`].
pub fn hutch_plus_plus<O: LinearOperator + ?Sized>(
    op: &O,
    params: &HutchPlusPlusParams,
) -> Result<TraceEstimate, Error> {
    let n = check_operator(op)?;
    let s = params.applications / 3;
    if s == 0 {
        return Err(Error::param(
            "applications",
            params.applications,
            "at least 3",
        ));
    }
    let draw = |k: usize| {
        probe(
            params.seed,
            params.stream,
            k as u64,
            ProbeDistribution::Rademacher,
            n,
        )
    };
    let sketch: Vec<Vec<f64>> = (0..s).map(draw).collect();
    let mut q = Basis::new(n, BasisPrecision::F64, s.min(n));
    for mut y in apply_all(op, &sketch, 0)? {
        let before = norm(&y);
        let after = q.orthogonalize(&mut y).norm;
        if after > 1e-10 * before && q.len() < n {
            scale(1.0 / after, &mut y);
            q.push(&y);
        }
    }
    let mut done = s;
    let columns: Vec<Vec<f64>> = (0..q.len())
        .map(|i| q.vector(i).unwrap_or_default())
        .collect();
    let exact: f64 = columns
        .iter()
        .zip(apply_all(op, &columns, done)?)
        .map(|(qi, y)| dot(qi, &y))
        .sum();
    done += columns.len();
    let residuals: Vec<Vec<f64>> = (s..2 * s)
        .map(|k| {
            let mut g = draw(k);
            q.orthogonalize(&mut g);
            g
        })
        .collect();
    let samples = residuals
        .iter()
        .zip(apply_all(op, &residuals, done)?)
        .enumerate()
        .map(|(i, (g, y))| finite_sample(dot(g, &y), s + i))
        .collect::<Result<Vec<f64>, Error>>()?;
    done += residuals.len();
    let spread = Spread::of(&samples);
    Ok(TraceEstimate {
        trace: exact + spread.mean,
        stderr: spread.stderr,
        samples,
        applications: done,
    })
}

/// Rejects a non-finite probe sample.
fn finite_sample(value: f64, probe: usize) -> Result<f64, Error> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(Error::NonFinite {
            what: "quadratic form",
            value,
            step: probe + 1,
        })
    }
}

/// The SLQ trace estimate `n Σ_i w_i θ_i` per probe (mean over probes, standard error).
/// For a Rademacher probe it equals Hutchinson's `zᵀAz` on the same probe up to rounding,
/// since `Σ w θ = e_1ᵀ T e_1 = zᵀAz / n`.
pub fn slq_trace(dim: usize, measures: &[RitzMeasure]) -> Spread {
    let samples: Vec<f64> = measures.iter().map(|m| dim as f64 * m.mean()).collect();
    Spread::of(&samples)
}

/// The share of spectral mass clearly below zero per probe
/// ([`RitzMeasure::negative_mass`]: nodes below −1e-3 of the spectral radius), with its
/// spread across probes. A node carries the mass of the eigenvalues around it, so the
/// resolution is about the node spacing.
pub fn negative_mass(measures: &[RitzMeasure]) -> Spread {
    let samples: Vec<f64> = measures.iter().map(RitzMeasure::negative_mass).collect();
    Spread::of(&samples)
}
