//! `saddlescope report`: a Markdown and a self-contained HTML report of runs and analyses.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::cmd_plot::parse_xscale;
use crate::report::{load_inputs, write_report, ReportOptions};

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
    /// Eigenvalue axis of the density figures: linear or symlog
    #[arg(long, value_name = "linear|symlog", default_value = "symlog")]
    xscale: String,
    /// No status line
    #[arg(long)]
    quiet: bool,
}

/// The command line, for the reproducibility section.
pub fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

/// Runs `saddlescope report`.
pub fn run(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let xscale = parse_xscale(&args.xscale)?;
    let inputs = load_inputs(&args.dirs, &args.labels)?;
    let options = ReportOptions {
        title: args.title,
        xscale,
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
