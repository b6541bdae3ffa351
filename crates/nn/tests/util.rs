//! Shared fixtures: seeded data, central-difference Hessians, ReLU sign probes.

use std::cell::RefCell;

use candle_core::{DType, Device, Result as CResult, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use saddlescope_nn::{drw_weights, Batch, HessianOperator, LossSpec, Model, Value, DRW_BETA};

/// `len` standard normal draws from `seed`.
pub fn normals(len: usize, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| rng.sample(StandardNormal)).collect()
}

/// A unit vector of length `len`.
pub fn unit(len: usize, seed: u64) -> Vec<f64> {
    let v = normals(len, seed);
    let n = norm(&v);
    v.iter().map(|x| x / n).collect()
}

pub fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `‖a − b‖ / ‖b‖`.
pub fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    let diff: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    norm(&diff) / norm(b)
}

/// A batch of `n` seeded normal inputs of shape `shape` in `dtype` with labels
/// `i mod classes` (every class present).
pub fn batch(n: usize, shape: [usize; 3], classes: usize, dtype: DType, seed: u64) -> Batch {
    let len = n * shape.iter().product::<usize>();
    let x = Tensor::from_vec(
        normals(len, seed),
        (n, shape[0], shape[1], shape[2]),
        &Device::Cpu,
    )
    .unwrap()
    .to_dtype(dtype)
    .unwrap();
    let labels: Vec<u32> = (0..n)
        .map(|i| ((i * 7 + seed as usize) % classes) as u32)
        .collect();
    Batch::new(x, Tensor::new(labels.as_slice(), &Device::Cpu).unwrap()).unwrap()
}

pub fn model(spec: &str, classes: usize, input: [usize; 3], dtype: DType, seed: u64) -> Model {
    Model::new(
        &spec.parse().unwrap(),
        classes,
        input,
        dtype,
        &Device::Cpu,
        seed,
    )
    .unwrap()
}

pub fn hvp(op: &HessianOperator, v: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; op.dim()];
    op.hvp_flat(v, &mut out).unwrap();
    out
}

/// `(∇L(w + h u) − ∇L(w − h u)) / 2h` from exact gradients.
pub fn fd_hvp(op: &HessianOperator, u: &[f64], h: f64) -> Vec<f64> {
    let plus: Vec<f64> = u.iter().map(|x| h * x).collect();
    let minus: Vec<f64> = u.iter().map(|x| -h * x).collect();
    let (_, gp) = op.loss_and_grad_at(&plus).unwrap();
    let (_, gm) = op.loss_and_grad_at(&minus).unwrap();
    gp.iter()
        .zip(&gm)
        .map(|(a, b)| (a - b) / (2.0 * h))
        .collect()
}

pub fn basis(n: usize, j: usize) -> Vec<f64> {
    let mut e = vec![0.0; n];
    e[j] = 1.0;
    e
}

/// Checks every column of the dense Hessian: `‖H e_j − FD_j‖∞ ≤ tol·max|H|`, and that the
/// HVP columns are symmetric to 1e-12 of `max|H|`. Returns the worst ratio seen.
pub fn check_dense_against_fd(op: &HessianOperator, h: f64, tol: f64, relu: bool) -> f64 {
    let n = op.dim();
    let columns: Vec<Vec<f64>> = (0..n).map(|j| hvp(op, &basis(n, j))).collect();
    let scale = columns.iter().flatten().fold(0.0f64, |m, x| m.max(x.abs()));
    assert!(scale > 1e-6, "degenerate Hessian (max |H| = {scale})");
    let mut worst = 0.0f64;
    for (j, col) in columns.iter().enumerate() {
        if relu {
            assert_same_signs(op, &basis(n, j), h);
        }
        let fd = fd_hvp(op, &basis(n, j), h);
        let err = col
            .iter()
            .zip(&fd)
            .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()))
            / scale;
        assert!(
            err <= tol,
            "column {j}: max |HVP − FD| / max|H| = {err:e} > {tol:e}"
        );
        worst = worst.max(err);
        for (i, other) in columns.iter().enumerate() {
            assert!(
                (col[i] - other[j]).abs() <= 1e-12 * scale,
                "H[{i},{j}] = {} but H[{j},{i}] = {}",
                col[i],
                other[j]
            );
        }
    }
    worst
}

