//! `saddlescope bench analysis`: wall time, HVP count and peak memory of a class-wise
//! analysis of a checkpoint, the fastest of several rounds, each in a fresh child process
//! (so that its peak resident set is its own). `bench/pytorch_reference.py --mode analysis`
//! times PyHessian on the same job and prints the ratio.

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use saddlescope_analysis::{analyze, AnalysisOutcome, AnalyzeParams, HvpSettings, Quiet};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{loadavg, measured_rounds, peak_rss_mb, value_name};
use crate::checkpoint_args::{CheckpointArgs, SolverArgs};
use crate::error::{usage, ResultExt};
use crate::values::{EngineArg, FloatArg};

/// Flags of `saddlescope bench analysis`.
#[derive(Debug, Args)]
#[command(
    after_help = "Runs `analyze` with these settings --rounds times, each in a fresh \
process, and prints one JSON object on its last line: checkpoint, dtype, engine, probes, \
lanczos_steps, hessians, applications (HVPs per round), wall_s (fastest round), rounds_s (all), \
in_operator_s and ms_per_hvp (of the fastest round), peak_rss_mb (largest), threads, \
loadavg_before, loadavg_after. The issue's setup: `bench analysis CNN.pth --arch cnn \
--dataset mnist10k --split test --lanczos-steps 100 --probes 1`."
)]
pub struct AnalysisBenchArgs {
    #[command(flatten)]
    solver: SolverArgs,
    /// SLQ probe vectors per Hessian
    #[arg(long, value_name = "K", default_value_t = 1)]
    probes: usize,
    /// Number of top eigenvalues reported
    #[arg(long, value_name = "K", default_value_t = 5)]
    top_k: usize,
    /// Restrict to these classes, e.g. 0,7 [default: all]
    #[arg(long, value_name = "C,...", value_delimiter = ',')]
    class_ids: Option<Vec<usize>>,
    /// Also the all-classes Hessian (analyze without --no-all)
    #[arg(long)]
    all: bool,
    /// Element type of the HVPs
    #[arg(long, value_enum, default_value_t = FloatArg::F32)]
    dtype: FloatArg,
    /// HVP engine: linearized (the pass recorded once per Hessian) or plain
    #[arg(long, value_enum, default_value_t = EngineArg::Linearized)]
    engine: EngineArg,
    /// Samples per HVP batch
    #[arg(long, value_name = "N", default_value_t = 256)]
    batch_size: usize,
    /// Rounds (each a fresh process); the fastest is reported
    #[arg(long, value_name = "R", default_value_t = 3)]
    rounds: usize,
    /// Print only the JSON object
    #[arg(long)]
    json: bool,
    /// Internal: run one round in this process and print it
    #[arg(long, hide = true)]
    measure: bool,
    // Last: its foreign-checkpoint help heading covers the flags after it.
    #[command(flatten)]
    source: CheckpointArgs,
}

/// One round, as a child process prints it.
#[derive(Debug, Serialize, Deserialize)]
struct Round {
    wall_s: f64,
    in_operator_s: f64,
    applications: usize,
    hessians: usize,
    peak_rss_mb: Option<f64>,
}

/// Runs `saddlescope bench analysis`.
pub fn run(args: AnalysisBenchArgs) -> anyhow::Result<ExitCode> {
    if args.rounds == 0 {
        return Err(usage("--rounds 0: need at least 1"));
    }
    if args.measure {
        println!("{}", serde_json::to_string(&round(&args)?)?);
        return Ok(ExitCode::SUCCESS);
    }
    let loadavg_before = loadavg();
    let rounds: Vec<Round> = measured_rounds(args.rounds, "an analysis round")?;
    let fastest = rounds
        .iter()
        .min_by(|a, b| a.wall_s.total_cmp(&b.wall_s))
        .context("no round")?;
    let report = json!({
        "bench": "analysis",
        "checkpoint": args.source.checkpoint.display().to_string(),
        "dtype": args.dtype.as_str(),
        "engine": value_name(args.engine),
        "probes": args.probes,
        "lanczos_steps": args.solver.lanczos_steps,
        "hessians": fastest.hessians,
        "applications": fastest.applications,
        "wall_s": fastest.wall_s,
        "rounds_s": rounds.iter().map(|r| r.wall_s).collect::<Vec<_>>(),
        "in_operator_s": fastest.in_operator_s,
        "ms_per_hvp": fastest.in_operator_s * 1e3 / fastest.applications.max(1) as f64,
        "peak_rss_mb": rounds.iter().filter_map(|r| r.peak_rss_mb).fold(None, |m: Option<f64>, p| Some(m.map_or(p, |m| m.max(p)))),
        "threads": rayon::current_num_threads(),
        "loadavg_before": loadavg_before,
        "loadavg_after": loadavg(),
    });
    if !args.json {
        println!(
            "analysis of {} ({} Hessians, {} HVPs, {} {}): fastest of {} rounds {:.2} s ({:.1} ms per HVP)",
            args.source.checkpoint.display(),
            fastest.hessians,
            fastest.applications,
            args.dtype.as_str(),
            value_name(args.engine),
            rounds.len(),
            fastest.wall_s,
            fastest.in_operator_s * 1e3 / fastest.applications.max(1) as f64,
        );
    }
    println!("{report}");
    Ok(ExitCode::SUCCESS)
}

/// One analysis in this process, into a scratch directory that is removed afterwards.
fn round(args: &AnalysisBenchArgs) -> anyhow::Result<Round> {
    let mut spectrum = args.solver.spectrum();
    spectrum.slq.probes = args.probes;
    spectrum.top_k = args.top_k;
    let loaded = args.source.validate()?.load()?;
    let subject = loaded.subject();
    let params = AnalyzeParams {
        spectrum,
        samples_per_class: args.source.samples_per_class,
        class_ids: args.class_ids.clone(),
        include_all: args.all,
        batch_size: args.batch_size,
        dtype: args.dtype.dtype(),
        hvp: HvpSettings {
            engine: args.engine.into(),
            memory_budget: None,
        },
        ..AnalyzeParams::default()
    };
    let out = std::env::temp_dir().join(format!("saddlescope-bench-{}", std::process::id()));
    let never = AtomicBool::new(false);
    let start = Instant::now();
    let outcome = analyze(&subject, &params, &out, false, &Quiet, &never);
    let wall_s = start.elapsed().as_secs_f64();
    // The outputs are scratch; failing to remove them does not affect the measurement.
    let _ = std::fs::remove_dir_all(&out);
    let AnalysisOutcome::Finished(report) = outcome.cli()? else {
        bail!("the analysis was interrupted");
    };
    let hessians: Vec<_> = report.classes.iter().chain(&report.all).collect();
    Ok(Round {
        wall_s,
        in_operator_s: hessians
            .iter()
            .map(|h| h.estimate.timing.in_operator.as_secs_f64())
            .sum(),
        applications: hessians.iter().map(|h| h.estimate.applications).sum(),
        hessians: hessians.len(),
        peak_rss_mb: peak_rss_mb(),
    })
}
