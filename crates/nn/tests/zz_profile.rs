use candle_core::{DType, Device, Tensor};
use saddlescope_nn::*;
use std::time::Instant;

#[test]
#[ignore]
fn profile_resnet() {
    let dev = Device::Cpu;
    let model = Model::new(
        &"resnet32".parse().unwrap(),
        10,
        [3, 32, 32],
        DType::F32,
        &dev,
        0,
    )
    .unwrap();
    let x = Tensor::randn(0f32, 1.0, (32, 3, 32, 32), &dev).unwrap();
    let labels: Vec<u32> = (0..32u32).map(|i| i % 10).collect();
    let y = Tensor::new(labels.as_slice(), &dev).unwrap();
    model.calibrate_bn(&x).unwrap();
    let loss = LossSpec::Ce.build(&[1; 10], None).unwrap();
    let params: Vec<Tensor> = model
        .trainable()
        .iter()
        .map(|(_, v)| v.as_tensor().clone())
        .collect();
    let duals: Vec<Dual> = model
        .trainable()
        .iter()
        .map(|(_, v)| {
            Dual::new(
                v.as_tensor().clone(),
                Some(v.as_tensor().ones_like().unwrap()),
            )
        })
        .collect();
    for _ in 0..2 {
        let t = Instant::now();
        let logits = model.forward_with(&params, &x, BnMode::Eval).unwrap();
        let l = loss.compute(&logits, &y).unwrap();
        let t1 = t.elapsed().as_secs_f64();
        let _g = l.backward().unwrap();
        let t2 = t.elapsed().as_secs_f64();
        let logits = model
            .forward_with(&duals, &Dual::constant(x.clone()), BnMode::Eval)
            .unwrap();
        let l = loss.compute(&logits, &y).unwrap();
        let t3 = t.elapsed().as_secs_f64();
        let _g = l.tangent.unwrap().backward().unwrap();
        let t4 = t.elapsed().as_secs_f64();
        eprintln!(
            "plain fwd {:.0} bwd {:.0} | dual fwd {:.0} bwd {:.0} ms",
            t1 * 1e3,
            (t2 - t1) * 1e3,
            (t3 - t2) * 1e3,
            (t4 - t3) * 1e3
        );
    }
}

#[test]
#[ignore]
fn profile_ops() {
    let dev = Device::Cpu;
    let x = Tensor::randn(0f32, 1.0, (32, 16, 32, 32), &dev).unwrap();
    let t = Tensor::randn(0f32, 1.0, (32, 16, 32, 32), &dev).unwrap();
    let w = Tensor::randn(0f32, 1.0, (16, 16, 3, 3), &dev).unwrap();
    let a = Tensor::randn(0f32, 1.0, (1, 16, 1, 1), &dev).unwrap();
    let time = |name: &str, f: &dyn Fn() -> Tensor| {
        f();
        let s = Instant::now();
        for _ in 0..5 {
            f();
        }
        eprintln!("{name}: {:.2} ms", s.elapsed().as_secs_f64() * 1e3 / 5.0);
    };
    time("conv2d", &|| x.conv2d(&w, 1, 1, 1, 1).unwrap());
    time("conv_transpose2d", &|| {
        x.conv_transpose2d(&w, 1, 0, 1, 1).unwrap()
    });
    time("kernel grad", &|| {
        x.transpose(0, 1)
            .unwrap()
            .conv2d(&t.transpose(0, 1).unwrap(), 1, 1, 1, 1)
            .unwrap()
    });
    time("broadcast_mul", &|| x.broadcast_mul(&a).unwrap());
    time("add", &|| (&x + &t).unwrap());
    time("mul", &|| (&x * &t).unwrap());
    time("relu", &|| x.relu().unwrap());
    time("ge", &|| x.ge(0.0).unwrap());
    time("ge+to_dtype", &|| {
        x.ge(0.0).unwrap().to_dtype(DType::F32).unwrap()
    });
    time("zeros_like", &|| x.zeros_like().unwrap());
    time("sum_keepdim(0,2,3)", &|| x.sum_keepdim((0, 2, 3)).unwrap());
    time("affine", &|| x.affine(2.0, 0.0).unwrap());
}

#[test]
#[ignore]
fn profile_conv_variants() {
    let dev = Device::Cpu;
    let x = Tensor::randn(0f32, 1.0, (32, 16, 32, 32), &dev).unwrap();
    let w = Tensor::randn(0f32, 1.0, (16, 16, 3, 3), &dev).unwrap();
    let flat = Tensor::randn(0f32, 1.0, 100000, &dev).unwrap();
    let wv = flat
        .narrow(0, 777, 16 * 16 * 9)
        .unwrap()
        .reshape((16, 16, 3, 3))
        .unwrap();
    let time = |name: &str, f: &dyn Fn() -> Tensor| {
        f();
        let s = Instant::now();
        for _ in 0..5 {
            f();
        }
        eprintln!("{name}: {:.2} ms", s.elapsed().as_secs_f64() * 1e3 / 5.0);
    };
    time("conv2d", &|| x.conv2d(&w, 1, 1, 1, 1).unwrap());
    time("conv2d offset kernel", &|| {
        x.conv2d(&wv, 1, 1, 1, 1).unwrap()
    });
    let xs = x.narrow(0, 0, 32).unwrap();
    time("conv2d x narrowed", &|| xs.conv2d(&w, 1, 1, 1, 1).unwrap());
    let model = Model::new(
        &"resnet32".parse().unwrap(),
        10,
        [3, 32, 32],
        DType::F32,
        &dev,
        0,
    )
    .unwrap();
    let params: Vec<Tensor> = model
        .trainable()
        .iter()
        .map(|(_, v)| v.as_tensor().clone())
        .collect();
    let detached: Vec<Tensor> = model
        .trainable()
        .iter()
        .map(|(_, v)| v.as_detached_tensor())
        .collect();
    let xin = Tensor::randn(0f32, 1.0, (32, 3, 32, 32), &dev).unwrap();
    time("plain forward tracked", &|| {
        model.forward_with(&params, &xin, BnMode::Eval).unwrap()
    });
    time("plain forward detached", &|| {
        model.forward_with(&detached, &xin, BnMode::Eval).unwrap()
    });
    let zero: Vec<Dual> = model
        .trainable()
        .iter()
        .map(|(_, v)| Dual::new(v.as_tensor().clone(), None))
        .collect();
    time("dual forward no tangent", &|| {
        model
            .forward_with(&zero, &Dual::constant(xin.clone()), BnMode::Eval)
            .unwrap()
            .primal
    });
    let duals: Vec<Dual> = model
        .trainable()
        .iter()
        .map(|(_, v)| {
            Dual::new(
                v.as_tensor().clone(),
                Some(v.as_tensor().ones_like().unwrap()),
            )
        })
        .collect();
    time("dual forward", &|| {
        model
            .forward_with(&duals, &Dual::constant(xin.clone()), BnMode::Eval)
            .unwrap()
            .primal
    });
}
