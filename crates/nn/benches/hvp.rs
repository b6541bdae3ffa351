//! HVP vs gradient cost (f32, eval-mode BN): MLP 784-256-10 at batch 512 and ResNet-32 at
//! batch 32. Prints one JSON object per model on stdout.
//!
//! Each (model, measurement) runs in a fresh child process so that its peak resident set
//! (`VmHWM` of `/proc/self/status`) belongs to that measurement alone; `setup` builds the
//! model and batch and runs one forward without gradients, as the memory baseline.
//!
//! Times are the fastest of the repetitions (the machine may be shared).
//!
//! `cargo bench -p saddlescope-nn --bench hvp` (add `-- --reps N` to change repetitions).

use std::process::Command;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use saddlescope_nn::{Batch, BnMode, HessianOperator, LossSpec, Model, ParamSelection};

struct Case {
    name: &'static str,
    spec: &'static str,
    input: [usize; 3],
    batch: usize,
    reps: usize,
}

const CASES: [Case; 2] = [
    Case {
        name: "mlp-784-256-10",
        spec: "mlp:256",
        input: [1, 28, 28],
        batch: 512,
        reps: 30,
    },
    Case {
        name: "resnet32",
        spec: "resnet32",
        input: [3, 32, 32],
        batch: 32,
        reps: 3,
    },
];

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// The fastest repetition: on a shared machine, the least disturbed one.
fn fastest(xs: Vec<f64>) -> f64 {
    xs.into_iter().fold(f64::INFINITY, f64::min)
}

/// Runs one measurement in this process and prints `ms peak_mb`.
fn child(case: &Case, kind: &str, reps: usize) {
    let dev = Device::Cpu;
    let model = Model::new(
        &case.spec.parse().unwrap(),
        10,
        case.input,
        DType::F32,
        &dev,
        0,
    )
    .unwrap();
    let [c, h, w] = case.input;
    let x = Tensor::randn(0f32, 1.0, (case.batch, c, h, w), &dev).unwrap();
    let labels: Vec<u32> = (0..case.batch as u32).map(|i| i % 10).collect();
    let data = Batch::new(x, Tensor::new(labels.as_slice(), &dev).unwrap()).unwrap();
    model.calibrate_bn(data.x()).unwrap();
    let loss = LossSpec::Ce.build(&[1; 10], None).unwrap();
    let op = HessianOperator::new(
        &model,
        vec![data],
        loss,
        ParamSelection::all(&model),
        BnMode::Eval,
    )
    .unwrap();
    let v: Vec<f64> = (0..op.dim())
        .map(|i| ((i * 7919) % 1000) as f64 / 1000.0 - 0.5)
        .collect();
    let mut out = vec![0.0; op.dim()];
    let mut run = || -> f64 {
        let t = Instant::now();
        match kind {
            "setup" => drop(op.loss().unwrap()),
            "grad" => drop(op.loss_and_grad_flat().unwrap()),
            _ => op.hvp_flat(&v, &mut out).unwrap(),
        }
        t.elapsed().as_secs_f64() * 1e3
    };
    run();
    let times: Vec<f64> = (0..reps).map(|_| run()).collect();
    println!("{} {}", fastest(times), peak_rss_mb());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    let reps_override: Option<usize> = flag("--reps").and_then(|r| r.parse().ok());
    if let Some(pos) = args.iter().position(|a| a == "--child") {
        let case = CASES
            .iter()
            .find(|c| c.name == args[pos + 1])
            .expect("case");
        child(case, &args[pos + 2], reps_override.unwrap_or(case.reps));
        return;
    }
    let exe = std::env::current_exe().expect("own path");
    for case in &CASES {
        let mut results = Vec::new();
        for kind in ["setup", "grad", "hvp"] {
            let mut cmd = Command::new(&exe);
            cmd.args(["--child", case.name, kind]);
            if let Some(r) = reps_override {
                cmd.args(["--reps", &r.to_string()]);
            }
            let out = cmd.output().expect("child process");
            let text = String::from_utf8_lossy(&out.stdout);
            let nums: Vec<f64> = text
                .split_whitespace()
                .filter_map(|t| t.parse().ok())
                .collect();
            assert!(
                out.status.success() && nums.len() == 2,
                "child {kind} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            results.push((nums[0], nums[1]));
        }
        let [(fwd_ms, base_mb), (grad_ms, grad_mb), (hvp_ms, hvp_mb)] = results[..] else {
            unreachable!()
        };
        println!(
            "{{\"model\":\"{}\",\"batch\":{},\"dtype\":\"f32\",\"bn\":\"eval\",\"forward_ms\":{fwd_ms:.2},\"grad_ms\":{grad_ms:.2},\"hvp_ms\":{hvp_ms:.2},\"hvp_over_grad\":{:.2},\"setup_peak_rss_mb\":{base_mb:.1},\"grad_peak_rss_mb\":{grad_mb:.1},\"hvp_peak_rss_mb\":{hvp_mb:.1},\"hvp_over_grad_peak\":{:.2},\"hvp_over_grad_extra_peak\":{:.2}}}",
            case.name,
            case.batch,
            hvp_ms / grad_ms,
            hvp_mb / grad_mb,
            (hvp_mb - base_mb) / (grad_mb - base_mb),
        );
    }
}
