//! Verdicts on constructed cases with known answers (exact quadratics: a saddle at a
//! stationary point, the same tilted by a gradient, a convex bowl), the thresholds at their
//! boundaries, the first-order numbers of a network against finite differences and
//! independent evaluations, and untrained, diverged and trained networks end to end
//! (issue 17). Everything in f64.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;

use nalgebra::{DVector, SymmetricEigen};
use saddlescope_nn::{BnMode, HessianOperator, Model, ParamSelection};
use saddlescope_results::{FirstOrder, HealthStatus, ModelHealth};
use saddlescope_spectral::{estimate_spectrum, SpectrumEstimate, SpectrumParams, TraceMethod};

use crate::first_order::first_order;
use crate::health::judge_health;
use crate::landscape::tests::{Quadratic, LAMBDAS};
use crate::setup::HessianSetup;
use crate::tests::{dense_hessian, finished, fixture, params, subject, Fixture};
use crate::*;

/// A model that passes its health check.
fn trained() -> ModelHealth {
    ModelHealth {
        classes: 10,
        samples: 1000,
        loss: 0.1,
        accuracy: 0.97,
        balanced_loss: 0.2,
        balanced_accuracy: 0.9,
        grad_norm: 0.01,
        class_loss: vec![0.2; 10],
        class_accuracy: vec![0.9; 10],
        status: HealthStatus::Trained,
        reason: "fits".into(),
    }
}

/// Spectrum (with Ritz vectors, converged to 1e-12), first-order numbers and verdict of a
/// quadratic under the default thresholds.
fn verdict_of(q: &Quadratic) -> (SpectrumEstimate, FirstOrder, VerdictKind, String) {
    let params = SpectrumParams {
        ritz_vectors: true,
        tol: 1e-12,
        ..SpectrumParams::default()
    };
    let estimate = estimate_spectrum(q, &params).unwrap();
    let first = first_order(q, &estimate, 1.0, "q").unwrap();
    let (kind, reason) = judge(
        &SaddleRule::default(),
        &VerdictRule::default(),
        &trained(),
        &estimate,
        Some(&first),
    );
    (estimate, first, kind, reason)
}

/// Unit eigenvectors of the quadratic's Hessian for its smallest and largest eigenvalues.
fn eigenvectors(q: &Quadratic) -> (DVector<f64>, DVector<f64>) {
    let eig = SymmetricEigen::new(q.matrix().clone());
    let (lo, _) = eig.eigenvalues.argmin();
    let (hi, _) = eig.eigenvalues.argmax();
    (
        eig.eigenvectors.column(lo).into_owned(),
        eig.eigenvectors.column(hi).into_owned(),
    )
}

/// r of the quadratics below: ½·3·r² = ½·2 (λ_min = −3, L = 2, RANGE_FRACTION = ½), so the
/// curvature term ½|λ_min|r² is 1.
fn radius() -> f64 {
    (2.0f64 / 3.0).sqrt()
}

/// The saddle of [`LAMBDAS`] at a stationary point, tilted by `tilt`.
fn tilted(tilt: DVector<f64>) -> Quadratic {
    Quadratic::new(&LAMBDAS, DVector::zeros(12)).tilted(tilt)
}

#[test]
fn an_exact_saddle_at_a_stationary_point_is_a_saddle() {
    let q = Quadratic::new(&LAMBDAS, DVector::zeros(12));
    let (estimate, f, kind, reason) = verdict_of(&q);
    assert!((estimate.lambda_min + 3.0).abs() < 1e-10);
    assert_eq!((f.loss, f.grad_norm, f.slope_min), (2.0, 0.0, 0.0));
    assert_eq!((f.grad_curvature, f.gradient_decrease), (0.0, 0.0));
    assert!((f.radius - radius()).abs() < 1e-12, "{}", f.radius);
    // ½|λ_min| r² = RANGE_FRACTION · L = 1, to the eigenvalue's accuracy.
    assert!((f.curvature_term - 1.0).abs() < 1e-10);
    assert_eq!(f.gradient_ratio(), 0.0);
    assert_eq!(kind, VerdictKind::Saddle, "{reason}");
    assert!(
        reason.starts_with(
            "negative curvature dominates: λ_min = -3.00 (|λ_min|/λ_max = 0.300); at r = 0.816 the negative curvature lowers the class loss's quadratic model by ½|λ_min|·r² = 1.00, the gradient by 0 ("
        ),
        "{reason}"
    );
}

