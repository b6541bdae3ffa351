//! Tests of the class-wise analysis against exact answers on a model small enough for a dense
//! Hessian.

use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

use candle_core::{DType, Device};
use nalgebra::{DMatrix, SymmetricEigen};
use saddlescope_data::{BatchSpec, Dataset, GroupRule, Imbalance, LongTailConfig, LongTailed};
use saddlescope_nn::{Batch, BnMode, HessianOperator, LossSpec, Model, ParamSelection};
use saddlescope_results::{
    read_report, AnalysisDir, AnalysisReport, CheckpointInfo, CheckpointOrigin, ClassSpectrum,
    ForeignCheckpoint,
};
use saddlescope_spectral::{BasisPrecision, TraceMethod};

use crate::*;

pub(crate) struct Fixture {
    pub(crate) data: Dataset,
    pub(crate) long_tailed: LongTailed,
    pub(crate) model: Model,
}

/// 3 classes of a 4-d Gaussian mixture (uneven after a step imbalance), a tanh MLP with 27
/// parameters in f64: small enough for a dense Hessian, curved enough to be indefinite.
pub(crate) fn fixture() -> Fixture {
    let full = Dataset::load(
        &"synthetic:classes=3,dim=4,n=12,test=4,seed=0"
            .parse()
            .unwrap(),
    )
    .unwrap();
    let config = LongTailConfig {
        imbalance: Imbalance::Step,
        ratio: 2.0,
        n_max: None,
        seed: 0,
        groups: GroupRule::default(),
    };
    let long_tailed = LongTailed::new(&full, &config).unwrap();
    let data = long_tailed.apply(full).unwrap();
    let model = Model::new(
        &"mlp-tanh:3".parse().unwrap(),
        3,
        [1, 1, 4],
        DType::F64,
        &Device::Cpu,
        3,
    )
    .unwrap();
    Fixture {
        data,
        long_tailed,
        model,
    }
}

pub(crate) fn subject(f: &Fixture) -> Subject<'_> {
    Subject {
        model: &f.model,
        split: f.data.train(),
        train_split: f.data.train(),
        split_name: "train".into(),
        train_counts: &f.long_tailed.train_counts,
        groups: &f.long_tailed.groups,
        class_names: f.data.class_names(),
        training_loss: None,
        checkpoint: CheckpointInfo {
            path: "fixture".into(),
            sha256: "0".into(),
            metadata: CheckpointOrigin::Foreign(ForeignCheckpoint {
                arch: None,
                classes: 3,
            }),
        },
        dataset: f.long_tailed.dataset.to_string(),
    }
}

pub(crate) fn params(trace: TraceMethod) -> AnalyzeParams {
    let mut p = AnalyzeParams::default();
    p.spectrum.slq.steps = 27;
    p.spectrum.slq.probes = 3;
    p.spectrum.top_k = 3;
    p.spectrum.tol = 1e-10;
    p.spectrum.trace_method = trace;
    p.batch_size = 5;
    // The checks against dense f64 Hessians are to f64 rounding.
    p.dtype = DType::F64;
    p
}

pub(crate) fn finished(outcome: AnalysisOutcome) -> AnalysisReport {
    match outcome {
        AnalysisOutcome::Finished(report) => *report,
        other => panic!("not finished: {other:?}"),
    }
}

/// The dense Hessian of the mean CE over class `class` (None: all), column by column.
pub(crate) fn dense_hessian(f: &Fixture, class: Option<usize>) -> DMatrix<f64> {
    let spec = BatchSpec::new(5, Device::Cpu).with_dtype(DType::F64);
    let classes: Vec<usize> = class.map_or((0..3).collect(), |c| vec![c]);
    let batches: Vec<Batch> = classes
        .iter()
        .flat_map(|&c| f.data.train().class_batches(c, None, &spec).unwrap())
        .map(|b| {
            let (x, y) = b.unwrap();
            Batch::new(x, y).unwrap()
        })
        .collect();
    let loss = LossSpec::Ce.build(&[1, 1, 1], None).unwrap();
    let op = HessianOperator::new(
        &f.model,
        batches,
        loss,
        ParamSelection::all(&f.model),
        BnMode::Eval,
    )
    .unwrap();
    let n = op.dim();
    let mut h = DMatrix::zeros(n, n);
    let mut column = vec![0.0; n];
    for j in 0..n {
        let mut e = vec![0.0; n];
        e[j] = 1.0;
        op.hvp_flat(&e, &mut column).unwrap();
        h.set_column(j, &nalgebra::DVector::from_column_slice(&column));
    }
    h
}

