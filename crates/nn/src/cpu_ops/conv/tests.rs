//! The custom ops against candle's own `conv2d` / `conv_transpose2d` and candle's
//! gradients of its `conv2d`, on odd sizes, strides 1 and 2, padding 0 and 1, batch > 1.
//!
//! Tolerances: `max |ours − candle| ≤ tol · max |candle|` with `tol = 1e-12` in f64 and
//! `1e-5` in f32 (both sums have a few hundred terms; the orders of summation differ).

use candle_core::{DType, Tensor, Var, WithDType};

use super::kernels::{self, Geometry, Input};
use super::{
    conv2d, conv2d_add, conv2d_tangent, input_grad, rows, weight_grad, Conv, InputGrad, WeightGrad,
};
use crate::cpu_ops::batch_norm as bn;
use crate::cpu_ops::custom::CpuOp;
use crate::cpu_ops::test_util::{max_rel, on_threads, seeded, values};

/// `(n, c_in, h, w, c_out, kh, kw, padding, stride)`. candle's `conv_transpose2d` (and so
/// its conv backward) takes one output padding for both axes, so every strided case drops
/// as many rows as columns.
type Case = (
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
);

const CASES: [Case; 13] = [
    (3, 2, 7, 9, 4, 3, 3, 1, 1),
    (3, 2, 7, 9, 4, 3, 3, 1, 2),
    (2, 3, 8, 8, 5, 3, 3, 1, 2),
    (2, 3, 6, 5, 2, 3, 3, 0, 1),
    (5, 1, 5, 8, 3, 2, 3, 1, 2),
    (2, 4, 4, 4, 3, 1, 1, 0, 2),
    // Wide images: samples go 3 to a GEMM, the last chunk holds 2.
    (5, 2, 15, 14, 3, 3, 3, 1, 1),
    (5, 2, 29, 29, 3, 3, 3, 1, 2),
    // Stride-1 "same" convolutions with 8 or more input channels take the row-expansion
    // path (`rows`): five samples stacked in one GEMM (and, transposed, the input
    // gradient's), three with a 5x5 kernel (two shared zero rows), one sample per GEMM,
    // and nine chunks of 8 samples and a last one of 1, so that a task reuses its scratch
    // for a chunk of another layout.
    (5, 8, 7, 9, 9, 3, 3, 1, 1),
    (3, 8, 15, 14, 5, 3, 3, 1, 1),
    (3, 9, 6, 7, 2, 5, 5, 2, 1),
    (2, 8, 23, 23, 8, 3, 3, 1, 1),
    (65, 8, 8, 8, 3, 3, 3, 1, 1),
];

/// The cases above that were meant for the row-expansion path do take it (forward and
/// weight gradient; the input gradient too where `c_out ≥ 8`).
#[test]
fn row_expansion_cases_take_it() {
    let geometry = |&(n, c, h, w, o, kh, kw, p, s): &Case| {
        Geometry::new([n, c, h, w], [o, c, kh, kw], p, s).unwrap()
    };
    let taking: Vec<bool> = CASES.iter().map(|c| rows::applies(&geometry(c))).collect();
    assert_eq!(taking.iter().filter(|&&t| t).count(), 5, "{taking:?}");
    assert!(CASES[8..].iter().all(|c| rows::applies(&geometry(c))));
    let flipped = |&(n, _, h, w, o, kh, kw, p, s): &Case| {
        let c = CASES[8].1;
        Geometry::new([n, o, h, w], [c, o, kh, kw], p, s).unwrap()
    };
    assert!(rows::applies(&flipped(&CASES[8])) && rows::applies(&flipped(&CASES[11])));
}

fn tolerance(dtype: DType) -> f64 {
    if dtype == DType::F64 {
        1e-12
    } else {
        1e-5
    }
}

/// The tensors of one case: input, kernel and an output-shaped weight `r`.
fn operands(case: Case, dtype: DType, seed: u64) -> (Tensor, Tensor, Tensor) {
    let (n, c, h, w, o, kh, kw, p, s) = case;
    let x = seeded(&[n, c, h, w], seed, dtype);
    let k = seeded(&[o, c, kh, kw], seed + 1, dtype);
    let (ho, wo) = ((h + 2 * p - kh) / s + 1, (w + 2 * p - kw) / s + 1);
    let r = seeded(&[n, o, ho, wo], seed + 2, dtype);
    (x, k, r)
}

