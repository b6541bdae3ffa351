//! Loss landscapes along the extreme eigenvectors of a class-wise Hessian: the class loss
//! `L_c(w + t·u)` for u = u_max, u_min (unit Ritz vectors of λ_max and λ_min) and a seeded
//! random unit direction, next to the second-order prediction `L_c(w) + t·g·u + ½λt²`, and
//! optionally `L_c` on the (u_max, u_min) plane. A negative λ_min says that a class sits at
//! a saddle; the curve along u_min going down shows it.
//!
//! The routine [`landscape`] only needs a [`LossSurface`]: a Hessian operator that can also
//! evaluate its loss at `w + δ` and its gradient at `w`. [`ClassHessian`] is one (eval-mode
//! BN, weights never written: nn evaluates perturbed weights by passing them to the forward
//! pass); an exact quadratic is another, which is how the curves are checked. The result,
//! [`LandscapeReport`], and its file live in `saddlescope-results`.

use saddlescope_results::{DirectionCurve, DirectionKind, LandscapeReport, Plane};
use saddlescope_spectral::{
    extreme_eigenvalues, probe_vector, ExtremeParams, LinearOperator, OperatorError,
    ProbeDistribution,
};

use crate::analyze::{AnalyzeParams, Subject};
use crate::operator::ClassHessian;
use crate::setup::HessianSetup;
use crate::{Error, Param};

mod selection;
#[cfg(test)]
pub(crate) mod tests;

pub use selection::landscape_classes;

/// Default number of points of a 1-D curve: t = 0 is the middle one.
pub const DEFAULT_POINTS: usize = 41;

/// Default points per axis of the plane (21 × 21 loss evaluations).
pub const DEFAULT_PLANE_POINTS: usize = 21;

/// RNG stream of the random direction (probe 0 of this stream, seeded with the analysis
/// seed): a stream of its own, so the direction is independent of the SLQ probes.
pub const RANDOM_DIRECTION_STREAM: u64 = 0x4c41_4e44;

/// The default range R makes the quadratic term `½|λ|R²` this fraction of the loss scale:
/// at the ends of the grid the second-order prediction has moved by half the loss, enough to
/// see the curvature on a plot scaled to the curve, small enough that a trained class's
/// loss is still near its quadratic model over most of the grid.
pub const RANGE_FRACTION: f64 = 0.5;

/// Loss scale floor of the default range: a class fitted to a loss of ~0 would otherwise get
/// a range so short that the curve shows rounding, not curvature.
pub const RANGE_LOSS_FLOOR: f64 = 1e-3;

/// Limits of the default range (in parameter-space distance, u unit): below 1e-3 a curve is
/// dominated by rounding of the loss; above 1, the curvature is so small (a random direction
/// sees about tr(H)/n) that the walk leaves the trained region before it shows.
pub const RANGE_LIMITS: (f64, f64) = (1e-3, 1.0);

/// How to sample a landscape.
#[derive(Debug, Clone, PartialEq)]
pub struct LandscapeParams {
    /// Half-width R of every 1-D grid `[-R, R]` (and of both plane axes); `None`: per
    /// direction from its eigenvalue, [`default_range`].
    pub range: Option<f64>,
    /// Points of each 1-D curve: odd, at least 3, so that t = 0 is on the grid. Default
    /// [`DEFAULT_POINTS`].
    pub points: usize,
    /// Points per axis of the (u_max, u_min) plane (odd, at least 3), or `None` for no
    /// plane. Default `None`.
    pub plane_points: Option<usize>,
}

impl Default for LandscapeParams {
    fn default() -> Self {
        Self {
            range: None,
            points: DEFAULT_POINTS,
            plane_points: None,
        }
    }
}

impl LandscapeParams {
    /// Checks the ranges.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming `range`, `points` or `plane_points`.
    pub fn validate(&self) -> Result<(), Error> {
        if let Some(r) = self.range {
            if !(r.is_finite() && r > 0.0) {
                return Err(Error::Invalid {
                    param: Param::Range,
                    reason: format!("{r}: expected a finite R > 0 (the grid is [-R, R])"),
                });
            }
        }
        let odd = |param: Param, k: usize| {
            if k < 3 || k.is_multiple_of(2) {
                return Err(Error::Invalid {
                    param,
                    reason: format!(
                        "{k}: expected an odd number of at least 3 (t = 0 on the grid)"
                    ),
                });
            }
            Ok(())
        };
        odd(Param::Points, self.points)?;
        self.plane_points
            .map_or(Ok(()), |k| odd(Param::PlanePoints, k))
    }
}

