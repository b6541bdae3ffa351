//! Seeded random streams. Every random choice of the crate (subset selection, epoch shuffles,
//! augmentation, synthetic data) draws from its own ChaCha8 stream keyed by
//! `(seed, purpose, index)`, so changing one (say the number of epochs) never shifts another
//! (the selected subset). Shuffles and Gaussian draws are written here on top of
//! `next_u64` because ChaCha's output is value-stable across versions while the samplers of
//! `rand` are not: a subset recorded in a checkpoint must be rebuilt bit-for-bit.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What a stream is used for; the tag keeps streams of different purposes disjoint.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Purpose {
    /// Per-class subset selection (index = class).
    Select = 1,
    /// Per-epoch batch order (index = epoch).
    Shuffle = 2,
    /// Per-epoch augmentation (index = epoch, word position = sample).
    Augment = 3,
    /// Synthetic data (index 0 = class means, 1 = train split, 2 = test split).
    Synthetic = 4,
}

/// The stream for `(seed, purpose, index)`. Only the low 56 bits of `index` are used.
pub(crate) fn stream(seed: u64, purpose: Purpose, index: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(((purpose as u64) << 56) | (index & ((1 << 56) - 1)));
    rng
}

/// The `position`-th u64 of a stream, in O(1) (random access into the ChaCha key stream).
pub(crate) fn word_at(rng: &mut ChaCha8Rng, position: u64) -> u64 {
    rng.set_word_pos(u128::from(position) * 2);
    rng.next_u64()
}

/// A uniform integer in `0..n` (`n >= 1`), without modulo bias (Lemire's method).
pub(crate) fn below(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    let threshold = n.wrapping_neg() % n;
    loop {
        let product = u128::from(rng.next_u64()) * u128::from(n);
        if product as u64 >= threshold {
            return (product >> 64) as u64;
        }
    }
}

/// Fisher–Yates shuffle in place.
pub(crate) fn shuffle<T>(rng: &mut ChaCha8Rng, items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let j = below(rng, i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

/// A standard normal draw (Box–Muller, cosine branch only).
pub(crate) fn normal(rng: &mut ChaCha8Rng) -> f64 {
    const TWO_POW_53: f64 = 9_007_199_254_740_992.0;
    // u1 in (0, 1] so that ln(u1) is finite; u2 in [0, 1).
    let u1 = ((rng.next_u64() >> 11) + 1) as f64 / TWO_POW_53;
    let u2 = (rng.next_u64() >> 11) as f64 / TWO_POW_53;
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_differ_by_purpose_and_index_and_repeat_by_seed() {
        let first = |seed, purpose, index| stream(seed, purpose, index).next_u64();
        let a = first(7, Purpose::Select, 3);
        assert_eq!(a, first(7, Purpose::Select, 3));
        assert_ne!(a, first(7, Purpose::Select, 4));
        assert_ne!(a, first(7, Purpose::Shuffle, 3));
        assert_ne!(a, first(8, Purpose::Select, 3));
    }

    #[test]
    fn word_at_is_random_access_into_the_stream() {
        let mut sequential = stream(1, Purpose::Augment, 0);
        let words: Vec<u64> = (0..5).map(|_| sequential.next_u64()).collect();
        let mut rng = stream(1, Purpose::Augment, 0);
        for position in [3u64, 0, 4, 1] {
            assert_eq!(word_at(&mut rng, position), words[position as usize]);
        }
    }

    #[test]
    fn below_is_uniform_and_in_range() {
        // 60,000 draws over 6 values: each count is within 5 standard deviations
        // (sqrt(60000 * 1/6 * 5/6) ≈ 91) of 10,000.
        let mut rng = stream(0, Purpose::Shuffle, 0);
        let mut counts = [0usize; 6];
        for _ in 0..60_000 {
            counts[below(&mut rng, 6) as usize] += 1;
        }
        for count in counts {
            assert!((count as i64 - 10_000).abs() < 5 * 91, "{counts:?}");
        }
    }

    #[test]
    fn shuffle_is_a_permutation() {
        let mut rng = stream(0, Purpose::Shuffle, 1);
        let mut items: Vec<usize> = (0..100).collect();
        shuffle(&mut rng, &mut items);
        assert_ne!(items, (0..100).collect::<Vec<_>>());
        items.sort_unstable();
        assert_eq!(items, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn normal_has_unit_moments() {
        // 100,000 draws: mean within 5/sqrt(n) ≈ 0.016 of 0, variance within 5*sqrt(2/n) ≈ 0.022 of 1.
        let mut rng = stream(3, Purpose::Synthetic, 0);
        let draws: Vec<f64> = (0..100_000).map(|_| normal(&mut rng)).collect();
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        let var = draws.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / draws.len() as f64;
        assert!(mean.abs() < 0.016, "mean {mean}");
        assert!((var - 1.0).abs() < 0.022, "variance {var}");
    }
}
