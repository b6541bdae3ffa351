//! A seeded K-class Gaussian mixture for fast, dependency-free experiments and tests.
//!
//! Class `k` has mean `μ_k = sep · g_k / √dim` with `g_k ~ N(0, I_dim)` (so `‖μ_k‖ ≈ sep`
//! and two means lie about `sep · √2` apart), and its samples are `μ_k + ε`, `ε ~ N(0, I_dim)`.
//! Samples are stored as f32 "images" of shape `(1, 1, dim)` with no normalization, so an
//! MLP that flattens its input sees the `dim` features as they are. Both splits are balanced
//! and interleaved round-robin over classes (sample `i` has label `i mod K`), like mnist10k.
//! Means, train and test samples come from separate random streams, so changing `n` leaves
//! the means and the test split unchanged.

use std::fmt;

use crate::dataset::{Dataset, ImageShape, Pixels, Split};
use crate::normalize::Normalization;
use crate::rng::{self, Purpose};
use crate::spec::DatasetSpec;

/// Parameters of a synthetic mixture, the `synthetic:...` data-set spec.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticSpec {
    /// Number of classes K (`classes=`, default 10).
    pub classes: usize,
    /// Feature dimension (`dim=`, default 20).
    pub dim: usize,
    /// Train samples per class before any imbalance (`n=`, default 500).
    pub n: usize,
    /// Test samples per class (`test=`, default 100).
    pub test: usize,
    /// Seed of the means and samples (`seed=`, default 0).
    pub seed: u64,
    /// Norm of the class means in units of the noise standard deviation (`sep=`, default 3:
    /// pairwise Bayes error about Φ(−3/√2) ≈ 1.7%, so tail classes are learnable but not free).
    pub sep: f64,
}

impl Default for SyntheticSpec {
    fn default() -> Self {
        SyntheticSpec {
            classes: 10,
            dim: 20,
            n: 500,
            test: 100,
            seed: 0,
            sep: 3.0,
        }
    }
}

/// Upper bound on generated values (train + test), 2^30 f32 = 4 GiB, so that a typo in a
/// spec fails with a message instead of exhausting memory.
const MAX_VALUES: u128 = 1 << 30;

impl SyntheticSpec {
    /// Parses the `key=value,...` list after `synthetic:`; missing keys keep their defaults.
    /// Returns the reason on failure (the caller adds the whole spec).
    pub(crate) fn parse_params(params: &str) -> Result<SyntheticSpec, String> {
        let mut spec = SyntheticSpec::default();
        let mut seen = Vec::new();
        for pair in params.split(',').filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("`{pair}` is not key=value"))?;
            if seen.contains(&key) {
                return Err(format!("`{key}` given twice"));
            }
            seen.push(key);
            let bad = |what: &str| format!("`{key}={value}`: expected {what}");
            match key {
                "classes" => spec.classes = value.parse().map_err(|_| bad("a count"))?,
                "dim" => spec.dim = value.parse().map_err(|_| bad("a count"))?,
                "n" => spec.n = value.parse().map_err(|_| bad("a count"))?,
                "test" => spec.test = value.parse().map_err(|_| bad("a count"))?,
                "seed" => spec.seed = value.parse().map_err(|_| bad("an unsigned integer"))?,
                "sep" => spec.sep = value.parse().map_err(|_| bad("a number"))?,
                _ => {
                    return Err(format!(
                        "unknown key `{key}` (expected classes, dim, n, test, seed, sep)"
                    ))
                }
            }
        }
        spec.validate()?;
        Ok(spec)
    }

    fn validate(&self) -> Result<(), String> {
        for (key, value) in [
            ("classes", self.classes),
            ("dim", self.dim),
            ("n", self.n),
            ("test", self.test),
        ] {
            if value == 0 {
                return Err(format!("`{key}` must be at least 1"));
            }
        }
        if !(self.sep.is_finite() && self.sep >= 0.0) {
            return Err(format!("`sep={}` must be a finite number >= 0", self.sep));
        }
        let values = (self.n as u128 + self.test as u128) * self.classes as u128 * self.dim as u128;
        if values > MAX_VALUES {
            return Err(format!(
                "{values} values is too large (at most {MAX_VALUES})"
            ));
        }
        Ok(())
    }
}

impl fmt::Display for SyntheticSpec {
    /// The parameter list with every key, e.g. `classes=10,dim=20,n=500,test=100,seed=0,sep=3`
    /// (f64's shortest round-trip formatting keeps `sep` exact).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "classes={},dim={},n={},test={},seed={},sep={}",
            self.classes, self.dim, self.n, self.test, self.seed, self.sep
        )
    }
}

