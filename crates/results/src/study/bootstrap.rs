//! The percentile bootstrap of a mean over seeds (Efron & Tibshirani 1993, "An Introduction
//! to the Bootstrap", §13.3), driven by a counter-based generator so that an interval is a
//! pure function of the values, their order and [`BootstrapParams`].
//!
//! Replicate `r` of a sample of size `n` draws its `n` indices from the ChaCha8 keystream
//! (rand_chacha 0.9) whose 256-bit key is `seed.to_le_bytes() ‖ n.to_le_bytes() ‖
//! b"saddlescope/bts\0"` and whose 64-bit nonce (`set_stream`) is `r`: the same
//! construction as the probe vectors (`saddlescope_spectral::probe_vector`), in a domain of
//! its own. Index `i` of a replicate is `⌊u_i · n / 2⁶⁴⌋` for the `i`-th `next_u64` `u_i`
//! (Lemire's multiply-shift: the bias, at most `n / 2⁶⁴`, is far below anything a
//! 10,000-replicate bootstrap can resolve). Every statistic of the same size resamples the
//! same seeds in each replicate, so paired statistics stay paired.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// How intervals are computed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BootstrapParams {
    /// Bootstrap replicates B. Default 10,000: Efron & Tibshirani (1993, §19.3) ask for
    /// B ≥ 1,000 for percentile intervals; 10,000 puts the Monte Carlo error of the 2.5%
    /// quantile's level below 0.2 percentage points.
    pub replicates: usize,
    /// Coverage of the interval (default 0.95).
    pub level: f64,
    /// Seed of the resampling generator (default 0).
    pub seed: u64,
}

impl Default for BootstrapParams {
    fn default() -> Self {
        Self {
            replicates: 10_000,
            level: 0.95,
            seed: 0,
        }
    }
}

/// A mean over seeds and its bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// The sample mean.
    pub mean: f64,
    /// Lower end of the percentile interval.
    pub low: f64,
    /// Upper end of the percentile interval.
    pub high: f64,
    /// Number of values (seeds) behind it.
    pub n: usize,
}

impl Interval {
    /// Whether the interval rests on at least two values: one seed gives a point, no
    /// interval.
    pub fn has_spread(&self) -> bool {
        self.n >= 2
    }

    /// Whether the interval rests on enough values to conclude from
    /// ([`MIN_VALUES_TO_CONCLUDE`]).
    pub fn conclusive(&self) -> bool {
        self.n >= MIN_VALUES_TO_CONCLUDE
    }

    /// Whether the whole interval lies above zero, on enough values to conclude from.
    pub fn above_zero(&self) -> bool {
        self.conclusive() && self.low > 0.0
    }

    /// Whether the whole interval lies below zero, on enough values to conclude from.
    pub fn below_zero(&self) -> bool {
        self.conclusive() && self.high < 0.0
    }
}

/// The fewest values (seeds) whose interval may settle a sign: 5. With n values a
/// percentile interval excludes zero when (about) all values share a sign, which noise
/// around zero does with probability 2^(1−n): 50% at 2 seeds, 25% at 3, 12.5% at 4, 6.25%
/// at 5, the first at which an interval beyond zero is unlikely by chance alone.
pub const MIN_VALUES_TO_CONCLUDE: usize = 5;

/// The generator of replicate `replicate` of a sample of size `n`.
fn generator(seed: u64, n: u64, replicate: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&n.to_le_bytes());
    key[16..].copy_from_slice(b"saddlescope/bts\0");
    let mut rng = ChaCha8Rng::from_seed(key);
    rng.set_stream(replicate);
    rng
}

/// A uniform index below `n` from 64 random bits (multiply-shift).
fn index(bits: u64, n: usize) -> usize {
    ((u128::from(bits) * n as u128) >> 64) as usize
}