/// A loss whose Hessian is the operator: what [`landscape`] walks on.
pub trait LossSurface: LinearOperator {
    /// `L(w + δ)`, without changing w.
    fn loss_at(&self, delta: &[f64]) -> Result<f64, Error>;
    /// `L(w)` and `∇L(w)`.
    fn loss_and_grad(&self) -> Result<(f64, Vec<f64>), Error>;
}

impl LossSurface for ClassHessian<'_> {
    fn loss_at(&self, delta: &[f64]) -> Result<f64, Error> {
        Ok(self.hvp().loss_at(delta)?)
    }

    fn loss_and_grad(&self) -> Result<(f64, Vec<f64>), Error> {
        Ok(self.hvp().loss_and_grad_flat()?)
    }
}

/// The default half-width of a curve's grid:
/// `R = clamp(sqrt(2 · RANGE_FRACTION · max(loss0, RANGE_LOSS_FLOOR) / |λ|), RANGE_LIMITS)`,
/// so that the quadratic term `½|λ|R²` is [`RANGE_FRACTION`] of the loss scale (the upper
/// limit for λ = 0).
///
/// ```
/// use saddlescope_analysis::{default_range, RANGE_LIMITS};
/// // ½·|−2|·R² = 0.5 · 0.25
/// assert!((default_range(-2.0, 0.25) - 0.125f64.sqrt()).abs() < 1e-15);
/// assert_eq!(default_range(0.0, 1.0), RANGE_LIMITS.1);
/// assert_eq!(default_range(1e9, 1.0), RANGE_LIMITS.0);
/// ```
pub fn default_range(eigenvalue: f64, loss0: f64) -> f64 {
    let scale = loss0.max(RANGE_LOSS_FLOOR);
    let r = (2.0 * RANGE_FRACTION * scale / eigenvalue.abs()).sqrt();
    if r.is_nan() {
        RANGE_LIMITS.1
    } else {
        r.clamp(RANGE_LIMITS.0, RANGE_LIMITS.1)
    }
}

