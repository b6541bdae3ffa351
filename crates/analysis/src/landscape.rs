//! Loss landscapes along the extreme eigenvectors of a class-wise Hessian: the class loss
//! `L_c(w + t·u)` for u = u_max, u_min (unit Ritz vectors of λ_max and λ_min) and a seeded
//! random unit direction, next to the second-order prediction `L_c(w) + t·g·u + ½λt²`, and
//! optionally `L_c` on the (u_max, u_min) plane. A negative λ_min says that a class sits at
//! a saddle; the curve along u_min going down shows it.
//!
//! The routine [`landscape`] only needs a [`LossSurface`]: a Hessian operator that can also
//! evaluate its loss at `w + δ` and its gradient at `w`. [`ClassHessian`] is one (eval-mode
//! BN, weights never written: nn evaluates perturbed weights by passing them to the forward
//! pass); an exact quadratic is another, which is how the curves are checked.

use std::path::{Path, PathBuf};

use saddlescope_spectral::{
    extreme_eigenvalues, probe_vector, ExtremeParams, LinearOperator, OperatorError,
    ProbeDistribution,
};
use saddlescope_train::io::write_atomic;
use serde::{Deserialize, Serialize};

use crate::analyze::{AnalysisDir, AnalyzeParams, Subject};
use crate::operator::ClassHessian;
use crate::report::AnalysisReport;
use crate::setup::HessianSetup;
use crate::{Error, Param};

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

/// Which direction a curve follows. Serialized as `"max"`, `"min"`, `"random"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DirectionKind {
    /// The unit Ritz vector of λ_max.
    Max,
    /// The unit Ritz vector of λ_min (the saddle direction when λ_min < 0).
    Min,
    /// A seeded Gaussian direction, normalized.
    Random,
}

impl DirectionKind {
    /// `"max"`, `"min"` or `"random"`, as in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            DirectionKind::Max => "max",
            DirectionKind::Min => "min",
            DirectionKind::Random => "random",
        }
    }
}

/// The loss along one unit direction u, oriented so that `g·u ≤ 0` (the loss decreases to
/// first order for t > 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectionCurve {
    /// Which direction.
    pub name: DirectionKind,
    /// The curvature along u: the Ritz value for `max`/`min`, the Rayleigh quotient `uᵀHu`
    /// for `random`.
    pub eigenvalue: f64,
    /// `‖Hu − eigenvalue·u‖`: the Ritz residual bound for `max`/`min` (an eigenvalue of H
    /// lies within it), the true residual for `random` (large: it is no eigenvector).
    pub bound: f64,
    /// The grid, `[-R, R]`, t = 0 in the middle.
    pub t: Vec<f64>,
    /// `L(w + t·u)` on the grid.
    pub loss: Vec<f64>,
    /// `L(w) + t·g·u + ½·eigenvalue·t²` on the grid.
    pub quadratic: Vec<f64>,
}

impl DirectionCurve {
    /// The grid point of lowest loss, `(t, loss)` (the first one on ties).
    pub fn lowest(&self) -> (f64, f64) {
        self.t
            .iter()
            .zip(&self.loss)
            .fold(
                (0.0, f64::INFINITY),
                |best, (&t, &l)| {
                    if l < best.1 {
                        (t, l)
                    } else {
                        best
                    }
                },
            )
    }
}

/// The loss on the (u_max, u_min) plane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plane {
    /// Grid along u_max.
    pub s: Vec<f64>,
    /// Grid along u_min.
    pub t: Vec<f64>,
    /// `loss[i][j] = L(w + s[i]·u_max + t[j]·u_min)`.
    pub loss: Vec<Vec<f64>>,
}

/// A class's loss landscape: the content of `landscape.json`. Field names are the JSON
/// keys; `plane` is left out when not asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LandscapeReport {
    /// Class index.
    pub class: usize,
    /// `L(w)`, the class loss at the checkpoint.
    pub loss0: f64,
    /// `max`, `min`, `random`, in this order.
    pub directions: Vec<DirectionCurve>,
    /// The (u_max, u_min) plane, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plane: Option<Plane>,
}

