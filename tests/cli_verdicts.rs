//! Verdicts end to end (issue 17): an untrained checkpoint (one epoch at lr 1e-12) reads
//! `undetermined` in every class, with the reason, in spectrum.json, summary.csv and the
//! terminal summary; a trained one gets verdicts that its stored numbers imply.

use std::path::Path;

use crate::util::*;

/// The tiny run for one epoch at lr 1e-12: its weights are the initialisation's.
fn untrained() -> TinyRun {
    TinyRun::default().set("--epochs", "1").set("--lr", "1e-12")
}

/// `analyze` of `checkpoint` into `out` (20 Lanczos steps, 2 probes); its stdout.
fn analyze(checkpoint: &Path, out: &Path) -> String {
    let o = run(&[
        "analyze",
        checkpoint.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--lanczos-steps",
        "20",
        "--probes",
        "2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
}

#[test]
fn an_untrained_checkpoint_is_undetermined_in_every_class_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    untrained().train(&run_dir);
    let out = dir.path().join("analysis");
    let table = analyze(&run_dir.join("last.safetensors"), &out);
    let json = read_json(&out.join("spectrum.json"));
    let health = &json["health"];
    assert_eq!(health["status"], "untrained", "{health}");
    let reason = health["reason"].as_str().unwrap();
    assert!(reason.starts_with("balanced train "), "{reason}");
    let classes = json["classes"].as_array().unwrap();
    assert_eq!(classes.len(), 3);
    for c in classes.iter().chain([&json["all"]]) {
        assert_eq!(c["verdict"], "undetermined", "{}", c["name"]);
        assert_eq!(c["saddle"], false);
        assert_eq!(
            c["verdict_reason"].as_str().unwrap(),
            format!("the model is untrained: {reason}")
        );
        // The first-order numbers are recorded all the same.
        for key in [
            "loss",
            "accuracy",
            "grad_norm",
            "grad_curvature",
            "slope_min",
        ] {
            assert!(c["first_order"][key].is_number(), "{key}");
        }
    }
    let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    let mut lines = csv.lines();
    assert!(lines
        .next()
        .unwrap()
        .ends_with(",curvature_term,verdict,verdict_reason"));
    for line in lines {
        assert!(
            line.ends_with(&format!(
                ",undetermined,\"the model is untrained: {reason}\""
            )),
            "{line}"
        );
    }
    assert!(
        table.contains("verdicts: 3 undetermined of 3 classes\n"),
        "{table}"
    );
    assert!(
        table.contains(&format!(
            "  every class: undetermined: the model is untrained: {reason}\n"
        )),
        "{table}"
    );
}

#[test]
fn a_trained_checkpoint_gets_verdicts_and_the_report_and_compare_show_them() {
    let dir = tempfile::tempdir().unwrap();
    let (short, long) = (dir.path().join("short"), dir.path().join("long"));
    untrained().train(&short);
    TinyRun::default().train(&long);
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    analyze(&short.join("last.safetensors"), &a);
    let table = analyze(&long.join("last.safetensors"), &b);
    let json = read_json(&b.join("spectrum.json"));
    assert_eq!(json["health"]["status"], "trained", "{}", json["health"]);
    let verdicts = ["saddle", "not_stationary", "minimum_like"];
    for c in json["classes"].as_array().unwrap() {
        let verdict = c["verdict"].as_str().unwrap();
        assert!(
            verdicts.contains(&verdict),
            "{verdict}: {}",
            c["verdict_reason"]
        );
        assert_eq!(c["saddle"], verdict == "saddle");
    }
    assert!(
        table.contains("model health on the training split"),
        "{table}"
    );
    // compare: the verdicts of both analyses, class by class, in deltas.csv and the report.
    let cmp = dir.path().join("cmp");
    let o = run(&[
        "compare",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--out",
        cmp.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let deltas = std::fs::read_to_string(cmp.join("deltas.csv")).unwrap();
    assert!(deltas
        .lines()
        .next()
        .unwrap()
        .ends_with(",verdict_a,verdict_b"));
    for (line, c) in deltas
        .lines()
        .skip(1)
        .zip(json["classes"].as_array().unwrap())
    {
        let verdict = c["verdict"].as_str().unwrap();
        assert!(
            line.ends_with(&format!(",undetermined,{verdict}")),
            "{line}"
        );
    }
    let md = std::fs::read_to_string(cmp.join("report.md")).unwrap();
    assert!(md.contains("| verdict a | verdict b |"), "{md}");
    assert!(md.contains("**a**: 3 undetermined of 3 classes."), "{md}");
    assert!(md.contains("the model is untrained"), "{md}");
}