/// `k` points from `-r` to `r`, symmetric, with exactly 0 in the middle (k odd).
fn grid(r: f64, k: usize) -> Vec<f64> {
    let half = (k - 1) as f64 / 2.0;
    (0..k).map(|i| r * (i as f64 - half) / half).collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// One direction before sampling: unit vector, curvature, residual.
struct Direction {
    kind: DirectionKind,
    u: Vec<f64>,
    eigenvalue: f64,
    bound: f64,
}

/// The landscape of `surface` around w, labelled `class`.
///
/// 1. λ_max and λ_min with their unit Ritz vectors and residual bounds by
///    [`extreme_eigenvalues`] with `solver` (its `top_k` set to 1 and `ritz_vectors` on:
///    only the extremes are converged); the random direction is probe 0 of
///    ([`RANDOM_DIRECTION_STREAM`], `solver.seed`), Gaussian, normalized, with its Rayleigh
///    quotient (one more application).
/// 2. `L(w)` and `g = ∇L(w)`; each direction is flipped if needed so that `g·u ≤ 0`.
/// 3. Each curve on `[-R, R]` (`params.range`, or [`default_range`] of its own curvature),
///    `params.points` loss evaluations; the plane on `[-R_max, R_max] × [-R_min, R_min]`.
///
/// Cost: the extreme solve, one application, one gradient and `3·points (+ plane_points²)`
/// loss evaluations. For an exact quadratic the curves equal their `quadratic` up to
/// `½t²|uᵀHu − eigenvalue|`, which a converged Ritz pair makes ~ε‖H‖.
///
/// # Errors
/// [`Error::Invalid`] from [`LandscapeParams::validate`]; [`Error::NonFiniteLoss`] when the
/// loss is not finite somewhere on the grid; [`Error::Spectral`] (class `class`) when the solver
/// or an application fails; the surface's errors.
pub fn landscape<S: LossSurface + ?Sized>(
    surface: &S,
    class: usize,
    solver: &ExtremeParams,
    params: &LandscapeParams,
) -> Result<LandscapeReport, Error> {
    params.validate()?;
    let spectral = |source| Error::Spectral {
        class: class.to_string(),
        source,
    };
    let solver = ExtremeParams {
        top_k: 1,
        ritz_vectors: true,
        ..solver.clone()
    };
    let extremes = extreme_eigenvalues(surface, &solver).map_err(spectral)?;
    let (Some(u_max), Some(u_min)) = (extremes.max_vector, extremes.min_vector) else {
        return Err(spectral(saddlescope_spectral::Error::PotentialBug {
            message: "the extreme solver returned no Ritz vectors",
        }));
    };
    let n = surface.dim();
    let mut u_random = vec![0.0; n];
    probe_vector(
        solver.seed,
        RANDOM_DIRECTION_STREAM,
        0,
        ProbeDistribution::Gaussian,
        &mut u_random,
    );
    let norm = dot(&u_random, &u_random).sqrt();
    u_random.iter_mut().for_each(|x| *x /= norm);
    let mut hu = vec![0.0; n];
    surface
        .apply(&u_random, &mut hu)
        .map_err(|source: OperatorError| {
            spectral(saddlescope_spectral::Error::Operator {
                application: 1,
                source,
            })
        })?;
    let rayleigh = dot(&u_random, &hu);
    let residual = hu
        .iter()
        .zip(&u_random)
        .map(|(h, u)| (h - rayleigh * u).powi(2))
        .sum::<f64>()
        .sqrt();

    let (loss0, g) = surface.loss_and_grad()?;
    let mut directions = [
        Direction {
            kind: DirectionKind::Max,
            u: u_max,
            eigenvalue: extremes.max.value,
            bound: extremes.max.bound,
        },
        Direction {
            kind: DirectionKind::Min,
            u: u_min,
            eigenvalue: extremes.min.value,
            bound: extremes.min.bound,
        },
        Direction {
            kind: DirectionKind::Random,
            u: u_random,
            eigenvalue: rayleigh,
            bound: residual,
        },
    ];
    for d in &mut directions {
        if dot(&g, &d.u) > 0.0 {
            d.u.iter_mut().for_each(|x| *x = -*x);
        }
    }
    let range = |d: &Direction| {
        params
            .range
            .unwrap_or_else(|| default_range(d.eigenvalue, loss0))
    };
    let at = |delta: &[f64], where_: &dyn Fn() -> String| -> Result<f64, Error> {
        let l = surface.loss_at(delta)?;
        if !l.is_finite() {
            return Err(Error::NonFiniteLoss {
                class,
                value: l,
                point: where_(),
            });
        }
        Ok(l)
    };
    let curves = directions
        .iter()
        .map(|d| {
            let slope = dot(&g, &d.u);
            let t = grid(range(d), params.points);
            let loss = t
                .iter()
                .map(|&t| {
                    let delta: Vec<f64> = d.u.iter().map(|x| t * x).collect();
                    at(&delta, &|| format!("t = {t:e} along u_{}", d.kind.as_str()))
                })
                .collect::<Result<Vec<f64>, Error>>()?;
            let quadratic = t
                .iter()
                .map(|&t| loss0 + t * slope + 0.5 * d.eigenvalue * t * t)
                .collect();
            Ok(DirectionCurve {
                name: d.kind,
                eigenvalue: d.eigenvalue,
                bound: d.bound,
                t,
                loss,
                quadratic,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let plane = match params.plane_points {
        None => None,
        Some(k) => {
            let [max, min, _] = &directions;
            let (s, t) = (grid(range(max), k), grid(range(min), k));
            let loss = s
                .iter()
                .map(|&si| {
                    t.iter()
                        .map(|&tj| {
                            let delta: Vec<f64> = max
                                .u
                                .iter()
                                .zip(&min.u)
                                .map(|(a, b)| si * a + tj * b)
                                .collect();
                            at(&delta, &|| format!("s = {si:e}, t = {tj:e} on the plane"))
                        })
                        .collect::<Result<Vec<f64>, Error>>()
                })
                .collect::<Result<Vec<_>, Error>>()?;
            Some(Plane { s, t, loss })
        }
    };
    Ok(LandscapeReport {
        class,
        loss0,
        directions: curves,
        plane,
    })
}

/// The landscape of class `class` of `subject`: the class-wise Hessian exactly as
/// [`crate::analyze`] builds it from `params` (samples, loss, parameter block, dtype, batch
/// size, eval-mode BN), its extremes by the analysis's own solver settings
/// ([`saddlescope_spectral::SpectrumParams::extreme`]) and the random direction from its
/// seed. `params.class_ids`, `include_all` and `saddle` are not used. The subject's model is
/// only read.
///
/// # Errors
/// [`Error::Invalid`] naming `class` for a class out of range or without samples in the
/// split, otherwise as [`landscape`] and the analysis's checks.
pub fn class_landscape(
    subject: &Subject<'_>,
    params: &AnalyzeParams,
    class: usize,
    landscape_params: &LandscapeParams,
) -> Result<LandscapeReport, Error> {
    let setup = HessianSetup::new(subject, params)?;
    let classes = subject.model.classes();
    if class >= classes {
        return Err(Error::Invalid {
            param: Param::Class,
            reason: format!("class {class} does not exist (the checkpoint has {classes} classes)"),
        });
    }
    let batches = setup.class_batches(class)?;
    if batches.is_empty() {
        return Err(Error::Invalid {
            param: Param::Class,
            reason: format!(
                "no samples of class {class} in the {} split",
                subject.split_name
            ),
        });
    }
    let op = setup.operator(batches)?;
    landscape(&op, class, &params.spectrum.extreme(), landscape_params)
}
