//! `saddlescope bench`: wall time, CPU time and peak memory of a forward pass, a gradient
//! and an exact Hessian-vector product on a standard model, as one JSON object (the keys of
//! `bench/pytorch_reference.py`, so `just bench-vs-torch` can print ratios); `bench slq`:
//! the share of a class-wise spectrum estimate spent outside the HVPs; `bench analysis`: a
//! whole class-wise analysis of a checkpoint; `bench train`: training epochs or one step.
//!
//! Every measurement runs in a fresh child process (this executable, re-run with a hidden
//! `--measure` flag), so that its peak resident set (`VmHWM`) is its own and the three peaks
//! do not mask each other. Times are the median over `--repeats` after one warm-up.

mod analysis;
mod setup;
mod slq;
mod train;

use std::ffi::{OsStr, OsString};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use saddlescope_nn::{
    set_cpu_ops, BnMode, CpuOps, HessianOperator, HvpEngine, LossSpec, ParamSelection,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::usage;
use crate::values::{DeviceArg, EngineArg, FloatArg};
use setup::{random_batch, BenchModel};

/// Flags of `saddlescope bench`.
#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Prints a short table, then one JSON object on the last line (only the JSON \
with --json). Keys: model, batch, dtype, device, params, threads, ops, engine, forward_ms, grad_ms, \
hvp_ms (medians; hvp_ms is one sweep of --directions products), *_min_ms, *_cpu_ms \
(user+system CPU per repetition), forward_peak_rss_mb, grad_peak_rss_mb, hvp_peak_rss_mb, \
directions, hvp_ms_per_direction, hvp_over_grad, linearize_ms and linearized_mb (the one-off \
recording of a linearized HVP and what it keeps; null for --engine plain), \
hvp_over_grad_peak_rss, loadavg_before, loadavg_after. Compare with `python3 bench/pytorch_reference.py` (same keys) or run \
`just bench-vs-torch`."
)]
pub struct BenchArgs {
    #[command(subcommand)]
    command: Option<BenchCommand>,
    #[command(flatten)]
    hvp: HvpBenchArgs,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Share of a class-wise spectrum estimate spent outside the HVPs (SLQ bookkeeping)
    Slq(slq::SlqBenchArgs),
    /// Wall time, HVPs and peak memory of a whole class-wise analysis of a checkpoint
    Analysis(Box<analysis::AnalysisBenchArgs>),
    /// Training cost: whole epochs of a preset, or one SGD step (train-mode BN)
    Train(train::TrainBenchArgs),
}

/// Flags of the forward/gradient/HVP benchmark.
#[derive(Debug, Args)]
struct HvpBenchArgs {
    /// Model: mlp (784-256-10), cnn (MNIST CNN) or resnet32 (CIFAR ResNet-32)
    #[arg(long, value_enum, default_value_t = BenchModel::Mlp)]
    model: BenchModel,
    /// Samples per batch [default: 512 mlp, 128 cnn, 32 resnet32]
    #[arg(long, value_name = "N")]
    batch: Option<usize>,
    /// Element type
    #[arg(long, value_enum, default_value_t = FloatArg::F32)]
    dtype: FloatArg,
    /// Where tensors live (cuda needs a build with --features cuda; times then include the
    /// copies of the gradient and the HVP back to the host)
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    device: DeviceArg,
    /// Timed repetitions of each measurement (after one warm-up)
    #[arg(long, value_name = "R", default_value_t = 5)]
    repeats: usize,
    /// Print only the JSON object
    #[arg(long)]
    json: bool,
    /// CPU convolutions and matrix products: saddlescope (its GEMM custom ops) or candle
    /// (candle's own, for before/after comparisons)
    #[arg(long, value_enum, default_value_t = OpsArg::Saddlescope)]
    ops: OpsArg,
    /// HVP engine: linearized (the pass recorded once, tangent passes per product; the
    /// one-off recording is reported as linearize_ms) or plain (reverse-over-forward from
    /// scratch every product)
    #[arg(long, value_enum, default_value_t = EngineArg::Linearized)]
    engine: EngineArg,
    /// Directions per HVP sweep: hvp_ms then times one block of K products
    /// (`HessianOperator::hvp_block_flat`), reported per direction as hvp_ms_per_direction
    #[arg(long, value_name = "K", default_value_t = 1)]
    directions: usize,
    /// Internal: run one measurement in this process and print it
    #[arg(long, hide = true, value_enum)]
    measure: Option<Kind>,
}

/// `--ops`: whose CPU convolutions and matrix products.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OpsArg {
    /// saddlescope's GEMM custom ops.
    Saddlescope,
    /// candle's own.
    Candle,
}

impl OpsArg {
    fn cpu_ops(self) -> CpuOps {
        match self {
            OpsArg::Saddlescope => CpuOps::Saddlescope,
            OpsArg::Candle => CpuOps::Candle,
        }
    }
}

/// What one measurement times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Kind {
    /// The loss.
    Forward,
    /// Loss and gradient.
    Grad,
    /// One H·v (or one block of `--directions` of them), all parameters, after the
    /// one-off linearization, which is timed apart.
    Hvp,
}

