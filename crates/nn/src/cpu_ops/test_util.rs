//! What the CPU ops' tests share: seeded operands, comparisons, thread pools of a given size.

use candle_core::{DType, Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::init::kaiming_normal;

/// A tensor of `dims` with seeded normal values (variance 2 / 2 = 1) in `dtype`.
pub(crate) fn seeded(dims: &[usize], seed: u64, dtype: DType) -> Tensor {
    let len = dims.iter().product();
    let values = kaiming_normal(&mut ChaCha8Rng::seed_from_u64(seed), len, 2);
    Tensor::from_vec(values, dims, &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

/// The values of `t` in row-major order, as f64.
pub(crate) fn values(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// The bits of `t`'s values as f64 (exact comparisons).
pub(crate) fn bits(t: &Tensor) -> Vec<u64> {
    values(t).iter().map(|v| v.to_bits()).collect()
}

/// `⟨a, b⟩` in f64 (adjoint checks); the shapes must agree.
pub(crate) fn dot(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims());
    values(a).iter().zip(values(b)).map(|(x, y)| x * y).sum()
}

/// `max |a − b| / max |b|` (`max |a − b|` when `b` is all zero); the shapes must agree.
pub(crate) fn max_rel(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims());
    let (a, b) = (values(a), values(b));
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let diff = a
        .iter()
        .zip(&b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
    if scale == 0.0 {
        diff
    } else {
        diff / scale
    }
}

/// `f()` on a rayon pool of `threads` threads.
pub(crate) fn on_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}
