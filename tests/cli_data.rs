//! `data` and the shared error contract.

use crate::util::*;

#[test]
fn counts_reproduce_the_cifar10_lt_profile() {
    let out = run(&[
        "data",
        "counts",
        "--classes",
        "10",
        "--n-max",
        "5000",
        "--imbalance",
        "exp",
        "--ratio",
        "100",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let counts: Vec<usize> = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(counts, [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]);
}

#[test]
fn summary_of_the_embedded_mnist_lt_split() {
    let out = run(&[
        "data",
        "summary",
        "--dataset",
        "mnist10k",
        "--imbalance",
        "exp",
        "--ratio",
        "100",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let counts: Vec<usize> = serde_json::from_value(json["train_counts"].clone()).unwrap();
    assert_eq!(counts, [663, 397, 238, 142, 85, 51, 30, 18, 11, 6]);
}

#[test]
fn usage_errors_exit_2_naming_the_flag() {
    assert_one_line_error(&run(&["data", "counts", "--ratio", "0.5"]), 2, "--ratio");
    assert_one_line_error(
        &run(&["data", "summary", "--dataset", "imagenet"]),
        2,
        "imagenet",
    );
    assert_one_line_error(
        &run(&["data", "summary", "--imbalance", "linear"]),
        2,
        "--imbalance",
    );
}

#[test]
fn data_errors_exit_1_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("train-images-idx3-ubyte"), [0u8; 7]).unwrap();
    let spec = format!("mnist:{}", dir.path().display());
    let out = run(&["data", "summary", "--dataset", &spec]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("train-"), "{}", stderr(&out));
    assert_one_line_error(
        &run(&["data", "summary", "--dataset", "mnist:/nonexistent/dir"]),
        1,
        "/nonexistent/dir",
    );
}
