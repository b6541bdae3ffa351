//! The fused op against candle's composition of the same formula (the layer's former
//! code) followed by each epilogue: values, statistics and every gradient, f64 to 1e-12
//! and f32 to 1e-5 of the largest entry, on several shapes (odd sides, one pixel) and a
//! strided input; bit-identical results for any thread count.

use candle_core::{DType, Device, Tensor, Var};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::init::kaiming_normal;

const EPS: f64 = 1e-5;

/// `(N, C, H, W)`: a ResNet-like map, odd sides, one pixel, a single sample.
const SHAPES: [[usize; 4]; 4] = [[4, 3, 5, 6], [3, 5, 7, 7], [9, 2, 1, 1], [1, 4, 8, 8]];

fn seeded(dims: &[usize], seed: u64, dtype: DType) -> Tensor {
    let len = dims.iter().product();
    let values = kaiming_normal(&mut ChaCha8Rng::seed_from_u64(seed), len, 2);
    Tensor::from_vec(values, dims, &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

fn values(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// `max |a − b| / max |b|`.
fn max_rel(a: &Tensor, b: &Tensor) -> f64 {
    let (a, b) = (values(a), values(b));
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let diff = a
        .iter()
        .zip(&b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
    diff / scale
}

/// Train-mode BN composed from candle ops: `(z, mean, var)`.
fn composed(y: &Tensor, gamma: &Tensor, beta: &Tensor) -> (Tensor, Tensor, Tensor) {
    let c = gamma.elem_count();
    let axes = [0usize, 2, 3];
    let mean = y.mean_keepdim(axes.as_slice()).unwrap();
    let centered = y.broadcast_sub(&mean).unwrap();
    let var = centered
        .sqr()
        .unwrap()
        .mean_keepdim(axes.as_slice())
        .unwrap();
    let scale = var
        .affine(1.0, EPS)
        .unwrap()
        .sqrt()
        .unwrap()
        .recip()
        .unwrap()
        .broadcast_mul(&gamma.reshape((1, c, 1, 1)).unwrap())
        .unwrap();
    let out = centered
        .broadcast_mul(&scale)
        .unwrap()
        .broadcast_add(&beta.reshape((1, c, 1, 1)).unwrap())
        .unwrap();
    (out, mean, var)
}

/// The epilogues, by name (`AddRelu` takes the residual passed alongside).
const EPILOGUES: [&str; 4] = ["identity", "relu", "relu-pool2", "add-relu"];

/// candle's epilogue on `z` (pooling with the crate's op: candle's `avg_pool2d` backward
/// is wrong on odd sides; `cpu_ops::pool` checks ours against it on even ones).
fn composed_epilogue(name: &str, z: &Tensor, skip: &Tensor) -> Tensor {
    match name {
        "identity" => z.clone(),
        "relu" => z.relu().unwrap(),
        "relu-pool2" => super::super::pool::avg_pool2(&z.relu().unwrap()).unwrap(),
        _ => (z + skip).unwrap().relu().unwrap(),
    }
}

fn fused(name: &str, y: &Tensor, gamma: &Tensor, beta: &Tensor, skip: &Tensor) -> [Tensor; 3] {
    let epilogue = match name {
        "identity" => Epilogue::Identity,
        "relu" => Epilogue::Relu,
        "relu-pool2" => Epilogue::ReluPool2,
        _ => Epilogue::AddRelu(skip),
    };
    let (out, mean, var) = batch_norm_train(y, gamma, beta, EPS, epilogue).unwrap();
    [out, mean, var]
}

/// `[out, mean, var, ∂y, ∂γ, ∂β, ∂skip]` of `⟨r, out⟩` for one implementation.
fn outputs(
    bn: impl Fn(&Tensor, &Tensor, &Tensor, &Tensor) -> [Tensor; 3],
    args: [&Tensor; 4],
    r: impl Fn(&[usize]) -> Tensor,
) -> Vec<Tensor> {
    let vars = args.map(|t| Var::from_tensor(t).unwrap());
    let [yv, gv, bv, sv] = vars.each_ref().map(|v| v.as_tensor());
    let [out, mean, var] = bn(yv, gv, bv, sv);
    let grads = out
        .mul(&r(out.dims()))
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let zeros = sv.zeros_like().unwrap();
    let mut all = vec![out, mean.flatten_all().unwrap(), var.flatten_all().unwrap()];
    all.extend([yv, gv, bv].map(|v| grads.get(v).unwrap().clone()));
    all.push(grads.get(sv).cloned().unwrap_or(zeros));
    all
}

#[test]
fn every_epilogue_matches_candle_composition_with_gradients() {
    for dtype in [DType::F64, DType::F32] {
        let tol = if dtype == DType::F64 { 1e-12 } else { 1e-5 };
        for (i, dims) in SHAPES.iter().enumerate() {
            let seed = 10 * i as u64;
            let c = dims[1];
            // An offset mean, as after a convolution, so that centring matters.
            let y = seeded(dims, seed, dtype).affine(1.5, 0.7).unwrap();
            let gamma = seeded(&[c], seed + 1, dtype).affine(1.0, 1.0).unwrap();
            let beta = seeded(&[c], seed + 2, dtype);
            let skip = seeded(dims, seed + 3, dtype);
            let r = |d: &[usize]| seeded(d, seed + 4, dtype);
            for name in EPILOGUES {
                if name == "relu-pool2" && (dims[2] < 2 || dims[3] < 2) {
                    continue;
                }
                let ours = outputs(
                    |y, g, b, s| fused(name, y, g, b, s),
                    [&y, &gamma, &beta, &skip],
                    r,
                );
                let theirs = outputs(
                    |y, g, b, s| {
                        let (z, mean, var) = composed(y, g, b);
                        [composed_epilogue(name, &z, s), mean, var]
                    },
                    [&y, &gamma, &beta, &skip],
                    r,
                );
                let what = ["out", "mean", "var", "dy", "dgamma", "dbeta", "dskip"];
                for (what, (o, t)) in what.iter().zip(ours.iter().zip(&theirs)) {
                    let err = if values(t).iter().all(|&v| v == 0.0) {
                        values(o).iter().fold(0.0f64, |m, v| m.max(v.abs()))
                    } else {
                        max_rel(o, t)
                    };
                    assert!(err <= tol, "{dtype:?} {dims:?} {name} {what}: {err:e}");
                }
            }
        }
    }
}

/// A transposed (strided) input gives the values of its contiguous copy.
#[test]
fn strided_input() {
    let y = seeded(&[3, 2, 5, 4], 1, DType::F64)
        .transpose(2, 3)
        .unwrap();
    assert!(!y.is_contiguous());
    let (gamma, beta) = (seeded(&[2], 2, DType::F64), seeded(&[2], 3, DType::F64));
    let skip = y.zeros_like().unwrap();
    let [ours, _, _] = fused("relu", &y, &gamma, &beta, &skip);
    let [theirs, _, _] = fused("relu", &y.contiguous().unwrap(), &gamma, &beta, &skip);
    assert_eq!(values(&ours), values(&theirs));
}

/// Constant arguments get no gradient; the backward before a forward is an error.
#[test]
fn untracked_arguments_and_order() {
    let dims = [2, 2, 3, 3];
    let y = Var::from_tensor(&seeded(&dims, 1, DType::F64)).unwrap();
    let affine = seeded(&[4], 2, DType::F64);
    let g = seeded(&dims, 4, DType::F64);
    let stats = Arc::new(OnceLock::new());
    let op = |act| BatchNorm {
        eps: EPS,
        act,
        stats: Arc::clone(&stats),
    };
    let early = CpuOp::<2>::backward(&op(Act::Relu), [y.as_tensor(), &affine], &g, &g);
    assert!(early.is_err());
    let out = apply2(op(Act::Relu), y.as_tensor(), &affine).unwrap();
    let [dy, daffine] =
        CpuOp::<2>::backward(&op(Act::Relu), [y.as_tensor(), &affine], &out, &g).unwrap();
    assert!(dy.is_some() && daffine.is_none());
}

/// Results do not depend on the number of threads (bit-identical).
#[test]
fn bit_identical_across_thread_counts() {
    let dims = [16, 8, 12, 12];
    let y = seeded(&dims, 11, DType::F32).affine(3.0, 0.5).unwrap();
    let gamma = seeded(&[8], 12, DType::F32);
    let beta = seeded(&[8], 13, DType::F32);
    let skip = seeded(&dims, 14, DType::F32);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            EPILOGUES
                .iter()
                .flat_map(|name| {
                    outputs(
                        |y, g, b, s| fused(name, y, g, b, s),
                        [&y, &gamma, &beta, &skip],
                        |d| seeded(d, 15, DType::F32),
                    )
                })
                .map(|t| values(&t))
                .collect::<Vec<_>>()
        })
    };
    assert_eq!(run(1), run(3));
}

/// Bad shapes are errors naming the problem, not panics.
#[test]
fn bad_shapes_are_errors() {
    let y = seeded(&[2, 3, 4, 4], 1, DType::F64);
    let c3 = seeded(&[3], 2, DType::F64);
    let c2 = seeded(&[2], 3, DType::F64);
    let train = |y: &Tensor, g: &Tensor, b: &Tensor, e| batch_norm_train(y, g, b, EPS, e);
    let err = train(&y, &c2, &c3, Epilogue::Identity)
        .unwrap_err()
        .to_string();
    assert!(err.contains("expected [6]"), "{err}");
    let flat = seeded(&[2, 3], 4, DType::F64);
    assert!(train(&flat, &c3, &c3, Epilogue::Relu).is_err());
    let empty = Tensor::zeros((0, 3, 2, 2), DType::F64, &Device::Cpu).unwrap();
    assert!(train(&empty, &c3, &c3, Epilogue::Relu).is_err());
    let mixed = c3.to_dtype(DType::F32).unwrap();
    assert!(train(&y, &mixed, &c3, Epilogue::Relu).is_err());
    let thin = seeded(&[2, 3, 1, 4], 5, DType::F64);
    assert!(train(&thin, &c3, &c3, Epilogue::ReluPool2).is_err());
    let other = seeded(&[2, 3, 4, 2], 6, DType::F64);
    let err = train(&y, &c3, &c3, Epilogue::AddRelu(&other))
        .unwrap_err()
        .to_string();
    assert!(err.contains("residual"), "{err}");
}