impl LandscapeReport {
    /// The curve along `kind`.
    pub fn direction(&self, kind: DirectionKind) -> Option<&DirectionCurve> {
        self.directions.iter().find(|d| d.name == kind)
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

/// The classes `analyze --landscape` draws: every class flagged as a saddle and, for
/// contrast, the head class with the largest λ_max; ascending, without repeats.
pub fn landscape_classes(report: &AnalysisReport) -> Vec<usize> {
    let head = report
        .classes
        .iter()
        .filter(|c| c.group == Some(saddlescope_data::Group::Head))
        .max_by(|a, b| a.estimate.lambda_max.total_cmp(&b.estimate.lambda_max))
        .and_then(|c| c.class);
    let mut classes: Vec<usize> = report
        .classes
        .iter()
        .filter(|c| c.saddle)
        .filter_map(|c| c.class)
        .chain(head)
        .collect();
    classes.sort_unstable();
    classes.dedup();
    classes
}

/// File name of a landscape in its directory.
pub const LANDSCAPE_FILE: &str = "landscape.json";

/// Writes `dir/landscape.json` atomically (creating `dir`) and returns its path.
///
/// # Errors
/// [`Error::Io`] naming the file.
pub fn write_landscape(dir: &Path, report: &LandscapeReport) -> Result<PathBuf, Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let path = dir.join(LANDSCAPE_FILE);
    let json = serde_json::to_vec_pretty(report).map_err(|e| Error::Corrupt {
        path: path.clone(),
        detail: e.to_string(),
    })?;
    write_atomic(&path, &json).map_err(|e| Error::io(&path, e))?;
    Ok(path)
}

/// Reads a `landscape.json`.
///
/// # Errors
/// [`Error::Io`] or [`Error::Corrupt`] naming the file.
pub fn read_landscape(path: &Path) -> Result<LandscapeReport, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::Corrupt {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })
}