#[test]
fn forward_matches_candle_conv2d() {
    for dtype in [DType::F64, DType::F32] {
        for (i, &case) in CASES.iter().enumerate() {
            let (x, k, _) = operands(case, dtype, 10 * i as u64);
            let (p, s) = (case.7, case.8);
            let err = max_rel(
                &conv2d(&x, &k, p, s).unwrap(),
                &x.conv2d(&k, p, s, 1, 1).unwrap(),
            );
            assert!(err <= tolerance(dtype), "{dtype:?} case {case:?}: {err:e}");
        }
    }
}

/// The input gradient is the transposed convolution, with candle's output padding for the
/// rows a strided convolution drops.
#[test]
fn input_grad_matches_candle_conv_transpose2d() {
    for dtype in [DType::F64, DType::F32] {
        for (i, &case) in CASES.iter().enumerate() {
            let (_, _, h, w, _, kh, _, p, s) = case;
            let (_, k, r) = operands(case, dtype, 10 * i as u64);
            let out_padding = h - ((r.dim(2).unwrap() - 1) * s + kh - 2 * p);
            let theirs = r.conv_transpose2d(&k, p, out_padding, s, 1).unwrap();
            let ours = input_grad(&r, &k, p, s, (h, w)).unwrap();
            let err = max_rel(&ours, &theirs);
            assert!(err <= tolerance(dtype), "{dtype:?} case {case:?}: {err:e}");
        }
    }
}

/// First-order gradients of `⟨r, conv(x, k)⟩` through the custom op equal candle's
/// gradients through its own `conv2d`, for both arguments.
#[test]
fn gradients_match_candle() {
    for dtype in [DType::F64, DType::F32] {
        for (i, &case) in CASES.iter().enumerate() {
            let (x, k, r) = operands(case, dtype, 10 * i as u64);
            let (p, s) = (case.7, case.8);
            let (xv, kv) = (Var::from_tensor(&x).unwrap(), Var::from_tensor(&k).unwrap());
            let grads = |y: Tensor| {
                let g = y.mul(&r).unwrap().sum_all().unwrap().backward().unwrap();
                let dx = g.get(xv.as_tensor()).unwrap().clone();
                let dk = g.get(kv.as_tensor()).unwrap().clone();
                (dx, dk)
            };
            let (dx, dk) = grads(conv2d(xv.as_tensor(), kv.as_tensor(), p, s).unwrap());
            let (tx, tk) = grads(xv.as_tensor().conv2d(kv.as_tensor(), p, s, 1, 1).unwrap());
            for (what, ours, theirs) in [("x", &dx, &tx), ("k", &dk, &tk)] {
                let err = max_rel(ours, theirs);
                assert!(
                    err <= tolerance(dtype),
                    "{dtype:?} d{what} {case:?}: {err:e}"
                );
            }
            let direct = weight_grad(&x, &r, p, s, (case.5, case.6)).unwrap();
            assert!(max_rel(&direct, &tk) <= tolerance(dtype));
        }
    }
}

/// The backward of the two gradient ops (what an HVP's dual graph and a double backward
/// differentiate): by the trilinear identity `⟨m, InputGrad(g, k)⟩ = ⟨g, conv(m, k)⟩` and
/// `⟨m, WeightGrad(x, g)⟩ = ⟨g, conv(x, m)⟩`, their gradients are candle's gradients of
/// the right-hand sides (f64, 1e-12).
#[test]
fn gradient_ops_differentiate_exactly() {
    for (i, &case) in CASES.iter().enumerate() {
        let (_, _, h, w, _, kh, kw, p, s) = case;
        let (x, k, r) = operands(case, DType::F64, 10 * i as u64);
        let m_x = seeded(x.dims(), 100 + i as u64, DType::F64);
        let m_k = seeded(k.dims(), 200 + i as u64, DType::F64);
        let vars = [&r, &k, &x].map(|t| Var::from_tensor(t).unwrap());
        let [rv, kv, xv] = vars.each_ref().map(|v| v.as_tensor());
        let grad_of = |scalar: Tensor, wrt: [&Tensor; 2]| {
            let g = scalar.backward().unwrap();
            wrt.map(|t| g.get(t).unwrap().clone())
        };
        let pair = |ours: [Tensor; 2], theirs: [Tensor; 2], what: &str| {
            for (o, t) in ours.iter().zip(&theirs) {
                let err = max_rel(o, t);
                assert!(err <= 1e-12, "{what} {case:?}: {err:e}");
            }
        };
        // InputGrad(g = r, k), contracted with m_x.
        let ours = input_grad(rv, kv, p, s, (h, w)).unwrap();
        let ours = grad_of(ours.mul(&m_x).unwrap().sum_all().unwrap(), [rv, kv]);
        let theirs = m_x.conv2d(kv, p, s, 1, 1).unwrap().mul(rv).unwrap();
        let theirs = grad_of(theirs.sum_all().unwrap(), [rv, kv]);
        pair(ours, theirs, "input grad");
        // WeightGrad(x, g = r), contracted with m_k.
        let ours = weight_grad(xv, rv, p, s, (kh, kw)).unwrap();
        let ours = grad_of(ours.mul(&m_k).unwrap().sum_all().unwrap(), [xv, rv]);
        let theirs = xv.conv2d(&m_k, p, s, 1, 1).unwrap().mul(rv).unwrap();
        let theirs = grad_of(theirs.sum_all().unwrap(), [xv, rv]);
        pair(ours, theirs, "weight grad");
    }
}

