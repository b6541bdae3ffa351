//! Every figure rendered from a synthetic analysis whose spectra are known (diagonal
//! matrices: head classes at minima, tail classes at saddles), to PNG and SVG: PNGs decode
//! at the documented size with text and colour in them, SVGs hold the title and the class
//! names; bad inputs fail with errors naming the file.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use nalgebra::{DMatrix, DVector};
use saddlescope_results::{
    aggregate, BootstrapParams, CellSummary, StudyArm, StudyDesign, StudyReport,
};
use saddlescope_results::{
    AnalysisParams, AnalysisReport, CheckpointInfo, CheckpointOrigin, ClassSpectrum,
    DirectionCurve, DirectionKind, EpochRecord, EvalMetrics, ForeignCheckpoint, Group,
    GroupAccuracy, LandscapeReport, Plane, VerdictKind,
};
use saddlescope_spectral::{
    estimate_spectrum, DenseSymmetric, DensityParams, SlqParams, SpectrumParams,
};

use crate::*;

/// Dimension of the synthetic Hessians.
const DIM: usize = 60;

/// A class Hessian with eigenvalues: the bulk `0, 0.01 · scale, ..` (57 values up to
/// 0.57 · scale), outliers `top / 2` and `top`, and `negative` (at a saddle) or 0.
fn class_spectrum(
    class: usize,
    train_count: usize,
    group: Group,
    top: f64,
    negative: f64,
) -> ClassSpectrum {
    let eigenvalues = DVector::from_fn(DIM, |i, _| match i {
        0 => negative,
        58 => top / 2.0,
        59 => top,
        _ => 0.01 * i as f64,
    });
    let operator = DenseSymmetric::new(DMatrix::from_diagonal(&eigenvalues)).unwrap();
    let params = SpectrumParams {
        slq: SlqParams {
            steps: 30,
            probes: 3,
            ..SlqParams::default()
        },
        top_k: 3,
        density: DensityParams {
            bins: 2000,
            ..DensityParams::default()
        },
        ..SpectrumParams::default()
    };
    let estimate = estimate_spectrum(&operator, &params).unwrap();
    // The extremes of a diagonal matrix are exact: the figures show the known values.
    assert!(
        (estimate.lambda_max - top).abs() < 1e-8
            && (estimate.lambda_min - negative.min(0.0)).abs() < 1e-8
    );
    let ratio = estimate.lambda_min / estimate.lambda_max;
    ClassSpectrum {
        class: Some(class),
        name: class.to_string(),
        group: Some(group),
        samples: train_count.min(100),
        train_count,
        ratio_min_max: Some(ratio),
        saddle: ratio < -0.01,
        verdict: if ratio < -0.01 {
            VerdictKind::Saddle
        } else {
            VerdictKind::MinimumLike
        },
        verdict_reason: "synthetic".into(),
        first_order: None,
        estimate,
    }
}

/// The groups of `classes` classes listed head to tail: thirds, the extra classes to the head
/// and then the medium group (as `saddlescope_data::GroupRule::Thirds` cuts them).
fn thirds(classes: usize) -> Vec<Group> {
    let (base, extra) = (classes / 3, classes % 3);
    let head = base + usize::from(extra > 0);
    let medium = base + usize::from(extra > 1);
    (0..classes)
        .map(|rank| match rank {
            r if r < head => Group::Head,
            r if r < head + medium => Group::Medium,
            _ => Group::Tail,
        })
        .collect()
}

/// `classes` classes with a long-tailed count profile (ratio 100) listed in a shuffled
/// order; the rarer the class, the smaller λ_max and the deeper its negative eigenvalue.
fn synthetic_report(classes: usize, seed: usize) -> AnalysisReport {
    synthetic_report_with(classes, seed, 0.4, 40.0)
}

