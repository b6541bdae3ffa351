//! The fused op against candle's composition (candle's `conv2d`, then the batch norm
//! formula the layer composes, then each epilogue): values, statistics and the gradients
//! of input, kernel, `γ`, `β` and residual, f64 to 1e-12 and f32 to 1e-5 of the largest
//! entry, on strides 1 and 2, padding 0 and 1, odd sides and one-pixel outputs; a strided
//! input; an untracked input; bit-identical results for any thread count.

use candle_core::{DType, Tensor, Var};

use super::*;
use crate::cpu_ops::test_util::{max_rel, on_threads, seeded, values};

const EPS: f64 = 1e-5;

/// `(x: [N, C_in, H, W], C_out, kernel side, padding, stride)`.
type Case = ([usize; 4], usize, usize, usize, usize);

const CASES: [Case; 5] = [
    ([4, 3, 6, 7], 5, 3, 1, 1),
    ([3, 2, 9, 9], 4, 3, 1, 2),
    ([2, 4, 8, 8], 3, 3, 0, 1),
    ([9, 2, 3, 3], 2, 3, 0, 1),
    ([1, 3, 10, 10], 4, 3, 1, 1),
];

/// The epilogues, by name (`add-relu` takes the residual passed alongside).
const EPILOGUES: [&str; 4] = ["identity", "relu", "relu-pool2", "add-relu"];

/// The operands of one implementation: input, kernel, `γ`, `β`, residual.
type Operands<'a> = [&'a Tensor; 5];

/// candle's composition: `(out, mean, var)`.
fn composed(
    name: &str,
    (p, s): (usize, usize),
    [x, k, gamma, beta, skip]: Operands,
) -> [Tensor; 3] {
    let y = x.conv2d(k, p, s, 1, 1).unwrap();
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
    let z = centered
        .broadcast_mul(&scale)
        .unwrap()
        .broadcast_add(&beta.reshape((1, c, 1, 1)).unwrap())
        .unwrap();
    // Pooling with the crate's op: candle's `avg_pool2d` backward is wrong on odd sides
    // (`cpu_ops::pool` checks ours against candle's on even ones).
    let out = match name {
        "identity" => z,
        "relu" => z.relu().unwrap(),
        "relu-pool2" => crate::cpu_ops::pool::avg_pool2(&z.relu().unwrap()).unwrap(),
        _ => (z + skip).unwrap().relu().unwrap(),
    };
    [out, mean.flatten_all().unwrap(), var.flatten_all().unwrap()]
}

fn fused(name: &str, conv: (usize, usize), [x, k, gamma, beta, skip]: Operands) -> [Tensor; 3] {
    let epilogue = match name {
        "identity" => Epilogue::Identity,
        "relu" => Epilogue::Relu,
        "relu-pool2" => Epilogue::ReluPool2,
        _ => Epilogue::AddRelu(skip),
    };
    let (out, mean, var) =
        conv_batch_norm_train((x, k), conv, (gamma, beta), EPS, epilogue).unwrap();
    [out, mean, var]
}

/// `[out, mean, var, ∂x, ∂K, ∂γ, ∂β, ∂skip]` of `⟨r, out⟩` for one implementation.
fn outputs(
    bn: impl Fn(Operands) -> [Tensor; 3],
    operands: Operands,
    r: impl Fn(&[usize]) -> Tensor,
) -> Vec<Tensor> {
    let vars = operands.map(|t| Var::from_tensor(t).unwrap());
    let tracked = vars.each_ref().map(|v| v.as_tensor());
    let [out, mean, var] = bn(tracked);
    let grads = out
        .mul(&r(out.dims()))
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let mut all = vec![out, mean, var];
    for v in tracked {
        all.push(grads.get(v).cloned().unwrap_or(v.zeros_like().unwrap()));
    }
    all
}

