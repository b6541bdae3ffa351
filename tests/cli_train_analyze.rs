//! `train` then `analyze` on a tiny synthetic run, and their bad inputs.

use std::path::Path;

use crate::util::*;

#[test]
fn train_writes_checkpoints_and_a_log() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    TinyRun::default()
        .with(&["--sam", "0.05", "--drw"])
        .train(&run_dir);
    for name in [
        "last.safetensors",
        "best.safetensors",
        "resume.safetensors",
        "log.jsonl",
    ] {
        assert!(run_dir.join(name).exists(), "{name}");
    }
    let log = std::fs::read_to_string(run_dir.join("log.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 4);
    let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert!(last["test"]["group_accuracy"]["tail"].is_number());
    assert_eq!(last["sam_rho"], 0.05);
}

#[test]
fn analyze_writes_the_documented_keys_and_is_deterministic_across_threads() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    TinyRun::default().train(&run_dir);
    let ckpt = run_dir.join("last.safetensors");
    let analyze = |out: &Path, threads: &str| {
        let out = run(&[
            "analyze",
            ckpt.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--lanczos-steps",
            "20",
            "--probes",
            "2",
            "--threads",
            threads,
            // f64: byte-identical across thread counts, trace identity to 1e-10.
            "--dtype",
            "f64",
            "--quiet",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
    };
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    analyze(&a, "1");
    analyze(&b, "2");
    let text_a = std::fs::read_to_string(a.join("spectrum.json")).unwrap();
    let text_b = std::fs::read_to_string(b.join("spectrum.json")).unwrap();
    assert!(
        text_a == text_b,
        "spectrum.json differs between --threads 1 and 2"
    );
    let json = read_json(&a.join("spectrum.json"));
    assert_eq!(json["classes"].as_array().unwrap().len(), 3);
    for key in [
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
        "group",
        "samples",
    ] {
        assert!(json["classes"][0].get(key).is_some(), "missing {key}");
    }
    assert!(
        json["trace_identity"]["relative_residual"]
            .as_f64()
            .unwrap()
            < 1e-10
    );
    assert!(a.join("summary.csv").exists());
}

#[test]
fn bad_train_flags_exit_2_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x");
    let o = out.to_str().unwrap();
    assert_one_line_error(
        &run(&["train", "--out", o, "--preset", "imagenet-lt"]),
        2,
        "--preset",
    );
    assert_one_line_error(&run(&["train", "--out", o, "--lr", "0"]), 2, "--lr");
    assert_one_line_error(&run(&["train", "--out", o, "--epochs", "0"]), 2, "--epochs");
    assert_one_line_error(&run(&["train", "--out", o, "--sam", "-1"]), 2, "--sam");
    assert_one_line_error(&run(&["train", "--out", o, "--loss", "hinge"]), 2, "--loss");
    assert_one_line_error(
        &run(&["train", "--out", o, "--device", "cuda"]),
        2,
        "--device cuda",
    );
    assert!(
        !out.exists(),
        "no run directory is left behind by a refused run"
    );
}

#[test]
fn bad_checkpoints_fail_with_one_line_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"this is not a checkpoint at all").unwrap();
    let out_dir = dir.path().join("out");
    let o = out_dir.to_str().unwrap();
    assert_one_line_error(
        &run(&["analyze", junk.to_str().unwrap(), "--out", o]),
        1,
        "junk.safetensors",
    );
    let missing = dir.path().join("missing.safetensors");
    assert_one_line_error(
        &run(&["analyze", missing.to_str().unwrap(), "--out", o]),
        1,
        "missing.safetensors",
    );
    let empty = dir.path().join("empty.pth");
    std::fs::write(&empty, b"").unwrap();
    assert_one_line_error(
        &run(&["analyze", empty.to_str().unwrap(), "--out", o]),
        1,
        "empty.pth",
    );
}