/// [`synthetic_report`] with the rarest class's negative eigenvalue at `-depth` and the
/// head class's λ_max at `top`.
fn synthetic_report_with(classes: usize, seed: usize, depth: f64, top: f64) -> AnalysisReport {
    let counts: Vec<usize> = (0..classes)
        .map(|k| (5000.0 * 0.01f64.powf(k as f64 / (classes - 1) as f64)).round() as usize)
        .collect();
    let groups = thirds(classes);
    // Listed in class-index order, with class indices a permutation of the count ranks.
    let mut spectra: Vec<ClassSpectrum> = (0..classes)
        .map(|rank| {
            let class = (rank * 7 + seed) % classes;
            let tail = rank as f64 / (classes - 1) as f64;
            let negative = if tail > 0.6 { -depth * tail } else { 0.0 };
            class_spectrum(
                class,
                counts[rank],
                groups[rank],
                top * (1.0 - 0.8 * tail),
                negative,
            )
        })
        .collect();
    spectra.sort_by_key(|c| c.class);
    let all = ClassSpectrum {
        class: None,
        name: "all".into(),
        group: None,
        ..spectra[0].clone()
    };
    AnalysisReport {
        checkpoint: CheckpointInfo {
            path: "runs/ce-drw/final.safetensors".into(),
            sha256: "00".repeat(32),
            metadata: CheckpointOrigin::Foreign(ForeignCheckpoint {
                arch: None,
                classes,
            }),
        },
        dataset: "synthetic".into(),
        split: "test".into(),
        params: AnalysisParams {
            lanczos_steps: 30,
            probes: 3,
            seed: 0,
            dtype: "f64".into(),
            samples_per_class: None,
            loss: "ce".into(),
            saddle_ratio: 0.01,
            param_filter: Vec::new(),
            tol: 1e-6,
            top_k: 3,
            basis: Default::default(),
            verdict: None,
        },
        classes: spectra,
        skipped: Vec::new(),
        all: Some(all),
        trace_identity: None,
        health: None,
        version: "0.1.0".into(),
    }
}

/// Records of a run whose tail accuracy climbs to `tail_final` (medium missing at epoch 2).
fn records(epochs: usize, tail_final: f64) -> Vec<EpochRecord> {
    (1..=epochs)
        .map(|epoch| {
            let t = epoch as f64 / epochs as f64;
            EpochRecord {
                epoch,
                lr: 0.1,
                train_loss: 2.0 * (1.0 - t) + 0.1,
                train_accuracy: 0.5 + 0.45 * t,
                drw: t > 0.8,
                sam_rho: 0.0,
                grad_norm: 1.0,
                sharpness: 0.0,
                test: EvalMetrics {
                    loss: 1.0,
                    accuracy: 0.4 + 0.5 * t,
                    class_accuracy: vec![0.5; 10],
                    group_accuracy: GroupAccuracy {
                        head: Some(0.6 + 0.38 * t),
                        medium: (epoch != 2).then_some(0.3 + 0.5 * t),
                        tail: Some(tail_final * t),
                    },
                },
                seconds: 1.0,
            }
        })
        .collect()
}

/// Decodes a PNG and checks its size, that it holds several colours and that the title
/// band (the top 45 rows) holds dark text pixels.
fn check_png(path: &Path, size: (u32, u32)) {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), size, "{}", path.display());
    assert_eq!(info.color_type, png::ColorType::Rgb);
    let pixels: Vec<[u8; 3]> = buf[..info.buffer_size()]
        .chunks(3)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    let distinct: HashSet<[u8; 3]> = pixels.iter().copied().collect();
    assert!(
        distinct.len() >= 20,
        "{}: {} colours",
        path.display(),
        distinct.len()
    );
    let title_band = &pixels[..45 * size.0 as usize];
    let dark = title_band
        .iter()
        .filter(|p| p.iter().all(|&c| c < 90))
        .count();
    assert!(
        dark > 150,
        "{}: {dark} dark pixels in the title band",
        path.display()
    );
}

