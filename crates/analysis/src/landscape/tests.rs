//! The landscape walk against exact answers: an exact quadratic (whose curves are parabolas)
//! and a real class loss (whose second difference is λ).

use nalgebra::{DMatrix, DVector, SymmetricEigen};
use saddlescope_spectral::{estimate_spectrum, DenseSymmetric, SpectrumParams, TraceMethod};

use super::*;
use crate::tests::{dense_hessian, fixture, params, subject};

/// `f(w0 + δ) = ½ (w0 + δ − c)ᵀ A (w0 + δ − c) + tilt·δ + offset`: its curves are exact
/// parabolas, `f(w0 + t u) = f(w0) + t g·u + ½ (uᵀAu) t²` with `g = A (w0 − c) + tilt`.
pub(crate) struct Quadratic {
    a: DenseSymmetric,
    /// `w0 − c`.
    shift: DVector<f64>,
    tilt: DVector<f64>,
    offset: f64,
}

impl Quadratic {
    /// A with eigenvalues `lambdas` in a fixed non-axis basis; w0 − c = `shift`, no tilt.
    pub(crate) fn new(lambdas: &[f64], shift: DVector<f64>) -> Self {
        let n = lambdas.len();
        let g = DMatrix::from_fn(n, n, |i, j| ((7 * i + 13 * j + 1) as f64).sin());
        let q = g.qr().q();
        let a = &q * DMatrix::from_diagonal(&DVector::from_column_slice(lambdas)) * q.transpose();
        let a = DenseSymmetric::new(a).unwrap();
        Self {
            a,
            tilt: DVector::zeros(n),
            shift,
            offset: 2.0,
        }
    }

    /// The same with a linear term `tilt·δ` added: the gradient at w0 grows by `tilt`, the
    /// Hessian stays.
    pub(crate) fn tilted(self, tilt: DVector<f64>) -> Self {
        Self { tilt, ..self }
    }

    /// A, dense.
    pub(crate) fn matrix(&self) -> &DMatrix<f64> {
        self.a.matrix()
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
        let delta = DVector::from_column_slice(delta);
        let d = &self.shift + &delta;
        Ok(0.5 * d.dot(&(self.a.matrix() * &d)) + self.tilt.dot(&delta) + self.offset)
    }
    fn loss_and_grad(&self) -> Result<(f64, Vec<f64>), Error> {
        let g = self.a.matrix() * &self.shift + &self.tilt;
        Ok((
            self.loss_at(&vec![0.0; self.dim()])?,
            g.iter().copied().collect(),
        ))
    }
}

pub(crate) const LAMBDAS: [f64; 12] = [
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