/// `conv2d_add` with a per-channel shift or a full addend equals candle's `conv2d` plus
/// that addend, and its three gradients equal candle's through the composition (a shift's
/// gradient is a channel sum, a full addend's the output gradient itself).
#[test]
fn conv_add_matches_conv_plus_addend_with_gradients() {
    for dtype in [DType::F64, DType::F32] {
        for (i, &case) in CASES.iter().enumerate() {
            let (x, k, r) = operands(case, dtype, 10 * i as u64);
            let (p, s) = (case.7, case.8);
            let z = seeded(&[case.4], 50 + i as u64, dtype);
            let vars = [&x, &k, &z].map(|t| Var::from_tensor(t).unwrap());
            let [xv, kv, zv] = vars.each_ref().map(|v| v.as_tensor());
            let ours = with_grads(conv2d_add(xv, kv, zv, p, s).unwrap(), &r, &[xv, kv, zv]);
            let theirs = with_grads(
                xv.conv2d(kv, p, s, 1, 1)
                    .unwrap()
                    .broadcast_add(&zv.reshape((1, case.4, 1, 1)).unwrap())
                    .unwrap(),
                &r,
                &[xv, kv, zv],
            );
            for (what, (o, t)) in ["y", "dx", "dk", "dz"].iter().zip(ours.iter().zip(&theirs)) {
                let err = max_rel(o, t);
                assert!(
                    err <= tolerance(dtype),
                    "{dtype:?} {what} {case:?}: {err:e}"
                );
            }
        }
    }
}

/// `[y, ∂⟨r, y⟩/∂v for v in vars]`.
fn with_grads(y: Tensor, r: &Tensor, vars: &[&Tensor]) -> Vec<Tensor> {
    let g = y.mul(r).unwrap().sum_all().unwrap().backward().unwrap();
    let mut out = vec![y];
    out.extend(vars.iter().map(|v| g.get(v).unwrap().clone()));
    out
}

/// The stacked tangent convolution equals `conv(ẋ, k) + conv(x, k̇) (+ ż)` by candle's
/// convolutions, value and all five gradients, with and without the shift.
#[test]
fn conv_tangent_matches_two_convolutions_with_gradients() {
    for dtype in [DType::F64, DType::F32] {
        for (i, &case) in CASES.iter().enumerate() {
            let seed = 10 * i as u64;
            let (x, k, r) = operands(case, dtype, seed);
            let (x_dot, k_dot, _) = operands(case, dtype, seed + 5);
            let (p, s) = (case.7, case.8);
            let z = seeded(&[case.4], seed + 9, dtype);
            let vars = [&x, &x_dot, &k, &k_dot, &z].map(|t| Var::from_tensor(t).unwrap());
            let all = vars.each_ref().map(|v| v.as_tensor());
            let [xv, xdv, kv, kdv, zv] = all;
            for shift in [Some(zv), None] {
                let tracked = if shift.is_some() { &all[..] } else { &all[..4] };
                let ours = conv2d_tangent(xv, xdv, kv, kdv, shift, p, s).unwrap();
                let sum = (xdv.conv2d(kv, p, s, 1, 1).unwrap()
                    + xv.conv2d(kdv, p, s, 1, 1).unwrap())
                .unwrap();
                let theirs = match shift {
                    Some(z) => sum
                        .broadcast_add(&z.reshape((1, case.4, 1, 1)).unwrap())
                        .unwrap(),
                    None => sum,
                };
                let ours = with_grads(ours, &r, tracked);
                let theirs = with_grads(theirs, &r, tracked);
                let names = ["y", "dx", "dx_dot", "dk", "dk_dot", "dz"];
                for (what, (o, t)) in names.iter().zip(ours.iter().zip(&theirs)) {
                    let err = max_rel(o, t);
                    assert!(
                        err <= tolerance(dtype),
                        "{dtype:?} {what} {case:?} shift {}: {err:e}",
                        shift.is_some()
                    );
                }
            }
        }
    }
}