thread_local! {
    static MASKS: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// A plain value that records the sign pattern `x ≥ 0` of every ReLU input it meets.
#[derive(Clone, Debug)]
pub struct Probe(pub Tensor);

impl Value for Probe {
    fn primal(&self) -> &Tensor {
        &self.0
    }

    fn constant(primal: Tensor) -> Self {
        Probe(primal)
    }

    fn unary<F, J>(&self, f: F, _jvp: J) -> saddlescope_nn::Result<Self>
    where
        F: FnOnce(&Tensor) -> CResult<Tensor>,
        J: FnOnce(&Tensor, &Tensor, &Tensor) -> CResult<Tensor>,
    {
        Ok(Probe(f(&self.0)?))
    }

    fn bilinear<F>(&self, rhs: &Self, f: F) -> saddlescope_nn::Result<Self>
    where
        F: Fn(&Tensor, &Tensor) -> CResult<Tensor>,
    {
        Ok(Probe(f(&self.0, &rhs.0)?))
    }

    fn add(&self, rhs: &Self) -> saddlescope_nn::Result<Self> {
        Ok(Probe(self.0.broadcast_add(&rhs.0)?))
    }

    fn relu(&self) -> saddlescope_nn::Result<Self> {
        let mask: Vec<u8> = self.0.ge(0.0)?.flatten_all()?.to_vec1()?;
        MASKS.with(|m| m.borrow_mut().push(mask));
        Ok(Probe(self.0.relu()?))
    }
}

fn relu_masks(op: &HessianOperator, delta: &[f64]) -> Vec<Vec<u8>> {
    let (model, selection) = (op.model(), op.selection());
    let pieces = selection
        .split(delta, model.dtype(), model.device())
        .unwrap();
    let mut params: Vec<Probe> = model
        .trainable()
        .iter()
        .map(|(_, v)| Probe(v.as_detached_tensor()))
        .collect();
    for (e, d) in selection.entries().iter().zip(pieces) {
        params[e.index] = Probe(params[e.index].0.add(&d).unwrap());
    }
    MASKS.with(|m| m.borrow_mut().clear());
    for b in op.batches() {
        model
            .forward_with(&params, &Probe(b.x().clone()), op.bn_mode())
            .unwrap();
    }
    MASKS.with(|m| m.borrow_mut().split_off(0))
}

/// Asserts that no ReLU unit changes sign between `w` and `w ± h u` on the operator's
/// sample set (then central differences see one smooth piece), and that there are ReLUs.
pub fn assert_same_signs(op: &HessianOperator, u: &[f64], h: f64) {
    let base = relu_masks(op, &vec![0.0; u.len()]);
    assert!(!base.is_empty(), "the probe saw no ReLU");
    for s in [h, -h] {
        let delta: Vec<f64> = u.iter().map(|x| s * x).collect();
        let moved = relu_masks(op, &delta);
        let flips: usize = base
            .iter()
            .zip(&moved)
            .map(|(a, b)| a.iter().zip(b).filter(|(x, y)| x != y).count())
            .sum();
        assert_eq!(flips, 0, "{flips} ReLU units change sign at step {s:e}");
    }
}

/// The losses of the crate, with DRW weights where the training recipes use them.
pub fn all_losses(counts: &[usize]) -> Vec<(String, saddlescope_nn::Loss)> {
    let drw = drw_weights(counts, DRW_BETA).unwrap();
    [
        ("ce", None),
        ("ce", Some(drw.as_slice())),
        ("ldam", Some(drw.as_slice())),
        ("vs", None),
        ("la", Some(drw.as_slice())),
        ("focal", Some(drw.as_slice())),
        ("focal:gamma=2", None),
    ]
    .into_iter()
    .map(|(name, w)| {
        let spec: LossSpec = name.parse().unwrap();
        (
            format!("{name} weighted={}", w.is_some()),
            spec.build(counts, w).unwrap(),
        )
    })
    .collect()
}