/// The name of a flag value, as the flag takes it (and the JSON reports it).
fn value_name(value: impl ValueEnum) -> String {
    value
        .to_possible_value()
        .map_or_else(String::new, |v| v.get_name().to_string())
}

/// One measurement, as a child process prints it.
#[derive(Debug, Serialize, Deserialize)]
struct Sample {
    median_ms: f64,
    min_ms: f64,
    cpu_ms: Option<f64>,
    peak_rss_mb: Option<f64>,
    params: usize,
    /// Time to linearize before the first product (linearized HVPs only).
    linearize_ms: Option<f64>,
    /// Bytes the linearization keeps, in MB (linearized HVPs only).
    linearized_mb: Option<f64>,
}

const KINDS: [Kind; 3] = [Kind::Forward, Kind::Grad, Kind::Hvp];

/// Runs `saddlescope bench`.
pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        Some(BenchCommand::Slq(slq)) => slq::run(slq),
        Some(BenchCommand::Analysis(analysis)) => analysis::run(*analysis),
        Some(BenchCommand::Train(train)) => train::run(train),
        None => run_hvp(args.hvp),
    }
}

fn run_hvp(args: HvpBenchArgs) -> anyhow::Result<ExitCode> {
    let model = args.model;
    let dtype = args.dtype.dtype();
    let batch = args.batch.unwrap_or(model.default_batch());
    if batch == 0 {
        return Err(usage("--batch 0: need at least 1 sample"));
    }
    if args.repeats == 0 {
        return Err(usage("--repeats 0: need at least 1"));
    }
    if args.directions == 0 {
        return Err(usage("--directions 0: need at least 1"));
    }
    let device = args.device.open()?;
    if let Some(kind) = args.measure {
        set_cpu_ops(args.ops.cpu_ops());
        let sample = measure(
            model,
            (batch, dtype, &device),
            (args.repeats, args.directions),
            kind,
            args.engine.into(),
        )?;
        println!("{}", serde_json::to_string(&sample)?);
        return Ok(ExitCode::SUCCESS);
    }
    let loadavg_before = loadavg();
    let mut samples = Vec::new();
    for kind in KINDS {
        samples.push(spawn_child(&args, batch, kind)?);
    }
    let [fwd, grad, hvp] = &samples[..] else {
        bail!("expected three measurements")
    };
    let report = json!({
        "model": model.name(),
        "batch": batch,
        "dtype": args.dtype.as_str(),
        "device": value_name(args.device),
        "params": hvp.params,
        "threads": rayon::current_num_threads(),
        "ops": value_name(args.ops),
        "engine": value_name(args.engine),
        "repeats": args.repeats,
        "forward_ms": fwd.median_ms,
        "grad_ms": grad.median_ms,
        "hvp_ms": hvp.median_ms,
        "forward_min_ms": fwd.min_ms,
        "grad_min_ms": grad.min_ms,
        "hvp_min_ms": hvp.min_ms,
        "forward_cpu_ms": fwd.cpu_ms,
        "grad_cpu_ms": grad.cpu_ms,
        "hvp_cpu_ms": hvp.cpu_ms,
        "forward_peak_rss_mb": fwd.peak_rss_mb,
        "grad_peak_rss_mb": grad.peak_rss_mb,
        "hvp_peak_rss_mb": hvp.peak_rss_mb,
        "directions": args.directions,
        "hvp_ms_per_direction": hvp.median_ms / args.directions as f64,
        "hvp_over_grad": hvp.median_ms / grad.median_ms,
        "linearize_ms": hvp.linearize_ms,
        "linearized_mb": hvp.linearized_mb,
        "hvp_over_grad_peak_rss": hvp.peak_rss_mb.zip(grad.peak_rss_mb).map(|(h, g)| h / g),
        "loadavg_before": loadavg_before,
        "loadavg_after": loadavg(),
    });
    if !args.json {
        println!(
            "{} batch {batch} {} on {}, {} parameters, {} threads, ops {}, engine {}",
            model.name(),
            args.dtype.as_str(),
            value_name(args.device),
            hvp.params,
            rayon::current_num_threads(),
            value_name(args.ops),
            value_name(args.engine)
        );
        for (kind, s) in KINDS.iter().zip(&samples) {
            println!(
                "{:<8} {:>10.2} ms (min {:.2}, cpu {}) peak RSS {}",
                value_name(*kind),
                s.median_ms,
                s.min_ms,
                s.cpu_ms.map_or("n/a".into(), |c| format!("{c:.1} ms")),
                s.peak_rss_mb.map_or("n/a".into(), |m| format!("{m:.1} MB")),
            );
        }
        println!("hvp/grad {:.2}", hvp.median_ms / grad.median_ms);
        if let (Some(ms), Some(mb)) = (hvp.linearize_ms, hvp.linearized_mb) {
            println!("linearize {ms:.2} ms once per Hessian, keeps {mb:.1} MB");
        }
    }
    println!("{report}");
    Ok(ExitCode::SUCCESS)
}

