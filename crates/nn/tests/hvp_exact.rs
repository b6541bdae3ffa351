//! HVPs against analytic Hessians and dense central-difference Hessians (f64).

use candle_core::DType;
use saddlescope_nn::{BnMode, HessianOperator, LossSpec, ParamSelection};

use crate::util::*;

/// Softmax regression `z = W x + b`, weighted CE: `H = Σ_i a_i (diag p_i − p_i p_iᵀ) ⊗
/// x̃_i x̃_iᵀ / Σ_i a_i` with `x̃ = (x, 1)` and `a_i = w_{y_i}` (1 unweighted). Every column
/// of the HVP matches to 1e-12 relative (max-norm over the matrix).
#[test]
fn softmax_regression_matches_analytic_hessian() {
    let (d, c, n) = (5, 4, 7);
    let model = model("mlp", c, [1, 1, d], DType::F64, 3);
    let data = batch(n, [1, 1, d], c, DType::F64, 11);
    let x: Vec<f64> = data.x().flatten_all().unwrap().to_vec1().unwrap();
    let y: Vec<u32> = data.labels().to_vec1().unwrap();
    let theta = ParamSelection::all(&model).values(&model).unwrap();
    let (w, b) = theta.split_at(c * d);
    let class_w = [0.5, 2.0, 1.0, 3.0];
    for weights in [None, Some(&class_w[..])] {
        let dim = c * d + c;
        let mut h = vec![0.0; dim * dim];
        let mut total = 0.0;
        for i in 0..n {
            let xi = &x[i * d..(i + 1) * d];
            let z: Vec<f64> = (0..c)
                .map(|k| dot(&w[k * d..(k + 1) * d], xi) + b[k])
                .collect();
            let zmax = z.iter().cloned().fold(f64::MIN, f64::max);
            let e: Vec<f64> = z.iter().map(|v| (v - zmax).exp()).collect();
            let p: Vec<f64> = e.iter().map(|v| v / e.iter().sum::<f64>()).collect();
            let a = weights.map_or(1.0, |w| w[y[i] as usize]);
            total += a;
            let feat = |k: usize, j: usize| -> (usize, f64) {
                if j < d {
                    (k * d + j, xi[j])
                } else {
                    (c * d + k, 1.0)
                }
            };
            for k in 0..c {
                for l in 0..c {
                    let s = if k == l { p[k] } else { 0.0 } - p[k] * p[l];
                    for j in 0..=d {
                        for m in 0..=d {
                            let (r, xr) = feat(k, j);
                            let (col, xc) = feat(l, m);
                            h[r * dim + col] += a * s * xr * xc;
                        }
                    }
                }
            }
        }
        let h: Vec<f64> = h.iter().map(|v| v / total).collect();
        let counts = [3, 2, 1, 1];
        let loss = LossSpec::Ce.build(&counts, weights).unwrap();
        let op = HessianOperator::new(
            &model,
            vec![data.clone()],
            loss,
            ParamSelection::all(&model),
            BnMode::Eval,
        )
        .unwrap();
        assert_eq!(op.dim(), dim);
        let scale = h.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let mut worst = 0.0f64;
        for j in 0..dim {
            let col = hvp(&op, &basis(dim, j));
            for i in 0..dim {
                let err = (col[i] - h[i * dim + j]).abs() / scale;
                assert!(
                    err <= 1e-12,
                    "weights {weights:?}: H[{i},{j}] {} vs {} ({err:e})",
                    col[i],
                    h[i * dim + j]
                );
                worst = worst.max(err);
            }
        }
        eprintln!(
            "softmax regression weighted={}: worst entry error {worst:e}",
            weights.is_some()
        );
    }
}

