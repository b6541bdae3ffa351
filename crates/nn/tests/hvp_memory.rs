//! Peak live heap of a ResNet-32 HVP against a gradient's, counted by a global allocator
//! (bytes, not time, so the bound is deterministic). Its own test binary: the counter sees
//! every allocation in the process, so nothing may run beside it.
//!
//! Regression guard for the backward order: candle's backward visits an op's arguments in
//! order, and the dual graph's ops take the tangent first so the primal and tangent chains
//! are processed layer by layer. With one primal-first op near the top (as before), every
//! layer's primal gradient was held until the whole tangent chain was done. Measured at
//! batch 16: HVP peak 3.0x the gradient's with that order, 1.9x now (limit 2.5).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use candle_core::{DType, Device, Tensor};
use saddlescope_nn::{Batch, BnMode, HessianOperator, LossSpec, Model, ModelSpec, ParamSelection};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged and only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Relaxed) + layout.size();
        PEAK.fetch_max(live, Relaxed);
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Relaxed);
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Peak live bytes above the level before `f` ran.
fn peak_of(f: impl FnOnce()) -> usize {
    let base = LIVE.load(Relaxed);
    PEAK.store(base, Relaxed);
    f();
    PEAK.load(Relaxed) - base
}

#[test]
fn resnet32_hvp_peak_memory_is_at_most_twice_and_a_half_a_gradients() {
    let n = 16;
    let values: Vec<f32> = (0..n * 3 * 32 * 32)
        .map(|i| (i * 7919 % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let x = Tensor::from_vec(values, (n, 3, 32, 32), &Device::Cpu).unwrap();
    let labels: Vec<u32> = (0..n as u32).map(|i| i % 10).collect();
    let labels = Tensor::new(labels.as_slice(), &Device::Cpu).unwrap();
    let spec: ModelSpec = "resnet32".parse().unwrap();
    let model = Model::new(&spec, 10, [3, 32, 32], DType::F32, &Device::Cpu, 0).unwrap();
    model.calibrate_bn(&x).unwrap();
    let op = HessianOperator::new(
        &model,
        vec![Batch::new(x, labels).unwrap()],
        LossSpec::Ce.build(&[1; 10], None).unwrap(),
        ParamSelection::all(&model),
        BnMode::Eval,
    )
    .unwrap();
    let v: Vec<f64> = (0..op.dim()).map(|i| (i % 7) as f64 - 3.0).collect();
    let mut out = vec![0.0; op.dim()];
    let grad = peak_of(|| drop(op.loss_and_grad_flat().unwrap()));
    let hvp = peak_of(|| op.hvp_flat(&v, &mut out).unwrap());
    let ratio = hvp as f64 / grad as f64;
    println!("peak live heap: gradient {grad} B, HVP {hvp} B, ratio {ratio:.2}");
    assert!(
        ratio <= 2.5,
        "HVP peak {hvp} B is {ratio:.2}x the gradient's {grad} B"
    );
}
