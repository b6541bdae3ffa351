//! `saddlescope spectrum`: SLQ density, extreme eigenvalues and trace of a dense symmetric
//! matrix stored as `.npy` — the numerics of the class-wise analysis, run on a matrix whose
//! spectrum you know. Writes `DIR/spectrum.json` (the same keys the analysis stores per
//! class) atomically (`saddlescope_results::write_atomically`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use saddlescope_data::{read_npy, shape_string};
use saddlescope_results::write_atomically;
use saddlescope_spectral::{
    estimate_spectrum_with_progress, DenseSymmetric, SlqParams, SpectrumEstimate, SpectrumParams,
};
use serde_json::json;

use crate::bounds;
use crate::error::ResultExt;
use crate::out_dir::{input_id, outputs, OutDir};
use crate::values::BasisArg;

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
    /// Storage of the Lanczos basis vectors: f64, or f32 for half the memory (Ritz values
    /// then good to ~1e-7 relative)
    #[arg(long, value_enum, default_value_t = BasisArg::F64)]
    basis: BasisArg,
    /// Output directory, created if missing; the result goes to DIR/spectrum.json
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// No progress bar or summary line
    #[arg(long)]
    quiet: bool,
    /// Replace the spectrum of another matrix or other settings in DIR, and take over a lock
    /// another host left on it
    #[arg(long)]
    force: bool,
}

/// Runs `saddlescope spectrum`.
pub fn run(args: SpectrumArgs) -> anyhow::Result<ExitCode> {
    let params = params(&args)?;
    let op = load_matrix(&args.matrix)?;
    let mut out = OutDir::lock(&args.out, args.force, args.quiet)?;
    let settings = json!({ "matrix": input_id(&args.matrix), "params": params });
    out.claim(&outputs::SPECTRUM, &settings, args.force)?;
    if args.probes == 1 && !args.quiet {
        eprintln!("note: {}", crate::jobs::analyze::ONE_PROBE);
    }
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
    let path = write_spectrum(&args.out, &estimate)?;
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
            basis: args.basis.into(),
            // Dense matrices are small: one basis per probe in parallel is cheap.
            parallel: true,
            ..SlqParams::default()
        },
        top_k: args.top_k,
        tol: args.tol,
        max_applications: args.max_applications,
        ..SpectrumParams::default()
    };
    params.validate().cli()?;
    Ok(params)
}

/// Reads the matrix and checks it is square, finite and symmetric; errors name the file.
fn load_matrix(path: &Path) -> anyhow::Result<DenseSymmetric> {
    let array = read_npy(path)?;
    let [rows, cols] = array.shape[..] else {
        anyhow::bail!(
            "{}: not a matrix: shape {}",
            path.display(),
            shape_string(&array.shape)
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

/// Writes `dir/spectrum.json` atomically, so a reader never sees a half-written file;
/// returns its path.
fn write_spectrum(dir: &Path, estimate: &SpectrumEstimate) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("spectrum.json");
    let mut json = serde_json::to_string_pretty(estimate)?;
    json.push('\n');
    write_atomically(&path, json).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// One line with the headline numbers.
fn summary(e: &SpectrumEstimate, path: &Path) -> String {
    let pm = |stderr: Option<f64>| stderr.map_or(String::new(), |s| format!(" ± {s:.2e}"));
    format!(
        "lambda_max {:.8e} (bound {}), lambda_min {:.8e} (bound {}), trace {:.6e}{}, negative mass {:.4}{}, {} products{} -> {}{}",
        e.lambda_max,
        bounds::marked(e, e.lambda_max_bound),
        e.lambda_min,
        bounds::marked(e, e.lambda_min_bound),
        e.trace,
        pm(e.trace_stderr),
        e.negative_mass,
        pm(e.negative_mass_stderr),
        e.applications,
        if e.converged { "" } else { " (not converged)" },
        path.display(),
        bounds::note([e]).map_or(String::new(), |line| format!("\n{line}"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{clap_line, UsageError};
    use clap::Parser;
    use saddlescope_spectral::BasisPrecision;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SpectrumArgs,
    }

    fn try_parse(flags: &[&str]) -> Result<SpectrumArgs, clap::Error> {
        let argv = ["spectrum", "--matrix", "m.npy", "--out", "dir"]
            .iter()
            .chain(flags);
        Cli::try_parse_from(argv).map(|cli| cli.args)
    }

    fn parse(flags: &[&str]) -> SpectrumArgs {
        try_parse(flags).expect("flags parse")
    }

    /// The one-line usage message of flags that fail, while parsing or validating.
    fn usage_message(flags: &[&str]) -> String {
        let err = match try_parse(flags) {
            Ok(args) => params(&args).unwrap_err(),
            Err(err) => {
                assert!(err.use_stderr(), "{err}");
                return clap_line(&err, &[]);
            }
        };
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
}
