//! ResNet HVPs against central differences along random directions (f64) and f32 vs f64.
//!
//! ResNet-32 has 464,154 parameters: a dense Hessian is out of reach, so each check uses a
//! few seeded random unit directions u and compares `H u` with
//! `(∇L(w + h u) − ∇L(w − h u)) / 2h` from exact gradients.

use candle_core::DType;
use saddlescope_nn::{
    drw_weights, Batch, BnMode, HessianOperator, LossSpec, ParamSelection, DRW_BETA,
};

use crate::util::*;

fn to_f32(b: &Batch) -> Batch {
    Batch::new(b.x().to_dtype(DType::F32).unwrap(), b.labels().clone()).unwrap()
}

/// ResNet-32, f64, batch 4 (32×32, BN running stats calibrated on the batch, eval mode):
/// for 2 random directions, `‖Hu − FD‖/‖Hu‖ ≤ 1e-6` (h = 1e-6, no ReLU sign change
/// asserted); the f32 model's HVP matches the f64 one to 1e-4 relative.
#[test]
fn resnet32_hvp_matches_fd_and_f32() {
    let model = model("resnet32", 10, [3, 32, 32], DType::F64, 31);
    assert_eq!(model.param_count(), 464_154);
    let data = batch(4, [3, 32, 32], 10, DType::F64, 32);
    model.calibrate_bn(data.x()).unwrap();
    let counts = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50];
    let loss = LossSpec::Ce.build(&counts, None).unwrap();
    let op = HessianOperator::new(
        &model,
        vec![data.clone()],
        loss.clone(),
        ParamSelection::all(&model),
        BnMode::Eval,
    )
    .unwrap();
    let model32 = model.to_dtype(DType::F32).unwrap();
    let op32 = HessianOperator::new(
        &model32,
        vec![to_f32(&data)],
        loss,
        ParamSelection::all(&model32),
        BnMode::Eval,
    )
    .unwrap();
    for seed in [33, 34] {
        let u = unit(op.dim(), seed);
        let hu = hvp(&op, &u);
        assert_same_signs(&op, &u, 1e-6);
        let err = rel_err(&hu, &fd_hvp(&op, &u, 1e-6));
        assert!(err <= 1e-6, "direction {seed}: ‖Hu − FD‖/‖Hu‖ = {err:e}");
        let err32 = rel_err(&hvp(&op32, &u), &hu);
        assert!(err32 <= 1e-4, "direction {seed}: f32 vs f64 {err32:e}");
        eprintln!("resnet32 direction {seed}: fd {err:e}, f32 vs f64 {err32:e}");
    }
}

/// ResNet-8 with LDAM's NormedLinear head, LDAM-DRW loss, batch-statistics BN (option-A
/// shortcuts in both strided stages): `‖Hu − FD‖/‖Hu‖ ≤ 1e-7` along 2 random directions,
/// no ReLU sign change.
#[test]
fn normed_resnet_ldam_batch_stats_matches_fd() {
    let model = model("resnet8-normed", 3, [3, 8, 8], DType::F64, 41);
    let counts = [50, 12, 3];
    let drw = drw_weights(&counts, DRW_BETA).unwrap();
    let loss = LossSpec::Ldam {
        max_m: 0.5,
        s: 30.0,
    }
    .build(&counts, Some(&drw))
    .unwrap();
    let op = HessianOperator::new(
        &model,
        vec![batch(4, [3, 8, 8], 3, DType::F64, 42)],
        loss,
        ParamSelection::all(&model),
        BnMode::BatchStats,
    )
    .unwrap();
    for seed in [43, 44] {
        let u = unit(op.dim(), seed);
        assert_same_signs(&op, &u, 1e-6);
        let err = rel_err(&hvp(&op, &u), &fd_hvp(&op, &u, 1e-6));
        assert!(err <= 1e-7, "direction {seed}: ‖Hu − FD‖/‖Hu‖ = {err:e}");
        eprintln!("resnet8-normed ldam direction {seed}: fd {err:e}");
    }
}