/// The landscapes of an analysis directory (`landscape/class-*/landscape.json`), by class;
/// empty when it has none.
///
/// # Errors
/// As [`read_landscape`], or [`Error::Io`] when `landscape/` cannot be listed.
pub fn read_landscapes(dir: &AnalysisDir) -> Result<Vec<LandscapeReport>, Error> {
    let root = dir.landscapes();
    if !root.is_dir() {
        return Ok(Vec::new());
    }
    let mut reports = Vec::new();
    for entry in std::fs::read_dir(&root).map_err(|e| Error::io(&root, e))? {
        let path = entry
            .map_err(|e| Error::io(&root, e))?
            .path()
            .join(LANDSCAPE_FILE);
        if path.is_file() {
            reports.push(read_landscape(&path)?);
        }
    }
    reports.sort_by_key(|r| r.class);
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use nalgebra::{DMatrix, DVector, SymmetricEigen};
    use saddlescope_spectral::{estimate_spectrum, DenseSymmetric, SpectrumParams, TraceMethod};

    use super::*;
    use crate::tests::{dense_hessian, finished, fixture, params, subject};

    /// `f(w0 + δ) = ½ (w0 + δ − c)ᵀ A (w0 + δ − c) + offset`: its curves are exact
    /// parabolas, `f(w0 + t u) = f(w0) + t g·u + ½ (uᵀAu) t²`.
    struct Quadratic {
        a: DenseSymmetric,
        /// `w0 − c`.
        shift: DVector<f64>,
        offset: f64,
    }

    impl Quadratic {
        /// A with eigenvalues `lambdas` in a fixed non-axis basis; w0 − c = `shift`.
        fn new(lambdas: &[f64], shift: DVector<f64>) -> Self {
            let n = lambdas.len();
            let g = DMatrix::from_fn(n, n, |i, j| ((7 * i + 13 * j + 1) as f64).sin());
            let q = g.qr().q();
            let a =
                &q * DMatrix::from_diagonal(&DVector::from_column_slice(lambdas)) * q.transpose();
            let a = DenseSymmetric::new(a).unwrap();
            Self {
                a,
                shift,
                offset: 2.0,
            }
        }
    }

    impl LinearOperator for Quadratic {
        fn dim(&self) -> usize {
            self.shift.len()
        }
        fn apply(&self, x: &[f64], y: &mut [f64]) -> Result<(), OperatorError> {
            self.a.apply(x, y)
        }
    }

    impl LossSurface for Quadratic {
        fn loss_at(&self, delta: &[f64]) -> Result<f64, Error> {
            let d = &self.shift + DVector::from_column_slice(delta);
            Ok(0.5 * d.dot(&(self.a.matrix() * &d)) + self.offset)
        }
        fn loss_and_grad(&self) -> Result<(f64, Vec<f64>), Error> {
            let g = self.a.matrix() * &self.shift;
            Ok((
                self.loss_at(&vec![0.0; self.dim()])?,
                g.iter().copied().collect(),
            ))
        }
    }

    const LAMBDAS: [f64; 12] = [
        -3.0, -1.0, -0.25, 0.1, 0.5, 1.0, 1.5, 2.0, 3.0, 4.5, 6.0, 10.0,
    ];

    fn solver() -> ExtremeParams {
        ExtremeParams {
            tol: 1e-12,
            ..ExtremeParams::default()
        }
    }

    #[test]
    fn curves_of_an_exact_quadratic_are_half_lambda_t_squared() {
        // At the critical point (g = 0): L(w + t u) − L(w) = ½ λ t² exactly, for the
        // extreme eigenvectors, and ½ (λ_max s² + λ_min t²) on their plane.
        let q = Quadratic::new(&LAMBDAS, DVector::zeros(12));
        let params = LandscapeParams {
            plane_points: Some(7),
            ..LandscapeParams::default()
        };
        let r = landscape(&q, 4, &solver(), &params).unwrap();
        assert_eq!(r.class, 4);
        assert_eq!(r.loss0, 2.0);
        let kinds: Vec<DirectionKind> = r.directions.iter().map(|d| d.name).collect();
        assert_eq!(
            kinds,
            [
                DirectionKind::Max,
                DirectionKind::Min,
                DirectionKind::Random
            ]
        );
        for (kind, exact) in [(DirectionKind::Max, 10.0), (DirectionKind::Min, -3.0)] {
            let d = r.direction(kind).unwrap();
            // Tolerance 1e-10 (f64; the loss itself is ~2 and rounds at ~1e-15).
            assert!(
                (d.eigenvalue - exact).abs() < 1e-10,
                "{kind:?}: {}",
                d.eigenvalue
            );
            assert!(d.bound < 1e-10, "{kind:?}: bound {}", d.bound);
            for ((&t, &l), &quad) in d.t.iter().zip(&d.loss).zip(&d.quadratic) {
                assert!(
                    (l - r.loss0 - 0.5 * exact * t * t).abs() < 1e-10,
                    "{kind:?} t={t}"
                );
                assert!((quad - l).abs() < 1e-10, "{kind:?} t={t}");
            }
            // Default range: ½|λ|R² = RANGE_FRACTION · loss0, here inside the limits.
            let range = default_range(d.eigenvalue, r.loss0);
            assert_eq!(*d.t.last().unwrap(), range);
            assert!((0.5 * exact.abs() * range * range - RANGE_FRACTION * 2.0).abs() < 1e-12);
            assert_eq!(d.t.len(), DEFAULT_POINTS);
            assert_eq!(d.t[DEFAULT_POINTS / 2], 0.0);
            assert!((0..DEFAULT_POINTS).all(|i| d.t[i] == -d.t[DEFAULT_POINTS - 1 - i]));
        }
        let random = r.direction(DirectionKind::Random).unwrap();
        assert!(random.eigenvalue > -3.0 && random.eigenvalue < 10.0);
        assert!(random.bound > 0.1, "a random direction is no eigenvector");
        for (&l, &quad) in random.loss.iter().zip(&random.quadratic) {
            assert!((quad - l).abs() < 1e-10);
        }
        let plane = r.plane.as_ref().unwrap();
        assert_eq!((plane.s.len(), plane.t.len(), plane.loss.len()), (7, 7, 7));
        for (i, &s) in plane.s.iter().enumerate() {
            for (j, &t) in plane.t.iter().enumerate() {
                let exact = 2.0 + 0.5 * (10.0 * s * s - 3.0 * t * t);
                assert!((plane.loss[i][j] - exact).abs() < 1e-10, "s={s} t={t}");
            }
        }
    }

    #[test]
    fn curves_of_a_quadratic_with_a_slope_follow_the_second_order_model() {
        let shift = DVector::from_fn(12, |i, _| 0.3 * ((i * i) as f64).cos());
        let q = Quadratic::new(&LAMBDAS, shift);
        let r = landscape(&q, 0, &solver(), &LandscapeParams::default()).unwrap();
        let exact = [10.0, -3.0];
        for (d, &lambda) in r.directions.iter().zip(&exact) {
            let k = d.t.len();
            for i in 0..k {
                assert!((d.quadratic[i] - d.loss[i]).abs() < 1e-10);
                // Even part: ½ λ t²; odd part: t g·u with g·u ≤ 0 (oriented downhill).
                let (t, up, down) = (d.t[i], d.loss[i], d.loss[k - 1 - i]);
                assert!(((up + down) / 2.0 - r.loss0 - 0.5 * lambda * t * t).abs() < 1e-10);
            }
            let slope = (d.loss[k - 1] - d.loss[0]) / (2.0 * d.t[k - 1]);
            assert!(slope < -1e-3, "{:?}: slope {slope} not downhill", d.name);
        }
        // The analytic slope and curvature of the random direction are in its quadratic.
        let random = &r.directions[2];
        assert!(random
            .loss
            .iter()
            .zip(&random.quadratic)
            .all(|(l, q)| (l - q).abs() < 1e-10));
    }

    #[test]
    fn real_class_loss_has_second_difference_lambda_and_weights_stay_bit_identical() {
        let f = fixture();
        let state = |m: &saddlescope_nn::Model| -> Vec<(String, Vec<u64>)> {
            m.state()
                .unwrap()
                .into_iter()
                .map(|(name, t)| {
                    let bits = t.flatten_all().unwrap().to_vec1::<f64>().unwrap();
                    (name, bits.into_iter().map(f64::to_bits).collect())
                })
                .collect()
        };
        let before = state(&f.model);
        let p = params(TraceMethod::Probes);
        let lp = LandscapeParams {
            range: Some(0.02),
            plane_points: Some(5),
            ..LandscapeParams::default()
        };
        let class = 2;
        let r = class_landscape(&subject(&f), &p, class, &lp).unwrap();
        assert!(
            before == state(&f.model),
            "the landscape changed the weights"
        );
        let h = dense_hessian(&f, Some(class));
        let eig = SymmetricEigen::new(h).eigenvalues;
        let scale = eig.max().abs().max(eig.min().abs());
        for (kind, exact) in [
            (DirectionKind::Min, eig.min()),
            (DirectionKind::Max, eig.max()),
        ] {
            let d = r.direction(kind).unwrap();
            assert!((d.eigenvalue - exact).abs() <= 1e-8 * scale, "{kind:?}");
            // Central second difference at t = 0, step h = 0.001: truncation ~h²/12 L''''
            // and rounding ~4ε L/h² are both far below 1e-3 relative.
            let mid = d.t.len() / 2;
            let step = d.t[mid + 1];
            let second = (d.loss[mid + 1] - 2.0 * d.loss[mid] + d.loss[mid - 1]) / (step * step);
            assert!(
                (second - d.eigenvalue).abs() <= d.bound + 1e-3 * d.eigenvalue.abs(),
                "{kind:?}: second difference {second} vs λ {} ± {}",
                d.eigenvalue,
                d.bound
            );
            assert!((d.loss[mid] - r.loss0).abs() <= 1e-14 * r.loss0);
        }
        assert!(
            eig.min() < 0.0,
            "the fixture is indefinite: u_min is a saddle direction"
        );
        let plane = r.plane.unwrap();
        assert!((plane.loss[2][2] - r.loss0).abs() <= 1e-14 * r.loss0);
    }

    #[test]
    fn ritz_vectors_of_a_class_hessian_are_unit_with_residual_within_the_bound() {
        let f = fixture();
        let p = params(TraceMethod::Probes);
        let s = subject(&f);
        let setup = HessianSetup::new(&s, &p).unwrap();
        let op = setup.operator(setup.class_batches(1).unwrap()).unwrap();
        let spectrum = SpectrumParams {
            ritz_vectors: true,
            ..p.spectrum.clone()
        };
        let est = estimate_spectrum(&op, &spectrum).unwrap();
        let scale = est.lambda_max.abs().max(est.lambda_min.abs());
        for (y, value, bound) in [
            (&est.lambda_max_vector, est.lambda_max, est.lambda_max_bound),
            (&est.lambda_min_vector, est.lambda_min, est.lambda_min_bound),
        ] {
            let y = y.as_ref().unwrap();
            assert!((dot(y, y).sqrt() - 1.0).abs() < 1e-12);
            let mut hy = vec![0.0; y.len()];
            op.apply(y, &mut hy).unwrap();
            let residual = hy
                .iter()
                .zip(y)
                .map(|(h, v)| (h - value * v).powi(2))
                .sum::<f64>()
                .sqrt();
            // The bound is the residual of the Lanczos relation plus a rounding allowance; the
            // true residual of the assembled vector also carries ~ε‖H‖ of its own rounding.
            assert!(
                residual <= bound + 1e-12 * scale,
                "residual {residual} vs bound {bound}"
            );
        }
    }

    #[test]
    fn landscape_classes_are_the_saddles_and_the_sharpest_head() {
        let f = fixture();
        let dir = tempfile::tempdir().unwrap();
        let mut report = finished(
            crate::analyze(
                &subject(&f),
                &params(TraceMethod::Probes),
                dir.path(),
                false,
                &crate::Quiet,
                &std::sync::atomic::AtomicBool::new(false),
            )
            .unwrap(),
        );
        let groups: Vec<_> = report.classes.iter().map(|c| c.group).collect();
        assert_eq!(groups[0], Some(saddlescope_data::Group::Head));
        report.classes.iter_mut().for_each(|c| c.saddle = false);
        assert_eq!(landscape_classes(&report), [0]);
        report.classes[2].saddle = true;
        assert_eq!(landscape_classes(&report), [0, 2]);
        report.classes[0].saddle = true;
        assert_eq!(landscape_classes(&report), [0, 2]);
        report.classes[0].group = Some(saddlescope_data::Group::Medium);
        report.classes[0].saddle = false;
        assert_eq!(landscape_classes(&report), [2]);
    }

    #[test]
    fn json_has_the_issue_keys_and_round_trips() {
        let q = Quadratic::new(&LAMBDAS, DVector::from_element(12, 0.1));
        let mut r = landscape(&q, 3, &solver(), &LandscapeParams::default()).unwrap();
        let keys = |v: &serde_json::Value| -> Vec<String> {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        let value = serde_json::to_value(&r).unwrap();
        assert_eq!(keys(&value), ["class", "directions", "loss0"]);
        assert_eq!(
            keys(&value["directions"][0]),
            ["bound", "eigenvalue", "loss", "name", "quadratic", "t"]
        );
        let names: Vec<&str> = (0..3)
            .map(|i| value["directions"][i]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["max", "min", "random"]);
        let dir = tempfile::tempdir().unwrap();
        let analysis = AnalysisDir::new(dir.path());
        assert!(read_landscapes(&analysis).unwrap().is_empty());
        let path = write_landscape(&analysis.landscape(3), &r).unwrap();
        assert_eq!(path, dir.path().join("landscape/class-0003/landscape.json"));
        assert_eq!(read_landscape(&path).unwrap(), r);
        r.class = 1;
        r.plane = Some(Plane {
            s: vec![-1.0, 0.0, 1.0],
            t: vec![-2.0, 0.0, 2.0],
            loss: vec![vec![0.1; 3]; 3],
        });
        let value = serde_json::to_value(&r).unwrap();
        assert_eq!(keys(&value), ["class", "directions", "loss0", "plane"]);
        assert_eq!(keys(&value["plane"]), ["loss", "s", "t"]);
        write_landscape(&analysis.landscape(1), &r).unwrap();
        let all = read_landscapes(&analysis).unwrap();
        assert_eq!(all.iter().map(|r| r.class).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(all[0], r);
    }

    #[test]
    fn bad_settings_name_their_parameter() {
        let q = Quadratic::new(&LAMBDAS, DVector::zeros(12));
        let run = |p: LandscapeParams| landscape(&q, 0, &solver(), &p).unwrap_err().to_string();
        let msg = run(LandscapeParams {
            points: 40,
            ..LandscapeParams::default()
        });
        assert_eq!(
            msg,
            "points: 40: expected an odd number of at least 3 (t = 0 on the grid)"
        );
        let msg = run(LandscapeParams {
            plane_points: Some(1),
            ..LandscapeParams::default()
        });
        assert!(msg.starts_with("plane_points: 1: "), "{msg}");
        let msg = run(LandscapeParams {
            range: Some(-1.0),
            ..LandscapeParams::default()
        });
        assert!(msg.starts_with("range: -1: "), "{msg}");
        // ½ · 10 · (1e200)² overflows: the loss is not finite on the grid, a numerical
        // failure (not a bad setting) that says where.
        let err = landscape(
            &q,
            0,
            &solver(),
            &LandscapeParams {
                range: Some(1e200),
                ..LandscapeParams::default()
            },
        )
        .unwrap_err();
        assert!(matches!(err, Error::NonFiniteLoss { .. }) && !err.is_usage());
        assert!(
            err.to_string()
                .starts_with("the loss of class 0 is inf at t = -1e200 along u_max"),
            "{err}"
        );
        let f = fixture();
        let p = params(TraceMethod::Probes);
        let err = class_landscape(&subject(&f), &p, 3, &LandscapeParams::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "class: class 3 does not exist (the checkpoint has 3 classes)"
        );
    }
}
