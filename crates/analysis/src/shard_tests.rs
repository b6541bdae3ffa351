//! Sharded analyses against the unsharded run: every split of the plan merges into the same
//! bytes, an empty shard succeeds, and the plan refuses classes listed twice.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

use saddlescope_nn::{drw_weights, LossSpec, DRW_BETA};
use saddlescope_results::{merge_shards, write_merged, AnalysisDir, Shard};
use saddlescope_spectral::TraceMethod;

use crate::tests::{finished, fixture, params, subject};
use crate::*;

/// Collects notices.
#[derive(Default)]
struct Notices(Mutex<Vec<String>>);

impl AnalysisObserver for Notices {
    fn notice(&self, message: &str) {
        self.0.lock().unwrap().push(message.to_string());
    }
}

fn run(subject: &Subject<'_>, p: &AnalyzeParams, out: &Path, observer: &dyn AnalysisObserver) {
    let outcome = analyze(subject, p, out, false, observer, &AtomicBool::new(false)).unwrap();
    match (p.shard, outcome) {
        (Some(shard), AnalysisOutcome::ShardFinished { shard: done, .. }) => {
            assert_eq!(shard, done)
        }
        (None, AnalysisOutcome::Finished(_)) => {}
        (_, other) => panic!("unexpected outcome {other:?}"),
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every shard count from 1 to one more than the 4 Hessians: the merged `spectrum.json`,
/// `summary.csv` and per-Hessian files are the unsharded run's bytes. The training loss
/// with DRW weights makes the class weights of the trace identity non-trivial.
#[test]
fn every_split_merges_into_the_bytes_of_one_run() {
    let f = fixture();
    let mut subject = subject(&f);
    let counts = f.long_tailed.train_counts.clone();
    let weights = drw_weights(&counts, DRW_BETA).unwrap();
    subject.training_loss = Some(LossSpec::Ce.build(&counts, Some(&weights)).unwrap());
    let mut p = params(TraceMethod::Probes);
    p.loss = HessianLoss::Train;
    let root = tempfile::tempdir().unwrap();
    let whole = AnalysisDir::new(&root.path().join("whole"));
    run(&subject, &p, &root.path().join("whole"), &Quiet);
    let report = read(&whole.spectrum());
    assert!(report.contains("\"trace_identity\": {"), "{report}");
    for count in 1..=5 {
        let mut dirs = Vec::new();
        for shard in Shard::all(count) {
            let dir = root.path().join(count.to_string()).join(shard.dir_name());
            let notices = Notices::default();
            let sharded = AnalyzeParams {
                shard: Some(shard),
                ..p.clone()
            };
            run(&subject, &sharded, &dir, &notices);
            assert!(!AnalysisDir::new(&dir).spectrum().exists());
            let notices = shard_notices(notices);
            assert!(
                notices[0].starts_with(&format!("shard {shard}")),
                "{notices:?}"
            );
            dirs.push(dir);
        }
        let merged = merge_shards(&dirs).unwrap();
        let out = AnalysisDir::new(&root.path().join(format!("merged-{count}")));
        write_merged(&out, &merged).unwrap();
        assert!(
            read(&out.spectrum()) == report,
            "N = {count}: spectrum.json differs"
        );
        assert!(
            read(&out.summary()) == read(&whole.summary()),
            "N = {count}"
        );
        for class in [Some(0), Some(1), Some(2), None] {
            assert!(
                read(&out.part(class)) == read(&whole.part(class)),
                "N = {count}"
            );
        }
    }
}

/// With more shards than Hessians the extra shards estimate nothing, say so and still
/// leave the manifest `merge` needs.
#[test]
fn an_empty_shard_succeeds_with_a_notice() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let p = AnalyzeParams {
        shard: Some(Shard::new(6, 6).unwrap()),
        ..params(TraceMethod::Probes)
    };
    let notices = Notices::default();
    run(&subject(&f), &p, dir.path(), &notices);
    assert_eq!(
        shard_notices(notices),
        ["shard 6/6 has no Hessians to estimate (the analysis has 4 for 6 shards)"]
    );
    let layout = AnalysisDir::new(dir.path());
    assert!(layout.manifest().exists());
    assert_eq!(std::fs::read_dir(layout.parts()).unwrap().count(), 0);
}

/// The all-classes Hessian is over every class's samples (its cost), and it runs alone in
/// the first of two shards.
#[test]
fn the_plan_costs_the_all_classes_hessian_as_every_sample() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let p = AnalyzeParams {
        shard: Some(Shard::new(1, 2).unwrap()),
        ..params(TraceMethod::Probes)
    };
    let notices = Notices::default();
    run(&subject(&f), &p, dir.path(), &notices);
    let total: usize = f.long_tailed.train_counts.iter().sum();
    assert_eq!(
        shard_notices(notices),
        [format!("shard 1/2: all ({total} of {} samples)", 2 * total)]
    );
    assert!(AnalysisDir::new(dir.path()).part(None).exists());
}

#[test]
fn a_class_listed_twice_is_refused() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let p = AnalyzeParams {
        class_ids: Some(vec![1, 0, 1]),
        ..params(TraceMethod::Probes)
    };
    let err = analyze(
        &subject(&f),
        &p,
        dir.path(),
        false,
        &Quiet,
        &AtomicBool::new(false),
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "class_ids: class 1 is listed twice");
    assert!(err.is_usage());
    // A subset of the classes has no trace identity, whole or merged.
    let p = AnalyzeParams {
        class_ids: Some(vec![2, 0]),
        ..params(TraceMethod::Probes)
    };
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
    assert!(report.trace_identity.is_none());
    let classes: Vec<_> = report.classes.iter().map(|c| c.class).collect();
    assert_eq!(classes, [Some(2), Some(0)]);
}

/// The notices about shards (the fixture's model is untrained, which is noticed too).
fn shard_notices(notices: Notices) -> Vec<String> {
    let mut notices = notices.0.into_inner().unwrap();
    notices.retain(|n| n.starts_with("shard "));
    notices
}
