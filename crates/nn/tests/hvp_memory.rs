//! Peak live heap of a ResNet-32 HVP against a gradient's, counted by a global allocator
//! (bytes, not time, so the bound is deterministic). Its own test binary: the counter sees
//! every allocation in the process, so nothing may run beside it.
//!
//! Plain path: a regression guard for the backward order. candle's backward visits an op's
//! arguments in order, and the dual graph's ops take the tangent first so the primal and
//! tangent chains are processed layer by layer. With one primal-first op near the top (as
//! before), every layer's primal gradient was held until the whole tangent chain was done.
//! Measured at batch 16: HVP peak 3.0x the gradient's with that order, 1.9x now (limit 2.5).
//!
//! Linearized path: what the operator keeps between products (the recorded pass) and the
//! peak of one product on top of it, both against a gradient's peak.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use candle_core::{DType, Device, Tensor};
use saddlescope_nn::{
    Batch, BnMode, HessianOperator, HvpEngine, LossSpec, Model, ModelSpec, ParamSelection,
};

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

/// ResNet-32, batch 16, f32, eval-mode BN, all parameters: an operator of `engine`.
fn resnet32_operator(model: &Model, engine: HvpEngine) -> HessianOperator<'_> {
    let n = 16;
    let values: Vec<f32> = (0..n * 3 * 32 * 32)
        .map(|i| (i * 7919 % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let x = Tensor::from_vec(values, (n, 3, 32, 32), &Device::Cpu).unwrap();
    let labels: Vec<u32> = (0..n as u32).map(|i| i % 10).collect();
    let labels = Tensor::new(labels.as_slice(), &Device::Cpu).unwrap();
    model.calibrate_bn(&x).unwrap();
    HessianOperator::new(
        model,
        vec![Batch::new(x, labels).unwrap()],
        LossSpec::Ce.build(&[1; 10], None).unwrap(),
        ParamSelection::all(model),
        BnMode::Eval,
    )
    .unwrap()
    .with_engine(engine)
}

/// One test, so that nothing else allocates while a peak is measured.
#[test]
fn resnet32_hvp_peak_memory_against_a_gradients() {
    let spec: ModelSpec = "resnet32".parse().unwrap();
    let model = Model::new(&spec, 10, [3, 32, 32], DType::F32, &Device::Cpu, 0).unwrap();
    let plain = resnet32_operator(&model, HvpEngine::Plain);
    let v: Vec<f64> = (0..plain.dim()).map(|i| (i % 7) as f64 - 3.0).collect();
    let mut out = vec![0.0; plain.dim()];
    let grad = peak_of(|| drop(plain.loss_and_grad_flat().unwrap()));
    let hvp = peak_of(|| plain.hvp_flat(&v, &mut out).unwrap());
    let ratio = hvp as f64 / grad as f64;
    println!("plain: peak live heap: gradient {grad} B, HVP {hvp} B, ratio {ratio:.2}");
    assert!(
        ratio <= 2.5,
        "plain HVP peak {hvp} B is {ratio:.2}x the gradient's {grad} B"
    );

    let lin = resnet32_operator(&model, HvpEngine::Linearized);
    let before = LIVE.load(Relaxed);
    let first = peak_of(|| lin.hvp_flat(&v, &mut out).unwrap());
    let kept = LIVE.load(Relaxed) - before;
    let next = peak_of(|| lin.hvp_flat(&v, &mut out).unwrap());
    let reported = lin.linearization().unwrap().bytes;
    let (r_first, r_kept, r_next) = (
        first as f64 / grad as f64,
        kept as f64 / grad as f64,
        next as f64 / grad as f64,
    );
    println!(
        "linearized: first product {first} B ({r_first:.2}x), kept {kept} B ({r_kept:.2}x, \
         reported {reported} B), each further product {next} B ({r_next:.2}x)"
    );
    assert!(
        r_first <= 3.0,
        "first linearized product {r_first:.2}x a gradient"
    );
    assert!(r_kept <= 2.0, "linearization keeps {r_kept:.2}x a gradient");
    assert!(
        r_next <= 1.5,
        "a linearized product takes {r_next:.2}x a gradient"
    );
    assert!(
        (reported as f64 - kept as f64).abs() <= 0.25 * kept as f64,
        "reported {reported} B, kept {kept} B"
    );
}
