//! `saddlescope plot`: redraws the figures of an analysis from its `spectrum.json`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use saddlescope_plot::write_all;
use saddlescope_results::read_report;
use serde_json::json;

use crate::out_dir::{input_id, outputs, OutDir};
use crate::values::{FormatArg, XScaleArg};

/// Flags of `saddlescope plot`.
#[derive(Debug, Args)]
pub struct PlotArgs {
    /// Analysis directory (holds spectrum.json)
    #[arg(value_name = "ANALYSIS_DIR")]
    dir: PathBuf,
    /// Image format
    #[arg(long, value_enum, default_value_t = FormatArg::Png)]
    format: FormatArg,
    /// Eigenvalue axis: linear or symlog (linear near 0, logarithmic beyond)
    #[arg(long, value_enum, default_value_t = XScaleArg::Symlog)]
    xscale: XScaleArg,
    /// Output directory [default: ANALYSIS_DIR/figures]
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Replace figures of another analysis in the output directory, and take over a lock
    /// another host left on it
    #[arg(long)]
    force: bool,
}

/// Runs `saddlescope plot`.
pub fn run(args: PlotArgs) -> anyhow::Result<ExitCode> {
    let report = read_report(&args.dir.join("spectrum.json"))?;
    let out = args.out.unwrap_or_else(|| args.dir.join("figures"));
    let mut out_dir = OutDir::lock(&out, args.force, false)?;
    // Figures of the same analysis are redrawn in any format or scale; another analysis's
    // figures are not replaced without --force.
    let settings = json!({ "analysis": input_id(&args.dir) });
    out_dir.claim(&outputs::PLOT, &settings, args.force)?;
    for path in write_all(&report, &out, args.format.into(), args.xscale.into())? {
        println!("{}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