/// Re-runs this executable for one measurement and reads its JSON line.
fn spawn_child(args: &HvpBenchArgs, batch: usize, kind: Kind) -> anyhow::Result<Sample> {
    let kind = value_name(kind);
    let flags = [
        "bench".to_string(),
        "--model".into(),
        args.model.name().into(),
        "--dtype".into(),
        args.dtype.as_str().into(),
        "--device".into(),
        value_name(args.device),
        "--batch".into(),
        batch.to_string(),
        "--repeats".into(),
        args.repeats.to_string(),
        "--ops".into(),
        value_name(args.ops),
        "--engine".into(),
        value_name(args.engine),
        "--directions".into(),
        args.directions.to_string(),
        "--measure".into(),
        kind.clone(),
    ];
    run_child(flags, &format!("the {kind} measurement"))
}

/// Runs this executable with `args` and reads the JSON object its last output line holds
/// (`what` names the run in errors).
pub(crate) fn run_child<R: DeserializeOwned>(
    args: impl IntoIterator<Item = impl AsRef<OsStr>>,
    what: &str,
) -> anyhow::Result<R> {
    let exe = std::env::current_exe().context("cannot find this executable to re-run it")?;
    let out = Command::new(&exe)
        .args(args)
        .output()
        .with_context(|| format!("running {}", exe.display()))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).with_context(|| format!("{what} printed {line:?}"))
}

/// `count` runs of this executable with its own arguments plus `--measure` (one round each
/// of a `bench` mode with rounds), their JSON lines read.
pub(crate) fn measured_rounds<R: DeserializeOwned>(
    count: usize,
    what: &str,
) -> anyhow::Result<Vec<R>> {
    let args: Vec<OsString> = std::env::args_os()
        .skip(1)
        .chain([OsString::from("--measure")])
        .collect();
    (0..count).map(|_| run_child(&args, what)).collect()
}

/// Times `kind` in this process.
fn measure(
    model: BenchModel,
    (batch, dtype, device): (usize, candle_core::DType, &candle_core::Device),
    (repeats, directions): (usize, usize),
    kind: Kind,
    engine: HvpEngine,
) -> anyhow::Result<Sample> {
    let data = random_batch(model, batch, dtype, device)?;
    let net = model.build(dtype, data.x())?;
    let loss = LossSpec::Ce.build(&[1; 10], None)?;
    let op = HessianOperator::new(
        &net,
        vec![data],
        loss,
        ParamSelection::all(&net),
        BnMode::Eval,
    )?
    .with_engine(engine);
    let (linearize_ms, linearized_mb) = if kind == Kind::Hvp && engine == HvpEngine::Linearized {
        let start = Instant::now();
        let info = op.linearization()?;
        let ms = start.elapsed().as_secs_f64() * 1e3;
        (Some(ms), Some(info.bytes as f64 / 1e6))
    } else {
        (None, None)
    };
    let vs: Vec<Vec<f64>> = (0..directions)
        .map(|j| {
            (0..op.dim())
                .map(|i| ((i * 7919 + j * 104_729) % 1000) as f64 / 1000.0 - 0.5)
                .collect()
        })
        .collect();
    let vs: Vec<&[f64]> = vs.iter().map(Vec::as_slice).collect();
    let mut outs = vec![vec![0.0; op.dim()]; directions];
    let mut once = || -> anyhow::Result<f64> {
        let start = Instant::now();
        match kind {
            Kind::Forward => drop(op.loss()?),
            Kind::Grad => drop(op.loss_and_grad_flat()?),
            Kind::Hvp => {
                let mut refs: Vec<&mut [f64]> = outs.iter_mut().map(Vec::as_mut_slice).collect();
                op.hvp_block_flat(&vs, &mut refs)?
            }
        }
        Ok(start.elapsed().as_secs_f64() * 1e3)
    };
    once()?;
    let cpu_before = cpu_ms();
    let mut times = (0..repeats)
        .map(|_| once())
        .collect::<anyhow::Result<Vec<f64>>>()?;
    let cpu_ms = cpu_ms()
        .zip(cpu_before)
        .map(|(after, before)| (after - before) / repeats as f64);
    times.sort_by(f64::total_cmp);
    let mid = times.len() / 2;
    let median_ms = if times.len() % 2 == 1 {
        times[mid]
    } else {
        (times[mid - 1] + times[mid]) / 2.0
    };
    Ok(Sample {
        median_ms,
        min_ms: times[0],
        cpu_ms,
        peak_rss_mb: peak_rss_mb(),
        params: net.param_count(),
        linearize_ms,
        linearized_mb,
    })
}

/// Peak resident set of this process (`VmHWM`), Linux only.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// User + system CPU time of this process in ms (`/proc/self/stat`, 100 ticks per second),
/// Linux only.
fn cpu_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    Some((ticks(11)? + ticks(12)?) * 10.0)
}

/// The 1-minute load average (`/proc/loadavg`), Linux only: the machine may be shared.
fn loadavg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