#[test]
fn the_same_saddle_tilted_by_a_large_gradient_is_not_stationary() {
    let (u_min, u_max) = eigenvectors(&Quadratic::new(&LAMBDAS, DVector::zeros(12)));
    let r = radius();
    // ‖g‖ = 5 along u_min: the top of the parabola along u_min is 5/3 away, beyond r/2; the
    // gradient alone (negative curvature left out) lowers the model by 5r = 4.08.
    let (_, f, kind, reason) = verdict_of(&tilted(5.0 * &u_min));
    assert!((f.grad_norm - 5.0).abs() < 1e-12);
    assert!(
        (f.grad_curvature + 3.0).abs() < 1e-12,
        "{}",
        f.grad_curvature
    );
    assert!((f.slope_min - 5.0).abs() < 1e-10, "{}", f.slope_min);
    assert!((f.gradient_decrease - 5.0 * r).abs() < 1e-12);
    assert!((f.gradient_ratio() - 5.0 * r).abs() < 1e-9);
    assert_eq!(kind, VerdictKind::NotStationary, "{reason}");
    assert!(
        reason.ends_with("gradient ratio 4.08 > 1.00, so λ_min = -3.00 (|λ_min|/λ_max = 0.300) does not make a saddle: the weights are not near a stationary point of this class's loss"),
        "{reason}"
    );

    // ‖g‖ = 5 along u_max (λ = 10): no slope along u_min, but the minimum along −g is
    // ‖g‖/κ_g = 0.5 away, beyond r/2, and the gradient lowers the model by 25/20 = 1.25.
    let (_, f, kind, reason) = verdict_of(&tilted(5.0 * &u_max));
    assert!(f.slope_min < 1e-10, "{}", f.slope_min);
    assert!((f.grad_curvature - 10.0).abs() < 1e-12);
    assert!((f.gradient_decrease - 1.25).abs() < 1e-12);
    assert_eq!(kind, VerdictKind::NotStationary, "{reason}");
    assert!(reason.starts_with("the gradient dominates: "), "{reason}");

    // ‖g‖ = 2 along u_max: the model's saddle point is 0.2 away, inside the neighbourhood;
    // the gradient lowers the model by 4/20 = 0.2 only.
    let (_, f, kind, reason) = verdict_of(&tilted(2.0 * &u_max));
    assert!((f.gradient_ratio() - 0.2).abs() < 1e-10);
    assert_eq!(kind, VerdictKind::Saddle, "{reason}");

    // A gentle tilt along u_min (‖g‖ = 0.5, ratio 0.5r = 0.41) leaves the saddle a saddle.
    let (_, f, kind, reason) = verdict_of(&tilted(0.5 * &u_min));
    assert!((f.gradient_ratio() - 0.5 * r).abs() < 1e-9);
    assert_eq!(kind, VerdictKind::Saddle, "{reason}");
}

