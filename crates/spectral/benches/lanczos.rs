//! Benchmark of the bookkeeping around the operator: reorthogonalization and tridiagonal
//! eigensolves for n = 500,000 (ResNet-32 has 0.46 M parameters) and 100 steps, with a cheap
//! diagonal operator so nearly all the time is bookkeeping. Prints one JSON object.
//!
//! `cargo bench -p saddlescope-spectral --bench lanczos` (set `RAYON_NUM_THREADS` to vary
//! the thread count). The share of SLQ time outside a real operator is then
//! `bookkeeping / (bookkeeping + steps · t_hvp)`; `hvp_seconds_for_5_percent` is the HVP time
//! above which that share is at most 5%.

use std::time::Instant;

use saddlescope_spectral::{
    lanczos, BasisPrecision, Counted, LanczosParams, LinearOperator, OperatorError, RitzMeasure,
};

/// `y = diag(d) x`: a spectrum with a bulk on [-0.1, 1] and a few outliers.
struct Diagonal(Vec<f64>);

impl LinearOperator for Diagonal {
    fn dim(&self) -> usize {
        self.0.len()
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) -> Result<(), OperatorError> {
        for ((y, x), d) in y.iter_mut().zip(x).zip(&self.0) {
            *y = d * x;
        }
        Ok(())
    }
}

fn main() {
    let n = 500_000;
    let steps = 100;
    let d: Vec<f64> = (0..n)
        .map(|i| match i {
            0 => 250.0,
            1 => 90.0,
            2 => -3.0,
            _ => -0.1 + 1.1 * i as f64 / n as f64,
        })
        .collect();
    let op = Diagonal(d);
    let start: Vec<f64> = (0..n)
        .map(|i| if (i * 7919) % 3 == 0 { -1.0 } else { 1.0 })
        .collect();
    let mut runs = Vec::new();
    for (name, basis) in [("f64", BasisPrecision::F64), ("f32", BasisPrecision::F32)] {
        let counted = Counted::new(&op);
        let params = LanczosParams {
            steps,
            basis,
            keep_basis: false,
            ..Default::default()
        };
        let t0 = Instant::now();
        let run = lanczos(&counted, &start, &params).expect("lanczos");
        let lanczos_s = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let measure = RitzMeasure::from_tridiagonal(&run.alphas, &run.betas).expect("eigensolve");
        let eigensolve_s = t1.elapsed().as_secs_f64();
        let operator_s = counted.time_in_operator().as_secs_f64();
        let bookkeeping_s = lanczos_s - operator_s + eigensolve_s;
        runs.push(serde_json::json!({
            "basis": name,
            "basis_bytes": basis.memory(n, steps),
            "steps": run.info.steps,
            "second_passes": run.info.second_passes,
            "lanczos_s": lanczos_s,
            "operator_s": operator_s,
            "reorthogonalization_s": lanczos_s - operator_s,
            "eigensolve_s": eigensolve_s,
            "bookkeeping_s": bookkeeping_s,
            "bookkeeping_per_step_ms": 1e3 * bookkeeping_s / run.info.steps as f64,
            "hvp_seconds_for_5_percent": 19.0 * bookkeeping_s / run.info.steps as f64,
            "lambda_max": measure.nodes.last(),
            "lambda_min": measure.nodes.first(),
        }));
    }
    let report = serde_json::json!({
        "n": n,
        "steps": steps,
        "threads": rayon::current_num_threads(),
        "runs": runs,
    });
    println!("{}", serde_json::to_string_pretty(&report).expect("json"));
}
