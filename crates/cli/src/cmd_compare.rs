//! `saddlescope compare`: two analyses (e.g. CE+DRW against CE+DRW+SAM) class by class.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use saddlescope_results::write_atomically;
use serde_json::json;

use crate::error::usage;
use crate::out_dir::{input_id, outputs, OutDir};
use crate::report::{command_line, load_inputs, write_report, ReportOptions};
use crate::values::XScaleArg;

/// Flags of `saddlescope compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// First analysis directory
    #[arg(value_name = "A_DIR")]
    a: PathBuf,
    /// Second analysis directory
    #[arg(value_name = "B_DIR")]
    b: PathBuf,
    /// Output directory (deltas.csv, report.md, report.html, figures/)
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Labels of A and B [default: directory names]
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    labels: Vec<String>,
    /// Eigenvalue axis of the density figures: linear or symlog (linear near 0,
    /// logarithmic beyond)
    #[arg(long, value_enum, default_value_t = XScaleArg::Symlog)]
    xscale: XScaleArg,
    /// No deltas table on stdout and no status line
    #[arg(long)]
    quiet: bool,
    /// Replace a comparison of other analyses in --out, and take over a lock another host
    /// left on it
    #[arg(long)]
    force: bool,
}

/// Runs `saddlescope compare`.
pub fn run(args: CompareArgs) -> anyhow::Result<ExitCode> {
    if !args.labels.is_empty() && args.labels.len() != 2 {
        return Err(usage(format!(
            "--labels: expected two labels, got {}",
            args.labels.len()
        )));
    }
    for (name, dir) in [("A_DIR", &args.a), ("B_DIR", &args.b)] {
        check_analysis_dir(name, dir)?;
    }
    let inputs = load_inputs(&[args.a.clone(), args.b.clone()], &args.labels)?;
    let [a, b] = inputs.analyses.as_slice() else {
        anyhow::bail!(
            "{} and {} must both be analysis directories (with spectrum.json)",
            args.a.display(),
            args.b.display()
        );
    };
    let mut out = OutDir::lock(&args.out, args.force, args.quiet)?;
    let settings = json!({ "a": input_id(&args.a), "b": input_id(&args.b) });
    out.claim(&outputs::COMPARE, &settings, args.force)?;
    let mut csv = String::from("class,name,group,lambda_min_a,lambda_min_b,delta_lambda_min,lambda_max_a,lambda_max_b,trace_a,trace_b,verdict_a,verdict_b\n");
    for ca in &a.value.classes {
        let Some(cb) = b.value.classes.iter().find(|c| c.class == ca.class) else {
            continue;
        };
        let (ea, eb) = (&ca.estimate, &cb.estimate);
        csv.push_str(&format!(
            "{},{},{},{:e},{:e},{:e},{:e},{:e},{:e},{:e},{},{}\n",
            ca.class.map_or("all".into(), |c| c.to_string()),
            ca.name.replace(',', ";"),
            ca.group.map_or(String::new(), |g| g.to_string()),
            ea.lambda_min,
            eb.lambda_min,
            eb.lambda_min - ea.lambda_min,
            ea.lambda_max,
            eb.lambda_max,
            ea.trace,
            eb.trace,
            ca.verdict,
            cb.verdict
        ));
    }
    std::fs::create_dir_all(&args.out).with_context(|| args.out.display().to_string())?;
    let deltas = args.out.join("deltas.csv");
    write_atomically(&deltas, &csv).with_context(|| deltas.display().to_string())?;
    if !args.quiet {
        print!("{csv}");
    }
    let title = format!("{} vs {}", a.label, b.label);
    write_report(
        &inputs,
        &args.out,
        &ReportOptions {
            title,
            xscale: args.xscale.into(),
            command_line: command_line(),
        },
    )?;
    if !args.quiet {
        eprintln!(
            "wrote {} and {}",
            deltas.display(),
            args.out.join("report.html").display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Fails unless `dir` is an analysis directory: compare takes analyses only.
fn check_analysis_dir(name: &str, dir: &Path) -> anyhow::Result<()> {
    if !dir.is_dir() {
        return Err(usage(format!(
            "{name} {}: no such directory",
            dir.display()
        )));
    }
    if !dir.join("spectrum.json").is_file() {
        return Err(usage(format!(
            "{name} {}: not an analysis (no spectrum.json); compare takes two `saddlescope analyze --out` directories",
            dir.display()
        )));
    }
    Ok(())
}