/// Smooth (tanh) MLP and CNN (conv → BN → tanh → avgpool, eval and batch-statistics BN):
/// every column of the dense Hessian from central differences of exact gradients
/// (h = 1e-5) agrees with the HVP to 1e-7 of max|H|.
#[test]
fn tanh_nets_match_dense_fd_hessian() {
    let loss = || LossSpec::Ce.build(&[4, 3, 2], None).unwrap();
    let mlp = model("mlp-tanh:5,4", 3, [1, 2, 3], DType::F64, 1);
    let op = HessianOperator::new(
        &mlp,
        vec![batch(8, [1, 2, 3], 3, DType::F64, 2)],
        loss(),
        ParamSelection::all(&mlp),
        BnMode::Eval,
    )
    .unwrap();
    assert_eq!(op.dim(), 6 * 5 + 5 + 5 * 4 + 4 + 4 * 3 + 3);
    let worst = check_dense_against_fd(&op, 1e-5, 1e-7, false);
    eprintln!("tanh mlp: worst column error {worst:e}");

    let cnn = model("cnn-tanh:2,2", 3, [1, 8, 8], DType::F64, 4);
    for bn in [BnMode::Eval, BnMode::BatchStats] {
        let op = HessianOperator::new(
            &cnn,
            vec![batch(6, [1, 8, 8], 3, DType::F64, 5)],
            loss(),
            ParamSelection::all(&cnn),
            bn,
        )
        .unwrap();
        assert_eq!(op.dim(), 18 + 4 + 36 + 4 + 8 * 3 + 3);
        let worst = check_dense_against_fd(&op, 1e-5, 1e-7, false);
        eprintln!("tanh cnn {bn:?}: worst column error {worst:e}");
    }
}

/// ReLU MLP and conv → BN → ReLU → avgpool CNN (eval and batch-statistics BN): dense
/// central-difference Hessian (h = 1e-5) vs HVP to 1e-7 of max|H|, asserting for every
/// column that no ReLU unit changes sign between w − h e_j and w + h e_j.
#[test]
fn relu_nets_match_dense_fd_without_sign_changes() {
    let loss = || LossSpec::Ce.build(&[4, 3, 2], None).unwrap();
    let mlp = model("mlp:6,5", 3, [1, 2, 3], DType::F64, 6);
    let op = HessianOperator::new(
        &mlp,
        vec![batch(8, [1, 2, 3], 3, DType::F64, 7)],
        loss(),
        ParamSelection::all(&mlp),
        BnMode::Eval,
    )
    .unwrap();
    let worst = check_dense_against_fd(&op, 1e-5, 1e-7, true);
    eprintln!("relu mlp: worst column error {worst:e}");

    let cnn = model("cnn:2,3", 3, [2, 8, 8], DType::F64, 8);
    for bn in [BnMode::Eval, BnMode::BatchStats] {
        let op = HessianOperator::new(
            &cnn,
            vec![batch(5, [2, 8, 8], 3, DType::F64, 9)],
            loss(),
            ParamSelection::all(&cnn),
            bn,
        )
        .unwrap();
        let worst = check_dense_against_fd(&op, 1e-5, 1e-7, true);
        eprintln!("relu cnn {bn:?}: worst column error {worst:e}");
    }
}

/// Every loss: dense central-difference Hessian of a tanh MLP vs HVP (1e-7 of max|H|).
/// The step is h = 2e-6: LDAM's scale s = 30 makes third derivatives large.
#[test]
fn every_loss_matches_dense_fd_hessian() {
    let counts = [40, 9, 3];
    let mlp = model("mlp-tanh:4", 3, [1, 1, 4], DType::F64, 12);
    for (name, loss) in all_losses(&counts) {
        let op = HessianOperator::new(
            &mlp,
            vec![batch(9, [1, 1, 4], 3, DType::F64, 13)],
            loss,
            ParamSelection::all(&mlp),
            BnMode::Eval,
        )
        .unwrap();
        let worst = check_dense_against_fd(&op, 2e-6, 1e-7, false);
        eprintln!("{name}: worst column error {worst:e}");
    }
}

/// Symmetry `uᵀ(Hv) = vᵀ(Hu)` to 1e-10 relative for every loss, on a ReLU CNN with BN in
/// both modes, for random u, v.
#[test]
fn hvp_is_symmetric_for_every_loss() {
    let counts = [40, 9, 3];
    let cnn = model("cnn:3,4", 3, [1, 8, 8], DType::F64, 14);
    for bn in [BnMode::Eval, BnMode::BatchStats] {
        for (name, loss) in all_losses(&counts) {
            let op = HessianOperator::new(
                &cnn,
                vec![batch(6, [1, 8, 8], 3, DType::F64, 15)],
                loss,
                ParamSelection::all(&cnn),
                bn,
            )
            .unwrap();
            let (u, v) = (unit(op.dim(), 16), unit(op.dim(), 17));
            let (uhv, vhu) = (dot(&u, &hvp(&op, &v)), dot(&v, &hvp(&op, &u)));
            let err = (uhv - vhu).abs() / uhv.abs().max(vhu.abs());
            assert!(
                err <= 1e-10,
                "{name} {bn:?}: uHv {uhv} vs vHu {vhu} ({err:e})"
            );
            eprintln!("symmetry {name} {bn:?}: {err:e}");
        }
    }
}

