//! The aggregation and the claims on synthetic cells with known answers.

use super::*;

/// A cell on three classes (head 0: 100 samples, medium 1: 30, tail 2: 10) with the given
/// tail and head λ_min/λ_max (λ_max = 1) and tail test accuracy.
fn cell(arm: &str, seed: u64, head_ratio: f64, tail_ratio: f64, tail_accuracy: f64) -> CellSummary {
    let class =
        |class: usize, group: Group, train_count: usize, ratio: f64, accuracy: f64| CellClass {
            class,
            name: class.to_string(),
            group: Some(group),
            train_count,
            lambda_min: ratio,
            lambda_max: 1.0,
            ratio_min_max: Some(ratio),
            trace: 2.0 + class as f64,
            verdict: if ratio < -0.1 {
                VerdictKind::Saddle
            } else {
                VerdictKind::MinimumLike
            },
            test_accuracy: Some(accuracy),
        };
    CellSummary {
        arm: arm.into(),
        seed,
        checkpoint_sha256: format!("{arm}-{seed}"),
        health: Some(HealthStatus::Trained),
        test_accuracy: (0.9 + 0.6 + tail_accuracy) / 3.0,
        group_accuracy: GroupAccuracy {
            head: Some(0.9),
            medium: Some(0.6),
            tail: Some(tail_accuracy),
        },
        classes: vec![
            class(0, Group::Head, 100, head_ratio, 0.9),
            class(1, Group::Medium, 30, -0.05, 0.6),
            class(2, Group::Tail, 10, tail_ratio, tail_accuracy),
        ],
    }
}

fn design(seeds: &[u64]) -> StudyDesign {
    StudyDesign {
        arms: vec![
            StudyArm {
                name: "ce-drw".into(),
                recipe: "mnist-lt-ce-drw".into(),
                sam: false,
            },
            StudyArm {
                name: "ce-drw-sam".into(),
                recipe: "mnist-lt-ce-drw-sam".into(),
                sam: true,
            },
        ],
        seeds: seeds.to_vec(),
    }
}

const SEEDS: [u64; 5] = [0, 1, 2, 3, 4];
/// Per-seed jitter, so that intervals have width.
const JITTER: [f64; 5] = [0.0, 0.02, -0.01, 0.015, -0.02];

/// Five seeds of both arms: reference (head ratio, tail ratio, tail accuracy) and the SAM
/// arm's tail ratio and tail accuracy, each moved by the seed's jitter.
fn study(reference: (f64, f64, f64), sam: (f64, f64)) -> StudyReport {
    let mut cells = Vec::new();
    for (&seed, &j) in SEEDS.iter().zip(&JITTER) {
        cells.push(cell(
            "ce-drw",
            seed,
            reference.0 - j,
            reference.1 + j,
            reference.2 + j,
        ));
        cells.push(cell("ce-drw-sam", seed, reference.0, sam.0 + j, sam.1 - j));
    }
    aggregate(&design(&SEEDS), cells, &BootstrapParams::default()).unwrap()
}

fn conclusions(report: &StudyReport) -> (Conclusion, Conclusion) {
    assert_eq!(report.claims.len(), 2);
    (report.claims[0].conclusion, report.claims[1].conclusion)
}

#[test]
fn every_branch_of_both_claims_from_cells() {
    // Tail far more negative than head; SAM lifts the tail's ratio and accuracy.
    let r = study((-0.05, -0.5, 0.3), (-0.1, 0.5));
    assert_eq!(
        conclusions(&r),
        (Conclusion::Supported, Conclusion::Supported)
    );
    assert!(
        r.claims[0]
            .summary
            .starts_with("supported: tail − head mean λ_min/λ_max in ce-drw = -0.448"),
        "{}",
        r.claims[0].summary
    );
    // Head more negative than tail; SAM lowers the tail's accuracy.
    let r = study((-0.5, -0.05, 0.5), (-0.01, 0.3));
    assert_eq!(
        conclusions(&r),
        (Conclusion::Contradicted, Conclusion::Contradicted)
    );
    // SAM makes the tail's curvature more negative while raising its accuracy: contradicted.
    let r = study((-0.05, -0.2, 0.3), (-0.6, 0.5));
    assert_eq!(r.claims[1].conclusion, Conclusion::Contradicted);
    // Tail − head straddles zero (its mean is 0.0 give or take the jitter of both), and SAM
    // leaves the tail as it was: inconclusive.
    let r = study((-0.2, -0.2, 0.3), (-0.2, 0.3));
    assert_eq!(
        conclusions(&r),
        (Conclusion::Inconclusive, Conclusion::Inconclusive)
    );
}

#[test]
fn one_seed_is_inconclusive_and_says_so() {
    let cells = vec![
        cell("ce-drw", 0, -0.05, -0.5, 0.3),
        cell("ce-drw-sam", 0, -0.05, -0.1, 0.5),
    ];
    let r = aggregate(&design(&[0]), cells, &BootstrapParams::default()).unwrap();
    assert_eq!(
        conclusions(&r),
        (Conclusion::Inconclusive, Conclusion::Inconclusive)
    );
    assert!(
        r.claims[0]
            .summary
            .contains("in the one seed (the predicted sign); one seed gives no interval"),
        "{}",
        r.claims[0].summary
    );
}