/// Reads an SVG and checks that it holds every string of `expected`.
fn check_svg(path: &Path, expected: &[&str]) -> String {
    let svg = std::fs::read_to_string(path).unwrap();
    assert!(
        svg.starts_with("<svg") || svg.contains("<svg "),
        "{}",
        path.display()
    );
    for s in expected {
        assert!(svg.contains(s), "{} lacks {s:?}", path.display());
    }
    svg
}

/// A saddle's landscape: along u_max (λ = 20) the loss rises, along u_min (λ = -1.5) it
/// falls and then turns up (a quartic term), a random direction is nearly flat; the plane is
/// the same model in two variables.
fn synthetic_landscape() -> LandscapeReport {
    let loss0 = 0.8;
    let curve = |name, lambda: f64, slope: f64, quartic: f64, range: f64| {
        let t: Vec<f64> = (0..41).map(|i| range * (i as f64 - 20.0) / 20.0).collect();
        let quadratic: Vec<f64> = t
            .iter()
            .map(|t| loss0 + slope * t + 0.5 * lambda * t * t)
            .collect();
        let loss = t
            .iter()
            .zip(&quadratic)
            .map(|(t, q)| q + quartic * t.powi(4))
            .collect();
        DirectionCurve {
            name,
            eigenvalue: lambda,
            bound: 1e-12,
            t,
            loss,
            quadratic,
        }
    };
    let grid =
        |range: f64| -> Vec<f64> { (0..21).map(|i| range * (i as f64 - 10.0) / 10.0).collect() };
    let (s, t) = (grid(0.2), grid(0.7));
    let loss = s
        .iter()
        .map(|s| {
            t.iter()
                .map(|t| loss0 + 10.0 * s * s - 0.75 * t * t + 0.3 * t.powi(4))
                .collect()
        })
        .collect();
    LandscapeReport {
        class: 9,
        loss0,
        directions: vec![
            curve(DirectionKind::Max, 20.0, -0.01, 5.0, 0.2),
            curve(DirectionKind::Min, -1.5, -0.02, 0.3, 0.7),
            curve(DirectionKind::Random, 0.004, -0.001, 0.01, 1.0),
        ],
        plane: Some(Plane { s, t, loss }),
    }
}

/// Pixels `[r, g, b]` of a PNG for which `keep` holds.
fn count_pixels(path: &Path, keep: impl Fn(&[u8]) -> bool) -> usize {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf[..info.buffer_size()]
        .chunks(3)
        .filter(|p| keep(p))
        .count()
}

/// Pixels within 12 of `color` in every channel.
fn count_color(path: &Path, color: (u8, u8, u8)) -> usize {
    count_pixels(path, |p| {
        p[0].abs_diff(color.0) <= 12 && p[1].abs_diff(color.1) <= 12 && p[2].abs_diff(color.2) <= 12
    })
}