/// Untracked arguments (input images, HVP directions) get no gradient at all.
#[test]
fn untracked_arguments_get_none() {
    let case = CASES[1];
    let (x, k, r) = operands(case, DType::F64, 3);
    let kv = Var::from_tensor(&k).unwrap();
    let (p, s) = (case.7, case.8);
    let y = conv2d(&x, kv.as_tensor(), p, s).unwrap();
    let conv = Conv {
        padding: p,
        stride: s,
    };
    let [dx, dk] = conv.backward([&x, kv.as_tensor()], &y, &r).unwrap();
    assert!(dx.is_none() && dk.is_some());
    let [dx, dk] = conv.backward([&x, &k], &y, &r).unwrap();
    assert!(dx.is_none() && dk.is_none());
    let ig = InputGrad {
        padding: p,
        stride: s,
        h: case.2,
        w: case.3,
    };
    assert!(matches!(
        ig.backward([&r, &k], &x, &x).unwrap(),
        [None, None]
    ));
    let wg = WeightGrad {
        padding: p,
        stride: s,
        kh: case.5,
        kw: case.6,
    };
    assert!(matches!(
        wg.backward([&x, &r], &k, &k).unwrap(),
        [None, None]
    ));
    let grads = y.mul(&r).unwrap().sum_all().unwrap().backward().unwrap();
    assert!(grads.get(&x).is_none());
}

/// Non-contiguous arguments (a transposed input, a broadcast kernel) are read through
/// their strides.
#[test]
fn strided_arguments() {
    let x = seeded(&[2, 3, 9, 7], 5, DType::F64)
        .transpose(2, 3)
        .unwrap();
    let k = seeded(&[1, 3, 3, 3], 6, DType::F64)
        .broadcast_as((4, 3, 3, 3))
        .unwrap();
    assert!(!x.is_contiguous() && !k.is_contiguous());
    let ours = conv2d(&x, &k, 1, 2).unwrap();
    let theirs = x
        .contiguous()
        .unwrap()
        .conv2d(&k.contiguous().unwrap(), 1, 2, 1, 1);
    assert!(max_rel(&ours, &theirs.unwrap()) <= 1e-12);
}

/// Results do not depend on the number of threads (bit-identical), so analyses are
/// reproducible on any machine.
#[test]
fn bit_identical_across_thread_counts() {
    // im2col, and the row expansion (two chunks of 8 and 1 samples).
    for case in [(9, 3, 8, 8, 4, 3, 3, 1, 1), (9, 8, 8, 8, 8, 3, 3, 1, 1)] {
        let (x, k, r) = operands(case, DType::F32, 7);
        let run = |threads: usize| {
            on_threads(threads, || {
                [
                    conv2d(&x, &k, 1, 1).unwrap(),
                    input_grad(&r, &k, 1, 1, (8, 8)).unwrap(),
                    weight_grad(&x, &r, 1, 1, (3, 3)).unwrap(),
                ]
                .map(|t| values(&t))
            })
        };
        assert_eq!(run(1), run(3), "{case:?}");
    }
}

/// Bad shapes are errors, not panics.
#[test]
fn mismatched_shapes_are_errors() {
    let x = seeded(&[2, 3, 5, 5], 1, DType::F64);
    let k = seeded(&[4, 2, 3, 3], 2, DType::F64);
    let err = conv2d(&x, &k, 1, 1).unwrap_err().to_string();
    assert!(err.contains("2 input channels"), "{err}");
    let big = seeded(&[4, 3, 9, 9], 3, DType::F64);
    assert!(conv2d(&x, &big, 1, 1).is_err());
    assert!(conv2d(&x, &seeded(&[4, 3, 3, 3], 2, DType::F64), 1, 0).is_err());
    let wrong = seeded(&[2, 4, 4, 4], 4, DType::F64);
    assert!(input_grad(&wrong, &seeded(&[4, 3, 3, 3], 2, DType::F64), 1, 1, (5, 5)).is_err());
    assert!(conv2d(&x, &seeded(&[4, 3, 3, 3], 2, DType::F32), 1, 1).is_err());
}