#[test]
fn a_stiff_gradient_does_not_hide_a_slope_along_u_min() {
    // λ_max = 25: g = 2 u_min + 2 u_max has κ_g = (4·25 − 4·3)/8 = 11, so the Cauchy step
    // stops after ‖g‖/κ_g = 0.26 and lowers the model by 8/22 = 0.36 < 1, while the slope
    // along u_min (2r = 1.63) puts the model's stationary point 2/3 away, beyond r/2.
    let mut lambdas = LAMBDAS;
    lambdas[11] = 25.0;
    let stiff = Quadratic::new(&lambdas, DVector::zeros(12));
    let (u_min, u_max) = eigenvectors(&stiff);
    let (_, f, kind, reason) = verdict_of(&stiff.tilted(2.0 * (&u_min + &u_max)));
    assert!(
        (f.grad_curvature - 11.0).abs() < 1e-12,
        "{}",
        f.grad_curvature
    );
    assert!((f.gradient_decrease - 8.0 / 22.0).abs() < 1e-12);
    assert!((f.gradient_ratio() - 2.0 * radius()).abs() < 1e-9);
    assert_eq!(kind, VerdictKind::NotStationary, "{reason}");
    assert!(
        reason.starts_with("the slope along u_min dominates: "),
        "{reason}"
    );
}

#[test]
fn a_convex_bowl_is_minimum_like() {
    let lambdas: Vec<f64> = LAMBDAS.iter().map(|l| l + 3.5).collect();
    let (estimate, _, kind, reason) = verdict_of(&Quadratic::new(&lambdas, DVector::zeros(12)));
    assert!((estimate.lambda_min - 0.5).abs() < 1e-10);
    assert_eq!(kind, VerdictKind::MinimumLike, "{reason}");
    assert!(
        reason.starts_with("no negative curvature: λ_min = 0.500"),
        "{reason}"
    );
}

/// A finished estimate whose extremes the boundary tests overwrite.
fn estimate() -> SpectrumEstimate {
    let q = Quadratic::new(&LAMBDAS, DVector::zeros(12));
    estimate_spectrum(&q, &SpectrumParams::default()).unwrap()
}

/// First-order numbers with the given gradient decrease, slope and curvature terms (r = 1).
fn terms(gradient: f64, slope: f64, curvature: f64) -> FirstOrder {
    FirstOrder {
        loss: 1.0,
        accuracy: 1.0,
        grad_norm: gradient,
        grad_curvature: 0.0,
        slope_min: slope,
        radius: 1.0,
        gradient_decrease: gradient,
        slope_term: slope,
        curvature_term: curvature,
    }
}

