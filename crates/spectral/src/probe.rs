//! Probe vectors from a counter-based random number generator.
//!
//! Probe `p` of stream `s` under seed `S` is a pure function of `(S, s, p)`: it is drawn from
//! the ChaCha8 keystream (rand_chacha 0.9) whose 256-bit key is
//! `S.to_le_bytes() ‖ s.to_le_bytes() ‖ b"saddlescope/prb\0"` and whose 64-bit nonce
//! (`set_stream`) is `p`, read from word 0. The key is injective in `(seed, stream)` and every
//! probe owns a whole keystream, so probes never overlap, any probe can be regenerated
//! alone ([`probe_vector`]) and results do not depend on which thread drew which probe.
//!
//! The class-wise analysis passes the same `stream` for every class, so all classes see
//! identical probes and `tr H_all = Σ_c π_c tr H_c` holds per probe, not just on average.
//!
//! Rademacher entries take one bit each: entry `i` is `-1` if bit `i % 64` of the
//! `(i / 64)`-th `next_u64` is set, else `+1`. Gaussian entries are
//! `rand_distr::StandardNormal` samples (ziggurat) drawn in index order.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

/// The distribution of a probe vector's entries (both have E[z zᵀ] = I).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeDistribution {
    /// Independent ±1 entries: the lowest-variance Hutchinson probe (variance
    /// 2 Σ_{i≠j} a_ij², Hutchinson 1989), and ‖z‖² = n exactly.
    #[default]
    Rademacher,
    /// Independent standard normal entries: rotation invariant, so no eigenvector can be
    /// orthogonal to the probe by structure.
    Gaussian,
}

/// The keystream generator of probe `probe` in `stream` under `seed`.
fn generator(seed: u64, stream: u64, probe: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&stream.to_le_bytes());
    key[16..].copy_from_slice(b"saddlescope/prb\0");
    let mut rng = ChaCha8Rng::from_seed(key);
    rng.set_stream(probe);
    rng
}

/// Writes probe `probe` of `stream` under `seed` into `out` (its length is the dimension).
///
/// The same arguments always give the same bits, on any thread; see the module docs for
/// the exact construction.
///
/// ```
/// use saddlescope_spectral::{probe_vector, ProbeDistribution};
/// let (mut a, mut b) = (vec![0.0; 5], vec![0.0; 5]);
/// probe_vector(7, 0, 3, ProbeDistribution::Rademacher, &mut a);
/// probe_vector(7, 0, 3, ProbeDistribution::Rademacher, &mut b);
/// assert_eq!(a, b);
/// assert!(a.iter().all(|x| x.abs() == 1.0));
/// ```
pub fn probe_vector(
    seed: u64,
    stream: u64,
    probe: u64,
    distribution: ProbeDistribution,
    out: &mut [f64],
) {
    let mut rng = generator(seed, stream, probe);
    match distribution {
        ProbeDistribution::Rademacher => {
            for block in out.chunks_mut(64) {
                let bits = rng.next_u64();
                for (k, x) in block.iter_mut().enumerate() {
                    *x = if (bits >> k) & 1 == 1 { -1.0 } else { 1.0 };
                }
            }
        }
        ProbeDistribution::Gaussian => {
            for x in out.iter_mut() {
                *x = StandardNormal.sample(&mut rng);
            }
        }
    }
}

/// Allocating form of [`probe_vector`].
pub(crate) fn probe(
    seed: u64,
    stream: u64,
    probe: u64,
    distribution: ProbeDistribution,
    n: usize,
) -> Vec<f64> {
    let mut z = vec![0.0; n];
    probe_vector(seed, stream, probe, distribution, &mut z);
    z
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_differ_across_index_stream_and_seed() {
        let base = probe(1, 2, 3, ProbeDistribution::Rademacher, 256);
        assert_ne!(base, probe(1, 2, 4, ProbeDistribution::Rademacher, 256));
        assert_ne!(base, probe(1, 3, 3, ProbeDistribution::Rademacher, 256));
        assert_ne!(base, probe(2, 2, 3, ProbeDistribution::Rademacher, 256));
        // A prefix of a longer probe is the shorter probe: entry i depends only on (S, s, p, i).
        assert_eq!(
            base[..100],
            probe(1, 2, 3, ProbeDistribution::Rademacher, 100)[..]
        );
    }

    #[test]
    fn rademacher_and_gaussian_moments() {
        let n = 200_000;
        let r = probe(0, 0, 0, ProbeDistribution::Rademacher, n);
        let g = probe(0, 0, 0, ProbeDistribution::Gaussian, n);
        let mean_r = r.iter().sum::<f64>() / n as f64;
        let mean_g = g.iter().sum::<f64>() / n as f64;
        let var_g = g.iter().map(|x| x * x).sum::<f64>() / n as f64;
        // 5 standard errors (1/√n ≈ 2.2e-3; variance of x² for a normal is 2, so √(2/n)).
        assert!(mean_r.abs() < 5.0 / (n as f64).sqrt(), "{mean_r}");
        assert!(mean_g.abs() < 5.0 / (n as f64).sqrt(), "{mean_g}");
        assert!(
            (var_g - 1.0).abs() < 5.0 * (2.0 / n as f64).sqrt(),
            "{var_g}"
        );
    }
}