#[test]
fn landscape_figures_in_both_formats() {
    let report = synthetic_landscape();
    let dir = tempfile::tempdir().unwrap();
    let options = LandscapeOptions {
        subtitle: Some("synthetic · class 9 (tail)".into()),
        ..LandscapeOptions::default()
    };
    let curves = dir.path().join("landscape.png");
    landscape_curves(&report, &curves, &options).unwrap();
    check_png(&curves, (1500, 620));
    // The u_min curve (purple, 3 px over ~400 px) and the u_max curve (orange) are drawn.
    assert!(count_color(&curves, (148, 103, 189)) > 600);
    assert!(count_color(&curves, (255, 127, 14)) > 600);
    let plane = dir.path().join("plane.png");
    landscape_plane(&report, &plane, &PlaneOptions::default()).unwrap();
    check_png(&plane, (1000, 850));
    // Both sides of the diverging scale: the saddle rises along u_max (red, up to the
    // scale's end) and falls along u_min (blue, 3/4 of the way: the plane falls by 0.3 and
    // rises by 0.4).
    assert!(count_color(&plane, (178, 24, 43)) > 2000);
    let blue = count_pixels(&plane, |p| p[2] > 150 && p[0] < 120);
    assert!(blue > 20_000, "{blue} blue pixels");

    let curves = dir.path().join("landscape.svg");
    landscape_curves(&report, &curves, &options).unwrap();
    check_svg(
        &curves,
        &[
            "Loss of class 9 along the extreme Hessian eigenvectors",
            "synthetic · class 9 (tail)",
            "u_max · λ_max = 20 ± 1e-12",
            "u_min · λ_min = -1.5 ± 1e-12",
            "random u · uᵀHu = 0.004",
            "t (distance along u_min)",
            "second-order model L(w) + t·g·u + ½λt²",
            "lowest along u_min: 0.4905 at t = 0.7 (-0.309)",
        ],
    );
    let plane = dir.path().join("plane.svg");
    landscape_plane(&report, &plane, &PlaneOptions::default()).unwrap();
    check_svg(
        &plane,
        &[
            "Loss of class 9 on the plane of u_max and u_min",
            "s along u_max (λ_max = 20 ± 1e-12)",
            "t along u_min (λ_min = -1.5 ± 1e-12)",
            "L(w) = 0.8 (white)",
        ],
    );
}

#[test]
fn bad_landscapes_fail_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.png");
    let mut report = synthetic_landscape();
    report.plane = None;
    let err = landscape_plane(&report, &path, &PlaneOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "nothing to draw in {}: the landscape of class 9 has no plane",
            path.display()
        )
    );
    report.directions[1].loss[3] = f64::NAN;
    let err = landscape_curves(&report, &path, &LandscapeOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("cannot draw {}: curve u_min holds NaN", path.display())
    );
    report.directions[1].loss.pop();
    let err = landscape_curves(&report, &path, &LandscapeOptions::default()).unwrap_err();
    assert!(
        err.to_string().contains("curve u_min has 41 t, 40 loss"),
        "{err}"
    );
    let mut report = synthetic_landscape();
    report.plane.as_mut().unwrap().loss[4].pop();
    let err = landscape_plane(&report, &path, &PlaneOptions::default()).unwrap_err();
    assert!(matches!(err, Error::InvalidData { .. }), "{err}");
    report.directions.clear();
    let err = landscape_curves(&report, &path, &LandscapeOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Empty { .. }), "{err}");
    assert!(!path.exists());
}

fn png_size(path: &Path) -> (u32, u32) {
    let reader = png::Decoder::new(std::fs::File::open(path).unwrap())
        .read_info()
        .unwrap();
    (reader.info().width, reader.info().height)
}

#[test]
fn single_class_density_in_both_formats_and_scales() {
    let report = synthetic_report(10, 3);
    let dir = tempfile::tempdir().unwrap();
    let tail = report.classes.iter().find(|c| c.saddle).unwrap();
    for (scale, name) in [(XScale::Linear, "linear"), (XScale::Symlog, "symlog")] {
        let options = DensityOptions {
            xscale: scale,
            ..DensityOptions::default()
        };
        let png = dir.path().join(format!("{name}.png"));
        class_density(tail, &png, &options).unwrap();
        check_png(&png, (1200, 700));
        let svg = dir.path().join(format!("{name}.svg"));
        class_density(tail, &svg, &options).unwrap();
        let title = format!(
            "Hessian eigen-density of class {} (n = {} · tail) · SADDLE",
            tail.name, tail.train_count
        );
        let lambda_max = format!(
            "λ_max = {}",
            crate::axis::format_number(tail.estimate.lambda_max, 4)
        );
        let text = check_svg(&svg, &[&title, "λ_min = -0.", &lambda_max]);
        if scale == XScale::Symlog {
            assert!(text.contains("symlog: linear within ±0.01"));
        }
    }
    // No temporary file is left behind.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.iter().all(|n| !n.contains(".tmp.")), "{names:?}");
}

