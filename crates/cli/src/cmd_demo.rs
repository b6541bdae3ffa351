//! `saddlescope demo`: the paper's experiment in miniature, on the embedded MNIST-LT (exp,
//! ratio 100): a small study ([`crate::jobs::study`]) of CE+DRW against the same recipe
//! with SAM, on the conv net with batch norm by default, one seed unless `--seeds` asks for
//! more. Its report opens with the study's conclusions on the paper's two claims, then shows
//! the first seed's runs and analyses in full. It runs the jobs of the tool's own commands
//! with the settings their flags would give, so what it shows is what `saddlescope study`
//! would; the same command again resumes, and a demo of other settings (`--quick` or not,
//! another `--model` or `--seeds`) never continues another's cells.

use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;

use candle_core::Device;
use clap::Args;
use saddlescope_nn::ModelSpec;
use saddlescope_results::StudyDesign;
use serde_json::json;

use crate::cmd_study::{analysis_params, arm_recipes, default_arms, SeedList};
use crate::jobs::study::{study, StudyJob, StudyKind};

/// Flags of `saddlescope demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Output directory [default: reports/demo, or reports/demo-quick with --quick]
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// A small version (fewer epochs, samples and Lanczos steps) that finishes in under a
    /// minute: for smoke tests, not for conclusions
    #[arg(long)]
    quick: bool,
    /// No progress output
    #[arg(long)]
    quiet: bool,
    /// Architecture of both arms: cnn (the conv net with batch norm, as the paper's
    /// networks), mlp (the presets' MLP 784-64-10), or any `train --model` spec
    #[arg(long, value_name = "SPEC", default_value = "cnn")]
    model: DemoModel,
    /// Seeds: one by default (no interval, so no claim can be settled); 0-4 for the paper's
    /// five
    #[arg(long, value_name = "LIST", default_value = "0")]
    seeds: SeedList,
    /// Start over in --out when it holds a demo of other settings (a --quick one, another
    /// --model or --seeds): its cells and report are removed first
    #[arg(long)]
    force: bool,
}

/// `demo --model`: `mlp` means the presets' MLP (not a linear model, as `train --model mlp`).
#[derive(Debug, Clone)]
struct DemoModel(ModelSpec);

impl FromStr for DemoModel {
    type Err = saddlescope_nn::Error;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == "mlp" {
            return Ok(Self(
                saddlescope_train::preset("mnist-lt-ce-drw")
                    .map_or_else(|| "mlp:64".parse(), |c| Ok(c.model))?,
            ));
        }
        text.parse().map(Self)
    }
}

/// How much work: the epochs of every run and the analysis's flags.
struct Budget {
    epochs: usize,
    analyze_args: &'static str,
}

/// Quick: 4 epochs; 64 samples per class, 30 Lanczos steps x 2 probes in f32, no
/// all-classes Hessian, a loose tolerance (under a minute on 2 cores).
const QUICK: Budget = Budget {
    epochs: 4,
    analyze_args: "--dtype f32 --samples-per-class 64 --lanczos-steps 30 --probes 2 --tol 1e-3 --max-applications 90 --no-all",
};

/// Full: 12 epochs; 128 samples per class, 60 Lanczos steps x 2 probes in f32, with the
/// all-classes Hessian (under 5 minutes on 2 cores).
const FULL: Budget = Budget {
    epochs: 12,
    analyze_args: "--dtype f32 --samples-per-class 128 --lanczos-steps 60 --probes 2 --tol 1e-4 --max-applications 200",
};

/// Runs `saddlescope demo`.
pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let budget = if args.quick { QUICK } else { FULL };
    let model = args.model.0.clone();
    let (arms, recipes) = arm_recipes(&default_arms(), &model, Some(budget.epochs))?;
    let analysis = analysis_params(budget.analyze_args)?;
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from(if args.quick {
            "reports/demo-quick"
        } else {
            "reports/demo"
        })
    });
    let seeds = args.seeds.0.clone();
    let title = format!(
        "saddlescope demo: MNIST-LT (ratio 100), CE+DRW vs CE+DRW+SAM, {model}, {} {}",
        if seeds.len() == 1 { "seed" } else { "seeds" },
        seeds
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    study(&StudyJob {
        design: StudyDesign { arms, seeds },
        recipes,
        analysis,
        out,
        shard: None,
        device: Device::Cpu,
        quiet: args.quiet,
        force: args.force,
        kind: StudyKind::Demo {
            title,
            settings: json!({ "quick": args.quick }),
        },
    })
}
