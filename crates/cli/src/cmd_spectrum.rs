//! `saddlescope spectrum`: SLQ density, extreme eigenvalues and trace of a dense symmetric
//! matrix stored as `.npy` — the numerics of the class-wise analysis, run on a matrix whose
//! spectrum you know. Writes `DIR/spectrum.json` (the same keys the analysis stores per
//! class) atomically: `spectrum.json.tmp` in DIR, then a rename.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use saddlescope_spectral::{
    estimate_spectrum_with_progress, DenseSymmetric, Error, SlqParams, SpectrumEstimate,
    SpectrumParams,
};

use crate::basis_arg::BasisArg;
use crate::npy;
use crate::usage::usage;

/// Flags of `saddlescope spectrum`.
#[derive(Debug, Args)]
pub struct SpectrumArgs {
    /// Square matrix, symmetric to 1e-8 relative (.npy, f32 or f64, C or Fortran order)
    #[arg(long, value_name = "FILE.npy")]
    matrix: PathBuf,
    /// Lanczos steps per probe: quadrature nodes per probe and the extreme solver's basis size
    #[arg(long, value_name = "M", default_value_t = 100)]
    lanczos_steps: usize,
    /// Probe vectors for the density, trace and negative mass
    #[arg(long, value_name = "K", default_value_t = 4)]
    probes: usize,
    /// Seed of the probe vectors (same seed, same JSON)
    #[arg(long, value_name = "S", default_value_t = 0)]
    seed: u64,
    /// Number of largest eigenvalues to report (at most M - 4)
    #[arg(long, value_name = "K", default_value_t = 5)]
    top_k: usize,
    /// Relative tolerance of the extreme eigenvalues: residual bound <= T * |lambda|
    #[arg(
        long,
        value_name = "T",
        default_value_t = 1e-6,
        allow_negative_numbers = true
    )]
    tol: f64,
    /// Budget of matrix-vector products for the extreme eigenvalues (the first probe's M included)
    #[arg(long, value_name = "N", default_value_t = 500)]
    max_applications: usize,
    #[command(flatten)]
    basis: BasisArg,
    /// Output directory, created if missing; the result goes to DIR/spectrum.json
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// No progress bar or summary line
    #[arg(long)]
    quiet: bool,
}