#[test]
fn write_all_produces_the_documented_files() {
    let report = synthetic_report(10, 3);
    let dir = tempfile::tempdir().unwrap();
    let written = write_all(&report, dir.path(), Format::Png, XScale::Symlog).unwrap();
    let mut expected: Vec<PathBuf> = (0..10)
        .map(|c| dir.path().join(format!("density/class_{c:03}.png")))
        .collect();
    expected.push(dir.path().join("density/all.png"));
    for name in ["density_grid", "head_tail", "eigen_bars"] {
        expected.push(dir.path().join(format!("{name}.png")));
    }
    assert_eq!(written, expected);
    check_png(&expected[10], (1200, 700));
    // Grid: C = 10 gives 5 columns of 380 px and two rows of 300 px under the header.
    let (w, h) = png_size(&dir.path().join("density_grid.png"));
    assert_eq!(w, 1900);
    assert!((600..800).contains(&h), "{h}");
    check_png(&dir.path().join("density_grid.png"), (w, h));
    check_png(&dir.path().join("head_tail.png"), (1200, 700));
    check_png(&dir.path().join("eigen_bars.png"), (1200, 800));
}

#[test]
fn grid_overlay_and_bars_as_svg_name_every_class_head_to_tail() {
    let report = synthetic_report(10, 3);
    let dir = tempfile::tempdir().unwrap();
    let grid = dir.path().join("grid.svg");
    class_grid(&report, &grid, &GridOptions::default()).unwrap();
    let names: Vec<String> = (0..10).map(|c| format!("class {c}")).collect();
    let mut expected: Vec<&str> = names.iter().map(String::as_str).collect();
    expected.extend([
        "Class-wise Hessian eigen-densities, head → tail",
        "SADDLE",
        "synthetic · test split",
    ]);
    let svg = check_svg(&grid, &expected);
    // Panels run head → tail: by descending train count.
    let mut by_count: Vec<&ClassSpectrum> = report.classes.iter().collect();
    by_count.sort_by_key(|c| std::cmp::Reverse(c.train_count));
    let positions: Vec<usize> = by_count
        .iter()
        .map(|c| svg.find(&format!(">\nclass {}\n<", c.name)).unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");

    let overlay = dir.path().join("head_tail.svg");
    head_tail(&report, &overlay, &DensityOptions::default()).unwrap();
    check_svg(
        &overlay,
        &[
            "Mean Hessian eigen-density: head vs tail classes",
            "head: mean of 4 classes",
            "tail: mean of 3 classes",
        ],
    );

    let bars = dir.path().join("bars.svg");
    eigen_bars(&report, &bars, &BarOptions::default()).unwrap();
    let svg = check_svg(
        &bars,
        &[
            "Extreme Hessian eigenvalues per class, head → tail",
            "λ_max",
            "λ_min",
            "tail",
        ],
    );
    for c in &report.classes {
        assert!(
            svg.contains(&format!(">\n{}\n<", c.name)),
            "bars lack the tick of class {}",
            c.name
        );
    }
}

#[test]
fn error_bars_appear_once_they_reach_two_pixels() {
    let mut report = synthetic_report(10, 3);
    let dir = tempfile::tempdir().unwrap();
    let polylines = |report: &AnalysisReport, name: &str| {
        let path = dir.path().join(name);
        eigen_bars(report, &path, &BarOptions::default()).unwrap();
        std::fs::read_to_string(&path)
            .unwrap()
            .matches("<polyline")
            .count()
    };
    let tiny = polylines(&report, "tiny.svg");
    // λ_max spans 0..40 over about 300 px: a bound of 2 is about 30 px long.
    report
        .classes
        .iter_mut()
        .for_each(|c| c.estimate.lambda_max_bound = 2.0);
    let visible = polylines(&report, "visible.svg");
    // A whisker and two caps per class.
    assert_eq!(visible - tiny, 3 * 10);
}

#[test]
fn comparison_figures_in_both_formats() {
    let base = synthetic_report(10, 3);
    let mut sam = synthetic_report(10, 3);
    // SAM's classes: tail saddles halved.
    for c in &mut sam.classes {
        c.estimate.lambda_min /= 2.0;
    }
    let (a, b) = (
        Labeled::new("CE+DRW", &base),
        Labeled::new("CE+DRW+SAM", &sam),
    );
    let dir = tempfile::tempdir().unwrap();
    for ext in ["png", "svg"] {
        let densities = dir.path().join(format!("compare_densities.{ext}"));
        compare_densities(a, b, &densities, &GridOptions::default()).unwrap();
        let bars = dir.path().join(format!("compare_lambda_min.{ext}"));
        compare_lambda_min(a, b, &bars, &BarOptions::default()).unwrap();
        if ext == "png" {
            let (w, h) = png_size(&densities);
            assert_eq!(w, 1900);
            check_png(&densities, (w, h));
            check_png(&bars, (1200, 800));
        } else {
            check_svg(
                &densities,
                &[
                    "Eigen-densities per class: CE+DRW vs CE+DRW+SAM",
                    "class 9",
                    "* saddle",
                ],
            );
            check_svg(
                &bars,
                &["λ_min per class: CE+DRW vs CE+DRW+SAM", "CE+DRW+SAM"],
            );
        }
    }
}

#[test]
fn training_curves_and_timeline_in_both_formats() {
    let (base, sam) = (records(12, 0.5), records(12, 0.65));
    let runs = [
        Labeled::new("CE+DRW", base.as_slice()),
        Labeled::new("CE+DRW+SAM", sam.as_slice()),
    ];
    let reports: Vec<AnalysisReport> = (0..3)
        .map(|k| synthetic_report_with(10, 3, 0.2 * (k + 1) as f64, 40.0))
        .collect();
    let checkpoints: Vec<(usize, &AnalysisReport)> = reports
        .iter()
        .enumerate()
        .map(|(k, r)| (5 * (k + 1), r))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    for ext in ["png", "svg"] {
        let curves = dir.path().join(format!("curves.{ext}"));
        training_curves(&runs, &curves, &CurveOptions::default()).unwrap();
        let line = dir.path().join(format!("timeline.{ext}"));
        timeline(&checkpoints, &line, &TimelineOptions::default()).unwrap();
        if ext == "png" {
            check_png(&curves, (1200, 850));
            check_png(&line, (1200, 900));
        } else {
            check_svg(
                &curves,
                &[
                    "Test accuracy by epoch",
                    "CE+DRW: final 90% (tail 50%)",
                    "CE+DRW+SAM: final 90% (tail 65%)",
                    "tail classes",
                ],
            );
            check_svg(
                &line,
                &[
                    "Extreme Hessian eigenvalues across checkpoints",
                    "λ_max per class",
                    "epochs 5–15",
                    ">\n9\n<",
                ],
            );
        }
    }
}

#[test]
fn a_hundred_classes_are_capped_to_fifty_panels() {
    let report = synthetic_report(100, 1);
    let dir = tempfile::tempdir().unwrap();
    let grid = dir.path().join("grid.svg");
    class_grid(&report, &grid, &GridOptions::default()).unwrap();
    let svg = check_svg(
        &grid,
        &["showing 50 of 100 classes, evenly spaced head → tail"],
    );
    assert_eq!(svg.matches("λ_max ").count(), 50);
    let bars = dir.path().join("bars.png");
    eigen_bars(&report, &bars, &BarOptions::default()).unwrap();
    check_png(&bars, (1200, 800));
}

#[test]
fn bad_inputs_fail_naming_the_file() {
    let mut report = synthetic_report(4, 0);
    let dir = tempfile::tempdir().unwrap();
    let pdf = dir.path().join("grid.pdf");
    let err = class_grid(&report, &pdf, &GridOptions::default()).unwrap_err();
    assert!(
        matches!(err, Error::UnknownFormat { .. }) && err.to_string().contains("grid.pdf"),
        "{err}"
    );

    let path = dir.path().join("d.png");
    let err = class_density(
        &report.classes[0],
        &path,
        &DensityOptions {
            floor: 0.0,
            ..DensityOptions::default()
        },
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "invalid option floor = 0 for {}: expected a number in (0, 1)",
            path.display()
        )
    );
    let err = class_density(
        &report.classes[0],
        &path,
        &DensityOptions {
            linthresh: Some(-1.0),
            ..DensityOptions::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidOption {
                option: "linthresh",
                ..
            }
        ),
        "{err}"
    );

    report.classes[1].estimate.lambda_min = f64::NAN;
    let err = eigen_bars(&report, &path, &BarOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "cannot draw {}: lambda_min of class 1 is NaN",
            path.display()
        )
    );
    report.classes[1].estimate.lambda_min = -0.1;
    report.classes[2]
        .estimate
        .density
        .values
        .iter_mut()
        .for_each(|v| *v = 0.0);
    let err = class_grid(&report, &path, &GridOptions::default()).unwrap_err();
    assert!(
        err.to_string()
            .ends_with("density of class 2 has no positive value"),
        "{err}"
    );

    let empty = AnalysisReport {
        classes: Vec::new(),
        ..report.clone()
    };
    let err = eigen_bars(&empty, &path, &BarOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Empty { .. }), "{err}");
    let err = training_curves(&[], &path, &CurveOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Empty { .. }), "{err}");

    // A file where the output directory should be.
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, b"").unwrap();
    let inside = blocker.join("fig.png");
    let err = eigen_bars(&synthetic_report(4, 0), &inside, &BarOptions::default()).unwrap_err();
    assert!(
        matches!(err, Error::Io { .. }) && err.to_string().contains("blocker"),
        "{err}"
    );
    assert!(!path.exists());
}

