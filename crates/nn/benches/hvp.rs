//! HVP vs gradient cost (f32, eval-mode BN): MLP 784-256-10 at batch 512 and ResNet-32 at
//! batch 32. Prints one JSON object per model and allocator setting on stdout.
//!
//! Each (model, measurement) runs in a fresh child process so that its peak resident set
//! (`VmHWM` of `/proc/self/status`) belongs to that measurement alone; `setup` builds the
//! model and batch and evaluates the loss without gradients (the memory baseline). Wall
//! times are the fastest repetition (the machine may be shared); CPU times (user + sys of
//! the child, `/proc/self/stat`) are means per repetition.
//!
//! Every measurement runs twice: with glibc's default malloc, and with
//! `GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824`,
//! which keeps freed activation-sized buffers in the heap instead of returning them to
//! the kernel (an HVP allocates ~3× more than a gradient, so page faults hit it harder).
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
        reps: 50,
    },
    Case {
        name: "resnet32",
        spec: "resnet32",
        input: [3, 32, 32],
        batch: 32,
        reps: 3,
    },
];

const TUNED_MALLOC: &str =
    "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824";

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// User + system CPU seconds of this process (clock ticks of 10 ms).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Runs one measurement in this process and prints `wall_ms cpu_ms peak_mb`.
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
    let cpu0 = cpu_seconds();
    let fastest = (0..reps).map(|_| run()).fold(f64::INFINITY, f64::min);
    let cpu_ms = (cpu_seconds() - cpu0) * 1e3 / reps as f64;
    println!("{fastest} {cpu_ms} {}", peak_rss_mb());
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
        for malloc in ["default", "tuned"] {
            let mut results = Vec::new();
            for kind in ["setup", "grad", "hvp"] {
                let mut cmd = Command::new(&exe);
                cmd.args(["--child", case.name, kind]);
                if let Some(r) = reps_override {
                    cmd.args(["--reps", &r.to_string()]);
                }
                if malloc == "tuned" {
                    cmd.env("GLIBC_TUNABLES", TUNED_MALLOC);
                }
                let out = cmd.output().expect("child process");
                let text = String::from_utf8_lossy(&out.stdout);
                let nums: Vec<f64> = text
                    .split_whitespace()
                    .filter_map(|t| t.parse().ok())
                    .collect();
                assert!(
                    out.status.success() && nums.len() == 3,
                    "child {kind} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                results.push((nums[0], nums[1], nums[2]));
            }
            let [(_, _, base_mb), (grad_ms, grad_cpu, grad_mb), (hvp_ms, hvp_cpu, hvp_mb)] =
                results[..]
            else {
                unreachable!()
            };
            println!(
                "{{\"model\":\"{}\",\"batch\":{},\"dtype\":\"f32\",\"bn\":\"eval\",\"malloc\":\"{malloc}\",\
                 \"grad_ms\":{grad_ms:.2},\"hvp_ms\":{hvp_ms:.2},\"hvp_over_grad\":{:.2},\
                 \"grad_cpu_ms\":{grad_cpu:.1},\"hvp_cpu_ms\":{hvp_cpu:.1},\"hvp_over_grad_cpu\":{:.2},\
                 \"setup_peak_rss_mb\":{base_mb:.1},\"grad_peak_rss_mb\":{grad_mb:.1},\"hvp_peak_rss_mb\":{hvp_mb:.1},\
                 \"hvp_over_grad_peak\":{:.2},\"hvp_over_grad_extra_peak\":{:.2}}}",
                case.name,
                case.batch,
                hvp_ms / grad_ms,
                hvp_cpu / grad_cpu,
                hvp_mb / grad_mb,
                (hvp_mb - base_mb) / (grad_mb - base_mb),
            );
        }
    }
}
