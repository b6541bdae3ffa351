//! `spectrum` on a dense matrix with a known spectrum, its determinism across thread
//! counts, and its input checks.

use std::path::Path;

use crate::util::*;

/// Writes a C-order float64 `.npy` of an n×n matrix.
fn write_matrix(path: &Path, n: usize, entry: impl Fn(usize, usize) -> f64) {
    let values: Vec<f64> = (0..n * n).map(|k| entry(k / n, k % n)).collect();
    write_npy(path, "<f8", false, &format!("({n}, {n})"), &f64_le(&values));
}

/// Runs `spectrum --matrix MATRIX --out OUT` with `extra` flags.
fn spectrum(matrix: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "spectrum",
        "--matrix",
        matrix.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run(&args)
}

/// A diagonal saddle spectrum: −3, then 0.01·k for the bulk, then 40 (Lanczos sees only
/// the spectrum, so a diagonal matrix is as good a test as a rotated one).
fn saddle(i: usize, j: usize, n: usize) -> f64 {
    let diagonal = |k: usize| match k {
        0 => -3.0,
        k if k == n - 1 => 40.0,
        k => 0.01 * k as f64,
    };
    if i == j {
        diagonal(i)
    } else {
        0.0
    }
}

#[test]
fn spectrum_finds_the_known_extremes_and_is_thread_count_independent() {
    let dir = tempfile::tempdir().unwrap();
    let n = 300;
    let matrix = dir.path().join("saddle.npy");
    write_matrix(&matrix, n, |i, j| saddle(i, j, n));
    let analyze = |out: &Path, threads: &str| {
        let o = saddlescope()
            .env("RAYON_NUM_THREADS", threads)
            .args([
                "spectrum",
                "--matrix",
                matrix.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--probes",
                "3",
                "--quiet",
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        std::fs::read_to_string(out.join("spectrum.json")).unwrap()
    };
    let one = analyze(&dir.path().join("t1"), "1");
    let two = analyze(&dir.path().join("t2"), "2");
    assert!(
        one == two,
        "spectrum.json differs between RAYON_NUM_THREADS=1 and 2"
    );
    let json: serde_json::Value = serde_json::from_str(&one).unwrap();
    let (max, min) = (
        json["lambda_max"].as_f64().unwrap(),
        json["lambda_min"].as_f64().unwrap(),
    );
    assert!((max - 40.0).abs() <= 1e-8 * 40.0, "{max}");
    assert!((min + 3.0).abs() <= 1e-8 * 40.0, "{min}");
    assert_eq!(json["converged"], true);
    let exact_trace: f64 = (0..n).map(|k| saddle(k, k, n)).sum();
    let (trace, se) = (
        json["trace"].as_f64().unwrap(),
        json["trace_stderr"].as_f64().unwrap(),
    );
    assert!(
        (trace - exact_trace).abs() <= 3.0 * se + 1e-9,
        "{trace} ± {se} vs {exact_trace}"
    );
    for key in [
        "lambda_max_bound",
        "lambda_min_bound",
        "top_k",
        "negative_mass",
        "ritz",
        "density",
        "params",
    ] {
        assert!(json.get(key).is_some(), "missing {key}");
    }
}

#[test]
fn spectrum_with_an_f32_basis_finds_the_extremes_to_1e6() {
    let dir = tempfile::tempdir().unwrap();
    let n = 300;
    let matrix = dir.path().join("saddle.npy");
    write_matrix(&matrix, n, |i, j| saddle(i, j, n));
    let m = matrix.to_str().unwrap();
    let out = dir.path().join("f32");
    let o = saddlescope()
        .args(["spectrum", "--matrix", m, "--out", out.to_str().unwrap()])
        .args(["--basis", "f32", "--quiet"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let json = read_json(&out.join("spectrum.json"));
    assert_eq!(json["params"]["basis"], "f32");
    // An f32 basis is orthonormal to ~1e-7, which limits the Ritz values to about that
    // accuracy relative to ‖A‖ = 40: 1e-6 relative holds with room.
    let (max, min) = (
        json["lambda_max"].as_f64().unwrap(),
        json["lambda_min"].as_f64().unwrap(),
    );
    assert!((max - 40.0).abs() <= 1e-6 * 40.0, "{max}");
    assert!((min + 3.0).abs() <= 1e-6 * 40.0, "{min}");
    // Anything else is a one-line usage error naming the flag, and writes nothing.
    let bad = dir.path().join("f16");
    assert_one_line_error(
        &run(&[
            "spectrum",
            "--matrix",
            m,
            "--out",
            bad.to_str().unwrap(),
            "--basis",
            "f16",
        ]),
        2,
        "--basis",
    );
    assert!(!bad.exists());
}

#[test]
fn spectrum_rejects_bad_matrices_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let skew = dir.path().join("skew.npy");
    write_matrix(&skew, 4, |i, j| if i < j { 1.0 } else { 0.0 });
    assert_one_line_error(&spectrum(&skew, &out, &[]), 1, "skew.npy");
    let junk = dir.path().join("junk.npy");
    std::fs::write(&junk, b"\x93NUMPY garbage").unwrap();
    assert_one_line_error(&spectrum(&junk, &out, &[]), 1, "junk.npy");
    assert_one_line_error(&spectrum(&skew, &out, &["--probes", "0"]), 2, "--probes");
    assert!(!out.join("spectrum.json").exists());
}

/// The checks of the matrix (after the `.npy` reader's own) name the file.
#[test]
fn matrix_checks_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("matrix.npy");
    let name = p.display().to_string();
    let out = dir.path().join("out");
    let error = || {
        let o = spectrum(&p, &out, &[]);
        assert_one_line_error(&o, 1, &name);
        stderr(&o).trim_end().to_string()
    };
    write_npy(&p, "<f8", false, "(3, 4)", &f64_le(&[0.0; 12]));
    assert_eq!(error(), format!("error: {name}: not square: shape (3, 4)"));
    write_npy(&p, "<f8", false, "(5,)", &f64_le(&[0.0; 5]));
    assert_eq!(error(), format!("error: {name}: not a matrix: shape (5,)"));
    write_npy(&p, "<f8", false, "(2, 2)", &f64_le(&[1.0, 2.0, 2.1, 1.0]));
    let e = error();
    assert!(
        e.starts_with(&format!("error: {name}: not symmetric: |a[1,0] - a[0,1]|")),
        "{e}"
    );
    // Fortran-order f32, symmetric: accepted (eigenvalues (5 ± √5)/2).
    let sym: Vec<u8> = [2.0f32, -1.0, -1.0, 3.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    write_npy(&p, "<f4", true, "(2, 2)", &sym);
    let o = spectrum(&p, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("lambda_max 3.61803399e0"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn writes_spectrum_json_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("diag.npy");
    let n = 20;
    write_matrix(&p, n, |i, j| if i == j { i as f64 - 3.0 } else { 0.0 });
    let out = dir.path().join("out");
    let o = spectrum(&p, &out, &["--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let files: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|name| name != ".saddlescope.json")
        .collect();
    assert_eq!(
        files,
        ["spectrum.json"],
        "no temporary file is left beside the directory's record"
    );
    let json = read_json(&out.join("spectrum.json"));
    // diag(-3, ..., 16): 20 steps exhaust the space, so the values are exact to rounding.
    assert!((json["lambda_max"].as_f64().unwrap() - 16.0).abs() < 1e-12);
    assert!((json["lambda_min"].as_f64().unwrap() + 3.0).abs() < 1e-12);
    assert_eq!(json["converged"], serde_json::Value::Bool(true));
    assert_eq!(json["params"]["steps"], 100);
}