/// The HVP on a block (`linear.`) equals the block rows of the full HVP of a direction
/// supported on that block.
#[test]
fn block_hvp_is_the_sub_block_of_the_full_hvp() {
    let cnn = model("cnn:2,3", 3, [1, 8, 8], DType::F64, 18);
    let data = vec![batch(6, [1, 8, 8], 3, DType::F64, 19)];
    let loss = LossSpec::Ce.build(&[2, 2, 2], None).unwrap();
    let all = ParamSelection::all(&cnn);
    let head = ParamSelection::with_prefixes(&cnn, &["linear.", "bn2."]).unwrap();
    let full =
        HessianOperator::new(&cnn, data.clone(), loss.clone(), all.clone(), BnMode::Eval).unwrap();
    let block = HessianOperator::new(&cnn, data, loss, head.clone(), BnMode::Eval).unwrap();
    let vb = unit(block.dim(), 20);
    let mut vf = vec![0.0; full.dim()];
    let mut offsets = Vec::new();
    for e in head.entries() {
        let f = &all.entries()[e.index];
        assert_eq!(f.name, e.name);
        vf[f.offset..f.offset + f.len].copy_from_slice(&vb[e.offset..e.offset + e.len]);
        offsets.push((f.offset, e.offset, e.len));
    }
    let (hf, hb) = (hvp(&full, &vf), hvp(&block, &vb));
    let mut rows = vec![0.0; block.dim()];
    for (fo, bo, len) in offsets {
        rows[bo..bo + len].copy_from_slice(&hf[fo..fo + len]);
    }
    assert!(rel_err(&hb, &rows) <= 1e-13, "{:e}", rel_err(&hb, &rows));
    let (lf, gf) = full.loss_and_grad_flat().unwrap();
    let (lb, gb) = block.loss_and_grad_flat().unwrap();
    assert!((lf - lb).abs() <= 1e-15 * lf.abs());
    assert!(rel_err(&gb, &gf[gf.len() - gb.len()..]) <= 1e-14);
}

/// Loss-landscape evaluation: `L(w + t u)` follows `L + t gᵀu + ½ t² uᵀHu` with a cubic
/// remainder, and the model's weights are bit-identical afterwards.
#[test]
fn loss_at_follows_the_second_order_expansion() {
    let mlp = model("mlp-tanh:5", 3, [1, 1, 4], DType::F64, 21);
    let before = mlp.state().unwrap();
    let loss = LossSpec::Ce.build(&[3, 3, 3], None).unwrap();
    let op = HessianOperator::new(
        &mlp,
        vec![batch(9, [1, 1, 4], 3, DType::F64, 22)],
        loss,
        ParamSelection::all(&mlp),
        BnMode::Eval,
    )
    .unwrap();
    let u = unit(op.dim(), 23);
    let (l0, g) = op.loss_and_grad_flat().unwrap();
    assert_eq!(l0, op.loss().unwrap());
    let (slope, curv) = (dot(&g, &u), dot(&u, &hvp(&op, &u)));
    let remainder = |t: f64| {
        let tu: Vec<f64> = u.iter().map(|x| t * x).collect();
        (op.loss_at(&tu).unwrap() - (l0 + t * slope + 0.5 * t * t * curv)).abs()
    };
    let (r1, r2) = (remainder(1e-2), remainder(5e-3));
    assert!(
        r1 > 0.0 && (r1 / r2 - 8.0).abs() < 0.5,
        "remainder ratio {} (cubic: 8)",
        r1 / r2
    );
    for ((name, a), (_, b)) in before.iter().zip(mlp.state().unwrap()) {
        let (a, b): (Vec<f64>, Vec<f64>) = (
            a.flatten_all().unwrap().to_vec1().unwrap(),
            b.flatten_all().unwrap().to_vec1().unwrap(),
        );
        assert!(
            a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
            "{name} changed"
        );
    }
}
