//! The linearized HVP (recorded once, tangent passes only) against the plain
//! reverse-over-forward HVP, its multi-direction sweep against single products, and its
//! memory-budget fallback against the kept linearization.

use candle_core::DType;
use saddlescope_nn::{
    Batch, BnMode, HessianOperator, HvpEngine, Loss, LossSpec, Model, ParamSelection,
};

use crate::util::*;

/// The models of the crate: ReLU and tanh MLPs and CNNs, ResNet-8 with both heads.
fn models() -> Vec<(&'static str, Model, [usize; 3])> {
    [
        ("mlp:5,4", [1, 2, 3]),
        ("mlp-tanh:4", [1, 2, 3]),
        ("cnn:3,4", [1, 8, 8]),
        ("cnn-tanh:2,3", [1, 8, 8]),
        ("resnet8", [3, 8, 8]),
        ("resnet8-normed", [3, 8, 8]),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (spec, input))| {
        (
            spec,
            model(spec, 3, input, DType::F64, 50 + i as u64),
            input,
        )
    })
    .collect()
}

fn operator<'a>(
    model: &'a Model,
    batches: Vec<Batch>,
    loss: &Loss,
    selection: ParamSelection,
    bn: BnMode,
) -> HessianOperator<'a> {
    HessianOperator::new(model, batches, loss.clone(), selection, bn).unwrap()
}

/// Two batches of uneven sizes: 9 samples (8x8 convolutions chunk them 8 + 1) and 3.
fn batches(input: [usize; 3], seed: u64) -> Vec<Batch> {
    vec![
        batch(9, input, 3, DType::F64, seed),
        batch(3, input, 3, DType::F64, seed + 1),
    ]
}

/// Every model, loss and batch-norm mode, all parameters and a block: the linearized HVP
/// equals the plain one to 1e-12 relative (f64), over two uneven batches.
#[test]
fn linearized_equals_plain_on_every_model_and_loss() {
    let counts = [40, 9, 3];
    let mut worst = 0.0f64;
    for (spec, model, input) in models() {
        let selections = [
            ParamSelection::all(&model),
            ParamSelection::with_prefixes(&model, &["linear."]).unwrap(),
        ];
        for bn in [BnMode::Eval, BnMode::BatchStats] {
            for (name, loss) in all_losses(&counts) {
                for selection in &selections {
                    let data = batches(input, 60);
                    let plain = operator(&model, data.clone(), &loss, selection.clone(), bn)
                        .with_engine(HvpEngine::Plain);
                    let lin = operator(&model, data, &loss, selection.clone(), bn);
                    let info = lin.linearization().unwrap();
                    assert_eq!((info.kept, info.plain), (2, 0), "{spec} {name} {bn:?}");
                    let v = unit(lin.dim(), 61);
                    let err = rel_err(&hvp(&lin, &v), &hvp(&plain, &v));
                    assert!(
                        err <= 1e-12,
                        "{spec} {name} {bn:?} dim {}: linearized vs plain {err:e}",
                        lin.dim()
                    );
                    worst = worst.max(err);
                }
            }
        }
    }
    eprintln!("linearized vs plain: worst relative error {worst:e}");
}

/// `k` directions in one sweep equal `k` single products bit for bit (f64), on every model
/// with batch-statistics and eval-mode batch norm: block and single products can be mixed
/// (lockstep SLQ probes and a probe recomputed alone agree exactly).
#[test]
fn block_of_directions_equals_single_products() {
    let loss = LossSpec::Ce.build(&[3, 3, 3], None).unwrap();
    for (spec, model, input) in models() {
        for bn in [BnMode::Eval, BnMode::BatchStats] {
            let op = operator(
                &model,
                batches(input, 70),
                &loss,
                ParamSelection::all(&model),
                bn,
            );
            let vs: Vec<Vec<f64>> = (0..3).map(|j| unit(op.dim(), 71 + j)).collect();
            let refs: Vec<&[f64]> = vs.iter().map(Vec::as_slice).collect();
            let mut outs = vec![vec![0.0; op.dim()]; 3];
            let mut out_refs: Vec<&mut [f64]> = outs.iter_mut().map(Vec::as_mut_slice).collect();
            op.hvp_block_flat(&refs, &mut out_refs).unwrap();
            for (j, v) in vs.iter().enumerate() {
                let single = hvp(&op, v);
                let same = outs[j]
                    .iter()
                    .zip(&single)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(
                    same,
                    "{spec} {bn:?} direction {j}: {:e}",
                    rel_err(&outs[j], &single)
                );
            }
        }
    }
}

