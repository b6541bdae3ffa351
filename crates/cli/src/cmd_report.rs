//! `saddlescope report`: a Markdown and a self-contained HTML report of runs and analyses.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::report::{command_line, load_inputs, write_report, ReportOptions};
use crate::values::XScaleArg;

/// Flags of `saddlescope report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Run directories (log.jsonl) and/or analysis directories (spectrum.json)
    #[arg(value_name = "RUN_OR_ANALYSIS_DIR", required = true)]
    dirs: Vec<PathBuf>,
    /// Output directory (report.md, report.html, figures/)
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Labels of the inputs, in order [default: directory names]
    #[arg(long, value_name = "A,B,...", value_delimiter = ',')]
    labels: Vec<String>,
    /// Report title
    #[arg(long, default_value = "saddlescope report")]
    title: String,
    /// Eigenvalue axis of the density figures: linear or symlog (linear near 0,
    /// logarithmic beyond)
    #[arg(long, value_enum, default_value_t = XScaleArg::Symlog)]
    xscale: XScaleArg,
    /// No status line
    #[arg(long)]
    quiet: bool,
}

/// Runs `saddlescope report`.
pub fn run(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let inputs = load_inputs(&args.dirs, &args.labels)?;
    let options = ReportOptions {
        title: args.title,
        xscale: args.xscale.into(),
        command_line: command_line(),
    };
    let written = write_report(&inputs, &args.out, &options)?;
    if !args.quiet {
        eprintln!(
            "wrote {} files; open {}",
            written.len(),
            args.out.join("report.html").display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