/// A study of two arms over three seeds from the synthetic analyses (the second arm's
/// tail saddles scaled by the seed, so its intervals have width).
fn synthetic_study() -> StudyReport {
    let design = StudyDesign {
        arms: ["CE+DRW", "CE+DRW+SAM"]
            .map(|name| StudyArm {
                name: name.into(),
                recipe: name.into(),
                sam: name.ends_with("SAM"),
            })
            .to_vec(),
        seeds: vec![0, 1, 2],
    };
    let mut cells = Vec::new();
    for seed in 0..3u64 {
        let base = synthetic_report(10, 3);
        let mut sam = synthetic_report(10, 3);
        for c in &mut sam.classes {
            c.estimate.lambda_min *= 0.2 + 0.2 * seed as f64;
        }
        let test = &records(4, 0.5 + 0.05 * seed as f64)[3].test;
        cells.push(CellSummary::new(
            "CE+DRW",
            seed,
            &base,
            &records(4, 0.5)[3].test,
        ));
        cells.push(CellSummary::new("CE+DRW+SAM", seed, &sam, test));
    }
    aggregate(&design, cells, &BootstrapParams::default()).unwrap()
}

#[test]
fn study_figures_in_both_formats_with_interval_whiskers() {
    let study = synthetic_study();
    let dir = tempfile::tempdir().unwrap();
    for ext in ["png", "svg"] {
        let lambda = dir.path().join(format!("study_lambda_min.{ext}"));
        study_lambda_min(&study, &lambda, &BarOptions::default()).unwrap();
        let accuracy = dir.path().join(format!("study_accuracy.{ext}"));
        study_group_accuracy(&study, &accuracy, &BarOptions::default()).unwrap();
        if ext == "png" {
            check_png(&lambda, (1200, 800));
            check_png(&accuracy, (1200, 800));
        } else {
            let svg = check_svg(
                &lambda,
                &[
                    "λ_min per class over seeds, head → tail",
                    "CE+DRW+SAM",
                    "seeds 0, 1, 2",
                ],
            );
            // The reference arm is the same in every seed (no whiskers); the SAM arm's
            // saddle classes vary: a whisker and two caps each.
            let saddles = study.arms[1]
                .classes
                .iter()
                .filter(|c| c.metrics.lambda_min.is_some_and(|i| i.high - i.low > 0.05))
                .count();
            assert!(saddles > 0);
            assert!(svg.matches("<polyline").count() >= 3 * saddles);
            check_svg(&accuracy, &["Test accuracy per group over seeds", "tail"]);
        }
    }
}

