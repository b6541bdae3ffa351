//! The block op against the two-op form it replaces (two `conv_batch_norm_train` ops, the
//! shortcut built from candle ops): output, both batch norms' statistics and the
//! gradients of input, kernels, `γ` and `β`, for the identity and the option-A shortcut,
//! odd sides included; f64 to 1e-12 and f32 to 1e-5 of the largest entry; an untracked
//! input; bit-identical results for any thread count; a chain of blocks gives the bits of
//! its blocks applied one by one.

use candle_core::{DType, Tensor, Var};

use super::*;
use crate::cpu_ops::conv::{conv_batch_norm_train, Epilogue};
use crate::cpu_ops::test_util::{bits, max_rel, on_threads, seeded};

const EPS: f64 = 1e-5;

/// `(x: [N, C_in, H, W], planes, stride of the first convolution)`.
type Case = ([usize; 4], usize, usize);

const CASES: [Case; 3] = [
    ([3, 4, 6, 5], 4, 1),
    ([2, 4, 8, 8], 8, 2),
    ([3, 2, 7, 9], 4, 2),
];

/// The operands: input, then `(K, γ, β)` of each convolution.
struct Operands {
    x: Var,
    layers: [[Var; 3]; 2],
}

impl Operands {
    fn new(([n, c, h, w], planes, _): Case, dtype: DType) -> Self {
        let var = |dims: &[usize], seed| Var::from_tensor(&seeded(dims, seed, dtype)).unwrap();
        let layer = |inputs, seed| {
            [
                var(&[planes, inputs, 3, 3], seed),
                var(&[planes], seed + 1),
                var(&[planes], seed + 2),
            ]
        };
        Self {
            x: var(&[n, c, h, w], 1),
            layers: [layer(c, 10), layer(planes, 20)],
        }
    }

    fn all(&self) -> Vec<&Var> {
        std::iter::once(&self.x)
            .chain(self.layers.iter().flatten())
            .collect()
    }
}

/// The shortcut of the case, from candle ops: `x[:, :, ::2, ::2]` padded with zero
/// channels, or `x` itself.
fn candle_shortcut(x: &Tensor, (_, planes, stride): Case) -> Tensor {
    if stride == 1 {
        return x.clone();
    }
    let (n, c, h, w) = x.dims4().unwrap();
    let rows: Vec<u32> = (0..h as u32).step_by(2).collect();
    let cols: Vec<u32> = (0..w as u32).step_by(2).collect();
    let index = |v: Vec<u32>| Tensor::new(v, x.device()).unwrap();
    let sub = x
        .index_select(&index(rows), 2)
        .unwrap()
        .index_select(&index(cols), 3)
        .unwrap();
    let pad = planes / 4;
    let zeros = Tensor::zeros(
        (n, pad, h.div_ceil(2), w.div_ceil(2)),
        x.dtype(),
        x.device(),
    )
    .unwrap();
    assert_eq!(c + 2 * pad, planes);
    Tensor::cat(&[&zeros, &sub, &zeros], 1).unwrap()
}

/// `(out, [mean₁, var₁, mean₂, var₂])` of the two-op form.
fn two_ops(ops: &Operands, case: Case) -> (Tensor, Vec<Tensor>) {
    let [[k1, g1, b1], [k2, g2, b2]] = &ops.layers;
    let (inner, m1, v1) = conv_batch_norm_train(
        (ops.x.as_tensor(), k1.as_tensor()),
        (1, case.2),
        (g1.as_tensor(), b1.as_tensor()),
        EPS,
        Epilogue::Relu,
    )
    .unwrap();
    let skip = candle_shortcut(ops.x.as_tensor(), case);
    let (out, m2, v2) = conv_batch_norm_train(
        (&inner, k2.as_tensor()),
        (1, 1),
        (g2.as_tensor(), b2.as_tensor()),
        EPS,
        Epilogue::AddRelu(&skip),
    )
    .unwrap();
    (out, vec![m1, v1, m2, v2])
}

fn block(ops: &Operands, case: Case) -> (Tensor, Vec<Tensor>) {
    let pad = (case.2 != 1).then_some(case.1 / 4);
    let (out, [(m1, v1), (m2, v2)]) = one_block(
        ops.x.as_tensor(),
        [
            layer(&ops.layers[0], (1, case.2)),
            layer(&ops.layers[1], (1, 1)),
        ],
        pad,
    )
    .unwrap();
    (out, vec![m1, v1, m2, v2])
}

/// Output, statistics, then the gradients of `⟨w, out⟩` for a seeded `w`, in the order
/// of [`Operands::all`].
fn results(
    ops: &Operands,
    case: Case,
    f: fn(&Operands, Case) -> (Tensor, Vec<Tensor>),
) -> Vec<Tensor> {
    let (out, stats) = f(ops, case);
    let weights = seeded(out.dims(), 99, out.dtype());
    let grads = (&out * &weights)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let mut all = vec![out];
    all.extend(stats);
    all.extend(
        ops.all()
            .iter()
            .map(|v| grads.get(v.as_tensor()).unwrap().clone()),
    );
    all
}

#[test]
fn matches_the_two_op_form_in_values_statistics_and_gradients() {
    for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-5)] {
        for case in CASES {
            let ops = Operands::new(case, dtype);
            let (ours, theirs) = (results(&ops, case, block), results(&ops, case, two_ops));
            for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
                let err = max_rel(a, b);
                assert!(err <= tol, "{case:?} {dtype:?} result {i}: {err:e}");
            }
        }
    }
}

