//! Seeded initializers, drawn in f64 (PyTorch's defaults for the layers used here).

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

/// Kaiming-normal with PyTorch's `kaiming_normal_` defaults (`mode="fan_in"`, ReLU gain
/// √2): `N(0, 2/fan_in)`. The long-tail reference ResNet applies it to every `Conv2d` and
/// `Linear` weight (`_weights_init`).
pub(crate) fn kaiming_normal(rng: &mut ChaCha8Rng, len: usize, fan_in: usize) -> Vec<f64> {
    let std = (2.0 / fan_in as f64).sqrt();
    (0..len)
        .map(|_| std * rng.sample::<f64, _>(StandardNormal))
        .collect()
}

/// `U(−bound, bound)`; with `bound = 1/√fan_in` this is PyTorch's default `Linear` bias.
pub(crate) fn uniform(rng: &mut ChaCha8Rng, len: usize, bound: f64) -> Vec<f64> {
    (0..len)
        .map(|_| bound * (2.0 * rng.random::<f64>() - 1.0))
        .collect()
}