#[test]
fn thresholds_at_their_boundaries() {
    let rule = VerdictRule::default();
    let saddle = SaddleRule::default();
    let healthy = trained();
    let verdict =
        |e: &SpectrumEstimate, f: Option<&FirstOrder>| judge(&saddle, &rule, &healthy, e, f).0;
    let mut e = estimate();
    (e.lambda_min, e.lambda_min_bound, e.lambda_max) = (-1.0, 1e-6, 10.0);
    let at = |g: f64| terms(g, 0.0, 1.0);
    // |λ_min|/λ_max = 0.1 exactly is significant; the gradient ratio 1 exactly still a saddle,
    // from the gradient or from the slope along u_min.
    assert_eq!(verdict(&e, Some(&at(1.0))), VerdictKind::Saddle);
    assert_eq!(
        verdict(&e, Some(&at(1.0 + 1e-12))),
        VerdictKind::NotStationary
    );
    assert_eq!(
        verdict(&e, Some(&terms(0.5, 1.0, 1.0))),
        VerdictKind::Saddle
    );
    let (kind, reason) = judge(
        &saddle,
        &rule,
        &healthy,
        &e,
        Some(&terms(0.5, 1.0 + 1e-12, 1.0)),
    );
    assert_eq!(kind, VerdictKind::NotStationary);
    assert!(
        reason.starts_with("the slope along u_min dominates"),
        "{reason}"
    );
    assert_eq!(verdict(&e, Some(&at(0.0))), VerdictKind::Saddle);
    e.lambda_min = -1.0 + 1e-9;
    assert_eq!(verdict(&e, Some(&at(0.0))), VerdictKind::MinimumLike);
    // Certainly negative: λ_min + bound < 0; a bound that reaches 0 is not.
    (e.lambda_min, e.lambda_min_bound) = (-5.0, 5.0);
    assert_eq!(verdict(&e, Some(&at(0.0))), VerdictKind::MinimumLike);
    e.lambda_min_bound = 5.0 - 1e-9;
    assert_eq!(verdict(&e, Some(&at(0.0))), VerdictKind::Saddle);
    // No positive curvature to compare with, missing or non-finite numbers, an unhealthy
    // model: undetermined, saying why.
    e.lambda_max = 0.0;
    let (kind, reason) = judge(&saddle, &rule, &healthy, &e, Some(&at(0.0)));
    assert_eq!(kind, VerdictKind::Undetermined);
    assert!(reason.starts_with("λ_max = 0 ≤ 0"), "{reason}");
    e.lambda_max = 10.0;
    assert_eq!(verdict(&e, None), VerdictKind::Undetermined);
    let (kind, reason) = judge(&saddle, &rule, &healthy, &e, Some(&at(f64::NAN)));
    assert_eq!(kind, VerdictKind::Undetermined);
    assert!(reason.contains("not finite"), "{reason}");
    let sick = ModelHealth {
        status: HealthStatus::Diverged,
        reason: "the loss blew up".into(),
        ..trained()
    };
    let (kind, reason) = judge(&saddle, &rule, &sick, &e, Some(&at(0.0)));
    assert_eq!(kind, VerdictKind::Undetermined);
    assert_eq!(reason, "the model is diverged: the loss blew up");
    // The thresholds are the user's: a looser gradient ratio turns the slope into a saddle.
    let loose = VerdictRule {
        max_gradient_ratio: 3.0,
        ..rule
    };
    let (kind, _) = judge(&saddle, &loose, &healthy, &e, Some(&at(2.9)));
    assert_eq!(kind, VerdictKind::Saddle);
}

/// Health numbers of a 10-class model with the given balanced accuracy and loss.
fn health(accuracy: f64, loss: f64) -> ModelHealth {
    ModelHealth {
        balanced_accuracy: accuracy,
        balanced_loss: loss,
        loss,
        ..trained()
    }
}

#[test]
fn health_thresholds_at_their_boundaries() {
    let rule = VerdictRule::default();
    let ln10 = 10f64.ln();
    let status = |h: ModelHealth| judge_health(&rule, &h);
    // Accuracy skill (a − 0.1)/0.9 and loss skill 1 − L/ln 10 must both exceed 0.2.
    let skill_accuracy = |s: f64| 0.1 + 0.9 * s;
    let skill_loss = |s: f64| (1.0 - s) * ln10;
    let (kind, reason) = status(health(skill_accuracy(0.2 + 1e-9), skill_loss(0.2 + 1e-9)));
    assert_eq!(kind, HealthStatus::Trained, "{reason}");
    let (kind, reason) = status(health(skill_accuracy(0.2 - 1e-9), skill_loss(0.5)));
    assert_eq!(kind, HealthStatus::Untrained);
    assert!(
        reason.starts_with("balanced train accuracy 28.0% (skill 0.200 over chance 10.0%): at most 0.200 of the way"),
        "{reason}"
    );
    let (kind, reason) = status(health(0.9, skill_loss(0.2 - 1e-9)));
    assert_eq!(kind, HealthStatus::Untrained);
    assert!(
        reason.starts_with("balanced train loss 1.84 (skill 0.200 below ln 10 = 2.30)"),
        "{reason}"
    );
    // A model at chance in both: both reasons (the lr 1e-12 run of the issue).
    let (kind, reason) = status(health(0.07, ln10));
    assert_eq!(kind, HealthStatus::Untrained);
    assert!(
        reason.contains("accuracy 7.00%") && reason.contains(" and balanced train loss 2.30"),
        "{reason}"
    );
    // Diverged: above 10 ln C, or anything not finite.
    let (kind, reason) = status(health(0.1, 10.0 * ln10));
    assert_eq!(kind, HealthStatus::Untrained, "{reason}");
    let (kind, reason) = status(health(0.1, 2e7));
    assert_eq!(kind, HealthStatus::Diverged);
    assert!(
        reason.starts_with("balanced train loss 2.00e7 is 8.69e6× ln 10 = 2.30, the loss of a uniform predictor (above 10.0×): the weights have blown up"),
        "{reason}"
    );
    let (kind, _) = status(ModelHealth {
        grad_norm: f64::INFINITY,
        ..trained()
    });
    assert_eq!(kind, HealthStatus::Diverged);
    let (kind, reason) = status(health(0.9, f64::NAN));
    assert_eq!(kind, HealthStatus::Diverged);
    assert!(
        reason.starts_with("the train loss or its gradient is not finite"),
        "{reason}"
    );
}