/// A chain of one block.
fn one_block(
    x: &Tensor,
    layers: [ConvBn; 2],
    shortcut_pad: Option<usize>,
) -> Result<(Tensor, BlockStats)> {
    let block = Block {
        layers,
        shortcut_pad,
    };
    let (out, mut stats) = residual_blocks_train(x, &[block], EPS)?;
    Ok((out, stats.remove(0)))
}

/// `ConvBn` of one layer's operands.
fn layer([k, g, b]: &[Var; 3], conv: (usize, usize)) -> ConvBn<'_> {
    ConvBn {
        kernel: k.as_tensor(),
        gamma: g.as_tensor(),
        beta: b.as_tensor(),
        conv,
    }
}

#[test]
fn an_untracked_input_gets_no_gradient_and_the_parameters_the_same() {
    let case = CASES[1];
    let ops = Operands::new(case, DType::F64);
    let x = ops.x.as_tensor().detach();
    let layers = [layer(&ops.layers[0], (1, 2)), layer(&ops.layers[1], (1, 1))];
    let (out, _) = one_block(&x, layers, Some(2)).unwrap();
    let weights = seeded(out.dims(), 99, out.dtype());
    let grads = (&out * &weights)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert!(grads.get(&x).is_none());
    let tracked = results(&ops, case, block);
    for (i, var) in ops.layers.iter().flatten().enumerate() {
        assert_eq!(
            bits(grads.get(var.as_tensor()).unwrap()),
            bits(&tracked[6 + i])
        );
    }
}

#[test]
fn bit_identical_across_thread_counts() {
    let case = CASES[0];
    let run = |threads| {
        on_threads(threads, || {
            let ops = Operands::new(case, DType::F32);
            results(&ops, case, block)
                .iter()
                .map(bits)
                .collect::<Vec<_>>()
        })
    };
    assert_eq!(run(1), run(3));
}

#[test]
fn mismatched_shortcuts_and_parameters_are_errors() {
    let ops = Operands::new(CASES[1], DType::F64);
    let layers = [layer(&ops.layers[0], (1, 2)), layer(&ops.layers[1], (1, 1))];
    // The identity cannot be the shortcut of a strided block.
    let err = one_block(ops.x.as_tensor(), layers, None).unwrap_err();
    assert!(err.to_string().contains("shortcut"), "{err}");
    let short = seeded(&[3], 5, DType::F64);
    let wrong = ConvBn {
        gamma: &short,
        ..layers[0]
    };
    let err = one_block(ops.x.as_tensor(), [wrong, layers[1]], Some(2)).unwrap_err();
    assert!(err.to_string().contains("affine"), "{err}");
    let err = residual_blocks_train(ops.x.as_tensor(), &[], EPS).unwrap_err();
    assert!(err.to_string().contains("empty chain"), "{err}");
}

/// Three blocks (identity, option A with stride 2, identity on an odd-sided input) as one
/// chain and one by one: output, every statistic and every gradient, bit for bit.
#[test]
fn a_chain_gives_the_bits_of_its_blocks_one_by_one() {
    let cases: [Case; 3] = [
        ([3, 4, 7, 9], 4, 1),
        ([3, 4, 7, 9], 8, 2),
        ([3, 8, 4, 5], 8, 1),
    ];
    for dtype in [DType::F64, DType::F32] {
        let operands: Vec<Operands> = cases.iter().map(|&c| Operands::new(c, dtype)).collect();
        let blocks: Vec<Block> = cases
            .iter()
            .zip(&operands)
            .map(|(case, ops)| Block {
                layers: [
                    layer(&ops.layers[0], (1, case.2)),
                    layer(&ops.layers[1], (1, 1)),
                ],
                shortcut_pad: (case.2 != 1).then_some(case.1 / 4),
            })
            .collect();
        let x = operands[0].x.as_tensor();
        let chained = residual_blocks_train(x, &blocks, EPS).unwrap();
        let mut out = x.clone();
        let mut stats = Vec::new();
        for block in &blocks {
            let (next, block_stats) = one_block(&out, block.layers, block.shortcut_pad).unwrap();
            out = next;
            stats.push(block_stats);
        }
        let flat = |(out, stats): &(Tensor, Vec<BlockStats>)| {
            let mut all = vec![out.clone()];
            for [(m1, v1), (m2, v2)] in stats {
                all.extend([m1.clone(), v1.clone(), m2.clone(), v2.clone()]);
            }
            all
        };
        let weights = seeded(out.dims(), 99, dtype);
        let with_grads = |all: Vec<Tensor>| {
            let grads = (&all[0] * &weights)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let params = operands.iter().flat_map(|ops| ops.layers.iter().flatten());
            let mut all = all;
            all.extend(
                std::iter::once(&operands[0].x)
                    .chain(params)
                    .map(|v| grads.get(v.as_tensor()).unwrap().clone()),
            );
            all
        };
        let ours = with_grads(flat(&chained));
        let theirs = with_grads(flat(&(out, stats)));
        assert_eq!(ours.len(), 1 + 12 + 1 + 18);
        for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            assert_eq!(bits(a), bits(b), "{dtype:?} result {i}");
        }
    }
}
