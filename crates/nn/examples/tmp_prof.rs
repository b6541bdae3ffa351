use std::time::Instant;
use candle_core::{DType, Device, Tensor, Var};
use saddlescope_nn::{Batch, BnMode, Dual, HessianOperator, LossSpec, Model, ParamSelection};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let spec = args.get(1).map(String::as_str).unwrap_or("resnet32");
    let bs: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(32);
    let input = if spec.starts_with("resnet") { [3, 32, 32] } else { [1, 28, 28] };
    let dev = Device::Cpu;
    let model = Model::new(&spec.parse().unwrap(), 10, input, DType::F32, &dev, 0).unwrap();
    let x = Tensor::randn(0f32, 1.0, (bs, input[0], input[1], input[2]), &dev).unwrap();
    let labels: Vec<u32> = (0..bs as u32).map(|i| i % 10).collect();
    let y = Tensor::new(labels.as_slice(), &dev).unwrap();
    model.calibrate_bn(&x).unwrap();
    let loss = LossSpec::Ce.build(&[1; 10], None).unwrap();
    let t = |name: &str, f: &mut dyn FnMut()| {
        f();
        let mut best = f64::INFINITY;
        for _ in 0..5 { let s = Instant::now(); f(); best = best.min(s.elapsed().as_secs_f64() * 1e3); }
        println!("{name}: {best:.1} ms");
    };
    let params: Vec<Tensor> = model.trainable().iter().map(|(_, v)| v.as_tensor().clone()).collect();
    t("plain forward (tracked)", &mut || { let l = model.forward_with(&params, &x, BnMode::Eval).unwrap(); let _ = loss.compute(&l, &y).unwrap(); });
    let mut graph = None;
    t("grad forward+backward", &mut || { let l = model.forward_with(&params, &x, BnMode::Eval).unwrap(); let l = loss.compute(&l, &y).unwrap(); graph = Some(l.backward().unwrap()); });
    let duals: Vec<Dual> = model.trainable().iter().map(|(_, v)| Dual::new(v.as_tensor().clone(), Some(v.as_tensor().randn_like(0.0, 1.0).unwrap()))).collect();
    let xd = Dual::new(x.clone(), None);
    let mut s_keep = None;
    t("dual forward", &mut || { let l = model.forward_with(&duals, &xd, BnMode::Eval).unwrap(); s_keep = Some(loss.compute(&l, &y).unwrap()); });
    let s = s_keep.unwrap().tangent.unwrap();
    t("dual backward only", &mut || { let _ = s.backward().unwrap(); });
    let _ = Var::new(0f32, &dev);
    let data = Batch::new(x.clone(), y.clone()).unwrap();
    let op = HessianOperator::new(&model, vec![data], loss.clone(), ParamSelection::all(&model), BnMode::Eval).unwrap();
    let v = vec![0.01; op.dim()];
    let mut out = vec![0.0; op.dim()];
    t("hvp_flat", &mut || op.hvp_flat(&v, &mut out).unwrap());
    t("loss_and_grad_flat", &mut || { op.loss_and_grad_flat().unwrap(); });
}
