//! CIFAR training augmentation, as in the reference code (torchvision
//! `RandomCrop(32, padding=4)` then `RandomHorizontalFlip()`): pad the raw image with 4
//! pixels of 0 (black, before normalization, exactly like torchvision pads the PIL image),
//! crop back to the original size at a uniform offset in `0..=8` per axis, and mirror the
//! columns with probability 1/2.
//!
//! The draw for a sample depends only on `(seed, epoch, sample index in the split)` — one
//! word of the ChaCha stream `(seed, Augment, epoch)` at position `index` — so resumed
//! training and any batch size or order reproduce the same augmented epoch.

use rand_chacha::ChaCha8Rng;

use crate::rng::{self, Purpose};

/// Zero padding on every side before the random crop (the reference value for CIFAR).
pub const PADDING: usize = 4;

/// One sample's crop offset (in the padded image) and flip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CropFlip {
    dy: usize,
    dx: usize,
    flip: bool,
}

/// The per-epoch source of [`CropFlip`] draws.
#[derive(Debug, Clone)]
pub(crate) struct Augmenter {
    rng: ChaCha8Rng,
}

impl Augmenter {
    pub(crate) fn new(seed: u64, epoch: u64) -> Augmenter {
        Augmenter {
            rng: rng::stream(seed, Purpose::Augment, epoch),
        }
    }

    /// The draw for sample `index` of the split. One u64 gives the three choices; its
    /// modulo bias (2^64 mod 162 values out of 2^64) is immaterial.
    pub(crate) fn draw(&mut self, index: usize) -> CropFlip {
        const SIDE: u64 = 2 * PADDING as u64 + 1;
        let word = rng::word_at(&mut self.rng, index as u64);
        CropFlip {
            dy: (word % SIDE) as usize,
            dx: (word / SIDE % SIDE) as usize,
            flip: word / (SIDE * SIDE) % 2 == 1,
        }
    }
}

impl CropFlip {
    /// The source pixel `(row, col)` of output pixel `(y, x)` in a `height x width` image, or
    /// `None` where the crop shows padding. Output `(y, x)` is the cropped image at `(y, x')`
    /// with `x' = width − 1 − x` when flipped, i.e. the original at `(y + dy − 4, x' + dx − 4)`.
    pub(crate) fn source(
        &self,
        y: usize,
        x: usize,
        height: usize,
        width: usize,
    ) -> Option<(usize, usize)> {
        let x = if self.flip { width - 1 - x } else { x };
        let row = (y + self.dy).checked_sub(PADDING).filter(|&r| r < height)?;
        let col = (x + self.dx).checked_sub(PADDING).filter(|&c| c < width)?;
        Some((row, col))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centered_crop_is_identity_and_offsets_shift() {
        let center = CropFlip {
            dy: 4,
            dx: 4,
            flip: false,
        };
        for (y, x) in [(0, 0), (2, 1), (31, 31)] {
            assert_eq!(center.source(y, x, 32, 32), Some((y, x)));
        }
        // dy = 0: the crop starts 4 rows above the image; output row 4 is image row 0.
        let up_left = CropFlip {
            dy: 0,
            dx: 0,
            flip: false,
        };
        assert_eq!(up_left.source(3, 5, 32, 32), None);
        assert_eq!(up_left.source(4, 5, 32, 32), Some((0, 1)));
        let down_right = CropFlip {
            dy: 8,
            dx: 8,
            flip: false,
        };
        assert_eq!(down_right.source(27, 0, 32, 32), Some((31, 4)));
        assert_eq!(down_right.source(28, 0, 32, 32), None);
        // Flip of a centered crop mirrors columns.
        let mirror = CropFlip {
            dy: 4,
            dx: 4,
            flip: true,
        };
        assert_eq!(mirror.source(7, 0, 32, 32), Some((7, 31)));
        assert_eq!(mirror.source(7, 31, 32, 32), Some((7, 0)));
        // Crop, then flip (torchvision's order) on a 3x3 image with dx = 6: output column 0
        // is cropped column 2 = padded column 8 = padding; output column 2 is cropped column 0
        // = image column 2. (Flip-then-crop would map output column 0 to image column 0.)
        let both = CropFlip {
            dy: 4,
            dx: 6,
            flip: true,
        };
        assert_eq!(both.source(0, 0, 3, 3), None);
        assert_eq!(both.source(0, 2, 3, 3), Some((0, 2)));
    }

    #[test]
    fn draws_are_seeded_per_epoch_and_sample_and_cover_all_offsets() {
        let mut a = Augmenter::new(1, 0);
        let first: Vec<CropFlip> = (0..50).map(|i| a.draw(i)).collect();
        let mut again = Augmenter::new(1, 0);
        assert_eq!(again.draw(49), first[49], "random access by sample index");
        assert_eq!(again.draw(3), first[3]);
        let mut next_epoch = Augmenter::new(1, 1);
        let other: Vec<CropFlip> = (0..50).map(|i| next_epoch.draw(i)).collect();
        assert_ne!(first, other);
        // 4,000 draws: every offset 0..=8 occurs on both axes; flips 2000 ± 5σ (σ ≈ 32).
        let draws: Vec<CropFlip> = (0..4000).map(|i| a.draw(i)).collect();
        for offset in 0..=8 {
            assert!(draws.iter().any(|d| d.dy == offset) && draws.iter().any(|d| d.dx == offset));
        }
        assert!(draws.iter().all(|d| d.dy <= 8 && d.dx <= 8));
        let flips = draws.iter().filter(|d| d.flip).count();
        assert!(flips.abs_diff(2000) < 160, "{flips} flips");
    }
}