#[test]
fn class_wise_extremes_and_trace_match_the_dense_hessian() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let p = params(TraceMethod::HutchPlusPlus { applications: 81 });
    let report = finished(
        analyze(
            &subject(&f),
            &p,
            dir.path(),
            false,
            &Quiet,
            &AtomicBool::new(false),
        )
        .unwrap(),
    );
    assert_eq!(report.classes.len(), 3);
    for r in report.classes.iter().chain(&report.all) {
        let h = dense_hessian(&f, r.class);
        let eig = SymmetricEigen::new(h.clone()).eigenvalues;
        let (min, max) = (eig.min(), eig.max());
        let scale = max.abs().max(min.abs());
        let e = &r.estimate;
        // Tolerance: 1e-8 relative to the spectral radius (the bound), f64 throughout.
        assert!(
            (e.lambda_max - max).abs() <= 1e-8 * scale,
            "{}: {} vs {max}",
            r.name,
            e.lambda_max
        );
        assert!(
            (e.lambda_min - min).abs() <= 1e-8 * scale,
            "{}: {} vs {min}",
            r.name,
            e.lambda_min
        );
        assert!(e.converged, "{}", r.name);
        // Hutch++ with 3n applications sketches the whole range: exact to rounding.
        assert!(
            (e.trace - h.trace()).abs() <= 1e-8 * h.trace().abs().max(scale),
            "{}: {} vs {}",
            r.name,
            e.trace,
            h.trace()
        );
        assert_eq!(r.ratio_min_max, Some(e.lambda_min / e.lambda_max));
        assert!(
            min < 0.0,
            "the tanh net is indefinite here, so the test exercises negative curvature"
        );
    }
}

#[test]
fn trace_identity_holds_with_shared_probes_and_json_round_trips() {
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
    let identity = report.trace_identity.unwrap();
    // Same Rademacher probes: zᵀH_all z = Σ π_c zᵀH_c z per probe, up to rounding.
    assert!(identity.relative_residual < 1e-12, "{identity:?}");
    let path = AnalysisDir::new(dir.path()).spectrum();
    let text = std::fs::read_to_string(&path).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    for key in [
        "checkpoint",
        "dataset",
        "split",
        "params",
        "classes",
        "all",
        "trace_identity",
    ] {
        assert!(value.get(key).is_some(), "missing {key}");
    }
    let class0 = &value["classes"][0];
    for key in [
        "class",
        "name",
        "group",
        "samples",
        "lambda_max",
        "lambda_max_bound",
        "lambda_min",
        "lambda_min_bound",
        "top_k",
        "trace",
        "trace_stderr",
        "negative_mass",
        "converged",
        "ritz",
        "density",
        "saddle",
    ] {
        assert!(class0.get(key).is_some(), "missing classes[0].{key}");
    }
    let reread = read_report(&path).unwrap();
    assert_eq!(serde_json::to_value(&reread).unwrap(), value);
    let csv = std::fs::read_to_string(AnalysisDir::new(dir.path()).summary()).unwrap();
    assert_eq!(csv.lines().count(), 1 + 3 + 1);
}

/// Counts reused results.
#[derive(Default)]
struct Reuse(Mutex<Vec<bool>>);

impl AnalysisObserver for Reuse {
    fn hessian_done(&self, _: &ClassSpectrum, reused: bool) {
        self.0.lock().unwrap().push(reused);
    }
}

