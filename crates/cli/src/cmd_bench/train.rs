//! `saddlescope bench train`: the cost of training, as one JSON object with the keys of
//! `bench/pytorch_train_reference.py` (which runs the same recipe in PyTorch and prints the
//! ratios).
//!
//! - `--kind epoch` (default): whole epochs of a preset (default `mnist-lt-ce-drw-sam`, the
//!   CNN, SAM ρ 0.2, batch 64, SGD with momentum, DRW, test evaluation after every epoch)
//!   run by the trainer itself in a temporary run directory; an epoch's time is the
//!   trainer's own (`seconds` of the log: training and evaluation, not the checkpoints).
//! - `--kind step`: one training step on a seeded random batch (default ResNet-32,
//!   batch 128): forward pass with train-mode BN (batch statistics, running statistics
//!   updated), cross-entropy, backward pass and an SGD update with momentum 0.9 and weight
//!   decay 2e-4.

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::Context;
use candle_core::{Device, Var};
use clap::{Args, ValueEnum};
use saddlescope_nn::{BnMode, LossSpec};
use saddlescope_results::EpochRecord;
use saddlescope_train::{
    preset, Reweighting, Sgd, SgdParams, TrainConfig, TrainObserver, Trainer, PRESET_NAMES,
};
use serde_json::{json, Value};

use super::setup::{random_batch, BenchModel};
use super::{cpu_ms, loadavg, peak_rss_mb, value_name};
use crate::error::{usage, ResultExt};
use crate::values::FloatArg;

/// Flags of `saddlescope bench train`.
#[derive(Debug, Args)]
#[command(
    after_help = "Prints one JSON object. Keys: bench, kind, model, batch, dtype, threads, \
loadavg_before, loadavg_after, and for --kind epoch: preset, sam_rho, epochs, steps_per_epoch, \
epoch_s (each epoch), epoch_median_s (epochs after the first), cpu_s_per_epoch, train_loss, \
test_accuracy (last epoch); for --kind step: repeats, step_ms (median), step_min_ms, \
step_cpu_ms, peak_rss_mb. Compare with `python3 bench/pytorch_train_reference.py --compare \
target/release/saddlescope`."
)]
pub struct TrainBenchArgs {
    /// What to time: whole epochs of a preset, or one SGD step on a random batch
    #[arg(long, value_enum, default_value_t = Kind::Epoch)]
    kind: Kind,
    /// Model [default: cnn for epoch, resnet32 for step]
    #[arg(long, value_enum)]
    model: Option<BenchModel>,
    /// Samples per batch [default: the preset's for epoch, 128 for step]
    #[arg(long, value_name = "N")]
    batch: Option<usize>,
    /// Recipe of --kind epoch (`saddlescope train --preset`)
    #[arg(long, value_name = "NAME", default_value = "mnist-lt-ce-drw-sam")]
    preset: String,
    /// SAM radius of --kind epoch, 0 for plain SGD [default: the preset's]
    #[arg(long, value_name = "RHO")]
    sam: Option<f64>,
    /// Epochs of --kind epoch (the first one is a warm-up)
    #[arg(long, value_name = "N", default_value_t = 4)]
    epochs: usize,
    /// Timed steps of --kind step (after one warm-up)
    #[arg(long, value_name = "R", default_value_t = 5)]
    repeats: usize,
    /// Element type
    #[arg(long, value_enum, default_value_t = FloatArg::F32)]
    dtype: FloatArg,
}

/// `--kind`: what `bench train` times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Kind {
    /// Whole epochs of a preset, run by the trainer.
    Epoch,
    /// One SGD step with train-mode batch norm on a random batch.
    Step,
}

/// Runs `saddlescope bench train`.
pub fn run(args: TrainBenchArgs) -> anyhow::Result<ExitCode> {
    if args.batch == Some(0) {
        return Err(usage("--batch 0: need at least 1 sample"));
    }
    let loadavg_before = loadavg();
    let mut report = match args.kind {
        Kind::Epoch => epochs(&args)?,
        Kind::Step => step(&args)?,
    };
    let extra = json!({
        "bench": "train",
        "kind": value_name(args.kind),
        "dtype": args.dtype.as_str(),
        "threads": rayon::current_num_threads(),
        "loadavg_before": loadavg_before,
        "loadavg_after": loadavg(),
    });
    if let (Value::Object(report), Value::Object(extra)) = (&mut report, extra) {
        report.extend(extra);
    }
    println!("{report}");
    Ok(ExitCode::SUCCESS)
}

/// Collects the trainer's epoch records.
#[derive(Default)]
struct Records(Mutex<Vec<EpochRecord>>);

impl TrainObserver for Records {
    fn epoch_done(&self, record: &EpochRecord) {
        if let Ok(mut records) = self.0.lock() {
            records.push(record.clone());
        }
    }
}

/// The median of `values` (sorted in place); `None` when empty.
fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    match values.len() {
        0 => None,
        n if n % 2 == 1 => Some(values[mid]),
        _ => Some((values[mid - 1] + values[mid]) / 2.0),
    }
}

