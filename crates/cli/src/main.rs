//! The `saddlescope` command-line tool: a thin shell that parses flags (clap), validates
//! them into typed jobs before any file is read (each `cmd_*.rs`), and runs the jobs on the
//! library crates (`jobs`). `main` only maps the outcome of [`run`] to an exit code, so
//! that every command stays testable as a function.

mod args;
mod bounds;
mod checkpoint_args;
mod cmd_analyze;
mod cmd_bench;
mod cmd_compare;
mod cmd_data;
mod cmd_demo;
mod cmd_landscape;
mod cmd_merge;
mod cmd_plot;
mod cmd_report;
mod cmd_slurm;
mod cmd_spectrum;
mod cmd_study;
mod cmd_train;
mod dataset_args;
mod error;
mod flags;
mod interrupt;
mod jobs;
mod out_dir;
mod report;
mod runtime;
mod slurm;
mod values;
mod verdict_text;

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;

use crate::args::{Cli, Command};

fn main() -> ExitCode {
    runtime::tune();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Help and version go to stdout (exit 0), and so does the help clap shows for a
        // bare `saddlescope` or `saddlescope data` (to stderr, exit 2).
        Err(err)
            if !err.use_stderr()
                || err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand =>
        {
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() { 2 } else { 0 });
        }
        Err(err) => {
            let argv: Vec<String> = std::env::args().collect();
            eprintln!("error: {}", error::clap_line(&err, &argv));
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(error::exit_code(&err))
        }
    }
}

/// Runs one parsed command line.
fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Data(args) => cmd_data::run(args),
        Command::Train(args) => cmd_train::run(args),
        Command::Analyze(args) => cmd_analyze::run(args),
        Command::Plot(args) => cmd_plot::run(args),
        Command::Compare(args) => cmd_compare::run(args),
        Command::Report(args) => cmd_report::run(args),
        Command::Demo(args) => cmd_demo::run(args),
        Command::Spectrum(args) => cmd_spectrum::run(args),
        Command::Bench(args) => cmd_bench::run(args),
        Command::Landscape(args) => cmd_landscape::run(args),
        Command::Merge(args) => cmd_merge::run(args),
        Command::Slurm(args) => cmd_slurm::run(args),
        Command::Study(args) => cmd_study::run(args),
    }
}
