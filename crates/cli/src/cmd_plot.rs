//! `saddlescope plot`: redraws the figures of an analysis from its `spectrum.json`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use saddlescope_plot::{write_all, Format, XScale};
use saddlescope_results::read_report;

use crate::usage::usage;

/// Flags of `saddlescope plot`.
#[derive(Debug, Args)]
pub struct PlotArgs {
    /// Analysis directory (holds spectrum.json)
    #[arg(value_name = "ANALYSIS_DIR")]
    dir: PathBuf,
    /// Image format: png or svg
    #[arg(long, value_name = "png|svg", default_value = "png")]
    format: String,
    /// Eigenvalue axis: linear or symlog (linear near 0, logarithmic beyond)
    #[arg(long, value_name = "linear|symlog", default_value = "symlog")]
    xscale: String,
    /// Output directory [default: ANALYSIS_DIR/figures]
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// Parses `--xscale`.
pub fn parse_xscale(text: &str) -> anyhow::Result<XScale> {
    text.parse()
        .map_err(|e| usage(format!("--xscale {text:?}: {e}")))
}

/// Runs `saddlescope plot`.
pub fn run(args: PlotArgs) -> anyhow::Result<ExitCode> {
    let format = match args.format.as_str() {
        "png" => Format::Png,
        "svg" => Format::Svg,
        other => return Err(usage(format!("--format {other:?}: expected png or svg"))),
    };
    let xscale = parse_xscale(&args.xscale)?;
    let report = read_report(&args.dir.join("spectrum.json"))?;
    let out = args.out.unwrap_or_else(|| args.dir.join("figures"));
    for path in write_all(&report, &out, format, xscale)? {
        println!("{}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