/// `--kind epoch`: the trainer on the preset, in a temporary run directory.
fn epochs(args: &TrainBenchArgs) -> anyhow::Result<Value> {
    if args.epochs == 0 {
        return Err(usage("--epochs 0: need at least 1"));
    }
    let mut config = preset(&args.preset).ok_or_else(|| {
        usage(format!(
            "--preset {:?}: unknown preset, expected one of {}",
            args.preset,
            PRESET_NAMES.join(", ")
        ))
    })?;
    let model = args.model.unwrap_or(BenchModel::Cnn);
    config.model = model.spec().parse()?;
    config.epochs = args.epochs;
    if let Reweighting::FromEpoch(_) = config.reweighting {
        // The preset's DRW epoch at the same fraction of the shorter run, as `train
        // --epochs`; none if that falls after the run's end.
        let from = TrainConfig::default_drw_epoch(args.epochs);
        config.reweighting = if from <= args.epochs {
            Reweighting::FromEpoch(from)
        } else {
            Reweighting::Off
        };
    }
    config.dtype = args.dtype.as_str().to_string();
    if let Some(batch) = args.batch {
        config.batch_size = batch;
    }
    match (args.sam, config.sam.as_mut()) {
        (Some(0.0), _) => config.sam = None,
        (Some(rho), Some(sam)) => sam.rho = rho,
        (Some(_), None) => {
            return Err(usage(format!(
                "--sam: preset {} has no SAM to set the radius of",
                args.preset
            )))
        }
        (None, _) => {}
    }
    let dir = tempfile::tempdir().context("creating a temporary run directory")?;
    let mut trainer = Trainer::new(config.clone(), dir.path(), &Device::Cpu).cli()?;
    let records = Records::default();
    let cpu_before = cpu_ms();
    trainer.run(&records, &AtomicBool::new(false)).cli()?;
    let cpu = cpu_ms().zip(cpu_before).map(|(a, b)| (a - b) / 1e3);
    let records = records
        .0
        .into_inner()
        .map_err(|_| anyhow::anyhow!("the epoch records were poisoned"))?;
    let seconds: Vec<f64> = records.iter().map(|r| r.seconds).collect();
    let last = records.last().context("the trainer ran no epoch")?;
    let warm = if seconds.len() > 1 { 1 } else { 0 };
    let after_warm_up = median(&mut seconds[warm..].to_vec());
    Ok(json!({
        "model": model.name(),
        "preset": args.preset,
        "batch": config.batch_size,
        "sam_rho": config.sam.as_ref().map(|s| s.rho),
        "epochs": args.epochs,
        "steps_per_epoch": trainer.steps_per_epoch(),
        "epoch_s": seconds,
        "epoch_median_s": after_warm_up,
        "cpu_s_per_epoch": cpu.map(|c| c / args.epochs as f64),
        "train_loss": last.train_loss,
        "test_accuracy": last.test.accuracy,
    }))
}

/// `--kind step`: forward (train-mode BN), cross-entropy, backward and an SGD update.
fn step(args: &TrainBenchArgs) -> anyhow::Result<Value> {
    if args.repeats == 0 {
        return Err(usage("--repeats 0: need at least 1"));
    }
    let model = args.model.unwrap_or(BenchModel::Resnet32);
    let batch = args.batch.unwrap_or(128);
    let dtype = args.dtype.dtype();
    let data = random_batch(model, batch, dtype, &Device::Cpu)?;
    let net = model.build(dtype, data.x())?;
    let loss = LossSpec::Ce.build(&[1; 10], None)?;
    let vars: Vec<&Var> = net.trainable().iter().map(|(_, v)| v).collect();
    let mut sgd = Sgd::new(SgdParams::default(), vars.len());
    let mut once = || -> anyhow::Result<f64> {
        let start = Instant::now();
        let logits = net.forward(data.x(), BnMode::Train)?;
        let grads = loss.compute(&logits, data.labels())?.backward()?;
        let grads: Vec<_> = vars
            .iter()
            .map(|v| grads.get(v.as_tensor()).cloned())
            .collect();
        sgd.step(&vars, &grads, 0.1).cli()?;
        Ok(start.elapsed().as_secs_f64() * 1e3)
    };
    once()?;
    let cpu_before = cpu_ms();
    let mut times = (0..args.repeats)
        .map(|_| once())
        .collect::<anyhow::Result<Vec<f64>>>()?;
    let cpu = cpu_ms()
        .zip(cpu_before)
        .map(|(a, b)| (a - b) / args.repeats as f64);
    let min = times.iter().copied().fold(f64::INFINITY, f64::min);
    Ok(json!({
        "model": model.name(),
        "batch": batch,
        "params": net.param_count(),
        "repeats": args.repeats,
        "step_ms": median(&mut times),
        "step_min_ms": min,
        "step_cpu_ms": cpu,
        "peak_rss_mb": peak_rss_mb(),
    }))
}
