//! The `saddlescope` command-line tool: a thin shell that parses flags, validates them and
//! calls the library crates. `main` only maps the outcome of [`run`] to an exit code, so
//! that every command stays testable as a function.

mod args;
mod basis_arg;
mod checkpoint_args;
mod cmd_analyze;
mod cmd_bench;
mod cmd_compare;
mod cmd_data;
mod cmd_demo;
mod cmd_landscape;
mod cmd_plot;
mod cmd_report;
mod cmd_spectrum;
mod cmd_train;
mod dataset_args;
mod device;
mod interrupt;
mod npy;
mod report;
mod runtime;
mod usage;
mod verdict_text;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};
use crate::usage::UsageError;

fn main() -> ExitCode {
    runtime::tune();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // clap prints help/version to stdout with exit 0 and usage errors with exit 2.
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() { 2 } else { 0 });
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            if err.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
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
    }
}
