//! `saddlescope demo`: the paper's experiment in miniature, on the embedded MNIST-LT (exp,
//! ratio 100): trains CE+DRW and the same recipe with SAM, analyzes both class by class and
//! writes the comparison report. It runs the jobs of the tool's own commands (`train`,
//! `analyze`, `report`) with the settings their flags would give, so what it shows is what
//! a user would get by hand; a re-run resumes.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use candle_core::Device;
use clap::Args;
use saddlescope_analysis::AnalyzeParams;
use saddlescope_nn::ModelSpec;
use saddlescope_spectral::{SlqParams, SpectrumParams};
use saddlescope_train::{load_checkpoint, preset};

use crate::checkpoint_args::CheckpointSource;
use crate::error::{usage, ResultExt};
use crate::jobs::analyze::{analyze, AnalyzeJob};
use crate::jobs::train::{set_epochs, train, TrainJob, TrainStart};
use crate::report::{command_line, load_inputs, write_report, ReportOptions};

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
    model: Option<ModelSpec>,
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

/// How much work: the epochs of both runs and the analysis's solver settings.
struct Budget {
    epochs: usize,
    lanczos_steps: usize,
    probes: usize,
    tol: f64,
    max_applications: usize,
}

impl Budget {
    /// The analysis settings `analyze` would use with this budget's flags.
    fn analysis(&self) -> AnalyzeParams {
        AnalyzeParams {
            spectrum: SpectrumParams {
                slq: SlqParams {
                    steps: self.lanczos_steps,
                    probes: self.probes,
                    ..SlqParams::default()
                },
                tol: self.tol,
                max_applications: self.max_applications,
                ..SpectrumParams::default()
            },
            ..AnalyzeParams::default()
        }
    }
}

/// Runs `saddlescope demo`.
pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let model = args.model.clone();
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
    let budget = if args.quick {
        Budget {
            epochs: 10,
            lanczos_steps: 30,
            probes: 2,
            tol: 1e-4,
            max_applications: 120,
        }
    } else {
        Budget {
            epochs: 30,
            lanczos_steps: 100,
            probes: 4,
            tol: 1e-6,
            max_applications: 500,
        }
    };
    let params = budget.analysis();
    params.validate().cli()?;
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
        let start = if run_dir.join(saddlescope_train::RESUME_FILE).exists() {
            if let Some(m) = &model {
                check_resumed_model(&run_dir, m)?;
            }
            say(format!(
                "{}: resuming the run in {}",
                arm.label,
                run_dir.display()
            ));
            TrainStart::Resume {
                dir: run_dir.clone(),
                epochs: Some(budget.epochs),
            }
        } else {
            say(format!(
                "{}: training ({} preset, {} epochs) into {}",
                arm.label,
                arm.preset,
                budget.epochs,
                run_dir.display()
            ));
            TrainStart::Fresh {
                config: Box::new(recipe(arm, budget.epochs, model.as_ref())?),
                out: run_dir.clone(),
            }
        };
        let code = train(&TrainJob {
            start,
            device: Device::Cpu,
            quiet: args.quiet,
        })?;
        if code != ExitCode::SUCCESS {
            return Ok(code);
        }
        say(format!(
            "{}: class-wise Hessian analysis into {}",
            arm.label,
            analysis_dir.display()
        ));
        let code = analyze(&AnalyzeJob {
            source: CheckpointSource::ours(run_dir.join("last.safetensors")),
            params: params.clone(),
            out: analysis_dir.clone(),
            resume: true,
            landscape: true,
            quiet: args.quiet,
        })?;
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
        command_line: command_line(),
    };
    write_report(&inputs, &out, &options)?;
    say(format!(
        "report: {} ({:.0} s in all)",
        out.join("report.html").display(),
        started.elapsed().as_secs_f64()
    ));
    Ok(ExitCode::SUCCESS)
}

/// The arm's preset with `epochs` epochs (its DRW start moved with them) and, when given,
/// another architecture: what `train --preset P --epochs N [--model M]` runs.
fn recipe(
    arm: &Arm,
    epochs: usize,
    model: Option<&ModelSpec>,
) -> anyhow::Result<saddlescope_train::TrainConfig> {
    let mut config = preset(arm.preset)
        .with_context(|| format!("the demo's preset {} is missing", arm.preset))?;
    set_epochs(&mut config, epochs);
    if let Some(m) = model {
        config.model = m.clone();
    }
    config.validate().cli()?;
    Ok(config)
}

/// Errors if the run being resumed in `run_dir` has another architecture than `--model`
/// (its last checkpoint says which; a run without one has not finished an epoch and
/// resumes as it was started).
fn check_resumed_model(run_dir: &Path, model: &ModelSpec) -> anyhow::Result<()> {
    let last = run_dir.join("last.safetensors");
    if !last.exists() {
        return Ok(());
    }
    let found = load_checkpoint(&last, &Device::Cpu).cli()?.meta.model;
    if &found != model {
        return Err(usage(format!(
            "--model {model}: {} holds a {found} run; choose another --out",
            run_dir.display()
        )));
    }
    Ok(())
}
