//! HVPs and gradients on a CUDA GPU against the CPU in f64 (the reference every CPU test
//! checks): the same seeded models and batches, built on each device. Ignored by default
//! (they need a GPU and a `--features cuda` build); `just gpu-check` runs them.
//! `SADDLESCOPE_GPU_CHECK_DEVICE=cpu` puts the CPU in the GPU's place (the rehearsal on a
//! machine without one, `scripts/gpu-check.sh --device cpu`).

use candle_core::{DType, Device, Tensor};
use saddlescope_nn::{Batch, BnMode, HessianOperator, LossSpec, Model, ParamSelection};

use crate::util::*;

/// The first CUDA GPU, or the CPU when `SADDLESCOPE_GPU_CHECK_DEVICE=cpu`.
fn device_under_test() -> Device {
    if std::env::var("SADDLESCOPE_GPU_CHECK_DEVICE").is_ok_and(|d| d == "cpu") {
        Device::Cpu
    } else {
        Device::new_cuda(0).expect("a CUDA GPU (SADDLESCOPE_GPU_CHECK_DEVICE=cpu: the CPU)")
    }
}

/// `batch(...)` moved to `device` in `dtype`.
fn batch_on(data: &Batch, dtype: DType, device: &Device) -> Batch {
    let move_to = |t: &Tensor| t.to_device(device).unwrap();
    Batch::new(
        move_to(&data.x().to_dtype(dtype).unwrap()),
        move_to(data.labels()),
    )
    .unwrap()
}

/// The seeded model on `device` in `dtype`, BN statistics calibrated on `data`.
fn model_on(spec: &str, input: [usize; 3], dtype: DType, device: &Device, data: &Batch) -> Model {
    let net = Model::new(&spec.parse().unwrap(), 10, input, dtype, device, 7).unwrap();
    net.calibrate_bn(data.x()).unwrap();
    net
}

/// Gradient and HVPs along 2 seeded unit directions of `spec` in `dtype` on the GPU, and
/// the worst `‖· − ·_cpu‖/‖·_cpu‖` against the CPU in f64.
fn worst_error(spec: &str, input: [usize; 3], n: usize, bn: BnMode, dtype: DType) -> f64 {
    let gpu = device_under_test();
    let data = batch(n, input, 10, DType::F64, 5);
    let loss = LossSpec::Ce
        .build(&[500, 300, 200, 100, 60, 40, 25, 15, 10, 5], None)
        .unwrap();
    let ops = [(DType::F64, &Device::Cpu), (dtype, &gpu)].map(|(dtype, device)| {
        let data = batch_on(&data, dtype, device);
        (model_on(spec, input, dtype, device, &data), data)
    });
    let [cpu, cuda] = ops.each_ref().map(|(net, data)| {
        HessianOperator::new(
            net,
            vec![data.clone()],
            loss.clone(),
            ParamSelection::all(net),
            bn,
        )
        .unwrap()
    });
    assert_eq!(cuda.dim(), cpu.dim());
    let mut worst = rel_err(
        &cuda.loss_and_grad_flat().unwrap().1,
        &cpu.loss_and_grad_flat().unwrap().1,
    );
    for seed in [11, 12] {
        let u = unit(cpu.dim(), seed);
        worst = worst.max(rel_err(&hvp(&cuda, &u), &hvp(&cpu, &u)));
    }
    eprintln!(
        "{spec} {bn:?} {dtype:?} on {:?} vs CPU f64: worst relative error {worst:e}",
        gpu.location()
    );
    worst
}

const CASES: [(&str, [usize; 3], usize, BnMode); 4] = [
    ("mlp:64", [1, 28, 28], 16, BnMode::Eval),
    ("cnn", [1, 28, 28], 8, BnMode::Eval),
    ("resnet32", [3, 32, 32], 4, BnMode::Eval),
    ("resnet32", [3, 32, 32], 4, BnMode::BatchStats),
];

/// f32 on the GPU (candle's CUDA kernels and cuBLAS) agrees with the CPU in f64 to 1e-4
/// relative: the f32 rounding of these depths, as on the CPU (`hvp_resnet`).
#[test]
#[ignore = "needs a CUDA GPU: just gpu-check"]
fn f32_hvps_on_cuda_match_cpu_f64() {
    for (spec, input, n, bn) in CASES {
        let err = worst_error(spec, input, n, bn, DType::F32);
        assert!(err <= 1e-4, "{spec} {bn:?}: f32 CUDA vs f64 CPU {err:e}");
    }
}

/// f64 on the GPU agrees with the CPU in f64 to 1e-10 relative: the same functions,
/// summed in other orders.
#[test]
#[ignore = "needs a CUDA GPU: just gpu-check"]
fn f64_hvps_on_cuda_match_cpu_f64() {
    for (spec, input, n, bn) in CASES {
        let err = worst_error(spec, input, n, bn, DType::F64);
        assert!(err <= 1e-10, "{spec} {bn:?}: f64 CUDA vs f64 CPU {err:e}");
    }
}
