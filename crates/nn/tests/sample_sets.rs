//! Sample-set means over batches and batch-norm buffer safety.

use candle_core::{DType, Device, Tensor};
use saddlescope_nn::{
    drw_weights, Batch, BnMode, Dual, HessianOperator, LossSpec, ParamSelection, DRW_BETA,
};

use crate::util::*;

fn concat(batches: &[Batch]) -> Batch {
    let xs: Vec<Tensor> = batches.iter().map(|b| b.x().clone()).collect();
    let ys: Vec<Tensor> = batches.iter().map(|b| b.labels().clone()).collect();
    Batch::new(Tensor::cat(&xs, 0).unwrap(), Tensor::cat(&ys, 0).unwrap()).unwrap()
}

/// Loss, gradient and HVP over 3 uneven batches (5, 2, 9) equal those of their union to
/// 1e-12 relative, for unweighted CE and for every weighted loss (batch weights are the
/// losses' PyTorch denominators).
#[test]
fn mean_over_uneven_batches_equals_union() {
    let cnn = model("cnn:2,3", 3, [1, 8, 8], DType::F64, 51);
    let parts: Vec<Batch> = [(5, 52), (2, 53), (9, 54)]
        .iter()
        .map(|&(n, seed)| batch(n, [1, 8, 8], 3, DType::F64, seed))
        .collect();
    let union = concat(&parts);
    let counts = [30, 8, 2];
    let drw = drw_weights(&counts, DRW_BETA).unwrap();
    for (name, w) in [
        ("ce", None),
        ("ce", Some(&drw[..])),
        ("ldam", Some(&drw[..])),
        ("focal", Some(&drw[..])),
    ] {
        let loss = name.parse::<LossSpec>().unwrap().build(&counts, w).unwrap();
        let split = HessianOperator::new(
            &cnn,
            parts.clone(),
            loss.clone(),
            ParamSelection::all(&cnn),
            BnMode::Eval,
        )
        .unwrap();
        let whole = HessianOperator::new(
            &cnn,
            vec![union.clone()],
            loss,
            ParamSelection::all(&cnn),
            BnMode::Eval,
        )
        .unwrap();
        assert_eq!(split.samples(), 16);
        let v = unit(split.dim(), 55);
        let (ls, gs) = split.loss_and_grad_flat().unwrap();
        let (lw, gw) = whole.loss_and_grad_flat().unwrap();
        assert!(
            (ls - lw).abs() <= 1e-12 * lw.abs(),
            "{name}: loss {ls} vs {lw}"
        );
        assert!(
            rel_err(&gs, &gw) <= 1e-12,
            "{name}: gradient {:e}",
            rel_err(&gs, &gw)
        );
        let err = rel_err(&hvp(&split, &v), &hvp(&whole, &v));
        assert!(err <= 1e-12, "{name} weighted={}: HVP {err:e}", w.is_some());
        eprintln!("union {name} weighted={}: HVP {err:e}", w.is_some());
    }
}

fn buffer_bits(model: &saddlescope_nn::Model) -> Vec<Vec<u64>> {
    model
        .buffers()
        .iter()
        .map(|(_, v)| {
            let x: Vec<f64> = v.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
            x.iter().map(|f| f.to_bits()).collect()
        })
        .collect()
}

/// A train-mode (batch statistics) HVP, loss, gradient and landscape evaluation leave the
/// running statistics bit-identical, while a training forward does change them.
#[test]
fn batch_stats_hvp_leaves_running_stats_bit_identical() {
    let cnn = model("cnn:2,3", 3, [1, 8, 8], DType::F64, 61);
    let data = batch(6, [1, 8, 8], 3, DType::F64, 62);
    cnn.calibrate_bn(data.x()).unwrap();
    let before = buffer_bits(&cnn);
    let loss = LossSpec::Ce.build(&[2, 2, 2], None).unwrap();
    let op = HessianOperator::new(
        &cnn,
        vec![data.clone()],
        loss,
        ParamSelection::all(&cnn),
        BnMode::Train,
    )
    .unwrap();
    assert_eq!(op.bn_mode(), BnMode::BatchStats);
    let v = unit(op.dim(), 63);
    let hv = hvp(&op, &v);
    op.loss_and_grad_flat().unwrap();
    op.loss_at(&v).unwrap();
    assert_eq!(buffer_bits(&cnn), before);
    let eval = HessianOperator::new(
        &cnn,
        vec![data.clone()],
        LossSpec::Ce.build(&[2, 2, 2], None).unwrap(),
        ParamSelection::all(&cnn),
        BnMode::Eval,
    )
    .unwrap();
    assert!(
        rel_err(&hvp(&eval, &v), &hv) > 1e-3,
        "batch statistics must change H"
    );
    cnn.forward(data.x(), BnMode::BatchStats).unwrap();
    assert_eq!(buffer_bits(&cnn), before);
    cnn.forward(data.x(), BnMode::Train).unwrap();
    assert_ne!(buffer_bits(&cnn), before);
}

