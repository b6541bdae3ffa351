//! Per-data-set input normalization: pixels are scaled to [0, 1] (u8 / 255, like
//! torchvision's `ToTensor`) and then standardized per channel, `(x - mean_c) / std_c`
//! (torchvision's `Normalize`), with the constants the reference training scripts use.

/// How samples are standardized when they are batched.
#[derive(Debug, Clone, PartialEq)]
pub enum Normalization {
    /// Values are used as stored (u8 pixels still scaled to [0, 1]); the synthetic data.
    None,
    /// `(x - mean[c]) / std[c]` for channel `c`.
    PerChannel {
        /// Per-channel mean of the [0, 1]-scaled training pixels.
        mean: Vec<f64>,
        /// Per-channel standard deviation of the [0, 1]-scaled training pixels.
        std: Vec<f64>,
    },
}

impl Normalization {
    /// MNIST (and Fashion-MNIST read via `mnist:DIR`): mean 0.1307, std 0.3081, the values of
    /// PyTorch's `examples/mnist/main.py`.
    pub fn mnist() -> Self {
        Normalization::PerChannel {
            mean: vec![0.1307],
            std: vec![0.3081],
        }
    }

    /// CIFAR-10: mean (0.4914, 0.4822, 0.4465), std (0.2023, 0.1994, 0.2010), the values of
    /// the LDAM-DRW reference code (`cifar_train.py`) that the paper builds on.
    pub fn cifar10() -> Self {
        Normalization::PerChannel {
            mean: vec![0.4914, 0.4822, 0.4465],
            std: vec![0.2023, 0.1994, 0.2010],
        }
    }

    /// CIFAR-100: mean (0.5071, 0.4865, 0.4409), std (0.2673, 0.2564, 0.2762), the standard
    /// values of the CIFAR-100 training recipes (e.g. `weiaicunzai/pytorch-cifar100`).
    pub fn cifar100() -> Self {
        Normalization::PerChannel {
            mean: vec![0.5071, 0.4865, 0.4409],
            std: vec![0.2673, 0.2564, 0.2762],
        }
    }

    /// Number of channels this normalization is for (`None` fits any).
    pub(crate) fn fits_channels(&self, channels: usize) -> bool {
        match self {
            Normalization::None => true,
            Normalization::PerChannel { mean, std } => {
                mean.len() == channels && std.len() == channels
            }
        }
    }

    /// Standardizes a [0, 1]-scaled value of channel `channel`; callers guarantee
    /// `fits_channels` (the data set builds its normalization with its shape).
    pub(crate) fn apply(&self, channel: usize, value: f64) -> f64 {
        match self {
            Normalization::None => value,
            Normalization::PerChannel { mean, std } => (value - mean[channel]) / std[channel],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_channel_standardizes() {
        let n = Normalization::cifar10();
        assert!(n.fits_channels(3) && !n.fits_channels(1));
        assert_eq!(n.apply(1, 0.4822), 0.0);
        assert!((n.apply(2, 0.4465 + 0.2010) - 1.0).abs() < 1e-15);
        assert_eq!(Normalization::None.apply(0, 0.25), 0.25);
        assert!((Normalization::mnist().apply(0, 0.0) + 0.1307 / 0.3081).abs() < 1e-15);
        assert!(Normalization::cifar100().fits_channels(3));
    }
}