#[test]
fn group_and_paired_class_aggregates_have_the_known_means() {
    let r = study((-0.05, -0.5, 0.3), (-0.1, 0.5));
    let tail = r.arms[0]
        .groups
        .iter()
        .find(|g| g.group == Group::Tail)
        .unwrap();
    // Tail ratio −0.5 + jitter (mean jitter −0.001), one saddle per seed.
    let ratio = tail.metrics.ratio_min_max.unwrap();
    assert!((ratio.mean - (-0.5 + 0.001)).abs() < 1e-12 && ratio.n == 5);
    assert!(ratio.low <= ratio.mean && ratio.mean <= ratio.high);
    assert_eq!(tail.metrics.saddle_count.unwrap().mean, 1.0);
    assert_eq!(tail.metrics.trace.unwrap().low, 4.0);
    // The paired tail accuracy difference: (0.5 − j) − (0.3 + j) = 0.2 − 2j.
    let c = &r.comparisons[0];
    assert_eq!((c.a.as_str(), c.b.as_str()), ("ce-drw", "ce-drw-sam"));
    let tail_class = c.classes.iter().find(|k| k.class == 2).unwrap();
    let acc = tail_class.metrics.test_accuracy.unwrap();
    assert!((acc.mean - (0.2 - 0.002)).abs() < 1e-12, "{acc:?}");
    // Classes head → tail.
    let order: Vec<usize> = r.arms[0].classes.iter().map(|k| k.class).collect();
    assert_eq!(order, [0, 1, 2]);
}

#[test]
fn the_report_does_not_depend_on_the_order_of_the_cells() {
    let mut cells: Vec<CellSummary> = SEEDS
        .iter()
        .flat_map(|&s| {
            [
                cell("ce-drw", s, -0.05, -0.4 + s as f64 * 0.01, 0.3),
                cell("ce-drw-sam", s, -0.05, -0.2, 0.4 - s as f64 * 0.01),
            ]
        })
        .collect();
    let p = BootstrapParams::default();
    let forward = aggregate(&design(&SEEDS), cells.clone(), &p).unwrap();
    cells.reverse();
    let backward = aggregate(&design(&SEEDS), cells, &p).unwrap();
    assert_eq!(
        serde_json::to_string_pretty(&forward).unwrap(),
        serde_json::to_string_pretty(&backward).unwrap()
    );
    let dir = tempfile::tempdir().unwrap();
    write_study(dir.path(), &forward).unwrap();
    assert_eq!(read_study(&dir.path().join("study.json")).unwrap(), forward);
    let csv = std::fs::read_to_string(dir.path().join("study.csv")).unwrap();
    assert!(csv.starts_with("scope,arms,group,class,name,metric,mean,low,high,seeds,conclusion\narm,ce-drw,head,,,test_accuracy,9e-1,9e-1,9e-1,5,\n"), "{csv}");
    assert!(csv.contains("\nclaim_b,ce-drw ce-drw-sam,,,,ce-drw-sam − ce-drw: tail test accuracy,"));
    let cells_csv = std::fs::read_to_string(dir.path().join("cells.csv")).unwrap();
    assert_eq!(cells_csv.lines().count(), 1 + 2 * 5 * 3);
}

#[test]
fn missing_doubled_and_foreign_cells_are_named() {
    let p = BootstrapParams::default();
    let d = design(&[0, 1]);
    let some = vec![
        cell("ce-drw", 0, -0.1, -0.2, 0.3),
        cell("ce-drw", 1, -0.1, -0.2, 0.3),
        cell("ce-drw-sam", 0, -0.1, -0.2, 0.3),
    ];
    let err = aggregate(&d, some.clone(), &p).unwrap_err();
    assert_eq!(err.to_string(), "missing cell ce-drw-sam/seed-1");
    let mut doubled = some.clone();
    doubled.push(some[0].clone());
    assert_eq!(
        aggregate(&d, doubled, &p).unwrap_err().to_string(),
        "doubled cell ce-drw/seed-0"
    );
    let mut foreign = some.clone();
    foreign.push(cell("vs", 0, -0.1, -0.2, 0.3));
    assert_eq!(
        aggregate(&d, foreign, &p).unwrap_err().to_string(),
        "unexpected cell vs/seed-0"
    );
    let mut other_data = some;
    let mut last = cell("ce-drw-sam", 1, -0.1, -0.2, 0.3);
    last.classes[2].train_count = 11;
    other_data.push(last);
    assert!(aggregate(&d, other_data, &p)
        .unwrap_err()
        .to_string()
        .starts_with("cells ce-drw/seed-0 and ce-drw-sam/seed-1 have different classes"));
}