/// The input gradient with an addend (a residual's other gradient, added chunk by chunk
/// while in cache) is the input gradient plus the addend afterwards, bit for bit, on every
/// path (flipped forward convolution, row expansion, col2im) and chunking; the kernel
/// gradient beside it is unchanged.
#[test]
fn input_gradient_plus_addend_is_the_sum_bit_for_bit() {
    fn check<T: WithDType>(g: &Geometry, [x, k, r, a]: [&Tensor; 4]) {
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<T>().unwrap();
        let (x, k, r, a) = (flat(x), flat(k), flat(r), flat(a));
        let run = |addend| kernels::gradients(g, Input::single(&x), &r, &k, (true, addend));
        let ((dk, Some(dx)), (dk_plus, Some(dx_plus))) =
            (run(None).unwrap(), run(Some(&a)).unwrap())
        else {
            panic!("no input gradient")
        };
        let bits = |v: &[T]| v.iter().map(|x| x.to_f64().to_bits()).collect::<Vec<_>>();
        let summed: Vec<T> = dx.iter().zip(&a).map(|(&d, &v)| d + v).collect();
        assert_eq!(bits(&dx_plus), bits(&summed), "{g:?}");
        assert_eq!(bits(&dk_plus), bits(&dk), "{g:?}");
    }
    for dtype in [DType::F64, DType::F32] {
        for (i, &case) in CASES.iter().enumerate() {
            let (n, c, h, w, o, kh, kw, p, s) = case;
            let (x, k, r) = operands(case, dtype, 10 * i as u64);
            let a = seeded(x.dims(), 10 * i as u64 + 7, dtype);
            let g = Geometry::new([n, c, h, w], [o, c, kh, kw], p, s).unwrap();
            match dtype {
                DType::F64 => check::<f64>(&g, [&x, &k, &r, &a]),
                _ => check::<f32>(&g, [&x, &k, &r, &a]),
            }
        }
    }
}

/// A batch norm's `relu(BN(y))` read straight from `y` (`Input::relu_normalized`) gives
/// the output, the moments and the kernel gradient of a convolution of the materialized
/// activation, bit for bit: through the row expansion and through im2col (stride 2), in
/// several chunks of samples, odd sides, f64 and f32.
#[test]
fn a_normalized_input_is_the_materialized_activation_bit_for_bit() {
    fn check<T: WithDType>(dtype: DType) {
        let flat = |t: Tensor| t.flatten_all().unwrap().to_vec1::<T>().unwrap();
        let dims = [5, 8, 21, 23];
        let y = flat(seeded(&dims, 1, dtype));
        let affine = flat(seeded(&[16], 2, dtype));
        let k = flat(seeded(&[4, 8, 3, 3], 3, dtype));
        let dy = flat(seeded(&[5, 4, 21, 23], 4, dtype));
        let act = bn::Dims::new(bn::Act::Relu, dims).unwrap();
        let moments = bn::Moments::per_channel(&y, 8, 21 * 23);
        let (inner, stats) = bn::forward(&act, (&y, &moments), &affine, None, 1e-5).unwrap();
        let normalize = bn::Normalize::all(&stats);
        let materialized = Input::single(&inner);
        let read = Input::relu_normalized(&y, &normalize);
        let bits = |v: &[T]| v.iter().map(|x| x.to_f64().to_bits()).collect::<Vec<_>>();
        for stride in [1, 2] {
            let g = Geometry::new(dims, [4, 8, 3, 3], 1, stride).unwrap();
            assert_eq!(rows::applies(&g), stride == 1);
            assert!(g.n.div_ceil(g.samples_per_gemm()) > 1);
            let (out, m) = kernels::forward_moments(&g, materialized, &k).unwrap();
            let (out_read, m_read) = kernels::forward_moments(&g, read, &k).unwrap();
            assert_eq!(bits(&out_read), bits(&out), "stride {stride}");
            assert_eq!(m_read, m, "stride {stride}");
            let dy = &dy[..g.n * g.y_len()];
            let dk = kernels::weight_grad(&g, materialized, dy).unwrap();
            let dk_read = kernels::weight_grad(&g, read, dy).unwrap();
            assert_eq!(bits(&dk_read), bits(&dk), "stride {stride}");
        }
    }
    check::<f64>(DType::F64);
    check::<f32>(DType::F32);
}