/// A budget of 0 bytes recomputes the linearization at every product: bit-identical
/// results, in f32 and f64.
#[test]
fn memory_budget_fallback_is_bit_identical() {
    let loss = LossSpec::Ce.build(&[3, 3, 3], None).unwrap();
    for dtype in [DType::F64, DType::F32] {
        let cnn = model("cnn:3,4", 3, [1, 8, 8], dtype, 80);
        let data = vec![
            batch(5, [1, 8, 8], 3, dtype, 81),
            batch(4, [1, 8, 8], 3, dtype, 82),
        ];
        let kept = operator(
            &cnn,
            data.clone(),
            &loss,
            ParamSelection::all(&cnn),
            BnMode::Eval,
        );
        let none = operator(
            &cnn,
            data.clone(),
            &loss,
            ParamSelection::all(&cnn),
            BnMode::Eval,
        )
        .with_memory_budget(0);
        let info = none.linearization().unwrap();
        assert_eq!((info.kept, info.recomputed, info.bytes), (0, 2, 0));
        // Room for the first batch, not for both.
        let both = kept.linearization().unwrap().bytes;
        let part = operator(&cnn, data, &loss, ParamSelection::all(&cnn), BnMode::Eval)
            .with_memory_budget(both - 1);
        let info = part.linearization().unwrap();
        assert_eq!((info.kept, info.recomputed), (1, 1), "{dtype:?}");
        let v = unit(kept.dim(), 83);
        let bits = |op: &HessianOperator| -> Vec<u64> {
            hvp(op, &v).iter().map(|x| x.to_bits()).collect()
        };
        assert_eq!(bits(&kept), bits(&none), "{dtype:?}");
        assert_eq!(bits(&kept), bits(&part), "{dtype:?}");
    }
}

/// f32 linearized HVPs match the plain f32 path to f32 accuracy (1e-5 relative).
#[test]
fn f32_linearized_matches_plain() {
    let loss = LossSpec::Ce.build(&[3, 3, 3], None).unwrap();
    let cnn = model("cnn:3,4", 3, [1, 8, 8], DType::F32, 90);
    let data = vec![batch(8, [1, 8, 8], 3, DType::F32, 91)];
    let lin = operator(
        &cnn,
        data.clone(),
        &loss,
        ParamSelection::all(&cnn),
        BnMode::Eval,
    );
    let plain = operator(&cnn, data, &loss, ParamSelection::all(&cnn), BnMode::Eval)
        .with_engine(HvpEngine::Plain);
    let v = unit(lin.dim(), 92);
    let err = rel_err(&hvp(&lin, &v), &hvp(&plain, &v));
    assert!(err <= 1e-5, "f32 linearized vs plain {err:e}");
}

/// f64 products are bit-identical with 1 and 2 worker threads (single and block).
#[test]
fn f64_products_are_identical_across_thread_counts() {
    let loss = LossSpec::Ce.build(&[3, 3, 3], None).unwrap();
    let net = model("resnet8", 3, [3, 8, 8], DType::F64, 95);
    let run = |threads: usize| -> Vec<u64> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let op = operator(
                &net,
                batches([3, 8, 8], 96),
                &loss,
                ParamSelection::all(&net),
                BnMode::Eval,
            );
            let (a, b) = (unit(op.dim(), 97), unit(op.dim(), 98));
            let mut outs = vec![vec![0.0; op.dim()]; 2];
            let mut refs: Vec<&mut [f64]> = outs.iter_mut().map(Vec::as_mut_slice).collect();
            op.hvp_block_flat(&[&a, &b], &mut refs).unwrap();
            outs.concat()
                .into_iter()
                .chain(hvp(&op, &a))
                .map(f64::to_bits)
                .collect()
        })
    };
    assert_eq!(run(1), run(2));
}
