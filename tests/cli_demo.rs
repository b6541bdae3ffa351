//! `demo --quick` end to end (with the MLP, the fastest), then `plot` and `compare` on the
//! analyses it wrote.

use std::path::Path;

use crate::util::*;

/// Width and height of a PNG, decoding the whole image (so a truncated file fails).
pub fn png_size(path: &Path) -> (u32, u32) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder
        .read_info()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut buffer = vec![0; reader.output_buffer_size()];
    let info = reader
        .next_frame(&mut buffer)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (info.width, info.height)
}

#[test]
fn quick_demo_writes_report_figures_and_json_then_plot_and_compare_work() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let o = run(&[
        "demo",
        "--quick",
        "--model",
        "mlp",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));

    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.starts_with("# saddlescope demo: MNIST-LT (ratio 100), CE+DRW vs CE+DRW+SAM, mlp:64, seed 0\n\n## Conclusions\n\n**Claim (a)**"),
        "the report opens with the conclusions: {md}"
    );
    assert!(
        md.contains("Not reproduced: the data do not settle it.")
            && md.contains("one seed gives no interval"),
        "one seed settles no claim, and the report says so plainly"
    );
    for needle in [
        "## Verdict",
        "ce-drw vs ce-drw-sam",
        "## Reproducibility",
        "sha256",
        "![",
        "tail",
    ] {
        assert!(md.contains(needle), "report.md lacks {needle:?}");
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("data:image/png;base64,"), "figures embedded");
    assert!(
        !html.contains("src=\"figures/"),
        "no external figure links in the self-contained HTML"
    );

    // Figures: the documented sizes (plot crate defaults).
    assert_eq!(
        png_size(&out.join("figures/training_curves.png")),
        (1200, 850)
    );
    assert_eq!(
        png_size(&out.join("figures/compare_lambda_min.png")),
        (1200, 800)
    );
    assert_eq!(
        png_size(&out.join("figures/ce-drw/eigen_bars.png")),
        (1200, 800)
    );
    assert_eq!(
        png_size(&out.join("figures/ce-drw/head_tail.png")),
        (1200, 700)
    );
    assert_eq!(
        png_size(&out.join("figures/ce-drw/density_grid.png")).0,
        1900
    );

    for arm in ["ce-drw", "ce-drw-sam"] {
        let json = read_json(
            &out.join("cells")
                .join(arm)
                .join("seed-0/analysis/spectrum.json"),
        );
        assert_eq!(json["classes"].as_array().unwrap().len(), 10);
        for key in [
            "lambda_min",
            "lambda_min_bound",
            "lambda_max",
            "trace",
            "density",
            "ritz",
            "saddle",
            "group",
        ] {
            assert!(
                json["classes"][9].get(key).is_some(),
                "{arm}: classes[9].{key}"
            );
        }
        assert_eq!(json["classes"][9]["group"], "tail");
        assert!(out
            .join("cells")
            .join(arm)
            .join("seed-0/run/log.jsonl")
            .exists());
    }

    // plot: redraw one analysis as SVG.
    let analysis = out.join("cells/ce-drw/seed-0/analysis");
    let figs = dir.path().join("figs");
    let o = run(&[
        "plot",
        analysis.to_str().unwrap(),
        "--format",
        "svg",
        "--out",
        figs.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let grid = std::fs::read_to_string(figs.join("density_grid.svg")).unwrap();
    assert!(grid.contains("<svg") && grid.contains("class 9"));
    assert_eq!(
        stdout(&o).lines().count(),
        10 + 3,
        "10 class densities (the quick demo has no all-classes Hessian), grid, head/tail, bars"
    );

    // compare: deltas table for the two analyses.
    let cmp = dir.path().join("cmp");
    let o = run(&[
        "compare",
        analysis.to_str().unwrap(),
        out.join("cells/ce-drw-sam/seed-0/analysis")
            .to_str()
            .unwrap(),
        "--out",
        cmp.to_str().unwrap(),
        "--labels",
        "base,sam",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = std::fs::read_to_string(cmp.join("deltas.csv")).unwrap();
    assert_eq!(csv.lines().count(), 11);
    assert!(cmp.join("report.html").exists());
    assert!(
        stderr(&o).contains("deltas.csv"),
        "a status line without --quiet"
    );
    let quiet = run(&[
        "compare",
        analysis.to_str().unwrap(),
        out.join("cells/ce-drw-sam/seed-0/analysis")
            .to_str()
            .unwrap(),
        "--out",
        dir.path().join("cmp-quiet").to_str().unwrap(),
        "--quiet",
    ]);
    assert!(quiet.status.success(), "{}", stderr(&quiet));
    assert!(stderr(&quiet).is_empty(), "--quiet: {}", stderr(&quiet));
    assert_one_line_error(
        &run(&["plot", dir.path().to_str().unwrap()]),
        1,
        "spectrum.json",
    );

    // demo --model: a bad spec is a usage error naming the flag, and a re-run into a demo of
    // another architecture is refused naming what differs (before any training).
    let out_arg = out.to_str().unwrap();
    assert_one_line_error(
        &run(&["demo", "--quick", "--model", "bogus", "--out", out_arg]),
        2,
        "--model",
    );
    let o = run(&["demo", "--quick", "--model", "cnn", "--out", out_arg]);
    assert_one_line_error(&o, 2, "holds a demo made with other settings");
    assert!(
        stderr(&o).contains("recipes.ce-drw.model: mlp:64 there, cnn asked"),
        "{}",
        stderr(&o)
    );

    // Issue 16, item 3: the full demo into a quick demo's directory resumed the 10-epoch
    // runs up to 30 epochs; now it is refused before any training, the runs untouched.
    let log = std::fs::read(out.join("cells/ce-drw/seed-0/run/log.jsonl")).unwrap();
    let o = run(&["demo", "--model", "mlp", "--out", out_arg]);
    assert_one_line_error(&o, 2, "holds a demo made with other settings");
    assert!(
        stderr(&o).contains("analysis.lanczos_steps: 30 there, 60 asked")
            && stderr(&o).contains("--force"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read(out.join("cells/ce-drw/seed-0/run/log.jsonl")).unwrap(),
        log
    );
}
