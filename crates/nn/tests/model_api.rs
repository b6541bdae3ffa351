//! Model construction, names, initialization, state loading and input checks.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use saddlescope_nn::{BnMode, Error, HessianOperator, Model, ParamSelection};

use crate::util::*;

fn names(model: &Model) -> Vec<String> {
    model.trainable().iter().map(|(n, _)| n.clone()).collect()
}

fn values(t: &Tensor) -> Vec<f64> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// ResNet-32 has the reference code's names, shapes and 464,154 parameters (10 classes);
/// the NormedLinear variant stores `linear.weight` as (in, out) without bias.
#[test]
fn resnet32_names_and_shapes_follow_pytorch() {
    let net = model("resnet32", 10, [3, 32, 32], DType::F32, 0);
    let n = names(&net);
    assert_eq!(
        n[..6],
        [
            "conv1.weight",
            "bn1.weight",
            "bn1.bias",
            "layer1.0.conv1.weight",
            "layer1.0.bn1.weight",
            "layer1.0.bn1.bias"
        ]
    );
    assert_eq!(
        n[n.len() - 3..],
        ["layer3.4.bn2.bias", "linear.weight", "linear.bias"]
    );
    assert_eq!(net.param_count(), 464_154);
    let shape = |name: &str| {
        net.trainable()
            .iter()
            .find(|(n, _)| n == name)
            .unwrap()
            .1
            .dims()
            .to_vec()
    };
    assert_eq!(shape("layer2.0.conv1.weight"), [32, 16, 3, 3]);
    assert_eq!(shape("layer3.4.conv2.weight"), [64, 64, 3, 3]);
    assert_eq!(shape("linear.weight"), [10, 64]);
    assert_eq!(net.buffers().len(), 2 * 31);
    assert_eq!(net.buffers()[0].0, "bn1.running_mean");
    assert_eq!(net.buffers()[3].0, "layer1.0.bn1.running_var");

    let normed = model("resnet32-normed", 10, [3, 32, 32], DType::F32, 0);
    assert_eq!(normed.param_count(), 464_154 - 650 + 640);
    let (last, w) = normed.trainable().last().unwrap();
    assert_eq!((last.as_str(), w.dims()), ("linear.weight", &[64, 10][..]));
    let cols: Vec<Vec<f64>> = w
        .as_tensor()
        .t()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec2()
        .unwrap();
    for c in cols {
        assert!(
            (norm(&c) - 1.0).abs() < 1e-6,
            "NormedLinear columns have unit norm"
        );
    }
    let x = Tensor::zeros((2, 3, 32, 32), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(net.forward(&x, BnMode::Eval).unwrap().dims(), &[2, 10]);
}

/// Kaiming-normal weights have standard deviation √(2/fan_in) (within 3 % on 36,864
/// draws), biases lie in ±1/√fan_in, BN starts at γ = 1, β = 0, mean 0, var 1; one seed
/// gives one model whatever the dtype; another seed gives another.
#[test]
fn initialization_is_kaiming_and_seeded() {
    let net = model("resnet32", 10, [3, 32, 32], DType::F64, 5);
    let get = |m: &Model, name: &str| {
        values(
            m.trainable()
                .iter()
                .find(|(n, _)| n == name)
                .unwrap()
                .1
                .as_tensor(),
        )
    };
    let w = get(&net, "layer3.4.conv2.weight");
    let std = (w.iter().map(|x| x * x).sum::<f64>() / w.len() as f64).sqrt();
    assert!(
        (std / (2.0f64 / 576.0).sqrt() - 1.0).abs() < 0.03,
        "std {std}"
    );
    assert!(get(&net, "linear.bias").iter().all(|b| b.abs() <= 0.125));
    assert!(get(&net, "bn1.weight").iter().all(|&g| g == 1.0));
    assert!(get(&net, "bn1.bias").iter().all(|&g| g == 0.0));
    let rv = values(net.buffers()[1].1.as_tensor());
    assert!(rv.iter().all(|&v| v == 1.0));

    let same = model("resnet32", 10, [3, 32, 32], DType::F32, 5);
    let other = model("resnet32", 10, [3, 32, 32], DType::F64, 6);
    for ((name, a), ((_, b), (_, c))) in net
        .state()
        .unwrap()
        .iter()
        .zip(same.state().unwrap().iter().zip(other.state().unwrap()))
    {
        let (a, b, c) = (values(a), values(b), values(&c));
        let a32: Vec<f64> = a.iter().map(|&x| x as f32 as f64).collect();
        assert_eq!(a32, b, "{name}: f32 model is the f64 model rounded");
        if name.ends_with("conv1.weight") {
            assert_ne!(a, c, "{name}: seeds differ");
        }
    }
}

/// `state` → `load_state` round-trips across dtypes and ignores `num_batches_tracked`;
/// a mismatching state fails listing every missing, unexpected and mis-shaped name and
/// changes nothing.
#[test]
fn load_state_is_strict_and_converts_dtype() {
    let source = model("cnn:2,3", 3, [1, 8, 8], DType::F32, 1);
    source
        .calibrate_bn(batch(4, [1, 8, 8], 3, DType::F32, 2).x())
        .unwrap();
    let mut target = model("cnn:2,3", 3, [1, 8, 8], DType::F64, 9);
    let mut state: HashMap<String, Tensor> = source.state().unwrap().into_iter().collect();
    state.insert(
        "bn1.num_batches_tracked".into(),
        Tensor::new(7i64, &Device::Cpu).unwrap(),
    );
    target.load_state(state.clone()).unwrap();
    for ((name, a), (_, b)) in source.state().unwrap().iter().zip(target.state().unwrap()) {
        assert_eq!(b.dtype(), DType::F64);
        assert_eq!(values(a), values(&b), "{name}");
    }

    let before = target.state().unwrap();
    let mut bad = state;
    bad.remove("bn2.running_var");
    bad.remove("conv1.weight");
    bad.insert(
        "fc9.weight".into(),
        Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
    );
    bad.insert(
        "linear.bias".into(),
        Tensor::zeros(4, DType::F32, &Device::Cpu).unwrap(),
    );
    bad.insert(
        "conv1.num_batches_tracked".into(),
        Tensor::new(1i64, &Device::Cpu).unwrap(),
    );
    let err = target.load_state(bad).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("missing conv1.weight, bn2.running_var")
            && msg.contains("unexpected conv1.num_batches_tracked, fc9.weight")
            && msg.contains("mis-shaped linear.bias (model [3], state [4])"),
        "{msg}"
    );
    assert!(matches!(err, Error::StateMismatch { ref missing, .. } if missing.len() == 2));
    for ((name, a), (_, b)) in before.iter().zip(target.state().unwrap()) {
        assert_eq!(values(a), values(&b), "{name} changed by a failed load");
    }
}

