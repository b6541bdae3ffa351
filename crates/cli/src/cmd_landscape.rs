//! `saddlescope landscape`: the loss of one class along the extreme eigenvectors of its
//! Hessian (and a random direction), next to the quadratic model, optionally on the
//! (u_max, u_min) plane: the saddle seen, not just its eigenvalue. `analyze --landscape`
//! draws the same for the saddle classes (`jobs::landscape`).

use std::path::PathBuf;
use std::process::ExitCode;

use candle_core::DType;
use clap::Args;
use saddlescope_analysis::{AnalyzeParams, LandscapeParams, DEFAULT_PLANE_POINTS, DEFAULT_POINTS};

use crate::checkpoint_args::{CheckpointArgs, SolverArgs};
use crate::error::ResultExt;
use crate::jobs::landscape::{landscape, LandscapeJob};

/// Flags of `saddlescope landscape`.
#[derive(Debug, Args)]
#[command(
    after_help = "Directions are unit vectors, each oriented so that the loss falls to first order for t > 0 (g.u <= 0). \
Default range R, per direction: 1/2 |lambda| R^2 = 0.5 max(L(w), 1e-3), clamped to [0.001, 1]. \
Outputs: DIR/landscape.json, DIR/landscape.png and, with --plane, DIR/plane.png."
)]
pub struct LandscapeArgs {
    /// Class whose loss is walked
    #[arg(long, value_name = "C")]
    class: usize,
    /// Grid [-R, R] of every curve and of both plane axes, as -R:R or R [default: per
    /// direction from its eigenvalue]
    #[arg(long, value_name = "-R:R", allow_hyphen_values = true, value_parser = parse_range)]
    range: Option<f64>,
    /// Points per curve (odd: t = 0 is the middle one)
    #[arg(long, value_name = "K", default_value_t = DEFAULT_POINTS)]
    points: usize,
    /// Also the loss on the plane of u_max and u_min
    #[arg(long)]
    plane: bool,
    /// Points per axis of the plane (odd), with --plane
    #[arg(long, value_name = "K", default_value_t = DEFAULT_PLANE_POINTS)]
    plane_points: usize,
    #[command(flatten)]
    solver: SolverArgs,
    /// Output directory
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// No summary on stdout
    #[arg(long)]
    quiet: bool,
    /// Replace a landscape of other settings in DIR, and take over a lock another host left
    /// on the directory
    #[arg(long)]
    force: bool,
    // Last: its foreign-checkpoint help heading covers the flags after it.
    #[command(flatten)]
    source: CheckpointArgs,
}

/// `-R:R` or `R` as R.
fn parse_range(text: &str) -> Result<f64, String> {
    let bad = || "expected -R:R or R with R > 0".to_string();
    let number = |s: &str| s.trim().parse::<f64>().map_err(|_| bad());
    let r = match text.split_once(':') {
        Some((lo, hi)) => {
            let (lo, hi) = (number(lo)?, number(hi)?);
            if lo != -hi {
                return Err("the grid is symmetric about the checkpoint, expected -R:R".to_string());
            }
            hi
        }
        None => number(text)?,
    };
    if !(r.is_finite() && r > 0.0) {
        return Err(bad());
    }
    Ok(r)
}

impl LandscapeArgs {
    /// The landscape these flags ask for, every flag checked; reads nothing.
    ///
    /// # Errors
    /// Usage errors naming the flag.
    fn validate(&self) -> anyhow::Result<LandscapeJob> {
        let params = LandscapeParams {
            range: self.range,
            points: self.points,
            plane_points: self.plane.then_some(self.plane_points),
        };
        params.validate().cli()?;
        let mut spectrum = self.solver.spectrum();
        // A landscape reports no top-k eigenvalues, and the extreme solver needs m >= top_k
        // + 4: fit top_k to --lanczos-steps instead of failing on a flag this command lacks.
        spectrum.top_k = spectrum.top_k.min(spectrum.slq.steps.saturating_sub(4));
        let analysis = AnalyzeParams {
            spectrum,
            samples_per_class: self.source.samples_per_class,
            // A landscape checks the loss against its quadratic model to 1e-12: f64 HVPs.
            dtype: DType::F64,
            ..AnalyzeParams::default()
        };
        analysis.validate().cli()?;
        Ok(LandscapeJob {
            source: self.source.validate()?,
            analysis,
            class: self.class,
            params,
            out: self.out.clone(),
            quiet: self.quiet,
            force: self.force,
        })
    }
}

/// Runs `saddlescope landscape`.
pub fn run(args: LandscapeArgs) -> anyhow::Result<ExitCode> {
    landscape(&args.validate()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::Cli;
    use crate::error::clap_line;
    use clap::Parser;

    #[test]
    fn ranges_parse_symmetric_only() {
        assert_eq!(parse_range("-0.5:0.5").unwrap(), 0.5);
        assert_eq!(parse_range("2").unwrap(), 2.0);
        for (text, needle) in [
            ("-0.5:1", "expected -R:R"),
            ("0", "expected -R:R or R with R > 0"),
            ("-1", "with R > 0"),
            ("a:b", "expected -R:R or R"),
            ("inf", "with R > 0"),
        ] {
            let argv = [
                "saddlescope",
                "landscape",
                "c",
                "--class",
                "0",
                "--out",
                "o",
            ];
            let err =
                Cli::try_parse_from(argv.iter().copied().chain(["--range", text])).unwrap_err();
            assert!(err.use_stderr());
            let err = clap_line(&err, &[]);
            assert!(err.starts_with("--range"), "{err}");
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
