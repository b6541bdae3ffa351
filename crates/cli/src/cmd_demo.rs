//! `saddlescope demo`: the paper's experiment in miniature, on the embedded MNIST-LT (exp,
//! ratio 100): trains CE+DRW and the same recipe with SAM, analyzes both class by class and
//! writes the comparison report. It runs the jobs of the tool's own commands (`train`,
//! `analyze`, `report`) with the settings their flags would give, so what it shows is what
//! a user would get by hand; the same command again resumes, and a demo of other settings
//! (`--quick` or not, another `--model`) never continues another's runs.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use candle_core::Device;
use clap::Args;
use saddlescope_analysis::AnalyzeParams;
use saddlescope_nn::ModelSpec;
use saddlescope_spectral::{SlqParams, SpectrumParams};
use saddlescope_train::preset;
use serde_json::json;

use crate::checkpoint_args::CheckpointSource;
use crate::error::ResultExt;
use crate::jobs::analyze::{analyze, AnalyzeJob};
use crate::jobs::train::{set_epochs, train, TrainJob, TrainStart};
use crate::out_dir::{outputs, OutDir, Prior};
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
    /// Start over in --out when it holds a demo of other settings (a --quick one, another
    /// --model): its runs, analyses and report are removed first
    #[arg(long)]
    force: bool,
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
    let out = args.out.clone().unwrap_or_else(|| {
        let mut name = "reports/demo".to_string();
        if let Some(m) = &args.model {
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
    let recipes = ARMS
        .iter()
        .map(|arm| recipe(arm, budget.epochs, args.model.as_ref()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let model = recipes[0].model.clone();
    let say = |msg: String| {
        if !args.quiet {
            eprintln!("demo: {msg}");
        }
    };
    // A quick and a full demo (or two architectures) never share runs: the same settings
    // resume, other ones need --force (which starts over).
    let mut out_dir = OutDir::lock(&out, args.force, args.quiet)?;
    let settings = json!({ "quick": args.quick, "model": model.to_string() });
    if out_dir.claim(&outputs::DEMO, &settings, args.force)? == Prior::Same {
        say(format!("continuing the demo in {}", out.display()));
    }
    let mut dirs = Vec::new();
    let mut labels = Vec::new();
    for (arm, config) in ARMS.iter().zip(recipes) {
        let run_dir = out.join("runs").join(arm.slug);
        let analysis_dir = out.join("analysis").join(arm.slug);
        say(format!(
            "{}: training ({} preset, {} epochs) into {}",
            arm.label,
            arm.preset,
            budget.epochs,
            run_dir.display()
        ));
        let code = train(&TrainJob {
            start: TrainStart::Fresh {
                config: Box::new(config),
                out: run_dir.clone(),
            },
            device: Device::Cpu,
            quiet: args.quiet,
            force: false,
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
            landscape: true,
            quiet: args.quiet,
            label: Some(format!("{} ({})", arm.label, analysis_dir.display())),
            force: false,
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
        if args.model.is_some() {
            model.to_string()
        } else {
            "MLP 784-64-10".to_string()
        }
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