/// `check_finite` names the first tensor holding NaN or infinity.
#[test]
fn check_finite_names_the_tensor() {
    let mut net = model("mlp:3", 2, [1, 1, 2], DType::F64, 1);
    net.check_finite().unwrap();
    let mut state: HashMap<String, Tensor> = net.state().unwrap().into_iter().collect();
    state.insert(
        "fc1.bias".into(),
        Tensor::new(&[0.0, f64::NAN, 1.0], &Device::Cpu).unwrap(),
    );
    net.load_state(state).unwrap();
    let err = net.check_finite().unwrap_err().to_string();
    assert_eq!(
        err,
        "tensor fc1.bias holds a non-finite value NaN at flat index 1"
    );
}

/// Bad inputs and parameter lists are errors naming the tensor, not panics.
#[test]
fn bad_inputs_are_named_errors() {
    let net = model("cnn:2,3", 3, [1, 8, 8], DType::F64, 1);
    let dev = Device::Cpu;
    let err = net
        .forward(
            &Tensor::zeros((2, 1, 8, 7), DType::F64, &dev).unwrap(),
            BnMode::Eval,
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("input batch has shape [2, 1, 8, 7], expected (N >= 1, 1, 8, 8)"),
        "{err}"
    );
    let err = net
        .forward(
            &Tensor::zeros((2, 1, 8, 8), DType::F32, &dev).unwrap(),
            BnMode::Eval,
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("input batch has dtype F32, expected F64"),
        "{err}"
    );
    let mlp = model("mlp:3", 2, [1, 2, 2], DType::F64, 1);
    assert_eq!(
        mlp.forward(
            &Tensor::zeros((5, 4), DType::F64, &dev).unwrap(),
            BnMode::Eval
        )
        .unwrap()
        .dims(),
        &[5, 2]
    );

    let mut params: Vec<Tensor> = net
        .trainable()
        .iter()
        .map(|(_, v)| v.as_detached_tensor())
        .collect();
    let x = Tensor::zeros((2, 1, 8, 8), DType::F64, &dev).unwrap();
    params.pop();
    let err = net
        .forward_with(&params, &x, BnMode::Eval)
        .unwrap_err()
        .to_string();
    assert_eq!(err, "got 7 parameter values, the model has 8 parameters");
    params.push(Tensor::zeros(4, DType::F64, &dev).unwrap());
    let err = net
        .forward_with(&params, &x, BnMode::Eval)
        .unwrap_err()
        .to_string();
    assert_eq!(err, "parameter linear.bias has shape [4], expected [3]");

    for prefix in ["conv1.weight", "bn1"] {
        assert!(ParamSelection::with_prefixes(&net, &[prefix]).is_ok());
    }
    let err = ParamSelection::with_prefixes(&net, &["fc."])
        .unwrap_err()
        .to_string();
    assert!(err.contains("prefix \"fc.\" matches no parameter"), "{err}");
    let sel = ParamSelection::with_prefixes(&net, &["linear."]).unwrap();
    let err = sel
        .split(&[1.0; 3], DType::F64, &dev)
        .unwrap_err()
        .to_string();
    assert!(err.contains("length 3, expected 39"), "{err}");
    for bad in [
        Model::new(&"mlp".parse().unwrap(), 1, [1, 1, 1], DType::F64, &dev, 0),
        Model::new(&"cnn".parse().unwrap(), 3, [1, 3, 3], DType::F64, &dev, 0),
        Model::new(&"mlp".parse().unwrap(), 3, [1, 1, 1], DType::U8, &dev, 0),
    ] {
        assert!(bad.is_err());
    }
}

/// The operator is usable from several threads (analysis runs classes in parallel).
#[test]
fn hessian_operator_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<HessianOperator<'static>>();
    assert_send_sync::<Model>();
}