/// ResNet-8's training forward, its residual blocks one fused op, gives the logits and
/// updates every batch norm's running statistics as the layers composed one by one (the
/// path dual values take): f64, to 1e-12 relative, every buffer changed.
#[test]
fn fused_residual_blocks_match_the_composed_layers_in_logits_and_running_stats() {
    let fused = model("resnet8", 3, [3, 8, 8], DType::F64, 91);
    let composed = model("resnet8", 3, [3, 8, 8], DType::F64, 91);
    let data = batch(4, [3, 8, 8], 3, DType::F64, 92);
    let before = buffer_values(&fused);
    let logits = fused.forward(data.x(), BnMode::Train).unwrap();
    let params: Vec<Dual> = composed
        .trainable()
        .iter()
        .map(|(_, v)| Dual::new(v.as_tensor().clone(), None))
        .collect();
    let x = Dual::new(data.x().clone(), None);
    let reference = composed.forward_with(&params, &x, BnMode::Train).unwrap();
    let flat = |t: &Tensor| -> Vec<f64> { t.flatten_all().unwrap().to_vec1().unwrap() };
    let err = rel_err(&flat(&logits), &flat(&reference.primal));
    assert!(err <= 1e-12, "logits: {err:e}");
    let (ours, theirs) = (buffer_values(&fused), buffer_values(&composed));
    let names = fused.buffers().iter().map(|(name, _)| name.clone());
    for (name, ((a, b), old)) in names.zip(ours.iter().zip(&theirs).zip(&before)) {
        let err = rel_err(a, b);
        assert!(err <= 1e-12, "{name}: {err:e}");
        assert_ne!(a, old, "{name} was not updated");
    }
}

fn buffer_values(model: &saddlescope_nn::Model) -> Vec<Vec<f64>> {
    model
        .buffers()
        .iter()
        .map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap())
        .collect()
}

/// A training forward updates `bn1`'s running stats as PyTorch: `0.9·old + 0.1·batch`,
/// with the unbiased batch variance, checked against statistics computed by hand from
/// `conv1`'s output.
#[test]
fn train_forward_updates_running_stats_as_pytorch() {
    let cnn = model("cnn:2,3", 3, [1, 8, 8], DType::F64, 71);
    let data = batch(3, [1, 8, 8], 3, DType::F64, 72);
    let w = cnn.trainable()[0].1.as_tensor().clone();
    assert_eq!(cnn.trainable()[0].0, "conv1.weight");
    let y = data.x().conv2d(&w, 1, 1, 1, 1).unwrap();
    let (n, c, h, wd) = y.dims4().unwrap();
    let vals: Vec<f64> = y
        .permute((1, 0, 2, 3))
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let m = n * h * wd;
    cnn.forward(data.x(), BnMode::Train).unwrap();
    let find = |name: &str| -> Vec<f64> {
        let (_, v) = cnn.buffers().iter().find(|(n, _)| n == name).unwrap();
        v.as_tensor().to_vec1().unwrap()
    };
    let (rm, rv) = (find("bn1.running_mean"), find("bn1.running_var"));
    for ch in 0..c {
        let xs = &vals[ch * m..(ch + 1) * m];
        let mean = xs.iter().sum::<f64>() / m as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (m as f64 - 1.0);
        assert!((rm[ch] - 0.1 * mean).abs() < 1e-14, "mean {ch}");
        assert!((rv[ch] - (0.9 + 0.1 * var)).abs() < 1e-14, "var {ch}");
    }
}

/// A batch norm in train mode with one value per channel is an error naming the layer.
#[test]
fn single_value_batch_stats_is_an_error() {
    let net = model("resnet8", 3, [3, 1, 1], DType::F64, 81);
    let x = Tensor::zeros((1, 3, 1, 1), DType::F64, &Device::Cpu).unwrap();
    assert_eq!(net.forward(&x, BnMode::Eval).unwrap().dims(), &[1, 3]);
    let err = net.forward(&x, BnMode::Train).unwrap_err().to_string();
    assert!(
        err.contains("batch norm bn1 ") && err.contains("got 1"),
        "{err}"
    );
}