#[test]
fn bad_thresholds_name_their_parameter() {
    let bad = |rule: VerdictRule| check_verdict_rule(&rule).unwrap_err().to_string();
    let rule = VerdictRule::default();
    assert!(check_verdict_rule(&rule).is_ok());
    assert!(bad(VerdictRule {
        max_gradient_ratio: 0.0,
        ..rule
    })
    .starts_with("verdict.max_gradient_ratio: 0: expected"));
    assert!(bad(VerdictRule {
        min_skill: 1.0,
        ..rule
    })
    .starts_with("verdict.min_skill: 1: expected"));
    assert!(bad(VerdictRule {
        diverged_loss_ratio: f64::NAN,
        ..rule
    })
    .starts_with("verdict.diverged_loss_ratio: NaN: expected"));
}

/// The operator of class `class` of the fixture, as the analysis builds it.
fn class_loss<'a>(setup: &'a HessianSetup<'_>, class: usize) -> crate::ClassHessian<'a> {
    setup.operator(setup.class_batches(class).unwrap()).unwrap()
}

#[test]
fn first_order_numbers_of_a_network_match_finite_differences() {
    let f = fixture();
    let s = subject(&f);
    let p = params(TraceMethod::Probes);
    let setup = HessianSetup::new(&s, &p).unwrap();
    let spectrum = SpectrumParams {
        ritz_vectors: true,
        ..p.spectrum.clone()
    };
    for class in 0..3 {
        let op = class_loss(&setup, class);
        let estimate = estimate_spectrum(&op, &spectrum).unwrap();
        let fo = first_order(&op, &estimate, 0.5, "c").unwrap();
        let surface = op.hvp();
        assert_eq!(fo.loss, surface.loss().unwrap());
        // Central differences, step ε^(1/3) ≈ 6e-6: truncation h²L'''/6 and rounding ε L/h
        // are both ~1e-11 here; tolerance 1e-8 relative.
        let h = 6e-6;
        let n = surface.dim();
        let central = |direction: &[f64]| {
            let plus: Vec<f64> = direction.iter().map(|x| h * x).collect();
            let minus: Vec<f64> = direction.iter().map(|x| -h * x).collect();
            (surface.loss_at(&plus).unwrap() - surface.loss_at(&minus).unwrap()) / (2.0 * h)
        };
        let gradient: Vec<f64> = (0..n)
            .map(|j| {
                let mut e = vec![0.0; n];
                e[j] = 1.0;
                central(&e)
            })
            .collect();
        let norm = gradient.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!(
            (norm - fo.grad_norm).abs() <= 1e-8 * fo.grad_norm,
            "class {class}: ‖g‖ {} vs finite differences {norm}",
            fo.grad_norm
        );
        let u_min = estimate.lambda_min_vector.as_deref().unwrap();
        let slope = central(u_min).abs();
        assert!(
            (slope - fo.slope_min).abs() <= 1e-8 * fo.grad_norm,
            "class {class}: |g·u_min| {} vs finite differences {slope}",
            fo.slope_min
        );
        assert!(fo.slope_min <= fo.grad_norm * (1.0 + 1e-12));
        // The curvature along g against the dense Hessian (exact up to rounding).
        let h = dense_hessian(&f, Some(class));
        let unit = DVector::from_column_slice(&gradient).normalize();
        let exact = unit.dot(&(&h * &unit));
        assert!(
            (fo.grad_curvature - exact).abs() <= 1e-7 * h.norm(),
            "class {class}: κ_g {} vs {exact}",
            fo.grad_curvature
        );
        let r = default_range(estimate.lambda_min, fo.loss);
        assert_eq!(fo.radius, r);
        assert_eq!(fo.curvature_term, 0.5 * estimate.lambda_min.abs() * r * r);
    }
}

