//! `saddlescope bench train`: the JSON of both kinds (keys and the values that do not depend
//! on timing) and its usage errors; the HVP benchmark's device. Timings themselves are
//! never asserted.

use serde_json::Value;

use crate::util::{assert_one_line_error, run, stderr, stdout};

/// The last stdout line of a successful run, parsed.
fn json(args: &[&str]) -> Value {
    let out = run(args);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let line = text.lines().last().expect("one JSON line");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

#[test]
fn train_step_and_epoch_report_their_settings() {
    let step = json(&[
        "bench",
        "train",
        "--kind",
        "step",
        "--model",
        "cnn",
        "--batch",
        "8",
        "--repeats",
        "1",
    ]);
    assert_eq!(step["bench"], "train");
    assert_eq!(step["kind"], "step");
    assert_eq!(step["model"], "cnn");
    assert_eq!(step["batch"], 8);
    assert_eq!(step["params"], 20_538);
    for key in ["step_ms", "step_min_ms", "threads", "loadavg_before"] {
        assert!(step.get(key).is_some(), "missing {key}");
    }

    let epoch = json(&[
        "bench",
        "train",
        "--preset",
        "mnist-lt-ce",
        "--epochs",
        "1",
        "--model",
        "mlp",
    ]);
    assert_eq!(epoch["kind"], "epoch");
    assert_eq!(epoch["preset"], "mnist-lt-ce");
    assert_eq!(epoch["sam_rho"], Value::Null);
    // MNIST-LT from mnist10k: 1,634 samples in batches of 64.
    assert_eq!(epoch["steps_per_epoch"], 26);
    assert_eq!(epoch["epoch_s"].as_array().map(Vec::len), Some(1));
    assert!(epoch["test_accuracy"].as_f64().is_some_and(|a| a > 0.1));
}

#[test]
fn bad_train_bench_flags_exit_2_naming_the_flag() {
    assert_one_line_error(&run(&["bench", "train", "--kind", "bogus"]), 2, "--kind");
    assert_one_line_error(
        &run(&["bench", "train", "--preset", "mnist-lt-ce", "--sam", "0.3"]),
        2,
        "--sam",
    );
    assert_one_line_error(&run(&["bench", "train", "--preset", "nope"]), 2, "--preset");
    assert_one_line_error(&run(&["bench", "train", "--batch", "0"]), 2, "--batch");
}

#[test]
fn the_hvp_bench_reports_its_device_and_refuses_cuda_without_the_feature() {
    let report = json(&[
        "bench",
        "--model",
        "cnn",
        "--batch",
        "2",
        "--repeats",
        "1",
        "--json",
    ]);
    assert_eq!(report["device"], "cpu");
    assert_eq!(report["params"], 20_538);
    assert_one_line_error(&run(&["bench", "--device", "cuda"]), 2, "--device cuda");
}
