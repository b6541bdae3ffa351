//! `saddlescope report`: a Markdown and a self-contained HTML report of runs and analyses.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use crate::error::usage;
use crate::out_dir::{input_id, outputs, OutDir};
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
    /// Labels of the inputs, one per input, in order [default: directory names]
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
    /// Replace a report of other inputs in --out, and take over a lock another host left
    /// on it
    #[arg(long)]
    force: bool,
}

/// Runs `saddlescope report`.
pub fn run(args: ReportArgs) -> anyhow::Result<ExitCode> {
    if !args.labels.is_empty() && args.labels.len() != args.dirs.len() {
        return Err(usage(format!(
            "--labels: {} labels for {} inputs; give one per input, in order",
            args.labels.len(),
            args.dirs.len()
        )));
    }
    let inputs = load_inputs(&args.dirs, &args.labels)?;
    let mut out = OutDir::lock(&args.out, args.force, args.quiet)?;
    // A report of the same inputs is rewritten with any title, labels or scale; a report
    // of other inputs is not replaced without --force.
    let settings = json!({ "inputs": args.dirs.iter().map(|d| input_id(d)).collect::<Vec<_>>() });
    out.claim(&outputs::REPORT, &settings, args.force)?;
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