#[test]
fn resume_reuses_finished_classes_and_reproduces_the_report() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let p = params(TraceMethod::Probes);
    finished(
        analyze(
            &subject(&f),
            &p,
            dir.path(),
            false,
            &Quiet,
            &AtomicBool::new(false),
        )
        .unwrap(),
    );
    let out = AnalysisDir::new(dir.path());
    let first = std::fs::read_to_string(out.spectrum()).unwrap();
    std::fs::remove_file(out.spectrum()).unwrap();
    std::fs::remove_file(dir.path().join("classes/class-0001.json")).unwrap();
    let reuse = Reuse::default();
    finished(
        analyze(
            &subject(&f),
            &p,
            dir.path(),
            true,
            &reuse,
            &AtomicBool::new(false),
        )
        .unwrap(),
    );
    assert_eq!(*reuse.0.lock().unwrap(), [true, false, true, true]);
    assert!(
        std::fs::read_to_string(out.spectrum()).unwrap() == first,
        "resumed report is not byte-identical"
    );
    // A class file written before `basis` was a setting (f64, the default) is still reused.
    let part = dir.path().join("classes/class-0000.json");
    let mut stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&part).unwrap()).unwrap();
    let key = stored["key"]["params"].as_object_mut().unwrap();
    assert_eq!(key.remove("basis"), Some(serde_json::json!("f64")));
    std::fs::write(&part, serde_json::to_vec(&stored).unwrap()).unwrap();
    let reuse = Reuse::default();
    let run = |p: &AnalyzeParams, reuse: &Reuse| {
        finished(
            analyze(
                &subject(&f),
                p,
                dir.path(),
                true,
                reuse,
                &AtomicBool::new(false),
            )
            .unwrap(),
        )
    };
    run(&p, &reuse);
    assert_eq!(*reuse.0.lock().unwrap(), [true, true, true, true]);
    // Other settings: nothing is reused.
    let mut other = p.clone();
    other.spectrum.slq.seed = 1;
    let reuse = Reuse::default();
    run(&other, &reuse);
    assert!(reuse.0.lock().unwrap().iter().all(|r| !r));
    // Another basis precision neither, and the settings record it.
    let mut f32_basis = other.clone();
    f32_basis.spectrum.slq.basis = BasisPrecision::F32;
    let reuse = Reuse::default();
    let report = run(&f32_basis, &reuse);
    assert!(reuse.0.lock().unwrap().iter().all(|r| !r));
    assert_eq!(report.params.basis, BasisPrecision::F32);
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.spectrum()).unwrap()).unwrap();
    assert_eq!(written["params"]["basis"], "f32");
}

#[test]
fn a_stop_request_keeps_finished_classes() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let stop = AtomicBool::new(true);
    let outcome = analyze(
        &subject(&f),
        &params(TraceMethod::Probes),
        dir.path(),
        false,
        &Quiet,
        &stop,
    )
    .unwrap();
    assert!(matches!(outcome, AnalysisOutcome::Interrupted { done: 0 }));
    assert!(!AnalysisDir::new(dir.path()).spectrum().exists());
}

#[test]
fn bad_settings_name_their_parameter() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let error = |p: &AnalyzeParams| {
        analyze(
            &subject(&f),
            p,
            dir.path(),
            false,
            &Quiet,
            &AtomicBool::new(false),
        )
        .unwrap_err()
    };
    let run = |p: &AnalyzeParams| error(p).to_string();
    let mut p = params(TraceMethod::Probes);
    p.class_ids = Some(vec![0, 7]);
    assert!(
        run(&p).starts_with("class_ids: class 7 does not exist"),
        "{}",
        run(&p)
    );
    let mut p = params(TraceMethod::Probes);
    p.spectrum.slq.probes = 0;
    let err = error(&p);
    assert!(
        matches!(
            &err,
            Error::Settings(saddlescope_spectral::Error::InvalidParam { name: "probes", .. })
        ) && err.is_usage(),
        "{err:?}"
    );
    let mut p = params(TraceMethod::Probes);
    p.loss = HessianLoss::Train;
    assert!(run(&p).starts_with("loss"), "{}", run(&p));
}