#[test]
fn health_matches_an_independent_evaluation_and_the_full_gradient() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let report = finished(
        analyze(
            &subject(&f),
            &params(TraceMethod::Probes),
            dir.path(),
            false,
            &Quiet,
            &AtomicBool::new(false),
        )
        .unwrap(),
    );
    let health = report.health.as_ref().unwrap();
    let eval =
        saddlescope_train::evaluate(&f.model, f.data.train(), &f.long_tailed.groups).unwrap();
    assert!(
        (health.loss - eval.loss).abs() <= 1e-12 * eval.loss,
        "{} vs {}",
        health.loss,
        eval.loss
    );
    assert_eq!(health.accuracy, eval.accuracy);
    assert_eq!(health.class_accuracy, eval.class_accuracy);
    assert_eq!(health.samples, f.data.train().len());
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert_eq!(health.balanced_accuracy, mean(&eval.class_accuracy));
    assert_eq!(health.balanced_loss, mean(&health.class_loss));
    // The full-split gradient in one sample set.
    let spec = saddlescope_data::BatchSpec::new(7, candle_core::Device::Cpu)
        .with_dtype(candle_core::DType::F64);
    let batches = f
        .data
        .train()
        .batches(&spec)
        .unwrap()
        .map(|b| {
            let (x, y) = b.unwrap();
            saddlescope_nn::Batch::new(x, y).unwrap()
        })
        .collect();
    let ce = saddlescope_nn::LossSpec::Ce
        .build(&[1, 1, 1], None)
        .unwrap();
    let op = HessianOperator::new(
        &f.model,
        batches,
        ce,
        ParamSelection::all(&f.model),
        BnMode::Eval,
    )
    .unwrap();
    let (loss, g) = op.loss_and_grad_flat().unwrap();
    let norm = g.iter().map(|x| x * x).sum::<f64>().sqrt();
    assert!(
        (health.grad_norm - norm).abs() <= 1e-12 * norm,
        "{} vs {norm}",
        health.grad_norm
    );
    assert!((health.loss - loss).abs() <= 1e-12 * loss);
    // The class accuracies of the analysed samples (here the whole train split) agree.
    for c in &report.classes {
        let i = c.class.unwrap();
        assert_eq!(c.first_order.unwrap().accuracy, eval.class_accuracy[i]);
        assert_eq!(c.first_order.unwrap().loss, health.class_loss[i]);
    }
}

/// Analyses `model` on the fixture's data with the fixture's settings.
fn analyze_model(f: &Fixture, model: &Model) -> saddlescope_results::AnalysisReport {
    let dir = tempfile::tempdir().unwrap();
    let s = Subject {
        model,
        ..subject(f)
    };
    finished(
        analyze(
            &s,
            &params(TraceMethod::Probes),
            dir.path(),
            false,
            &Quiet,
            &AtomicBool::new(false),
        )
        .unwrap(),
    )
}