/// Writes every figure (PNG, and SVG for the `write_all` set) into `$SADDLESCOPE_PLOT_EXAMPLES` to look at:
/// `SADDLESCOPE_PLOT_EXAMPLES=/tmp/ex cargo test -p saddlescope-plot --release -- --ignored`.
#[test]
#[ignore = "writes example figures for a person to look at"]
fn write_examples() {
    let Some(dir) = std::env::var_os("SADDLESCOPE_PLOT_EXAMPLES").map(PathBuf::from) else {
        return;
    };
    let base = synthetic_report(10, 3);
    let sam = synthetic_report_with(10, 3, 0.12, 25.0);
    write_all(&base, &dir.join("linear"), Format::Png, XScale::Linear).unwrap();
    write_all(&base, &dir.join("symlog"), Format::Png, XScale::Symlog).unwrap();
    write_all(&base, &dir.join("svg"), Format::Svg, XScale::Symlog).unwrap();
    let (a, b) = (
        Labeled::new("CE+DRW", &base),
        Labeled::new("CE+DRW+SAM", &sam),
    );
    compare_densities(
        a,
        b,
        &dir.join("compare_densities.png"),
        &GridOptions {
            xscale: XScale::Symlog,
            ..GridOptions::default()
        },
    )
    .unwrap();
    compare_lambda_min(
        a,
        b,
        &dir.join("compare_lambda_min.png"),
        &BarOptions::default(),
    )
    .unwrap();
    let (r1, r2) = (records(30, 0.5), records(30, 0.65));
    let runs = [
        Labeled::new("CE+DRW", r1.as_slice()),
        Labeled::new("CE+DRW+SAM", r2.as_slice()),
    ];
    training_curves(
        &runs,
        &dir.join("training_curves.png"),
        &CurveOptions::default(),
    )
    .unwrap();
    let reports: Vec<AnalysisReport> = (0..4)
        .map(|k| synthetic_report_with(10, 3, 0.1 + 0.1 * k as f64, 20.0 + 7.0 * k as f64))
        .collect();
    let checkpoints: Vec<(usize, &AnalysisReport)> = reports
        .iter()
        .enumerate()
        .map(|(k, r)| (10 * (k + 1), r))
        .collect();
    timeline(
        &checkpoints,
        &dir.join("timeline.png"),
        &TimelineOptions::default(),
    )
    .unwrap();
    let many = synthetic_report(100, 1);
    class_grid(
        &many,
        &dir.join("grid_100.png"),
        &GridOptions {
            xscale: XScale::Symlog,
            ..GridOptions::default()
        },
    )
    .unwrap();
    eigen_bars(&many, &dir.join("bars_100.png"), &BarOptions::default()).unwrap();
    let landscape = synthetic_landscape();
    landscape_curves(
        &landscape,
        &dir.join("landscape.png"),
        &LandscapeOptions::default(),
    )
    .unwrap();
    landscape_plane(&landscape, &dir.join("plane.png"), &PlaneOptions::default()).unwrap();
}