/// Runs `saddlescope spectrum`.
pub fn run(args: SpectrumArgs) -> anyhow::Result<ExitCode> {
    let params = params(&args)?;
    let op = load_matrix(&args.matrix)?;
    let bar = progress_bar(
        params.expected_applications(op.matrix().nrows()),
        args.quiet,
    );
    let report = |done: usize| {
        let done = done as u64;
        if bar.length().is_some_and(|len| done > len) {
            bar.set_length(done);
        }
        bar.set_position(done);
    };
    let estimate = estimate_spectrum_with_progress(&op, &params, Some(&report))
        .with_context(|| args.matrix.display().to_string())?;
    bar.finish_and_clear();
    let path = write_atomically(&args.out, &estimate)?;
    if !estimate.converged {
        eprintln!(
            "warning: extreme eigenvalues not converged to --tol {} within --max-applications {} (bounds are in {})",
            args.tol,
            args.max_applications,
            path.display()
        );
    }
    if !args.quiet {
        writeln!(std::io::stdout().lock(), "{}", summary(&estimate, &path))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Validates the flags into library parameters; a bad value is a usage error naming its flag.
fn params(args: &SpectrumArgs) -> anyhow::Result<SpectrumParams> {
    let params = SpectrumParams {
        slq: SlqParams {
            steps: args.lanczos_steps,
            probes: args.probes,
            seed: args.seed,
            basis: args.basis.precision()?,
            // Dense matrices are small: one basis per probe in parallel is cheap.
            parallel: true,
            ..SlqParams::default()
        },
        top_k: args.top_k,
        tol: args.tol,
        max_applications: args.max_applications,
        ..SpectrumParams::default()
    };
    params.validate().map_err(|err| match err {
        Error::InvalidParam {
            name,
            value,
            expected,
        } => {
            let flag = match name {
                "steps" => "--lanczos-steps",
                "probes" => "--probes",
                "top_k" => "--top-k",
                "tol" => "--tol",
                "max_applications" => "--max-applications",
                other => other,
            };
            usage(format!("{flag} {value}: expected {expected}"))
        }
        other => anyhow::Error::new(other),
    })?;
    Ok(params)
}

/// Reads the matrix and checks it is square, finite and symmetric; errors name the file.
fn load_matrix(path: &Path) -> anyhow::Result<DenseSymmetric> {
    let array = npy::read(path)?;
    let [rows, cols] = array.shape[..] else {
        anyhow::bail!(
            "{}: not a matrix: shape {}",
            path.display(),
            npy::shape_string(&array.shape)
        );
    };
    DenseSymmetric::from_row_major(rows, cols, &array.data)
        .with_context(|| path.display().to_string())
}

/// A bar of operator applications on stderr (hidden when stderr is not a terminal, or with
/// `--quiet`).
fn progress_bar(expected: usize, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(expected as u64), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("matrix-vector products [{bar:30}] {pos}/{len} (ETA {eta})")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar
}

/// Writes `dir/spectrum.json` via `dir/spectrum.json.tmp` and a rename, so a reader never
/// sees a half-written file; returns the final path.
fn write_atomically(dir: &Path, estimate: &SpectrumEstimate) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join("spectrum.json.tmp");
    let path = dir.join("spectrum.json");
    let mut json = serde_json::to_string_pretty(estimate)?;
    json.push('\n');
    std::fs::write(&tmp, json).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(path)
}

/// One line with the headline numbers.
fn summary(e: &SpectrumEstimate, path: &Path) -> String {
    let pm = |stderr: Option<f64>| stderr.map_or(String::new(), |s| format!(" ± {s:.2e}"));
    format!(
        "lambda_max {:.8e} (bound {:.1e}), lambda_min {:.8e} (bound {:.1e}), trace {:.6e}{}, negative mass {:.4}{}, {} products{} -> {}",
        e.lambda_max,
        e.lambda_max_bound,
        e.lambda_min,
        e.lambda_min_bound,
        e.trace,
        pm(e.trace_stderr),
        e.negative_mass,
        pm(e.negative_mass_stderr),
        e.applications,
        if e.converged { "" } else { " (not converged)" },
        path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::npy::write_test_npy;
    use crate::usage::UsageError;
    use clap::Parser;
    use saddlescope_spectral::BasisPrecision;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SpectrumArgs,
    }

    fn parse(flags: &[&str]) -> SpectrumArgs {
        let argv = ["spectrum", "--matrix", "m.npy", "--out", "dir"]
            .iter()
            .chain(flags);
        Cli::try_parse_from(argv).expect("flags parse").args
    }

    fn usage_message(flags: &[&str]) -> String {
        let err = params(&parse(flags)).unwrap_err();
        assert!(
            err.downcast_ref::<UsageError>().is_some(),
            "not a usage error: {err}"
        );
        err.to_string()
    }

    #[test]
    fn bad_flag_values_are_usage_errors_naming_the_flag() {
        assert_eq!(
            usage_message(&["--lanczos-steps", "0"]),
            "--lanczos-steps 0: expected at least 1"
        );
        assert_eq!(
            usage_message(&["--probes", "0"]),
            "--probes 0: expected at least 1"
        );
        assert_eq!(
            usage_message(&["--tol", "-1"]),
            "--tol -1: expected a finite number > 0"
        );
        assert_eq!(
            usage_message(&["--top-k", "97"]),
            "--top-k 97: expected at most steps - 4 = 96"
        );
        assert_eq!(
            usage_message(&["--max-applications", "0"]),
            "--max-applications 0: expected at least 1"
        );
        assert_eq!(
            usage_message(&["--basis", "f16"]),
            "--basis \"f16\": expected f64 or f32"
        );
        let p = params(&parse(&[
            "--lanczos-steps",
            "30",
            "--probes",
            "2",
            "--seed",
            "7",
            "--top-k",
            "3",
            "--basis",
            "f32",
        ]))
        .unwrap();
        assert_eq!(
            (p.slq.steps, p.slq.probes, p.slq.seed, p.top_k, p.tol),
            (30, 2, 7, 3, 1e-6)
        );
        assert_eq!(p.slq.basis, BasisPrecision::F32);
        assert_eq!(params(&parse(&[])).unwrap().slq.basis, BasisPrecision::F64);
    }

    fn f64_le(values: &[f64]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn matrix_checks_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("matrix.npy");
        let name = p.display().to_string();
        write_test_npy(&p, 1, "<f8", false, "(3, 4)", &f64_le(&[0.0; 12]));
        assert_eq!(
            format!("{:#}", load_matrix(&p).unwrap_err()),
            format!("{name}: not square: shape (3, 4)")
        );
        write_test_npy(&p, 1, "<f8", false, "(5,)", &f64_le(&[0.0; 5]));
        assert_eq!(
            format!("{:#}", load_matrix(&p).unwrap_err()),
            format!("{name}: not a matrix: shape (5,)")
        );
        write_test_npy(
            &p,
            1,
            "<f8",
            false,
            "(2, 2)",
            &f64_le(&[1.0, 2.0, 2.1, 1.0]),
        );
        let e = format!("{:#}", load_matrix(&p).unwrap_err());
        assert!(
            e.starts_with(&format!("{name}: not symmetric: |a[1,0] - a[0,1]|")),
            "{e}"
        );
        // Fortran-order f32, symmetric: accepted.
        let sym: Vec<u8> = [2.0f32, -1.0, -1.0, 3.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        write_test_npy(&p, 1, "<f4", true, "(2, 2)", &sym);
        assert_eq!(load_matrix(&p).unwrap().matrix()[(0, 1)], -1.0);
    }

    #[test]
    fn writes_spectrum_json_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("diag.npy");
        let n = 20;
        let values: Vec<f64> = (0..n * n)
            .map(|k| {
                if k % (n + 1) == 0 {
                    (k / (n + 1)) as f64 - 3.0
                } else {
                    0.0
                }
            })
            .collect();
        write_test_npy(&p, 1, "<f8", false, "(20, 20)", &f64_le(&values));
        let out = dir.path().join("out");
        let args = parse(&["--quiet"]);
        let args = SpectrumArgs {
            matrix: p,
            out: out.clone(),
            ..args
        };
        assert_eq!(run(args).unwrap(), ExitCode::SUCCESS);
        assert!(!out.join("spectrum.json.tmp").exists());
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("spectrum.json")).unwrap())
                .unwrap();
        // diag(-3, ..., 16): 20 steps exhaust the space, so the values are exact to rounding.
        assert!((json["lambda_max"].as_f64().unwrap() - 16.0).abs() < 1e-12);
        assert!((json["lambda_min"].as_f64().unwrap() + 3.0).abs() < 1e-12);
        assert_eq!(json["converged"], serde_json::Value::Bool(true));
        assert_eq!(json["params"]["steps"], 100);
    }
}
