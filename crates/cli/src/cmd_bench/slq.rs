//! `saddlescope bench slq`: how much of a class-wise spectrum estimate is bookkeeping
//! (Lanczos reorthogonalization, tridiagonal eigensolves, density smoothing) rather than
//! Hessian-vector products: `1 − time in the operator / wall time` of one class Hessian,
//! probes run sequentially (`parallel = false`) so the two times are comparable.

use std::process::ExitCode;

use candle_core::{DType, Device, Tensor};
use clap::Args;
use saddlescope_analysis::ClassHessian;
use saddlescope_data::{BatchSpec, Dataset, DatasetSpec};
use saddlescope_nn::{Batch, BnMode, HessianOperator, LossSpec, ParamSelection};
use saddlescope_spectral::{estimate_spectrum, BasisPrecision, SlqParams, SpectrumParams};
use serde_json::json;

use super::loadavg;
use super::setup::{random_batch, BenchModel};
use crate::error::{usage, ResultExt};
use crate::values::{BasisArg, FloatArg};

/// Flags of `saddlescope bench slq`.
#[derive(Debug, Args)]
#[command(
    after_help = "Prints one JSON object: model, dtype, basis, class, samples, dim, applications, \
wall_s, in_operator_s, bookkeeping_share, ms_per_application, converged, loadavg_before, \
loadavg_after."
)]
pub struct SlqBenchArgs {
    /// Model: mlp or cnn (on the embedded MNIST, the first --samples of --class), resnet32
    /// (seeded random 3x32x32 inputs labelled --class)
    #[arg(long, value_enum, default_value_t = BenchModel::Cnn)]
    model: BenchModel,
    /// The class whose Hessian is estimated
    #[arg(long, value_name = "C", default_value_t = 0)]
    class: u32,
    /// Samples of the class
    #[arg(long, value_name = "N", default_value_t = 256)]
    samples: usize,
    /// Samples per HVP batch
    #[arg(long, value_name = "N", default_value_t = 128)]
    batch: usize,
    /// Lanczos steps per probe
    #[arg(long, value_name = "M", default_value_t = 100)]
    lanczos_steps: usize,
    /// Probe vectors
    #[arg(long, value_name = "K", default_value_t = 1)]
    probes: usize,
    /// Budget of HVPs for the extreme eigenvalues (the first probe's M included)
    #[arg(long, value_name = "N", default_value_t = 200)]
    max_applications: usize,
    /// Element type of the HVPs
    #[arg(long, value_enum, default_value_t = FloatArg::F32)]
    dtype: FloatArg,
    /// Storage of the Lanczos basis vectors
    #[arg(long, value_enum, default_value_t = BasisArg::F64)]
    basis: BasisArg,
}

/// Runs `saddlescope bench slq`.
pub fn run(args: SlqBenchArgs) -> anyhow::Result<ExitCode> {
    let (model, dtype) = (args.model, args.dtype.dtype());
    let basis = BasisPrecision::from(args.basis);
    if args.samples == 0 || args.batch == 0 {
        return Err(usage("--samples and --batch: need at least 1"));
    }
    if args.class >= 10 {
        return Err(usage(format!(
            "--class {}: the benchmark models have 10 classes (0-9)",
            args.class
        )));
    }
    let params = SpectrumParams {
        slq: SlqParams {
            steps: args.lanczos_steps,
            probes: args.probes,
            basis,
            parallel: false,
            ..SlqParams::default()
        },
        top_k: 5.min(args.lanczos_steps.saturating_sub(4)),
        max_applications: args.max_applications,
        ..SpectrumParams::default()
    };
    params.validate().cli()?;
    let batches = class_batches(model, &args, dtype)?;
    let samples: usize = batches.iter().map(Batch::len).sum();
    let net = model.build(dtype, batches[0].x())?;
    let loss = LossSpec::Ce.build(&[1; 10], None)?;
    let op = HessianOperator::new(&net, batches, loss, ParamSelection::all(&net), BnMode::Eval)?;
    let hessian = ClassHessian::new(op);
    let loadavg_before = loadavg();
    let estimate = estimate_spectrum(&hessian, &params)?;
    let timing = estimate.timing;
    let report = json!({
        "bench": "slq",
        "model": model.name(),
        "dtype": args.dtype.as_str(),
        "basis": basis,
        "class": args.class,
        "samples": samples,
        "dim": estimate.dim,
        "lanczos_steps": args.lanczos_steps,
        "probes": args.probes,
        "applications": estimate.applications,
        "converged": estimate.converged,
        "threads": rayon::current_num_threads(),
        "wall_s": timing.wall.as_secs_f64(),
        "in_operator_s": timing.in_operator.as_secs_f64(),
        "bookkeeping_share": timing.bookkeeping_share(),
        "ms_per_application": timing.in_operator.as_secs_f64() * 1e3 / estimate.applications.max(1) as f64,
        "loadavg_before": loadavg_before,
        "loadavg_after": loadavg(),
    });
    println!("{report}");
    Ok(ExitCode::SUCCESS)
}

/// The class's samples in HVP batches: MNIST digits for the MNIST models, seeded random
/// images for ResNet-32 (no CIFAR-10 ships with the binary).
fn class_batches(
    model: BenchModel,
    args: &SlqBenchArgs,
    dtype: DType,
) -> anyhow::Result<Vec<Batch>> {
    if model == BenchModel::Resnet32 {
        let x = random_batch(model, args.samples, dtype, &Device::Cpu)?
            .x()
            .clone();
        return (0..args.samples)
            .step_by(args.batch)
            .map(|start| {
                let n = args.batch.min(args.samples - start);
                let labels = Tensor::from_vec(vec![args.class; n], n, &Device::Cpu)?;
                Ok(Batch::new(x.narrow(0, start, n)?, labels)?)
            })
            .collect();
    }
    let data = Dataset::load(&DatasetSpec::Mnist10k)?;
    let spec = BatchSpec::new(args.batch, Device::Cpu).with_dtype(dtype);
    data.train()
        .class_batches(args.class as usize, Some(args.samples), &spec)?
        .map(|b| {
            let (x, labels) = b?;
            Ok(Batch::new(x, labels)?)
        })
        .collect()
}