#[test]
fn an_untrained_model_is_undetermined_in_every_class() {
    let f = fixture();
    let report = analyze_model(&f, &f.model);
    let health = report.health.as_ref().unwrap();
    assert_eq!(health.status, HealthStatus::Untrained, "{}", health.reason);
    for c in report.classes.iter().chain(&report.all) {
        assert_eq!(c.verdict, VerdictKind::Undetermined, "{}", c.name);
        assert!(!c.saddle);
        assert!(
            c.verdict_reason
                .starts_with("the model is untrained: balanced train"),
            "{}",
            c.verdict_reason
        );
        // The numbers are there all the same.
        assert!(c.first_order.unwrap().is_finite());
    }
}

/// The fixture's model with every weight multiplied by `factor`.
fn scaled(f: &Fixture, factor: f64) -> Model {
    let mut model = f.model.to_dtype(candle_core::DType::F64).unwrap();
    let state: HashMap<String, candle_core::Tensor> = f
        .model
        .state()
        .unwrap()
        .into_iter()
        .map(|(name, t)| (name, (t * factor).unwrap()))
        .collect();
    model.load_state(state).unwrap();
    model
}

#[test]
fn a_diverged_model_is_undetermined_naming_the_blow_up() {
    let f = fixture();
    let report = analyze_model(&f, &scaled(&f, 1e3));
    let health = report.health.as_ref().unwrap();
    assert_eq!(health.status, HealthStatus::Diverged, "{}", health.reason);
    assert!(health.balanced_loss > 10.0 * 3f64.ln());
    for c in report.classes.iter().chain(&report.all) {
        assert_eq!(c.verdict, VerdictKind::Undetermined, "{}", c.name);
        assert!(
            c.verdict_reason
                .starts_with("the model is diverged: balanced train loss")
                && c.verdict_reason.ends_with("the weights have blown up"),
            "{}",
            c.verdict_reason
        );
    }
}

#[test]
fn a_trained_network_gets_verdicts_that_follow_from_its_stored_numbers() {
    // 400 steps of full-batch gradient descent on the fixture's training loss.
    let f = fixture();
    let p = params(TraceMethod::Probes);
    let mut model = f.model.to_dtype(candle_core::DType::F64).unwrap();
    for _ in 0..400 {
        let g = {
            let setup = HessianSetup::new(
                &Subject {
                    model: &model,
                    ..subject(&f)
                },
                &p,
            )
            .unwrap();
            let mut batches = Vec::new();
            for c in 0..3 {
                batches.extend(setup.class_batches(c).unwrap());
            }
            setup
                .operator(batches)
                .unwrap()
                .hvp()
                .loss_and_grad_flat()
                .unwrap()
                .1
        };
        let selection = ParamSelection::all(&model);
        let steps = selection
            .split(&g, candle_core::DType::F64, &candle_core::Device::Cpu)
            .unwrap();
        let mut state: HashMap<String, candle_core::Tensor> =
            model.state().unwrap().into_iter().collect();
        for (entry, step) in selection.entries().iter().zip(steps) {
            let name = &model.trainable()[entry.index].0;
            let w = state.remove(name).unwrap();
            state.insert(name.clone(), (w - (step * 0.5).unwrap()).unwrap());
        }
        model.load_state(state).unwrap();
    }
    let report = analyze_model(&f, &model);
    let health = report.health.as_ref().unwrap();
    assert_eq!(health.status, HealthStatus::Trained, "{}", health.reason);
    let rule = report.params.verdict.unwrap();
    for c in report.classes.iter().chain(&report.all) {
        let (kind, reason) = judge(
            &SaddleRule {
                min_ratio: report.params.saddle_ratio,
            },
            &rule,
            health,
            &c.estimate,
            c.first_order.as_ref(),
        );
        assert_eq!((c.verdict, &c.verdict_reason), (kind, &reason));
        assert_ne!(c.verdict, VerdictKind::Undetermined, "{}: {reason}", c.name);
        assert_eq!(c.saddle, kind == VerdictKind::Saddle);
        eprintln!("{}: {kind}: {reason}", c.name);
    }
}