/// The operands of case `i`: `[x, K, γ, β, skip]`.
fn operands(i: usize, (dims, c_out, side, p, s): Case, dtype: DType) -> [Tensor; 5] {
    let seed = 10 * i as u64;
    let [_, c_in, h, w] = dims;
    let (ho, wo) = ((h + 2 * p - side) / s + 1, (w + 2 * p - side) / s + 1);
    [
        seeded(&dims, seed, dtype).affine(1.5, 0.7).unwrap(),
        seeded(&[c_out, c_in, side, side], seed + 1, dtype),
        seeded(&[c_out], seed + 2, dtype).affine(1.0, 1.0).unwrap(),
        seeded(&[c_out], seed + 3, dtype),
        seeded(&[dims[0], c_out, ho, wo], seed + 4, dtype),
    ]
}

#[test]
fn every_epilogue_matches_candle_composition_with_gradients() {
    for dtype in [DType::F64, DType::F32] {
        let tol = if dtype == DType::F64 { 1e-12 } else { 1e-5 };
        for (i, &case) in CASES.iter().enumerate() {
            let ops = operands(i, case, dtype);
            let conv = (case.3, case.4);
            let r = |d: &[usize]| seeded(d, 99 + i as u64, dtype);
            let pools = ops[4].dim(2).unwrap() >= 2 && ops[4].dim(3).unwrap() >= 2;
            for name in EPILOGUES
                .into_iter()
                .filter(|&n| n != "relu-pool2" || pools)
            {
                let ours = outputs(|o| fused(name, conv, o), ops.each_ref(), r);
                let theirs = outputs(|o| composed(name, conv, o), ops.each_ref(), r);
                let what = ["out", "mean", "var", "dx", "dk", "dgamma", "dbeta", "dskip"];
                for (what, (o, t)) in what.iter().zip(ours.iter().zip(&theirs)) {
                    let err = max_rel(o, t);
                    assert!(err <= tol, "{dtype:?} {case:?} {name} {what}: {err:e}");
                }
            }
        }
    }
}

/// A transposed (strided) input gives the values of its contiguous copy; an untracked
/// input gets no gradient while the parameters still do.
#[test]
fn strided_and_untracked_inputs() {
    let [x, k, gamma, beta, skip] = operands(0, CASES[0], DType::F64);
    let xt = x.transpose(2, 3).unwrap();
    assert!(!xt.is_contiguous());
    let run = |x: &Tensor| fused("relu", (1, 1), [x, &k, &gamma, &beta, &skip]);
    assert_eq!(
        values(&run(&xt)[0]),
        values(&run(&xt.contiguous().unwrap())[0])
    );
    let kv = Var::from_tensor(&k).unwrap();
    let [out, _, _] = fused("relu", (1, 1), [&x, kv.as_tensor(), &gamma, &beta, &skip]);
    let grads = out.sum_all().unwrap().backward().unwrap();
    assert!(grads.get(&x).is_none() && grads.get(kv.as_tensor()).is_some());
}

/// Results do not depend on the number of threads (bit-identical).
#[test]
fn bit_identical_across_thread_counts() {
    let case = ([16, 3, 12, 12], 8, 3, 1, 1);
    let ops = operands(7, case, DType::F32);
    let run = |threads: usize| {
        on_threads(threads, || {
            EPILOGUES
                .iter()
                .flat_map(|name| {
                    let r = |d: &[usize]| seeded(d, 15, DType::F32);
                    outputs(|o| fused(name, (1, 1), o), ops.each_ref(), r)
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
    let [x, k, gamma, beta, skip] = operands(0, CASES[0], DType::F64);
    let train = |ops: Operands, e| {
        conv_batch_norm_train((ops[0], ops[1]), (1, 1), (ops[2], ops[3]), EPS, e)
    };
    let short = seeded(&[4], 1, DType::F64);
    let err = train([&x, &k, &short, &beta, &skip], Epilogue::Relu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("affine parameters"), "{err}");
    let other = seeded(&[4, 5, 6, 6], 2, DType::F64);
    let err = train([&x, &k, &gamma, &beta, &skip], Epilogue::AddRelu(&other))
        .unwrap_err()
        .to_string();
    assert!(err.contains("residual"), "{err}");
    let thin = seeded(&[2, 3, 1, 5], 3, DType::F64);
    assert!(train([&thin, &k, &gamma, &beta, &skip], Epilogue::ReluPool2).is_err());
    let mixed = gamma.to_dtype(DType::F32).unwrap();
    assert!(train([&x, &k, &mixed, &beta, &skip], Epilogue::Relu).is_err());
}
