//! `saddlescope demo`: the paper's experiment in miniature, on the embedded MNIST-LT (exp,
//! ratio 100): trains CE+DRW and the same recipe with SAM, analyzes both class by class and
//! writes the comparison report. It runs the tool's own commands (`train`, `analyze`,
//! `report`), so what it shows is what a user would get by hand; a re-run resumes.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use candle_core::Device;
use clap::{Args, Parser};
use saddlescope_nn::ModelSpec;
use saddlescope_train::load_checkpoint;

use crate::args::{Cli, Command};
use crate::report::{load_inputs, write_report, ReportOptions};
use crate::usage::usage;

/// Flags of `saddlescope demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Output directory [default: reports/demo, or reports/demo-quick with --quick]
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// A small version (fewer epochs, Lanczos steps and probes) that finishes in seconds:
    /// for smoke tests, not for conclusions
    #[arg(long)]
    quick: bool,
    /// No progress output
    #[arg(long)]
    quiet: bool,
    /// Architecture of both runs, as `train --model` [default: the presets' MLP 784-64-10].
    /// `cnn` shows SAM pulling the tail classes' λ_min towards 0, but its f64 class-wise
    /// analyses are slow on a CPU: 9 minutes with --quick on 2 cores, an estimated 45 in full
    #[arg(long, value_name = "SPEC")]
    model: Option<String>,
}

/// One arm of the experiment.
struct Arm {
    slug: &'static str,
    label: &'static str,
    preset: &'static str,
}

const ARMS: [Arm; 2] = [
    Arm {
        slug: "ce-drw",
        label: "CE+DRW",
        preset: "mnist-lt-ce-drw",
    },
    Arm {
        slug: "ce-drw-sam",
        label: "CE+DRW+SAM",
        preset: "mnist-lt-ce-drw-sam",
    },
];

/// Runs one `saddlescope` command line in this process.
fn invoke(args: &[String]) -> anyhow::Result<ExitCode> {
    let cli = Cli::try_parse_from(
        std::iter::once("saddlescope".to_string()).chain(args.iter().cloned()),
    )?;
    match cli.command {
        Command::Train(a) => crate::cmd_train::run(a),
        Command::Analyze(a) => crate::cmd_analyze::run(a),
        _ => anyhow::bail!("demo only runs train and analyze"),
    }
}

fn owned(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// Runs `saddlescope demo`.
pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let model = args
        .model
        .as_deref()
        .map(|spec| {
            spec.parse::<ModelSpec>()
                .map_err(|e| usage(format!("--model {spec:?}: {e}")))
        })
        .transpose()?;
    let out = args.out.clone().unwrap_or_else(|| {
        let mut name = "reports/demo".to_string();
        if let Some(m) = &model {
            name.push('-');
            name.extend(m.to_string().chars().filter(|c| c.is_ascii_alphanumeric()));
        }
        if args.quick {
            name.push_str("-quick");
        }
        PathBuf::from(name)
    });
    // Quick: 10 epochs, 30 Lanczos steps x 2 probes with a looser tolerance (seconds).
    // Full: the presets' 30 epochs and the analysis defaults (100 steps x 4 probes).
    let (epochs, steps, probes, tol, budget) = if args.quick {
        ("10", "30", "2", "1e-4", "120")
    } else {
        ("30", "100", "4", "1e-6", "500")
    };
    let say = |msg: String| {
        if !args.quiet {
            eprintln!("demo: {msg}");
        }
    };
    let mut dirs = Vec::new();
    let mut labels = Vec::new();
    for arm in &ARMS {
        let run_dir = out.join("runs").join(arm.slug);
        let analysis_dir = out.join("analysis").join(arm.slug);
        let mut train = if run_dir.join(saddlescope_train::RESUME_FILE).exists() {
            if let Some(m) = &model {
                check_resumed_model(&run_dir, m)?;
            }
            say(format!(
                "{}: resuming the run in {}",
                arm.label,
                run_dir.display()
            ));
            owned(&["train", "--resume", &path(&run_dir), "--epochs", epochs])
        } else {
            say(format!(
                "{}: training ({} preset, {epochs} epochs) into {}",
                arm.label,
                arm.preset,
                run_dir.display()
            ));
            let mut train = owned(&[
                "train",
                "--preset",
                arm.preset,
                "--epochs",
                epochs,
                "--out",
                &path(&run_dir),
            ]);
            if let Some(m) = &model {
                train.extend(["--model".to_string(), m.to_string()]);
            }
            train
        };
        if args.quiet {
            train.push("--quiet".into());
        }
        let code = invoke(&train)?;
        if code != ExitCode::SUCCESS {
            return Ok(code);
        }
        say(format!(
            "{}: class-wise Hessian analysis into {}",
            arm.label,
            analysis_dir.display()
        ));
        let checkpoint = run_dir.join("last.safetensors");
        let mut analyze = owned(&[
            "analyze",
            &path(&checkpoint),
            "--out",
            &path(&analysis_dir),
            "--lanczos-steps",
            steps,
            "--probes",
            probes,
            "--tol",
            tol,
            "--max-applications",
            budget,
            "--resume",
            "--landscape",
        ]);
        if args.quiet {
            analyze.push("--quiet".into());
        }
        let code = invoke(&analyze)?;
        if code != ExitCode::SUCCESS {
            return Ok(code);
        }
        dirs.extend([analysis_dir, run_dir]);
        labels.extend([arm.label.to_string(), arm.label.to_string()]);
    }
    let inputs = load_inputs(&dirs, &labels)?;
    let title = format!(
        "saddlescope demo: MNIST-LT (ratio 100), CE+DRW vs CE+DRW+SAM, {}",
        model
            .as_ref()
            .map_or("MLP 784-64-10".to_string(), |m| m.to_string())
    );
    let options = ReportOptions {
        title,
        xscale: saddlescope_plot::XScale::Symlog,
        command_line: crate::cmd_report::command_line(),
    };
    write_report(&inputs, &out, &options)?;
    say(format!(
        "report: {} ({:.0} s in all)",
        out.join("report.html").display(),
        started.elapsed().as_secs_f64()
    ));
    Ok(ExitCode::SUCCESS)
}

/// Errors if the run being resumed in `run_dir` has another architecture than `--model`
/// (its last checkpoint says which; a run without one has not finished an epoch and
/// resumes as it was started).
fn check_resumed_model(run_dir: &Path, model: &ModelSpec) -> anyhow::Result<()> {
    let last = run_dir.join("last.safetensors");
    if !last.exists() {
        return Ok(());
    }
    let found = load_checkpoint(&last, &Device::Cpu)
        .with_context(|| format!("reading {}", last.display()))?
        .meta
        .model;
    if &found != model {
        return Err(usage(format!(
            "--model {model}: {} holds a {found} run; choose another --out",
            run_dir.display()
        )));
    }
    Ok(())
}