/// `per_class * classes` samples around `means`, round-robin over classes.
fn sample(spec: &SyntheticSpec, means: &[Vec<f64>], per_class: usize, stream: u64) -> Split {
    let mut rng = rng::stream(spec.seed, Purpose::Synthetic, stream);
    let count = per_class * spec.classes;
    let mut pixels = Vec::with_capacity(count * spec.dim);
    let mut labels = Vec::with_capacity(count);
    for i in 0..count {
        let class = i % spec.classes;
        pixels.extend(
            means[class]
                .iter()
                .map(|m| (m + rng::normal(&mut rng)) as f32),
        );
        labels.push(class as u32);
    }
    let shape = ImageShape {
        channels: 1,
        height: 1,
        width: spec.dim,
    };
    Split::new(
        Pixels::F32(pixels),
        labels,
        shape,
        spec.classes,
        Normalization::None,
    )
}

/// Generates the mixture a (validated) spec describes.
pub(crate) fn generate(spec: &SyntheticSpec) -> Dataset {
    let mut rng = rng::stream(spec.seed, Purpose::Synthetic, 0);
    let scale = spec.sep / (spec.dim as f64).sqrt();
    let means: Vec<Vec<f64>> = (0..spec.classes)
        .map(|_| {
            (0..spec.dim)
                .map(|_| scale * rng::normal(&mut rng))
                .collect()
        })
        .collect();
    let train = sample(spec, &means, spec.n, 1);
    let test = sample(spec, &means, spec.test, 2);
    let names = (0..spec.classes).map(|c| c.to_string()).collect();
    Dataset::new(DatasetSpec::Synthetic(spec.clone()), train, test, names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(split: &Split) -> &[f32] {
        match split.pixels() {
            Pixels::F32(v) => v,
            Pixels::U8(_) => panic!("synthetic samples are f32"),
        }
    }

    #[test]
    fn balanced_round_robin_and_seeded() {
        let spec = SyntheticSpec::parse_params("classes=3,dim=5,n=40,test=7,seed=2,sep=4").unwrap();
        let a = generate(&spec);
        assert_eq!(a.train().class_counts(), vec![40, 40, 40]);
        assert_eq!(a.test().class_counts(), vec![7, 7, 7]);
        assert_eq!(&a.train().labels()[..4], &[0, 1, 2, 0]);
        assert_eq!(a.shape().dims(), [1, 1, 5]);
        assert_eq!(a.normalization(), &Normalization::None);
        assert_eq!(a, generate(&spec), "same seed, same data");
        let other = generate(&SyntheticSpec {
            seed: 3,
            ..spec.clone()
        });
        assert_ne!(values(a.train()), values(other.train()));
        // More train samples leave the test split (and the means) unchanged.
        let more = generate(&SyntheticSpec { n: 50, ..spec });
        assert_eq!(values(more.test()), values(a.test()));
    }

    #[test]
    fn class_means_sit_at_the_stated_separation() {
        // 4 classes in 200 dimensions, 500 samples each: the empirical class mean is μ_k up to
        // noise of norm ≈ sqrt(200/500) ≈ 0.63, and ‖μ_k‖ = sep·‖g‖/√dim ≈ sep ± sep/√(2·dim)
        // (≈ 0.5 for sep = 10). Tolerance 1.5 on a norm of 10.
        let spec = SyntheticSpec {
            classes: 4,
            dim: 200,
            n: 500,
            test: 1,
            seed: 5,
            sep: 10.0,
        };
        let data = generate(&spec);
        let x = values(data.train());
        for class in 0..4 {
            let mut mean = vec![0.0f64; 200];
            for i in data.train().class_indices(class).unwrap() {
                for (m, v) in mean.iter_mut().zip(&x[i * 200..(i + 1) * 200]) {
                    *m += f64::from(*v) / 500.0;
                }
            }
            let norm = mean.iter().map(|m| m * m).sum::<f64>().sqrt();
            assert!((norm - 10.0).abs() < 1.5, "class {class}: ‖mean‖ = {norm}");
        }
    }

    #[test]
    fn params_default_display_and_reject() {
        assert_eq!(
            SyntheticSpec::parse_params("").unwrap(),
            SyntheticSpec::default()
        );
        let spec = SyntheticSpec::parse_params("dim=3,sep=0.25").unwrap();
        assert_eq!(
            spec.to_string(),
            "classes=10,dim=3,n=500,test=100,seed=0,sep=0.25"
        );
        let reason = |p: &str| SyntheticSpec::parse_params(p).unwrap_err();
        assert_eq!(reason("dim"), "`dim` is not key=value");
        assert_eq!(reason("dim=x"), "`dim=x`: expected a count");
        assert_eq!(reason("n=0"), "`n` must be at least 1");
        assert_eq!(reason("n=2,n=3"), "`n` given twice");
        assert_eq!(reason("sep=-1"), "`sep=-1` must be a finite number >= 0");
        assert_eq!(reason("sep=inf"), "`sep=inf` must be a finite number >= 0");
        assert!(reason("k=2").starts_with("unknown key `k`"));
        assert!(reason("n=100000000000").contains("too large"));
    }
}