/// The mean of `values` and its percentile bootstrap interval: the means of
/// `params.replicates` resamples (with replacement, of the same size), sorted; the ends are
/// their ⌈B·α/2⌉-th and ⌈B·(1 − α/2)⌉-th values, α = 1 − level. Non-finite values are
/// left out (a class whose ratio is undefined in some seed); `None` when none is left. One
/// value gives the degenerate interval `[x, x]` with `n = 1`.
///
/// Percentile intervals cover less than their level with few values (with 5 seeds, about
/// 90% for a 95% interval of a normal mean: Efron & Tibshirani 1993, §13.3): read a
/// conclusion from 5 seeds as a screen, not a test.
///
/// ```
/// use saddlescope_results::{bootstrap_mean, BootstrapParams};
/// // Two values: a resample's mean is 0, 1/2 or 1 with probability 1/4, 1/2, 1/4, so the
/// // 95% interval is [0, 1].
/// let i = bootstrap_mean(&[0.0, 1.0], &BootstrapParams::default()).unwrap();
/// assert_eq!((i.mean, i.low, i.high, i.n), (0.5, 0.0, 1.0, 2));
/// ```
pub fn bootstrap_mean(values: &[f64], params: &BootstrapParams) -> Option<Interval> {
    let values: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    let n = values.len();
    if n == 0 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if n == 1 || params.replicates == 0 {
        return Some(Interval {
            mean,
            low: mean,
            high: mean,
            n,
        });
    }
    let mut means: Vec<f64> = (0..params.replicates)
        .map(|r| {
            let mut rng = generator(params.seed, n as u64, r as u64);
            (0..n)
                .map(|_| values[index(rng.next_u64(), n)])
                .sum::<f64>()
                / n as f64
        })
        .collect();
    means.sort_by(f64::total_cmp);
    let b = means.len() as f64;
    let tail = (1.0 - params.level) / 2.0;
    let at = |p: f64| means[((b * p).ceil() as usize).clamp(1, means.len()) - 1];
    Some(Interval {
        mean,
        low: at(tail),
        high: at(1.0 - tail),
        n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use saddlescope_spectral::{probe_vector, ProbeDistribution};

    #[test]
    fn constant_data_and_one_value_give_a_point() {
        let p = BootstrapParams::default();
        let i = bootstrap_mean(&[2.5; 5], &p).unwrap();
        assert_eq!((i.mean, i.low, i.high, i.n), (2.5, 2.5, 2.5, 5));
        let one = bootstrap_mean(&[-1.0, f64::NAN], &p).unwrap();
        assert_eq!((one.low, one.high, one.n), (-1.0, -1.0, 1));
        assert!(!one.has_spread() && !one.below_zero());
        assert!(bootstrap_mean(&[f64::NAN], &p).is_none());
        assert!(bootstrap_mean(&[], &p).is_none());
    }

    /// The resampler against the exact bootstrap distribution: for 3 values the 27 ordered
    /// resamples are equally likely, so P(mean ≤ x) is a count over 27. The Monte Carlo
    /// frequencies must agree within 4 binomial standard errors (√(p(1−p)/B)).
    #[test]
    fn resample_means_follow_the_exact_bootstrap_distribution() {
        let values = [0.0, 1.0, 5.0];
        let params = BootstrapParams::default();
        let mut exact: Vec<f64> = Vec::new();
        for a in values {
            for b in values {
                for c in values {
                    exact.push((a + b + c) / 3.0);
                }
            }
        }
        let b = params.replicates;
        let means: Vec<f64> = (0..b)
            .map(|r| {
                let mut rng = generator(params.seed, 3, r as u64);
                (0..3)
                    .map(|_| values[index(rng.next_u64(), 3)])
                    .sum::<f64>()
                    / 3.0
            })
            .collect();
        let mut support = exact.clone();
        support.sort_by(f64::total_cmp);
        support.dedup();
        for x in support {
            let p = exact.iter().filter(|&&m| m <= x + 1e-12).count() as f64 / 27.0;
            let f = means.iter().filter(|&&m| m <= x + 1e-12).count() as f64 / b as f64;
            let se = (p * (1.0 - p) / b as f64).sqrt();
            assert!(
                (f - p).abs() <= 4.0 * se + 1e-12,
                "P(mean <= {x}): {f} vs {p}"
            );
        }
        // And the interval's ends are the exact distribution's 2.5% and 97.5% quantiles:
        // P(mean = 0) = 1/27 > 2.5%, P(mean = 5) = 1/27.
        let i = bootstrap_mean(&values, &params).unwrap();
        assert_eq!((i.low, i.high), (0.0, 5.0));
    }

    /// For a large normal sample the bootstrap distribution of the mean is normal with
    /// standard deviation s/√n (s with divisor n): the interval is mean ± 1.96 s/√n. With
    /// B = 10,000 the quantiles' Monte Carlo error is about 1.5% of the half-width; 5% allowed.
    #[test]
    fn a_large_normal_sample_gives_the_normal_interval() {
        let n = 400;
        let mut values = vec![0.0; n];
        probe_vector(11, 0, 0, ProbeDistribution::Gaussian, &mut values);
        values.iter_mut().for_each(|x| *x = 3.0 + 2.0 * *x);
        let i = bootstrap_mean(&values, &BootstrapParams::default()).unwrap();
        let mean = values.iter().sum::<f64>() / n as f64;
        let s = (values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
        let half = 1.959_964 * s / (n as f64).sqrt();
        assert!((i.mean - mean).abs() < 1e-12);
        assert!(
            ((mean - i.low) - half).abs() < 0.05 * half,
            "{i:?} vs ±{half}"
        );
        assert!(
            ((i.high - mean) - half).abs() < 0.05 * half,
            "{i:?} vs ±{half}"
        );
    }

    #[test]
    fn the_interval_is_a_pure_function_of_values_and_params() {
        let values = [0.3, -0.1, 0.8, 0.2, 0.5];
        let p = BootstrapParams::default();
        assert_eq!(bootstrap_mean(&values, &p), bootstrap_mean(&values, &p));
        let other = BootstrapParams { seed: 1, ..p };
        assert_ne!(bootstrap_mean(&values, &p), bootstrap_mean(&values, &other));
    }
}
