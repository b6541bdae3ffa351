//! `landscape` on a tiny trained run: the JSON keys of the issue, the figures, an untouched
//! checkpoint; `analyze --landscape` and the report that shows it; bad flags.

use crate::cli_demo::png_size;
use crate::util::*;

#[test]
fn landscape_writes_curves_plane_and_figures_and_leaves_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    TinyRun::default().train(&run_dir);
    let ckpt = run_dir.join("last.safetensors");
    let before = std::fs::read(&ckpt).unwrap();
    let out = dir.path().join("landscape");
    let o = run(&[
        "landscape",
        ckpt.to_str().unwrap(),
        "--class",
        "2",
        "--points",
        "11",
        "--plane",
        "--plane-points",
        "5",
        "--lanczos-steps",
        "30",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("class 2: L(w) = "), "{}", stdout(&o));
    assert!(
        std::fs::read(&ckpt).unwrap() == before,
        "the checkpoint file changed"
    );
    let json = read_json(&out.join("landscape.json"));
    let mut keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(keys, ["class", "directions", "loss0", "plane"]);
    assert_eq!(json["class"], 2);
    let loss0 = json["loss0"].as_f64().unwrap();
    assert!(loss0 > 0.0);
    let directions = json["directions"].as_array().unwrap();
    let names: Vec<&str> = directions
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["max", "min", "random"]);
    for d in directions {
        for key in ["t", "loss", "quadratic"] {
            assert_eq!(d[key].as_array().unwrap().len(), 11, "{key}");
        }
        assert!(d["eigenvalue"].is_number() && d["bound"].as_f64().unwrap() >= 0.0);
        // t = 0 is the middle point, where the curve and the model are L(w).
        assert_eq!(d["t"][5].as_f64(), Some(0.0));
        assert!((d["loss"][5].as_f64().unwrap() - loss0).abs() <= 1e-12 * loss0);
        assert_eq!(d["quadratic"][5].as_f64(), Some(loss0));
    }
    assert!(
        directions[0]["eigenvalue"].as_f64().unwrap()
            >= directions[1]["eigenvalue"].as_f64().unwrap()
    );
    let plane = &json["plane"];
    assert_eq!(plane["s"].as_array().unwrap().len(), 5);
    assert_eq!(plane["t"].as_array().unwrap().len(), 5);
    let rows = plane["loss"].as_array().unwrap();
    assert!(rows.len() == 5 && rows.iter().all(|r| r.as_array().unwrap().len() == 5));
    assert_eq!(png_size(&out.join("landscape.png")), (1500, 620));
    assert_eq!(png_size(&out.join("plane.png")), (1000, 850));
}

#[test]
fn analyze_landscape_draws_the_saddles_and_the_report_shows_them() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    TinyRun::default().train(&run_dir);
    let ckpt = run_dir.join("last.safetensors");
    let out = dir.path().join("analysis");
    // Ratio 0: every class whose λ_min is certainly negative has significant negative
    // curvature (a saddle, or not stationary): each gets a landscape.
    let o = run(&[
        "analyze",
        ckpt.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--lanczos-steps",
        "20",
        "--probes",
        "2",
        "--saddle-ratio",
        "0",
        "--landscape",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let spectrum = read_json(&out.join("spectrum.json"));
    let classes = spectrum["classes"].as_array().unwrap();
    let head = classes
        .iter()
        .filter(|c| c["group"] == "head")
        .max_by(|a, b| {
            let l = |c: &serde_json::Value| c["lambda_max"].as_f64().unwrap();
            l(a).total_cmp(&l(b))
        })
        .unwrap();
    let mut expected: Vec<u64> = classes
        .iter()
        .filter(|c| c["verdict"] == "saddle" || c["verdict"] == "not_stationary")
        .map(|c| c["class"].as_u64().unwrap())
        .chain([head["class"].as_u64().unwrap()])
        .collect();
    expected.sort();
    expected.dedup();
    let mut found: Vec<u64> = std::fs::read_dir(out.join("landscape"))
        .unwrap()
        .map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_prefix("class-").unwrap().parse().unwrap()
        })
        .collect();
    found.sort();
    assert_eq!(found, expected);
    for class in &found {
        let class_dir = out.join(format!("landscape/class-{class:04}"));
        let json = read_json(&class_dir.join("landscape.json"));
        assert_eq!(json["class"].as_u64(), Some(*class));
        assert!(json.get("plane").is_none());
        assert_eq!(png_size(&class_dir.join("landscape.png")), (1500, 620));
    }
    let report = dir.path().join("report");
    let o = run(&[
        "report",
        out.to_str().unwrap(),
        "--out",
        report.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    assert!(md.contains("loss landscapes along the extreme eigenvectors"));
    for class in &found {
        let figure = format!("figures/analysis/landscape_class_{class:03}.png");
        assert!(md.contains(&figure), "report.md lacks {figure}");
        assert_eq!(png_size(&report.join(&figure)), (1500, 620));
    }
}

#[test]
fn bad_landscape_flags_exit_2_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    TinyRun::default().train(&run_dir);
    let ckpt = run_dir.join("last.safetensors");
    let c = ckpt.to_str().unwrap();
    let out = dir.path().join("x");
    let o = out.to_str().unwrap();
    let landscape = |extra: &[&str]| {
        let mut args = vec!["landscape", c, "--out", o];
        args.extend_from_slice(extra);
        run(&args)
    };
    assert_one_line_error(
        &landscape(&["--class", "1", "--range", "-1:2"]),
        2,
        "--range",
    );
    assert_one_line_error(&landscape(&["--class", "1", "--range", "0"]), 2, "--range");
    assert_one_line_error(
        &landscape(&["--class", "1", "--points", "4"]),
        2,
        "--points",
    );
    assert_one_line_error(
        &landscape(&["--class", "7"]),
        2,
        "--class: class 7 does not exist",
    );
    assert_one_line_error(
        &landscape(&["--class", "1", "--split", "val"]),
        2,
        "--split",
    );
    assert_one_line_error(
        &landscape(&["--class", "1", "--lanczos-steps", "2"]),
        2,
        "--lanczos-steps",
    );
    assert_one_line_error(
        &landscape(&["--class", "1", "--basis", "f16"]),
        2,
        "--basis",
    );
    assert!(
        !out.exists(),
        "no output directory is left by a refused run"
    );
}
